//! Sign-in tickets (issue 17, the daemon's half of `accountmap-gate`): a caller `[gate]` names
//! asks for a ticket with a credential the daemon checks (here a proxy signature), and a real
//! PAM stack — pamtester under pam_wrapper, the profile SPEC suggests, `verify=ticket` before
//! the password modules — signs the account in with it once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::*;
use accountmap_wire::{call, Credential, Request, Response, Verify};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const KEY: &str = "ticket test hmac key";

fn ticket_env(name: &str) -> Env {
    let mut env = Env::builder(name).no_daemon().build();
    let key = env.path("proxy-hmac-key");
    write_with_mode(&key, &format!("{KEY}\n"), 0o600);
    let mut config = env.config().clone();
    config.extra = format!(
        "\n[proxy]\nhmac_key_file = \"{}\"\n\n[gate]\nticket_callers = [\"nobody\"]\nticket_lifetime = 5\n",
        key.display()
    );
    env.write_config(&config);
    env.start_daemon();
    // SPEC's profile: a ticket signs in; anything else goes on to the password modules
    // (pam_permit stands in for them here).
    env.add_service_text(
        "rstudio",
        &format!(
            "{}auth required pam_permit.so\n{}",
            env.module_line("auth", "[success=done default=ignore]", "verify=ticket"),
            env.module_line("account", "[success=ok default=die]", "")
        ),
    );
    env
}

fn ticket_for(env: &Env, name: &str) -> Result<String, Response> {
    let date = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let sig = openssl_proxy_signature(KEY, name, &date, "");
    let req = Request::IssueTicket {
        service: "gate".into(),
        name: name.into(),
        rhost: "127.0.0.1".into(),
        verify: Verify::Proxy,
        credential: Credential::new(format!("{date}\n{sig}").into_bytes()),
    };
    match call(&env.socket, &req, Duration::from_secs(10)).unwrap() {
        Response::Ticket { ticket, .. } => Ok(ticket),
        other => Err(other),
    }
}

#[test]
fn a_ticket_signs_its_account_in_once_and_passwords_never_reach_the_daemon() {
    let env = ticket_env("tickets");
    let ticket = ticket_for(&env, "UID-jsmith").expect("a ticket for an allowed account");
    let run = env.sign_in("rstudio", "jsmith", &ticket);
    assert_eq!(run.verdicts(), SIGNED_IN, "{}", run.out.all());
    let log = env.daemon_log();
    assert!(log.contains("with a sign-in ticket"), "{log}");
    assert!(!log.contains(&ticket[10..]), "the ticket is in the log");

    // A replay is refused by the ticket line and falls through to the next module, as any
    // wrong ticket does; the daemon says why.
    let from = env.log_len();
    env.sign_in("rstudio", "jsmith", &ticket);
    assert!(env.daemon_log()[from..].contains("unknown sign-in ticket"));

    // An ordinary password is left to the next module without a word to the daemon.
    let from = env.log_len();
    let run = env.sign_in("rstudio", "alice", "alice's own password");
    assert_eq!(
        run.verdicts(),
        SIGNED_IN,
        "pam_permit after it: {}",
        run.out.all()
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !env.daemon_log()[from..].contains("phase=auth"),
        "a password reached the daemon"
    );

    // No ticket for an account the policy refuses (bob: not in rstudio-users).
    match ticket_for(&env, "bob") {
        Err(Response::Decision(d)) => assert!(d.reason.contains("required groups"), "{}", d.reason),
        other => panic!("{other:?}"),
    }
}
