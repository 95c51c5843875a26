//! Backing up and restoring trees and streams.

use std::fs;
use std::os::unix::fs::symlink;

use crate::harness::*;

/// The tree of the issue: nested directories, empty files, an empty directory, a symlink, a
/// name with spaces and non-ASCII, a multi-chunk file of 50 MB; modes and mtimes set.
fn build_tree(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    fs::create_dir_all(src.join("a/b/c")).unwrap();
    fs::create_dir_all(src.join("empty dir")).unwrap();
    fs::write(src.join("a/b/c/deep.txt"), b"deep\n").unwrap();
    fs::write(src.join("empty.txt"), b"").unwrap();
    fs::write(src.join("a/empty too"), b"").unwrap();
    fs::write(
        src.join("Réunion ünïcode — file.txt"),
        "sip:émile@contoso.com\n",
    )
    .unwrap();
    fs::write(src.join("a/big.bin"), data(50 << 20, 1)).unwrap();
    fs::write(src.join("a/b/script.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    symlink("a/b/c/deep.txt", src.join("link to deep")).unwrap();
    symlink("/nonexistent/target", src.join("dangling")).unwrap();
    chmod(&src.join("a/b/script.sh"), 0o750);
    chmod(&src.join("empty.txt"), 0o600);
    chmod(&src.join("a/b"), 0o700);
    for (i, f) in ["a/b/c/deep.txt", "empty.txt", "a/big.bin", "a/b/script.sh"]
        .iter()
        .enumerate()
    {
        set_mtime(&src.join(f), 1_600_000_000 + i as u64 * 1000, 123_456_789);
    }
    for d in ["a/b/c", "a/b", "a", "empty dir"] {
        set_mtime(&src.join(d), 1_500_000_000, 5);
    }
    src
}

#[test]
fn tree_round_trip_with_modes_times_and_links() {
    let env = Env::new();
    env.init();
    let src = build_tree(&env);
    let summary = env.backup_json(&[src.to_str().unwrap()]);
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["files_new"], 6);
    assert_eq!(
        summary["bytes_read"],
        (50 << 20) + 5 + "sip:émile@contoso.com\n".len() + 18
    );
    assert_eq!(summary["warnings"], serde_json::json!([]));
    let target = env.path("restored");
    env.cairn(&["restore", "latest", "--target", target.to_str().unwrap()])
        .assert()
        .success();
    assert_same_tree(&src, &target.join("src"));
}

#[test]
fn second_backup_of_unchanged_tree_reads_nothing_and_adds_little() {
    let env = Env::new();
    env.init();
    let src = build_tree(&env);
    let first = env.backup_json(&[src.to_str().unwrap()]);
    let second = env.backup_json(&[src.to_str().unwrap()]);
    assert_eq!(second["files_unmodified"], 6, "{second}");
    assert_eq!(second["files_new"], 0);
    assert_eq!(second["files_changed"], 0);
    assert_eq!(second["bytes_read"], 0);
    assert_eq!(second["chunks_new"], 0);
    let added = second["bytes_added"].as_u64().unwrap();
    assert!(added < 256 << 10, "second backup added {added} bytes");
    assert!(first["bytes_added"].as_u64().unwrap() > 40 << 20);

    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 2);
    for s in &snaps {
        for key in ["id", "short_id", "time", "host", "tags", "paths", "summary"] {
            assert!(s.get(key).is_some(), "snapshots --json lacks {key}: {s}");
        }
        assert_eq!(s["paths"][0], src.to_str().unwrap());
    }
    assert_eq!(snaps[1]["id"], second["snapshot_id"]);
    assert_eq!(snaps[1]["summary"]["files_unmodified"], 6);
}

