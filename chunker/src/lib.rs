//! Content-defined chunking (FastCDC with normalized chunking): pure functions over byte slices.
//! No I/O and no dependency on any other cairn crate; cut points are part of the repository format.

use thiserror::Error;

mod gear;

pub use gear::GEAR;
use gear::GEAR_LS;

/// Errors from building chunker parameters.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkerError {
    #[error("invalid chunker parameters min={min} avg={avg} max={max}: {reason}")]
    InvalidParams {
        min: u32,
        avg: u32,
        max: u32,
        reason: &'static str,
    },
}

/// Smallest minimum chunk size accepted: below the 64-byte window of the gear hash, cut points
/// would depend on where hashing started.
pub const MIN_SIZE_LOWER_BOUND: u32 = 64;
/// Largest maximum chunk size accepted (64 MiB): keeps a chunk comfortably inside one pack.
pub const MAX_SIZE_UPPER_BOUND: u32 = 64 << 20;

/// Validated FastCDC parameters. `avg` is a power of two; `min < avg < max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkerParams {
    min: u32,
    avg: u32,
    max: u32,
}

impl ChunkerParams {
    /// Validates the parameters; never panics.
    pub fn new(min: u32, avg: u32, max: u32) -> Result<Self, ChunkerError> {
        let bad = |reason| {
            Err(ChunkerError::InvalidParams {
                min,
                avg,
                max,
                reason,
            })
        };
        if min < MIN_SIZE_LOWER_BOUND {
            return bad("min must be at least 64 bytes");
        }
        if !avg.is_power_of_two() {
            return bad("avg must be a power of two");
        }
        if !(min < avg && avg < max) {
            return bad("sizes must satisfy min < avg < max");
        }
        if max > MAX_SIZE_UPPER_BOUND {
            return bad("max must be at most 64 MiB");
        }
        Ok(Self { min, avg, max })
    }

    /// Parameters for file contents: 256 KiB / 1 MiB / 4 MiB (DESIGN §3: ~1 MiB average chunks;
    /// min and max at a quarter and four times the average, as FastCDC's paper recommends).
    pub fn files() -> Self {
        Self {
            min: 256 << 10,
            avg: 1 << 20,
            max: 4 << 20,
        }
    }

    /// Small-average parameters for metadata-like regions (16 KiB / 64 KiB / 256 KiB).
    pub fn small() -> Self {
        Self {
            min: 16 << 10,
            avg: 64 << 10,
            max: 256 << 10,
        }
    }

    pub fn min(&self) -> u32 {
        self.min
    }
    pub fn avg(&self) -> u32 {
        self.avg
    }
    pub fn max(&self) -> u32 {
        self.max
    }
}

/// One chunk of a slice: its start offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub offset: usize,
    pub len: usize,
}

/// A FastCDC chunker (normalization level 1). Cheap to copy; holds only the parameters and masks.
#[derive(Debug, Clone, Copy)]
pub struct Chunker {
    params: ChunkerParams,
    /// Stricter mask used before the average size: `bits + 1` one-bits.
    mask_small: u64,
    /// Looser mask used after the average size: `bits - 1` one-bits.
    mask_large: u64,
}

/// A mask of `n` one-bits just below the top bit of a u64 (bits `62 - n + 1 ..= 62`).
///
/// The gear hash shifts left once per byte, so bit `k` depends on the last `k + 1` bytes:
/// testing high bits makes every cut depend on a window of about 60 bytes rather than on the
/// last few bytes only. Bit 63 stays out of the mask so that `mask << 1` loses nothing, which
/// lets [`Chunker::scan`] roll two bytes per step (FastCDC 2020's optimization) and still cut
/// exactly where a byte-at-a-time scan would.
fn high_bits(n: u32) -> u64 {
    debug_assert!((1..63).contains(&n));
    (!0u64 << (64 - n)) >> 1
}

impl Chunker {
    pub fn new(params: ChunkerParams) -> Self {
        let bits = params.avg.trailing_zeros();
        // avg >= 128 (min >= 64, min < avg, power of two), so bits >= 7 and bits - 1 >= 6.
        Self {
            params,
            mask_small: high_bits(bits + 1),
            mask_large: high_bits(bits - 1),
        }
    }

    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// The length of the chunk that starts at `data[0]`, if it can be decided from `data`.
    ///
    /// `eof` says that no byte follows `data`. Returns `None` only when `eof` is false and
    /// `data` holds fewer than `max` bytes without a cut point: call again with more data.
    /// A returned length is final: more data after `data` never changes it. Returns `Some(0)`
    /// only for empty `data` at `eof`.
    pub fn next_cut(&self, data: &[u8], eof: bool) -> Option<usize> {
        let min = self.params.min as usize;
        let avg = self.params.avg as usize;
        let max = self.params.max as usize;
        if data.len() <= min {
            return if eof || data.len() == max {
                Some(data.len())
            } else {
                None
            };
        }
        let end = data.len().min(max);
        let normal = end.min(avg);
        let mut hash = 0u64;
        if let Some(cut) = scan(data, min, normal, self.mask_small, &mut hash) {
            return Some(cut);
        }
        if let Some(cut) = scan(data, normal.max(min), end, self.mask_large, &mut hash) {
            return Some(cut);
        }
        if end == max || eof {
            Some(end)
        } else {
            None
        }
    }

