//! The real SQL Server backups of `../shared/corpus/sqlbak/` (SQL 2005–2019; full,
//! differential and log; striped; one compressed): every file is cut exactly, its pages are
//! found, and its metadata equals the corpus's `MANIFEST.json` on every field both have.
//! Skipped, with a printed reason, when the corpus is absent.

use std::path::{Path, PathBuf};

use cairn_chunker::{Chunker, ChunkerParams};
use cairn_ingest::mssql::{detect, Container, Grouping, MtfCutter};

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/sqlbak");
    dir.join("MANIFEST.json").exists().then_some(dir)
}

fn cut_all(data: &[u8], piece: usize, grouping: Grouping) -> (Vec<usize>, MtfCutter) {
    let mut cutter = MtfCutter::new(Chunker::new(ChunkerParams::small()), grouping);
    let mut cuts = Vec::new();
    let (mut pos, mut fed) = (0, 0);
    loop {
        let eof = fed == data.len();
        match cutter.next_cut(&data[pos..fed], eof) {
            Some(0) => break,
            Some(n) => {
                cuts.push(n);
                pos += n;
            }
            None => fed = (fed + piece).min(data.len()),
        }
    }
    (cuts, cutter)
}

#[test]
fn every_corpus_backup_is_cut_exactly_with_its_metadata() {
    let Some(dir) = corpus() else {
        eprintln!("skipped: ../shared/corpus/sqlbak is not present");
        return;
    };
    let manifest: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("MANIFEST.json")).unwrap()).unwrap();
    assert!(
        manifest.len() >= 100,
        "the corpus lists {} files",
        manifest.len()
    );
    let mut checked_fields = 0;
    for (name, expected) in &manifest {
        let data = std::fs::read(dir.join(name)).unwrap();
        if detect(&data) == Container::Compressed {
            assert_eq!(expected["container"], "MSSQLBAK (compressed)", "{name}");
            continue;
        }
        assert_eq!(detect(&data), Container::Mtf, "{name}");
        let (cuts, cutter) = cut_all(&data, usize::MAX / 2, Grouping::Page);
        assert_eq!(
            cuts.iter().sum::<usize>(),
            data.len(),
            "{name}: cuts tile the file"
        );
        // Fed as a pipe would, in 64 KiB pieces: the same cuts.
        let (streamed, _) = cut_all(&data, 65536, Grouping::Page);
        assert_eq!(streamed, cuts, "{name}: streaming changes the cuts");
        let (meta, warnings) = cutter.finish();
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
        let pages: u64 = expected["data_streams"]
            .as_array()
            .map(|s| s.iter().map(|d| d["pages"].as_u64().unwrap()).sum())
            .unwrap_or(0);
        assert_eq!(meta.pages, pages, "{name}: pages");
        let ours = serde_json::to_value(&meta).unwrap();
        for (key, theirs) in expected.as_object().unwrap() {
            let mine_key = if key == "has_backup_checksums" {
                "has_checksums"
            } else {
                key
            };
            if let Some(mine) = ours.get(mine_key) {
                assert_eq!(mine, theirs, "{name}: {key}");
                checked_fields += 1;
            }
        }
        assert!(
            ours.get("database").is_some() && ours.get("backup_type").is_some(),
            "{name}"
        );
    }
    // database, server, type, 4 LSNs, dates, versions, checksums, striping: most files have ~15.
    assert!(
        checked_fields > 1000,
        "only {checked_fields} fields compared"
    );
}

fn chunks(d: &[u8], g: Grouping) -> Vec<Vec<u8>> {
    let (cuts, _) = cut_all(d, usize::MAX / 2, g);
    let mut out = Vec::new();
    let mut pos = 0;
    for n in cuts {
        out.push(d[pos..pos + n].to_vec());
        pos += n;
    }
    out
}

#[test]
fn pages_and_extents_are_chunks_of_their_own() {
    let Some(dir) = corpus() else {
        eprintln!("skipped: ../shared/corpus/sqlbak is not present");
        return;
    };
    let data =
        std::fs::read(dir.join("salmanshariff07__Sales_Analysis_SQL/Northwind.bak")).unwrap();
    // 416 pages from offset 0x1A00 (MANIFEST): 416 page chunks, or 52 extent chunks.
    let pages = chunks(&data, Grouping::Page);
    assert_eq!(pages.iter().filter(|c| c.len() == 8192).count(), 416);
    let extents = chunks(&data, Grouping::Extent);
    assert_eq!(extents.iter().filter(|c| c.len() == 65536).count(), 52);
}

