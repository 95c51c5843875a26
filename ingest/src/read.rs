//! Reading source files: small ones through the page cache, large ones around it.
//!
//! A nightly backup reads gigabytes of database backups that nobody reads again soon. Through
//! the page cache each byte is copied by the kernel and every page is allocated, accounted and
//! later reclaimed: half the CPU of a night that deduplicates. A large file is therefore read
//! by a thread of its own with `O_DIRECT` into a few aligned blocks, ahead of the reader, while
//! the blocks read before are cut, hashed and looked up. Its first [`PREFETCH`] bytes are read
//! through the cache all the same: [`crate::prefetch`] may already have brought them in.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// How far ahead of the reader the kernel is asked to read a file read through the cache.
pub(crate) const AHEAD: u64 = 32 << 20;

/// The bytes at the start of each large file that [`crate::prefetch`] asks the kernel for
/// while the repository opens: read through the page cache, where they already are.
pub(crate) const PREFETCH: u64 = 32 << 20;

/// Files at least this large are read around the page cache.
const DIRECT_MIN: u64 = PREFETCH + (32 << 20);

/// Bytes a reading thread asks for at once, and the size of each of its blocks.
const BLOCK: usize = 2 << 20;

/// Blocks per file: one being consumed, one waiting, one being read.
const BLOCKS: usize = 3;

/// Offsets, lengths and addresses of reads that bypass the page cache are multiples of this.
const ALIGN: usize = 4096;

/// Files read around the page cache at once, at most: each holds `BLOCKS * BLOCK` bytes.
const MAX_DIRECT: usize = 2;

static DIRECT_READERS: AtomicUsize = AtomicUsize::new(0);

/// An open source file and how it is read.
pub(crate) enum SourceFile {
    Cached(ReadAhead),
    Direct(DirectReader),
}

impl SourceFile {
    /// Opens `path`, `len` bytes long when it was looked at.
    pub(crate) fn open(path: &Path, len: u64) -> io::Result<Self> {
        let file = File::open(path)?;
        if cfg!(target_os = "linux") && len >= DIRECT_MIN {
            if let Some(reader) = DirectReader::start(&file, PREFETCH) {
                return Ok(SourceFile::Direct(reader));
            }
        }
        Ok(SourceFile::Cached(ReadAhead::new(file)))
    }

    /// The file itself, to look at once it has been read.
    pub(crate) fn file(&self) -> &File {
        match self {
            SourceFile::Cached(r) => &r.file,
            SourceFile::Direct(r) => &r.file,
        }
    }
}

impl Read for SourceFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            SourceFile::Cached(r) => r.read(buf),
            SourceFile::Direct(r) => r.read(buf),
        }
    }
}

/// A file read sequentially, with the kernel asked to read [`AHEAD`] bytes ahead of the
/// reader: the disk works while the chunks already read are cut, hashed and compressed.
pub(crate) struct ReadAhead {
    file: File,
    pos: u64,
    advised: u64,
}

