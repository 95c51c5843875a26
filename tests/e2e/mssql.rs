//! SQL Server backups end to end, on the real corpus (`../shared/corpus/sqlbak/`): byte-exact
//! restores, metadata equal to the corpus's MANIFEST.json, dedup of nightly fulls. Each test
//! prints why it is skipped when the corpus is absent.

use std::fs;
use std::path::PathBuf;

use crate::harness::*;

fn corpus() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/sqlbak");
    if dir.join("MANIFEST.json").exists() {
        Some(dir)
    } else {
        eprintln!("skipped: ../shared/corpus/sqlbak is not present");
        None
    }
}

fn manifest(dir: &std::path::Path) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_slice(&fs::read(dir.join("MANIFEST.json")).unwrap()).unwrap()
}

/// Asserts that `ours` (an `ls --json` "mssql" object) equals the manifest entry on every
/// field both have; returns how many fields were compared.
fn compare(name: &str, ours: &serde_json::Value, theirs: &serde_json::Value) -> usize {
    let mut n = 0;
    for (key, expected) in theirs.as_object().unwrap() {
        let key = if key == "has_backup_checksums" {
            "has_checksums"
        } else {
            key.as_str()
        };
        if let Some(mine) = ours.get(key) {
            assert_eq!(mine, expected, "{name}: {key}");
            n += 1;
        }
    }
    n
}

#[test]
fn every_corpus_backup_restores_exactly_with_its_metadata() {
    let Some(dir) = corpus() else { return };
    let env = Env::new();
    env.init();
    let summary = env.backup_json(&[dir.to_str().unwrap()]);
    // Two advisories, nothing partial: the compressed backup, and the striped Northwind whose
    // second file never existed (family 1 of 2). RestoreTimeStripe has both its files.
    let warnings = strings(&summary["warnings"]);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings
        .iter()
        .any(|w| w.contains("TutorialDB.bak") && w.contains("compressed SQL Server backup")));
    assert!(warnings.iter().any(|w| w.contains("striped")
        && w.contains("CConocimientos__Northwind/Northwind.bak")
        && w.contains("[1]")));

    let target = env.path("restored");
    env.cairn(&["restore", "latest", "--target", target.to_str().unwrap()])
        .assert()
        .success();
    let ls = env.cairn(&["ls", "--json", "latest"]).output().unwrap();
    let nodes: Vec<serde_json::Value> = String::from_utf8_lossy(&ls.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let manifest = manifest(&dir);
    let mut fields = 0;
    for (name, expected) in &manifest {
        let original = fs::read(dir.join(name)).unwrap();
        let restored = fs::read(target.join("sqlbak").join(name)).unwrap();
        assert!(
            blake3::hash(&original) == blake3::hash(&restored),
            "{name} differs after restore"
        );
        let node = nodes
            .iter()
            .find(|n| n["path"] == format!("/sqlbak/{name}"))
            .unwrap_or_else(|| panic!("{name} not listed"));
        let mssql = node
            .get("mssql")
            .unwrap_or_else(|| panic!("{name} has no mssql metadata"));
        fields += compare(name, mssql, expected);
    }
    assert!(fields > 1000, "only {fields} fields compared");

    // The snapshot lists its SQL backups, for retention.
    let snaps = env.snapshots();
    assert_eq!(snaps[0]["mssql"].as_array().unwrap().len(), manifest.len());
}

#[test]
fn a_backup_read_from_standard_input_is_recognised_too() {
    let Some(dir) = corpus() else { return };
    let env = Env::new();
    env.init();
    // A differential: its metadata carries the LSN of the full it depends on.
    let diffs = dir.join("dataplat__appveyor-lab/OlaMsFilter/complex/Diff");
    let mut files: Vec<_> = fs::read_dir(&diffs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let file = files[0].clone();
    let bytes = fs::read(&file).unwrap();
    let out = env
        .cairn(&["backup", "--json", "--stdin-name", "sql/db.bak", "-"])
        .write_stdin(bytes.clone())
        .output()
        .unwrap();
    assert!(out.status.success());
    let dumped = env
        .cairn(&["dump", "latest", "sql/db.bak"])
        .output()
        .unwrap();
    assert!(blake3::hash(&dumped.stdout) == blake3::hash(&bytes));
    let ls = env
        .cairn(&["ls", "--json", "latest", "sql/db.bak"])
        .output()
        .unwrap();
    let node = last_json_line(&ls.stdout);
    let key = file
        .strip_prefix(&dir)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(compare(&key, &node["mssql"], &manifest(&dir)[&key]) >= 10);
    assert_eq!(node["mssql"]["backup_type"], "I");
}

/// Two fulls of one database 20 s apart (177 of 184 pages unchanged), stored as the same
/// stream on two nights: the second adds at most 10 % of its size.
#[test]
fn a_second_nightly_full_adds_little() {
    let Some(dir) = corpus() else { return };
    let env = Env::new();
    env.init();
    let base = dir.join("dataplat__appveyor-lab/OlaMsFilter/Simple");
    let mut added = Vec::new();
    for f in [
        "test_FULL_20160629_141300.bak",
        "test_FULL_20160629_141320.bak",
    ] {
        let bytes = fs::read(base.join(f)).unwrap();
        let out = env
            .cairn(&["backup", "--json", "--stdin-name", "sql/test.bak", "-"])
            .write_stdin(bytes.clone())
            .output()
            .unwrap();
        assert!(out.status.success());
        added.push((
            last_json_line(&out.stdout)["bytes_added"].as_u64().unwrap(),
            bytes.len() as u64,
        ));
    }
    let (second, size) = added[1];
    eprintln!(
        "second full: {second} bytes added of {size} ({:.1} %)",
        100.0 * second as f64 / size as f64
    );
    assert!(
        second * 10 <= size,
        "the second full added {second} of {size} bytes"
    );
}

/// The pages of a backup are stored in shared frames (format 2): when the first of two
/// nightly fulls is forgotten, its frames are partly live (the pages the second full kept),
/// and prune repacks their pack; everything left checks and restores byte for byte.
#[test]
fn frames_partly_live_after_forget_are_repacked_by_prune() {
    let Some(dir) = corpus() else { return };
    let env = Env::new();
    env.init();
    let base = dir.join("dataplat__appveyor-lab/OlaMsFilter/Simple");
    let nights = [
        "test_FULL_20160629_141300.bak",
        "test_FULL_20160629_141320.bak",
    ];
    for (d, f) in nights.iter().enumerate() {
        env.cairn(&[
            "backup",
            "-q",
            "--time",
            &format!("2024-05-0{}T02:00:00Z", d + 1),
            "--stdin-name",
            "sql/test.bak",
            "-",
        ])
        .write_stdin(fs::read(base.join(f)).unwrap())
        .assert()
        .success();
    }
    env.ok(&["forget", "--keep-last", "1"]);
    assert_eq!(env.snapshots().len(), 1);
    let out = env.ok(&["prune", "--json", "--max-unused", "0"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let plan: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert!(
        !plan["plan"]["repack"].as_array().unwrap().is_empty(),
        "the first night's pack holds pages both nights share: {plan}"
    );
    env.ok(&["check", "--read-data"]);
    let target = env.restore("latest", "restored");
    assert!(
        fs::read(target.join("sql/test.bak")).unwrap() == fs::read(base.join(nights[1])).unwrap(),
        "the second full restores byte for byte"
    );
}
