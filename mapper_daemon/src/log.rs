//! Where the daemon's lines go: syslog facility authpriv (decisions are security events, and
//! authpriv is where administrators and their SIEM look for sign-in records), and stderr when
//! run by hand or with `--log-stderr`.
//!
//! A line never contains a password or a token: callers log [`accountmap_wire::Request::log_form`]
//! or explicit fields, never a credential.

use std::ffi::CString;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static TO_SYSLOG: AtomicBool = AtomicBool::new(false);
static TO_STDERR: AtomicBool = AtomicBool::new(true);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
    Info,
    Debug,
}

impl Level {
    fn syslog_priority(self) -> libc::c_int {
        match self {
            Level::Error => libc::LOG_ERR,
            Level::Warning => libc::LOG_WARNING,
            Level::Notice => libc::LOG_NOTICE,
            Level::Info => libc::LOG_INFO,
            Level::Debug => libc::LOG_DEBUG,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// Chooses the destinations. Call once at start-up, before any thread logs.
pub fn init(to_syslog: bool, to_stderr: bool) {
    if to_syslog {
        // SAFETY: the ident is a 'static C string, as openlog requires (it keeps the pointer).
        unsafe { libc::openlog(c"accountmapd".as_ptr(), libc::LOG_PID, libc::LOG_AUTHPRIV) };
    }
    TO_SYSLOG.store(to_syslog, Ordering::Relaxed);
    TO_STDERR.store(to_stderr, Ordering::Relaxed);
}

/// Writes one line. Control characters from clients are escaped by the callers' `{:?}`
/// formatting of names; this function also replaces any stray newline so that one event is
/// always one line.
pub fn write(level: Level, message: &str) {
    let line = message.replace(['\n', '\r'], " ");
    if TO_SYSLOG.load(Ordering::Relaxed) {
        let text = CString::new(line.replace('\0', "\\0")).unwrap_or_default();
        // SAFETY: both strings are valid NUL-terminated C strings that live across the call,
        // and the "%s" format consumes exactly the one argument given.
        unsafe { libc::syslog(level.syslog_priority(), c"%s".as_ptr(), text.as_ptr()) };
    }
    if TO_STDERR.load(Ordering::Relaxed) {
        // One write per line: stderr is unbuffered, and a formatted write would otherwise
        // reach the terminal or journal in pieces, interleaved with other threads' lines.
        let text = format!(
            "accountmapd[{}]: {}: {}\n",
            std::process::id(),
            level.label(),
            line
        );
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

pub fn error(message: &str) {
    write(Level::Error, message);
}

pub fn warning(message: &str) {
    write(Level::Warning, message);
}

pub fn notice(message: &str) {
    write(Level::Notice, message);
}

pub fn info(message: &str) {
    write(Level::Info, message);
}
