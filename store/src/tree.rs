//! Snapshot content: trees of nodes, and the chunk lists of file contents.
//!
//! Trees are JSON with a fixed field order and nodes sorted by name, so an unchanged directory
//! serializes to the same bytes and dedups. Chunk lists longer than [`INLINE_MAX`] entries are
//! split into content-defined list blobs, level by level (a hash tree), so an unchanged file
//! costs no new metadata and an edited one only the list blobs around the edit.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::id::{BlobId, TreeId};
use crate::pack::Cursor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Dir,
    File,
    Symlink,
    /// Bytes from standard input or a command's output.
    Stream,
}

/// One entry of a chunk list: a blob and the plaintext bytes it covers (for a list blob, the
/// sum over its entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentEntry(pub BlobId, pub u64);

/// A file's content: `entries` are data chunks when `depth` is 0, otherwise list blobs whose
/// entries have depth `depth - 1`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Content {
    pub depth: u8,
    pub entries: Vec<ContentEntry>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}
fn is_zero_u(v: &u64) -> bool {
    *v == 0
}
fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// The name as UTF-8 (lossy when the original bytes are not UTF-8).
    pub name: String,
    /// The original name bytes in hex, when they are not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_raw: Option<String>,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub mode: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtime_ns: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ctime_ns: i64,
    #[serde(default, skip_serializing_if = "is_zero_u")]
    pub inode: u64,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub uid: u32,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub gid: u32,
    #[serde(default, skip_serializing_if = "is_zero_u")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<TreeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_raw: Option<String>,
    /// Kind-specific metadata (`"mssql"`, `"zip"`), by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Node {
    pub fn new(name: impl Into<String>, kind: NodeKind) -> Self {
        Self {
            name: name.into(),
            name_raw: None,
            kind,
            mode: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            content: None,
            subtree: None,
            target: None,
            target_raw: None,
            meta: None,
        }
    }

    /// The name's original bytes.
    pub fn name_bytes(&self) -> Vec<u8> {
        raw_or_text(&self.name_raw, &self.name)
    }

    pub fn target_bytes(&self) -> Option<Vec<u8>> {
        self.target
            .as_ref()
            .map(|t| raw_or_text(&self.target_raw, t))
    }

    /// Sets `name` (and `name_raw` when the bytes are not UTF-8).
    pub fn set_name_bytes(&mut self, bytes: &[u8]) {
        let (text, raw) = text_and_raw(bytes);
        self.name = text;
        self.name_raw = raw;
    }

    pub fn set_target_bytes(&mut self, bytes: &[u8]) {
        let (text, raw) = text_and_raw(bytes);
        self.target = Some(text);
        self.target_raw = raw;
    }
}

fn raw_or_text(raw: &Option<String>, text: &str) -> Vec<u8> {
    raw.as_ref()
        .and_then(|r| hex::decode(r).ok())
        .unwrap_or_else(|| text.as_bytes().to_vec())
}

fn text_and_raw(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(hex::encode(bytes)),
        ),
    }
}

/// A directory: its nodes sorted by name bytes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Builds a tree, sorting the nodes into their canonical order.
    pub fn new(mut nodes: Vec<Node>) -> Self {
        nodes.sort_by_cached_key(Node::name_bytes);
        Self { nodes }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("trees serialize to JSON")
    }

    pub fn from_bytes(bytes: &[u8], id: &TreeId) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| StoreError::corrupt(format!("tree {id}"), format!("bad tree: {e}")))
    }

    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name_bytes().as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

/// A content root holds up to this many entries inline in the node.
pub const INLINE_MAX: usize = 64;
/// A list blob ends after an entry whose ID's last byte has its low 5 bits clear (1 in 32),
/// once it holds at least `LIST_MIN` entries, and always at `LIST_MAX`. Measured on the
/// nightly workload (`benches/nightly.sh`, 8 KiB page chunks, 1 % scattered churn): lists of
/// 1 in 128 made nights add 1.52–1.55 % of their input, 1 in 32 1.41–1.45 %, 1 in 16
/// 1.39–1.43 % (for 3 % more blobs); every changed page rewrites the list blob holding it.
const LIST_CUT_MASK: u8 = 0x1f;
const LIST_MIN: usize = 4;
const LIST_MAX: usize = 256;
const LIST_VERSION: u8 = 1;

/// Serializes a list blob: `version:u8 ‖ count:u32 ‖ (id:32 ‖ size:u64)*`.
pub fn encode_list(entries: &[ContentEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + entries.len() * 40);
    out.push(LIST_VERSION);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for ContentEntry(id, size) in entries {
        out.extend_from_slice(&id.0);
        out.extend_from_slice(&size.to_le_bytes());
    }
    out
}

pub fn decode_list(bytes: &[u8], id: &BlobId) -> Result<Vec<ContentEntry>> {
    let object = || format!("chunk list {id}");
    let mut c = Cursor::new(bytes, &object);
    let version = c.u8()?;
    if version != LIST_VERSION {
        return Err(c.corrupt(format!("unknown list version {version}")));
    }
    let count = c.u32()? as usize;
    if count > bytes.len() / 40 {
        return Err(c.corrupt(format!("entry count {count} exceeds the blob")));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(ContentEntry(BlobId(c.id()?), c.u64()?));
    }
    if !c.finished() {
        return Err(c.corrupt("trailing bytes after the entries"));
    }
    Ok(out)
}

