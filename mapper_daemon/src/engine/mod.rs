//! From a request and the peer who sent it to a response: the one place where the pipeline
//! ([`crate::identity::resolve`]), the account data ([`crate::backends::cache`]) and the policy ([`crate::identity::policy`])
//! are put together. No I/O but the directory lookups, so tests call it directly.

pub mod nss;

use crate::backends::cache::{CachedDirectory, Freshness};
use crate::backends::ldap::{LdapBackend, LdapIdentity, PasswordCheck, SingleBind};
use crate::backends::oidc::OidcBackend;
use crate::backends::system::{self, Account, Directory};
use crate::config::{Config, MinimumUid};
use crate::identity::accounts_file::{AccountsFile, Reload};
use crate::identity::policy::{self, AccessRules, Refusal};
use crate::identity::resolve::{map_name_with, DirectoryAnswer, MapError, Mapped, MappingRules};
use crate::log;
use accountmap_wire::{
    Credential, Decision, PamRequest, Phase, Request, Response, Verdict, Verify,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Who is asking, from SO_PEERCRED: never from anything the client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

impl Peer {
    fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// A config turned into something that answers requests. A reload builds a new one; the
/// old one finishes the requests it has.
pub struct Engine {
    config: Arc<Config>,
    accounts: Option<AccountsFile>,
    directory: CachedDirectory,
    /// The `[[ldap]]` sections, `None` without any.
    ldap: Option<LdapBackend>,
    /// The `[oidc]` section, `None` without one.
    oidc: Option<OidcBackend>,
    minimum_uid: u32,
    started: Instant,
    requests: AtomicU64,
    /// Set when the accounts file in force changed (taken by [`Engine::take_accounts_changed`]):
    /// answers cached outside the engine (the NSS shared-memory cache) may be stale.
    accounts_changed: AtomicBool,
}

/// The brute-force brake ([`crate::server::brake`]) on a credential decision: a failure is counted
/// and, past the free ones, answered later; a success clears its account's count.
fn apply_brake(peer: &Peer, req: &PamRequest, mut decision: Decision) -> Decision {
    let brake = crate::server::brake::brake();
    match decision.verdict {
        Verdict::Allowed => {
            brake.succeeded(&decision.account);
            brake.succeeded(&req.user.to_lowercase());
        }
        Verdict::AuthFailed => {
            let mut keys = brake_keys(peer, req, &req.user.to_lowercase());
            if !decision.account.is_empty() && decision.account != req.user.to_lowercase() {
                keys.push(crate::server::brake::Key::Account(decision.account.clone()));
            }
            let (delay, worst) = brake.failed(&keys, Instant::now());
            if let (false, Some((key, n))) = (delay.is_zero(), worst) {
                decision.reason = format!(
                    "{} (answer delayed {} ms by the brute-force brake: {n} failures of {key} \
                     within {} min)",
                    decision.reason,
                    delay.as_millis(),
                    crate::server::brake::WINDOW.as_secs() / 60
                );
                // On this connection's own thread, a bounded number at once (see brake.rs).
                if !brake.sleep(delay) {
                    decision.reason +=
                        " (not delayed: too many delayed answers at once; the key is held instead)";
                }
            }
        }
        _ => {}
    }
    decision
}

/// What a failure counts against: the name as typed (lower-cased), and the remote host of a
/// root service or the uid of a non-root caller.
fn brake_keys(peer: &Peer, req: &PamRequest, typed: &str) -> Vec<crate::server::brake::Key> {
    let mut keys = vec![crate::server::brake::Key::Account(typed.to_string())];
    if peer.is_root() {
        // PAM_RHOST comes from the service (sshd); only a root one is believed.
        if !req.rhost.is_empty() {
            keys.push(crate::server::brake::Key::RemoteHost(req.rhost.clone()));
        }
    } else {
        keys.push(crate::server::brake::Key::PeerUid(peer.uid));
    }
    keys
}

/// What a decision was about, for the log line.
struct Subject<'a> {
    service: &'a str,
    what: &'a str,
    name: &'a str,
}

impl Engine {
    pub fn new(config: Config, directory: Arc<dyn Directory>) -> Result<Engine, String> {
        let accounts = match &config.mapping.accounts_file {
            Some(path) => Some(AccountsFile::open(path)?),
            None => None,
        };
        let minimum_uid = match config.access.minimum_uid {
            MinimumUid::Auto => system::auto_minimum_uid(std::path::Path::new(system::LOGIN_DEFS)),
            MinimumUid::Fixed(n) => n,
        };
        let directory = CachedDirectory::new(
            directory,
            config.daemon.cache_ttl,
            config.daemon.negative_cache_ttl,
        );
        let ldap = LdapBackend::new(
            &config.ldap,
            config.daemon.backend_timeout,
            config.daemon.cache_ttl,
            config.daemon.negative_cache_ttl,
            config.mapping.lowercase,
        )?;
        let oidc = OidcBackend::new(config.oidc.as_ref(), config.daemon.backend_timeout)?;
        Ok(Engine {
            config: Arc::new(config),
            accounts,
            directory,
            ldap,
            oidc,
            minimum_uid,
            started: Instant::now(),
            requests: AtomicU64::new(0),
            accounts_changed: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn minimum_uid(&self) -> u32 {
        self.minimum_uid
    }

    /// The cached account data (shared with [`crate::engine::nss`]).
    pub(crate) fn directory(&self) -> &CachedDirectory {
        &self.directory
    }

    /// Answers one request from `peer`, and logs the decision.
    pub fn handle(&self, peer: &Peer, request: &Request) -> Response {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match request {
            Request::Pam(pam) => {
                let decision = self.decide_pam(peer, pam);
                self.log_decision(
                    peer,
                    &Subject {
                        service: &pam.service,
                        what: pam.phase.as_str(),
                        name: &pam.user,
                    },
                    &decision,
                );
                Response::Decision(decision)
            }
            Request::Resolve { service, name } => {
                let decision = self.decide(peer, name, None, None);
                self.log_decision(
                    peer,
                    &Subject {
                        service,
                        what: "resolve",
                        name,
                    },
                    &decision,
                );
                Response::Decision(decision)
            }
            Request::Status => Response::Status(self.status()),
            Request::CacheFlush => {
                if !peer.is_root() {
                    log::warning(&format!(
                        "refused cache flush from uid {} pid {}: only root may flush the cache",
                        peer.uid, peer.pid
                    ));
                    return Response::Error("only root may flush the cache".into());
                }
                let n = self.directory.flush() + self.ldap.as_ref().map_or(0, LdapBackend::flush);
                log::notice(&format!(
                    "cache flushed by pid {}: {n} answers dropped",
                    peer.pid
                ));
                Response::Flushed(u32::try_from(n).unwrap_or(u32::MAX))
            }
            Request::Getpwnam { name } => self.nss_getpwnam(peer, name),
            Request::DeviceStart { service, user, .. } => self.device_start(peer, service, user),
            Request::DevicePoll {
                service,
                user,
                session,
            } => self.device_poll(peer, service, user, session),
        }
    }

    /// `verify=device`, step 1: identity and policy first (nobody is sent to the provider
    /// for an account that would be refused anyway), then a device authorization.
    fn device_start(&self, peer: &Peer, service: &str, user: &str) -> Response {
        let subject = Subject {
            service,
            what: "device-start",
            name: user,
        };
        let mut decision = self.decide(peer, user, None, None);
        if decision.verdict == Verdict::Allowed {
            let started = match &self.oidc {
                None => Err((
                    Verdict::Unavailable,
                    "verify=device, but the configuration has no [oidc] section".to_string(),
                )),
                Some(oidc) => oidc
                    .device_start(user, peer.uid)
                    .map_err(|r| (oidc_verdict(&r), r.to_string())),
            };
            match started {
                Ok(s) => {
                    log::notice(&format!(
                        "device authorization started peer=uid:{}/pid:{} service={service:?} name={user:?} account={:?} verification_uri={:?} expires_in={}s interval={}s",
                        peer.uid, peer.pid, decision.account, s.verification_uri, s.expires_in, s.interval
                    ));
                    return Response::DeviceStarted {
                        session: s.session,
                        verification_uri: s.verification_uri,
                        user_code: s.user_code,
                        expires_in: s.expires_in,
                        interval: s.interval,
                    };
                }
                Err((verdict, reason)) => {
                    decision.verdict = verdict;
                    decision.reason = reason;
                }
            }
        }
        self.log_decision(peer, &subject, &decision);
        Response::Decision(decision)
    }

    /// `verify=device`, step 2: one poll; once the provider hands out the ID token, the
    /// decision is the one `verify=oidc` makes with that token (identity, policy, the token's
    /// checks, and its email mapping to this very account).
    fn device_poll(&self, peer: &Peer, service: &str, user: &str, session: &str) -> Response {
        let subject = Subject {
            service,
            what: "auth",
            name: user,
        };
        let Some(oidc) = &self.oidc else {
            let d = refusal(
                Verdict::Unavailable,
                "verify=device, but the configuration has no [oidc] section".into(),
            );
            self.log_decision(peer, &subject, &d);
            return Response::Decision(d);
        };
        let decision = match oidc.device_poll(session, user, peer.uid) {
            Ok(crate::backends::oidc::DevicePoll::Pending(interval)) => {
                return Response::DevicePending { interval }
            }
            Ok(crate::backends::oidc::DevicePoll::IdToken(token)) => {
                let token = Credential::new(token.into_bytes());
                let mut d = self.decide(peer, user, Some(Verify::Oidc), Some(&token));
                if d.verdict == Verdict::Allowed {
                    d.reason = format!("{} (device authorization)", d.reason);
                }
                d
            }
            Err(r) => refusal(oidc_verdict(&r), r.to_string()),
        };
        self.log_decision(peer, &subject, &decision);
        Response::Decision(decision)
    }

    fn decide_pam(&self, peer: &Peer, req: &PamRequest) -> Decision {
        if req.phase == Phase::Auth
            && matches!(req.verify, Verify::Ldap | Verify::Oidc | Verify::Proxy)
        {
            let keys = brake_keys(peer, req, &req.user.to_lowercase());
            if let Some((key, left)) = crate::server::brake::brake().held(&keys, Instant::now()) {
                // A guess arriving while an earlier one of the same key is being braked:
                // refused unchecked, so that parallel guessing learns nothing.
                return refusal(
                    Verdict::AuthFailed,
                    format!(
                        "refused unchecked by the brute-force brake: {key} must wait {} ms",
                        left.as_millis()
                    ),
                );
            }
            let decision = self.decide_pam_unbraked(peer, req);
            return apply_brake(peer, req, decision);
        }
        self.decide_pam_unbraked(peer, req)
    }

    fn decide_pam_unbraked(&self, peer: &Peer, req: &PamRequest) -> Decision {
        if req.phase == Phase::Auth && req.verify != Verify::None {
            // Unusable credentials are refused before anything is looked up, so that a
            // backend never sees an empty password (an unauthenticated LDAP bind succeeds).
            match &req.credential {
                None => {
                    return refusal(
                        Verdict::BadInput,
                        "no credential was given for verify=".to_string() + req.verify.as_str(),
                    )
                }
                Some(c) if c.expose().is_empty() => {
                    return refusal(Verdict::BadInput, "empty password".into())
                }
                Some(c) if c.expose().contains(&0) => {
                    return refusal(Verdict::BadInput, "password contains a NUL byte".into())
                }
                Some(c) if c.expose().len() > accountmap_wire::MAX_CREDENTIAL_LEN => {
                    return refusal(Verdict::BadInput, "credential too long".into())
                }
                Some(_) => {}
            }
        }
        if req.phase == Phase::Auth && req.verify == Verify::Proxy {
            // Identity and policy first, then the proxy signature (crate::backends::proxy::verify).
            let decision = self.decide(peer, &req.user, None, None);
            return self.verify_proxy(req, decision);
        }
        let verify = if req.phase == Phase::Auth {
            Some(req.verify)
        } else {
            None
        };
        self.decide(peer, &req.user, verify, req.credential.as_ref())
    }

    /// The pipeline, the peer rule, the policy and (for auth) the credential, in that order.
    fn decide(
        &self,
        peer: &Peer,
        name: &str,
        verify: Option<Verify>,
        credential: Option<&Credential>,
    ) -> Decision {
        let (mapped, mut ldap_identity) = match self.map_with_ldap(name) {
            Ok(m) => m,
            Err(e) => {
                let verdict = match e {
                    MapError::InvalidAccount { .. } => Verdict::UserUnknown,
                    MapError::DirectoryUnavailable(_) => Verdict::Unavailable,
                    _ => Verdict::BadInput,
                };
                return refusal(verdict, e.to_string());
            }
        };
        let rule = mapped.rule.to_string();
        let mut account = match self.directory.account(&mapped.account) {
            Ok((Some(account), freshness)) => {
                if freshness == Freshness::Stale {
                    log::warning(&format!(
                        "the system could not look up {:?}; using the cached answer",
                        mapped.account
                    ));
                }
                account
            }
            Ok((None, _)) => {
                let mut d = refusal(
                    Verdict::UserUnknown,
                    if mapped.is_alias() {
                        format!(
                            "no such account {:?} (mapped from {:?} by {rule})",
                            mapped.account, name
                        )
                    } else {
                        format!("no such account {:?}", mapped.account)
                    },
                );
                d.rule = rule;
                return d;
            }
            Err(e) => {
                let mut d = refusal(
                    Verdict::Unavailable,
                    format!("cannot look up {:?}: {e}", mapped.account),
                );
                d.rule = rule;
                return d;
            }
        };
        // LDAP group names count towards access.required_groups like the NSS groups.
        if let Some(found) = &ldap_identity {
            merge_groups(&mut account.groups, &found.groups);
        }
        let mut decision = Decision {
            verdict: Verdict::Allowed,
            account: account.name.clone(),
            uid: Some(account.uid),
            reason: String::new(),
            rule,
            groups: account.groups.clone(),
        };
        // A local user may ask only about the account it runs as; otherwise a world-writable
        // socket would tell anyone who may sign in, and later check their passwords.
        if !peer.is_root() && peer.uid != account.uid {
            // The reply says no more about the other account than the refusal itself.
            return Decision {
                verdict: Verdict::PolicyDenied,
                reason: format!(
                    "peer uid {} (pid {}) may only ask about its own account, not {:?}",
                    peer.uid, peer.pid, account.name
                ),
                ..refusal(Verdict::PolicyDenied, String::new())
            };
        }
        // Single bind: such a directory can be read only as the user, with the password. So
        // when step 5 found no entry, verify=ldap binds before the policy is checked, and the
        // groups read with the user's bind count towards access.required_groups.
        let mut verified = false;
        if verify == Some(Verify::Ldap)
            && ldap_identity.is_none()
            && self.ldap.as_ref().is_some_and(LdapBackend::has_single_bind)
        {
            match self.verify_ldap(&mapped, None, credential) {
                Ok(Some(found)) => {
                    merge_groups(&mut account.groups, &found.groups);
                    decision.groups = account.groups.clone();
                    ldap_identity = Some(found);
                }
                Ok(None) => {}
                Err((verdict, reason)) => {
                    decision.verdict = verdict;
                    decision.reason = reason;
                    return decision;
                }
            }
            verified = true;
        }
        if let Err(refused) = self.check_policy(&mapped, &account) {
            decision.verdict = match refused {
                Refusal::AliasToPrivileged { .. } => Verdict::UserUnknown,
                _ => Verdict::PolicyDenied,
            };
            decision.reason = refused.to_string();
            return decision;
        }
        if let Some(found) = ldap_identity.as_ref().filter(|f| !f.whitelisted) {
            decision.verdict = Verdict::PolicyDenied;
            decision.reason = not_whitelisted(found);
            return decision;
        }
        if verify == Some(Verify::Ldap) {
            if verified {
                // done above (single bind)
            } else if let Err((verdict, reason)) =
                self.verify_ldap(&mapped, ldap_identity.as_ref(), credential)
            {
                decision.verdict = verdict;
                decision.reason = reason;
                return decision;
            }
        } else if verify == Some(Verify::Oidc) {
            if let Err((verdict, reason)) = self.verify_oidc(&account.name, credential) {
                decision.verdict = verdict;
                decision.reason = reason;
                return decision;
            }
        } else if let Some(v) = verify {
            if v != Verify::None {
                decision.verdict = Verdict::Unavailable;
                decision.reason = format!(
                    "verify={} is not supported by this version of accountmapd",
                    v.as_str()
                );
                return decision;
            }
        }
        decision.reason = match &mapped.display {
            Some(display) => format!("allowed (display name {display:?})"),
            None => "allowed".into(),
        };
        decision
    }

    /// `verify=ldap`: a bind as the user's entry with the password, on a fresh connection. The
    /// entry is the one step 5 found, or else the resolved account's entry looked up by the
    /// username attribute (an account mapped by the accounts file or a rewrite rule), or else,
    /// when a section uses single bind, the account's DN built in those sections: then the
    /// identity read with the user's bind is returned.
    fn verify_ldap(
        &self,
        mapped: &Mapped,
        found: Option<&LdapIdentity>,
        credential: Option<&Credential>,
    ) -> Result<Option<LdapIdentity>, (Verdict, String)> {
        let Some(ldap) = &self.ldap else {
            return Err((
                Verdict::Unavailable,
                "verify=ldap, but the configuration has no [[ldap]] section".into(),
            ));
        };
        let Some(password) = credential else {
            return Err((Verdict::BadInput, "no password for verify=ldap".into()));
        };
        let entry = match found {
            Some(f) => f.clone(),
            None => match ldap.lookup(&mapped.account) {
                Ok((Some(f), _)) => f,
                Ok((None, _)) if ldap.has_single_bind() => {
                    return match ldap.single_bind(&mapped.account, password.expose()) {
                        SingleBind::Accepted(found) => Ok(Some(found)),
                        SingleBind::Refused(why) | SingleBind::Denied(why) => Err((
                            Verdict::AuthFailed,
                            format!("single bind for {:?} refused: {why}", mapped.account),
                        )),
                        SingleBind::Unavailable(e) => Err((Verdict::Unavailable, e)),
                    };
                }
                Ok((None, _)) => {
                    return Err((
                        Verdict::AuthFailed,
                        format!("{:?} has no entry in any LDAP directory", mapped.account),
                    ))
                }
                Err(e) => return Err((Verdict::Unavailable, e)),
            },
        };
        if !entry.whitelisted {
            return Err((Verdict::PolicyDenied, not_whitelisted(&entry)));
        }
        match ldap.check_password(&entry, password.expose()) {
            PasswordCheck::Accepted => Ok(None),
            PasswordCheck::Refused(why) => Err((
                Verdict::AuthFailed,
                format!(
                    "ldap {} refused the password of {:?}: {why}",
                    entry.directory, entry.dn
                ),
            )),
            PasswordCheck::Unavailable(e) => Err((Verdict::Unavailable, e)),
        }
    }

    /// `verify=oidc`: the token is verified ([`crate::backends::oidc`]), then its email goes through the
    /// pipeline like any name and must land on `account`, the account PAM_USER resolved to: a
    /// token only ever signs in the account it maps to.
    fn verify_oidc(
        &self,
        account: &str,
        credential: Option<&Credential>,
    ) -> Result<(), (Verdict, String)> {
        let Some(oidc) = &self.oidc else {
            return Err((
                Verdict::Unavailable,
                "verify=oidc, but the configuration has no [oidc] section".into(),
            ));
        };
        let Some(token) = credential else {
            return Err((Verdict::BadInput, "no token for verify=oidc".into()));
        };
        let id = oidc
            .verify(token.expose())
            .map_err(|r| (oidc_verdict(&r), r.to_string()))?;
        let who = format!("{} of {:?} (sub {:?})", id.via, id.email, id.sub);
        match self.map(&id.email) {
            Ok(mapped) if mapped.account == account => Ok(()),
            Ok(mapped) => Err((
                Verdict::AuthFailed,
                format!(
                    "token for another account: the {who} maps to {:?} by {}, not to {account:?}",
                    mapped.account, mapped.rule
                ),
            )),
            Err(MapError::DirectoryUnavailable(e)) => Err((Verdict::Unavailable, e)),
            Err(e) => Err((
                Verdict::AuthFailed,
                format!("token for another account: the {who} maps to no account ({e})"),
            )),
        }
    }

    /// The accounts file's mapping in force, re-read if the file changed (and the change
    /// logged and noted for [`Engine::take_accounts_changed`]).
    fn accounts_in_force(&self) -> Arc<crate::identity::accounts_file::Accounts> {
        let Some(file) = &self.accounts else {
            return Default::default();
        };
        let (accounts, reload) = file.current();
        match reload {
            Reload::Unchanged => {}
            Reload::Reloaded(n) => {
                self.accounts_changed.store(true, Ordering::Release);
                log::notice(&format!(
                    "accounts file {} loaded: {n} entries",
                    file.path().display()
                ))
            }
            Reload::Missing => {
                self.accounts_changed.store(true, Ordering::Release);
                log::warning(&format!(
                    "accounts file {} does not exist; no accounts are mapped through it",
                    file.path().display()
                ))
            }
            Reload::Failed(e) => log::error(&format!(
                "accounts file not reloaded, the previous version stays in force: {e}"
            )),
        }
        accounts
    }

    /// Looks at the accounts file now (the daemon does so every second, so that an edit
    /// reaches answers cached outside the engine without waiting for a request).
    pub fn refresh_accounts(&self) {
        let _ = self.accounts_in_force();
    }

    /// Whether the accounts file changed since the last call.
    pub fn take_accounts_changed(&self) -> bool {
        self.accounts_changed.swap(false, Ordering::AcqRel)
    }

    /// Steps 1–6 of the pipeline with the accounts file in force (shared with [`crate::engine::nss`]).
    pub(crate) fn map(&self, name: &str) -> Result<Mapped, MapError> {
        self.map_with_ldap(name).map(|(mapped, _)| mapped)
    }

    /// As [`Engine::map`], with the directory entry step 5 found, if it was step 5 that answered.
    pub(crate) fn map_with_ldap(
        &self,
        name: &str,
    ) -> Result<(Mapped, Option<LdapIdentity>), MapError> {
        let accounts = self.accounts_in_force();
        let mapping = &self.config.mapping;
        let mut found: Option<LdapIdentity> = None;
        let mut step5 = |identity: &str| -> Result<Option<DirectoryAnswer>, String> {
            let Some(ldap) = &self.ldap else {
                return Ok(None);
            };
            let (entry, _freshness) = ldap.lookup(identity)?;
            Ok(entry.map(|e| {
                let answer = DirectoryAnswer {
                    account: e.account.clone(),
                    directory: e.directory.clone(),
                };
                found = Some(e);
                answer
            }))
        };
        let mapped = map_name_with(
            name,
            &MappingRules {
                lowercase: mapping.lowercase,
                display_separator: mapping.display_separator.as_deref(),
                accounts: &accounts,
                rewrite: &mapping.rewrite,
            },
            &mut step5,
        )?;
        Ok((mapped, found))
    }

    fn check_policy(&self, mapped: &Mapped, account: &Account) -> Result<(), Refusal> {
        let access = &self.config.access;
        policy::check(
            mapped,
            account,
            &AccessRules {
                minimum_uid: self.minimum_uid,
                required_groups: &access.required_groups,
                denied_users: &access.denied_users,
            },
        )
    }

    fn log_decision(&self, peer: &Peer, subject: &Subject<'_>, d: &Decision) {
        let line = format!(
            "decision peer=uid:{}/pid:{} service={:?} {} name={:?} account={:?} uid={} verdict={} rule={:?} reason={:?}",
            peer.uid,
            peer.pid,
            subject.service,
            subject.what,
            subject.name,
            d.account,
            d.uid.map_or_else(|| "-".to_string(), |u| u.to_string()),
            d.verdict.as_str(),
            d.rule,
            d.reason
        );
        match d.verdict {
            Verdict::Allowed => log::info(&line),
            Verdict::Unavailable => log::error(&line),
            _ => log::notice(&line),
        }
    }

    fn status(&self) -> Vec<(String, String)> {
        let c = &self.config;
        let stats = self.directory.stats();
        let mut out = vec![
            ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
            (
                "config".to_string(),
                c.files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("socket".to_string(), c.daemon.socket.display().to_string()),
            (
                "uptime".to_string(),
                format!("{}s", self.started.elapsed().as_secs()),
            ),
            (
                "requests".to_string(),
                self.requests.load(Ordering::Relaxed).to_string(),
            ),
            ("minimum uid".to_string(), self.minimum_uid.to_string()),
            (
                "required groups".to_string(),
                if c.access.required_groups.is_empty() {
                    "(none)".to_string()
                } else {
                    c.access.required_groups.join(", ")
                },
            ),
            (
                "rewrite rules".to_string(),
                c.mapping.rewrite.len().to_string(),
            ),
        ];
        if let Some(file) = &self.accounts {
            out.push((
                "accounts file".to_string(),
                format!(
                    "{} ({} entries)",
                    file.path().display(),
                    file.current().0.len()
                ),
            ));
        }
        out.push(("backend local-nss".to_string(), "reachable".to_string()));
        if let Some(ldap) = &self.ldap {
            out.extend(ldap.status());
        }
        if let Some(oidc) = &self.oidc {
            out.extend(oidc.status());
        }
        out.push((
            "cache".to_string(),
            format!(
                "{} entries, {} hits, {} misses, {} stale",
                stats.entries, stats.hits, stats.misses, stats.stale
            ),
        ));
        out
    }
}

fn not_whitelisted(found: &LdapIdentity) -> String {
    format!(
        "{:?} is in none of the whitelisted_login_groups of ldap {}{}",
        found.dn,
        found.directory,
        if found.single_bind {
            " (single bind: read with the user's own bind; a group the user may not read counts as one the user is not in)"
        } else {
            ""
        }
    )
}

fn merge_groups(groups: &mut Vec<String>, more: &[String]) {
    for g in more {
        if !groups.contains(g) {
            groups.push(g.clone());
        }
    }
}

fn oidc_verdict(r: &crate::backends::oidc::Refusal) -> Verdict {
    match r {
        crate::backends::oidc::Refusal::Unavailable(_) => Verdict::Unavailable,
        crate::backends::oidc::Refusal::NotAllowed(_) => Verdict::PolicyDenied,
        _ => Verdict::AuthFailed,
    }
}

fn refusal(verdict: Verdict, reason: String) -> Decision {
    Decision {
        verdict,
        account: String::new(),
        uid: None,
        reason,
        rule: String::new(),
        groups: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
