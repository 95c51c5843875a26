//! kill -9 during backups: earlier snapshots stay whole, later backups succeed.

use std::fs;
use std::time::{Duration, Instant};

use crate::harness::*;

/// A small deterministic generator for the kill moments (no clock-seeded randomness, so a
/// failure can be replayed).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn kill_9_at_random_moments_never_damages_earlier_snapshots() {
    const RUNS: usize = 20;
    let env = Env::ready();
    let src = env.dir("src");
    fs::write(src.join("base"), data(1 << 20, 100)).unwrap();

    // Expected content of each committed snapshot, by the run file it must hold.
    env.backup_json(&[src.to_str().unwrap()]);
    let started = Instant::now();
    fs::write(src.join("run-0"), data(6 << 20, 0)).unwrap();
    env.backup_json(&[src.to_str().unwrap()]);
    let full = started.elapsed();

    let mut rng = 0x5eed_u64;
    let mut killed = 0;
    for run in 1..=RUNS {
        fs::write(src.join(format!("run-{run}")), data(6 << 20, run as u64)).unwrap();
        let mut child = env
            .process(&["backup", "-q", src.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_micros(next(&mut rng) % (full.as_micros() as u64 * 3 / 2 + 1));
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        // SAFETY: kill on a child we spawned; SIGKILL cannot be caught.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();

        // Every snapshot that became visible restores byte for byte.
        for snap in env.snapshots() {
            let id = snap["id"].as_str().unwrap();
            let target = env.restore(id, "check");
            let restored = target.join("src");
            assert_eq!(fs::read(restored.join("base")).unwrap(), data(1 << 20, 100));
            for r in 0..=RUNS {
                let f = restored.join(format!("run-{r}"));
                if f.exists() {
                    assert!(
                        fs::read(&f).unwrap() == data(6 << 20, r as u64),
                        "run {run}: {id} run-{r}"
                    );
                }
            }
        }
    }
    // The kills landed inside backups, not only after them.
    assert!(
        killed >= RUNS / 4,
        "only {killed} of {RUNS} kills interrupted a backup"
    );
    // A later backup succeeds (breaking the dead processes' stale locks) and holds everything.
    let s = env.backup_json(&[src.to_str().unwrap()]);
    assert!(s["warnings"].as_array().unwrap().is_empty());
    let target = env.path("final");
    env.cairn(&["restore", "latest", "--target", target.to_str().unwrap()])
        .assert()
        .success();
    for r in 0..=RUNS {
        assert!(fs::read(target.join(format!("src/run-{r}"))).unwrap() == data(6 << 20, r as u64));
    }

    // Prune removes the temporary files killed backups left (a pack half written), once they
    // are an hour old, and leaves younger ones (a writer may still be at work).
    let temporary = || -> Vec<std::path::PathBuf> {
        walkdir(&env.repo())
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(".tmp-"))
            .collect()
    };
    let young = env.repo().join("data/new.tmp-young");
    let old = env.repo().join("data/new.tmp-old");
    fs::write(&young, b"being written").unwrap();
    fs::write(&old, b"left by a crash").unwrap();
    let two_hours_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 7200;
    let left = temporary();
    for p in left.iter().filter(|p| **p != young) {
        set_mtime(p, two_hours_ago, 0);
    }
    let out = env.ok(&["--json", "prune"]);
    let stats = last_json_line(&out.stdout);
    assert_eq!(
        stats["stats"]["leftovers_removed"],
        left.len() as u64 - 1,
        "{left:?}"
    );
    assert_eq!(temporary(), vec![young]);
    env.ok(&["check", "--read-data"]);
}
