//! Config validation (`accountmapd --check`, `accountmapctl check-config`), reload on SIGHUP, and
//! accounts-file edits taking effect without a restart.
//!
//! Each bad config is a small edit of a valid one, so the error can only come from that edit;
//! the test asserts exit 2, the `FILE:LINE:COLUMN: message` form pointing at the edited line, and
//! words of the message that tell the administrator what is wrong. Where a check depends on a
//! value (a secret file's mode, tls vs start_tls) the same config with the right value must pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A valid config, line by line, so that cases can name line numbers.
fn base_lines(env: &Env) -> Vec<String> {
    vec![
        "[daemon]".into(),                                                             // 1
        format!("socket = \"{}\"", env.socket.display()),                              // 2
        "cache_ttl = 0".into(),                                                        // 3
        String::new(),                                                                 // 4
        "[access]".into(),                                                             // 5
        "minimum_uid = 1000".into(),                                                   // 6
        "required_groups = [\"rstudio-users\"]".into(),                                // 7
        "denied_users = [\"mallory\"]".into(),                                         // 8
        String::new(),                                                                 // 9
        "[mapping]".into(),                                                            // 10
        "lowercase = true".into(),                                                     // 11
        "display_separator = \"/\"".into(),                                            // 12
        format!("accounts_file = \"{}\"", env.accounts_path.display()),                // 13
        r"rewrite = ['^UID-([a-z]+)$ $1', '^([a-z0-9._-]+)@company\.com$ $1']".into(), // 14
    ]
}

/// An `[[ldap]]` section (lines 16..) with `tls` and `start_tls` as given.
fn ldap_section(start_tls: bool, tls: bool) -> Vec<String> {
    vec![
        String::new(),                                                   // 15
        "[[ldap]]".into(),                                               // 16
        "name = \"corp\"".into(),                                        // 17
        "server_address = [\"127.0.0.1:1389\"]".into(),                  // 18
        format!("start_tls = {start_tls}"),                              // 19
        format!("tls = {tls}"),                                          // 20
        "anonymous_bind = true".into(),                                  // 21
        "user_search_base_dn = \"ou=People,dc=company,dc=com\"".into(),  // 22
        "user_object_class = \"posixAccount\"".into(),                   // 23
        "username_attribute = \"uid\"".into(),                           // 24
        "user_email_attribute = \"mail\"".into(),                        // 25
        "group_search_base_dn = \"ou=Groups,dc=company,dc=com\"".into(), // 26
        "group_object_class = \"posixGroup\"".into(),                    // 27
        "group_name_attribute = \"cn\"".into(),                          // 28
    ]
}

fn proxy_section(key: &Path) -> Vec<String> {
    vec![
        String::new(),                                    // 15
        "[proxy]".into(),                                 // 16
        format!("hmac_key_file = \"{}\"", key.display()), // 17
        "max_clock_skew = 60".into(),                     // 18
    ]
}

fn write_lines(path: &Path, lines: &[String]) {
    write_atomic(path, &(lines.join("\n") + "\n"));
}

/// Writes [`base_lines`] with line `n` (1-based) replaced by `text` to `c.toml` in the test
/// directory, and asserts that both checks refuse it at line `n` (see [`assert_invalid`]). The
/// file, for further checks.
#[track_caller]
fn assert_edit_invalid(
    env: &Env,
    n: usize,
    text: &str,
    columns: &[usize],
    words: &[&str],
) -> PathBuf {
    let path = env.path("c.toml");
    let mut lines = base_lines(env);
    lines[n - 1] = text.into();
    write_lines(&path, &lines);
    assert_invalid(&path, &[n], columns, words);
    path
}

/// One `FILE:LINE:COLUMN: message` line.
#[derive(Debug)]
struct Diag {
    line: usize,
    column: usize,
    message: String,
}

