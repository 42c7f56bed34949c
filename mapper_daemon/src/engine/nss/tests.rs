use super::*;
use crate::backends::system::{LookupError, StaticDirectory};
use crate::server::nss_limit::BURST;
use crate::test_support::{self, account, EXAMPLE_CONFIG};
use rstest::rstest;

/// An engine over made-up users: an accounts file with an alias to a user, to root and to
/// a system account; rewrite rules for a proxy header and a company email.
fn engine() -> (Engine, tempfile::TempDir) {
    let directory = StaticDirectory::new(vec![
        account("root", 0, 0, &[]),
        account("sys", 500, 500, &[]),
        account("alice", 1001, 1001, &[]),
        account("jdoe", 1003, 2000, &[]),
        account("jsmith", 1004, 1004, &[]),
        account("mallory", 1006, 1006, &[]),
    ])
    .with_failure("broken", LookupError::Failed("directory timed out".into()));
    let accounts = b"John.Doe@Company.com = jdoe\nboss@company.com = root\nlegacy = sys\nghost@company.com = ghost\ndenied.alias@company.com = alice\n";
    let config = EXAMPLE_CONFIG.replace(
        "denied_users = [\"mallory\"]",
        "denied_users = [\"mallory\", \"denied.alias@company.com\"]",
    );
    assert_ne!(config, EXAMPLE_CONFIG);
    test_support::engine(&[("accounts", accounts, 0o644)], &config, directory)
}

/// A peer by uid alone: pid 0, as for a process in a pid namespace the daemon cannot see, so
/// that its budget is its uid's (a real pid would be billed to that process's real uid).
fn peer(uid: u32) -> Peer {
    Peer {
        pid: 0,
        uid,
        gid: uid,
    }
}

#[rstest]
#[case::accounts_file("John.Doe@Company.com", "jdoe", 1003, 2000)]
#[case::accounts_file_case("JOHN.DOE@company.COM", "jdoe", 1003, 2000)]
#[case::rewrite_proxy_header("UID-jsmith", "jsmith", 1004, 1004)]
#[case::rewrite_email("alice@company.com", "alice", 1001, 1001)]
#[case::display_name("alice/Alice Smith", "alice", 1001, 1001)]
#[case::upper_case_local_name("ALICE", "alice", 1001, 1001)]
// NSS does not apply the required groups (none of these accounts is in rstudio-users): PAM
// refuses them later, under the local name, with the same result.
fn aliases_get_the_local_entry(
    #[case] name: &str,
    #[case] account: &str,
    #[case] uid: u32,
    #[case] gid: u32,
) {
    let (e, _dir) = engine();
    let got = e.handle(
        &peer(0),
        &accountmap_wire::Request::Getpwnam { name: name.into() },
    );
    assert_eq!(
        got,
        Response::Passwd(Some(PasswdEntry {
            name: account.into(),
            uid,
            gid,
            gecos: format!("{account} (test)"),
            dir: format!("/home/{account}"),
            shell: "/bin/sh".into(),
        }))
    );
}

#[rstest]
#[case::local_name("alice")]
#[case::local_root("root")]
#[case::alias_to_root("boss@company.com")]
#[case::upper_case_root("ROOT")]
#[case::alias_below_minimum("legacy")]
#[case::rewrite_to_root("root@company.com")]
#[case::unknown_alias("ghost@company.com")]
#[case::unknown_name("nobody-here")]
#[case::unmapped_email("eve@elsewhere.org")]
// Refused by name (issue 13 item 4): an alias of a denied account, and a denied alias of an
// account that is not denied — rserver and su would hand PAM only "alice", which is allowed.
#[case::alias_of_a_denied_account("mallory@company.com")]
#[case::denied_alias("Denied.Alias@Company.com")]
#[case::denied_alias_other_case("DENIED.ALIAS@company.com")]
#[case::empty("")]
#[case::control_character("ali\nce@company.com")]
#[case::too_long(&"a".repeat(accountmap_wire::MAX_NAME_LEN + 1))]
fn other_names_get_nothing(#[case] name: &str) {
    let (e, _dir) = engine();
    assert_eq!(e.nss_getpwnam(&peer(0), name), Response::Passwd(None));
}

#[test]
fn a_failing_directory_is_an_error_not_a_missing_user() {
    let (e, _dir) = engine();
    let got = e.nss_getpwnam(&peer(0), "broken@company.com");
    assert!(
        matches!(&got, Response::Error(m) if m.contains("directory timed out")),
        "{got:?}"
    );
}

#[test]
fn any_peer_may_ask_about_any_alias() {
    // Unlike PAM and resolve, where a non-root peer may ask only about itself.
    let (e, _dir) = engine();
    let got = e.nss_getpwnam(&peer(65534), "John.Doe@Company.com");
    assert!(
        matches!(&got, Response::Passwd(Some(pw)) if pw.name == "jdoe"),
        "{got:?}"
    );
}

#[test]
fn a_peer_over_its_rate_is_refused_and_others_are_not() {
    let (e, _dir) = engine();
    let noisy = peer(4_000_001);
    let refused = (0..(BURST * 2))
        .filter(|_| e.nss_getpwnam(&noisy, "alice") == Response::Error(RATE_LIMITED.into()))
        .count();
    assert!(refused > 0, "no request of {} was refused", BURST * 2);
    assert_eq!(
        e.nss_getpwnam(&peer(4_000_002), "alice"),
        Response::Passwd(None)
    );
}
