//! `nss_hammer THREADS ROUNDS FORKS NAME=PW_NAME…`: a multi-threaded, forking host for the NSS
//! module, run by tests/tests/nss_stress.rs under nss_wrapper with `libnss_accountmap.so`.
//!
//! THREADS threads each call `getpwnam_r` ROUNDS times on every NAME and check that `pw_name`
//! is PW_NAME ("-" = must not be found). While they run, the main thread forks FORKS children;
//! each child makes the same lookups once and exits 0 if they were right, 1 if not; a child
//! that does not exit within 5 s is killed and counted as hung (a lock held across fork).
//! Afterwards the process must hold no more sockets than before (no connection leaked).
//! Prints one summary line; exits 0 when everything held.

// Test support: a failure is reported and ends the process.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::{CStr, CString};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// `pw_name` of `getpwnam_r(name)`, `None` when not found (or on error).
fn lookup(name: &CStr) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated name, writable passwd and buffer, all alive for the call.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            pwd.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success `result` points to `pwd`, whose pw_name points into `buf`.
    let name = unsafe { CStr::from_ptr((*result).pw_name) };
    Some(name.to_string_lossy().into_owned())
}

fn all_right(cases: &[(CString, Option<String>)]) -> bool {
    cases.iter().all(|(name, want)| lookup(name) == *want)
}

/// Open sockets of this process, from /proc/self/fd.
fn sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: nss_hammer THREADS ROUNDS FORKS NAME=PW_NAME...");
        return ExitCode::from(2);
    }
    let threads: usize = args[0].parse().expect("THREADS");
    let rounds: usize = args[1].parse().expect("ROUNDS");
    let forks: usize = args[2].parse().expect("FORKS");
    let cases: Arc<Vec<(CString, Option<String>)>> = Arc::new(
        args[3..]
            .iter()
            .map(|a| {
                let (name, want) = a.split_once('=').expect("NAME=PW_NAME");
                let want = (want != "-").then(|| want.to_string());
                (CString::new(name).expect("no NUL"), want)
            })
            .collect(),
    );
    // One lookup first, so the module is loaded before the baseline is taken.
    let first_ok = all_right(&cases);
    let baseline = sockets();

    let wrong = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (cases, wrong, done) = (cases.clone(), wrong.clone(), done.clone());
            thread::spawn(move || {
                for _ in 0..rounds {
                    for (name, want) in cases.iter() {
                        if lookup(name) != *want {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    let (mut children_ok, mut children_wrong, mut children_hung) = (0, 0, 0);
    for _ in 0..forks {
        // SAFETY: fork in a multi-threaded process. The child only runs lookups (what a forking
        // host such as sshd or a pre-fork server does after fork) and then _exit()s.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = if all_right(&cases) { 0 } else { 1 };
            // SAFETY: _exit is async-signal-safe and skips the parent's atexit handlers.
            unsafe { libc::_exit(code) };
        }
        assert!(pid > 0, "fork failed");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut status = 0;
            // SAFETY: waits for our own child without blocking.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                    children_ok += 1;
                } else {
                    children_wrong += 1;
                }
                break;
            }
            if Instant::now() > deadline {
                // SAFETY: our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                children_hung += 1;
                break;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
    for w in workers {
        w.join().expect("a worker thread panicked");
    }
    let elapsed = start.elapsed();
    let after = sockets();
    let wrong = wrong.load(Ordering::Relaxed);
    let done = done.load(Ordering::Relaxed);
    println!(
        "lookups={done} wrong={wrong} first_ok={first_ok} elapsed_ms={} children_ok={children_ok} children_wrong={children_wrong} children_hung={children_hung} sockets_before={baseline} sockets_after={after}",
        elapsed.as_millis()
    );
    if first_ok && wrong == 0 && children_wrong == 0 && children_hung == 0 && after <= baseline {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
