//! Account data from the system's NSS (`getpwnam_r`, `getgrouplist`, `getgrgid_r`), and the
//! minimum uid from `/etc/login.defs`.
//!
//! The daemon asks through the [`Directory`] trait so that it can cache answers and so that tests
//! and benchmarks can use an in-memory [`StaticDirectory`] instead of the host's accounts.
//!
//! "No such user" and "the system could not answer" are kept apart on purpose: the first is
//! `Ok(None)` (PAM_USER_UNKNOWN), the second a [`LookupError`] (PAM_AUTHINFO_UNAVAIL), so that an
//! LDAP-backed NSS that is down never looks like a user that does not exist.
//!
//! These calls go through nsswitch.conf, which may list accountmap's own NSS module; keeping that
//! module from answering the daemon (and so recursing) is the NSS module's job, not this one's.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt;
use std::io::Read;
use std::mem::MaybeUninit;
use std::path::Path;
use std::ptr;

/// One account as NSS reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub dir: String,
    pub shell: String,
    /// Group names as `getgrouplist` reports them: the primary group first, no duplicates. A gid
    /// that has no group entry is shown as its number.
    pub groups: Vec<String>,
}

/// The system could not give a usable answer. Never means "no such user".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// NSS failed (an errno other than "not found", e.g. an LDAP backend that is down).
    Failed(String),
    /// NSS answered with an entry that cannot be used as is (a field that is not UTF-8, an entry
    /// or group list beyond our size bounds). It is refused rather than guessed at.
    Unusable(String),
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::Failed(m) => write!(f, "account lookup failed: {m}"),
            LookupError::Unusable(m) => write!(f, "unusable account entry: {m}"),
        }
    }
}

impl std::error::Error for LookupError {}

/// Where account data comes from. The daemon wraps it in a cache; tests use an in-memory table.
pub trait Directory: Send + Sync {
    /// The account called `name`, `Ok(None)` if there is none.
    fn account(&self, name: &str) -> Result<Option<Account>, LookupError>;
    /// The login name of `uid`, `Ok(None)` if no account has it (a caller's own name, for the
    /// rule that a non-root caller may ask only about itself).
    fn name_of_uid(&self, uid: u32) -> Result<Option<String>, LookupError>;
}

/// The host's NSS, through libc.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemDirectory;

impl Directory for SystemDirectory {
    fn account(&self, name: &str) -> Result<Option<Account>, LookupError> {
        // A name with a NUL cannot be passed to C; no account can have one.
        let Ok(cname) = CString::new(name) else {
            return Ok(None);
        };
        let Some(mut account) = getpwnam(&cname, name)? else {
            return Ok(None);
        };
        // Ask for groups under the name NSS returned: that is the name group entries list. It
        // came from a C string, so it has no NUL; the error arm only keeps this panic-free.
        let Ok(pw_name) = CString::new(account.name.as_str()) else {
            return Err(LookupError::Unusable(format!(
                "passwd entry for {name:?} has a name with a NUL byte"
            )));
        };
        let gids = getgrouplist(&pw_name, account.gid)?;
        account.groups = group_names(account.gid, &gids)?;
        Ok(Some(account))
    }

    fn name_of_uid(&self, uid: u32) -> Result<Option<String>, LookupError> {
        Ok(passwd_by_uid(uid)?.map(|a| a.name))
    }
}

/// Bounds on what one NSS answer may take, so that a broken or hostile backend cannot make the
/// daemon allocate without limit.
const INITIAL_BUFFER: usize = 1024;
const MAX_PASSWD_BUFFER: usize = 1 << 20;
/// Group entries carry their member lists; large directory groups need far more than a passwd
/// entry does.
const MAX_GROUP_BUFFER: usize = 16 << 20;
/// Linux's NGROUPS_MAX.
const MAX_GROUPS: usize = 65536;
/// A lookup interrupted by a signal is retried, but not forever.
const MAX_EINTR_RETRIES: u32 = 8;

/// The errno values `getpwnam_r(3)` and `getgrgid_r(3)` list as "the given name or id was not
/// found".
fn is_not_found(rc: c_int) -> bool {
    matches!(rc, libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM)
}

