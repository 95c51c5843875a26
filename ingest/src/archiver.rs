//! The archiver: turns a backup's sources into one snapshot tree.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use cairn_chunker::{Chunker, ChunkerParams};

use crate::mssql::Grouping;
use crate::stream::{Chunkers, StoredStream};
use cairn_store::{Node, NodeKind, Progress, Repository, Tree, TreeId};
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{IngestError, Result};
use crate::stream::store_stream;

/// One input of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file or directory tree, stored under `name` (by default its base name), leaving out
    /// what `excludes` matches besides the archiver's own exclusions.
    Path {
        path: PathBuf,
        name: Option<String>,
        excludes: Vec<String>,
    },
    /// Standard input, stored as a stream under `name`.
    Stdin { name: String },
    /// The standard output of a command, stored as a stream under `name`.
    Command { name: String, argv: Vec<String> },
}

impl Source {
    /// A file or directory tree stored under its base name.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        Source::Path {
            path: path.into(),
            name: None,
            excludes: Vec::new(),
        }
    }

    /// How the source is listed in the snapshot's `paths`.
    pub fn describe(&self) -> String {
        match self {
            Source::Path { path: p, .. } => std::path::absolute(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
            Source::Stdin { name } | Source::Command { name, .. } => name.clone(),
        }
    }

    /// Where the source goes in the snapshot tree, as name components.
    fn placement(&self) -> Result<Vec<Vec<u8>>> {
        let name: Vec<u8> = match self {
            Source::Path {
                name: Some(name), ..
            } => name.as_bytes().to_vec(),
            Source::Path { path: p, .. } => {
                let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
                match abs.file_name() {
                    Some(n) => n.as_bytes().to_vec(),
                    None => b"root".to_vec(),
                }
            }
            Source::Stdin { name } | Source::Command { name, .. } => name.as_bytes().to_vec(),
        };
        let parts: Vec<Vec<u8>> = name
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        if parts.is_empty() || parts.iter().any(|p| p == b"." || p == b"..") {
            return Err(IngestError::InvalidName(
                String::from_utf8_lossy(&name).into_owned(),
            ));
        }
        Ok(parts)
    }
}

/// Counts of a backup run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupStats {
    pub bytes_read: u64,
    pub chunks_new: u64,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs: u64,
}

/// The result of archiving: the root tree (not yet referenced by a snapshot) and what
/// happened on the way.
#[derive(Debug)]
pub struct ArchiveOutcome {
    pub tree: TreeId,
    pub stats: BackupStats,
    /// Problems that did not stop the backup: unreadable files and missing sources, and
    /// advisories (a compressed SQL backup, a file that changed while read, a skipped socket).
    pub warnings: Vec<String>,
    /// Some files or sources could not be read (a subset of the warnings said so).
    pub partial: bool,
    /// Every SQL Server backup stored: its path in the snapshot and its metadata, for listings
    /// and chain-aware retention.
    pub mssql: Vec<serde_json::Value>,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub bytes_read: AtomicU64,
    pub chunks_new: AtomicU64,
    pub files_new: AtomicU64,
    pub files_changed: AtomicU64,
    pub files_unmodified: AtomicU64,
    pub dirs: AtomicU64,
    pub unreadable: AtomicU64,
}

/// Exclusion patterns: a pattern with a `/` matches the absolute path, any other the name.
pub(crate) struct Excludes {
    by_path: GlobSet,
    by_name: GlobSet,
    /// Leave out files named `Meeting.Active` (any case).
    meetings: bool,
}

/// The file a Lync / Skype for Business conference holds open and locked while it runs.
pub const MEETING_ACTIVE: &str = "Meeting.Active";

impl Excludes {
    pub(crate) fn new(patterns: &[String], meetings: bool) -> Result<Self> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        for p in patterns {
            let glob = Glob::new(p).map_err(|source| IngestError::InvalidExclude {
                pattern: p.clone(),
                source,
            })?;
            if p.contains('/') {
                by_path.add(glob);
            } else {
                by_name.add(glob);
            }
        }
        let build = |b: GlobSetBuilder, p: &str| {
            b.build().map_err(|source| IngestError::InvalidExclude {
                pattern: p.to_string(),
                source,
            })
        };
        Ok(Self {
            by_path: build(by_path, "")?,
            by_name: build(by_name, "")?,
            meetings,
        })
    }

    pub fn excluded(&self, path: &std::path::Path, name: &std::ffi::OsStr) -> bool {
        (self.meetings
            && name
                .as_bytes()
                .eq_ignore_ascii_case(MEETING_ACTIVE.as_bytes()))
            || self.by_name.is_match(name)
            || self.by_path.is_match(path)
    }
}

