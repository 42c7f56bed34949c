//! The reader of `accountmapd`'s shared-memory passwd cache ([`accountmap_wire::memcache`]):
//! `passwd.cache` next to the socket, mapped read-only once per process
//! ([`memcache::SharedReader`]), looked at before the socket. A hit answers without any I/O;
//! anything else (no file, an untrusted or retired file, an expired or missing entry, a record
//! the daemon is rewriting) is a miss, and the caller asks the daemon over the socket as
//! before.

use accountmap_wire::memcache::{self, Cached, Kind, SharedReader};
use std::path::Path;

static READER: SharedReader = SharedReader::new(Kind::Passwd);

/// What the daemon listening at `socket` cached for `name` (its entry, or that it is no
/// alias), if a trusted cache holds an unexpired record.
pub fn lookup(socket: &Path, name: &[u8]) -> Option<Cached> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    READER.table(socket, euid)?.lookup(name, memcache::now_ns())
}
