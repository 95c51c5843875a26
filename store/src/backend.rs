//! Where repository files live: a narrow interface of immutable files, and its local
//! (or mounted SMB/NFS share) implementation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{IoContext, Result};

/// Storage of immutable files addressed by relative paths such as `data/3f/3fa2…`.
///
/// Implementations must honour these contracts:
/// - `write` makes the file appear whole or not at all, and durable before it returns;
/// - `list` never returns files still being written;
/// - files are never modified after `write`; they are only removed.
pub trait Backend: Send + Sync + 'static {
    /// Creates `path` with `data`, atomically and durably.
    fn write(&self, path: &str, data: &[u8]) -> Result<()>;
    /// Starts a file that is written piece by piece and named when it is complete (a pack is
    /// named by the hash of its bytes). [`NewFile::commit`] gives it the guarantees of
    /// [`Backend::write`]; dropped uncommitted, it leaves nothing. By default the pieces are
    /// gathered in memory and written with [`Backend::write`].
    fn create(self: Arc<Self>) -> Result<Box<dyn NewFile>> {
        Ok(Box::new(Gathered {
            backend: self,
            bytes: Vec::new(),
        }))
    }
    /// Reads a whole file.
    fn read(&self, path: &str) -> Result<Vec<u8>>;
    /// Reads `len` bytes at `offset`; a short file is an error.
    fn read_at(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// As [`Backend::read_at`], into `buf` (resized to `len`), so that a caller reading many
    /// ranges reuses one buffer instead of faulting in fresh pages for each.
    fn read_at_into(&self, path: &str, offset: u64, len: u64, buf: &mut Vec<u8>) -> Result<()> {
        *buf = self.read_at(path, offset, len)?;
        Ok(())
    }
    /// As [`Backend::read_at_into`], for bytes read once and not again soon (a restore's
    /// packs): returns where in `buf` the `len` bytes start. The default is `read_at_into`;
    /// the local backend reads around the page cache where the file system allows it.
    fn read_once_into(
        &self,
        path: &str,
        offset: u64,
        len: u64,
        buf: &mut Vec<u8>,
    ) -> Result<usize> {
        self.read_at_into(path, offset, len, buf)?;
        Ok(0)
    }
    /// The size of a file in bytes.
    fn size(&self, path: &str) -> Result<u64>;
    /// The names of the files directly in `dir` (not their paths), in no particular order.
    /// A missing directory lists as empty.
    fn list(&self, dir: &str) -> Result<Vec<String>>;
    /// Removes a file; removing a missing file is not an error.
    fn remove(&self, path: &str) -> Result<()>;
    /// Temporary files in `dir` (paths, with their sizes) left by writes that never finished
    /// and last modified longer than `age` ago. Only maintenance holding the exclusive lock
    /// removes them. Backends whose writes leave nothing behind list none.
    fn leftovers(&self, dir: &str, age: std::time::Duration) -> Result<Vec<(String, u64)>> {
        let _ = (dir, age);
        Ok(Vec::new())
    }
}

/// Suffix of files being written; never listed, and removed by maintenance when left over.
pub const TEMP_MARKER: &str = ".tmp-";

/// A file being written by [`Backend::create`].
pub trait NewFile: Send {
    /// Appends bytes.
    fn append(&mut self, data: &[u8]) -> Result<()>;
    /// Makes the file durable under `path`, atomically, as [`Backend::write`] does.
    fn commit(self: Box<Self>, path: &str) -> Result<()>;
}

/// [`Backend::create`]'s default: the bytes in memory until they are written whole.
struct Gathered<B: Backend + ?Sized> {
    backend: Arc<B>,
    bytes: Vec<u8>,
}

impl<B: Backend + ?Sized> NewFile for Gathered<B> {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.bytes.extend_from_slice(data);
        Ok(())
    }

    fn commit(self: Box<Self>, path: &str) -> Result<()> {
        self.backend.write(path, &self.bytes)
    }
}

/// A file of a [`LocalBackend`] being written: a temporary file in the repository's `data/`
/// directory, written through a 1 MiB buffer, renamed into place by `commit`.
struct LocalNewFile {
    root: PathBuf,
    tmp: PathBuf,
    file: Option<io::BufWriter<File>>,
}

impl NewFile for LocalNewFile {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        let tmp = &self.tmp;
        self.file
            .as_mut()
            .expect("present until committed")
            .write_all(data)
            .ctx(|| format!("writing {}", tmp.display()))
    }

    fn commit(mut self: Box<Self>, path: &str) -> Result<()> {
        let tmp = self.tmp.clone();
        let file = self.file.take().expect("present until committed");
        let file = file
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx(|| format!("writing {}", tmp.display()))?;
        file.sync_all()
            .ctx(|| format!("syncing {}", tmp.display()))?;
        drop(file);
        let dest = self.root.join(path);
        retry_busy(|| fs::rename(&tmp, &dest))
            .ctx(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
        // Renamed: nothing for drop to remove.
        self.tmp = PathBuf::new();
        sync_dir(dest.parent().expect("repository files live in a directory"))
    }
}

