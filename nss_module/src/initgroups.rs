//! `initgroups_dyn` for aliases: `getgrouplist("Alice.Example@Gmail.com", gid)` (coreutils `id
//! ALIAS`, `groups ALIAS`) lists the local account's supplementary groups.
//!
//! No new question for the daemon: the alias is resolved as every program resolves it, through
//! this host's passwd sources (`getpwnam_r`), and the local account's groups come from this
//! host's group sources (`getgrouplist` of the local name). Hence:
//! - A local name never reaches the daemon: with `passwd: files accountmap` (accountmap last,
//!   as documented) `getpwnam_r` of a local name is answered by `files` (or sss, ldap) before
//!   accountmap is asked. The name is then its own `pw_name`, not an alias, and nothing is added.
//!   Its cost is one passwd lookup from the earlier sources per initgroups.
//! - An alias is answered from the daemon's shared-memory cache, or the socket, by the module's
//!   own `getpwnam_r`, within its deadline; when the daemon cannot answer, nothing is added
//!   (glibc's `getpwnam_r` reports that as "not found").
//! - The recursion ends at once: the groups of the local name are asked only once `getpwnam_r`
//!   of that name gives the same name back (a fixed point), so the nested
//!   `initgroups_dyn(local)` adds nothing and asks nothing further.

use crate::{NssStatus, NSS_STATUS_SUCCESS, NSS_STATUS_TRYAGAIN, NSS_STATUS_UNAVAIL};
use std::ffi::{c_char, c_int, c_long, CStr, CString};

/// The largest passwd buffer tried (the C library's entries are far smaller).
const MAX_PW_BUFFER: usize = 1 << 20;
/// The most groups asked of `getgrouplist` (Linux's NGROUPS_MAX is 65536).
const MAX_GROUPS: usize = 65536;

/// What `getpwnam_r` says of a name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Passwd {
    /// The entry's `pw_name` and `pw_gid`.
    Found(Vec<u8>, libc::gid_t),
    NotFound,
    Unavailable,
}

/// `getpwnam_r(name)` through this process's passwd sources.
pub(crate) fn getpwnam(name: &CStr) -> Passwd {
    let mut size = 1024usize;
    loop {
        let mut buffer = vec![0u8; size];
        let mut pw = std::mem::MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `name` is NUL-terminated; `pw` is valid for a struct passwd and `buffer` for
        // `size` bytes, both alive across the call; `result` is a valid out-pointer.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                pw.as_mut_ptr(),
                buffer.as_mut_ptr().cast::<c_char>(),
                size,
                &mut result,
            )
        };
        if rc == libc::ERANGE && size < MAX_PW_BUFFER {
            size *= 4;
            continue;
        }
        // getpwnam_r(3) lists these as "not found"; glibc also returns the last source's errno
        // (ENOENT from this module) when that source was UNAVAIL, so a daemon that cannot
        // answer looks the same here: nothing is added.
        if matches!(rc, libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM) {
            return Passwd::NotFound;
        }
        if rc != 0 {
            return Passwd::Unavailable;
        }
        if result.is_null() {
            return Passwd::NotFound;
        }
        // SAFETY: getpwnam_r succeeded with a non-NULL result: `pw` is filled and its
        // `pw_name` points into `buffer` (alive here) or is NULL.
        let pw = unsafe { pw.assume_init() };
        if pw.pw_name.is_null() {
            return Passwd::NotFound;
        }
        // SAFETY: a non-NULL pw_name is a NUL-terminated string inside `buffer`.
        let pw_name = unsafe { CStr::from_ptr(pw.pw_name) }.to_bytes().to_vec();
        return Passwd::Found(pw_name, pw.pw_gid);
    }
}

