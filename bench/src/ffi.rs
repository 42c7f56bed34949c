//! The little of libpam (the application side) and of libc's NSS calls that the driver needs,
//! declared by hand. Numbers and layouts are those of `/usr/include/security/_pam_types.h` and
//! `pam_appl.h` (Linux-PAM 1.5).

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::marker::{PhantomData, PhantomPinned};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub const PAM_SUCCESS: c_int = 0;
pub const PAM_BUF_ERR: c_int = 5;
pub const PAM_PERM_DENIED: c_int = 6;
pub const PAM_AUTH_ERR: c_int = 7;
pub const PAM_CONV_ERR: c_int = 19;
pub const PAM_PROMPT_ECHO_OFF: c_int = 1;
pub const PAM_PROMPT_ECHO_ON: c_int = 2;

/// The name of a Linux-PAM return code, for messages.
pub fn code_name(code: c_int) -> &'static str {
    match code {
        0 => "PAM_SUCCESS",
        1 => "PAM_OPEN_ERR",
        2 => "PAM_SYMBOL_ERR",
        3 => "PAM_SERVICE_ERR",
        4 => "PAM_SYSTEM_ERR",
        5 => "PAM_BUF_ERR",
        6 => "PAM_PERM_DENIED",
        7 => "PAM_AUTH_ERR",
        8 => "PAM_CRED_INSUFFICIENT",
        9 => "PAM_AUTHINFO_UNAVAIL",
        10 => "PAM_USER_UNKNOWN",
        11 => "PAM_MAXTRIES",
        12 => "PAM_NEW_AUTHTOK_REQD",
        13 => "PAM_ACCT_EXPIRED",
        19 => "PAM_CONV_ERR",
        25 => "PAM_IGNORE",
        26 => "PAM_ABORT",
        _ => "PAM_(other)",
    }
}

/// The opaque `pam_handle_t`.
#[repr(C)]
pub struct pam_handle_t {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `struct pam_message`.
#[repr(C)]
pub struct pam_message {
    pub msg_style: c_int,
    pub msg: *const c_char,
}

/// `struct pam_response`.
#[repr(C)]
pub struct pam_response {
    pub resp: *mut c_char,
    pub resp_retcode: c_int,
}

pub type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const pam_message,
    resp: *mut *mut pam_response,
    appdata_ptr: *mut c_void,
) -> c_int;

/// `struct pam_conv`.
#[repr(C)]
pub struct pam_conv {
    pub conv: Option<ConvFn>,
    pub appdata_ptr: *mut c_void,
}

#[link(name = "pam")]
extern "C" {
    pub fn pam_start_confdir(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const pam_conv,
        confdir: *const c_char,
        pamh: *mut *mut pam_handle_t,
    ) -> c_int;
    pub fn pam_authenticate(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
    pub fn pam_acct_mgmt(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
    pub fn pam_end(pamh: *mut pam_handle_t, pam_status: c_int) -> c_int;
}

/// How many times any module called the conversation (neither stack should: the user name is
/// given to pam_start and neither module asks for a password).
pub static CONVERSATION_CALLS: AtomicU64 = AtomicU64::new(0);

/// A conversation that answers nothing: every prompt fails the transaction with PAM_CONV_ERR.
extern "C" fn no_answer_conversation(
    _num_msg: c_int,
    _msg: *mut *const pam_message,
    resp: *mut *mut pam_response,
    _appdata_ptr: *mut c_void,
) -> c_int {
    CONVERSATION_CALLS.fetch_add(1, Ordering::Relaxed);
    if !resp.is_null() {
        // SAFETY: libpam passes `resp` as a valid out-pointer for the reply array; we checked it
        // is not NULL, and writing NULL there means "no replies", which libpam expects on error.
        unsafe { *resp = ptr::null_mut() };
    }
    PAM_CONV_ERR
}

/// The return codes of one transaction and the time spent in each of its four calls.
pub struct Transaction {
    /// pam_start_confdir, pam_authenticate, pam_acct_mgmt (the last two are -1 when pam_start
    /// failed and they were not called).
    pub codes: [c_int; 3],
    /// Nanoseconds in pam_start_confdir, pam_authenticate, pam_acct_mgmt, pam_end.
    pub phase_ns: [u64; 4],
}

fn ns(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.duration_since(from).as_nanos()).unwrap_or(u64::MAX)
}

/// One full PAM transaction with a fresh handle, as sshd or rserver-pam does it:
/// pam_start_confdir + pam_authenticate + pam_acct_mgmt + pam_end. Both phases are always called
/// so that both verdicts are checked.
pub fn transaction(service: &CStr, user: &CStr, confdir: &CStr) -> Transaction {
    let conv = pam_conv {
        conv: Some(no_answer_conversation),
        appdata_ptr: ptr::null_mut(),
    };
    let mut pamh: *mut pam_handle_t = ptr::null_mut();
    let t0 = Instant::now();
    // SAFETY: the three strings are NUL-terminated and outlive the call, `conv` lives on this
    // stack frame for the whole transaction (libpam copies it anyway), and `pamh` is a valid
    // out-pointer.
    let start = unsafe {
        pam_start_confdir(
            service.as_ptr(),
            user.as_ptr(),
            &conv,
            confdir.as_ptr(),
            &mut pamh,
        )
    };
    let t1 = Instant::now();
    if start != PAM_SUCCESS || pamh.is_null() {
        if !pamh.is_null() {
            // SAFETY: `pamh` is a handle pam_start_confdir returned; it is ended exactly once.
            unsafe { pam_end(pamh, start) };
        }
        return Transaction {
            codes: [if start == PAM_SUCCESS { -1 } else { start }, -1, -1],
            phase_ns: [ns(t0, t1), 0, 0, 0],
        };
    }
    // SAFETY: `pamh` is a live handle from pam_start_confdir, used by this thread only.
    let auth = unsafe { pam_authenticate(pamh, 0) };
    let t2 = Instant::now();
    // SAFETY: as above; the handle has not been ended.
    let acct = unsafe { pam_acct_mgmt(pamh, 0) };
    let t3 = Instant::now();
    // SAFETY: as above; this is the single pam_end for the handle, which is not used after it.
    unsafe { pam_end(pamh, acct) };
    let t4 = Instant::now();
    Transaction {
        codes: [start, auth, acct],
        phase_ns: [ns(t0, t1), ns(t1, t2), ns(t2, t3), ns(t3, t4)],
    }
}

/// CPU time this thread has used, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is always available
    // on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// User + system CPU time of a whole process (all its threads, dead ones included) from
/// `/proc/PID/stat`, in nanoseconds (resolution: one clock tick).
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; the fields after its ')' are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    // After ')': state is field 3, so utime (14) and stime (15) are the 12th and 13th here.
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&h| h > 0)?;
    Some((utime + stime).saturating_mul(1_000_000_000) / hz)
}

