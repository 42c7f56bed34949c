//! The LDAP / Active Directory backend (`[[ldap]]` sections): identity-resolution step 5, the
//! password check of `verify=ldap`, `whitelisted_login_groups`, and the LDAP group names that
//! count towards `access.required_groups`.
//!
//! Built on ldap3's async `LdapConnAsync` under the daemon's tokio runtime (never the sync
//! `LdapConn`, which starts a runtime of its own and panics inside ours). The engine is
//! synchronous (it runs on the server's connection threads, which have entered the runtime),
//! so the public methods here are synchronous and drive their futures with [`block_on`].
//!
//! What every call is bounded by, since ldap3 sets no timeout by default:
//! - connecting (TCP, StartTLS, TLS handshake): `daemon.backend_timeout` per address;
//! - every operation (bind, search): `daemon.backend_timeout`;
//! - waiting for a service connection from the pool: `daemon.backend_timeout`.
//!
//! Addresses of one section are tried in order (failover); sections are asked in order and the
//! first that knows the identity answers.
//!
//! Connections: searches run on up to [`POOL_SIZE`] service connections per section; password
//! checks on bind-only connections, up to [`BIND_POOL_SIZE`] kept idle per address (see
//! [`BindPool`](pool::BindPool) for why reusing them is as safe as a new connection). A
//! look-up sends its group and whitelist searches at once.
//!
//! Single bind (a section with neither `bind_dn` nor `anonymous_bind`): there is no account to
//! search with, so such a section is never asked by step 5 (nor, through it, by NSS, the
//! account phase and `resolve`). At a `verify=ldap` sign-in that no searchable section
//! answered, the user is bound as `<username_attribute>=<account>,<user_search_base_dn>` (the
//! account DN-escaped) on a fresh connection, and with that same bind the user's own entry,
//! groups and whitelisted groups are read ([`LdapBackend::single_bind`]). Identity answers (never passwords) are cached for
//! `cache_ttl` / `negative_cache_ttl`, served stale while every server is down, and identical
//! look-ups in flight at the same moment share one directory round trip.
//!
//! Where the code is: this file is what the engine calls ([`LdapBackend`]: look-ups and their
//! cache, password checks, single bind, flush, status); [`directory`] is one `[[ldap]]` section
//! (searches, group and whitelist filters, binds, result codes); [`pool`] its connections
//! (opening them, the service and bind-only pools, each address's reachability). TLS settings
//! come from [`crate::backends::tls`].

mod directory;
mod pool;
pub mod state;

use crate::backends::cache::{Freshness, TtlCache};
use crate::config::LdapConfig;
use crate::log;
use crate::util::lock;
use directory::Directory;
use ldap3::dn_escape;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

use crate::backends::runtime::block_on;
pub use pool::{BIND_IDLE, BIND_POOL_SIZE, POOL_SIZE};

/// How long `status` waits for its reachability probes (the CLI and the test harness ask with
/// a timeout of their own, and a server that swallows packets must not make the daemon look
/// dead).
pub const PROBE_WAIT: Duration = Duration::from_millis(500);

/// What a directory knows about an identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LdapIdentity {
    /// The `[[ldap]]` section that answered.
    pub directory: String,
    /// The user's entry: what `verify=ldap` binds as.
    pub dn: String,
    /// The entry's username attribute (lower-cased when `mapping.lowercase`): the local account.
    pub account: String,
    /// `group_name_attribute` of the groups the user is in (empty without `group_search_base_dn`).
    pub groups: Vec<String>,
    /// Member of at least one of `whitelisted_login_groups` (true when the list is empty).
    pub whitelisted: bool,
    /// Found by single bind: entry, groups and whitelist were read with the user's own bind.
    pub single_bind: bool,
    /// Disabled, locked, expired, or a password to change, as the entry says.
    pub state: state::AccountState,
}

/// The outcome of a single-bind sign-in ([`LdapBackend::single_bind`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SingleBind {
    /// Bound, own entry read: the identity, with the groups the user may read.
    Accepted(LdapIdentity),
    /// No single-bind section accepted the DN and password (wrong password, no such entry).
    Refused(String),
    /// A section accepted the bind, but its entry cannot be used (not readable, not of
    /// `user_object_class`, another name): final, no later section is asked.
    Denied(String),
    /// No answer, and at least one section could not be asked.
    Unavailable(String),
}

/// Single bind: the DN of `account` in `cfg`, `<username_attribute>=<account>,<base>`, the
/// account escaped as an RDN value (RFC 4514) so that `,`, `+`, `=` and the like in it stay
/// part of the value.
pub fn single_bind_dn(cfg: &LdapConfig, account: &str) -> String {
    format!(
        "{}={},{}",
        cfg.username_attribute,
        dn_escape(account),
        cfg.user_search_base_dn
    )
}

