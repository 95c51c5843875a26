//! The SQLite catalog: a local, derived index of the repository (blobs → pack locations,
//! packs, index segments, snapshots). All SQL of cairn lives in this module.
//!
//! The catalog is a cache: it lives outside the repository, is filled from index segments and
//! snapshot manifests, and can be deleted at any time.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Result, StoreError};
use crate::id::{BlobId, IndexId, PackId, SnapshotId};
use crate::index::IndexedPack;
use crate::pack::BlobKind;

/// Bumped whenever the schema changes; an older catalog is dropped and rebuilt.
const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE index_files (id INTEGER PRIMARY KEY, name BLOB NOT NULL UNIQUE);
CREATE TABLE packs (id INTEGER PRIMARY KEY, pack_id BLOB NOT NULL UNIQUE, size INTEGER NOT NULL);
CREATE TABLE index_packs (
    index_file INTEGER NOT NULL, pack INTEGER NOT NULL,
    PRIMARY KEY (index_file, pack)) WITHOUT ROWID;
CREATE INDEX index_packs_by_pack ON index_packs(pack);
CREATE TABLE blobs (
    blob_id BLOB NOT NULL, pack INTEGER NOT NULL, kind INTEGER NOT NULL,
    offset INTEGER NOT NULL, length INTEGER NOT NULL, raw_len INTEGER NOT NULL,
    start INTEGER NOT NULL, stored INTEGER NOT NULL,
    PRIMARY KEY (blob_id, pack)) WITHOUT ROWID;
CREATE INDEX blobs_by_pack ON blobs(pack);
CREATE TABLE snapshots (snapshot_id BLOB PRIMARY KEY, sealed BLOB NOT NULL);
";

/// How much of the catalog SQLite reads through a memory map rather than `pread`. A backup
/// looks up every chunk it cuts, in no order, so without the map nearly every look-up read a
/// leaf page into SQLite's 2 MB page cache with a system call (160,000 of them on a night of
/// 1.6 GB; 0.3 s of system CPU). Pages of the map are the kernel's page cache: they count in
/// the resident size only while in use, and at most this much. The catalog lives on the
/// local cache disk, where the I/O errors a map turns into signals do not happen in practice;
/// past this size the rest of the file is read as before.
const MMAP_SIZE: i64 = 64 << 20;

/// From this many IDs on, [`Catalog::locate_many`] scans the catalog when the IDs are an
/// eighth of it or more.
const SCAN_FROM: usize = 10_000;

/// The bit of a kind code in [`PackUsage::kinds`] (codes beyond the known kinds share the top
/// bit: such a pack is never taken for another kind's).
fn kind_bit(code: i64) -> u8 {
    1u8 << code.clamp(0, 7)
}

/// How much of a pack the snapshots still use (after a mark phase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackUsage {
    pub pack: PackId,
    pub size: u64,
    pub live_bytes: u64,
    pub live_blobs: u64,
    pub blobs: u64,
    /// The kinds of blob it holds, a bit per [`BlobKind::code`] (writers keep one kind a
    /// pack; packs written before that may hold both).
    pub kinds: u8,
}

/// Where one copy of a blob lives: its frame (`offset`, `length`), its place in the frame's
/// plaintext (`start`, `raw_len`), and its share of the frame's stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: PackId,
    pub kind: BlobKind,
    pub offset: u64,
    pub length: u64,
    pub raw_len: u64,
    pub start: u64,
    pub stored: u64,
}

impl BlobLocation {
    /// The pack entry of blob `id` stored here.
    pub fn entry(&self, id: BlobId) -> crate::pack::PackEntry {
        crate::pack::PackEntry {
            kind: self.kind,
            id,
            offset: self.offset,
            length: self.length,
            raw_len: self.raw_len,
            start: self.start,
        }
    }
}

/// The columns of a location, after the pack: as [`location_from`] reads them.
const LOCATION_COLUMNS: &str =
    "blobs.kind, blobs.offset, blobs.length, blobs.raw_len, blobs.start, blobs.stored";

