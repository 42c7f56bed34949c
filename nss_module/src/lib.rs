//! `libnss_accountmap.so.2`: the `accountmap` NSS source for the `passwd` database (SPEC, "NSS
//! module"), a thin, synchronous client of `accountmapd`.
//!
//! ```text
//! # /etc/nsswitch.conf
//! passwd: files accountmap      # or: files systemd sss accountmap
//! group:  files accountmap      # optional: initgroups_dyn of an alias (`id ALIAS`)
//! ```
//!
//! What it answers, and why:
//! - `getpwnam(alias)`: the resolved local account's entry with `pw_name` = the local name, so
//!   that RStudio's canonicalisation (`getpwnam(typed)` → uid → `getpwuid(uid).pw_name`) gives
//!   the local name and its uid round trip holds. Names that already are local accounts come
//!   back NOTFOUND (the daemon says so): `files` (or sss, ldap) answers them.
//! - `getpwuid`: always NOTFOUND without asking the daemon. The entry of a uid is the local
//!   account's, which the other sources already give, and uid lookups are hot (`ls -l`, `ps`).
//! - enumeration (`setpwent`/`getpwent_r`/`endpwent`): set and end succeed, `getpwent_r` is
//!   NOTFOUND at once: aliases are a mapping, not accounts, and listing every alias an accounts
//!   file or a rewrite rule could match is neither possible nor wanted (`getent passwd` lists
//!   each account once, from its own source).
//! - `initgroups_dyn(alias)`: the local account's supplementary groups, so that `id ALIAS` and
//!   `groups ALIAS` (coreutils calls `getgrouplist` with the typed name) list them. The alias is
//!   resolved through the host's passwd sources and the groups come from its group sources
//!   ([`initgroups`]): a local name is answered by an earlier passwd source and never reaches
//!   the daemon. RStudio, login, sshd and su ask with the local name anyway. nsswitch.conf:
//!   `group: files accountmap` (getgrnam, getgrgid and enumeration are not exported: those
//!   entries come from the other sources).
//!
//! Failure: when the daemon is down, silent, refuses the request (rate limit, directory
//! failure) or answers nonsense, the module returns NSS_STATUS_UNAVAIL with errno ENOENT within
//! [`TIMEOUT`], which nsswitch.conf's default action treats as "try the next source", and
//! `getpwnam_r` reports as "not found". Inside `accountmapd` itself (marked by
//! [`accountmap_wire::DAEMON_ENV`]) it returns UNAVAIL at once without connecting, so the
//! daemon's own lookups never call the daemon.
//!
//! Cache: before asking the daemon, `getpwnam` looks the name up in the daemon's shared-memory
//! cache, `passwd.cache` in the socket's directory ([`accountmap_wire::memcache`]), mapped
//! read-only once per process. An alias the daemon answered within `cache_ttl` is answered from
//! there without any socket I/O; everything else takes the socket path below, unchanged. The
//! file is used only when it is a regular file owned by root or by this process's euid and
//! writable by nobody else (the rule the socket's peer must pass), of the expected layout.
//!
//! The module is loaded into every process on the host, forking and multi-threaded ones
//! included: each call opens its own connection and closes it before returning. The only
//! global state is the cache mapping (one pointer, set once, replaced when the daemon retires
//! the file); there is no thread-local state, no thread, no logger, no panic hook; a panic (a
//! bug) becomes UNAVAIL at each exported function. An answer with a NUL byte in a field, or with uid 0, is
//! refused (NOTFOUND) rather than handed to C.

#![deny(unsafe_op_in_unsafe_fn)]

mod cache;
mod initgroups;

use accountmap_wire::memcache::Cached;
use accountmap_wire::{
    PasswdEntry, Request, Response, DAEMON_ENV, DEFAULT_SOCKET, MAX_NAME_LEN, SOCKET_ENV,
};
use std::ffi::{c_char, c_int, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::ptr;
use std::time::Duration;

/// `enum nss_status` of glibc's `<nss.h>`: an `int` in the C ABI.
pub type NssStatus = c_int;
pub const NSS_STATUS_TRYAGAIN: NssStatus = -2;
pub const NSS_STATUS_UNAVAIL: NssStatus = -1;
pub const NSS_STATUS_NOTFOUND: NssStatus = 0;
pub const NSS_STATUS_SUCCESS: NssStatus = 1;

/// The whole round trip to the daemon, connect included. SPEC asks for UNAVAIL within one
/// second when the daemon is down or silent; the margin under a second covers the work around
/// the call (and a caller that retries with a larger buffer gets a fresh deadline per call).
pub const TIMEOUT: Duration = Duration::from_millis(900);

/// What the daemon's answer means for the C library.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Found(PasswdEntry),
    NotFound,
    Unavailable,
}

