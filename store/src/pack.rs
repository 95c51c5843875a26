//! Pack files: many sealed blobs, then a sealed trailer listing them, so that the index can
//! always be rebuilt from the packs alone.
//!
//! ```text
//! pack    = "CAIRNPK1" ‖ blob envelope* ‖ trailer envelope ‖ trailer_len:u32 LE ‖ "CAIRNPKT"
//! trailer = version:u8 (1) ‖ count:u32 ‖ entry*
//! entry   = kind:u8 ‖ blob id:32 ‖ offset:u64 ‖ length:u64 ‖ raw_len:u64     (57 bytes)
//! ```

use std::sync::Arc;

use crate::backend::{Backend, NewFile};
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

/// Writes sealed blobs into one pack file as they come (the pack is never whole in memory),
/// hashing it on the way to name it when it is finished.
#[derive(Default)]
pub struct PackWriter {
    file: Option<Box<dyn NewFile>>,
    hasher: blake3::Hasher,
    len: u64,
    entries: Vec<PackEntry>,
}

/// A pack whose bytes are all written, waiting for [`FinishedPack::commit`].
pub struct FinishedPack {
    pub id: PackId,
    pub size: u64,
    pub entries: Vec<PackEntry>,
    file: Box<dyn NewFile>,
}

impl FinishedPack {
    /// Makes the pack durable under its name; returns its ID, size and entries.
    pub fn commit(self) -> Result<(PackId, u64, Vec<PackEntry>)> {
        self.file.commit(&pack_path(&self.id))?;
        Ok((self.id, self.size, self.entries))
    }
}

impl PackWriter {
    pub fn new() -> Self {
        Self::default()
    }

    fn append(&mut self, backend: &Arc<dyn Backend>, bytes: &[u8]) -> Result<()> {
        if self.file.is_none() {
            let mut file = backend.clone().create()?;
            file.append(PACK_MAGIC)?;
            self.hasher.update(PACK_MAGIC);
            self.len = PACK_MAGIC.len() as u64;
            self.file = Some(file);
        }
        self.file.as_mut().expect("just created").append(bytes)?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Appends a blob's envelope; the pack file is created with the first.
    pub fn add(
        &mut self,
        backend: &Arc<dyn Backend>,
        kind: BlobKind,
        id: BlobId,
        raw_len: u64,
        envelope: &[u8],
    ) -> Result<()> {
        if self.file.is_none() {
            // Creates the file and writes the magic: the first blob's offset follows it.
            self.append(backend, &[])?;
        }
        self.entries.push(PackEntry {
            kind,
            id,
            offset: self.len,
            length: envelope.len() as u64,
            raw_len,
        });
        self.append(backend, envelope)
    }

    /// The blobs added so far.
    pub fn entries(&self) -> &[PackEntry] {
        &self.entries
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.len >= PACK_TARGET_SIZE as u64
    }

    /// Appends the trailer; the pack is then named by the hash of all its bytes.
    pub fn finish(mut self, backend: &Arc<dyn Backend>, key: &MasterKey) -> Result<FinishedPack> {
        let trailer = key.seal(&encode_entries(&self.entries), true);
        let mut tail = trailer;
        let trailer_len = tail.len() as u32;
        tail.extend_from_slice(&trailer_len.to_le_bytes());
        tail.extend_from_slice(FOOTER_MAGIC);
        self.append(backend, &tail)?;
        Ok(FinishedPack {
            id: PackId(*self.hasher.finalize().as_bytes()),
            size: self.len,
            entries: self.entries,
            file: self.file.expect("created by the first append"),
        })
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
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir));
        let mut w = PackWriter::new();
        for b in blobs {
            w.add(
                &backend,
                BlobKind::Data,
                key.blob_id(b),
                b.len() as u64,
                &key.seal(b, true),
            )
            .unwrap();
        }
        let pack = w.finish(&backend, key).unwrap();
        std::fs::create_dir_all(dir.join(pack_path(&pack.id)).parent().unwrap()).unwrap();
        let (id, _, entries) = pack.commit().unwrap();
        let bytes = std::fs::read(dir.join(pack_path(&id))).unwrap();
        assert_eq!(id.0, *blake3::hash(&bytes).as_bytes(), "named by its hash");
        assert_eq!(
            std::fs::read_dir(dir.join("data")).unwrap().count(),
            1,
            "no temporary file left"
        );
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
