//! Restoring a snapshot tree into a directory.
//!
//! Every file is written under a temporary name beside its final one and renamed only once all
//! its bytes were read, authenticated and verified against their IDs: a damaged repository
//! never leaves wrong or partial files under their real names.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::{IoContext, Result, StoreError};
use crate::id::TreeId;
use crate::progress::Progress;
use crate::repository::Repository;
use crate::tree::{Node, NodeKind};

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
}

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
    };
    fs::create_dir_all(&options.target).ctx(|| format!("creating {}", options.target.display()))?;
    r.restore_tree(tree, &options.target, &[])?;
    let mut dirs = r.dir_times.into_inner().expect("dir_times mutex");
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (path, node) in dirs {
        set_metadata(&path, &node, r.is_root)?;
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
    fn restore_tree(&self, id: &TreeId, dir: &Path, rel: &[String]) -> Result<()> {
        let tree = self.repo.load_tree(id)?;
        tree.nodes.par_iter().try_for_each(|node| {
            let name = node.name_bytes();
            if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
                return Err(StoreError::corrupt(
                    format!("tree {id}"),
                    format!("unsafe file name {:?}", node.name),
                ));
            }
            let mut rel = rel.to_vec();
            rel.push(node.name.clone());
            if !selected(&self.includes, &rel) {
                return Ok(());
            }
            let path = dir.join(OsStr::from_bytes(&name));
            self.restore_node(node, &path, &rel)
        })
    }

    fn restore_node(&self, node: &Node, path: &Path, rel: &[String]) -> Result<()> {
        match node.kind {
            NodeKind::Dir => {
                match fs::create_dir(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => {}
                    Err(e) => return Err(e).ctx(|| format!("creating {}", path.display())),
                }
                if let Some(sub) = &node.subtree {
                    self.restore_tree(sub, path, rel)?;
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

    fn restore_file(&self, node: &Node, path: &Path) -> Result<()> {
        let mut tmp_name = OsStr::new(".").to_owned();
        tmp_name.push(path.file_name().expect("restored paths have a name"));
        tmp_name.push(".cairn-restore");
        let tmp = path.with_file_name(tmp_name);
        let result = (|| {
            let f = File::create(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            let mut written = 0u64;
            if let Some(content) = &node.content {
                for entry in self.repo.chunks(content) {
                    let entry = entry?;
                    let data = self.repo.load_blob(&entry.0)?;
                    w.write_all(&data)
                        .ctx(|| format!("writing {}", tmp.display()))?;
                    written += data.len() as u64;
                    self.progress.bytes(data.len() as u64);
                }
            }
            if written != node.size {
                return Err(StoreError::corrupt(
                    format!("file node {:?}", node.name),
                    format!("content holds {written} bytes, the node says {}", node.size),
                ));
            }
            let f = w
                .into_inner()
                .map_err(|e| e.into_error())
                .ctx(|| format!("writing {}", tmp.display()))?;
            f.sync_all().ctx(|| format!("syncing {}", tmp.display()))?;
            drop(f);
            set_metadata(&tmp, node, self.is_root)?;
            fs::rename(&tmp, path).ctx(|| format!("renaming {} into place", tmp.display()))?;
            self.bytes.fetch_add(written, Ordering::Relaxed);
            self.files.fetch_add(1, Ordering::Relaxed);
            self.progress.file_done();
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
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
