//! Sources → snapshot trees: file trees, standard input and command output, chunked and stored.
//! Uses the chunker and the store; must not use clap, indicatif or anyhow.

mod archiver;
mod error;
mod fs;
pub mod lync;
pub mod mssql;
mod read;
mod stream;
pub mod zip;

pub use archiver::{ArchiveOutcome, Archiver, BackupStats, Source, MEETING_ACTIVE};
pub use error::IngestError;
pub use fs::{prefetch, Prefetch};
pub use stream::{store_stream, Chunkers, StoredStream};
