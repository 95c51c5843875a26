//! The `cairn` command: argument parsing, output, progress and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod output;
mod plan;
mod progress;
mod textdiff;

/// Exit codes, documented in the README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FATAL: u8 = 1;
    /// Wrong usage (clap's own code).
    pub const USAGE: u8 = 2;
    /// The snapshot was written, but some sources could not be read.
    pub const PARTIAL: u8 = 3;
    /// No repository given, or none at the given place.
    pub const NO_REPOSITORY: u8 = 10;
    /// The repository is locked by another process.
    pub const LOCKED: u8 = 11;
    /// Wrong password, or none given.
    pub const PASSWORD: u8 = 12;
    /// The repository is damaged (`check` found problems, `repair index` unreadable packs).
    pub const DAMAGED: u8 = 13;
}

#[derive(Parser, Debug)]
#[command(
    name = "cairn",
    version,
    about = "Deduplicating backups for SQL Server and Lync / Skype for Business"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// The repository (a directory, local or on a mounted share).
    #[arg(short = 'r', long, env = "CAIRN_REPO", global = true)]
    pub repo: Option<PathBuf>,
    /// Print results as JSON on standard output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing but errors and warnings.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Where the local catalog lives (default: the user's cache directory, then `cairn`).
    #[arg(long, env = "CAIRN_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// How long to wait for another process's conflicting lock (backups wait for a prune, a
    /// prune for backups) before giving up with exit code 11.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 3600)]
    pub lock_wait: u64,
    /// Read the repository password from the first line of FILE (before CAIRN_PASSWORD).
    #[arg(long, env = "CAIRN_PASSWORD_FILE", global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

impl Global {
    pub fn lock_wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lock_wait)
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new repository.
    Init(cmd::init::Args),
    /// Back up files, directories, standard input or a command's output as one snapshot.
    Backup(cmd::backup::Args),
    /// The nightly job of a plan file: every source in one snapshot, then retention, then a
    /// check.
    Run(cmd::run::Args),
    /// List snapshots.
    Snapshots(cmd::snapshots::Args),
    /// List the files of a snapshot.
    Ls(cmd::ls::Args),
    /// Restore a snapshot into a directory.
    Restore(cmd::restore::Args),
    /// Show what changed between two snapshots.
    Diff(cmd::diff::Args),
    /// Write one file of a snapshot to standard output.
    Dump(cmd::dump::Args),
    /// Remove snapshots by a retention policy (chain-aware for SQL Server backups).
    Forget(cmd::forget::Args),
    /// What the repository holds, and what each snapshot added, per source.
    Stats(cmd::stats::Args),
    /// Verify that the repository is whole.
    Check(cmd::check::Args),
    /// Delete data no snapshot references.
    Prune(cmd::prune::Args),
    /// Repair repository metadata.
    Repair(cmd::repair::Args),
    /// Manage the passwords (key files) of the repository.
    Key(cmd::key::Args),
}

fn main() -> ExitCode {
    limit_heap_retention();
    // Files are read on rayon's threads, one stream each; hashing and sealing use threads of
    // their own. Four streams keep a disk (or share) busy with concurrent reads on two cores.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(cairn_store::repository::cores().max(4))
        .build_global();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let result = match &cli.command {
        Command::Init(a) => cmd::init::run(&cli.global, a),
        Command::Backup(a) => cmd::backup::run(&cli.global, a),
        Command::Run(a) => cmd::run::run(&cli.global, a),
        Command::Snapshots(a) => cmd::snapshots::run(&cli.global, a),
        Command::Ls(a) => cmd::ls::run(&cli.global, a),
        Command::Restore(a) => cmd::restore::run(&cli.global, a),
        Command::Diff(a) => cmd::diff::run(&cli.global, a),
        Command::Dump(a) => cmd::dump::run(&cli.global, a),
        Command::Check(a) => cmd::check::run(&cli.global, a),
        Command::Forget(a) => cmd::forget::run(&cli.global, a),
        Command::Prune(a) => cmd::prune::run(&cli.global, a),
        Command::Stats(a) => cmd::stats::run(&cli.global, a),
        Command::Repair(a) => cmd::repair::run(&cli.global, a),
        Command::Key(a) => cmd::key::run(&cli.global, a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::from(exit::OK);
            }
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code_of(&e))
        }
    }
}

/// Buffers of a megabyte and more (stream batches, packs, restore runs) are mapped and
/// unmapped each time, not kept in the heap: glibc otherwise raises this threshold as such
/// buffers are freed, and the backup's worker threads would keep tens of MiB of freed buffers
/// resident in their arenas.
fn limit_heap_retention() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// A reader that went away (`cairn dump … | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || matches!(c.downcast_ref::<cairn_store::StoreError>(),
                Some(cairn_store::StoreError::Io { error: source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn exit_code_of(e: &anyhow::Error) -> u8 {
    use cairn_store::StoreError;
    for cause in e.chain() {
        let store = cause.downcast_ref::<StoreError>().or_else(|| match cause
            .downcast_ref::<cairn_ingest::IngestError>(
        ) {
            Some(cairn_ingest::IngestError::Store(s)) => Some(s),
            _ => None,
        });
        match store {
            Some(StoreError::NotARepository { .. }) => return exit::NO_REPOSITORY,
            Some(StoreError::Locked { .. }) => return exit::LOCKED,
            Some(StoreError::WrongPassword | StoreError::NoPassword(_)) => return exit::PASSWORD,
            _ => {}
        }
        if cause.downcast_ref::<cmd::NoRepository>().is_some() {
            return exit::NO_REPOSITORY;
        }
    }
    exit::FATAL
}
