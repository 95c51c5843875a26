//! ZIP archives (configuration exports): their entries listed from the central directory, and
//! one entry read back for `diff --content`.
//!
//! A ZIP stream is stored byte-exact like any other; while it is stored, the ingester keeps its
//! last [`TAIL`] bytes, where the central directory lives, and lists the entries on the node.
//! A ZIP that cannot be parsed is still stored exactly; a warning says why it is not listed.

use std::io::Read;

use serde::{Deserialize, Serialize};

/// How many bytes at the end of a ZIP stream are kept to find its central directory: 8 MiB
/// covers about 100,000 entries.
pub const TAIL: usize = 8 << 20;

/// The most bytes one entry may inflate to when read back.
const MAX_ENTRY: u64 = 1 << 30;

const LOCAL: u32 = 0x0403_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;
const END64: u32 = 0x0606_4b50;
const END64_LOCATOR: u32 = 0x0706_4b50;

/// Whether a stream starting with `data` is a ZIP archive (a local file header, or the end
/// record of an empty archive).
pub fn detect(data: &[u8]) -> bool {
    data.len() >= 4 && (le32(data, 0) == LOCAL || le32(data, 0) == END)
}

/// One entry of a ZIP archive, as listed on its node (`"zip": {"entries": [...]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZipEntry {
    pub name: String,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// The CRC-32 of the uncompressed bytes, as 8 hex digits.
    pub crc32: String,
    pub compressed_size: u64,
    /// 0 stored, 8 deflate, others as the ZIP specification numbers them.
    pub method: u16,
    /// Offset of the entry's local header from the start of the archive.
    #[serde(skip)]
    pub(crate) offset: u64,
    #[serde(skip)]
    pub(crate) encrypted: bool,
}

/// The entries of a ZIP archive, in central-directory order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZipListing {
    pub entries: Vec<ZipEntry>,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Lists a ZIP archive of `total` bytes from its last bytes: `tail` holds bytes
/// `total - tail.len() .. total`. Fails, with the reason, when the end record or the central
/// directory cannot be found in `tail` or is inconsistent.
pub fn list(tail: &[u8], total: u64) -> Result<ZipListing, String> {
    let start = total
        .checked_sub(tail.len() as u64)
        .ok_or("the kept tail is longer than the archive")?;
    if tail.len() < 22 {
        return Err("shorter than an end of central directory record".into());
    }
    // The end record is 22 bytes plus a comment of at most 65,535.
    let lowest = tail.len().saturating_sub(22 + 0xFFFF);
    let end = (lowest..=tail.len().saturating_sub(22))
        .rev()
        .find(|&i| le32(tail, i) == END && i + 22 + usize::from(le16(tail, i + 20)) == tail.len())
        .ok_or("no end of central directory record")?;
    if le16(tail, end + 4) != 0 || le16(tail, end + 6) != 0 {
        return Err("a multi-volume archive".into());
    }
    let mut count = u64::from(le16(tail, end + 10));
    let mut cd_size = u64::from(le32(tail, end + 12));
    let mut cd_offset = u64::from(le32(tail, end + 16));
    if count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
        let locator = end
            .checked_sub(20)
            .filter(|&l| le32(tail, l) == END64_LOCATOR)
            .ok_or("a ZIP64 archive without its end record locator")?;
        let at = le64(tail, locator + 8)
            .checked_sub(start)
            .and_then(|a| usize::try_from(a).ok())
            .filter(|&a| a + 56 <= tail.len() && le32(tail, a) == END64)
            .ok_or("the ZIP64 end record is missing or out of reach")?;
        count = le64(tail, at + 32);
        cd_size = le64(tail, at + 40);
        cd_offset = le64(tail, at + 48);
    }
    if cd_offset.checked_add(cd_size).is_none_or(|e| e > total) {
        return Err("the central directory lies beyond the end of the archive".into());
    }
    let cd_start = cd_offset.checked_sub(start).ok_or_else(|| {
        format!(
            "the central directory ({cd_size} bytes) is larger than the {} MiB kept to list it",
            TAIL >> 20
        )
    })?;
    let mut at = usize::try_from(cd_start).map_err(|_| "central directory offset")?;
    let cd_end = at + usize::try_from(cd_size).map_err(|_| "central directory size")?;
    let truncated = || "a truncated central directory entry".to_string();
    let mut entries = Vec::new();
    while entries.len() as u64 != count {
        if at + 46 > cd_end || le32(tail, at) != CENTRAL {
            return Err(format!(
                "the central directory holds {} entries, the end record says {count}",
                entries.len()
            ));
        }
        let flags = le16(tail, at + 8);
        let method = le16(tail, at + 10);
        let crc = le32(tail, at + 16);
        let mut compressed_size = u64::from(le32(tail, at + 20));
        let mut size = u64::from(le32(tail, at + 24));
        let name_len = usize::from(le16(tail, at + 28));
        let extra_len = usize::from(le16(tail, at + 30));
        let comment_len = usize::from(le16(tail, at + 32));
        let mut offset = u64::from(le32(tail, at + 42));
        let name_at = at + 46;
        let extra_at = name_at + name_len;
        let next = extra_at + extra_len + comment_len;
        if next > cd_end {
            return Err(truncated());
        }
        let name = String::from_utf8_lossy(&tail[name_at..extra_at]).into_owned();
        // ZIP64 extended information: the 64-bit values of the fields saturated above, in order.
        let mut extra = &tail[extra_at..extra_at + extra_len];
        while extra.len() >= 4 {
            let (id, len) = (le16(extra, 0), usize::from(le16(extra, 2)));
            let body = extra.get(4..4 + len).ok_or_else(truncated)?;
            if id == 1 {
                let mut fields = body.chunks_exact(8).map(|c| le64(c, 0));
                for field in [&mut size, &mut compressed_size, &mut offset] {
                    if *field == 0xFFFF_FFFF {
                        *field = fields.next().ok_or_else(truncated)?;
                    }
                }
            }
            extra = &extra[4 + len..];
        }
        entries.push(ZipEntry {
            name,
            size,
            crc32: format!("{crc:08x}"),
            compressed_size,
            method,
            offset,
            encrypted: flags & 1 != 0,
        });
        at = next;
    }
    Ok(ZipListing { entries })
}