pub struct Archiver<'a> {
    pub(crate) repo: &'a Repository,
    pub(crate) chunkers: Chunkers,
    excludes: Vec<String>,
    skip_meetings: bool,
    tolerate_failed_commands: bool,
    pub(crate) progress: &'a dyn Progress,
    pub(crate) counters: Counters,
    warnings: Mutex<Vec<String>>,
    mssql: Mutex<Vec<serde_json::Value>>,
}

/// A partly assembled root: source nodes placed at their names, with the directories between.
enum Slot {
    Leaf(Box<Node>),
    Dir(BTreeMap<Vec<u8>, Slot>),
}

impl<'a> Archiver<'a> {
    /// An archiver using the repository's chunker parameters and the given exclusions.
    pub fn new(
        repo: &'a Repository,
        excludes: &[String],
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        let c = &repo.config().chunker;
        let chunker = |s: cairn_store::ChunkSizes| -> Result<Chunker> {
            Ok(Chunker::new(ChunkerParams::new(s.min, s.avg, s.max)?))
        };
        let grouping = match c.pages.as_str() {
            "page" => Grouping::Page,
            "extent" => Grouping::Extent,
            other => {
                return Err(IngestError::InvalidName(format!(
                    "page grouping {other:?} in the repository config"
                )))
            }
        };
        Ok(Self {
            repo,
            chunkers: Chunkers {
                files: chunker(c.files)?,
                small: chunker(c.small)?,
                grouping,
            },
            excludes: {
                Excludes::new(excludes, false)?;
                excludes.to_vec()
            },
            skip_meetings: false,
            tolerate_failed_commands: false,
            progress,
            counters: Counters::default(),
            warnings: Mutex::new(Vec::new()),
            mssql: Mutex::new(Vec::new()),
        })
    }

    /// Never stores files named `Meeting.Active` (the Lync profile): a running conference
    /// holds them locked, and they are of no use once it ends.
    pub fn skip_meeting_active(mut self) -> Self {
        self.skip_meetings = true;
        self
    }

    /// A command source that fails (cannot start, or exits non-zero) is left out and the
    /// snapshot marked partial, instead of failing the whole archive.
    pub fn tolerate_failed_commands(mut self) -> Self {
        self.tolerate_failed_commands = true;
        self
    }

    /// An advisory: listed in the summary, but the snapshot is complete.
    pub(crate) fn warn(&self, message: String) {
        self.progress.warn(&message);
        self.warnings.lock().expect("warnings mutex").push(message);
    }

    /// Something could not be read: the snapshot will be marked partial (exit code 3).
    pub(crate) fn unreadable(&self, message: String) {
        self.counters.unreadable.fetch_add(1, Ordering::Relaxed);
        self.warn(message);
    }

