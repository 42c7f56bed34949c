//! The daemon's side of its two shared-memory tables ([`accountmap_wire::memcache`]), files
//! next to the socket that the modules read before they ask over the socket:
//! `passwd.cache` for the NSS module, `policy.cache` (the decision table,
//! [`accountmap_wire::policy_cache`]) for root's PAM stacks.
//!
//! - At start the daemon creates a fresh file of each (mode 0644, 0600) and retires the one a
//!   previous run left, so that no reader keeps trusting it.
//! - Each answer to a `Getpwnam` is stored under the exact name asked: an entry for
//!   `cache_ttl`, "not an alias" for `negative_cache_ttl`; errors are not stored. Each policy
//!   decision made for a root peer without a credential to check is stored for `cache_ttl`.
//! - SIGHUP, `accountmapctl cache flush` and a clean stop empty the table; a stop also retires
//!   and removes the file.
//! - A store never blocks or fails a request: the lock is only tried, and if the file cannot be
//!   created the reason is logged once, shown by `status`, and the cache stays off (every
//!   lookup then takes the socket, as without a cache). The file's blocks are allocated when
//!   it is created, so a filesystem that fills up later cannot fail a store (a store into a
//!   sparse page of a full filesystem would be a SIGBUS); a filesystem already full is such a
//!   failure to create.
//!
//! An answer computed before a reload or a flush must not be stored after it: each request
//! takes the cache's epoch before it takes the engine, and a store whose epoch is no longer
//! current is dropped (see [`SharedCache::epoch`]).

use crate::log;
use accountmap_wire::memcache::{self, Kind, TableWriter, WriteMap};
use accountmap_wire::{policy_cache, Decision, PasswdEntry};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

pub struct SharedCache {
    kind: Kind,
    /// `None`: disabled (the file could not be made, or the daemon is stopping).
    file: Mutex<Option<WriteMap>>,
    epoch: AtomicU64,
    /// Why the cache is off, for `status`, when it could not be made.
    off_because: Option<String>,
}

impl SharedCache {
    /// Creates the passwd cache file next to `socket`. On failure the reason is logged and
    /// the cache is off.
    pub fn create(socket: &Path) -> SharedCache {
        SharedCache::create_kind(socket, Kind::Passwd)
    }

    /// Creates the file of `kind` next to `socket`.
    pub fn create_kind(socket: &Path, kind: Kind) -> SharedCache {
        let (label, without) = match kind {
            Kind::Passwd => ("nss cache", "every NSS lookup uses the socket"),
            Kind::Policy => ("decision table", "every PAM call uses the socket"),
        };
        let mut off_because = None;
        let file = match memcache::path_of(socket, kind) {
            Some(path) => match WriteMap::create_kind(&path, kind) {
                Ok(f) => {
                    log::notice(&format!(
                        "{label}: {} (entries kept for cache_ttl)",
                        path.display()
                    ));
                    Some(f)
                }
                Err(e) => {
                    // Said once: the cache stays off for the life of the daemon.
                    let why = format!("cannot create {}: {e}", path.display());
                    log::warning(&format!("{label} off: {why}; {without}"));
                    off_because = Some(why);
                    None
                }
            },
            None => None,
        };
        SharedCache {
            kind,
            file: Mutex::new(file),
            epoch: AtomicU64::new(0),
            off_because,
        }
    }

    /// Why the cache is off, when creating its file failed.
    pub fn off_because(&self) -> Option<&str> {
        self.off_because.as_deref()
    }

    /// A cache that stores nothing.
    pub fn disabled() -> SharedCache {
        SharedCache {
            kind: Kind::Passwd,
            file: Mutex::new(None),
            epoch: AtomicU64::new(0),
            off_because: None,
        }
    }

    /// The path of the file, when the cache is on.
    pub fn path(&self) -> Option<PathBuf> {
        self.status().map(|(path, _)| path)
    }

