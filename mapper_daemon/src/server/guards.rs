//! What protects the daemon and its users across reloads: the brute-force brake, the NSS rate
//! limit and the memory of used proxy signatures. The server holds one [`Guards`] for its life
//! and hands it to every engine it builds, so a SIGHUP neither forgets a failure count, nor
//! refills a rate limit, nor makes a used signature usable again.

use crate::backends::proxy::verify::{ReplayMemory, REPLAY_CAPACITY};
use crate::server::brake::{Brake, MAX_KEYS};
use crate::server::nss_limit::{RateLimiter, BURST, RATE_PER_SECOND};
use std::sync::Arc;

pub struct Guards {
    /// Failed credential checks, per typed name and remote host or peer uid.
    pub brake: Brake,
    /// NSS look-ups per peer uid.
    pub nss: RateLimiter,
    /// Proxy signatures already used.
    pub replay: Arc<ReplayMemory>,
}

impl Guards {
    /// The daemon's limits.
    pub fn new() -> Guards {
        Guards {
            brake: Brake::new(MAX_KEYS),
            nss: RateLimiter::new(RATE_PER_SECOND, BURST),
            replay: Arc::new(ReplayMemory::new(REPLAY_CAPACITY)),
        }
    }
}

impl Default for Guards {
    fn default() -> Self {
        Guards::new()
    }
}
