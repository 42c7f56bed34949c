//! What protects the daemon and its users across reloads: the brute-force brake, the NSS rate
//! limit and the memory of used proxy signatures. The server holds one [`Guards`] for its life
//! and hands it to every engine it builds, so a SIGHUP neither forgets a failure count, nor
//! refills a rate limit, nor makes a used signature usable again. It also keeps when the daemon
//! started and when it last reloaded, for `accountmapctl status`.

use crate::backends::proxy::verify::{ReplayMemory, REPLAY_CAPACITY};
use crate::backends::ticket::{TicketStore, MAX_TICKETS};
use crate::server::brake::{Brake, MAX_KEYS};
use crate::server::nss_limit::{
    RateLimiter, BURST, RATE_PER_SECOND, USER_REQUEST_BURST, USER_REQUEST_RATE,
};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct Guards {
    /// Failure budgets per account, per familiar source and per source.
    pub brake: Brake,
    /// NSS look-ups per paying uid (the peer's real uid, see [`crate::server::nss_limit`]).
    pub nss: RateLimiter,
    /// PAM, `resolve` and device-flow requests of non-root peers, per paying uid.
    pub user_requests: RateLimiter,
    /// Proxy signatures already used.
    pub replay: Arc<ReplayMemory>,
    /// Live sign-in tickets (`verify=ticket`): a ticket minted just before a reload still works.
    pub tickets: Arc<TicketStore>,
    /// When the daemon started: `status` counts its uptime from here, across reloads.
    pub started: Instant,
    /// When the last successful reload took effect, and how many there were.
    pub reloads: Mutex<(Option<Instant>, u64)>,
}

impl Guards {
    /// The daemon's limits.
    pub fn new() -> Guards {
        Guards {
            brake: Brake::new(MAX_KEYS),
            nss: RateLimiter::new(RATE_PER_SECOND, BURST),
            user_requests: RateLimiter::new(USER_REQUEST_RATE, USER_REQUEST_BURST),
            replay: Arc::new(ReplayMemory::new(REPLAY_CAPACITY)),
            tickets: Arc::new(TicketStore::new(MAX_TICKETS)),
            started: Instant::now(),
            reloads: Mutex::new((None, 0)),
        }
    }

    /// A reload took effect at `now`.
    pub fn reloaded(&self, now: Instant) {
        let mut r = crate::util::lock(&self.reloads);
        r.0 = Some(now);
        r.1 += 1;
    }

    /// The `uptime` and `last reload` lines of `status`, as of `now`.
    pub fn uptime_status(&self, now: Instant) -> [(String, String); 2] {
        let (last, count) = *crate::util::lock(&self.reloads);
        let secs = |since: Instant| now.saturating_duration_since(since).as_secs();
        let last = match last {
            None => "never".to_string(),
            Some(at) => format!("{}s ago ({count} since start)", secs(at)),
        };
        [
            ("uptime".to_string(), format!("{}s", secs(self.started))),
            ("last reload".to_string(), last),
        ]
    }
}

impl Default for Guards {
    fn default() -> Self {
        Guards::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn uptime_counts_from_the_start_and_a_reload_does_not_restart_it() {
        let guards = Guards::new();
        let start = guards.started;
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(
            guards.uptime_status(at(30)),
            [
                ("uptime".to_string(), "30s".to_string()),
                ("last reload".to_string(), "never".to_string()),
            ]
        );
        guards.reloaded(at(50));
        guards.reloaded(at(60));
        assert_eq!(
            guards.uptime_status(at(100)),
            [
                ("uptime".to_string(), "100s".to_string()),
                (
                    "last reload".to_string(),
                    "40s ago (2 since start)".to_string()
                ),
            ]
        );
    }
}
