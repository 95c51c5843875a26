//! File trees: directories walked one level at a time, entries archived in parallel.

use std::fs::{File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use cairn_store::{Node, NodeKind, Tree};
use rayon::prelude::*;
use walkdir::WalkDir;

use crate::archiver::{Archiver, Excludes};
use crate::error::{display, IngestError, Result};
use crate::read::{will_need, SourceFile, PREFETCH};
use crate::stream::store_stream;

/// Starts reading the sources' large files while the repository is being opened (the
/// password's key derivation takes about 0.2 s, the disk would otherwise sit idle):
/// a thread walks `paths` and asks the kernel for the first [`PREFETCH`] bytes of each regular
/// file of at least 1 MiB that `excludes` keeps, up to 256 MiB in all. It stops when the
/// returned guard is dropped.
pub fn prefetch(
    paths: Vec<PathBuf>,
    excludes: &[String],
    skip_meeting_active: bool,
) -> Result<Prefetch> {
    let excludes = Excludes::new(excludes, skip_meeting_active)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        const BUDGET: u64 = 256 << 20;
        let mut asked = 0u64;
        for path in paths {
            let walk = WalkDir::new(&path).follow_links(false).into_iter();
            let kept = walk.filter_entry(|e| !excludes.excluded(e.path(), e.file_name()));
            for entry in kept.flatten() {
                if flag.load(Ordering::Relaxed) || asked >= BUDGET {
                    return;
                }
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() || meta.len() < 1 << 20 {
                    continue;
                }
                let Ok(file) = File::open(entry.path()) else {
                    continue;
                };
                let len = meta.len().min(PREFETCH);
                will_need(&file, 0, len);
                asked += len;
            }
        }
    });
    Ok(Prefetch { stop })
}

/// Stops [`prefetch`]'s thread when dropped.
pub struct Prefetch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn base_node(name: &[u8], kind: NodeKind, meta: &Metadata) -> Node {
    let mut node = Node::new(String::new(), kind);
    node.set_name_bytes(name);
    node.mode = meta.mode() & 0o7777;
    node.mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
    node.ctime_ns = meta.ctime() * 1_000_000_000 + meta.ctime_nsec();
    node.inode = meta.ino();
    node.uid = meta.uid();
    node.gid = meta.gid();
    node
}

