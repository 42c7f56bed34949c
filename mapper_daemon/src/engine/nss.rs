//! The daemon's side of the NSS module (SPEC "NSS module"): `getpwnam(alias)` answered with the
//! local account's passwd entry, `pw_name` included, so that RStudio's canonicalisation
//! (`getpwnam(typed)` → uid → `getpwuid(uid).pw_name`) turns an alias into the local name.
//!
//! It runs the same pipeline as PAM and `accountmapctl resolve` (`Engine::map`, then the
//! cached directory, then the alias rule of identity-resolution step 7), so `getent passwd NAME`
//! and `accountmapctl resolve NAME` name the same account. It answers only for aliases:
//! a name that already is the account, and every lookup by uid, belong to the other NSS sources.
//! Of the access policy, the refusals by name apply here ([`crate::identity::policy::alias_answerable`]: the
//! alias rule and `denied_users`, whether the entry names the alias or the account): programs
//! such as rserver and su canonicalise the typed name through NSS and hand PAM only the local
//! name, so a `denied_users` entry naming the alias would otherwise be sidestepped. The
//! required groups and the minimum uid of a local name are left to PAM, which checks them under
//! the local name with the same result.
//!
//! Any local process may ask (passwd data is public, and the NSS module runs inside every
//! program on the host), so each asking uid is rate-limited instead: the real uid of the asking
//! process, so that setuid programs spend the budget of the user who ran them
//! ([`crate::server::nss_limit`]).
//!
//! Logging, chosen for a path that sshd drives with every invalid user name of a brute-force
//! run: an alias answered is logged at info (under RStudio it is the only record of the name the
//! user typed, since PAM only ever sees the local name); an alias refused because its account
//! is privileged at notice; a failing directory at error; a peer over its rate at warning, at
//! most once a second per uid. Local, unknown and unusable names are not logged at all.

use crate::backends::cache::Freshness;
use crate::engine::{Engine, Peer};
use crate::identity::resolve::MapError;
use crate::log;
use crate::server::nss_limit::{payer, Admission, Payer, RATE_PER_SECOND};
use accountmap_wire::{PasswdEntry, Response};
use std::time::Instant;

/// The reply to a peer over its rate. The module turns any error into NSS_STATUS_UNAVAIL.
pub const RATE_LIMITED: &str = "rate limited";
/// The reply to a peer whose process exited before the daemon could see whose it was.
pub const PEER_GONE: &str = "the asking process is gone";

impl Engine {
    /// Answers the NSS module's `getpwnam(name)` for `peer`: rate limit (billed to the peer's
    /// real uid, so that setuid programs run by a user spend that user's budget), then
    /// [`Engine::passwd_for`].
    pub fn nss_getpwnam(&self, peer: &Peer, name: &str) -> Response {
        let uid = match payer(peer.pid, peer.uid) {
            Payer::Uid(uid) => uid,
            Payer::Gone => return Response::Error(PEER_GONE.into()),
        };
        if let Admission::Refused { warn } = self.guards.nss.admit(uid, Instant::now()) {
            if warn {
                log::warning(&format!(
                    "nss: real uid {uid} exceeds {RATE_PER_SECOND} lookups per second (latest: {peer}); refusing the excess (logged once a second)"
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
                tracing::error!(peer = %peer, call = %"getpwnam", name, error = %e, "nss");
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
                tracing::error!(peer = %peer, call = %"getpwnam", name, error = %reason, "nss");
                return Err(reason);
            }
        };
        // One answer per typed name: an alias the policy refuses by name is not answered, or
        // it would still sign in through every program that canonicalises the name through NSS
        // before PAM (rserver, su): PAM would see only the local name, which is not denied.
        if let Err(refused) = self.nss_policy(&mapped, &account) {
            let outcome = format!("not answered: {refused}");
            tracing::info!(
                peer = %peer,
                call = %"getpwnam",
                name,
                outcome = outcome.as_str(),
                "nss"
            );
            return Ok(None);
        }
        let rule = mapped.rule.to_string();
        tracing::debug!(
            peer = %peer,
            call = %"getpwnam",
            name,
            account = account.name.as_str(),
            uid = account.uid,
            rule = rule.as_str(),
            "nss"
        );
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

#[cfg(test)]
mod tests;
