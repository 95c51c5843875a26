//! `diff` and `stats`: what changed between nights, and what each night cost.

use std::fs;

use crate::harness::*;

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Two nights of a tree holding a SQL Server full (the corpus pair taken 20 s apart, when
/// present; otherwise plain bytes) and small files.
fn two_nights(env: &Env) -> bool {
    env.init();
    let corpus = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/sqlbak/dataplat__appveyor-lab/OlaMsFilter/Simple");
    let sql = corpus.exists();
    let night = |n: u8| -> Vec<u8> {
        if sql {
            let f = [
                "test_FULL_20160629_141300.bak",
                "test_FULL_20160629_141320.bak",
            ][usize::from(n)];
            fs::read(corpus.join(f)).unwrap()
        } else {
            data(1 << 20, u64::from(n))
        }
    };
    let src = env.path("src");
    fs::create_dir_all(src.join("docs")).unwrap();
    fs::write(src.join("db.bak"), night(0)).unwrap();
    fs::write(src.join("docs/old.txt"), b"old").unwrap();
    fs::write(src.join("same.txt"), b"same").unwrap();
    env.backup_json(&["--time", "2024-05-01T02:00:00+02:00", src.to_str().unwrap()]);
    fs::write(src.join("db.bak"), night(1)).unwrap();
    fs::remove_file(src.join("docs/old.txt")).unwrap();
    fs::write(src.join("docs/new.txt"), b"new!").unwrap();
    env.backup_json(&["--time", "2024-05-02T02:00:00+02:00", src.to_str().unwrap()]);
    sql
}

#[test]
fn diff_lists_added_removed_and_changed_with_sql_metadata() {
    let env = Env::new();
    let sql = two_nights(&env);
    let snaps = env.snapshots();
    let (a, b) = (
        snaps[0]["id"].as_str().unwrap(),
        snaps[1]["id"].as_str().unwrap(),
    );
    let out = env.cairn(&["diff", "--json", a, b]).output().unwrap();
    assert!(out.status.success());
    let changes = json_lines(&out.stdout);
    let summary: Vec<(String, String)> = changes
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["change"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("/src/db.bak".to_string(), "changed".to_string()),
            ("/src/docs/new.txt".to_string(), "added".to_string()),
            ("/src/docs/old.txt".to_string(), "removed".to_string()),
        ]
    );
    if sql {
        assert_eq!(changes[0]["mssql_before"]["checkpoint_lsn"], "21:153:37");
        assert_eq!(changes[0]["mssql_after"]["checkpoint_lsn"], "21:246:37");
        let text = env.cairn(&["diff", a, b]).output().unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("-> OlaMsFilterTest full"), "{text}");
    } else {
        eprintln!("the corpus is absent: the SQL part of this test was skipped");
    }
    // A snapshot against itself: nothing.
    let out = env.cairn(&["diff", "--json", b, b]).output().unwrap();
    assert!(out.stdout.is_empty());
}

#[test]
fn stats_show_totals_and_what_each_night_added_per_source() {
    let env = Env::new();
    let sql = two_nights(&env);
    let out = env.ok(&["stats", "--json"]);
    let s = last_json_line(&out.stdout);
    for key in ["snapshots", "raw_bytes", "stored_bytes", "chunks", "packs"] {
        assert!(s[key].as_u64().is_some(), "stats lack {key}: {s}");
    }
    assert_eq!(s["snapshots"], 2);
    let growth = s["growth"].as_array().unwrap();
    assert_eq!(growth.len(), 2);
    // Every byte of the packs is attributed to the first snapshot that needs it.
    let added: u64 = growth
        .iter()
        .map(|g| g["added_bytes"].as_u64().unwrap())
        .sum();
    assert!(added <= s["stored_bytes"].as_u64().unwrap());
    let source = if sql {
        "OlaMsFilterTest (SQL Server)"
    } else {
        "src"
    };
    let first = growth[0]["sources"][source].as_u64().unwrap();
    let second = growth[1]["sources"][source].as_u64().unwrap();
    assert!(
        second * 5 < first,
        "the second night added {second}, the first {first}"
    );
    let one = env.cairn(&["stats", "--json", "latest"]).output().unwrap();
    assert_eq!(
        last_json_line(&one.stdout)["growth"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
