use super::*;
use crate::backends::system::{LookupError, StaticDirectory};
use crate::test_support::{self, account, EXAMPLE_CONFIG};
use accountmap_wire::Credential;
use accountmap_wire::{PamRequest, Phase};
use rstest::rstest;

/// An engine over made-up users, with the config of the README's example.
fn engine() -> (Engine, tempfile::TempDir) {
    let directory = StaticDirectory::new(vec![
        account("root", 0, 0, &["root"]),
        account("alice", 1001, 1001, &["alice", "rstudio-users"]),
        account("bob", 1002, 1002, &["bob"]),
        account("jdoe", 1003, 1003, &["rstudio-users"]),
        account("jsmith", 1004, 1004, &["jsmith", "rstudio-users"]),
        account("rsuser24", 1005, 1005, &["rsuser24", "rstudio-users"]),
        account("sys", 500, 500, &["rstudio-users"]),
        account("mallory", 1006, 1006, &["rstudio-users"]),
    ])
    .with_failure("broken", LookupError::Failed("directory timed out".into()));
    let accounts = b"John.Doe@Company.com = jdoe\nboss@company.com = root\n";
    test_support::engine(&[("accounts", accounts, 0o644)], EXAMPLE_CONFIG, directory)
}

const ROOT: Peer = Peer {
    pid: 1,
    uid: 0,
    gid: 0,
};

fn decide(e: &Engine, peer: &Peer, name: &str) -> Decision {
    match e.handle(
        peer,
        &Request::Resolve {
            service: "test".into(),
            name: name.into(),
        },
    ) {
        Response::Decision(d) => d,
        other => panic!("unexpected {other:?}"),
    }
}

#[rstest]
#[case::local_member("alice", Verdict::Allowed, "alice", "identity")]
#[case::primary_group_only("jdoe", Verdict::Allowed, "jdoe", "identity")]
#[case::not_in_group("bob", Verdict::PolicyDenied, "bob", "identity")]
#[case::below_minimum("sys", Verdict::PolicyDenied, "sys", "identity")]
#[case::root("root", Verdict::PolicyDenied, "root", "identity")]
#[case::denied("mallory", Verdict::PolicyDenied, "mallory", "identity")]
#[case::accounts_file("John.Doe@COMPANY.com", Verdict::Allowed, "jdoe", "accounts-file:1")]
#[case::alias_to_root("boss@company.com", Verdict::UserUnknown, "root", "accounts-file:2")]
#[case::rewrite_proxy_header(
    "UID-jsmith",
    Verdict::Allowed,
    "jsmith",
    "rewrite rule 1 '^UID-([a-z]+)$ $1'"
)]
#[case::rewrite_email(
    "Alice@Company.com",
    Verdict::Allowed,
    "alice",
    "rewrite rule 2 '^([a-z0-9._-]+)@company\\.com$ $1'"
)]
#[case::display_name("rsuser24/J Smith", Verdict::Allowed, "rsuser24", "identity")]
#[case::unknown("nobody", Verdict::UserUnknown, "", "identity")]
#[case::unmapped_email("eve@elsewhere.org", Verdict::UserUnknown, "", "")]
#[case::control_char("ali\nce", Verdict::BadInput, "", "")]
#[case::backend_down("broken", Verdict::Unavailable, "", "identity")]
fn root_peer_decisions(
    #[case] name: &str,
    #[case] verdict: Verdict,
    #[case] account: &str,
    #[case] rule: &str,
) {
    let (e, _dir) = engine();
    let d = decide(&e, &ROOT, name);
    assert_eq!(
        (d.verdict, d.account.as_str(), d.rule.as_str()),
        (verdict, account, rule),
        "{d:?}"
    );
    assert!(!d.reason.is_empty());
}

/// alice (uid 1001) as a peer; pid 0 so that her request budget is billed to uid 1001.
const ALICE: Peer = Peer {
    pid: 0,
    uid: 1001,
    gid: 1001,
};

#[test]
fn an_unprivileged_peer_may_ask_only_about_itself() {
    let (e, _dir) = engine();
    assert_eq!(decide(&e, &ALICE, "alice").verdict, Verdict::Allowed);
    let d = decide(&e, &ALICE, "jdoe");
    assert_eq!(d.verdict, Verdict::PolicyDenied);
    assert_eq!(
        (d.uid, d.groups.len()),
        (None, 0),
        "nothing about jdoe leaks: {d:?}"
    );
    assert_eq!(d.reason, NOT_YOUR_NAME);
}

