//! Test fixtures: a repository and cache in scratch space, a command builder, deterministic
//! data and tree comparison.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use assert_cmd::Command;

/// The password every test repository gets.
pub const PASSWORD: &str = "correct horse battery staple";
/// `init` with an Argon2id cost of 8 MiB and one pass (the default takes about 0.2 s).
pub const INIT: [&str; 5] = ["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"];

pub struct Env {
    /// Local scratch space (sources, restore targets, cache).
    pub dir: tempfile::TempDir,
    /// Holds the repository; on the share when CAIRN_TEST_SHARE is set.
    pub repo_dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo_dir = match std::env::var_os("CAIRN_TEST_SHARE") {
            Some(share) => tempfile::tempdir_in(share).expect("temp dir on the share"),
            None => tempfile::tempdir().expect("temp dir"),
        };
        Self { dir, repo_dir }
    }

    /// An environment whose repository is local even when CAIRN_TEST_SHARE is set: for tests
    /// that run cairn as another user, who cannot reach the root-only FUSE mount of the share.
    pub fn local() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            repo_dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A fresh environment with its repository created.
    pub fn ready() -> Self {
        let env = Self::new();
        env.init();
        env
    }

    /// Creates the scratch directory `rel` (with its parents) and returns its path.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(&p).expect("scratch directory");
        p
    }

    pub fn repo(&self) -> PathBuf {
        self.repo_dir.path().join("repo")
    }

    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `cairn ARGS…` with only PATH, CAIRN_REPO, CAIRN_CACHE_DIR and CAIRN_PASSWORD set.
    pub fn cairn(&self, args: &[&str]) -> Command {
        Command::from_std(self.process(args))
    }

    /// The same as [`Env::cairn`], as a plain process (to spawn, kill or run as another user).
    pub fn process(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CAIRN_REPO", self.repo())
            .env("CAIRN_CACHE_DIR", self.cache())
            .env("CAIRN_PASSWORD", PASSWORD)
            .args(args);
        cmd
    }

    /// Runs `cairn ARGS…`, asserting success (showing its standard error otherwise).
    pub fn ok(&self, args: &[&str]) -> std::process::Output {
        let out = self.cairn(args).output().expect("runs");
        assert!(
            out.status.success(),
            "cairn {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Creates the encrypted repository, with a cheap key derivation to keep tests fast.
    pub fn init(&self) {
        self.cairn(&INIT).assert().success();
    }

    /// Runs a backup with `--json` and returns its summary line.
    pub fn backup_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["backup", "--json"];
        all.extend_from_slice(args);
        let out = self.cairn(&all).output().expect("runs");
        assert!(
            out.status.success(),
            "backup {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        last_json_line(&out.stdout)
    }

    /// Restores the latest snapshot into `target`, asserting that it fails with exit code 1;
    /// returns what it printed on stderr.
    pub fn restore_failing(&self, target: &Path) -> String {
        let out = self
            .cairn(&["restore", "latest", "--target", target.to_str().unwrap()])
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        stderr
    }

    /// Restores `snapshot` into a fresh scratch directory `name`, asserting success; returns it.
    pub fn restore(&self, snapshot: &str, name: &str) -> PathBuf {
        let target = self.path(name);
        let _ = fs::remove_dir_all(&target);
        let out = self
            .cairn(&["restore", snapshot, "--target", target.to_str().unwrap()])
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "restoring {snapshot}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        target
    }

    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        let out = self.cairn(&["snapshots", "--json"]).output().expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .expect("snapshots --json is JSON")
            .as_array()
            .expect("an array")
            .clone()
    }
}

pub fn last_json_line(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().last().expect("some output");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// Deterministic pseudo-random bytes (xorshift64*), fast enough for tens of MB.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sets a file's modification (and access) time. Both are set: a network share's FUSE client
/// ignores a change of the modification time alone.
pub fn set_mtime(path: &Path, secs: u64, nanos: u32) {
    let t = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
    let f = fs::File::open(path).expect("open for set_times");
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .expect("set mtime");
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// What a tree holds, per relative path: kind, mode, mtime, size and content hash (or link
/// target). Directory mtimes are included.
pub fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path).expect("lstat");
        let ft = meta.file_type();
        let desc = if ft.is_symlink() {
            format!("link -> {}", fs::read_link(&path).unwrap().display())
        } else if ft.is_dir() {
            walk(root, &path, out);
            format!(
                "dir {:o} {}.{}",
                meta.mode() & 0o7777,
                meta.mtime(),
                meta.mtime_nsec()
            )
        } else {
            let hash = blake3::hash(&fs::read(&path).expect("read"));
            format!(
                "file {:o} {}.{} {} {}",
                meta.mode() & 0o7777,
                meta.mtime(),
                meta.mtime_nsec(),
                meta.len(),
                hash
            )
        };
        out.insert(rel, desc);
    }
}

/// Asserts two trees are identical (see [`describe`]).
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (da, db) = (describe(a), describe(b));
    if da != db {
        for (k, v) in &da {
            if db.get(k) != Some(v) {
                eprintln!("{k}: {v} vs {:?}", db.get(k));
            }
        }
        for k in db.keys().filter(|k| !da.contains_key(*k)) {
            eprintln!("extra {k}: {:?}", db[k]);
        }
        panic!("trees {} and {} differ", a.display(), b.display());
    }
}

/// Whether the tests run as root (then file permissions do not make files unreadable).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Every file below `dir`, recursively.
pub fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The strings of a JSON array (panics on anything else: tests want to know).
pub fn strings(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|s| s.as_str().expect("a string"))
        .collect()
}
