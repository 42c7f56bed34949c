//! The Unix-socket server: frames in, peer credentials, [`Engine::handle`], frames out.
//!
//! A fixed pool of threads waits in `accept` on the one listening socket; the kernel hands each
//! new connection to one of them, which reads the request, decides and answers on the spot. A
//! sign-in therefore costs one wake-up of one thread: no hand-off between threads, no async
//! machinery on the hot path (an earlier tokio-per-connection design spent most of a request in
//! cross-thread wake-ups). Backends that are asynchronous (LDAP, OIDC) run on the daemon's tokio
//! runtime, which every connection thread has entered.
//!
//! A connection carries one request and its answer. The request must begin within
//! [`FIRST_BYTE_DEADLINE`] and be complete within [`FRAME_DEADLINE`] of its first byte, so a
//! silent client holds a thread for a bounded time only. A malformed frame gets an error reply
//! and the connection is closed; nobody else notices.
//!
//! Deadlines alone do not stop a local user who keeps opening slow connections (slowloris):
//! enough of them hold every thread, and sign-ins queue behind them until their PAM timeout.
//! So right after `accept`, before reading anything, a connection from a non-root peer takes a
//! slot from the non-root pool ([`NON_ROOT_CONNECTIONS`]); the remaining threads are kept for
//! root, which is who runs the PAM services (sshd, login, rserver-pam). The pool is shared
//! fairly ([`PeerSlots::take`]): a uid may hold at most its share, `max(`[`FAIR_MINIMUM`]`,
//! pool / (uids in service + 1))` and never more than [`PER_UID_CONNECTIONS`], so the more
//! uids are active the less each may hold and there is room for one more; and a uid holding
//! fewer than [`FAIR_MINIMUM`] may take one of [`NEWCOMER_RESERVE`] slots beyond a full pool,
//! so that users who already hold connections cannot deny a new one its first. A connection over its limit is answered "connection limit"
//! and closed at once, which costs microseconds, so the listen queue drains. Root's
//! connections take no slot and no lock: the fast path is unchanged.

pub mod brake;
pub mod guards;
pub mod memcache;
pub mod memory;
pub mod notify;
pub mod nss_limit;

use crate::backends::system::Directory;
use crate::config::{self, Config};
use crate::engine::{Engine, Peer};
use crate::log;
use crate::server::guards::Guards;
use crate::server::memcache::SharedCache;
use accountmap_wire::memcache::Kind;
use accountmap_wire::{
    decode_request, encode_response, peer_credentials, DecodeError, FrameError, FrameReader, Phase,
    Request, Response, Verify,
};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Time from connecting to the first byte of the request. Every client writes its request
/// right after connecting, so this only bounds how long a silent connection holds a thread.
pub const FIRST_BYTE_DEADLINE: Duration = Duration::from_secs(2);
/// Time allowed to deliver the whole request once its first byte has arrived, and to take the
/// answer.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(5);
/// Connections one non-root uid may have in service at once when few uids are active (an NSS
/// lookup or a screen locker needs one; a busy multi-threaded program a few).
pub const PER_UID_CONNECTIONS: usize = 8;
/// Connections all non-root peers together may have in service at once, shared fairly.
pub const NON_ROOT_CONNECTIONS: usize = 48;
/// A uid's share never falls below this many connections, however many uids are active.
pub const FAIR_MINIMUM: usize = 2;
/// Slots beyond a full pool for a uid that holds fewer than [`FAIR_MINIMUM`] connections: its
/// first ones are served even while others hold the whole pool.
pub const NEWCOMER_RESERVE: usize = 8;
/// Threads that non-root peers can never occupy: root's sign-ins always find one free.
pub const ROOT_RESERVE: usize = 16;
/// Connection threads: connections served at once. More wait in the listen backlog (the PAM
/// and NSS clients give up at their own deadlines).
pub const WORKERS: usize = NON_ROOT_CONNECTIONS + NEWCOMER_RESERVE + ROOT_RESERVE;
/// How often the daemon looks at the accounts file on its own (see [`State::check_accounts`]).
const ACCOUNTS_CHECK: Duration = Duration::from_secs(1);
/// How long SIGTERM waits for the requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often systemd's status line is brought up to date (only when it changed).
const STATUS_UPDATE: Duration = Duration::from_secs(10);

/// Connections of non-root peers in service, per uid and in total (see the module comment).
/// Memory is bounded: a uid's entry goes when its last connection ends, so the map never holds
/// more than `total + reserve` entries.
pub struct PeerSlots {
    per_uid: usize,
    total: usize,
    reserve: usize,
    inner: Mutex<SlotCounts>,
    refused: AtomicU64,
    /// Seconds since `epoch` at which a refusal was last logged (the log is rate-limited: an
    /// attacker must not be able to flood syslog either).
    last_log: AtomicU64,
    epoch: Instant,
}

