//! Encryption at rest: nothing readable without the password, wrong passwords refused, keys
//! managed, tampering detected with the object named.

use std::fs;
use std::path::{Path, PathBuf};

use crate::harness::*;

const MARKER: &str = "QZX-lync-marker-7731";

/// A tree whose names and contents carry the marker.
fn marked_tree(env: &Env) -> PathBuf {
    let src = env.path(&format!("src-{MARKER}"));
    fs::create_dir_all(src.join(format!("dir-{MARKER}"))).unwrap();
    fs::write(
        src.join(format!("dir-{MARKER}/file-{MARKER}.txt")),
        format!("sip:{MARKER}@contoso.com\n").repeat(50),
    )
    .unwrap();
    let mut mixed = data(300_000, 21);
    mixed.extend_from_slice(MARKER.as_bytes());
    mixed.extend(data(300_000, 22));
    fs::write(src.join("binary.bak"), mixed).unwrap();
    std::os::unix::fs::symlink(format!("target-{MARKER}"), src.join("link")).unwrap();
    src
}

/// The files holding the marker, among every file under `dirs`.
fn files_with_marker(dirs: &[&Path]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for dir in dirs {
        for f in walkdir(dir) {
            let bytes = fs::read(&f).unwrap();
            if bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()) {
                hits.push(f);
            }
        }
    }
    hits
}

fn backup_marked(env: &Env, src: &Path) {
    let host = format!("host-{MARKER}");
    let tag = format!("tag-{MARKER}");
    env.backup_json(&["--host", &host, "--tag", &tag, src.to_str().unwrap()]);
    // A stream named after the marker too.
    let name = format!("sql/{MARKER}.bak");
    env.cairn(&["backup", "--stdin-name", &name, "-"])
        .write_stdin(format!("{MARKER}\n").repeat(1000))
        .assert()
        .success();
}

#[test]
fn no_byte_of_the_repository_or_cache_reveals_names_or_contents() {
    let env = Env::new();
    env.init();
    let src = marked_tree(&env);
    backup_marked(&env, &src);
    let hits = files_with_marker(&[&env.repo(), &env.cache()]);
    assert!(hits.is_empty(), "the marker is readable in {hits:?}");
    // And the backup is whole.
    let target = env.path("out");
    env.cairn(&["restore", "latest", "--target", target.to_str().unwrap()])
        .assert()
        .success();
    env.cairn(&[
        "restore",
        &env.snapshots()[0]["id"].as_str().unwrap()[..12],
        "--target",
        target.to_str().unwrap(),
    ])
    .assert()
    .success();
    assert_same_tree(&src, &target.join(src.file_name().unwrap()));
}

