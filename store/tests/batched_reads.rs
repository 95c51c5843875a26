//! Loading many blobs at once (`load_blobs`, `chunks_of_many`) gives exactly what loading them
//! one by one gives, and names what is missing.

mod common;

use cairn_store::{
    BlobId, BlobKind, Content, ContentBuilder, ContentEntry, Repository, StoreError,
};
use common::{bytes, new_repo};

/// Stores `count` chunks of 8 KiB (chunk `i` has seed `seeds(i)`) and their chunk lists;
/// returns the content.
fn content(repo: &Repository, count: u64, seeds: impl Fn(u64) -> u64) -> Content {
    let mut builder = ContentBuilder::new();
    let mut save = |b: Vec<u8>| repo.save_list(b);
    for i in 0..count {
        let chunk = bytes(8 << 10, seeds(i));
        let saved = repo.save_blobs(BlobKind::Data, &[&chunk]).unwrap();
        builder
            .push(ContentEntry(saved[0].id, saved[0].size), &mut save)
            .unwrap();
    }
    builder.finish(&mut save).unwrap()
}

#[test]
fn batched_loads_match_single_loads() {
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    // 12,000 chunks of 8 KiB fill several packs and need at least two levels of lists: a
    // list is cut where an entry's ID says so (1 in 32) and always at 256 entries, so about
    // 375 lists hold the chunks and the level above them is cut at least once, whatever the
    // key (how deep a content goes depends on the key's IDs: with 5,000 chunks an exact
    // depth of 2 failed now and then). The others share chunks and lists with it, repeat a
    // chunk, hold a few chunks, or nothing.
    let contents = [
        content(&repo, 12_000, |i| i),
        content(&repo, 3000, |i| i + 1000),
        content(&repo, 300, |i| i % 7),
        content(&repo, 3, |i| 90_000 + i),
        content(&repo, 0, |i| i),
    ];
    repo.flush().unwrap();
    assert!(contents[0].depth >= 2, "the test needs two levels of lists");
    assert_eq!(contents[3].depth, 0);

    let refs: Vec<&Content> = contents.iter().collect();
    let batched = repo.chunks_of_many(&refs).unwrap();
    for (content, batched) in contents.iter().zip(&batched) {
        let single: Vec<ContentEntry> = repo.chunks(content).map(Result::unwrap).collect();
        assert_eq!(&single, batched);
    }
    assert_eq!(
        batched.iter().map(Vec::len).collect::<Vec<_>>(),
        [12_000, 3000, 300, 3, 0]
    );

    // Every chunk of the first content, the first listed twice: each once, byte for byte.
    let mut ids: Vec<BlobId> = batched[0].iter().map(|e| e.0).collect();
    ids.push(ids[0]);
    let loaded = repo.load_blobs(&ids).unwrap();
    assert_eq!(loaded.len(), 12_000);
    for (i, e) in batched[0].iter().enumerate() {
        assert_eq!(loaded[&e.0], bytes(8 << 10, i as u64), "chunk {i}");
    }

    let unknown = BlobId([7; 32]);
    ids.push(unknown);
    match repo.load_blobs(&ids) {
        Err(StoreError::BlobNotFound(id)) => assert_eq!(id, unknown.to_string()),
        other => panic!("expected the unknown blob to be named, got {other:?}"),
    }
}

/// Trees and chunk lists go to packs of their own, even when saved between data chunks (as a
/// backup does): walking a snapshot then reads a few dense packs, not every data pack.
#[test]
fn metadata_blobs_are_packed_apart_from_data() {
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    let mut data = Vec::new();
    let mut lists = Vec::new();
    // 2,500 incompressible chunks of 8 KiB: 20 MB, more than one 16 MiB pack.
    for i in 0..2500u64 {
        let chunk = bytes(8 << 10, i);
        data.push(repo.save_blobs(BlobKind::Data, &[&chunk]).unwrap()[0].id);
        lists.push(repo.save_list(bytes(300, 1_000_000 + i)).unwrap());
    }
    repo.flush().unwrap();
    let packs_of = |ids: &[BlobId]| -> std::collections::BTreeSet<_> {
        repo.locate_many(ids)
            .unwrap()
            .into_iter()
            .map(|l| l.unwrap().pack)
            .collect()
    };
    let (data_packs, list_packs) = (packs_of(&data), packs_of(&lists));
    assert_eq!(data_packs.len(), 2);
    assert_eq!(list_packs.len(), 1, "750 KB of lists fit one pack");
    assert!(data_packs.is_disjoint(&list_packs));
    let loaded = repo.load_blobs(&lists).unwrap();
    assert_eq!(loaded[&lists[7]], bytes(300, 1_000_007));
}