/// The diagnostics about `file` in `text`, in `FILE:LINE:COLUMN: message` form.
fn diags(file: &Path, text: &str) -> Vec<Diag> {
    let prefix = format!("{}:", file.display());
    text.lines()
        .filter_map(|l| l.find(&prefix).map(|i| &l[i + prefix.len()..]))
        .filter_map(|rest| {
            let mut parts = rest.splitn(3, ':');
            let line = parts.next()?.trim().parse().ok()?;
            let column = parts.next()?.trim().parse().ok()?;
            let message = parts.next()?.trim().to_string();
            Some(Diag {
                line,
                column,
                message,
            })
        })
        .collect()
}

/// Asserts that both checks refuse `config` (exit 2) with a diagnostic at one of `lines`
/// (one, except where several lines of a section are fair pointers) and one of `columns` (the
/// key's or the value's, where either is a fair pointer; empty = any) whose message contains
/// all of `words` (case-insensitive).
#[track_caller]
fn assert_invalid(config: &Path, lines: &[usize], columns: &[usize], words: &[&str]) {
    let daemon = daemon_check(config);
    let ctl = ctl_check(config);
    for (who, out, text) in [
        ("accountmapd --check", &daemon, daemon.stderr.clone()),
        (
            "accountmapctl check-config",
            &ctl,
            format!("{}{}", ctl.stdout, ctl.stderr),
        ),
    ] {
        assert_eq!(out.code, 2, "{who} must exit 2\n{}", out.all());
        let found = diags(config, &text);
        let hit = found.iter().find(|d| {
            lines.contains(&d.line)
                && (columns.is_empty() || columns.contains(&d.column))
                && words
                    .iter()
                    .all(|w| d.message.to_lowercase().contains(&w.to_lowercase()))
        });
        assert!(
            hit.is_some(),
            "{who}: expected `{}:{:?}:{:?}: …{:?}…`, got {found:?}\n{}",
            config.display(),
            lines,
            columns,
            words,
            out.all()
        );
    }
}

fn assert_valid(config: &Path) {
    let daemon = daemon_check(config);
    assert_eq!(
        daemon.code,
        0,
        "accountmapd --check must accept\n{}",
        daemon.all()
    );
    let ctl = ctl_check(config);
    assert_eq!(
        ctl.code,
        0,
        "accountmapctl check-config must accept\n{}",
        ctl.all()
    );
}

#[test]
fn valid_config_passes_both_checks() {
    let env = Env::builder("cfg-valid").no_daemon().build();
    let path = env.path("valid.toml");
    write_lines(&path, &base_lines(&env));
    assert_valid(&path);
    // and the harness's own rendering of the config
    assert_valid(&env.config_path);
}

#[test]
fn shipped_example_config_is_valid() {
    let shipped = workspace_root().join("etc/accountmap.toml");
    assert!(
        shipped.is_file(),
        "{} is missing (SPEC: valid as shipped)",
        shipped.display()
    );
    let out = daemon_check(&shipped);
    assert_eq!(out.code, 0, "{}", out.all());
    let out = ctl_check(&shipped);
    assert_eq!(out.code, 0, "{}", out.all());
}

#[test]
fn unknown_key_is_an_error_at_its_line() {
    let env = Env::builder("cfg-unknown").no_daemon().build();
    // a typo
    let path = assert_edit_invalid(&env, 6, "minimum_uids = 1000", &[1], &["minimum_uids"]);

    let mut lines = base_lines(&env);
    lines.push("[mappings]".into()); // line 15: an unknown section
    lines.push("lowercase = true".into());
    write_lines(&path, &lines);
    assert_invalid(&path, &[15], &[], &["mappings"]);
}

#[test]
fn wrong_type_is_an_error_at_its_line() {
    let env = Env::builder("cfg-type").no_daemon().build();
    // a string, not a number, a list, a boolean; the key's column or the value's
    for (n, text, columns) in [
        (7, "required_groups = \"rstudio-users\"", [1, 19]),
        (11, "lowercase = \"yes\"", [1, 13]),
        (3, "cache_ttl = \"soon\"", [1, 13]),
    ] {
        assert_edit_invalid(&env, n, text, &columns, &[]);
    }
    let path = env.path("c.toml");
    let out = daemon_check(&path);
    let d = diags(&path, &out.stderr);
    assert!(
        d.iter()
            .any(|d| d.message.contains("cache_ttl") || d.message.contains("invalid type")),
        "the message must say what is wrong with cache_ttl: {d:?}"
    );
}