#[derive(Default)]
struct SlotCounts {
    by_uid: HashMap<u32, usize>,
    total: usize,
}

/// A taken slot; dropping it gives the slot back.
pub struct Slot<'a> {
    slots: &'a PeerSlots,
    uid: u32,
}

impl PeerSlots {
    /// At most `per_uid` per uid (less when many are active), `total` for all, plus `reserve`
    /// for uids that hold none.
    pub fn new(per_uid: usize, total: usize, reserve: usize) -> PeerSlots {
        PeerSlots {
            per_uid,
            total,
            reserve,
            inner: Mutex::new(SlotCounts::default()),
            refused: AtomicU64::new(0),
            last_log: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, SlotCounts> {
        // The counts stay consistent even if a holder panicked: every update is one statement.
        crate::util::lock(&self.inner)
    }

    /// A slot for a connection of `uid`, or `Err` with why not. Root needs none.
    ///
    /// A uid may hold its fair share: the pool divided by one more than the uids in service
    /// (itself included), at least [`FAIR_MINIMUM`], at most `per_uid`. The "one more" keeps
    /// room for a uid that has none yet: N uids holding all they may leave `total / (N + 1)`
    /// slots free. A uid over its share keeps what it holds but gets no more, so as
    /// connections end (the deadlines end every one within seconds) the pool is shared out
    /// again. The pool is full only while connections taken under a larger share last (at
    /// most the deadlines, 7 s) or when so many uids are active that the minimum share fills
    /// it (`N * FAIR_MINIMUM >= total`, 24 uids with the daemon's numbers); then a uid holding
    /// fewer than [`FAIR_MINIMUM`] may still take one of the `reserve` slots. Beyond that (28
    /// uids or more at once, each keeping its connections open until the deadlines) a
    /// newcomer waits for a slot to come back; root never does.
    pub fn take(&self, uid: u32) -> Result<Option<Slot<'_>>, String> {
        if uid == 0 {
            return Ok(None);
        }
        let mut c = self.counts();
        let mine = c.by_uid.get(&uid).copied().unwrap_or(0);
        let active = c.by_uid.len() + usize::from(mine == 0);
        let share = (self.total / (active + 1))
            .max(FAIR_MINIMUM)
            .min(self.per_uid);
        if mine >= share {
            return Err(format!(
                "uid {uid} already has {mine} connections in service (its share: {share} while {active} uids are connected)"
            ));
        }
        if c.total >= self.total && !(mine < FAIR_MINIMUM && c.total < self.total + self.reserve) {
            return Err(format!(
                "non-root peers already have {} connections in service (limit {}, of which {} only for a uid's first)",
                c.total,
                self.total + self.reserve,
                self.reserve
            ));
        }
        c.total += 1;
        *c.by_uid.entry(uid).or_insert(0) += 1;
        Ok(Some(Slot { slots: self, uid }))
    }

    /// Counts a refusal and says whether to log it: at most one line every 10 s, naming how
    /// many were refused since the last.
    fn note_refusal(&self) -> Option<u64> {
        self.refused.fetch_add(1, Ordering::Relaxed);
        // +10: the first refusal after start is logged too.
        let now = self.epoch.elapsed().as_secs() + 10;
        let last = self.last_log.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.refused.swap(0, Ordering::Relaxed).max(1))
        } else {
            None
        }
    }

    #[cfg(test)]
    fn in_service(&self) -> (usize, usize) {
        let c = self.counts();
        (c.total, c.by_uid.len())
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut c = self.slots.counts();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_uid.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.by_uid.remove(&self.uid);
            }
        }
    }
}

/// The engine in force; swapped whole on reload.
pub struct State {
    config_path: PathBuf,
    directory: Arc<dyn Directory>,
    engine: RwLock<Arc<Engine>>,
    slots: PeerSlots,
    /// The brake, the NSS rate limit and the replay memory: kept across reloads.
    guards: Arc<Guards>,
    /// The shared-memory passwd cache the NSS module reads ([`crate::server::memcache`]).
    memcache: SharedCache,
    /// The decision table root's PAM stacks read ([`accountmap_wire::policy_cache`]).
    policy: SharedCache,
}

impl State {
    pub fn new(config_path: PathBuf, engine: Engine, directory: Arc<dyn Directory>) -> State {
        State {
            config_path,
            directory,
            guards: engine.guards().clone(),
            engine: RwLock::new(Arc::new(engine)),
            slots: PeerSlots::new(PER_UID_CONNECTIONS, NON_ROOT_CONNECTIONS, NEWCOMER_RESERVE),
            memcache: SharedCache::disabled(),
            policy: SharedCache::disabled(),
        }
    }

