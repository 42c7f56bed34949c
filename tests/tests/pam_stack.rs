//! Real PAM stacks: pamtester under pam_wrapper + nss_wrapper, `pam_accountmap.so` by absolute
//! path, a real accountmapd. Each case is what an administrator would try with pamtester, and
//! each assertion is on pamtester's verdict lines, i.e. on the PAM code of SPEC's table:
//!
//! | situation | auth | account |
//! |---|---|---|
//! | allowed | `successfully authenticated` | `account management done.` |
//! | no such account after resolution | `User not known…` | `User not known…` |
//! | refused by policy | `Authentication failure` | `Permission denied` |
//! | unusable input | `Authentication failure` | `User not known…` |
//!
//! PAM_USER after our module is read from a `pam_echo.so "auth: PAM_USER=%u"` line stacked
//! after it (pam_echo expands `%u` from PAM_USER when it runs; pamtester prints the text).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::*;

/// One sign-in as an administrator would check it.
struct Case {
    name: &'static str,
    /// verdict of `pamtester SVC NAME authenticate`
    auth: &'static str,
    /// verdict of `pamtester SVC NAME acct_mgmt` (a fresh transaction: PAM_USER is the name)
    acct: &'static str,
    /// PAM_USER after a successful auth (rewritten to the local account)
    account: Option<&'static str>,
}

impl Case {
    /// Allowed: both phases pass, and PAM_USER becomes `account`.
    const fn allowed(name: &'static str, account: &'static str) -> Case {
        Case {
            name,
            auth: AUTH_OK,
            acct: ACCT_OK,
            account: Some(account),
        }
    }

    /// Refused by policy.
    const fn denied(name: &'static str) -> Case {
        Case {
            name,
            auth: AUTH_ERR,
            acct: PERM_DENIED,
            account: None,
        }
    }

    /// No such account after resolution.
    const fn unknown(name: &'static str) -> Case {
        Case {
            name,
            auth: USER_UNKNOWN,
            acct: USER_UNKNOWN,
            account: None,
        }
    }

    /// Unusable input.
    const fn unusable(name: &'static str) -> Case {
        Case {
            name,
            auth: AUTH_ERR,
            acct: USER_UNKNOWN,
            account: None,
        }
    }
}

const CASES: &[Case] = &[
    // uid above the minimum, in rstudio-users as a supplementary group
    Case::allowed("alice", "alice"),
    // rstudio-users is carol's PRIMARY group only (not listed as a member): it counts
    Case::allowed("carol", "carol"),
    // not in the required group (only in staff)
    Case::denied("bob"),
    // in the group, but uid 500 < minimum_uid 1000
    Case::denied("sysuser"),
    // uid 0 asked for by name: below the minimum
    Case::denied("root"),
    // listed in denied_users although in the group
    Case::denied("mallory"),
    // no such account anywhere
    Case::unknown("ghost"),
    // names are lower-cased
    Case::allowed("ALICE", "alice"),
    // accounts file: `John.Doe@Company.com = jdoe` (compared lower-cased)
    Case::allowed("John.Doe@Company.com", "jdoe"),
    Case::allowed("john.doe@company.com", "jdoe"),
    // rewrite rule 2: ^([a-z0-9._-]+)@company\.com$ -> $1
    Case::allowed("jsmith@company.com", "jsmith"),
    Case::denied("bob@company.com"),
    // rewrite to an account that does not exist
    Case::unknown("nobody-here@company.com"),
    // a domain no rule matches: the name itself, which is no account
    Case::unknown("jsmith@evil.com"),
    // system/display: the account is the part before the separator
    Case::allowed("rsuser24/jsmith", "rsuser24"),
    Case::denied("bob/Bob Builder"),
    // an alias never maps to uid 0 (accounts file: ops@company.com=root)…
    Case::unknown("ops@company.com"),
    // …nor below the minimum uid (accounts file: legacy-sys = sysuser, uid 500)
    Case::unknown("legacy-sys"),
    // the same through a rewrite rule: sysuser@company.com -> sysuser (500), root@… -> root (0)
    Case::unknown("sysuser@company.com"),
    Case::unknown("root@company.com"),
    // denied_users applies to the account an alias resolves to, and after lower-casing
    Case::denied("mallory@company.com"),
    Case::denied("MALLORY"),
    // the email's domain is lower-cased too before the rule sees it
    Case::allowed("jdoe@COMPANY.COM", "jdoe"),
    // unusable input: empty name, empty account part, control characters
    Case::unusable(""),
    Case::unusable("/jsmith"),
    Case::unusable("ali\tce"),
];

