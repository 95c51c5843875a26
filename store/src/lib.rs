//! The cairn repository: objects, packs, index segments, the SQLite catalog, snapshots, trees,
//! locks and restore. Must not use the chunker or ingest crates, nor clap, indicatif or anyhow.

pub mod aead;
pub mod backend;
pub mod catalog;
pub mod check;
pub mod config;
pub mod diff;
pub mod envelope;
pub mod error;
pub mod id;
pub mod index;
pub mod keys;
pub mod lock;
pub mod pack;
pub mod progress;
pub mod prune;
pub mod repository;
pub mod restore;
pub mod retention;
pub mod snapshot;
pub mod stats;
pub mod tree;

pub use config::{ChunkSizes, ChunkerConfig, Config, FORMAT_VERSION};
pub use error::{Result, StoreError};
pub use id::{BlobId, ChunkId, IdPrefix, IndexId, PackId, SnapshotId, TreeId};
pub use keys::KdfParams;
pub use pack::BlobKind;
pub use progress::{NoProgress, Progress};
pub use repository::{
    default_cache_dir, Encryption, InitOptions, KeyInfo, OpenOptions, RepairReport, Repository,
    SavedBlob,
};
pub use snapshot::{Snapshot, SnapshotSummary};
pub use tree::{Content, ContentBuilder, ContentEntry, Node, NodeKind, Tree};
