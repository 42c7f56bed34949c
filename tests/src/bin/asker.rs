//! `asker SOCKET KIND NAME THREADS SECONDS [MAX]`: a client that asks the daemon one question
//! after another, for the rate-limit, connection-pool and memory tests of issue 14
//! (tests/tests/hardening/limits.rs), run as an unprivileged user through setpriv.
//!
//! KIND is `resolve` or `getpwnam`; NAME is the name asked, or `random` for a fresh random
//! 250-character name each time (a flood of unique names), or `random` followed by a suffix
//! appended to each. THREADS threads ask, each one
//! question per connection, until SECONDS have passed or MAX questions (all threads together)
//! were asked. Prints one line of counts:
//! `asked=N answered=N denied=N rate_limited=N limit=N io=N timeout=N other=N`,
//! then, for each distinct answer, a line `answer COUNT DEBUG` (at most 20 lines), so that a
//! test can check that answers are identical.

// Test support: a failure is reported and ends the process.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use accountmap_wire::{call, ClientError, Request, Response, Verdict};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A fresh 250-character name: xorshift on a per-thread seed, letters only.
fn random_name(state: &mut u64) -> String {
    (0..250)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            char::from(b'a' + (*state % 26) as u8)
        })
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (socket, kind, name, threads, secs, max) = match args.as_slice() {
        [s, k, n, t, secs] => (s, k, n, t, secs, u64::MAX),
        [s, k, n, t, secs, max] => (s, k, n, t, secs, max.parse().expect("MAX")),
        _ => {
            eprintln!("usage: asker SOCKET resolve|getpwnam NAME|random THREADS SECONDS [MAX]");
            return ExitCode::from(2);
        }
    };
    let socket = PathBuf::from(socket);
    let threads: u64 = threads.parse().expect("THREADS");
    let end = Instant::now() + Duration::from_secs(secs.parse().expect("SECONDS"));
    let asked = Arc::new(AtomicU64::new(0));
    let counts = Arc::new(Mutex::new(BTreeMap::<&'static str, u64>::new()));
    let answers = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (socket, kind, name) = (socket.clone(), kind.clone(), name.clone());
            let (asked, counts, answers) = (asked.clone(), counts.clone(), answers.clone());
            thread::spawn(move || {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (u64::from(std::process::id()) << 20) ^ i;
                while Instant::now() < end && asked.fetch_add(1, Ordering::SeqCst) < max {
                    // `random`, or `random` and a suffix appended to each random name.
                    let name = if let Some(suffix) = name.strip_prefix("random") {
                        random_name(&mut seed) + suffix
                    } else {
                        name.clone()
                    };
                    let req = match kind.as_str() {
                        "resolve" => Request::Resolve {
                            service: "asker".into(),
                            name,
                        },
                        _ => Request::Getpwnam { name },
                    };
                    let r = call(&socket, &req, Duration::from_secs(10));
                    let what = match &r {
                        Ok(Response::Decision(d)) if d.verdict == Verdict::Allowed => "answered",
                        Ok(Response::Decision(_)) => "denied",
                        Ok(Response::Passwd(_)) => "answered",
                        Ok(Response::Error(e)) if e == "rate limited" => "rate_limited",
                        Ok(Response::Error(e)) if e.contains("connection limit") => "limit",
                        Err(ClientError::Timeout) => "timeout",
                        Err(ClientError::Io(_)) | Err(ClientError::Connect(_)) => "io",
                        _ => "other",
                    };
                    *counts.lock().unwrap().entry(what).or_insert(0) += 1;
                    if name_is_fixed(&req) {
                        let mut a = answers.lock().unwrap();
                        let key = format!("{r:?}");
                        if a.len() < 20 || a.contains_key(&key) {
                            *a.entry(key).or_insert(0) += 1;
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let c = counts.lock().unwrap();
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    println!(
        "asked={} answered={} denied={} rate_limited={} limit={} io={} timeout={} other={}",
        c.values().sum::<u64>(),
        get("answered"),
        get("denied"),
        get("rate_limited"),
        get("limit"),
        get("io"),
        get("timeout"),
        get("other")
    );
    for (answer, n) in answers.lock().unwrap().iter() {
        println!("answer {n} {answer}");
    }
    ExitCode::SUCCESS
}

/// Answers are collected only for a fixed name (a random one is different every time).
fn name_is_fixed(req: &Request) -> bool {
    match req {
        Request::Resolve { name, .. } | Request::Getpwnam { name } => name.len() < 250,
        _ => true,
    }
}
