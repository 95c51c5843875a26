//! One module per command, and what they share: opening the repository and describing
//! snapshots.

pub mod backup;
pub mod dump;
pub mod init;
pub mod ls;
pub mod repair;
pub mod restore;
pub mod snapshots;

use std::path::PathBuf;

use anyhow::{Context, Result};
use cairn_store::{Repository, Snapshot, SnapshotId};
use serde_json::json;

use crate::Global;

/// No repository was named (exit code 10).
#[derive(Debug)]
pub struct NoRepository;

impl std::fmt::Display for NoRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no repository given: use --repo or set CAIRN_REPO")
    }
}

impl std::error::Error for NoRepository {}

pub fn repo_path(global: &Global) -> Result<PathBuf> {
    global
        .repo
        .clone()
        .ok_or_else(|| anyhow::Error::new(NoRepository))
}

pub fn open(global: &Global) -> Result<Repository> {
    let path = repo_path(global)?;
    Repository::open(&path, global.cache_dir.as_deref())
        .with_context(|| format!("opening repository {}", path.display()))
}

/// Prints stale-lock notices to standard error.
pub fn report_notices(notices: &[String]) {
    for n in notices {
        eprintln!("note: {n}");
    }
}

/// A snapshot as `snapshots --json` shows it.
pub fn snapshot_json(id: &SnapshotId, snap: &Snapshot) -> serde_json::Value {
    json!({
        "id": id.to_hex(),
        "short_id": id.short(),
        "time": snap.time.to_rfc3339(),
        "host": snap.host,
        "username": snap.username,
        "tags": snap.tags,
        "paths": snap.paths,
        "tree": snap.tree.to_hex(),
        "parent": snap.parent.map(|p| p.to_hex()),
        "partial": snap.partial,
        "summary": snap.summary,
    })
}
