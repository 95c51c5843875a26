//! Repositories written by older builds: they open, check, restore, and take new backups
//! that the older builds can still read.

use std::fs;
use std::path::{Path, PathBuf};

use crate::harness::*;

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

/// `tests/fixtures/v1/repo` was written by the last build of format 1 (see
/// `tests/fixtures/make-v1.sh`): a snapshot of `source/` and one of `source/notes.txt` read
/// from standard input.
#[test]
fn a_format_1_repository_still_opens_and_stays_format_1() {
    let env = Env::new();
    copy_tree(&fixture().join("repo"), &env.repo());
    // Git keeps no empty directories: make the ones `init` made.
    for d in (0..=255u8)
        .map(|i| format!("data/{i:02x}"))
        .chain(["locks".into()])
    {
        fs::create_dir_all(env.repo().join(d)).unwrap();
    }
    let source = fixture().join("source");
    let notes = fs::read(source.join("notes.txt")).unwrap();

    let snapshots = env.snapshots();
    assert_eq!(snapshots.len(), 2);
    env.ok(&["check", "--read-data"]);
    let first = env.restore(snapshots[0]["id"].as_str().unwrap(), "first");
    for name in ["notes.txt", "random.bin"] {
        assert!(
            fs::read(first.join("source").join(name)).unwrap()
                == fs::read(source.join(name)).unwrap(),
            "{name}"
        );
    }
    let second = env.restore(snapshots[1]["id"].as_str().unwrap(), "second");
    assert!(fs::read(second.join("stream.txt")).unwrap() == notes);

    // A new backup of data this build would frame (SQL Server pages, where the corpus is
    // present; a file otherwise) is written in format 1: one blob per frame.
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/sqlbak/dataplat__appveyor-lab/OlaMsFilter/Simple")
        .join("test_FULL_20160629_141300.bak");
    let input = fs::read(&corpus).unwrap_or_else(|_| data(3 << 20, 5));
    env.cairn(&["backup", "-q", "--stdin-name", "new.bak", "-"])
        .write_stdin(input.clone())
        .assert()
        .success();
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(env.repo().join("config")).unwrap()).unwrap();
    assert_eq!(config["version"], 1);
    let cache = env.cache();
    let password = || Ok(zeroize::Zeroizing::new(PASSWORD.to_string()));
    let repo = cairn_store::Repository::open(
        &env.repo(),
        &cairn_store::OpenOptions {
            cache_dir: Some(&cache),
            password: &password,
            sync: true,
        },
    )
    .unwrap();
    let mut blobs = 0;
    for (pack, _) in repo.indexed_packs().unwrap() {
        let entries = repo.pack_entries(&pack).unwrap();
        let frames: std::collections::HashSet<u64> = entries.iter().map(|e| e.offset).collect();
        assert_eq!(
            frames.len(),
            entries.len(),
            "one blob per frame in pack {pack}"
        );
        assert!(entries.iter().all(|e| e.start == 0));
        blobs += entries.len();
    }
    assert!(blobs > 10, "{blobs} blobs");
    drop(repo);
    env.ok(&["check", "--read-data"]);
    let third = env.restore("latest", "third");
    assert!(fs::read(third.join("new.bak")).unwrap() == input);
}