    /// The path of the file and its unexpired entries, when the cache is on.
    pub fn status(&self) -> Option<(PathBuf, usize)> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let f = file.as_mut()?;
        let live = f.writer().map_or(0, |w| w.live(memcache::now_ns()));
        Some((f.path().to_path_buf(), live))
    }

    /// The file and its live entries as `status` shows them (`off: why` when it is off).
    pub fn status_text(&self) -> (String, String) {
        match (self.status(), self.off_because()) {
            (Some((path, live)), _) => (path.display().to_string(), live.to_string()),
            (None, Some(why)) => (format!("off: {why}"), "0".to_string()),
            (None, None) => ("off".to_string(), "0".to_string()),
        }
    }

    /// The epoch to hand to [`SharedCache::store`]. Take it before taking the engine that will
    /// answer: a reload swaps the engine first and bumps the epoch second, so an answer from
    /// the old engine always carries an old epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Stores `entry` as the answer for `name` for `ttl`, unless the epoch has moved on since
    /// `epoch`, the TTL is zero, the cache is off, or another thread holds the file.
    pub fn store(&self, epoch: u64, name: &str, entry: &PasswdEntry, ttl: Duration) {
        self.write(epoch, ttl, |w, expiry, now| {
            w.insert(name.as_bytes(), entry, expiry, now);
        });
    }

    /// Stores `decision` as the decision for `name` for `ttl` (the decision table; only what
    /// [`policy_cache::storable`] allows), under the same conditions as [`SharedCache::store`].
    pub fn store_decision(&self, epoch: u64, name: &str, decision: &Decision, ttl: Duration) {
        if self.kind != Kind::Policy {
            return;
        }
        self.write(epoch, ttl, |w, expiry, now| {
            policy_cache::insert(w, name, decision, expiry, now);
        });
    }

    /// Stores that `name` is no alias this daemon serves, for `ttl` (`negative_cache_ttl`),
    /// under the same conditions as [`SharedCache::store`].
    pub fn store_not_an_alias(&self, epoch: u64, name: &str, ttl: Duration) {
        self.write(epoch, ttl, |w, expiry, now| {
            w.insert_not_an_alias(name.as_bytes(), expiry, now);
        });
    }

    /// Runs `put` with the writer, the expiry `ttl` from now and now, unless the epoch has
    /// moved on since `epoch`, the TTL is zero, the cache is off, or another thread holds the
    /// file.
    fn write(&self, epoch: u64, ttl: Duration, put: impl FnOnce(&mut TableWriter<'_>, u64, u64)) {
        if ttl.is_zero() {
            return;
        }
        let Ok(mut file) = self.file.try_lock() else {
            return;
        };
        // Checked under the lock that `invalidate` bumps it under: either this store comes
        // before the clear, or it sees the new epoch and gives up.
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        let Some(writer) = file.as_mut() else { return };
        let Some(mut w) = writer.writer() else { return };
        let now = memcache::now_ns();
        let ttl = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        put(&mut w, now.saturating_add(ttl), now);
    }

    /// Empties the table (reload, flush); returns how many live entries it held.
    pub fn invalidate(&self) -> usize {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        match file.as_mut().and_then(|f| f.writer()) {
            Some(mut w) => w.clear(memcache::now_ns()),
            None => 0,
        }
    }

    /// A clean stop: empties and retires the file, removes it, and stores nothing more.
    pub fn shutdown(&self) {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(mut f) = file.take() {
            f.retire_and_remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use accountmap_wire::memcache::ReadMap;

    fn entry() -> PasswdEntry {
        PasswdEntry {
            name: "jdoe".into(),
            uid: 1003,
            gid: 1003,
            gecos: String::new(),
            dir: "/home/jdoe".into(),
            shell: "/bin/sh".into(),
        }
    }

    fn euid() -> u32 {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() }
    }

    #[test]
    fn stores_flushes_drops_stale_epochs_and_removes_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("accountmapd.sock");
        let cache = SharedCache::create(&socket);
        let path = cache.path().unwrap();
        assert_eq!(path, dir.path().join("passwd.cache"));
        let reader = ReadMap::open(&path, euid()).unwrap();
        let t = reader.table().unwrap();
        let ttl = Duration::from_secs(60);

        let e0 = cache.epoch();
        cache.store(e0, "John.Doe@Company.com", &entry(), ttl);
        assert_eq!(
            t.lookup(b"John.Doe@Company.com", memcache::now_ns()),
            Some(memcache::Cached::Entry(entry()))
        );
        cache.store_not_an_alias(e0, "nobody-here", ttl);
        assert_eq!(
            t.lookup(b"nobody-here", memcache::now_ns()),
            Some(memcache::Cached::NotAnAlias)
        );
        // Zero TTL stores nothing.
        cache.store(e0, "zero", &entry(), Duration::ZERO);
        assert_eq!(t.lookup(b"zero", memcache::now_ns()), None);

        // A flush empties it (the entry and the "not an alias"), and an answer computed before
        // the flush is not stored after.
        assert_eq!(cache.invalidate(), 2);
        assert_eq!(t.lookup(b"John.Doe@Company.com", memcache::now_ns()), None);
        cache.store(e0, "late", &entry(), ttl);
        assert_eq!(t.lookup(b"late", memcache::now_ns()), None);
        cache.store(cache.epoch(), "late", &entry(), ttl);
        assert!(t.lookup(b"late", memcache::now_ns()).is_some());

        cache.shutdown();
        assert!(t.retired());
        assert!(!path.exists());
        cache.store(cache.epoch(), "after", &entry(), ttl);
        assert_eq!(t.lookup(b"after", memcache::now_ns()), None);
    }

    #[test]
    fn a_directory_that_cannot_hold_the_file_disables_the_cache() {
        let cache = SharedCache::create(Path::new("/nonexistent-dir-of-accountmap/s.sock"));
        assert_eq!(cache.path(), None);
        // Stores and flushes are harmless no-ops.
        cache.store(cache.epoch(), "x", &entry(), Duration::from_secs(1));
        assert_eq!(cache.invalidate(), 0);
        cache.shutdown();
    }
}