    /// Archives every source into one root tree. `parent` is the root tree of the previous
    /// snapshot of the same sources: files unchanged since (size, mtime, ctime, inode) are not
    /// read again. `mtime_ns` dates the directories made to hold nested source names.
    ///
    /// Unreadable files and missing sources become warnings; a command that exits non-zero
    /// fails the whole archive, unless [`Archiver::tolerate_failed_commands`] was asked for.
    pub fn archive(
        &self,
        sources: &[Source],
        parent: Option<&TreeId>,
        mtime_ns: i64,
    ) -> Result<ArchiveOutcome> {
        let mut root: BTreeMap<Vec<u8>, Slot> = BTreeMap::new();
        let parent_tree = parent.map(|id| self.repo.load_tree(id)).transpose()?;
        // Every pattern is checked before anything is read.
        let excludes = sources
            .iter()
            .map(|source| {
                let mut patterns = self.excludes.clone();
                if let Source::Path { excludes, .. } = source {
                    patterns.extend(excludes.iter().cloned());
                }
                Excludes::new(&patterns, self.skip_meetings)
            })
            .collect::<Result<Vec<_>>>()?;
        for (source, excludes) in sources.iter().zip(&excludes) {
            let parts = source.placement()?;
            let parent_node = match &parent_tree {
                Some(t) => self.lookup(t, &parts)?,
                None => None,
            };
            let node = match source {
                Source::Path { path, .. } => {
                    let name = parts.last().expect("placement is not empty");
                    let rel = String::from_utf8_lossy(&parts.join(&b'/')).into_owned();
                    self.archive_path(path, name, &rel, parent_node.as_ref(), excludes)?
                }
                Source::Stdin { name } => {
                    let stdin = std::io::stdin();
                    let mut lock = stdin.lock();
                    Some(self.archive_reader(&mut lock, &parts, name, parent_node.is_some())?)
                }
                Source::Command { name, argv } => {
                    match self.archive_command(argv, &parts, name, parent_node.is_some()) {
                        Ok(node) => Some(node),
                        Err(e @ (IngestError::CommandFailed { .. } | IngestError::Io { .. }))
                            if self.tolerate_failed_commands =>
                        {
                            self.unreadable(format!("{name}: {e}; not stored"));
                            None
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            if let Some(node) = node {
                insert(&mut root, &parts, node)
                    .map_err(|()| IngestError::DuplicateName(source.describe()))?;
            }
        }
        let tree = self.save_slots(root, mtime_ns)?;
        let c = &self.counters;
        let stats = BackupStats {
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            chunks_new: c.chunks_new.load(Ordering::Relaxed),
            files_new: c.files_new.load(Ordering::Relaxed),
            files_changed: c.files_changed.load(Ordering::Relaxed),
            files_unmodified: c.files_unmodified.load(Ordering::Relaxed),
            dirs: c.dirs.load(Ordering::Relaxed),
        };
        let mut mssql = std::mem::take(&mut *self.mssql.lock().expect("mssql mutex"));
        mssql.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        for w in incomplete_stripes(&mssql) {
            self.warn(w);
        }
        let warnings = std::mem::take(&mut *self.warnings.lock().expect("warnings mutex"));
        Ok(ArchiveOutcome {
            tree,
            stats,
            warnings,
            partial: c.unreadable.load(Ordering::Relaxed) > 0,
            mssql,
        })
    }

    fn lookup(&self, root: &Tree, parts: &[Vec<u8>]) -> Result<Option<Node>> {
        let mut tree = root.clone();
        for (i, part) in parts.iter().enumerate() {
            let Some(node) = tree.find(part) else {
                return Ok(None);
            };
            if i + 1 == parts.len() {
                return Ok(Some(node.clone()));
            }
            match node.subtree {
                Some(sub) => tree = self.repo.load_tree(&sub)?,
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    fn archive_reader(
        &self,
        reader: &mut dyn Read,
        parts: &[Vec<u8>],
        what: &str,
        had_parent: bool,
    ) -> Result<Node> {
        let stored = store_stream(self.repo, &self.chunkers, reader, what, None, self.progress)?;
        self.counters
            .bytes_read
            .fetch_add(stored.size, Ordering::Relaxed);
        self.counters
            .chunks_new
            .fetch_add(stored.chunks_new, Ordering::Relaxed);
        let counter = if had_parent {
            &self.counters.files_changed
        } else {
            &self.counters.files_new
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut node = Node::new(String::new(), NodeKind::Stream);
        node.set_name_bytes(parts.last().expect("placement is not empty"));
        node.mode = 0o644;
        node.mtime_ns = now_ns();
        let rel = String::from_utf8_lossy(&parts.join(&b'/')).into_owned();
        self.take_stored(&mut node, stored, what, &rel);
        Ok(node)
    }

    fn archive_command(
        &self,
        argv: &[String],
        parts: &[Vec<u8>],
        name: &str,
        had_parent: bool,
    ) -> Result<Node> {
        let command = argv.join(" ");
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| IngestError::InvalidName("an empty command".into()))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|error| IngestError::Io {
                context: format!("starting command {command:?}"),
                error,
            })?;
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let result = self.archive_reader(&mut stdout, parts, name, had_parent);
        drop(stdout);
        let status = child.wait().map_err(|error| IngestError::Io {
            context: format!("waiting for command {command:?}"),
            error,
        })?;
        if !status.success() {
            return Err(IngestError::CommandFailed {
                command,
                status: status.to_string(),
            });
        }
        result
    }

    /// Puts a stored stream's content and metadata on its node (at `rel` in the snapshot);
    /// its warnings go to the run's.
    pub(crate) fn take_stored(&self, node: &mut Node, stored: StoredStream, what: &str, rel: &str) {
        node.size = stored.size;
        node.content = Some(stored.content);
        if let Some(meta) = stored.mssql {
            let value = serde_json::to_value(meta).expect("metadata serializes");
            let mut listed = value.clone();
            listed["path"] = serde_json::Value::String(rel.to_string());
            self.mssql.lock().expect("mssql mutex").push(listed);
            node.meta
                .get_or_insert_with(Default::default)
                .insert("mssql".into(), value);
        }
        if let Some(listing) = stored.zip {
            let value = serde_json::to_value(listing).expect("listing serializes");
            node.meta
                .get_or_insert_with(Default::default)
                .insert("zip".into(), value);
        }
        for w in stored.warnings {
            self.warn(format!("{what}: {w}"));
        }
    }

    /// Lists the SQL backup of a node taken over unread from the parent snapshot.
    pub(crate) fn relist(&self, node: &Node, rel: &str) {
        if let Some(value) = node.meta.as_ref().and_then(|m| m.get("mssql")) {
            let mut listed = value.clone();
            listed["path"] = serde_json::Value::String(rel.to_string());
            self.mssql.lock().expect("mssql mutex").push(listed);
        }
    }

    fn save_slots(&self, slots: BTreeMap<Vec<u8>, Slot>, mtime_ns: i64) -> Result<TreeId> {
        let mut nodes = Vec::with_capacity(slots.len());
        for (name, slot) in slots {
            match slot {
                Slot::Leaf(node) => nodes.push(*node),
                Slot::Dir(children) => {
                    let mut node = Node::new(String::new(), NodeKind::Dir);
                    node.set_name_bytes(&name);
                    node.mode = 0o755;
                    node.mtime_ns = mtime_ns;
                    node.subtree = Some(self.save_slots(children, mtime_ns)?);
                    nodes.push(node);
                }
            }
        }
        Ok(self.repo.save_tree(&Tree::new(nodes))?)
    }
}

/// Striped backups (one media set written to several files) restore only with every file:
/// a warning per media set of which the snapshot holds only some families.
fn incomplete_stripes(mssql: &[serde_json::Value]) -> Vec<String> {
    let mut sets: BTreeMap<&str, (u64, Vec<u64>, Vec<&str>)> = BTreeMap::new();
    for m in mssql {
        let (Some(guid), Some(count), Some(number)) = (
            m["media_set_guid"].as_str(),
            m["family_count"].as_u64(),
            m["family_number"].as_u64(),
        ) else {
            continue;
        };
        if count > 1 {
            let entry = sets.entry(guid).or_insert((count, Vec::new(), Vec::new()));
            entry.1.push(number);
            entry.2.push(m["path"].as_str().unwrap_or("?"));
        }
    }
    sets.into_iter()
        .filter_map(|(guid, (count, mut numbers, paths))| {
            numbers.sort_unstable();
            numbers.dedup();
            ((numbers.len() as u64) < count).then(|| {
                format!(
                    "striped SQL Server backup (media set {guid}) has {count} files but the snapshot holds only number(s) {numbers:?} ({}): it cannot be restored without the others",
                    paths.join(", ")
                )
            })
        })
        .collect()
}

/// Places `node` at `parts` (the last part is its name), creating directories on the way.
fn insert(slots: &mut BTreeMap<Vec<u8>, Slot>, parts: &[Vec<u8>], node: Node) -> Result<(), ()> {
    let (first, rest) = parts.split_first().expect("placement is not empty");
    if rest.is_empty() {
        if slots.contains_key(first) {
            return Err(());
        }
        slots.insert(first.clone(), Slot::Leaf(Box::new(node)));
        return Ok(());
    }
    match slots
        .entry(first.clone())
        .or_insert_with(|| Slot::Dir(BTreeMap::new()))
    {
        Slot::Dir(children) => insert(children, rest, node),
        Slot::Leaf(_) => Err(()),
    }
}

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
