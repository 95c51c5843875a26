//! Rebuilding the index from the packs.

use std::fs;

use crate::harness::*;

#[test]
fn repair_index_after_losing_every_index_segment() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/one"), data(5 << 20, 11)).unwrap();
    env.backup_json(&[src.to_str().unwrap()]);
    fs::write(src.join("two"), data(3 << 20, 12)).unwrap();
    env.backup_json(&[src.to_str().unwrap()]);

    for f in fs::read_dir(env.repo().join("index")).unwrap() {
        fs::remove_file(f.unwrap().path()).unwrap();
    }
    // The catalog follows the repository: the blobs are now unknown.
    let out = env.cairn(&["dump", "latest", "src/two"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not in the index"));

    let out = env.ok(&["repair", "index", "--json"]);
    let report = last_json_line(&out.stdout);
    assert_eq!(report["damaged_packs"], serde_json::json!([]));
    assert!(report["packs_indexed"].as_u64().unwrap() >= 2);
    assert_eq!(fs::read_dir(env.repo().join("index")).unwrap().count(), 1);

    // Every snapshot restores, with a fresh catalog too.
    fs::remove_dir_all(env.cache()).unwrap();
    for (i, snap) in env.snapshots().iter().enumerate() {
        let target = env.path(&format!("out{i}"));
        env.cairn(&[
            "restore",
            snap["id"].as_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
        ])
        .assert()
        .success();
        assert_eq!(
            fs::read(target.join("src/d/one")).unwrap(),
            data(5 << 20, 11)
        );
        assert_eq!(target.join("src/two").exists(), i == 1);
    }
}
