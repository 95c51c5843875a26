//! `cairn restore`

use std::path::PathBuf;

use anyhow::{Context, Result};
use cairn_store::restore::{restore, RestoreOptions};
use serde_json::json;

use crate::progress::Terminal;
use crate::{exit, output, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A snapshot ID, a unique prefix of one, or `latest`.
    pub snapshot: String,
    /// The directory to restore into (created when missing).
    #[arg(long, short = 't')]
    pub target: PathBuf,
    /// Restore only this path of the snapshot and what lies below it (repeatable).
    #[arg(long = "include", value_name = "PATH")]
    pub includes: Vec<String>,
}

pub fn run(global: &Global, args: &Args) -> Result<u8> {
    let repo = super::open(global)?;
    let (id, snap) = repo.resolve_snapshot(&args.snapshot)?;
    for inc in &args.includes {
        if repo.find_node(&snap.tree, inc)?.is_none() {
            anyhow::bail!("path {inc:?} not found in snapshot {}", id.short());
        }
    }
    let progress = Terminal::new(global, "restoring");
    let options = RestoreOptions {
        target: args.target.clone(),
        includes: args.includes.clone(),
    };
    let stats = restore(&repo, &snap.tree, &options, &progress);
    progress.finish();
    let stats = stats.with_context(|| {
        format!(
            "restoring snapshot {} to {}",
            id.short(),
            args.target.display()
        )
    })?;
    if global.json {
        output::json(&json!({
            "snapshot_id": id.to_hex(),
            "target": args.target.display().to_string(),
            "files": stats.files,
            "dirs": stats.dirs,
            "symlinks": stats.symlinks,
            "bytes": stats.bytes,
        }))?;
    } else if !global.quiet {
        output::line(&format!(
            "restored snapshot {}: {} files, {} directories, {} symlinks, {} to {}",
            id.short(),
            stats.files,
            stats.dirs,
            stats.symlinks,
            output::bytes(stats.bytes),
            args.target.display()
        ))?;
    }
    Ok(exit::OK)
}
