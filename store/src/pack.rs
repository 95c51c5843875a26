//! Pack files: many sealed frames of blobs, then a sealed trailer listing the blobs, so that
//! the index can always be rebuilt from the packs alone.
//!
//! ```text
//! pack    = "CAIRNPK1" ‖ frame envelope* ‖ trailer envelope ‖ trailer_len:u32 LE ‖ "CAIRNPKT"
//! trailer = version:u8 ‖ count:u32 ‖ entry*
//! entry   = kind:u8 ‖ blob id:32 ‖ offset:u64 ‖ length:u64 ‖ raw_len:u64     (version 1: 57 bytes)
//!           ‖ start:u64                                                    (version 2: 65 bytes)
//! ```
//!
//! A frame is one envelope holding one blob's plaintext or, in format 2, several blobs'
//! plaintexts one after the other: compressing them together finds more repeats and builds
//! zstd's tables once. `offset`/`length` locate the frame, `start` the blob in its plaintext.

use std::sync::Arc;

use crate::backend::{Backend, NewFile};
use crate::envelope::MasterKey;
use crate::error::{Result, StoreError};
use crate::id::{BlobId, PackId};

pub const PACK_MAGIC: &[u8; 8] = b"CAIRNPK1";
pub const FOOTER_MAGIC: &[u8; 8] = b"CAIRNPKT";
const FOOTER_LEN: u64 = 12;
/// The trailer and index entry layout of each format: version 1 has no `start` (every frame
/// holds one blob).
pub const ENTRY_VERSIONS: std::ops::RangeInclusive<u8> = 1..=2;
const fn entry_len(version: u8) -> usize {
    if version == 1 {
        57
    } else {
        65
    }
}
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

/// Where a blob lies inside its pack: the frame's envelope (`offset`, `length`) and the blob's
/// place in the frame's plaintext (`start`, `raw_len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub kind: BlobKind,
    pub id: BlobId,
    pub offset: u64,
    pub length: u64,
    pub raw_len: u64,
    pub start: u64,
}

/// One blob of a frame about to be written: its ID, plaintext size and place in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub id: BlobId,
    pub raw_len: u64,
    pub start: u64,
}

/// Each entry's share of the stored bytes: a frame's length split between its blobs in
/// proportion to their plaintext (what prune frees by dropping one, and what growth reports).
/// The shares of a frame add up to its length.
pub fn stored_shares(entries: &[PackEntry]) -> Vec<u64> {
    let mut raw_of_frame: std::collections::HashMap<u64, (u64, usize)> = Default::default();
    for e in entries {
        let f = raw_of_frame.entry(e.offset).or_default();
        f.0 += e.raw_len;
        f.1 += 1;
    }
    let mut given: std::collections::HashMap<u64, (u64, usize)> = Default::default();
    entries
        .iter()
        .map(|e| {
            let (raw, members) = raw_of_frame[&e.offset];
            let g = given.entry(e.offset).or_default();
            g.1 += 1;
            let share = if g.1 == members {
                e.length - g.0.min(e.length) // the last takes what rounding left
            } else if raw == 0 {
                0
            } else {
                (u128::from(e.length) * u128::from(e.raw_len) / u128::from(raw)) as u64
            };
            g.0 += share;
            share
        })
        .collect()
}

impl PackEntry {
    /// This blob's frame envelope within a whole pack's bytes; `None` when it lies outside them.
    pub fn envelope_mut<'a>(&self, pack: &'a mut [u8]) -> Option<&'a mut [u8]> {
        let start = usize::try_from(self.offset).ok()?;
        let end = usize::try_from(self.offset.checked_add(self.length)?).ok()?;
        pack.get_mut(start..end)
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

    /// Appends a frame's envelope holding `members`; the pack file is created with the first.
    pub fn add(
        &mut self,
        backend: &Arc<dyn Backend>,
        kind: BlobKind,
        members: &[Member],
        envelope: &[u8],
    ) -> Result<()> {
        if self.file.is_none() {
            // Creates the file and writes the magic: the first frame's offset follows it.
            self.append(backend, &[])?;
        }
        let offset = self.len;
        self.append(backend, envelope)?;
        self.entries.extend(members.iter().map(|m| PackEntry {
            kind,
            id: m.id,
            offset,
            length: envelope.len() as u64,
            raw_len: m.raw_len,
            start: m.start,
        }));
        Ok(())
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

    /// Appends the trailer (entries of layout `version`); the pack is then named by the hash
    /// of all its bytes.
    pub fn finish(
        mut self,
        backend: &Arc<dyn Backend>,
        key: &MasterKey,
        version: u8,
    ) -> Result<FinishedPack> {
        let trailer = key.seal(&encode_entries(&self.entries, version), true);
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

/// Serializes entries as the trailer plaintext, in entry layout `version`.
pub fn encode_entries(entries: &[PackEntry], version: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + entries.len() * entry_len(version));
    out.push(version);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        encode_entry(&mut out, e, version);
    }
    out
}

