//! The `verify=oidc` [`CredentialVerifier`]: the token is verified, then its email goes
//! through the mapping pipeline like any name and must land on the account PAM_USER resolved
//! to, so a token only ever signs in the account it maps to.

use super::{OidcBackend, Refusal};
use crate::backends::{Backend, Claim, CredentialVerifier, Failure, Verified};
use crate::identity::resolve::MapError;
use accountmap_wire::{Verdict, Verify};

impl Backend for OidcBackend {
    fn status(&self) -> Vec<(String, String)> {
        OidcBackend::status(self)
    }
}

impl CredentialVerifier for OidcBackend {
    fn method(&self) -> Verify {
        Verify::Oidc
    }

    fn verify(&self, claim: &Claim<'_>) -> Result<Verified, Failure> {
        let account = &claim.account.name;
        let id = OidcBackend::verify(self, claim.credential.expose())
            .map_err(|r| Failure::new(r.verdict(), r.to_string()))?;
        let who = format!("{} of {:?} (sub {:?})", id.via, id.email, id.sub);
        match (claim.map)(&id.email) {
            Ok(mapped) if &mapped.account == account => Ok(Verified::default()),
            Ok(mapped) => Err(Failure::new(
                Verdict::AuthFailed,
                format!(
                    "token for another account: the {who} maps to {:?} by {}, not to {account:?}",
                    mapped.account, mapped.rule
                ),
            )),
            Err(MapError::DirectoryUnavailable(e)) => Err(Failure::new(Verdict::Unavailable, e)),
            Err(e) => Err(Failure::new(
                Verdict::AuthFailed,
                format!("token for another account: the {who} maps to no account ({e})"),
            )),
        }
    }
}

impl Refusal {
    /// The verdict of a refused token: an unreachable provider is unavailable, an email the
    /// allow-lists refuse is a policy refusal, anything else a failed authentication.
    pub fn verdict(&self) -> Verdict {
        match self {
            Refusal::Unavailable(_) => Verdict::Unavailable,
            Refusal::NotAllowed(_) => Verdict::PolicyDenied,
            _ => Verdict::AuthFailed,
        }
    }
}
