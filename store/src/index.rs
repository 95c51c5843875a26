//! Index segments: which blobs each pack holds. Written after the packs they name.
//!
//! ```text
//! segment = version:u8 ‖ packs:u32 ‖ (pack id:32 ‖ pack size:u64 ‖ count:u32 ‖ entry*)*
//! ```
//! (`version` and `entry` as in the pack trailer: 1 without `start`, 2 with.) The file is sealed in an envelope and named after the
//! blake3 hash of its bytes.

use crate::envelope::MasterKey;
use crate::error::Result;
use crate::id::{IndexId, PackId};
use crate::pack::{encode_entry, Cursor, PackEntry};

/// One pack as listed in an index segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPack {
    pub id: PackId,
    pub size: u64,
    pub entries: Vec<PackEntry>,
}

pub fn index_path(id: &IndexId) -> String {
    format!("index/{id}")
}

/// Serializes and seals a segment in entry layout `version`; returns its ID and file bytes.
pub fn encode_segment(key: &MasterKey, packs: &[IndexedPack], version: u8) -> (IndexId, Vec<u8>) {
    let mut plain = vec![version];
    plain.extend_from_slice(&(packs.len() as u32).to_le_bytes());
    for p in packs {
        plain.extend_from_slice(&p.id.0);
        plain.extend_from_slice(&p.size.to_le_bytes());
        plain.extend_from_slice(&(p.entries.len() as u32).to_le_bytes());
        for e in &p.entries {
            encode_entry(&mut plain, e, version);
        }
    }
    let sealed = key.seal(&plain, true);
    (IndexId(*blake3::hash(&sealed).as_bytes()), sealed)
}

/// Authenticates and parses a segment's file bytes.
pub fn decode_segment(key: &MasterKey, id: &IndexId, bytes: &[u8]) -> Result<Vec<IndexedPack>> {
    let object = || format!("index segment {id}");
    let plain = key.open(bytes, &object)?;
    let mut c = Cursor::new(&plain, &object);
    let version = c.entry_version("segment")?;
    let count = c.u32()?;
    let mut packs = Vec::new();
    for _ in 0..count {
        let id = PackId(c.id()?);
        let size = c.u64()?;
        let entries = c.entries(version)?;
        packs.push(IndexedPack { id, size, entries });
    }
    if !c.finished() {
        return Err(c.corrupt("trailing bytes after the packs"));
    }
    Ok(packs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::BlobId;
    use crate::pack::BlobKind;

    #[test]
    fn segment_round_trip_and_corruption() {
        let key = MasterKey::random(true);
        let packs = vec![IndexedPack {
            id: PackId([1; 32]),
            size: 1000,
            entries: vec![PackEntry {
                kind: BlobKind::Tree,
                id: BlobId([2; 32]),
                offset: 8,
                length: 100,
                raw_len: 300,
                start: 0,
            }],
        }];
        let (id, bytes) = encode_segment(&key, &packs, 1);
        assert_eq!(decode_segment(&key, &id, &bytes).unwrap(), packs);
        let mut framed = packs.clone();
        framed[0].entries[0].start = 700;
        let (id2, bytes2) = encode_segment(&key, &framed, 2);
        assert_eq!(decode_segment(&key, &id2, &bytes2).unwrap(), framed);
        let mut bad = bytes.clone();
        bad[3] ^= 1;
        let err = decode_segment(&key, &id, &bad).unwrap_err().to_string();
        assert!(err.contains(&format!("index segment {id}")), "{err}");
    }
}
