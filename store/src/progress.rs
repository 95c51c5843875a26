//! How long operations report progress: a small trait the command-line front end implements.

/// Progress of a backup or restore. Every method has a do-nothing default.
pub trait Progress: Send + Sync {
    /// `n` more bytes were read (backup) or written (restore).
    fn bytes(&self, _n: u64) {}
    /// One more file is done.
    fn file_done(&self) {}
    /// A problem that does not stop the operation.
    fn warn(&self, _message: &str) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
