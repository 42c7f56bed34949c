//! The Samba AD DC harness (`accountmap_tests::samba`, issue 15) against itself and against
//! today's daemon: every user of the test domain has the state the module documentation says
//! (read back with `ldapsearch` over LDAPS as the service account, CA checked), a sign-in by
//! password through accountmapd works, and Samba's self-generated certificate has no
//! subjectAltName.
//!
//! Samba listens on the fixed ports 389/636: the tests here take turns (the harness holds a
//! lock file for the life of each `SambaDc`), so they run one after the other whatever the
//! test threads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::samba::*;
use accountmap_tests::*;
use std::process::Command;
use std::time::Instant;

fn report(what: &str, dc: &SambaDc, total: Instant) {
    println!(
        "{what}: waited {:?} for the port lock, provision {:?}, users and groups {:?}, samba start {:?}, {:?} in all",
        dc.lock_wait,
        dc.provision_time,
        dc.populate_time,
        dc.start_time,
        total.elapsed()
    );
}

fn one(dc: &SambaDc, user: &AdUser, attr: &str) -> String {
    let values = dc.attribute(&user.dn(), attr);
    assert_eq!(values.len(), 1, "{} {attr}: {values:?}", user.name);
    values[0].clone()
}

#[test]
fn domain_states_and_a_password_sign_in() {
    let total = Instant::now();
    let dc = SambaDc::start("smoke");
    report("SambaDc::start", &dc, total);

    // every user exists, found by sAMAccountName under CN=Users
    for u in AD_USERS {
        let text = dc.search(USERS_DN, &format!("(sAMAccountName={})", u.name), &["dn"]);
        assert!(
            text.contains(&format!("dn: {}", u.dn())),
            "{}: {text}",
            u.name
        );
    }
    assert_eq!(one(&dc, &ADALICE, "mail"), ADALICE_MAIL);
    assert_eq!(one(&dc, &ADALICE, "userPrincipalName"), ADALICE_UPN);

    let uac = |u: &AdUser| one(&dc, u, "userAccountControl").parse::<u32>().unwrap();
    let computed = |u: &AdUser| {
        one(&dc, u, "msDS-User-Account-Control-Computed")
            .parse::<u32>()
            .unwrap()
    };
    assert_eq!(uac(&ADALICE) & 0x2, 0);
    assert_eq!(computed(&ADALICE), 0);
    assert_ne!(uac(&ADDISABLED) & 0x2, 0, "ACCOUNTDISABLE");
    let expires: u64 = one(&dc, &ADEXPIRED, "accountExpires").parse().unwrap();
    // now as a FILETIME: 100 ns since 1601-01-01
    let now = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 11_644_473_600)
        * 10_000_000;
    assert!(
        expires > 0 && expires < now,
        "accountExpires {expires} not past"
    );
    assert_ne!(computed(&ADLOCKED) & 0x10, 0, "UF_LOCKOUT");
    assert_eq!(one(&dc, &ADMUSTCHANGE, "pwdLastSet"), "0");
    assert_ne!(
        computed(&ADMUSTCHANGE) & 0x80_0000,
        0,
        "UF_PASSWORD_EXPIRED"
    );
    assert_eq!(
        one(&dc, &ADPRIMARY, "primaryGroupID"),
        dc.primary_rid.to_string()
    );
    assert_eq!(one(&dc, &ADALICE, "primaryGroupID"), "513");
    // AD does not list a user in the member attribute of its primary group
    assert!(dc.attribute(RSTUDIO_AD_PRIMARY_DN, "member").is_empty());
    assert!(!dc
        .attribute(DOMAIN_USERS_DN, "member")
        .contains(&ADALICE.dn()));
    // ...and lists adprimary in Domain Users', its primary group before
    assert!(dc
        .attribute(DOMAIN_USERS_DN, "member")
        .contains(&ADPRIMARY.dn()));
    let direct = dc.attribute(RSTUDIO_AD_DN, "member");
    assert!(direct.contains(&ADALICE.dn()), "{direct:?}");
    assert!(direct.contains(&AD_TEAM_DN.to_string()), "{direct:?}");
    assert!(!direct.contains(&ADNESTED.dn()), "{direct:?}");
    assert!(!direct.contains(&ADBOB.dn()), "{direct:?}");
    // the in-chain rule finds the nested membership
    let chain = dc.search(
        USERS_DN,
        &format!("(member:1.2.840.113556.1.4.1941:={})", ADNESTED.dn()),
        &["dn"],
    );
    assert!(chain.contains(&format!("dn: {RSTUDIO_AD_DN}")), "{chain}");
    assert!(chain.contains(&format!("dn: {AD_TEAM_DN}")), "{chain}");

    // what binds with the right password answer (result 49, AD's reason in the text)
    for (user, data) in [
        (&ADDISABLED, "data 533"),
        (&ADEXPIRED, "data 701"),
        (&ADLOCKED, "data 775"),
        (&ADMUSTCHANGE, "data 773"),
    ] {
        let out = dc.bind(&user.dn(), user.password);
        assert!(
            out.all().contains("Invalid credentials (49)") && out.all().contains(data),
            "{}: {}",
            user.name,
            out.all()
        );
        println!("bind as {}: {}", user.name, out.stderr.trim());
    }
    let out = dc.bind(&ADALICE.dn(), ADALICE.password);
    assert!(!out.all().contains("ldap_bind"), "{}", out.all());
    // a simple bind on plain LDAP, without StartTLS, is refused
    let out = run_bounded(
        Command::new(LDAPWHOAMI).args([
            "-x",
            "-H",
            &dc.ldap_url(),
            "-D",
            &ADALICE.dn(),
            "-w",
            ADALICE.password,
        ]),
        None,
        COMMAND_LIMIT,
    );
    assert!(out.all().contains("ldap_bind"), "{}", out.all());
    println!("plain bind on 389: {}", out.stderr.trim());

    // a change mid-test, as the domain Administrator
    dc.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: description\ndescription: changed mid-test\n",
        ADBOB.dn()
    ));
    assert_eq!(one(&dc, &ADBOB, "description"), "changed mid-test");

    // today's daemon: adalice (direct member of rstudio-ad) signs in over LDAPS
    let env = samba_env("samba-smoke", &dc, &AdSection::default(), &[RSTUDIO_AD]);
    let (code, v, out) = env.ctl_json(&["resolve", ADALICE.name]);
    assert_eq!(code, 0, "{}", out.all());
    println!("resolve adalice: {v}");
    let run = env.assert_sign_in(SVC_AD, ADALICE.name, ADALICE.password, SIGNED_IN);
    run.assert_user_after("auth", ADALICE.name);
    println!("adalice signed in over LDAPS in {:?}", run.elapsed());
    env.assert_sign_in(SVC_AD, ADALICE.name, "not-her-password", &[AUTH_ERR]);
    // adbob is in no rstudio group (a refusal looks like a wrong password)
    env.assert_sign_in(SVC_AD, ADBOB.name, ADBOB.password, &[AUTH_ERR]);
    drop(env);

    // StartTLS on 389, and a whitelist entry by DN (the direct member passes)
    let section = AdSection {
        ldaps: false,
        whitelist: vec![RSTUDIO_AD_DN.to_string()],
        ..AdSection::default()
    };
    let env = samba_env("samba-starttls", &dc, &section, &[RSTUDIO_AD]);
    let run = env.assert_sign_in(SVC_AD, ADALICE.name, ADALICE.password, SIGNED_IN);
    println!("adalice signed in over StartTLS in {:?}", run.elapsed());
}

#[test]
fn self_signed_certificate_has_no_subject_alt_name() {
    let total = Instant::now();
    let dc = SambaDc::start_self_signed("selfsigned");
    report("SambaDc::start_self_signed", &dc, total);
    let out = run_bounded(
        Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-subject",
                "-ext",
                "subjectAltName",
                "-in",
            ])
            .arg(dc.cert()),
        None,
        COMMAND_LIMIT,
    );
    assert_eq!(out.code, 0, "{}", out.all());
    println!("Samba's own certificate: {}", out.all());
    assert!(
        out.stdout.contains("No extensions") || !out.all().contains("Subject Alternative Name"),
        "{}",
        out.all()
    );
    assert!(dc.ca().is_file());
    // still a working directory (certificate not checked: the CN does not name 127.0.0.1)
    let text = dc.search(USERS_DN, "(sAMAccountName=adalice)", &["dn"]);
    assert!(text.contains(&ADALICE.dn()), "{text}");
}
