//! `cairn repair index`

use anyhow::{Context, Result};
use serde_json::json;

use crate::{exit, output, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Rebuild the index segments from the pack trailers.
    Index,
}

pub fn run(global: &Global, args: &Args) -> Result<u8> {
    match args.what {
        What::Index => index(global),
    }
}

fn index(global: &Global) -> Result<u8> {
    // The index may be unreadable: open without reading it.
    let repo = super::open_with(global, false)?;
    let (_lock, notices) = repo
        .lock_waiting(true, global.lock_wait())
        .context("locking the repository")?;
    super::report_notices(&notices);
    let report = repo.repair_index()?;
    for d in &report.damaged_packs {
        eprintln!("damaged: {d}");
    }
    if global.json {
        output::json(&json!({
            "packs_indexed": report.packs_indexed,
            "blobs_indexed": report.blobs_indexed,
            "segments_removed": report.segments_removed,
            "damaged_packs": report.damaged_packs,
        }))?;
    } else if !global.quiet {
        output::line(&format!(
            "indexed {} blobs in {} packs; replaced {} old index segments",
            report.blobs_indexed, report.packs_indexed, report.segments_removed
        ))?;
    }
    Ok(if report.damaged_packs.is_empty() {
        exit::OK
    } else {
        exit::DAMAGED
    })
}
