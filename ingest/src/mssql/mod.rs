//! SQL Server backup streams: detection by content, the MTF reader, page-aware cutting.

pub mod cutter;
pub mod mtf;

pub use cutter::{Grouping, MtfCutter};
pub use mtf::BackupMeta;

/// What a stream's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// An uncompressed backup: Microsoft Tape Format.
    Mtf,
    /// A backup taken `WITH COMPRESSION`.
    Compressed,
    Other,
}

/// Sniffs the first 8 bytes.
pub fn detect(head: &[u8]) -> Container {
    if head.starts_with(b"TAPE") {
        Container::Mtf
    } else if head.starts_with(b"MSSQLBAK") {
        Container::Compressed
    } else {
        Container::Other
    }
}
