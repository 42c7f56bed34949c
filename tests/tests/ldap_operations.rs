//! What a cold `verify=ldap` sign-in costs the directory, counted in slapd's own log (`-d 256`,
//! its `stats` level): connections accepted, StartTLS and TLS set-ups, binds, and each search
//! with what it asks for. Counted rather than timed, so that more LDAP work per sign-in (a
//! search only Active Directory needs run against OpenLDAP, the same user looked up twice, a
//! connection or TLS session not reused) fails here on any machine, loaded or not.
//!
//! A cold sign-in is what the PAM module sends for a user whose identity is not cached (the
//! cache flushed before each one, users taken in turn): the auth phase with `verify=ldap`, then
//! the account phase. Connections are warm (one sign-in before counting), as on a running
//! server. Measured at a9b2df1 (before issue 15's Active Directory work) and after it, the same:
//! the user search, the whitelist search and, with `group_search_base_dn`, the group search, one
//! bind as the user, no new connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::slapd::*;
use accountmap_tests::*;
use accountmap_wire::{Credential, PamRequest, Phase, Request, Response, Verdict, Verify};
use std::time::Duration;

/// Cold sign-ins counted per case.
const ROUNDS: usize = 6;

/// One PAM phase for `user` as pam_accountmap asks it (`password` for the auth phase).
fn phase(env: &Env, phase: Phase, user: &str, password: Option<&str>) -> Verdict {
    let req = Request::Pam(PamRequest {
        service: SVC_LDAP.into(),
        phase,
        user: user.into(),
        rhost: String::new(),
        verify: if password.is_some() {
            Verify::Ldap
        } else {
            Verify::None
        },
        credential: password.map(|p| Credential::new(p.as_bytes().to_vec())),
    });
    match accountmap_wire::call(&env.socket, &req, Duration::from_secs(10)) {
        Ok(Response::Decision(d)) => d.verdict,
        other => panic!("{phase:?} phase of {user}: {other:?}"),
    }
}

/// A sign-in that must be allowed: auth with the password, then the account phase.
fn sign_in(env: &Env, (user, password): (&str, &str)) {
    assert_eq!(
        phase(env, Phase::Auth, user, Some(password)),
        Verdict::Allowed,
        "auth of {user}"
    );
    assert_eq!(
        phase(env, Phase::Account, user, None),
        Verdict::Allowed,
        "account phase of {user}"
    );
}

/// [`ROUNDS`] cold sign-ins, `users` in turn, after one to warm the connections up: what slapd
/// logged of them.
fn cold_sign_ins(slapd: &Slapd, env: &Env, users: &[(&str, &str)]) -> Operations {
    sign_in(env, users[0]);
    let mark = slapd.log_mark();
    for round in 0..ROUNDS {
        let out = env.ctl(&["cache", "flush"]);
        assert_eq!(out.code, 0, "cache flush: {}", out.all());
        sign_in(env, users[round % users.len()]);
    }
    slapd.operations_since(mark)
}

/// Per cold sign-in: exactly one bind, as the user (no service bind again), at most `searches`
/// searches and at least the user search, each under one of `bases` (no root DSE question, no
/// second read of the user's entry), and no new connection or TLS set-up.
#[track_caller]
fn assert_cost(ops: &Operations, searches: usize, bases: &[&str]) {
    let all = format!("{ops:#?}");
    assert_eq!(ops.binds.len(), ROUNDS, "one bind per sign-in: {all}");
    for bind in &ops.binds {
        assert!(
            bind.starts_with("dn=\"uid=") && bind.contains(PEOPLE_DN),
            "only the users bind: {all}"
        );
    }
    assert!(
        ops.searches.len() >= ROUNDS,
        "every cold sign-in searches the user (is the log read?): {all}"
    );
    assert!(
        ops.searches.len() <= searches * ROUNDS,
        "at most {searches} searches per cold sign-in: {all}"
    );
    for search in &ops.searches {
        assert!(
            bases
                .iter()
                .any(|b| search.starts_with(&format!("base=\"{b}\""))),
            "a search under none of {bases:?}: {all}"
        );
    }
    assert_eq!(ops.connections, 0, "no new connection: {all}");
    assert_eq!(ops.start_tls, 0, "no new StartTLS: {all}");
    assert_eq!(ops.tls_handshakes, 0, "no new TLS session: {all}");
}

