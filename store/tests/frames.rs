//! Format 2 frames: the new data blobs of one call share envelopes of up to 64 KiB; each blob
//! is still located, read and checked on its own.

mod common;

use std::collections::BTreeSet;

use cairn_store::check::{check, ReadData};
use cairn_store::pack::pack_path;
use cairn_store::BlobKind;
use common::new_repo;

/// A compressible 9,000-byte page, distinct per seed.
fn page(seed: u64) -> Vec<u8> {
    let mut out = format!("page {seed:08} ").into_bytes();
    while out.len() < 9000 {
        out.extend_from_slice(format!("sip:user{}@contoso.com;", out.len() % 97).as_bytes());
    }
    out.truncate(9000);
    out
}

#[test]
fn data_blobs_share_frames_and_read_back_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    let pages: Vec<Vec<u8>> = (0..20).map(page).collect();
    let slices: Vec<&[u8]> = pages.iter().map(Vec::as_slice).collect();
    let saved = repo.save_blobs(BlobKind::Data, &slices).unwrap();
    let tree = repo.save_list(page(99)).unwrap();
    repo.flush().unwrap();

    // 7 pages of 9,000 bytes fit in 64 KiB: frames of 7, 7 and 6, in the order given.
    let ids: Vec<_> = saved.iter().map(|s| s.id).collect();
    let located: Vec<_> = repo
        .locate_many(&ids)
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let frames: BTreeSet<u64> = located.iter().map(|l| l.offset).collect();
    assert_eq!(frames.len(), 3);
    let starts: Vec<u64> = located.iter().map(|l| l.start).collect();
    let expected: Vec<u64> = (0..20u64).map(|i| (i % 7) * 9000).collect();
    assert_eq!(starts, expected);
    // The frame's bytes are shared out: together its blobs count exactly its length.
    let first: u64 = located[..7].iter().map(|l| l.stored).sum();
    assert_eq!(first, located[0].length);
    assert!(located[0].length < 9000, "seven pages compressed together");
    // A chunk list is a frame of its own, in a pack of its own.
    let list = repo.locate(&tree).unwrap();
    assert_eq!((list.start, list.raw_len), (0, 9000));
    assert!(located.iter().all(|l| l.pack != list.pack));

    for (i, id) in ids.iter().enumerate() {
        assert_eq!(repo.load_blob(id).unwrap(), pages[i], "page {i}");
    }
    let loaded = repo.load_blobs(&ids).unwrap();
    assert!(ids.iter().enumerate().all(|(i, id)| loaded[id] == pages[i]));

    let report = check(&repo, ReadData::All).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.blobs_read, 21);

    // One flipped byte inside the second frame: its seven pages, and no other blob, break.
    let pack = located[0].pack;
    let path = dir.path().join("repo").join(pack_path(&pack));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(located[7].offset + 40) as usize] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let report = check(&repo, ReadData::All).unwrap();
    let broken: BTreeSet<String> = report
        .problems
        .iter()
        .filter(|p| p.kind == "blob")
        .map(|p| p.object.clone())
        .collect();
    let expected: BTreeSet<String> = ids[7..14]
        .iter()
        .map(|id| format!("pack {pack} blob {id}"))
        .collect();
    assert_eq!(broken, expected);
    let err = repo.load_blob(&ids[8]).unwrap_err().to_string();
    assert!(
        err.contains(&ids[8].to_string()) && err.contains("authentication failed"),
        "{err}"
    );
    assert_eq!(repo.load_blob(&ids[14]).unwrap(), pages[14]);
}

#[test]
fn blobs_adjacent_in_a_buffer_are_framed_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    let pages: Vec<Vec<u8>> = (0..20).map(page).collect();
    // Pages 3 and 10 are stored already: the frames around them hold pages that are not
    // adjacent in the buffer (copied together) as well as runs that are (sealed in place).
    repo.save_blobs(BlobKind::Data, &[&pages[3], &pages[10]])
        .unwrap();
    let data = pages.concat();
    let saved = repo
        .save_adjacent(BlobKind::Data, &data, &[9000; 20])
        .unwrap();
    let new: Vec<bool> = saved.iter().map(|s| s.new).collect();
    assert_eq!(new, (0..20).map(|i| i != 3 && i != 10).collect::<Vec<_>>());
    repo.flush().unwrap();
    for (i, s) in saved.iter().enumerate() {
        assert_eq!(s.id, repo.blob_id(&pages[i]));
        assert_eq!(repo.load_blob(&s.id).unwrap(), pages[i], "page {i}");
    }
    let frames: BTreeSet<u64> = repo
        .locate_many(&saved.iter().map(|s| s.id).collect::<Vec<_>>())
        .unwrap()
        .into_iter()
        .map(|l| l.unwrap().offset)
        .collect();
    assert_eq!(
        frames.len(),
        1 + 3,
        "pages 3 and 10 in one frame, the 18 others in frames of 7, 7 and 4"
    );
    let report = check(&repo, ReadData::All).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}
