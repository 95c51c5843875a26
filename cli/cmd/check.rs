//! `cairn check`

use anyhow::{Context, Result};
use cairn_store::check::{check, ReadData};
use serde_json::json;

use crate::{exit, output, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Read, authenticate and re-hash every blob of every pack.
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Read only a deterministic subset of the packs: `N/T` (run N = 1..T to cover all) or
    /// `P%` (always the same packs for the same P).
    #[arg(long, value_name = "N/T|P%")]
    pub read_data_subset: Option<String>,
}

pub fn run(global: &Global, args: &Args) -> Result<u8> {
    let read_data = match (&args.read_data_subset, args.read_data) {
        (Some(s), _) => ReadData::parse_subset(s).map_err(anyhow::Error::msg)?,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    let repo = super::open(global)?;
    // Shared: backups may run meanwhile (their packs are not indexed yet and are not checked).
    let (_lock, notices) = repo
        .lock_waiting(false, global.lock_wait())
        .context("locking the repository")?;
    super::report_notices(&notices);
    let report = check(&repo, read_data)?;
    if global.json {
        output::json(&json!({
            "ok": report.ok(),
            "errors": report.problems,
            "snapshots": report.snapshots,
            "packs": report.packs,
            "packs_read": report.packs_read,
            "blobs_read": report.blobs_read,
            "bytes_read": report.bytes_read,
            "unindexed_packs": report.unindexed_packs,
        }))?;
    } else {
        for p in &report.problems {
            output::line(&format!("error: {}: {}", p.object, p.message))?;
            for a in &p.affected {
                output::line(&format!("    needed by {a}"))?;
            }
        }
        if !global.quiet {
            output::line(&format!(
                "checked {} snapshots and {} packs; read {} packs ({} blobs, {}); {} unindexed packs",
                report.snapshots,
                report.packs,
                report.packs_read,
                report.blobs_read,
                output::bytes(report.bytes_read),
                report.unindexed_packs
            ))?;
            output::line(if report.ok() {
                "no errors were found"
            } else {
                "the repository is damaged"
            })?;
        }
    }
    Ok(if report.ok() { exit::OK } else { exit::DAMAGED })
}
