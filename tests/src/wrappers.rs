//! pam_wrapper and nss_wrapper: where Debian installs them, the variables that point an
//! [`Env`]'s commands at its own passwd, group and PAM service files, and the care pam_wrapper's
//! `/tmp/pam.X` directories need (serialised starts, stale ones removed).

use crate::artifacts::nss_module;
use crate::wait::wait_until;
use crate::Env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

/// pam_wrapper and nss_wrapper as Debian installs them (libpam-wrapper, libnss-wrapper).
pub const LIBPAM_WRAPPER: &str = "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so";
pub const LIBNSS_WRAPPER: &str = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so";

/// An exclusive `flock` on a lock file shared by every test process on the machine.
pub(crate) struct StartLock {
    // Held for its descriptor: closing it releases the lock.
    _file: fs::File,
}

pub(crate) const PAM_WRAPPER_LOCK: &str = "/tmp/accountmap-tests.pam_wrapper.lock";

impl StartLock {
    pub(crate) fn acquire() -> StartLock {
        use std::os::fd::AsRawFd;
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(PAM_WRAPPER_LOCK)
            .unwrap_or_else(|e| panic!("open {PAM_WRAPPER_LOCK}: {e}"));
        let _ = fs::set_permissions(PAM_WRAPPER_LOCK, fs::Permissions::from_mode(0o666));
        let got = wait_until(Duration::from_secs(60), || {
            // SAFETY: flock on a descriptor we own; non-blocking, so the wait stays bounded.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
        });
        assert!(got, "could not take {PAM_WRAPPER_LOCK} within 60 s");
        StartLock { _file: file }
    }
}

/// Whether some `/tmp/pam.X/pid` names `pid`: pam_wrapper has set that process up.
pub(crate) fn pam_wrapper_ready(pid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/tmp") else {
        return true;
    };
    let want = pid.to_string();
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.starts_with("pam.")
            && name.len() == 5
            && fs::read_to_string(e.path().join("pid")).is_ok_and(|p| p.trim() == want)
    })
}

/// Removes the `/tmp/pam.X` directories pam_wrapper leaves behind when a preloaded process dies
/// without cleaning up (there are only 62 such names). Only directories whose `pid` file names
/// a process that no longer exists are touched, so parallel tests are safe.
pub fn clean_stale_pam_wrapper_dirs() {
    let Ok(entries) = fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with("pam.") || name.len() != 5 {
            continue;
        }
        let dir = entry.path();
        let Ok(pid) = fs::read_to_string(dir.join("pid")) else {
            continue;
        };
        let Ok(pid) = pid.trim().parse::<libc::pid_t>() else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

impl Env {
    /// Sets the nss_wrapper variables on `cmd` (and LD_PRELOAD=libnss_wrapper.so).
    pub fn nss_wrapped(&self, cmd: &mut Command) {
        cmd.env("LD_PRELOAD", LIBNSS_WRAPPER)
            .env("NSS_WRAPPER_PASSWD", &self.passwd_path)
            .env("NSS_WRAPPER_GROUP", &self.group_path);
    }

    /// Sets nss_wrapper's variables with `libnss_accountmap.so` as its NSS module (nss_wrapper
    /// asks `files` first, then the module), pointed at this environment's socket.
    pub fn nss_module_wrapped(&self, cmd: &mut Command) {
        self.nss_wrapped(cmd);
        self.nss_module_vars(cmd);
    }

    /// Sets the variables that make nss_wrapper (already preloaded on `cmd`) ask
    /// `libnss_accountmap.so` after `files`, pointed at this environment's socket.
    pub fn nss_module_vars(&self, cmd: &mut Command) {
        cmd.env("NSS_WRAPPER_MODULE_SO_PATH", nss_module())
            .env("NSS_WRAPPER_MODULE_FN_PREFIX", "accountmap")
            .env("ACCOUNTMAP_SOCKET", &self.socket)
            .env_remove(accountmap_wire::DAEMON_ENV);
    }

    /// Sets pam_wrapper + nss_wrapper variables on `cmd`. PAM_WRAPPER=1 always goes with the
    /// preload: without it pam_wrapper makes the process spin.
    pub fn pam_wrapped(&self, cmd: &mut Command) {
        cmd.env("LD_PRELOAD", format!("{LIBPAM_WRAPPER}:{LIBNSS_WRAPPER}"))
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", &self.pam_dir)
            .env("NSS_WRAPPER_PASSWD", &self.passwd_path)
            .env("NSS_WRAPPER_GROUP", &self.group_path)
            .env_remove("ACCOUNTMAP_SOCKET");
    }
}
