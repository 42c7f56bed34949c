//! A raw socket client for the fault tests: frames of any shape, and what the daemon did with
//! them; and a fake daemon that never answers.

use accountmap_wire::Response;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// What the daemon did with a raw frame.
#[derive(Debug)]
pub enum RawReply {
    /// It closed (or reset) the connection.
    Closed,
    /// It answered with a frame that decodes to this.
    Reply(Response),
    /// It answered with bytes that are not a valid frame.
    Garbage(Vec<u8>),
    /// Nothing within the limit: the connection is held open without an answer.
    Silent,
}

/// Connects to `socket` and sends `bytes`, then reads one reply (bounded by `limit`).
pub fn raw_exchange(socket: &Path, bytes: &[u8], limit: Duration) -> RawReply {
    let mut s = UnixStream::connect(socket).expect("connect to the daemon socket");
    s.set_write_timeout(Some(limit)).expect("timeout");
    // The daemon may close before we finish writing an oversized frame: that is fine.
    let _ = s.write_all(bytes);
    read_raw_reply(&mut s, limit)
}

/// Reads one frame from `s` within `limit` (or notices the peer closed).
pub fn read_raw_reply(s: &mut UnixStream, limit: Duration) -> RawReply {
    let deadline = Instant::now() + limit;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return RawReply::Silent;
        }
        s.set_read_timeout(Some(left)).expect("timeout");
        match s.read(&mut chunk) {
            Ok(0) => {
                return if buf.is_empty() {
                    RawReply::Closed
                } else {
                    decode_raw(&buf)
                };
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() >= 4 {
                    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                    if buf.len() >= 4 + len {
                        return decode_raw(&buf);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return RawReply::Silent;
            }
            Err(_) => return RawReply::Closed,
        }
    }
}

fn decode_raw(buf: &[u8]) -> RawReply {
    if buf.len() < 4 {
        return RawReply::Garbage(buf.to_vec());
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    match buf.get(4..4 + len) {
        Some(body) => match accountmap_wire::decode_response(body) {
            Ok(r) => RawReply::Reply(r),
            Err(_) => RawReply::Garbage(buf.to_vec()),
        },
        None => RawReply::Garbage(buf.to_vec()),
    }
}

/// A frame: 4-byte big-endian length, then `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// A "daemon" that accepts every connection and never answers, until dropped.
pub struct SilentListener {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl SilentListener {
    pub fn bind(path: &Path) -> SilentListener {
        let listener = UnixListener::bind(path).expect("bind the silent listener");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            // bounded: the test drops us within seconds; 60 s is a backstop
            let start = std::time::Instant::now();
            while !flag.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60) {
                match listener.accept() {
                    Ok((s, _)) => held.push(s),
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SilentListener {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
