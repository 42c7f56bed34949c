//! SPEC's access policy (and the alias rule of identity-resolution step 7) as pure functions of
//! a mapped name, the account the system reported for it, and the `[access]` settings.
//!
//! Both PAM phases run [`check`]; the NSS service runs only [`alias_allowed`], since who may
//! sign in is not its question but which account an alias may stand for is.

use crate::resolve::Mapped;
use crate::system::Account;
use std::fmt;

/// The `[access]` settings, borrowed from the config in force.
#[derive(Clone, Copy, Debug)]
pub struct AccessRules<'a> {
    /// Already resolved: `"auto"` is turned into a number by the caller
    /// ([`crate::system::auto_minimum_uid`]).
    pub minimum_uid: u32,
    /// Empty means no restriction.
    pub required_groups: &'a [String],
    pub denied_users: &'a [String],
}

/// Why a sign-in is refused. Every variant carries what an administrator needs to see in the
/// log; none of it is ever shown to the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An alias (a name other than the account's own) resolves to uid 0 or below the minimum.
    AliasToPrivileged {
        alias: String,
        account: String,
        uid: u32,
        minimum: u32,
    },
    UidBelowMinimum {
        account: String,
        uid: u32,
        minimum: u32,
    },
    NotInRequiredGroup {
        account: String,
        required: Vec<String>,
    },
    /// `name` is the `access.denied_users` entry that matched.
    DeniedUser { name: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::AliasToPrivileged {
                alias,
                account,
                uid,
                minimum,
            } => write!(
                f,
                "alias {alias} resolves to {account} (uid {uid}); an alias never maps to uid 0 or below the minimum uid {minimum}"
            ),
            Refusal::UidBelowMinimum {
                account, uid: 0, ..
            } => write!(
                f,
                "{account} has uid 0, which never signs in through accountmap"
            ),
            Refusal::UidBelowMinimum {
                account,
                uid,
                minimum,
            } => write!(
                f,
                "uid {uid} of {account} is below the minimum uid {minimum}"
            ),
            Refusal::NotInRequiredGroup { account, required } => write!(
                f,
                "{account} is in none of the required groups: {}",
                required.join(", ")
            ),
            Refusal::DeniedUser { name } => write!(f, "{name} is listed in access.denied_users"),
        }
    }
}

impl std::error::Error for Refusal {}

/// Whether `uid` may sign in at all under `minimum`. Root never signs in through this module,
/// whatever `minimum_uid` says (even 0): it matches RStudio, which refuses any uid below
/// `auth-minimum-user-id`, and keeps a mapping mistake from ever handing out uid 0.
fn is_privileged(uid: u32, minimum: u32) -> bool {
    uid == 0 || uid < minimum
}

/// Identity-resolution step 7: an alias never resolves to uid 0 or to an account below the
/// minimum uid, so that no mapping rule, accounts-file line or letter case (`ROOT`) can become
/// a way into a system account.
pub fn alias_allowed(mapped: &Mapped, account: &Account, minimum_uid: u32) -> Result<(), Refusal> {
    if mapped.is_alias() && is_privileged(account.uid, minimum_uid) {
        return Err(Refusal::AliasToPrivileged {
            alias: mapped.input.clone(),
            account: account.name.clone(),
            uid: account.uid,
            minimum: minimum_uid,
        });
    }
    Ok(())
}

/// SPEC's access policy for `mapped`, which resolved to `account`. Checks run in a fixed order
/// so that the logged reason is the most specific one: the alias rule, `denied_users`, the
/// minimum uid, then `required_groups`.
pub fn check(mapped: &Mapped, account: &Account, rules: &AccessRules) -> Result<(), Refusal> {
    alias_allowed(mapped, account, rules.minimum_uid)?;

    if let Some(entry) = denied_entry(mapped, account, rules.denied_users) {
        return Err(Refusal::DeniedUser {
            name: entry.clone(),
        });
    }

    if is_privileged(account.uid, rules.minimum_uid) {
        return Err(Refusal::UidBelowMinimum {
            account: account.name.clone(),
            uid: account.uid,
            minimum: rules.minimum_uid,
        });
    }

    // `groups` holds the primary group too, as getgrouplist reports it and RStudio counts it.
    // Group names are compared exactly, as NSS does.
    if !rules.required_groups.is_empty()
        && !account
            .groups
            .iter()
            .any(|g| rules.required_groups.contains(g))
    {
        return Err(Refusal::NotInRequiredGroup {
            account: account.name.clone(),
            required: rules.required_groups.to_vec(),
        });
    }
    Ok(())
}

/// The `denied_users` entry that names this sign-in, if any. An entry may name the local account
/// (compared exactly, as NSS compares account names) or the identity that was typed (compared
/// case-insensitively, as the accounts file compares identities: a deny list must not be
/// sidestepped by typing `JDoe@Company.com`).
fn denied_entry<'a>(
    mapped: &Mapped,
    account: &Account,
    denied: &'a [String],
) -> Option<&'a String> {
    let identity = mapped.normalized.to_lowercase();
    denied.iter().find(|entry| {
        **entry == account.name || **entry == mapped.account || entry.to_lowercase() == identity
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::Rule;
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
}
