//! `cairn ls`

use anyhow::{Context, Result};
use cairn_store::{Node, NodeKind, Repository, StoreError};
use serde_json::json;

use crate::{exit, output, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A snapshot ID, a unique prefix of one, or `latest`.
    pub snapshot: String,
    /// List only below this path of the snapshot.
    pub path: Option<String>,
    /// Long listing: type and mode, size, modification time.
    #[arg(short, long)]
    pub long: bool,
}

pub fn run(global: &Global, args: &Args) -> Result<u8> {
    let repo = super::open(global)?;
    let (id, snap) = repo.resolve_snapshot(&args.snapshot)?;
    let start = args.path.as_deref().unwrap_or("");
    let node = repo
        .find_node(&snap.tree, start)?
        .ok_or_else(|| StoreError::PathNotFound {
            snapshot: id.short(),
            path: start.to_string(),
        })?;
    let prefix = format!("/{}", start.trim_matches('/'));
    let prefix = if prefix == "/" { String::new() } else { prefix };
    if !prefix.is_empty() {
        print_node(global, args, &prefix, &node)?;
    }
    if let Some(sub) = node.subtree {
        walk(&repo, global, args, &sub, &prefix)?;
    }
    Ok(exit::OK)
}

fn walk(
    repo: &Repository,
    global: &Global,
    args: &Args,
    tree: &cairn_store::TreeId,
    prefix: &str,
) -> Result<()> {
    let tree = repo.load_tree(tree).with_context(|| {
        format!(
            "reading directory {}",
            if prefix.is_empty() { "/" } else { prefix }
        )
    })?;
    for node in &tree.nodes {
        let path = format!("{prefix}/{}", node.name);
        print_node(global, args, &path, node)?;
        if let Some(sub) = node.subtree {
            walk(repo, global, args, &sub, &path)?;
        }
    }
    Ok(())
}

fn kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Dir => "dir",
        NodeKind::File => "file",
        NodeKind::Symlink => "symlink",
        NodeKind::Stream => "stream",
    }
}

/// `drwxr-xr-x`-style rendering of a node's type and mode.
fn mode_string(node: &Node) -> String {
    let t = match node.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::File | NodeKind::Stream => '-',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let bits = (node.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn print_node(global: &Global, args: &Args, path: &str, node: &Node) -> Result<()> {
    if global.json {
        let mut v = json!({
            "path": path,
            "name": node.name,
            "type": kind_name(node.kind),
            "size": node.size,
            "mtime": output::time_ns(node.mtime_ns),
            "mode": node.mode,
            "uid": node.uid,
            "gid": node.gid,
        });
        if let Some(t) = &node.target {
            v["target"] = json!(t);
        }
        if let Some(meta) = &node.meta {
            for (k, m) in meta {
                v[k] = m.clone();
            }
        }
        return output::json(&v);
    }
    if args.long {
        let mut target = node
            .target
            .as_ref()
            .map(|t| format!(" -> {t}"))
            .unwrap_or_default();
        if let Some(m) = node.meta.as_ref().and_then(|m| m.get("mssql")) {
            target.push_str(&format!("  [{}]", super::mssql_line(m)));
        }
        if let Some(n) = node
            .meta
            .as_ref()
            .and_then(|m| m.get("zip")?.get("entries")?.as_array().map(Vec::len))
        {
            target.push_str(&format!("  [ZIP, {n} entries]"));
        }
        output::line(&format!(
            "{} {:>12} {} {path}{target}",
            mode_string(node),
            node.size,
            output::time_ns(node.mtime_ns)
        ))
    } else {
        output::line(path)
    }
}
