//! Single bind (an `[[ldap]]` section with neither `bind_dn` nor `anonymous_bind`) against a
//! real slapd on 127.0.0.1 (see `accountmap_tests::slapd`): `verify=ldap` binds as
//! `uid=<account>,ou=People,dc=example,dc=org` and reads the entry, groups and whitelisted
//! groups with that bind; without a password the directory is not asked at all.
//!
//! The local passwd file mirrors the directory's uids (alice, bob, jdoe, dave), as in
//! `ldap.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap::backends::ldap::{LdapBackend, SingleBind};
use accountmap::config::LdapConfig;
use accountmap_tests::slapd::*;
use accountmap_tests::*;
use std::time::Duration;

fn single() -> Section {
    Section {
        single: true,
        ..Section::default()
    }
}

fn auth_only(env: &Env, user: &str, password: &str) -> PamRun {
    env.pam_with_stdin(
        SVC_LDAP,
        user,
        &["authenticate"],
        Some(format!("{password}\n").as_bytes()),
    )
}

#[test]
fn single_bind_signs_in_with_the_users_own_bind() {
    let slapd = Slapd::start("single");
    // No required group: the account phase (no password) cannot read LDAP groups.
    let env = ldap_env_with("ldap-single", &slapd, &[single()], 0, 2, &[]);
    let log = env.daemon_log();
    assert!(
        log.contains("uses single bind"),
        "the mode is named in the log at start:\n{log}"
    );

    // right password: bound as uid=alice,ou=People,…, whitelisted (scientists, read as alice)
    let run = env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", SIGNED_IN);
    run.assert_user_after("auth", "alice");
    // the pipeline lower-cases the name before the DN is built
    let run = env.assert_sign_in(SVC_LDAP, "ALICE", "alice-pw", SIGNED_IN);
    run.assert_user_after("auth", "alice");

    // wrong password
    env.assert_sign_in(SVC_LDAP, "alice", "not-her-password", &[AUTH_ERR]);

    // outside the whitelisted group: refused with the right password, and the reason says
    // the group was read with the user's own bind
    let from = env.log_len();
    env.assert_sign_in(SVC_LDAP, "bob", "bob-pw", &[AUTH_ERR]);
    env.expect_log(from, Duration::from_secs(2), |l| {
        l.contains("name=\"bob\"")
            && l.contains("whitelisted_login_groups")
            && l.contains("single bind")
    });

    // Documented limit: without a password the directory is not asked, so the account phase
    // alone cannot see the whitelist (auth, which is requisite, is where it is enforced).
    env.assert_pam(SVC_LDAP, "bob", &["acct_mgmt"], &[ACCT_OK]);

    // resolve (no password) does not ask the directory: step 6, the name itself
    let (code, v, _) = env.ctl_json(&["resolve", "alice"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["rule"], "identity", "{v}");
    // and so an email is mapped by nothing
    let (code, v, _) = env.ctl_json(&["resolve", "alice@example.org"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["verdict"], "user-unknown", "{v}");
    env.assert_sign_in(SVC_LDAP, "alice@example.org", "alice-pw", &[USER_UNKNOWN]);
    // NSS neither
    let out = env.getent_passwd("alice@example.org");
    assert_eq!(out.code, 2, "{}", out.all());

    // in LDAP, not a local account: refused before any bind (step 7)
    env.assert_sign_in(SVC_LDAP, "ann", "ann-pw", &[USER_UNKNOWN]);

    // DN syntax in a name never reaches a bind: it is no valid account name
    for name in [
        "alice,ou=People",
        "alice+cn=alice",
        "uid=alice",
        "alice\\2c",
    ] {
        env.assert_sign_in(SVC_LDAP, name, "alice-pw", &[USER_UNKNOWN]);
    }

    // status names the mode, and probes the server (connect only: nothing to bind as)
    let (code, s, out) = env.ctl_json(&["status"]);
    assert_eq!(code, 0, "{}", out.all());
    let mode = s["ldap corp bind"].as_str().unwrap_or_default().to_string();
    assert!(
        mode.starts_with(&format!("single bind as uid=<account>,{PEOPLE_DN}")),
        "{s}"
    );
    assert_eq!(
        s[&format!("ldap corp {}", slapd.address())],
        "reachable",
        "{s}"
    );
    println!("status: ldap corp bind = {mode}");

    let log = env.daemon_log();
    for pw in ["alice-pw", "not-her-password", "bob-pw"] {
        assert!(!log.contains(pw), "a password reached the log:\n{log}");
    }
}

#[test]
fn single_bind_groups_count_at_sign_in_only() {
    let slapd = Slapd::start("single-groups");
    // ldap-rstudio exists only in LDAP (posixGroup, memberUid).
    let env = ldap_env_with(
        "ldap-single-grp",
        &slapd,
        &[single()],
        0,
        2,
        &["ldap-rstudio"],
    );
    // auth: read with alice's bind, the LDAP group satisfies access.required_groups
    let run = auth_only(&env, "alice", "alice-pw");
    assert_eq!(run.verdicts(), vec![AUTH_OK], "{}", run.out.all());
    // dave is whitelisted but not in ldap-rstudio
    let run = auth_only(&env, "dave", "dave-pw");
    assert_eq!(run.verdicts(), vec![AUTH_ERR], "{}", run.out.all());
    // Documented limit: the account phase has no password, reads no LDAP group, and so
    // refuses a user whose required group exists only in the directory.
    env.assert_pam(SVC_LDAP, "alice", &["acct_mgmt"], &[PERM_DENIED]);
}

#[test]
fn single_bind_refuses_when_the_user_cannot_read_the_whitelist() {
    // Only the service account may read ou=Groups: a user bound as itself sees no group.
    let slapd = Slapd::start_opts("single-hidden", false, true);
    let env = ldap_env_with("ldap-single-hid", &slapd, &[single()], 0, 2, &[]);
    let from = env.log_len();
    env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", &[AUTH_ERR]);
    env.expect_log(from, Duration::from_secs(2), |l| {
        l.contains("may not read it") && l.contains(SCIENTISTS_DN)
    });
    // the same directory with a service bind (double bind) reads the groups and admits alice
    drop(env);
    let env = ldap_env_with("ldap-double-hid", &slapd, &[Section::default()], 0, 2, &[]);
    env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", SIGNED_IN);
}

#[test]
fn searchable_sections_answer_first_then_single_bind() {
    let slapd = Slapd::start("single-mixed");
    // The first section searches where no user lives (double bind); the second is single bind.
    let empty = Section::finding_nobody();
    let second = Section {
        name: "second",
        single: true,
        ..Section::default()
    };
    let env = ldap_env_with("ldap-single-mix", &slapd, &[empty, second], 0, 2, &[]);
    let from = env.log_len();
    env.assert_sign_in(SVC_LDAP, "jdoe", "jdoe-pw", SIGNED_IN);
    env.assert_sign_in(SVC_LDAP, "jdoe", "alice-pw", &[AUTH_ERR]);
    env.expect_log(from, Duration::from_secs(2), |l| {
        l.contains("ldap second: bind as \\\"uid=jdoe,ou=People")
    });
}

/// The backend itself, where PAM cannot go: a uid that needs escaping in a DN (no valid local
/// account name can), and names that would inject an RDN if they were not escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_dn_is_escaped() {
    let slapd = Slapd::start("single-escape");
    let cfg = LdapConfig {
        name: "corp".into(),
        server_address: vec![slapd.address()],
        tls: false,
        start_tls: true,
        tls_ca_certificate: Some(slapd.ca()),
        server_tls_insecure: false,
        tls_client_certificate: None,
        tls_client_key: None,
        bind_dn: None,
        bind_password_file: None,
        bind_password: None,
        anonymous_bind: false,
        user_search_base_dn: PEOPLE_DN.into(),
        user_object_class: "posixAccount".into(),
        username_attribute: "uid".into(),
        user_email_attributes: vec!["mail".into()],
        group_search_base_dn: Some(GROUPS_DN.into()),
        group_object_class: "posixGroup".into(),
        group_name_attribute: "cn".into(),
        group_member_attribute: None,
        whitelisted_login_groups: vec![SCIENTISTS_DN.into()],
        nested_groups: accountmap::config::NestedGroups::Auto,
    };
    assert!(cfg.single_bind());
    let b = LdapBackend::new(
        &[cfg],
        Duration::from_secs(2),
        Duration::ZERO,
        Duration::ZERO,
        true,
    )
    .unwrap()
    .unwrap();

    // the entry uid=o\,brien\+x,ou=People,…: bound by the escaped DN, its own entry read
    match b.single_bind(ESCAPED_UID, ESCAPED_PASSWORD.as_bytes()) {
        SingleBind::Accepted(id) => {
            assert_eq!(id.dn, format!("uid=o\\2cbrien\\2bx,{PEOPLE_DN}"));
            assert_eq!(id.account, ESCAPED_UID);
            assert!(
                id.single_bind && id.groups.is_empty() && !id.whitelisted,
                "{id:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        b.single_bind(ESCAPED_UID, b"wrong"),
        SingleBind::Refused(_)
    ));
    // alice, with her groups and whitelist read as herself
    match b.single_bind("alice", b"alice-pw") {
        SingleBind::Accepted(id) => {
            assert_eq!(id.dn, format!("uid=alice,{PEOPLE_DN}"));
            assert_eq!(id.groups, vec!["ldap-rstudio".to_string()]);
            assert!(id.whitelisted);
        }
        other => panic!("{other:?}"),
    }
    // Unescaped, each would name alice's entry (or another RDN); escaped, each names an entry
    // that does not exist, and the bind fails cleanly with invalid credentials.
    for name in [
        "alice,ou=People",
        &format!("alice,{PEOPLE_DN}"),
        "alice+cn=alice",
        "alice\\",
    ] {
        match b.single_bind(name, b"alice-pw") {
            SingleBind::Refused(why) => {
                assert!(why.contains("invalid credentials"), "{name:?}: {why}")
            }
            other => panic!("{name:?}: {other:?}"),
        }
    }
    // The server's matching rule ignores a leading space, so `uid=\20alice` binds as alice;
    // the own-entry check then finds no uid value equal to " alice" and refuses (the local
    // account would not be the directory's user).
    match b.single_bind(" alice", b"alice-pw") {
        SingleBind::Denied(why) => assert!(why.contains("no readable uid value"), "{why}"),
        other => panic!("{other:?}"),
    }
    // the empty password (an unauthenticated bind) is refused before any connection
    assert!(matches!(
        b.single_bind("alice", b""),
        SingleBind::Refused(_)
    ));
}
