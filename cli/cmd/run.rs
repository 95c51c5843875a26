//! `cairn run PLAN.toml`: the nightly job. Every source of the plan goes into one snapshot;
//! then retention (forget, and prune when something was removed), then a check.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cairn_store::check::check;
use cairn_store::{prune, retention, Repository};
use serde_json::json;

use super::backup::{self, Job};
use crate::plan::{self, Resolved};
use crate::{exit, output, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The plan file (TOML; see the README).
    #[arg(value_name = "PLAN.toml")]
    pub plan: PathBuf,
    /// Snapshot time, RFC 3339 (default: now).
    #[arg(long, value_name = "RFC3339")]
    pub time: Option<String>,
}

/// The command line, with what the plan says about the repository, its password and cache.
fn global_for(global: &Global, plan: &Resolved) -> Global {
    let mut g = global.clone();
    if let Some(repo) = &plan.repository {
        if g.repo.as_ref().is_some_and(|r| r != repo) && !g.quiet {
            eprintln!(
                "note: using the plan's repository {}, not {}",
                repo.display(),
                g.repo
                    .as_ref()
                    .map(|r| r.display().to_string())
                    .unwrap_or_default()
            );
        }
        g.repo = Some(repo.clone());
    }
    if plan.password_file.is_some() {
        g.password_file = plan.password_file.clone();
    }
    if plan.cache_dir.is_some() {
        g.cache_dir = plan.cache_dir.clone();
    }
    g
}

pub fn run(global: &Global, args: &Args) -> Result<u8> {
    let plan = plan::load(&args.plan)?;
    let time = match &args.time {
        Some(t) => backup::parse_time(t)?,
        None => chrono::Local::now().fixed_offset(),
    };
    let global = &global_for(global, &plan);
    let host = plan
        .host
        .clone()
        .unwrap_or_else(cairn_store::lock::hostname);
    let job = Job {
        sources: &plan.sources,
        excludes: &plan.excludes,
        tags: &plan.tags,
        host: host.clone(),
        time,
        skip_meeting_active: plan.lync,
        tolerate_failed_commands: true,
        lync_databases: plan.lync.then_some(plan.not_deployed.as_slice()),
    };
    // 1. The backup, under a shared lock.
    let (repo, lock) = job.open(global)?;
    let done = backup::perform(global, &repo, &job)?;
    if !global.quiet && !global.json {
        done.print()?;
    }
    let partial = done.snapshot.partial;
    let saved = done.id.short();

    // 2. Retention: forget under the shared lock, prune under an exclusive one.
    let retention = match &plan.retention {
        None => serde_json::Value::Null,
        Some((_, _, r)) if partial && !r.after_partial => {
            if !global.quiet && !global.json {
                output::line("retention: skipped after a partial backup (set after_partial to apply it anyway)")?;
            }
            json!({"skipped": "the backup was partial"})
        }
        Some((policy, group_by, r)) => {
            // The plan's snapshots: its host's, carrying all its tags.
            let ours: Vec<_> = repo
                .snapshots()?
                .into_iter()
                .filter(|(_, s)| s.host == host && plan.tags.iter().all(|t| s.tags.contains(t)))
                .collect();
            let forget = retention::plan(&ours, policy, *group_by, true);
            for id in &forget.remove {
                repo.remove_snapshot(id).with_context(|| {
                    format!(
                        "snapshot {saved} is saved, but removing snapshot {} failed",
                        id.short()
                    )
                })?;
            }
            drop(lock);
            let pruned =
                if r.prune && !forget.remove.is_empty() {
                    Some(prune_now(global, &repo, r.max_unused).with_context(|| {
                        format!("snapshot {saved} is saved, but pruning failed")
                    })?)
                } else {
                    None
                };
            if !global.quiet && !global.json {
                output::line(&format!(
                    "retention: kept {} snapshots of host {host}, removed {}",
                    forget.keep.len(),
                    forget.remove.len()
                ))?;
                if let Some((plan, stats)) = &pruned {
                    output::line(&format!(
                        "prune: deleted {} packs, repacked {}; freed {}",
                        stats.packs_deleted,
                        stats.packs_repacked,
                        output::bytes(plan.bytes_freed)
                    ))?;
                }
            }
            json!({
                "keep": forget.keep.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
                "remove": forget.remove.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
                "prune": pruned.map(|(plan, stats)| json!({"plan": plan, "stats": stats})),
            })
        }
    };

    // 3. The check, under a shared lock.
    let mut damaged = false;
    let checked = match plan.read_data {
        None => serde_json::Value::Null,
        Some(read_data) => {
            let (_lock, notices) = repo
                .lock_waiting(false, global.lock_wait())
                .context("locking the repository for the check")?;
            super::report_notices(&notices);
            let report = check(&repo, read_data)
                .with_context(|| format!("snapshot {saved} is saved, but the check failed"))?;
            damaged = !report.ok();
            for p in &report.problems {
                eprintln!("error: {}: {}", p.object, p.message);
            }
            if !global.quiet && !global.json {
                output::line(&format!(
                    "check: {} snapshots, {} packs; read {} packs ({}): {}",
                    report.snapshots,
                    report.packs,
                    report.packs_read,
                    output::bytes(report.bytes_read),
                    if damaged {
                        "THE REPOSITORY IS DAMAGED"
                    } else {
                        "no errors"
                    }
                ))?;
            }
            json!({
                "ok": report.ok(),
                "errors": report.problems,
                "packs_read": report.packs_read,
                "bytes_read": report.bytes_read,
            })
        }
    };

    let code = if damaged {
        exit::DAMAGED
    } else if partial {
        exit::PARTIAL
    } else {
        exit::OK
    };
    if global.json {
        let mut summary = done.json();
        summary["retention"] = retention;
        summary["check"] = checked;
        summary["exit_code"] = json!(code);
        output::json(&summary)?;
    }
    Ok(code)
}

/// Prunes under an exclusive lock (waiting for running backups), after re-reading what other
/// processes wrote meanwhile.
fn prune_now(
    global: &Global,
    repo: &Repository,
    max_unused: f64,
) -> Result<(prune::PrunePlan, prune::PruneStats)> {
    let (_lock, notices) = repo
        .lock_waiting(true, global.lock_wait())
        .context("locking the repository for prune")?;
    super::report_notices(&notices);
    repo.sync_catalog()?;
    let plan = prune::plan(repo, max_unused)?;
    let stats = prune::execute(repo, &plan)?;
    Ok((plan, stats))
}