    /// All cuts of a complete buffer, in order; they tile `data` exactly.
    pub fn cuts<'a>(&self, data: &'a [u8]) -> Cuts<'a> {
        Cuts {
            chunker: *self,
            data,
            pos: 0,
        }
    }
}

/// Rolls the gear hash over `data[start..end]`, returning the position just after the first
/// byte where `hash & mask == 0`. Two bytes per step: `GEAR_LS[x] = GEAR[x] << 1`, so after the
/// first byte of a pair `hash` holds the one-byte hash shifted left by one, tested against
/// `mask << 1` (exact because the mask's top bit is clear, see [`high_bits`]).
#[inline(always)]
fn scan(data: &[u8], start: usize, end: usize, mask: u64, hash: &mut u64) -> Option<usize> {
    let mask_ls = mask << 1;
    let mut h = *hash;
    let mut i = start;
    let data = &data[..end];
    while i + 2 <= end {
        h = (h << 2).wrapping_add(GEAR_LS[data[i] as usize]);
        if h & mask_ls == 0 {
            return Some(i + 1);
        }
        h = h.wrapping_add(GEAR[data[i + 1] as usize]);
        if h & mask == 0 {
            return Some(i + 2);
        }
        i += 2;
    }
    if i < end {
        h = (h << 1).wrapping_add(GEAR[data[i] as usize]);
        if h & mask == 0 {
            return Some(i + 1);
        }
    }
    *hash = h;
    None
}

/// Iterator over the cuts of a complete buffer (see [`Chunker::cuts`]).
pub struct Cuts<'a> {
    chunker: Chunker,
    data: &'a [u8],
    pos: usize,
}

