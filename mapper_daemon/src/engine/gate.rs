//! Sign-in tickets for `accountmap-gate` (SPEC "Web gate"): the gate has signed a browser user
//! in with OIDC (an ID token) or behind a trusted proxy (a signature), and asks for a ticket to
//! sign them in to rserver's own form. The daemon checks the credential and applies the
//! policy exactly as for a PAM sign-in; only when the account is allowed does it mint a
//! one-time ticket for it ([`crate::backends::ticket`]), which `verify=ticket` then consumes.
//!
//! Only the callers `[gate] ticket_callers` names may ask (the gate's own user; root too, as
//! for every request). The gate vouches for nobody: what it sends is checked like any other
//! credential, and through the brute-force brake, with the browser's address as the source.

use super::{fail, refusal, Check, Engine, Peer, Subject};
use crate::backends::Failure;
use crate::log;
use crate::server::brake::Source;
use accountmap_wire::{Credential, Response, Verdict, Verify};
use std::time::Instant;

/// An [`accountmap_wire::Request::IssueTicket`], borrowed.
pub(super) struct TicketRequest<'a> {
    pub service: &'a str,
    pub name: &'a str,
    pub rhost: &'a str,
    pub verify: Verify,
    pub credential: &'a Credential,
}

impl Engine {
    pub(super) fn issue_ticket(&self, peer: &Peer, req: &TicketRequest<'_>) -> Response {
        let Some(gate) = &self.config.gate else {
            return self.ticket_refused(
                peer,
                "this daemon has no [gate] section: it issues no sign-in tickets",
            );
        };
        if !peer.is_root() {
            let caller = self.directory.name_of_uid(peer.uid).ok().flatten();
            if !caller.is_some_and(|name| gate.ticket_callers.contains(&name)) {
                return self.ticket_refused(
                    peer,
                    &format!(
                        "uid {} may not ask for sign-in tickets ([gate] ticket_callers names the users who may)",
                        peer.uid
                    ),
                );
            }
        }
        let subject = Subject {
            service: req.service,
            what: "ticket",
            name: req.name,
        };
        let vouched = req.verify == Verify::None && gate.unsigned_header;
        if !matches!(req.verify, Verify::Oidc | Verify::Proxy) && !vouched {
            let d = refusal(
                Verdict::BadInput,
                format!(
                    "a ticket needs a credential the daemon checks (verify=oidc or proxy; none only with [gate] mode = \"header\" and require_signature = false), not verify={}",
                    req.verify.as_str()
                ),
            );
            self.log_decision(peer, &subject, &d);
            return Response::Decision(d);
        }
        // The gate asks on a browser user's behalf, as a PAM service does for its users: the
        // rule that a local user may ask only about itself is not the gate's to pass, so the
        // pipeline runs as for a root service.
        let service = Peer { uid: 0, ..*peer };
        let source = if req.rhost.is_empty() {
            Source::Local
        } else {
            Source::RemoteHost(req.rhost.to_string())
        };
        let check = Check {
            method: req.verify,
            credential: req.credential,
            braked_from: Some(source),
        };
        // An unsigned header gate has no credential to show: the policy alone decides.
        let mut decision = self.decide(&service, req.name, (!vouched).then_some(check));
        if vouched {
            decision.reason = format!(
                "{}; vouched for by the gate's unsigned proxy header",
                decision.reason
            );
        }
        if decision.verdict != Verdict::Allowed {
            self.log_decision(peer, &subject, &decision);
            return Response::Decision(decision);
        }
        match self
            .guards
            .tickets
            .mint(&decision.account, gate.ticket_lifetime, Instant::now())
        {
            Ok(ticket) => {
                decision.reason = format!(
                    "{}; sign-in ticket issued, valid {} s",
                    decision.reason,
                    gate.ticket_lifetime.as_secs()
                );
                self.log_decision(peer, &subject, &decision);
                Response::Ticket {
                    decision: Box::new(decision),
                    ticket,
                }
            }
            Err(e) => {
                let d = fail(&decision, Failure::new(Verdict::Unavailable, e.to_string()));
                self.log_decision(peer, &subject, &d);
                Response::Decision(d)
            }
        }
    }

    fn ticket_refused(&self, peer: &Peer, why: &str) -> Response {
        log::warning(&format!("refused a sign-in ticket to {peer}: {why}"));
        Response::Error(why.to_string())
    }
}

#[cfg(test)]
mod tests;
