//! `cairn stats`

use anyhow::Result;
use cairn_store::stats::{growth, repository_stats};
use serde_json::json;

use crate::{exit, output, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show only this snapshot's growth (ID, prefix or `latest`).
    pub snapshot: Option<String>,
}

pub fn run(global: &Global, args: &Args) -> Result<u8> {
    let repo = super::open(global)?;
    let only = args
        .snapshot
        .as_ref()
        .map(|s| repo.resolve_snapshot(s).map(|(id, _)| id))
        .transpose()?;
    let growth = growth(&repo)?;
    let totals = repository_stats(&repo, &growth)?;
    let shown: Vec<_> = growth
        .iter()
        .filter(|g| only.is_none_or(|id| g.snapshot == id))
        .collect();
    if global.json {
        output::json(&json!({
            "snapshots": totals.snapshots,
            "raw_bytes": totals.raw_bytes,
            "stored_bytes": totals.stored_bytes,
            "chunks": totals.chunks,
            "packs": totals.packs,
            "logical_bytes": totals.logical_bytes,
            "dedup_ratio": totals.dedup_ratio,
            "growth": shown.iter().map(|g| json!({
                "snapshot": g.snapshot.to_hex(),
                "time": g.time,
                "logical_bytes": g.logical_bytes,
                "added_bytes": g.added_bytes,
                "sources": g.sources,
            })).collect::<Vec<_>>(),
        }))?;
        return Ok(exit::OK);
    }
    output::line(&format!(
        "{} snapshots holding {} in {} stored ({} packs, {} chunks, {} before compression): dedup ratio {:.1}",
        totals.snapshots,
        output::bytes(totals.logical_bytes),
        output::bytes(totals.stored_bytes),
        totals.packs,
        totals.chunks,
        output::bytes(totals.raw_bytes),
        totals.dedup_ratio
    ))?;
    for g in shown {
        let pct = if g.logical_bytes > 0 {
            100.0 * g.added_bytes as f64 / g.logical_bytes as f64
        } else {
            0.0
        };
        output::line(&format!(
            "{}  {}  holds {:>10}, added {:>10} ({pct:.2} %)",
            g.snapshot.short(),
            g.time,
            output::bytes(g.logical_bytes),
            output::bytes(g.added_bytes)
        ))?;
        for (source, bytes) in &g.sources {
            output::line(&format!("    {:>10}  {source}", output::bytes(*bytes)))?;
        }
    }
    Ok(exit::OK)
}
