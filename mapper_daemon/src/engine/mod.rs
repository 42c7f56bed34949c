//! From a request and the peer who sent it to a response: the one place where identity
//! ([`crate::identity`]), account data and credential checks ([`crate::backends`]) are put
//! together. No I/O but what the backends do, so tests call it directly.
//!
//! - this file: the [`Engine`] a config becomes, and [`Engine::decide`], the pipeline every
//!   decision runs;
//! - [`pam`]: the PAM phases (credential sanity, the brute-force brake);
//! - [`nss`]: the NSS module's `getpwnam` of an alias;
//! - [`device`]: the OAuth device flow of `verify=device`;
//! - [`gate`]: sign-in tickets for `accountmap-gate` (`verify=ticket`).

mod device;
mod gate;
pub mod nss;
mod pam;

use crate::backends::cache::{CachedDirectory, Freshness};
use crate::backends::ldap::LdapBackend;
use crate::backends::oidc::OidcBackend;
use crate::backends::proxy::verify::ProxyVerifier;
use crate::backends::system::{self, Account, Directory};
use crate::backends::ticket::verify::TicketVerifier;
use crate::backends::{
    Backend, Claim, CredentialVerifier, DirectoryEntry, Failure, IdentitySource,
};
use crate::config::{Config, MinimumUid};
use crate::identity::accounts_file::{AccountsFile, Reload};
use crate::identity::policy::{self, AccessRules, Refusal};
use crate::identity::resolve::{map_name_with, DirectoryAnswer, MapError, Mapped, MappingRules};
use crate::log;
use crate::server::brake::{Source, Ticket};
use crate::server::guards::Guards;
use crate::server::nss_limit::{payer, Admission, Payer, USER_REQUEST_RATE};
use accountmap_wire::{Credential, Decision, Request, Response, Verdict, Verify};
use gate::TicketRequest;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A credential to check in the auth phase.
pub(crate) struct Check<'a> {
    pub method: Verify,
    pub credential: &'a Credential,
    /// Where a guessable credential came from, for the brute-force brake; `None` for one the
    /// daemon obtained itself (the device flow's token), which nobody can guess.
    pub braked_from: Option<Source>,
}

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

/// `uid:1000/pid:4711`, as the log lines name a peer.
impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "uid:{}/pid:{}", self.uid, self.pid)
    }
}

/// A config turned into something that answers requests. A reload builds a new one; the
/// old one finishes the requests it has.
pub struct Engine {
    config: Arc<Config>,
    accounts: Option<AccountsFile>,
    /// The host's accounts (NSS), cached: every decision's local account comes from here.
    directory: CachedDirectory,
    /// Step 5 of the pipeline, in order (the `[[ldap]]` sections).
    sources: Vec<Arc<dyn IdentitySource>>,
    /// One per `verify=` method the config enables.
    verifiers: Vec<Arc<dyn CredentialVerifier>>,
    /// Every backend once, for `status` and `cache flush`.
    backends: Vec<Arc<dyn Backend>>,
    /// The `[oidc]` section, for the device flow; `None` without one.
    oidc: Option<Arc<OidcBackend>>,
    /// The server's limits, which outlive this engine.
    guards: Arc<Guards>,
    minimum_uid: u32,
    requests: AtomicU64,
    /// Set when the accounts file in force changed (taken by [`Engine::take_accounts_changed`]):
    /// answers cached outside the engine (the NSS shared-memory cache) may be stale.
    accounts_changed: AtomicBool,
}

/// What a decision was about, for the log line.
struct Subject<'a> {
    service: &'a str,
    what: &'a str,
    name: &'a str,
}

/// A step of [`Engine::decide`]: its result, or the decision that ends the pipeline.
type Step<T> = Result<T, Decision>;

impl Engine {
    pub fn new(
        config: Config,
        directory: Arc<dyn Directory>,
        guards: Arc<Guards>,
    ) -> Result<Engine, String> {
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
        )?
        .map(Arc::new);
        let oidc =
            OidcBackend::new(config.oidc.as_ref(), config.daemon.backend_timeout)?.map(Arc::new);
        guards
            .brake
            .configure(config.daemon.failure_budget, config.daemon.failure_refill);
        let config = Arc::new(config);
        let proxy = ProxyVerifier::new(config.clone(), guards.replay.clone()).map(Arc::new);

