//! Pack files: many sealed blobs, then a sealed trailer listing them, so that the index can
//! always be rebuilt from the packs alone.
//!
//! ```text
//! pack    = "CAIRNPK1" ‖ blob envelope* ‖ trailer envelope ‖ trailer_len:u32 LE ‖ "CAIRNPKT"
//! trailer = version:u8 (1) ‖ count:u32 ‖ entry*
//! entry   = kind:u8 ‖ blob id:32 ‖ offset:u64 ‖ length:u64 ‖ raw_len:u64     (57 bytes)
//! ```

use crate::backend::Backend;
use crate::envelope::MasterKey;
use crate::error::{Result, StoreError};
use crate::id::{BlobId, PackId};

pub const PACK_MAGIC: &[u8; 8] = b"CAIRNPK1";
pub const FOOTER_MAGIC: &[u8; 8] = b"CAIRNPKT";
const FOOTER_LEN: u64 = 12;
const TRAILER_VERSION: u8 = 1;
const ENTRY_LEN: usize = 57;
/// Packs are closed once they reach 16 MiB: few enough files for a network share, small enough
/// that repacking one during prune is cheap.
pub const PACK_TARGET_SIZE: usize = 16 << 20;

/// What a blob holds: file data, or metadata (directory trees and chunk lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobKind {
    Data,
    Tree,
}

impl BlobKind {
    pub fn code(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// Where a blob lies inside its pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub kind: BlobKind,
    pub id: BlobId,
    pub offset: u64,
    pub length: u64,
    pub raw_len: u64,
}

impl PackEntry {
    /// This blob's envelope within a whole pack's bytes; `None` when it lies outside them.
    pub fn envelope<'a>(&self, pack: &'a [u8]) -> Option<&'a [u8]> {
        let start = usize::try_from(self.offset).ok()?;
        let end = usize::try_from(self.offset.checked_add(self.length)?).ok()?;
        pack.get(start..end)
    }
}

/// The path of a pack inside the repository.
pub fn pack_path(id: &PackId) -> String {
    let hex = id.to_hex();
    format!("data/{}/{}", &hex[..2], hex)
}

/// Accumulates sealed blobs into one pack in memory.
pub struct PackWriter {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl Default for PackWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl PackWriter {
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(PACK_TARGET_SIZE + (1 << 20));
        buf.extend_from_slice(PACK_MAGIC);
        Self {
            buf,
            entries: Vec::new(),
        }
    }

    pub fn add(&mut self, kind: BlobKind, id: BlobId, raw_len: u64, envelope: &[u8]) {
        self.entries.push(PackEntry {
            kind,
            id,
            offset: self.buf.len() as u64,
            length: envelope.len() as u64,
            raw_len,
        });
        self.buf.extend_from_slice(envelope);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.buf.len() >= PACK_TARGET_SIZE
    }

    /// Appends the trailer and returns the pack's ID, bytes and entries.
    pub fn finish(mut self, key: &MasterKey) -> (PackId, Vec<u8>, Vec<PackEntry>) {
        let trailer = key.seal(&encode_entries(&self.entries), true);
        self.buf.extend_from_slice(&trailer);
        self.buf
            .extend_from_slice(&(trailer.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(FOOTER_MAGIC);
        let id = PackId(*blake3::hash(&self.buf).as_bytes());
        (id, self.buf, self.entries)
    }
}

/// Serializes entries as the trailer plaintext.
pub fn encode_entries(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + entries.len() * ENTRY_LEN);
    out.push(TRAILER_VERSION);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        encode_entry(&mut out, e);
    }
    out
}

pub(crate) fn encode_entry(out: &mut Vec<u8>, e: &PackEntry) {
    out.push(e.kind.code());
    out.extend_from_slice(&e.id.0);
    out.extend_from_slice(&e.offset.to_le_bytes());
    out.extend_from_slice(&e.length.to_le_bytes());
    out.extend_from_slice(&e.raw_len.to_le_bytes());
}

/// A bounds-checked little-endian reader over a decoded object.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    object: &'a dyn Fn() -> String,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8], object: &'a dyn Fn() -> String) -> Self {
        Self {
            data,
            pos: 0,
            object,
        }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(StoreError::corrupt(
                (self.object)(),
                format!("truncated at byte {}", self.pos),
            )),
        }
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    pub fn id(&mut self) -> Result<[u8; 32]> {
        Ok(self.take(32)?.try_into().expect("32"))
    }
    pub fn finished(&self) -> bool {
        self.pos == self.data.len()
    }
    pub fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::corrupt((self.object)(), reason)
    }

    /// Reads `count:u32 ‖ entry*`.
    pub fn entries(&mut self) -> Result<Vec<PackEntry>> {
        let count = self.u32()? as usize;
        if count > (self.data.len() - self.pos) / ENTRY_LEN {
            return Err(self.corrupt(format!("entry count {count} exceeds the object's size")));
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let code = self.u8()?;
            let kind = BlobKind::from_code(code)
                .ok_or_else(|| self.corrupt(format!("unknown blob kind {code}")))?;
            entries.push(PackEntry {
                kind,
                id: BlobId(self.id()?),
                offset: self.u64()?,
                length: self.u64()?,
                raw_len: self.u64()?,
            });
        }
        Ok(entries)
    }
}

