//! What accountmapd tells systemd over a real `NOTIFY_SOCKET`, in order, for a start, a refused
//! reload, a good reload and a stop (src/server/notify.rs).
//!
//! The daemon binary runs as a child with the variable in its own environment, so nothing is
//! set in this test process and no signal reaches it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_wire::{call, Request, Response};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Stops the daemon if the test fails before it does.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(daemon: &Daemon, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(daemon.0.id()).unwrap();
    // SAFETY: kill(2) with a child's pid (not yet reaped) and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// The next notification that is more than a status update (those come every 10 s whenever
/// the connection count changed), as its lines.
fn next(notify: &UnixDatagram, log: &Path) -> Vec<String> {
    let mut buf = [0u8; 4096];
    loop {
        let n = notify.recv(&mut buf).unwrap_or_else(|e| {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("no notification within 10 s ({e})\n--- daemon log ---\n{log}")
        });
        let text = String::from_utf8(buf[..n].to_vec()).unwrap();
        assert!(
            text.ends_with('\n'),
            "each line ends with a newline: {text:?}"
        );
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if !lines.iter().all(|l| l.starts_with("STATUS=")) {
            return lines;
        }
    }
}

/// `lines` without the MONOTONIC_USEC line, which must be there and hold a time.
fn without_timestamp(mut lines: Vec<String>) -> Vec<String> {
    let at = lines
        .iter()
        .position(|l| l.starts_with("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {lines:?}"));
    let usec: u64 = lines.remove(at)["MONOTONIC_USEC=".len()..].parse().unwrap();
    assert!(usec > 0);
    lines
}

#[test]
fn ready_reloading_stopping_and_status_are_sent_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("accountmap.toml");
    let socket = dir.path().join("accountmapd.sock");
    let good = format!("[daemon]\nsocket = \"{}\"\n", socket.display());
    std::fs::write(&config, &good).unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let log = dir.path().join("daemon.log");
    let daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_accountmapd"))
            .arg("--config")
            .arg(&config)
            .arg("--log-stderr")
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );

    // Start: ready once the socket answers.
    assert_eq!(
        next(&notify, &log),
        ["READY=1", "STATUS=serving; 0 connections since start"]
    );
    let answer = call(&socket, &Request::Status, Duration::from_secs(5)).unwrap();
    assert!(matches!(answer, Response::Status(_)), "{answer:?}");

    // A bad file: the reload is refused, the daemon is ready again and says so.
    std::fs::write(&config, "[daemon\n").unwrap();
    signal(&daemon, libc::SIGHUP);
    assert_eq!(
        without_timestamp(next(&notify, &log)),
        ["RELOADING=1", "STATUS=reloading the configuration"]
    );
    let after_refusal = next(&notify, &log);
    assert_eq!(after_refusal[0], "READY=1");
    assert!(
        after_refusal[1].starts_with(
            "STATUS=serving; 1 connections since start; last reload refused, the previous \
             configuration stays in force: "
        ) && after_refusal[1].contains("accountmap.toml"),
        "{after_refusal:?}"
    );

    // A good one: the note of the refusal goes.
    std::fs::write(&config, &good).unwrap();
    signal(&daemon, libc::SIGHUP);
    assert_eq!(
        without_timestamp(next(&notify, &log)),
        ["RELOADING=1", "STATUS=reloading the configuration"]
    );
    assert_eq!(
        next(&notify, &log),
        ["READY=1", "STATUS=serving; 1 connections since start"]
    );

    // Stop.
    signal(&daemon, libc::SIGTERM);
    assert_eq!(
        next(&notify, &log),
        [
            "STOPPING=1",
            "STATUS=stopping: finishing the requests in flight"
        ]
    );
    let mut daemon = daemon;
    let status = daemon.0.wait().unwrap();
    assert!(status.success(), "{status}");
}
