//! The LDAP backend against a real slapd started by each test on 127.0.0.1 (see
//! `accountmap_tests::slapd` for the directory's users and groups), with pamtester under
//! pam_wrapper for `verify=ldap` sign-ins (the password is fed on pamtester's stdin, which it
//! reads when stdin is not a terminal) and `accountmapctl` for resolutions and status.
//!
//! Per SPEC step 7 the account an LDAP entry names must still exist locally: the nss_wrapper
//! passwd file mirrors the directory's uids (alice, bob, jdoe, dave), except `ann`, who exists
//! only in LDAP and so is "user unknown". The LDAP group `ldap-rstudio` exists only in LDAP
//! and is the required group: passing the policy proves LDAP groups count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::slapd::*;
use accountmap_tests::*;
use std::time::{Duration, Instant};

fn resolve(env: &Env, name: &str) -> (i32, serde_json::Value) {
    let (code, v, _) = env.ctl_json(&["resolve", name]);
    (code, v)
}

fn status(env: &Env) -> serde_json::Value {
    let (code, v, out) = env.ctl_json(&["status"]);
    assert_eq!(code, 0, "{}", out.all());
    v
}

/// Asserts that `accountmapctl status` says the `corp` section's server at `address` is
/// reachable.
#[track_caller]
fn assert_reachable(env: &Env, address: &str) {
    let s = status(env);
    assert_eq!(s[&format!("ldap corp {address}")], "reachable", "{s}");
}

/// Asserts that what `accountmapctl status` says of the `corp` section's server at `address`
/// starts with `prefix`; what it says.
#[track_caller]
fn assert_state_starts_with(env: &Env, address: &str, prefix: &str) -> String {
    let s = status(env);
    let state = s[&format!("ldap corp {address}")]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(state.starts_with(prefix), "{s}");
    state
}

#[test]
fn password_sign_ins_over_starttls() {
    let slapd = Slapd::start("signin");
    let env = ldap_env("ldap-signin", &slapd, &Section::default(), 0);

    // correct password ({SSHA} in the directory), identity from LDAP, LDAP group satisfies
    // access.required_groups
    let run = env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", SIGNED_IN);
    run.assert_user_after("auth", "alice");
    println!("alice signed in over StartTLS in {:?}", run.elapsed());

    // wrong password
    env.assert_sign_in(SVC_LDAP, "alice", "not-her-password", &[AUTH_ERR]);

    // an email identity signs in as its uid (mail is stored mixed-case; LDAP compares it
    // case-insensitively, the pipeline lower-cases the name first)
    for email in [
        "alice@example.org",
        "Alice@Example.ORG",
        "john.doe@example.org",
    ] {
        let password = if email.starts_with('j') {
            "jdoe-pw"
        } else {
            "alice-pw"
        };
        let run = env.assert_sign_in(SVC_LDAP, email, password, SIGNED_IN);
        let want = if email.starts_with('j') {
            "jdoe"
        } else {
            "alice"
        };
        assert_eq!(run.pam_user_after("auth").as_deref(), Some(want), "{email}");
    }

    // outside the whitelisted group: refused even with the right password
    env.assert_sign_in(SVC_LDAP, "bob", "bob-pw", &[AUTH_ERR]);
    env.assert_pam(SVC_LDAP, "bob", &["acct_mgmt"], &[PERM_DENIED]);
    // whitelisted, but not in the required (LDAP) group
    env.assert_sign_in(SVC_LDAP, "dave", "dave-pw", &[AUTH_ERR]);
    // in LDAP, not a local account (step 7)
    env.assert_sign_in(SVC_LDAP, "ann", "ann-pw", &[USER_UNKNOWN]);

    // resolve names the directory that answered and shows the LDAP group
    let (code, v) = resolve(&env, "alice@example.org");
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["account"], "alice");
    assert_eq!(v["rule"], "ldap corp", "{v}");
    let log = env.daemon_log();
    assert!(
        log.contains("whitelisted_login_groups") && log.contains("name=\"bob\""),
        "bob's refusal is logged with its reason:\n{log}"
    );
    for pw in [
        "alice-pw",
        "not-her-password",
        "bob-pw",
        "jdoe-pw",
        READER_PASSWORD,
    ] {
        assert!(!log.contains(pw), "a password reached the log:\n{log}");
    }

    // status: the server is reachable
    assert_reachable(&env, &slapd.address());
}

