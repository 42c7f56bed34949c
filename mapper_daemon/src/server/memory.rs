//! Memory after a burst: bounded while it lasts, given back once the daemon is idle.
//!
//! What a flood of made-up names left behind (issue 14, finding 8: +54 MiB, kept) was the
//! negative cache, up to 65,536 names of up to a few hundred bytes with a table sized for them,
//! and the allocator holding on to what was freed. Now the negative cache keeps at most
//! [`crate::backends::cache::MAX_NEGATIVE`] names, a non-root caller's made-up names are
//! refused before any look-up, and:
//! - [`limit_arenas`] at start: one malloc arena (glibc makes up to 8 per core, and the daemon
//!   has [`super::WORKERS`] connection threads), so freed memory is reused across threads
//!   instead of being stranded in many, and a fixed mmap threshold for large blocks;
//! - the systemd unit sets `GLIBC_TUNABLES=glibc.malloc.tcache_count=0` (a tunable, read at
//!   exec, that mallopt cannot set): each thread's cache of freed blocks is out of
//!   `malloc_trim`'s reach, and 72 of them kept most of what a flood left (measured: +9.5 MiB
//!   kept with them, +3.3 MiB without);
//! - [`IdleTrim`]: once no connection has come for [`IDLE_BEFORE_TRIM`], expired and negative
//!   cached answers are dropped (and the table shrunk), then `malloc_trim(0)` returns free
//!   pages to the system. Once per idle period, so an idle daemon does no work.

use std::time::{Duration, Instant};

/// glibc malloc arenas at most. A request allocates little, and mostly from glibc's per-thread
/// cache (tcache), which takes no arena lock. Measured with a root flood of unique names (8
/// client threads, 20 s, two shared cores): 3,900–5,200 requests/s with one arena against
/// 4,700–5,000 with four, and the memory left afterwards a third smaller.
pub const MALLOC_ARENAS: i32 = 1;
/// How long without a new connection before the daemon trims its memory.
pub const IDLE_BEFORE_TRIM: Duration = Duration::from_secs(5);

/// Allocations this large or larger get their own mapping, returned to the system when freed.
/// Setting it fixes glibc's threshold, which otherwise rises to the largest block freed so far
/// (up to 32 MiB): the caches' tables, megabytes after a flood, would then be carved from an
/// arena and outlive the flood there.
pub const MMAP_THRESHOLD: i32 = 256 * 1024;

/// Limits glibc's malloc arenas to [`MALLOC_ARENAS`] and fixes [`MMAP_THRESHOLD`]. Call before
/// any thread starts.
pub fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets parameters of the allocator; called before other threads
    // exist, as glibc asks. A failure (0) leaves the default, which is harmless.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Returns free memory of every arena to the system (`malloc_trim(0)`).
pub fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes the arenas' own locks and is safe to call from any thread
    // at any time; its result (whether anything was released) is not needed.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Decides, once a second, whether the daemon has just become idle.
#[derive(Debug)]
pub struct IdleTrim {
    seen: u64,
    since: Instant,
    done: bool,
}

impl IdleTrim {
    pub fn new(now: Instant) -> IdleTrim {
        IdleTrim {
            seen: 0,
            since: now,
            // Nothing to give back before the first request.
            done: true,
        }
    }

    /// `connections` accepted so far, at `now`: true once per idle period, when the last
    /// new connection is [`IDLE_BEFORE_TRIM`] old.
    pub fn due(&mut self, connections: u64, now: Instant) -> bool {
        if connections != self.seen {
            self.seen = connections;
            self.since = now;
            self.done = false;
            return false;
        }
        if !self.done && now.saturating_duration_since(self.since) >= IDLE_BEFORE_TRIM {
            self.done = true;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_per_idle_period() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut idle = IdleTrim::new(t0);
        assert!(!idle.due(0, at(60)), "nothing happened yet");
        assert!(!idle.due(10, at(61)));
        assert!(!idle.due(10, at(65)), "4 s idle");
        assert!(idle.due(10, at(66)), "5 s idle");
        assert!(!idle.due(10, at(90)), "once per idle period");
        assert!(!idle.due(11, at(91)));
        assert!(!idle.due(12, at(95)), "busy again");
        assert!(idle.due(12, at(100)));
    }

    #[test]
    fn trim_and_arena_limit_can_be_called() {
        limit_arenas();
        trim();
    }
}
