//! `verify=ticket`: the credential is a ticket minted for this account ([`super::TicketStore`]).

use super::TicketStore;
use crate::backends::{Backend, Claim, CredentialVerifier, Failure, Verified};
use accountmap_wire::{Verdict, Verify};
use std::sync::Arc;
use std::time::Instant;

/// The `verify=ticket` verifier: consumes tickets from the daemon's store.
pub struct TicketVerifier {
    store: Arc<TicketStore>,
}

impl TicketVerifier {
    pub fn new(store: Arc<TicketStore>) -> TicketVerifier {
        TicketVerifier { store }
    }
}

impl Backend for TicketVerifier {
    fn status(&self) -> Vec<(String, String)> {
        vec![(
            "sign-in tickets".into(),
            format!("{} live", self.store.len()),
        )]
    }
}

impl CredentialVerifier for TicketVerifier {
    fn method(&self) -> Verify {
        Verify::Ticket
    }

    fn verify(&self, claim: &Claim<'_>) -> Result<Verified, Failure> {
        self.store
            .consume(
                claim.credential.expose(),
                &claim.account.name,
                Instant::now(),
            )
            .map(|()| Verified {
                note: Some("with a sign-in ticket".into()),
                entry: None,
            })
            .map_err(|refused| Failure::new(Verdict::AuthFailed, refused.to_string()))
    }
}
