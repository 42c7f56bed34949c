//! A TTL cache ([`TtlCache`]), used in front of the system's [`Directory`] and of LDAP: positive answers for `cache_ttl`, "no such user" for
//! `negative_cache_ttl`, each with a little jitter so that a burst of sign-ins does not expire
//! all at once. When the directory fails, an expired answer is served rather than none, and the
//! caller is told it is stale so that it can say so in the log.

use crate::backends::system::{Account, Directory, LookupError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// More entries than this and expired ones are dropped before inserting; a bound, so that a
/// flood of made-up names cannot grow the daemon without limit.
const MAX_ENTRIES: usize = 65_536;
/// "No such name" answers kept at most: made-up names are what a flood sends (sshd relaying
/// invalid users, a root service asked random names), and each costs a key of up to a few
/// hundred bytes. Beyond this many, every negative answer is forgotten at once (they are
/// cheap to ask again) and the table shrinks, so a flood holds at most about 4,096 names
/// (~2 MiB) here, whatever its length.
pub const MAX_NEGATIVE: usize = 4_096;

#[derive(Clone, Debug)]
struct Entry<V> {
    value: Option<V>,
    expires: Instant,
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Cached,
    /// Expired, served because the directory failed.
    Stale,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
    pub stale: u64,
}

/// Answers by name ("this account", or "no such name") with their expiry: the one cache
/// behind the system directory and the LDAP identities.
pub struct TtlCache<V> {
    ttl: Duration,
    negative_ttl: Duration,
    entries: Mutex<HashMap<String, Entry<V>>>,
    /// Negative entries in `entries`; changed only under its lock.
    negatives: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration, negative_ttl: Duration) -> Self {
        TtlCache {
            ttl,
            negative_ttl,
            entries: Mutex::new(HashMap::new()),
            negatives: AtomicUsize::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stale: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<V>>> {
        // A panic while holding the lock cannot leave the map inconsistent (every update is a
        // single insert or clear), so a poisoned lock is safe to keep using.
        crate::util::lock(&self.entries)
    }

    /// The answer for `key`: from the cache while fresh, else from `fetch`, which is then
    /// remembered. When `fetch` fails and an expired answer is at hand, that answer is served
    /// (after `on_stale` has been told why) rather than none.
    pub fn get_or_fetch<E>(
        &self,
        key: &str,
        fetch: impl FnOnce() -> Result<Option<V>, E>,
        on_stale: impl FnOnce(&E),
    ) -> Result<(Option<V>, Freshness), E> {
        let now = Instant::now();
        let cached = self.lock().get(key).cloned();
        if let Some(entry) = &cached {
            if entry.expires > now {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok((entry.value.clone(), Freshness::Cached));
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        match fetch() {
            Ok(value) => {
                let ttl = if value.is_some() {
                    self.ttl
                } else {
                    self.negative_ttl
                };
                if !ttl.is_zero() {
                    self.insert(key, value.clone(), now + jitter(ttl, key));
                }
                Ok((value, Freshness::Fresh))
            }
            Err(e) => match cached {
                Some(entry) => {
                    self.stale.fetch_add(1, Ordering::Relaxed);
                    on_stale(&e);
                    Ok((entry.value, Freshness::Stale))
                }
                None => Err(e),
            },
        }
    }

    /// Remembers `value` for `key` until `expires`.
    pub fn insert(&self, key: &str, value: Option<V>, expires: Instant) {
        let mut map = self.lock();
        let new = !map.contains_key(key);
        if new && value.is_none() && self.negatives.load(Ordering::Relaxed) >= MAX_NEGATIVE {
            // Made-up names take only so much room: forget them all rather than grow.
            let now = Instant::now();
            map.retain(|_, e| e.expires > now && e.value.is_some());
            self.negatives.store(0, Ordering::Relaxed);
            shrink_if_sparse(&mut map);
        }
        if new && map.len() >= MAX_ENTRIES {
            let now = Instant::now();
            map.retain(|_, e| e.expires > now);
            if map.len() >= MAX_ENTRIES {
                // Everything is fresh: forget it all rather than grow. Correctness does not
                // depend on the cache, only speed.
                map.clear();
            }
            self.recount(&map);
        }
        let negative = value.is_none();
        let old = map.insert(key.to_string(), Entry { value, expires });
        match (old.map(|e| e.value.is_none()), negative) {
            (Some(true), false) => {
                self.negatives.fetch_sub(1, Ordering::Relaxed);
            }
            (None | Some(false), true) => {
                self.negatives.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Counts the negative entries again (after a bulk change; called under the lock).
    fn recount(&self, map: &HashMap<String, Entry<V>>) {
        let n = map.values().filter(|e| e.value.is_none()).count();
        self.negatives.store(n, Ordering::Relaxed);
    }

    /// For an idle daemon: drops the expired answers and every "no such name" (cheap to ask
    /// again, and what a flood of made-up names leaves behind), then, when the table is mostly
    /// empty, gives its room back (it was sized for up to [`MAX_ENTRIES`]).
    /// Returns how many answers were dropped.
    pub fn purge_idle(&self, now: Instant) -> usize {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, e| e.expires > now && e.value.is_some());
        self.negatives.store(0, Ordering::Relaxed);
        shrink_if_sparse(&mut map);
        before - map.len()
    }

    /// Drops every cached answer; returns how many there were.
    pub fn flush(&self) -> usize {
        let mut map = self.lock();
        let n = map.len();
        map.clear();
        self.negatives.store(0, Ordering::Relaxed);
        n
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.lock().len(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
        }
    }
}

/// Gives a mostly empty table's room back.
fn shrink_if_sparse<V>(map: &mut HashMap<String, Entry<V>>) {
    if map.capacity() > 2 * map.len() + 64 {
        map.shrink_to_fit();
    }
}

/// The system's accounts (NSS), cached.
pub struct CachedDirectory {
    inner: Arc<dyn Directory>,
    cache: TtlCache<Account>,
    /// Login names by uid (the own name of non-root callers), keyed by the uid in decimal.
    names: TtlCache<String>,
}

impl CachedDirectory {
    pub fn new(inner: Arc<dyn Directory>, ttl: Duration, negative_ttl: Duration) -> Self {
        CachedDirectory {
            inner,
            cache: TtlCache::new(ttl, negative_ttl),
            names: TtlCache::new(ttl, negative_ttl),
        }
    }

    /// The account called `name`, from the cache when fresh.
    pub fn account(&self, name: &str) -> Result<(Option<Account>, Freshness), LookupError> {
        self.cache
            .get_or_fetch(name, || self.inner.account(name), |_| {})
    }

    /// See [`TtlCache::purge_idle`].
    pub fn purge_idle(&self) -> usize {
        let now = Instant::now();
        self.cache.purge_idle(now) + self.names.purge_idle(now)
    }

    /// The login name of `uid`, from the cache when fresh.
    pub fn name_of_uid(&self, uid: u32) -> Result<Option<String>, LookupError> {
        self.names
            .get_or_fetch(&uid.to_string(), || self.inner.name_of_uid(uid), |_| {})
            .map(|(name, _)| name)
    }

    /// Drops every cached answer; returns how many there were.
    pub fn flush(&self) -> usize {
        self.cache.flush() + self.names.flush()
    }

    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }
}

/// The TTL shortened by up to a tenth, chosen from the name so that it is spread across names
/// but needs no random number generator.
pub(crate) fn jitter(ttl: Duration, name: &str) -> Duration {
    let spread = name
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))
        % 1000;
    ttl - ttl / 10 * spread / 1000
}

#[cfg(test)]
mod tests;
