//! `cairn backup`

use std::time::Instant;

use anyhow::{bail, Context, Result};
use cairn_ingest::{Archiver, BackupStats, Source};
use cairn_store::lock::Lock;
use cairn_store::{Progress, Repository, Snapshot, SnapshotId, SnapshotSummary};
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

pub fn parse_time(text: &str) -> Result<DateTime<FixedOffset>> {
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
            out.push(Source::path(s));
        }
    }
    if out.is_empty() {
        bail!("nothing to back up: give a file, a directory, `-` or --stdin-from-command");
    }
    Ok(out)
}

/// What a backup is asked to do, from the command line or a plan.
pub struct Job<'a> {
    pub sources: &'a [Source],
    pub excludes: &'a [String],
    pub tags: &'a [String],
    pub host: String,
    pub time: DateTime<FixedOffset>,
    /// The Lync profile: `Meeting.Active` files are never stored.
    pub skip_meeting_active: bool,
    /// A failing command source makes the snapshot partial instead of failing the backup.
    pub tolerate_failed_commands: bool,
    /// The Lync profile's database check, with the databases not deployed: its advisories
    /// join the snapshot's warnings.
    pub lync_databases: Option<&'a [String]>,
}

impl Job<'_> {
    /// Opens the repository and takes the shared lock a backup holds, reading the job's large
    /// files ahead meanwhile.
    pub fn open(&self, global: &Global) -> Result<(Repository, Lock)> {
        let prefetch = self.prefetch()?;
        let repo = super::open(global)?;
        let (lock, notices) = repo
            .lock_waiting(false, global.lock_wait())
            .context("locking the repository")?;
        drop(prefetch);
        super::report_notices(&notices);
        Ok((repo, lock))
    }

    /// Starts reading the job's large files while the repository opens (see
    /// [`cairn_ingest::prefetch`]); drop the guard once it is open.
    fn prefetch(&self) -> Result<cairn_ingest::Prefetch> {
        let mut paths = Vec::new();
        let mut excludes = self.excludes.to_vec();
        for source in self.sources {
            if let Source::Path {
                path,
                excludes: own,
                ..
            } = source
            {
                paths.push(path.clone());
                // Leaving out more than one source excludes only means reading less ahead.
                excludes.extend(own.iter().cloned());
            }
        }
        Ok(cairn_ingest::prefetch(
            paths,
            &excludes,
            self.skip_meeting_active,
        )?)
    }
}

/// A saved snapshot and how it went.
pub struct Done {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    pub stats: BackupStats,
    pub bytes_added: u64,
    pub duration_s: f64,
}

impl Done {
    /// The summary of `backup --json`.
    pub fn json(&self) -> serde_json::Value {
        let stats = &self.stats;
        json!({
            "type": "summary",
            "snapshot_id": self.id.to_hex(),
            "bytes_read": stats.bytes_read,
            "bytes_added": self.bytes_added,
            "chunks_new": stats.chunks_new,
            "files_new": stats.files_new,
            "files_changed": stats.files_changed,
            "files_unmodified": stats.files_unmodified,
            "duration_s": self.duration_s,
            "partial": self.snapshot.partial,
            "warnings": self.snapshot.summary.warnings,
        })
    }

    /// The summary for people.
    pub fn print(&self) -> Result<()> {
        let stats = &self.stats;
        let warnings = &self.snapshot.summary.warnings;
        output::line(&format!(
            "files: {} new, {} changed, {} unmodified",
            stats.files_new, stats.files_changed, stats.files_unmodified
        ))?;
        output::line(&format!(
            "read {}, added {} ({} new chunks) in {:.1} s",
            output::bytes(stats.bytes_read),
            output::bytes(self.bytes_added),
            stats.chunks_new,
            self.duration_s
        ))?;
        if self.snapshot.partial {
            output::line(&format!(
                "{} warnings: some sources could not be read",
                warnings.len()
            ))?;
        } else if !warnings.is_empty() {
            output::line(&format!("{} warnings", warnings.len()))?;
        }
        output::line(&format!(
            "snapshot {} saved{}",
            self.id.short(),
            if self.snapshot.partial {
                " (partial)"
            } else {
                ""
            }
        ))
    }
}

/// Archives the job's sources into one snapshot and saves it. The caller holds a lock.
pub fn perform(global: &Global, repo: &Repository, job: &Job) -> Result<Done> {
    let started = Instant::now();
    let paths: Vec<String> = job.sources.iter().map(Source::describe).collect();
    let mut sorted_paths = paths.clone();
    sorted_paths.sort();
    // The parent: the newest snapshot of the same host and the same sources.
    let parent = repo.snapshots()?.into_iter().rev().find(|(_, s)| {
        let mut p = s.paths.clone();
        p.sort();
        s.host == job.host && p == sorted_paths
    });

    let progress = Terminal::new(global, "backing up");
    let mut archiver = Archiver::new(repo, job.excludes, &progress)?;
    if job.skip_meeting_active {
        archiver = archiver.skip_meeting_active();
    }
    if job.tolerate_failed_commands {
        archiver = archiver.tolerate_failed_commands();
    }
    let time_ns = job.time.timestamp_nanos_opt().unwrap_or(0);
    let outcome = archiver.archive(job.sources, parent.as_ref().map(|(_, s)| &s.tree), time_ns);
    progress.finish();
    let outcome = outcome?;

    let stats = outcome.stats;
    let mut warnings = outcome.warnings;
    if let Some(not_deployed) = job.lync_databases {
        for advice in cairn_ingest::lync::check_databases(&outcome.mssql, not_deployed) {
            progress.warn(&advice);
            warnings.push(advice);
        }
    }
    let mut snapshot = Snapshot {
        version: cairn_store::snapshot::SNAPSHOT_VERSION,
        time: job.time,
        host: job.host.clone(),
        username: cairn_store::lock::username(),
        tags: job.tags.to_vec(),
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
            warnings,
        },
        mssql: outcome.mssql,
    };
    // Everything but the manifest is written by the flush inside save_snapshot; count it first.
    repo.flush()?;
    snapshot.summary.bytes_added = repo.bytes_added();
    snapshot.summary.duration_s = started.elapsed().as_secs_f64();
    let (id, _) = repo
        .save_snapshot(&snapshot)
        .context("saving the snapshot")?;
    Ok(Done {
        id,
        snapshot,
        stats,
        bytes_added: repo.bytes_added(),
        duration_s: started.elapsed().as_secs_f64(),
    })
}

pub fn run(global: &Global, args: &Args) -> Result<u8> {
    let sources = sources(args)?;
    let time = match &args.time {
        Some(t) => parse_time(t)?,
        None => chrono::Local::now().fixed_offset(),
    };
    let host = args
        .host
        .clone()
        .unwrap_or_else(cairn_store::lock::hostname);
    let job = Job {
        sources: &sources,
        excludes: &args.excludes,
        tags: &args.tags,
        host,
        time,
        skip_meeting_active: false,
        tolerate_failed_commands: false,
        lync_databases: None,
    };
    let (repo, _lock) = job.open(global)?;
    let done = perform(global, &repo, &job)?;
    if global.json {
        output::json(&done.json())?;
    } else if !global.quiet {
        done.print()?;
    }
    Ok(if done.snapshot.partial {
        exit::PARTIAL
    } else {
        exit::OK
    })
}
