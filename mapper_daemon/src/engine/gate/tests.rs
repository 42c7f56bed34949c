use super::*;
use crate::backends::system::StaticDirectory;
use crate::test_support::{self, account, EXAMPLE_CONFIG};
use accountmap_wire::{Decision, PamRequest, Phase, Request};

const KEY: &[u8] = b"gate test key";

/// The README example config with `[proxy]` (the gate's proof of the user here) and `[gate]`
/// naming `gate` (uid 990) as the one user who may ask for tickets.
fn engine() -> (Engine, tempfile::TempDir) {
    let directory = StaticDirectory::new(vec![
        account("alice", 1001, 1001, &["alice", "rstudio-users"]),
        account("bob", 1002, 1002, &["bob"]),
        account("jsmith", 1004, 1004, &["jsmith", "rstudio-users"]),
        account("gate", 990, 990, &["gate"]),
        account("eve", 1666, 1666, &["rstudio-users"]),
    ]);
    let config = format!(
        "{EXAMPLE_CONFIG}[proxy]\nhmac_key_file = \"{{dir}}/key\"\n[gate]\nticket_callers = [\"gate\"]\nticket_lifetime = 5\n"
    );
    test_support::engine(
        &[("accounts", b"", 0o644), ("key", KEY, 0o600)],
        &config,
        directory,
    )
}

fn peer(uid: u32) -> Peer {
    Peer {
        pid: 42,
        uid,
        gid: uid,
    }
}

/// What the gate sends for `name`, signed as a trusted proxy would.
fn ask(e: &Engine, from: u32, name: &str) -> Response {
    let date = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let sig = crate::backends::proxy::sign(KEY, name, &date, b"");
    e.handle(
        &peer(from),
        &Request::IssueTicket {
            service: "gate".into(),
            name: name.into(),
            rhost: "127.0.0.1".into(),
            verify: Verify::Proxy,
            credential: Credential::new(format!("{date}\n{sig}").into_bytes()),
        },
    )
}

fn use_ticket(e: &Engine, user: &str, ticket: &str) -> Decision {
    match e.handle(
        &peer(0),
        &Request::Pam(PamRequest {
            service: "rstudio".into(),
            phase: Phase::Auth,
            user: user.into(),
            rhost: String::new(),
            verify: Verify::Ticket,
            credential: Some(Credential::new(ticket.as_bytes().to_vec())),
        }),
    ) {
        Response::Decision(d) => d,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_gate_gets_a_ticket_for_an_allowed_account_and_it_signs_in_once() {
    let (e, _dir) = engine();
    let Response::Ticket { decision, ticket } = ask(&e, 990, "UID-jsmith") else {
        panic!("no ticket")
    };
    assert_eq!(decision.account, "jsmith");
    assert!(accountmap_wire::looks_like_ticket(ticket.as_bytes()));
    assert!(
        decision.reason.contains("sign-in ticket issued"),
        "{}",
        decision.reason
    );
    let d = use_ticket(&e, "jsmith", &ticket);
    assert_eq!(d.verdict, Verdict::Allowed, "{}", d.reason);
    let d = use_ticket(&e, "jsmith", &ticket);
    assert_eq!(d.verdict, Verdict::AuthFailed);
    assert!(d.reason.contains("already used"), "{}", d.reason);
}

#[test]
fn a_ticket_is_for_its_account_only() {
    let (e, _dir) = engine();
    let Response::Ticket { ticket, .. } = ask(&e, 990, "alice") else {
        panic!("no ticket")
    };
    let d = use_ticket(&e, "jsmith", &ticket);
    assert_eq!(d.verdict, Verdict::AuthFailed);
    assert!(d.reason.contains("issued for \"alice\""), "{}", d.reason);
}

#[test]
fn the_policy_decides_before_any_ticket() {
    let (e, _dir) = engine();
    match ask(&e, 990, "bob") {
        Response::Decision(d) => {
            assert_eq!(d.verdict, Verdict::PolicyDenied, "{}", d.reason)
        }
        other => panic!("a ticket for someone the policy refuses: {other:?}"),
    }
    assert!(e.guards().tickets.is_empty());
}

#[test]
fn only_the_named_callers_and_root_may_ask() {
    let (e, _dir) = engine();
    match ask(&e, 1666, "eve") {
        Response::Error(why) => assert!(why.contains("may not ask for sign-in tickets"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(ask(&e, 0, "alice"), Response::Ticket { .. }));
}

#[test]
fn a_bad_signature_gets_no_ticket() {
    let (e, _dir) = engine();
    let r = e.handle(
        &peer(990),
        &Request::IssueTicket {
            service: "gate".into(),
            name: "alice".into(),
            rhost: "127.0.0.1".into(),
            verify: Verify::Proxy,
            credential: Credential::new(b"1795006800\nAAAA".to_vec()),
        },
    );
    match r {
        Response::Decision(d) => assert_eq!(d.verdict, Verdict::AuthFailed, "{}", d.reason),
        other => panic!("{other:?}"),
    }
}

fn engine_with_gate(gate: &str) -> (Engine, tempfile::TempDir) {
    let directory = StaticDirectory::new(vec![
        account("jsmith", 1004, 1004, &["jsmith", "rstudio-users"]),
        account("bob", 1002, 1002, &["bob"]),
        account("gate", 990, 990, &["gate"]),
    ]);
    let config = format!("{EXAMPLE_CONFIG}[gate]\nticket_callers = [\"gate\"]\n{gate}");
    test_support::engine(&[("accounts", b"", 0o644)], &config, directory)
}

fn ask_unsigned(e: &Engine, name: &str) -> Response {
    e.handle(
        &peer(990),
        &Request::IssueTicket {
            service: "rstudio".into(),
            name: name.into(),
            rhost: "192.0.2.7".into(),
            verify: Verify::None,
            credential: Credential::new(Vec::new()),
        },
    )
}

#[test]
fn an_unsigned_header_gate_gets_tickets_by_policy_alone() {
    let (e, _dir) = engine_with_gate(
        "mode = \"header\"\nuser_header = \"X-Auth-User\"\nrequire_signature = false\n",
    );
    let Response::Ticket { decision, ticket } = ask_unsigned(&e, "UID-jsmith") else {
        panic!("no ticket")
    };
    assert_eq!(decision.account, "jsmith");
    assert!(
        decision.reason.contains("unsigned proxy header"),
        "{}",
        decision.reason
    );
    assert_eq!(use_ticket(&e, "jsmith", &ticket).verdict, Verdict::Allowed);
    // The policy still applies: bob is outside the required group.
    let Response::Decision(d) = ask_unsigned(&e, "bob") else {
        panic!("a ticket for bob")
    };
    assert_eq!(d.verdict, Verdict::PolicyDenied);
}

#[test]
fn without_an_unsigned_header_gate_a_ticket_needs_a_credential() {
    for gate in ["", "mode = \"oidc\"\n"] {
        let (e, _dir) = engine_with_gate(gate);
        let Response::Decision(d) = ask_unsigned(&e, "jsmith") else {
            panic!("a ticket without a credential ({gate:?})")
        };
        assert_eq!(d.verdict, Verdict::BadInput, "{gate:?}");
    }
}
