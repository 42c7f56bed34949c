//! The NSS module as RStudio's canonicalisation meets it: `getent passwd NAME` under nss_wrapper
//! with `libnss_accountmap.so` as its module (files first, then accountmap), against a real
//! daemon. An alias gives the local entry with the local `pw_name`; local names and uids still
//! come from files; privileged and unknown aliases give nothing; a stopped or silent daemon
//! gives nothing within the deadline; the daemon never asks itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
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

#[track_caller]
fn assert_not_found(env: &Env, key: &str) -> Outcome {
    let out = env.getent_passwd(key);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (GETENT_NOT_FOUND, ""),
        "getent passwd {key:?} should find nothing\n{}",
        out.all()
    );
    out
}

/// Nothing found, and within [`UNAVAIL_LIMIT`]: the daemon could not answer and the module
/// gave up in time.
#[track_caller]
fn assert_not_found_unavail(env: &Env, key: &str) -> Outcome {
    let out = assert_not_found(env, key);
    assert!(out.elapsed < UNAVAIL_LIMIT, "{:?}", out.elapsed);
    out
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
    let out = assert_not_found_unavail(&env, "John.Doe@Company.com");
    eprintln!("daemon stopped: getent passwd ALIAS took {:?}", out.elapsed);
    assert_found(&env, "alice", &local_line("alice", 1001, 1001));
}

