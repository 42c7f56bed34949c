//! The PAM phases: a credential that cannot be right is refused before anything is looked
//! up, and credential checks go through the brute-force brake ([`crate::server::brake`]).

use super::{refusal, Engine, Peer};
use crate::server::brake::{Key, WINDOW};
use accountmap_wire::{Decision, PamRequest, Phase, Verdict, Verify};
use std::time::Instant;

impl Engine {
    pub(super) fn decide_pam(&self, peer: &Peer, req: &PamRequest) -> Decision {
        if req.phase == Phase::Auth
            && matches!(req.verify, Verify::Ldap | Verify::Oidc | Verify::Proxy)
        {
            let keys = brake_keys(peer, req, &req.user.to_lowercase());
            if let Some((key, left)) = self.guards.brake.held(&keys, Instant::now()) {
                // A guess arriving while an earlier one of the same key is being braked:
                // refused unchecked, so that parallel guessing learns nothing.
                return refusal(
                    Verdict::AuthFailed,
                    format!(
                        "refused unchecked by the brute-force brake: {key} must wait {} ms",
                        left.as_millis()
                    ),
                );
            }
            let decision = self.decide_pam_unbraked(peer, req);
            return self.apply_brake(peer, req, decision);
        }
        self.decide_pam_unbraked(peer, req)
    }

    fn decide_pam_unbraked(&self, peer: &Peer, req: &PamRequest) -> Decision {
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
            (Phase::Auth, verify, Some(credential)) if verify != Verify::None => {
                Some((verify, credential))
            }
            _ => None,
        };
        self.decide(peer, &req.user, check)
    }

    /// The brute-force brake ([`crate::server::brake`]) on a credential decision: a failure is
    /// counted and, past the free ones, answered later; a success clears its account's count.
    fn apply_brake(&self, peer: &Peer, req: &PamRequest, mut decision: Decision) -> Decision {
        let brake = &self.guards.brake;
        match decision.verdict {
            Verdict::Allowed => {
                brake.succeeded(&decision.account);
                brake.succeeded(&req.user.to_lowercase());
            }
            Verdict::AuthFailed => {
                let mut keys = brake_keys(peer, req, &req.user.to_lowercase());
                if !decision.account.is_empty() && decision.account != req.user.to_lowercase() {
                    keys.push(Key::Account(decision.account.clone()));
                }
                let (delay, worst) = brake.failed(&keys, Instant::now());
                if let (false, Some((key, n))) = (delay.is_zero(), worst) {
                    decision.reason = format!(
                        "{} (answer delayed {} ms by the brute-force brake: {n} failures of {key} \
                         within {} min)",
                        decision.reason,
                        delay.as_millis(),
                        WINDOW.as_secs() / 60
                    );
                    // On this connection's own thread, a bounded number at once (see brake.rs).
                    if !brake.sleep(delay) {
                        decision.reason += " (not delayed: too many delayed answers at once; \
                                             the key is held instead)";
                    }
                }
            }
            _ => {}
        }
        decision
    }
}

/// What a failure counts against: the name as typed (lower-cased), and the remote host of a
/// root service or the uid of a non-root caller.
fn brake_keys(peer: &Peer, req: &PamRequest, typed: &str) -> Vec<Key> {
    let mut keys = vec![Key::Account(typed.to_string())];
    if peer.is_root() {
        // PAM_RHOST comes from the service (sshd); only a root one is believed.
        if !req.rhost.is_empty() {
            keys.push(Key::RemoteHost(req.rhost.clone()));
        }
    } else {
        keys.push(Key::PeerUid(peer.uid));
    }
    keys
}
