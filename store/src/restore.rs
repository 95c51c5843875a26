//! Restoring a snapshot tree into a directory.
//!
//! Three passes: the tree is walked a level at a time (directories and symlinks made, files
//! noted) and the chunk lists of all its files are loaded together, each chunk noted with the
//! offsets it goes to; meanwhile a thread creates each file under a temporary name at its full
//! size. Then every pack that
//! holds a needed chunk is read once, in order, by several workers, each chunk authenticated,
//! checked against its ID and written at each of its offsets (all-zero chunks are skipped,
//! leaving holes, so sparse sources restore sparse); last, each file whose every byte was
//! written is synced and renamed into place. A damaged repository never leaves wrong or partial
//! files under their real names: files it touched are removed and the first error returned.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use rayon::prelude::*;

use crate::catalog::BlobLocation;
use crate::error::{IoContext, Result, StoreError};
use crate::id::{BlobId, TreeId};
use crate::progress::Progress;
use crate::repository::{read_runs, Frame, Repository};
use crate::tree::{Node, NodeKind, Tree};

#[derive(Debug, Default)]
pub struct RestoreStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

/// What to restore and where.
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Paths inside the snapshot (`a/b/c`); empty means everything.
    pub includes: Vec<String>,
}

struct Restorer<'a> {
    repo: &'a Repository,
    includes: Vec<Vec<String>>,
    progress: &'a dyn Progress,
    files: AtomicU64,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    bytes: AtomicU64,
    is_root: bool,
    /// Directory times are set after their content is written, deepest first.
    dir_times: Mutex<Vec<(PathBuf, Node)>>,
    /// Files being restored.
    pending: Mutex<Vec<Pending>>,
}

/// A file to be created under its temporary name and filled with its chunks.
struct Pending {
    tmp: PathBuf,
    path: PathBuf,
    node: Node,
    /// Whether the temporary file was made, or why not (once set, by whoever came first).
    created: OnceLock<std::result::Result<(), (std::io::ErrorKind, String)>>,
    /// Bytes still to be written (all-zero chunks count as written).
    missing: AtomicU64,
    failed: AtomicBool,
}

impl Pending {
    /// Creates the file under its temporary name at its full size (so that holes read as
    /// zeros), once: by the thread creating every file, or by a worker with bytes for it.
    fn create(&self) -> Result<()> {
        let created = self.created.get_or_init(|| {
            let made = File::create(&self.tmp).and_then(|f| f.set_len(self.node.size));
            made.map_err(|e| (e.kind(), e.to_string()))
        });
        let Err((kind, why)) = created else {
            return Ok(());
        };
        self.failed.store(true, Ordering::Relaxed);
        Err(StoreError::Io {
            context: format!("creating {}", self.tmp.display()),
            error: std::io::Error::new(*kind, why.clone()),
        })
    }
}

/// One place a chunk goes: file `file` (index into the pending files) at `offset`.
struct Target {
    blob: BlobId,
    size: u64,
    file: usize,
    offset: u64,
}

/// Packs are read by this many workers: more than the cores, so that reading overlaps with
/// decrypting and decompressing. Each reads up to [`crate::repository::READ_SPAN`] at a time.
const WORKERS: usize = 4;

pub fn restore(
    repo: &Repository,
    tree: &TreeId,
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    let includes = options
        .includes
        .iter()
        .map(|p| {
            p.split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .map(str::to_string)
                .collect()
        })
        .collect();
    let r = Restorer {
        repo,
        includes,
        progress,
        files: AtomicU64::new(0),
        dirs: AtomicU64::new(0),
        symlinks: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        // SAFETY: geteuid has no preconditions.
        is_root: unsafe { libc::geteuid() } == 0,
        dir_times: Mutex::new(Vec::new()),
        pending: Mutex::new(Vec::new()),
    };
    fs::create_dir_all(&options.target).ctx(|| format!("creating {}", options.target.display()))?;
    let walked = r.walk(tree, &options.target);
    let files = std::mem::take(&mut *r.pending.lock().expect("pending mutex"));
    let (complete, written) = std::thread::scope(|scope| {
        // Files are created while their chunk lists load and the first packs are read (the
        // file system's inode allocation is mostly one thread's work).
        let creator = walked
            .is_ok()
            .then(|| scope.spawn(|| r.create_files(&files)));
        let targets = walked.and_then(|()| r.targets(&files));
        // After a failed walk no file is finished: the tree is not whole.
        let complete = targets.is_ok();
        let written = targets.and_then(|targets| r.write_chunks(&files, targets));
        let created = creator.map_or(Ok(()), |c| {
            c.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        });
        (complete, written.and(created))
    });
    let finished = r.finish_files(&files, complete, &options.target);
    written?;
    finished?;
    let mut dirs = r.dir_times.into_inner().expect("dir_times mutex");
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (path, node) in &dirs {
        set_metadata(path, node, r.is_root)?;
    }
    // The files' contents were made durable before they were renamed; this makes the names
    // (and the metadata) durable too, before the restore reports success.
    if !sync_file_system(&options.target) {
        let parents: std::collections::BTreeSet<&Path> =
            files.iter().filter_map(|f| f.path.parent()).collect();
        for dir in parents {
            crate::backend::sync_dir(dir)?;
        }
    }
    Ok(RestoreStats {
        files: r.files.into_inner(),
        dirs: r.dirs.into_inner(),
        symlinks: r.symlinks.into_inner(),
        bytes: r.bytes.into_inner(),
    })
}

