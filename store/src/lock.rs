//! Repository locks: files under `locks/`. Backups hold shared locks, maintenance an exclusive
//! one. A lock is refreshed (a new file replaces the old) while held; one not refreshed for
//! [`STALE_AFTER`], or held by a dead process on this host, is stale and is removed.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::{random_hex, Backend};
use crate::envelope::MasterKey;
use crate::error::{Result, StoreError};

pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    pub host: String,
    pub pid: u32,
    pub username: String,
    pub time: DateTime<Utc>,
    pub exclusive: bool,
}

impl LockInfo {
    fn current(exclusive: bool) -> Self {
        Self {
            host: hostname(),
            pid: std::process::id(),
            username: username(),
            time: Utc::now(),
            exclusive,
        }
    }

    /// Why this lock is stale, if it is.
    pub fn stale_reason(&self, now: DateTime<Utc>) -> Option<String> {
        let age = now.signed_duration_since(self.time);
        if age.to_std().is_ok_and(|a| a > STALE_AFTER) {
            return Some(format!("not refreshed for {} minutes", age.num_minutes()));
        }
        if self.host == hostname() && !process_alive(self.pid) {
            return Some(format!("process {} is gone", self.pid));
        }
        None
    }

    pub fn describe(&self) -> String {
        format!(
            "{} lock by {}@{} (pid {}) since {}",
            if self.exclusive {
                "exclusive"
            } else {
                "shared"
            },
            self.username,
            self.host,
            self.pid,
            self.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

/// The machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL or the end.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

pub fn username() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_default()
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn lock_path(name: &str) -> String {
    format!("locks/{name}")
}

fn write_lock(backend: &dyn Backend, key: &MasterKey, info: &LockInfo) -> Result<String> {
    let name = random_hex(16);
    let json = serde_json::to_vec(info).expect("lock info serializes");
    backend.write(&lock_path(&name), &key.seal(&json, false))?;
    Ok(name)
}

/// Reads every lock file but `own`. Unreadable ones are reported as errors naming the file.
pub fn read_locks(
    backend: &dyn Backend,
    key: &MasterKey,
    own: Option<&str>,
) -> Result<Vec<(String, LockInfo)>> {
    let mut out = Vec::new();
    for name in backend.list("locks")? {
        if Some(name.as_str()) == own {
            continue;
        }
        let bytes = match backend.read(&lock_path(&name)) {
            Ok(b) => b,
            // Removed by its owner since the listing.
            Err(StoreError::Io { error: source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        let object = || format!("lock file locks/{name}");
        let plain = key.open(&bytes, &object)?;
        let info: LockInfo = serde_json::from_slice(&plain)
            .map_err(|e| StoreError::corrupt(object(), e.to_string()))?;
        out.push((name, info));
    }
    Ok(out)
}

/// A held lock; released on drop.
pub struct Lock {
    backend: Arc<dyn Backend>,
    name: Arc<Mutex<String>>,
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

impl Lock {
    /// Takes a shared or exclusive lock, removing stale locks (each removal is described in
    /// `notices`). Fails with [`StoreError::Locked`] when a conflicting live lock exists.
    pub fn acquire(
        backend: Arc<dyn Backend>,
        key: &MasterKey,
        exclusive: bool,
        notices: &mut Vec<String>,
    ) -> Result<Lock> {
        let own = write_lock(&*backend, key, &LockInfo::current(exclusive))?;
        let others = match read_locks(&*backend, key, Some(&own)) {
            Ok(o) => o,
            Err(e) => {
                let _ = backend.remove(&lock_path(&own));
                return Err(e);
            }
        };
        let now = Utc::now();
        for (name, info) in others {
            if let Some(reason) = info.stale_reason(now) {
                // Its owner is gone: if the file cannot be removed now, it is ignored, and the
                // next command tries again.
                match backend.remove(&lock_path(&name)) {
                    Ok(()) => notices.push(format!("removed stale {} ({reason})", info.describe())),
                    Err(e) => notices.push(format!(
                        "ignored stale {} ({reason}); removing it failed: {e}",
                        info.describe()
                    )),
                }
            } else if exclusive || info.exclusive {
                let _ = backend.remove(&lock_path(&own));
                return Err(StoreError::Locked {
                    holder: info.describe(),
                });
            }
        }
        let name = Arc::new(Mutex::new(own));
        let (stop, stopped) = mpsc::channel::<()>();
        let refresher = {
            let backend = backend.clone();
            let name = name.clone();
            let key = key.clone();
            std::thread::spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH_EVERY)
                {
                    // A failed refresh keeps the old file; the lock turns stale only if
                    // refreshing keeps failing for STALE_AFTER.
                    if let Ok(new) = write_lock(&*backend, &key, &LockInfo::current(exclusive)) {
                        let mut current = name.lock().expect("lock name mutex");
                        let old = std::mem::replace(&mut *current, new);
                        let _ = backend.remove(&lock_path(&old));
                    }
                }
            })
        };
        Ok(Lock {
            backend,
            name,
            stop: Some(stop),
            refresher: Some(refresher),
        })
    }
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock").finish_non_exhaustive()
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let name = self.name.lock().map(|n| n.clone()).unwrap_or_default();
        let _ = self.backend.remove(&lock_path(&name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::LocalBackend;

    fn setup() -> (tempfile::TempDir, Arc<dyn Backend>, MasterKey) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("locks")).unwrap();
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path()));
        (dir, backend, MasterKey::random(true))
    }

    #[test]
    fn shared_locks_coexist_exclusive_conflicts() {
        let (_dir, b, key) = setup();
        let mut notes = Vec::new();
        let s1 = Lock::acquire(b.clone(), &key, false, &mut notes).unwrap();
        let _s2 = Lock::acquire(b.clone(), &key, false, &mut notes).unwrap();
        let err = Lock::acquire(b.clone(), &key, true, &mut notes).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        assert_eq!(
            b.list("locks").unwrap().len(),
            2,
            "the failed attempt left nothing"
        );
        drop(s1);
        drop(_s2);
        assert!(b.list("locks").unwrap().is_empty());
        let _x = Lock::acquire(b.clone(), &key, true, &mut notes).unwrap();
        assert!(Lock::acquire(b.clone(), &key, false, &mut notes).is_err());
        assert!(notes.is_empty());
    }

    #[test]
    fn stale_locks_are_broken_with_a_notice() {
        let (_dir, b, key) = setup();
        let old = LockInfo {
            time: Utc::now() - chrono::Duration::minutes(31),
            ..LockInfo::current(true)
        };
        write_lock(&*b, &key, &old).unwrap();
        // A dead process on this host: pid numbers near the maximum are not in use.
        let dead = LockInfo {
            pid: 4_194_000,
            ..LockInfo::current(true)
        };
        write_lock(&*b, &key, &dead).unwrap();
        let mut notes = Vec::new();
        let _l = Lock::acquire(b.clone(), &key, true, &mut notes).unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes
            .iter()
            .any(|n| n.contains("not refreshed for 31 minutes")));
        assert!(notes.iter().any(|n| n.contains("process 4194000 is gone")));
        assert_eq!(b.list("locks").unwrap().len(), 1);
    }

    /// A share that refuses to delete a stale lock (EBUSY, sharing violations) does not stop
    /// the command: the owner is gone, so the lock is ignored.
    #[test]
    fn a_stale_lock_that_cannot_be_removed_is_ignored() {
        struct NoRemove(LocalBackend);
        impl Backend for NoRemove {
            fn write(&self, p: &str, d: &[u8]) -> Result<()> {
                self.0.write(p, d)
            }
            fn read(&self, p: &str) -> Result<Vec<u8>> {
                self.0.read(p)
            }
            fn read_at(&self, p: &str, o: u64, l: u64) -> Result<Vec<u8>> {
                self.0.read_at(p, o, l)
            }
            fn size(&self, p: &str) -> Result<u64> {
                self.0.size(p)
            }
            fn list(&self, d: &str) -> Result<Vec<String>> {
                self.0.list(d)
            }
            fn remove(&self, p: &str) -> Result<()> {
                Err(StoreError::Io {
                    context: format!("removing {p}"),
                    error: std::io::Error::from_raw_os_error(libc::EBUSY),
                })
            }
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("locks")).unwrap();
        let b: Arc<dyn Backend> = Arc::new(NoRemove(LocalBackend::new(dir.path())));
        let key = MasterKey::random(true);
        let dead = LockInfo {
            pid: 4_194_001,
            ..LockInfo::current(true)
        };
        write_lock(&*b, &key, &dead).unwrap();
        let mut notes = Vec::new();
        let _l = Lock::acquire(b.clone(), &key, true, &mut notes).unwrap();
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].starts_with("ignored stale exclusive lock"),
            "{notes:?}"
        );
    }
}
