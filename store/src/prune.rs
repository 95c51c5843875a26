//! `prune`: remove what no snapshot references.
//!
//! Plan, then execute, so `--dry-run` is free:
//! 1. mark every blob reachable from a snapshot (in a temporary SQLite table, so memory does not
//!    grow with the repository);
//! 2. packs without a live blob are deleted; of the partly used ones, the emptiest are repacked
//!    (their live blobs copied into new packs) until at most `max_unused` percent of the
//!    repository is unused; small packs (below a quarter of the usual size) are repacked
//!    together when two or more hold the same kinds of blob; packs no index lists (left by
//!    interrupted backups) are deleted;
//! 3. execute in an order that keeps the repository valid if interrupted anywhere: new packs →
//!    new index segments (listing every pack that stays) → old segments removed → packs
//!    removed. A later prune removes whatever an interrupted one left.
//!
//! Prune holds the exclusive lock for its whole run: backups wait for it, and it waits for
//! running backups, whose packs are not indexed yet and would look unreferenced.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::catalog::PackUsage;
use crate::error::{Result, StoreError};
use crate::id::{BlobId, PackId, TreeId};
use crate::pack::{pack_path, PACK_TARGET_SIZE};
use crate::repository::{Frame, Repository};
use crate::tree::{decode_list, Content, NodeKind};