/// Whether `path` is selected: inside an include, or on the way to one.
fn selected(includes: &[Vec<String>], path: &[String]) -> bool {
    includes.is_empty()
        || includes.iter().any(|inc| {
            let n = inc.len().min(path.len());
            inc[..n] == path[..n]
        })
}

/// Whether everything below `path` is selected.
fn wholly_selected(includes: &[Vec<String>], path: &[String]) -> bool {
    includes.is_empty() || includes.iter().any(|inc| path.starts_with(inc))
}

impl Restorer<'_> {
    /// Walks the tree from `root` a level of directories at a time: the trees of a level are
    /// loaded together (one batched look-up, packs read in order by several threads: a
    /// restore of many small directories from a cold repository is not one small read after
    /// another), then every entry of the level is made, in parallel.
    fn walk(&self, root: &TreeId, target: &Path) -> Result<()> {
        let mut level: Vec<(TreeId, PathBuf, Vec<String>)> =
            vec![(*root, target.to_owned(), Vec::new())];
        while !level.is_empty() {
            let ids: Vec<TreeId> = level.iter().map(|l| l.0).collect();
            let trees = self.repo.load_blobs(&ids)?;
            let mut nodes = Vec::new();
            for (id, dir, rel) in level {
                let tree = Tree::from_bytes(&trees[&id], &id)?;
                for node in tree.nodes {
                    let name = node.name_bytes();
                    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
                        return Err(StoreError::corrupt(
                            format!("tree {id}"),
                            format!("unsafe file name {:?}", node.name),
                        ));
                    }
                    let mut rel = rel.clone();
                    rel.push(node.name.clone());
                    if selected(&self.includes, &rel) {
                        nodes.push((dir.join(OsStr::from_bytes(&name)), rel, node));
                    }
                }
            }
            let below = Mutex::new(Vec::new());
            nodes
                .par_iter()
                .try_for_each(|(path, rel, node)| self.restore_node(node, path, rel, &below))?;
            level = below.into_inner().expect("below mutex");
        }
        Ok(())
    }

    /// Makes one entry; a directory's tree goes to `below`, to be walked with its level.
    fn restore_node(
        &self,
        node: &Node,
        path: &Path,
        rel: &[String],
        below: &Mutex<Vec<(TreeId, PathBuf, Vec<String>)>>,
    ) -> Result<()> {
        match node.kind {
            NodeKind::Dir => {
                match fs::create_dir(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => {}
                    Err(e) => return Err(e).ctx(|| format!("creating {}", path.display())),
                }
                if let Some(sub) = node.subtree {
                    below
                        .lock()
                        .expect("below mutex")
                        .push((sub, path.to_owned(), rel.to_vec()));
                }
                self.dirs.fetch_add(1, Ordering::Relaxed);
                if wholly_selected(&self.includes, rel) {
                    self.dir_times
                        .lock()
                        .expect("dir_times mutex")
                        .push((path.to_owned(), node.clone()));
                }
                Ok(())
            }
            NodeKind::File | NodeKind::Stream => self.restore_file(node, path),
            NodeKind::Symlink => {
                let target = node.target_bytes().unwrap_or_default();
                let _ = fs::remove_file(path);
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), path)
                    .ctx(|| format!("creating symlink {}", path.display()))?;
                set_metadata(path, node, self.is_root)?;
                self.symlinks.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Notes a file to restore, under a temporary name next to its own.
    fn restore_file(&self, node: &Node, path: &Path) -> Result<()> {
        let mut tmp_name = OsStr::new(".").to_owned();
        tmp_name.push(path.file_name().expect("restored paths have a name"));
        tmp_name.push(".cairn-restore");
        self.pending.lock().expect("pending mutex").push(Pending {
            tmp: path.with_file_name(tmp_name),
            path: path.to_owned(),
            node: node.clone(),
            created: OnceLock::new(),
            missing: AtomicU64::new(node.size),
            failed: AtomicBool::new(false),
        });
        Ok(())
    }

    /// Creates every file not yet created by a worker; returns the first failure.
    fn create_files(&self, files: &[Pending]) -> Result<()> {
        let mut first_error = None;
        for file in files {
            if let Err(e) = file.create() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Where every chunk of every file goes. The chunk lists of all files are loaded
    /// together, a level at a time, so a cold repository is read in a few passes over its
    /// packs rather than one small read after another for each large file.
    fn targets(&self, files: &[Pending]) -> Result<Vec<Target>> {
        let with_content: Vec<(usize, &crate::tree::Content)> = files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.node.content.as_ref().map(|c| (i, c)))
            .collect();
        let contents: Vec<&crate::tree::Content> = with_content.iter().map(|c| c.1).collect();
        let chunks = self.repo.chunks_of_many(&contents)?;
        let mut targets = Vec::new();
        let mut sized = vec![0u64; files.len()];
        for ((file, _), chunks) in with_content.into_iter().zip(chunks) {
            let mut offset = 0u64;
            for crate::tree::ContentEntry(blob, size) in chunks {
                targets.push(Target {
                    blob,
                    size,
                    file,
                    offset,
                });
                offset += size;
            }
            sized[file] = offset;
        }
        for (file, offset) in files.iter().zip(sized) {
            if offset != file.node.size {
                return Err(StoreError::corrupt(
                    format!("file node {:?}", file.node.name),
                    format!(
                        "content holds {offset} bytes, the node says {}",
                        file.node.size
                    ),
                ));
            }
        }
        Ok(targets)
    }

    /// Reads every pack holding a needed chunk once, and writes each chunk where it goes.
    /// Files a failed chunk was meant for are marked failed; the first error is returned.
    fn write_chunks(&self, files: &[Pending], mut targets: Vec<Target>) -> Result<()> {
        targets.sort_unstable_by_key(|t| t.blob);
        // Each distinct blob once, with where it lives and the range of targets it feeds.
        let mut distinct: Vec<(BlobId, std::ops::Range<usize>)> = Vec::new();
        let mut i = 0;
        while i < targets.len() {
            let id = targets[i].blob;
            let mut j = i;
            while j < targets.len() && targets[j].blob == id {
                j += 1;
            }
            distinct.push((id, i..j));
            i = j;
        }
        let mut blobs: Vec<(BlobLocation, BlobId, std::ops::Range<usize>)> = Vec::new();
        let mut first_error = None;
        let ids: Vec<BlobId> = distinct.iter().map(|d| d.0).collect();
        for ((id, range), loc) in distinct.into_iter().zip(self.repo.locate_many(&ids)?) {
            match loc {
                Some(loc) => blobs.push((loc, id, range)),
                None => {
                    for t in &targets[range] {
                        files[t.file].failed.store(true, Ordering::Relaxed);
                    }
                    first_error.get_or_insert(StoreError::BlobNotFound(id.to_string()));
                }
            }
        }
        // Requests: runs of chunks of one pack, in pack and offset order.
        let requests = read_runs(blobs, crate::repository::READ_SPAN, |b| &b.0);
        // Each worker keeps its buffers (the pack range read, the chunk opened, the bytes
        // gathered) and open files from one run to the next.
        let next = AtomicUsize::new(0);
        let errors: Vec<StoreError> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..WORKERS.min(requests.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let mut writer = Writer::default();
                        let mut errors = Vec::new();
                        while let Some(run) = requests.get(next.fetch_add(1, Ordering::Relaxed)) {
                            let result = self.write_run(files, &targets, run, &mut writer);
                            // Each run ends with its bytes on their way to the files.
                            if let Err(e) = result.and(writer.flush(files, self.progress)) {
                                errors.push(e);
                            }
                        }
                        errors
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        match first_error.or_else(|| errors.into_iter().next()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reads one run of chunks of a pack with one request and writes them out.
    fn write_run(
        &self,
        files: &[Pending],
        targets: &[Target],
        run: &[(BlobLocation, BlobId, std::ops::Range<usize>)],
        writer: &mut Writer,
    ) -> Result<()> {
        let start = run[0].0.offset;
        let last = &run[run.len() - 1].0;
        let pack = run[0].0.pack;
        let mut bytes = std::mem::take(&mut writer.read);
        let mut frame = std::mem::take(&mut writer.frame);
        let len = last.offset + last.length - start;
        let result = match self.repo.read_pack_once_into(&pack, start, len, &mut bytes) {
            Ok(at) => {
                self.write_chunks_of(files, targets, run, &mut bytes[at..], &mut frame, writer)
            }
            Err(e) => {
                run.iter().for_each(|b| fail(files, targets, &b.2));
                Err(e)
            }
        };
        writer.read = bytes;
        writer.frame = frame;
        result
    }

    /// Opens each chunk of a run from the bytes read and writes it wherever it belongs.
    fn write_chunks_of(
        &self,
        files: &[Pending],
        targets: &[Target],
        run: &[(BlobLocation, BlobId, std::ops::Range<usize>)],
        bytes: &mut [u8],
        frame: &mut Frame,
        writer: &mut Writer,
    ) -> Result<()> {
        let start = run[0].0.offset;
        let pack = run[0].0.pack;
        let mut first_error = None;
        for (loc, id, range) in run {
            let at = (loc.offset - start) as usize;
            let envelope = &mut bytes[at..at + loc.length as usize];
            let data = match self
                .repo
                .open_blob_in(&pack, &loc.entry(*id), envelope, frame)
            {
                Ok(data) => data,
                Err(e) => {
                    fail(files, targets, range);
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let zero = data.iter().all(|&b| b == 0);
            for t in &targets[range.clone()] {
                let file = &files[t.file];
                if data.len() as u64 != t.size {
                    file.failed.store(true, Ordering::Relaxed);
                    first_error.get_or_insert_with(|| {
                        StoreError::corrupt(
                            format!("pack {pack} blob {id}"),
                            "size differs from the chunk list",
                        )
                    });
                    continue;
                }
                let written = if zero {
                    // A hole: the file was created at its full size, so it reads as zeros.
                    file.missing.fetch_sub(t.size, Ordering::Relaxed);
                    self.progress.bytes(t.size);
                    Ok(())
                } else {
                    writer.write(files, t.file, t.offset, data, self.progress)
                };
                if let Err(e) = written {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Syncs, dates and renames every file whose bytes were all written; removes the
    /// temporary files of the others.
    fn finish_files(&self, files: &[Pending], complete: bool, target: &Path) -> Result<()> {
        // One flush of the target's file system makes every file durable before any is
        // renamed (a file per fsync costs about a millisecond each on ext4).
        let synced = complete && sync_file_system(target);
        files
            .par_iter()
            .map(|file| {
                let whole = complete
                    && !file.failed.load(Ordering::Relaxed)
                    && file.missing.load(Ordering::Relaxed) == 0;
                if !whole {
                    let _ = fs::remove_file(&file.tmp);
                    return Ok(());
                }
                let result = (|| {
                    if !synced {
                        File::options()
                            .write(true)
                            .open(&file.tmp)
                            .and_then(|f| f.sync_all())
                            .ctx(|| format!("syncing {}", file.tmp.display()))?;
                    }
                    set_metadata(&file.tmp, &file.node, self.is_root)?;
                    fs::rename(&file.tmp, &file.path)
                        .ctx(|| format!("renaming {} into place", file.tmp.display()))?;
                    self.bytes.fetch_add(file.node.size, Ordering::Relaxed);
                    self.files.fetch_add(1, Ordering::Relaxed);
                    self.progress.file_done();
                    Ok(())
                })();
                if result.is_err() {
                    let _ = fs::remove_file(&file.tmp);
                }
                result
            })
            .collect::<Vec<Result<()>>>()
            .into_iter()
            .collect()
    }
}

/// Flushes the file system holding `dir` to stable storage; false when that cannot be done
/// at once (each file is then synced on its own).
fn sync_file_system(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        if let Ok(d) = File::open(dir) {
            // SAFETY: a valid descriptor.
            return unsafe { libc::syncfs(d.as_raw_fd()) } == 0;
        }
    }
    let _ = dir;
    false
}

/// Writes chunks to the files being restored: contiguous chunks of one file are gathered
/// into one write, and the last files written stay open.
#[derive(Default)]
struct Writer {
    /// (file, offset of `buf`'s first byte, bytes gathered).
    gathered: Option<(usize, u64, Vec<u8>)>,
    /// The buffer of the last write, kept for the next.
    spare: Vec<u8>,
    /// The pack range being read, kept for the next run.
    read: Vec<u8>,
    /// The frame opened last, kept for its other chunks and its buffer for the next.
    frame: Frame,
    open: Vec<(usize, File)>,
}

/// Bytes gathered before they are written.
const GATHER: usize = 4 << 20;
/// Files a worker keeps open.
const OPEN_FILES: usize = 16;

impl Writer {
    fn write(
        &mut self,
        files: &[Pending],
        file: usize,
        offset: u64,
        data: &[u8],
        progress: &dyn Progress,
    ) -> Result<()> {
        if let Some((f, start, buf)) = &mut self.gathered {
            if *f == file && *start + buf.len() as u64 == offset && buf.len() + data.len() <= GATHER
            {
                buf.extend_from_slice(data);
                return Ok(());
            }
        }
        // What was gathered failing (for another file) must not lose these bytes.
        let flushed = self.flush(files, progress);
        let mut buf = std::mem::take(&mut self.spare);
        buf.clear();
        buf.extend_from_slice(data);
        self.gathered = Some((file, offset, buf));
        flushed
    }

    /// Writes what was gathered; on failure the file is marked failed.
    fn flush(&mut self, files: &[Pending], progress: &dyn Progress) -> Result<()> {
        let Some((file, offset, buf)) = self.gathered.take() else {
            return Ok(());
        };
        let pending = &files[file];
        let result = self.handle(file, pending).and_then(|f| {
            f.write_all_at(&buf, offset)
                .ctx(|| format!("writing {}", pending.tmp.display()))?;
            start_writeback(f, offset, buf.len());
            Ok(())
        });
        let len = buf.len() as u64;
        self.spare = buf;
        match result {
            Ok(()) => {
                pending.missing.fetch_sub(len, Ordering::Relaxed);
                progress.bytes(len);
                Ok(())
            }
            Err(e) => {
                pending.failed.store(true, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn handle(&mut self, file: usize, pending: &Pending) -> Result<&File> {
        let at = match self.open.iter().position(|(f, _)| *f == file) {
            Some(at) => at,
            None => {
                if self.open.len() == OPEN_FILES {
                    self.open.remove(0);
                }
                pending.create()?;
                let path = &pending.tmp;
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .ctx(|| format!("opening {}", path.display()))?;
                self.open.push((file, f));
                self.open.len() - 1
            }
        };
        Ok(&self.open[at].1)
    }
}

/// Marks the files the targets in `range` belong to as failed.
fn fail(files: &[Pending], targets: &[Target], range: &std::ops::Range<usize>) {
    for t in &targets[range.clone()] {
        files[t.file].failed.store(true, Ordering::Relaxed);
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` to the disk now, without waiting:
/// the one flush before the renames then finds most of the restore already there, instead of
/// all of it. A hint; file systems that do not support it are left to their own writeback.
fn start_writeback(file: &File, offset: u64, len: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid descriptor; the call only schedules writeback of its pages.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    let _ = (file, offset, len);
}

/// Applies mode, owner (when running as root) and modification time.
fn set_metadata(path: &Path, node: &Node, is_root: bool) -> Result<()> {
    if is_root && (node.uid != 0 || node.gid != 0) {
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| StoreError::corrupt("restore path", "NUL in a path"))?;
        // SAFETY: c is a valid NUL-terminated path.
        unsafe { libc::lchown(c.as_ptr(), node.uid, node.gid) };
    }
    let mtime = filetime_from_ns(node.mtime_ns);
    if node.kind == NodeKind::Symlink {
        return filetime::set_symlink_file_times(path, mtime, mtime)
            .ctx(|| format!("setting times of {}", path.display()));
    }
    if node.mode != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(node.mode & 0o7777))
            .ctx(|| format!("setting mode of {}", path.display()))?;
    }
    filetime::set_file_times(path, mtime, mtime)
        .ctx(|| format!("setting times of {}", path.display()))
}

fn filetime_from_ns(ns: i64) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        s.split('/').map(str::to_string).collect()
    }

    #[test]
    fn include_selection() {
        let inc = vec![p("a/b")];
        assert!(selected(&inc, &p("a")));
        assert!(selected(&inc, &p("a/b")));
        assert!(selected(&inc, &p("a/b/c")));
        assert!(!selected(&inc, &p("a/c")));
        assert!(!selected(&inc, &p("x")));
        assert!(!wholly_selected(&inc, &p("a")));
        assert!(wholly_selected(&inc, &p("a/b/c")));
        assert!(selected(&[], &p("anything")));
    }
}
