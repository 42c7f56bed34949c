//! The NSS module as RStudio's canonicalisation meets it: `getent passwd NAME` under nss_wrapper
//! with `libnss_accountmap.so` as its module (files first, then accountmap), against a real
//! daemon. An alias gives the local entry with the local `pw_name`; local names and uids still
//! come from files; privileged and unknown aliases give nothing; a stopped or silent daemon
//! gives nothing within the deadline; the daemon never asks itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::*;
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::thread;
use std::time::Duration;

/// getent's exit code for "key not found".
const GETENT_NOT_FOUND: i32 = 2;
/// The bound the tests hold the module to when the daemon cannot answer: its deadline is under
/// a second; the rest is getent's own start-up under a loaded test machine.
const UNAVAIL_LIMIT: Duration = Duration::from_millis(1500);

/// The passwd line nss_wrapper's files give for a user of the standard world.
fn local_line(name: &str, uid: u32, gid: u32) -> String {
    format!("{name}:x:{uid}:{gid}:{name} (test):/home/{name}:/bin/sh")
}

fn assert_found(env: &Env, key: &str, want: &str) {
    let out = env.getent_passwd(key);
    assert_eq!(out.code, 0, "getent passwd {key:?}\n{}", out.all());
    assert_eq!(out.stdout.trim_end(), want, "getent passwd {key:?}");
}

fn assert_not_found(env: &Env, key: &str) {
    let out = env.getent_passwd(key);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (GETENT_NOT_FOUND, ""),
        "getent passwd {key:?} should find nothing\n{}",
        out.all()
    );
}

#[test]
fn an_alias_gives_the_local_entry_under_the_local_name() {
    let env = Env::new("nss-alias");
    for (alias, name, uid, gid) in [
        ("John.Doe@Company.com", "jdoe", 1003, 1003), // accounts file
        ("john.doe@company.com", "jdoe", 1003, 1003), // accounts file, other case
        ("UID-jsmith", "jsmith", 1004, 1004),         // rewrite: proxy header
        ("alice@company.com", "alice", 1001, 1001),   // rewrite: email
        ("rsuser24/jsmith", "rsuser24", 1005, 1005),  // display name
        ("Carol", "carol", 1006, RSTUDIO_USERS_GID),  // letter case
    ] {
        assert_found(&env, alias, &local_line(name, uid, gid));
        // `accountmapctl resolve` runs the same pipeline and names the same account.
        let (code, v, out) = env.ctl_json(&["resolve", alias]);
        assert_eq!(code, 0, "{}", out.all());
        assert_eq!(v["account"], name, "resolve {alias:?}: {v}");
    }
    // The daemon logged the alias hits: under RStudio, the only record of the typed name.
    let log = env.daemon_log();
    assert!(
        log.lines().any(|l| l.contains("nss ")
            && l.contains("name=\"UID-jsmith\"")
            && l.contains("account=\"jsmith\"")),
        "{log}"
    );
}

#[test]
fn the_answer_comes_from_the_module() {
    // Without the module, nss_wrapper's files alone know no alias: the tests above would fail.
    let env = Env::new("nss-without");
    let mut cmd = Command::new("getent");
    cmd.args(["passwd", "John.Doe@Company.com"]);
    env.nss_wrapped(&mut cmd);
    let out = run_bounded(&mut cmd, None, COMMAND_LIMIT);
    assert_eq!(out.code, GETENT_NOT_FOUND, "{}", out.all());
    assert_found(
        &env,
        "John.Doe@Company.com",
        &local_line("jdoe", 1003, 1003),
    );
}

#[test]
fn local_names_and_uids_still_come_from_files() {
    let mut env = Env::new("nss-local");
    let check = |env: &Env| {
        assert_found(env, "alice", &local_line("alice", 1001, 1001));
        assert_found(env, "root", &local_line("root", 0, 0));
        assert_found(env, "sysuser", &local_line("sysuser", 500, 500));
        // By uid: files answer, the module never does.
        assert_found(env, "1003", &local_line("jdoe", 1003, 1003));
        assert_not_found(env, "4242");
    };
    check(&env);
    // Local names must not depend on the daemon.
    env.stop_daemon();
    check(&env);
}