impl ReadAhead {
    fn new(file: File) -> Self {
        Self {
            file,
            pos: 0,
            advised: 0,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos + AHEAD / 2 >= self.advised {
            let from = self.advised.max(self.pos);
            will_need(&self.file, from, AHEAD);
            self.advised = from + AHEAD;
        }
        let n = self.file.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Asks the kernel to read `len` bytes of `file` from `offset` into the page cache, in the
/// background.
pub(crate) fn will_need(file: &File, offset: u64, len: u64) {
    // SAFETY: a valid descriptor; the call only hints the page cache.
    unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            offset as libc::off_t,
            len as libc::off_t,
            libc::POSIX_FADV_WILLNEED,
        );
    }
}

/// Bytes read by a [`DirectReader`]'s thread: `buf[start..start + len]`, `start` aligned.
struct Block {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Block {
    fn new() -> Self {
        let buf = vec![0u8; BLOCK + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        Self { buf, start, len: 0 }
    }
}

/// A file read ahead by a thread of its own, around the page cache past its first bytes.
pub(crate) struct DirectReader {
    file: File,
    full: Option<Receiver<io::Result<Block>>>,
    empty: Option<SyncSender<Block>>,
    current: Option<Block>,
    pos: usize,
    done: bool,
    thread: Option<JoinHandle<()>>,
    /// Bytes the thread read with `O_DIRECT` (for the tests to see which way a file was read).
    #[cfg_attr(not(test), allow(dead_code))]
    direct_bytes: Arc<AtomicU64>,
}

impl DirectReader {
    /// Starts reading `file` from its start, its first `cached` bytes through the page cache
    /// (a multiple of [`BLOCK`]). `None` when enough files are being read this way already, or
    /// the thread cannot start.
    fn start(file: &File, cached: u64) -> Option<Self> {
        let taken = DIRECT_READERS.fetch_add(1, Ordering::Relaxed);
        let reader = (taken < MAX_DIRECT)
            .then(|| Self::spawn(file, cached))
            .flatten();
        if reader.is_none() {
            DIRECT_READERS.fetch_sub(1, Ordering::Relaxed);
        }
        reader
    }

    fn spawn(file: &File, cached: u64) -> Option<Self> {
        let (mine, theirs) = (file.try_clone().ok()?, file.try_clone().ok()?);
        let (full_tx, full_rx) = sync_channel(BLOCKS);
        let (empty_tx, empty_rx) = sync_channel(BLOCKS);
        for _ in 0..BLOCKS {
            empty_tx.send(Block::new()).ok()?;
        }
        let direct_bytes = Arc::new(AtomicU64::new(0));
        let counter = direct_bytes.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-read".into())
            .spawn(move || read_ahead(&theirs, cached, &full_tx, &empty_rx, &counter))
            .ok()?;
        Some(Self {
            file: mine,
            full: Some(full_rx),
            empty: Some(empty_tx),
            current: None,
            pos: 0,
            done: false,
            thread: Some(thread),
            direct_bytes,
        })
    }
}

impl Read for DirectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(block) = &self.current {
                if self.pos < block.len {
                    let n = out.len().min(block.len - self.pos);
                    let from = block.start + self.pos;
                    out[..n].copy_from_slice(&block.buf[from..from + n]);
                    self.pos += n;
                    return Ok(n);
                }
            }
            if let (Some(block), Some(empty)) = (self.current.take(), &self.empty) {
                // The thread is gone once the file has ended; the block is not needed then.
                let _ = empty.send(block);
            }
            if self.done || out.is_empty() {
                return Ok(0);
            }
            let next = self.full.as_ref().map(|full| full.recv());
            match next {
                Some(Ok(Ok(block))) if block.len == 0 => self.done = true,
                Some(Ok(Ok(block))) => {
                    self.current = Some(block);
                    self.pos = 0;
                }
                Some(Ok(Err(e))) => {
                    self.done = true;
                    return Err(e);
                }
                None | Some(Err(_)) => {
                    self.done = true;
                    return Err(io::Error::other("the thread reading the file stopped"));
                }
            }
        }
    }
}