impl Drop for LocalNewFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A repository in a local directory or on a mounted network share.
pub struct LocalBackend {
    root: PathBuf,
    /// Whether reads may bypass the page cache (cleared once the file system refuses).
    direct: std::sync::atomic::AtomicBool,
}

/// Alignment of reads that bypass the page cache (`O_DIRECT`): offsets, lengths and buffer
/// addresses are multiples of it.
const DIRECT_ALIGN: usize = 4096;

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            direct: std::sync::atomic::AtomicBool::new(cfg!(target_os = "linux")),
        }
    }

    /// [`Backend::read_once_into`] with `O_DIRECT`: the disk reads straight into `buf`, with no
    /// copy out of the page cache and nothing else evicted from it. `None` when the file
    /// system does not allow it.
    #[cfg(target_os = "linux")]
    fn read_direct(
        &self,
        path: &str,
        offset: u64,
        len: u64,
        buf: &mut Vec<u8>,
    ) -> Result<Option<usize>> {
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.full(path);
        let what = || format!("reading {len} bytes at offset {offset} of {}", p.display());
        let f = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&p)
        {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
            Err(e) => return Err(e).ctx(|| format!("opening {}", p.display())),
        };
        let align = DIRECT_ALIGN as u64;
        let start = offset / align * align;
        let end = offset
            .checked_add(len)
            .and_then(|end| end.checked_next_multiple_of(align));
        let (Some(end), Ok(want)) = (end, usize::try_from(offset + len - start)) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput)).ctx(what);
        };
        let span = (end - start) as usize;
        // Zeroed only where the buffer grows; its address does not move while it is read into.
        buf.resize(span + DIRECT_ALIGN, 0);
        let pad = buf.as_ptr().align_offset(DIRECT_ALIGN);
        let mut got = 0;
        while got < want {
            match f.read_at(&mut buf[pad + got..pad + span], start + got as u64) {
                // Short of `want`: the file ends early (a short read is only ever its end).
                Ok(n) if n == 0 || n % DIRECT_ALIGN != 0 && got + n < want => {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof)).ctx(what)
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && got == 0 => return Ok(None),
                Err(e) => return Err(e).ctx(what),
            }
        }
        Ok(Some(pad + (offset - start) as usize))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    /// The entries of `dir` with their names; a missing directory has none.
    fn entries(&self, dir: &str) -> Result<Vec<(String, fs::DirEntry)>> {
        let p = self.full(dir);
        let entries = match fs::read_dir(&p) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx(|| format!("listing {}", p.display())),
        };
        entries
            .map(|entry| {
                let entry = entry.ctx(|| format!("listing {}", p.display()))?;
                Ok((entry.file_name().to_string_lossy().into_owned(), entry))
            })
            .collect()
    }
}

/// Fsyncs a directory so that a rename inside it is durable. Some filesystems refuse to fsync a
/// directory (SMB mounts and FUSE file systems answer EINVAL or ENOTSUP): there the server
/// orders the rename after the file data it already flushed, so the refusal is tolerated.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).ctx(|| format!("opening directory {} to sync it", dir.display()))?;
    match f.sync_all() {
        Ok(()) => Ok(()),
        Err(e) if dir_sync_unsupported(&e) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("syncing directory {}", dir.display())),
    }
}

fn dir_sync_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::ENOTSUP) | Some(libc::ENOSYS) | Some(libc::EBADF)
    )
}

/// Runs `op`, retrying while it fails with EBUSY: network shares answer so for a while after a
/// handle to the file was closed (smbnetfs releases handles asynchronously; Windows servers
/// report sharing violations while antivirus scanners hold a file). About 3 s in all.
fn retry_busy<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut delay = std::time::Duration::from_millis(20);
    for _ in 0..8 {
        match op() {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            other => return other,
        }
    }
    op()
}

/// A random hex string for temporary and lock file names.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the operating system provides random bytes");
    hex::encode(buf)
}

