//! Everything that talks to the world outside the daemon: account data, identities and
//! credential checks. The engine ([`crate::engine`]) sees the backends only through the traits
//! below, so a new one is a module here plus one line where the engine builds its lists
//! (`Engine::new`).
//!
//! - [`system`]: the host's own accounts through glibc NSS (`getpwnam_r`, `getgrouplist`), the
//!   [`system::Directory`] every decision reads the local account from; [`cache`] keeps its
//!   answers for `cache_ttl` and serves stale ones during an outage.
//! - [`ldap`]: LDAP / Active Directory: an [`IdentitySource`] (who an email or username is,
//!   with groups and whitelist) and the `verify=ldap` [`CredentialVerifier`] (a bind).
//! - [`oidc`]: the `verify=oidc` verifier (ID and access tokens) and the device flow.
//! - [`proxy`]: the `verify=proxy` verifier (a trusted reverse proxy's signature).
//! - [`runtime`], [`tls`]: the async runtime bridge and the rustls set-up the network backends
//!   share.

pub mod cache;
pub mod ldap;
pub mod oidc;
pub mod proxy;
pub mod runtime;
pub mod system;
pub mod ticket;
pub mod tls;

use crate::backends::system::Account;
use crate::identity::resolve::{MapError, Mapped};
use accountmap_wire::{Credential, Verdict, Verify};

/// The entry an identity source found for a name: the local account it stands for, the
/// groups that count towards `required_groups`, and whether its whitelist admits it.
pub use ldap::LdapIdentity as DirectoryEntry;

/// What every backend reports to `accountmapctl status` and drops on `cache flush`.
pub trait Backend: Send + Sync {
    /// `key: value` lines for the status reply (reachability, cache figures).
    fn status(&self) -> Vec<(String, String)>;
    /// Drops cached answers; returns how many there were.
    fn flush(&self) -> usize {
        0
    }
}

/// Step 5 of the mapping pipeline: a directory that knows which local account an external
/// identity (an email, a username) is, and the groups of that account.
pub trait IdentitySource: Backend {
    /// The entry `identity` names, `Ok(None)` when this source does not know it, `Err` when the
    /// source could not be asked (a sign-in then fails as unavailable, never as unknown).
    fn find(&self, identity: &str) -> Result<Option<DirectoryEntry>, String>;
}

/// What a credential verifier is asked to check: that `credential` proves the right to sign
/// in to `account`, which the pipeline resolved from the name the service handed over.
pub struct Claim<'a> {
    /// PAM_USER as the service handed it over (what a proxy signs).
    pub typed: &'a str,
    pub mapped: &'a Mapped,
    pub account: &'a Account,
    /// The entry an identity source found in step 5, if one did.
    pub entry: Option<&'a DirectoryEntry>,
    pub credential: &'a Credential,
    /// The mapping pipeline, for credentials that carry a name of their own (a token's email):
    /// that name must map to `account` too.
    pub map: &'a dyn Fn(&str) -> Result<Mapped, MapError>,
}

/// A refused or failed check: the verdict the PAM module turns into a return code, and the
/// reason for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub verdict: Verdict,
    pub reason: String,
}

impl Failure {
    pub fn new(verdict: Verdict, reason: impl Into<String>) -> Failure {
        Failure {
            verdict,
            reason: reason.into(),
        }
    }
}

/// A check that passed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// Said after "allowed" in the decision's reason (e.g. "with a valid proxy signature").
    pub note: Option<String>,
    /// An entry read only now, with the user's own credential (LDAP single bind): its groups
    /// count towards the policy, and its whitelist applies.
    pub entry: Option<DirectoryEntry>,
}

/// One `verify=` method of the PAM module.
pub trait CredentialVerifier: Backend {
    /// The `verify=` value this verifier serves.
    fn method(&self) -> Verify;

    /// Runs before the access policy when no identity source found an entry: for a directory
    /// that can be read only as the user (LDAP single bind), the credential check is also how
    /// the account's groups are learned. `None`: nothing to do before the policy.
    fn verify_before_policy(&self, _claim: &Claim<'_>) -> Option<Result<Verified, Failure>> {
        None
    }

    /// Checks the credential once identity and policy have admitted the account.
    fn verify(&self, claim: &Claim<'_>) -> Result<Verified, Failure>;
}
