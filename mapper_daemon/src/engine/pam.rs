//! The PAM phases: a credential that cannot be right is refused before anything is looked
//! up, and credential checks go through the brute-force brake ([`crate::server::brake`]).

use super::{fail, refusal, Check, Engine, Peer, Step};
use crate::backends::system::Account;
use crate::backends::Failure;
use crate::server::brake::{Outcome, Source, Ticket};
use accountmap_wire::{Decision, PamRequest, Phase, Verdict, Verify};
use std::time::Instant;

impl Engine {
    pub(super) fn decide_pam(&self, peer: &Peer, req: &PamRequest) -> Decision {
        if req.phase == Phase::Auth && req.verify != Verify::None {
            // Unusable credentials are refused before anything is looked up, so that a
            // backend never sees an empty password (an unauthenticated LDAP bind succeeds).
            match &req.credential {
                None => {
                    return refusal(
                        Verdict::BadInput,
                        "no credential was given for verify=".to_string() + req.verify.as_str(),
                    )
                }
                Some(c) if c.expose().is_empty() => {
                    return refusal(Verdict::BadInput, "empty password".into())
                }
                Some(c) if c.expose().contains(&0) => {
                    return refusal(Verdict::BadInput, "password contains a NUL byte".into())
                }
                Some(c) if c.expose().len() > accountmap_wire::MAX_CREDENTIAL_LEN => {
                    return refusal(Verdict::BadInput, "credential too long".into())
                }
                Some(_) => {}
            }
        }
        let check = match (req.phase, req.verify, &req.credential) {
            (Phase::Auth, method, Some(credential)) if method != Verify::None => Some(Check {
                method,
                credential,
                // A ticket is 256 random bits: nothing to guess, nothing to brake.
                braked_from: (method != Verify::Ticket).then(|| source(peer, req)),
            }),
            _ => None,
        };
        self.decide(peer, &req.user, check)
    }

    /// The brute-force brake's admission of a check of `account`'s credential: a ticket to
    /// settle afterwards, or the refusal, unchecked, when the budget is spent.
    pub(super) fn admit_check(
        &self,
        decision: &Decision,
        account: &Account,
        source: Option<&Source>,
    ) -> Step<Option<Ticket>> {
        let Some(source) = source else {
            return Ok(None);
        };
        // Checks in progress may hold the budget's last tokens: wait for them as long as a
        // check itself may take, rather than refuse a right password for being concurrent.
        let wait = self.config.daemon.backend_timeout;
        match self.guards.brake.admit_within(&account.name, source, wait) {
            Ok(ticket) => Ok(Some(ticket)),
            // The same verdict as a wrong password: the guesser cannot tell.
            Err(held) => Err(fail(
                decision,
                Failure::new(Verdict::AuthFailed, held.to_string()),
            )),
        }
    }

    /// A wrong credential keeps its token spent; anything else gives it back, and a sign-in
    /// makes its source familiar.
    pub(super) fn settle_brake(&self, ticket: Ticket, decision: &Decision) {
        let outcome = match decision.verdict {
            Verdict::Allowed => Outcome::Allowed,
            Verdict::AuthFailed => Outcome::Failed,
            _ => Outcome::Inconclusive,
        };
        self.guards.brake.settle(ticket, outcome, Instant::now());
    }
}

/// Where a PAM request comes from: PAM_RHOST as a root service reports it (a non-root peer
/// could write anything there, so its uid stands instead).
fn source(peer: &Peer, req: &PamRequest) -> Source {
    if !peer.is_root() {
        Source::PeerUid(peer.uid)
    } else if req.rhost.is_empty() {
        Source::Local
    } else {
        Source::RemoteHost(req.rhost.clone())
    }
}
