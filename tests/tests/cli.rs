//! `accountmapctl` as an administrator uses it: resolve (human and `--json`), status, cache
//! flush, proxy-sign, and the exit codes of SPEC's table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::*;
use serde_json::Value;
use std::process::Command;

#[test]
fn resolve_human_output_shows_account_uid_groups_and_rule() {
    let env = Env::new("ctl-human");
    let out = env.ctl(&["resolve", "John.Doe@Company.com"]);
    assert_eq!(out.code, 0, "{}", out.all());
    for word in ["jdoe", "1003", "rstudio-users"] {
        assert!(
            out.stdout.contains(word),
            "resolve output lacks {word:?}:\n{}",
            out.all()
        );
    }
    assert!(
        out.stdout.to_lowercase().contains("accounts"),
        "resolve must show that the accounts file matched:\n{}",
        out.all()
    );

    // refusals say why
    let out = env.ctl(&["resolve", "bob"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout.contains("rstudio-users"),
        "bob lacks rstudio-users:\n{}",
        out.all()
    );
    let out = env.ctl(&["resolve", "sysuser"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout.contains("1000"),
        "sysuser is below uid 1000:\n{}",
        out.all()
    );
    let out = env.ctl(&["resolve", "mallory"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout.to_lowercase().contains("denied"),
        "{}",
        out.all()
    );
    let out = env.ctl(&["resolve", "ghost"]);
    assert_eq!(out.code, 1, "{}", out.all());
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key)
        .unwrap_or_else(|| panic!("--json output lacks {key:?}: {v}"))
}

#[test]
fn resolve_json_fields() {
    let env = Env::new("ctl-json");

    let (code, v, out) = env.ctl_json(&["resolve", "John.Doe@Company.com"]);
    assert_eq!(code, 0, "{}", out.all());
    assert_eq!(field(&v, "allowed"), &Value::Bool(true), "{v}");
    assert_eq!(field(&v, "account"), "jdoe", "{v}");
    assert_eq!(field(&v, "uid"), 1003, "{v}");
    assert!(field(&v, "reason").is_string(), "{v}");
    let rule = field(&v, "rule")
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        rule.contains("accounts"),
        "rule should name the accounts file: {v}"
    );

    let (code, v, out) = env.ctl_json(&["resolve", "jsmith@company.com"]);
    assert_eq!(code, 0, "{}", out.all());
    assert_eq!(field(&v, "account"), "jsmith", "{v}");
    assert_eq!(field(&v, "uid"), 1004, "{v}");
    let rule = field(&v, "rule")
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        rule.contains("rewrite"),
        "rule should name the rewrite rule: {v}"
    );

    let (code, v, out) = env.ctl_json(&["resolve", "rsuser24/jsmith"]);
    assert_eq!(code, 0, "{}", out.all());
    assert_eq!(field(&v, "account"), "rsuser24", "{v}");

    let (code, v, out) = env.ctl_json(&["resolve", "carol"]);
    assert_eq!(code, 0, "primary group counts\n{}", out.all());
    assert_eq!(field(&v, "allowed"), &Value::Bool(true), "{v}");

    let (code, v, out) = env.ctl_json(&["resolve", "bob"]);
    assert_eq!(code, 1, "{}", out.all());
    assert_eq!(field(&v, "allowed"), &Value::Bool(false), "{v}");
    assert_eq!(field(&v, "account"), "bob", "{v}");
    assert_eq!(field(&v, "uid"), 1002, "{v}");
    let reason = field(&v, "reason").as_str().unwrap_or_default();
    assert!(
        reason.contains("rstudio-users"),
        "reason should name the group: {v}"
    );

    let (code, v, out) = env.ctl_json(&["resolve", "legacy-sys"]);
    assert_eq!(code, 1, "an alias to uid 500 is refused\n{}", out.all());
    assert_eq!(field(&v, "allowed"), &Value::Bool(false), "{v}");

    let (code, v, out) = env.ctl_json(&["resolve", "ghost"]);
    assert_eq!(code, 1, "{}", out.all());
    assert_eq!(field(&v, "allowed"), &Value::Bool(false), "{v}");
    let uid = v.get("uid").cloned().unwrap_or(Value::Null);
    assert!(uid.is_null(), "an unknown user has no uid: {v}");
}

