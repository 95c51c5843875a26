//! The ingest error type.

use cairn_store::StoreError;
use thiserror::Error;

pub type Result<T, E = IngestError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cause is part of the message, not `source()` (see `StoreError::Io`).
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
    #[error("command {command:?} failed: {status}")]
    CommandFailed { command: String, status: String },
    #[error("two sources would be stored under the same name {0:?}")]
    DuplicateName(String),
    #[error("invalid source name {0:?}")]
    InvalidName(String),
    #[error("invalid exclude pattern {pattern:?}: {source}")]
    InvalidExclude {
        pattern: String,
        #[source]
        source: globset::Error,
    },
    #[error("invalid chunker parameters in the repository config: {0}")]
    Chunker(#[from] cairn_chunker::ChunkerError),
}

pub(crate) fn display(path: &std::path::Path) -> String {
    path.display().to_string()
}