/// Writes one entry in layout `version`. Version 1 has no `start`: its writers never put two
/// blobs in one frame.
pub(crate) fn encode_entry(out: &mut Vec<u8>, e: &PackEntry, version: u8) {
    debug_assert!(
        version >= 2 || e.start == 0,
        "version 1 frames hold one blob"
    );
    out.push(e.kind.code());
    out.extend_from_slice(&e.id.0);
    out.extend_from_slice(&e.offset.to_le_bytes());
    out.extend_from_slice(&e.length.to_le_bytes());
    out.extend_from_slice(&e.raw_len.to_le_bytes());
    if version >= 2 {
        out.extend_from_slice(&e.start.to_le_bytes());
    }
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

    /// Reads a version byte and checks it is a known entry layout.
    pub fn entry_version(&mut self, what: &str) -> Result<u8> {
        let version = self.u8()?;
        if !ENTRY_VERSIONS.contains(&version) {
            return Err(self.corrupt(format!("unknown {what} version {version}")));
        }
        Ok(version)
    }

    /// Reads `count:u32 ‖ entry*` in entry layout `version`.
    pub fn entries(&mut self, version: u8) -> Result<Vec<PackEntry>> {
        let count = self.u32()? as usize;
        if count > (self.data.len() - self.pos) / entry_len(version) {
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
                start: if version >= 2 { self.u64()? } else { 0 },
            });
        }
        Ok(entries)
    }
}

/// Parses trailer plaintext.
pub fn decode_entries(data: &[u8], object: &dyn Fn() -> String) -> Result<Vec<PackEntry>> {
    let mut c = Cursor::new(data, object);
    let version = c.entry_version("trailer")?;
    let entries = c.entries(version)?;
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
            let member = Member {
                id: key.blob_id(b),
                raw_len: b.len() as u64,
                start: 0,
            };
            w.add(&backend, BlobKind::Data, &[member], &key.seal(b, true))
                .unwrap();
        }
        let pack = w.finish(&backend, key, 2).unwrap();
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

    fn entry(offset: u64, length: u64, raw_len: u64, start: u64) -> PackEntry {
        PackEntry {
            kind: BlobKind::Data,
            id: BlobId([offset as u8 ^ start as u8; 32]),
            offset,
            length,
            raw_len,
            start,
        }
    }

    #[test]
    fn both_entry_layouts_read_back() {
        let single = vec![entry(8, 100, 300, 0), entry(108, 50, 40, 0)];
        let framed = vec![entry(8, 100, 300, 0), entry(8, 100, 200, 300)];
        let name = || "trailer".to_string();
        for (entries, version, len) in [(&single, 1, 5 + 2 * 57), (&framed, 2, 5 + 2 * 65)] {
            let bytes = encode_entries(entries, version);
            assert_eq!((bytes[0], bytes.len()), (version, len));
            assert_eq!(&decode_entries(&bytes, &name).unwrap(), entries);
        }
        let mut unknown = encode_entries(&single, 1);
        unknown[0] = 3;
        let err = decode_entries(&unknown, &name).unwrap_err().to_string();
        assert!(err.contains("unknown trailer version 3"), "{err}");
        // A version-2 trailer read as version 1 (or cut short) does not parse.
        let mut relabelled = encode_entries(&framed, 2);
        relabelled[0] = 1;
        assert!(decode_entries(&relabelled, &name).is_err());
    }

    #[test]
    fn frame_shares_add_up_to_its_length() {
        let entries = [
            entry(8, 100, 300, 0),
            entry(8, 100, 300, 300),
            entry(8, 100, 300, 600),
            entry(108, 7, 5, 0),
            entry(115, 9, 0, 0),
        ];
        assert_eq!(stored_shares(&entries), vec![33, 33, 34, 7, 9]);
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
