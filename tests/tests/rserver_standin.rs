//! The TEST STAND-IN for RStudio Server's sign-in (`rserver_standin`, not RStudio: rserver is not
//! packaged for Debian) against a real accountmapd, with the gate's own client code
//! (`accountmap_gate::rserver`) as the client, so that the gate's encryption is checked against
//! the stand-in's decryption. The `rstudio` PAM service is what SPEC suggests for the gate:
//! `pam_accountmap.so verify=ticket`, run by the stand-in's `rserver_pam` helper exactly as
//! rserver runs rserver-pam (user and `rstudio` in argv, the ticket on stdin, the strict
//! conversation); tickets come from the daemon's IssueTicket as the gate will ask for them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_gate::rserver::{encrypt_credentials, parse_public_key, sign_in_form, Scheme};
use accountmap_tests::gate::{proxy_ticket, start_ticket_daemon};
use accountmap_tests::*;
use rand_core::OsRng;

/// A daemon that issues tickets (to root, the test) and the `rstudio` service with
/// `verify=ticket` alone: a refused ticket is a refused sign-in.
fn standin_env(name: &str) -> Env {
    let mut env = Env::builder(name).no_daemon().build();
    start_ticket_daemon(&mut env, 30, "", "");
    env.add_service_text(
        "rstudio",
        &format!(
            "{}{}",
            env.module_line("auth", "required", "verify=ticket"),
            env.module_line("account", "required", "")
        ),
    );
    env
}

/// A one-time ticket for `name` (an alias or an account), as the gate gets it.
fn ticket_for(env: &Env, name: &str) -> String {
    proxy_ticket(env, name).unwrap_or_else(|other| panic!("no ticket for {name}: {other:?}"))
}

/// The `error=N` of a redirect to the sign-in page.
fn error_of(resp: &HttpResponse) -> Option<String> {
    let loc = resp.location()?;
    let (path, query) = loc.split_once('?')?;
    assert_eq!(path, "/auth-sign-in", "{resp:?}");
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("error="))
        .map(str::to_string)
}

#[track_caller]
fn assert_refused(resp: &HttpResponse, error: &str, rs: &RServer, env: &Env) {
    assert_eq!(resp.status, 302, "{resp:?}");
    assert_eq!(
        error_of(resp).as_deref(),
        Some(error),
        "{resp:?}\n--- rserver log ---\n{}\n--- daemon log ---\n{}",
        rs.log(),
        env.daemon_log()
    );
    assert!(resp.cookie("user-id").is_none(), "{resp:?}");
}

/// Signed in: the redirect goes to `app_uri` with rserver's cookies, and the home page names
/// `account`. Returns the `user-id` cookie.
#[track_caller]
fn assert_signed_in(
    resp: &HttpResponse,
    app_uri: &str,
    account: &str,
    rs: &RServer,
    env: &Env,
) -> String {
    assert_eq!(
        (resp.status, resp.location()),
        (302, Some(app_uri)),
        "{resp:?}\n--- rserver log ---\n{}\n--- daemon log ---\n{}",
        rs.log(),
        env.daemon_log()
    );
    let user_id = resp.cookie("user-id").expect("a user-id cookie");
    let fields: Vec<&str> = user_id.split('|').collect();
    assert_eq!(fields.len(), 3, "user|expires|HMAC: {user_id}");
    assert_eq!(fields[0], account);
    assert!(fields[1].contains("GMT"), "an HTTP date: {user_id}");
    assert!(resp.cookie("user-list-id").is_some(), "{resp:?}");
    assert_eq!(resp.cookie("persist-auth").as_deref(), Some("0"));
    assert!(resp.cookie("rs-csrf-token").is_some(), "{resp:?}");
    for c in resp.set_cookies() {
        assert!(c.contains("HttpOnly") && c.contains("Path=/"), "{c}");
    }
    let home = rs.get("/", &[("user-id", &user_id)]);
    assert_eq!(home.status, 200, "{home:?}");
    assert!(
        home.body.contains(&format!("signed in as {account}")),
        "{}",
        home.body
    );
    assert!(home.body.contains("<title>RStudio (test stand-in)</title>"));
    user_id
}

