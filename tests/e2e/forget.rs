//! `forget`: restic's policy, and the SQL Server backup chains that kept snapshots need.

use std::collections::BTreeMap;
use std::fs;

use crate::harness::*;

/// The corpus chain `OlaMsFilter/complex` (2 fulls, 4 differentials, 12 logs), one snapshot a
/// backup in time order, all under one stream name (one group).
#[test]
fn keep_last_2_keeps_the_full_and_differentials_the_two_logs_need() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/sqlbak/dataplat__appveyor-lab/OlaMsFilter/complex");
    if !dir.exists() {
        eprintln!("skipped: the corpus chain OlaMsFilter/complex is not present");
        return;
    }
    let env = Env::new();
    env.init();
    // test_FULL_20160629_141300.bak → taken at 14:13:00 on 2016-06-29.
    let mut files: Vec<(String, std::path::PathBuf)> = ["Full", "Diff", "Log"]
        .iter()
        .flat_map(|sub| fs::read_dir(dir.join(sub)).unwrap())
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            let stamp = name.split('_').nth(3).unwrap()[..6].to_string();
            (stamp, p)
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 18);
    let mut by_file = BTreeMap::new();
    for (stamp, path) in &files {
        let time = format!(
            "2016-06-29T{}:{}:{}+00:00",
            &stamp[..2],
            &stamp[2..4],
            &stamp[4..]
        );
        let out = env
            .cairn(&[
                "backup",
                "--json",
                "--time",
                &time,
                "--stdin-name",
                "sql/OlaMsFilterTest",
                "-",
            ])
            .write_stdin(fs::read(path).unwrap())
            .output()
            .unwrap();
        assert!(out.status.success());
        let id = last_json_line(&out.stdout)["snapshot_id"]
            .as_str()
            .unwrap()
            .to_string();
        by_file.insert(id, path.file_name().unwrap().to_str().unwrap().to_string());
    }
    let plan = |extra: &[&str]| {
        let mut args = vec!["forget", "--json", "--dry-run", "--keep-last", "2"];
        args.extend_from_slice(extra);
        let out = env.cairn(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        last_json_line(&out.stdout)
    };
    let kept = |p: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = p["keep"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| by_file[id.as_str().unwrap()].clone())
            .collect();
        k.sort();
        k
    };
    let chain = plan(&[]);
    assert_eq!(
        kept(&chain),
        [
            "test_DIFF_20160629_142500.bak",
            "test_DIFF_20160629_142800.bak",
            "test_FULL_20160629_142200.bak",
            "test_LOG_20160629_142900.trn",
            "test_LOG_20160629_143000.trn",
        ]
    );
    assert_eq!(chain["remove"].as_array().unwrap().len(), 13);
    // The reasons say which kept backup needs each one.
    let reasons = chain["reasons"].as_object().unwrap();
    let why = |file: &str| {
        let id = by_file.iter().find(|(_, f)| f.as_str() == file).unwrap().0;
        strings(&reasons[id.as_str()])
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let short =
        |file: &str| by_file.iter().find(|(_, f)| f.as_str() == file).unwrap().0[..8].to_string();
    assert_eq!(why("test_LOG_20160629_143000.trn"), ["last snapshot"]);
    assert_eq!(
        why("test_DIFF_20160629_142800.bak"),
        [format!(
            "needed by {} (OlaMsFilterTest log)",
            short("test_LOG_20160629_143000.trn")
        )]
    );
    assert!(why("test_FULL_20160629_142200.bak")
        .iter()
        .all(|r| r.starts_with("needed by ") && r.ends_with("(OlaMsFilterTest log)")));

    // Without chains, only the two logs stay.
    assert_eq!(
        kept(&plan(&["--ignore-chains"])),
        [
            "test_LOG_20160629_142900.trn",
            "test_LOG_20160629_143000.trn"
        ]
    );

    // For real: the plan is carried out, and every kept snapshot still restores.
    env.cairn(&["forget", "--keep-last", "2"])
        .assert()
        .success();
    let left = env.snapshots();
    assert_eq!(left.len(), 5);
    for s in left {
        let id = s["id"].as_str().unwrap();
        let out = env
            .cairn(&["dump", id, "sql/OlaMsFilterTest"])
            .output()
            .unwrap();
        let original = files
            .iter()
            .find(|(_, p)| p.file_name().unwrap().to_str() == Some(&by_file[id]))
            .unwrap();
        assert!(out.stdout == fs::read(&original.1).unwrap());
    }
}

#[test]
fn forget_refuses_an_empty_policy_and_dry_run_removes_nothing() {
    let env = Env::new();
    env.init();
    for day in 1..=5 {
        env.cairn(&[
            "backup",
            "-q",
            "--time",
            &format!("2024-05-0{day}T02:00:00+02:00"),
            "--stdin-name",
            "s",
            "-",
        ])
        .write_stdin(format!("night {day}"))
        .assert()
        .success();
    }
    let out = env.cairn(&["forget"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no policy given"));
    let out = env
        .cairn(&["forget", "--keep-daily", "2", "--dry-run"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("dry run: 3 snapshots would be removed"));
    assert_eq!(env.snapshots().len(), 5);
    env.cairn(&["forget", "--keep-daily", "2"])
        .assert()
        .success();
    let left: Vec<String> = env
        .snapshots()
        .iter()
        .map(|s| s["time"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        left,
        ["2024-05-04T02:00:00+02:00", "2024-05-05T02:00:00+02:00"]
    );
}
