//! `check`: is the repository whole?
//!
//! 1. every indexed pack exists, has the size the index says, and its trailer lists exactly the
//!    blobs the index says;
//! 2. with `--read-data` (or a subset of packs), every blob of those packs is read,
//!    authenticated and re-hashed;
//! 3. every snapshot's manifest is readable, and every tree, chunk list and chunk it reaches is
//!    readable and indexed in a pack that exists and did not fail step 2.
//!
//! Each problem names the object at fault and the snapshots and paths that depend on it.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::id::{BlobId, PackId, SnapshotId, TreeId};
use crate::pack::pack_path;
use crate::repository::{Frame, Repository};
use crate::tree::{decode_list, Content, NodeKind};

/// Which packs `--read-data` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    None,
    All,
    /// Subset `n` of `t` (1-based): `t` runs with n = 1..=t read every pack once.
    Subset {
        n: u32,
        t: u32,
    },
    /// About this percentage of the packs, always the same ones.
    Percent(f64),
}

impl ReadData {
    /// Whether `pack` belongs to the subset. Deterministic: it depends on the pack ID only.
    pub fn selects(&self, pack: &PackId) -> bool {
        let v = u64::from_be_bytes(pack.0[..8].try_into().expect("8 bytes"));
        match *self {
            ReadData::None => false,
            ReadData::All => true,
            ReadData::Subset { n, t } => v % u64::from(t) == u64::from(n - 1),
            ReadData::Percent(p) => (v as f64) < (u64::MAX as f64) * (p / 100.0),
        }
    }

    /// Parses `N/T` or `P%`.
    pub fn parse_subset(text: &str) -> std::result::Result<Self, String> {
        let bad =
            || format!("invalid subset {text:?}: expected N/T (1 <= N <= T) or P% (0 < P <= 100)");
        if let Some(p) = text.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            return (p > 0.0 && p <= 100.0)
                .then_some(ReadData::Percent(p))
                .ok_or_else(bad);
        }
        let (n, t) = text.split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let t: u32 = t.trim().parse().map_err(|_| bad())?;
        (n >= 1 && n <= t)
            .then_some(ReadData::Subset { n, t })
            .ok_or_else(bad)
    }
}

/// One thing found wrong.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// `pack`, `blob`, `tree`, `snapshot`.
    pub kind: String,
    /// The object at fault (`pack 3fa2…`, `pack 3fa2… blob 81c0…`).
    pub object: String,
    pub message: String,
    /// `<snapshot short id>:/path` of every file or directory that depends on the object.
    pub affected: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: u64,
    pub packs: u64,
    pub packs_read: u64,
    pub blobs_read: u64,
    pub bytes_read: u64,
    /// Packs on the share that no index lists (left by an interrupted backup; prune removes
    /// them). Not an error.
    pub unindexed_packs: u64,
    pub problems: Vec<Problem>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Why a blob cannot be used, by ID.
type Broken = HashMap<BlobId, usize>;

struct Checker<'a> {
    repo: &'a Repository,
    report: CheckReport,
    broken: Broken,
    /// Problems found inside each tree, as paths relative to it: reused when a tree is shared.
    tree_memo: HashMap<TreeId, Vec<(usize, String)>>,
    checked_lists: HashSet<BlobId>,
}

pub fn check(repo: &Repository, read_data: ReadData) -> Result<CheckReport> {
    let mut c = Checker {
        repo,
        report: CheckReport::default(),
        broken: HashMap::new(),
        tree_memo: HashMap::new(),
        checked_lists: HashSet::new(),
    };
    c.check_packs(read_data)?;
    c.check_snapshots()?;
    c.report.problems.sort();
    Ok(c.report)
}

