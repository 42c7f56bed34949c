//! `verify=oidc` against a real OpenID Provider (`oidc-provider` under node, on 127.0.0.1; see
//! `accountmap_tests::oidc_provider`): pamtester under pam_wrapper feeds a token as the
//! password (one line on stdin, answering the module's single `Password: ` prompt), and each
//! refusal must carry its own reason in the daemon log.
//!
//! The provider's accounts: alice@company.com, John.Doe@Company.com (accounts file → jdoe),
//! carol@company.com (email NOT verified), eve@elsewhere.org, partner@elsewhere.org (accounts
//! file → jsmith, and the only address of allowed_emails). `allowed_domains = ["company.com"]`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::oidc_provider::*;
use accountmap_tests::*;
use base64_free::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A daemon whose `[oidc]` points at `provider`, with the `oidc` service (`verify=oidc`,
/// PAM_USER echoed after each phase).
fn oidc_env(name: &str, provider: &OidcProvider, start: bool) -> Env {
    oidc_env_at(name, &provider.discovery_endpoint(), start)
}

/// These tests send access tokens too, so they opt in (`accept_access_tokens = true`); the
/// default, ID tokens only, has its own test.
fn oidc_env_at(name: &str, discovery: &str, start: bool) -> Env {
    oidc_env_with(
        name,
        discovery,
        start,
        "allowed_emails = [\"partner@elsewhere.org\"]\naccept_access_tokens = true\n",
    )
}

fn oidc_env_with(name: &str, discovery: &str, start: bool, more: &str) -> Env {
    let mut b = Env::builder(name)
        .accounts(&format!(
            "{STANDARD_ACCOUNTS}partner@elsewhere.org = jsmith\n"
        ))
        .config(|c| {
            oidc_config(c, discovery, more);
            // These tests refuse dozens of bad tokens for alice on purpose, each to see its
            // reason; the brute-force brake (tests/tests/hardening/brake.rs) would refuse
            // all but 5 of them unchecked.
            c.failure_budget = Some(1000);
        });
    if !start {
        b = b.no_daemon();
    }
    let env = b.build();
    env.add_service(SVC_OIDC, "verify=oidc", true);
    env
}

/// A daemon for the device flow, which authenticates the client at the token endpoint: the
/// OIDC env with a `client_secret_file`.
fn device_env(name: &str, provider: &OidcProvider) -> Env {
    let mut env = oidc_env(name, provider, false);
    let secret = env.path("oidc-client-secret");
    write_with_mode(&secret, CLIENT_SECRET, 0o600);
    let mut config = env.config().clone();
    config.extra += &format!("client_secret_file = \"{}\"\n", secret.display());
    env.write_config(&config);
    env.start_daemon();
    env
}

/// One sign-in with `token` as the password; returns the run and the daemon log lines it added.
fn sign_in(env: &Env, user: &str, token: &str) -> (PamRun, String) {
    let from = env.log_len();
    let run = env.sign_in(SVC_OIDC, user, token);
    // The decision line is written before the answer is sent; wait for it anyway.
    let line = env.wait_for_log(from, Duration::from_secs(5), |l| l.contains("verdict="));
    assert!(line.is_some(), "no decision logged\n{}", run.out.all());
    let log = env.daemon_log();
    (run, log.get(from..).unwrap_or("").to_string())
}

/// A refusal: pamtester's verdict and the reason in the log.
fn refused(env: &Env, user: &str, token: &str, verdict: &str, reason: &str) {
    let (run, log) = sign_in(env, user, token);
    assert_eq!(
        run.verdicts(),
        vec![verdict.to_string()],
        "{reason}: {}\n{log}",
        run.out.all()
    );
    assert!(
        log.contains(reason),
        "expected reason {reason:?} in:\n{log}"
    );
    println!("refused as expected: {reason}");
}

/// The provider cannot be reached: PAM_AUTHINFO_UNAVAIL. The run and the daemon log lines it
/// added.
#[track_caller]
fn unavailable(env: &Env, user: &str, token: &str) -> (PamRun, String) {
    let (run, log) = sign_in(env, user, token);
    assert_eq!(
        run.verdicts(),
        vec![AUTHINFO_UNAVAIL],
        "{}\n{log}",
        run.out.all()
    );
    (run, log)
}

fn allowed(env: &Env, user: &str, token: &str, account: &str) {
    let (run, log) = sign_in(env, user, token);
    assert_eq!(
        run.verdicts(),
        vec![AUTH_OK, ACCT_OK],
        "{}\n{log}",
        run.out.all()
    );
    assert_eq!(
        run.pam_user_after("auth").as_deref(),
        Some(account),
        "{log}"
    );
    println!("{user} signed in as {account} in {:?}", run.elapsed());
}

/// Minimal base64url (no padding) for building the hand-altered tokens the refusal cases need;
/// the tests crate has no base64 dependency.
mod base64_free {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub fn b64url(data: &[u8]) -> String {
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    pub fn unb64url(s: &str) -> Vec<u8> {
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for c in s.bytes() {
            let v = ALPHABET.iter().position(|&a| a == c).expect("base64url") as u32;
            bits = (bits << 6) | v;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
            }
        }
        out
    }
}

/// The token's payload as JSON.
fn payload(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&unb64url(part)).unwrap()
}

