//! `nss-bench NAME PW_NAME CALLS`: calls `getpwnam_r(NAME)` CALLS times in this one process,
//! through whatever NSS the C library is configured with (nsswitch.conf, or nss_wrapper), checks
//! that every call finds PW_NAME, and prints the mean cost per call:
//! `getpwnam_r NAME: CALLS calls, N ns/call`. Exits 1 on the first wrong or missing answer: a
//! benchmark that is fast by being wrong is worthless. Run by bench/src/nss_cache_bench.rs.

// A benchmark tool: a failure is reported and ends the process.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::{CStr, CString};
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, want, calls] = args.as_slice() else {
        eprintln!("usage: nss-bench NAME PW_NAME CALLS");
        return ExitCode::from(2);
    };
    let calls: u64 = calls.parse().expect("CALLS is a number");
    let cname = CString::new(name.as_str()).expect("no NUL in NAME");
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let start = Instant::now();
    for i in 0..calls {
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: valid NUL-terminated name, writable passwd and buffer, all alive for the call.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                pwd.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 || result.is_null() {
            eprintln!("call {i}: getpwnam_r({name:?}) found nothing (rc {rc})");
            return ExitCode::FAILURE;
        }
        // SAFETY: on success `result` points to `pwd`, whose pw_name points into `buf`.
        let got = unsafe { CStr::from_ptr((*result).pw_name) };
        if got.to_bytes() != want.as_bytes() {
            eprintln!("call {i}: getpwnam_r({name:?}) gave {got:?}, not {want:?}");
            return ExitCode::FAILURE;
        }
    }
    let ns = start.elapsed().as_nanos() / u128::from(calls.max(1));
    println!("getpwnam_r {name}: {calls} calls, {ns} ns/call");
    ExitCode::SUCCESS
}