#[test]
fn ldaps_and_starttls_check_the_certificate_authority() {
    let slapd = Slapd::start("tls");
    for transport in [Transport::Ldaps, Transport::StartTls] {
        for ca_wrong in [false, true] {
            let section = Section {
                transport,
                ca_wrong,
                anonymous: true,
                ..Section::default()
            };
            let env = ldap_env("ldap-tls", &slapd, &section, 0);
            let (code, v) = resolve(&env, "alice");
            if ca_wrong {
                // exit 3: the backend is down, as for a daemon that cannot be reached
                assert_eq!(code, 3, "{transport:?} with the wrong CA: {v}");
                assert_eq!(v["allowed"], false);
                let reason = v["reason"].as_str().unwrap_or_default().to_string();
                assert!(
                    reason.contains("directory unavailable"),
                    "{transport:?}: {reason}"
                );
                env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", &[AUTHINFO_UNAVAIL]);
                let address = if transport == Transport::Ldaps {
                    slapd.tls_address()
                } else {
                    slapd.address()
                };
                let value = assert_state_starts_with(&env, &address, "unreachable: ");
                assert!(value.contains("certificate"), "{transport:?}: {value}");
                println!("{transport:?} with the wrong CA: {value}");
            } else {
                assert_eq!(code, 0, "{transport:?} with the right CA: {v}");
                assert_eq!(v["rule"], "ldap corp");
                env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", SIGNED_IN);
            }
        }
    }
}

#[test]
fn injection_attempts_match_nobody() {
    let slapd = Slapd::start("inject");
    let env = ldap_env("ldap-inject", &slapd, &Section::default(), 0);
    // Each of these, unescaped, would make the filter match alice (or everyone).
    let attempts = [
        "*",
        "al*",
        "alice)(uid=*",
        ")(uid=*",
        "\\00",
        "alice\\00",
        "\\61lice",
        "alice@*",
        "*@example.org",
        "*)(|(uid=*",
    ];
    for name in attempts {
        let (code, v) = resolve(&env, name);
        assert_eq!(code, 1, "{name:?}: {v}");
        assert_ne!(v["rule"], "ldap corp", "{name:?} matched an entry: {v}");
        assert_ne!(v["account"], "alice", "{name:?}: {v}");
        assert_eq!(v["verdict"], "user-unknown", "{name:?}: {v}");
    }
    // and with alice's password through PAM
    for name in ["al*", "alice)(uid=*", "\\61lice"] {
        env.assert_sign_in(SVC_LDAP, name, "alice-pw", &[USER_UNKNOWN]);
    }
}

#[test]
fn failover_outage_stale_answers_and_recovery() {
    let mut slapd = Slapd::start("faults");
    let dead = format!("127.0.0.1:{}", free_port());
    let section = Section {
        addresses: Some(vec![dead.clone(), slapd.address()]),
        ..Section::default()
    };
    let env = ldap_env("ldap-faults", &slapd, &section, 1);

    // first address dead: the second answers
    env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", SIGNED_IN);
    assert_reachable(&env, &slapd.address());
    assert_state_starts_with(&env, &dead, "unreachable: ");
    // alice's identity is now cached (for 1 s)
    let (code, v) = resolve(&env, "alice");
    assert_eq!(
        (code, &v["rule"]),
        (0, &serde_json::json!("ldap corp")),
        "{v}"
    );

    // every server down
    slapd.stop();
    std::thread::sleep(Duration::from_millis(1200)); // let the cached answer expire
    let from = env.log_len();
    let started = Instant::now();
    let run = env.sign_in(SVC_LDAP, "alice", "alice-pw");
    let took = started.elapsed();
    assert_eq!(run.verdicts(), vec![AUTHINFO_UNAVAIL], "{}", run.out.all());
    println!("sign-in with every LDAP server down: AUTHINFO_UNAVAIL in {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // the cached identity still resolves, served stale and logged as such
    let (code, v) = resolve(&env, "alice");
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["account"], "alice");
    env.expect_log(from, Duration::from_secs(2), |l| {
        l.contains("stale") && l.contains("\"alice\"")
    });
    // a name never looked up cannot be answered
    let (code, v) = resolve(&env, "jdoe");
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["verdict"], "unavailable", "{v}");
    assert_state_starts_with(&env, &slapd.address(), "unreachable: ");

    // slapd back: service resumes without restarting the daemon (the pooled connection to the
    // old slapd is dead and replaced)
    slapd.resume();
    env.assert_sign_in(SVC_LDAP, "jdoe", "jdoe-pw", SIGNED_IN);
    env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", SIGNED_IN);
}