fn os_error(rc: c_int) -> String {
    std::io::Error::from_raw_os_error(rc).to_string()
}

/// The error number of a `get*_r` call. POSIX has them return it; some NSS layers (nss_wrapper
/// 1.1, used by the tests and the benchmark) return -1 and leave it in errno instead, which
/// would otherwise hide an ERANGE ("buffer too small") behind an unknown error.
fn error_number(rc: c_int) -> c_int {
    if rc == -1 {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        rc
    }
}

/// The signature shared by `getpwnam_r` and `getpwuid_r` once the key is bound.
type PasswdCall<'a> =
    dyn FnMut(*mut libc::passwd, *mut c_char, libc::size_t, *mut *mut libc::passwd) -> c_int + 'a;

/// Runs a `getpw*_r` call, growing the buffer on ERANGE (bounded), retrying EINTR (bounded),
/// and turns the entry into an [`Account`]. `key` (the name or uid asked for) and `call` (the
/// function) are for messages.
fn passwd_lookup(
    key: &str,
    function: &str,
    call: &mut PasswdCall<'_>,
) -> Result<Option<Account>, LookupError> {
    let mut size = INITIAL_BUFFER;
    let mut interrupted = 0;
    loop {
        let mut buf: Vec<c_char> = vec![0; size];
        let mut pwd = MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = ptr::null_mut();
        let rc = error_number(call(
            pwd.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        ));
        match rc {
            0 if result.is_null() => return Ok(None),
            0 => {
                // SAFETY: on success `result` points to `pwd`, filled in by the call, whose
                // strings point into `buf`; both are alive until the end of this block.
                let pw = unsafe { &*result };
                // SAFETY: `pw` was just filled in by the call and `buf` is still alive.
                return unsafe { passwd_to_account(pw, key) }.map(Some);
            }
            libc::ERANGE if size < MAX_PASSWD_BUFFER => size *= 2,
            libc::ERANGE => {
                return Err(LookupError::Unusable(format!(
                    "passwd entry of {key} is larger than {MAX_PASSWD_BUFFER} bytes"
                )))
            }
            libc::EINTR if interrupted < MAX_EINTR_RETRIES => interrupted += 1,
            rc if is_not_found(rc) => return Ok(None),
            rc => {
                return Err(LookupError::Failed(format!(
                    "{function}({key:?}): {}",
                    os_error(rc)
                )))
            }
        }
    }
}

fn getpwnam(cname: &CStr, name: &str) -> Result<Option<Account>, LookupError> {
    passwd_lookup(name, "getpwnam_r", &mut |pwd, buf, len, result| {
        // SAFETY: `cname` is NUL-terminated; `pwd` and `result` are valid for writes and `buf`
        // for `len` bytes (passwd_lookup owns them across the call, which keeps no pointer).
        unsafe { libc::getpwnam_r(cname.as_ptr(), pwd, buf, len, result) }
    })
}

/// The passwd entry of `uid` through the system's NSS (`getpwuid_r`), groups left empty.
/// Used by `accountmapctl test-login` for RStudio's uid round trip, and by the daemon for the
/// own name of a non-root caller.
pub fn passwd_by_uid(uid: u32) -> Result<Option<Account>, LookupError> {
    passwd_lookup(
        &format!("uid {uid}"),
        "getpwuid_r",
        &mut |pwd, buf, len, result| {
            // SAFETY: `pwd` and `result` are valid for writes and `buf` for `len` bytes
            // (passwd_lookup owns them across the call, which keeps no pointer).
            unsafe { libc::getpwuid_r(uid, pwd, buf, len, result) }
        },
    )
}

