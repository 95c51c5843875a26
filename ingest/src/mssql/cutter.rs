//! Page-aware cutting of SQL Server backup streams.
//!
//! A walker runs ahead of the cut position over descriptor blocks and stream headers (stream
//! payloads are skipped by their length, so it never needs more than a header in memory). Data
//! pages (the MQDA payload after its 2 leading bytes) are cut on page boundaries and grouped by
//! page id, so an unchanged page yields the same chunk whatever byte offset it moved to; all
//! other bytes go through small-average CDC, never across the start of a page region. Anything
//! the walker does not understand switches the rest of the stream to plain CDC, with a warning;
//! the chunks always concatenate to the exact input.

use cairn_chunker::Chunker;

use super::mtf::{self, BackupMeta, PAGE, STREAM_HEADER};

/// How data pages are grouped into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// One chunk per 8 KiB page.
    Page,
    /// One chunk per 64 KiB extent: 8 pages counted from the start of the page region, since
    /// SQL Server writes whole allocated extents (page ids in headers cannot be used: pages never
    /// formatted carry page id 0).
    Extent,
}

/// The most stream bytes the walker reads to parse (SCIN and RAID records are far smaller).
const MAX_PARSED_STREAM: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// A descriptor block starts at `walk`.
    Dblk,
    /// A stream header of the current descriptor block starts at `walk`.
    Stream { tape: bool },
    /// Nothing more to parse: the stream ended cleanly, or was not understood.
    Done,
}

pub struct MtfCutter {
    generic: Chunker,
    grouping: Grouping,
    /// Absolute offset of the first byte of the next `next_cut` call's data.
    pos: u64,
    /// Absolute offset of the next structure to parse.
    walk: u64,
    state: Walk,
    /// A page region `[start, end)` found by the walker and not yet cut.
    pages: Option<(u64, u64)>,
    physical_block: u64,
    meta: BackupMeta,
    warnings: Vec<String>,
    /// Pages whose body was tested for encryption, and how many looked encrypted.
    sampled: u64,
    high_entropy: u64,
}

/// One page in this many has its body's entropy measured (a histogram of 8 KiB costs about as
/// much as hashing it; sampling keeps the test nearly free).
const ENTROPY_SAMPLE_EVERY: u64 = 16;
/// Bits per byte above which a page body looks encrypted. Data and index pages of real
/// databases measure 1–6; ciphertext 7.97 or more on 8 KiB.
const ENCRYPTED_ENTROPY: f64 = 7.9;

