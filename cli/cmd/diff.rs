//! `cairn diff`

use anyhow::{bail, Context, Result};
use cairn_ingest::zip;
use cairn_store::diff::{diff, Change};
use cairn_store::{Node, NodeKind, Repository, Snapshot, SnapshotId};
use serde_json::json;

use crate::textdiff;
use crate::{exit, output, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The older snapshot (ID, prefix or `latest`).
    pub before: String,
    /// The newer snapshot.
    pub after: String,
    /// Print a line diff of the file at PATH (pretty-printing XML written on one line). For a
    /// ZIP archive, of each changed entry; `ARCHIVE.zip/ENTRY` names one entry.
    #[arg(long, requires = "path")]
    pub content: bool,
    /// The file to compare with --content.
    #[arg(requires = "content")]
    pub path: Option<String>,
}

/// Files larger than this are not loaded to be compared line by line.
const MAX_TEXT: u64 = 256 << 20;

pub fn run(global: &Global, args: &Args) -> Result<u8> {
    let repo = super::open(global)?;
    let (a, sa) = repo.resolve_snapshot(&args.before)?;
    let (b, sb) = repo.resolve_snapshot(&args.after)?;
    if let Some(path) = &args.path {
        return content(global, &repo, (&a, &sa), (&b, &sb), path);
    }
    let changes = diff(&repo, &sa.tree, &sb.tree)?;
    if global.json {
        for c in &changes {
            output::json(&serde_json::to_value(c)?)?;
        }
        return Ok(exit::OK);
    }
    let size = |s: Option<u64>| s.map(output::bytes).unwrap_or_default();
    for c in &changes {
        let (mark, sizes) = match c.change {
            Change::Added => ("+", size(c.size_after)),
            Change::Removed => ("-", size(c.size_before)),
            Change::Changed => (
                "M",
                format!("{} -> {}", size(c.size_before), size(c.size_after)),
            ),
        };
        output::line(&format!("{mark}  {}  {sizes}", c.path))?;
        match (&c.mssql_before, &c.mssql_after) {
            (Some(x), Some(y)) => output::line(&format!(
                "     {}\n  -> {}",
                super::mssql_line(x),
                super::mssql_line(y)
            ))?,
            (None, Some(m)) | (Some(m), None) => {
                output::line(&format!("     {}", super::mssql_line(m)))?
            }
            (None, None) => {}
        }
        for e in &c.entries {
            let mark = match e.change {
                Change::Added => "+",
                Change::Removed => "-",
                Change::Changed => "M",
            };
            output::line(&format!("     {mark} {}", e.name))?;
        }
    }
    if !global.quiet {
        let count = |k: Change| changes.iter().filter(|c| c.change == k).count();
        output::line(&format!(
            "{} to {}: {} added, {} removed, {} changed",
            a.short(),
            b.short(),
            count(Change::Added),
            count(Change::Removed),
            count(Change::Changed)
        ))?;
    }
    Ok(exit::OK)
}

/// What PATH names in one snapshot: nothing, a file, or an entry of a ZIP archive.
enum Target {
    Missing,
    File(Node),
    Entry(Node, String),
}

/// Finds PATH in a snapshot: a file, or else `ARCHIVE/ENTRY` inside a listed ZIP archive.
fn locate(repo: &Repository, snap: &Snapshot, path: &str) -> Result<Target> {
    if let Some(node) = repo.find_node(&snap.tree, path)? {
        return Ok(Target::File(node));
    }
    let mut split = path.len();
    while let Some(at) = path[..split].rfind('/') {
        if let Some(node) = repo.find_node(&snap.tree, &path[..at])? {
            let listed = node.meta.as_ref().is_some_and(|m| m.contains_key("zip"));
            if listed && node.kind != NodeKind::Dir {
                return Ok(Target::Entry(node, path[at + 1..].to_string()));
            }
            break;
        }
        split = at;
    }
    Ok(Target::Missing)
}