/// As `compare-bench` configures the daemon: plain LDAP, the whitelist matched by `memberUid`,
/// no group names read. Anonymous and with a service account.
#[test]
fn a_cold_sign_in_with_a_memberuid_whitelist_is_two_searches_and_one_bind() {
    let slapd = Slapd::start_logging_operations("ops-memberuid");
    for anonymous in [true, false] {
        let section = Section {
            transport: Transport::Plain,
            anonymous,
            member_attribute: Some("memberUid"),
            whitelist: LDAP_RSTUDIO_DN,
            groups: false,
            ..Section::default()
        };
        let env = ldap_env_with("ldap-ops", &slapd, &[section], 300, 2, &[]);
        let users = [
            ("alice", "alice-pw"),
            ("jdoe", "jdoe-pw"),
            ("bob", "bob-pw"),
        ];
        let ops = cold_sign_ins(&slapd, &env, &users);
        println!("anonymous = {anonymous}: {ops:#?}");
        assert_cost(&ops, 2, &[PEOPLE_DN, LDAP_RSTUDIO_DN]);
    }
}

/// StartTLS, a service account, group names read, the whitelist group listing members by DN
/// and `nested_groups` left at `"auto"` (whose root DSE question is asked once, not per
/// sign-in).
#[test]
fn a_cold_sign_in_over_starttls_with_groups_is_three_searches_one_bind_and_no_handshake() {
    let slapd = Slapd::start_logging_operations("ops-starttls");
    let env = ldap_env("ldap-ops", &slapd, &Section::default(), 300);
    let users = [("alice", "alice-pw"), ("jdoe", "jdoe-pw")];
    let ops = cold_sign_ins(&slapd, &env, &users);
    println!("{ops:#?}");
    assert_cost(&ops, 3, &[PEOPLE_DN, GROUPS_DN, SCIENTISTS_DN]);
}

/// The counting itself, on lines as slapd 2.5 writes them with `-d 256`.
#[test]
fn the_stats_log_is_counted() {
    let log = "\
6b164acd.307ff434 0x7f146ddfe6c0 conn=1005 fd=14 ACCEPT from IP=127.0.0.1:42582 (IP=127.0.0.1:39469)
6b164acd.30861570 0x7f146cdfc6c0 conn=1005 op=0 EXT oid=1.3.6.1.4.1.1466.20037
6b164acd.308664fc 0x7f146cdfc6c0 conn=1005 op=0 STARTTLS
6b164acd.3086b8a5 0x7f146cdfc6c0 conn=1005 op=0 RESULT oid= err=0 qtime=0.000004 etime=0.000047 text=
6b164acd.31411574 0x7f146d5fd6c0 conn=1005 fd=14 TLS established tls_ssf=256 ssf=256 tls_proto=TLS1.3 tls_cipher=AES-256-GCM
6b164acd.3146c0ec 0x7f146cdfc6c0 conn=1005 op=1 BIND dn=\"cn=reader,dc=example,dc=org\" method=128
6b164acd.31470ac8 0x7f146cdfc6c0 conn=1005 op=1 BIND dn=\"cn=reader,dc=example,dc=org\" mech=SIMPLE bind_ssf=0 ssf=256
6b164acd.31475261 0x7f146cdfc6c0 conn=1005 op=1 RESULT tag=97 err=0 qtime=0.000004 etime=0.000053 text=
6b164acd.314ce5e0 0x7f146cdfc6c0 conn=1005 op=2 SRCH base=\"cn=ldap-rstudio,ou=Groups,dc=example,dc=org\" scope=0 deref=0 filter=\"(memberUid=alice)\"
6b164acd.314d470d 0x7f146cdfc6c0 conn=1005 op=2 SRCH attr=1.1
6b164acd.314e7475 0x7f146cdfc6c0 conn=1005 op=2 SEARCH RESULT tag=101 err=0 qtime=0.000005 etime=0.000121 nentries=1 text=
6b164acd.37af6fb6 0x7f146ddfe6c0 conn=1006 op=2 BIND anonymous mech=implicit bind_ssf=0 ssf=256
6b164acd.37b00cae 0x7f146ddfe6c0 conn=1006 op=2 BIND dn=\"uid=alice,ou=People,dc=example,dc=org\" method=128
6b164acd.37b345f0 0x7f146ddfe6c0 conn=1006 op=2 BIND dn=\"uid=alice,ou=People,dc=example,dc=org\" mech=SIMPLE bind_ssf=0 ssf=256
6b164b46.17a838d2 0x7f08d90fb6c0 conn=1006 op=3 UNBIND
6b164b46.17a838d2 0x7f08d90fb6c0 conn=1006 fd=12 closed
";
    let ops = Operations::parse(log);
    assert_eq!(ops.connections, 1);
    assert_eq!(ops.start_tls, 1);
    assert_eq!(ops.tls_handshakes, 1);
    assert_eq!(
        ops.binds,
        [
            "dn=\"cn=reader,dc=example,dc=org\" method=128",
            "dn=\"uid=alice,ou=People,dc=example,dc=org\" method=128"
        ]
    );
    assert_eq!(
        ops.searches,
        ["base=\"cn=ldap-rstudio,ou=Groups,dc=example,dc=org\" scope=0 deref=0 filter=\"(memberUid=alice)\""]
    );
    assert_eq!(ops.unbinds, 1);
}
