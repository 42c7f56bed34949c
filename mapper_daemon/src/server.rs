//! The Unix-socket server: frames in, peer credentials, [`Engine::handle`], frames out.
//!
//! Each connection is served by its own task, so one slow or hostile client cannot delay
//! another. A connection must deliver each frame within [`FRAME_DEADLINE`], may stay idle at
//! most [`IDLE_DEADLINE`] between requests, and at most [`MAX_CONNECTIONS`] are served at once.
//! A malformed frame gets an error reply and the connection is closed; nobody else notices.

use crate::config::{self, Config};
use crate::engine::{Engine, Peer};
use crate::log;
use crate::system::Directory;
use accountmap_wire::{
    decode_request, encode_response, frame_len, DecodeError, Response, FRAME_HEADER_LEN,
};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

/// Time allowed to deliver one whole frame once its first byte has arrived.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(5);
/// Time a connection may wait between requests.
pub const IDLE_DEADLINE: Duration = Duration::from_secs(30);
/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 512;

/// The engine in force; swapped whole on reload.
pub struct State {
    config_path: PathBuf,
    directory: Arc<dyn Directory>,
    engine: RwLock<Arc<Engine>>,
}

impl State {
    pub fn new(config_path: PathBuf, engine: Engine, directory: Arc<dyn Directory>) -> State {
        State {
            config_path,
            directory,
            engine: RwLock::new(Arc::new(engine)),
        }
    }

    pub fn engine(&self) -> Arc<Engine> {
        match self.engine.read() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// SIGHUP: load the config again; keep the old one if the new one is bad.
    pub fn reload(&self) {
        let config = match config::load(&self.config_path) {
            Ok(c) => c,
            Err(errors) => {
                log::error(&format!(
                    "reload refused, the previous configuration stays in force: {}",
                    errors.to_string().replace('\n', "; ")
                ));
                return;
            }
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
        match Engine::new(config, self.directory.clone()) {
            Ok(engine) => {
                let mut slot = match self.engine.write() {
                    Ok(g) => g,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *slot = Arc::new(engine);
                log::notice(&format!(
                    "configuration reloaded from {}",
                    self.config_path.display()
                ));
            }
            Err(e) => log::error(&format!(
                "reload refused, the previous configuration stays in force: {e}"
            )),
        }
    }
}

/// Creates the listening socket: parent directory if missing, a stale socket file removed,
/// mode 0666 (any local process may ask; what it may ask is decided by its peer credentials).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                ),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another daemon is already listening on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// Serves until SIGTERM or SIGINT, then waits (bounded) for the requests in flight.
pub async fn serve(listener: UnixListener, state: Arc<State>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    notify_ready();
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let state = state.clone();
                // Reading files and building the engine blocks; keep it off the accept loop.
                let _ = tokio::task::spawn_blocking(move || state.reload()).await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        log::warning(&format!("accept failed: {e}"));
                        // Out of descriptors and similar: do not spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().acquire_owned().await else { break };
                let state = state.clone();
                tokio::spawn(async move {
                    serve_connection(stream, &state).await;
                    drop(permit);
                });
            }
        }
    }
    log::notice("stopping: finishing the requests in flight");
    // Every permit back means every connection task has finished.
    let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(all)).await;
    Ok(())
}

fn peer_of(stream: &UnixStream) -> Option<Peer> {
    let cred = stream.peer_cred().ok()?;
    Some(Peer {
        pid: cred.pid().unwrap_or(0),
        uid: cred.uid(),
        gid: cred.gid(),
    })
}

async fn serve_connection(mut stream: UnixStream, state: &State) {
    let Some(peer) = peer_of(&stream) else {
        log::warning("connection without peer credentials dropped");
        return;
    };
    loop {
        let mut header = [0u8; FRAME_HEADER_LEN];
        // The first byte may take as long as an idle client likes (up to IDLE_DEADLINE);
        // the rest of the frame must follow promptly.
        match tokio::time::timeout(IDLE_DEADLINE, stream.read_exact(&mut header[..1])).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return, // EOF, reset or idle: the client is done
        }
        let frame = tokio::time::timeout(FRAME_DEADLINE, async {
            stream.read_exact(&mut header[1..]).await?;
            let len = match frame_len(header) {
                Ok(n) => n,
                Err(e) => return Ok(Err(e)),
            };
            let mut body = vec![0u8; len];
            stream.read_exact(&mut body).await?;
            Ok::<_, std::io::Error>(Ok(body))
        })
        .await;
        let body = match frame {
            Ok(Ok(Ok(body))) => body,
            Ok(Ok(Err(e))) => return refuse(&mut stream, &peer, &e).await,
            Ok(Err(_)) => return,
            Err(_) => {
                log::warning(&format!(
                    "connection from uid {} pid {} dropped: frame not completed within {}s",
                    peer.uid,
                    peer.pid,
                    FRAME_DEADLINE.as_secs()
                ));
                return;
            }
        };
        let request = match decode_request(&body) {
            Ok(r) => r,
            Err(e) => return refuse(&mut stream, &peer, &e).await,
        };
        let engine = state.engine();
        // Account lookups go through the system's NSS, which may block (sssd, LDAP); keep
        // them off the threads that drive the other connections.
        let response = tokio::task::block_in_place(|| engine.handle(&peer, &request));
        if stream.write_all(&encode_response(&response)).await.is_err() {
            return;
        }
    }
}

async fn refuse(stream: &mut UnixStream, peer: &Peer, error: &DecodeError) {
    log::warning(&format!(
        "refused a malformed request from uid {} pid {}: {error}",
        peer.uid, peer.pid
    ));
    let reply = encode_response(&Response::Error(format!("request refused: {error}")));
    let _ = tokio::time::timeout(FRAME_DEADLINE, stream.write_all(&reply)).await;
}

/// Tells systemd (Type=notify) that the socket is bound and requests are answered.
fn notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = PathBuf::from(path);
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_os_str().as_encoded_bytes();
    let sent = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| sock.send_to_addr(b"READY=1", &addr))
    } else {
        sock.send_to(b"READY=1", &path)
    };
    if let Err(e) = sent {
        log::warning(&format!("could not notify systemd of readiness: {e}"));
    }
}

/// Loads the config and serves; what `accountmapd` runs.
pub fn run(config_path: PathBuf, directory: Arc<dyn Directory>) -> Result<(), String> {
    let config: Config = config::load(&config_path).map_err(|e| e.to_string())?;
    for w in &config.warnings {
        log::warning(w);
    }
    let socket = config.daemon.socket.clone();
    let engine = Engine::new(config, directory.clone())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("accountmapd")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener =
            bind(&socket).map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
        log::notice(&format!(
            "listening on {} (config {}, minimum uid {})",
            socket.display(),
            config_path.display(),
            engine.minimum_uid()
        ));
        let state = Arc::new(State::new(config_path, engine, directory));
        serve(listener, state)
            .await
            .map_err(|e| format!("server error: {e}"))?;
        let _ = std::fs::remove_file(&socket);
        log::notice("stopped");
        Ok(())
    })
}
