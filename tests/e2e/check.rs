//! `check`: damage found, named, and traced to the snapshots and paths that need it.

use std::fs;

use crate::harness::*;

/// Two snapshots of a tree with a 3 MiB file (its own pack once sealed) and small files.
/// Two backups of `src`: the first of a large and a small file, the second adding a file.
fn repository(env: &Env) {
    first_backup(env);
    second_backup(env);
}

fn first_backup(env: &Env) {
    env.init();
    let src = env.path("src");
    fs::create_dir_all(src.join("sql")).unwrap();
    fs::write(src.join("sql/big.bak"), data(3 << 20, 51)).unwrap();
    fs::write(src.join("notes.txt"), b"small").unwrap();
    env.backup_json(&[src.to_str().unwrap()]);
}

fn second_backup(env: &Env) {
    let src = env.path("src");
    fs::write(src.join("later.txt"), b"second night").unwrap();
    env.backup_json(&[src.to_str().unwrap()]);
}

fn check_json(env: &Env, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut all = vec!["check", "--json"];
    all.extend_from_slice(args);
    let out = env.cairn(&all).output().unwrap();
    (out.status.code(), last_json_line(&out.stdout))
}

fn largest_pack(env: &Env) -> std::path::PathBuf {
    let mut packs = walkdir(&env.repo().join("data"));
    packs.sort_by_key(|p| fs::metadata(p).unwrap().len());
    packs.pop().unwrap()
}

#[test]
fn a_whole_repository_checks_clean_and_subsets_cover_every_pack() {
    let env = Env::new();
    repository(&env);
    let (code, report) = check_json(&env, &["--read-data"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["snapshots"], 2);
    let packs = report["packs"].as_u64().unwrap();
    assert_eq!(report["packs_read"], packs);
    let mut read = 0;
    for n in 1..=3 {
        let (code, r) = check_json(&env, &["--read-data-subset", &format!("{n}/3")]);
        assert_eq!(code, Some(0));
        read += r["packs_read"].as_u64().unwrap();
    }
    assert_eq!(read, packs, "three subsets read every pack once");
    let out = env
        .cairn(&["check", "--read-data-subset", "4/3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid subset \"4/3\""));
}

#[test]
fn a_flipped_byte_is_found_by_read_data_with_the_paths_that_need_it() {
    let env = Env::new();
    repository(&env);
    let pack = largest_pack(&env);
    let mut bytes = fs::read(&pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x80;
    fs::write(&pack, bytes).unwrap();
    let name = pack.file_name().unwrap().to_str().unwrap();

    // The structure is intact: only reading the data finds it.
    let (code, report) = check_json(&env, &[]);
    assert_eq!((code, &report["ok"]), (Some(0), &serde_json::json!(true)));

    let (code, report) = check_json(&env, &["--read-data"]);
    assert_eq!(code, Some(13));
    assert_eq!(report["ok"], false);
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert!(
        e["object"]
            .as_str()
            .unwrap()
            .starts_with(&format!("pack {name} blob ")),
        "{e}"
    );
    assert_eq!(e["message"], "authentication failed");
    let affected = strings(&e["affected"]);
    assert_eq!(
        affected.len(),
        2,
        "both snapshots hold the file: {affected:?}"
    );
    assert!(
        affected.iter().all(|a| a.ends_with(":/src/sql/big.bak")),
        "{affected:?}"
    );

    let out = env.cairn(&["check", "--read-data"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("needed by") && text.contains("the repository is damaged"),
        "{text}"
    );
}

#[test]
fn a_deleted_tree_pack_loses_snapshots_from_the_trees_it_held() {
    let env = Env::new();
    first_backup(&env);
    // The first backup wrote two packs: its data, and its trees (the smaller).
    let mut packs = walkdir(&env.repo().join("data"));
    assert_eq!(packs.len(), 2, "{packs:?}");
    packs.sort_by_key(|p| fs::metadata(p).unwrap().len());
    let trees = packs[0].clone();
    second_backup(&env);
    fs::remove_file(&trees).unwrap();

    let (code, report) = check_json(&env, &[]);
    assert_eq!(code, Some(13));
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    // The first snapshot is lost from its root; the second, whose root and `src` changed,
    // loses the `sql` directory it shares with the first.
    let snaps = env.snapshots();
    let short = |i: usize| snaps[i]["short_id"].as_str().unwrap().to_string();
    let expected = [format!("{}:/", short(0)), format!("{}:/src/sql", short(1))];
    assert_eq!(strings(&errors[0]["affected"]), expected, "{}", errors[0]);
}

#[test]
fn a_deleted_pack_is_found_without_reading_data() {
    let env = Env::new();
    repository(&env);
    let pack = largest_pack(&env);
    fs::remove_file(&pack).unwrap();
    let name = pack.file_name().unwrap().to_str().unwrap();
    let (code, report) = check_json(&env, &[]);
    assert_eq!(code, Some(13));
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["object"], format!("pack {name}"));
    assert_eq!(errors[0]["message"], "the pack is missing");
    // That is the first backup's data pack (its trees are packed apart): both files lose
    // their contents, in both snapshots, and nothing else is lost.
    let snaps = env.snapshots();
    let expected: Vec<String> = snaps
        .iter()
        .flat_map(|s| {
            let short = s["short_id"].as_str().unwrap().to_string();
            [
                format!("{short}:/src/notes.txt"),
                format!("{short}:/src/sql/big.bak"),
            ]
        })
        .collect();
    let affected = strings(&errors[0]["affected"]);
    assert_eq!(affected, expected, "{}", errors[0]);
}
