//! The long-running processes a test owns (the daemon, slapd, the OpenID Provider): started with
//! their output appended to a log file, waited for until they listen, killed, and their
//! directory removed afterwards unless `ACCOUNTMAP_TESTS_KEEP` is set.

use crate::wait::wait_until;
use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Starts `cmd` with stdin from /dev/null and stdout and stderr appended to `log`.
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().expect("dup the log descriptor"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// Whether every one of `ports` on 127.0.0.1 accepts connections within `limit`.
pub fn listening(ports: &[u16], limit: Duration) -> bool {
    wait_until(limit, || {
        ports
            .iter()
            .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
    })
}

/// Kills the process, if there is one, and reaps it.
pub fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Kills the process, if there is one, and waits (5 s at most) until `port` refuses
/// connections.
pub fn kill_and_wait_closed(child: &mut Option<Child>, port: u16) {
    kill(child);
    wait_until(Duration::from_secs(5), || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
}

/// Removes a test's directory, or keeps it and says where when `ACCOUNTMAP_TESTS_KEEP` is set.
pub fn remove_unless_kept(dir: &Path) {
    if std::env::var_os("ACCOUNTMAP_TESTS_KEEP").is_some() {
        eprintln!("keeping {}", dir.display());
    } else {
        let _ = fs::remove_dir_all(dir);
    }
}
