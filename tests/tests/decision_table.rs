//! Issue 16: the daemon's decision table (`policy.cache`, [`accountmap_wire::policy_cache`]).
//! A question a root PAM stack asks without a credential to check — the auth phase of
//! `verify=none`, every account phase — is answered from shared memory after the daemon has
//! answered it once, without a socket round trip; the module logs each such decision (pam_wrapper
//! prints the module's syslog lines on pamtester's stderr with `PAM_WRAPPER_DEBUGLEVEL`). What
//! an administrator would check: the same verdicts with the daemon frozen, the decision in the
//! log, nothing kept across a flush or a reload, a file only root can read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn table_env(name: &str) -> Env {
    Env::builder(name).config(|c| c.cache_ttl = 300).build()
}

/// pamtester SVC USER authenticate acct_mgmt, with the module's log lines on stderr.
fn sign_in_logged(env: &Env, user: &str) -> PamRun {
    let mut cmd = env.pamtester_command(SVC, user, &["authenticate", "acct_mgmt"]);
    cmd.env("PAM_WRAPPER_DEBUGLEVEL", "2");
    PamRun {
        out: run_bounded_pam(&mut cmd, None, COMMAND_LIMIT),
    }
}

fn decisions_logged(env: &Env, name: &str) -> usize {
    env.decision_lines(name).len()
}

#[test]
fn repeated_policy_decisions_come_from_the_table_and_are_logged_by_the_module() {
    let env = table_env("decision-table");
    let table = env.path("policy.cache");
    let meta = std::fs::metadata(&table).expect("the daemon made policy.cache");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "root's only");

    // First time: the daemon decides (and logs) both phases.
    let first = sign_in_logged(&env, "alice");
    env.assert_verdicts(&first, SIGNED_IN, "alice, first sign-in");
    let asked = decisions_logged(&env, "alice");
    assert!(asked >= 1, "{}", env.daemon_log());
    let denied = sign_in_logged(&env, "bob");
    assert_eq!(
        denied.verdicts().first().map(String::as_str),
        Some(AUTH_ERR)
    );
    let (_, v, _) = env.ctl_json(&["status"]);
    assert_eq!(v["decision_table_entries"], "2", "{v}");

    // Again: no request reaches the daemon, the module says where its answer came from.
    let again = sign_in_logged(&env, "alice");
    env.assert_verdicts(&again, SIGNED_IN, "alice, from the table");
    assert_eq!(
        decisions_logged(&env, "alice"),
        asked,
        "{}",
        env.daemon_log()
    );
    assert!(
        again
            .out
            .stderr
            .contains("decision from accountmapd's table")
            && again.out.stderr.contains("name=\"alice\"")
            && again.out.stderr.contains("verdict=allowed"),
        "{}",
        again.out.all()
    );

    // With the daemon frozen the table still answers, for the allowed and the refused.
    {
        let pid = env.daemon_pid().unwrap();
        env.signal(libc::SIGSTOP);
        let resume = scopeguard(pid);
        let frozen = sign_in_logged(&env, "alice");
        env.assert_verdicts(&frozen, SIGNED_IN, "alice, daemon frozen");
        assert!(
            frozen.elapsed() < Duration::from_secs(2),
            "{:?}",
            frozen.elapsed()
        );
        let bob = sign_in_logged(&env, "bob");
        assert_eq!(bob.verdicts().first().map(String::as_str), Some(AUTH_ERR));
        assert!(
            bob.out.stderr.contains("verdict=denied"),
            "{}",
            bob.out.all()
        );
        drop(resume);
    }

    // A flush empties the table: the next sign-in is the daemon's again.
    let out = env.ctl(&["cache", "flush"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let after = sign_in_logged(&env, "alice");
    env.assert_verdicts(&after, SIGNED_IN, "alice, after a flush");
    assert!(
        decisions_logged(&env, "alice") > asked,
        "{}",
        env.daemon_log()
    );
    assert!(!after
        .out
        .stderr
        .contains("decision from accountmapd's table"));
}

/// An edit of the policy reaches the next sign-in at once: a reload empties the table.
#[test]
fn a_reload_empties_the_table() {
    let mut env = table_env("decision-table-reload");
    env.assert_sign_in(SVC, "alice", "", SIGNED_IN);
    env.assert_sign_in(SVC, "alice", "", SIGNED_IN);
    let mut config = env.config().clone();
    config.denied_users.push("alice".into());
    env.write_config(&config);
    let from = env.log_len();
    env.sighup();
    env.expect_log(from, Duration::from_secs(10), |l| {
        l.contains("configuration reloaded")
    });
    let run = env.sign_in(SVC, "alice", "");
    assert_eq!(
        run.verdicts().first().map(String::as_str),
        Some(AUTH_ERR),
        "{}",
        run.out.all()
    );
}

/// With `cache_ttl = 0` (the harness default) nothing is kept: every call is the daemon's.
#[test]
fn no_cache_ttl_no_table() {
    let env = Env::new("decision-table-off");
    env.assert_sign_in(SVC, "alice", "", SIGNED_IN);
    let asked = decisions_logged(&env, "alice");
    env.assert_sign_in(SVC, "alice", "", SIGNED_IN);
    assert!(decisions_logged(&env, "alice") > asked);
}

/// SIGCONT for the frozen daemon, whatever happens.
struct Resume(libc::pid_t);

impl Drop for Resume {
    fn drop(&mut self) {
        // SAFETY: plain syscall on our own child's pid.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

fn scopeguard(pid: libc::pid_t) -> Resume {
    Resume(pid)
}