#[test]
fn a_changed_file_is_read_again_and_the_rest_is_not() {
    let env = Env::ready();
    let src = env.dir("src");
    fs::write(src.join("one"), data(3 << 20, 2)).unwrap();
    fs::write(src.join("two"), b"unchanged").unwrap();
    env.backup_json(&[src.to_str().unwrap()]);
    let mut edited = data(3 << 20, 2);
    edited[1 << 20] ^= 0xff;
    fs::write(src.join("one"), &edited).unwrap();
    let s = env.backup_json(&[src.to_str().unwrap()]);
    assert_eq!(
        (s["files_changed"].as_u64(), s["files_unmodified"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(s["bytes_read"], 3 << 20);
    // One chunk around the edit is new; the others dedup.
    assert!(s["chunks_new"].as_u64().unwrap() <= 2, "{s}");
    let out = env.cairn(&["dump", "latest", "src/one"]).output().unwrap();
    assert!(out.stdout == edited);
}

#[test]
fn stdin_stream_restores_by_dump() {
    let env = Env::new();
    env.init();
    let bytes = data(20 << 20, 3);
    let out = env
        .cairn(&["backup", "--json", "--stdin-name", "sql/rtcxds.bak", "-"])
        .write_stdin(bytes.clone())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = last_json_line(&out.stdout);
    assert_eq!(summary["bytes_read"], 20 << 20);
    let dumped = env
        .cairn(&["dump", "latest", "sql/rtcxds.bak"])
        .output()
        .unwrap();
    assert!(dumped.status.success());
    assert_eq!(blake3::hash(&dumped.stdout), blake3::hash(&bytes));

    let ls = env.cairn(&["ls", "--json", "latest"]).output().unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&ls.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["path"], "/sql");
    assert_eq!(lines[1]["path"], "/sql/rtcxds.bak");
    assert_eq!(lines[1]["type"], "stream");
    assert_eq!(lines[1]["size"], 20 << 20);

    // The same stream again adds only metadata.
    let again = env
        .cairn(&["backup", "--json", "--stdin-name", "sql/rtcxds.bak", "-"])
        .write_stdin(bytes)
        .output()
        .unwrap();
    let s = last_json_line(&again.stdout);
    assert_eq!(s["chunks_new"], 0);
    assert!(s["bytes_added"].as_u64().unwrap() < 16 << 10, "{s}");
}

#[test]
fn stdin_from_command_and_its_failure() {
    let env = Env::new();
    env.init();
    let file = env.path("export.zip");
    fs::write(&file, data(1 << 20, 4)).unwrap();
    let cat = format!("cat '{}'", file.display());
    env.cairn(&[
        "backup",
        "--stdin-name",
        "config/CsConfiguration.zip",
        "--stdin-from-command",
        "--",
        "sh",
        "-c",
        &cat,
    ])
    .assert()
    .success();
    let out = env
        .cairn(&["dump", "latest", "config/CsConfiguration.zip"])
        .output()
        .unwrap();
    assert!(out.stdout == fs::read(&file).unwrap());

    let failed = env
        .cairn(&[
            "backup",
            "--stdin-name",
            "x",
            "--stdin-from-command",
            "--",
            "sh",
            "-c",
            "echo partial; exit 7",
        ])
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("exit status: 7"), "{err}");
    assert_eq!(env.snapshots().len(), 1, "no snapshot for a failed command");
}

#[test]
fn excludes_leave_out_matching_paths() {
    let env = Env::new();
    env.init();
    let src = env.path("store");
    fs::create_dir_all(src.join("meetings/m1")).unwrap();
    fs::write(src.join("meetings/m1/Meeting.Active"), b"locked").unwrap();
    fs::write(src.join("meetings/m1/content.pptx"), b"slides").unwrap();
    fs::write(src.join("scratch.tmp"), b"tmp").unwrap();
    let s = env.backup_json(&[
        "--exclude",
        "Meeting.Active",
        "--exclude",
        "*.tmp",
        src.to_str().unwrap(),
    ]);
    assert_eq!(s["files_new"], 1);
    let ls = env.cairn(&["ls", "latest"]).output().unwrap();
    let text = String::from_utf8_lossy(&ls.stdout);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "/store",
            "/store/meetings",
            "/store/meetings/m1",
            "/store/meetings/m1/content.pptx"
        ]
    );
}

#[test]
fn restore_include_selects_a_subtree() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(src.join("keep/inner")).unwrap();
    fs::create_dir_all(src.join("skip")).unwrap();
    fs::write(src.join("keep/inner/f"), b"f").unwrap();
    fs::write(src.join("skip/g"), b"g").unwrap();
    env.backup_json(&[src.to_str().unwrap()]);
    let target = env.path("out");
    env.cairn(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--include",
        "src/keep",
    ])
    .assert()
    .success();
    assert_eq!(fs::read(target.join("src/keep/inner/f")).unwrap(), b"f");
    assert!(!target.join("src/skip").exists());
}

