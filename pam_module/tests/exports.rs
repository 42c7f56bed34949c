//! The built `.so` is a loadable PAM module: it exports exactly the six hooks, needs libpam
//! explicitly, stays mapped after dlclose, and every symbol it needs can be resolved.

// Test code: a failed unwrap is a failed test (clippy.toml allows it only inside #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, c_void, CString};
use std::process::Command;

const HOOKS: [&str; 6] = [
    "pam_sm_acct_mgmt",
    "pam_sm_authenticate",
    "pam_sm_chauthtok",
    "pam_sm_close_session",
    "pam_sm_open_session",
    "pam_sm_setcred",
];

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// (type letter, name without version) of each dynamic symbol `nm -D` lists.
fn dynamic_symbols(path: &str, which: &str) -> Vec<(String, String)> {
    run("nm", &["-D", which, path])
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().rev();
            let name = f.next()?;
            let kind = f.next()?;
            Some((kind.to_string(), name.split('@').next()?.to_string()))
        })
        .collect()
}

#[test]
fn exports_exactly_the_six_hooks() {
    let so = common::cdylib();
    let so = so.to_str().unwrap();
    let functions: BTreeSet<String> = dynamic_symbols(so, "--defined-only")
        .into_iter()
        .filter(|(k, _)| k == "T")
        .map(|(_, n)| n)
        .collect();
    let want: BTreeSet<String> = HOOKS.iter().map(|s| s.to_string()).collect();
    assert_eq!(functions, want);
}

#[test]
fn links_libpam_and_every_pam_symbol_exists_there() {
    let so = common::cdylib();
    let so = so.to_str().unwrap();
    let dynamic = run("readelf", &["-d", so]);
    assert!(dynamic.contains("[libpam.so.0]"), "{dynamic}");
    assert!(dynamic.contains("NODELETE"), "{dynamic}");
    let libpam = [
        "/lib/x86_64-linux-gnu/libpam.so.0",
        "/usr/lib64/libpam.so.0",
        "/lib64/libpam.so.0",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("libpam.so.0");
    let provided: BTreeSet<String> = dynamic_symbols(libpam, "--defined-only")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    let needed: Vec<String> = dynamic_symbols(so, "--undefined-only")
        .into_iter()
        .map(|(_, n)| n)
        .filter(|n| n.starts_with("pam_"))
        .collect();
    assert!(!needed.is_empty());
    for n in &needed {
        assert!(provided.contains(n), "{n} is not in {libpam}");
    }
    assert!(
        !needed.iter().any(|n| n == "pam_get_user"),
        "must never call pam_get_user"
    );
}

type Hook = unsafe extern "C" fn(*mut c_void, c_int, c_int, *const *const c_char) -> c_int;

#[test]
fn loads_with_rtld_now_and_hooks_survive_null_arguments() {
    let so = CString::new(common::cdylib().to_str().unwrap()).unwrap();
    // RTLD_NOW: fails if any undefined symbol cannot be resolved.
    let lib = unsafe { libc::dlopen(so.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!lib.is_null(), "dlopen failed");
    let hook = |name: &str| -> Hook {
        let c = CString::new(name).unwrap();
        let p = unsafe { libc::dlsym(lib, c.as_ptr()) };
        assert!(!p.is_null(), "{name} missing");
        unsafe { std::mem::transmute::<*mut c_void, Hook>(p) }
    };
    let null = std::ptr::null_mut();
    // PAM_SYSTEM_ERR (4) without a handle; the fixed hooks do not look at it.
    assert_eq!(
        unsafe { hook("pam_sm_authenticate")(null, 0, 3, std::ptr::null()) },
        4
    );
    assert_eq!(
        unsafe { hook("pam_sm_acct_mgmt")(null, 0, 0, std::ptr::null()) },
        4
    );
    assert_eq!(
        unsafe { hook("pam_sm_setcred")(null, 0, 0, std::ptr::null()) },
        0
    );
    assert_eq!(
        unsafe { hook("pam_sm_open_session")(null, 0, 0, std::ptr::null()) },
        0
    );
    assert_eq!(
        unsafe { hook("pam_sm_close_session")(null, 0, 0, std::ptr::null()) },
        0
    );
    assert_eq!(
        unsafe { hook("pam_sm_chauthtok")(null, 0, 0, std::ptr::null()) },
        25
    );
    // -z nodelete: dlclose must leave it mapped.
    assert_eq!(unsafe { libc::dlclose(lib) }, 0);
    let again = unsafe { libc::dlopen(so.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
    assert!(!again.is_null(), "unmapped by dlclose despite -z nodelete");
}