/// Issue 14 finding 6: whatever the other name (unknown, another user, an alias of root or of
/// a low uid, a rewritten name, a display-name form, an unusable name), a non-root peer gets
/// the same decision, with no account, uid, rule or group; its own name, however typed,
/// goes through.
#[rstest]
#[case::unknown("nosuchuser")]
#[case::other_user("jdoe")]
#[case::alias_of_root("boss@company.com")]
#[case::low_uid("sys")]
#[case::rewritten("UID-jsmith")]
#[case::rewritten_unknown("UID-nobody")]
#[case::display_name("rsuser24/J Smith")]
#[case::unusable("ali\nce")]
#[case::backend_down("broken")]
fn a_non_root_peer_gets_one_answer_about_any_other_name(#[case] name: &str) {
    let (e, _dir) = engine();
    assert_eq!(decide(&e, &ALICE, name), not_your_name(), "{name}");
}

#[rstest]
#[case::as_is("alice")]
#[case::upper_case("ALICE")]
#[case::display_name("alice/Alice A.")]
fn a_non_root_peer_may_ask_about_its_own_name(#[case] name: &str) {
    let (e, _dir) = engine();
    let d = decide(&e, &ALICE, name);
    assert_eq!(
        (d.verdict, d.account.as_str()),
        (Verdict::Allowed, "alice"),
        "{d:?}"
    );
}

#[test]
fn a_non_root_peer_is_rate_limited_and_root_is_not() {
    let (e, _dir) = engine();
    let limited = (0..100)
        .filter(|_| {
            matches!(
                e.handle(
                    &ALICE,
                    &Request::Resolve {
                        service: "t".into(),
                        name: "alice".into()
                    }
                ),
                Response::Error(ref m) if m == crate::engine::nss::RATE_LIMITED
            )
        })
        .count();
    // The burst goes through at once, the rest of a hundred at once is refused.
    assert_eq!(
        limited,
        100 - crate::server::nss_limit::USER_REQUEST_BURST as usize
    );
    assert!((0..100).all(|_| decide(&e, &ROOT, "alice").verdict == Verdict::Allowed));
}

fn pam(phase: Phase, verify: Verify, credential: Option<&[u8]>) -> Request {
    Request::Pam(PamRequest {
        service: "rstudio".into(),
        phase,
        user: "alice".into(),
        rhost: String::new(),
        verify,
        credential: credential.map(|c| Credential::new(c.to_vec())),
    })
}

#[rstest]
#[case::no_verification(Phase::Auth, Verify::None, None, Verdict::Allowed)]
#[case::account_ignores_verify(Phase::Account, Verify::Ldap, None, Verdict::Allowed)]
#[case::missing_credential(Phase::Auth, Verify::Ldap, None, Verdict::BadInput)]
#[case::empty_password(Phase::Auth, Verify::Ldap, Some(b"".as_slice()), Verdict::BadInput)]
#[case::nul_in_password(Phase::Auth, Verify::Oidc, Some(b"a\0b".as_slice()), Verdict::BadInput)]
#[case::ldap_not_configured(Phase::Auth, Verify::Ldap, Some(b"pw".as_slice()), Verdict::Unavailable)]
#[case::oidc_not_configured(Phase::Auth, Verify::Oidc, Some(b"eyJ.x.y".as_slice()), Verdict::Unavailable)]
fn pam_credentials(
    #[case] phase: Phase,
    #[case] verify: Verify,
    #[case] credential: Option<&[u8]>,
    #[case] want: Verdict,
) {
    let (e, _dir) = engine();
    match e.handle(&ROOT, &pam(phase, verify, credential)) {
        Response::Decision(d) => assert_eq!(d.verdict, want, "{d:?}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn only_root_flushes_the_cache() {
    let (e, _dir) = engine();
    decide(&e, &ROOT, "alice");
    let alice = Peer {
        pid: 7,
        uid: 1001,
        gid: 1001,
    };
    assert!(matches!(
        e.handle(&alice, &Request::CacheFlush),
        Response::Error(_)
    ));
    assert_eq!(e.handle(&ROOT, &Request::CacheFlush), Response::Flushed(1));
}

#[test]
fn status_names_the_policy() {
    let (e, _dir) = engine();
    let Response::Status(pairs) = e.handle(&ROOT, &Request::Status) else {
        panic!("no status")
    };
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("minimum uid").as_deref(), Some("1000"));
    assert_eq!(get("required groups").as_deref(), Some("rstudio-users"));
    assert!(get("accounts file").is_some_and(|v| v.ends_with("(2 entries)")));
}

#[test]
fn the_decision_line_names_every_field() {
    let (e, _dir) = engine();
    let (syslog, _) = crate::log::tests::logged(|| {
        decide(&e, &ROOT, "John.Doe@Company.com");
        decide(&e, &ROOT, "mallory");
    });
    assert_eq!(
        syslog,
        [
            "decision peer=uid:0/pid:1 service=\"test\" phase=resolve name=\"John.Doe@Company.com\" \
             account=\"jdoe\" uid=1003 verdict=allowed rule=\"accounts-file:1\" reason=\"allowed\"",
            "decision peer=uid:0/pid:1 service=\"test\" phase=resolve name=\"mallory\" \
             account=\"mallory\" uid=1006 verdict=denied rule=\"identity\" \
             reason=\"mallory is listed in access.denied_users\""
        ]
    );
}