fn check_case(env: &Env, c: &Case) {
    let auth = env.pam(SVC_ECHO, c.name, &["authenticate"]);
    assert_eq!(
        auth.verdicts(),
        vec![c.auth.to_string()],
        "auth of {:?}\n{}\n--- daemon.log ---\n{}",
        c.name,
        auth.out.all(),
        env.daemon_log()
    );
    assert_eq!(auth.code(), if c.auth == AUTH_OK { 0 } else { 1 });
    assert_eq!(
        auth.pam_user_after("auth").as_deref(),
        c.account,
        "PAM_USER after auth of {:?}\n{}",
        c.name,
        auth.out.all()
    );

    let acct = env.pam(SVC, c.name, &["acct_mgmt"]);
    assert_eq!(
        acct.verdicts(),
        vec![c.acct.to_string()],
        "account phase of {:?}\n{}\n--- daemon.log ---\n{}",
        c.name,
        acct.out.all(),
        env.daemon_log()
    );
}

#[test]
fn verdicts_of_spec_table_for_each_kind_of_user() {
    let env = Env::new("table");
    for c in CASES {
        check_case(&env, c);
    }
}

#[test]
fn rstudio_doc_rewrite_rule_uid_prefix() {
    // SPEC's example config: lowercase = true and the rule '^UID-([a-z]+)$ $1', as in RStudio's
    // documentation. An administrator copying it expects UID-jsmith to sign in as jsmith.
    let env = Env::new("uid-rule");
    check_case(&env, &Case::allowed("UID-jsmith", "jsmith"));
}

#[test]
fn lowercase_rewrite_rule_applies_to_lowercased_name() {
    let env = Env::builder("uid-rule-lc")
        .config(|c| c.rewrite = vec!["^uid-([a-z]+)$ $1".into()])
        .build();
    check_case(&env, &Case::allowed("UID-jsmith", "jsmith"));
    // the first matching rule wins and rules are tried in order; an unmatched name is itself
    check_case(&env, &Case::unknown("uid-"));
}

#[test]
fn auth_then_account_in_one_transaction_as_rstudio_does() {
    let env = Env::new("auth-acct");
    let run = env.assert_pam(
        SVC_ECHO,
        "John.Doe@Company.com",
        &["authenticate", "acct_mgmt"],
        SIGNED_IN,
    );
    run.assert_user_after("auth", "jdoe");
    // the account phase sees the rewritten user
    run.assert_user_after("account", "jdoe");

    let run = env.pam(SVC, "bob", &["authenticate", "acct_mgmt"]);
    // auth is requisite: the transaction stops at the first failure
    assert_eq!(run.verdicts(), vec![AUTH_ERR], "{}", run.out.all());
}

#[test]
fn keep_user_leaves_pam_user_alone() {
    let env = Env::new("keep-user");
    let run = env.assert_pam(
        SVC_KEEP,
        "John.Doe@Company.com",
        &["authenticate", "acct_mgmt"],
        SIGNED_IN,
    );
    run.assert_user_after("auth", "John.Doe@Company.com");
    run.assert_user_after("account", "John.Doe@Company.com");

    // without keep_user the same sign-in is rewritten
    env.pam(SVC_ECHO, "John.Doe@Company.com", &["authenticate"])
        .assert_user_after("auth", "jdoe");

    // keep_user changes nothing about the decision
    env.assert_pam(SVC_KEEP, "bob", &["authenticate"], &[AUTH_ERR]);
}