#[test]
fn id_and_access_tokens_sign_in_and_bad_tokens_are_refused_with_their_reason() {
    let mut provider = OidcProvider::start("main");
    let env = oidc_env("oidc-main", &provider, true);

    // --- accepted ---
    let alice = provider.login(CLIENT_ID, "alice-sub");
    assert_eq!(payload(&alice.id_token)["aud"], CLIENT_ID);
    allowed(&env, "alice", &alice.id_token, "alice");
    let log = env.daemon_log();
    assert!(log.contains("signing keys fetched"), "{log}");
    // the access token of the same sign-in, checked at the userinfo endpoint
    allowed(&env, "alice", &alice.access_token, "alice");
    // an email mapped by the accounts file
    let jdoe = provider.login(CLIENT_ID, "jdoe-sub");
    allowed(&env, "jdoe", &jdoe.id_token, "jdoe");
    // outside allowed_domains, but listed in allowed_emails
    let partner = provider.login(CLIENT_ID, "partner-sub");
    allowed(&env, "jsmith", &partner.id_token, "jsmith");

    // --- refused, each with its reason ---
    // a valid token of another user, presented for alice
    refused(
        &env,
        "alice",
        &jdoe.id_token,
        AUTH_ERR,
        "token for another account",
    );
    // a token the provider issued to another client
    let other = provider.login(OTHER_CLIENT_ID, "alice-sub");
    refused(&env, "alice", &other.id_token, AUTH_ERR, "wrong audience");
    // unverified email
    let carol = provider.login(CLIENT_ID, "carol-sub");
    refused(&env, "carol", &carol.id_token, AUTH_ERR, "is not verified");
    // verified, but neither in allowed_domains nor allowed_emails
    let eve = provider.login(CLIENT_ID, "eve-sub");
    refused(
        &env,
        "alice",
        &eve.id_token,
        AUTH_ERR,
        "domain \\\"elsewhere.org\\\" is not in allowed_domains",
    );
    // tampered: jdoe's payload under alice's signature
    let parts: Vec<&str> = alice.id_token.split('.').collect();
    let mut claims = payload(&alice.id_token);
    claims["email"] = "john.doe@company.com".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(claims.to_string().as_bytes()),
        parts[2]
    );
    refused(&env, "jdoe", &tampered, AUTH_ERR, "bad signature");
    // one flipped bit of the signature
    let mut sig = unb64url(parts[2]);
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], b64url(&sig));
    refused(&env, "alice", &flipped, AUTH_ERR, "bad signature");
    // alg none: alice's real claims, unsigned
    let none = format!("{}.{}.", b64url(br#"{"alg":"none"}"#), parts[1]);
    refused(&env, "alice", &none, AUTH_ERR, "alg \\\"none\\\"");
    // HS256 keyed with the provider's public JWKS text: the key-confusion attack
    let hs = format!(
        "{}.{}.{}",
        b64url(br#"{"alg":"HS256","typ":"JWT"}"#),
        parts[1],
        parts[2]
    );
    refused(&env, "alice", &hs, AUTH_ERR, "(HMAC) is never accepted");
    // an access token the provider never issued
    refused(
        &env,
        "alice",
        "not-a-real-access-token",
        AUTH_ERR,
        "userinfo endpoint answered HTTP 401",
    );

    // wrong issuer: another provider with the same signing key and client, on another port
    let mut twin = OidcProvider::start_on("twin", free_port(), provider.setup.clone());
    let foreign = twin.login(CLIENT_ID, "alice-sub");
    assert_ne!(
        payload(&foreign.id_token)["iss"],
        payload(&alice.id_token)["iss"]
    );
    refused(&env, "alice", &foreign.id_token, AUTH_ERR, "wrong issuer");
    twin.stop();

    // expired: the same provider (same port, issuer and key) with its clock two hours behind
    let setup = provider.setup.clone();
    provider.restart(Setup {
        clock_offset: -7200,
        ..setup.clone()
    });
    let old = provider.login(CLIENT_ID, "alice-sub");
    provider.restart(setup);
    refused(&env, "alice", &old.id_token, AUTH_ERR, "expired");

    // no token ever reaches the log
    let log = env.daemon_log();
    for t in [
        &alice.id_token,
        &alice.access_token,
        &jdoe.id_token,
        &eve.id_token,
        &old.id_token,
    ] {
        let signature = t.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token reached the log:\n{log}");
    }

    // status: the provider is reachable and the key set's age is shown
    let (code, s, out) = env.ctl_json(&["status"]);
    assert_eq!(code, 0, "{}", out.all());
    let key = format!("oidc provider {}", provider.discovery_endpoint());
    assert_eq!(s[&key], "reachable", "{s}");
    assert!(s["oidc keys"].as_str().unwrap().contains("fetched"), "{s}");
    println!("status: {} / {}", s[&key], s["oidc keys"]);
}

/// Issue 14 finding 12: an access token is not bound to this client (userinfo accepts one
/// issued to any application of the provider), so by default only ID tokens sign in: a valid
/// access token of the user is refused before the provider is asked, with a reason that says
/// how to opt in; with `accept_access_tokens = true` (SIGHUP) the same token signs in.
#[test]
fn access_tokens_are_refused_unless_accept_access_tokens_is_set() {
    let provider = OidcProvider::start("id-only");
    let mut env = oidc_env_with("oidc-id-only", &provider.discovery_endpoint(), true, "");
    let alice = provider.login(CLIENT_ID, "alice-sub");
    // An access token issued to another application of the same provider: what the finding
    // is about. The provider's userinfo accepts it.
    let other = provider.login(OTHER_CLIENT_ID, "alice-sub");
    allowed(&env, "alice", &alice.id_token, "alice");
    for token in [&alice.access_token, &other.access_token] {
        refused(
            &env,
            "alice",
            token,
            AUTH_ERR,
            "only ID tokens are accepted",
        );
    }
    let log = env.daemon_log();
    assert!(
        log.contains("set accept_access_tokens = true in [oidc]"),
        "the reason does not say how to opt in:\n{log}"
    );
    // A token that is neither: still malformed, not "an access token".
    refused(&env, "alice", "a.b.c", AUTH_ERR, "malformed");

    let mut config = env.config().clone();
    config.extra += "accept_access_tokens = true\n";
    env.write_config(&config);
    let from = env.log_len();
    env.sighup();
    env.expect_log(from, Duration::from_secs(5), |l| {
        l.contains("configuration reloaded")
    });
    allowed(&env, "alice", &alice.access_token, "alice");
    allowed(&env, "alice", &other.access_token, "alice");
}

#[test]
fn an_unreachable_provider_is_authinfo_unavail() {
    let mut provider = OidcProvider::start("down");
    let tokens = provider.login(CLIENT_ID, "alice-sub");
    let mut env = oidc_env("oidc-down", &provider, false);
    provider.stop();
    env.start_daemon();
    // no key set yet, and the provider cannot be asked for one
    let (_, log) = unavailable(&env, "alice", &tokens.id_token);
    assert!(log.contains("OIDC provider unavailable"), "{log}");
    // an access token needs the userinfo endpoint
    unavailable(&env, "alice", &tokens.access_token);
    // a token that needs no key is still refused for what it is
    let parts: Vec<&str> = tokens.id_token.split('.').collect();
    let none = format!("{}.{}.", b64url(br#"{"alg":"none"}"#), parts[1]);
    refused(&env, "alice", &none, AUTH_ERR, "alg \\\"none\\\"");
    let (code, s, _) = env.ctl_json(&["status"]);
    assert_eq!(code, 0);
    let key = format!("oidc provider {}", provider.discovery_endpoint());
    assert!(s[&key].as_str().unwrap().starts_with("unreachable"), "{s}");
}

#[test]
fn a_provider_that_never_answers_costs_at_most_backend_timeout() {
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let env = oidc_env_at(
        "oidc-silent",
        &format!("http://127.0.0.1:{port}/.well-known/openid-configuration"),
        true,
    );
    let token = format!(
        "{}.{}.AAAA",
        b64url(br#"{"alg":"RS256","kid":"k"}"#),
        b64url(br#"{"sub":"x"}"#)
    );
    let (run, log) = unavailable(&env, "alice", &token);
    assert!(log.contains("OIDC provider unavailable"), "{log}");
    // backend_timeout = 2 s, the PAM module's timeout 10 s
    run.assert_within(Duration::from_secs(5), "the sign-in");
    println!(
        "silent provider: PAM_AUTHINFO_UNAVAIL after {:?}",
        run.elapsed()
    );
    drop(silent);
}

#[test]
fn tokens_signed_with_a_rotated_key_verify() {
    let mut provider = OidcProvider::start("rotate");
    let env = oidc_env("oidc-rotate", &provider, true);
    let before = provider.login(CLIENT_ID, "alice-sub");
    allowed(&env, "alice", &before.id_token, "alice");

    // Rotation: a new EC key signs from now on; the old RSA key stays published.
    let mut setup = provider.setup.clone();
    setup.keys.insert(0, generate_key("EC"));
    setup.alg = "ES256".into();
    provider.restart(setup);
    let after = provider.login(CLIENT_ID, "alice-sub");
    let header = |t: &str| -> serde_json::Value {
        serde_json::from_slice(&unb64url(t.split('.').next().unwrap())).unwrap()
    };
    assert_eq!(header(&after.id_token)["alg"], "ES256");
    assert_ne!(
        header(&after.id_token)["kid"],
        header(&before.id_token)["kid"]
    );
    // the daemon has only the old key set: the unknown key id makes it fetch the new one
    allowed(&env, "alice", &after.id_token, "alice");
    // tokens of the old key still verify while the provider publishes it
    allowed(&env, "alice", &before.id_token, "alice");
    let log = env.daemon_log();
    assert_eq!(log.matches("signing keys fetched").count(), 2, "{log}");

    // Key ids the provider never had: refused, and a flood of them costs at most one fetch
    // per interval (5 s). The brute-force brake refuses the failures past 5 unchecked, so the
    // bound follows the time the flood took.
    let parts: Vec<&str> = after.id_token.split('.').collect();
    let flood = Instant::now();
    for i in 0..20 {
        let h = format!(r#"{{"alg":"ES256","kid":"bogus-{i}"}}"#);
        let bogus = format!("{}.{}.{}", b64url(h.as_bytes()), parts[1], parts[2]);
        let (run, _) = sign_in(&env, "alice", &bogus);
        assert_eq!(run.verdicts(), vec![AUTH_ERR]);
    }
    let log = env.daemon_log();
    assert!(log.contains("not in the provider's key set"), "{log}");
    let fetches = log.matches("signing keys fetched").count();
    let took = flood.elapsed();
    let bound = 2 + 1 + took.as_secs() as usize / 5;
    assert!(
        fetches <= bound,
        "{fetches} key-set fetches (at most {bound}) for 20 bogus key ids in {took:?}:\n{log}"
    );
    println!(
        "20 bogus key ids in {took:?} caused {} key-set fetches",
        fetches - 2
    );
}

/// `verify=device` end to end: pamtester shows the provider's verification URL and code
/// (PAM_TEXT_INFO on its stdout), the test approves the code at the provider as a user would,
/// and the module's polls through the daemon end in the decision.
#[test]
fn device_flow_signs_in_after_approval_and_checks_whose_approval_it_was() {
    let provider = OidcProvider::start("device");
    let env = device_env("oidc-device", &provider);
    env.add_service("device", "verify=device", true);

    for (approver, want) in [
        ("alice-sub", vec![AUTH_OK, ACCT_OK]),
        ("jdoe-sub", vec![AUTH_ERR]),
    ] {
        let started = Instant::now();
        let cmd = env.pamtester_command("device", "alice", &["authenticate", "acct_mgmt"]);
        // misc_conv writes PAM_TEXT_INFO to a piped, hence fully buffered, stdout: stdbuf
        // makes it line-buffered so the code can be read while pamtester waits.
        let mut wrapped = std::process::Command::new("stdbuf");
        wrapped.arg("-oL").arg("pamtester");
        wrapped.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        let mut child = wrapped
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pamtester");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut lines = Vec::new();
        let code = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| {
                    panic!(
                        "no verification code shown: {lines:?}\n{}",
                        env.daemon_log()
                    )
                });
            lines.push(line.clone());
            if let Some(rest) = line.split("enter the code ").nth(1) {
                assert!(
                    line.contains(&format!("visit {}/device", provider.issuer())),
                    "{line}"
                );
                break rest.trim().to_string();
            }
        };
        provider.approve(&code, approver);
        // bounded wait for pamtester (one poll interval of 5 s, plus slack)
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > Duration::from_secs(40) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("pamtester still waiting after 40 s\n{}", env.daemon_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
        clean_stale_pam_wrapper_dirs();
        let verdicts: Vec<String> = lines
            .iter()
            .chain(
                stderr
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
                    .iter(),
            )
            .filter_map(|l| l.strip_prefix("pamtester: ").map(str::to_string))
            .filter(|l| !l.starts_with("invoking ") && !l.starts_with("performing "))
            .collect();
        assert_eq!(
            verdicts,
            want,
            "approved by {approver}: {status}\n{lines:?}\n{stderr}\n{}",
            env.daemon_log()
        );
        println!(
            "device flow approved by {approver}: {verdicts:?} after {:?}",
            started.elapsed()
        );
    }
    let log = env.daemon_log();
    assert!(log.contains("device authorization started"), "{log}");
    assert!(log.contains("(device authorization)"), "{log}");
    assert!(log.contains("token for another account"), "{log}");
    assert!(
        !log.contains(CLIENT_SECRET),
        "the client secret reached the log"
    );
}

/// Issue 14 finding 9: pending device authorizations are capped per account. Root (as sshd
/// would) starts four for alice, under name variants that map to her (an alias, a display
/// name): the fifth is refused with the cap named, while jdoe can still start one; no code is
/// ever approved, so all stay pending.
#[test]
fn device_sessions_are_capped_per_account_whatever_name_asks() {
    use accountmap_wire::{call, Request, Response, Verdict};
    let provider = OidcProvider::start("device-caps");
    let env = device_env("oidc-device-caps", &provider);
    let start = |user: &str| {
        call(
            &env.socket,
            &Request::DeviceStart {
                service: "sshd".into(),
                user: user.into(),
                rhost: "192.0.2.7".into(),
            },
            Duration::from_secs(10),
        )
        .unwrap()
    };
    for (i, user) in ["alice", "ALICE", "alice/Alice A.", "alice@company.com"]
        .iter()
        .enumerate()
    {
        let r = start(user);
        assert!(
            matches!(r, Response::DeviceStarted { .. }),
            "{i}: {user}: {r:?}\n{}",
            env.daemon_log()
        );
    }
    match start("Alice@Company.com") {
        Response::Decision(d) => {
            assert_ne!(d.verdict, Verdict::Allowed);
            assert!(
                d.reason
                    .contains("\"alice\" already has 4 device authorizations in progress"),
                "{d:?}"
            );
        }
        other => panic!("a fifth for alice: {other:?}"),
    }
    assert!(
        matches!(start("jdoe"), Response::DeviceStarted { .. }),
        "another account is not blocked"
    );
}
