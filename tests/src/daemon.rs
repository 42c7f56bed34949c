//! The daemon process of an [`Env`]: start (bounded, under nss_wrapper), signals, stop, and
//! its log.

use crate::artifacts::accountmapd;
use crate::server::spawn_logged;
use crate::wait::wait_until;
use crate::Env;
use accountmap_wire::{Request, Response};
use std::fs;
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// How long the daemon may take to become ready, and to stop after SIGTERM.
pub const DAEMON_START_LIMIT: Duration = Duration::from_secs(10);
pub const DAEMON_STOP_LIMIT: Duration = Duration::from_secs(5);

impl Env {
    pub fn start_daemon(&mut self) {
        self.start_daemon_with(|_| {});
    }

    /// As [`Env::start_daemon`], with `extra` applied to the command line last (more
    /// environment, such as nss_wrapper's module variables).
    pub fn start_daemon_with(&mut self, extra: impl FnOnce(&mut Command)) {
        self.start_daemon_inner(&[], extra);
    }

    /// As [`Env::start_daemon`], run through `wrapper` (a program and its arguments, such as
    /// `setpriv --bounding-set=-dac_override --`), which execs the daemon.
    pub fn start_daemon_via(&mut self, wrapper: &[&str]) {
        self.start_daemon_inner(wrapper, |_| {});
    }

    /// The daemon's resident memory (VmRSS), KiB.
    pub fn daemon_rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.daemon_pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    fn start_daemon_inner(&mut self, wrapper: &[&str], extra: impl FnOnce(&mut Command)) {
        assert!(self.daemon.is_none(), "daemon already running");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(accountmapd());
                c
            }
            None => Command::new(accountmapd()),
        };
        cmd.arg("--config")
            .arg(&self.config_path)
            .arg("--log-stderr")
            .env_remove("ACCOUNTMAP_SOCKET")
            .env_remove("ACCOUNTMAP_CONFIG");
        self.nss_wrapped(&mut cmd);
        extra(&mut cmd);
        self.daemon = Some(spawn_logged(&mut cmd, &self.log_path));
        let start = Instant::now();
        loop {
            if let Some(status) = self
                .daemon
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.daemon = None;
                panic!(
                    "accountmapd exited during start-up with {status}\n--- daemon.log ---\n{}",
                    self.daemon_log()
                );
            }
            if self.daemon_answers() {
                return;
            }
            if start.elapsed() > DAEMON_START_LIMIT {
                let log = self.daemon_log();
                self.kill_daemon();
                panic!(
                    "accountmapd not ready within {DAEMON_START_LIMIT:?} on {}\n--- daemon.log ---\n{log}",
                    self.socket.display()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether a Status request over the socket gets a status reply within a second.
    pub fn daemon_answers(&self) -> bool {
        matches!(
            accountmap_wire::call(&self.socket, &Request::Status, Duration::from_secs(1)),
            Ok(Response::Status(_))
        )
    }

    pub fn daemon_pid(&self) -> Option<libc::pid_t> {
        self.daemon.as_ref().map(|c| c.id() as libc::pid_t)
    }

    /// Whether the daemon process is still running.
    pub fn daemon_alive(&mut self) -> bool {
        match self.daemon.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.daemon_pid().expect("daemon not running");
        // SAFETY: plain syscall on our own child's pid.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    pub fn sighup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// SIGTERM, then wait (bounded); returns the exit status. SIGKILL and a failed test past
    /// [`DAEMON_STOP_LIMIT`].
    pub fn stop_daemon(&mut self) -> ExitStatus {
        let mut child = self.daemon.take().expect("daemon not running");
        // SAFETY: plain syscall on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("waitpid") {
                return status;
            }
            if start.elapsed() > DAEMON_STOP_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "accountmapd did not exit within {DAEMON_STOP_LIMIT:?} of SIGTERM\n--- daemon.log ---\n{}",
                    self.daemon_log()
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL: the daemon dies without cleaning up (its socket file stays).
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn daemon_log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits (bounded) for a daemon log line that satisfies `pred`, among lines written after
    /// byte `from` of the log (see [`Env::log_len`]). Returns the line.
    pub fn wait_for_log(
        &self,
        from: usize,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let mut found = None;
        wait_until(limit, || {
            let log = self.daemon_log();
            found = log
                .get(from..)
                .unwrap_or("")
                .lines()
                .find(|l| pred(l))
                .map(str::to_string);
            found.is_some()
        });
        found
    }

    /// [`Env::wait_for_log`] for a line that must come: the line, or a failed test that shows
    /// the log.
    #[track_caller]
    pub fn expect_log(&self, from: usize, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for_log(from, limit, pred).unwrap_or_else(|| {
            panic!(
                "no such daemon log line within {limit:?} (after byte {from})\n--- daemon.log ---\n{}",
                self.daemon_log()
            )
        })
    }

    /// Current size of the daemon log, to look only at what comes next.
    pub fn log_len(&self) -> usize {
        self.daemon_log().len()
    }

    /// The decision lines (`verdict=`) of the log that mention `name="<name>"`.
    pub fn decision_lines(&self, name: &str) -> Vec<String> {
        let needle = format!("name=\"{name}\"");
        self.daemon_log()
            .lines()
            .filter(|l| l.contains("verdict=") && l.contains(&needle))
            .map(str::to_string)
            .collect()
    }
}
