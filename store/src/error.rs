//! The store's error type.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in the store. Variants carry the object or path at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{path}: not a cairn repository ({reason})")]
    NotARepository { path: PathBuf, reason: String },
    #[error("{path}: already exists and is not empty")]
    AlreadyExists { path: PathBuf },
    #[error(
        "repository format version {found} is not supported (this build reads versions {oldest} to {newest})"
    )]
    UnsupportedVersion {
        found: u32,
        oldest: u32,
        newest: u32,
    },
    #[error("repository is locked: {holder}")]
    Locked { holder: String },
    #[error("wrong password: no key file of the repository opens with it")]
    WrongPassword,
    #[error("a password is needed: {0}")]
    NoPassword(String),
    #[error("invalid key derivation parameters: {0}")]
    InvalidKdf(String),
    #[error("{0}")]
    Key(String),
    #[error("no snapshot matches {0:?}")]
    SnapshotNotFound(String),
    #[error("snapshot prefix {prefix:?} is ambiguous: it matches {}", candidates.join(", "))]
    AmbiguousSnapshot {
        prefix: String,
        candidates: Vec<String>,
    },
    #[error("path {path:?} not found in snapshot {snapshot}")]
    PathNotFound { snapshot: String, path: String },
    #[error("blob {0} is not in the index")]
    BlobNotFound(String),
    #[error("{object} is corrupt: {reason}")]
    Corrupt { object: String, reason: String },
    #[error("invalid id {input:?}: {reason}")]
    InvalidId { input: String, reason: &'static str },
    // The cause is part of the message and deliberately not exposed as `source()`: printing
    // the chain (`{:#}`) would repeat it.
    #[error("{context}: {error}")]
    Io { context: String, error: io::Error },
    #[error("catalog {path}: {error}")]
    Catalog {
        path: PathBuf,
        error: rusqlite::Error,
    },
}

impl StoreError {
    pub fn corrupt(object: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            object: object.into(),
            reason: reason.into(),
        }
    }
}

/// Attaches "what was being done to what" to an I/O error.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|error| StoreError::Io {
            context: context(),
            error,
        })
    }
}
