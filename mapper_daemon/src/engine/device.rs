//! `verify=device` (console sign-ins with the OAuth device flow): the PAM module asks the
//! daemon to start a device authorization, shows the user the code, then polls.

use super::{refusal, Check, Engine, Peer, Subject};
use crate::backends::oidc::DevicePoll;
use accountmap_wire::{Credential, Response, Verdict, Verify};

impl Engine {
    /// `verify=device`, step 1: identity and policy first (nobody is sent to the provider
    /// for an account that would be refused anyway), then a device authorization.
    pub(super) fn device_start(&self, peer: &Peer, service: &str, user: &str) -> Response {
        let subject = Subject {
            service,
            what: "device-start",
            name: user,
        };
        let mut decision = self.decide(peer, user, None);
        if decision.verdict == Verdict::Allowed {
            let started = match &self.oidc {
                None => Err((
                    Verdict::Unavailable,
                    "verify=device, but the configuration has no [oidc] section".to_string(),
                )),
                Some(oidc) => oidc
                    .device_start(user, &decision.account, peer.uid)
                    .map_err(|r| (r.verdict(), r.to_string())),
            };
            match started {
                Ok(s) => {
                    tracing::info!(
                        peer = %peer,
                        service,
                        name = user,
                        account = decision.account.as_str(),
                        verification_uri = s.verification_uri.as_str(),
                        expires_in = %format_args!("{}s", s.expires_in),
                        interval = %format_args!("{}s", s.interval),
                        "device authorization started"
                    );
                    return Response::DeviceStarted {
                        session: s.session,
                        verification_uri: s.verification_uri,
                        user_code: s.user_code,
                        expires_in: s.expires_in,
                        interval: s.interval,
                    };
                }
                Err((verdict, reason)) => {
                    decision.verdict = verdict;
                    decision.reason = reason;
                }
            }
        }
        self.log_decision(peer, &subject, &decision);
        Response::Decision(decision)
    }

    /// `verify=device`, step 2: one poll; once the provider hands out the ID token, the
    /// decision is the one `verify=oidc` makes with that token (identity, policy, the token's
    /// checks, and its email mapping to this very account).
    pub(super) fn device_poll(
        &self,
        peer: &Peer,
        service: &str,
        user: &str,
        session: &str,
    ) -> Response {
        let subject = Subject {
            service,
            what: "auth",
            name: user,
        };
        let Some(oidc) = &self.oidc else {
            let d = refusal(
                Verdict::Unavailable,
                "verify=device, but the configuration has no [oidc] section".into(),
            );
            self.log_decision(peer, &subject, &d);
            return Response::Decision(d);
        };
        let decision = match oidc.device_poll(session, user, peer.uid) {
            Ok(DevicePoll::Pending(interval)) => return Response::DevicePending { interval },
            Ok(DevicePoll::IdToken(token)) => {
                let token = Credential::new(token.into_bytes());
                let check = Check {
                    method: Verify::Oidc,
                    credential: &token,
                    braked_from: None,
                };
                let mut d = self.decide(peer, user, Some(check));
                if d.verdict == Verdict::Allowed {
                    d.reason = format!("{} (device authorization)", d.reason);
                }
                d
            }
            Err(r) => refusal(r.verdict(), r.to_string()),
        };
        self.log_decision(peer, &subject, &decision);
        Response::Decision(decision)
    }
}