#[test]
fn insecure_mode_accepts_an_unknown_certificate_and_says_so() {
    let slapd = Slapd::start("insecure");
    let section = Section {
        transport: Transport::Ldaps,
        insecure: true,
        ..Section::default()
    };
    let env = ldap_env("ldap-insecure", &slapd, &section, 0);
    env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", SIGNED_IN);
    let log = env.daemon_log();
    assert!(
        log.contains("server_tls_insecure = true") && log.contains("NOT checked"),
        "the insecure mode must be loud in the log:\n{log}"
    );
}

#[test]
fn mutual_tls_presents_the_client_certificate() {
    let slapd = Slapd::start_with("mtls", true);
    for transport in [Transport::Ldaps, Transport::StartTls] {
        let with = Section {
            transport,
            client_cert: true,
            ..Section::default()
        };
        let env = ldap_env("ldap-mtls", &slapd, &with, 0);
        let run = env.sign_in(SVC_LDAP, "alice", "alice-pw");
        env.assert_verdicts(
            &run,
            SIGNED_IN,
            &format!("{transport:?} with a client certificate"),
        );
        drop(env);
        let without = Section {
            transport,
            ..Section::default()
        };
        let env = ldap_env("ldap-mtls-none", &slapd, &without, 0);
        let run = env.sign_in(SVC_LDAP, "alice", "alice-pw");
        env.assert_verdicts(
            &run,
            &[AUTHINFO_UNAVAIL],
            &format!("{transport:?} without a client certificate"),
        );
    }
}

#[test]
fn sections_are_asked_in_order() {
    let slapd = Slapd::start("order");
    // The first section searches where no user lives; the second finds them.
    let empty = Section::finding_nobody();
    let people = Section {
        name: "second",
        ..Section::default()
    };
    let env = ldap_env_sections("ldap-order", &slapd, &[empty, people], 0, 2);
    let (code, v) = resolve(&env, "jdoe");
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["rule"], "ldap second", "{v}");
    env.assert_sign_in(SVC_LDAP, "john.doe@example.org", "jdoe-pw", SIGNED_IN);
    // a name no section knows falls through to step 6 (the name itself)
    let (code, v) = resolve(&env, "root");
    assert_eq!(v["rule"], "identity", "{v}");
    assert_eq!(code, 1, "root is refused by the uid rule: {v}");
}

#[test]
fn a_server_that_never_answers_costs_the_backend_timeout_not_more() {
    let slapd = Slapd::start("silent");
    // Connections to it complete in the kernel's backlog and then nothing is ever said.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let section = Section {
        addresses: Some(vec![silent.local_addr().unwrap().to_string()]),
        ..Section::default()
    };
    let env = ldap_env_sections("ldap-silent", &slapd, &[section], 0, 1);
    let started = Instant::now();
    let run = env.sign_in(SVC_LDAP, "alice", "alice-pw");
    let took = started.elapsed();
    assert_eq!(run.verdicts(), vec![AUTHINFO_UNAVAIL], "{}", run.out.all());
    println!("silent LDAP server, backend_timeout = 1 s: AUTHINFO_UNAVAIL in {took:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(
        env.daemon_log().contains("within 1s"),
        "{}",
        env.daemon_log()
    );
    // status answers promptly all the same, and says the probe found no answer
    let started = Instant::now();
    let address = silent.local_addr().unwrap().to_string();
    assert_state_starts_with(&env, &address, "no answer within 500 ms");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_email_alias_resolves_through_the_nss_module() {
    // RStudio canonicalises the typed name with getpwnam before PAM: the email must come back
    // as the local entry, pw_name = the uid from LDAP.
    let slapd = Slapd::start("nss");
    let env = ldap_env("ldap-nss", &slapd, &Section::default(), 0);
    let out = env.getent_passwd("alice@example.org");
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.starts_with("alice:x:1001:1001:"),
        "{}",
        out.all()
    );
    // an LDAP user without a local account is no passwd entry
    let out = env.getent_passwd("ann@example.org");
    assert_eq!(out.code, 2, "{}", out.all());
}