#[test]
fn rewritten_user_is_what_the_next_module_checks() {
    // A second, independent check of the rewrite: pam_succeed_if after ours only passes when
    // PAM_USER is the local account.
    let env = Env::new("succeed-if");
    let ours = env.module_line("auth", "requisite", "");
    env.add_service_text(
        "chain",
        &format!("{ours}auth required pam_succeed_if.so user = jdoe\n"),
    );
    let keep = env.module_line("auth", "requisite", "keep_user");
    env.add_service_text(
        "chain-keep",
        &format!("{keep}auth required pam_succeed_if.so user = jdoe\n"),
    );
    env.assert_pam(
        "chain",
        "John.Doe@Company.com",
        &["authenticate"],
        &[AUTH_OK],
    );
    let run = env.pam("chain-keep", "John.Doe@Company.com", &["authenticate"]);
    assert_ne!(
        run.verdicts(),
        vec![AUTH_OK],
        "keep_user must not rewrite\n{}",
        run.out.all()
    );
}

#[test]
fn any_one_of_several_required_groups_is_enough() {
    let env = Env::builder("two-groups")
        .config(|c| c.required_groups = vec!["rstudio-users".into(), "rstudio-admins".into()])
        .build();
    for (name, auth) in [("erin", AUTH_OK), ("alice", AUTH_OK), ("bob", AUTH_ERR)] {
        env.assert_pam(SVC, name, &["authenticate"], &[auth]);
    }
    // and erin is refused where only rstudio-users is required
    let env = Env::new("one-group");
    env.assert_pam(SVC, "erin", &["authenticate"], &[AUTH_ERR]);
}

#[test]
fn no_required_groups_means_uid_policy_only() {
    let env = Env::builder("no-groups")
        .config(|c| c.required_groups = vec![])
        .build();
    env.assert_pam(SVC, "bob", &["authenticate", "acct_mgmt"], SIGNED_IN);
    env.assert_pam(SVC, "sysuser", &["acct_mgmt"], &[PERM_DENIED]);
}

#[test]
fn minimum_uid_boundary() {
    let env = Env::builder("min-uid")
        .config(|c| c.minimum_uid = "1003".into())
        .build();
    // alice 1001 < 1003: denied; jdoe 1003 == minimum: allowed; jsmith 1004: allowed
    for (name, acct) in [
        ("alice", PERM_DENIED),
        ("jdoe", ACCT_OK),
        ("jsmith", ACCT_OK),
    ] {
        env.assert_pam(SVC, name, &["acct_mgmt"], &[acct]);
    }
    // an alias to an account below this minimum is "user unknown", not "denied"
    let env = Env::builder("min-uid-alias")
        .config(|c| c.minimum_uid = "1004".into())
        .build();
    env.assert_pam(
        SVC,
        "John.Doe@Company.com",
        &["authenticate"],
        &[USER_UNKNOWN],
    );
}

#[test]
fn lowercase_false_keeps_case() {
    let env = Env::builder("case").config(|c| c.lowercase = false).build();
    env.assert_pam(SVC, "ALICE", &["authenticate"], &[USER_UNKNOWN]);
    env.assert_pam(SVC, "alice", &["authenticate"], &[AUTH_OK]);
}

#[test]
fn unusable_input_is_refused() {
    let env = Env::new("bad-input");
    let long = "a".repeat(300);
    env.assert_pam(SVC, &long, &["authenticate"], &[AUTH_ERR]);
    env.assert_pam(SVC, &long, &["acct_mgmt"], &[USER_UNKNOWN]);
}

#[test]
fn setcred_and_session_succeed_for_an_allowed_user() {
    let env = Env::new("session");
    env.assert_pam(
        SVC,
        "alice",
        &["authenticate", "setcred", "open_session", "close_session"],
        &[AUTH_OK, SETCRED_OK, OPEN_SESSION_OK, CLOSE_SESSION_OK],
    );
}

