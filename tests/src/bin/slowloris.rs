//! `slowloris SOCKET MODE CONNECTIONS SECONDS`: a hostile local client for the fault tests
//! (tests/tests/hardening/main.rs), run as an unprivileged user through setpriv.
//!
//! It keeps CONNECTIONS connections open to SOCKET for SECONDS seconds. MODE `silent` connects
//! and sends nothing; `trickle` sends a frame header promising 100 bytes, then one byte a
//! second. Whenever the daemon closes one, it is counted (with how long it lived) and opened
//! again at once, so the pressure is constant: a persistent attacker, not a one-shot burst.
//! Prints one line: `opened=N cut=N refused_connect=N lived_ms_p50=N lived_ms_max=N`.
//!
//! MODE `flood` instead starts CONNECTIONS threads at once, each asking one well-formed
//! question (`getpwnam nobody`, which the peer may ask about itself); SECONDS is each call's
//! timeout. Prints `answered=N limit=N rate_limited=N connect_refused=N failed=N timeout=N`.

// Test support: a failure is reported and ends the process.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Tally {
    opened: u64,
    refused_connect: u64,
    /// Lifetimes (ms) of the connections the daemon closed.
    lived_ms: Vec<u64>,
}

/// Holds one connection until the daemon closes it or `end` comes; `Some(lifetime)` when the
/// daemon closed it.
fn hold(mut s: UnixStream, trickle: bool, end: Instant) -> Option<Duration> {
    let opened = Instant::now();
    let header = [0u8, 0, 0, 100, 0, 1, 0x03, 0, 0, 0, 0, 0];
    let mut sent = 0usize;
    let mut buf = [0u8; 64];
    loop {
        let now = Instant::now();
        if now >= end {
            return None;
        }
        if trickle {
            let byte = header.get(sent).copied().unwrap_or(b'x');
            if s.write_all(&[byte]).is_err() {
                return Some(opened.elapsed());
            }
            sent += 1;
        }
        // Waiting on a read notices the daemon closing the connection as soon as it happens.
        let wait = Duration::from_secs(1).min(end - now);
        s.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .ok()?;
        match s.read(&mut buf) {
            Ok(_) => return Some(opened.elapsed()), // EOF or an error reply: cut off
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(opened.elapsed()),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, mode, conns, secs] = args.as_slice() else {
        eprintln!("usage: slowloris SOCKET silent|trickle CONNECTIONS SECONDS");
        return ExitCode::from(2);
    };
    let trickle = match mode.as_str() {
        "silent" => false,
        "trickle" => true,
        "flood" => return flood(socket, conns, secs),
        _ => {
            eprintln!("slowloris: mode must be silent or trickle");
            return ExitCode::from(2);
        }
    };
    let conns: usize = conns.parse().expect("CONNECTIONS");
    let end = Instant::now() + Duration::from_secs(secs.parse().expect("SECONDS"));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (socket, tally) = (socket.clone(), tally.clone());
            thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    while Instant::now() < end {
                        match UnixStream::connect(&socket) {
                            Ok(s) => {
                                tally.lock().unwrap().opened += 1;
                                if let Some(lived) = hold(s, trickle, end) {
                                    tally
                                        .lock()
                                        .unwrap()
                                        .lived_ms
                                        .push(lived.as_millis() as u64);
                                }
                            }
                            Err(_) => {
                                tally.lock().unwrap().refused_connect += 1;
                                thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                })
                .expect("spawn")
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let mut t = tally.lock().unwrap();
    t.lived_ms.sort_unstable();
    let p50 = t.lived_ms.get(t.lived_ms.len() / 2).copied().unwrap_or(0);
    let max = t.lived_ms.last().copied().unwrap_or(0);
    println!(
        "opened={} cut={} refused_connect={} lived_ms_p50={p50} lived_ms_max={max}",
        t.opened,
        t.lived_ms.len(),
        t.refused_connect
    );
    ExitCode::SUCCESS
}

fn flood(socket: &str, conns: &str, secs: &str) -> ExitCode {
    use accountmap_wire::{call, ClientError, Request, Response};
    let conns: usize = conns.parse().expect("CONNECTIONS");
    let timeout = Duration::from_secs(secs.parse().expect("SECONDS"));
    let barrier = Arc::new(std::sync::Barrier::new(conns));
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (socket, barrier) = (socket.to_string(), barrier.clone());
            thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    barrier.wait();
                    let req = Request::Getpwnam {
                        name: "nobody".into(),
                    };
                    match call(std::path::Path::new(&socket), &req, timeout) {
                        Ok(Response::Passwd(_)) => "answered",
                        Ok(Response::Error(e)) if e.contains("connection limit") => "limit",
                        // The NSS request rate limit per uid (mapper_daemon/src/nss.rs).
                        Ok(Response::Error(e)) if e == "rate limited" => "rate_limited",
                        Err(ClientError::Timeout) => "timeout",
                        // The listen queue was full: refused at once, as the PAM module
                        // reports it (PAM_AUTHINFO_UNAVAIL without waiting).
                        Err(ClientError::Connect(_)) => "connect_refused",
                        other => {
                            eprintln!("flood: {other:?}");
                            "failed"
                        }
                    }
                })
                .expect("spawn")
        })
        .collect();
    let mut counts = std::collections::BTreeMap::new();
    for t in threads {
        *counts.entry(t.join().unwrap_or("failed")).or_insert(0u64) += 1;
    }
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    println!(
        "answered={} limit={} rate_limited={} connect_refused={} failed={} timeout={}",
        get("answered"),
        get("limit"),
        get("rate_limited"),
        get("connect_refused"),
        get("failed"),
        get("timeout")
    );
    ExitCode::SUCCESS
}
