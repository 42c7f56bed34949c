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
//! [`BindPool`] for why reusing them is as safe as a new connection). A look-up sends its
//! group and whitelist searches at once.
//!
//! Single bind (a section with neither `bind_dn` nor `anonymous_bind`): there is no account to
//! search with, so such a section is never asked by step 5 (nor, through it, by NSS, the
//! account phase and `resolve`). At a `verify=ldap` sign-in that no searchable section
//! answered, the user is bound as `<username_attribute>=<account>,<user_search_base_dn>` (the
//! account DN-escaped) on a fresh connection, and with that same bind the user's own entry,
//! groups and whitelisted groups are read ([`LdapBackend::single_bind`]). Identity answers (never passwords) are cached for
//! `cache_ttl` / `negative_cache_ttl`, served stale while every server is down, and identical
//! look-ups in flight at the same moment share one directory round trip.

use crate::backends::cache::{Freshness, TtlCache};
use crate::config::{LdapConfig, MemberAttribute};
use crate::log;
use ldap3::{
    dn_escape, ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry,
    StdStream,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::collections::HashMap;
use std::future::Future;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{OnceCell, Semaphore};

/// Service connections kept per `[[ldap]]` section, and service operations run at once.
pub const POOL_SIZE: usize = 4;
/// Idle bind-only connections (password checks, see [`BindPool`]) kept per server address.
pub const BIND_POOL_SIZE: usize = 8;
/// An idle bind-only connection unused for this long is closed.
pub const BIND_IDLE: Duration = Duration::from_secs(30);
/// How long `status` waits for its reachability probes (the CLI and the test harness ask with
/// a timeout of their own, and a server that swallows packets must not make the daemon look
/// dead).
pub const PROBE_WAIT: Duration = Duration::from_millis(500);
/// Group entries read per user; a directory answering more is cut off (and logged).
const MAX_GROUPS: usize = 1024;
/// CA bundles and client certificates are small; the bound only makes a wrong path harmless.
const MAX_PEM_FILE: u64 = 4 << 20;
/// Where Debian and its derivatives keep the system CA bundle, used when a section names no
/// `tls_ca_certificate`.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// LDAP result codes the backend tells apart (RFC 4511, appendix A).
const RC_SUCCESS: u32 = 0;
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
const RC_NO_SUCH_OBJECT: u32 = 32;
const RC_INVALID_CREDENTIALS: u32 = 49;
const RC_BUSY: u32 = 51;
const RC_UNAVAILABLE: u32 = 52;

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

/// Where a search runs: on the pooled service connections, or on a connection bound as the
/// user (single bind).
enum Via<'a> {
    Pool,
    User(&'a mut Ldap),
}

impl Via<'_> {
    fn is_user(&self) -> bool {
        matches!(self, Via::User(_))
    }
}

/// Why a user bind did not succeed.
enum BindFailure {
    /// A server answered no.
    Refused(String),
    /// No server answered.
    Unavailable(String),
}

/// What one bind on one connection came to.
enum BindAnswer {
    /// The server answered with this result code (success, or a refusal).
    Answered { rc: u32, text: String },
    /// The connection failed, or the server said it is busy or unavailable.
    Broken(String),
    /// No answer within the operation timeout.
    Timeout(String),
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

/// Why an operation did not complete: the server answered with a result code, or it could
/// not be asked at all (connection, TLS, timeout).
#[derive(Clone, Debug)]
enum OpError {
    Result { rc: u32, text: String },
    Transport(String),
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Result { rc, text } if text.is_empty() => write!(f, "result code {rc}"),
            OpError::Result { rc, text } => write!(f, "result code {rc} ({text})"),
            OpError::Transport(e) => f.write_str(e),
        }
    }
}

fn op_error(e: LdapError) -> OpError {
    match e {
        LdapError::LdapResult { result } => OpError::Result {
            rc: result.rc,
            text: one_line(&result.text),
        },
        other => OpError::Transport(one_line(&other.to_string())),
    }
}

/// Server messages end up in log lines: keep each on one line and bounded.
fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    out.truncate(out.trim_end().len());
    out
}

/// Drives `fut` to completion from synchronous code that has entered the daemon's
/// multi-threaded runtime: a connection thread (where `block_in_place` does nothing), a
/// blocking task, or a runtime worker (which `block_in_place` hands over to another thread
/// first). Anything else (no runtime, a current-thread runtime) is an error, not a panic.
/// Shared with the OIDC backend.
pub(crate) fn block_on<F: Future>(fut: F) -> Result<F::Output, String> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
        "the LDAP and OIDC backends run only inside accountmapd's runtime".to_string()
    })?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return Err("the LDAP and OIDC backends need a multi-threaded runtime".into());
    }
    Ok(tokio::task::block_in_place(|| handle.block_on(fut)))
}

/// Reachability of one server address, as last seen.
#[derive(Clone, Debug, Default)]
struct ServerState {
    /// `None` until the address has been tried.
    reachable: Option<bool>,
    last_error: Option<String>,
}