#[test]
fn every_decision_is_logged_with_its_reason() {
    let env = Env::new("log");
    env.assert_pam(SVC, "John.Doe@Company.com", &["authenticate"], &[AUTH_OK]);
    env.assert_pam(SVC, "bob", &["acct_mgmt"], &[PERM_DENIED]);
    env.assert_pam(SVC, "ghost", &["acct_mgmt"], &[USER_UNKNOWN]);

    let log = env.daemon_log();
    let jdoe = env.decision_lines("John.Doe@Company.com");
    assert!(
        jdoe.iter().any(|l| l.contains("verdict=allowed")
            && l.contains("account=\"jdoe\"")
            && l.contains("rule=")
            && l.contains("reason=")),
        "no allowed decision line for John.Doe@Company.com → jdoe:\n{log}"
    );
    let bob = env.decision_lines("bob");
    assert!(
        bob.iter().any(|l| l.contains("verdict=denied")
            && l.contains("account=\"bob\"")
            && l.contains("rstudio-users")),
        "bob's denial must be logged with the group it lacks:\n{log}"
    );
    // a name carrying a newline cannot forge a second log line
    let forged = "ghost\nverdict=allowed name=\"alice\"";
    env.assert_pam(SVC, forged, &["acct_mgmt"], &[USER_UNKNOWN]);
    let log = env.daemon_log();
    assert!(
        !log.lines().any(|l| l.starts_with("verdict=allowed")),
        "a newline in a name split a log line:\n{log}"
    );
    let ghost = env.decision_lines("ghost");
    assert!(
        ghost.iter().any(|l| l.contains("verdict=user-unknown")),
        "ghost's refusal must be logged:\n{log}"
    );
}

#[test]
fn a_password_typed_into_the_stack_never_reaches_the_log() {
    // verify=proxy makes the module read the password and send it to the daemon (the proxy
    // backend is not configured here, so the answer is a refusal); whatever the verdict, the
    // daemon's log must not contain the secret.
    let env = Env::new("no-secret");
    env.add_service("proxy", "verify=proxy", false);
    let run = env.pam_with_stdin(
        "proxy",
        "alice",
        &["authenticate"],
        Some(b"hunter2-SECRET\n"),
    );
    assert_ne!(
        run.verdicts(),
        vec![AUTH_OK],
        "an unsigned proxy login must not pass"
    );
    let _ = env.wait_for_log(0, std::time::Duration::from_secs(2), |l| {
        l.contains("verdict=") && l.contains("name=\"alice\"")
    });
    let log = env.daemon_log();
    assert!(
        !log.contains("hunter2"),
        "the credential leaked into the log:\n{log}"
    );
}

#[test]
fn socket_from_accountmap_socket_when_no_option_is_given() {
    let env = Env::new("socket-env");
    env.add_service_text(
        "no-socket-option",
        &format!(
            "auth requisite {m}\naccount required {m}\n",
            m = pam_module().display()
        ),
    );
    let mut cmd =
        env.pamtester_command("no-socket-option", "alice", &["authenticate", "acct_mgmt"]);
    cmd.env("ACCOUNTMAP_SOCKET", &env.socket);
    let run = PamRun {
        out: run_bounded_pam(&mut cmd, None, COMMAND_LIMIT),
    };
    assert_eq!(run.verdicts(), vec![AUTH_OK, ACCT_OK], "{}", run.out.all());
}

/// A required group whose entry is larger than the daemon's first lookup buffer (1 KiB): the
/// daemon must grow the buffer and retry, whichever way the NSS layer reports "too small"
/// (glibc returns ERANGE; nss_wrapper returns -1 with ERANGE in errno). Before that was
/// handled, every member of such a group got PAM_AUTHINFO_UNAVAIL.
#[test]
fn members_of_a_group_with_hundreds_of_members_sign_in() {
    let env = Env::builder("large-group")
        .world(|w| {
            let group = w.group_mut("rstudio-users");
            for i in 0..300 {
                group
                    .members
                    .push(format!("member-with-a-long-name-{i:04}"));
            }
        })
        .build();
    let groups = std::fs::read_to_string(&env.group_path).unwrap();
    assert!(
        groups.len() > 8 * 1024,
        "the group entry must exceed the first buffers"
    );
    env.assert_pam(SVC, "alice", &["authenticate", "acct_mgmt"], SIGNED_IN);
    env.assert_pam(SVC, "bob", &["authenticate"], &[AUTH_ERR]);
}
