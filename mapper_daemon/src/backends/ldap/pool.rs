//! Connections to one section's servers: opening them (TCP, StartTLS or TLS), the bound
//! service connections that searches run on, the idle bind-only connections of password
//! checks ([`BindPool`]), and what is known of each address for `status`.

use super::directory::{op_error, Directory, OpError, RC_SUCCESS};
use crate::log;
use crate::util::{lock, one_line};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, StdStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Service connections kept per `[[ldap]]` section, and service operations run at once.
pub const POOL_SIZE: usize = 4;
/// Idle bind-only connections (password checks, see [`BindPool`]) kept per server address.
pub const BIND_POOL_SIZE: usize = 8;
/// An idle bind-only connection unused for this long is closed.
pub const BIND_IDLE: Duration = Duration::from_secs(30);

/// Reachability of one server address, as last seen.
#[derive(Clone, Debug, Default)]
pub(super) struct ServerState {
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
pub(super) struct BindPool {
    /// Per address (index into `server_address`), newest last.
    idle: Mutex<Vec<Vec<IdleBind>>>,
    /// A sweeper task closing expired idle connections is running.
    pub(super) sweeping: AtomicBool,
}

impl BindPool {
    pub(super) fn new(addresses: usize) -> BindPool {
        BindPool {
            idle: Mutex::new((0..addresses).map(|_| Vec::new()).collect()),
            sweeping: AtomicBool::new(false),
        }
    }

    /// The most recently returned idle connection to address `index` that is still open and
    /// not expired; the closed and expired ones met on the way are dropped.
    pub(super) fn take(&self, index: usize) -> Option<Ldap> {
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
    pub(super) fn put(self: &Arc<Self>, index: usize, ldap: Ldap) {
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
    pub(super) fn sweep(&self) -> bool {
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

    /// Idle connections kept, per address.
    pub(super) fn idle_counts(&self) -> Vec<usize> {
        lock(&self.idle).iter().map(Vec::len).collect()
    }

    /// Makes every idle connection look `age` old.
    #[cfg(test)]
    pub(super) fn age(&self, age: Duration) {
        for list in lock(&self.idle).iter_mut() {
            for c in list.iter_mut() {
                c.since = Instant::now() - age;
            }
        }
    }
}

impl Directory {
    pub(super) fn record(&self, index: usize, result: Result<(), &str>) {
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
    pub(super) async fn open(&self, index: usize) -> Result<Ldap, String> {
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
            e => crate::backends::tls::explain(&one_line(&e.to_string())),
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
                text: match super::directory::needs_tls(r.rc) {
                    Some(hint) => format!(
                        "service bind as {dn:?} refused: {} ({hint})",
                        one_line(&r.text)
                    ),
                    None => format!("service bind as {dn:?} refused: {}", one_line(&r.text)),
                },
            }),
        }
    }

    /// A bound service connection: addresses in order, the first that connects and accepts the
    /// service bind wins. Every failure is recorded for `status`.
    pub(super) async fn open_service(&self) -> Result<Ldap, String> {
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
    pub(super) async fn search(
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

    /// `status`: connects to address `index` and binds as the service account; the outcome is
    /// recorded like that of any other operation.
    pub(super) async fn probe(self: Arc<Self>, index: usize) -> Result<(), String> {
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
    pub(super) fn last_known(&self, index: usize) -> String {
        let state = lock(&self.servers).get(index).cloned().unwrap_or_default();
        match (state.reachable, state.last_error) {
            (None, _) => "not contacted yet".into(),
            (Some(true), None) => "reachable".into(),
            (Some(true), Some(e)) => format!("reachable (last error: {e})"),
            (Some(false), e) => format!("unreachable: {}", e.unwrap_or_default()),
        }
    }
}