#[test]
fn privileged_and_unknown_aliases_give_nothing() {
    let env = Env::new("nss-refused");
    for alias in [
        "ops@company.com",  // accounts file → root
        "root@company.com", // rewrite → root
        "ROOT",             // letter case → root
        "legacy-sys",       // accounts file → sysuser (uid 500, below 1000)
        "sysuser@company.com",
    ] {
        assert_not_found(&env, alias);
        // PAM's pipeline refuses the same aliases as unknown users.
        let (code, v, out) = env.ctl_json(&["resolve", alias]);
        assert_ne!(code, 0, "{}", out.all());
        assert_eq!(v["verdict"], "user-unknown", "resolve {alias:?}: {v}");
    }
    for unknown in [
        "ghost@company.com", // rewrite → no such account
        "eve@elsewhere.org", // no rule, not a user name
        "UID-ghost",         // rewrite → no such account
        "nobody-here",       // not an alias, not local
        "jdoe\u{7f}",        // control character
        &"a".repeat(300),    // over-long
    ] {
        assert_not_found(&env, unknown);
    }
    let log = env.daemon_log();
    assert!(
        log.lines()
            .any(|l| l.contains("name=\"ops@company.com\"") && l.contains("not answered")),
        "the refusal of an alias to root is logged:\n{log}"
    );
}

#[test]
fn a_stopped_daemon_gives_nothing_at_once_and_local_names_still_resolve() {
    let mut env = Env::new("nss-stopped");
    assert_found(
        &env,
        "John.Doe@Company.com",
        &local_line("jdoe", 1003, 1003),
    );
    env.stop_daemon();
    let out = env.getent_passwd("John.Doe@Company.com");
    eprintln!("daemon stopped: getent passwd ALIAS took {:?}", out.elapsed);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (GETENT_NOT_FOUND, ""),
        "{}",
        out.all()
    );
    assert!(out.elapsed < UNAVAIL_LIMIT, "{:?}", out.elapsed);
    assert_found(&env, "alice", &local_line("alice", 1001, 1001));
}

#[test]
fn a_silent_daemon_gives_nothing_within_the_deadline() {
    // A listener that accepts and never answers: the module must give up by its deadline.
    let env = Env::builder("nss-silent").no_daemon().build();
    let listener = UnixListener::bind(&env.socket).unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let out = env.getent_passwd("John.Doe@Company.com");
    eprintln!("silent daemon: getent passwd ALIAS took {:?}", out.elapsed);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (GETENT_NOT_FOUND, ""),
        "{}",
        out.all()
    );
    assert!(out.elapsed < UNAVAIL_LIMIT, "{:?}", out.elapsed);
    // It did wait for the daemon (so the module ran and connected) rather than give up early.
    assert!(
        out.elapsed >= Duration::from_millis(800),
        "{:?}",
        out.elapsed
    );
    assert_found(&env, "alice", &local_line("alice", 1001, 1001));
}

/// The daemon's `requests` counter from `accountmapctl status --json`.
fn requests(env: &Env) -> u64 {
    let (code, v, out) = env.ctl_json(&["status"]);
    assert_eq!(code, 0, "{}", out.all());
    v["requests"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in {v}"))
}

#[test]
fn the_daemon_never_asks_itself() {
    // The daemon runs with the module in its own NSS (nss_wrapper's files, then accountmap,
    // pointed at its own socket), as a host whose nsswitch.conf lists accountmap would have it.
    let mut env = Env::builder("nss-recursion").no_daemon().build();
    let socket = env.socket.clone();
    env.start_daemon_with(|cmd| {
        cmd.env("NSS_WRAPPER_MODULE_SO_PATH", nss_module())
            .env("NSS_WRAPPER_MODULE_FN_PREFIX", "accountmap")
            .env("ACCOUNTMAP_SOCKET", &socket);
    });
    // An alias whose account does not exist: files miss, so the daemon's lookup of "ghost"
    // reaches the module inside the daemon, which must answer UNAVAIL without connecting.
    let before = requests(&env);
    let (code, v, out) = env.ctl_json(&["resolve", "ghost@company.com"]);
    let after = requests(&env);
    assert_ne!(code, 0, "{}", out.all());
    assert_eq!(v["verdict"], "user-unknown", "not 'unavailable': {v}");
    assert_eq!(
        after - before,
        2,
        "only the resolve and the second status reached the daemon, no getpwnam from itself"
    );
    // The daemon still serves the module to everyone else.
    assert_found(
        &env,
        "John.Doe@Company.com",
        &local_line("jdoe", 1003, 1003),
    );
}