/// A file's bytes, refusing what is too large to compare in memory.
fn read_all(repo: &Repository, node: &Node, path: &str) -> Result<Vec<u8>> {
    if !matches!(node.kind, NodeKind::File | NodeKind::Stream) {
        bail!("{path} is not a file");
    }
    if node.size > MAX_TEXT {
        bail!(
            "{path} is {}, more than the {} compared line by line",
            output::bytes(node.size),
            output::bytes(MAX_TEXT)
        );
    }
    let mut out = Vec::with_capacity(usize::try_from(node.size).unwrap_or(0));
    if let Some(content) = &node.content {
        for entry in repo.chunks(content) {
            out.extend_from_slice(&repo.load_blob(&entry?.0)?);
        }
    }
    Ok(out)
}

fn entry_names(node: &Node) -> Vec<String> {
    node.meta
        .as_ref()
        .and_then(|m| m.get("zip")?.get("entries")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.get("name")?.as_str().map(str::to_string))
        .collect()
}

/// The bytes to compare of each side, by label: the file, or each entry of an archive.
fn versions(
    repo: &Repository,
    target: &Target,
    path: &str,
) -> Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    match target {
        Target::Missing => {}
        Target::Entry(node, entry) => {
            // An entry absent on this side is compared as empty.
            if entry_names(node).contains(entry) {
                let archive = read_all(repo, node, path)?;
                let bytes = zip::read_entry(&archive, entry)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("reading {path}"))?;
                out.insert(path.to_string(), bytes);
            }
        }
        Target::File(node) if node.meta.as_ref().is_some_and(|m| m.contains_key("zip")) => {
            let archive = read_all(repo, node, path)?;
            for name in entry_names(node) {
                let bytes = zip::read_entry(&archive, &name)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("reading {path}"))?;
                out.insert(format!("{path}/{name}"), bytes);
            }
        }
        Target::File(node) => {
            out.insert(path.to_string(), read_all(repo, node, path)?);
        }
    }
    Ok(out)
}

/// `diff --content A B PATH`: a unified line diff per changed text file or archive entry.
fn content(
    global: &Global,
    repo: &Repository,
    (a, sa): (&SnapshotId, &Snapshot),
    (b, sb): (&SnapshotId, &Snapshot),
    path: &str,
) -> Result<u8> {
    let path = path.trim_matches('/');
    let (ta, tb) = (locate(repo, sa, path)?, locate(repo, sb, path)?);
    if matches!((&ta, &tb), (Target::Missing, Target::Missing)) {
        bail!(
            "{path} is in neither snapshot {} nor {} (a ZIP entry is named ARCHIVE/ENTRY)",
            a.short(),
            b.short()
        );
    }
    let before = versions(repo, &ta, path)?;
    let after = versions(repo, &tb, path)?;
    let mut labels: Vec<&String> = before.keys().chain(after.keys()).collect();
    labels.sort();
    labels.dedup();
    let empty = Vec::new();
    let mut differing = 0;
    for label in labels {
        let (x, y) = (
            before.get(label).unwrap_or(&empty),
            after.get(label).unwrap_or(&empty),
        );
        if x == y {
            continue;
        }
        differing += 1;
        let (la, lb) = (
            format!("{}:{label}", a.short()),
            format!("{}:{label}", b.short()),
        );
        let text = match (textdiff::decode(x), textdiff::decode(y)) {
            (Some(tx), Some(ty)) => Some(textdiff::unified(&tx, &ty, &la, &lb)),
            _ => None,
        };
        if global.json {
            output::json(&json!({
                "path": label,
                "binary": text.is_none(),
                "diff": text,
            }))?;
        } else {
            match text {
                Some(t) => output::text(&t)?,
                None => output::line(&format!("binary files {la} and {lb} differ"))?,
            }
        }
    }
    if !global.quiet && !global.json && differing == 0 {
        output::line(&format!(
            "{path}: no difference between {} and {}",
            a.short(),
            b.short()
        ))?;
    }
    Ok(exit::OK)
}
