//! Everything that talks to the world outside the daemon: account data and credential checks.
//!
//! - [`system`]: the host's own accounts through glibc NSS (`getpwnam_r`, `getgrouplist`).
//! - [`cache`]: the TTL cache in front of an account source, serving stale answers during an
//!   outage.
//! - [`ldap`]: LDAP / Active Directory look-ups and password binds.
//! - [`oidc`]: OpenID Connect ID and access tokens, and the device flow for consoles.
//! - [`proxy`]: signatures of a trusted reverse proxy (`verify=proxy`).

pub mod cache;
pub mod ldap;
pub mod oidc;
pub mod proxy;
pub mod runtime;
pub mod system;
pub mod tls;
