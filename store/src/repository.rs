//! The open repository: saving and loading blobs, committing packs → index → snapshot, keeping
//! the catalog in step with the files on the share.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::backend::{random_hex, sync_dir, Backend, LocalBackend};
use crate::catalog::{BlobLocation, Catalog};
use crate::config::{
    ChunkerConfig, Config, ENCRYPTION_NONE, ENCRYPTION_XCHACHA, FORMAT_VERSION,
    OLDEST_FORMAT_VERSION,
};
use crate::envelope::MasterKey;
use crate::error::{IoContext, Result, StoreError};
use crate::id::{BlobId, IdPrefix, IndexId, PackId, SnapshotId, TreeId};
use crate::index::{decode_segment, encode_segment, index_path, IndexedPack};
use crate::keys::{KdfParams, KeyFile};
use crate::lock::Lock;
use crate::pack::{pack_path, read_trailer, BlobKind, FinishedPack, Member, PackEntry, PackWriter};
use crate::snapshot::{snapshot_path, Snapshot};
use crate::tree::{decode_list, Content, ContentEntry, Tree};

/// An index segment is written once this many packs are waiting for one (4 GiB of packs), so
/// that a long backup's new blobs become known to the catalog and leave memory.
const PACKS_PER_SEGMENT: usize = 256;
/// ... or once this many blobs are (about 300 MB of database pages). Whatever waits at the end
/// is encoded, written and added to the catalog on one thread after the data is done: with
/// packs alone as the measure, a first backup of 1.6 GB (64 packs, 180,000 blobs) ended with
/// half a second of one core inserting them all. Prune and repair consolidate segments.
const BLOBS_PER_SEGMENT: usize = 32_768;

/// The most plaintext a frame of several blobs holds (format 2). Data blobs stored by one
/// call are framed together, in the order given: zstd finds repeats across a frame's blobs
/// and builds its tables once for all of them. Measured with `zstd -b1` on a first night's
/// SQL Server pages: independent 9 KiB blocks compress at 166 MB/s to 1.79×, 64 KiB blocks
/// at 205 MB/s to 1.97× and decompress 1.4× as fast; 256 KiB gain little more and make a
/// reader of one blob decode more of what it does not need.
pub const FRAME_TARGET: usize = 64 << 10;

/// The plaintext of the frame opened last (see [`Repository::open_blob_in`]), kept so that
/// its other blobs are read without opening it again. Reused, it also saves an allocation
/// per frame.
#[derive(Default)]
pub struct Frame {
    /// Which frame `plain` holds: pack, offset and length of its envelope.
    at: Option<(PackId, u64, u64)>,
    plain: Vec<u8>,
}

impl Frame {
    /// Where blob `entry` lies in the plaintext, if inside it.
    fn range(&self, entry: &PackEntry) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(entry.start).ok()?;
        let end = start.checked_add(usize::try_from(entry.raw_len).ok()?)?;
        (end <= self.plain.len()).then_some(start..end)
    }

    /// The plaintext of blob `entry` (opened by [`Repository::open_blob_in`]), moved out when
    /// it is the whole frame.
    pub fn take_blob(&mut self, entry: &PackEntry) -> Vec<u8> {
        let range = self.range(entry).expect("checked when opened");
        if range == (0..self.plain.len()) {
            self.at = None;
            std::mem::take(&mut self.plain)
        } else {
            self.plain[range].to_vec()
        }
    }
}

/// A frame sealed and ready for a pack.
struct SealedFrame {
    members: Vec<Member>,
    envelope: Vec<u8>,
}

/// Directories of a repository, besides the 256 `data/xx` pack directories.
const DIRS: [&str; 5] = ["data", "index", "keys", "locks", "snapshots"];

/// Every directory of a repository: where temporary files of interrupted writes are looked for.
pub(crate) fn all_dirs() -> impl Iterator<Item = String> {
    DIRS.into_iter()
        .map(String::from)
        .chain((0..=255u8).map(|i| format!("data/{}", hex::encode([i]))))
}

/// What `save_blobs` did with one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedBlob {
    pub id: BlobId,
    pub size: u64,
    /// Stored by this call (false when the repository already had it).
    pub new: bool,
}

#[derive(Default)]
struct Session {
    /// Blobs stored by this process but not yet in a committed index segment.
    pending: HashSet<BlobId>,
    /// Packs written but not yet listed by an index segment.
    unindexed: Vec<IndexedPack>,
}

/// How a new repository protects its content.
pub struct Encryption {
    pub password: zeroize::Zeroizing<String>,
    pub kdf: KdfParams,
}

/// Options of [`Repository::init`].
pub struct InitOptions {
    pub chunker: ChunkerConfig,
    /// `None` makes an unencrypted repository (`--insecure-no-encryption`): objects are only
    /// authenticated, and the key lies unprotected in `keys/`.
    pub encryption: Option<Encryption>,
}

/// Supplies the password, asked only when a key file needs one.
pub type PasswordSource<'a> = &'a dyn Fn() -> Result<zeroize::Zeroizing<String>>;

/// Options of [`Repository::open`].
pub struct OpenOptions<'a> {
    /// Where the catalog lives (default: [`default_cache_dir`]).
    pub cache_dir: Option<&'a Path>,
    pub password: PasswordSource<'a>,
    /// Bring the catalog up to date with the repository while opening (every command but
    /// `repair index`, which must open a repository whose index it cannot read).
    pub sync: bool,
}

/// A key file, as `key list` shows it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: String,
    pub created: String,
    pub kdf: String,
    /// The key this process opened the repository with.
    pub current: bool,
}

/// What `repair index` found.
#[derive(Debug, Default)]
pub struct RepairReport {
    pub packs_indexed: u64,
    pub blobs_indexed: u64,
    pub segments_removed: u64,
    /// Packs whose trailer could not be read, with the reason; their blobs are not indexed.
    pub damaged_packs: Vec<String>,
}

pub struct Repository {
    backend: Arc<dyn Backend>,
    root: PathBuf,
    config: Config,
    key: MasterKey,
    catalog: Mutex<Catalog>,
    catalog_dir: PathBuf,
    /// The key file the repository was opened with.
    key_name: String,
    /// The open pack of each blob kind ([`BlobKind::code`]): trees and chunk lists go to
    /// packs of their own, so that walking a snapshot's trees (restore, `ls`, `diff`) reads a
    /// few dense packs instead of picking small blobs out of the data.
    writers: Mutex<[PackWriter; 2]>,
    session: Mutex<Session>,
    /// Bytes of packs, index segments and snapshots this process added to the repository.
    added: AtomicU64,
}

