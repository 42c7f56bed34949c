//! `accountmapctl test-login`: RStudio Server's sign-in path, reproduced step by step, run under
//! pam_wrapper + nss_wrapper with `libnss_accountmap.so` as the NSS module (files first), real
//! PAM stacks and a real daemon. Passwords come from pam_matrix (`user:password:service` lines),
//! so the password step is real too.
//!
//! What an administrator checks with it: an email alias and a proxy-header alias sign in as the
//! mapped local account; refused identities fail at the step that explains them; a stack that
//! prompts with echo on or sends an error message fails the conversation step (as RStudio's
//! helper does), a stack that only sends info text does not; the profiles shipped in `etc/pam.d/`
//! pass; and `verify=proxy` accepts a fresh signature once and refuses replays, stale dates and
//! the wrong key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::*;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

const PAM_MATRIX: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so";
const PAM_CHATTY: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_chatty.so";

/// pam_matrix's password file: every user of the standard world, password `pw-NAME`, for any
/// of the services below (pam_matrix checks the service only in its account phase, which no
/// stack here uses).
fn write_passdb(env: &Env) -> std::path::PathBuf {
    let path = env.path("passdb");
    let mut text = String::new();
    for user in World::standard().users {
        text += &format!("{0}:pw-{0}:rstudio\n", user.name);
    }
    write_atomic(&path, &text);
    path
}

/// The `rstudio` service of the tests: accountmap for identity and policy, pam_matrix for the
/// password, accountmap again in the account phase — the shape of `etc/pam.d/rstudio.debian`.
fn add_rstudio_services(env: &Env) {
    let ours = |kind: &str, control: &str| env.module_line(kind, control, "");
    let (auth, permit) = (
        ours("auth", "requisite"),
        "account required pam_permit.so\n",
    );
    let services = [
        (
            "rstudio",
            format!(
                "{auth}auth required {PAM_MATRIX}\n{}",
                ours("account", "[success=ok default=die]")
            ),
        ),
        // Passwords only: shows that test-login checks minimum uid and groups itself, and that
        // its stack step fails (accountmap is not in the stack).
        ("password-only", format!("auth required {PAM_MATRIX}\n{permit}")),
        // pam_matrix's `echo` option asks for the password with PAM_PROMPT_ECHO_ON.
        (
            "echo-on",
            format!(
                "{auth}auth required {PAM_MATRIX} echo\n{}",
                ours("account", "required")
            ),
        ),
        // pam_chatty sends PAM_ERROR_MSG lines with `error`, PAM_TEXT_INFO lines with `info`.
        (
            "error-msg",
            format!(
                "{auth}auth required {PAM_CHATTY} num_lines=1 error\nauth required {PAM_MATRIX}\n{}",
                ours("account", "required")
            ),
        ),
        (
            "info-text",
            format!(
                "{auth}auth required {PAM_CHATTY} num_lines=2 info\nauth required {PAM_MATRIX}\n{}",
                ours("account", "required")
            ),
        ),
    ];
    for (name, text) in services {
        env.add_service_text(name, &text);
    }
}

/// `accountmapctl test-login NAME --service SERVICE` under pam_wrapper and nss_wrapper with our
/// NSS module, `password` on stdin.
fn test_login(env: &Env, args: &[&str], password: &[u8]) -> Outcome {
    test_login_with(env, &[], args, password)
}

/// As [`test_login`], with global options (`--json`) before the command.
fn test_login_with(env: &Env, global: &[&str], args: &[&str], password: &[u8]) -> Outcome {
    let passdb = write_passdb(env);
    let mut cmd = Command::new(accountmapctl());
    cmd.args(global)
        .arg("--socket")
        .arg(&env.socket)
        .arg("test-login")
        .args(args);
    env.pam_wrapped(&mut cmd);
    env.nss_module_vars(&mut cmd);
    cmd.env("PAM_MATRIX_PASSWD", &passdb);
    run_bounded_pam(&mut cmd, Some(password), COMMAND_LIMIT)
}

/// The result word (PASS, FAIL, SKIP) and text of each step, in order.
fn steps(out: &Outcome) -> Vec<(String, String, String)> {
    out.stdout
        .lines()
        .filter_map(|l| {
            let (result, rest) = l.split_once("  ")?;
            if !["PASS", "FAIL", "SKIP"].contains(&result) {
                return None;
            }
            let (step, detail) = rest.trim_start().split_once(' ')?;
            Some((result.into(), step.into(), detail.trim().into()))
        })
        .collect()
}