/// An idle bind-only connection and when it was last returned.
struct IdleBind {
    ldap: Ldap,
    since: Instant,
}

/// Connections that only ever carry password binds (`verify=ldap`), kept per server address
/// so that a password check need not open a new connection (TCP, and StartTLS or TLS
/// handshake) every time.
///
/// Why a reused bind-only connection is as safe as a fresh one:
/// - A bind replaces the connection's authentication state whatever it was (RFC 4511
///   §4.2.1: a new bind abandons the old identity; a failed one leaves the connection
///   anonymous). The server decides a bind by the DN and password it carries alone, exactly
///   as on a new connection; what an earlier bind left behind does not enter into it.
/// - Nothing but binds is ever sent on these connections: no search, no other operation, so
///   the identity the last bind left on a connection is never used for anything. Searches
///   run on the service connections ([`Directory::search`]), bound as the service account,
///   or, for single bind, on a new connection bound as the user and closed afterwards.
/// - Only a connection whose last bind was answered with success or invalidCredentials goes
///   back to the pool; any other answer, a transport error or a timeout (which leaves the
///   connection in an unknown state) closes it.
/// - The connections are opened exactly as fresh ones are ([`Directory::open`]: same address,
///   same TLS or StartTLS with the same certificate checks), so they are as private.
///
/// At most [`BIND_POOL_SIZE`] idle connections are kept per address (more may be open at once
/// while that many password checks run); one idle for [`BIND_IDLE`] is closed.
struct BindPool {
    /// Per address (index into `server_address`), newest last.
    idle: Mutex<Vec<Vec<IdleBind>>>,
    /// A sweeper task closing expired idle connections is running.
    sweeping: AtomicBool,
}

impl BindPool {
    fn new(addresses: usize) -> BindPool {
        BindPool {
            idle: Mutex::new((0..addresses).map(|_| Vec::new()).collect()),
            sweeping: AtomicBool::new(false),
        }
    }

    /// The most recently returned idle connection to address `index` that is still open and
    /// not expired; the closed and expired ones met on the way are dropped.
    fn take(&self, index: usize) -> Option<Ldap> {
        let mut dropped = Vec::new();
        let found = {
            let mut idle = lock(&self.idle);
            let list = idle.get_mut(index)?;
            loop {
                let Some(mut c) = list.pop() else { break None };
                if c.since.elapsed() < BIND_IDLE && !c.ldap.is_closed() {
                    break Some(c.ldap);
                }
                dropped.push(c);
            }
        };
        // Dropping the last handle of a connection ends its driver task, which closes it.
        drop(dropped);
        found
    }

    /// Returns a healthy connection to address `index`; beyond [`BIND_POOL_SIZE`] idle ones
    /// it is closed instead. Starts the sweeper when none runs.
    fn put(self: &Arc<Self>, index: usize, ldap: Ldap) {
        let surplus = {
            let mut idle = lock(&self.idle);
            match idle.get_mut(index) {
                Some(list) if list.len() < BIND_POOL_SIZE => {
                    list.push(IdleBind {
                        ldap,
                        since: Instant::now(),
                    });
                    None
                }
                _ => Some(ldap),
            }
        };
        drop(surplus);
        if !self.sweeping.swap(true, Ordering::SeqCst) {
            let weak = Arc::downgrade(self);
            if tokio::runtime::Handle::try_current().is_ok() {
                tokio::spawn(BindPool::sweeper(weak));
            } else {
                self.sweeping.store(false, Ordering::SeqCst);
            }
        }
    }

    /// Closes idle connections that expired or were closed by the server, every half
    /// [`BIND_IDLE`], until the pool is empty or gone (a reloaded config drops it).
    async fn sweeper(pool: Weak<BindPool>) {
        loop {
            tokio::time::sleep(BIND_IDLE / 2).await;
            let Some(pool) = pool.upgrade() else { return };
            if pool.sweep() {
                return;
            }
        }
    }

    /// Closes the idle connections that expired or were closed by the server. Returns true
    /// when none is left, and then marks the sweeper as stopped.
    fn sweep(&self) -> bool {
        let mut dropped = Vec::new();
        let empty = {
            let mut idle = lock(&self.idle);
            for list in idle.iter_mut() {
                let mut keep = Vec::with_capacity(list.len());
                for mut c in list.drain(..) {
                    if c.since.elapsed() < BIND_IDLE && !c.ldap.is_closed() {
                        keep.push(c);
                    } else {
                        dropped.push(c);
                    }
                }
                *list = keep;
            }
            let empty = idle.iter().all(Vec::is_empty);
            if empty {
                // Under the lock, so that a `put` after this starts a new sweeper.
                self.sweeping.store(false, Ordering::SeqCst);
            }
            empty
        };
        drop(dropped);
        empty
    }

    #[cfg(test)]
    fn idle_counts(&self) -> Vec<usize> {
        lock(&self.idle).iter().map(Vec::len).collect()
    }

