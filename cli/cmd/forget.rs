//! `cairn forget`

use anyhow::{bail, Context, Result};
use cairn_store::retention::{plan, CalendarDuration, GroupBy, KeepPolicy};
use serde_json::json;

use crate::{exit, output, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Keep the N newest snapshots (of each group).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_hourly: u32,
    /// … of each of the last N days.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_daily: u32,
    /// … of each of the last N ISO weeks.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_weekly: u32,
    /// … of each of the last N months.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_monthly: u32,
    /// … of each of the last N years.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_yearly: u32,
    /// Keep every snapshot within DURATION (e.g. 30d, 1y2m, 12h) of the group's newest.
    #[arg(long, value_name = "DURATION", value_parser = |s: &str| s.parse::<CalendarDuration>())]
    pub keep_within: Option<CalendarDuration>,
    /// Keep snapshots with this tag (repeatable).
    #[arg(long = "keep-tag", value_name = "TAG")]
    pub keep_tags: Vec<String>,
    /// Group snapshots by these before applying the policy: host, paths, tags.
    #[arg(long, default_value = "host,paths", value_parser = |s: &str| s.parse::<GroupBy>())]
    pub group_by: GroupBy,
    /// Do not keep the SQL Server fulls, differentials and logs that kept backups depend on.
    #[arg(long)]
    pub ignore_chains: bool,
    /// Print the plan and remove nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Prune afterwards (see `cairn prune`).
    #[arg(long)]
    pub prune: bool,
    /// With --prune: as `prune --max-unused`.
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0)]
    pub max_unused: f64,
}

pub fn run(global: &Global, args: &Args) -> Result<u8> {
    let policy = KeepPolicy {
        last: args.keep_last,
        hourly: args.keep_hourly,
        daily: args.keep_daily,
        weekly: args.keep_weekly,
        monthly: args.keep_monthly,
        yearly: args.keep_yearly,
        within: args.keep_within,
        tags: args.keep_tags.clone(),
    };
    if policy.is_empty() {
        bail!("no policy given (--keep-last, --keep-daily, …): refusing to remove every snapshot");
    }
    let repo = super::open(global)?;
    // Shared: removing manifests does not disturb running backups.
    let (lock, notices) = repo
        .lock_waiting(false, global.lock_wait())
        .context("locking the repository")?;
    super::report_notices(&notices);
    let snapshots = repo.snapshots()?;
    let plan = plan(&snapshots, &policy, args.group_by, !args.ignore_chains);

    if global.json {
        let reasons: serde_json::Map<String, serde_json::Value> = plan
            .reasons
            .iter()
            .map(|(id, r)| (id.to_hex(), json!(r)))
            .collect();
        output::json(&json!({
            "keep": plan.keep.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
            "remove": plan.remove.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
            "reasons": reasons,
            "dry_run": args.dry_run,
        }))?;
    } else if !global.quiet {
        for (id, s) in &snapshots {
            let (verb, why) = match plan.reasons.get(id) {
                Some(r) => ("keep  ", r.join(", ")),
                None => ("remove", String::new()),
            };
            output::line(&format!(
                "{verb} {}  {}  {:<12} {}  {why}",
                id.short(),
                s.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
                s.host,
                s.paths.join(" ")
            ))?;
        }
    }
    if args.dry_run {
        if !global.quiet && !global.json {
            output::line(&format!(
                "dry run: {} snapshots would be removed",
                plan.remove.len()
            ))?;
        }
        return Ok(exit::OK);
    }
    for id in &plan.remove {
        repo.remove_snapshot(id)
            .with_context(|| format!("removing snapshot {}", id.short()))?;
    }
    if !global.quiet && !global.json {
        output::line(&format!(
            "removed {} snapshots, kept {}",
            plan.remove.len(),
            plan.keep.len()
        ))?;
    }
    if args.prune {
        drop(lock);
        return super::prune::prune(global, &repo, args.max_unused, false);
    }
    Ok(exit::OK)
}