#[test]
fn a_silent_daemon_gives_nothing_within_the_deadline() {
    // A listener that accepts and never answers: the module must give up by its deadline.
    let env = Env::builder("nss-silent").no_daemon().build();
    let _listener = SilentListener::bind(&env.socket);
    let out = assert_not_found_unavail(&env, "John.Doe@Company.com");
    eprintln!("silent daemon: getent passwd ALIAS took {:?}", out.elapsed);
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

// ---------------------------------------------------------------------------------------------
// The shared-memory cache (`passwd.cache` next to the socket)

const ALIAS: &str = "John.Doe@Company.com";

/// An environment whose daemon caches positive answers (the harness default is no caching).
fn cached_env(name: &str) -> Env {
    Env::builder(name).config(|c| c.cache_ttl = 300).build()
}

fn cache_file(env: &Env) -> std::path::PathBuf {
    env.path("passwd.cache")
}

/// The daemon's process state letter from /proc (R, S, T, …).
fn process_state(pid: libc::pid_t) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// The daemon held with SIGSTOP; SIGCONT when dropped, so that a failed assertion never leaves
/// it stopped.
struct Stopped {
    pid: libc::pid_t,
}

impl Stopped {
    fn new(env: &Env) -> Stopped {
        let pid = env.daemon_pid().expect("daemon running");
        env.signal(libc::SIGSTOP);
        assert!(
            wait_until(Duration::from_secs(5), || process_state(pid) == Some('T')),
            "the daemon did not stop"
        );
        Stopped { pid }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: plain syscall on our own child's pid.
        unsafe { libc::kill(self.pid, libc::SIGCONT) };
    }
}

/// The nss log lines of the daemon that name `name`.
fn nss_lines(env: &Env, name: &str) -> usize {
    let needle = format!("name={name:?}");
    env.daemon_log()
        .lines()
        .filter(|l| l.contains("nss peer=") && l.contains(&needle))
        .count()
}

#[test]
fn a_cached_alias_is_answered_while_the_daemon_is_stopped() {
    let env = cached_env("nss-cache-stop");
    let path = cache_file(&env);
    let meta = std::fs::metadata(&path).expect("the daemon made passwd.cache");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
    let jdoe = local_line("jdoe", 1003, 1003);
    assert_found(&env, ALIAS, &jdoe);
    let (_, v, _) = env.ctl_json(&["status"]);
    assert_eq!(v["nss_cache_file"], path.display().to_string(), "{v}");
    assert_eq!(v["nss_cache_entries"], "1", "{v}");
    {
        let _stopped = Stopped::new(&env);
        // The daemon cannot answer: the entry comes from the shared memory.
        for _ in 0..3 {
            let out = env.getent_passwd(ALIAS);
            eprintln!("daemon stopped, cached alias: {:?}", out.elapsed);
            assert_eq!(
                (out.code, out.stdout.trim_end()),
                (0, jdoe.as_str()),
                "{}",
                out.all()
            );
        }
        // Only the exact name asked is cached (another spelling is its own entry), and an
        // alias never asked goes to the (stopped) daemon and finds nothing.
        assert_not_found_unavail(&env, "john.doe@company.com");
        assert_not_found_unavail(&env, "UID-jsmith");
    }
    // Cache hits are not logged: the daemon logged the alias once, at the first lookup.
    assert_found(&env, ALIAS, &jdoe);
    assert_eq!(nss_lines(&env, ALIAS), 1, "{}", env.daemon_log());
    // The alias text is not in the world-readable file.
    let bytes = std::fs::read(&path).unwrap();
    assert!(!bytes.windows(ALIAS.len()).any(|w| w == ALIAS.as_bytes()));
}

/// Issue 16: a fresh process whose `getpwnam` misses `files` (a typo, a probe, a service
/// asking for a user that does not exist) used to pay a socket round trip to the daemon every
/// time. The daemon now also caches "not an alias" (for `negative_cache_ttl`), so a repeated
/// miss is answered from the shared memory: with the daemon stopped, that name is still a quick
/// NOTFOUND, while a name never asked waits for the daemon (UNAVAIL after the module's 1 s).
#[test]
fn a_name_that_is_no_alias_is_answered_from_the_cache() {
    let env = Env::builder("nss-cache-negative")
        .config(|c| {
            c.cache_ttl = 300;
            c.negative_cache_ttl = 30;
        })
        .build();
    assert_not_found(&env, "no-such-user");
    let (_, v, _) = env.ctl_json(&["status"]);
    assert_eq!(v["nss_cache_entries"], "1", "{v}");
    {
        let _stopped = Stopped::new(&env);
        let cached = assert_not_found(&env, "no-such-user");
        let asked = assert_not_found_unavail(&env, "never-asked");
        eprintln!(
            "daemon stopped: cached miss {:?}, new miss {:?}",
            cached.elapsed, asked.elapsed
        );
        assert!(
            asked.elapsed >= Duration::from_millis(900),
            "{:?}",
            asked.elapsed
        );
        assert!(
            cached.elapsed < Duration::from_millis(900),
            "{:?}",
            cached.elapsed
        );
    }
    // A name that becomes an alias is answered at once after a reload (which empties the
    // cache), not after negative_cache_ttl.
    env.write_accounts(&format!("{STANDARD_ACCOUNTS}no-such-user = alice\n"));
    env.sighup();
    assert!(
        wait_until(Duration::from_secs(10), || env
            .getent_passwd("no-such-user")
            .code
            == 0),
        "{}",
        env.daemon_log()
    );
    assert_found(&env, "no-such-user", &local_line("alice", 1001, 1001));
}

/// With `negative_cache_ttl = 0` nothing negative is kept.
#[test]
fn no_negative_cache_no_cached_misses() {
    let env = Env::builder("nss-cache-no-negative")
        .config(|c| {
            c.cache_ttl = 300;
            c.negative_cache_ttl = 0;
        })
        .build();
    assert_not_found(&env, "no-such-user");
    let (_, v, _) = env.ctl_json(&["status"]);
    assert_eq!(v["nss_cache_entries"], "0", "{v}");
}

/// Points ALIAS at alice in the accounts file (no SIGHUP).
fn remap_alias_to_alice(env: &Env) {
    env.write_accounts(
        &STANDARD_ACCOUNTS.replace(&format!("{ALIAS} = jdoe"), &format!("{ALIAS} = alice")),
    );
}

#[test]
fn a_reload_empties_the_cache() {
    let mut env = cached_env("nss-cache-hup");
    assert_found(&env, ALIAS, &local_line("jdoe", 1003, 1003));
    assert_found(&env, "UID-jsmith", &local_line("jsmith", 1004, 1004));
    // A new rule for UID-… and a changed accounts file, not yet reloaded.
    let mut config = env.config().clone();
    config.rewrite[0] = "^UID-([a-z]+)$ alice".into();
    env.write_config(&config);
    remap_alias_to_alice(&env);
    // Within cache_ttl, the cached answer stands until something empties the cache. (The
    // accounts file edit alone may already have: the daemon watches that file, see below.)
    assert_found(&env, "UID-jsmith", &local_line("jsmith", 1004, 1004));
    let from = env.log_len();
    env.sighup();
    env.expect_log(from, Duration::from_secs(10), |l| {
        l.contains("configuration reloaded")
    });
    assert_found(&env, "UID-jsmith", &local_line("alice", 1001, 1001));
    assert_found(&env, ALIAS, &local_line("alice", 1001, 1001));
}

#[test]
fn a_cache_flush_empties_the_cache() {
    let env = cached_env("nss-cache-flush");
    assert_found(&env, ALIAS, &local_line("jdoe", 1003, 1003));
    // jdoe's primary group changes in the system's passwd: the daemon's account cache and the
    // shared memory both hold the old entry until a flush.
    let mut world = World::standard();
    world
        .users
        .iter_mut()
        .find(|u| u.name == "jdoe")
        .unwrap()
        .gid = RSTUDIO_USERS_GID;
    env.write_world(&world);
    assert_found(&env, ALIAS, &local_line("jdoe", 1003, 1003));
    let out = env.ctl(&["cache", "flush"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_found(&env, ALIAS, &local_line("jdoe", 1003, RSTUDIO_USERS_GID));
}

#[test]
fn a_stopped_daemon_leaves_no_cache_and_lookups_fail_fast() {
    let mut env = cached_env("nss-cache-term");
    assert_found(&env, ALIAS, &local_line("jdoe", 1003, 1003));
    assert!(env.stop_daemon().success());
    assert!(
        !cache_file(&env).exists(),
        "the file is removed on a clean stop"
    );
    assert_not_found_unavail(&env, ALIAS);
    assert_found(&env, "alice", &local_line("alice", 1001, 1001));
}

#[test]
fn a_killed_daemon_leaves_entries_until_a_new_daemon_replaces_the_file() {
    let mut env = cached_env("nss-cache-kill");
    assert_found(&env, ALIAS, &local_line("jdoe", 1003, 1003));
    env.kill_daemon();
    // SIGKILL cleans nothing up: entries are answered until they expire (documented).
    assert_found(&env, ALIAS, &local_line("jdoe", 1003, 1003));
    remap_alias_to_alice(&env);
    // The next daemon replaces (and retires) the old file: the old entry is gone.
    env.start_daemon();
    assert_found(&env, ALIAS, &local_line("alice", 1001, 1001));
}

#[test]
fn an_untrusted_cache_file_is_ignored() {
    let env = cached_env("nss-cache-trust");
    let path = cache_file(&env);
    let jdoe = local_line("jdoe", 1003, 1003);
    assert_found(&env, ALIAS, &jdoe);
    let _stopped = Stopped::new(&env);
    assert_found(&env, ALIAS, &jdoe);
    let chmod = |mode: u32| {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // Group- or other-writable: ignored, so the (stopped) daemon is asked and nothing comes.
    for mode in [0o664, 0o646] {
        chmod(mode);
        assert_not_found_unavail(&env, ALIAS);
    }
    chmod(0o644);
    assert_found(&env, ALIAS, &jdoe);
    if is_root() {
        // Owned by a user who is neither root nor the reader: ignored.
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        assert_not_found_unavail(&env, ALIAS);
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();
        assert_found(&env, ALIAS, &jdoe);
        // A root-owned file is trusted by other users too.
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(["getent", "passwd", ALIAS])
            .current_dir("/");
        env.nss_module_wrapped(&mut cmd);
        let out = run_bounded(&mut cmd, None, COMMAND_LIMIT);
        assert_eq!(
            (out.code, out.stdout.trim_end()),
            (0, jdoe.as_str()),
            "{}",
            out.all()
        );
    } else {
        eprintln!("not root: the owner check is covered by the unit tests only");
    }
}

#[test]
fn an_accounts_file_edit_reaches_cached_aliases_without_a_reload() {
    // The daemon looks at the accounts file every second on its own: cache hits never reach
    // it, so it cannot wait for a request to notice the edit.
    let env = cached_env("nss-cache-edit");
    assert_found(&env, ALIAS, &local_line("jdoe", 1003, 1003));
    let from = env.log_len();
    remap_alias_to_alice(&env);
    env.expect_log(from, Duration::from_secs(10), |l| {
        l.contains("accounts file") && l.contains("loaded")
    });
    assert_found(&env, ALIAS, &local_line("alice", 1001, 1001));
}

/// A C program that calls the module's `_nss_accountmap_initgroups_dyn(USER, GID)` as glibc's
/// getgrouplist does (an array of one gid, grown by the module) and prints the gids, one per
/// line, then the status. nss_wrapper 1.1.12 answers `getgrouplist` by enumerating groups and
/// never calls a module's initgroups_dyn, so `id` under nss_wrapper cannot show the module's
/// answer; the program runs under nss_wrapper so that the module's own passwd and group
/// look-ups see the test world.
const INITGROUPS_C: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <grp.h>
typedef int (*fn_t)(const char *, gid_t, long *, long *, gid_t **, long, int *);
int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 2; }
    fn_t f = (fn_t)dlsym(h, "_nss_accountmap_initgroups_dyn");
    if (!f) { fprintf(stderr, "no _nss_accountmap_initgroups_dyn\n"); return 2; }
    long start = 1, size = 1;
    gid_t *groups = malloc(sizeof(gid_t));
    groups[0] = (gid_t)atol(argv[3]);
    int err = 0;
    int status = f(argv[2], groups[0], &start, &size, &groups, 0, &err);
    for (long i = 1; i < start; i++) printf("%u\n", (unsigned)groups[i]);
    printf("status %d\n", status);
    free(groups);
    return 0;
}
"#;

/// The gids the module adds for `name` (primary gid `gid`), and its status line.
fn module_initgroups(env: &Env, name: &str, gid: u32) -> (Vec<u32>, String) {
    let program = env.path("initgroups");
    if !program.exists() {
        let source = env.path("initgroups.c");
        std::fs::write(&source, INITGROUPS_C).unwrap();
        let out = run_bounded(
            Command::new("cc")
                .arg("-o")
                .arg(&program)
                .arg(&source)
                .arg("-ldl"),
            None,
            COMMAND_LIMIT,
        );
        assert_eq!(out.code, 0, "cc\n{}", out.all());
    }
    let mut cmd = Command::new(&program);
    cmd.arg(nss_module()).arg(name).arg(gid.to_string());
    env.nss_module_wrapped(&mut cmd);
    let out = run_bounded(&mut cmd, None, COMMAND_LIMIT);
    assert_eq!(out.code, 0, "{}", out.all());
    let mut gids = Vec::new();
    let mut status = String::new();
    for line in out.stdout.lines() {
        match line.parse() {
            Ok(g) => gids.push(g),
            Err(_) => status = line.to_string(),
        }
    }
    (gids, status)
}

/// Issue 13 item 6: coreutils `id ALIAS` calls `getgrouplist(ALIAS, gid)`, which asks each
/// group source's `initgroups_dyn`. Before the fix the module had none, so no source knew the
/// alias and only the primary group was listed. Now it adds the local account's supplementary
/// groups for an alias, nothing for a local or unknown name, and local names never reach the
/// daemon.
#[test]
fn initgroups_of_an_alias_gives_the_local_accounts_groups() {
    let env = Env::new("nss-initgroups");
    // jdoe (uid 1003, gid 1003) is in rstudio-users (2000).
    for alias in ["John.Doe@Company.com", "jdoe@company.com", "UID-jdoe"] {
        assert_eq!(
            module_initgroups(&env, alias, 1003),
            (vec![RSTUDIO_USERS_GID], "status 1".to_string()),
            "initgroups_dyn({alias:?})"
        );
    }
    // Not aliases: NOTFOUND (0), nothing added; the group sources answer local names.
    for name in ["jdoe", "erin", "ghost@company.com", "ops@company.com"] {
        assert_eq!(
            module_initgroups(&env, name, 1003),
            (vec![], "status 0".to_string()),
            "initgroups_dyn({name:?})"
        );
    }
    let log = env.daemon_log();
    assert!(
        !log.contains("name=\"jdoe\"") && !log.contains("name=\"erin\""),
        "a local name reached the daemon:\n{log}"
    );
    // The daemon stopped: nothing is added for an alias (getpwnam_r reports the module's
    // UNAVAIL as not found), and a local name is still NOTFOUND.
    let mut env = env;
    env.stop_daemon();
    assert_eq!(
        module_initgroups(&env, "John.Doe@Company.com", 1003),
        (vec![], "status 0".to_string())
    );
    assert_eq!(
        module_initgroups(&env, "jdoe", 1003),
        (vec![], "status 0".to_string())
    );
}