    /// Makes every idle connection look `age` old.
    #[cfg(test)]
    fn age(&self, age: Duration) {
        for list in lock(&self.idle).iter_mut() {
            for c in list.iter_mut() {
                c.since = Instant::now() - age;
            }
        }
    }
}

/// One `[[ldap]]` section.
struct Directory {
    cfg: LdapConfig,
    timeout: Duration,
    lowercase: bool,
    /// `None` for plain LDAP.
    tls: Option<Arc<ClientConfig>>,
    /// Idle service connections, already bound.
    idle: Mutex<Vec<Ldap>>,
    /// At most [`POOL_SIZE`] service operations (and so connections) at once.
    slots: Semaphore,
    servers: Mutex<Vec<ServerState>>,
    /// Bind-only connections for password checks, per address.
    binds: Arc<BindPool>,
    /// Password checks made (each one bind the server answered or not), for `status`.
    password_checks: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single push, pop, insert or assignment, so a
    // poisoned lock holds consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Directory {
    fn new(cfg: &LdapConfig, timeout: Duration, lowercase: bool) -> Result<Directory, String> {
        let tls = if cfg.tls || cfg.start_tls {
            Some(tls_config(cfg).map_err(|e| format!("ldap {:?}: {e}", cfg.name))?)
        } else {
            None
        };
        Ok(Directory {
            cfg: cfg.clone(),
            timeout,
            lowercase,
            tls,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(POOL_SIZE),
            servers: Mutex::new(vec![ServerState::default(); cfg.server_address.len()]),
            binds: Arc::new(BindPool::new(cfg.server_address.len())),
            password_checks: AtomicU64::new(0),
        })
    }

    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn record(&self, index: usize, result: Result<(), &str>) {
        if let Some(s) = lock(&self.servers).get_mut(index) {
            match result {
                Ok(()) => s.reachable = Some(true),
                Err(e) => {
                    s.reachable = Some(false);
                    s.last_error = Some(e.to_string());
                }
            }
        }
    }