        let mut sources: Vec<Arc<dyn IdentitySource>> = Vec::new();
        let mut verifiers: Vec<Arc<dyn CredentialVerifier>> = Vec::new();
        let mut backends: Vec<Arc<dyn Backend>> = Vec::new();
        if let Some(ldap) = &ldap {
            sources.push(ldap.clone());
            verifiers.push(ldap.clone());
            backends.push(ldap.clone());
        }
        if let Some(oidc) = &oidc {
            verifiers.push(oidc.clone());
            backends.push(oidc.clone());
        }
        if let Some(proxy) = proxy {
            verifiers.push(proxy.clone());
            backends.push(proxy);
        }
        if config.gate.is_some() {
            let tickets = Arc::new(TicketVerifier::new(guards.tickets.clone()));
            verifiers.push(tickets.clone());
            backends.push(tickets);
        }
        Ok(Engine {
            config,
            accounts,
            directory,
            sources,
            verifiers,
            backends,
            oidc,
            guards,
            minimum_uid,
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

    /// The limits this engine applies, which the server keeps across reloads.
    pub fn guards(&self) -> &Arc<Guards> {
        &self.guards
    }

    /// For an idle daemon: drops expired and negative cached answers and shrinks the table
    /// that held them (see [`crate::server::memory`]).
    /// Returns how many answers were dropped.
    pub fn purge_idle(&self) -> usize {
        self.directory.purge_idle()
    }

    /// The cached account data (shared with [`crate::engine::nss`]).
    pub(crate) fn directory(&self) -> &CachedDirectory {
        &self.directory
    }

    /// Answers one request from `peer`, and logs the decision.
    pub fn handle(&self, peer: &Peer, request: &Request) -> Response {
        self.requests.fetch_add(1, Ordering::Relaxed);
        // Requests about a name: a non-root peer is screened first (rate, then its own name
        // only), before anything is mapped, looked up or braked.
        let about = match request {
            Request::Pam(p) => Some((p.service.as_str(), p.phase.as_str(), p.user.as_str())),
            Request::Resolve { service, name } => {
                Some((service.as_str(), "resolve", name.as_str()))
            }
            Request::DeviceStart { service, user, .. } => {
                Some((service.as_str(), "device-start", user.as_str()))
            }
            Request::DevicePoll { service, user, .. } => {
                Some((service.as_str(), "auth", user.as_str()))
            }
            _ => None,
        };
        if let Some((service, what, name)) = about {
            if let Err(answer) = self.screen(
                peer,
                &Subject {
                    service,
                    what,
                    name,
                },
            ) {
                return answer;
            }
        }
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
                let decision = self.decide(peer, name, None);
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
                let n =
                    self.directory.flush() + self.backends.iter().map(|b| b.flush()).sum::<usize>();
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
            Request::IssueTicket {
                service,
                name,
                rhost,
                verify,
                credential,
            } => self.issue_ticket(
                peer,
                &TicketRequest {
                    service,
                    name,
                    rhost,
                    verify: *verify,
                    credential,
                },
            ),
        }
    }

    /// The pipeline: who the name is, the local account, the peer rule, a verifier's early
    /// check, the policy and whitelist, then (for auth) the credential, in that order.
    fn decide(&self, peer: &Peer, name: &str, check: Option<Check<'_>>) -> Decision {
        let mut ticket = None;
        let decision = self
            .run_pipeline(peer, name, check, &mut ticket)
            .unwrap_or_else(|refused| refused);
        if let Some(ticket) = ticket {
            self.settle_brake(ticket, &decision);
        }
        decision
    }

    /// `ticket` receives the brute-force brake's admission of the credential check, if one
    /// was made, for [`Engine::decide`] to settle with the outcome.
    fn run_pipeline(
        &self,
        peer: &Peer,
        name: &str,
        check: Option<Check<'_>>,
        ticket: &mut Option<Ticket>,
    ) -> Step<Decision> {
        let (mapped, mut entry) = self.identify(name)?;
        let mut account = self.local_account(&mapped, name)?;
        // Directory group names count towards access.required_groups like the NSS groups.
        if let Some(found) = &entry {
            merge_groups(&mut account.groups, &found.groups);
        }
        let mut decision = Decision {
            verdict: Verdict::Allowed,
            account: account.name.clone(),
            uid: Some(account.uid),
            reason: String::new(),
            rule: mapped.rule.to_string(),
            groups: account.groups.clone(),
        };
        self.peer_may_ask(peer, &account)?;
        // A missing verifier is reported after the policy, like any other credential failure.
        let verifier = check.map(|c| (self.verifier(c.method), c.credential, c.braked_from));
        let map = |n: &str| self.map(n);
        let mut note = None;
        let mut verified = false;
        if let Some((Ok(verifier), credential, source)) = &verifier {
            // Before the first look at the credential (a single bind checks it here already).
            *ticket = self.admit_check(&decision, &account, source.as_ref())?;
            let early = verifier.verify_before_policy(&Claim {
                typed: name,
                mapped: &mapped,
                account: &account,
                entry: entry.as_ref(),
                credential,
                map: &map,
            });
            if let Some(early) = early {
                let passed = early.map_err(|f| fail(&decision, f))?;
                if let Some(found) = passed.entry {
                    merge_groups(&mut account.groups, &found.groups);
                    decision.groups = account.groups.clone();
                    entry = Some(found);
                }
                note = passed.note;
                verified = true;
            }
        }
        if let Err(refused) = self.check_policy(&mapped, &account) {
            let verdict = match refused {
                Refusal::AliasToPrivileged { .. } => Verdict::UserUnknown,
                _ => Verdict::PolicyDenied,
            };
            return Err(fail(&decision, Failure::new(verdict, refused.to_string())));
        }
        if let Some(found) = entry.as_ref().filter(|f| !f.whitelisted) {
            return Err(fail(
                &decision,
                Failure::new(Verdict::PolicyDenied, found.not_whitelisted()),
            ));
        }
        // Disabled, locked, expired or "must change password" in the directory: refused in
        // both phases and before any credential check, as SSSD does, so that a sign-in that
        // never binds as the user (a key, a token, a proxy signature) is refused too.
        if let Some(found) = &entry {
            if let Some((verdict, why)) = found.state.refusal(std::time::SystemTime::now()) {
                let reason = format!("ldap {} says of {:?}: {why}", found.directory, found.dn);
                return Err(fail(&decision, Failure::new(verdict, reason)));
            }
        }
        if let (Some((verifier, credential, _)), false) = (verifier, verified) {
            let passed = verifier
                .and_then(|v| {
                    v.verify(&Claim {
                        typed: name,
                        mapped: &mapped,
                        account: &account,
                        entry: entry.as_ref(),
                        credential,
                        map: &map,
                    })
                })
                .map_err(|f| fail(&decision, f))?;
            note = passed.note;
        }
        let allowed = match &mapped.display {
            Some(display) => format!("allowed (display name {display:?})"),
            None => "allowed".into(),
        };
        decision.reason = match note {
            Some(note) => format!("{allowed} {note}"),
            None => allowed,
        };
        Ok(decision)
    }

    /// Steps 1–6: the name mapped to an account, with the entry an identity source found.
    fn identify(&self, name: &str) -> Step<(Mapped, Option<DirectoryEntry>)> {
        self.map_with_sources(name).map_err(|e| {
            let verdict = match e {
                MapError::InvalidAccount { .. } => Verdict::UserUnknown,
                MapError::DirectoryUnavailable(_) => Verdict::Unavailable,
                _ => Verdict::BadInput,
            };
            refusal(verdict, e.to_string())
        })
    }

    /// The mapped account as the host knows it (a stale cached answer during an outage).
    fn local_account(&self, mapped: &Mapped, name: &str) -> Step<Account> {
        let rule = mapped.rule.to_string();
        let refused = |verdict, reason| Decision {
            rule: rule.clone(),
            ..refusal(verdict, reason)
        };
        match self.directory.account(&mapped.account) {
            Ok((Some(account), freshness)) => {
                if freshness == Freshness::Stale {
                    log::warning(&format!(
                        "the system could not look up {:?}; using the cached answer",
                        mapped.account
                    ));
                }
                Ok(account)
            }
            Ok((None, _)) => Err(refused(
                Verdict::UserUnknown,
                if mapped.is_alias() {
                    format!(
                        "no such account {:?} (mapped from {:?} by {rule})",
                        mapped.account, name
                    )
                } else {
                    format!("no such account {:?}", mapped.account)
                },
            )),
            Err(e) => Err(refused(
                Verdict::Unavailable,
                format!("cannot look up {:?}: {e}", mapped.account),
            )),
        }
    }

    /// A local user may ask only about the account it runs as; otherwise a world-writable
    /// socket would tell anyone who may sign in, and later check their passwords. Most such
    /// requests are refused by [`Engine::screen`] before mapping; this catches the peer's own
    /// name mapped to another account (an accounts-file line `alice = bob`), with the same
    /// uniform answer.
    fn peer_may_ask(&self, peer: &Peer, account: &Account) -> Step<()> {
        if peer.is_root() || peer.uid == account.uid {
            return Ok(());
        }
        tracing::info!(
            peer = %peer,
            account = account.name.as_str(),
            "its own name maps to another account; refused with the uniform answer"
        );
        Err(not_your_name())
    }

    /// The screen in front of every request about a name from a non-root peer: its real uid's
    /// request budget ([`crate::server::nss_limit::USER_REQUEST_RATE`]), then the rule that it
    /// may ask only about its own login name. Any other name gets [`NOT_YOUR_NAME`], the same
    /// answer whatever the name (unknown, another user, an alias of root, a rewritten name):
    /// nothing is mapped or looked up for it, so the answer and its timing say nothing about
    /// it. The detail goes to the daemon's log only. `Err` is the answer to send.
    fn screen(&self, peer: &Peer, subject: &Subject<'_>) -> Result<(), Response> {
        if peer.is_root() {
            return Ok(());
        }
        let payer = match payer(peer.pid, peer.uid) {
            Payer::Uid(uid) => uid,
            Payer::Gone => return Err(Response::Error(nss::PEER_GONE.into())),
        };
        if let Admission::Refused { warn } = self.guards.user_requests.admit(payer, Instant::now())
        {
            if warn {
                log::warning(&format!(
                    "real uid {payer} exceeds {USER_REQUEST_RATE} requests per second (latest: {peer}); refusing the excess (logged once a second)"
                ));
            }
            return Err(Response::Error(nss::RATE_LIMITED.into()));
        }
        let own = match self.directory.name_of_uid(peer.uid) {
            Ok(own) => own,
            Err(e) => {
                let d = refusal(
                    Verdict::Unavailable,
                    format!("cannot look up the caller's own account: {e}"),
                );
                self.log_decision(peer, subject, &d);
                return Err(Response::Decision(d));
            }
        };
        if own
            .as_deref()
            .is_some_and(|own| self.same_name(subject.name, own))
        {
            return Ok(());
        }
        let detail = Decision {
            reason: format!(
                "{NOT_YOUR_NAME} (peer uid {} is {}; nothing was looked up)",
                peer.uid,
                own.map_or_else(|| "no account".to_string(), |n| format!("{n:?}"))
            ),
            ..not_your_name()
        };
        self.log_decision(peer, subject, &detail);
        Err(Response::Decision(not_your_name()))
    }

    /// Whether `typed` names the login `own` as the pipeline would read it: the display name
    /// after the separator dropped, lower-cased when `mapping.lowercase` is on.
    fn same_name(&self, typed: &str, own: &str) -> bool {
        let mapping = &self.config.mapping;
        let typed = match mapping.display_separator.as_deref() {
            Some(sep) if !sep.is_empty() => typed.split_once(sep).map_or(typed, |(t, _)| t),
            _ => typed,
        };
        if mapping.lowercase {
            typed.to_lowercase() == own.to_lowercase()
        } else {
            typed == own
        }
    }

    /// The verifier of `method`, or why there is none.
    fn verifier(&self, method: Verify) -> Result<&dyn CredentialVerifier, Failure> {
        if let Some(v) = self.verifiers.iter().find(|v| v.method() == method) {
            return Ok(v.as_ref());
        }
        let reason = match method {
            Verify::Ldap => "verify=ldap, but the configuration has no [[ldap]] section".into(),
            Verify::Oidc => "verify=oidc, but the configuration has no [oidc] section".into(),
            Verify::Proxy => {
                crate::backends::proxy::verify::ProxyRefusal::NotConfigured.to_string()
            }
            Verify::Ticket => {
                "verify=ticket, but the configuration has no [gate] section (nobody mints tickets)"
                    .into()
            }
            other => format!(
                "verify={} is not supported by this version of accountmapd",
                other.as_str()
            ),
        };
        Err(Failure::new(Verdict::Unavailable, reason))
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
        self.map_with_sources(name).map(|(mapped, _)| mapped)
    }

    /// As [`Engine::map`], with the entry an identity source found, if it was step 5 that
    /// answered.
    fn map_with_sources(&self, name: &str) -> Result<(Mapped, Option<DirectoryEntry>), MapError> {
        let accounts = self.accounts_in_force();
        let mapping = &self.config.mapping;
        let mut found: Option<DirectoryEntry> = None;
        let mut step5 = |identity: &str| -> Result<Option<DirectoryAnswer>, String> {
            for source in &self.sources {
                if let Some(e) = source.find(identity)? {
                    let answer = DirectoryAnswer {
                        account: e.account.clone(),
                        directory: e.directory.clone(),
                    };
                    found = Some(e);
                    return Ok(Some(answer));
                }
            }
            Ok(None)
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

    /// The refusals by name, which NSS applies too ([`policy::alias_answerable`]).
    pub(crate) fn nss_policy(&self, mapped: &Mapped, account: &Account) -> Result<(), Refusal> {
        policy::alias_answerable(mapped, account, &self.access_rules())
    }

    fn check_policy(&self, mapped: &Mapped, account: &Account) -> Result<(), Refusal> {
        policy::check(mapped, account, &self.access_rules())
    }

    fn access_rules(&self) -> AccessRules<'_> {
        let access = &self.config.access;
        AccessRules {
            minimum_uid: self.minimum_uid,
            required_groups: &access.required_groups,
            denied_users: &access.denied_users,
        }
    }

    /// The decision line administrators grep (README, "Troubleshooting"): `decision`, then
    /// `peer`, `service`, `phase`, `name`, `account`, `uid`, `verdict`, `rule` and `reason`.
    /// Allowed at info, unavailable at error, every other refusal at notice.
    fn log_decision(&self, peer: &Peer, subject: &Subject<'_>, d: &Decision) {
        let mut reason = std::borrow::Cow::Borrowed(d.reason.as_str());
        if d.verdict == Verdict::AuthFailed && d.reason.starts_with(crate::server::brake::HELD) {
            match self.guards.brake.log_unchecked(Instant::now()) {
                None => return,
                Some(0) => {}
                Some(n) => {
                    reason = format!(
                        "{} ({n} more refused unchecked since the last such line)",
                        d.reason
                    )
                    .into()
                }
            }
        }
        let uid = d.uid.map_or_else(|| "-".to_string(), |u| u.to_string());
        macro_rules! decision {
            ($level:ident) => {
                tracing::$level!(
                    peer = %peer,
                    service = subject.service,
                    phase = %subject.what,
                    name = subject.name,
                    account = d.account.as_str(),
                    uid = %uid,
                    verdict = %d.verdict.as_str(),
                    rule = d.rule.as_str(),
                    reason = reason.as_ref(),
                    "decision"
                )
            };
        }
        match d.verdict {
            Verdict::Allowed => decision!(debug),
            Verdict::Unavailable => decision!(error),
            _ => decision!(info),
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
        ];
        // From the server's guards, which outlive this engine: a reload does not restart them.
        out.extend(self.guards.uptime_status(Instant::now()));
        out.extend([
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
        ]);
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
        for backend in &self.backends {
            out.extend(backend.status());
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

fn merge_groups(groups: &mut Vec<String>, more: &[String]) {
    for g in more {
        if !groups.contains(g) {
            groups.push(g.clone());
        }
    }
}

/// `decision` (account, uid, rule and groups kept for the log line) refused by `failure`.
fn fail(decision: &Decision, failure: Failure) -> Decision {
    Decision {
        verdict: failure.verdict,
        reason: failure.reason,
        ..decision.clone()
    }
}

/// The answer a non-root peer gets about any name other than its own ([`Engine::screen`]).
pub const NOT_YOUR_NAME: &str =
    "refused: an unprivileged caller may ask only about its own account";

/// [`NOT_YOUR_NAME`] as a decision: no account, uid, rule or group.
fn not_your_name() -> Decision {
    refusal(Verdict::PolicyDenied, NOT_YOUR_NAME.to_string())
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
