//! The NSS rate limit: a token bucket per peer uid. Any local process may ask the daemon
//! about an alias (passwd data is public, and the NSS module runs inside every program), so
//! each uid gets a budget instead. It lives in the server's state, not in the engine, so that a
//! SIGHUP, which builds a new engine, does not hand every peer a fresh burst.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sustained NSS lookups per second one peer uid may make. RStudio makes one per sign-in (and
/// caches the answer for the life of rserver); a busy login node makes a few per second.
pub const RATE_PER_SECOND: u32 = 200;
/// Lookups a peer uid may make at once before the rate applies (a burst of parallel sign-ins).
pub const BURST: u32 = 400;

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