/// The positive control of the scan above: without encryption the marker is found in the
/// repository (in the incompressible file, whose chunk is stored raw). Compressed objects hide
/// it from a byte scan even unencrypted (zstd entropy-codes literals), which is why the marked
/// tree has an incompressible file.
#[test]
fn an_unencrypted_repository_is_readable_and_says_so() {
    let env = Env::new();
    let out = env
        .cairn(&["init", "--insecure-no-encryption"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT encrypted"));
    let src = marked_tree(&env);
    backup_marked(&env, &src);
    assert!(!files_with_marker(&[&env.repo()]).is_empty());
    let target = env.path("out");
    let mut restore = env.cairn(&["restore", "latest", "--target", target.to_str().unwrap()]);
    restore.env_remove("CAIRN_PASSWORD");
    restore.assert().success();
    let out = env.cairn(&["key", "add"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not encrypted"));
}

#[test]
fn wrong_or_missing_password_exits_12_with_no_output() {
    let env = Env::new();
    env.init();
    env.cairn(&["backup", "--stdin-name", "s", "-"])
        .write_stdin("data")
        .assert()
        .success();
    let out = env
        .cairn(&["dump", "latest", "s"])
        .env("CAIRN_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(12));
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong password"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut cmd = env.cairn(&["snapshots"]);
    cmd.env_remove("CAIRN_PASSWORD");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(12));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CAIRN_PASSWORD"));

    // A password file wins over CAIRN_PASSWORD; its first line is the password.
    let file = env.path("pw");
    fs::write(&file, format!("{PASSWORD}\nignored second line\n")).unwrap();
    env.cairn(&["--password-file", file.to_str().unwrap(), "snapshots"])
        .env("CAIRN_PASSWORD", "wrong")
        .assert()
        .success();
    fs::write(&file, "wrong\n").unwrap();
    let out = env
        .cairn(&["snapshots"])
        .env("CAIRN_PASSWORD_FILE", &file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(12));
}

#[test]
fn a_second_password_survives_removing_the_first() {
    let env = Env::ready();
    let src = env.dir("src");
    fs::write(src.join("a"), data(2 << 20, 31)).unwrap();
    env.backup_json(&[src.to_str().unwrap()]);
    fs::write(src.join("b"), b"second").unwrap();
    env.backup_json(&[src.to_str().unwrap()]);

    env.cairn(&[
        "key",
        "add",
        "--kdf-memory-mib",
        "8",
        "--kdf-iterations",
        "1",
    ])
    .env("CAIRN_NEW_PASSWORD", "second password")
    .assert()
    .success();
    let keys = env.cairn(&["key", "list", "--json"]).output().unwrap();
    let keys: serde_json::Value = serde_json::from_slice(&keys.stdout).unwrap();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let first = keys.iter().find(|k| k["current"] == true).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let second = |args: &[&str]| {
        let mut c = env.cairn(args);
        c.env("CAIRN_PASSWORD", "second password");
        c
    };
    second(&["key", "remove", &first[..8]]).assert().success();
    // The first password no longer opens the repository; the second restores everything.
    assert_eq!(
        env.cairn(&["snapshots"]).output().unwrap().status.code(),
        Some(12)
    );
    let snaps = second(&["snapshots", "--json"]).output().unwrap();
    let snaps: serde_json::Value = serde_json::from_slice(&snaps.stdout).unwrap();
    for (i, s) in snaps.as_array().unwrap().iter().enumerate() {
        let target = env.path(&format!("out{i}"));
        second(&[
            "restore",
            s["id"].as_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
        ])
        .assert()
        .success();
        assert!(fs::read(target.join("src/a")).unwrap() == data(2 << 20, 31));
        assert_eq!(target.join("src/b").exists(), i == 1);
    }
    // The last key cannot go.
    let keys = second(&["key", "list", "--json"]).output().unwrap();
    let keys: serde_json::Value = serde_json::from_slice(&keys.stdout).unwrap();
    let last = keys[0]["id"].as_str().unwrap();
    let out = second(&["key", "remove", last]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to remove the last key"));

    // passwd replaces the current key.
    second(&[
        "key",
        "passwd",
        "--kdf-memory-mib",
        "8",
        "--kdf-iterations",
        "1",
    ])
    .env("CAIRN_NEW_PASSWORD", "third")
    .assert()
    .success();
    env.cairn(&["snapshots"])
        .env("CAIRN_PASSWORD", "third")
        .assert()
        .success();
    assert_eq!(
        second(&["snapshots"]).output().unwrap().status.code(),
        Some(12)
    );
}

fn one_file_backup(env: &Env) -> PathBuf {
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), data(1 << 20, 41)).unwrap();
    env.backup_json(&[src.to_str().unwrap()]);
    src
}

fn flip_middle(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x04;
    fs::write(path, bytes).unwrap();
}

fn only_file(dir: &Path) -> PathBuf {
    let files = walkdir(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

fn restore_fails_naming(env: &Env, what: &str) {
    let target = env.path("out");
    let err = env.restore_failing(&target);
    assert!(err.contains(what), "expected {what:?} in: {err}");
    assert!(
        !target.join("src/f").exists(),
        "nothing may be restored from a damaged repository"
    );
}

#[test]
fn a_flipped_byte_in_a_snapshot_file_is_named() {
    let env = Env::new();
    one_file_backup(&env);
    let snap = only_file(&env.repo().join("snapshots"));
    flip_middle(&snap);
    let name = snap.file_name().unwrap().to_str().unwrap();
    restore_fails_naming(&env, &format!("snapshot {name} is corrupt"));
    // With a fresh catalog the damage is found while reading the repository.
    fs::remove_dir_all(env.cache()).unwrap();
    let out = env.cairn(&["snapshots"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("snapshot {name} is corrupt")));
}

#[test]
fn a_flipped_byte_in_an_index_segment_is_named_and_repairable() {
    let env = Env::new();
    let src = one_file_backup(&env);
    let segment = only_file(&env.repo().join("index"));
    flip_middle(&segment);
    fs::remove_dir_all(env.cache()).unwrap();
    let name = segment.file_name().unwrap().to_str().unwrap();
    restore_fails_naming(&env, &format!("index segment {name} is corrupt"));
    env.cairn(&["repair", "index"]).assert().success();
    let target = env.path("out");
    env.cairn(&["restore", "latest", "--target", target.to_str().unwrap()])
        .assert()
        .success();
    assert_same_tree(&src, &target.join("src"));
}

#[test]
fn a_flipped_byte_in_an_encrypted_pack_is_named() {
    let env = Env::new();
    one_file_backup(&env);
    // The largest pack holds the file's data.
    let mut packs = walkdir(&env.repo().join("data"));
    packs.sort_by_key(|p| fs::metadata(p).unwrap().len());
    let pack = packs.last().unwrap();
    flip_middle(pack);
    let name = pack.file_name().unwrap().to_str().unwrap();
    restore_fails_naming(&env, &format!("pack {name} blob"));
    let leftovers = fs::read_dir(env.path("out/src")).unwrap().count();
    assert_eq!(leftovers, 0, "no temporary file is left in the target");
    let out = env.cairn(&["dump", "latest", "src/f"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("pack {name} blob")));
    assert!(
        out.stdout.is_empty(),
        "dump writes nothing of a chunk that failed"
    );
}
