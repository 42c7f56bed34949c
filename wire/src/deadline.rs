//! Blocking reads and writes on a Unix stream that give up at a deadline, for the module
//! clients and for the daemon's connection threads alike. The socket timeout is set to the time
//! left before every call, so a peer that trickles one byte at a time cannot stretch the total.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The time left, or a `TimedOut` error once the deadline has passed.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::ErrorKind::TimedOut.into())
    } else {
        Ok(left)
    }
}

fn timed_out(e: io::Error) -> io::Error {
    match e.kind() {
        // A socket timeout surfaces as WouldBlock on Linux.
        io::ErrorKind::WouldBlock => io::ErrorKind::TimedOut.into(),
        _ => e,
    }
}

/// Writes all of `buf` before `deadline`; `TimedOut` if it cannot.
///
/// With `send(MSG_NOSIGNAL)`, not `write`: the modules run inside other programs (su, sshd,
/// anything calling getpwnam), and a daemon that refuses a connection closes it, maybe before
/// the request is written. `write` would then raise SIGPIPE, whose default action kills the
/// host program; `send` with MSG_NOSIGNAL returns EPIPE instead, and the caller reads the
/// refusal that is waiting.
pub fn write_all_by(stream: &mut UnixStream, mut buf: &[u8], deadline: Instant) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    while !buf.is_empty() {
        stream.set_write_timeout(Some(remaining(deadline)?))?;
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the duration of the call,
        // and the descriptor is owned by `stream`, which outlives it.
        let rc = unsafe {
            libc::send(
                stream.as_raw_fd(),
                buf.as_ptr().cast::<libc::c_void>(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        match usize::try_from(rc) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = buf.get(n..).unwrap_or_default(),
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(timed_out(e));
                }
            }
        }
    }
    Ok(())
}

/// Why [`FrameReader::next`] returned no frame.
#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the connection between frames: the normal end of a conversation.
    Closed,
    /// The length prefix announced more than [`crate::MAX_FRAME`] bytes.
    TooLarge(crate::DecodeError),
    /// Closed mid-frame, timed out (`TimedOut`), or another socket error.
    Io(io::Error),
}

/// Reads length-prefixed frames from a stream, usually with a single `read` per frame: it
/// reads as much as has arrived rather than the 4-byte prefix first, and keeps any bytes of a
/// following frame for the next call.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

/// Bytes asked of the kernel per read: every request and answer of the protocol but an ID
/// token fits, and a larger frame just takes more reads.
const READ_CHUNK: usize = 4096;

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// The next frame's body. The first byte must arrive before `first`; with `rest`, the
    /// remainder of the frame must follow within `rest` of that byte (a server gives an idle
    /// client long, then cuts a trickling one off at a fixed time), without it, `first` is the
    /// deadline for the whole frame (a client's overall timeout).
    pub fn next(
        &mut self,
        stream: &mut UnixStream,
        first: Instant,
        rest: Option<Duration>,
    ) -> Result<Vec<u8>, FrameError> {
        let started = |deadline: Instant| rest.map_or(deadline, |r| Instant::now() + r);
        let mut deadline = if self.buf.is_empty() {
            first
        } else {
            started(first)
        };
        loop {
            if self.buf.len() >= crate::FRAME_HEADER_LEN {
                let mut header = [0u8; crate::FRAME_HEADER_LEN];
                header.copy_from_slice(&self.buf[..crate::FRAME_HEADER_LEN]);
                let len = crate::frame_len(header).map_err(FrameError::TooLarge)?;
                let end = crate::FRAME_HEADER_LEN + len;
                if self.buf.len() >= end {
                    let body = self.buf[crate::FRAME_HEADER_LEN..end].to_vec();
                    self.buf.drain(..end);
                    return Ok(body);
                }
            }
            stream
                .set_read_timeout(Some(remaining(deadline).map_err(FrameError::Io)?))
                .map_err(FrameError::Io)?;
            let had = self.buf.len();
            self.buf.resize(had + READ_CHUNK, 0);
            let got = stream.read(&mut self.buf[had..]);
            self.buf.truncate(had + *got.as_ref().unwrap_or(&0));
            match got {
                Ok(0) if had == 0 => return Err(FrameError::Closed),
                Ok(0) => return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into())),
                Ok(_) if had == 0 => deadline = started(deadline),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FrameError::Io(timed_out(e))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_request, encode_request, encode_response, Request, Response};
    use std::io::Write;

    #[test]
    fn frames_split_and_joined_arbitrarily_come_out_whole() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let one = encode_request(&Request::Status);
        let two = encode_response(&Response::Error("x".repeat(5000)));
        let mut bytes = one.clone();
        bytes.extend_from_slice(&two);
        let writer = std::thread::spawn(move || {
            for chunk in bytes.chunks(3) {
                a.write_all(chunk).unwrap();
            }
        });
        let mut reader = FrameReader::new();
        let far = Instant::now() + Duration::from_secs(5);
        let got1 = reader
            .next(&mut b, far, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(decode_request(&got1).unwrap(), Request::Status);
        let got2 = reader
            .next(&mut b, far, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(got2.len(), two.len() - crate::FRAME_HEADER_LEN);
        writer.join().unwrap();
        assert!(matches!(
            reader.next(&mut b, far, Some(Duration::from_secs(5))),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn a_trickling_peer_is_cut_off_at_the_frame_deadline() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&[0, 0]).unwrap();
        let start = Instant::now();
        let got = FrameReader::new().next(
            &mut b,
            start + Duration::from_secs(5),
            Some(Duration::from_millis(200)),
        );
        assert!(
            matches!(got, Err(FrameError::Io(ref e)) if e.kind() == io::ErrorKind::TimedOut),
            "{got:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn an_oversized_prefix_is_refused_before_reading_the_body() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&u32::MAX.to_be_bytes()).unwrap();
        let got = FrameReader::new().next(&mut b, Instant::now() + Duration::from_secs(1), None);
        assert!(matches!(got, Err(FrameError::TooLarge(_))), "{got:?}");
    }

    /// The peer closed before we wrote: an error to read the answer after, never SIGPIPE
    /// (whose default action would kill the program the PAM or NSS module runs in).
    #[test]
    fn writing_to_a_closed_peer_is_an_error_not_a_signal() {
        let (mut a, b) = UnixStream::pair().unwrap();
        drop(b);
        let deadline = Instant::now() + Duration::from_secs(1);
        // In a child with SIGPIPE's default action (the test harness ignores it, as every
        // Rust program does; the C programs the modules run in do not).
        // SAFETY: the child calls only async-signal-safe functions (signal, setsockopt, send,
        // clock_gettime, _exit) before exiting; the parent waits for it.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: see above.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                let code = match write_all_by(&mut a, b"hello", deadline) {
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
                    _ => 1,
                };
                libc::_exit(code);
            }
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is valid for writes.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child was killed or failed: wait status {status}"
        );
    }
}