/// The steps test-login runs, in order.
const STEPS: [&str; 6] = ["stack", "nss", "uid", "pam", "minimum-uid", "groups"];

/// Asserts the steps and each one's result, in the order of [`STEPS`], e.g.
/// `["PASS", "PASS", "FAIL", "PASS", "PASS"]`.
#[track_caller]
fn assert_steps(out: &Outcome, results: [&str; 6]) {
    let got: Vec<(String, String)> = steps(out).into_iter().map(|(r, s, _)| (s, r)).collect();
    let want: Vec<(String, String)> = STEPS
        .iter()
        .zip(results)
        .map(|(s, r)| (s.to_string(), r.to_string()))
        .collect();
    assert_eq!(got, want, "{}", out.all());
}

fn detail(out: &Outcome, step: &str) -> String {
    steps(out)
        .into_iter()
        .find(|(_, s, _)| s == step)
        .map(|(_, _, d)| d)
        .unwrap_or_else(|| panic!("no step {step}:\n{}", out.all()))
}

/// Asserts that the detail of `step` contains `text`.
#[track_caller]
fn assert_detail(out: &Outcome, step: &str, text: &str) {
    assert!(detail(out, step).contains(text), "{}", out.all());
}

const ALL_PASS: [&str; 6] = ["PASS"; 6];

#[test]
fn an_email_alias_and_a_proxy_alias_sign_in_as_the_local_account() {
    let env = Env::new("tl-alias");
    add_rstudio_services(&env);
    for (name, account, uid) in [
        ("John.Doe@Company.com", "jdoe", 1003), // accounts file (google-accounts format)
        ("UID-jsmith", "jsmith", 1004),         // rewrite rule (auth-proxy-user-header-rewrite)
        ("alice", "alice", 1001),               // a local name
    ] {
        let out = test_login(&env, &[name], format!("pw-{account}\n").as_bytes());
        assert_eq!(out.code, 0, "{}", out.all());
        assert_steps(&out, ALL_PASS);
        assert!(
            out.stdout.contains(&format!(
                "RESULT PASS: {name:?} signs in to RStudio Server as {account} (uid {uid})"
            )),
            "{}",
            out.all()
        );
        let nss = detail(&out, "nss");
        if name == account {
            assert!(nss.ends_with("a local name"), "{nss}");
        } else {
            assert!(
                nss.contains(&format!(
                    "an alias: NSS answers with the local account \"{account}\""
                )),
                "{nss}"
            );
        }
        // PAM ran under the local name, and one hidden password prompt was answered.
        let pam = detail(&out, "pam");
        assert!(pam.contains(&format!("as \"{account}\"")), "{pam}");
        assert!(pam.contains("1 password prompt(s) answered"), "{pam}");
    }
    // --json: one object an administrator's script can check.
    let out = test_login_with(&env, &["--json"], &["UID-jsmith"], b"pw-jsmith");
    assert_eq!(out.code, 0, "{}", out.all());
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(
        (&v["account"], &v["uid"], &v["alias"], &v["passed"]),
        (
            &serde_json::json!("jsmith"),
            &serde_json::json!(1004),
            &serde_json::json!(true),
            &serde_json::json!(true)
        ),
        "{v}"
    );
    assert_eq!(v["steps"].as_array().map(Vec::len), Some(6), "{v}");
}

#[test]
fn a_wrong_password_fails_at_pam_and_only_there() {
    let env = Env::new("tl-wrong-pw");
    add_rstudio_services(&env);
    let out = test_login(&env, &["John.Doe@Company.com"], b"not-the-password\n");
    assert_eq!(out.code, 1, "{}", out.all());
    assert_steps(&out, ["PASS", "PASS", "PASS", "FAIL", "PASS", "PASS"]);
    assert_detail(&out, "pam", "PAM_AUTH_ERR");
    // The hint says the refusal is not accountmap's.
    assert!(
        out.stdout.contains("accountmapd allows \"jdoe\""),
        "{}",
        out.all()
    );
    // An over-long password is refused as rserver-pam refuses it (more than 200 bytes).
    let out = test_login(&env, &["jdoe"], "x".repeat(201).as_bytes());
    assert_eq!(out.code, 1, "{}", out.all());
    assert_detail(&out, "pam", "longer than 200 bytes");
}

