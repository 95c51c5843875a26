//! The repository's `config` file and its key files.

use serde::{Deserialize, Serialize};

use crate::envelope::MasterKey;

/// The repository format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

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
}

/// The plaintext `config` file: what any client needs before it holds the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    /// 32 random bytes in hex; names the local cache directory.
    pub id: String,
    pub chunker: ChunkerConfig,
}

/// A file under `keys/`: the master key as protected by one password.
///
/// Format version 1 knows only `kdf = "none"` (the key is stored as is); password-wrapped keys
/// add a KDF with its own parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    pub kdf: String,
    pub created: String,
    pub host: String,
    pub key: MasterKey,
}
