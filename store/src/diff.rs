//! Differences between two snapshots' trees. Identical subtrees (same ID) are skipped without
//! being read, so comparing two nightly snapshots costs only what changed.

use serde::Serialize;

use crate::error::Result;
use crate::id::TreeId;
use crate::repository::Repository;
use crate::tree::{Node, NodeKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub path: String,
    pub change: Change,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_before: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_after: Option<u64>,
    /// SQL Server backup metadata before and after, when either side has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mssql_before: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mssql_after: Option<serde_json::Value>,
    /// For a changed ZIP archive listed on both sides: its entries added, removed or changed
    /// (by size or CRC-32), in name order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<EntryChange>,
}

/// A change of one entry of a ZIP archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryChange {
    pub name: String,
    pub change: Change,
}

/// The entries of a node's ZIP listing: name → (size, CRC-32).
fn zip_entries(node: &Node) -> Option<std::collections::BTreeMap<&str, (u64, &str)>> {
    let entries = node.meta.as_ref()?.get("zip")?.get("entries")?.as_array()?;
    Some(
        entries
            .iter()
            .filter_map(|e| {
                Some((
                    e.get("name")?.as_str()?,
                    (e.get("size")?.as_u64()?, e.get("crc32")?.as_str()?),
                ))
            })
            .collect(),
    )
}

/// The entry changes between two listed ZIP archives; empty unless both are listed.
fn entry_changes(before: &Node, after: &Node) -> Vec<EntryChange> {
    let (Some(a), Some(b)) = (zip_entries(before), zip_entries(after)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, x) in &a {
        match b.get(name) {
            None => out.push((name, Change::Removed)),
            Some(y) if y != x => out.push((name, Change::Changed)),
            Some(_) => {}
        }
    }
    out.extend(
        b.keys()
            .filter(|n| !a.contains_key(*n))
            .map(|n| (n, Change::Added)),
    );
    out.sort_by(|x, y| x.0.cmp(y.0));
    out.into_iter()
        .map(|(name, change)| EntryChange {
            name: (*name).to_string(),
            change,
        })
        .collect()
}

fn mssql(node: &Node) -> Option<serde_json::Value> {
    node.meta.as_ref()?.get("mssql").cloned()
}

/// Whether two nodes of the same path differ in what a user restores.
fn differs(a: &Node, b: &Node) -> bool {
    a.kind != b.kind
        || a.mode != b.mode
        || a.size != b.size
        || a.content != b.content
        || a.target_bytes() != b.target_bytes()
        || (a.kind != NodeKind::Dir && a.mtime_ns != b.mtime_ns)
}

/// Every path added, removed or changed from `before` to `after`, in path order. Directories
/// are listed when added or removed (with everything inside them), not when only their content
/// changed.
pub fn diff(repo: &Repository, before: &TreeId, after: &TreeId) -> Result<Vec<Difference>> {
    let mut out = Vec::new();
    walk(repo, Some(before), Some(after), "", &mut out)?;
    Ok(out)
}

fn walk(
    repo: &Repository,
    a: Option<&TreeId>,
    b: Option<&TreeId>,
    prefix: &str,
    out: &mut Vec<Difference>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let left = a
        .map(|id| repo.load_tree(id))
        .transpose()?
        .unwrap_or_default();
    let right = b
        .map(|id| repo.load_tree(id))
        .transpose()?
        .unwrap_or_default();
    let (mut i, mut j) = (0, 0);
    while i < left.nodes.len() || j < right.nodes.len() {
        let l = left.nodes.get(i);
        let r = right.nodes.get(j);
        let order = match (l, r) {
            (Some(l), Some(r)) => l.name_bytes().cmp(&r.name_bytes()),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                let l = l.expect("left exists");
                report(repo, Some(l), None, prefix, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let r = r.expect("right exists");
                report(repo, None, Some(r), prefix, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (l, r) = (l.expect("left exists"), r.expect("right exists"));
                let path = format!("{prefix}/{}", r.name);
                if l.kind == NodeKind::Dir && r.kind == NodeKind::Dir {
                    if l.mode != r.mode {
                        out.push(entry(&path, Change::Changed, Some(l), Some(r)));
                    }
                    walk(repo, l.subtree.as_ref(), r.subtree.as_ref(), &path, out)?;
                } else if l.kind != r.kind {
                    report(repo, Some(l), None, prefix, out)?;
                    report(repo, None, Some(r), prefix, out)?;
                } else if differs(l, r) {
                    out.push(entry(&path, Change::Changed, Some(l), Some(r)));
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

fn entry(path: &str, change: Change, before: Option<&Node>, after: Option<&Node>) -> Difference {
    let node = after.or(before).expect("one side exists");
    Difference {
        path: path.to_string(),
        change,
        kind: node.kind,
        size_before: before.filter(|n| n.kind != NodeKind::Dir).map(|n| n.size),
        size_after: after.filter(|n| n.kind != NodeKind::Dir).map(|n| n.size),
        mssql_before: before.and_then(mssql),
        mssql_after: after.and_then(mssql),
        entries: match (before, after) {
            (Some(a), Some(b)) => entry_changes(a, b),
            _ => Vec::new(),
        },
    }
}

/// Lists an added or removed node, and for a directory everything inside it.
fn report(
    repo: &Repository,
    before: Option<&Node>,
    after: Option<&Node>,
    prefix: &str,
    out: &mut Vec<Difference>,
) -> Result<()> {
    let node = after.or(before).expect("one side exists");
    let path = format!("{prefix}/{}", node.name);
    let change = if after.is_some() {
        Change::Added
    } else {
        Change::Removed
    };
    out.push(entry(&path, change, before, after));
    if let Some(sub) = &node.subtree {
        let (a, b) = if after.is_some() {
            (None, Some(sub))
        } else {
            (Some(sub), None)
        };
        walk(repo, a, b, &path, out)?;
    }
    Ok(())
}
