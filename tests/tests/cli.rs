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
    let out = refused(&env, "bob");
    assert!(
        out.stdout.contains("rstudio-users"),
        "bob lacks rstudio-users:\n{}",
        out.all()
    );
    let out = refused(&env, "sysuser");
    assert!(
        out.stdout.contains("1000"),
        "sysuser is below uid 1000:\n{}",
        out.all()
    );
    let out = refused(&env, "mallory");
    let text = out.stdout.to_lowercase();
    assert!(text.contains("denied"), "{}", out.all());
    refused(&env, "ghost");
}

/// `accountmapctl resolve NAME`, which must exit 1 (refused).
#[track_caller]
fn refused(env: &Env, name: &str) -> Outcome {
    let out = env.ctl(&["resolve", name]);
    assert_eq!(out.code, 1, "resolve {name}: {}", out.all());
    out
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key)
        .unwrap_or_else(|| panic!("--json output lacks {key:?}: {v}"))
}

/// The `rule` field, lower-cased.
fn rule(v: &Value) -> String {
    field(v, "rule").as_str().unwrap_or_default().to_lowercase()
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
    assert!(
        rule(&v).contains("accounts"),
        "rule should name the accounts file: {v}"
    );

    let (code, v, out) = env.ctl_json(&["resolve", "jsmith@company.com"]);
    assert_eq!(code, 0, "{}", out.all());
    assert_eq!(field(&v, "account"), "jsmith", "{v}");
    assert_eq!(field(&v, "uid"), 1004, "{v}");
    assert!(
        rule(&v).contains("rewrite"),
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
    env.assert_pam(SVC, "alice", &["authenticate"], &[AUTH_OK]);

    // alice leaves rstudio-users
    let mut world = World::standard();
    world
        .group_mut("rstudio-users")
        .members
        .retain(|m| m != "alice");
    env.write_world(&world);

    // cache_ttl = 300: the positive answer is reused, so the change is not seen yet…
    let run = env.pam(SVC, "alice", &["acct_mgmt"]);
    env.assert_verdicts(&run, &[ACCT_OK], "cached answer");

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
    env.assert_pam(SVC, "alice", &["acct_mgmt"], &[PERM_DENIED]);
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

    let want = openssl_proxy_signature("correct horse battery staple", "jdoe", date, body);
    let out = env.proxy_sign(&key_file, "jdoe", date, Some(&body_file));
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.stdout.trim(), want, "{}", out.all());

    // empty body (what verify=proxy uses)
    let want = openssl_proxy_signature("correct horse battery staple", "jdoe", date, "");
    let out = env.proxy_sign(&key_file, "jdoe", date, None);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.stdout.trim(), want, "{}", out.all());

    // the key file's trailing newline is not part of the key: same signature without it
    write_with_mode(&key_file, "correct horse battery staple", 0o600);
    let again = env.proxy_sign(&key_file, "jdoe", date, None);
    assert_eq!(again.stdout.trim(), want, "{}", again.all());

    // a different user gives a different signature
    let other = env.proxy_sign(&key_file, "jdoe2", date, None);
    assert_ne!(other.stdout.trim(), want);
}
