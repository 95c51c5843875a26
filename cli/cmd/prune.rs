//! `cairn prune`

use anyhow::{Context, Result};
use cairn_store::prune::{execute, plan};
use cairn_store::Repository;
use serde_json::json;

use crate::{exit, output, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Percentage of the repository that may stay unused: partly used packs are repacked only
    /// beyond it.
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0)]
    pub max_unused: f64,
    /// Print the plan and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

pub fn run(global: &Global, args: &Args) -> Result<u8> {
    let repo = super::open(global)?;
    prune(global, &repo, args.max_unused, args.dry_run)
}

/// Plans and (unless `dry_run`) prunes, holding the exclusive lock.
pub fn prune(global: &Global, repo: &Repository, max_unused: f64, dry_run: bool) -> Result<u8> {
    if !(0.0..=100.0).contains(&max_unused) {
        anyhow::bail!("--max-unused {max_unused} is not a percentage");
    }
    let (_lock, notices) = repo
        .lock_waiting(true, global.lock_wait())
        .context("locking the repository for prune")?;
    super::report_notices(&notices);
    // Another process may have changed the repository while we waited.
    repo.sync_catalog()?;
    let plan = plan(repo, max_unused)?;
    if global.json {
        output::json(&json!({"type": "prune_plan", "plan": plan, "dry_run": dry_run}))?;
    } else if !global.quiet {
        output::line(&format!(
            "repository {}, of which {} live; delete {} packs, repack {} ({} to copy), remove {} unindexed and {} left by interrupted writes; frees {}",
            output::bytes(plan.total_bytes),
            output::bytes(plan.live_bytes),
            plan.delete.len(),
            plan.repack.len(),
            output::bytes(plan.bytes_repacked),
            plan.unindexed.len(),
            plan.leftovers.len(),
            output::bytes(plan.bytes_freed)
        ))?;
    }
    if dry_run {
        return Ok(exit::OK);
    }
    let stats = execute(repo, &plan)?;
    if global.json {
        output::json(&json!({"type": "prune", "stats": stats}))?;
    } else if !global.quiet {
        output::line(&format!(
            "deleted {} packs ({} repacked, {} blobs copied); replaced {} index segments",
            stats.packs_deleted,
            stats.packs_repacked,
            stats.blobs_repacked,
            stats.index_segments_replaced
        ))?;
    }
    Ok(exit::OK)
}