#[test]
fn resolve_with_service() {
    let env = Env::new("ctl-service");
    let out = env.ctl(&["resolve", "alice", "--service", "rstudio"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let out = env.ctl(&["resolve", "bob", "--service", "sshd"]);
    assert_eq!(out.code, 1, "{}", out.all());
}

#[test]
fn daemon_down_exits_3() {
    let env = Env::builder("ctl-down").no_daemon().build();
    let out = env.ctl(&["resolve", "alice"]);
    assert_eq!(out.code, 3, "{}", out.all());
    let out = env.ctl(&["--json", "resolve", "alice"]);
    assert_eq!(out.code, 3, "{}", out.all());
    let out = env.ctl(&["status"]);
    assert_eq!(out.code, 3, "{}", out.all());
    assert!(
        out.elapsed < std::time::Duration::from_secs(2),
        "took {:?}",
        out.elapsed
    );
}

#[test]
fn status_when_up() {
    let mut env = Env::new("ctl-status");
    let out = env.ctl(&["status"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains(env!("CARGO_PKG_VERSION")),
        "status shows the daemon version:\n{}",
        out.all()
    );
    assert!(
        out.stdout.contains(env.config_path.to_str().unwrap()),
        "status shows the config path:\n{}",
        out.all()
    );
    // ACCOUNTMAP_SOCKET replaces --socket
    let via_env = run_bounded(
        Command::new(accountmapctl())
            .arg("status")
            .env("ACCOUNTMAP_SOCKET", &env.socket),
        None,
        COMMAND_LIMIT,
    );
    assert_eq!(via_env.code, 0, "{}", via_env.all());

    env.stop_daemon();
    let out = env.ctl(&["status"]);
    assert_eq!(out.code, 3, "{}", out.all());
}

#[test]
fn cache_flush_makes_a_group_change_visible_at_once() {
    let env = Env::builder("ctl-flush")
        .config(|c| c.cache_ttl = 300)
        .build();
    let out = env.ctl(&["resolve", "alice"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let run = env.pam(SVC, "alice", &["authenticate"]);
    assert_eq!(run.verdicts(), vec![AUTH_OK], "{}", run.out.all());

    // alice leaves rstudio-users
    let mut world = World::standard();
    world
        .group_mut("rstudio-users")
        .members
        .retain(|m| m != "alice");
    env.write_world(&world);

    // cache_ttl = 300: the positive answer is reused, so the change is not seen yet…
    let run = env.pam(SVC, "alice", &["acct_mgmt"]);
    assert_eq!(
        run.verdicts(),
        vec![ACCT_OK],
        "cached answer\n{}",
        run.out.all()
    );

    // …until the cache is flushed.
    let out = env.ctl(&["cache", "flush"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let out = env.ctl(&["resolve", "alice"]);
    assert_eq!(
        out.code,
        1,
        "after a flush the change is seen\n{}",
        out.all()
    );
    let run = env.pam(SVC, "alice", &["acct_mgmt"]);
    assert_eq!(run.verdicts(), vec![PERM_DENIED], "{}", run.out.all());
}

#[test]
fn proxy_sign_matches_the_openssl_recipe() {
    let env = Env::builder("ctl-sign").no_daemon().build();
    let key_file = env.path("proxy-hmac-key");
    write_with_mode(&key_file, "correct horse battery staple\n", 0o600);
    let body_file = env.path("body");
    let body = "{\"path\": \"/\"}\nsecond line";
    write_with_mode(&body_file, body, 0o644);
    let date = "Tue, 24 Nov 2026 10:00:00 GMT";
    let key = key_file.to_str().unwrap();

    let want = openssl_proxy_signature("correct horse battery staple", "jdoe", date, body);
    let out = env.ctl(&[
        "proxy-sign",
        "--key-file",
        key,
        "--user",
        "jdoe",
        "--date",
        date,
        "--body-file",
        body_file.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.stdout.trim(), want, "{}", out.all());

    // empty body (what verify=proxy uses)
    let want = openssl_proxy_signature("correct horse battery staple", "jdoe", date, "");
    let out = env.ctl(&[
        "proxy-sign",
        "--key-file",
        key,
        "--user",
        "jdoe",
        "--date",
        date,
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.stdout.trim(), want, "{}", out.all());

    // the key file's trailing newline is not part of the key: same signature without it
    write_with_mode(&key_file, "correct horse battery staple", 0o600);
    let again = env.ctl(&[
        "proxy-sign",
        "--key-file",
        key,
        "--user",
        "jdoe",
        "--date",
        date,
    ]);
    assert_eq!(again.stdout.trim(), want, "{}", again.all());

    // a different user gives a different signature
    let other = env.ctl(&[
        "proxy-sign",
        "--key-file",
        key,
        "--user",
        "jdoe2",
        "--date",
        date,
    ]);
    assert_ne!(other.stdout.trim(), want);
}