/// The outcome of a password check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordCheck {
    Accepted,
    /// The directory answered and said no (wrong password, locked account, …).
    Refused(String),
    /// No server could be asked.
    Unavailable(String),
}

type Answer = Result<Option<LdapIdentity>, String>;

/// Every `[[ldap]]` section of the config in force.
pub struct LdapBackend {
    directories: Vec<Arc<Directory>>,
    cache: TtlCache<LdapIdentity>,
    /// One shared answer per identity being looked up right now.
    inflight: Mutex<HashMap<String, Arc<OnceCell<Answer>>>>,
    /// Directory round trips made (not counting cache hits and coalesced callers).
    lookups: AtomicU64,
}

impl LdapBackend {
    /// `None` when the config has no `[[ldap]]` section. Fails when a CA or client certificate
    /// cannot be loaded.
    pub fn new(
        sections: &[LdapConfig],
        timeout: Duration,
        ttl: Duration,
        negative_ttl: Duration,
        lowercase: bool,
    ) -> Result<Option<LdapBackend>, String> {
        if sections.is_empty() {
            return Ok(None);
        }
        let directories = sections
            .iter()
            .map(|c| Directory::new(c, timeout, lowercase).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(LdapBackend {
            directories,
            cache: TtlCache::new(ttl, negative_ttl),
            inflight: Mutex::new(HashMap::new()),
            lookups: AtomicU64::new(0),
        }))
    }

    /// Step 5: the first section that has an entry for `identity` (already normalised by the
    /// pipeline) answers. `Ok(None)`: no section knows it. `Err`: no answer, and at least one
    /// section could not be asked (and nothing was cached).
    /// Single-bind sections are not asked (they cannot be searched without the user's
    /// password).
    pub fn lookup(&self, identity: &str) -> Result<(Option<LdapIdentity>, Freshness), String> {
        if self.directories.iter().all(|d| d.cfg.single_bind()) {
            return Ok((None, Freshness::Fresh));
        }
        self.cache.get_or_fetch(
            identity,
            || block_on(self.coalesced(identity)).and_then(|answer| answer),
            |e| {
                log::warning(&format!(
                    "ldap: serving the cached (stale) answer for {identity:?}: {e}"
                ))
            },
        )
    }

    /// Identical look-ups at the same moment share one round trip: the first caller runs it,
    /// the others wait for its answer.
    async fn coalesced(&self, identity: &str) -> Answer {
        let cell = lock(&self.inflight)
            .entry(identity.to_string())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let answer = cell
            .get_or_init(|| async {
                self.lookups.fetch_add(1, Ordering::Relaxed);
                self.ask_all(identity).await
            })
            .await
            .clone();
        let mut inflight = lock(&self.inflight);
        if inflight
            .get(identity)
            .is_some_and(|c| Arc::ptr_eq(c, &cell))
        {
            inflight.remove(identity);
        }
        answer
    }

    async fn ask_all(&self, identity: &str) -> Answer {
        let mut errors = Vec::new();
        for dir in &self.directories {
            match Box::pin(dir.find(identity)).await {
                Ok(Some(found)) => {
                    if !errors.is_empty() {
                        log::warning(&format!(
                            "ldap: {identity:?} answered by ldap {:?} while an earlier directory could not be asked ({})",
                            dir.name(),
                            errors.join("; ")
                        ));
                    }
                    return Ok(Some(found));
                }
                Ok(None) => {}
                Err(e) => errors.push(format!("ldap {:?}: {e}", dir.name())),
            }
        }
        if errors.is_empty() {
            Ok(None)
        } else {
            Err(errors.join("; "))
        }
    }

    #[cfg(test)]
    fn remember(&self, identity: &str, value: Option<LdapIdentity>, expires: std::time::Instant) {
        self.cache.insert(identity, value, expires);
    }

    /// `verify=ldap`: binds as the identity's entry with `password`, in the section that
    /// answered. The caller has already refused empty and NUL-containing passwords; they are
    /// checked again here because an empty password is an unauthenticated bind that some
    /// servers report as a success.
    pub fn check_password(&self, identity: &LdapIdentity, password: &[u8]) -> PasswordCheck {
        if password.is_empty() || password.contains(&0) {
            return PasswordCheck::Refused("empty password or NUL byte".into());
        }
        let Ok(password) = std::str::from_utf8(password) else {
            return PasswordCheck::Refused("the password is not UTF-8".into());
        };
        if identity.dn.is_empty() {
            return PasswordCheck::Refused("no DN to bind as".into());
        }
        let Some(dir) = self
            .directories
            .iter()
            .find(|d| d.name() == identity.directory)
        else {
            return PasswordCheck::Unavailable(format!(
                "ldap {:?} is no longer configured",
                identity.directory
            ));
        };
        // On the heap: the request threads have small stacks, and a connection set-up inside
        // the bind future makes it large (a debug build overflowed 512 KiB).
        match block_on(Box::pin(dir.check_password(&identity.dn, password))) {
            Ok(c) => c,
            Err(e) => PasswordCheck::Unavailable(e),
        }
    }