/// Builds a [`Content`] from chunk entries pushed in order, saving list blobs as they close
/// through `save` (which stores a serialized list and returns its ID). Memory holds only the
/// open list of each level. The result depends only on the entry sequence.
#[derive(Default)]
pub struct ContentBuilder {
    levels: Vec<Vec<ContentEntry>>,
}

impl ContentBuilder {
    pub fn new() -> Self {
        Self {
            levels: vec![Vec::new()],
        }
    }

    pub fn push(
        &mut self,
        entry: ContentEntry,
        save: &mut dyn FnMut(Vec<u8>) -> Result<BlobId>,
    ) -> Result<()> {
        self.push_at(0, entry, save)
    }

    fn push_at(
        &mut self,
        level: usize,
        entry: ContentEntry,
        save: &mut dyn FnMut(Vec<u8>) -> Result<BlobId>,
    ) -> Result<()> {
        if self.levels.len() == level {
            self.levels.push(Vec::new());
        }
        let list = &mut self.levels[level];
        list.push(entry);
        let cut = list.len() >= LIST_MAX
            || (list.len() >= LIST_MIN && entry.0 .0[31] & LIST_CUT_MASK == 0);
        if cut {
            self.close(level, save)?;
        }
        Ok(())
    }

    /// Saves the open list of `level` as a blob and pushes its entry one level up.
    fn close(
        &mut self,
        level: usize,
        save: &mut dyn FnMut(Vec<u8>) -> Result<BlobId>,
    ) -> Result<()> {
        let list = std::mem::take(&mut self.levels[level]);
        let size = list.iter().map(|e| e.1).sum();
        let id = save(encode_list(&list))?;
        self.push_at(level + 1, ContentEntry(id, size), save)
    }

    pub fn finish(mut self, save: &mut dyn FnMut(Vec<u8>) -> Result<BlobId>) -> Result<Content> {
        let mut level = 0;
        loop {
            let top = level + 1 == self.levels.len();
            if top && self.levels[level].len() <= INLINE_MAX {
                return Ok(Content {
                    depth: level as u8,
                    entries: std::mem::take(&mut self.levels[level]),
                });
            }
            if !self.levels[level].is_empty() {
                self.close(level, save)?;
            }
            level += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn entries(n: usize, salt: u8) -> Vec<ContentEntry> {
        (0..n)
            .map(|i| {
                let h = blake3::hash(&[&(i as u64).to_le_bytes()[..], &[salt]].concat());
                ContentEntry(BlobId(*h.as_bytes()), 1000 + i as u64)
            })
            .collect()
    }

    fn build(list: &[ContentEntry], store: &mut HashMap<BlobId, Vec<u8>>) -> Content {
        let mut save = |bytes: Vec<u8>| {
            let id = BlobId(*blake3::hash(&bytes).as_bytes());
            store.insert(id, bytes);
            Ok(id)
        };
        let mut b = ContentBuilder::new();
        for e in list {
            b.push(*e, &mut save).unwrap();
        }
        b.finish(&mut save).unwrap()
    }

    fn flatten(c: &Content, store: &HashMap<BlobId, Vec<u8>>) -> Vec<ContentEntry> {
        fn walk(
            depth: u8,
            list: &[ContentEntry],
            store: &HashMap<BlobId, Vec<u8>>,
            out: &mut Vec<ContentEntry>,
        ) {
            for e in list {
                if depth == 0 {
                    out.push(*e);
                } else {
                    let inner = decode_list(&store[&e.0], &e.0).unwrap();
                    assert_eq!(inner.iter().map(|x| x.1).sum::<u64>(), e.1);
                    walk(depth - 1, &inner, store, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(c.depth, &c.entries, store, &mut out);
        out
    }

    #[test]
    fn short_lists_stay_inline_long_lists_round_trip() {
        for n in [0, 1, INLINE_MAX, INLINE_MAX + 1, 5000, 200_000] {
            let mut store = HashMap::new();
            let list = entries(n, 1);
            let c = build(&list, &mut store);
            assert!(c.entries.len() <= INLINE_MAX);
            assert_eq!(c.depth == 0, n <= INLINE_MAX, "n={n}");
            assert_eq!(flatten(&c, &store), list, "n={n}");
        }
    }

    #[test]
    fn an_insertion_rewrites_few_list_blobs() {
        let mut store = HashMap::new();
        let list = entries(20_000, 2);
        build(&list, &mut store);
        let before = store.len();
        let mut edited = list.clone();
        edited.insert(10_000, entries(1, 3)[0]);
        build(&edited, &mut store);
        let added = store.len() - before;
        assert!(added <= 3, "{added} new list blobs out of {before}");
    }

    #[test]
    fn tree_order_and_lookup_by_raw_name() {
        let mut a = Node::new("b", NodeKind::File);
        a.size = 1;
        let mut weird = Node::new("", NodeKind::File);
        weird.set_name_bytes(b"a\xff");
        let t = Tree::new(vec![a, Node::new("a", NodeKind::Dir), weird]);
        let names: Vec<Vec<u8>> = t.nodes.iter().map(Node::name_bytes).collect();
        assert_eq!(names, vec![b"a".to_vec(), b"a\xff".to_vec(), b"b".to_vec()]);
        let id = BlobId([0; 32]);
        let back = Tree::from_bytes(&t.to_bytes(), &id).unwrap();
        assert_eq!(back, t);
        assert_eq!(
            back.find(b"a\xff").unwrap().name_raw.as_deref(),
            Some("61ff")
        );
        assert!(Tree::from_bytes(b"{nope", &id).is_err());
    }
}