    /// The same, with the shared-memory passwd cache `memcache`.
    pub fn with_memcache(mut self, memcache: SharedCache) -> State {
        self.memcache = memcache;
        self
    }

    /// The same, with the decision table `policy`.
    pub fn with_policy(mut self, policy: SharedCache) -> State {
        self.policy = policy;
        self
    }

    /// Empties both shared tables (reload, accounts-file change); how many live entries the
    /// passwd cache held.
    fn invalidate_tables(&self) -> usize {
        self.policy.invalidate();
        self.memcache.invalidate()
    }

    /// Answers one request, and keeps the shared-memory cache in step: a `Getpwnam` answer is
    /// stored (an entry for `cache_ttl`, "not an alias" for `negative_cache_ttl`), a flush
    /// empties it too.
    pub fn handle(&self, peer: &Peer, request: &Request) -> Response {
        // Before the engine: see SharedCache::epoch.
        let epoch = self.memcache.epoch();
        let policy_epoch = self.policy.epoch();
        let engine = self.engine();
        let response = engine.handle(peer, request);
        self.follow_accounts_file(&engine);
        match (request, &response) {
            (Request::Getpwnam { name }, Response::Passwd(Some(entry))) => {
                self.memcache
                    .store(epoch, name, entry, engine.config().daemon.cache_ttl);
            }
            // A decision made with no credential to check, for root: the same name always gets
            // it until the directory or the configuration changes (see policy_cache).
            (Request::Pam(p), Response::Decision(d))
                if peer.uid == 0 && (p.phase != Phase::Auth || p.verify == Verify::None) =>
            {
                self.policy.store_decision(
                    policy_epoch,
                    &p.user,
                    d,
                    engine.config().daemon.cache_ttl,
                );
            }
            // A real "no such alias" (errors and rate-limit refusals are Response::Error).
            (Request::Getpwnam { name }, Response::Passwd(None)) => {
                self.memcache.store_not_an_alias(
                    epoch,
                    name,
                    engine.config().daemon.negative_cache_ttl,
                );
            }
            (Request::CacheFlush, Response::Flushed(n)) => {
                let dropped = self.invalidate_tables();
                let total = u64::from(*n) + dropped as u64;
                return Response::Flushed(u32::try_from(total).unwrap_or(u32::MAX));
            }
            (Request::Status, Response::Status(pairs)) => {
                let mut pairs = pairs.clone();
                for (table, name) in [
                    (&self.memcache, "nss_cache"),
                    (&self.policy, "decision_table"),
                ] {
                    let (file, live) = table.status_text();
                    pairs.push((format!("{name}_file"), file));
                    pairs.push((format!("{name}_entries"), live));
                }
                return Response::Status(pairs);
            }
            _ => {}
        }
        response
    }

