//! `prune`: the repository shrinks, stays whole when interrupted, and coexists with backups.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::harness::*;

fn repo_bytes(env: &Env) -> u64 {
    walkdir(&env.repo())
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

/// Day `d`'s tree: the files of days d-2..=d (older ones deleted), and a log appended daily.
fn write_day(src: &Path, d: u64) {
    fs::create_dir_all(src).unwrap();
    fs::write(src.join(format!("day-{d:02}")), data(300_000, d)).unwrap();
    if d >= 3 {
        let _ = fs::remove_file(src.join(format!("day-{:02}", d - 3)));
    }
    let mut log = fs::read(src.join("log")).unwrap_or_default();
    log.extend_from_slice(format!("night {d}\n").as_bytes());
    fs::write(src.join("log"), log).unwrap();
}

/// Restores `id` and checks it holds exactly the files of day `d`.
fn assert_day(env: &Env, id: &str, d: u64) {
    let target = env.restore(id, &format!("check-{id}"));
    let src = target.join("src");
    for k in d.saturating_sub(2).max(1)..=d {
        assert!(
            fs::read(src.join(format!("day-{k:02}"))).unwrap() == data(300_000, k),
            "{id} day-{k}"
        );
    }
    let expected_log: String = (1..=d).map(|k| format!("night {k}\n")).collect();
    assert_eq!(fs::read_to_string(src.join("log")).unwrap(), expected_log);
    fs::remove_dir_all(&target).unwrap();
}

/// Runs `prune --max-unused 0` and returns its plan line.
fn prune_all(env: &Env) -> serde_json::Value {
    let out = env.ok(&["prune", "--json", "--max-unused", "0"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

/// How many packs a prune plan lists under `what` (`delete`, `repack`).
fn planned(plan: &serde_json::Value, what: &str) -> usize {
    plan["plan"][what].as_array().unwrap().len()
}

fn day_of(snapshot: &serde_json::Value) -> u64 {
    // Backups are dated 2024-05-DD: the day is the snapshot's day of month.
    snapshot["time"].as_str().unwrap()[8..10].parse().unwrap()
}

#[test]
fn thirty_nights_then_forget_and_prune_shrinks_the_repository() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    for d in 1..=30u64 {
        write_day(&src, d);
        env.cairn(&[
            "backup",
            "-q",
            "--time",
            &format!("2024-05-{d:02}T02:00:00+02:00"),
            src.to_str().unwrap(),
        ])
        .assert()
        .success();
    }
    let before = repo_bytes(&env);
    env.ok(&[
        "forget",
        "--keep-daily",
        "7",
        "--keep-weekly",
        "4",
        "--prune",
        "--max-unused",
        "0",
    ]);
    let after = repo_bytes(&env);
    let kept = env.snapshots();
    // 7 dailies (24..30) and the newest of 4 ISO weeks: 30 (a Thursday), 26, 19, 12 May.
    let days: Vec<u64> = kept.iter().map(day_of).collect();
    assert_eq!(days, [12, 19, 24, 25, 26, 27, 28, 29, 30]);
    assert!(after < before * 2 / 3, "{before} -> {after} bytes");

    let check = env.cairn(&["check", "--read-data"]).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    for s in &kept {
        assert_day(&env, s["id"].as_str().unwrap(), day_of(s));
    }
    // Nothing left to do the second time.
    let plan = prune_all(&env);
    assert_eq!(planned(&plan, "delete"), 0, "{plan}");
    assert_eq!(planned(&plan, "repack"), 0, "{plan}");
}

#[test]
fn kill_9_during_prune_never_loses_a_kept_snapshot() {
    const RUNS: u64 = 20;
    let env = Env::new();
    env.init();
    let src = env.path("src");
    let mut rng = 0x9e37_79b9_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut day = 0;
    let mut interrupted = 0;
    // Run 0 calibrates: an uninterrupted prune of the same shape sets the range of kill moments.
    let mut calibrated = Duration::ZERO;
    for run in 0..=RUNS {
        for _ in 0..2 {
            day += 1;
            write_day(&src, day);
            let time = format!("2024-05-{:02}T{:02}:00:00+00:00", 1 + day / 24, day % 24);
            env.cairn(&["backup", "-q", "--time", &time, src.to_str().unwrap()])
                .assert()
                .success();
        }
        env.cairn(&["forget", "-q", "--keep-last", "3"])
            .assert()
            .success();
        let started = std::time::Instant::now();
        let mut child = env
            .process(&["prune", "-q", "--max-unused", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        if run == 0 {
            assert!(child.wait().unwrap().success());
            calibrated = started.elapsed();
            continue;
        }
        let range = calibrated.as_micros() as u64 * 11 / 10 + 1;
        std::thread::sleep(Duration::from_micros(next() % range));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        // SAFETY: SIGKILL to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        for s in env.snapshots() {
            let id = s["id"].as_str().unwrap().to_string();
            // The day of a snapshot: its log's last line.
            let target = env.restore(&id, "probe");
            let log = fs::read_to_string(target.join("src/log")).unwrap();
            let d: u64 = log.lines().count() as u64;
            assert_day(&env, &id, d);
        }
    }
    eprintln!("{interrupted} of {RUNS} kills interrupted a prune");
    assert!(
        interrupted >= RUNS / 4,
        "only {interrupted} of {RUNS} kills interrupted a prune"
    );
    env.cairn(&["prune", "-q", "--max-unused", "0"])
        .assert()
        .success();
    let check = env
        .cairn(&["check", "--read-data", "--json"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let report = last_json_line(&check.stdout);
    assert_eq!(
        report["unindexed_packs"], 0,
        "the last prune removed every leftover"
    );
}

#[test]
fn a_backup_started_during_a_prune_waits_and_both_succeed() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    for d in 1..=6 {
        write_day(&src, d);
        env.cairn(&["backup", "-q", src.to_str().unwrap()])
            .assert()
            .success();
    }
    env.cairn(&["forget", "-q", "--keep-last", "1"])
        .assert()
        .success();
    write_day(&src, 7);
    let mut prune = env
        .process(&["prune", "-q", "--max-unused", "0"])
        .spawn()
        .unwrap();
    let mut backup = env
        .process(&["backup", "-q", src.to_str().unwrap()])
        .spawn()
        .unwrap();
    assert!(prune.wait().unwrap().success());
    assert!(backup.wait().unwrap().success());
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 2);
    assert_day(&env, snaps[1]["id"].as_str().unwrap(), 7);
    assert_day(&env, snaps[0]["id"].as_str().unwrap(), 6);
    env.cairn(&["check", "--read-data"]).assert().success();
}

/// Every backup leaves a small data pack and a small tree pack; prune merges the small packs
/// of each kind (nothing forgotten, nothing unused), and a second prune finds nothing to do.
#[test]
fn small_packs_of_a_kind_are_merged_and_then_left_alone() {
    let env = Env::ready();
    let src = env.path("src");
    for d in 1..=3u64 {
        write_day(&src, d);
        let time = format!("2024-05-{d:02}T02:00:00+02:00");
        env.backup_json(&["--time", &time, src.to_str().unwrap()]);
    }
    assert_eq!(walkdir(&env.repo().join("data")).len(), 6);
    let first = prune_all(&env);
    assert_eq!(planned(&first, "repack"), 6, "{first}");
    assert_eq!(planned(&first, "delete"), 0, "{first}");
    // One pack of data, one of trees and lists.
    assert_eq!(walkdir(&env.repo().join("data")).len(), 2);
    let again = prune_all(&env);
    assert_eq!(planned(&again, "repack"), 0, "{again}");
    env.ok(&["check", "--read-data"]);
    for s in env.snapshots() {
        assert_day(&env, s["id"].as_str().unwrap(), day_of(&s));
    }
}