/// Reads the entry `name` of the whole archive `zip`, inflated and checked against its CRC.
pub fn read_entry(zip: &[u8], name: &str) -> Result<Vec<u8>, String> {
    let listing = list(zip, zip.len() as u64)?;
    let entry = listing
        .entries
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| format!("no entry {name:?} in the archive"))?;
    if entry.encrypted {
        return Err(format!("entry {name:?} is encrypted"));
    }
    if entry.size > MAX_ENTRY {
        return Err(format!(
            "entry {name:?} is {} bytes, more than can be read back",
            entry.size
        ));
    }
    let header = usize::try_from(entry.offset)
        .ok()
        .filter(|&h| h + 30 <= zip.len() && le32(zip, h) == LOCAL)
        .ok_or_else(|| format!("entry {name:?}: no local header at its offset"))?;
    let data =
        header + 30 + usize::from(le16(zip, header + 26)) + usize::from(le16(zip, header + 28));
    let compressed = usize::try_from(entry.compressed_size)
        .ok()
        .and_then(|c| zip.get(data..data.checked_add(c)?))
        .ok_or_else(|| format!("entry {name:?} runs past the end of the archive"))?;
    let bytes = match entry.method {
        0 => compressed.to_vec(),
        8 => {
            let mut out = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
            flate2::read::DeflateDecoder::new(compressed)
                .take(entry.size + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("entry {name:?}: {e}"))?;
            out
        }
        m => {
            return Err(format!(
                "entry {name:?}: compression method {m} is not supported"
            ))
        }
    };
    if bytes.len() as u64 != entry.size || format!("{:08x}", crc32fast::hash(&bytes)) != entry.crc32
    {
        return Err(format!("entry {name:?} does not match its size and CRC-32"));
    }
    Ok(bytes)
}

/// Keeps the last [`TAIL`] bytes of a stream as it passes.
#[derive(Debug)]
pub(crate) struct Tail {
    bytes: Vec<u8>,
    limit: usize,
}