/// The number of cores this process may use, asked once: the standard library reads the
/// process's cgroup files on every call (three files opened and parsed), which once cost
/// 45,000 opens on a night's backup that asks for every batch it hashes.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `f` over `items`, in order, on as many threads as there are cores (the caller's among them).
///
/// Items are handed out a few at a time to whichever thread is free, not split in equal
/// halves: the items of a batch differ in cost (zstd takes longer over a compressible page
/// group than over one it gives up on), and with fixed halves one thread waited for the other
/// at the end of every batch.
///
/// Plain scoped threads, not rayon: a rayon worker waiting on a rayon job would pick up other
/// queued work meanwhile — such as another file to back up, with buffers of its own — so the
/// files in flight, and memory, would grow without bound. A thread joining scoped threads just
/// waits.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const BLOCK: usize = 4;
    let threads = cores();
    if threads < 2 || items.len() <= BLOCK {
        return items.iter().map(&f).collect();
    }
    let blocks = items.len().div_ceil(BLOCK);
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let block = next.fetch_add(1, Ordering::Relaxed);
            if block >= blocks {
                return done;
            }
            let start = block * BLOCK;
            let end = (start + BLOCK).min(items.len());
            done.push((start, items[start..end].iter().map(&f).collect::<Vec<R>>()));
        }
    };
    let mut parts = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads.min(blocks))
            .map(|_| scope.spawn(work))
            .collect();
        let mut parts = work();
        for h in helpers {
            match h.join() {
                Ok(more) => parts.extend(more),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        parts
    });
    parts.sort_unstable_by_key(|p| p.0);
    parts.into_iter().flat_map(|p| p.1).collect()
}

/// The default cache directory: the user's cache directory (`$XDG_CACHE_HOME` or
/// `~/.cache` on Linux) followed by `cairn`.
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("cairn"))
}

/// Asks the kernel to read the whole of `path` into the page cache, in the background. A
/// missing or unreadable file is left alone: this is only a hint.
fn read_ahead(path: &Path) {
    use std::os::fd::AsRawFd;
    if let Ok(file) = fs::File::open(path) {
        // SAFETY: a valid descriptor; the call only hints the page cache.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED);
        }
    }
}

impl Repository {
    /// Creates a repository at `path`, which must not exist or be an empty directory. The
    /// repository is built in a temporary sibling directory and renamed into place, so a
    /// failed `init` leaves no half-made repository behind.
    pub fn init(path: &Path, options: &InitOptions) -> Result<()> {
        if let Ok(mut entries) = fs::read_dir(path) {
            if entries.next().is_some() {
                return Err(StoreError::AlreadyExists {
                    path: path.to_owned(),
                });
            }
        } else if path.exists() {
            return Err(StoreError::AlreadyExists {
                path: path.to_owned(),
            });
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).ctx(|| format!("creating {}", parent.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "repository".into());
        let tmp = parent.join(format!(".{name}.tmp-{}", random_hex(6)));
        let result = Self::build(&tmp, options).and_then(|()| {
            if path.exists() {
                // An empty directory: replace it (rename over an empty directory is not
                // portable to every share).
                fs::remove_dir(path).ctx(|| format!("replacing empty {}", path.display()))?;
            }
            fs::rename(&tmp, path)
                .ctx(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
            sync_dir(&parent)
        });
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    fn build(dir: &Path, options: &InitOptions) -> Result<()> {
        fs::create_dir(dir).ctx(|| format!("creating {}", dir.display()))?;
        for d in DIRS {
            let p = dir.join(d);
            fs::create_dir(&p).ctx(|| format!("creating {}", p.display()))?;
        }
        for i in 0..=255u8 {
            let p = dir.join("data").join(hex::encode([i]));
            fs::create_dir(&p).ctx(|| format!("creating {}", p.display()))?;
        }
        let backend = LocalBackend::new(dir);
        let master = MasterKey::random(options.encryption.is_some());
        let key = match &options.encryption {
            Some(e) => KeyFile::wrap(&master, e.password.as_bytes(), e.kdf)?,
            None => KeyFile::plain(&master),
        };
        let key_json = serde_json::to_vec_pretty(&key).expect("key files serialize");
        backend.write(&format!("keys/{}", random_hex(32)), &key_json)?;
        let config = Config {
            version: FORMAT_VERSION,
            id: random_hex(32),
            chunker: options.chunker.clone(),
            encryption: if options.encryption.is_some() {
                ENCRYPTION_XCHACHA
            } else {
                ENCRYPTION_NONE
            }
            .into(),
        };
        let config_json = serde_json::to_vec_pretty(&config).expect("config serializes");
        // The config goes last: a directory without it is not a repository.
        backend.write("config", &config_json)
    }

    /// Opens the repository at `path`, unlocking its key and (with `options.sync`) bringing
    /// the catalog up to date with the repository's files.
    pub fn open(path: &Path, options: &OpenOptions<'_>) -> Result<Self> {
        Self::open_with(Arc::new(LocalBackend::new(path)), path, options)
    }

    /// Opens the repository through `backend` (tests inject failures this way); `path` is
    /// where the backend's files are, for messages and the config.
    pub fn open_with(
        backend: Arc<dyn Backend>,
        path: &Path,
        options: &OpenOptions<'_>,
    ) -> Result<Self> {
        let not_repo = |reason: String| StoreError::NotARepository {
            path: path.to_owned(),
            reason,
        };
        let config_bytes = match fs::read(path.join("config")) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let reason = if path.exists() {
                    "it has no config file".to_string()
                } else {
                    "it does not exist".to_string()
                };
                return Err(not_repo(reason));
            }
            Err(e) => return Err(e).ctx(|| format!("reading {}/config", path.display())),
        };
        let config: Config = serde_json::from_slice(&config_bytes)
            .map_err(|e| not_repo(format!("unreadable config: {e}")))?;
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&config.version) {
            return Err(StoreError::UnsupportedVersion {
                found: config.version,
                oldest: OLDEST_FORMAT_VERSION,
                newest: FORMAT_VERSION,
            });
        }
        let encrypted = match config.encryption.as_str() {
            ENCRYPTION_XCHACHA => true,
            ENCRYPTION_NONE => false,
            other => return Err(not_repo(format!("unknown encryption {other:?} in config"))),
        };
        let cache_root = match options.cache_dir {
            Some(d) => d.to_owned(),
            None => default_cache_dir()
                .ok_or_else(|| not_repo("no cache directory: set --cache-dir".into()))?,
        };
        let catalog_dir = cache_root.join(&config.id);
        // Every blob stored is looked up in the catalog: the disk reads it while the password's
        // key is derived, rather than page by page as the look-ups first touch it.
        for name in ["catalog.sqlite", "catalog.sqlite-wal"] {
            read_ahead(&catalog_dir.join(name));
        }
        let (key, key_name) =
            Self::load_key(&*backend, options.password, encrypted).map_err(|e| match e {
                StoreError::NotARepository { reason, .. } => not_repo(reason),
                other => other,
            })?;
        fs::create_dir_all(&catalog_dir)
            .ctx(|| format!("creating cache directory {}", catalog_dir.display()))?;
        let catalog = Catalog::open(&catalog_dir.join("catalog.sqlite"))?;
        let repo = Self {
            backend,
            root: path.to_owned(),
            config,
            key,
            key_name,
            catalog: Mutex::new(catalog),
            catalog_dir,
            writers: Mutex::new(Default::default()),
            session: Mutex::new(Session::default()),
            added: AtomicU64::new(0),
        };
        if options.sync {
            repo.sync_catalog()?;
        }
        Ok(repo)
    }