#[test]
fn tls_and_start_tls_together_are_an_error() {
    let env = Env::builder("cfg-tls").no_daemon().build();
    let path = env.path("c.toml");
    let mut lines = base_lines(&env);
    lines.extend(ldap_section(true, false));
    write_lines(&path, &lines);
    assert_valid(&path); // start_tls alone is fine…

    let mut lines = base_lines(&env);
    lines.extend(ldap_section(true, true));
    write_lines(&path, &lines);
    // …both is not; the error points into the section (its header, start_tls or tls line)
    assert_invalid(&path, &[16, 19, 20], &[], &["tls", "start_tls"]);
}

#[test]
fn secret_file_readable_by_others_is_an_error() {
    let env = Env::builder("cfg-secret").no_daemon().build();
    let key = env.path("proxy-hmac-key");
    let path = env.path("c.toml");
    let mut lines = base_lines(&env);
    lines.extend(proxy_section(&key));
    write_lines(&path, &lines);

    write_with_mode(&key, "s3cr3t\n", 0o600);
    assert_valid(&path);

    write_with_mode(&key, "s3cr3t\n", 0o644);
    let out = daemon_check(&path);
    assert_eq!(out.code, 2, "a 0644 secret must be refused\n{}", out.all());
    let text = out.stderr.clone();
    assert!(
        text.contains(key.to_str().unwrap()) && (text.contains("0644") || text.contains("0600")),
        "the message must name the file and its mode:\n{text}"
    );
    assert_invalid(&path, &[17], &[1, 17], &[]);

    // a secret file that does not exist
    std::fs::remove_file(&key).unwrap();
    let out = daemon_check(&path);
    assert_eq!(
        out.code,
        2,
        "a missing secret file must be refused\n{}",
        out.all()
    );
    assert!(out.stderr.contains(key.to_str().unwrap()), "{}", out.all());
}

#[test]
fn rewrite_rule_that_does_not_compile_is_an_error() {
    let env = Env::builder("cfg-regex").no_daemon().build();
    let unbalanced = "rewrite = ['^UID-([a-z]+)$ $1', '^UID-([a-z]+$ $1']";
    assert_edit_invalid(&env, 14, unbalanced, &[], &["does not compile"]);
    // a replacement naming a capture the regex lacks
    assert_edit_invalid(&env, 14, "rewrite = ['^UID-([a-z]+)$ $2']", &[], &["$2"]);
}

#[test]
fn relative_path_and_broken_toml_are_errors() {
    let env = Env::builder("cfg-misc").no_daemon().build();
    assert_edit_invalid(&env, 13, "accounts_file = \"accounts\"", &[], &["absolute"]);
    assert_edit_invalid(&env, 5, "[access", &[], &[]);
}

#[test]
fn missing_config_file_is_an_error() {
    let env = Env::builder("cfg-missing").no_daemon().build();
    let path = env.path("does-not-exist.toml");
    let out = daemon_check(&path);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains(path.to_str().unwrap()), "{}", out.all());
    let out = ctl_check(&path);
    assert_eq!(out.code, 2, "{}", out.all());
}

// --- reload -----------------------------------------------------------------------------------

const RELOAD_LIMIT: Duration = Duration::from_secs(5);

/// Polls `accountmapctl resolve NAME` (bounded) until its exit code is `code`.
fn wait_for_resolve(env: &Env, name: &str, code: i32) -> bool {
    wait_until(RELOAD_LIMIT, || env.ctl(&["resolve", name]).code == code)
}

