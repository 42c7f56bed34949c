//! The NSS module inside a busy host: many threads calling `getpwnam_r` on aliases at once, and
//! forks taken while they do (as pre-forking servers and sshd do), under nss_wrapper with
//! `libnss_accountmap.so` against a real daemon. No wrong answer, no crash, no hung child, no
//! socket left open.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::*;
use std::process::Command;

/// Aliases (answered by the module), a local name (files), and names nobody answers.
const CASES: &[&str] = &[
    "John.Doe@Company.com=jdoe",
    "UID-jsmith=jsmith",
    "alice@company.com=alice",
    "alice=alice",
    "ops@company.com=-",
    "ghost@company.com=-",
];

/// `nss_hammer THREADS ROUNDS FORKS CASES…` through nss_wrapper and our module; it must exit 0.
#[track_caller]
fn hammer(env: &Env, threads: &str, rounds: &str, forks: &str, cases: &[&str]) -> Outcome {
    let mut cmd = Command::new(artifact("nss_hammer"));
    cmd.args([threads, rounds, forks]).args(cases);
    env.nss_module_wrapped(&mut cmd);
    let out = run_bounded(&mut cmd, None, COMMAND_LIMIT);
    eprintln!("{}", out.stdout.trim());
    assert_eq!(
        out.code,
        0,
        "{}\n--- daemon.log ---\n{}",
        out.all(),
        env.daemon_log()
    );
    out
}

/// Asserts nss_hammer's summary: `lookups` lookups, none wrong, and every child fine.
#[track_caller]
fn assert_all_right(out: &Outcome, lookups: u32) {
    assert!(
        out.stdout.contains(&format!("lookups={lookups} wrong=0"))
            && out.stdout.contains("children_ok=20"),
        "{}",
        out.all()
    );
}

#[test]
fn many_threads_and_forks_get_the_right_answers_and_leak_nothing() {
    // 8 threads x 5 rounds x 6 names, plus 20 children x 6 names: about 300 requests reach the
    // daemon, under its per-peer burst of 400, so no answer is a rate-limit refusal (which the
    // module would turn into "not found").
    let env = Env::new("nss-hammer");
    let out = hammer(&env, "8", "5", "20", CASES);
    assert_all_right(&out, 240);
}

#[test]
fn with_the_daemon_stopped_threads_and_forks_find_nothing_quickly() {
    // Every alias is "not found" (UNAVAIL), local names still resolve, nothing hangs.
    let mut env = Env::new("nss-hammer-down");
    env.stop_daemon();
    let cases = ["John.Doe@Company.com=-", "UID-jsmith=-", "alice=alice"];
    hammer(&env, "8", "3", "5", &cases);
}

#[test]
fn with_the_cache_threads_and_forks_get_the_right_answers_from_shared_memory() {
    // cache_ttl on: after one lookup each, the aliases are answered from passwd.cache, so far
    // more lookups than the daemon's per-peer burst of 400 all succeed, in threads and in
    // children forked while the mapping is in use.
    let env = Env::builder("nss-hammer-cache")
        .config(|c| c.cache_ttl = 300)
        .build();
    let cases = [
        "John.Doe@Company.com=jdoe",
        "UID-jsmith=jsmith",
        "alice@company.com=alice",
        "alice=alice",
    ];
    for case in &cases[..3] {
        let alias = case.split_once('=').unwrap().0;
        let out = env.getent_passwd(alias);
        assert_eq!(out.code, 0, "{}", out.all());
    }
    let out = hammer(&env, "8", "250", "20", &cases);
    assert_all_right(&out, 8000);
    // The daemon answered each alias once (the warm-up); everything else was a cache hit.
    let answered = env
        .daemon_log()
        .lines()
        .filter(|l| l.contains("nss peer=") && l.contains("account="))
        .count();
    assert_eq!(answered, 3, "{}", env.daemon_log());
}