/// nss_wrapper 1.1.12's `*_r` calls return -1 and set errno (ERANGE for a short buffer) where
/// POSIX and glibc return the error number itself.
fn errno_if_minus_one(rc: c_int) -> c_int {
    if rc == -1 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(rc)
    } else {
        rc
    }
}

/// A user's uid, primary gid and group list as the process's NSS (nss_wrapper in the run) sees
/// them.
pub struct NssUser {
    pub uid: libc::uid_t,
    pub gids: Vec<libc::gid_t>,
}

/// `getpwnam_r` + `getgrouplist`. `Err` for a lookup error, `Ok(None)` for no such user.
pub fn nss_user(name: &CStr) -> Result<Option<NssUser>, String> {
    let mut buf: Vec<c_char> = vec![0; 4096];
    let Some(pwd) = getpwnam(name, &mut buf)? else {
        return Ok(None);
    };
    let gids = group_list(name, pwd.pw_gid)?;
    Ok(Some(NssUser {
        uid: pwd.pw_uid,
        gids,
    }))
}

/// `getpwnam_r(name)`, growing `buf` (kept by the caller across calls) on ERANGE. The entry's
/// strings point into `buf`. `Err` for a lookup error, `Ok(None)` for no such user.
pub fn getpwnam(name: &CStr, buf: &mut Vec<c_char>) -> Result<Option<libc::passwd>, String> {
    loop {
        // SAFETY: an all-zero `struct passwd` is a valid value (null pointers, zero ids).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = ptr::null_mut();
        // SAFETY: `name` is NUL-terminated; `pwd`, `buf` (with its true length) and `result`
        // are valid for writes for the duration of the call.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        let rc = errno_if_minus_one(rc);
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            let longer = buf.len() * 4;
            buf.resize(longer, 0);
            continue;
        }
        if rc != 0 {
            return Err(format!(
                "getpwnam_r({}): {}",
                name.to_string_lossy(),
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        return Ok((!result.is_null()).then_some(pwd));
    }
}

fn group_list(name: &CStr, primary: libc::gid_t) -> Result<Vec<libc::gid_t>, String> {
    let mut n: c_int = 64;
    for _ in 0..8 {
        let mut gids: Vec<libc::gid_t> = vec![0; usize::try_from(n).unwrap_or(64)];
        let mut count = n;
        // SAFETY: `name` is NUL-terminated, `gids` has room for `count` entries, and `count` is a
        // valid in/out pointer.
        let rc =
            unsafe { libc::getgrouplist(name.as_ptr(), primary, gids.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            gids.truncate(usize::try_from(count).unwrap_or(0));
            return Ok(gids);
        }
        n = count.max(n.saturating_mul(2));
    }
    Err(format!(
        "getgrouplist({}): too many groups",
        name.to_string_lossy()
    ))
}

/// `getgrnam_r`: the gid of a group, `Ok(None)` when it does not exist.
pub fn nss_group_gid(name: &CStr) -> Result<Option<libc::gid_t>, String> {
    let mut buf: Vec<c_char> = vec![0; 16384];
    loop {
        // SAFETY: an all-zero `struct group` is a valid value.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = ptr::null_mut();
        // SAFETY: `name` is NUL-terminated; `grp`, `buf` (with its true length) and `result` are
        // valid for writes for the duration of the call.
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        let rc = errno_if_minus_one(rc);
        if rc == libc::ERANGE && buf.len() < (1 << 24) {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(format!(
                "getgrnam_r({}): {}",
                name.to_string_lossy(),
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        return Ok(if result.is_null() {
            None
        } else {
            Some(grp.gr_gid)
        });
    }
}

/// A shared object kept loaded for the life of the process (`--pin`), so that libpam's
/// per-transaction dlopen/dlclose of it only moves a reference count. Diagnostic only.
pub struct Pinned(#[allow(dead_code)] *mut c_void);

pub fn pin(path: &str) -> Result<Pinned, String> {
    let c = CString::new(path).map_err(|_| format!("{path}: NUL in path"))?;
    // SAFETY: `c` is NUL-terminated. Loading a PAM module runs its initialisers, exactly as
    // libpam's own dlopen of it would.
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW) };
    if handle.is_null() {
        // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl call.
        let err = unsafe { libc::dlerror() };
        let msg = if err.is_null() {
            "unknown error".to_string()
        } else {
            // SAFETY: non-NULL, NUL-terminated, not yet invalidated.
            unsafe { CStr::from_ptr(err) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(format!("dlopen {path}: {msg}"));
    }
    Ok(Pinned(handle))
}