/// Writes `cfg`, sends SIGHUP, and waits until `accountmapctl resolve probe` exits `code`,
/// which shows that the daemon runs on the new config.
fn reload(env: &mut Env, cfg: &Config, probe: &str, code: i32) {
    env.write_config(cfg);
    env.sighup();
    assert!(
        wait_for_resolve(env, probe, code),
        "new config not applied (resolve {probe} never exited {code}):\n{}",
        env.daemon_log()
    );
}

#[test]
fn sighup_with_a_bad_config_keeps_serving_the_old_policy() {
    let mut env = Env::new("hup-bad");
    env.assert_pam(SVC, "alice", &["authenticate"], &[AUTH_OK]);

    // A new config that would deny alice, with a typo that makes it invalid.
    let mut bad = env.config().clone();
    bad.denied_users = vec!["alice".into(), "mallory".into()];
    bad.extra = "\n[access2]\nbogus = 1\n".into();
    let text = bad.render(&env.socket, &env.accounts_path);
    env.write_config_text(&text);
    let from = env.log_len();
    env.sighup();
    let config = env.config_path.display().to_string();
    let line = env.wait_for_log(from, RELOAD_LIMIT, |l| l.contains(&config));
    assert!(
        line.is_some(),
        "the daemon must log why the new config was refused (naming {config}):\n{}",
        env.daemon_log()
    );

    assert!(
        env.daemon_alive(),
        "the daemon died on a bad reload:\n{}",
        env.daemon_log()
    );
    let run = env.pam(SVC, "alice", &["authenticate", "acct_mgmt"]);
    env.assert_verdicts(&run, SIGNED_IN, "old policy must stay");
    env.assert_pam(SVC, "bob", &["authenticate"], &[AUTH_ERR]);

    // Fixing the file and sending SIGHUP again applies it.
    bad.extra = String::new();
    reload(&mut env, &bad, "alice", 1);
    env.assert_pam(SVC, "alice", &["authenticate"], &[AUTH_ERR]);
}

#[test]
fn sighup_with_a_good_config_takes_effect() {
    let mut env = Env::new("hup-good");
    env.assert_pam(SVC, "bob", &["acct_mgmt"], &[PERM_DENIED]);
    env.assert_pam(SVC, "sysuser", &["acct_mgmt"], &[PERM_DENIED]);

    let mut cfg = env.config().clone();
    cfg.required_groups = vec!["staff".into()];
    cfg.minimum_uid = "400".into();
    reload(&mut env, &cfg, "bob", 0);

    env.assert_pam(SVC, "bob", &["authenticate", "acct_mgmt"], SIGNED_IN);
    // alice is not in staff: now refused
    env.assert_pam(SVC, "alice", &["acct_mgmt"], &[PERM_DENIED]);
    // sysuser (uid 500 >= 400) is not in staff either; with the group dropped it would pass
    cfg.required_groups = vec![];
    reload(&mut env, &cfg, "sysuser", 0);
    env.assert_pam(SVC, "sysuser", &["acct_mgmt"], &[ACCT_OK]);
    assert!(env.daemon_alive());
}

#[test]
fn edited_accounts_file_takes_effect_without_restart() {
    let env = Env::new("accounts-edit");
    let alias = "Alice.Smith@Lab.example";
    env.assert_pam(SVC, alias, &["authenticate"], &[USER_UNKNOWN]);

    // Appended in place, as `echo … >> accounts` does. No signal.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&env.accounts_path)
        .unwrap();
    writeln!(f, "{alias} = alice").unwrap();
    drop(f);
    assert!(
        wait_for_resolve(&env, alias, 0),
        "edit not picked up:\n{}",
        env.daemon_log()
    );
    let run = env.assert_pam(SVC_ECHO, alias, &["authenticate", "acct_mgmt"], SIGNED_IN);
    run.assert_user_after("auth", "alice");

    // Replaced through a new file, as editors do: the alias is gone again, jdoe's changes.
    env.write_accounts("John.Doe@Company.com = jsmith\n");
    assert!(
        wait_for_resolve(&env, alias, 1),
        "removal not picked up:\n{}",
        env.daemon_log()
    );
    env.pam(SVC_ECHO, "John.Doe@Company.com", &["authenticate"])
        .assert_user_after("auth", "jsmith");
}

