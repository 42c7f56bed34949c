//! accountmapd: every sign-in decision of accountmap, as plain functions and types that unit
//! tests call without a socket, and the server around them.
//!
//! Where a request goes:
//! 1. [`server`] accepts a connection, reads one frame and the peer's credentials, and applies
//!    what protects the daemon itself (connection slots, the brute-force brake, the NSS rate
//!    limit, the shared-memory NSS cache it writes).
//! 2. [`engine`] turns the request into a decision: PAM phases, NSS look-ups, device flow.
//! 3. The engine asks [`identity`] who the name is (the mapping pipeline over the accounts file
//!    and rewrite rules) and whether policy lets that account in.
//! 4. Account data and credential checks come from [`backends`]: the system's NSS, LDAP,
//!    OpenID Connect, proxy signatures — each an identity source or a credential verifier.
//! 5. [`config`] reads, validates and locates errors in `accountmap.toml`; [`log`] writes the
//!    lines administrators grep; [`util`] holds the small helpers every part uses.

pub mod backends;
pub mod config;
pub mod engine;
pub mod identity;
pub mod log;
pub mod server;
#[cfg(test)]
mod test_support;
pub mod util;