extern "C" {
    // glibc, not in the libc crate for Linux. Returns NULL in a setuid or setgid process, so
    // that a caller of su or sudo cannot point the module at a socket of its own.
    fn secure_getenv(name: *const c_char) -> *mut c_char;
}

/// An environment variable through `secure_getenv`; empty counts as unset.
fn env_var(name: &str) -> Option<Vec<u8>> {
    let name = CString::new(name).ok()?;
    // SAFETY: `name` is NUL-terminated and outlives the call. The result is NULL or a string
    // in the environment, copied at once; the module never modifies the environment.
    let value = unsafe { secure_getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: a non-NULL result of secure_getenv is a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(value) }.to_bytes();
    (!bytes.is_empty()).then(|| bytes.to_vec())
}

/// Whether this process is `accountmapd` (which sets [`DAEMON_ENV`] before it starts a thread).
fn in_daemon() -> bool {
    env_var(DAEMON_ENV).is_some()
}

/// `ACCOUNTMAP_SOCKET`, else the default path.
fn socket_path() -> PathBuf {
    match env_var(SOCKET_ENV) {
        Some(bytes) => PathBuf::from(OsStr::from_bytes(&bytes)),
        None => PathBuf::from(DEFAULT_SOCKET),
    }
}

/// Asks the daemon at `socket` which entry `name` stands for.
fn lookup(socket: &Path, name: &[u8], timeout: Duration) -> Outcome {
    // A name the daemon would refuse anyway is not worth a connection.
    let Ok(name) = std::str::from_utf8(name) else {
        return Outcome::NotFound;
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Outcome::NotFound;
    }
    let request = Request::Getpwnam {
        name: name.to_string(),
    };
    match accountmap_wire::call(socket, &request, timeout) {
        Ok(Response::Passwd(Some(pw))) if usable(&pw) => Outcome::Found(pw),
        Ok(Response::Passwd(_)) => Outcome::NotFound,
        // A refusal (rate limit, directory down), another kind of answer, or no answer at all:
        // this source cannot say; the next one in nsswitch.conf may.
        Ok(_) | Err(_) => Outcome::Unavailable,
    }
}

/// Whether an entry can be handed to C as it is: no field may hold a NUL (C would cut it
/// there, or libnss-style code would abort), the name may not be empty, and an alias never
/// stands for uid 0, whatever the socket says.
fn usable(pw: &PasswdEntry) -> bool {
    !pw.name.is_empty()
        && pw.uid != 0
        && [&pw.name, &pw.gecos, &pw.dir, &pw.shell]
            .iter()
            .all(|f| !f.as_bytes().contains(&0))
}

/// The strings of `pw` laid out as the caller's buffer will hold them: each field followed by
/// its NUL, in the order name, password, gecos, dir, shell. Returns the bytes and the offset of
/// each field.
fn image(pw: &PasswdEntry) -> (Vec<u8>, [usize; 5]) {
    // The password field of an NSS passwd entry is "x": the hash, if any, lives in shadow.
    let fields: [&[u8]; 5] = [
        pw.name.as_bytes(),
        b"x",
        pw.gecos.as_bytes(),
        pw.dir.as_bytes(),
        pw.shell.as_bytes(),
    ];
    let mut bytes = Vec::with_capacity(fields.iter().map(|f| f.len() + 1).sum());
    let mut offsets = [0usize; 5];
    for (slot, field) in offsets.iter_mut().zip(fields) {
        *slot = bytes.len();
        bytes.extend_from_slice(field);
        bytes.push(0);
    }
    (bytes, offsets)
}

