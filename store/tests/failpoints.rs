//! Failpoints: every write of a backup fails in turn; the repository must stay valid each time
//! (every visible snapshot loads completely) and the next backup must succeed.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

mod common;

use cairn_store::backend::{Backend, LocalBackend};
use cairn_store::{
    BlobKind, Content, ContentBuilder, ContentEntry, Node, NodeKind, Repository, Result, Snapshot,
    StoreError, Tree,
};
use common::{bytes, init_options, open_options};

/// A local backend whose `fail_at`-th write (counting from 1) fails after writing nothing.
struct FailingBackend {
    inner: LocalBackend,
    writes: AtomicUsize,
    fail_at: usize,
}

impl Backend for FailingBackend {
    fn write(&self, path: &str, data: &[u8]) -> Result<()> {
        if self.writes.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Err(StoreError::Io {
                context: format!("writing {path}"),
                error: std::io::Error::other("injected failure"),
            });
        }
        self.inner.write(path, data)
    }
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn read_at(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.inner.read_at(path, offset, len)
    }
    fn size(&self, path: &str) -> Result<u64> {
        self.inner.size(path)
    }
    fn list(&self, dir: &str) -> Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn remove(&self, path: &str) -> Result<()> {
        self.inner.remove(path)
    }
}

/// A backup through the store API: 40 MiB of data in 1 MiB chunks (three packs), a chunk list,
/// a tree and a snapshot. Returns the data it stored.
fn backup(repo: &Repository, seed: u64) -> Result<Vec<u8>> {
    let data = bytes(40 << 20, seed);
    let mut builder = ContentBuilder::new();
    let mut save = |b: Vec<u8>| repo.save_list(b);
    for batch in data.chunks(8 << 20) {
        let chunks: Vec<&[u8]> = batch.chunks(1 << 20).collect();
        for saved in repo.save_blobs(BlobKind::Data, &chunks)? {
            builder.push(ContentEntry(saved.id, saved.size), &mut save)?;
        }
    }
    let content: Content = builder.finish(&mut save)?;
    let mut node = Node::new(format!("file-{seed}"), NodeKind::File);
    node.size = data.len() as u64;
    node.content = Some(content);
    let tree = repo.save_tree(&Tree::new(vec![node]))?;
    let snapshot = Snapshot {
        version: 1,
        time: chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00+00:00").unwrap()
            + chrono::Duration::seconds(seed as i64),
        host: "test".into(),
        username: String::new(),
        tags: vec![],
        paths: vec![format!("file-{seed}")],
        tree,
        parent: None,
        partial: false,
        summary: Default::default(),
        mssql: vec![],
    };
    repo.save_snapshot(&snapshot)?;
    Ok(data)
}

fn verify_all(dir: &Path, expected: &std::collections::HashMap<String, Vec<u8>>) {
    let cache = dir.join("cache");
    let repo = Repository::open(&dir.join("repo"), &open_options(&cache)).unwrap();
    for (_, snap) in repo.snapshots().unwrap() {
        let tree = repo.load_tree(&snap.tree).unwrap();
        let node = &tree.nodes[0];
        let mut out = Vec::new();
        for e in repo.chunks(node.content.as_ref().unwrap()) {
            out.extend(repo.load_blob(&e.unwrap().0).unwrap());
        }
        assert!(
            out == expected[&node.name],
            "snapshot of {} differs",
            node.name
        );
    }
}

#[test]
fn a_failure_at_any_write_leaves_a_valid_repository() {
    let dir = tempfile::tempdir().unwrap();
    let options = init_options();
    let cache = dir.path().join("cache");
    Repository::init(&dir.path().join("repo"), &options).unwrap();
    let mut expected = std::collections::HashMap::new();
    let repo = Repository::open(&dir.path().join("repo"), &open_options(&cache)).unwrap();
    expected.insert("file-0".to_string(), backup(&repo, 0).unwrap());
    drop(repo);

    // A backup writes 3 data packs, 1 pack of trees and lists, 1 index segment and 1
    // snapshot: fail each in turn.
    let mut failures = 0;
    for fail_at in 1..=7 {
        let backend = Arc::new(FailingBackend {
            inner: LocalBackend::new(dir.path().join("repo")),
            writes: AtomicUsize::new(0),
            fail_at,
        });
        let repo = Repository::open_with(backend, &dir.path().join("repo"), &open_options(&cache))
            .unwrap();
        let seed = 100 + fail_at as u64;
        match backup(&repo, seed) {
            Ok(data) => {
                expected.insert(format!("file-{seed}"), data);
            }
            Err(e) => {
                failures += 1;
                assert!(e.to_string().contains("injected failure"), "{e}");
                // The same open repository retries, and must not reference what it never
                // wrote or never indexed.
                expected.insert(format!("file-{seed}"), backup(&repo, seed).unwrap());
            }
        }
        drop(repo);
        verify_all(dir.path(), &expected);
        // The catalog may be lost too: rebuilding it from the repository gives the same answer.
        if fail_at % 2 == 0 {
            std::fs::remove_dir_all(dir.path().join("cache")).unwrap();
            verify_all(dir.path(), &expected);
        }
    }
    assert_eq!(
        failures, 6,
        "writes 1..=6 fail a backup; the 7th write is never reached"
    );
    let repo = Repository::open(&dir.path().join("repo"), &open_options(&cache)).unwrap();
    expected.insert("file-999".into(), backup(&repo, 999).unwrap());
    drop(repo);
    verify_all(dir.path(), &expected);
}