#[derive(Debug, Clone, Default, Serialize)]
pub struct PrunePlan {
    /// Packs with no live blob.
    pub delete: Vec<PackId>,
    /// Partly used packs whose live blobs move to new packs.
    pub repack: Vec<PackId>,
    /// Packs no index lists.
    pub unindexed: Vec<PackId>,
    /// Temporary files left by writes that never finished (a backup killed while it wrote a
    /// pack), older than [`LEFTOVER_AGE`].
    pub leftovers: Vec<String>,
    pub total_bytes: u64,
    pub live_bytes: u64,
    /// Bytes freed once done (deleted packs, repacked packs minus what their live blobs take).
    pub bytes_freed: u64,
    pub bytes_repacked: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct PruneStats {
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    pub blobs_repacked: u64,
    pub index_segments_replaced: u64,
    pub leftovers_removed: u64,
}

/// How old a temporary file must be for prune to remove it. Prune holds the exclusive lock, so
/// no backup is writing; the margin is for writers that do not take that lock (a lock file or a
/// key file is written and renamed within milliseconds) and for one that lost its lock.
pub const LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Marks everything the snapshots reach and decides what to delete and repack.
/// `max_unused`: the percentage of the repository that may stay unused.
pub fn plan(repo: &Repository, max_unused: f64) -> Result<PrunePlan> {
    repo.live_reset()?;
    for (id, snap) in repo.snapshots()? {
        mark_tree(repo, &snap.tree).map_err(|e| match e {
            StoreError::BlobNotFound(blob) => StoreError::corrupt(
                format!("snapshot {}", id.short()),
                format!("blob {blob} is not in the index: run `cairn check`; nothing was pruned"),
            ),
            other => other,
        })?;
    }
    let mut plan = PrunePlan::default();
    let mut partly = Vec::new();
    let usage = repo.pack_usage()?;
    for u in &usage {
        plan.total_bytes += u.size;
        plan.live_bytes += u.live_bytes;
        if u.live_blobs == 0 {
            plan.delete.push(u.pack);
            plan.bytes_freed += u.size;
        } else if u.live_blobs < u.blobs {
            partly.push((u.pack, u.size, u.live_bytes));
        }
    }
    let limit = (plan.total_bytes as f64 * max_unused / 100.0) as u64;
    let mut unused: u64 = partly.iter().map(|(_, size, live)| size - live).sum();
    partly.sort_by_key(|(_, size, live)| std::cmp::Reverse(size - live));
    for (pack, size, live) in partly {
        if unused <= limit {
            break;
        }
        unused -= size - live;
        plan.repack.push(pack);
        plan.bytes_freed += size - live;
        plan.bytes_repacked += live;
    }
    merge_small_packs(&mut plan, &usage);
    let indexed: HashSet<PackId> = repo.indexed_packs()?.into_iter().map(|(p, _)| p).collect();
    plan.unindexed = repo
        .list_packs()?
        .into_iter()
        .filter(|p| !indexed.contains(p))
        .collect();
    plan.unindexed.sort();
    for p in &plan.unindexed {
        plan.bytes_freed += repo.backend().size(&pack_path(p)).unwrap_or(0);
    }
    for dir in crate::repository::all_dirs() {
        for (path, size) in repo.backend().leftovers(&dir, LEFTOVER_AGE)? {
            plan.leftovers.push(path);
            plan.bytes_freed += size;
        }
    }
    plan.leftovers.sort();
    Ok(plan)
}

/// A pack below this size is small: every backup leaves one of each blob kind (its last data
/// pack and its trees), which would otherwise pile up, a few a night, until they held unused
/// space.
pub const SMALL_PACK: u64 = PACK_TARGET_SIZE as u64 / 4;

/// Adds the small packs that are still in use to the packs repacked, when two or more hold the
/// same kinds: their blobs then fill packs of the usual size. A small pack alone stays, so a
/// prune right after another has nothing to merge.
fn merge_small_packs(plan: &mut PrunePlan, usage: &[PackUsage]) {
    let chosen: HashSet<PackId> = plan.repack.iter().copied().collect();
    let mut small: BTreeMap<u8, Vec<&PackUsage>> = BTreeMap::new();
    for u in usage {
        if u.live_blobs > 0 && u.size < SMALL_PACK && !chosen.contains(&u.pack) {
            small.entry(u.kinds).or_default().push(u);
        }
    }
    for packs in small.into_values().filter(|p| p.len() >= 2) {
        for u in packs {
            plan.repack.push(u.pack);
            plan.bytes_freed += u.size.saturating_sub(u.live_bytes);
            plan.bytes_repacked += u.live_bytes;
        }
    }
}

/// Marks a tree and everything below it live; returns the stored bytes newly marked.
pub(crate) fn mark_tree(repo: &Repository, id: &TreeId) -> Result<u64> {
    let fresh = repo.live_insert(&[*id])?[0];
    if !fresh {
        return Ok(0); // already marked with everything below it
    }
    let mut bytes = repo.locate(id)?.stored;
    for node in &repo.load_tree(id)?.nodes {
        bytes += mark_node(repo, node)?;
    }
    Ok(bytes)
}

/// Marks what a node references (its subtree, or its content's lists and chunks).
pub(crate) fn mark_node(repo: &Repository, node: &crate::tree::Node) -> Result<u64> {
    match (node.kind, &node.subtree, &node.content) {
        (NodeKind::Dir, Some(sub), _) => mark_tree(repo, sub),
        (NodeKind::File | NodeKind::Stream, _, Some(content)) => mark_content(repo, content),
        _ => Ok(0),
    }
}

/// Marks a content's chunks and chunk lists live; returns the stored bytes newly marked.
pub(crate) fn mark_content(repo: &Repository, content: &Content) -> Result<u64> {
    let ids: Vec<BlobId> = content.entries.iter().map(|e| e.0).collect();
    let fresh = repo.live_insert(&ids)?;
    let mut bytes = 0;
    for (id, new) in ids.iter().zip(fresh) {
        if !new {
            continue;
        }
        bytes += repo.locate(id)?.stored;
        if content.depth > 0 {
            let entries = decode_list(&repo.load_blob(id)?, id)?;
            bytes += mark_content(
                repo,
                &Content {
                    depth: content.depth - 1,
                    entries,
                },
            )?;
        }
    }
    Ok(bytes)
}

/// Carries out a plan. Needs the exclusive lock.
pub fn execute(repo: &Repository, plan: &PrunePlan) -> Result<PruneStats> {
    let mut stats = PruneStats::default();
    for pack in &plan.repack {
        let entries = repo.live_entries(pack)?;
        let mut bytes = repo.backend().read(&pack_path(pack))?;
        let mut copies = Vec::with_capacity(entries.len());
        let mut frame = Frame::default();
        for e in &entries {
            let envelope = e.envelope_mut(&mut bytes).ok_or_else(|| {
                StoreError::corrupt(
                    format!("pack {pack} blob {}", e.id),
                    "lies outside the pack",
                )
            })?;
            repo.open_blob_in(pack, e, envelope, &mut frame)?;
            copies.push((e.kind, e.id, frame.take_blob(e)));
        }
        stats.blobs_repacked += copies.len() as u64;
        repo.save_copies(&copies)?;
        stats.packs_repacked += 1;
    }
    repo.flush()?;
    let gone: HashSet<PackId> = plan.delete.iter().chain(&plan.repack).copied().collect();
    stats.index_segments_replaced = repo.rewrite_index(&gone)?;
    for pack in plan
        .delete
        .iter()
        .chain(&plan.repack)
        .chain(&plan.unindexed)
    {
        repo.remove_pack(pack)?;
        stats.packs_deleted += 1;
    }
    for path in &plan.leftovers {
        repo.backend().remove(path)?;
        stats.leftovers_removed += 1;
    }
    Ok(stats)
}
