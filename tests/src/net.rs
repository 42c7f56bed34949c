//! TCP helpers for the servers and fault-injecting proxies the tests put on loopback.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Makes closing `s` send a TCP RST instead of a FIN (SO_LINGER with a zero timeout): how the
/// fault-injecting proxies of the LDAP and OIDC fault tests imitate a server that resets.
pub fn reset_on_close(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor owned by `s`, and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// A port nothing listens on right now (the kernel's choice for an ephemeral bind).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A listener on a free loopback port whose accept loop runs on a thread of its own and hands
/// each connection (blocking again) to a handler, until the value is dropped: the skeleton of
/// the tests' proxies and fake servers.
pub struct AcceptLoop {
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl AcceptLoop {
    pub fn start(mut handle: impl FnMut(TcpStream) + Send + 'static) -> AcceptLoop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("listener address");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(1));
                    continue;
                };
                client.set_nonblocking(false).expect("blocking connection");
                handle(client);
            }
        });
        AcceptLoop { addr, stop }
    }
}

impl Drop for AcceptLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Connections a proxy keeps a handle on, so that it can break them as a server restart does.
#[derive(Clone, Default)]
pub struct Held(Arc<Mutex<Vec<TcpStream>>>);

impl Held {
    /// Keeps a handle on `s` (a clone of its descriptor).
    pub fn keep(&self, s: &TcpStream) {
        if let (Ok(mut held), Ok(s)) = (self.0.lock(), s.try_clone()) {
            held.push(s);
        }
    }

    /// Closes both directions of every connection kept; with `reset`, as a TCP RST.
    pub fn close_all(&self, reset: bool) {
        if let Ok(mut held) = self.0.lock() {
            for s in held.drain(..) {
                if reset {
                    reset_on_close(&s);
                }
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Copies bytes both ways between `a` and `b`, a thread each way; when either side ends, both
/// connections are shut down.
pub fn forward_both_ways(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    for (mut from, mut to) in [(a, b), (b2, a2)] {
        thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    }
}