impl Iterator for Cuts<'_> {
    type Item = Cut;

    fn next(&mut self) -> Option<Cut> {
        if self.pos >= self.data.len() {
            return None;
        }
        let len = self
            .chunker
            .next_cut(&self.data[self.pos..], true)
            .expect("next_cut decides every cut at eof");
        let cut = Cut {
            offset: self.pos,
            len,
        };
        self.pos += len;
        Some(cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Deterministic test data: xorshift64* bytes, mixed with runs of repeated text so that
    /// both random and low-entropy regions are exercised.
    fn test_data(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
            if v.is_multiple_of(17) {
                out.extend_from_slice(b"sip:user@contoso.com;");
            } else {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn lengths(chunker: &Chunker, data: &[u8]) -> Vec<usize> {
        chunker.cuts(data).map(|c| c.len).collect()
    }

    #[test]
    fn rejects_bad_params_without_panicking() {
        assert!(ChunkerParams::new(0, 1024, 4096).is_err());
        assert!(ChunkerParams::new(63, 1024, 4096).is_err());
        assert!(ChunkerParams::new(256, 1000, 4096).is_err());
        assert!(ChunkerParams::new(2048, 1024, 4096).is_err());
        assert!(ChunkerParams::new(256, 1024, 1024).is_err());
        assert!(ChunkerParams::new(256, 1 << 20, 128 << 20).is_err());
        assert!(ChunkerParams::new(64, 128, 129).is_ok());
        let err = ChunkerParams::new(256, 1000, 4096).unwrap_err();
        assert!(err.to_string().contains("power of two"), "{err}");
    }

    #[test]
    fn presets_are_valid() {
        for p in [ChunkerParams::files(), ChunkerParams::small()] {
            assert_eq!(ChunkerParams::new(p.min(), p.avg(), p.max()), Ok(p));
        }
    }

    #[test]
    fn empty_and_tiny_inputs() {
        let c = Chunker::new(ChunkerParams::small());
        assert_eq!(c.next_cut(&[], true), Some(0));
        assert_eq!(c.next_cut(&[], false), None);
        assert_eq!(c.cuts(&[]).count(), 0);
        assert_eq!(lengths(&c, b"hello"), vec![5]);
    }

    /// Golden cut points: a change here changes every chunk ID of every repository, which
    /// breaks deduplication against existing backups. Never update these numbers lightly.
    #[test]
    fn golden_cut_points_small() {
        let data = test_data(1 << 20, 7);
        let c = Chunker::new(ChunkerParams::small());
        let lens = lengths(&c, &data);
        assert_eq!(lens.iter().sum::<usize>(), data.len());
        assert_eq!(lens, GOLDEN_SMALL);
    }

    #[test]
    fn golden_cut_points_files() {
        let data = test_data(8 << 20, 42);
        let c = Chunker::new(ChunkerParams::files());
        let lens = lengths(&c, &data);
        assert_eq!(lens.iter().sum::<usize>(), data.len());
        assert_eq!(lens, GOLDEN_FILES);
    }

    #[test]
    fn golden_gear_table() {
        assert_eq!(GEAR[0], 2205911277334045772);
        assert_eq!(GEAR[255], GEAR_255);
    }

    const GOLDEN_SMALL: &[usize] = &[
        70091, 87293, 154030, 62369, 107048, 128247, 101031, 131422, 90989, 115430, 626,
    ];
    const GOLDEN_FILES: &[usize] = &[917284, 1147903, 2364115, 1758694, 1238166, 345396, 617050];
    const GEAR_255: u64 = 15020114326679931952;

    #[test]
    fn insertion_only_disturbs_nearby_chunks() {
        let data = test_data(4 << 20, 9);
        let c = Chunker::new(ChunkerParams::small());
        let before: Vec<&[u8]> = c
            .cuts(&data)
            .map(|cut| &data[cut.offset..cut.offset + cut.len])
            .collect();
        let mut edited = data[..2 << 20].to_vec();
        edited.extend_from_slice(b"an inserted run of bytes");
        edited.extend_from_slice(&data[2 << 20..]);
        let after: std::collections::HashSet<&[u8]> = c
            .cuts(&edited)
            .map(|cut| &edited[cut.offset..cut.offset + cut.len])
            .collect();
        let shared = before.iter().filter(|ch| after.contains(*ch)).count();
        assert!(
            shared + 3 >= before.len(),
            "{shared} of {} chunks survive",
            before.len()
        );
    }

    /// The textbook byte-at-a-time FastCDC loop, kept as the specification of the cut points.
    fn reference_cut(c: &Chunker, data: &[u8]) -> usize {
        let (min, avg, max) = (
            c.params.min as usize,
            c.params.avg as usize,
            c.params.max as usize,
        );
        if data.len() <= min {
            return data.len();
        }
        let end = data.len().min(max);
        let mut hash = 0u64;
        for i in min..end {
            hash = (hash << 1).wrapping_add(GEAR[data[i] as usize]);
            let mask = if i < avg { c.mask_small } else { c.mask_large };
            if hash & mask == 0 {
                return i + 1;
            }
        }
        end
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn two_bytes_per_step_cuts_like_the_reference(len in 0usize..100_000, seed in any::<u64>(), odd_min in any::<bool>()) {
            let data = test_data(len, seed);
            let min = if odd_min { 1001 } else { 1024 };
            let c = Chunker::new(ChunkerParams::new(min, 2048, 8192).unwrap());
            let mut pos = 0;
            while pos < data.len() {
                let fast = c.next_cut(&data[pos..], true).unwrap();
                prop_assert_eq!(fast, reference_cut(&c, &data[pos..]), "at {}", pos);
                pos += fast;
            }
        }

        #[test]
        fn cuts_tile_the_input_within_bounds(len in 0usize..300_000, seed in any::<u64>()) {
            let data = test_data(len, seed);
            let params = ChunkerParams::new(1024, 4096, 16384).unwrap();
            let c = Chunker::new(params);
            let cuts: Vec<Cut> = c.cuts(&data).collect();
            let mut pos = 0;
            for (i, cut) in cuts.iter().enumerate() {
                prop_assert_eq!(cut.offset, pos);
                prop_assert!(cut.len <= 16384);
                if i + 1 < cuts.len() {
                    prop_assert!(cut.len > 1024);
                }
                pos += cut.len;
            }
            prop_assert_eq!(pos, data.len());
        }

        /// Feeding data in arbitrary pieces (as a stream reader does) gives the same cuts as
        /// chunking the whole buffer.
        #[test]
        fn streaming_equals_whole(len in 0usize..200_000, seed in any::<u64>(), piece in 1usize..50_000) {
            let data = test_data(len, seed);
            let c = Chunker::new(ChunkerParams::new(512, 2048, 8192).unwrap());
            let whole: Vec<usize> = lengths(&c, &data);
            let mut streamed = Vec::new();
            let mut buf: Vec<u8> = Vec::new();
            let mut fed = 0;
            loop {
                let eof = fed == data.len();
                match c.next_cut(&buf, eof) {
                    Some(0) => break,
                    Some(n) => { streamed.push(n); buf.drain(..n); }
                    None => {
                        let take = piece.min(data.len() - fed);
                        buf.extend_from_slice(&data[fed..fed + take]);
                        fed += take;
                    }
                }
            }
            prop_assert_eq!(streamed, whole);
        }
    }
}