fn quick(opts: RServerOptions) -> RServerOptions {
    RServerOptions {
        throttle_seconds: 0,
        ..opts
    }
}

#[test]
fn public_key_is_exponent_colon_modulus_in_upper_case_hex() {
    let env = standin_env("rs-key");
    let rs = RServer::start(&env, &RServerOptions::default());
    let key = rs.get("/auth-public-key", &[]);
    assert_eq!(key.status, 200);
    let (e, n) = key.body.split_once(':').expect("EXPONENT:MODULUS");
    assert_eq!(e, "010001");
    assert_eq!(n.len(), 512, "2048 bits");
    assert!(n
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
    assert!(key.header("cache-control").unwrap().contains("no-cache"));
    // A fresh key per start.
    let other = RServer::start(&env, &RServerOptions::default());
    assert_ne!(other.get("/auth-public-key", &[]).body, key.body);
}

#[test]
fn an_allowed_user_signs_in_with_pkcs1_v15_and_with_oaep() {
    let env = standin_env("rs-allowed");
    let rs = RServer::start(&env, &quick(RServerOptions::default()));
    for scheme in [Scheme::Pkcs1v15, Scheme::OaepSha256] {
        let ticket = ticket_for(&env, "alice");
        let resp = rs.sign_in("alice", &ticket, scheme, "/s/abc/?x=1");
        assert_signed_in(&resp, "/s/abc/?x=1", "alice", &rs, &env);
    }
    // appUri without a leading slash is rooted, as rserver does.
    let resp = rs.sign_in("alice", &ticket_for(&env, "alice"), Scheme::Pkcs1v15, "s/x");
    assert_signed_in(&resp, "/s/x", "alice", &rs, &env);
    let log = rs.log();
    assert!(
        log.contains("account=\"alice\" pam=ok -> signed in"),
        "{log}"
    );
}

#[test]
fn an_alias_is_canonicalised_through_nss_and_signs_in_as_the_account() {
    let env = standin_env("rs-alias");
    let rs = RServer::start(&env, &quick(RServerOptions::default()));
    let ticket = ticket_for(&env, "John.Doe@Company.com");
    let resp = rs.sign_in("John.Doe@Company.com", &ticket, Scheme::OaepSha256, "/");
    assert_signed_in(&resp, "/", "jdoe", &rs, &env);
    assert!(
        rs.log()
            .contains("typed=\"John.Doe@Company.com\" account=\"jdoe\" pam=ok"),
        "{}",
        rs.log()
    );
}

#[test]
fn a_csrf_mismatch_is_refused_as_rserver_refuses_it() {
    let env = standin_env("rs-csrf");
    let rs = RServer::start(&env, &quick(RServerOptions::default()));
    let key = parse_public_key(&rs.get("/auth-public-key", &[]).body).unwrap();
    let v = encrypt_credentials(
        &key,
        Scheme::Pkcs1v15,
        "alice",
        &ticket_for(&env, "alice"),
        &mut OsRng,
    )
    .unwrap();
    let form = sign_in_form("token-in-the-form", "/", &v);
    for cookies in [&[("rs-csrf-token", "another-token")][..], &[]] {
        let resp = rs.post_form("/auth-do-sign-in", cookies, &form);
        assert_refused(&resp, "2", &rs, &env);
        // rserver's own slip: the literal "appUri" as the app URI.
        assert_eq!(resp.location(), Some("/auth-sign-in?appUri=appUri&error=2"));
    }
    assert!(!rs.log().contains("pam="), "PAM ran: {}", rs.log());
    // Request bodies are bounded (64 KiB).
    let huge = format!("v={}", "A".repeat(100 * 1024));
    let resp = rs.post_form("/auth-do-sign-in", &[("rs-csrf-token", "t")], &huge);
    assert_eq!(resp.status, 413, "{resp:?}");
}

#[test]
fn a_user_pam_refuses_gets_invalid_login() {
    let env = standin_env("rs-pam-denied");
    let rs = RServer::start(&env, &quick(RServerOptions::default()));
    // Not a ticket at all, then a ticket already used.
    let resp = rs.sign_in("alice", "alice's password", Scheme::Pkcs1v15, "/");
    assert_refused(&resp, "1", &rs, &env);
    let ticket = ticket_for(&env, "alice");
    let first = rs.sign_in("alice", &ticket, Scheme::Pkcs1v15, "/");
    assert_signed_in(&first, "/", "alice", &rs, &env);
    let replay = rs.sign_in("alice", &ticket, Scheme::OaepSha256, "/");
    assert_refused(&replay, "1", &rs, &env);
    // A ticket is bound to its account.
    let resp = rs.sign_in("jdoe", &ticket_for(&env, "alice"), Scheme::Pkcs1v15, "/");
    assert_refused(&resp, "1", &rs, &env);
    // An empty password never reaches PAM.
    let resp = rs.sign_in("alice", "", Scheme::Pkcs1v15, "/");
    assert_refused(&resp, "1", &rs, &env);
    assert!(
        rs.log().contains("No PAM password provided"),
        "{}",
        rs.log()
    );
}

#[test]
fn a_uid_below_the_minimum_is_refused_as_unauthorized() {
    let env = standin_env("rs-min-uid");
    // alice is 1001: allowed by the daemon, below the stand-in's minimum.
    let rs = RServer::start(
        &env,
        &quick(RServerOptions {
            min_uid: 1002,
            ..RServerOptions::default()
        }),
    );
    let resp = rs.sign_in("alice", &ticket_for(&env, "alice"), Scheme::Pkcs1v15, "/");
    assert_refused(&resp, "3", &rs, &env);
    assert!(
        rs.log().contains("below auth-minimum-user-id 1002"),
        "{}",
        rs.log()
    );
}

#[test]
fn a_user_outside_the_required_groups_is_refused_and_a_primary_group_counts() {
    let env = standin_env("rs-group");
    let rs = RServer::start(
        &env,
        &quick(RServerOptions {
            required_group: Some("rstudio-admins".into()),
            ..RServerOptions::default()
        }),
    );
    let resp = rs.sign_in("alice", &ticket_for(&env, "alice"), Scheme::Pkcs1v15, "/");
    assert_refused(&resp, "3", &rs, &env);
    assert!(
        rs.log().contains("not in any of the required groups"),
        "{}",
        rs.log()
    );
    drop(rs);

    // One of several groups; carol has rstudio-users as her primary group only.
    let rs = RServer::start(
        &env,
        &quick(RServerOptions {
            required_group: Some("rstudio-admins,rstudio-users".into()),
            ..RServerOptions::default()
        }),
    );
    let resp = rs.sign_in("carol", &ticket_for(&env, "carol"), Scheme::Pkcs1v15, "/");
    assert_signed_in(&resp, "/", "carol", &rs, &env);
}

#[test]
fn a_second_sign_in_within_the_throttle_window_is_refused() {
    let env = standin_env("rs-throttle");
    let rs = RServer::start(&env, &RServerOptions::default());
    let resp = rs.sign_in("alice", &ticket_for(&env, "alice"), Scheme::Pkcs1v15, "/");
    assert_signed_in(&resp, "/", "alice", &rs, &env);
    let resp = rs.sign_in("alice", &ticket_for(&env, "alice"), Scheme::Pkcs1v15, "/");
    assert_refused(&resp, "2", &rs, &env);
    assert!(rs.log().contains("throttled"), "{}", rs.log());
    // Per user: another account is not held back.
    let resp = rs.sign_in("jdoe", &ticket_for(&env, "jdoe"), Scheme::Pkcs1v15, "/");
    assert_signed_in(&resp, "/", "jdoe", &rs, &env);
}

#[test]
fn a_tampered_or_signed_out_user_id_cookie_is_not_accepted() {
    let env = standin_env("rs-cookie");
    let rs = RServer::start(&env, &quick(RServerOptions::default()));
    let resp = rs.sign_in("alice", &ticket_for(&env, "alice"), Scheme::Pkcs1v15, "/");
    let user_id = assert_signed_in(&resp, "/", "alice", &rs, &env);
    let csrf = resp.cookie("rs-csrf-token").unwrap();

    let (_, rest) = user_id.split_once('|').unwrap();
    let forged = [
        format!("bob|{rest}"),
        user_id.replacen("GMT", "GMX", 1),
        format!("{user_id}x"),
        "alice".to_string(),
    ];
    for bad in &forged {
        let home = rs.get("/", &[("user-id", bad)]);
        assert_eq!(home.status, 302, "{bad}: {home:?}");
        assert_eq!(home.location(), Some("/auth-sign-in?appUri=%2F"), "{bad}");
    }

    // Sign-out needs the CSRF token too, then revokes the cookie server side.
    let refused = rs.post_form(
        "/auth-sign-out",
        &[("user-id", &user_id), ("rs-csrf-token", &csrf)],
        "",
    );
    assert_eq!(refused.status, 400, "{refused:?}");
    let out = rs.post_form(
        "/auth-sign-out",
        &[("user-id", &user_id), ("rs-csrf-token", &csrf)],
        &format!("rs-csrf-token={csrf}"),
    );
    assert_eq!(
        (out.status, out.location()),
        (302, Some("/auth-sign-in")),
        "{out:?}"
    );
    assert_eq!(out.cookie("user-id").as_deref(), Some(""));
    let home = rs.get("/", &[("user-id", &user_id)]);
    assert_eq!(
        home.status, 302,
        "a signed-out cookie still works: {home:?}"
    );
}

/// pam_wrapper's chatty module: sends one PAM_TEXT_INFO (`info`) or PAM_ERROR_MSG (`error`).
const PAM_CHATTY: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_chatty.so";

#[test]
fn the_helper_answers_info_messages_and_refuses_error_messages() {
    let env = standin_env("rs-conv");
    let rs = RServer::start(&env, &quick(RServerOptions::default()));
    // The helper is a new process per sign-in: it reads the service file as it is then.
    let stack = |first: &str| {
        env.add_service_text(
            "rstudio",
            &format!(
                "auth requisite {PAM_CHATTY} {first}\n{}{}",
                env.module_line("auth", "required", "verify=ticket"),
                env.module_line("account", "required", "")
            ),
        )
    };
    // PAM_TEXT_INFO is answered (with empty replies, three messages in one call)...
    stack("info num_lines=3");
    let resp = rs.sign_in("alice", &ticket_for(&env, "alice"), Scheme::Pkcs1v15, "/");
    assert_signed_in(&resp, "/", "alice", &rs, &env);
    // ...PAM_ERROR_MSG fails the conversation (PAM_CONV_ERR to the module). pam_chatty ignores
    // its conversation's result, so the sign-in goes on, as it would under rserver-pam.
    stack("error");
    let resp = rs.sign_in("alice", &ticket_for(&env, "alice"), Scheme::Pkcs1v15, "/");
    assert_signed_in(&resp, "/", "alice", &rs, &env);
    assert!(
        rs.log().contains("conversation refused: style 3"),
        "{}",
        rs.log()
    );
}

#[test]
fn the_helper_takes_at_most_200_bytes_of_password_on_stdin() {
    let env = standin_env("rs-helper");
    let helper = |stdin: &[u8]| {
        let mut cmd = std::process::Command::new(artifact("rserver_pam"));
        cmd.args(["alice", "rstudio", "1"]);
        env.pam_wrapped(&mut cmd);
        run_bounded_pam(&mut cmd, Some(stdin), COMMAND_LIMIT)
    };
    let out = helper(&[b'a'; 201]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("exceeded maximum length"),
        "{}",
        out.all()
    );
    let out = helper(ticket_for(&env, "alice").as_bytes());
    assert_eq!(out.code, 0, "{}\n{}", out.all(), env.daemon_log());
}
