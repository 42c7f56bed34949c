//! The driver's PAM transaction (over the workspace's `pam_ffi` crate, which declares libpam)
//! and the little of libc it needs besides: NSS look-ups, CPU clocks, dlopen.

use pam_ffi::{pam_conv, pam_message, pam_response, AppHandle, PAM_CONV_ERR, PAM_SUCCESS};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// How many times any module called the conversation (neither stack should: the user name is
/// given to pam_start and neither module asks for a password).
pub static CONVERSATION_CALLS: AtomicU64 = AtomicU64::new(0);

/// The conversation: with no password (`appdata_ptr` NULL) it answers nothing, so every prompt
/// fails the transaction with PAM_CONV_ERR; with a password (`appdata_ptr` a NUL-terminated
/// string) it answers echo-off prompts with it, as rserver-pam does (pam_unix stacks).
extern "C" fn no_answer_conversation(
    num_msg: c_int,
    msg: *mut *const pam_message,
    resp: *mut *mut pam_response,
    appdata_ptr: *mut c_void,
) -> c_int {
    CONVERSATION_CALLS.fetch_add(1, Ordering::Relaxed);
    if resp.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: libpam passes `resp` as a valid out-pointer for the reply array; we checked it
    // is not NULL, and writing NULL there means "no replies", which libpam expects on error.
    unsafe { *resp = ptr::null_mut() };
    let n = usize::try_from(num_msg).unwrap_or(0);
    if appdata_ptr.is_null() || msg.is_null() || n == 0 || n > 32 {
        return PAM_CONV_ERR;
    }
    // SAFETY: a non-NULL appdata_ptr is the NUL-terminated password `transaction` passed,
    // alive for the whole transaction.
    let password = unsafe { CStr::from_ptr(appdata_ptr as *const c_char) };
    // SAFETY: calloc of n zeroed replies (NULL resp strings, resp_retcode 0); libpam frees it.
    let replies =
        unsafe { libc::calloc(n, std::mem::size_of::<pam_response>()) } as *mut pam_response;
    if replies.is_null() {
        return PAM_CONV_ERR;
    }
    for i in 0..n {
        // SAFETY: Linux-PAM passes `msg` as an array of `n` pointers to messages.
        let m = unsafe { &**msg.add(i) };
        if m.msg_style == pam_ffi::PAM_PROMPT_ECHO_OFF {
            // SAFETY: `password` is NUL-terminated; strdup's copy is freed by libpam.
            let copy = unsafe { libc::strdup(password.as_ptr()) };
            // SAFETY: `replies` has room for `n` entries.
            unsafe { (*replies.add(i)).resp = copy };
        }
    }
    // SAFETY: checked non-NULL above.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// The return codes of one transaction and the time spent in each of its four calls.
pub struct Transaction {
    /// pam_start_confdir, pam_authenticate, pam_acct_mgmt (the last two are -1 when pam_start
    /// failed and they were not called; pam_start's is PAM_SYSTEM_ERR when it claimed success
    /// without a handle).
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
/// With `password`, echo-off prompts are answered with it.
pub fn transaction(
    service: &CStr,
    user: &CStr,
    confdir: &CStr,
    password: Option<&CStr>,
) -> Transaction {
    let conv = pam_conv {
        conv: Some(no_answer_conversation),
        appdata_ptr: password.map_or(ptr::null_mut(), |p| p.as_ptr() as *mut c_void),
    };
    let t0 = Instant::now();
    // SAFETY: the conversation's data is NULL or `password`, which outlives the handle.
    let started = unsafe { AppHandle::start_confdir(service, user, &conv, confdir) };
    let t1 = Instant::now();
    let mut pamh = match started {
        Ok(pamh) => pamh,
        Err(start) => {
            return Transaction {
                codes: [start, -1, -1],
                phase_ns: [ns(t0, t1), 0, 0, 0],
            }
        }
    };
    let start = PAM_SUCCESS;
    let auth = pamh.authenticate(0);
    let t2 = Instant::now();
    let acct = pamh.acct_mgmt(0);
    let t3 = Instant::now();
    pamh.end(acct);
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
