//! One-time sign-in tickets (`verify=ticket`, SPEC "Web gate"): accountmapd mints a ticket for
//! a local account when `accountmap-gate` has proved who the browser user is (an ID token, a
//! trusted proxy header) and the policy allows them; the gate then signs the user in to
//! rserver's own form with the ticket as the password, and `pam_accountmap.so verify=ticket`
//! hands it back here, where it is consumed.
//!
//! A ticket is `amt1.` and 43 characters of base64url: 256 bits from the system's CSPRNG, so
//! it cannot be guessed (the brute-force brake does not count ticket checks). Only its
//! SHA-256 is stored, with the account it was minted for and when it expires
//! ([`TICKET_LIFETIME`] unless configured). It is accepted once, for that account, before it
//! expires; a lookup compares digests, which are not secret, so no constant-time comparison
//! is needed. At most [`MAX_TICKETS`] live at once: minting refuses beyond that rather than
//! forgetting one.

pub mod verify;

use base64::Engine as _;
use ring::rand::SecureRandom;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use accountmap_wire::{looks_like_ticket, TICKET_LEN, TICKET_PREFIX as PREFIX};
/// How long a ticket stays usable: the gate uses it within the same request.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(30);
/// Live tickets at most.
pub const MAX_TICKETS: usize = 10_000;

/// Why a ticket was not accepted. The `Display` form is the reason in the log; it never
/// contains the ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TicketRefusal {
    /// Not of the ticket's form.
    Malformed,
    /// Never minted, already used, or expired and forgotten.
    Unknown,
    /// Minted for another account.
    OtherAccount { minted_for: String },
    /// Past its lifetime.
    Expired { ago: Duration },
}

impl fmt::Display for TicketRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TicketRefusal::Malformed => f.write_str("the password is not a sign-in ticket"),
            TicketRefusal::Unknown => {
                f.write_str("unknown sign-in ticket (never issued, already used, or expired)")
            }
            TicketRefusal::OtherAccount { minted_for } => write!(
                f,
                "sign-in ticket was issued for {minted_for:?}, not this account (it is used up)"
            ),
            TicketRefusal::Expired { ago } => write!(
                f,
                "sign-in ticket expired {} ms ago (it is used up)",
                ago.as_millis()
            ),
        }
    }
}

/// Why no ticket could be minted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MintError {
    /// [`MAX_TICKETS`] unexpired tickets are live.
    Full,
    /// The system's random source failed.
    NoRandomness,
}

impl fmt::Display for MintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MintError::Full => write!(f, "{MAX_TICKETS} sign-in tickets are live; none minted"),
            MintError::NoRandomness => f.write_str("the system's random source failed"),
        }
    }
}

struct Live {
    account: String,
    expires: Instant,
}

/// The live tickets; one per daemon, in [`crate::server::guards::Guards`] (a reload keeps
/// them, so a ticket minted just before a SIGHUP still works).
pub struct TicketStore {
    live: Mutex<HashMap<[u8; 32], Live>>,
    capacity: usize,
    random: ring::rand::SystemRandom,
}

fn digest(ticket: &str) -> [u8; 32] {
    Sha256::digest(ticket.as_bytes()).into()
}

impl TicketStore {
    pub fn new(capacity: usize) -> TicketStore {
        TicketStore {
            live: Mutex::new(HashMap::new()),
            capacity,
            random: ring::rand::SystemRandom::new(),
        }
    }

    /// A new ticket for `account`, usable once until `now + lifetime`.
    pub fn mint(
        &self,
        account: &str,
        lifetime: Duration,
        now: Instant,
    ) -> Result<String, MintError> {
        let mut bytes = [0u8; 32];
        self.random
            .fill(&mut bytes)
            .map_err(|_| MintError::NoRandomness)?;
        let ticket = format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        let mut live = crate::util::lock(&self.live);
        if live.len() >= self.capacity {
            live.retain(|_, t| t.expires > now);
            if live.len() >= self.capacity {
                return Err(MintError::Full);
            }
        }
        live.insert(
            digest(&ticket),
            Live {
                account: account.to_string(),
                expires: now + lifetime,
            },
        );
        Ok(ticket)
    }

    /// Uses up `ticket` for `account`: accepted once, for the account it was minted for,
    /// before it expires. A ticket presented for another account or too late is used up too.
    pub fn consume(&self, ticket: &[u8], account: &str, now: Instant) -> Result<(), TicketRefusal> {
        if !looks_like_ticket(ticket) {
            return Err(TicketRefusal::Malformed);
        }
        let text = std::str::from_utf8(ticket).map_err(|_| TicketRefusal::Malformed)?;
        let found = crate::util::lock(&self.live)
            .remove(&digest(text))
            .ok_or(TicketRefusal::Unknown)?;
        if found.account != account {
            return Err(TicketRefusal::OtherAccount {
                minted_for: found.account,
            });
        }
        if now >= found.expires {
            return Err(TicketRefusal::Expired {
                ago: now - found.expires,
            });
        }
        Ok(())
    }

    /// Live tickets (for `status`).
    pub fn len(&self) -> usize {
        crate::util::lock(&self.live).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
