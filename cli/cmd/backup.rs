//! `cairn backup`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use cairn_ingest::{Archiver, Source};
use cairn_store::{Snapshot, SnapshotSummary};
use chrono::{DateTime, FixedOffset};
use serde_json::json;

use crate::progress::Terminal;
use crate::{exit, output, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Host name to record (default: this machine's).
    #[arg(long)]
    pub host: Option<String>,
    /// Snapshot time, RFC 3339 (default: now).
    #[arg(long, value_name = "RFC3339")]
    pub time: Option<String>,
    /// Leave out paths matching GLOB (a pattern with `/` matches the absolute path, any other
    /// the file name; repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Name of the stream read from standard input (`-`) or from the command.
    #[arg(long, value_name = "NAME")]
    pub stdin_name: Option<String>,
    /// Store the standard output of the command given after `--`.
    #[arg(long, requires = "stdin_name")]
    pub stdin_from_command: bool,
    /// Files or directories to back up; `-` reads standard input.
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// The command for --stdin-from-command.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

fn parse_time(text: &str) -> Result<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text).with_context(|| {
        format!("invalid --time {text:?}: expected RFC 3339 such as 2024-01-31T02:00:00+01:00")
    })
}

fn sources(args: &Args) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    let stdin_name = args.stdin_name.clone().unwrap_or_else(|| "stdin".into());
    if args.stdin_from_command {
        if args.command.is_empty() {
            bail!("--stdin-from-command needs a command after `--`");
        }
        out.push(Source::Command {
            name: stdin_name.clone(),
            argv: args.command.clone(),
        });
    } else if !args.command.is_empty() {
        bail!("a command after `--` needs --stdin-from-command");
    }
    for s in &args.sources {
        if s == "-" {
            out.push(Source::Stdin {
                name: stdin_name.clone(),
            });
        } else {
            out.push(Source::Path(PathBuf::from(s)));
        }
    }
    if out.is_empty() {
        bail!("nothing to back up: give a file, a directory, `-` or --stdin-from-command");
    }
    Ok(out)
}

pub fn run(global: &Global, args: &Args) -> Result<u8> {
    let started = Instant::now();
    let sources = sources(args)?;
    let time = match &args.time {
        Some(t) => parse_time(t)?,
        None => chrono::Local::now().fixed_offset(),
    };
    let host = args
        .host
        .clone()
        .unwrap_or_else(cairn_store::lock::hostname);
    let repo = super::open(global)?;
    let (_lock, notices) = repo
        .lock_waiting(false, global.lock_wait())
        .context("locking the repository")?;
    super::report_notices(&notices);

    let paths: Vec<String> = sources.iter().map(Source::describe).collect();
    let mut sorted_paths = paths.clone();
    sorted_paths.sort();
    // The parent: the newest snapshot of the same host and the same sources.
    let parent = repo.snapshots()?.into_iter().rev().find(|(_, s)| {
        let mut p = s.paths.clone();
        p.sort();
        s.host == host && p == sorted_paths
    });

    let progress = Terminal::new(global, "backing up");
    let archiver = Archiver::new(&repo, &args.excludes, &progress)?;
    let time_ns = time.timestamp_nanos_opt().unwrap_or(0);
    let outcome = archiver.archive(&sources, parent.as_ref().map(|(_, s)| &s.tree), time_ns);
    progress.finish();
    let outcome = outcome?;

    let stats = &outcome.stats;
    let mut snapshot = Snapshot {
        version: cairn_store::snapshot::SNAPSHOT_VERSION,
        time,
        host,
        username: cairn_store::lock::username(),
        tags: args.tags.clone(),
        paths,
        tree: outcome.tree,
        parent: parent.map(|(id, _)| id),
        partial: outcome.partial,
        summary: SnapshotSummary {
            bytes_read: stats.bytes_read,
            bytes_added: 0,
            chunks_new: stats.chunks_new,
            files_new: stats.files_new,
            files_changed: stats.files_changed,
            files_unmodified: stats.files_unmodified,
            duration_s: 0.0,
            warnings: outcome.warnings.clone(),
        },
        mssql: outcome.mssql.clone(),
    };
    // Everything but the manifest is written by the flush inside save_snapshot; count it first.
    repo.flush()?;
    snapshot.summary.bytes_added = repo.bytes_added();
    snapshot.summary.duration_s = started.elapsed().as_secs_f64();
    let (id, _) = repo
        .save_snapshot(&snapshot)
        .context("saving the snapshot")?;
    let bytes_added = repo.bytes_added();
    let duration = started.elapsed().as_secs_f64();

    if global.json {
        output::json(&json!({
            "type": "summary",
            "snapshot_id": id.to_hex(),
            "bytes_read": stats.bytes_read,
            "bytes_added": bytes_added,
            "chunks_new": stats.chunks_new,
            "files_new": stats.files_new,
            "files_changed": stats.files_changed,
            "files_unmodified": stats.files_unmodified,
            "duration_s": duration,
            "warnings": outcome.warnings,
        }))?;
    } else if !global.quiet {
        output::line(&format!(
            "files: {} new, {} changed, {} unmodified",
            stats.files_new, stats.files_changed, stats.files_unmodified
        ))?;
        output::line(&format!(
            "read {}, added {} ({} new chunks) in {:.1} s",
            output::bytes(stats.bytes_read),
            output::bytes(bytes_added),
            stats.chunks_new,
            duration
        ))?;
        if outcome.partial {
            output::line(&format!(
                "{} warnings: some sources could not be read",
                outcome.warnings.len()
            ))?;
        } else if !outcome.warnings.is_empty() {
            output::line(&format!("{} warnings", outcome.warnings.len()))?;
        }
        output::line(&format!("snapshot {} saved", id.short()))?;
    }
    Ok(if outcome.partial {
        exit::PARTIAL
    } else {
        exit::OK
    })
}