    /// Whether any section uses single bind.
    pub fn has_single_bind(&self) -> bool {
        self.directories.iter().any(|d| d.cfg.single_bind())
    }

    /// `verify=ldap` through the single-bind sections, in order, for a local `account` (the
    /// pipeline's answer, already lower-cased per `mapping.lowercase`): the first that accepts
    /// the bind as [`single_bind_dn`] decides. Nothing of it is cached. Empty and
    /// NUL-containing passwords are refused before any bind, as in [`Self::check_password`].
    pub fn single_bind(&self, account: &str, password: &[u8]) -> SingleBind {
        if password.is_empty() || password.contains(&0) {
            return SingleBind::Refused("empty password or NUL byte".into());
        }
        let Ok(password) = std::str::from_utf8(password) else {
            return SingleBind::Refused("the password is not UTF-8".into());
        };
        if account.is_empty() {
            return SingleBind::Refused("no account to bind as".into());
        }
        let mut refusals = Vec::new();
        let mut errors = Vec::new();
        for dir in self.directories.iter().filter(|d| d.cfg.single_bind()) {
            match block_on(Box::pin(dir.single_bind(account, password))) {
                Ok(SingleBind::Refused(why)) => {
                    refusals.push(format!("ldap {}: {why}", dir.name()))
                }
                Ok(SingleBind::Unavailable(e)) | Err(e) => errors.push(e),
                Ok(SingleBind::Denied(why)) => {
                    return SingleBind::Denied(format!("ldap {}: {why}", dir.name()))
                }
                Ok(accepted @ SingleBind::Accepted(_)) => return accepted,
            }
        }
        match (errors.is_empty(), refusals.is_empty()) {
            (true, true) => SingleBind::Refused("no single-bind [[ldap]] section".into()),
            (true, false) => SingleBind::Refused(refusals.join("; ")),
            (false, _) => {
                errors.extend(refusals);
                SingleBind::Unavailable(errors.join("; "))
            }
        }
    }

    /// Drops every cached identity; returns how many there were.
    pub fn flush(&self) -> usize {
        self.cache.flush()
    }

    /// Status lines: each server's reachability, probed now, and the cache counters.
    ///
    /// `status` must answer promptly even when a server swallows packets, so the probes get
    /// [`PROBE_WAIT`]; one that has not finished by then keeps running in the background (its
    /// outcome is recorded for the next `status`) and its line says what was last known.
    pub fn status(&self) -> Vec<(String, String)> {
        let mut probes = Vec::new();
        for dir in &self.directories {
            for index in 0..dir.cfg.server_address.len() {
                probes.push((dir.clone(), index));
            }
        }
        let waited = block_on(async move {
            let deadline = tokio::time::Instant::now() + PROBE_WAIT;
            let handles: Vec<_> = probes
                .into_iter()
                .map(|(dir, index)| {
                    let task = tokio::spawn(dir.clone().probe(index));
                    (dir, index, task)
                })
                .collect();
            let mut lines = Vec::new();
            for (dir, index, mut task) in handles {
                let address = dir
                    .cfg
                    .server_address
                    .get(index)
                    .cloned()
                    .unwrap_or_default();
                let value = match tokio::time::timeout_at(deadline, &mut task).await {
                    Ok(Ok(_)) => dir.last_known(index),
                    Ok(Err(_)) => "unreachable: the probe failed".to_string(),
                    Err(_) => format!(
                        "no answer within {} ms (probe still running); last known: {}",
                        PROBE_WAIT.as_millis(),
                        dir.last_known(index)
                    ),
                };
                lines.push((format!("ldap {} {address}", dir.name()), value));
            }
            lines
        });
        let mut out: Vec<(String, String)> = self
            .directories
            .iter()
            .map(|d| (format!("ldap {} bind", d.name()), d.cfg.bind_mode()))
            .collect();
        for d in &self.directories {
            let idle: usize = d.binds.idle_counts().iter().sum();
            out.push((
                format!("ldap {} password checks", d.name()),
                format!(
                    "{} made; {idle} idle bind-only connections kept (at most {BIND_POOL_SIZE} per address)",
                    d.password_checks.load(Ordering::Relaxed)
                ),
            ));
        }
        match waited {
            Ok(lines) => out.extend(lines),
            Err(e) => out.push(("ldap".to_string(), format!("not probed: {e}"))),
        }
        out.push((
            "ldap cache".to_string(),
            format!(
                "{} identities, {} directory look-ups, {} stale answers served",
                self.cache.stats().entries,
                self.lookups.load(Ordering::Relaxed),
                self.cache.stats().stale
            ),
        ));
        out
    }
}

mod verify;

#[cfg(test)]
mod tests;