/// `getgrouplist(user, group)` through this process's group sources.
fn grouplist(user: &CStr, group: libc::gid_t) -> Option<Vec<libc::gid_t>> {
    let mut n: c_int = 64;
    loop {
        let mut groups: Vec<libc::gid_t> = vec![0; usize::try_from(n).ok()?];
        let mut count = n;
        // SAFETY: `user` is NUL-terminated; `groups` holds `count` gids; `count` is writable.
        let rc =
            unsafe { libc::getgrouplist(user.as_ptr(), group, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(usize::try_from(count).ok()?);
            return Some(groups);
        }
        // Too small: `count` is the number needed (glibc); grow to it, or double.
        let next = count.max(n.saturating_mul(2));
        if usize::try_from(next).ok()? > MAX_GROUPS {
            return None;
        }
        n = next;
    }
}

/// The supplementary gids the alias `user` stands for, `Ok(None)` when `user` is not an alias
/// (a local name, or unknown), `Err(status)` when it cannot be said.
pub(crate) fn alias_groups(
    user: &CStr,
    lookup: impl Fn(&CStr) -> Passwd,
) -> Result<Option<Vec<libc::gid_t>>, NssStatus> {
    let (local, gid) = match lookup(user) {
        Passwd::Found(name, gid) => (name, gid),
        Passwd::NotFound => return Ok(None),
        Passwd::Unavailable => return Err(NSS_STATUS_UNAVAIL),
    };
    if local == user.to_bytes() {
        // Not an alias: the group sources know this name themselves.
        return Ok(None);
    }
    let Ok(local) = CString::new(local) else {
        return Ok(None);
    };
    // Only a fixed point is asked for its groups (see the module documentation).
    match lookup(&local) {
        Passwd::Found(again, _) if again == local.to_bytes() => {}
        Passwd::Unavailable => return Err(NSS_STATUS_UNAVAIL),
        _ => return Ok(None),
    }
    grouplist(&local, gid).map(Some).ok_or(NSS_STATUS_UNAVAIL)
}

/// Appends `gids` (except `skip` and those already there) to the caller's array as
/// `initgroups_dyn` defines it, growing it with `realloc` up to `limit` (when positive).
///
/// # Safety
/// `start`, `size` and `groupsp` are valid for reads and writes; `*groupsp` points to a
/// malloc'd array of `*size` gids of which the first `*start` are set.
pub(crate) unsafe fn append(
    gids: &[libc::gid_t],
    skip: libc::gid_t,
    start: *mut c_long,
    size: *mut c_long,
    groupsp: *mut *mut libc::gid_t,
    limit: c_long,
) -> NssStatus {
    for &gid in gids {
        // SAFETY: the caller's contract for all three pointers, for each read and write below.
        unsafe {
            let have = usize::try_from(*start).unwrap_or(0);
            let existing = std::slice::from_raw_parts(*groupsp, have);
            if gid == skip || existing.contains(&gid) {
                continue;
            }
            if limit > 0 && *start >= limit {
                break;
            }
            if *start >= *size {
                let mut grow = (*size).saturating_mul(2).max(*start + 1);
                if limit > 0 {
                    grow = grow.min(limit);
                }
                let bytes = usize::try_from(grow)
                    .unwrap_or(0)
                    .saturating_mul(std::mem::size_of::<libc::gid_t>());
                let grown = libc::realloc((*groupsp).cast(), bytes).cast::<libc::gid_t>();
                if grown.is_null() {
                    return NSS_STATUS_TRYAGAIN;
                }
                *groupsp = grown;
                *size = grow;
            }
            (*groupsp)
                .add(usize::try_from(*start).unwrap_or(0))
                .write(gid);
            *start += 1;
        }
    }
    NSS_STATUS_SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NSS_STATUS_SUCCESS;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    /// A passwd source over (name → pw_name) pairs; anything else is not found.
    fn source(map: &'static [(&'static str, &'static str)]) -> impl Fn(&CStr) -> Passwd {
        move |name: &CStr| {
            let name = name.to_str().unwrap();
            match map.iter().find(|(k, _)| *k == name) {
                Some((_, "UNAVAIL")) => Passwd::Unavailable,
                Some((_, v)) => Passwd::Found(v.as_bytes().to_vec(), 0),
                None => Passwd::NotFound,
            }
        }
    }

    #[test]
    fn only_an_alias_of_a_fixed_point_gets_groups() {
        let s = source(&[
            ("root", "root"),
            ("boss", "root"),
            ("down", "UNAVAIL"),
            ("a", "b"),
            ("b", "a"),
        ]);
        // A local name, an unknown name: nothing, and no group lookup.
        assert_eq!(alias_groups(&c("root"), &s), Ok(None));
        assert_eq!(alias_groups(&c("ghost"), &s), Ok(None));
        assert_eq!(alias_groups(&c("down"), &s), Err(NSS_STATUS_UNAVAIL));
        // A cycle of sources answering each other's names is not followed.
        assert_eq!(alias_groups(&c("a"), &s), Ok(None));
        // An alias of root (in the host's /etc/passwd): root's groups, primary gid 0 among them.
        let groups = alias_groups(&c("boss"), &s).unwrap().unwrap();
        assert!(groups.contains(&0), "{groups:?}");
    }

    /// Runs [`append`] on a malloc'd array holding `have`, with `limit`; the array after.
    fn run_append(have: &[libc::gid_t], gids: &[libc::gid_t], limit: c_long) -> Vec<libc::gid_t> {
        let mut size = have.len() as c_long;
        let mut start = size;
        // SAFETY: a fresh allocation of `size` gids, filled below, freed at the end.
        unsafe {
            let mut groups = libc::malloc(std::mem::size_of_val(have)).cast::<libc::gid_t>();
            assert!(!groups.is_null());
            std::ptr::copy_nonoverlapping(have.as_ptr(), groups, have.len());
            let status = append(gids, 7, &mut start, &mut size, &mut groups, limit);
            assert_eq!(status, NSS_STATUS_SUCCESS);
            assert!(start <= size);
            let out = std::slice::from_raw_parts(groups, start as usize).to_vec();
            libc::free(groups.cast());
            out
        }
    }

    #[test]
    fn append_grows_skips_the_primary_and_duplicates_and_stops_at_the_limit() {
        assert_eq!(run_append(&[7], &[7, 10, 11, 10, 12], 0), [7, 10, 11, 12]);
        assert_eq!(run_append(&[7, 11], &[10, 11], 0), [7, 11, 10]);
        assert_eq!(run_append(&[7], &[10, 11, 12], 2), [7, 10]);
    }
}
