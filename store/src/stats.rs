//! `stats`: what the repository holds, and what each snapshot added to it, per source.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::error::Result;
use crate::id::{BlobId, SnapshotId, TreeId};
use crate::repository::Repository;
use crate::tree::{decode_list, Content, Node, NodeKind};

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
        let mut added = 0;
        mark(repo, &[snap.tree]).map(|n| added += n)?;
        g.sources.insert("(metadata)".into(), added);
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

/// Marks `ids` live; returns the stored bytes of those not marked before.
fn mark(repo: &Repository, ids: &[BlobId]) -> Result<u64> {
    let fresh = repo.live_insert(ids)?;
    let mut bytes = 0;
    for (id, new) in ids.iter().zip(fresh) {
        if new {
            bytes += repo.locate(id)?.length;
        }
    }
    Ok(bytes)
}

fn walk(
    repo: &Repository,
    node: &Node,
    source: &str,
    out: &mut BTreeMap<String, u64>,
) -> Result<()> {
    match node.kind {
        NodeKind::Dir => {
            if let Some(sub) = &node.subtree {
                let bytes = mark(repo, &[*sub])?;
                *out.entry(source.to_string()).or_default() += bytes;
                if bytes > 0 {
                    for child in repo.load_tree(sub)?.nodes {
                        walk(repo, &child, source, out)?;
                    }
                }
            }
        }
        NodeKind::File | NodeKind::Stream => {
            let label = match node
                .meta
                .as_ref()
                .and_then(|m| m.get("mssql"))
                .and_then(|m| m.get("database"))
            {
                Some(db) => format!("{} (SQL Server)", db.as_str().unwrap_or("?")),
                None => source.to_string(),
            };
            if let Some(content) = &node.content {
                let bytes = mark_content(repo, content)?;
                *out.entry(label).or_default() += bytes;
            }
        }
        NodeKind::Symlink => {}
    }
    Ok(())
}

fn mark_content(repo: &Repository, content: &Content) -> Result<u64> {
    let ids: Vec<BlobId> = content.entries.iter().map(|e| e.0).collect();
    let fresh = repo.live_insert(&ids)?;
    let mut bytes = 0;
    for (id, new) in ids.iter().zip(fresh) {
        if !new {
            continue;
        }
        bytes += repo.locate(id)?.length;
        if content.depth > 0 {
            let list = decode_list(&repo.load_blob(id)?, id)?;
            bytes += mark_content(
                repo,
                &Content {
                    depth: content.depth - 1,
                    entries: list,
                },
            )?;
        }
    }
    Ok(bytes)
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