impl Drop for DirectReader {
    fn drop(&mut self) {
        // Closing both channels ends the thread at its next block.
        self.full = None;
        self.empty = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        DIRECT_READERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The reading thread: fills the blocks it is given, in file order, until the file ends (an
/// empty block), a read fails, or the reader goes away.
fn read_ahead(
    file: &File,
    cached: u64,
    full: &SyncSender<io::Result<Block>>,
    empty: &Receiver<Block>,
    direct_bytes: &AtomicU64,
) {
    let mut offset = 0u64;
    let mut direct = false;
    let mut may_direct = true;
    while let Ok(mut block) = empty.recv() {
        if may_direct && !direct && offset >= cached && offset.is_multiple_of(ALIGN as u64) {
            direct = set_direct(file, true);
            may_direct = direct;
        }
        block.len = 0;
        let result = loop {
            if block.len == BLOCK {
                break Ok(());
            }
            let region = &mut block.buf[block.start + block.len..block.start + BLOCK];
            match file.read_at(region, offset + block.len as u64) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    block.len += n;
                    if direct {
                        direct_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        if n % ALIGN != 0 {
                            // The end of the file: what follows, if it grows, through the cache.
                            set_direct(file, false);
                            (direct, may_direct) = (false, false);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Reading around the cache failed (a file system that takes the flag but not
                // the reads answers EINVAL or EOPNOTSUPP): the same bytes through the cache, and
                // the rest of the file too. An error there is the file's.
                Err(_) if direct => {
                    set_direct(file, false);
                    (direct, may_direct) = (false, false);
                }
                Err(e) => break Err(e),
            }
        };
        let end = block.len == 0;
        offset += block.len as u64;
        let failed = result.is_err();
        if full.send(result.map(|()| block)).is_err() || end || failed {
            return;
        }
    }
}

/// Turns reading around the page cache on or off for `file`; whether it is now as asked.
fn set_direct(file: &File, on: bool) -> bool {
    #[cfg(target_os = "linux")]
    {
        let fd = file.as_raw_fd();
        // SAFETY: a valid descriptor; F_GETFL and F_SETFL only read and set its status flags.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 {
                return !on;
            }
            let flags = if on {
                flags | libc::O_DIRECT
            } else {
                flags & !libc::O_DIRECT
            };
            libc::fcntl(fd, libc::F_SETFL, flags) == 0 || !on
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        !on
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    #[cfg(target_os = "linux")]
    fn direct_allowed(path: &Path) -> bool {
        use std::os::unix::fs::OpenOptionsExt;
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path);
        opened.is_ok()
    }

    #[cfg(not(target_os = "linux"))]
    fn direct_allowed(_: &Path) -> bool {
        false
    }

    fn read_all(reader: &mut dyn Read, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; step];
        loop {
            match reader.read(&mut buf).unwrap() {
                0 => return out,
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[test]
    fn a_file_read_around_the_cache_reads_back_exactly_at_any_length() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0,
            1,
            ALIGN - 1,
            BLOCK,
            3 * BLOCK + ALIGN,
            3 * BLOCK + 12_345,
        ] {
            let bytes = data(len);
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &bytes).unwrap();
            for (cached, step) in [(0, 65_536), (BLOCK as u64, 7_777), (0, 5 * BLOCK)] {
                let file = File::open(&path).unwrap();
                let mut reader = DirectReader::spawn(&file, cached).unwrap();
                assert_eq!(
                    read_all(&mut reader, step),
                    bytes,
                    "len {len}, cached {cached}"
                );
                assert_eq!(reader.read(&mut [0u8; 10]).unwrap(), 0, "past the end");
                let direct = reader.direct_bytes.load(Ordering::Relaxed) as usize;
                // Where the file system allows it (ext4, xfs, btrfs), everything past the
                // cached part is read around the cache; elsewhere all of it through the cache.
                let expected = if direct_allowed(&path) {
                    len.saturating_sub(cached as usize)
                } else {
                    0
                };
                assert_eq!(direct, expected, "len {len}, cached {cached}");
            }
        }
    }

    #[test]
    fn a_reader_dropped_early_stops_its_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, data(4 * BLOCK)).unwrap();
        let file = File::open(&path).unwrap();
        let mut reader = DirectReader::spawn(&file, 0).unwrap();
        let mut buf = vec![0u8; 1000];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(buf, data(1000));
        drop(reader); // joins the thread: a hang here is the failure
    }

    #[test]
    fn a_read_error_reaches_the_reader() {
        // A directory opens but cannot be read: the thread's error is the reader's.
        let dir = tempfile::tempdir().unwrap();
        let file = File::open(dir.path()).unwrap();
        let mut reader = DirectReader::spawn(&file, 0).unwrap();
        let err = reader.read(&mut [0u8; 16]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EISDIR));
        assert_eq!(reader.read(&mut [0u8; 16]).unwrap(), 0);
    }
}