/// Shannon entropy of a page body (after the 96-byte header), in bits per byte.
fn entropy(page: &[u8]) -> f64 {
    let body = page.get(96..).unwrap_or(&[]);
    if body.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in body {
        counts[usize::from(b)] += 1;
    }
    let n = body.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

fn align4(v: u64) -> u64 {
    (v + 3) & !3
}

impl MtfCutter {
    pub fn new(generic: Chunker, grouping: Grouping) -> Self {
        Self {
            generic,
            grouping,
            pos: 0,
            walk: 0,
            state: Walk::Dblk,
            pages: None,
            physical_block: 512,
            meta: BackupMeta::default(),
            warnings: Vec::new(),
            sampled: 0,
            high_entropy: 0,
        }
    }

    /// The metadata and warnings gathered so far.
    pub fn finish(mut self) -> (BackupMeta, Vec<String>) {
        if self.sampled >= 4 && self.high_entropy * 2 > self.sampled {
            self.warnings.push(format!(
                "{} of {} sampled data pages look encrypted (TDE or BACKUP WITH ENCRYPTION): \
                 dedup will be poor",
                self.high_entropy, self.sampled
            ));
        }
        (self.meta, self.warnings)
    }

    fn give_up(&mut self, why: String) {
        self.warnings.push(format!(
            "backup structure at byte {}: {why}; the rest is stored with generic chunking",
            self.walk
        ));
        self.state = Walk::Done;
    }

    /// Parses structures while their bytes are in `data` (which starts at `self.pos`), until a
    /// page region is found or more data is needed.
    fn walk_ahead(&mut self, data: &[u8], eof: bool) {
        let end = self.pos + data.len() as u64;
        while self.pages.is_none() && self.state != Walk::Done {
            let at = (self.walk - self.pos) as usize;
            let rest = data.get(at..).unwrap_or(&[]);
            match self.state {
                Walk::Done => {}
                Walk::Dblk => {
                    if self.walk >= end && eof {
                        self.state = Walk::Done; // a clean end after the last block
                        return;
                    }
                    // TAPE needs 66 bytes (the physical block size at 64).
                    if rest.len() < 66 && !(eof && rest.len() >= mtf::DBLK_HEADER) {
                        if eof {
                            self.give_up("truncated descriptor block".into());
                        }
                        return;
                    }
                    let dblk = match mtf::parse_dblk(rest) {
                        Ok(d) => d,
                        Err(e) => return self.give_up(e),
                    };
                    match &dblk.kind {
                        b"SFMB" => {
                            self.walk += self.physical_block;
                            continue;
                        }
                        b"TAPE" => {
                            let blocks = u16::from_le_bytes([rest[64], rest[65]]);
                            self.physical_block = u64::from(blocks.max(1)) * 512;
                        }
                        _ => {}
                    }
                    if usize::from(dblk.first_event) < mtf::DBLK_HEADER {
                        return self.give_up("first stream inside the block header".into());
                    }
                    self.walk += u64::from(dblk.first_event);
                    self.state = Walk::Stream {
                        tape: &dblk.kind == b"TAPE",
                    };
                }
                Walk::Stream { tape } => {
                    if rest.len() < STREAM_HEADER {
                        if eof {
                            self.give_up("truncated stream header".into());
                        }
                        return;
                    }
                    let s = match mtf::parse_stream(rest) {
                        Ok(s) => s,
                        Err(e) => return self.give_up(e),
                    };
                    let start = self.walk + STREAM_HEADER as u64;
                    let Some(stream_end) = start.checked_add(s.length) else {
                        return self.give_up("stream length overflows".into());
                    };
                    let parsed = matches!(&s.id, b"MQCI") || (tape && &s.id == b"RAID");
                    if parsed && s.length <= MAX_PARSED_STREAM {
                        let body = &rest[STREAM_HEADER..];
                        if (body.len() as u64) < s.length {
                            if eof {
                                self.give_up("truncated stream".into());
                            }
                            return;
                        }
                        let body = &body[..s.length as usize];
                        if &s.id == b"RAID" {
                            if let Some(f) = mtf::parse_raid(body) {
                                self.meta.family_count = Some(f.family_count);
                                self.meta.family_number = Some(f.family_number);
                                self.meta.media_set_guid = Some(f.media_set_guid);
                            }
                        } else if let Err(e) = mtf::parse_scin(body, &mut self.meta) {
                            self.warnings.push(format!("byte {start}: {e}"));
                        }
                    }
                    match &s.id {
                        // SPAD fills the rest of the block: a descriptor block follows.
                        b"SPAD" => {
                            self.walk = stream_end;
                            self.state = Walk::Dblk;
                        }
                        b"MQDA" if s.length > 2 && (s.length - 2) % PAGE as u64 == 0 => {
                            self.pages = Some((start + 2, stream_end));
                            self.walk = align4(stream_end);
                        }
                        _ => self.walk = align4(stream_end),
                    }
                }
            }
        }
    }

    /// The length of the next chunk of `data` (which continues where the previous cut ended),
    /// with the contract of [`Chunker::next_cut`].
    pub fn next_cut(&mut self, data: &[u8], eof: bool) -> Option<usize> {
        if data.is_empty() {
            return if eof { Some(0) } else { None };
        }
        self.walk_ahead(data, eof);
        let cut = match self.pages {
            Some((start, end)) if self.pos >= start => self.page_cut(data, end, eof)?,
            pages => {
                // Generic bytes: never past a page region's start, nor past structures the
                // walker has yet to read (a page region could begin there).
                let limit = match (pages, self.state) {
                    (Some((start, _)), _) => Some(start),
                    (None, Walk::Done) => None,
                    (None, _) => Some(self.walk),
                };
                match limit {
                    Some(limit) if limit - self.pos < data.len() as u64 => {
                        let bounded = &data[..(limit - self.pos) as usize];
                        let forced = pages.is_some();
                        self.generic.next_cut(bounded, forced)?
                    }
                    _ => self.generic.next_cut(data, eof)?,
                }
            }
        };
        self.pos += cut as u64;
        if let Some((_, end)) = self.pages {
            if self.pos >= end {
                self.pages = None;
            }
        }
        Some(cut)
    }

    fn page_cut(&mut self, data: &[u8], end: u64, eof: bool) -> Option<usize> {
        let left = (end - self.pos) as usize;
        if data.len() < PAGE.min(left) {
            // A truncated page region: store what there is.
            return eof.then(|| {
                self.warnings.push(format!(
                    "data pages truncated at byte {}",
                    self.pos + data.len() as u64
                ));
                data.len()
            });
        }
        let mut n = PAGE.min(left);
        if self.grouping == Grouping::Extent {
            n = (8 * PAGE).min(left);
            if data.len() < n {
                if !eof {
                    return None;
                }
                n = data.len() / PAGE * PAGE;
            }
        }
        for page in data[..n].chunks_exact(PAGE) {
            if self.meta.pages.is_multiple_of(ENTROPY_SAMPLE_EVERY) {
                self.sampled += 1;
                self.high_entropy += u64::from(entropy(page) > ENCRYPTED_ENTROPY);
            }
            self.meta.pages += 1;
        }
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_tells_pages_from_ciphertext() {
        let mut text = vec![0u8; PAGE];
        for (i, b) in text.iter_mut().enumerate().skip(96) {
            *b = b"sip:alice@contoso.com;epid=1234"[i % 31];
        }
        assert!(entropy(&text) < 5.0);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let random: Vec<u8> = (0..PAGE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert!(entropy(&random) > ENCRYPTED_ENTROPY, "{}", entropy(&random));
        assert_eq!(entropy(&[0u8; PAGE]), 0.0);
    }
}