#[test]
fn sighup_applies_a_new_policy_to_cached_accounts() {
    // With a cache, an answer given under the old policy must not outlive a reload.
    let mut env = Env::builder("hup-cache")
        .config(|c| c.cache_ttl = 300)
        .build();
    env.assert_pam(SVC, "alice", &["acct_mgmt"], &[ACCT_OK]);
    let mut cfg = env.config().clone();
    cfg.denied_users.push("alice".into());
    reload(&mut env, &cfg, "alice", 1);
    env.assert_pam(SVC, "alice", &["acct_mgmt"], &[PERM_DENIED]);
}

#[test]
fn drop_ins_are_read_in_name_order_and_later_wins() {
    let env = Env::builder("conf-d").no_daemon().build();
    let conf_d = env.path("conf.d");
    std::fs::create_dir(&conf_d).unwrap();
    write_atomic(
        &conf_d.join("10-deny.toml"),
        "[access]\ndenied_users = [\"alice\"]\n",
    );
    let mut env = env;
    env.start_daemon();
    let run = env.pam(SVC, "alice", &["acct_mgmt"]);
    env.assert_verdicts(&run, &[PERM_DENIED], "10-deny.toml applies");
    let run = env.pam(SVC, "mallory", &["acct_mgmt"]);
    env.assert_verdicts(&run, &[ACCT_OK], "the drop-in replaced the list");

    // a later file wins; applied on SIGHUP
    write_atomic(
        &conf_d.join("20-undo.toml"),
        "[access]\ndenied_users = [\"mallory\"]\n",
    );
    env.sighup();
    assert!(
        wait_for_resolve(&env, "alice", 0),
        "20-undo.toml not applied:\n{}",
        env.daemon_log()
    );
    env.assert_pam(SVC, "mallory", &["acct_mgmt"], &[PERM_DENIED]);

    // an error in a drop-in is reported against the drop-in
    let bad = conf_d.join("30-typo.toml");
    write_atomic(&bad, "[access]\n\ndenied_user = []\n");
    let out = daemon_check(&env.config_path);
    assert_eq!(out.code, 2, "{}", out.all());
    let d = diags(&bad, &out.stderr);
    assert!(
        d.iter()
            .any(|d| d.line == 3 && d.column == 1 && d.message.contains("denied_user")),
        "expected {}:3:1: …denied_user…, got {d:?}\n{}",
        bad.display(),
        out.all()
    );
}

#[test]
fn minimum_uid_auto_reads_login_defs() {
    // "auto" = UID_MIN from /etc/login.defs, else 1000. Either way 500 is below and 1001 above
    // on any Debian or RHEL host (UID_MIN 1000).
    let env = Env::builder("uid-auto")
        .config(|c| c.minimum_uid = "\"auto\"".into())
        .build();
    env.assert_pam(SVC, "sysuser", &["acct_mgmt"], &[PERM_DENIED]);
    env.assert_pam(SVC, "alice", &["acct_mgmt"], &[ACCT_OK]);
}

#[test]
fn a_broken_accounts_file_keeps_the_last_good_one() {
    let env = Env::new("accounts-broken");
    env.pam(SVC_ECHO, "John.Doe@Company.com", &["authenticate"])
        .assert_user_after("auth", "jdoe");
    let from = env.log_len();
    env.write_accounts("John.Doe@Company.com = jsmith\nthis line has no equals sign\n");
    // The file is re-read when next needed: the sign-in still uses the last good version…
    env.pam(SVC_ECHO, "John.Doe@Company.com", &["authenticate"])
        .assert_user_after("auth", "jdoe");
    // …and the log says why the new one was refused (naming the file and line 2).
    let accounts = format!("{}:2", env.accounts_path.display());
    let line = env.wait_for_log(from, RELOAD_LIMIT, |l| l.contains(&accounts));
    assert!(
        line.is_some(),
        "the bad accounts file must be logged:\n{}",
        env.daemon_log()
    );
}
