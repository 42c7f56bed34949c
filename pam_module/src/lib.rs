//! `pam_accountmap.so`: a thin, synchronous PAM client of `accountmapd`.
//!
//! ```text
//! auth     requisite  pam_accountmap.so [socket=PATH] [verify=none|ldap|oidc|device|proxy]
//!                                       [use_first_pass|try_first_pass] [keep_user]
//!                                       [timeout=SECONDS] [fail_delay=MILLISECONDS] [debug]
//! account  required   pam_accountmap.so [the same options; the credential ones do nothing here]
//! ```
//!
//! Every decision is the daemon's; the module reads PAM_USER (never prompting for it), asks
//! for at most one password (`Password: `, echo off) when `verify=` needs one, sends one request
//! over the Unix socket and maps the verdict to a return code (SPEC, "PAM module").
//!
//! Layout: [`core`] holds the flow against a small trait and is unit-tested with a double;
//! `handle` implements that trait over libpam, whose C interface is declared in the workspace's
//! `pam_ffi` crate (libc only); the hooks below only convert arguments, catch panics and choose
//! the real daemon client.
//!
//! The module runs inside sshd, login, sudo and rserver: it starts no thread or runtime, keeps
//! no global state, installs no logger or panic hook and never exits; a panic becomes PAM_ABORT.

#![deny(unsafe_op_in_unsafe_fn)]

mod core;
mod handle;
mod options;

use crate::core::Env;
use crate::handle::FfiHandle;
use accountmap_wire::memcache::{self, Kind, SharedReader};
use accountmap_wire::{policy_cache, ClientError, Decision, Request, Response, SOCKET_ENV};
use pam_ffi::{pam_handle_t, Code, PAM_ABORT, PAM_IGNORE, PAM_SUCCESS, PAM_SYSTEM_ERR};
use std::ffi::{c_char, c_int, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runs a hook body; a panic (a bug) becomes PAM_ABORT instead of unwinding into C.
fn guard(body: impl FnOnce() -> Code) -> Code {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(PAM_ABORT)
}

/// The module arguments. NULL `argv`, a non-positive `argc` and NULL entries count as absent.
///
/// # Safety
/// `argv` is NULL or points to `argc` pointers, each NULL or a NUL-terminated string, all
/// valid for `'a` (libpam passes the parsed service line, alive during the hook).
unsafe fn args<'a>(argc: c_int, argv: *const *const c_char) -> Vec<&'a [u8]> {
    let n = usize::try_from(argc).unwrap_or(0);
    if argv.is_null() || n == 0 {
        return Vec::new();
    }
    // SAFETY: by the contract above, `argv` points to `n` readable pointers.
    let ptrs = unsafe { std::slice::from_raw_parts(argv, n) };
    ptrs.iter()
        .filter(|p| !p.is_null())
        // SAFETY: each non-NULL entry is a NUL-terminated string valid for `'a`.
        .map(|&p| unsafe { CStr::from_ptr(p) }.to_bytes())
        .collect()
}

extern "C" {
    /// glibc: `getenv` that returns NULL in a setuid/setgid (AT_SECURE) process. Not in the
    /// `libc` crate.
    fn secure_getenv(name: *const c_char) -> *mut c_char;
}

/// `ACCOUNTMAP_SOCKET`, through `secure_getenv`: a setuid or setgid host (su, sudo) never takes
/// its caller's word for where the daemon is. Empty counts as unset.
fn env() -> Env {
    let Ok(name) = CString::new(SOCKET_ENV) else {
        return Env::default();
    };
    // SAFETY: `name` is a NUL-terminated string. The result is NULL or a string in the
    // environment, which we copy at once; the module never modifies the environment.
    let value = unsafe { secure_getenv(name.as_ptr()) };
    let socket = if value.is_null() {
        None
    } else {
        // SAFETY: non-NULL result of secure_getenv: a NUL-terminated string.
        let bytes = unsafe { CStr::from_ptr(value) }.to_bytes();
        (!bytes.is_empty()).then(|| PathBuf::from(OsStr::from_bytes(bytes)))
    };
    Env { socket }
}

/// The real daemon: its decision table in shared memory, else one blocking call with a
/// deadline, no thread, no runtime.
struct RealDaemon;

/// This process's mapping of the decision table (mapped once; the module stays loaded).
static DECISIONS: SharedReader = SharedReader::new(Kind::Policy);

impl core::Daemon for RealDaemon {
    fn call(
        &mut self,
        socket: &Path,
        req: &Request,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        accountmap_wire::call(socket, req, timeout)
    }

    fn decision_table(&mut self, socket: &Path, user: &str) -> Option<Decision> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        // The file is root's (mode 0600): other processes cannot open it and ask the daemon.
        let table = DECISIONS.table(socket, euid)?;
        policy_cache::lookup(&table, user, memcache::now_ns())
    }
}

#[derive(Clone, Copy)]
enum Hook {
    Authenticate,
    AcctMgmt,
}

/// Common body of the two hooks that do work. A NULL handle is PAM_SYSTEM_ERR: libpam never
/// passes one, so it means a broken caller, and there is no handle to log through.
///
/// # Safety
/// As for the hooks: `pamh` is NULL or the live handle of this call; `argc`/`argv` as libpam
/// passes them.
unsafe fn run(
    hook: Hook,
    pamh: *mut pam_handle_t,
    argc: c_int,
    argv: *const *const c_char,
) -> Code {
    guard(|| {
        // SAFETY: the caller guarantees `pamh` is NULL or the live handle of this call.
        let Some(mut h) = (unsafe { FfiHandle::new(pamh) }) else {
            return PAM_SYSTEM_ERR;
        };
        // SAFETY: the caller guarantees `argc`/`argv` as libpam passes them.
        let args = unsafe { args(argc, argv) };
        let env = env();
        match hook {
            Hook::Authenticate => core::authenticate(&mut h, &args, &env, &mut RealDaemon),
            Hook::AcctMgmt => core::acct_mgmt(&mut h, &args, &env, &mut RealDaemon),
        }
    })
}

/// # Safety
/// Called by libpam: `pamh` is the live handle, `argv` holds `argc` C strings.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut pam_handle_t,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: forwarded unchanged from libpam.
    unsafe { run(Hook::Authenticate, pamh, argc, argv) }
}

/// # Safety
/// Called by libpam: `pamh` is the live handle, `argv` holds `argc` C strings.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_acct_mgmt(
    pamh: *mut pam_handle_t,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: forwarded unchanged from libpam.
    unsafe { run(Hook::AcctMgmt, pamh, argc, argv) }
}

/// Nothing to establish: PAM_SUCCESS.
///
/// # Safety
/// None of the arguments is used.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_setcred(
    _pamh: *mut pam_handle_t,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    guard(|| PAM_SUCCESS)
}

/// Nothing to open: PAM_SUCCESS.
///
/// # Safety
/// None of the arguments is used.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_open_session(
    _pamh: *mut pam_handle_t,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    guard(|| PAM_SUCCESS)
}

/// Nothing to close: PAM_SUCCESS.
///
/// # Safety
/// None of the arguments is used.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_close_session(
    _pamh: *mut pam_handle_t,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    guard(|| PAM_SUCCESS)
}

/// Passwords live in LDAP or with the identity provider, not here: PAM_IGNORE, so the stack's
/// other password modules decide.
///
/// # Safety
/// None of the arguments is used.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_chauthtok(
    _pamh: *mut pam_handle_t,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    guard(|| PAM_IGNORE)
}
