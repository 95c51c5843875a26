//! Bad input: clear errors naming the thing at fault, documented exit codes, nothing lost.

use std::fs;
use std::os::unix::process::CommandExt;

use crate::harness::*;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn not_a_repository_and_no_repository() {
    let env = Env::new();
    let out = env.cairn(&["snapshots"]).output().unwrap();
    assert_eq!(out.status.code(), Some(10));
    let err = stderr_of(&out);
    assert!(
        err.contains("not a cairn repository") && err.contains(env.repo().to_str().unwrap()),
        "{err}"
    );

    fs::create_dir_all(env.repo()).unwrap();
    fs::write(env.repo().join("somefile"), b"x").unwrap();
    let out = env.cairn(&["ls", "latest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(10));
    assert!(stderr_of(&out).contains("it has no config file"));
    let out = env.cairn(&INIT).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("already exists"),
        "{}",
        stderr_of(&out)
    );

    let mut cmd = env.cairn(&["snapshots"]);
    cmd.env_remove("CAIRN_REPO");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(10));
    assert!(stderr_of(&out).contains("no repository given"));
}

#[test]
fn missing_invalid_and_ambiguous_snapshots() {
    let env = Env::new();
    env.init();
    let out = env.cairn(&["ls", "latest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("no snapshot matches \"latest\""));

    // Snapshots until two IDs share their first hex digit (at most 17 by pigeonhole).
    let mut firsts = std::collections::HashMap::new();
    let shared = loop {
        env.backup_json(&["--stdin-name", "s", "-"]);
        let snaps = env.snapshots();
        let id = snaps.last().unwrap()["id"].as_str().unwrap().to_string();
        let c = id[..1].to_string();
        if firsts.insert(c.clone(), id).is_some() {
            break c;
        }
        assert!(firsts.len() <= 16);
    };
    let out = env.cairn(&["ls", &shared]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("is ambiguous"),
        "{}",
        stderr_of(&out)
    );

    let unknown = if shared == "0" {
        "1111111111111111"
    } else {
        "0000000000000000"
    };
    let out2 = env.cairn(&["ls", unknown]).output().unwrap();
    assert_eq!(out2.status.code(), Some(1));
    assert!(stderr_of(&out2).contains("no snapshot matches"));

    let out = env.cairn(&["ls", "not-hex!"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("invalid id \"not-hex!\""),
        "{}",
        stderr_of(&out)
    );

    let out = env
        .cairn(&["dump", "latest", "no/such/file"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("\"no/such/file\" not found in snapshot"));
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_arguments_are_refused() {
    let env = Env::new();
    env.init();
    let out = env
        .cairn(&["backup", "--time", "yesterday", "/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("invalid --time \"yesterday\""));
    let out = env.cairn(&["backup"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("nothing to back up"));
    let out = env
        .cairn(&["backup", "--exclude", "a[", "/tmp"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("invalid exclude pattern \"a[\""));
    let out = env.cairn(&["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(env.snapshots().is_empty());
}

#[test]
fn unreadable_and_missing_sources_give_warnings_and_exit_3() {
    let env = Env::local();
    // Permissions do not stop root: run every command as an unprivileged user then.
    let as_user = |args: &[&str]| {
        let mut cmd = env.process(args);
        if is_root() {
            cmd.uid(65534).gid(65534);
        }
        cmd.output().unwrap()
    };
    if is_root() {
        for d in [env.dir.path(), env.repo_dir.path()] {
            chmod(d, 0o777);
        }
    }
    let out = as_user(&INIT);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("readable"), b"ok").unwrap();
    fs::write(src.join("secret"), b"no").unwrap();
    chmod(&src.join("secret"), 0o000);
    let missing = env.path("missing");
    let out = as_user(&[
        "backup",
        "--json",
        src.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    let summary = last_json_line(&out.stdout);
    let warnings = summary["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].as_str().unwrap().contains("secret"));
    assert!(warnings[0].as_str().unwrap().contains("Permission denied"));
    assert!(warnings[1].as_str().unwrap().contains("missing"));
    assert_eq!(summary["files_new"], 1);
    let snaps = as_user(&["snapshots", "--json"]);
    let snaps: serde_json::Value = serde_json::from_slice(&snaps.stdout).unwrap();
    assert_eq!(snaps[0]["partial"], true);
    let dumped = as_user(&["dump", "latest", "src/readable"]);
    assert_eq!(dumped.stdout, b"ok");
}
