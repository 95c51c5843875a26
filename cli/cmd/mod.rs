//! One module per command, and what they share: opening the repository and describing
//! snapshots.

pub mod backup;
pub mod check;
pub mod diff;
pub mod dump;
pub mod forget;
pub mod init;
pub mod key;
pub mod ls;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod run;
pub mod snapshots;
pub mod stats;

use std::path::PathBuf;

use std::io::IsTerminal;

use anyhow::{Context, Result};
use cairn_store::{KdfParams, OpenOptions, Repository, Snapshot, SnapshotId, StoreError};
use serde_json::json;
use zeroize::Zeroizing;

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
    open_with(global, true)
}

/// Opens the repository; `sync: false` skips reading the index (for `repair index`).
pub fn open_with(global: &Global, sync: bool) -> Result<Repository> {
    let path = repo_path(global)?;
    let password = || password(global);
    let options = OpenOptions {
        cache_dir: global.cache_dir.as_deref(),
        password: &password,
        sync,
    };
    Repository::open(&path, &options)
        .with_context(|| format!("opening repository {}", path.display()))
}

/// Reads the first line of a password file.
fn password_from_file(path: &std::path::Path) -> Result<Zeroizing<String>, StoreError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        StoreError::NoPassword(format!("reading password file {}: {e}", path.display()))
    })?);
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(StoreError::NoPassword(format!(
            "password file {} is empty",
            path.display()
        )));
    }
    Ok(Zeroizing::new(line.to_string()))
}

/// The repository password: `--password-file` (or `CAIRN_PASSWORD_FILE`), then
/// `CAIRN_PASSWORD`, then a prompt on the terminal (not echoed).
pub fn password(global: &Global) -> Result<Zeroizing<String>, StoreError> {
    if let Some(path) = &global.password_file {
        return password_from_file(path);
    }
    if let Ok(p) = std::env::var("CAIRN_PASSWORD") {
        return Ok(Zeroizing::new(p));
    }
    prompt("password for the repository: ", false)
}

/// A new password (for `init`, `key add`, `key passwd`): `--new-password-file`, then
/// `CAIRN_NEW_PASSWORD`, then a prompt asked twice. For `init` the repository password
/// sources come first.
pub fn new_password(
    global: &Global,
    file: Option<&std::path::Path>,
    for_init: bool,
) -> Result<Zeroizing<String>, StoreError> {
    if let Some(path) = file {
        return password_from_file(path);
    }
    if let Ok(p) = std::env::var("CAIRN_NEW_PASSWORD") {
        return Ok(Zeroizing::new(p));
    }
    if for_init {
        if let Some(path) = &global.password_file {
            return password_from_file(path);
        }
        if let Ok(p) = std::env::var("CAIRN_PASSWORD") {
            return Ok(Zeroizing::new(p));
        }
    }
    prompt("new password: ", true)
}

fn prompt(text: &str, twice: bool) -> Result<Zeroizing<String>, StoreError> {
    if !std::io::stderr().is_terminal() {
        return Err(StoreError::NoPassword(
            "set CAIRN_PASSWORD or CAIRN_PASSWORD_FILE, or use --password-file".into(),
        ));
    }
    let read = |t: &str| {
        rpassword::prompt_password(t)
            .map(Zeroizing::new)
            .map_err(|e| StoreError::NoPassword(format!("reading the password: {e}")))
    };
    let first = read(text)?;
    if first.is_empty() {
        return Err(StoreError::NoPassword("the password is empty".into()));
    }
    if twice && *read("repeat the new password: ")? != *first {
        return Err(StoreError::NoPassword("the passwords differ".into()));
    }
    Ok(first)
}

/// Argon2id cost of a new key.
#[derive(clap::Args, Debug, Clone)]
pub struct KdfArgs {
    /// Argon2id memory in MiB for the new key (default 64: about 0.2 s per open on two cores).
    #[arg(long, value_name = "MIB")]
    pub kdf_memory_mib: Option<u32>,
    /// Argon2id passes for the new key (default 10).
    #[arg(long, value_name = "N")]
    pub kdf_iterations: Option<u32>,
}

impl KdfArgs {
    pub fn params(&self) -> KdfParams {
        let d = KdfParams::default();
        KdfParams {
            memory_kib: self
                .kdf_memory_mib
                .map_or(d.memory_kib, |m| m.saturating_mul(1024)),
            iterations: self.kdf_iterations.unwrap_or(d.iterations),
            parallelism: d.parallelism,
        }
    }
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
        "mssql": snap.mssql,
    })
}

/// One line about a SQL Server backup: `rtcxds full 2023-11-14 02:00:00, LSN 34:100:1 to 34:200:1`.
pub fn mssql_line(meta: &serde_json::Value) -> String {
    let field = |k: &str| meta.get(k).and_then(|v| v.as_str()).unwrap_or("?");
    if meta.get("compressed").and_then(|v| v.as_bool()) == Some(true)
        && meta.get("database").is_none()
    {
        return "SQL Server backup, compressed (not parsed)".into();
    }
    let kind = match field("backup_type") {
        "D" => "full",
        "I" => "differential",
        "L" => "log",
        other => other,
    };
    format!(
        "{} {kind} {}, LSN {} to {}",
        field("database"),
        meta.get("backup_finish")
            .or_else(|| meta.get("backup_start"))
            .and_then(|v| v.as_str())
            .unwrap_or("?"),
        field("first_lsn"),
        field("last_lsn")
    )
}