/// Fills `*result` with `pw`, its strings copied into `buffer`. Returns the status and, for a
/// failure, the errno for `*errnop`.
///
/// # Safety
/// `result` is valid for writes of a `struct passwd`; `buffer` is valid for writes of `buflen`
/// bytes (any alignment; it may be uninitialised).
unsafe fn fill(
    pw: &PasswdEntry,
    result: *mut libc::passwd,
    buffer: *mut c_char,
    buflen: usize,
) -> (NssStatus, Option<c_int>) {
    let (bytes, offsets) = image(pw);
    if bytes.len() > buflen {
        // The C library retries with a larger buffer.
        return (NSS_STATUS_TRYAGAIN, Some(libc::ERANGE));
    }
    let base = buffer.cast::<u8>();
    // SAFETY: `bytes.len() <= buflen`, so the destination range lies inside the caller's
    // buffer; a byte copy has no alignment requirement, and a Vec of ours cannot overlap it.
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), base, bytes.len()) };
    // Offsets are below `bytes.len() <= buflen`, so each pointer stays inside the buffer.
    let at = |i: usize| base.wrapping_add(offsets[i]).cast::<c_char>();
    // SAFETY: `result` is valid for writes of a struct passwd (caller's contract). The fields
    // are written through raw places, never through a reference, so an uninitialised struct
    // is fine.
    unsafe {
        ptr::addr_of_mut!((*result).pw_name).write(at(0));
        ptr::addr_of_mut!((*result).pw_passwd).write(at(1));
        ptr::addr_of_mut!((*result).pw_uid).write(pw.uid);
        ptr::addr_of_mut!((*result).pw_gid).write(pw.gid);
        ptr::addr_of_mut!((*result).pw_gecos).write(at(2));
        ptr::addr_of_mut!((*result).pw_dir).write(at(3));
        ptr::addr_of_mut!((*result).pw_shell).write(at(4));
    }
    (NSS_STATUS_SUCCESS, None)
}

/// Runs an export's body: a panic becomes UNAVAIL, and a failure's errno goes to `*errnop`.
///
/// # Safety
/// `errnop` is NULL or valid for writes of an int.
unsafe fn guard(
    errnop: *mut c_int,
    body: impl FnOnce() -> (NssStatus, Option<c_int>),
) -> NssStatus {
    let (status, errno) =
        catch_unwind(AssertUnwindSafe(body)).unwrap_or((NSS_STATUS_UNAVAIL, Some(libc::ENOENT)));
    if let Some(errno) = errno {
        if !errnop.is_null() {
            // SAFETY: non-NULL `errnop` is valid for writes (this function's contract).
            unsafe { errnop.write(errno) };
        }
    }
    status
}

/// [`_nss_accountmap_getpwnam_r`] against the daemon at `socket`, with `timeout`.
///
/// # Safety
/// As [`_nss_accountmap_getpwnam_r`].
unsafe fn getpwnam_at(
    socket: &Path,
    timeout: Duration,
    name: *const c_char,
    result: *mut libc::passwd,
    buffer: *mut c_char,
    buflen: usize,
) -> (NssStatus, Option<c_int>) {
    if result.is_null() || buffer.is_null() {
        return (NSS_STATUS_UNAVAIL, Some(libc::EINVAL));
    }
    if name.is_null() {
        return (NSS_STATUS_NOTFOUND, Some(libc::ENOENT));
    }
    // SAFETY: a non-NULL `name` is a NUL-terminated string alive for the call (NSS contract).
    let name = unsafe { CStr::from_ptr(name) }.to_bytes();
    // The daemon's shared-memory cache first: a warm alias, or a name the daemon said is no
    // alias, costs no socket I/O.
    match cache::lookup(socket, name) {
        Some(Cached::Entry(pw)) if usable(&pw) => {
            // SAFETY: as below: `result` and `buffer` are non-NULL and valid (NSS contract).
            return unsafe { fill(&pw, result, buffer, buflen) };
        }
        Some(Cached::NotAnAlias) => return (NSS_STATUS_NOTFOUND, Some(libc::ENOENT)),
        _ => {}
    }
    match lookup(socket, name, timeout) {
        // SAFETY: `result` and `buffer` are non-NULL and, by the NSS contract, valid for a
        // struct passwd and `buflen` bytes.
        Outcome::Found(pw) => unsafe { fill(&pw, result, buffer, buflen) },
        Outcome::NotFound => (NSS_STATUS_NOTFOUND, Some(libc::ENOENT)),
        Outcome::Unavailable => (NSS_STATUS_UNAVAIL, Some(libc::ENOENT)),
    }
}

/// `getpwnam_r` for the `accountmap` source: the local entry of an alias.
///
/// # Safety
/// Called by the C library as the NSS interface defines: `name` is NULL or a NUL-terminated
/// string; `result` is valid for writes of a struct passwd; `buffer` is valid for writes of
/// `buflen` bytes; `errnop` is NULL or valid for writes of an int. All outlive the call.
#[no_mangle]
pub unsafe extern "C" fn _nss_accountmap_getpwnam_r(
    name: *const c_char,
    result: *mut libc::passwd,
    buffer: *mut c_char,
    buflen: libc::size_t,
    errnop: *mut c_int,
) -> NssStatus {
    let body = || {
        if in_daemon() {
            return (NSS_STATUS_UNAVAIL, Some(libc::ENOENT));
        }
        // SAFETY: the arguments are passed through unchanged under this function's contract.
        unsafe { getpwnam_at(&socket_path(), TIMEOUT, name, result, buffer, buflen) }
    };
    // SAFETY: `errnop` is NULL or writable (this function's contract).
    unsafe { guard(errnop, body) }
}

