//! What systemd is told (sd_notify(3)), through the `sd-notify` crate: `READY=1` once the socket
//! is bound and the configuration loaded, `RELOADING=1` with `MONOTONIC_USEC` when a SIGHUP
//! reload starts and `READY=1` when it is over (whatever its outcome: the daemon serves either
//! way), `STOPPING=1` on SIGTERM, and a `STATUS=` line with each, which `systemctl status
//! accountmapd` shows: how many connections were served, and a failed reload until the next
//! one succeeds.
//!
//! This is the protocol of `Type=notify-reload` (systemd 253 and later); under the shipped
//! `Type=notify` unit, systemd 252 (Debian 12, EL9) takes RELOADING/READY as the reload state
//! and ignores `MONOTONIC_USEC`. Without `NOTIFY_SOCKET` (not started by systemd) nothing is
//! sent.

use crate::log;
use sd_notify::NotifyState;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// The socket is bound, the configuration loaded: clients get answers.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(&one_line(status))]);
}

/// A reload begins; [`ready`] follows when it is over.
pub fn reloading() {
    let mut states = vec![
        NotifyState::Reloading,
        NotifyState::Status("reloading the configuration"),
    ];
    // Required by Type=notify-reload: tells this reload from an earlier one.
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

/// SIGTERM or SIGINT: the requests in flight are being finished.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: finishing the requests in flight"),
    ]);
}

/// A new status line, nothing else.
pub fn status(text: &str) {
    send(&[NotifyState::Status(&one_line(text))]);
}

/// The status line while serving.
pub fn serving_status(connections: u64, reload_failure: Option<&str>) -> String {
    let mut text = format!("serving; {connections} connections since start");
    if let Some(why) = reload_failure {
        text.push_str("; last reload refused, the previous configuration stays in force: ");
        text.push_str(why);
    }
    text
}

/// A notification is one `KEY=value` per line: a value must not hold a newline.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Sends one datagram. A failure is logged once (a broken notification socket would otherwise
/// add a line at every status update); the daemon serves regardless.
fn send(states: &[NotifyState<'_>]) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = match target.as_encoded_bytes().strip_prefix(b"@") {
        Some(name) => send_abstract(name, states),
        None => sd_notify::notify(states),
    };
    if let Err(e) = sent {
        if !WARNED.swap(true, Ordering::Relaxed) {
            log::warning(&format!("could not notify systemd: {e}"));
        }
    }
}

/// `NOTIFY_SOCKET=@name` is a socket in the abstract namespace (sd_notify(3)), which
/// `sd-notify` 0.5 does not handle (it connects to a file named `@name`). The daemon answered
/// such a socket before it used the crate, so it still does: the same message, sent there.
fn send_abstract(name: &[u8], states: &[NotifyState<'_>]) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let message: String = states.iter().map(|s| format!("{s}\n")).collect();
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    std::os::unix::net::UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &address)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    // The whole sequence through a real NOTIFY_SOCKET is tested on the daemon binary, which
    // gets the variable in its own environment (tests/notify.rs): setting it here would leak
    // into every other test of this process.

    #[test]
    fn an_abstract_socket_gets_the_same_message() {
        let name = format!("accountmap-notify-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&address).unwrap();
        send_abstract(
            name.as_bytes(),
            &[NotifyState::Ready, NotifyState::Status("serving")],
        )
        .unwrap();
        let mut buf = [0u8; 128];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving\n");
    }

    #[test]
    fn the_status_line_names_a_refused_reload() {
        assert_eq!(
            serving_status(3, None),
            "serving; 3 connections since start"
        );
        assert_eq!(
            serving_status(0, Some("a.toml:1:1: bad")),
            "serving; 0 connections since start; last reload refused, the previous \
             configuration stays in force: a.toml:1:1: bad"
        );
        assert_eq!(one_line("a\nb\rc"), "a b c");
    }
}
