//! The daemon's side of the NSS module (SPEC "NSS module"): `getpwnam(alias)` answered with the
//! local account's passwd entry, `pw_name` included, so that RStudio's canonicalisation
//! (`getpwnam(typed)` → uid → `getpwuid(uid).pw_name`) turns an alias into the local name.
//!
//! It runs the same pipeline as PAM and `accountmapctl resolve` (`Engine::map`, then the
//! cached directory, then the alias rule of identity-resolution step 7), so `getent passwd NAME`
//! and `accountmapctl resolve NAME` name the same account. It answers only for aliases:
//! a name that already is the account, and every lookup by uid, belong to the other NSS sources.
//! The access policy (groups, denied users, minimum uid of a local name) is not applied here:
//! passwd data says which account a name stands for, not who may sign in; PAM decides that
//! afterwards, under the local name.
//!
//! Any local process may ask (passwd data is public, and the NSS module runs inside every
//! program on the host), so each peer uid is rate-limited instead ([`RateLimiter`]).
//!
//! Logging, chosen for a path that sshd drives with every invalid user name of a brute-force
//! run: an alias answered is logged at info (under RStudio it is the only record of the name the
//! user typed, since PAM only ever sees the local name); an alias refused because its account
//! is privileged at notice; a failing directory at error; a peer over its rate at warning, at
//! most once a second per uid. Local, unknown and unusable names are not logged at all.

use crate::backends::cache::Freshness;
use crate::engine::{Engine, Peer};
use crate::identity::policy;
use crate::identity::resolve::MapError;
use crate::log;
use accountmap_wire::{PasswdEntry, Response};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Sustained NSS lookups per second one peer uid may make. RStudio makes one per sign-in (and
/// caches the answer for the life of rserver); a busy login node makes a few per second.
pub const RATE_PER_SECOND: u32 = 200;
/// Lookups a peer uid may make at once before the rate applies (a burst of parallel sign-ins).
pub const BURST: u32 = 400;
/// The reply to a peer over its rate. The module turns any error into NSS_STATUS_UNAVAIL.
pub const RATE_LIMITED: &str = "rate limited";

impl Engine {
    /// Answers the NSS module's `getpwnam(name)` for `peer`: rate limit, then [`Engine::passwd_for`].
    pub fn nss_getpwnam(&self, peer: &Peer, name: &str) -> Response {
        if let Admission::Refused { warn } = limiter().admit(peer.uid, Instant::now()) {
            if warn {
                log::warning(&format!(
                    "nss: uid {} (pid {}) exceeds {RATE_PER_SECOND} lookups per second; refusing the excess (logged once a second)",
                    peer.uid, peer.pid
                ));
            }
            return Response::Error(RATE_LIMITED.into());
        }
        match self.passwd_for(peer, name) {
            Ok(entry) => Response::Passwd(entry),
            Err(e) => Response::Error(e),
        }
    }

    /// The passwd entry the alias `name` stands for, `Ok(None)` when there is none to give
    /// (not an alias, unknown, unusable, or an alias of a privileged account), `Err` when the
    /// directory could not answer. Not rate-limited: that is [`Engine::nss_getpwnam`]'s job.
    pub fn passwd_for(&self, peer: &Peer, name: &str) -> Result<Option<PasswdEntry>, String> {
        // Empty, over-long, control characters, or a rule giving an impossible user name:
        // nothing to answer, and nothing worth a log line (the caller may be an attacker's
        // probe relayed by sshd).
        let mapped = match self.map(name) {
            Ok(m) => m,
            // A directory that cannot be asked is UNAVAIL, not "no such user": nscd and
            // RStudio cache a NOTFOUND.
            Err(MapError::DirectoryUnavailable(e)) => {
                log::error(&format!(
                    "nss peer=uid:{}/pid:{} getpwnam name={name:?}: {e}",
                    peer.uid, peer.pid
                ));
                return Err(e);
            }
            Err(_) => return Ok(None),
        };
        // The name already is the account: the files (or sss, ldap) source answers it. Answering
        // here too would only duplicate it, and lookups of local names are the hot path.
        if !mapped.is_alias() {
            return Ok(None);
        }
        let account = match self.directory().account(&mapped.account) {
            Ok((Some(account), freshness)) => {
                if freshness == Freshness::Stale {
                    log::warning(&format!(
                        "nss: the system could not look up {:?}; using the cached answer",
                        mapped.account
                    ));
                }
                account
            }
            Ok((None, _)) => return Ok(None),
            Err(e) => {
                let reason = format!("cannot look up {:?}: {e}", mapped.account);
                log::error(&format!(
                    "nss peer=uid:{}/pid:{} getpwnam name={name:?}: {reason}",
                    peer.uid, peer.pid
                ));
                return Err(reason);
            }
        };
        if let Err(refused) = policy::alias_allowed(&mapped, &account, self.minimum_uid()) {
            log::notice(&format!(
                "nss peer=uid:{}/pid:{} getpwnam name={name:?}: not answered: {refused}",
                peer.uid, peer.pid
            ));
            return Ok(None);
        }
        log::info(&format!(
            "nss peer=uid:{}/pid:{} getpwnam name={name:?} account={:?} uid={} rule={:?}",
            peer.uid,
            peer.pid,
            account.name,
            account.uid,
            mapped.rule.to_string()
        ));
        Ok(Some(PasswdEntry {
            name: account.name,
            uid: account.uid,
            gid: account.gid,
            gecos: account.gecos,
            dir: account.dir,
            shell: account.shell,
        }))
    }
}

/// The daemon's one limiter. It lives outside the [`Engine`] so that a SIGHUP, which builds a
/// new engine, does not hand every peer a fresh burst.
fn limiter() -> &'static RateLimiter {
    static LIMITER: OnceLock<RateLimiter> = OnceLock::new();
    LIMITER.get_or_init(|| RateLimiter::new(RATE_PER_SECOND, BURST))
}

/// Whether a request may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Over the rate; `warn` is true at most once a second per uid.
    Refused {
        warn: bool,
    },
}

/// A token bucket per peer uid: `burst` tokens to start with, `rate` more per second.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<u32, Bucket>>,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
    warned: Option<Instant>,
}

/// Buckets kept before full (idle) ones are dropped. Peer uids come from SO_PEERCRED, so only
/// uids that run processes on this host can add one; the bound is for hygiene, not defence.
const MAX_BUCKETS: usize = 4096;

impl RateLimiter {
    pub fn new(rate_per_second: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate_per_second),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `uid`'s bucket at time `now`, if it has one.
    pub fn admit(&self, uid: u32, now: Instant) -> Admission {
        // A poisoned lock only means another thread panicked mid-update of plain numbers;
        // the map is still usable.
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&uid) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| refilled(b, now, rate, burst) < burst);
        }
        let bucket = buckets.entry(uid).or_insert(Bucket {
            tokens: self.burst,
            refilled: now,
            warned: None,
        });
        bucket.tokens = refilled(bucket, now, self.rate, self.burst);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Admission::Admitted;
        }
        let warn = match bucket.warned {
            None => true,
            Some(t) => now.saturating_duration_since(t) >= Duration::from_secs(1),
        };
        if warn {
            bucket.warned = Some(now);
        }
        Admission::Refused { warn }
    }
}

/// The tokens `b` holds at `now`.
fn refilled(b: &Bucket, now: Instant, rate: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
    (b.tokens + elapsed * rate).min(burst)
}

#[cfg(test)]
mod tests;