    /// A new connection to address `index`, TLS set up as configured, not bound.
    async fn open(&self, index: usize) -> Result<Ldap, String> {
        let Some(address) = self.cfg.server_address.get(index) else {
            return Err("no such server address".into());
        };
        let url = if self.cfg.tls {
            format!("ldaps://{address}")
        } else {
            format!("ldap://{address}")
        };
        // The TCP connection is made here rather than by ldap3, to set TCP_NODELAY: LDAP and
        // the StartTLS/TLS handshakes are small request-reply messages, and without it Nagle's
        // algorithm meeting the server's delayed ACK adds about 40 ms to every new connection
        // (measured: 44 ms per StartTLS connect + bind before, see make bench-ldap).
        let tcp = tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(address))
            .await
            .map_err(|_| format!("no TCP connection within {}s", self.timeout.as_secs()))?
            .map_err(|e| one_line(&e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let tcp = tcp.into_std().map_err(|e| one_line(&e.to_string()))?;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_starttls(self.cfg.start_tls)
            .set_std_stream(StdStream::Tcp(tcp));
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        // ldap3's own connect timeout covers TCP, StartTLS and the handshake; the outer one is a
        // second fence in case a future version stops doing so.
        let (conn, ldap) = tokio::time::timeout(
            self.timeout + Duration::from_millis(100),
            LdapConnAsync::with_settings(settings, &url),
        )
        .await
        .map_err(|_| format!("no connection within {}s", self.timeout.as_secs()))?
        .map_err(|e| match e {
            LdapError::Timeout { .. } => format!(
                "no StartTLS or TLS handshake within {}s",
                self.timeout.as_secs()
            ),
            e => one_line(&e.to_string()),
        })?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// Binds `ldap` as the service account (or not at all for anonymous access).
    async fn service_bind(&self, ldap: &mut Ldap) -> Result<(), OpError> {
        let (Some(dn), Some(pw)) = (&self.cfg.bind_dn, &self.cfg.bind_password) else {
            return Ok(());
        };
        let pw = std::str::from_utf8(pw.expose())
            .map_err(|_| OpError::Transport("bind_password_file is not UTF-8".into()))?;
        match tokio::time::timeout(self.timeout, ldap.simple_bind(dn, pw)).await {
            Err(_) => Err(OpError::Transport(format!(
                "service bind not answered within {}s",
                self.timeout.as_secs()
            ))),
            Ok(Err(e)) => Err(op_error(e)),
            Ok(Ok(r)) if r.rc == RC_SUCCESS => Ok(()),
            Ok(Ok(r)) => Err(OpError::Result {
                rc: r.rc,
                text: format!("service bind as {dn:?} refused: {}", one_line(&r.text)),
            }),
        }
    }

    /// A bound service connection: addresses in order, the first that connects and accepts the
    /// service bind wins. Every failure is recorded for `status`.
    async fn open_service(&self) -> Result<Ldap, String> {
        let mut errors = Vec::new();
        for (index, address) in self.cfg.server_address.iter().enumerate() {
            let attempt = async {
                let mut ldap = self.open(index).await?;
                self.service_bind(&mut ldap)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(ldap)
            };
            match attempt.await {
                Ok(ldap) => {
                    self.record(index, Ok(()));
                    return Ok(ldap);
                }
                Err(e) => {
                    log::warning(&format!("ldap {:?} {address}: {e}", self.name()));
                    self.record(index, Err(&e));
                    errors.push(format!("{address}: {e}"));
                }
            }
        }
        Err(format!("no server answered ({})", errors.join("; ")))
    }

    /// One search on a service connection from the pool. A pooled connection that turns out
    /// to be dead (the server restarted) is dropped and the search retried once on a new one.
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, OpError> {
        let _slot = tokio::time::timeout(self.timeout, self.slots.acquire())
            .await
            .map_err(|_| {
                OpError::Transport(format!(
                    "all {POOL_SIZE} service connections stayed busy for {}s",
                    self.timeout.as_secs()
                ))
            })?
            .map_err(|_| OpError::Transport("connection pool closed".into()))?;
        let pooled = lock(&self.idle).pop();
        let mut tries = match pooled {
            Some(ldap) => vec![Some(ldap), None],
            None => vec![None],
        };
        let mut last = OpError::Transport("no attempt made".into());
        for slot in tries.iter_mut() {
            let reusable = slot.take().and_then(|mut l| (!l.is_closed()).then_some(l));
            let mut ldap = match reusable {
                Some(l) => l,
                // Boxed: a connection set-up is a large future, and the request threads have
                // small stacks.
                None => Box::pin(self.open_service())
                    .await
                    .map_err(OpError::Transport)?,
            };
            let outcome = self.search_on(&mut ldap, base, scope, filter, attrs).await;
            match outcome {
                Err(OpError::Transport(e)) => {
                    // The connection is unusable (or in an unknown state after a timeout):
                    // drop it rather than return it to the pool.
                    last = OpError::Transport(e);
                }
                done => {
                    lock(&self.idle).push(ldap);
                    return done;
                }
            }
        }
        Err(last)
    }

    async fn search_via(
        &self,
        via: &mut Via<'_>,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, OpError> {
        match via {
            Via::Pool => self.search(base, scope, filter, attrs).await,
            Via::User(ldap) => self.search_on(ldap, base, scope, filter, attrs).await,
        }
    }

    async fn search_on(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, OpError> {
        let result = tokio::time::timeout(self.timeout, ldap.search(base, scope, filter, attrs))
            .await
            .map_err(|_| {
                OpError::Transport(format!(
                    "search not answered within {}s",
                    self.timeout.as_secs()
                ))
            })?
            .map_err(op_error)?;
        let (entries, res) = (result.0, result.1);
        if res.rc != RC_SUCCESS {
            return Err(OpError::Result {
                rc: res.rc,
                text: one_line(&res.text),
            });
        }
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries.into_iter().take(MAX_GROUPS + 1) {
            // SearchEntry::construct panics on BER it cannot parse: a broken or hostile server
            // must cost this answer, not the daemon's request thread.
            let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                SearchEntry::construct(entry)
            }));
            match parsed {
                Ok(e) => out.push(e),
                Err(_) => {
                    return Err(OpError::Transport(
                        "the server sent an entry that cannot be parsed".into(),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// Step 5 in this directory: the entry for `identity` (by email attribute when it contains
    /// `@`), `Ok(None)` when there is none.
    async fn find(&self, identity: &str) -> Result<Option<LdapIdentity>, String> {
        let cfg = &self.cfg;
        if cfg.single_bind() {
            // Nothing to search with: only a sign-in with a password reads this directory.
            return Ok(None);
        }
        let attribute = if identity.contains('@') {
            &cfg.user_email_attribute
        } else {
            &cfg.username_attribute
        };
        // Attribute and class names were checked at config load (letters, digits, '-', ';');
        // the identity is the only outside text in the filter, so it is escaped.
        let filter = format!(
            "(&(objectClass={})({}={}))",
            cfg.user_object_class,
            attribute,
            ldap_escape(identity)
        );
        let user_search = async {
            self.search(
                &cfg.user_search_base_dn,
                Scope::Subtree,
                &filter,
                &[cfg.username_attribute.as_str()],
            )
            .await
            .or_else(|e| match e {
                OpError::Result {
                    rc: RC_NO_SUCH_OBJECT,
                    ..
                } => Ok(Vec::new()),
                e => Err(e),
            })
            .map_err(|e| format!("user search {filter:?}: {e}"))
        };
        // Members listed by name (group_member_attribute = "memberUid"): the groups of a
        // username do not depend on its entry, so the group and whitelist searches go out with
        // the user search and a cold look-up costs one round trip instead of two. Their answer
        // is used only when the entry's name is the name searched for (memberUid matches
        // exactly); otherwise they are sent again with the entry's name, as without the key.
        let early = (cfg.group_member_attribute == Some(MemberAttribute::MemberUid)
            && !identity.contains('@'))
        .then_some(identity);
        let (entries, early) = match early {
            Some(name) => {
                let (entries, memberships) =
                    tokio::join!(Box::pin(user_search), Box::pin(self.memberships("", name)));
                (entries?, Some((name, memberships)))
            }
            None => (user_search.await?, None),
        };
        let entry = match entries.as_slice() {
            [] => return Ok(None),
            [one] => one,
            _ => {
                log::warning(&format!(
                    "ldap {:?}: {} entries match {filter:?} under {:?}; an identity must match exactly one, so none is used",
                    self.name(),
                    entries.len(),
                    cfg.user_search_base_dn
                ));
                return Ok(None);
            }
        };
        // A multi-valued username attribute (uid: jdoe, uid: john.doe) must not map by the
        // server's arbitrary value order: the value searched for wins, then the one naming the
        // entry in its DN (uid=jdoe,…), then the first.
        let names = values(entry, &cfg.username_attribute);
        let searched = (!identity.contains('@'))
            .then(|| names.iter().find(|v| v.eq_ignore_ascii_case(identity)))
            .flatten();
        let in_dn = rdn_value(&entry.dn, &cfg.username_attribute)
            .and_then(|r| names.iter().find(|v| v.eq_ignore_ascii_case(r)));
        let Some(raw_name) = searched.or(in_dn).or_else(|| names.first()) else {
            log::warning(&format!(
                "ldap {:?}: entry {:?} has no {} attribute (or it is not readable); it is not used",
                self.name(),
                entry.dn,
                cfg.username_attribute
            ));
            return Ok(None);
        };
        if entry.dn.is_empty() {
            // An empty DN would make the password check an anonymous bind.
            return Ok(None);
        }
        let account = if self.lowercase {
            raw_name.to_lowercase()
        } else {
            raw_name.clone()
        };
        let (groups, whitelisted) = match early {
            Some((name, memberships)) if name == raw_name.as_str() => memberships,
            _ => self.memberships(&entry.dn, raw_name).await,
        };
        let (groups, whitelisted) = (groups?, whitelisted?);
        Ok(Some(LdapIdentity {
            directory: self.name().to_string(),
            dn: entry.dn.clone(),
            account,
            groups,
            whitelisted,
            single_bind: false,
        }))
    }

    /// A filter matching groups that list the user by DN (`member`, `uniqueMember`) or by
    /// name (`memberUid`, posixGroup). Both values are escaped.
    /// The groups of the entry `dn` named `uid`, and whether it is in a whitelisted login
    /// group. They do not depend on each other: both searches are sent at once, each on a
    /// service connection of its own. `dn` may be empty when members are listed by name only.
    async fn memberships(
        &self,
        dn: &str,
        uid: &str,
    ) -> (Result<Vec<String>, String>, Result<bool, String>) {
        let (mut for_groups, mut for_whitelist) = (Via::Pool, Via::Pool);
        tokio::join!(
            Box::pin(self.groups(&mut for_groups, dn, uid)),
            Box::pin(self.whitelisted(&mut for_whitelist, dn, uid))
        )
    }

    /// Matches a group listing the entry `dn` (named `uid`) as a member: by the section's
    /// `group_member_attribute`, or else by any of the three member attributes.
    fn membership_filter(attribute: Option<MemberAttribute>, dn: &str, uid: &str) -> String {
        let (dn, uid) = (ldap_escape(dn), ldap_escape(uid));
        match attribute {
            Some(MemberAttribute::MemberUid) => format!("(memberUid={uid})"),
            Some(a) => format!("({}={dn})", a.as_str()),
            None => format!("(|(member={dn})(uniqueMember={dn})(memberUid={uid}))"),
        }
    }

    /// Names of the groups under `group_search_base_dn` the user is in. With the user's own
    /// bind, groups the user may not read are not found; a search the server refuses is logged
    /// and gives no groups (so they satisfy no `access.required_groups`).
    async fn groups(&self, via: &mut Via<'_>, dn: &str, uid: &str) -> Result<Vec<String>, String> {
        let cfg = &self.cfg;
        let Some(base) = &cfg.group_search_base_dn else {
            return Ok(Vec::new());
        };
        let filter = format!(
            "(&(objectClass={}){})",
            cfg.group_object_class,
            Self::membership_filter(cfg.group_member_attribute, dn, uid)
        );
        let as_user = via.is_user();
        let entries = match self
            .search_via(
                via,
                base,
                Scope::Subtree,
                &filter,
                &[cfg.group_name_attribute.as_str()],
            )
            .await
        {
            Ok(e) => e,
            Err(OpError::Result {
                rc: RC_NO_SUCH_OBJECT,
                ..
            }) => {
                log::warning(&format!(
                    "ldap {:?}: group_search_base_dn {base:?} does not exist{}",
                    self.name(),
                    if as_user {
                        " or the user may not read it (single bind: groups are read with the user's own bind); no LDAP groups count"
                    } else {
                        ""
                    }
                ));
                Vec::new()
            }
            Err(OpError::Result { rc, text }) if as_user => {
                log::warning(&format!(
                    "ldap {:?}: the group search as {dn:?} was refused (result code {rc}, {}): single bind reads groups with the user's own bind; no LDAP groups count",
                    self.name(),
                    one_line(&text)
                ));
                Vec::new()
            }
            Err(OpError::Result {
                rc: RC_SIZE_LIMIT_EXCEEDED,
                ..
            }) => {
                return Err(format!(
                    "group search {filter:?}: the server's size limit cut the answer short"
                ))
            }
            Err(e) => return Err(format!("group search {filter:?}: {e}")),
        };
        if entries.len() > MAX_GROUPS {
            log::warning(&format!(
                "ldap {:?}: {:?} is in more than {MAX_GROUPS} groups; only the first {MAX_GROUPS} count",
                self.name(),
                if dn.is_empty() { uid } else { dn }
            ));
        }
        let mut names: Vec<String> = Vec::new();
        for e in entries.iter().take(MAX_GROUPS) {
            if let Some(n) = first_value(e, &cfg.group_name_attribute) {
                // Group names are compared with access.required_groups and logged: only plain,
                // printable names are kept.
                if !n.is_empty() && !n.chars().any(char::is_control) && !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        Ok(names)
    }

    /// Whether the user is in one of `whitelisted_login_groups`. Each group is read by its DN
    /// with a membership filter, so the server's DN matching rules decide, not string equality.
    /// With the user's own bind (single bind), a group the user may not read counts as one
    /// the user is not in: the restriction is never skipped, the sign-in is refused.
    async fn whitelisted(&self, via: &mut Via<'_>, dn: &str, uid: &str) -> Result<bool, String> {
        if self.cfg.whitelisted_login_groups.is_empty() {
            return Ok(true);
        }
        let as_user = via.is_user();
        let filter = Self::membership_filter(self.cfg.group_member_attribute, dn, uid);
        for group in &self.cfg.whitelisted_login_groups {
            match self
                .search_via(via, group, Scope::Base, &filter, &["1.1"])
                .await
            {
                Ok(entries) if !entries.is_empty() => return Ok(true),
                Ok(_) => {}
                Err(OpError::Result {
                    rc: RC_NO_SUCH_OBJECT,
                    ..
                }) if as_user => log::warning(&format!(
                    "ldap {:?}: whitelisted login group {group:?} does not exist or {dn:?} may not read it (single bind reads it with the user's own bind); it counts as a group the user is not in",
                    self.name()
                )),
                Err(OpError::Result {
                    rc: RC_NO_SUCH_OBJECT,
                    ..
                }) => log::warning(&format!(
                    "ldap {:?}: whitelisted login group {group:?} does not exist",
                    self.name()
                )),
                Err(OpError::Result { rc, text }) if as_user => log::warning(&format!(
                    "ldap {:?}: {dn:?} may not read whitelisted login group {group:?} (result code {rc}, {}); single bind reads it with the user's own bind, so it counts as a group the user is not in",
                    self.name(),
                    one_line(&text)
                )),
                Err(e) => return Err(format!("reading whitelisted group {group:?}: {e}")),
            }
        }
        Ok(false)
    }

    /// One simple bind as `dn` on `ldap`, bounded by the operation timeout.
    async fn bind_once(&self, ldap: &mut Ldap, dn: &str, password: &str) -> BindAnswer {
        match tokio::time::timeout(self.timeout, ldap.simple_bind(dn, password)).await {
            Err(_) => BindAnswer::Timeout(format!(
                "bind not answered within {}s",
                self.timeout.as_secs()
            )),
            Ok(Err(e)) => match op_error(e) {
                OpError::Transport(e) => BindAnswer::Broken(e),
                OpError::Result { rc, text } => BindAnswer::Answered { rc, text },
            },
            Ok(Ok(r)) if matches!(r.rc, RC_BUSY | RC_UNAVAILABLE) => BindAnswer::Broken(format!(
                "server busy or unavailable ({})",
                one_line(&r.text)
            )),
            Ok(Ok(r)) => BindAnswer::Answered {
                rc: r.rc,
                text: r.text,
            },
        }
    }

    /// Binds as `dn` with `password` on a bind-only connection ([`BindPool`]): an idle one to
    /// the address if there is one, else a new one. Addresses are tried in order until one
    /// answers. An idle connection that turns out to be broken (the server restarted or
    /// closed it) is replaced by a new one to the same address, once; a timeout is not
    /// retried on the same address (the server is slow or gone, and another try would only
    /// double the wait).
    async fn check_password(&self, dn: &str, password: &str) -> PasswordCheck {
        self.password_checks.fetch_add(1, Ordering::Relaxed);
        let mut errors = Vec::new();
        'addresses: for (index, address) in self.cfg.server_address.iter().enumerate() {
            let mut pooled = self.binds.take(index);
            loop {
                let reused = pooled.is_some();
                let mut ldap = match pooled.take() {
                    Some(l) => l,
                    None => match Box::pin(self.open(index)).await {
                        Ok(l) => l,
                        Err(e) => {
                            self.record(index, Err(&e));
                            errors.push(format!("{address}: {e}"));
                            continue 'addresses;
                        }
                    },
                };
                match self.bind_once(&mut ldap, dn, password).await {
                    BindAnswer::Answered { rc, text } => {
                        self.record(index, Ok(()));
                        // Success and invalidCredentials leave the connection usable (bound
                        // as the user, or anonymous): it goes back for the next check. Any
                        // other refusal closes it, to be on the safe side.
                        if matches!(rc, RC_SUCCESS | RC_INVALID_CREDENTIALS) {
                            self.binds.put(index, ldap);
                        }
                        return if rc == RC_SUCCESS {
                            PasswordCheck::Accepted
                        } else {
                            PasswordCheck::Refused(refused(rc, &text))
                        };
                    }
                    BindAnswer::Broken(_) if reused => {
                        // The idle connection died while it waited: a new one, same address.
                        continue;
                    }
                    BindAnswer::Broken(e) | BindAnswer::Timeout(e) => {
                        self.record(index, Err(&e));
                        errors.push(format!("{address}: {e}"));
                        continue 'addresses;
                    }
                }
            }
        }
        PasswordCheck::Unavailable(self.no_bind_answer(&errors))
    }

    /// Why a bind failed on every address (`errors`: one "address: why" each), for the log.
    fn no_bind_answer(&self, errors: &[String]) -> String {
        format!(
            "ldap {:?}: no server answered the bind ({})",
            self.name(),
            errors.join("; ")
        )
    }

    /// A fresh connection bound as `dn` with `password`: addresses in order until one answers.
    /// For single bind, which then reads as the user on it (never on a pooled connection).
    async fn user_bind(&self, dn: &str, password: &str) -> Result<Ldap, BindFailure> {
        let mut errors = Vec::new();
        for (index, address) in self.cfg.server_address.iter().enumerate() {
            let mut ldap = match self.open(index).await {
                Ok(l) => l,
                Err(e) => {
                    self.record(index, Err(&e));
                    errors.push(format!("{address}: {e}"));
                    continue;
                }
            };
            let outcome = self.bind_once(&mut ldap, dn, password).await;
            if matches!(&outcome, BindAnswer::Answered { rc, .. } if *rc == RC_SUCCESS) {
                self.record(index, Ok(()));
                return Ok(ldap);
            }
            // Best effort: the connection is closed either way when `ldap` is dropped.
            let _ = tokio::time::timeout(Duration::from_millis(200), ldap.unbind()).await;
            match outcome {
                BindAnswer::Answered { rc, text } => {
                    self.record(index, Ok(()));
                    return Err(BindFailure::Refused(refused(rc, &text)));
                }
                BindAnswer::Broken(e) | BindAnswer::Timeout(e) => {
                    self.record(index, Err(&e));
                    errors.push(format!("{address}: {e}"));
                }
            }
        }
        Err(BindFailure::Unavailable(self.no_bind_answer(&errors)))
    }

    /// Single bind in this section: binds as [`single_bind_dn`] with `password`, then, on that
    /// connection and as that user, reads the user's own entry (base scope, `user_object_class`)
    /// for its username attribute, then the groups and the whitelisted groups.
    async fn single_bind(&self, account: &str, password: &str) -> SingleBind {
        let dn = single_bind_dn(&self.cfg, account);
        let mut ldap = match self.user_bind(&dn, password).await {
            Ok(l) => l,
            Err(BindFailure::Refused(why)) => {
                return SingleBind::Refused(format!("bind as {dn:?}: {why}"))
            }
            Err(BindFailure::Unavailable(e)) => return SingleBind::Unavailable(e),
        };
        let outcome = self.own_identity(&mut ldap, &dn, account).await;
        let _ = tokio::time::timeout(Duration::from_millis(200), ldap.unbind()).await;
        outcome
    }

    async fn own_identity(&self, ldap: &mut Ldap, dn: &str, account: &str) -> SingleBind {
        let cfg = &self.cfg;
        let filter = format!("(objectClass={})", cfg.user_object_class);
        let entries = match self
            .search_on(
                ldap,
                dn,
                Scope::Base,
                &filter,
                &[cfg.username_attribute.as_str()],
            )
            .await
        {
            Ok(e) => e,
            Err(OpError::Transport(e)) => {
                return SingleBind::Unavailable(format!(
                    "ldap {:?}: reading {dn:?} as itself: {e}",
                    self.name()
                ))
            }
            Err(e) => {
                return SingleBind::Denied(format!(
                    "bound as {dn:?}, but it may not read its own entry ({e}); single bind needs users to read their own entry"
                ))
            }
        };
        let Some(entry) = entries.first() else {
            return SingleBind::Denied(format!(
                "bound as {dn:?}, but it is no {} entry (or may not read its own entry)",
                cfg.user_object_class
            ));
        };
        // The RDN value is one of the entry's values, but the server compares it
        // case-insensitively: the local account must be the directory's name exactly (after
        // lower-casing when mapping.lowercase is on), or `Alice` could sign in with alice's
        // password.
        let names = values(entry, &cfg.username_attribute);
        let matching = names.iter().find(|v| {
            if self.lowercase {
                v.to_lowercase() == account
            } else {
                v.as_str() == account
            }
        });
        let Some(raw_name) = matching else {
            return SingleBind::Denied(format!(
                "bound as {dn:?}, but no readable {} value of the entry is {account:?}",
                cfg.username_attribute
            ));
        };
        let raw_name = raw_name.clone();
        let groups = match self.groups(&mut Via::User(&mut *ldap), dn, &raw_name).await {
            Ok(g) => g,
            Err(e) => return SingleBind::Unavailable(format!("ldap {:?}: {e}", self.name())),
        };
        let whitelisted = match self
            .whitelisted(&mut Via::User(&mut *ldap), dn, &raw_name)
            .await
        {
            Ok(w) => w,
            Err(e) => return SingleBind::Unavailable(format!("ldap {:?}: {e}", self.name())),
        };
        SingleBind::Accepted(LdapIdentity {
            directory: self.name().to_string(),
            dn: dn.to_string(),
            account: account.to_string(),
            groups,
            whitelisted,
            single_bind: true,
        })
    }

    /// `status`: connects to address `index` and binds as the service account; the outcome is
    /// recorded like that of any other operation.
    async fn probe(self: Arc<Self>, index: usize) -> Result<(), String> {
        let attempt = async {
            let mut ldap = self.open(index).await?;
            let bound = self
                .service_bind(&mut ldap)
                .await
                .map_err(|e| e.to_string());
            let _ = tokio::time::timeout(Duration::from_millis(200), ldap.unbind()).await;
            bound
        };
        let result = attempt.await;
        self.record(index, result.as_ref().map(|_| ()).map_err(String::as_str));
        result
    }

    /// What is known of address `index` without asking it.
    fn last_known(&self, index: usize) -> String {
        let state = lock(&self.servers).get(index).cloned().unwrap_or_default();
        match (state.reachable, state.last_error) {
            (None, _) => "not contacted yet".into(),
            (Some(true), None) => "reachable".into(),
            (Some(true), Some(e)) => format!("reachable (last error: {e})"),
            (Some(false), e) => format!("unreachable: {}", e.unwrap_or_default()),
        }
    }
}

fn refused(rc: u32, text: &str) -> String {
    let what = if rc == RC_INVALID_CREDENTIALS {
        "invalid credentials".to_string()
    } else {
        format!("bind refused with result code {rc}")
    };
    let text = one_line(text);
    if text.is_empty() {
        what
    } else {
        format!("{what} ({text})")
    }
}

/// The values of `attribute` (its name compared case-insensitively, as LDAP attribute names
/// are).
fn values<'a>(entry: &'a SearchEntry, attribute: &str) -> &'a [String] {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attribute))
        .map_or(&[], |(_, v)| v.as_slice())
}

/// The value of the first RDN of `dn` when its attribute is `attribute` and it has no escapes
/// (`uid=jdoe,ou=People,…` → `jdoe`).
fn rdn_value<'a>(dn: &'a str, attribute: &str) -> Option<&'a str> {
    let first = dn.split(',').next()?;
    let (attr, value) = first.split_once('=')?;
    (attr.trim().eq_ignore_ascii_case(attribute) && !value.contains(['\\', '+']))
        .then(|| value.trim())
}

/// The first value of `attribute`.
fn first_value<'a>(entry: &'a SearchEntry, attribute: &str) -> Option<&'a String> {
    values(entry, attribute).first()
}

// ---------------------------------------------------------------------------------------------
// TLS

fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PEM_FILE).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(bytes)
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_bounded(path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// The rustls configuration of a section: its CA (or the system bundle), or no verification
/// at all with `server_tls_insecure`, and a client certificate for mutual TLS.
fn tls_config(cfg: &LdapConfig) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let builder = if cfg.server_tls_insecure {
        // Config loading refuses this together with a CA and has already warned; say it again
        // where the connection is made, since it turns every certificate check off.
        log::warning(&format!(
            "ldap {:?}: server_tls_insecure = true: the directory's certificate is NOT checked",
            cfg.name
        ));
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        let path = cfg
            .tls_ca_certificate
            .as_deref()
            .unwrap_or(Path::new(SYSTEM_CA_BUNDLE));
        let mut roots = RootCertStore::empty();
        for cert in certificates(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: unusable CA certificate: {e}", path.display()))?;
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&cfg.tls_client_certificate, &cfg.tls_client_key) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert)?;
            let key_bytes = read_bounded(key)?;
            let key_der = PrivateKeyDer::from_pem_slice(&key_bytes)
                .map_err(|e| format!("{}: not a PEM private key: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("client certificate {}: {e}", cert.display()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `server_tls_insecure = true`: any certificate is accepted. The handshake signatures are
/// still checked, which proves only that the server holds the key of the certificate it sent.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// ---------------------------------------------------------------------------------------------
// The backend: every section, the identity cache, coalescing

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
            let idle: usize = lock(&d.binds.idle).iter().map(Vec::len).sum();
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