#[test]
fn refused_identities_fail_at_the_step_that_explains_them() {
    let env = Env::new("tl-refused");
    add_rstudio_services(&env);

    // bob is in staff only. accountmap's PAM line refuses him, and the group step says why.
    let out = test_login(&env, &["bob@company.com"], b"pw-bob");
    assert_eq!(out.code, 1, "{}", out.all());
    assert_steps(&out, ["PASS", "PASS", "PASS", "FAIL", "PASS", "FAIL"]);
    assert_detail(
        &out,
        "groups",
        "bob is in none of the required groups rstudio-users",
    );
    assert!(out.stdout.contains("accountmapd: denied"), "{}", out.all());

    // With a stack that checks only passwords, the group step still catches him, as RStudio's
    // auth-required-user-group would.
    let out = test_login(&env, &["bob", "--service", "password-only"], b"pw-bob");
    assert_eq!(out.code, 1, "{}", out.all());
    assert_steps(&out, ["FAIL", "PASS", "PASS", "PASS", "PASS", "FAIL"]);

    // sysuser (uid 500) is in the group but below the minimum uid.
    let out = test_login(
        &env,
        &["sysuser", "--service", "password-only"],
        b"pw-sysuser",
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert_steps(&out, ["FAIL", "PASS", "PASS", "PASS", "FAIL", "PASS"]);
    assert_detail(&out, "minimum-uid", "uid 500 < 1000");

    // An alias of root, and an alias of no account: NSS gives nothing, nothing else runs.
    for name in ["ops@company.com", "ghost@company.com"] {
        let out = test_login(&env, &[name], b"whatever");
        assert_eq!(out.code, 1, "{}", out.all());
        assert_steps(&out, ["PASS", "FAIL", "SKIP", "SKIP", "SKIP", "SKIP"]);
        assert_detail(&out, "nss", "Incorrect or invalid username/password");
    }
}

#[test]
fn two_accounts_sharing_a_uid_fail_the_round_trip() {
    // "jdoe2" comes first in passwd with jdoe's uid: getpwuid(1003) answers jdoe2, and RStudio
    // refuses jdoe with "another user with the same UID".
    let env = Env::builder("tl-same-uid")
        .world(|w| {
            w.users.insert(
                0,
                User {
                    name: "jdoe2".into(),
                    uid: 1003,
                    gid: 1003,
                },
            )
        })
        .build();
    add_rstudio_services(&env);
    let out = test_login(&env, &["John.Doe@Company.com"], b"pw-jdoe");
    assert_eq!(out.code, 1, "{}", out.all());
    let uid = detail(&out, "uid");
    assert!(
        uid.contains("getpwuid(1003) = jdoe2, not jdoe")
            && uid.contains("another user with the same UID"),
        "{}",
        out.all()
    );
}

#[test]
fn the_conversation_fails_on_echoed_prompts_and_error_messages() {
    let env = Env::new("tl-conv");
    add_rstudio_services(&env);
    for (service, sent) in [
        ("echo-on", "PAM_PROMPT_ECHO_ON \"Password: \""),
        ("error-msg", "PAM_ERROR_MSG"),
    ] {
        let out = test_login(&env, &["jdoe", "--service", service], b"pw-jdoe");
        assert_eq!(out.code, 1, "{service}: {}", out.all());
        let pam = detail(&out, "pam");
        assert!(
            pam.contains(&format!("the stack sent {sent}")),
            "{service}: {}",
            out.all()
        );
    }
    // Info text is fine: RStudio accepts PAM_TEXT_INFO.
    let out = test_login(&env, &["jdoe", "--service", "info-text"], b"pw-jdoe");
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("conversation: PAM_TEXT_INFO"),
        "{}",
        out.all()
    );
}