    pub fn engine(&self) -> Arc<Engine> {
        match self.engine.read() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Once the daemon is idle ([`memory::IdleTrim`]): expired and negative cached answers
    /// dropped, and free memory returned to the system.
    pub fn give_memory_back(&self) {
        let dropped = self.engine().purge_idle();
        memory::trim();
        tracing::trace!(
            dropped,
            "idle: expired and negative cached answers dropped, free memory returned to the system"
        );
    }

    /// Every second: an accounts file edit empties the shared-memory cache even when no
    /// request comes in to notice it (cache hits never reach the daemon).
    pub fn check_accounts(&self) {
        let engine = self.engine();
        engine.refresh_accounts();
        self.follow_accounts_file(&engine);
    }

    /// When `engine` found the accounts file changed, cached aliases may map elsewhere: the
    /// shared-memory tables are emptied.
    fn follow_accounts_file(&self, engine: &Engine) {
        if engine.take_accounts_changed() {
            self.invalidate_tables();
        }
    }

    /// SIGHUP: load the config again; keep the old one if the new one is bad, and say why
    /// (logged, and returned for systemd's status line).
    pub fn reload(&self) -> Result<(), String> {
        let config = match config::load(&self.config_path) {
            Ok(c) => c,
            Err(errors) => return Err(reload_refused(errors.to_string().replace('\n', "; "))),
        };
        let old_socket = self.engine().config().daemon.socket.clone();
        if config.daemon.socket != old_socket {
            log::warning(&format!(
                "daemon.socket changed to {}; the daemon keeps listening on {} until restarted",
                config.daemon.socket.display(),
                old_socket.display()
            ));
        }
        for w in &config.warnings {
            log::warning(w);
        }
        match Engine::new(config, self.directory.clone(), self.guards.clone()) {
            Ok(engine) => {
                let mut slot = match self.engine.write() {
                    Ok(g) => g,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *slot = Arc::new(engine);
                drop(slot);
                self.guards.reloaded(Instant::now());
                // After the swap (see SharedCache::epoch): the policy may have changed.
                self.invalidate_tables();
                log::notice(&format!(
                    "configuration reloaded from {}",
                    self.config_path.display()
                ));
                Ok(())
            }
            Err(e) => Err(reload_refused(e)),
        }
    }
}

fn reload_refused(why: String) -> String {
    log::error(&format!(
        "reload refused, the previous configuration stays in force: {why}"
    ));
    why
}

/// The socket's mode: any local process may ask; what it may ask is decided by its peer
/// credentials.
pub const SOCKET_MODE: u32 = 0o666;

/// Creates the listening socket: parent directory if missing, a stale socket file removed,
/// mode [`SOCKET_MODE`] from the moment it has its name.
///
/// The socket is bound in a private directory (mode 0700, made here, inside the socket's
/// directory), given its mode there, and renamed into place. A `chmod` of the final path
/// would follow a symlink that someone able to write the directory swapped in (making another
/// file 0666); inside a directory only the daemon can enter, nobody can swap anything. The
/// umask, which would also set the mode at `bind()`, is process-wide and would race with
/// other threads creating files. The socket's directory must be owned by root or the daemon
/// and writable by nobody else, as must the ones above it ([`crate::config::trust`]): a
/// located error otherwise.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    bind_trusting(path, &crate::config::trust::Trust::process())
}

/// As [`bind`], trusting the directory owners in `trust` (tests).
pub fn bind_trusting(path: &Path, trust: &crate::config::trust::Trust) -> io::Result<UnixListener> {
    use crate::config::trust::{check_path, Role};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)?;
        // The umask may have taken bits away (clients must reach the socket). Set on the
        // opened directory, not through a path a link could replace.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&dir)?;
        opened.set_permissions(std::fs::Permissions::from_mode(0o755))?;
    }
    let absolute = std::path::absolute(&dir)?;
    check_path(&absolute, Role::SocketDir, trust)
        .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e.0))?;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                ),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("another daemon is already listening on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    // Short: sun_path holds 108 bytes, and this name is one level deeper than the socket's.
    let private = dir.join(format!(".b{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let bound = (|| {
        let tmp = private.join("s");
        let listener = UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(SOCKET_MODE))?;
        std::fs::rename(&tmp, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    bound
}

/// Who is on the other end, from the kernel (SO_PEERCRED), never from the request.
fn peer_of(stream: &UnixStream) -> Option<Peer> {
    let cred = peer_credentials(stream).ok()?;
    Some(Peer {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// Serves the one request a connection carries, then closes it. Every client (PAM, NSS, CLI)
/// asks one question per connection, so nothing waits on an idle connection afterwards and a
/// thread is free again as soon as its answer is written.
fn serve_connection(mut stream: UnixStream, state: &State) {
    let Some(peer) = peer_of(&stream) else {
        log::warning("connection without peer credentials dropped");
        return;
    };
    // Every event of this request carries who asked, and what (see crate::log).
    let span = tracing::info_span!(
        "request",
        peer_uid = peer.uid,
        peer_pid = peer.pid,
        kind = tracing::field::Empty
    );
    let _in_request = span.enter();
    let slot = match state.slots.take(peer.uid) {
        Ok(slot) => slot,
        Err(why) => {
            if let Some(n) = state.slots.note_refusal() {
                log::warning(&format!(
                    "connection limit: refused {n} connection(s) in the last 10 s, latest from pid {}: {why}",
                    peer.pid
                ));
            }
            refuse_over_limit(stream);
            return;
        }
    };
    // Answers are small and the socket buffer takes them whole; the timeout only guards
    // against a client that stops reading a large one.
    if stream.set_write_timeout(Some(FRAME_DEADLINE)).is_err() {
        return;
    }
    // The request must start within FIRST_BYTE_DEADLINE of connecting and be complete within
    // FRAME_DEADLINE of its first byte: a silent or trickling client holds a thread for a
    // bounded time only.
    let body = FrameReader::new().next(
        &mut stream,
        Instant::now() + FIRST_BYTE_DEADLINE,
        Some(FRAME_DEADLINE),
    );
    let request = match body {
        Ok(body) => match decode_request(&body) {
            Ok(r) => r,
            Err(e) => return refuse(&mut stream, &peer, &e),
        },
        Err(FrameError::TooLarge(e)) => return refuse(&mut stream, &peer, &e),
        Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::TimedOut => {
            tracing::warn!(
                peer = %peer,
                "connection dropped: no complete request within the deadline"
            );
            return;
        }
        Err(_) => return, // closed or reset before asking anything
    };
    span.record("kind", kind(&request));
    let response = state.handle(&peer, &request);
    // The slot goes back before the answer is written: a client that has its answer and
    // connects again at once must not find its previous connection still counted. The write
    // does not wait in practice (the answer fits the empty socket buffer).
    drop(slot);
    let _ = stream.write_all(&encode_response(&response));
}

/// Answers a connection over its limit "connection limit reached" and closes it, without
/// waiting for anything: a refusal costs microseconds of a connection thread.
///
/// Best effort and non-blocking in practice (the reply fits the empty socket buffer); the
/// client sees "refused", which its module reports as unavailable. The request that has
/// already arrived is read first: closing a Unix socket with unread data marks the client's
/// end reset, so a client reading on after the answer would get ECONNRESET instead of an
/// orderly end. A client whose request comes after the close gets EPIPE on its write (the
/// "broken pipes" of issue 14's finding 7); ours then read the answer waiting for them
/// (accountmap_wire::call) and write with MSG_NOSIGNAL, so no host program gets SIGPIPE.
fn refuse_over_limit(mut stream: UnixStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let reply = encode_response(&Response::Error("connection limit reached".into()));
    let _ = stream.write_all(&reply);
    if stream.set_nonblocking(true).is_ok() {
        let mut sink = [0u8; 4096];
        // A request is at most a few KiB; a bounded number of reads, never a wait.
        for _ in 0..4 {
            match stream.read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

/// What a request asks, for the request span.
fn kind(request: &Request) -> &'static str {
    match request {
        Request::Pam(p) => match p.phase {
            Phase::Auth => "pam auth",
            Phase::Account => "pam account",
        },
        Request::Resolve { .. } => "resolve",
        Request::Status => "status",
        Request::CacheFlush => "cache flush",
        Request::Getpwnam { .. } => "getpwnam",
        Request::DeviceStart { .. } => "device start",
        Request::DevicePoll { .. } => "device poll",
        Request::IssueTicket { .. } => "issue ticket",
    }
}

fn refuse(stream: &mut UnixStream, peer: &Peer, error: &DecodeError) {
    tracing::warn!(peer = %peer, error = %error, "refused a malformed request");
    let reply = encode_response(&Response::Error(format!("request refused: {error}")));
    let _ = stream.write_all(&reply);
}

/// One connection thread: accept, count, serve, repeat, until the daemon stops.
fn worker(listener: &UnixListener, state: &State, stopping: &AtomicBool, connections: &AtomicU64) {
    while !stopping.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                connections.fetch_add(1, Ordering::Relaxed);
                serve_connection(stream, state);
            }
            Err(_) if stopping.load(Ordering::Relaxed) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::warning(&format!("accept failed: {e}"));
                // Out of descriptors and similar: do not spin.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Starts the connection threads, waits for SIGTERM or SIGINT (reloading on SIGHUP), then
/// stops accepting and waits, within [`SHUTDOWN_GRACE`], for the requests in flight.
pub fn serve(
    listener: UnixListener,
    state: Arc<State>,
    runtime: &tokio::runtime::Runtime,
) -> io::Result<()> {
    // Signal handlers first: once a connection thread runs, clients see a ready daemon, and a
    // SIGTERM that arrived before the handlers would kill it with the default action.
    let (mut hup, mut term, mut int) = {
        use tokio::signal::unix::{signal, SignalKind};
        let _runtime = runtime.enter();
        (
            signal(SignalKind::hangup())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        )
    };
    let listener = Arc::new(listener);
    let stopping = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicU64::new(0));
    for i in 0..WORKERS {
        let (listener, state, stopping, done, connections) = (
            listener.clone(),
            state.clone(),
            stopping.clone(),
            running.clone(),
            connections.clone(),
        );
        let handle = runtime.handle().clone();
        running.fetch_add(1, Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name(format!("conn-{i}"))
            .stack_size(512 * 1024)
            .spawn(move || {
                let _runtime = handle.enter();
                worker(&listener, &state, &stopping, &connections);
                done.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            running.fetch_sub(1, Ordering::SeqCst);
            if i == 0 {
                return Err(e);
            }
            log::warning(&format!(
                "only {i} connection threads could be started: {e}"
            ));
            break;
        }
    }
    // What systemd's status line says: connections so far, and a refused reload until the
    // next one succeeds.
    let mut reload_failure: Option<String> = None;
    let status = |failure: &Option<String>| {
        notify::serving_status(connections.load(Ordering::Relaxed), failure.as_deref())
    };
    let mut shown = status(&reload_failure);
    notify::ready(&shown);
    let mut idle = memory::IdleTrim::new(Instant::now());
    runtime.block_on(async {
        let mut accounts_tick = tokio::time::interval(ACCOUNTS_CHECK);
        accounts_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut status_tick = tokio::time::interval(STATUS_UPDATE);
        status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = accounts_tick.tick() => {
                    let state = state.clone();
                    let trim = idle.due(connections.load(Ordering::Relaxed), Instant::now());
                    // A stat, and a read when the file changed: off the runtime's threads.
                    let _ = tokio::task::spawn_blocking(move || {
                        state.check_accounts();
                        if trim {
                            state.give_memory_back();
                        }
                    })
                    .await;
                }
                _ = status_tick.tick() => {
                    let now = status(&reload_failure);
                    if now != shown {
                        notify::status(&now);
                        shown = now;
                    }
                }
                _ = hup.recv() => {
                    notify::reloading();
                    let state = state.clone();
                    // Reading files and building the engine blocks; keep it off the runtime.
                    let reloaded = tokio::task::spawn_blocking(move || state.reload()).await;
                    reload_failure = match reloaded {
                        Ok(Ok(())) => None,
                        Ok(Err(why)) => Some(why),
                        Err(e) => Some(format!("the reload did not finish: {e}")),
                    };
                    shown = status(&reload_failure);
                    notify::ready(&shown);
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
    });
    notify::stopping();
    log::notice("stopping: finishing the requests in flight");
    stopping.store(true, Ordering::SeqCst);
    // Wakes every thread blocked in accept() (Linux returns EINVAL to them); connections
    // being served are not affected.
    // SAFETY: the descriptor is owned by `listener`, alive until this function returns.
    unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
    let give_up = Instant::now() + SHUTDOWN_GRACE;
    while running.load(Ordering::SeqCst) > 0 && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Loads the config and serves; what `accountmapd` runs.
pub fn run(config_path: PathBuf, directory: Arc<dyn Directory>) -> Result<(), String> {
    let config: Config = config::load(&config_path).map_err(|e| e.to_string())?;
    for w in &config.warnings {
        log::warning(w);
    }
    let socket = config.daemon.socket.clone();
    let engine = Engine::new(config, directory.clone(), Arc::new(Guards::new()))?;
    // Signals, reloads and the asynchronous backends; requests are served by the connection
    // threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("accountmapd-rt")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let listener =
        bind(&socket).map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    log::notice(&format!(
        "listening on {} (config {}, minimum uid {})",
        socket.display(),
        config_path.display(),
        engine.minimum_uid()
    ));
    // After the socket is bound: a second daemon on the same socket has been refused by now,
    // so this one may replace (and retire) the cache file next to it.
    let memcache = SharedCache::create(&socket);
    let policy = SharedCache::create_kind(&socket, Kind::Policy);
    let state = Arc::new(
        State::new(config_path, engine, directory)
            .with_memcache(memcache)
            .with_policy(policy),
    );
    let served = serve(listener, state.clone(), &runtime).map_err(|e| format!("server error: {e}"));
    state.memcache.shutdown();
    state.policy.shutdown();
    let _ = std::fs::remove_file(&socket);
    served?;
    log::notice("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::system::StaticDirectory;
    use crate::server::brake::{Outcome, Source};
    use crate::test_support::{self, account, EXAMPLE_CONFIG};

    #[test]
    fn a_reload_builds_a_new_engine_but_keeps_the_guards() {
        let (engine, dir) = test_support::engine(
            &[("accounts", b"", 0o644)],
            EXAMPLE_CONFIG,
            StaticDirectory::new(vec![]),
        );
        let directory = Arc::new(StaticDirectory::new(vec![account(
            "alice",
            1001,
            1001,
            &[],
        )]));
        let state = State::new(dir.path().join("accountmap.toml"), engine, directory);
        let before = state.engine();
        let now = Instant::now();
        while let Ok(ticket) = state.guards.brake.admit("alice", &Source::Local, now) {
            state.guards.brake.settle(ticket, Outcome::Failed, now);
        }
        state.reload().expect("the same config reloads");
        let after = state.engine();
        assert!(
            !Arc::ptr_eq(&before, &after),
            "the reload built no new engine"
        );
        assert!(Arc::ptr_eq(before.guards(), after.guards()));
        assert!(
            after
                .guards()
                .brake
                .admit("alice", &Source::Local, now)
                .is_err(),
            "the failures were forgotten by the reload"
        );
    }

    #[test]
    fn status_uptime_survives_a_reload_and_names_the_last_reload() {
        let (engine, dir) = test_support::engine(
            &[("accounts", b"", 0o644)],
            EXAMPLE_CONFIG,
            StaticDirectory::new(vec![]),
        );
        let state = State::new(
            dir.path().join("accountmap.toml"),
            engine,
            Arc::new(StaticDirectory::new(vec![])),
        );
        let value = |key: &str| {
            let Response::Status(pairs) = state.handle(
                &Peer {
                    pid: 1,
                    uid: 0,
                    gid: 0,
                },
                &Request::Status,
            ) else {
                panic!("no status")
            };
            pairs
                .into_iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("status has no {key:?} line"))
        };
        assert_eq!(value("last reload"), "never");
        let started = state.guards.started;
        state.reload().expect("the same config reloads");
        assert_eq!(state.engine().guards().started, started, "the start moved");
        assert_eq!(value("last reload"), "0s ago (1 since start)");
        assert!(value("uptime").ends_with('s'));
    }

    /// Only what a root PAM stack asked without a credential to check goes into the decision
    /// table: a non-root caller gets another answer, and a credential's check is the daemon's.
    #[test]
    fn only_roots_questions_without_a_credential_enter_the_decision_table() {
        use accountmap_wire::{Credential, PamRequest};
        // cache_ttl is 300 s by default.
        let (engine, dir) = test_support::engine(
            &[("accounts", b"", 0o644)],
            EXAMPLE_CONFIG,
            StaticDirectory::new(vec![account(
                "alice",
                1001,
                1001,
                &["alice", "rstudio-users"],
            )]),
        );
        let socket = dir.path().join("accountmapd.sock");
        let state = State::new(
            dir.path().join("accountmap.toml"),
            engine,
            Arc::new(StaticDirectory::new(vec![])),
        )
        .with_policy(SharedCache::create_kind(&socket, Kind::Policy));
        let ask = |uid: u32, user: &str, phase: Phase, verify: Verify| {
            let credential = (verify != Verify::None).then(|| Credential::new(b"pw".to_vec()));
            state.handle(
                &Peer {
                    pid: 1,
                    uid,
                    gid: uid,
                },
                &Request::Pam(PamRequest {
                    service: "rstudio".into(),
                    phase,
                    user: user.into(),
                    rhost: String::new(),
                    verify,
                    credential,
                }),
            )
        };
        let entries = || state.policy.status().map_or(0, |(_, n)| n);
        ask(65534, "alice", Phase::Account, Verify::None);
        ask(0, "alice", Phase::Auth, Verify::Ldap);
        assert_eq!(entries(), 0);
        ask(0, "alice", Phase::Auth, Verify::None);
        assert_eq!(entries(), 1);
        ask(0, "alice", Phase::Account, Verify::Ldap);
        assert_eq!(entries(), 1, "the same name, the same record");
        state.handle(
            &Peer {
                pid: 1,
                uid: 0,
                gid: 0,
            },
            &Request::CacheFlush,
        );
        assert_eq!(entries(), 0, "a flush empties it");
        state.policy.shutdown();
    }

    #[test]
    fn root_takes_no_slot_and_is_never_refused() {
        let slots = PeerSlots::new(1, 1, 0);
        let held: Vec<_> = (0..100).map(|_| slots.take(0)).collect();
        assert!(held.iter().all(|s| matches!(s, Ok(None))));
        assert_eq!(slots.in_service(), (0, 0));
    }

    #[test]
    fn per_uid_and_total_limits_hold_and_slots_come_back() {
        // per uid 2; total 3 leaves a share of 3 / (active + 1) < 2, so the minimum, 2.
        let slots = PeerSlots::new(2, 3, 0);
        let a1 = slots.take(1000);
        let a2 = slots.take(1000);
        assert!(matches!(a1, Ok(Some(_))) && matches!(a2, Ok(Some(_))));
        assert!(slots.take(1000).is_err(), "third connection of uid 1000");
        let b1 = slots.take(1001);
        assert!(matches!(b1, Ok(Some(_))));
        assert!(slots.take(1002).is_err(), "total limit of 3");
        assert!(matches!(slots.take(0), Ok(None)), "root is not counted");
        drop(a1);
        assert!(matches!(slots.take(1002), Ok(Some(_))), "a slot came back");
        drop((a2, b1));
        assert_eq!(
            slots.in_service(),
            (0, 0),
            "entries are removed: bounded memory"
        );
    }

    /// Issue 14, finding 10: the socket has its mode from the moment it has its name, whatever
    /// the umask; nothing is chmod-ed by path (a symlink planted where the socket goes is
    /// refused and its target keeps its mode); a socket directory others can write is refused
    /// with a located error, before anything is created in it.
    #[test]
    fn the_socket_is_0666_at_bind_and_its_directory_must_be_trusted() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let sock = dir.path().join("accountmapd.sock");
        let listener = bind(&sock).unwrap();
        let mode = std::fs::symlink_metadata(&sock)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(mode, 0o666);
        assert!(
            UnixStream::connect(&sock).is_ok(),
            "the renamed socket answers"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers,
            vec![std::ffi::OsString::from("accountmapd.sock")]
        );
        drop(listener);

        // A link where the socket goes: refused, and its target is left alone.
        std::fs::remove_file(&sock).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "x").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        symlink(&victim, &sock).unwrap();
        assert!(bind(&sock).is_err());
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        std::fs::remove_file(&sock).unwrap();

        // A missing directory is made 0755 (clients must reach the socket).
        let made = dir.path().join("made");
        let listener = bind(&made.join("s.sock")).unwrap();
        let mode = std::fs::metadata(&made).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
        drop(listener);

        // A directory others can write.
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = bind(&open.join("s.sock")).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{} (the socket directory) has mode 0777",
                open.display()
            )),
            "{err}"
        );
        assert!(err.contains("chmod go-w"), "{err}");
        assert_eq!(
            std::fs::read_dir(&open).unwrap().count(),
            0,
            "nothing created"
        );
    }

    /// Finding 7 of issue 14, in the small: six uids take all they may of the pool; a
    /// seventh still gets connections, and as the six give connections back they cannot take
    /// them again beyond their new, smaller share.
    #[test]
    fn many_uids_holding_the_pool_leave_a_new_uid_its_connections() {
        let slots = PeerSlots::new(PER_UID_CONNECTIONS, NON_ROOT_CONNECTIONS, NEWCOMER_RESERVE);
        let mut held: Vec<Vec<Slot<'_>>> = Vec::new();
        for uid in 2001..=2006u32 {
            held.push(
                (0..9)
                    .filter_map(|_| slots.take(uid).ok().flatten())
                    .collect(),
            );
        }
        let counts: Vec<usize> = held.iter().map(Vec::len).collect();
        // The sixth arrives when five are in: 48 / 7 = 6.
        assert_eq!(counts, [8, 8, 8, 8, 8, 6]);
        let newcomer: Vec<_> = (0..4)
            .filter_map(|_| slots.take(3000).ok().flatten())
            .collect();
        assert_eq!(
            newcomer.len(),
            2,
            "the newcomer gets what is left of the pool"
        );
        // An attacker that holds more than its share of 6 (7 uids: 48 / 8) gets no more, and
        // once its connections end, cannot take them back beyond its share.
        assert!(slots.take(2001).is_err());
        held[0].truncate(5);
        let back = slots.take(2001);
        assert!(matches!(back, Ok(Some(_))), "back up to 6");
        assert!(slots.take(2001).is_err(), "not beyond");
        drop((back, newcomer, held));
        assert_eq!(slots.in_service(), (0, 0));
    }

    /// So many uids that the minimum share fills the pool: a uid holding less than the
    /// minimum still gets its connections from the reserve, a third one waits.
    #[test]
    fn when_the_minimum_shares_fill_the_pool_a_newcomer_takes_a_reserve_slot() {
        let slots = PeerSlots::new(PER_UID_CONNECTIONS, NON_ROOT_CONNECTIONS, NEWCOMER_RESERVE);
        // 24 uids at their minimum share of 2 fill the 48.
        let held: Vec<_> = (0..24u32)
            .flat_map(|u| [5000 + u, 5000 + u])
            .filter_map(|uid| slots.take(uid).ok().flatten())
            .collect();
        assert_eq!(slots.in_service().0, NON_ROOT_CONNECTIONS, "pool full");
        let first: Vec<_> = (0..3)
            .filter_map(|_| slots.take(9999).ok().flatten())
            .collect();
        assert_eq!(
            first.len(),
            FAIR_MINIMUM,
            "the minimum share comes from the reserve"
        );
        let reserved: Vec<_> = (0..20u32)
            .filter_map(|u| slots.take(7000 + u).ok().flatten())
            .collect();
        assert_eq!(
            reserved.len(),
            NEWCOMER_RESERVE - FAIR_MINIMUM,
            "the reserve is bounded"
        );
        drop((first, held, reserved));
    }

    #[rstest::rstest]
    #[case::one_uid(1, 8)]
    #[case::six_uids(6, 6)]
    #[case::seven_uids(7, 6)]
    #[case::twelve_uids(12, 3)]
    #[case::thirty_uids(30, 2)]
    fn the_share_shrinks_as_uids_join(#[case] uids: u32, #[case] share: usize) {
        let slots = PeerSlots::new(PER_UID_CONNECTIONS, NON_ROOT_CONNECTIONS, NEWCOMER_RESERVE);
        // Every uid but the last holds one; the last takes all it may.
        let held: Vec<_> = (1..uids).map(|u| slots.take(5000 + u)).collect();
        let last: Vec<_> = (0..20)
            .filter_map(|_| slots.take(9999).ok().flatten())
            .collect();
        assert_eq!(last.len(), share, "{uids} uids connected");
        drop((held, last));
    }

    #[test]
    fn refusals_are_logged_at_most_once_per_window() {
        let slots = PeerSlots::new(0, 0, 0);
        assert!(slots.note_refusal().is_some());
        assert!((0..1000).all(|_| slots.note_refusal().is_none()));
    }
}
