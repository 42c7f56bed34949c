//! The LDAP backend as the engine sees it: an [`IdentitySource`] for step 5 of the pipeline
//! and the `verify=ldap` [`CredentialVerifier`].

use super::{LdapBackend, LdapIdentity, PasswordCheck, SingleBind};
use crate::backends::{Backend, Claim, CredentialVerifier, Failure, IdentitySource, Verified};
use accountmap_wire::{Verdict, Verify};

impl Backend for LdapBackend {
    fn status(&self) -> Vec<(String, String)> {
        LdapBackend::status(self)
    }

    fn flush(&self) -> usize {
        LdapBackend::flush(self)
    }
}

impl IdentitySource for LdapBackend {
    fn find(&self, identity: &str) -> Result<Option<LdapIdentity>, String> {
        self.lookup(identity).map(|(entry, _freshness)| entry)
    }
}

impl CredentialVerifier for LdapBackend {
    fn method(&self) -> Verify {
        Verify::Ldap
    }

    /// Single bind: such a directory can be read only as the user, with the password. So when
    /// step 5 found no entry, the bind comes before the policy, and the groups read with the
    /// user's bind count towards `access.required_groups`.
    fn verify_before_policy(&self, claim: &Claim<'_>) -> Option<Result<Verified, Failure>> {
        if claim.entry.is_some() || !self.has_single_bind() {
            return None;
        }
        Some(self.bind_as(claim, None))
    }

    fn verify(&self, claim: &Claim<'_>) -> Result<Verified, Failure> {
        self.bind_as(claim, claim.entry)
    }
}

impl LdapBackend {
    /// A bind as the user's entry with the password, on a fresh connection. The entry is the
    /// one step 5 found, or else the resolved account's entry looked up by the username
    /// attribute (an account mapped by the accounts file or a rewrite rule), or else, when a
    /// section uses single bind, the account's DN built in those sections: then the identity
    /// read with the user's bind is returned.
    fn bind_as(
        &self,
        claim: &Claim<'_>,
        found: Option<&LdapIdentity>,
    ) -> Result<Verified, Failure> {
        let account = &claim.mapped.account;
        let password = claim.credential.expose();
        let entry = match found {
            Some(f) => f.clone(),
            None => match self.lookup(account) {
                Ok((Some(f), _)) => f,
                Ok((None, _)) if self.has_single_bind() => {
                    return match self.single_bind(account, password) {
                        SingleBind::Accepted(found) => Ok(Verified {
                            note: None,
                            entry: Some(found),
                        }),
                        SingleBind::Refused(why) | SingleBind::Denied(why) => Err(bind_refusal(
                            format!("single bind for {account:?} refused: {why}"),
                        )),
                        SingleBind::Unavailable(e) => Err(Failure::new(Verdict::Unavailable, e)),
                    };
                }
                Ok((None, _)) => {
                    return Err(Failure::new(
                        Verdict::AuthFailed,
                        format!("{account:?} has no entry in any LDAP directory"),
                    ))
                }
                Err(e) => return Err(Failure::new(Verdict::Unavailable, e)),
            },
        };
        if !entry.whitelisted {
            return Err(Failure::new(Verdict::PolicyDenied, entry.not_whitelisted()));
        }
        match self.check_password(&entry, password) {
            PasswordCheck::Accepted => Ok(Verified::default()),
            PasswordCheck::Refused(why) => Err(bind_refusal(format!(
                "ldap {} refused the password of {:?}: {why}",
                entry.directory, entry.dn
            ))),
            PasswordCheck::Unavailable(e) => Err(Failure::new(Verdict::Unavailable, e)),
        }
    }
}

impl LdapIdentity {
    /// The refusal of an entry that is in none of its section's `whitelisted_login_groups`.
    pub fn not_whitelisted(&self) -> String {
        format!(
            "{:?} is in none of the whitelisted_login_groups of ldap {}{}",
            self.dn,
            self.directory,
            if self.single_bind {
                " (single bind: read with the user's own bind; a group the user may not read counts as one the user is not in)"
            } else {
                ""
            }
        )
    }
}

/// A refused bind: a wrong password, unless Active Directory's diagnostic (`data 773`, …)
/// says the account is disabled, expired, locked or must change its password first, which the
/// verdict then says (PAM_AUTH_ERR all the same in the auth phase; the log tells them apart).
fn bind_refusal(reason: String) -> Failure {
    match super::state::ad_bind_refusal(&reason) {
        Some((verdict, meaning)) => Failure::new(verdict, format!("{reason}: {meaning}")),
        None => Failure::new(Verdict::AuthFailed, reason),
    }
}
