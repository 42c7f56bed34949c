//! SPEC's access policy (and the alias rule of identity-resolution step 7) as pure functions of
//! a mapped name, the account the system reported for it, and the `[access]` settings.
//!
//! Both PAM phases run [`check`]; the NSS service runs only [`alias_allowed`], since who may
//! sign in is not its question but which account an alias may stand for is.

use crate::backends::system::Account;
use crate::identity::resolve::Mapped;
use std::fmt;

/// The `[access]` settings, borrowed from the config in force.
#[derive(Clone, Copy, Debug)]
pub struct AccessRules<'a> {
    /// Already resolved: `"auto"` is turned into a number by the caller
    /// ([`crate::backends::system::auto_minimum_uid`]).
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

/// Whether NSS may answer the alias `mapped` with `account`: the alias rule (step 7) and
/// `denied_users`, the refusals by name. Programs that canonicalise the typed name through NSS
/// before PAM (rserver, su) hand PAM only the local name; a `denied_users` entry naming the
/// alias would be sidestepped if NSS answered it. The minimum uid is covered by the alias rule;
/// the required groups are not checked here: PAM checks them under the local name, with the
/// same result.
pub fn alias_answerable(
    mapped: &Mapped,
    account: &Account,
    rules: &AccessRules,
) -> Result<(), Refusal> {
    alias_allowed(mapped, account, rules.minimum_uid)?;
    if let Some(entry) = denied_entry(mapped, account, rules.denied_users) {
        return Err(Refusal::DeniedUser {
            name: entry.clone(),
        });
    }
    Ok(())
}

/// SPEC's access policy for `mapped`, which resolved to `account`. Checks run in a fixed order
/// so that the logged reason is the most specific one: the alias rule, `denied_users`, the
/// minimum uid, then `required_groups`.
pub fn check(mapped: &Mapped, account: &Account, rules: &AccessRules) -> Result<(), Refusal> {
    // The refusals by name first: the same ones NSS applies.
    alias_answerable(mapped, account, rules)?;

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
mod tests;