#[test]
fn two_backups_at_once_both_succeed() {
    let env = Env::new();
    env.init();
    let (a, b) = (env.path("a"), env.path("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("f"), data(8 << 20, 5)).unwrap();
    fs::write(b.join("f"), data(8 << 20, 6)).unwrap();
    let spawn = |p: &std::path::Path| {
        env.process(&["backup", "-q", p.to_str().unwrap()])
            .spawn()
            .unwrap()
    };
    let (mut ca, mut cb) = (spawn(&a), spawn(&b));
    assert!(ca.wait().unwrap().success());
    assert!(cb.wait().unwrap().success());
    assert_eq!(env.snapshots().len(), 2);
    for (dir, name) in [(&a, "a/f"), (&b, "b/f")] {
        let snaps = env.snapshots();
        let id = snaps
            .iter()
            .find(|s| s["paths"][0] == dir.to_str().unwrap())
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let out = env.cairn(&["dump", &id, name]).output().unwrap();
        assert!(out.stdout == fs::read(dir.join("f")).unwrap());
    }
}

#[test]
fn deleting_the_catalog_loses_nothing() {
    let env = Env::new();
    env.init();
    let src = build_tree(&env);
    env.backup_json(&[src.to_str().unwrap()]);
    fs::remove_dir_all(env.cache()).unwrap();
    env.cairn(&["ls", "latest"]).assert().success();
    fs::remove_dir_all(env.cache()).unwrap();
    let target = env.path("restored");
    env.cairn(&["restore", "latest", "--target", target.to_str().unwrap()])
        .assert()
        .success();
    assert_same_tree(&src, &target.join("src"));
}

/// A file large enough to be read around the page cache (64 MiB and up, past its first
/// 32 MiB), its length not a multiple of the 4 KiB such reads need: stored and restored byte
/// for byte, and an edit in its middle found on the next night.
#[test]
fn a_large_file_read_around_the_page_cache_round_trips_and_an_edit_is_found() {
    let env = Env::ready();
    let src = env.dir("src");
    let noise = data(1 << 20, 5);
    // 4 KiB blocks, each a counter and 64 words of noise among zeros: distinct, compressible.
    let mut big = vec![0u8; (80 << 20) + 1234];
    for (i, block) in big.chunks_mut(4096).enumerate() {
        let n = block.len().min(72);
        let mut head = [0u8; 72];
        head[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let at = (i * 64) % (noise.len() - 64);
        head[8..].copy_from_slice(&noise[at..at + 64]);
        block[..n].copy_from_slice(&head[..n]);
    }
    let path = src.join("LcsLog_full.bak");
    fs::write(&path, &big).unwrap();
    fs::write(src.join("small"), b"small").unwrap();
    let first = env.backup_json(&[src.to_str().unwrap()]);
    assert_eq!(first["bytes_read"], big.len() as u64 + 5);
    let target = env.restore("latest", "first");
    assert!(fs::read(target.join("src/LcsLog_full.bak")).unwrap() == big);

    // 1 MiB rewritten at 50 MiB, past the part read through the cache.
    for b in &mut big[50 << 20..51 << 20] {
        *b ^= 0x5a;
    }
    fs::write(&path, &big).unwrap();
    set_mtime(&path, 1_700_000_000, 0);
    let second = env.backup_json(&[src.to_str().unwrap()]);
    assert_eq!(second["files_changed"], 1, "{second}");
    assert_eq!(second["bytes_read"], big.len() as u64);
    // The chunks around the edit (at most 4 MiB each, before compression) and metadata.
    assert!(second["chunks_new"].as_u64().unwrap() <= 4, "{second}");
    let target = env.restore("latest", "second");
    assert!(fs::read(target.join("src/LcsLog_full.bak")).unwrap() == big);
}

/// 1 GiB that compresses well (so the test writes little to a share) but cuts into ~300
/// distinct chunks (many of them at the 4 MiB maximum: zeros give few cut points): a
/// counter and random words every 4 KiB, zeros between.
fn gib_stream(mut out: impl std::io::Write) {
    let mut block = vec![0u8; 4096];
    let noise = data(1 << 20, 77);
    for i in 0..(1u64 << 30) / 4096 {
        block[..8].copy_from_slice(&i.to_le_bytes());
        let at = (i as usize * 64) % (noise.len() - 64);
        block[8..72].copy_from_slice(&noise[at..at + 64]);
        if out.write_all(&block).is_err() {
            return;
        }
    }
}

#[test]
fn an_unchanged_1_gib_stream_stored_again_adds_under_256_kib() {
    let env = Env::new();
    env.init();
    let run = || {
        let mut child = env
            .process(&["backup", "--json", "--stdin-name", "db/big.bak", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || gib_stream(std::io::BufWriter::new(stdin)));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        last_json_line(&out.stdout)
    };
    let first = run();
    assert_eq!(first["bytes_read"], 1u64 << 30);
    assert!(first["chunks_new"].as_u64().unwrap() > 200, "{first}");
    let second = run();
    assert_eq!(second["chunks_new"], 0);
    let added = second["bytes_added"].as_u64().unwrap();
    assert!(
        added < 256 << 10,
        "the second 1 GiB stream added {added} bytes"
    );
    // The chunk list is a hash tree, not inline in the node.
    let ls = env
        .cairn(&["ls", "--json", "latest", "db/big.bak"])
        .output()
        .unwrap();
    assert_eq!(last_json_line(&ls.stdout)["size"], 1u64 << 30);
}
