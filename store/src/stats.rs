//! `stats`: what the repository holds, and what each snapshot added to it, per source.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::error::Result;
use crate::id::{SnapshotId, TreeId};
use crate::prune::mark_node;
use crate::repository::Repository;
use crate::tree::{Node, NodeKind};

#[derive(Debug, Default, Serialize)]
pub struct RepositoryStats {
    pub snapshots: u64,
    /// Bytes of every distinct blob, before compression.
    pub raw_bytes: u64,
    /// Bytes of the packs.
    pub stored_bytes: u64,
    pub chunks: u64,
    pub packs: u64,
    /// What all snapshots hold together, as restored (file and stream sizes).
    pub logical_bytes: u64,
    /// logical_bytes / stored_bytes.
    pub dedup_ratio: f64,
}

/// What one snapshot added: the stored (compressed, sealed) size of the blobs no earlier
/// snapshot references, by top-level source; SQL Server backups count under their database.
#[derive(Debug, Serialize)]
pub struct Growth {
    pub snapshot: SnapshotId,
    pub time: String,
    pub logical_bytes: u64,
    pub added_bytes: u64,
    pub sources: BTreeMap<String, u64>,
}

pub fn repository_stats(repo: &Repository, growth: &[Growth]) -> Result<RepositoryStats> {
    let (chunks, raw_bytes, packs, stored_bytes) = repo.totals()?;
    let logical_bytes: u64 = growth.iter().map(|g| g.logical_bytes).sum();
    Ok(RepositoryStats {
        snapshots: growth.len() as u64,
        raw_bytes,
        stored_bytes,
        chunks,
        packs,
        logical_bytes,
        dedup_ratio: if stored_bytes == 0 {
            0.0
        } else {
            logical_bytes as f64 / stored_bytes as f64
        },
    })
}

/// Walks every snapshot, oldest first, attributing each blob to the first that reaches it.
pub fn growth(repo: &Repository) -> Result<Vec<Growth>> {
    repo.live_reset()?;
    let mut sizes: HashMap<TreeId, u64> = HashMap::new();
    let mut out = Vec::new();
    for (id, snap) in repo.snapshots()? {
        let mut g = Growth {
            snapshot: id,
            time: snap.time.to_rfc3339(),
            logical_bytes: 0,
            added_bytes: 0,
            sources: BTreeMap::new(),
        };
        let root_fresh = repo.live_insert(&[snap.tree])?[0];
        let root = if root_fresh {
            repo.locate(&snap.tree)?.stored
        } else {
            0
        };
        g.sources.insert("(metadata)".into(), root);
        for node in repo.load_tree(&snap.tree)?.nodes {
            let mut by_source = BTreeMap::new();
            walk(repo, &node, &node.name, &mut by_source)?;
            for (k, v) in by_source {
                *g.sources.entry(k).or_default() += v;
            }
            g.logical_bytes += logical(repo, &node, &mut sizes)?;
        }
        g.sources.retain(|_, v| *v > 0);
        g.added_bytes = g.sources.values().sum();
        out.push(g);
    }
    Ok(out)
}

/// Attributes what `node` newly references to `source` (or to its SQL Server database).
fn walk(
    repo: &Repository,
    node: &Node,
    source: &str,
    out: &mut BTreeMap<String, u64>,
) -> Result<()> {
    let label = match node
        .meta
        .as_ref()
        .and_then(|m| m.get("mssql"))
        .and_then(|m| m.get("database"))
    {
        Some(db) => format!("{} (SQL Server)", db.as_str().unwrap_or("?")),
        None => source.to_string(),
    };
    match (node.kind, &node.subtree) {
        (NodeKind::Dir, Some(sub)) => {
            // The directory's own tree blob, then each child under the same source.
            let fresh = repo.live_insert(&[*sub])?[0];
            if fresh {
                *out.entry(label).or_default() += repo.locate(sub)?.stored;
                for child in repo.load_tree(sub)?.nodes {
                    walk(repo, &child, source, out)?;
                }
            }
        }
        _ => *out.entry(label).or_default() += mark_node(repo, node)?,
    }
    Ok(())
}

/// The restored size of a node, memoized per tree.
fn logical(repo: &Repository, node: &Node, sizes: &mut HashMap<TreeId, u64>) -> Result<u64> {
    match (&node.kind, &node.subtree) {
        (NodeKind::Dir, Some(sub)) => {
            if let Some(&s) = sizes.get(sub) {
                return Ok(s);
            }
            let mut total = 0;
            for child in repo.load_tree(sub)?.nodes {
                total += logical(repo, &child, sizes)?;
            }
            sizes.insert(*sub, total);
            Ok(total)
        }
        _ => Ok(node.size),
    }
}
