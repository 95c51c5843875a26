//! The repository's `config` file and its key files.

use serde::{Deserialize, Serialize};

/// The repository format version this build writes into new repositories. It reads and
/// writes version 1 repositories too, as version 1 (their packs hold one blob per frame), so
/// that the builds that made them keep reading them.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest format version this build opens.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

/// Content-defined chunking sizes, stored so that every client cuts alike. The store only
/// keeps the numbers; the chunker validates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkSizes {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerConfig {
    /// Files and generic streams.
    pub files: ChunkSizes,
    /// The non-page parts of SQL Server backups: headers, log, trailer.
    pub small: ChunkSizes,
    /// How the data pages of SQL Server backups are grouped: `page` or `extent`.
    pub pages: String,
}

/// The plaintext `config` file: what any client needs before it holds the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    /// 32 random bytes in hex; names the local cache directory.
    pub id: String,
    pub chunker: ChunkerConfig,
    /// `xchacha20-poly1305` (every object encrypted and authenticated) or `none` (objects
    /// authenticated only; made with `--insecure-no-encryption`).
    pub encryption: String,
}

pub const ENCRYPTION_XCHACHA: &str = "xchacha20-poly1305";
pub const ENCRYPTION_NONE: &str = "none";
