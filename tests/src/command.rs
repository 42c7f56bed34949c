//! Running a child process bounded in time, and the one-shot commands several tests run
//! (`accountmapd --check`, `accountmapctl check-config`, SPEC's openssl signing recipe).

use crate::artifacts::{accountmapctl, accountmapd};
use crate::wrappers::{clean_stale_pam_wrapper_dirs, pam_wrapper_ready, StartLock};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Any single child process (pamtester, accountmapctl, openssl) is killed after this.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(20);

/// What a finished command did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Exit code; -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    /// stdout then stderr, for messages.
    pub fn all(&self) -> String {
        format!(
            "--- exit code {} after {:?} ---\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with `stdin` fed to it; kills it and fails the test after `limit`.
pub fn run_bounded(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Outcome {
    run_inner(cmd, stdin, limit, false)
}

/// As [`run_bounded`], for a command preloaded with pam_wrapper.
///
/// pam_wrapper picks its `/tmp/pam.X` directory with a check-then-mkdir race: processes that
/// start at the same moment collide ("Failed to create pam_wrapper config dir … File exists",
/// then "Initialization failure" or a stack with no modules). So starts are serialised: a lock
/// file is held from just before the spawn until the child's `/tmp/pam.X/pid` names it (or it
/// has exited). The PAM transactions themselves still run concurrently.
pub fn run_bounded_pam(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Outcome {
    let out = run_inner(cmd, stdin, limit, true);
    clean_stale_pam_wrapper_dirs();
    out
}

fn run_inner(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration, pam: bool) -> Outcome {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut lock = if pam {
        Some(StartLock::acquire())
    } else {
        None
    };
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A child that does not read its stdin must not block us: write from a thread.
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let out_reader = reader_thread(child.stdout.take());
    let err_reader = reader_thread(child.stderr.take());
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitpid") {
            break status;
        }
        if lock.is_some()
            && (pam_wrapper_ready(child.id()) || start.elapsed() > Duration::from_secs(5))
        {
            lock = None;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_reader.join().unwrap_or_default();
            let stderr = err_reader.join().unwrap_or_default();
            panic!(
                "{cmd:?} did not finish within {limit:?}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
            );
        }
        thread::sleep(Duration::from_millis(if lock.is_some() { 1 } else { 2 }));
    };
    let elapsed = start.elapsed();
    drop(lock);
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        elapsed,
    }
}

fn reader_thread<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// `accountmapd --check --config PATH`.
pub fn daemon_check(config: &Path) -> Outcome {
    run_bounded(
        Command::new(accountmapd())
            .arg("--check")
            .arg("--config")
            .arg(config),
        None,
        COMMAND_LIMIT,
    )
}

/// `accountmapctl check-config PATH` (no daemon involved).
pub fn ctl_check(config: &Path) -> Outcome {
    run_bounded(
        Command::new(accountmapctl())
            .arg("check-config")
            .arg(config),
        None,
        COMMAND_LIMIT,
    )
}

/// `openssl`'s HMAC-SHA256 of `user\ndate\nbody` under `key`, base64: SPEC's reference recipe.
pub fn openssl_proxy_signature(key: &str, user: &str, date: &str, body: &str) -> String {
    let out = run_bounded(
        Command::new("sh")
            .arg("-c")
            .arg(r#"printf '%s\n%s\n%s' "$U" "$D" "$B" | openssl dgst -sha256 -hmac "$KEY" -binary | base64"#)
            .env("U", user)
            .env("D", date)
            .env("B", body)
            .env("KEY", key),
        None,
        COMMAND_LIMIT,
    );
    assert_eq!(out.code, 0, "openssl recipe failed: {}", out.all());
    out.stdout.trim().to_string()
}