/// Writes `data` to `path` atomically: temporary name, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().expect("repository files live in a directory");
    let name = path
        .file_name()
        .expect("repository files have a name")
        .to_string_lossy();
    let tmp = dir.join(format!("{name}{TEMP_MARKER}{}", random_hex(8)));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .ctx(|| format!("creating {}", tmp.display()))?;
        f.write_all(data)
            .ctx(|| format!("writing {}", tmp.display()))?;
        f.sync_all().ctx(|| format!("syncing {}", tmp.display()))?;
        drop(f);
        retry_busy(|| fs::rename(&tmp, path))
            .ctx(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl Backend for LocalBackend {
    fn write(&self, path: &str, data: &[u8]) -> Result<()> {
        write_atomic(&self.full(path), data)
    }

    fn create(self: Arc<Self>) -> Result<Box<dyn NewFile>> {
        let tmp = self.full(&format!("data/new{TEMP_MARKER}{}", random_hex(8)));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .ctx(|| format!("creating {}", tmp.display()))?;
        Ok(Box::new(LocalNewFile {
            root: self.root.clone(),
            tmp,
            file: Some(io::BufWriter::with_capacity(1 << 20, file)),
        }))
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let p = self.full(path);
        fs::read(&p).ctx(|| format!("reading {}", p.display()))
    }

    fn read_at(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_at_into(path, offset, len, &mut buf)?;
        Ok(buf)
    }

    fn read_at_into(&self, path: &str, offset: u64, len: u64, buf: &mut Vec<u8>) -> Result<()> {
        let p = self.full(path);
        let f = File::open(&p).ctx(|| format!("opening {}", p.display()))?;
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
        // Zeroed only where the buffer grows: a reused buffer is overwritten by the read.
        buf.resize(len.ctx(|| format!("reading {}", p.display()))?, 0);
        f.read_exact_at(buf, offset).ctx(|| {
            format!(
                "reading {} bytes at offset {offset} of {}",
                buf.len(),
                p.display()
            )
        })
    }

    fn read_once_into(
        &self,
        path: &str,
        offset: u64,
        len: u64,
        buf: &mut Vec<u8>,
    ) -> Result<usize> {
        use std::sync::atomic::Ordering;
        #[cfg(target_os = "linux")]
        if self.direct.load(Ordering::Relaxed) {
            match self.read_direct(path, offset, len, buf)? {
                Some(at) => return Ok(at),
                None => self.direct.store(false, Ordering::Relaxed),
            }
        }
        self.read_at_into(path, offset, len, buf)?;
        Ok(0)
    }

    fn size(&self, path: &str) -> Result<u64> {
        let p = self.full(path);
        Ok(fs::metadata(&p)
            .ctx(|| format!("reading metadata of {}", p.display()))?
            .len())
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        Ok(self
            .entries(dir)?
            .into_iter()
            .filter_map(|(name, _)| (!name.contains(TEMP_MARKER)).then_some(name))
            .collect())
    }

    fn leftovers(&self, dir: &str, age: std::time::Duration) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for (name, entry) in self.entries(dir)? {
            if !name.contains(TEMP_MARKER) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|elapsed| elapsed >= age);
            if meta.is_file() && old {
                out.push((format!("{dir}/{name}"), meta.len()));
            }
        }
        Ok(out)
    }

    fn remove(&self, path: &str) -> Result<()> {
        let p = self.full(path);
        match retry_busy(|| fs::remove_file(&p)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx(|| format!("removing {}", p.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreError;

    #[test]
    fn atomic_write_leaves_no_temp_files_and_lists_names() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        fs::create_dir(dir.path().join("index")).unwrap();
        b.write("index/abc", b"hello").unwrap();
        assert_eq!(b.read("index/abc").unwrap(), b"hello");
        assert_eq!(b.read_at("index/abc", 1, 3).unwrap(), b"ell");
        assert!(b.read_at("index/abc", 3, 5).is_err());
        assert_eq!(b.list("index").unwrap(), vec!["abc".to_string()]);
        assert_eq!(b.list("missing").unwrap(), Vec::<String>::new());
        fs::write(dir.path().join("index/x.tmp-0000"), b"partial").unwrap();
        assert_eq!(b.list("index").unwrap(), vec!["abc".to_string()]);
        b.remove("index/abc").unwrap();
        b.remove("index/abc").unwrap();
        assert!(b.read("index/abc").is_err());
    }

    #[test]
    fn reads_once_match_cached_reads_at_any_alignment() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        let data: Vec<u8> = (0..3 * DIRECT_ALIGN as u32 + 123)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        fs::write(dir.path().join("pack"), &data).unwrap();
        let mut buf = Vec::new();
        let n = data.len() as u64;
        let align = DIRECT_ALIGN as u64;
        for (offset, len) in [
            (0, n),
            (0, 1),
            (1, align),
            (align, align),
            (align - 1, 2),
            (2 * align + 5, n - 2 * align - 5),
            (n - 1, 1),
            (n, 0),
        ] {
            let at = b.read_once_into("pack", offset, len, &mut buf).unwrap();
            let (o, l) = (offset as usize, len as usize);
            assert!(buf[at..at + l] == data[o..o + l], "{offset} {len}");
        }
        for (offset, len) in [(0, n + 1), (n - 10, 11), (n + 4096, 1)] {
            let err = b.read_once_into("pack", offset, len, &mut buf).unwrap_err();
            assert!(
                matches!(&err, StoreError::Io { error, .. } if error.kind() == io::ErrorKind::UnexpectedEof),
                "{offset} {len}: {err}"
            );
        }
        #[cfg(target_os = "linux")]
        assert!(
            b.direct.load(std::sync::atomic::Ordering::Relaxed),
            "the test's file system reads around the page cache, so that path was tested"
        );
    }

    #[test]
    fn write_into_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        let err = b.write("nope/file", b"x").unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
