//! The rate limits: a token bucket per paying uid, one table for NSS look-ups and one for the
//! PAM and `resolve` requests of non-root peers. Any local process may ask the daemon about an
//! alias (passwd data is public, and the NSS module runs inside every program), so each uid
//! gets a budget instead. They live in the server's state, not in the engine, so that a SIGHUP,
//! which builds a new engine, does not hand every peer a fresh burst.
//!
//! Who pays ([`payer`]): the peer's *real* uid, read from `/proc/PID/status` after
//! SO_PEERCRED, not its effective uid. A setuid-root program (`su`, `sudo`, `passwd`) that
//! alice starts is uid 0 to SO_PEERCRED, but keeps alice's real uid: billed to uid 0, alice
//! could spend the budget of root's own services (sshd, rserver) by running `su RANDOM` in a
//! loop. Billed to her real uid, she spends only her own. A peer whose process is gone by the
//! time the daemon looks has nobody waiting for the answer and is refused without spending
//! anyone's budget.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sustained NSS lookups per second one peer uid may make. RStudio makes one per sign-in (and
/// caches the answer for the life of rserver); a busy login node makes a few per second.
pub const RATE_PER_SECOND: u32 = 200;
/// Lookups a peer uid may make at once before the rate applies (a burst of parallel sign-ins).
pub const BURST: u32 = 400;
/// Sustained PAM, `resolve` and device-flow requests per second of one non-root uid (root's
/// PAM services are not limited here; the brute-force brake covers them). A screen locker or a
/// user's own `accountmapctl resolve` makes one at a time; a flood is refused cheaply.
pub const USER_REQUEST_RATE: u32 = 5;
/// Such requests a non-root uid may make at once before [`USER_REQUEST_RATE`] applies.
pub const USER_REQUEST_BURST: u32 = 20;

/// Whose budget a request spends (see the module comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payer {
    Uid(u32),
    /// The peer's process no longer exists: nobody reads the answer.
    Gone,
}

/// Who pays for a request of the process `pid` that SO_PEERCRED reported as `uid`: its real
/// uid from `/proc/PID/status`. `pid` 0 (a peer in a pid namespace the daemon cannot see) or a
/// status file the daemon may not read (a `/proc` mounted with `hidepid`) fall back to `uid`.
///
/// The pid is looked up after the connection was accepted, while the peer waits for its
/// answer; only a process that exited (or was killed by its own user) in between can be
/// missing, and such a request is refused unanswered. A pid reused by another process within
/// those microseconds would need the whole pid space to wrap meanwhile.
pub fn payer(pid: i32, uid: u32) -> Payer {
    if pid <= 0 {
        return Payer::Uid(uid);
    }
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => Payer::Uid(real_uid(&status).unwrap_or(uid)),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ESRCH) =>
        {
            Payer::Gone
        }
        Err(_) => Payer::Uid(uid),
    }
}

/// The real uid of a `/proc/PID/status` text: the first number of its `Uid:` line.
fn real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
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
        let mut buckets = crate::util::lock(&self.buckets);
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