    /// Tries every key file; the password is asked for at most once.
    fn load_key(
        backend: &dyn Backend,
        password: PasswordSource<'_>,
        encrypted: bool,
    ) -> Result<(MasterKey, String)> {
        let mut names = backend.list("keys")?;
        names.sort();
        let mut asked: Option<zeroize::Zeroizing<String>> = None;
        let mut ask = || -> Result<zeroize::Zeroizing<String>> {
            if asked.is_none() {
                asked = Some(password()?);
            }
            Ok(asked.clone().expect("just set"))
        };
        let mut wrong_password = false;
        let mut last_error = None;
        for name in names {
            let bytes = backend.read(&format!("keys/{name}"))?;
            let file = match serde_json::from_slice::<KeyFile>(&bytes) {
                Ok(f) => f,
                Err(e) => {
                    last_error = Some(StoreError::corrupt(
                        format!("key file keys/{name}"),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            if encrypted == (file.kdf == "none") {
                last_error = Some(StoreError::corrupt(
                    format!("key file keys/{name}"),
                    "its kind does not match the repository's encryption",
                ));
                continue;
            }
            match file.unwrap(&name, &mut ask, encrypted) {
                Ok(key) => return Ok((key, name)),
                Err(StoreError::WrongPassword) => wrong_password = true,
                Err(e @ (StoreError::NoPassword(_) | StoreError::InvalidKdf(_))) => return Err(e),
                Err(e) => last_error = Some(e),
            }
        }
        if wrong_password {
            return Err(StoreError::WrongPassword);
        }
        Err(last_error.unwrap_or_else(|| StoreError::NotARepository {
            path: PathBuf::new(),
            reason: "it has no key file".into(),
        }))
    }

    /// The key files of the repository, sorted by creation time.
    pub fn keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for name in self.backend.list("keys")? {
            let bytes = self.backend.read(&format!("keys/{name}"))?;
            let file: KeyFile = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::corrupt(format!("key file keys/{name}"), e.to_string()))?;
            out.push(KeyInfo {
                current: name == self.key_name,
                id: name,
                created: file.created,
                kdf: file.kdf,
            });
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Adds a key file opening the repository with `password`; returns its ID.
    pub fn add_key(&self, password: &str, kdf: KdfParams) -> Result<String> {
        if !self.key.encrypted {
            return Err(StoreError::Key(
                "this repository is not encrypted: it has no passwords to add".into(),
            ));
        }
        let file = KeyFile::wrap(&self.key, password.as_bytes(), kdf)?;
        let name = random_hex(32);
        let json = serde_json::to_vec_pretty(&file).expect("key files serialize");
        self.backend.write(&format!("keys/{name}"), &json)?;
        Ok(name)
    }

    /// Removes the key file whose ID starts with `prefix`. Refuses to remove the last one.
    pub fn remove_key(&self, prefix: &str) -> Result<String> {
        let keys = self.keys()?;
        let prefix: IdPrefix = prefix.parse()?;
        let matches: Vec<&KeyInfo> = keys.iter().filter(|k| prefix.matches(&k.id)).collect();
        let target = match matches.as_slice() {
            [] => {
                return Err(StoreError::Key(format!(
                    "no key matches {:?}",
                    prefix.as_str()
                )))
            }
            [one] => one,
            _ => {
                return Err(StoreError::Key(format!(
                    "key prefix {:?} is ambiguous",
                    prefix.as_str()
                )))
            }
        };
        if keys.len() == 1 {
            return Err(StoreError::Key(
                "refusing to remove the last key: the repository would be unreadable".into(),
            ));
        }
        self.backend.remove(&format!("keys/{}", target.id))?;
        Ok(target.id.clone())
    }

    /// The ID of the key file this process opened the repository with.
    pub fn current_key(&self) -> &str {
        &self.key_name
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The directory holding this repository's catalog.
    pub fn cache_dir(&self) -> &Path {
        &self.catalog_dir
    }

    /// Bytes of packs, index segments and snapshot manifests this process has added.
    pub fn bytes_added(&self) -> u64 {
        self.added.load(Ordering::Relaxed)
    }

    /// Writes a repository file and counts it as growth.
    fn write_counted(&self, path: &str, bytes: &[u8]) -> Result<()> {
        self.backend.write(path, bytes)?;
        self.added.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Takes a lock; the notices describe stale locks that were removed.
    pub fn lock(&self, exclusive: bool) -> Result<(Lock, Vec<String>)> {
        let mut notices = Vec::new();
        let lock = Lock::acquire(self.backend.clone(), &self.key, exclusive, &mut notices)?;
        Ok((lock, notices))
    }

    fn catalog(&self) -> std::sync::MutexGuard<'_, Catalog> {
        self.catalog
            .lock()
            .expect("catalog mutex is never poisoned by a panic")
    }

    /// Brings the catalog in line with `index/` and `snapshots/`: new files are read, vanished
    /// ones forgotten.
    pub fn sync_catalog(&self) -> Result<()> {
        let listed: HashSet<IndexId> = parse_names(self.backend.list("index")?);
        let known = self.catalog().index_files()?;
        for id in known.difference(&listed) {
            self.catalog().remove_segment(id)?;
        }
        for id in listed.difference(&known) {
            let packs = self.read_segment(id)?;
            self.catalog().add_segment(id, &packs)?;
        }
        let listed: HashSet<SnapshotId> = parse_names(self.backend.list("snapshots")?);
        let known = self.catalog().snapshot_ids()?;
        for id in known.difference(&listed) {
            self.catalog().remove_snapshot(id)?;
        }
        for id in listed.difference(&known) {
            let (_, sealed) = self.read_snapshot_file(id)?;
            self.catalog().add_snapshot(id, &sealed)?;
        }
        Ok(())
    }

    fn read_segment(&self, id: &IndexId) -> Result<Vec<IndexedPack>> {
        let bytes = self.backend.read(&index_path(id))?;
        check_file_hash(&bytes, &id.0, || format!("index segment {id}"))?;
        decode_segment(&self.key, id, &bytes)
    }

    /// Reads and authenticates a snapshot manifest from the repository.
    pub fn read_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        Ok(self.read_snapshot_file(id)?.0)
    }

    fn read_snapshot_file(&self, id: &SnapshotId) -> Result<(Snapshot, Vec<u8>)> {
        let bytes = self.backend.read(&snapshot_path(id)).map_err(|e| match e {
            StoreError::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
                StoreError::SnapshotNotFound(id.to_hex())
            }
            other => other,
        })?;
        let snapshot = self.decode_snapshot(id, &bytes)?;
        Ok((snapshot, bytes))
    }

    fn decode_snapshot(&self, id: &SnapshotId, sealed: &[u8]) -> Result<Snapshot> {
        let object = || format!("snapshot {id}");
        check_file_hash(sealed, &id.0, object)?;
        let plain = self.key.open(sealed, &object)?;
        serde_json::from_slice(&plain).map_err(|e| StoreError::corrupt(object(), e.to_string()))
    }

    /// The ID a blob with this plaintext has.
    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        self.key.blob_id(plaintext)
    }

    /// Stores blobs the repository does not have yet. Hashing and compression run in parallel;
    /// the duplicate check is one catalog transaction for the batch. Safe to call from many
    /// threads at once; a blob is stored once even when several threads offer it.
    pub fn save_blobs(&self, kind: BlobKind, blobs: &[&[u8]]) -> Result<Vec<SavedBlob>> {
        self.save(kind, blobs, None)
    }

    /// As [`Repository::save_blobs`], for blobs that lie one after the other from the start
    /// of `data`, `lens[i]` bytes each (a stream's chunks): a frame of adjacent new blobs is
    /// compressed straight from `data` instead of being copied together first.
    pub fn save_adjacent(
        &self,
        kind: BlobKind,
        data: &[u8],
        lens: &[usize],
    ) -> Result<Vec<SavedBlob>> {
        let mut starts = Vec::with_capacity(lens.len() + 1);
        let mut at = 0usize;
        starts.push(0);
        for &n in lens {
            at = at
                .checked_add(n)
                .filter(|&end| end <= data.len())
                .expect("the chunks lie inside the data");
            starts.push(at);
        }
        let blobs: Vec<&[u8]> = starts.windows(2).map(|w| &data[w[0]..w[1]]).collect();
        self.save(kind, &blobs, Some((data, &starts)))
    }

    /// [`Repository::save_blobs`]; with `whole`, the blobs are `data[starts[i]..starts[i + 1]]`.
    fn save(
        &self,
        kind: BlobKind,
        blobs: &[&[u8]],
        whole: Option<(&[u8], &[usize])>,
    ) -> Result<Vec<SavedBlob>> {
        let ids: Vec<BlobId> = parallel_map(blobs, |b| self.key.blob_id(b));
        let mut fresh = vec![false; ids.len()];
        {
            let mut session = self.session.lock().expect("session mutex");
            let known = self.catalog().contains_many(&ids)?;
            for (i, id) in ids.iter().enumerate() {
                if !known[i] && session.pending.insert(*id) {
                    fresh[i] = true;
                }
            }
        }
        // Bulk new data (most of a batch new, as in a first backup) is compressed fast; the
        // trickle of changes of a nightly backup is compressed harder, costing little time.
        let total: usize = blobs.iter().map(|b| b.len()).sum();
        let new: Vec<usize> = (0..blobs.len()).filter(|&i| fresh[i]).collect();
        let new_bytes: usize = new.iter().map(|&i| blobs[i].len()).sum();
        let level = if kind == BlobKind::Data && new_bytes * 2 > total {
            crate::envelope::ZSTD_FAST
        } else {
            crate::envelope::ZSTD_LEVEL
        };
        let frames = self.seal_frames(kind, &ids, blobs, &new, whole, level);
        self.add_to_packs(kind, &frames)?;
        Ok(ids
            .iter()
            .zip(blobs)
            .zip(fresh)
            .map(|((id, b), new)| SavedBlob {
                id: *id,
                size: b.len() as u64,
                new,
            })
            .collect())
    }

    /// The layout of the pack trailers and index segments this repository takes: 1 for a
    /// format 1 repository (one blob per frame), 2 otherwise.
    fn entry_version(&self) -> u8 {
        if self.config.version >= 2 {
            2
        } else {
            1
        }
    }

    /// Groups blobs `which` (indices into `ids` and `blobs`, in order) into frames of up to
    /// [`FRAME_TARGET`] bytes of plaintext (data blobs of a format 2 repository; everything
    /// else one blob a frame), and seals the frames in parallel at zstd `level`. A frame of
    /// blobs adjacent in `whole` (see [`Repository::save`]) is sealed from there; any other is
    /// copied together first.
    fn seal_frames(
        &self,
        kind: BlobKind,
        ids: &[BlobId],
        blobs: &[&[u8]],
        which: &[usize],
        whole: Option<(&[u8], &[usize])>,
        level: i32,
    ) -> Vec<SealedFrame> {
        let framed = kind == BlobKind::Data && self.entry_version() >= 2;
        let mut groups: Vec<&[usize]> = Vec::new();
        let (mut first, mut size) = (0, 0);
        for (k, &i) in which.iter().enumerate() {
            if k == first || !framed || size + blobs[i].len() > FRAME_TARGET {
                if k > first {
                    groups.push(&which[first..k]);
                }
                (first, size) = (k, 0);
            }
            size += blobs[i].len();
        }
        if first < which.len() {
            groups.push(&which[first..]);
        }
        parallel_map(&groups, |&group| {
            let mut members = Vec::with_capacity(group.len());
            let mut start = 0;
            for &i in group {
                members.push(Member {
                    id: ids[i],
                    raw_len: blobs[i].len() as u64,
                    start,
                });
                start += blobs[i].len() as u64;
            }
            let (first, last) = (group[0], group[group.len() - 1]);
            let adjacent = last - first + 1 == group.len();
            let envelope = match whole {
                Some((data, starts)) if adjacent => self
                    .key
                    .seal_level(&data[starts[first]..starts[last + 1]], Some(level)),
                _ if group.len() == 1 => self.key.seal_level(blobs[first], Some(level)),
                _ => {
                    let mut joined = Vec::with_capacity(start as usize);
                    group
                        .iter()
                        .for_each(|&i| joined.extend_from_slice(blobs[i]));
                    self.key.seal_level(&joined, Some(level))
                }
            };
            SealedFrame { members, envelope }
        })
    }

    /// Appends sealed frames to the open pack, and writes the packs that fill up (outside the
    /// lock, so that other threads go on filling the next). When a write fails, the blobs of
    /// the packs lost are forgotten as pending: a later offer stores them again.
    fn add_to_packs(&self, kind: BlobKind, frames: &[SealedFrame]) -> Result<()> {
        let mut full = Vec::new();
        let mut offered = Vec::new();
        let failed = {
            let mut writers = self.writers.lock().expect("writers mutex");
            let writer = &mut writers[usize::from(kind.code())];
            let mut failed = None;
            for frame in frames {
                offered.extend(frame.members.iter().map(|m| m.id));
                if let Err(e) = writer.add(&self.backend, kind, &frame.members, &frame.envelope) {
                    full.push(std::mem::take(writer));
                    failed = Some(e);
                    break;
                }
                if writer.is_full() {
                    full.push(std::mem::take(writer));
                }
            }
            failed
        };
        if let Some(e) = failed {
            let lost = full.iter().flat_map(|w| w.entries().iter().map(|e| e.id));
            self.forget_pending(offered.into_iter().chain(lost));
            return Err(e);
        }
        for w in full {
            self.write_pack(w)?;
        }
        Ok(())
    }

    /// Blobs that were to be stored but are not: a later offer must store them.
    fn forget_pending(&self, ids: impl Iterator<Item = BlobId>) {
        let mut session = self.session.lock().expect("session mutex");
        for id in ids {
            session.pending.remove(&id);
        }
    }

    fn write_pack(&self, writer: PackWriter) -> Result<()> {
        let ids: Vec<BlobId> = writer.entries().iter().map(|e| e.id).collect();
        let written = writer
            .finish(&self.backend, &self.key, self.entry_version())
            .and_then(FinishedPack::commit);
        let (id, size, entries) = match written {
            Ok(w) => w,
            Err(e) => {
                self.forget_pending(ids.into_iter());
                return Err(e);
            }
        };
        self.added.fetch_add(size, Ordering::Relaxed);
        let ready = {
            let mut session = self.session.lock().expect("session mutex");
            session.unindexed.push(IndexedPack { id, size, entries });
            let blobs: usize = session.unindexed.iter().map(|p| p.entries.len()).sum();
            if session.unindexed.len() >= PACKS_PER_SEGMENT || blobs >= BLOBS_PER_SEGMENT {
                std::mem::take(&mut session.unindexed)
            } else {
                Vec::new()
            }
        };
        self.write_segment(ready)
    }

    /// Writes an index segment for packs already durable, then records it in the catalog. On
    /// failure the packs wait for the next segment.
    fn write_segment(&self, packs: Vec<IndexedPack>) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        let (id, bytes) = encode_segment(&self.key, &packs, self.entry_version());
        if let Err(e) = self.write_counted(&index_path(&id), &bytes) {
            self.session
                .lock()
                .expect("session mutex")
                .unindexed
                .extend(packs);
            return Err(e);
        }
        let mut session = self.session.lock().expect("session mutex");
        self.catalog().add_segment(&id, &packs)?;
        for p in &packs {
            for e in &p.entries {
                session.pending.remove(&e.id);
            }
        }
        Ok(())
    }

    /// Writes the open packs and an index segment for every pack not yet indexed. After this,
    /// every blob saved so far is durable and indexed.
    pub fn flush(&self) -> Result<()> {
        let open = std::mem::take(&mut *self.writers.lock().expect("writers mutex"));
        // Each pack is written even when the other fails: a pack not written forgets its
        // blobs as pending, so that a later offer stores them again.
        let mut first_error = None;
        for last in open {
            if !last.is_empty() {
                if let Err(e) = self.write_pack(last) {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let rest = std::mem::take(&mut self.session.lock().expect("session mutex").unindexed);
        self.write_segment(rest)
    }

    pub fn save_tree(&self, tree: &Tree) -> Result<TreeId> {
        let bytes = tree.to_bytes();
        Ok(self.save_blobs(BlobKind::Tree, &[&bytes])?[0].id)
    }

    /// Stores a serialized chunk list (for [`crate::tree::ContentBuilder`]).
    pub fn save_list(&self, bytes: Vec<u8>) -> Result<BlobId> {
        Ok(self.save_blobs(BlobKind::Tree, &[&bytes])?[0].id)
    }

    /// Flushes everything saved, then writes the snapshot manifest: the commit point.
    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(SnapshotId, u64)> {
        self.flush()?;
        let json = serde_json::to_vec(snapshot).expect("snapshots serialize");
        let sealed = self.key.seal(&json, true);
        let id = SnapshotId(*blake3::hash(&sealed).as_bytes());
        self.write_counted(&snapshot_path(&id), &sealed)?;
        self.catalog().add_snapshot(&id, &sealed)?;
        Ok((id, sealed.len() as u64))
    }

    /// Where each blob lives (`None` for those not in the index), looked up as one batch.
    pub fn locate_many(&self, ids: &[BlobId]) -> Result<Vec<Option<BlobLocation>>> {
        self.catalog().locate_many(ids)
    }

    pub fn locate(&self, id: &BlobId) -> Result<BlobLocation> {
        self.catalog()
            .locate(id)?
            .ok_or_else(|| StoreError::BlobNotFound(id.to_string()))
    }

    /// Reads `len` bytes at `offset` of a pack; a missing or short pack is reported as damage
    /// to the pack.
    pub fn read_pack_range(&self, pack: &PackId, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_pack_range_into(pack, offset, len, &mut buf)?;
        Ok(buf)
    }

    /// As [`Repository::read_pack_range`], into a buffer the caller reuses.
    pub fn read_pack_range_into(
        &self,
        pack: &PackId,
        offset: u64,
        len: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.backend
            .read_at_into(&pack_path(pack), offset, len, buf)
            .map_err(|e| pack_read_error(pack, e))
    }

    /// As [`Repository::read_pack_range_into`], for bytes read once (a restore's): returns
    /// where in `buf` they start (see [`Backend::read_once_into`]).
    pub fn read_pack_once_into(
        &self,
        pack: &PackId,
        offset: u64,
        len: u64,
        buf: &mut Vec<u8>,
    ) -> Result<usize> {
        self.backend
            .read_once_into(&pack_path(pack), offset, len, buf)
            .map_err(|e| pack_read_error(pack, e))
    }

    /// Reads a blob, authenticates it and checks that it hashes to its ID.
    pub fn load_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self.locate(id)?;
        let mut envelope = self.read_pack_range(&loc.pack, loc.offset, loc.length)?;
        let mut frame = Frame::default();
        self.open_blob_in(&loc.pack, &loc.entry(*id), &mut envelope, &mut frame)?;
        Ok(frame.take_blob(&loc.entry(*id)))
    }

    pub fn load_tree(&self, id: &TreeId) -> Result<Tree> {
        Tree::from_bytes(&self.load_blob(id)?, id)
    }

    /// Loads many blobs at once, each authenticated and checked against its ID: one batched
    /// look-up, then the packs read in order, nearby blobs with one request, by
    /// [`LOAD_THREADS`] threads (a cold disk or a share answers many requests at once far
    /// sooner than the same requests one after the other).
    pub fn load_blobs(&self, ids: &[BlobId]) -> Result<HashMap<BlobId, Vec<u8>>> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut located = Vec::with_capacity(ids.len());
        for (id, loc) in ids.iter().zip(self.locate_many(&ids)?) {
            let loc = loc.ok_or_else(|| StoreError::BlobNotFound(id.to_string()))?;
            located.push((loc, *id));
        }
        let runs = read_runs(located, LOAD_SPAN, |b| &b.0);
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let loaded = Mutex::new(HashMap::with_capacity(ids.len()));
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..LOAD_THREADS.min(runs.len()))
                .map(|_| {
                    scope.spawn(|| -> Result<()> {
                        let mut bytes = Vec::new();
                        while let Some(run) = runs.get(next.fetch_add(1, Ordering::Relaxed)) {
                            if failed.load(Ordering::Relaxed) {
                                break;
                            }
                            let result = self.load_run(run, &mut bytes, |id, plain| {
                                loaded.lock().expect("loaded mutex").insert(id, plain);
                            });
                            if result.is_err() {
                                failed.store(true, Ordering::Relaxed);
                                return result;
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        })?;
        Ok(loaded.into_inner().expect("loaded mutex"))
    }

    /// Reads one run of blobs of a pack (from [`read_runs`]) with one request into `bytes`
    /// and hands each blob, opened, to `each`.
    fn load_run(
        &self,
        run: &[(BlobLocation, BlobId)],
        bytes: &mut Vec<u8>,
        mut each: impl FnMut(BlobId, Vec<u8>),
    ) -> Result<()> {
        let (first, last) = (&run[0].0, &run[run.len() - 1].0);
        let start = first.offset;
        let base =
            self.read_pack_once_into(&first.pack, start, last.offset + last.length - start, bytes)?;
        let mut frame = Frame::default();
        for (loc, id) in run {
            let at = base + (loc.offset - start) as usize;
            let envelope = &mut bytes[at..at + loc.length as usize];
            let entry = loc.entry(*id);
            self.open_blob_in(&loc.pack, &entry, envelope, &mut frame)?;
            each(*id, frame.take_blob(&entry));
        }
        Ok(())
    }

    /// The data chunks of each of `contents`, in order: [`Repository::chunks`] for many
    /// contents at once, each level's list blobs loaded together with
    /// [`Repository::load_blobs`].
    pub fn chunks_of_many(&self, contents: &[&Content]) -> Result<Vec<Vec<ContentEntry>>> {
        let mut levels: Vec<(u8, Vec<ContentEntry>)> = contents
            .iter()
            .map(|c| (c.depth, c.entries.clone()))
            .collect();
        while levels.iter().any(|l| l.0 > 0) {
            let ids: Vec<BlobId> = levels
                .iter()
                .filter(|l| l.0 > 0)
                .flat_map(|l| l.1.iter().map(|e| e.0))
                .collect();
            let lists = self.load_blobs(&ids)?;
            for (depth, entries) in levels.iter_mut().filter(|l| l.0 > 0) {
                let mut below = Vec::new();
                for &ContentEntry(id, size) in entries.iter() {
                    let bytes = lists
                        .get(&id)
                        .expect("load_blobs returns every blob asked for");
                    below.extend(decode_list_of(&id, size, bytes)?);
                }
                *entries = below;
                *depth -= 1;
            }
        }
        Ok(levels.into_iter().map(|l| l.1).collect())
    }

    /// Every chunk of a content, in order, loading list blobs as needed.
    pub fn chunks<'a>(&'a self, content: &Content) -> ChunkIter<'a> {
        ChunkIter {
            repo: self,
            stack: vec![(content.depth, content.entries.clone().into_iter())],
        }
    }

    /// Removes a snapshot manifest from the repository and the catalog. Its data stays until
    /// a prune finds it unreferenced.
    pub fn remove_snapshot(&self, id: &SnapshotId) -> Result<()> {
        self.backend.remove(&snapshot_path(id))?;
        self.catalog().remove_snapshot(id)
    }

    /// Every snapshot, oldest first (from the catalog's copies of the sealed manifests).
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let mut out = Vec::new();
        for (id, sealed) in self.catalog().snapshot_manifests()? {
            out.push((id, self.decode_snapshot(&id, &sealed)?));
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Resolves a full ID, a unique prefix, or `latest`. The manifest is read again from the
    /// repository, so a damaged or altered file is noticed before anything is restored from it.
    pub fn resolve_snapshot(&self, spec: &str) -> Result<(SnapshotId, Snapshot)> {
        let (id, _) = self.find_snapshot(spec)?;
        Ok((id, self.read_snapshot(&id)?))
    }

    fn find_snapshot(&self, spec: &str) -> Result<(SnapshotId, Snapshot)> {
        let mut all = self.snapshots()?;
        if spec == "latest" {
            return all
                .pop()
                .ok_or_else(|| StoreError::SnapshotNotFound(spec.to_string()));
        }
        let prefix: IdPrefix = spec.parse()?;
        let mut matches: Vec<_> = all
            .into_iter()
            .filter(|(id, _)| prefix.matches(&id.to_hex()))
            .collect();
        match matches.len() {
            0 => Err(StoreError::SnapshotNotFound(spec.to_string())),
            1 => Ok(matches.pop().expect("one match")),
            _ => Err(StoreError::AmbiguousSnapshot {
                prefix: spec.to_string(),
                candidates: matches.iter().map(|(id, _)| id.short()).collect(),
            }),
        }
    }

    /// The node at `path` (components separated by `/`) under the tree `root`; the empty path
    /// is the root directory itself.
    pub fn find_node(&self, root: &TreeId, path: &str) -> Result<Option<crate::tree::Node>> {
        let mut node = crate::tree::Node::new("", crate::tree::NodeKind::Dir);
        node.subtree = Some(*root);
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let Some(subtree) = node.subtree else {
                return Ok(None);
            };
            match self.load_tree(&subtree)?.find(part.as_bytes()) {
                Some(n) => node = n.clone(),
                None => return Ok(None),
            }
        }
        Ok(Some(node))
    }

    /// (distinct blobs, their plaintext bytes, packs, pack bytes).
    pub fn totals(&self) -> Result<(u64, u64, u64, u64)> {
        self.catalog().totals()
    }

    /// Starts marking live blobs (see [`Catalog::live_reset`]).
    pub fn live_reset(&self) -> Result<()> {
        self.catalog().live_reset()
    }

    /// Marks blobs live; for each, whether it was newly marked.
    pub fn live_insert(&self, ids: &[BlobId]) -> Result<Vec<bool>> {
        self.catalog().live_insert(ids)
    }

    /// How much of each indexed pack is live (after [`Repository::live_insert`] marking).
    pub fn pack_usage(&self) -> Result<Vec<crate::catalog::PackUsage>> {
        self.catalog().pack_usage()
    }

    /// The live blobs whose kept copy is in `pack`.
    pub fn live_entries(&self, pack: &PackId) -> Result<Vec<crate::pack::PackEntry>> {
        self.catalog().live_entries(pack)
    }

    /// Stores copies of blobs the repository already has (repacking): no duplicate check.
    /// Data blobs are framed anew, in the order given.
    pub fn save_copies(&self, blobs: &[(BlobKind, BlobId, Vec<u8>)]) -> Result<()> {
        let ids: Vec<BlobId> = blobs.iter().map(|b| b.1).collect();
        let plains: Vec<&[u8]> = blobs.iter().map(|b| &b.2[..]).collect();
        for kind in [BlobKind::Data, BlobKind::Tree] {
            let of_kind: Vec<usize> = (0..blobs.len()).filter(|&i| blobs[i].0 == kind).collect();
            let frames = self.seal_frames(
                kind,
                &ids,
                &plains,
                &of_kind,
                None,
                crate::envelope::ZSTD_LEVEL,
            );
            self.add_to_packs(kind, &frames)?;
        }
        Ok(())
    }

    /// Replaces `index/` by segments listing every indexed pack but `drop`: the new segments
    /// are durable before any old one is removed. Returns how many old segments were removed.
    pub fn rewrite_index(&self, drop: &HashSet<PackId>) -> Result<u64> {
        let mut packs = Vec::new();
        for (id, size) in self.indexed_packs()? {
            if !drop.contains(&id) {
                packs.push(IndexedPack {
                    id,
                    size,
                    entries: self.pack_entries(&id)?,
                });
            }
        }
        let old: HashSet<IndexId> = parse_names(self.backend.list("index")?);
        let mut new = HashSet::new();
        for chunk in packs.chunks(PACKS_PER_SEGMENT) {
            let (id, bytes) = encode_segment(&self.key, chunk, self.entry_version());
            self.backend.write(&index_path(&id), &bytes)?;
            new.insert(id);
        }
        let mut removed = 0;
        for id in old.difference(&new) {
            self.backend.remove(&index_path(id))?;
            removed += 1;
        }
        self.sync_catalog()?;
        Ok(removed)
    }

    /// Removes a pack file.
    pub fn remove_pack(&self, id: &PackId) -> Result<()> {
        self.backend.remove(&pack_path(id))
    }

    /// Takes a lock, waiting up to `wait` for conflicting locks to go.
    pub fn lock_waiting(
        &self,
        exclusive: bool,
        wait: std::time::Duration,
    ) -> Result<(Lock, Vec<String>)> {
        let start = std::time::Instant::now();
        let mut notices = Vec::new();
        loop {
            match Lock::acquire(self.backend.clone(), &self.key, exclusive, &mut notices) {
                Ok(lock) => return Ok((lock, notices)),
                Err(StoreError::Locked { .. }) if start.elapsed() < wait => {
                    // Jitter keeps two waiting exclusive lockers from colliding forever.
                    let jitter = u64::from(crate::envelope::random_bytes::<1>()[0]) * 4;
                    std::thread::sleep(std::time::Duration::from_millis(500 + jitter));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Every indexed pack and its size.
    pub fn indexed_packs(&self) -> Result<Vec<(PackId, u64)>> {
        self.catalog().packs()
    }

    /// The blobs the index lists in `pack`.
    pub fn pack_entries(&self, pack: &PackId) -> Result<Vec<crate::pack::PackEntry>> {
        self.catalog().pack_entries(pack)
    }

    /// Reads a pack's trailer from the repository.
    pub fn read_pack_trailer(&self, pack: &PackId) -> Result<(u64, Vec<crate::pack::PackEntry>)> {
        read_trailer(&*self.backend, &self.key, pack)
    }

    /// Opens blob `entry` of `pack` from its frame's `envelope`, decrypting in place (the
    /// envelope's bytes are overwritten), unless `frame` holds that frame already (the blob
    /// before was in it: callers go through entries in offset order); checks the blob
    /// against its ID and returns its plaintext.
    pub fn open_blob_in<'f>(
        &self,
        pack: &PackId,
        entry: &PackEntry,
        envelope: &mut [u8],
        frame: &'f mut Frame,
    ) -> Result<&'f [u8]> {
        let object = || format!("pack {pack} blob {}", entry.id);
        let at = (*pack, entry.offset, entry.length);
        if frame.at != Some(at) {
            frame.at = None;
            self.key.open_into(envelope, &mut frame.plain, &object)?;
            frame.at = Some(at);
        }
        let blob = frame
            .range(entry)
            .ok_or_else(|| StoreError::corrupt(object(), "lies outside its frame"))?;
        let blob = &frame.plain[blob];
        if self.key.blob_id(blob) != entry.id {
            return Err(StoreError::corrupt(
                object(),
                "content does not match its ID",
            ));
        }
        Ok(blob)
    }

    /// Lists the packs under `data/`.
    pub fn list_packs(&self) -> Result<Vec<PackId>> {
        let mut out = Vec::new();
        for i in 0..=255u8 {
            out.extend(parse_names::<PackId>(
                self.backend.list(&format!("data/{}", hex::encode([i])))?,
            ));
        }
        Ok(out)
    }

    /// Rebuilds `index/` from the pack trailers: writes new segments listing every readable
    /// pack, then removes the old segments, then refreshes the catalog. Needs an exclusive lock.
    pub fn repair_index(&self) -> Result<RepairReport> {
        let mut report = RepairReport::default();
        let packs = self.list_packs()?;
        let results: Vec<_> = packs
            .par_iter()
            .map(|id| (*id, read_trailer(&*self.backend, &self.key, id)))
            .collect();

        let mut indexed = Vec::new();
        for (id, r) in results {
            match r {
                Ok((size, entries)) => {
                    report.packs_indexed += 1;
                    report.blobs_indexed += entries.len() as u64;
                    indexed.push(IndexedPack { id, size, entries });
                }
                Err(e) => report.damaged_packs.push(format!("{e}")),
            }
        }
        let old: HashSet<IndexId> = parse_names(self.backend.list("index")?);
        let mut new = HashSet::new();
        for chunk in indexed.chunks(PACKS_PER_SEGMENT) {
            let (id, bytes) = encode_segment(&self.key, chunk, self.entry_version());
            self.backend.write(&index_path(&id), &bytes)?;
            new.insert(id);
        }
        for id in old.difference(&new) {
            self.backend.remove(&index_path(id))?;
            report.segments_removed += 1;
        }
        self.sync_catalog()?;
        Ok(report)
    }
}

/// Verifies that a file's bytes hash to the ID it is named after.
fn check_file_hash(bytes: &[u8], id: &[u8; 32], object: impl Fn() -> String) -> Result<()> {
    if blake3::hash(bytes).as_bytes() != id {
        return Err(StoreError::corrupt(
            object(),
            "file content does not match its name",
        ));
    }
    Ok(())
}

fn parse_names<T: std::str::FromStr + std::hash::Hash + Eq>(names: Vec<String>) -> HashSet<T>
where
    HashSet<T>: FromIterator<T>,
{
    names.iter().filter_map(|n| n.parse().ok()).collect()
}

/// A failed read of a pack: a missing or short pack is damage to the pack.
fn pack_read_error(pack: &PackId, e: StoreError) -> StoreError {
    match e {
        StoreError::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
            StoreError::corrupt(format!("pack {pack}"), "the pack is missing")
        }
        StoreError::Io { error, .. } if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            StoreError::corrupt(format!("pack {pack}"), "the pack is truncated")
        }
        other => other,
    }
}

/// Decodes list blob `id`, which its parent says covers `size` bytes.
fn decode_list_of(id: &BlobId, size: u64, bytes: &[u8]) -> Result<Vec<ContentEntry>> {
    let list = decode_list(bytes, id)?;
    if list.iter().map(|e| e.1).sum::<u64>() != size {
        return Err(StoreError::corrupt(
            format!("chunk list {id}"),
            "sizes do not add up to the parent's",
        ));
    }
    Ok(list)
}

/// Threads [`Repository::load_blobs`] reads with.
const LOAD_THREADS: usize = 8;

/// The longest request of [`Repository::load_blobs`]: the trees and lists of a level are
/// spread over all [`LOAD_THREADS`] threads (a level's lists are a few MB of a few packs).
const LOAD_SPAN: u64 = 1 << 20;

/// Blobs of one pack closer than this are read with one request.
pub(crate) const READ_GAP: u64 = 256 << 10;

/// The most bytes one request reads.
pub(crate) const READ_SPAN: u64 = 8 << 20;

/// Groups located blobs (`loc` gives each one's location) into read requests: runs of blobs of
/// one pack, in pack, offset and start order, each next blob less than [`READ_GAP`] past the
/// previous one, each run spanning at most `span` bytes (or one blob, if larger).
pub(crate) fn read_runs<T>(
    mut blobs: Vec<T>,
    span: u64,
    loc: impl Fn(&T) -> &BlobLocation,
) -> Vec<Vec<T>> {
    // A frame's blobs in the order they were stored: a restore then writes a file's chunks
    // one after the other, and gathers them into large writes.
    blobs.sort_unstable_by(|a, b| {
        let (a, b) = (loc(a), loc(b));
        (a.pack, a.offset, a.start).cmp(&(b.pack, b.offset, b.start))
    });
    let mut runs = Vec::new();
    let mut run: Vec<T> = Vec::new();
    for b in blobs {
        if let (Some(first), Some(last)) = (run.first(), run.last()) {
            let (first, last, next) = (loc(first), loc(last), loc(&b));
            if next.pack != first.pack
                || next.offset > last.offset + last.length + READ_GAP
                || next.offset + next.length - first.offset > span
            {
                runs.push(std::mem::take(&mut run));
            }
        }
        run.push(b);
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// Iterator over the data chunks of a content (see [`Repository::chunks`]).
pub struct ChunkIter<'a> {
    repo: &'a Repository,
    stack: Vec<(u8, std::vec::IntoIter<ContentEntry>)>,
}

impl Iterator for ChunkIter<'_> {
    type Item = Result<ContentEntry>;

    fn next(&mut self) -> Option<Result<ContentEntry>> {
        loop {
            let (depth, iter) = self.stack.last_mut()?;
            let depth = *depth;
            match iter.next() {
                None => {
                    self.stack.pop();
                }
                Some(e) if depth == 0 => return Some(Ok(e)),
                Some(ContentEntry(id, size)) => {
                    let list = self
                        .repo
                        .load_blob(&id)
                        .and_then(|b| decode_list_of(&id, size, &b));
                    match list {
                        Ok(list) => self.stack.push((depth - 1, list.into_iter())),
                        Err(e) => {
                            self.stack.clear();
                            return Some(Err(e));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{parallel_map, read_runs, READ_GAP, READ_SPAN};
    use crate::catalog::BlobLocation;
    use crate::id::PackId;
    use crate::pack::BlobKind;

    #[test]
    fn read_runs_follow_packs_gaps_and_spans() {
        let at = |pack: u8, offset: u64, length: u64| BlobLocation {
            pack: PackId([pack; 32]),
            kind: BlobKind::Data,
            offset,
            length,
            raw_len: length,
            start: 0,
            stored: length,
        };
        let blobs = vec![
            at(2, 100, 10),
            at(1, 1019 + READ_GAP, 10), // one byte too far past the blob before it
            at(1, 8, 1000),
            at(1, 1008, 10), // adjacent
            at(3, 0, READ_SPAN - 100),
            at(3, READ_SPAN - 100, 200), // would make the run longer than READ_SPAN
            at(4, 0, 3 * READ_SPAN),     // larger than READ_SPAN alone
            at(2, 110 + READ_GAP, 5),    // exactly READ_GAP past: same run
        ];
        let runs: Vec<Vec<(u8, u64)>> = read_runs(blobs, READ_SPAN, |b| b)
            .into_iter()
            .map(|run| run.iter().map(|b| (b.pack.0[0], b.offset)).collect())
            .collect();
        assert_eq!(
            runs,
            [
                vec![(1, 8), (1, 1008)],
                vec![(1, 1019 + READ_GAP)],
                vec![(2, 100), (2, 110 + READ_GAP)],
                vec![(3, 0)],
                vec![(3, READ_SPAN - 100)],
                vec![(4, 0)],
            ]
        );
        // The blobs of one frame: one run, in the order they were stored.
        let member = |start| BlobLocation {
            start,
            ..at(5, 8, 100)
        };
        let runs = read_runs(vec![member(200), member(0), member(100)], READ_SPAN, |b| b);
        let starts: Vec<Vec<u64>> = runs
            .iter()
            .map(|run| run.iter().map(|b| b.start).collect())
            .collect();
        assert_eq!(starts, [vec![0, 100, 200]]);
    }

    #[test]
    fn parallel_map_keeps_order_for_any_length() {
        for n in [0usize, 1, 2, 3, 4, 5, 7, 8, 9, 1000, 1001] {
            let items: Vec<usize> = (0..n).collect();
            assert_eq!(
                parallel_map(&items, |x| x * 3),
                items.iter().map(|x| x * 3).collect::<Vec<_>>()
            );
        }
    }
}