/// Two fulls of one database taken 20 s apart: 177 of their 184 pages are byte-identical
/// (`sqlserver-backup-format.md` §4.3), and so are their page chunks.
#[test]
fn two_nightly_fulls_share_their_unchanged_pages() {
    let Some(dir) = corpus() else {
        eprintln!("skipped: ../shared/corpus/sqlbak is not present");
        return;
    };
    let base = dir.join("dataplat__appveyor-lab/OlaMsFilter/Simple");
    let a = std::fs::read(base.join("test_FULL_20160629_141300.bak")).unwrap();
    let b = std::fs::read(base.join("test_FULL_20160629_141320.bak")).unwrap();
    for (grouping, unit, shared_at_least) in
        [(Grouping::Page, 8192, 177), (Grouping::Extent, 65536, 19)]
    {
        let first: std::collections::HashSet<Vec<u8>> = chunks(&a, grouping)
            .into_iter()
            .filter(|c| c.len() == unit)
            .collect();
        let second: Vec<Vec<u8>> = chunks(&b, grouping)
            .into_iter()
            .filter(|c| c.len() == unit)
            .collect();
        let shared = second.iter().filter(|c| first.contains(*c)).count();
        assert!(
            shared >= shared_at_least,
            "{grouping:?}: {shared} of {} shared",
            second.len()
        );
        eprintln!("{grouping:?}: {shared} of {} chunks shared", second.len());
    }
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sample_backup() -> Option<(Vec<u8>, u64, u64)> {
    let dir = corpus()?;
    let name = "salmanshariff07__Sales_Analysis_SQL/Northwind.bak";
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("MANIFEST.json")).unwrap()).unwrap();
    let stream = &manifest[name]["data_streams"][0];
    let data = std::fs::read(dir.join(name)).unwrap();
    Some((
        data,
        stream["offset"].as_u64().unwrap(),
        stream["pages"].as_u64().unwrap(),
    ))
}

#[test]
fn pages_that_look_encrypted_are_reported() {
    let Some((mut data, first, pages)) = sample_backup() else {
        eprintln!("skipped: ../shared/corpus/sqlbak is not present");
        return;
    };
    for p in 0..pages {
        let at = (first + p * 8192) as usize;
        data[at + 96..at + 8192].copy_from_slice(&pseudo_random(8192 - 96, p + 1));
    }
    let (cuts, cutter) = cut_all(&data, usize::MAX / 2, Grouping::Page);
    assert_eq!(cuts.iter().sum::<usize>(), data.len());
    let (meta, warnings) = cutter.finish();
    assert_eq!(meta.pages, pages);
    assert!(
        warnings.iter().any(|w| w.contains("look encrypted")),
        "{warnings:?}"
    );
}

/// Damage anywhere (a flipped byte, a truncation) never loses a byte: the cuts still tile the
/// input, and damage to the structure is reported.
#[test]
fn damaged_and_truncated_backups_fall_back_to_generic_chunking() {
    let Some((data, first, _)) = sample_backup() else {
        eprintln!("skipped: ../shared/corpus/sqlbak is not present");
        return;
    };
    // A flipped byte in the MSDA block header (the block before the pages).
    let msda = data
        .windows(4)
        .position(|w| w == b"MSDA")
        .expect("an MSDA block");
    let mut bad = data.clone();
    bad[msda + 20] ^= 0x01;
    let (cuts, cutter) = cut_all(&bad, 65536, Grouping::Page);
    assert_eq!(cuts.iter().sum::<usize>(), bad.len());
    let (meta, warnings) = cutter.finish();
    assert_eq!(meta.pages, 0, "no page region after a damaged header");
    assert!(
        warnings[0].contains("MSDA block header checksum mismatch"),
        "{warnings:?}"
    );
    assert!(
        warnings[0].contains(&format!("byte {msda}")),
        "{warnings:?}"
    );

    // Truncated in the middle of the pages, and in the middle of a header.
    for len in [first as usize + 8192 * 10 + 100, msda + 30, 70] {
        let (cuts, cutter) = cut_all(&data[..len], 65536, Grouping::Extent);
        assert_eq!(cuts.iter().sum::<usize>(), len);
        let (_, warnings) = cutter.finish();
        assert!(
            warnings.iter().any(|w| w.contains("truncated")),
            "{len}: {warnings:?}"
        );
    }

    // Random damage: never a panic, always an exact tiling.
    for seed in 0..200u64 {
        let mut bad = data.clone();
        let noise = pseudo_random(16, seed + 7);
        let at = (u64::from_le_bytes(noise[..8].try_into().unwrap()) % data.len() as u64) as usize;
        bad[at] ^= noise[8] | 1;
        let len = if seed % 3 == 0 { at + 1 } else { bad.len() };
        let (cuts, _) = cut_all(&bad[..len], 4096 + seed as usize * 97, Grouping::Page);
        assert_eq!(cuts.iter().sum::<usize>(), len, "seed {seed}");
    }
}