/// Password binds run on reused bind-only connections: after many sign-ins (every one of them
/// cold, so each also searches user, groups and whitelist), the directory has seen at most
/// the service pool plus the bind pool in connections, not one per sign-in; with plain LDAP,
/// StartTLS and LDAPS alike. A wrong password and then the right one on the same reused
/// connection give refused, then allowed. The groups are readable by the service account
/// only (`hide_groups`): every sign-in passing the required-group check proves that no search
/// ever ran as a user a password bind left on a connection.
#[test]
fn password_binds_reuse_a_bounded_set_of_connections() {
    use accountmap::backends::ldap::{BIND_POOL_SIZE, POOL_SIZE};
    let slapd = Slapd::start_opts("reuse", false, true);
    for transport in [Transport::Plain, Transport::StartTls, Transport::Ldaps] {
        let upstream = if transport == Transport::Ldaps {
            slapd.tls_address()
        } else {
            slapd.address()
        };
        let proxy = CountingProxy::start(upstream);
        let section = Section {
            transport,
            addresses: Some(vec![proxy.addr.clone()]),
            ..Section::default()
        };
        let env = ldap_env("ldap-reuse", &slapd, &section, 0);
        let at_start = proxy.accepted();
        // (the start-up check's status probe)
        println!("{transport:?}: {at_start} connections at start-up");
        const N: usize = 20;
        for i in 0..N {
            let (user, pw) = if i % 2 == 0 {
                ("alice", "alice-pw")
            } else {
                ("jdoe", "jdoe-pw")
            };
            let run = env.sign_in(SVC_LDAP, user, pw);
            env.assert_verdicts(&run, SIGNED_IN, &format!("{transport:?} #{i}"));
        }
        let after_sequential = proxy.accepted() - at_start;
        // one password bind per sign-in
        let s = status(&env);
        assert_eq!(
            s["ldap corp password checks"],
            format!("{N} made; 1 idle bind-only connections kept (at most 8 per address)"),
            "{s}"
        );
        // (status probes the address with a connection of its own)
        let probed = proxy.accepted();
        println!("{transport:?}: {N} sequential sign-ins, {after_sequential} connections");
        // sequential sign-ins need two service connections (the group and whitelist searches
        // run at once) and one bind connection
        assert!(
            after_sequential <= 3,
            "{transport:?}: {after_sequential} connections for {N} sign-ins"
        );

        // wrong, then right, on the reused connection (no new connection is opened)
        env.assert_sign_in(SVC_LDAP, "alice", "not-her-password", &[AUTH_ERR]);
        env.assert_sign_in(SVC_LDAP, "jdoe", "alice-pw", &[AUTH_ERR]);
        env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", SIGNED_IN);
        assert_eq!(
            proxy.accepted(),
            probed,
            "{transport:?}: the wrong and right passwords were checked on the same connections"
        );

        // concurrent sign-ins: still bounded by the two pools
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..5 {
                        env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", SIGNED_IN);
                    }
                });
            }
        });
        let total = proxy.accepted() - (probed - after_sequential);
        println!("{transport:?}: +20 concurrent sign-ins, {total} connections in all");
        assert!(
            total <= POOL_SIZE + BIND_POOL_SIZE,
            "{transport:?}: {total} connections"
        );

        // the connections break (as at a server restart): replaced, the next sign-in succeeds
        proxy.break_all();
        let run = env.sign_in(SVC_LDAP, "alice", "alice-pw");
        env.assert_verdicts(
            &run,
            SIGNED_IN,
            &format!("{transport:?} after the connections broke"),
        );
    }
}

/// With the identity cached only the password bind reaches the directory: a slapd restart
/// kills the idle bind connection, and the next sign-in (wrong password, then right) is
/// answered correctly on a new one.
#[test]
fn a_bind_connection_lost_to_a_restart_is_replaced() {
    let mut slapd = Slapd::start("bind-restart");
    let env = ldap_env("ldap-bind-restart", &slapd, &Section::default(), 300);
    env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", SIGNED_IN);
    slapd.stop();
    slapd.resume();
    env.assert_sign_in(SVC_LDAP, "alice", "wrong", &[AUTH_ERR]);
    env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", SIGNED_IN);
    assert_reachable(&env, &slapd.address());
}