/// `getpwuid_r`: NOTFOUND, always. A uid's entry is the local account's, which the other
/// sources give; asking the daemon would only add a round trip to every `ls -l`.
///
/// # Safety
/// `errnop` is NULL or valid for writes of an int; no other argument is touched.
#[no_mangle]
pub unsafe extern "C" fn _nss_accountmap_getpwuid_r(
    _uid: libc::uid_t,
    _result: *mut libc::passwd,
    _buffer: *mut c_char,
    _buflen: libc::size_t,
    errnop: *mut c_int,
) -> NssStatus {
    // SAFETY: `errnop` is NULL or writable (this function's contract).
    unsafe { guard(errnop, || (NSS_STATUS_NOTFOUND, Some(libc::ENOENT))) }
}

/// `setpwent`: nothing to open; enumeration lists no aliases (see the crate documentation).
#[no_mangle]
pub extern "C" fn _nss_accountmap_setpwent(_stayopen: c_int) -> NssStatus {
    NSS_STATUS_SUCCESS
}

/// `getpwent_r`: the end of an empty list, at once.
///
/// # Safety
/// `errnop` is NULL or valid for writes of an int; no other argument is touched.
#[no_mangle]
pub unsafe extern "C" fn _nss_accountmap_getpwent_r(
    _result: *mut libc::passwd,
    _buffer: *mut c_char,
    _buflen: libc::size_t,
    errnop: *mut c_int,
) -> NssStatus {
    // SAFETY: `errnop` is NULL or writable (this function's contract).
    unsafe { guard(errnop, || (NSS_STATUS_NOTFOUND, Some(libc::ENOENT))) }
}

/// `endpwent`: nothing to close.
#[no_mangle]
pub extern "C" fn _nss_accountmap_endpwent() -> NssStatus {
    NSS_STATUS_SUCCESS
}

#[cfg(test)]
mod tests;

/// `initgroups_dyn` for the `accountmap` source: for an alias, appends the local account's
/// supplementary gids (all but `group`) to `*groupsp`; NOTFOUND for any other name.
///
/// # Safety
/// Called by the C library as the NSS interface defines: `user` is NULL or a NUL-terminated
/// string; `start`, `size` and `groupsp` are valid for reads and writes, `*groupsp` a malloc'd
/// array of `*size` gids of which `*start` are set; `errnop` is NULL or valid for writes of an
/// int. All outlive the call.
#[no_mangle]
pub unsafe extern "C" fn _nss_accountmap_initgroups_dyn(
    user: *const c_char,
    group: libc::gid_t,
    start: *mut std::ffi::c_long,
    size: *mut std::ffi::c_long,
    groupsp: *mut *mut libc::gid_t,
    limit: std::ffi::c_long,
    errnop: *mut c_int,
) -> NssStatus {
    let body = || {
        if in_daemon() {
            return (NSS_STATUS_UNAVAIL, Some(libc::ENOENT));
        }
        if user.is_null() {
            return (NSS_STATUS_NOTFOUND, Some(libc::ENOENT));
        }
        if start.is_null() || size.is_null() || groupsp.is_null() {
            return (NSS_STATUS_UNAVAIL, Some(libc::EINVAL));
        }
        // SAFETY: a non-NULL `user` is a NUL-terminated string alive for the call.
        let user = unsafe { CStr::from_ptr(user) };
        match initgroups::alias_groups(user, initgroups::getpwnam) {
            Ok(Some(gids)) => {
                // SAFETY: the pointers are non-NULL and valid under this function's contract.
                let status =
                    unsafe { initgroups::append(&gids, group, start, size, groupsp, limit) };
                let errno = (status != NSS_STATUS_SUCCESS).then_some(libc::ENOMEM);
                (status, errno)
            }
            Ok(None) => (NSS_STATUS_NOTFOUND, Some(libc::ENOENT)),
            Err(status) => (status, Some(libc::ENOENT)),
        }
    };
    // SAFETY: `errnop` is NULL or writable (this function's contract).
    unsafe { guard(errnop, body) }
}