#[test]
fn the_shipped_profiles_pass_with_the_strict_conversation() {
    // etc/pam.d/ as shipped, with pam_accountmap.so pointed at the test build and socket, and
    // each distribution include (`@include common-X`, `X include system-auth`) replaced by a
    // stand-in: pam_matrix for passwords, pam_permit for the rest. (Includes are rewritten
    // rather than provided as files: pam_wrapper reads included files from the real /etc/pam.d.)
    let env = Env::new("tl-shipped");
    let etc = workspace_root().join("etc/pam.d");
    let module = format!("{} socket={}", pam_module().display(), env.socket.display());
    let stand_in = |kind: &str| match kind {
        "auth" => format!("auth required {PAM_MATRIX}"),
        other => format!("{other} required pam_permit.so"),
    };
    let install = |name: &str, file: &str| {
        let text = std::fs::read_to_string(etc.join(file)).unwrap();
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["@include", include] => stand_in(include.trim_start_matches("common-")),
                    [kind, "include", "system-auth"] => stand_in(kind),
                    _ => line.replace("pam_accountmap.so", &module),
                }
            })
            .collect();
        env.add_service_text(name, &(lines.join("\n") + "\n"));
    };
    install("rstudio-debian", "rstudio.debian");
    install("rstudio-rhel", "rstudio.rhel");
    install("rstudio-session", "rstudio-session");

    for service in ["rstudio-debian", "rstudio-rhel"] {
        let out = test_login(
            &env,
            &["John.Doe@Company.com", "--service", service],
            b"pw-jdoe",
        );
        assert_eq!(out.code, 0, "{service}: {}", out.all());
        assert_steps(&out, ALL_PASS);
        // The only message of the whole stack is the one hidden password prompt.
        let conversation: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.contains("conversation:"))
            .collect();
        assert_eq!(
            conversation.len(),
            1,
            "{service} sent more than the password prompt:\n{}",
            out.all()
        );
        assert!(conversation[0].contains("PAM_PROMPT_ECHO_OFF \"Password: \""));
        // accountmap's refusal is final in the shipped stacks.
        let out = test_login(&env, &["bob", "--service", service], b"pw-bob");
        assert!(
            detail(&out, "pam").contains("PAM_AUTH_ERR"),
            "{service}: {}",
            out.all()
        );
    }

    // Workbench's session profile: root needs no password, nothing is ever asked, and the
    // account phase still applies accountmap's policy.
    let out = test_login(&env, &["jdoe", "--service", "rstudio-session"], b"");
    assert_eq!(out.code, 0, "{}", out.all());
    assert_detail(&out, "pam", "0 password prompt(s)");
    assert!(!out.stdout.contains("conversation:"), "{}", out.all());
    let out = test_login(&env, &["bob", "--service", "rstudio-session"], b"");
    assert_detail(&out, "pam", "pam_acct_mgmt: PAM_PERM_DENIED");
}

#[test]
fn a_stopped_daemon_is_exit_3() {
    let mut env = Env::new("tl-down");
    add_rstudio_services(&env);
    env.stop_daemon();
    // A local name still resolves through files, but accountmapd's settings cannot be read.
    let out = test_login(&env, &["jdoe", "--service", "password-only"], b"pw-jdoe");
    assert_eq!(out.code, 3, "{}", out.all());
    assert_detail(&out, "groups", "cannot ask accountmapd");
    // An alias cannot resolve at all: the NSS module answers UNAVAIL.
    let out = test_login(&env, &["John.Doe@Company.com"], b"pw-jdoe");
    assert_eq!(out.code, 3, "{}", out.all());
    assert_detail(&out, "nss", "finds nothing");
}

// ---------------------------------------------------------------------------------------------
// verify=proxy

const KEY: &str = "correct horse battery staple";

