use super::*;
use crate::identity::resolve::Rule;
use rstest::rstest;

fn account(name: &str, uid: u32, groups: &[&str]) -> Account {
    Account {
        name: name.into(),
        uid,
        gid: uid,
        gecos: String::new(),
        dir: format!("/home/{name}"),
        shell: "/bin/bash".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// `input` as typed, mapped to `account` (an alias exactly when the two differ).
fn mapped(input: &str, account: &str) -> Mapped {
    Mapped {
        input: input.into(),
        display: None,
        normalized: input.to_lowercase(),
        account: account.into(),
        rule: if input == account {
            Rule::Identity
        } else {
            Rule::AccountsFile { line: 1 }
        },
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn alias(alias: &str, account: &str, uid: u32) -> Refusal {
    Refusal::AliasToPrivileged {
        alias: alias.into(),
        account: account.into(),
        uid,
        minimum: 1000,
    }
}

fn below(account: &str, uid: u32) -> Refusal {
    Refusal::UidBelowMinimum {
        account: account.into(),
        uid,
        minimum: 1000,
    }
}

fn not_in(account: &str, required: &[&str]) -> Refusal {
    Refusal::NotInRequiredGroup {
        account: account.into(),
        required: strings(required),
    }
}

fn denied(name: &str) -> Refusal {
    Refusal::DeniedUser { name: name.into() }
}

const STAFF: &[&str] = &["rstudio-users", "staff"];

#[rstest]
#[case::allowed("jdoe", "jdoe", 1001, &["jdoe", "staff"], STAFF, &[], Ok(()))]
#[case::allowed_at_minimum("jdoe", "jdoe", 1000, &["jdoe", "staff"], STAFF, &[], Ok(()))]
#[case::alias_allowed("John.Doe@Company.com", "jdoe", 1001, &["jdoe", "staff"], STAFF, &[], Ok(()))]
#[case::primary_group("jdoe", "jdoe", 1001, &["rstudio-users"], STAFF, &[], Ok(()))]
#[case::supplementary_group("jdoe", "jdoe", 1001, &["jdoe", "audio", "staff"], STAFF, &[], Ok(()))]
#[case::no_required_groups("jdoe", "jdoe", 1001, &[], &[], &[], Ok(()))]
#[case::no_group("jdoe", "jdoe", 1001, &["jdoe", "audio"], STAFF, &[], Err(not_in("jdoe", STAFF)))]
#[case::no_groups_at_all("jdoe", "jdoe", 1001, &[], STAFF, &[], Err(not_in("jdoe", STAFF)))]
#[case::group_case_sensitive("jdoe", "jdoe", 1001, &["Staff"], STAFF, &[], Err(not_in("jdoe", STAFF)))]
#[case::below_minimum("svc", "svc", 999, &["staff"], STAFF, &[], Err(below("svc", 999)))]
#[case::root("root", "root", 0, &["root", "staff"], &[], &[], Err(below("root", 0)))]
#[case::alias_to_root("admin@x.com", "root", 0, &["root"], &[], &[], Err(alias("admin@x.com", "root", 0)))]
#[case::root_upper_case("ROOT", "root", 0, &["root"], &[], &[], Err(alias("ROOT", "root", 0)))]
#[case::alias_to_low_uid("svc@x.com", "svc", 999, &["staff"], STAFF, &[], Err(alias("svc@x.com", "svc", 999)))]
#[case::alias_rule_before_denied("admin@x.com", "root", 0, &[], &[], &["root"], Err(alias("admin@x.com", "root", 0)))]
#[case::denied_by_account("jdoe", "jdoe", 1001, &["staff"], STAFF, &["ann", "jdoe"], Err(denied("jdoe")))]
#[case::denied_account_via_alias("John.Doe@Company.com", "jdoe", 1001, &["staff"], STAFF, &["jdoe"], Err(denied("jdoe")))]
#[case::denied_by_input("John.Doe@Company.com", "jdoe", 1001, &["staff"], STAFF, &["john.doe@company.com"], Err(denied("john.doe@company.com")))]
#[case::denied_input_any_case("john.doe@company.com", "jdoe", 1001, &["staff"], STAFF, &["John.Doe@Company.com"], Err(denied("John.Doe@Company.com")))]
#[case::denied_before_uid("svc", "svc", 999, &[], &[], &["svc"], Err(denied("svc")))]
#[case::denied_before_groups("jdoe", "jdoe", 1001, &[], STAFF, &["jdoe"], Err(denied("jdoe")))]
#[case::uid_before_groups("svc", "svc", 999, &[], STAFF, &[], Err(below("svc", 999)))]
#[case::denied_other("jdoe", "jdoe", 1001, &["staff"], STAFF, &["jdoe2", "jdo"], Ok(()))]
fn access_is_checked(
    #[case] input: &str,
    #[case] name: &str,
    #[case] uid: u32,
    #[case] groups: &[&str],
    #[case] required: &[&str],
    #[case] deny: &[&str],
    #[case] want: Result<(), Refusal>,
) {
    let required = strings(required);
    let deny = strings(deny);
    let rules = AccessRules {
        minimum_uid: 1000,
        required_groups: &required,
        denied_users: &deny,
    };
    assert_eq!(
        check(&mapped(input, name), &account(name, uid, groups), &rules),
        want
    );
}

#[test]
fn root_is_refused_even_with_minimum_zero() {
    let rules = AccessRules {
        minimum_uid: 0,
        required_groups: &[],
        denied_users: &[],
    };
    let root = account("root", 0, &["root"]);
    assert_eq!(
        check(&mapped("root", "root"), &root, &rules),
        Err(Refusal::UidBelowMinimum {
            account: "root".into(),
            uid: 0,
            minimum: 0
        })
    );
    assert!(alias_allowed(&mapped("admin", "root"), &root, 0).is_err());
    let daemon = account("daemon", 1, &["daemon"]);
    assert_eq!(check(&mapped("daemon", "daemon"), &daemon, &rules), Ok(()));
}

#[rstest]
#[case::not_an_alias("svc", "svc", 999, Ok(()))]
#[case::alias_regular("svc@x.com", "jdoe", 1000, Ok(()))]
#[case::alias_low("svc@x.com", "svc", 999, Err(alias("svc@x.com", "svc", 999)))]
#[case::alias_root("admin", "root", 0, Err(alias("admin", "root", 0)))]
#[case::local_root("root", "root", 0, Ok(()))]
fn aliases_never_reach_privileged_accounts(
    #[case] input: &str,
    #[case] name: &str,
    #[case] uid: u32,
    #[case] want: Result<(), Refusal>,
) {
    assert_eq!(
        alias_allowed(&mapped(input, name), &account(name, uid, &[]), 1000),
        want
    );
}

#[rstest]
#[case(below("jdoe", 999), "uid 999 of jdoe is below the minimum uid 1000")]
#[case(
    below("root", 0),
    "root has uid 0, which never signs in through accountmap"
)]
#[case(
    not_in("jdoe", STAFF),
    "jdoe is in none of the required groups: rstudio-users, staff"
)]
#[case(denied("jdoe"), "jdoe is listed in access.denied_users")]
#[case(alias("admin@x.com", "root", 0), "alias admin@x.com resolves to root (uid 0); an alias never maps to uid 0 or below the minimum uid 1000")]
fn refusals_read_as_one_line(#[case] refusal: Refusal, #[case] want: &str) {
    assert_eq!(refusal.to_string(), want);
}
