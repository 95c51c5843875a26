//! Index segments are written during a backup, not all at its end: once enough packs, or
//! enough blobs, wait for one.

mod common;

use cairn_store::BlobKind;
use common::{bytes, new_repo};

fn segments(repo: &std::path::Path) -> usize {
    std::fs::read_dir(repo.join("index")).unwrap().count()
}

#[test]
fn many_small_blobs_are_indexed_before_the_flush() {
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path());
    let path = dir.path().join("repo");
    // 50,000 incompressible blobs of 1 KiB fill three 16 MiB packs (about 15,000 blobs each):
    // far from the 256 packs that also start a segment, past the 32,768 blobs.
    for batch in 0..50u64 {
        let blobs: Vec<Vec<u8>> = (0..1000).map(|i| bytes(1024, batch * 1000 + i)).collect();
        let slices: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        repo.save_blobs(BlobKind::Data, &slices).unwrap();
    }
    assert_eq!(segments(&path), 1, "one segment written while saving");
    repo.flush().unwrap();
    assert_eq!(segments(&path), 2, "the rest at the flush");
    // Every blob is found through the catalog, whichever segment lists it.
    let ids: Vec<_> = (0..50_000u64)
        .map(|s| repo.blob_id(&bytes(1024, s)))
        .collect();
    assert!(repo.locate_many(&ids).unwrap().iter().all(Option::is_some));
}