impl Archiver<'_> {
    /// Archives the file, directory or symlink at `path` as a node named `name`. Returns `None`
    /// (with a warning) when it cannot be read; fails only when the repository fails.
    pub(crate) fn archive_path(
        &self,
        path: &Path,
        name: &[u8],
        rel: &str,
        parent: Option<&Node>,
        excludes: &Excludes,
    ) -> Result<Option<Node>> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.unreadable(format!("{}: {e}", display(path)));
                return Ok(None);
            }
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            self.archive_dir(path, name, rel, &meta, parent, excludes)
        } else if ft.is_file() {
            self.archive_file(path, name, rel, &meta, parent)
        } else if ft.is_symlink() {
            match std::fs::read_link(path) {
                Ok(target) => {
                    let mut node = base_node(name, NodeKind::Symlink, &meta);
                    node.set_target_bytes(target.as_os_str().as_bytes());
                    Ok(Some(node))
                }
                Err(e) => {
                    self.unreadable(format!("{}: reading symlink: {e}", display(path)));
                    Ok(None)
                }
            }
        } else {
            let kind = if ft.is_fifo() {
                "named pipe"
            } else if ft.is_socket() {
                "socket"
            } else {
                "device"
            };
            self.warn(format!("{}: skipped ({kind})", display(path)));
            Ok(None)
        }
    }

    fn archive_dir(
        &self,
        path: &Path,
        name: &[u8],
        rel: &str,
        meta: &Metadata,
        parent: Option<&Node>,
        excludes: &Excludes,
    ) -> Result<Option<Node>> {
        let mut children: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        for entry in WalkDir::new(path)
            .min_depth(1)
            .max_depth(1)
            .follow_links(false)
        {
            match entry {
                Ok(e) => {
                    if !excludes.excluded(e.path(), e.file_name()) {
                        children.push((e.path().to_owned(), e.file_name().as_bytes().to_vec()));
                    }
                }
                Err(e) => {
                    let at = e.path().map(display).unwrap_or_else(|| display(path));
                    let reason = e
                        .io_error()
                        .map(ToString::to_string)
                        .unwrap_or_else(|| e.to_string());
                    self.unreadable(format!("{at}: {reason}"));
                    if e.depth() == 0 {
                        // The directory itself cannot be listed: leave it out.
                        return Ok(None);
                    }
                }
            }
        }
        let parent_tree = match parent
            .filter(|p| p.kind == NodeKind::Dir)
            .and_then(|p| p.subtree)
        {
            Some(id) => Some(self.repo.load_tree(&id)?),
            None => None,
        };
        let nodes: Vec<Option<Node>> = children
            .par_iter()
            .map(|(child, child_name)| {
                let prev = parent_tree.as_ref().and_then(|t| t.find(child_name));
                let child_rel = format!("{rel}/{}", String::from_utf8_lossy(child_name));
                self.archive_path(child, child_name, &child_rel, prev, excludes)
            })
            .collect::<Result<_>>()?;
        let tree = Tree::new(nodes.into_iter().flatten().collect());
        let mut node = base_node(name, NodeKind::Dir, meta);
        node.subtree = Some(self.repo.save_tree(&tree)?);
        self.counters.dirs.fetch_add(1, Ordering::Relaxed);
        Ok(Some(node))
    }

    fn archive_file(
        &self,
        path: &Path,
        name: &[u8],
        rel: &str,
        meta: &Metadata,
        parent: Option<&Node>,
    ) -> Result<Option<Node>> {
        let mut node = base_node(name, NodeKind::File, meta);
        if let Some(prev) = parent.filter(|p| {
            p.kind == NodeKind::File
                && p.size == meta.len()
                && p.mtime_ns == node.mtime_ns
                && p.ctime_ns == node.ctime_ns
                && p.inode == node.inode
                && p.content.is_some()
        }) {
            node.size = prev.size;
            node.content = prev.content.clone();
            node.meta = prev.meta.clone();
            self.relist(&node, rel);
            self.counters
                .files_unmodified
                .fetch_add(1, Ordering::Relaxed);
            self.progress.file_done();
            return Ok(Some(node));
        }
        let mut file = match SourceFile::open(path, meta.len()) {
            Ok(f) => f,
            Err(e) => {
                self.unreadable(format!("{}: {e}", display(path)));
                return Ok(None);
            }
        };
        let what = display(path);
        let stored = match store_stream(
            self.repo,
            &self.chunkers,
            &mut file,
            &what,
            Some(meta.len()),
            self.progress,
        ) {
            Ok(s) => s,
            Err(e @ IngestError::Io { .. }) => {
                self.unreadable(e.to_string());
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        // A file written while it is read may be stored torn: say so. Size and mtime are
        // compared with the file as it was before the read and as it is after.
        let after = file.file().metadata().ok();
        let mtime_after = after
            .as_ref()
            .map(|m| m.mtime() * 1_000_000_000 + m.mtime_nsec());
        if stored.size != meta.len()
            || after.as_ref().is_some_and(|m| m.len() != meta.len())
            || mtime_after.is_some_and(|t| t != node.mtime_ns)
        {
            self.warn(format!(
                "{what}: changed while being read ({} bytes before, {} read{}): the stored copy may be inconsistent",
                meta.len(),
                stored.size,
                after.map_or(String::new(), |m| format!(", {} after", m.len()))
            ));
        }
        let c = &self.counters;
        c.bytes_read.fetch_add(stored.size, Ordering::Relaxed);
        c.chunks_new.fetch_add(stored.chunks_new, Ordering::Relaxed);
        self.take_stored(&mut node, stored, &what, rel);
        let counter = if parent.is_some() {
            &c.files_changed
        } else {
            &c.files_new
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.progress.file_done();
        Ok(Some(node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_takes_missing_paths_and_refuses_a_bad_pattern_before_anything_opens() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![7u8; 2 << 20]).unwrap();
        let paths = vec![dir.path().to_owned(), dir.path().join("missing")];
        let guard = prefetch(paths.clone(), &["*.tmp".into()], true).unwrap();
        drop(guard);
        let err = prefetch(paths, &["[".into()], false).err().unwrap();
        assert!(err.to_string().contains('['), "{err}");
    }
}
