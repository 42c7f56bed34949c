//! Sign-in tickets (issue 17, the daemon's half of `accountmap-gate`): a caller `[gate]` names
//! asks for a ticket with a credential the daemon checks (here a proxy signature), and a real
//! PAM stack — pamtester under pam_wrapper, the profile SPEC suggests, `verify=ticket` before
//! the password modules — signs the account in with it once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::gate::{add_ticket_service, proxy_ticket, start_ticket_daemon};
use accountmap_tests::*;
use accountmap_wire::Response;
use std::time::Duration;

fn ticket_env(name: &str) -> Env {
    let mut env = Env::builder(name).no_daemon().build();
    start_ticket_daemon(&mut env, 5, "", "");
    // SPEC's profile: a ticket signs in; anything else goes on to the password modules
    // (pam_permit stands in for them here).
    add_ticket_service(&env, "auth required pam_permit.so");
    env
}

fn ticket_for(env: &Env, name: &str) -> Result<String, Response> {
    proxy_ticket(env, name)
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