/// Reads the [`LOCATION_COLUMNS`] from column `first` of `row` on.
fn location_from(
    row: &rusqlite::Row<'_>,
    first: usize,
    pack: PackId,
) -> rusqlite::Result<Option<BlobLocation>> {
    let u = |i: usize| row.get::<_, i64>(first + i).map(|v| v as u64);
    let Some(kind) = BlobKind::from_code(row.get::<_, u8>(first)?) else {
        return Ok(None);
    };
    Ok(Some(BlobLocation {
        pack,
        kind,
        offset: u(1)?,
        length: u(2)?,
        raw_len: u(3)?,
        start: u(4)?,
        stored: u(5)?,
    }))
}

pub struct Catalog {
    conn: Connection,
    path: PathBuf,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `path`. A catalog of another schema version,
    /// or one SQLite cannot read, is deleted and recreated empty: it is derived data.
    pub fn open(path: &Path) -> Result<Self> {
        match Self::open_inner(path) {
            Ok(c) => Ok(c),
            Err(_) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.as_os_str().to_owned();
                    p.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(p));
                }
                Self::open_inner(path)
            }
        }
    }

    fn open_inner(path: &Path) -> Result<Self> {
        let err = |error| StoreError::Catalog {
            path: path.to_owned(),
            error,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(120))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        let mut catalog = Self {
            conn,
            path: path.to_owned(),
        };
        catalog.set_mmap_size(MMAP_SIZE)?;
        catalog.ensure_schema()?;
        Ok(catalog)
    }

    fn err(&self, error: rusqlite::Error) -> StoreError {
        StoreError::Catalog {
            path: self.path.clone(),
            error,
        }
    }

    fn ensure_schema(&mut self) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self_err(&self.path, e))?;
        let has_meta: bool = tx
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| self_err(&self.path, e))?
            > 0;
        if has_meta {
            let version: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| self_err(&self.path, e))?;
            if version.as_deref() == Some(&SCHEMA_VERSION.to_string()) {
                return tx.commit().map_err(|e| self_err(&self.path, e));
            }
            return Err(self_err(
                &self.path,
                rusqlite::Error::InvalidQuery, // a stale schema: `open` recreates the file
            ));
        }
        tx.execute_batch(SCHEMA)
            .map_err(|e| self_err(&self.path, e))?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(|e| self_err(&self.path, e))?;
        tx.commit().map_err(|e| self_err(&self.path, e))
    }

    pub fn index_files(&self) -> Result<HashSet<IndexId>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM index_files")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, [u8; 32]>(0))
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map(IndexId).map_err(|e| self.err(e)))
            .collect()
    }

    /// Records an index segment and the packs and blobs it lists, in one transaction.
    pub fn add_segment(&mut self, id: &IndexId, packs: &[IndexedPack]) -> Result<()> {
        let path = self.path.clone();
        let e = |source| self_err(&path, source);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(e)?;
        tx.execute(
            "INSERT OR IGNORE INTO index_files (name) VALUES (?1)",
            [&id.0],
        )
        .map_err(e)?;
        let index_row: i64 = tx
            .query_row("SELECT id FROM index_files WHERE name = ?1", [&id.0], |r| {
                r.get(0)
            })
            .map_err(e)?;
        {
            let mut add_pack = tx
                .prepare_cached("INSERT OR IGNORE INTO packs (pack_id, size) VALUES (?1, ?2)")
                .map_err(e)?;
            let mut pack_row = tx
                .prepare_cached("SELECT id FROM packs WHERE pack_id = ?1")
                .map_err(e)?;
            let mut link = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO index_packs (index_file, pack) VALUES (?1, ?2)",
                )
                .map_err(e)?;
            let mut add_blob = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO blobs
                         (blob_id, pack, kind, offset, length, raw_len, start, stored)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(e)?;
            let mut blobs = Vec::with_capacity(packs.iter().map(|p| p.entries.len()).sum());
            for p in packs {
                add_pack
                    .execute(params![&p.id.0, to_i64(p.size)])
                    .map_err(e)?;
                let row: i64 = pack_row.query_row([&p.id.0], |r| r.get(0)).map_err(e)?;
                link.execute(params![index_row, row]).map_err(e)?;
                let shares = crate::pack::stored_shares(&p.entries);
                blobs.extend(
                    p.entries
                        .iter()
                        .zip(shares)
                        .map(|(b, share)| (b, share, row)),
                );
            }
            // In key order, each insert lands next to the one before: the B-tree's pages are
            // filled one after another instead of every insert touching a random one.
            blobs.sort_unstable_by_key(|(b, _, row)| (b.id, *row));
            for (b, share, row) in blobs {
                add_blob
                    .execute(params![
                        &b.id.0,
                        row,
                        b.kind.code(),
                        to_i64(b.offset),
                        to_i64(b.length),
                        to_i64(b.raw_len),
                        to_i64(b.start),
                        to_i64(share)
                    ])
                    .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// Forgets an index segment; packs no other segment lists are forgotten with their blobs.
    pub fn remove_segment(&mut self, id: &IndexId) -> Result<()> {
        let path = self.path.clone();
        let e = |source| self_err(&path, source);
        let tx = self.conn.transaction().map_err(e)?;
        tx.execute(
            "DELETE FROM index_packs WHERE index_file = (SELECT id FROM index_files WHERE name = ?1)",
            [&id.0],
        )
        .map_err(e)?;
        tx.execute("DELETE FROM index_files WHERE name = ?1", [&id.0])
            .map_err(e)?;
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS orphan_packs (id INTEGER PRIMARY KEY);
             DELETE FROM orphan_packs;
             INSERT INTO orphan_packs SELECT id FROM packs
                 WHERE NOT EXISTS (SELECT 1 FROM index_packs WHERE index_packs.pack = packs.id);
             DELETE FROM blobs WHERE pack IN (SELECT id FROM orphan_packs);
             DELETE FROM packs WHERE id IN (SELECT id FROM orphan_packs);",
        )
        .map_err(e)?;
        tx.commit().map_err(e)
    }

    /// Runs `f` in one transaction, committed when it succeeds and rolled back otherwise: one
    /// lock of the database for a batch of statements instead of one per statement.
    fn in_transaction<T>(&mut self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN").map_err(|e| self.err(e))?;
        match f(self) {
            Ok(value) => {
                self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))?;
                Ok(value)
            }
            Err(error) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(error)
            }
        }
    }

    /// For each ID, whether the catalog knows a copy of it. One read transaction for the batch.
    pub fn contains_many(&mut self, ids: &[BlobId]) -> Result<Vec<bool>> {
        self.in_transaction(|c| {
            let mut stmt = c
                .conn
                .prepare_cached("SELECT 1 FROM blobs WHERE blob_id = ?1 LIMIT 1")
                .map_err(|e| c.err(e))?;
            ids.iter()
                .map(|id| stmt.exists([&id.0]).map_err(|e| c.err(e)))
                .collect()
        })
    }

    /// [`Catalog::locate`] for many IDs in one read transaction.
    pub fn locate_many(&mut self, ids: &[BlobId]) -> Result<Vec<Option<BlobLocation>>> {
        if ids.len() >= SCAN_FROM {
            let blobs: i64 = self
                .conn
                .query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            if ids.len() as i64 * 8 >= blobs {
                // A scan reads the catalog once, in order: through the map every page of it
                // would stay resident (22 MB of a restore's peak at 1.6 GB of data), through
                // the page cache only SQLite's 2 MB are.
                self.set_mmap_size(0)?;
                let found = self.in_transaction(|c| c.locate_by_scan(ids));
                self.set_mmap_size(MMAP_SIZE)?;
                return found;
            }
        }
        self.in_transaction(|c| ids.iter().map(|id| c.locate(id)).collect())
    }

    fn set_mmap_size(&self, bytes: i64) -> Result<()> {
        self.conn
            .pragma_update(None, "mmap_size", bytes)
            .map_err(|e| self.err(e))
    }

    /// [`Catalog::locate_many`] for a large share of the catalog (a restore): one scan of the
    /// blobs in ID order, merged with the IDs sorted, instead of a B-tree descent for each.
    fn locate_by_scan(&self, ids: &[BlobId]) -> Result<Vec<Option<BlobLocation>>> {
        let mut packs = HashMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT id, pack_id FROM packs")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let id: i64 = row.get(0).map_err(|e| self.err(e))?;
            let pack: [u8; 32] = row.get(1).map_err(|e| self.err(e))?;
            packs.insert(id, PackId(pack));
        }
        let mut order: Vec<usize> = (0..ids.len()).collect();
        // A restore asks in ID order already: sorting again would cost as much as the scan.
        if !ids.is_sorted_by(|a, b| a.0 <= b.0) {
            order.sort_unstable_by(|&a, &b| ids[a].0.cmp(&ids[b].0));
        }
        let mut out = vec![None; ids.len()];
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT blobs.blob_id, blobs.pack, {LOCATION_COLUMNS} FROM blobs ORDER BY blob_id"
            ))
            .map_err(|e| self.err(e))?;
        let corrupt =
            |why: &str| StoreError::corrupt(format!("catalog {}", self.path.display()), why);
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut at = 0;
        while at < order.len() {
            let Some(row) = rows.next().map_err(|e| self.err(e))? else {
                break;
            };
            let id = row
                .get_ref(0)
                .and_then(|v| Ok(v.as_blob()?))
                .map_err(|e| self.err(e))?;
            while at < order.len() && ids[order[at]].0.as_slice() < id {
                at += 1;
            }
            let mut k = at;
            while k < order.len() && ids[order[k]].0.as_slice() == id {
                if out[order[k]].is_none() {
                    let pack: i64 = row.get(1).map_err(|e| self.err(e))?;
                    let pack = *packs
                        .get(&pack)
                        .ok_or_else(|| corrupt("blob of an unknown pack"))?;
                    let loc = location_from(row, 2, pack).map_err(|e| self.err(e))?;
                    out[order[k]] = Some(loc.ok_or_else(|| corrupt("bad blob kind"))?);
                }
                k += 1;
            }
        }
        Ok(out)
    }

    pub fn locate(&self, id: &BlobId) -> Result<Option<BlobLocation>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT packs.pack_id, {LOCATION_COLUMNS}
                 FROM blobs JOIN packs ON packs.id = blobs.pack
                 WHERE blobs.blob_id = ?1 LIMIT 1"
            ))
            .map_err(|e| self.err(e))?;
        let found = stmt
            .query_row([&id.0], |r| location_from(r, 1, PackId(r.get(0)?)))
            .optional()
            .map_err(|e| self.err(e))?;
        match found {
            None => Ok(None),
            Some(None) => Err(StoreError::corrupt(
                format!("catalog {}", self.path.display()),
                "bad blob kind",
            )),
            Some(loc) => Ok(loc),
        }
    }

    pub fn snapshot_ids(&self) -> Result<HashSet<SnapshotId>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT snapshot_id FROM snapshots")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, [u8; 32]>(0))
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map(SnapshotId).map_err(|e| self.err(e)))
            .collect()
    }

    /// Caches a snapshot manifest as sealed in the repository: the catalog holds no plaintext
    /// names, hosts or tags.
    pub fn add_snapshot(&self, id: &SnapshotId, sealed: &[u8]) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO snapshots (snapshot_id, sealed) VALUES (?1, ?2)",
                params![&id.0, sealed],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn remove_snapshot(&self, id: &SnapshotId) -> Result<()> {
        self.conn
            .execute("DELETE FROM snapshots WHERE snapshot_id = ?1", [&id.0])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every snapshot's ID and sealed manifest, in no particular order.
    pub fn snapshot_manifests(&self) -> Result<Vec<(SnapshotId, Vec<u8>)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT snapshot_id, sealed FROM snapshots")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((SnapshotId(r.get(0)?), r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map_err(|e| self.err(e))).collect()
    }

    /// Every indexed pack and its size, in ID order.
    pub fn packs(&self) -> Result<Vec<(PackId, u64)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT pack_id, size FROM packs ORDER BY pack_id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((PackId(r.get(0)?), r.get::<_, i64>(1)? as u64)))
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map_err(|e| self.err(e))).collect()
    }

    /// The blobs the index says a pack holds, in offset order (a frame's in `start` order).
    pub fn pack_entries(&self, pack: &PackId) -> Result<Vec<crate::pack::PackEntry>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT blobs.blob_id, {LOCATION_COLUMNS}
                 FROM blobs JOIN packs ON packs.id = blobs.pack
                 WHERE packs.pack_id = ?1 ORDER BY blobs.offset, blobs.start"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([&pack.0], |r| {
                let id = BlobId(r.get(0)?);
                Ok(location_from(r, 1, *pack)?.map(|l| l.entry(id)))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.map_err(|e| self.err(e))?.ok_or_else(|| {
                StoreError::corrupt(format!("catalog {}", self.path.display()), "bad blob kind")
            })?);
        }
        Ok(out)
    }

    /// Starts a mark phase: an empty temporary set of live blobs (one chosen copy each).
    pub fn live_reset(&mut self) -> Result<()> {
        self.conn
            .execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS live (blob_id BLOB PRIMARY KEY, pack INTEGER NOT NULL) WITHOUT ROWID;
                 DELETE FROM live;",
            )
            .map_err(|e| self.err(e))
    }

    /// Marks blobs live; for each, whether it was newly marked. A blob the index does not know
    /// is an error (prune must not guess). The copy in the lowest-numbered pack is the one kept.
    pub fn live_insert(&mut self, ids: &[BlobId]) -> Result<Vec<bool>> {
        self.in_transaction(|c| {
            let mut insert = c
                .conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO live (blob_id, pack)
                     SELECT blob_id, min(pack) FROM blobs WHERE blob_id = ?1 GROUP BY blob_id",
                )
                .map_err(|e| c.err(e))?;
            let mut known = c
                .conn
                .prepare_cached("SELECT 1 FROM live WHERE blob_id = ?1")
                .map_err(|e| c.err(e))?;
            ids.iter()
                .map(|id| {
                    let added = insert.execute([&id.0]).map_err(|e| c.err(e))? > 0;
                    if !added && !known.exists([&id.0]).map_err(|e| c.err(e))? {
                        return Err(StoreError::BlobNotFound(id.to_string()));
                    }
                    Ok(added)
                })
                .collect()
        })
    }

    /// How much of each indexed pack is live.
    pub fn pack_usage(&self) -> Result<Vec<PackUsage>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT packs.pack_id, packs.size,
                        coalesce(sum(CASE WHEN live.pack = packs.id THEN blobs.stored END), 0),
                        count(CASE WHEN live.pack = packs.id THEN 1 END),
                        count(blobs.blob_id),
                        coalesce(min(blobs.kind), 0), coalesce(max(blobs.kind), 0)
                 FROM packs LEFT JOIN blobs ON blobs.pack = packs.id
                 LEFT JOIN live ON live.blob_id = blobs.blob_id
                 GROUP BY packs.id ORDER BY packs.pack_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PackUsage {
                    pack: PackId(r.get(0)?),
                    size: r.get::<_, i64>(1)? as u64,
                    live_bytes: r.get::<_, i64>(2)? as u64,
                    live_blobs: r.get::<_, i64>(3)? as u64,
                    blobs: r.get::<_, i64>(4)? as u64,
                    // Two kinds, so the least and the greatest name every kind present.
                    kinds: kind_bit(r.get(5)?) | kind_bit(r.get(6)?),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map_err(|e| self.err(e))).collect()
    }

    /// The live blobs whose chosen copy is in `pack`.
    pub fn live_entries(&self, pack: &PackId) -> Result<Vec<crate::pack::PackEntry>> {
        let all = self.pack_entries(pack)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT 1 FROM live JOIN packs ON packs.id = live.pack
                 WHERE live.blob_id = ?1 AND packs.pack_id = ?2",
            )
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in all {
            if stmt
                .exists(params![&entry.id.0, &pack.0])
                .map_err(|e| self.err(e))?
            {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// (distinct blobs, their plaintext bytes, packs, pack bytes).
    pub fn totals(&self) -> Result<(u64, u64, u64, u64)> {
        let (blobs, raw): (i64, i64) = self
            .conn
            .query_row(
                "SELECT count(*), coalesce(sum(raw_len), 0)
                 FROM (SELECT max(raw_len) AS raw_len FROM blobs GROUP BY blob_id)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        let (packs, stored): (i64, i64) = self
            .conn
            .query_row(
                "SELECT count(*), coalesce(sum(size), 0) FROM packs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        Ok((blobs as u64, raw as u64, packs as u64, stored as u64))
    }

    /// Number of distinct blobs and packs known.
    pub fn counts(&self) -> Result<(u64, u64)> {
        let blobs: i64 = self
            .conn
            .query_row("SELECT count(DISTINCT blob_id) FROM blobs", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))?;
        let packs: i64 = self
            .conn
            .query_row("SELECT count(*) FROM packs", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok((blobs as u64, packs as u64))
    }
}

fn self_err(path: &Path, error: rusqlite::Error) -> StoreError {
    StoreError::Catalog {
        path: path.to_owned(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::PackEntry;

    fn pack(n: u8, blobs: &[u8]) -> IndexedPack {
        IndexedPack {
            id: PackId([n; 32]),
            size: 100,
            entries: blobs
                .iter()
                .map(|&b| PackEntry {
                    kind: BlobKind::Data,
                    id: BlobId([b; 32]),
                    offset: 8 + u64::from(b),
                    length: 10,
                    raw_len: 20,
                    start: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn frame_members_are_located_with_their_share() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("catalog.sqlite")).unwrap();
        let member = |b: u8, start: u64, raw_len: u64| PackEntry {
            kind: BlobKind::Data,
            id: BlobId([b; 32]),
            offset: 8,
            length: 90,
            raw_len,
            start,
        };
        let packed = IndexedPack {
            id: PackId([7; 32]),
            size: 200,
            entries: vec![member(1, 0, 100), member(2, 100, 200)],
        };
        c.add_segment(&IndexId([1; 32]), &[packed]).unwrap();
        let second = c.locate(&BlobId([2; 32])).unwrap().unwrap();
        assert_eq!(
            (
                second.offset,
                second.length,
                second.start,
                second.raw_len,
                second.stored
            ),
            (8, 90, 100, 200, 60)
        );
        assert_eq!(second.entry(BlobId([2; 32])), member(2, 100, 200));
        assert_eq!(c.locate(&BlobId([1; 32])).unwrap().unwrap().stored, 30);
        let listed = c.pack_entries(&PackId([7; 32])).unwrap();
        assert_eq!(listed, vec![member(1, 0, 100), member(2, 100, 200)]);
        // Prune counts a live blob's share of its frame.
        c.live_reset().unwrap();
        c.live_insert(&[BlobId([2; 32])]).unwrap();
        let usage = c.pack_usage().unwrap();
        assert_eq!(
            (usage[0].live_bytes, usage[0].live_blobs, usage[0].blobs),
            (60, 1, 2)
        );
    }

    #[test]
    fn segments_add_and_remove_with_shared_packs() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("catalog.sqlite")).unwrap();
        let (s1, s2) = (IndexId([1; 32]), IndexId([2; 32]));
        c.add_segment(&s1, &[pack(10, &[1, 2])]).unwrap();
        c.add_segment(&s2, &[pack(10, &[1, 2]), pack(11, &[3])])
            .unwrap();
        let ids = [BlobId([1; 32]), BlobId([3; 32]), BlobId([9; 32])];
        assert_eq!(c.contains_many(&ids).unwrap(), vec![true, true, false]);
        assert_eq!(c.locate(&BlobId([2; 32])).unwrap().unwrap().offset, 10);
        c.remove_segment(&s2).unwrap();
        // Pack 10 is still listed by segment 1; pack 11 is gone with its blob.
        assert_eq!(c.contains_many(&ids).unwrap(), vec![true, false, false]);
        assert_eq!(c.counts().unwrap(), (2, 1));
        assert_eq!(c.index_files().unwrap(), HashSet::from([s1]));
    }

    /// The catalog is read through a memory map; another process's writes (here another
    /// connection's) are seen by a reader that mapped it before, and after they are removed.
    #[test]
    fn a_mapped_catalog_sees_another_connections_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        let mut writer = Catalog::open(&path).unwrap();
        let mut reader = Catalog::open(&path).unwrap();
        let mapped: i64 = reader
            .conn
            .query_row("PRAGMA mmap_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mapped, MMAP_SIZE, "this SQLite build maps files");
        let ids: Vec<BlobId> = (0..=255).map(|b| BlobId([b; 32])).collect();
        assert!(reader.contains_many(&ids).unwrap().iter().all(|&k| !k));
        let all: Vec<u8> = (0..=255).collect();
        let segment = IndexId([1; 32]);
        writer.add_segment(&segment, &[pack(10, &all)]).unwrap();
        assert!(reader.contains_many(&ids).unwrap().iter().all(|&k| k));
        assert_eq!(reader.locate(&ids[200]).unwrap().unwrap().offset, 208);
        writer.remove_segment(&segment).unwrap();
        assert!(reader.contains_many(&ids).unwrap().iter().all(|&k| !k));
    }

    #[test]
    fn a_scan_locates_what_single_look_ups_locate() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("catalog.sqlite")).unwrap();
        // 250 blobs over 5 packs; blob 7 is in two packs.
        let packs: Vec<IndexedPack> = (0..5u8)
            .map(|p| pack(100 + p, &(p * 50..p * 50 + 50).collect::<Vec<u8>>()))
            .chain([pack(200, &[7])])
            .collect();
        c.add_segment(&IndexId([1; 32]), &packs).unwrap();
        // Unknown IDs (250..=255), repeated IDs, and every kind of order.
        let ids: Vec<BlobId> = (0..=255u8)
            .rev()
            .chain([7, 7, 3, 255])
            .map(|b| BlobId([b; 32]))
            .collect();
        let scanned = c.locate_by_scan(&ids).unwrap();
        let single: Vec<_> = ids.iter().map(|id| c.locate(id).unwrap()).collect();
        assert_eq!(scanned.iter().filter(|l| l.is_none()).count(), 7);
        for ((id, a), b) in ids.iter().zip(&scanned).zip(&single) {
            match (a, b) {
                (Some(a), Some(b)) => {
                    assert_eq!(
                        (a.offset, a.length, a.raw_len),
                        (b.offset, b.length, b.raw_len)
                    );
                    // Either copy of a blob stored twice will do.
                    assert!(packs
                        .iter()
                        .any(|p| p.id == a.pack && p.entries.iter().any(|e| e.id == *id)));
                }
                (None, None) => {}
                other => panic!("{id}: {other:?}"),
            }
        }
        // Already in ID order (as a restore asks), repeats included: the same answers.
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        let in_order = c.locate_by_scan(&sorted).unwrap();
        for (id, found) in sorted.iter().zip(&in_order) {
            let single = c.locate(id).unwrap();
            assert_eq!(
                found.as_ref().map(|l| (l.offset, l.length)),
                single.map(|l| (l.offset, l.length)),
                "{id}"
            );
        }
        // Above the threshold, locate_many takes the scan and agrees with it.
        let many: Vec<BlobId> = (0..SCAN_FROM)
            .map(|i| BlobId([(i % 256) as u8; 32]))
            .collect();
        let found = c.locate_many(&many).unwrap();
        assert_eq!(
            found.iter().filter(|l| l.is_some()).count(),
            SCAN_FROM / 256 * 250 + 16
        );
    }

    #[test]
    fn garbage_catalog_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        std::fs::write(&path, b"this is not a database").unwrap();
        let c = Catalog::open(&path).unwrap();
        assert_eq!(c.counts().unwrap(), (0, 0));
    }
}