/// Copies a passwd entry out of libc's buffer. `groups` is filled in by the caller.
///
/// # Safety
/// Every string field of `pw` is NULL or points to a NUL-terminated string that stays valid for
/// the call, as it does for an entry getpwnam_r has just returned.
unsafe fn passwd_to_account(pw: &libc::passwd, name: &str) -> Result<Account, LookupError> {
    let field = |ptr: *const c_char, what: &str| -> Result<String, LookupError> {
        if ptr.is_null() {
            return Ok(String::new());
        }
        // SAFETY: by this function's contract, a non-NULL string field of `pw` points to a
        // NUL-terminated string that is alive for the call.
        let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            LookupError::Unusable(format!(
                "the {what} field of the passwd entry for {name:?} is not UTF-8"
            ))
        })
    };
    let pw_name = field(pw.pw_name, "name")?;
    if pw_name.is_empty() {
        return Err(LookupError::Unusable(format!(
            "the passwd entry for {name:?} has no name"
        )));
    }
    Ok(Account {
        name: pw_name,
        uid: pw.pw_uid,
        gid: pw.pw_gid,
        gecos: field(pw.pw_gecos, "gecos")?,
        dir: field(pw.pw_dir, "home directory")?,
        shell: field(pw.pw_shell, "shell")?,
        groups: Vec::new(),
    })
}

/// Every gid `user` is in, as `getgrouplist` reports it (primary `gid` included).
fn getgrouplist(user: &CStr, gid: u32) -> Result<Vec<u32>, LookupError> {
    let mut capacity: usize = 64;
    loop {
        let mut gids: Vec<libc::gid_t> = vec![0; capacity];
        // `capacity` never exceeds MAX_GROUPS, which fits in a c_int.
        let mut count = c_int::try_from(capacity).unwrap_or(c_int::MAX);
        // SAFETY: `user` is NUL-terminated; `gids` is writable for `count` gids and `count` is
        // valid for writes; the call keeps no pointer to either.
        let rc = unsafe { libc::getgrouplist(user.as_ptr(), gid, gids.as_mut_ptr(), &mut count) };
        let reported = usize::try_from(count).unwrap_or(0);
        if rc >= 0 {
            gids.truncate(reported.min(capacity));
            return Ok(gids);
        }
        // -1: the list did not fit; glibc has put the number needed in `count`.
        if capacity >= MAX_GROUPS {
            return Err(LookupError::Unusable(format!(
                "{:?} is in more than {MAX_GROUPS} groups",
                user.to_string_lossy()
            )));
        }
        capacity = reported.max(capacity * 2).min(MAX_GROUPS);
    }
}