impl Checker<'_> {
    fn problem(&mut self, kind: &str, object: String, message: String) -> usize {
        self.report.problems.push(Problem {
            kind: kind.into(),
            object,
            message,
            affected: Vec::new(),
        });
        self.report.problems.len() - 1
    }

    fn check_packs(&mut self, read_data: ReadData) -> Result<()> {
        let on_share: HashSet<PackId> = self.repo.list_packs()?.into_iter().collect();
        let indexed = self.repo.indexed_packs()?;
        let indexed_ids: HashSet<PackId> = indexed.iter().map(|(id, _)| *id).collect();
        self.report.unindexed_packs = on_share.difference(&indexed_ids).count() as u64;
        self.report.packs = indexed.len() as u64;
        for (pack, size) in indexed {
            let entries = self.repo.pack_entries(&pack)?;
            let object = format!("pack {pack}");
            if !on_share.contains(&pack) {
                let p = self.problem("pack", object, "the pack is missing".into());
                self.break_all(&entries, p);
                continue;
            }
            let trailer = match self.repo.read_pack_trailer(&pack) {
                Ok(t) => t,
                Err(e) => {
                    let p = self.problem("pack", object, format!("unreadable trailer: {e}"));
                    self.break_all(&entries, p);
                    continue;
                }
            };
            if trailer.0 != size {
                let p = self.problem(
                    "pack",
                    object.clone(),
                    format!("{} bytes, the index says {size}", trailer.0),
                );
                self.break_all(&entries, p);
                continue;
            }
            let listed: BTreeSet<_> = trailer.1.iter().map(|e| (e.offset, e.id)).collect();
            let expected: BTreeSet<_> = entries.iter().map(|e| (e.offset, e.id)).collect();
            if listed != expected {
                self.problem(
                    "pack",
                    object.clone(),
                    "its trailer and the index list different blobs".into(),
                );
            }
            if read_data.selects(&pack) {
                self.read_pack(&pack, &entries)?;
            }
        }
        Ok(())
    }

    fn break_all(&mut self, entries: &[crate::pack::PackEntry], problem: usize) {
        for e in entries {
            self.broken.entry(e.id).or_insert(problem);
        }
    }

    /// Reads a whole pack once and verifies every blob in it.
    fn read_pack(&mut self, pack: &PackId, entries: &[crate::pack::PackEntry]) -> Result<()> {
        let mut bytes = match self.repo.backend().read(&pack_path(pack)) {
            Ok(b) => b,
            Err(e) => {
                let p = self.problem("pack", format!("pack {pack}"), format!("unreadable: {e}"));
                self.break_all(entries, p);
                return Ok(());
            }
        };
        self.report.packs_read += 1;
        self.report.bytes_read += bytes.len() as u64;
        let mut frame = Frame::default();
        for e in entries {
            self.report.blobs_read += 1;
            let result = match e.envelope_mut(&mut bytes) {
                Some(envelope) => self
                    .repo
                    .open_blob_in(pack, e, envelope, &mut frame)
                    .map(drop),
                None => Err(StoreError::corrupt(
                    format!("pack {pack} blob {}", e.id),
                    "lies outside the pack",
                )),
            };
            if let Err(err) = result {
                let p = self.problem(
                    "blob",
                    format!("pack {pack} blob {}", e.id),
                    error_reason(&err),
                );
                self.broken.insert(e.id, p);
            }
        }
        Ok(())
    }

    fn check_snapshots(&mut self) -> Result<()> {
        let ids: Vec<SnapshotId> = self
            .repo
            .snapshots()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        self.report.snapshots = ids.len() as u64;
        for id in ids {
            let snap = match self.repo.read_snapshot(&id) {
                Ok(s) => s,
                Err(e) => {
                    self.problem("snapshot", format!("snapshot {id}"), error_reason(&e));
                    continue;
                }
            };
            let found = self.check_tree(&snap.tree)?;
            for (p, path) in found {
                self.report.problems[p].affected.push(format!(
                    "{}:{}",
                    id.short(),
                    if path.is_empty() { "/" } else { &path }
                ));
            }
        }
        Ok(())
    }

    /// The problems below a tree, as `(problem, path relative to the tree)`.
    fn check_tree(&mut self, id: &TreeId) -> Result<Vec<(usize, String)>> {
        if let Some(found) = self.tree_memo.get(id) {
            return Ok(found.clone());
        }
        let mut found = Vec::new();
        if let Some(&p) = self.broken.get(id) {
            found.push((p, String::new()));
        } else {
            match self.repo.load_tree(id) {
                Ok(tree) => {
                    for node in &tree.nodes {
                        let path = format!("/{}", node.name);
                        match node.kind {
                            NodeKind::Dir => {
                                if let Some(sub) = &node.subtree {
                                    for (p, rel) in self.check_tree(sub)? {
                                        found.push((p, format!("{path}{rel}")));
                                    }
                                }
                            }
                            NodeKind::File | NodeKind::Stream => {
                                if let Some(content) = &node.content {
                                    for p in self.check_content(content)? {
                                        found.push((p, path.clone()));
                                    }
                                }
                            }
                            NodeKind::Symlink => {}
                        }
                    }
                }
                Err(e) => {
                    let p = self.problem("tree", format!("tree {id}"), error_reason(&e));
                    self.broken.insert(*id, p);
                    found.push((p, String::new()));
                }
            }
        }
        self.tree_memo.insert(*id, found.clone());
        Ok(found)
    }

    /// The problems among a content's chunks and chunk lists (each problem once).
    fn check_content(&mut self, content: &Content) -> Result<BTreeSet<usize>> {
        let mut found = BTreeSet::new();
        let mut stack = vec![(content.depth, content.entries.clone())];
        while let Some((depth, entries)) = stack.pop() {
            for e in entries {
                let id = e.0;
                if let Some(&p) = self.broken.get(&id) {
                    found.insert(p);
                    continue;
                }
                if self.repo.locate(&id).is_err() {
                    let p = self.problem("blob", format!("blob {id}"), "not in the index".into());
                    self.broken.insert(id, p);
                    found.insert(p);
                    continue;
                }
                if depth > 0 && self.checked_lists.insert(id) {
                    match self.repo.load_blob(&id).and_then(|b| decode_list(&b, &id)) {
                        Ok(list) => stack.push((depth - 1, list)),
                        Err(err) => {
                            let p = self.problem(
                                "blob",
                                format!("chunk list {id}"),
                                error_reason(&err),
                            );
                            self.broken.insert(id, p);
                            found.insert(p);
                        }
                    }
                }
            }
        }
        Ok(found)
    }
}

