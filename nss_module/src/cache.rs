//! The reader of `accountmapd`'s shared-memory passwd cache ([`accountmap_wire::memcache`]):
//! `passwd.cache` next to the socket, mapped read-only once per process, looked at before the
//! socket. A hit answers without any I/O; anything else (no file, an untrusted or retired file,
//! an expired or missing entry, a record the daemon is rewriting) is a miss, and the caller
//! asks the daemon over the socket as before.
//!
//! Process-global state, no per-thread state, no lock: one pointer to the mapping in force,
//! swapped with compare-and-swap. A mapping that has been replaced is never unmapped (another
//! thread may still be reading it), so the number of mappings a process makes is capped
//! ([`MAX_MAPPINGS`]); past the cap it uses the socket only. After a fork the child inherits
//! the mapping and the pointer, and goes on using them.

use accountmap_wire::memcache::{self, Cached, ReadMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// Mappings one process makes at most (a daemon restart or a changed socket path costs one).
pub const MAX_MAPPINGS: u32 = 16;

struct Mapped {
    path: PathBuf,
    map: ReadMap,
}

static CURRENT: AtomicPtr<Mapped> = AtomicPtr::new(std::ptr::null_mut());
static MAPPINGS: AtomicU32 = AtomicU32::new(0);

/// What the daemon listening at `socket` cached for `name` (its entry, or that it is no
/// alias), if a trusted cache holds an unexpired record.
pub fn lookup(socket: &Path, name: &[u8]) -> Option<Cached> {
    let path = memcache::path_for(socket)?;
    let now = memcache::now_ns();
    let mapped = current(&path)?;
    mapped.map.table()?.lookup(name, now)
}

/// The mapping of `path` in force, mapping it (again) when there is none, it is of another
/// path, or it has been retired. Without a usable file, every lookup tries to open it again:
/// a failed `open` costs about a microsecond, next to the socket round trip that follows.
fn current(path: &Path) -> Option<&'static Mapped> {
    let old = CURRENT.load(Ordering::Acquire);
    if !old.is_null() {
        // SAFETY: a non-null CURRENT points to a `Mapped` leaked by Box::into_raw below and
        // never freed: it lives for the rest of the process.
        let m: &'static Mapped = unsafe { &*old };
        if m.path.as_os_str() == path.as_os_str() && m.map.table().is_some_and(|t| !t.retired()) {
            return Some(m);
        }
    }
    if MAPPINGS.load(Ordering::Relaxed) >= MAX_MAPPINGS {
        return None;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let map = ReadMap::open(path, euid).ok()?;
    let new = Box::into_raw(Box::new(Mapped {
        path: path.to_path_buf(),
        map,
    }));
    match CURRENT.compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            MAPPINGS.fetch_add(1, Ordering::Relaxed);
            // The old mapping (if any) is leaked on purpose: other threads may be reading it.
            // SAFETY: `new` came from Box::into_raw and is now published, never freed.
            Some(unsafe { &*new })
        }
        Err(_) => {
            // Another thread published a mapping first; ours was never shared.
            // SAFETY: `new` came from Box::into_raw above and no other thread has seen it.
            drop(unsafe { Box::from_raw(new) });
            None
        }
    }
}