/// Group names for `gids`, the primary group first and without duplicates.
fn group_names(primary: u32, gids: &[u32]) -> Result<Vec<String>, LookupError> {
    let mut ordered = vec![primary];
    for &g in gids {
        if !ordered.contains(&g) {
            ordered.push(g);
        }
    }
    // One buffer for all groups: it only grows, so each large group is paid for once.
    let mut buf: Vec<c_char> = vec![0; INITIAL_BUFFER];
    let mut names: Vec<String> = Vec::with_capacity(ordered.len());
    for g in ordered {
        let name = getgrgid(g, &mut buf)?.unwrap_or_else(|| g.to_string());
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

fn getgrgid(gid: u32, buf: &mut Vec<c_char>) -> Result<Option<String>, LookupError> {
    let mut interrupted = 0;
    loop {
        let mut grp = MaybeUninit::<libc::group>::uninit();
        let mut result: *mut libc::group = ptr::null_mut();
        // SAFETY: `grp` and `result` are valid for writes; `buf` is writable for `buf.len()`
        // bytes. All outlive the call, which keeps no pointer to them.
        let rc = error_number(unsafe {
            libc::getgrgid_r(
                gid,
                grp.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        });
        match rc {
            0 if result.is_null() => return Ok(None),
            0 => {
                // SAFETY: on success `result` points to `grp`, filled in by getgrgid_r, whose
                // strings point into `buf`; both are alive until the end of this block.
                let gr_name = unsafe { (*result).gr_name };
                if gr_name.is_null() {
                    return Ok(None);
                }
                // SAFETY: a non-NULL gr_name of a successful getgrgid_r is a NUL-terminated
                // string inside `buf`, which is alive and not written to meanwhile.
                let bytes = unsafe { CStr::from_ptr(gr_name) }.to_bytes();
                return match String::from_utf8(bytes.to_vec()) {
                    Ok(name) if !name.is_empty() => Ok(Some(name)),
                    Ok(_) => Ok(None),
                    Err(_) => Err(LookupError::Unusable(format!(
                        "the name of group {gid} is not UTF-8"
                    ))),
                };
            }
            libc::ERANGE if buf.len() < MAX_GROUP_BUFFER => {
                let larger = buf.len() * 2;
                buf.resize(larger, 0);
            }
            libc::ERANGE => {
                return Err(LookupError::Unusable(format!(
                    "group entry {gid} is larger than {MAX_GROUP_BUFFER} bytes"
                )))
            }
            libc::EINTR if interrupted < MAX_EINTR_RETRIES => interrupted += 1,
            rc if is_not_found(rc) => return Ok(None),
            rc => {
                return Err(LookupError::Failed(format!(
                    "getgrgid_r({gid}): {}",
                    os_error(rc)
                )))
            }
        }
    }
}

/// An in-memory table of accounts, for unit tests and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct StaticDirectory {
    accounts: HashMap<String, Account>,
    failures: HashMap<String, LookupError>,
}

impl StaticDirectory {
    /// A directory holding `accounts`, looked up by exact name (NSS names are case-sensitive).
    pub fn new(accounts: Vec<Account>) -> Self {
        StaticDirectory {
            accounts: accounts.into_iter().map(|a| (a.name.clone(), a)).collect(),
            failures: HashMap::new(),
        }
    }

    /// Makes lookups of `name` fail with `error`, to test how callers handle a backend that
    /// cannot answer.
    pub fn with_failure(mut self, name: &str, error: LookupError) -> Self {
        self.failures.insert(name.to_string(), error);
        self
    }
}

impl Directory for StaticDirectory {
    fn account(&self, name: &str) -> Result<Option<Account>, LookupError> {
        if let Some(error) = self.failures.get(name) {
            return Err(error.clone());
        }
        Ok(self.accounts.get(name).cloned())
    }

    fn name_of_uid(&self, uid: u32) -> Result<Option<String>, LookupError> {
        let mut names: Vec<&String> = self
            .accounts
            .values()
            .filter(|a| a.uid == uid)
            .map(|a| &a.name)
            .collect();
        // As getpwuid: one answer, the same every time.
        names.sort();
        Ok(names.first().map(|n| n.to_string()))
    }
}

/// Where shadow-utils keeps `UID_MIN`.
pub const LOGIN_DEFS: &str = "/etc/login.defs";

/// The uid minimum when login.defs does not say: RStudio's and shadow-utils' default.
const DEFAULT_MINIMUM_UID: u32 = 1000;

/// `UID_MIN` from `/etc/login.defs` text, read as shadow-utils reads it: the last `UID_MIN`
/// line decides (a later line overrides an earlier one, even when the later one is garbage),
/// fields are whitespace separated, `#` starts a comment, and the value may be double-quoted.
/// `None` if there is no such line or its value is not a decimal number.
pub fn parse_uid_min(login_defs: &str) -> Option<u32> {
    let mut last: Option<Option<u32>> = None;
    for line in login_defs.lines() {
        let content = line.split('#').next().unwrap_or("");
        let mut fields = content.split_whitespace();
        if fields.next() != Some("UID_MIN") {
            continue;
        }
        let value = fields.next().map(|v| v.trim_matches('"'));
        last = Some(value.and_then(|v| v.parse::<u32>().ok()));
    }
    last.flatten()
}

/// `minimum_uid = "auto"`: `UID_MIN` from the file at `path` (normally [`LOGIN_DEFS`]), else
/// 1000, as RStudio's `auth-minimum-user-id=auto` does.
pub fn auto_minimum_uid(path: &Path) -> u32 {
    // login.defs is a few KiB; the bound only keeps a wrong path (a device, a huge file) harmless.
    const MAX_LOGIN_DEFS: u64 = 1 << 20;
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(MAX_LOGIN_DEFS).read_to_end(&mut bytes));
    if read.is_err() {
        return DEFAULT_MINIMUM_UID;
    }
    // Lossy on purpose: a stray non-UTF-8 byte in a comment must not hide UID_MIN.
    parse_uid_min(&String::from_utf8_lossy(&bytes)).unwrap_or(DEFAULT_MINIMUM_UID)
}

#[cfg(test)]
mod tests;