/// The reason part of a store error (the object is named separately).
fn error_reason(e: &StoreError) -> String {
    match e {
        StoreError::Corrupt { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_parse_and_partition() {
        assert_eq!(
            ReadData::parse_subset("2/5"),
            Ok(ReadData::Subset { n: 2, t: 5 })
        );
        assert_eq!(ReadData::parse_subset("5%"), Ok(ReadData::Percent(5.0)));
        for bad in ["0/5", "6/5", "x/5", "5", "0%", "101%", "%"] {
            assert!(ReadData::parse_subset(bad).is_err(), "{bad}");
        }
        // Every pack falls in exactly one of the T subsets.
        for i in 0..500u64 {
            let id = PackId(*blake3::hash(&i.to_le_bytes()).as_bytes());
            let hits = (1..=4)
                .filter(|&n| ReadData::Subset { n, t: 4 }.selects(&id))
                .count();
            assert_eq!(hits, 1);
        }
        let ids: Vec<PackId> = (0..2000u64)
            .map(|i| PackId(*blake3::hash(&i.to_le_bytes()).as_bytes()))
            .collect();
        let picked = ids
            .iter()
            .filter(|id| ReadData::Percent(10.0).selects(id))
            .count();
        assert!((150..250).contains(&picked), "{picked}");
    }
}