/// A daemon with a `[proxy]` section (key file 0600, 60 s skew) and a `proxy` service whose
/// auth phase is accountmap with verify=proxy alone.
fn proxy_env(name: &str, with_proxy_section: bool) -> Env {
    let mut env = Env::builder(name).no_daemon().build();
    let key = env.path("proxy-hmac-key");
    write_with_mode(&key, &format!("{KEY}\n"), 0o600);
    let mut config = env.config().clone();
    if with_proxy_section {
        config.extra = format!(
            "\n[proxy]\nhmac_key_file = \"{}\"\nmax_clock_skew = 60\n",
            key.display()
        );
    }
    env.write_config(&config);
    env.start_daemon();
    env.add_service_text(
        "proxy",
        &format!(
            "{}{}",
            env.module_line("auth", "requisite", "verify=proxy"),
            env.module_line("account", "[success=ok default=die]", "")
        ),
    );
    env
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An IMF-fixdate (what an HTTP Date header carries) for Unix time `t`.
fn imf_date(t: i64) -> String {
    let out = run_bounded(
        Command::new("date").env("LC_ALL", "C").args([
            "-u",
            "-d",
            &format!("@{t}"),
            "+%a, %d %b %Y %H:%M:%S GMT",
        ]),
        None,
        COMMAND_LIMIT,
    );
    assert_eq!(out.code, 0, "{}", out.all());
    out.stdout.trim().to_string()
}

#[test]
fn verify_proxy_accepts_a_fresh_signature_once() {
    let env = proxy_env("tl-proxy", true);
    // Under RStudio, PAM_USER is the local name (RStudio canonicalised the alias through NSS):
    // the proxy signs "jsmith", the account UID-jsmith maps to. The reference openssl recipe.
    let date = imf_date(now());
    let signature = openssl_proxy_signature(KEY, "jsmith", &date, "");
    let password = format!("{date}\n{signature}");
    let out = test_login(
        &env,
        &["UID-jsmith", "--service", "proxy"],
        password.as_bytes(),
    );
    assert_eq!(out.code, 0, "{}\n{}", out.all(), env.daemon_log());
    assert_steps(&out, ALL_PASS);
    assert!(
        env.daemon_log()
            .lines()
            .any(|l| l.contains("verdict=allowed")
                && l.contains("account=\"jsmith\"")
                && l.contains("with a valid proxy signature")),
        "{}",
        env.daemon_log()
    );

    // The same signature again: a replay.
    let out = test_login(
        &env,
        &["UID-jsmith", "--service", "proxy"],
        password.as_bytes(),
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert_detail(&out, "pam", "PAM_AUTH_ERR");
    assert!(env
        .daemon_log()
        .contains("was already used (replay refused)"));

    // Unix seconds work as the date too, signed with accountmapctl proxy-sign.
    let key_file = env.path("proxy-hmac-key");
    let date = now().to_string();
    let sign = env.proxy_sign(&key_file, "jsmith", &date, None);
    assert_eq!(sign.code, 0, "{}", sign.all());
    let password = format!("{date}\n{}\n", sign.stdout.trim());
    let out = test_login(
        &env,
        &["UID-jsmith", "--service", "proxy"],
        password.as_bytes(),
    );
    assert_eq!(out.code, 0, "{}\n{}", out.all(), env.daemon_log());

    // Stale, wrong key, another user's signature, a plain password: refused at PAM, with the
    // reason in the log.
    let stale = imf_date(now() - 3600);
    let wrong_key_date = imf_date(now());
    let cases = [
        (
            format!(
                "{stale}\n{}",
                openssl_proxy_signature(KEY, "jsmith", &stale, "")
            ),
            "signature date outside the allowed clock skew",
        ),
        (
            format!(
                "{wrong_key_date}\n{}",
                openssl_proxy_signature("another key", "jsmith", &wrong_key_date, "")
            ),
            "proxy signature does not match user",
        ),
        (
            format!(
                "{wrong_key_date}\n{}",
                openssl_proxy_signature(KEY, "alice", &wrong_key_date, "")
            ),
            "proxy signature does not match user",
        ),
        ("pw-jsmith".to_string(), "is not DATE\\\\nSIGNATURE"),
    ];
    for (password, reason) in &cases {
        let from = env.log_len();
        let out = test_login(
            &env,
            &["UID-jsmith", "--service", "proxy"],
            password.as_bytes(),
        );
        assert_eq!(out.code, 1, "{reason}: {}", out.all());
        assert_detail(&out, "pam", "PAM_AUTH_ERR");
        let line = env.wait_for_log(from, std::time::Duration::from_secs(2), |l| {
            l.contains("verdict=auth-failed")
        });
        assert!(
            line.as_deref().is_some_and(|l| l.contains(reason)),
            "{reason}: {line:?}\n{}",
            env.daemon_log()
        );
    }
    // No signature ever reaches the log.
    let log = env.daemon_log();
    for (password, _) in &cases {
        if let Some((_, signature)) = password.split_once('\n') {
            assert!(!log.contains(signature), "signature in the log:\n{log}");
        }
    }
    assert!(!log.contains(&signature), "signature in the log:\n{log}");
}

#[test]
fn verify_proxy_without_a_proxy_section_is_unavailable() {
    let env = proxy_env("tl-proxy-none", false);
    let date = imf_date(now());
    let password = format!(
        "{date}\n{}",
        openssl_proxy_signature(KEY, "jsmith", &date, "")
    );
    let out = test_login(&env, &["jsmith", "--service", "proxy"], password.as_bytes());
    assert_eq!(out.code, 1, "{}", out.all());
    assert_detail(&out, "pam", "PAM_AUTHINFO_UNAVAIL");
    assert!(
        env.daemon_log()
            .contains("verify=proxy needs a [proxy] section"),
        "{}",
        env.daemon_log()
    );
}

/// Issue 13 item 4: one answer per typed name. For each name, `accountmapctl resolve`,
/// pamtester (the name typed into PAM), `getent passwd` through the NSS module and `test-login`
/// (RStudio's path: NSS canonicalisation, then PAM under the local name) agree. Before the fix
/// NSS answered the denied alias, so test-login (and su, rserver) signed it in as alice.
#[test]
fn resolve_pamtester_getent_and_test_login_agree_on_every_name() {
    let env = Env::builder("tl-agree")
        .config(|c| c.denied_users.push("alice.example@gmail.com".into()))
        .accounts(&format!(
            "{STANDARD_ACCOUNTS}Alice.Example@Gmail.com = alice\nmallory.m@company.org = mallory\n"
        ))
        .build();
    add_rstudio_services(&env);
    // (typed name, local account, resolve allows it, NSS answers it)
    let table = [
        ("John.Doe@Company.com", "jdoe", true, true),
        ("UID-jsmith", "jsmith", true, true),
        // Denied by name: the alias is listed, alice herself is not.
        ("Alice.Example@Gmail.com", "alice", false, false),
        ("ALICE.EXAMPLE@gmail.com", "alice", false, false),
        // An alias of a denied account.
        ("mallory.m@company.org", "mallory", false, false),
        // An alias of root, an unknown alias.
        ("ops@company.com", "root", false, false),
        ("ghost@company.com", "ghost", false, false),
        // Not in the required group: NSS answers (the groups are PAM's question, asked under
        // the local name with the same result), and every sign-in path still refuses bob.
        ("bob@company.com", "bob", false, true),
    ];
    for (name, account, allowed, answered) in table {
        let resolve = env.ctl(&["resolve", name]);
        assert_eq!(
            resolve.code,
            if allowed { 0 } else { 1 },
            "resolve {name:?}\n{}",
            resolve.all()
        );
        let run = env.pam(SVC, name, &["authenticate"]);
        assert_eq!(
            run.verdicts() == [AUTH_OK],
            allowed,
            "pamtester {name:?}\n{}",
            run.out.all()
        );
        let getent = env.getent_passwd(name);
        assert_eq!(
            getent.code == 0,
            answered,
            "getent passwd {name:?}\n{}",
            getent.all()
        );
        if answered {
            assert!(
                getent.stdout.starts_with(&format!("{account}:")),
                "{}",
                getent.all()
            );
        }
        let out = test_login(&env, &[name], format!("pw-{account}\n").as_bytes());
        assert_eq!(out.code == 0, allowed, "test-login {name:?}\n{}", out.all());
        if !answered {
            assert_detail(&out, "nss", "finds nothing");
        }
    }
}

/// Issue 13 item 5: on a host without a PAM file for the service, libpam falls back to `other`.
/// Here `other` checks passwords only (as Debian's, through common-auth, does), and mallory is
/// in `denied_users`: before the fix test-login printed RESULT PASS and the daemon logged no
/// decision. Now the stack step names the file read and fails; so does a stack that checks
/// passwords without accountmap.
#[test]
fn a_service_without_a_file_or_without_accountmap_fails_the_stack_step() {
    let env = Env::new("tl-stack");
    add_rstudio_services(&env);
    env.add_service_text(
        "other",
        &format!("auth required {PAM_MATRIX}\naccount required pam_permit.so\n"),
    );
    let missing = env.pam_dir.join("rstudio-missing");
    let out = test_login(
        &env,
        &["mallory", "--service", "rstudio-missing"],
        b"pw-mallory",
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert_steps(&out, ["FAIL", "PASS", "PASS", "PASS", "PASS", "PASS"]);
    assert_detail(
        &out,
        "stack",
        &format!(
            "no PAM file {}: libpam falls back to {}",
            missing.display(),
            env.pam_dir.join("other").display()
        ),
    );
    assert!(out.stdout.contains("RESULT FAIL"), "{}", out.all());

    let out = test_login(&env, &["jdoe", "--service", "password-only"], b"pw-jdoe");
    assert_eq!(out.code, 1, "{}", out.all());
    assert_detail(
        &out,
        "stack",
        &format!(
            "read {}: its auth and account stack does not run pam_accountmap.so",
            env.pam_dir.join("password-only").display()
        ),
    );

    // The rstudio service names the file it read and where accountmap is in it.
    let out = test_login(&env, &["jdoe"], b"pw-jdoe");
    assert_eq!(out.code, 0, "{}", out.all());
    let rstudio = env.pam_dir.join("rstudio").display().to_string();
    assert_detail(
        &out,
        "stack",
        &format!(
            "read {rstudio}: pam_accountmap.so in auth ({rstudio}:1) and account ({rstudio}:3)"
        ),
    );
}