/// Parses trailer plaintext.
pub fn decode_entries(data: &[u8], object: &dyn Fn() -> String) -> Result<Vec<PackEntry>> {
    let mut c = Cursor::new(data, object);
    let version = c.u8()?;
    if version != TRAILER_VERSION {
        return Err(c.corrupt(format!("unknown trailer version {version}")));
    }
    let entries = c.entries()?;
    if !c.finished() {
        return Err(c.corrupt("trailing bytes after the entries"));
    }
    Ok(entries)
}

/// Reads and authenticates the trailer of a pack, checking that every entry lies inside the
/// pack's blob area.
pub fn read_trailer(
    backend: &dyn Backend,
    key: &MasterKey,
    id: &PackId,
) -> Result<(u64, Vec<PackEntry>)> {
    let path = pack_path(id);
    let object = || format!("pack {id}");
    let size = backend.size(&path)?;
    if size < PACK_MAGIC.len() as u64 + FOOTER_LEN {
        return Err(StoreError::corrupt(
            object(),
            format!("only {size} bytes long"),
        ));
    }
    let footer = backend.read_at(&path, size - FOOTER_LEN, FOOTER_LEN)?;
    if &footer[4..] != FOOTER_MAGIC {
        return Err(StoreError::corrupt(object(), "footer magic missing"));
    }
    let trailer_len = u64::from(u32::from_le_bytes(footer[..4].try_into().expect("4")));
    let blobs_end = size
        .checked_sub(FOOTER_LEN + trailer_len)
        .filter(|&end| end >= PACK_MAGIC.len() as u64)
        .ok_or_else(|| {
            StoreError::corrupt(
                object(),
                format!("trailer length {trailer_len} exceeds pack"),
            )
        })?;
    let sealed = backend.read_at(&path, blobs_end, trailer_len)?;
    let trailer_object = || format!("trailer of pack {id}");
    let plain = key.open(&sealed, &trailer_object)?;
    let entries = decode_entries(&plain, &trailer_object)?;
    for e in &entries {
        let end = e.offset.checked_add(e.length);
        if e.offset < PACK_MAGIC.len() as u64 || end.is_none_or(|end| end > blobs_end) {
            return Err(StoreError::corrupt(
                trailer_object(),
                format!("blob {} lies outside the pack", e.id),
            ));
        }
    }
    Ok((size, entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::LocalBackend;
    use proptest::prelude::*;

    fn write_pack(
        dir: &std::path::Path,
        key: &MasterKey,
        blobs: &[Vec<u8>],
    ) -> (PackId, Vec<PackEntry>) {
        let mut w = PackWriter::new();
        for b in blobs {
            w.add(
                BlobKind::Data,
                key.blob_id(b),
                b.len() as u64,
                &key.seal(b, true),
            );
        }
        let (id, bytes, entries) = w.finish(key);
        let path = dir.join(pack_path(&id));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        (id, entries)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..20)) {
            let dir = tempfile::tempdir().unwrap();
            let key = MasterKey::random(true);
            let (id, entries) = write_pack(dir.path(), &key, &blobs);
            let backend = LocalBackend::new(dir.path());
            let (_, read) = read_trailer(&backend, &key, &id).unwrap();
            prop_assert_eq!(&read, &entries);
            for (e, b) in read.iter().zip(&blobs) {
                let env = backend.read_at(&pack_path(&id), e.offset, e.length).unwrap();
                prop_assert_eq!(&key.open(&env, &|| "blob".into()).unwrap(), b);
                prop_assert_eq!(e.id, key.blob_id(b));
            }
        }
    }

    #[test]
    fn damaged_trailers_are_reported_not_panicked() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::random(true);
        let (id, _) = write_pack(dir.path(), &key, &[b"one".to_vec(), b"two".to_vec()]);
        let path = dir.path().join(pack_path(&id));
        let good = std::fs::read(&path).unwrap();
        let backend = LocalBackend::new(dir.path());
        for i in (0..good.len())
            .step_by(7)
            .chain([good.len() - 1, good.len() - 12])
        {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            // Flips inside blob bodies do not touch the trailer; everything else must fail.
            if let Err(e) = read_trailer(&backend, &key, &id) {
                assert!(e.to_string().contains(&id.to_string()), "{e}");
            }
        }
        for len in [0, 5, 19, good.len() - 1] {
            std::fs::write(&path, &good[..len]).unwrap();
            let err = read_trailer(&backend, &key, &id).unwrap_err();
            assert!(err.to_string().contains("corrupt"), "{err}");
        }
    }
}