impl Default for Tail {
    fn default() -> Self {
        Self::new(TAIL)
    }
}

impl Tail {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            bytes: Vec::new(),
            limit,
        }
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.len() >= self.limit {
            self.bytes.clear();
            self.bytes
                .extend_from_slice(&data[data.len() - self.limit..]);
            return;
        }
        self.bytes.extend_from_slice(data);
        // Trim only once twice the tail has piled up, so each byte is moved at most once more.
        if self.bytes.len() >= 2 * self.limit {
            let cut = self.bytes.len() - self.limit;
            self.bytes.drain(..cut);
        }
    }

    pub(crate) fn list(&self, total: u64) -> Result<ZipListing, String> {
        let keep = self.bytes.len().min(self.limit);
        list(&self.bytes[self.bytes.len() - keep..], total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn archive(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data, deflate) in entries {
            let method = if *deflate {
                zip::CompressionMethod::Deflated
            } else {
                zip::CompressionMethod::Stored
            };
            let options = zip::write::SimpleFileOptions::default().compression_method(method);
            w.start_file(*name, options).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn lists_and_reads_entries() {
        let xml = b"<DocItemSet><DocItem Name=\"urn:lcd:a@contoso.com\"/></DocItemSet>".repeat(50);
        let zip = archive(&[
            ("DocItemSet.xml", &xml, true),
            ("[Content_Types].xml", b"<Types/>", false),
        ]);
        assert!(detect(&zip));
        let listing = list(&zip, zip.len() as u64).unwrap();
        let names: Vec<_> = listing.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["DocItemSet.xml", "[Content_Types].xml"]);
        let first = &listing.entries[0];
        assert_eq!(first.size, xml.len() as u64);
        assert_eq!(first.method, 8);
        assert!(first.compressed_size < first.size);
        assert_eq!(first.crc32, format!("{:08x}", crc32fast::hash(&xml)));
        assert_eq!(read_entry(&zip, "DocItemSet.xml").unwrap(), xml);
        assert_eq!(
            read_entry(&zip, "[Content_Types].xml").unwrap(),
            b"<Types/>"
        );
        assert!(read_entry(&zip, "missing.xml")
            .unwrap_err()
            .contains("missing.xml"));
    }

    #[test]
    fn lists_from_the_tail_alone() {
        let big: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let zip = archive(&[("a.bin", &big, false), ("b.xml", b"<b/>", true)]);
        let mut tail = Tail::new(1 << 20);
        for piece in zip.chunks(100_000) {
            tail.push(piece);
        }
        let listing = tail.list(zip.len() as u64).unwrap();
        assert_eq!(listing.entries.len(), 2);
        assert_eq!(listing.entries[0].size, big.len() as u64);
        // A tail too short to hold the central directory says so.
        let short = &zip[zip.len() - 60..];
        assert!(list(short, zip.len() as u64)
            .unwrap_err()
            .contains("central directory"));
    }

    #[test]
    fn an_empty_archive_lists_nothing() {
        let zip = archive(&[]);
        assert!(detect(&zip));
        assert_eq!(list(&zip, zip.len() as u64).unwrap().entries, []);
    }

    #[test]
    fn corrupt_archives_are_errors_not_panics() {
        let zip = archive(&[("DocItemSet.xml", b"<a/>", true), ("b", b"bb", false)]);
        assert!(list(&zip[..zip.len() - 1], zip.len() as u64 - 1).is_err());
        // Every single-byte corruption of the central directory and end record either still
        // lists or fails with a reason; none panics.
        let cd = zip.len() - 22 - 2 * 46 - "DocItemSet.xml".len() - 1;
        for at in cd..zip.len() {
            for value in [0x00, 0xFF, 0x7F] {
                let mut bad = zip.clone();
                bad[at] = value;
                let _ = list(&bad, bad.len() as u64);
                let _ = read_entry(&bad, "DocItemSet.xml");
            }
        }
        // A changed byte of the compressed data fails the CRC.
        let mut bad = zip.clone();
        bad[30 + "DocItemSet.xml".len() + 1] ^= 0x55;
        assert!(read_entry(&bad, "DocItemSet.xml").is_err());
    }
}