/// `group_member_attribute` narrows the membership filter to one attribute. With `memberUid`
/// the group search of a username goes out with the user search (one round trip); an email
/// identity still reads its groups with the entry's name, after the user search.
#[test]
fn group_member_attribute_counts_only_that_attribute() {
    let slapd = Slapd::start("member-attribute");
    let by_name = Section {
        transport: Transport::Plain,
        member_attribute: Some("memberUid"),
        whitelist: "",
        ..Section::default()
    };
    // ldap-rstudio lists its members by memberUid: alice and jdoe are in it, dave is not
    let env = ldap_env("ldap-member-uid", &slapd, &by_name, 0);
    for (user, password) in [
        ("alice", "alice-pw"),
        ("alice@example.org", "alice-pw"),
        ("john.doe@example.org", "jdoe-pw"),
    ] {
        env.assert_sign_in(SVC_LDAP, user, password, SIGNED_IN);
    }
    env.assert_sign_in(SVC_LDAP, "dave", "dave-pw", &[AUTH_ERR]);
    env.assert_sign_in(SVC_LDAP, "alice", "wrong", &[AUTH_ERR]);
    drop(env);

    // the whitelisted group scientists lists its members by DN (member): with memberUid
    // only, nobody is in it
    let env = ldap_env(
        "ldap-member-uid-whitelist",
        &slapd,
        &Section {
            whitelist: SCIENTISTS_DN,
            ..by_name.clone()
        },
        0,
    );
    env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", &[AUTH_ERR]);
    assert!(
        env.daemon_log().contains("whitelisted_login_groups"),
        "the refusal names the whitelist:\n{}",
        env.daemon_log()
    );
    drop(env);

    // with member, the whitelist counts and ldap-rstudio (memberUid) does not
    let env = ldap_env(
        "ldap-member-dn",
        &slapd,
        &Section {
            member_attribute: Some("member"),
            whitelist: SCIENTISTS_DN,
            ..by_name
        },
        0,
    );
    env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", &[AUTH_ERR]);
    let log = env.daemon_log();
    assert!(
        log.contains("ldap-rstudio") && !log.contains("whitelisted_login_groups"),
        "refused for the required group, not the whitelist:\n{log}"
    );
}

/// Account state recorded in the directory (issue 15), OpenLDAP with the ppolicy overlay and
/// RFC 2307 shadow attributes: the right password is refused in the auth phase (PAM_AUTH_ERR,
/// as PAM defines auth answers), the account phase alone — what an SSH key sign-in runs —
/// gives the PAM code for the state, and the log names the attribute.
#[test]
fn disabled_expired_and_must_change_accounts_are_refused_in_both_phases() {
    let slapd = Slapd::start("state");
    let section = Section {
        whitelist: "",
        ..Section::default()
    };
    let env = ldap_env("ldap-state", &slapd, &section, 0);
    for (user, account_code, reason) in [
        (
            "locked",
            PERM_DENIED,
            "pwdAccountLockedTime is 000001010000Z",
        ),
        ("reset", NEW_AUTHTOK_REQD, "pwdReset is TRUE"),
        (
            "expired",
            ACCT_EXPIRED,
            "shadowExpire 1: the account expired",
        ),
        ("mustchg", NEW_AUTHTOK_REQD, "shadowLastChange is 0"),
    ] {
        let from = env.log_len();
        let run = env.sign_in(SVC_LDAP, user, &format!("{user}-pw"));
        assert_eq!(run.verdicts(), vec![AUTH_ERR], "{user}: {}", run.out.all());
        let run = env.pam(SVC_LDAP, user, &["acct_mgmt"]);
        assert_eq!(
            run.verdicts(),
            vec![account_code],
            "{user}: {}",
            run.out.all()
        );
        let log = env.daemon_log();
        let added = log.get(from..).unwrap_or("");
        assert_eq!(added.matches(reason).count(), 2, "{user}: {added}");
        println!("{user}: auth {AUTH_ERR}, account {account_code}: {reason}");
    }
    // Nobody else is affected: alice signs in.
    env.assert_sign_in(SVC_LDAP, "alice", "alice-pw", SIGNED_IN);
}

/// Nested groups on a directory without Active Directory's in-chain rule: `nested` is in
/// `team`, which is in `parent`, the whitelisted group. Not counted by default there
/// (`nested_groups = "auto"` is on for AD only); with `nested_groups = true` the daemon follows
/// the chain itself.
#[test]
fn nested_groups_count_when_asked_for() {
    let slapd = Slapd::start("nested");
    for (extra, want) in [("", AUTH_ERR), ("nested_groups = true\n", AUTH_OK)] {
        let section = Section {
            whitelist: PARENT_DN,
            extra,
            ..Section::default()
        };
        let env = ldap_env("ldap-nested", &slapd, &section, 0);
        let run = env.sign_in(SVC_LDAP, "nested", "nested-pw");
        assert_eq!(run.verdicts()[0], want, "{extra:?}: {}", run.out.all());
        if want == AUTH_ERR {
            assert!(env
                .daemon_log()
                .contains("is in none of the whitelisted_login_groups"));
        }
        // Direct members are whitelisted either way: team's own member list is not needed.
        let (code, _) = resolve(&env, "alice");
        assert_eq!(code, 1, "alice is in no group under parent");
    }
}
