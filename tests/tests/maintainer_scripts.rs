//! Issue 13, item 8: the package scripts on a host without systemd as PID 1 (a container, a
//! chroot). They start nothing there; they must say so, and how to start the daemon by hand.
//! The scripts run as they are in the tree, with `sh` and an empty PATH (no `systemctl`, no
//! `ldconfig`), never installed and as no package manager would: nothing on the host changes.
//! Before the fix both printed nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::*;
use std::process::Command;

fn run_without_systemd(script: &str, arg: &str) -> Outcome {
    let empty = std::env::temp_dir().join(format!("am-{}-empty-path", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg(workspace_root().join(script))
        .arg(arg)
        .env_clear()
        .env("PATH", &empty);
    let out = run_bounded(&mut cmd, None, COMMAND_LIMIT);
    let _ = std::fs::remove_dir(&empty);
    out
}

#[track_caller]
fn assert_says_how_to_start(out: &Outcome, what: &str) {
    assert_eq!(out.code, 0, "{what}\n{}", out.all());
    for needle in [
        "accountmapd was not started",
        "accountmapd --log-stderr",
        "accountmapctl status",
        "Hosts without systemd",
    ] {
        assert!(
            out.stderr.contains(needle),
            "{what}: no {needle:?}\n{}",
            out.all()
        );
    }
}

#[test]
fn debian_postinst_says_how_to_start_the_daemon_without_systemd() {
    let out = run_without_systemd("debian/postinst", "configure");
    assert_says_how_to_start(&out, "debian/postinst configure");
}

#[test]
fn rpm_post_install_says_how_to_start_the_daemon_without_systemd() {
    let out = run_without_systemd("rpm/post_install.sh", "1");
    assert_says_how_to_start(&out, "rpm/post_install.sh 1");
}

/// The command the scripts suggest exists: `--log-stderr` is a flag of the built daemon, and
/// the README section they name exists.
#[test]
fn the_suggested_command_and_section_exist() {
    let help = run_bounded(
        Command::new(accountmapd()).arg("--help"),
        None,
        COMMAND_LIMIT,
    );
    assert!(help.stdout.contains("--log-stderr"), "{}", help.all());
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    assert!(
        readme.contains("### Hosts without systemd"),
        "README has no \"Hosts without systemd\" section"
    );
}
