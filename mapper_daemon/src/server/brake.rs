//! The brute-force brake: credential failures (`verify=ldap|oidc|proxy`) make later failures
//! slower to arrive.
//!
//! Failures are counted per account (the resolved local account, or the name as typed when it
//! resolved to none), per non-root peer uid (a local user guessing through a PAM service it
//! runs itself), and per remote host (PAM_RHOST as a root service such as sshd reports it;
//! never from a non-root peer, which could write anything there). Within [`WINDOW`], the first
//! [`FREE_FAILURES`] failures of a key cost nothing; each further one is answered
//! `FIRST_DELAY × 2^(n − FREE_FAILURES − 1)` later, capped at [`MAX_DELAY`], which stays well
//! below the PAM module's default `timeout=10`, so a delayed answer is still an answer
//! (PAM_AUTH_ERR), never a timeout (PAM_AUTHINFO_UNAVAIL).
//!
//! Only *failures* are delayed: the credential is checked first, and a right password is
//! answered at once however many wrong ones preceded it (the brake slows guessing, it does not
//! lock anyone out; that is pam_faillock's job, see README). A success clears its account's
//! count. Memory is bounded: at most [`MAX_KEYS`] keys are remembered; when full, expired
//! ones are dropped, then the oldest.
//!
//! A delay is served by sleeping on the connection's thread, and threads are few (64). So that
//! parallel guesses (a botnet through sshd, whose connections come from root and take no
//! connection slot) cannot put every thread to sleep, at most [`MAX_SLEEPING`] answers are
//! delayed at once, and a key stays *in the penalty box* until its delay has run out: a
//! further attempt of that key (same typed name, remote host or peer) arriving meanwhile is
//! refused at once, without its credential being checked, so parallel guessing learns nothing.
//! Under such an attack the right password of the attacked account can be refused too, for
//! at most [`MAX_DELAY`] at a time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a failure is remembered (pam_faillock's default `fail_interval`).
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures per key within the window that are answered without delay (a few typos).
pub const FREE_FAILURES: u32 = 5;
/// The delay of the first braked failure; it doubles with each further one.
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest delay: below the PAM module's default 10 s timeout with room for the backend.
pub const MAX_DELAY: Duration = Duration::from_secs(4);
/// Keys remembered at most (each a few dozen bytes).
pub const MAX_KEYS: usize = 16 * 1024;
/// Answers delayed at the same time at most (of 64 connection threads).
pub const MAX_SLEEPING: usize = 16;

/// What failures are counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Account(String),
    PeerUid(u32),
    RemoteHost(String),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Account(a) => write!(f, "account {a:?}"),
            Key::PeerUid(u) => write!(f, "peer uid {u}"),
            Key::RemoteHost(h) => write!(f, "remote host {h:?}"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Count {
    failures: u32,
    first: Instant,
    last: Instant,
    /// End of the key's current delay: attempts before it are refused unchecked.
    until: Instant,
}

/// The failure counts; one per daemon, in [`crate::server::guards::Guards`] (a reload keeps them).
#[derive(Debug)]
pub struct Brake {
    counts: Mutex<HashMap<Key, Count>>,
    max_keys: usize,
    sleeping: std::sync::atomic::AtomicUsize,
}

/// The delay for the `n`th failure of a key within the window.
pub fn delay_for(n: u32) -> Duration {
    if n <= FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (n - FREE_FAILURES - 1).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

impl Brake {
    pub fn new(max_keys: usize) -> Brake {
        Brake {
            counts: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
            sleeping: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Count>> {
        // Counts are plain numbers, consistent after any panic elsewhere.
        crate::util::lock(&self.counts)
    }

    /// Records one failure against each of `keys` at `now`; returns the delay to apply and the
    /// key that imposes it (the one with the most failures).
    pub fn failed(&self, keys: &[Key], now: Instant) -> (Duration, Option<(Key, u32)>) {
        let mut counts = self.lock();
        let mut worst: Option<(Key, u32)> = None;
        for key in keys {
            if !counts.contains_key(key) && counts.len() >= self.max_keys {
                make_room(&mut counts, now);
            }
            let fresh = Count {
                failures: 0,
                first: now,
                last: now,
                until: now,
            };
            let c = counts.entry(key.clone()).or_insert(fresh);
            if now.saturating_duration_since(c.first) > WINDOW {
                *c = fresh;
            }
            c.failures = c.failures.saturating_add(1);
            c.last = now;
            let worse = match &worst {
                Some((_, n)) => c.failures > *n,
                None => true,
            };
            if worse {
                worst = Some((key.clone(), c.failures));
            }
        }
        let delay = worst
            .as_ref()
            .map_or(Duration::ZERO, |(_, n)| delay_for(*n));
        for key in keys {
            if let Some(c) = counts.get_mut(key) {
                c.until = c.until.max(now + delay);
            }
        }
        (delay, worst)
    }

    /// The key of `keys` that is in the penalty box at `now`, and for how much longer.
    pub fn held(&self, keys: &[Key], now: Instant) -> Option<(Key, Duration)> {
        let counts = self.lock();
        keys.iter().find_map(|k| {
            let c = counts.get(k)?;
            (c.until > now).then(|| (k.clone(), c.until - now))
        })
    }

    /// Sleeps `delay` unless [`MAX_SLEEPING`] answers are already being delayed; `false` when
    /// it did not sleep (the penalty box still holds the key).
    pub fn sleep(&self, delay: Duration) -> bool {
        use std::sync::atomic::Ordering;
        if self.sleeping.fetch_add(1, Ordering::SeqCst) >= MAX_SLEEPING {
            self.sleeping.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        std::thread::sleep(delay);
        self.sleeping.fetch_sub(1, Ordering::SeqCst);
        true
    }

    /// A success: the account's count is cleared (the peer's and host's are not: a guesser
    /// who knows one password must not reset the brake on the others).
    pub fn succeeded(&self, account: &str) {
        self.lock().remove(&Key::Account(account.to_string()));
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops expired keys; if none expired, the least recently failed one.
fn make_room(counts: &mut HashMap<Key, Count>, now: Instant) {
    let before = counts.len();
    counts.retain(|_, c| now.saturating_duration_since(c.first) <= WINDOW);
    if counts.len() < before {
        return;
    }
    if let Some(oldest) = counts
        .iter()
        .min_by_key(|(_, c)| c.last)
        .map(|(k, _)| k.clone())
    {
        counts.remove(&oldest);
    }
}

#[cfg(test)]
mod tests;
