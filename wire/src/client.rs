//! A small blocking client with a hard deadline, for code that runs inside other programs (the
//! PAM and NSS modules): no threads, no runtime, no global state, and it returns by the deadline
//! whatever the daemon does, including not accepting connections at all.

use crate::codec::{decode_response, encode_request, DecodeError};
use crate::deadline::{write_all_by, FrameError, FrameReader};
use crate::{Request, Response};
use std::fmt;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Why a call to the daemon did not produce a response. All of them mean "the daemon cannot
/// answer", which a PAM module reports as PAM_AUTHINFO_UNAVAIL.
#[derive(Debug)]
pub enum ClientError {
    /// The socket path cannot be used (too long, contains NUL).
    BadPath,
    /// No daemon listening (no socket file, connection refused, …).
    Connect(io::Error),
    /// The deadline passed before a complete answer arrived.
    Timeout,
    /// The process behind the socket is neither root nor our own user: it is not our daemon.
    UntrustedPeer(u32),
    Io(io::Error),
    /// The daemon's answer could not be decoded.
    Protocol(DecodeError),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::BadPath => write!(f, "unusable socket path"),
            ClientError::Connect(e) => write!(f, "cannot connect to accountmapd: {e}"),
            ClientError::Timeout => write!(f, "accountmapd did not answer in time"),
            ClientError::UntrustedPeer(uid) => write!(
                f,
                "the socket is served by uid {uid}, neither root nor this process's user; refusing to trust it"
            ),
            ClientError::Io(e) => write!(f, "error talking to accountmapd: {e}"),
            ClientError::Protocol(e) => write!(f, "unreadable answer from accountmapd: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Sends one request and waits for its response, all within `timeout`.
pub fn call(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let deadline = Instant::now() + timeout;
    let mut stream = connect(socket, deadline)?;
    let peer = peer_credentials(&stream).map_err(ClientError::Io)?.uid;
    if peer != 0 && peer != effective_uid() {
        return Err(ClientError::UntrustedPeer(peer));
    }
    let frame = encode_request(req);
    if let Err(e) = write_all_by(&mut stream, &frame, deadline) {
        // A daemon over its connection limit answers "connection limit reached" and closes at
        // once, maybe before the request is written: its answer is still there to read.
        if !matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ) {
            return Err(io_error(e));
        }
        return match FrameReader::new().next(&mut stream, deadline, None) {
            Ok(body) => decode_response(&body).map_err(ClientError::Protocol),
            Err(_) => Err(io_error(e)),
        };
    }
    let body = FrameReader::new()
        .next(&mut stream, deadline, None)
        .map_err(|e| match e {
            FrameError::Closed => ClientError::Io(io::ErrorKind::UnexpectedEof.into()),
            FrameError::TooLarge(e) => ClientError::Protocol(e),
            FrameError::Io(e) => io_error(e),
        })?;
    decode_response(&body).map_err(ClientError::Protocol)
}

fn remaining(deadline: Instant) -> Result<Duration, ClientError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(ClientError::Timeout)
    } else {
        Ok(left)
    }
}

fn io_error(e: io::Error) -> ClientError {
    match e.kind() {
        io::ErrorKind::TimedOut => ClientError::Timeout,
        _ => ClientError::Io(e),
    }
}

/// Connects without ever blocking past `deadline`. A plain blocking `connect` on a Unix socket
/// hangs when the listener's backlog is full (a stopped or wedged daemon), so the socket is
/// non-blocking while connecting and EAGAIN is retried until the deadline.
fn connect(path: &Path, deadline: Instant) -> Result<UnixStream, ClientError> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(ClientError::BadPath);
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let addr_len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;

    // SAFETY: plain syscall with constant arguments; the result is checked below.
    let raw = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if raw < 0 {
        return Err(ClientError::Connect(io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a freshly created descriptor that nothing else owns; OwnedFd closes it
    // on every path from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    loop {
        // SAFETY: `addr` is a valid sockaddr_un that outlives the call and `addr_len` does not
        // exceed its size.
        let rc = unsafe {
            libc::connect(
                raw,
                (&addr as *const libc::sockaddr_un).cast::<libc::sockaddr>(),
                addr_len,
            )
        };
        if rc == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::EINPROGRESS) => {
                let left = remaining(deadline)?;
                std::thread::sleep(left.min(Duration::from_millis(5)));
            }
            _ => return Err(ClientError::Connect(err)),
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false).map_err(ClientError::Io)?;
    Ok(stream)
}

/// The process on the other end of a Unix stream, as the kernel recorded it at connect time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// SO_PEERCRED of `stream`: what the daemon trusts about a client, and what a client checks
/// about the daemon. Nothing the peer sends can change it.
pub fn peer_credentials(stream: &UnixStream) -> io::Result<PeerCred> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given; the descriptor is
    // owned by `stream` for the duration of the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn temp_socket(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("accountmap-wire-{}-{name}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("s");
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn no_daemon_fails_at_once() {
        let start = Instant::now();
        let err = call(
            Path::new("/nonexistent/accountmap.sock"),
            &Request::Status,
            Duration::from_secs(5),
        );
        assert!(matches!(err, Err(ClientError::Connect(_))), "{err:?}");
        assert!(start.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn silent_daemon_times_out_at_the_deadline() {
        let path = temp_socket("silent");
        let listener = UnixListener::bind(&path).map_err(|e| e.to_string());
        assert!(listener.is_ok(), "{listener:?}");
        let start = Instant::now();
        let err = call(&path, &Request::Status, Duration::from_millis(300));
        let took = start.elapsed();
        assert!(matches!(err, Err(ClientError::Timeout)), "{err:?}");
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(800),
            "{took:?}"
        );
    }

    #[test]
    fn over_long_path_is_refused() {
        let long = "/tmp/".to_string() + &"x".repeat(200);
        let err = call(Path::new(&long), &Request::Status, Duration::from_secs(1));
        assert!(matches!(err, Err(ClientError::BadPath)));
    }
}
