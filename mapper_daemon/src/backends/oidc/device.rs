//! `verify=device`: the OAuth 2.0 device authorization grant (RFC 8628). The daemon asks the
//! provider for a device code, the PAM module shows the user code and polls; the ID token the
//! provider hands out at the end is verified like any other.

use super::http::lock;
use super::jwt::{from_object, or_absent};
use super::{OidcBackend, Refusal};
use crate::log;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Device authorizations in progress at most; more are refused as Unavailable.
pub const MAX_DEVICE_SESSIONS: usize = 1024;
/// Device authorizations in progress at most for one local account (whoever asks): a console
/// sign-in needs one, a few retries a few more. Keeps one account's pending sessions, or an
/// attacker's through sshd, from filling [`MAX_DEVICE_SESSIONS`] for everyone.
pub const MAX_DEVICE_SESSIONS_PER_ACCOUNT: usize = 4;
/// Device authorizations in progress at most started by one non-root peer uid (root's are
/// the PAM services signing everyone in, bounded per account instead).
pub const MAX_DEVICE_SESSIONS_PER_PEER: usize = 4;
/// The longest a device authorization is waited for, whatever the provider says.
pub const MAX_DEVICE_LIFETIME: Duration = Duration::from_secs(1800);
/// RFC 8628 §3.2: the default polling interval, and §3.5: what `slow_down` adds.
const DEFAULT_INTERVAL: u64 = 5;
const SLOW_DOWN_STEP: u64 = 5;
const MAX_INTERVAL: u64 = 60;

/// One device authorization. The device code is the provider's secret for this sign-in: it
/// stays in the daemon, bound to the peer and the user that started it.
pub(super) struct DeviceSession {
    device_code: String,
    user: String,
    /// The local account `user` resolved to, which [`MAX_DEVICE_SESSIONS_PER_ACCOUNT`] counts.
    account: String,
    peer_uid: u32,
    expires: Instant,
    interval: Duration,
    next_poll: Instant,
}

/// What the PAM module shows, and the session it polls with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceStart {
    pub session: String,
    pub verification_uri: String,
    pub user_code: String,
    pub expires_in: u32,
    pub interval: u32,
}

/// The outcome of one poll.
#[derive(Debug)]
pub enum DevicePoll {
    /// Not approved yet: ask again in this many seconds.
    Pending(u32),
    /// Approved: the ID token, to be verified like any other.
    IdToken(String),
}

/// The device authorization endpoint's answer (RFC 8628 §3.2), or an error answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DeviceAuthorization {
    #[serde(deserialize_with = "or_absent")]
    pub(super) device_code: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    pub(super) user_code: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    pub(super) verification_uri: Option<String>,
    /// Google's name for `verification_uri`.
    #[serde(deserialize_with = "or_absent")]
    pub(super) verification_url: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    pub(super) expires_in: Option<u64>,
    #[serde(deserialize_with = "or_absent")]
    pub(super) interval: Option<u64>,
    #[serde(flatten)]
    pub(super) oauth: OAuthError,
}

/// The token endpoint's answer to a device code: the tokens, or an error answer (RFC 8628
/// §3.5: `authorization_pending`, `slow_down`, `access_denied`, `expired_token`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TokenAnswer {
    #[serde(deserialize_with = "or_absent")]
    pub(super) id_token: Option<String>,
    #[serde(flatten)]
    pub(super) oauth: OAuthError,
}

/// An OAuth error answer (RFC 6749 §5.2).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct OAuthError {
    #[serde(deserialize_with = "or_absent")]
    pub(super) error: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    pub(super) error_description: Option<String>,
}

impl OAuthError {
    /// `error` and `error_description`, for the log.
    pub(super) fn describe(&self) -> String {
        let s = |v: &Option<String>| v.as_deref().map(|s| printable(s, 200));
        match (s(&self.error), s(&self.error_description)) {
            (Some(e), Some(d)) => format!("{e} ({d})"),
            (Some(e), None) => e,
            _ => "no OAuth error in the answer".into(),
        }
    }
}

fn printable(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// Whether one more device authorization may start for `account` on behalf of `peer_uid`,
/// given the sessions in progress (expired ones dropped first): the global cap, then the
/// per-account and per-peer caps, each with a reason that names it.
pub(super) fn may_start(
    devices: &mut HashMap<String, DeviceSession>,
    account: &str,
    peer_uid: u32,
    now: Instant,
) -> Result<(), Refusal> {
    devices.retain(|_, d| d.expires > now);
    if devices.len() >= MAX_DEVICE_SESSIONS {
        return Err(Refusal::Unavailable(format!(
            "{MAX_DEVICE_SESSIONS} device authorizations are in progress already"
        )));
    }
    let of_account = devices.values().filter(|d| d.account == account).count();
    if of_account >= MAX_DEVICE_SESSIONS_PER_ACCOUNT {
        return Err(Refusal::Device(format!(
            "{account:?} already has {of_account} device authorizations in progress (limit {MAX_DEVICE_SESSIONS_PER_ACCOUNT}); finish or wait out one first"
        )));
    }
    if peer_uid != 0 {
        let of_peer = devices.values().filter(|d| d.peer_uid == peer_uid).count();
        if of_peer >= MAX_DEVICE_SESSIONS_PER_PEER {
            return Err(Refusal::Device(format!(
                "uid {peer_uid} already has {of_peer} device authorizations in progress (limit {MAX_DEVICE_SESSIONS_PER_PEER})"
            )));
        }
    }
    Ok(())
}

impl OidcBackend {
    /// Starts a device authorization for `user` (already resolved to `account` and allowed by
    /// policy) on behalf of the peer with uid `peer_uid`, within the caps of [`may_start`]
    /// (checked before the provider is asked, and again before the session is kept).
    pub fn device_start(
        &self,
        user: &str,
        account: &str,
        peer_uid: u32,
    ) -> Result<DeviceStart, Refusal> {
        may_start(
            &mut lock(&self.0.devices),
            account,
            peer_uid,
            Instant::now(),
        )?;
        let answer = self.run(async {
            let provider = self.provider().await?;
            let Some(url) = provider.device_authorization_endpoint.clone() else {
                return Err(Refusal::Unavailable(
                    "the provider publishes no device_authorization_endpoint (verify=device needs a provider and a client that support RFC 8628)".into(),
                ));
            };
            let (status, answer) = self
                .post_form(&url, &[("scope", "openid email")])
                .await
                .map_err(|e| Refusal::Unavailable(e.describe(&url)))?;
            let answer: DeviceAuthorization = from_object(&answer).unwrap_or_default();
            if status != 200 {
                return Err(Refusal::Unavailable(format!(
                    "{url} answered HTTP {status}: {}",
                    answer.oauth.describe()
                )));
            }
            Ok(answer)
        })?;
        let (Some(device_code), Some(user_code), Some(uri)) = (
            answer.device_code,
            answer.user_code,
            answer.verification_uri.or(answer.verification_url),
        ) else {
            return Err(Refusal::Unavailable(
                "the device authorization answer lacks device_code, user_code or verification_uri"
                    .into(),
            ));
        };
        let expires_in = answer
            .expires_in
            .unwrap_or(600)
            .min(MAX_DEVICE_LIFETIME.as_secs());
        let interval = answer
            .interval
            .unwrap_or(DEFAULT_INTERVAL)
            .clamp(1, MAX_INTERVAL);
        let mut id = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| Refusal::Unavailable("no randomness for a session id".into()))?;
        let session: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut devices = lock(&self.0.devices);
        // Again: others may have started meanwhile, while the provider was asked.
        may_start(&mut devices, account, peer_uid, now)?;
        devices.insert(
            session.clone(),
            DeviceSession {
                device_code,
                user: user.to_string(),
                account: account.to_string(),
                peer_uid,
                expires: now + Duration::from_secs(expires_in),
                interval: Duration::from_secs(interval),
                next_poll: now + Duration::from_secs(interval),
            },
        );
        Ok(DeviceStart {
            session,
            verification_uri: printable(&uri, 512),
            user_code: printable(&user_code, 64),
            expires_in: u32::try_from(expires_in).unwrap_or(u32::MAX),
            interval: u32::try_from(interval).unwrap_or(u32::MAX),
        })
    }

    /// One poll of `session` for the same user and peer that started it. The token endpoint is
    /// asked only when the interval has passed (a module polling too early gets `Pending`
    /// without a request); `slow_down` lengthens the interval by 5 s (RFC 8628 §3.5).
    pub fn device_poll(
        &self,
        session: &str,
        user: &str,
        peer_uid: u32,
    ) -> Result<DevicePoll, Refusal> {
        let now = Instant::now();
        let device_code = {
            let mut devices = lock(&self.0.devices);
            let Some(d) = devices.get(session) else {
                return Err(Refusal::Device("no such device authorization (expired, finished, or started by another process)".into()));
            };
            if d.user != user || d.peer_uid != peer_uid {
                return Err(Refusal::Device(
                    "the device authorization belongs to another user or process".into(),
                ));
            }
            if d.expires <= now {
                devices.remove(session);
                return Err(Refusal::Device(
                    "the device code expired before the user approved it".into(),
                ));
            }
            if d.next_poll > now {
                let wait = d.next_poll.saturating_duration_since(now).as_secs().max(1);
                return Ok(DevicePoll::Pending(u32::try_from(wait).unwrap_or(u32::MAX)));
            }
            d.device_code.clone()
        };
        let (status, answer) = self.run(async {
            let provider = self.provider().await?;
            let Some(url) = provider.token_endpoint.clone() else {
                return Err(Refusal::Unavailable(
                    "the provider publishes no token_endpoint".into(),
                ));
            };
            self.post_form(
                &url,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", &device_code),
                ],
            )
            .await
            .map_err(|e| Refusal::Unavailable(e.describe(&url)))
        })?;
        let answer: TokenAnswer = from_object(&answer).unwrap_or_default();
        let mut devices = lock(&self.0.devices);
        let finish = |devices: &mut HashMap<String, DeviceSession>| {
            devices.remove(session);
        };
        if status == 200 {
            finish(&mut devices);
            return match answer.id_token {
                Some(t) => Ok(DevicePoll::IdToken(t)),
                None => Err(Refusal::Device(
                    "approved, but the provider sent no ID token (the client needs the openid scope)".into(),
                )),
            };
        }
        let error = answer.oauth.error.as_deref().unwrap_or("");
        let Some(d) = devices.get_mut(session) else {
            return Err(Refusal::Device(
                "the device authorization ended meanwhile".into(),
            ));
        };
        match error {
            "authorization_pending" | "slow_down" => {
                if error == "slow_down" {
                    d.interval = (d.interval + Duration::from_secs(SLOW_DOWN_STEP))
                        .min(Duration::from_secs(MAX_INTERVAL));
                    log::notice(&format!(
                        "device authorization for {user:?}: the provider asked to slow down; polling every {} s",
                        d.interval.as_secs()
                    ));
                }
                d.next_poll = Instant::now() + d.interval;
                Ok(DevicePoll::Pending(
                    u32::try_from(d.interval.as_secs()).unwrap_or(u32::MAX),
                ))
            }
            "access_denied" => {
                finish(&mut devices);
                Err(Refusal::Device(
                    "the user denied the device authorization".into(),
                ))
            }
            "expired_token" => {
                finish(&mut devices);
                Err(Refusal::Device(
                    "the device code expired before the user approved it".into(),
                ))
            }
            _ => {
                finish(&mut devices);
                Err(Refusal::Unavailable(format!(
                    "the token endpoint answered HTTP {status}: {}",
                    answer.oauth.describe()
                )))
            }
        }
    }
}

#[cfg(test)]
mod caps {
    use super::*;
    use rstest::rstest;

    fn session(account: &str, peer_uid: u32, expires: Instant) -> DeviceSession {
        DeviceSession {
            device_code: "code".into(),
            user: account.into(),
            account: account.into(),
            peer_uid,
            expires,
            interval: Duration::from_secs(5),
            next_poll: expires,
        }
    }

    /// Sessions in progress: `(account, peer uid, count)`.
    fn table(rows: &[(&str, u32, usize)], expires: Instant) -> HashMap<String, DeviceSession> {
        let mut m = HashMap::new();
        for (account, peer, n) in rows {
            for i in 0..*n {
                m.insert(
                    format!("{account}-{peer}-{i}"),
                    session(account, *peer, expires),
                );
            }
        }
        m
    }

    #[rstest]
    #[case::first_of_a_user(&[], "alice", 1001, None)]
    #[case::three_pending(&[("alice", 1001, 3)], "alice", 1001, None)]
    #[case::account_full_as_itself(&[("alice", 1001, 4)], "alice", 1001, Some("\"alice\" already has 4"))]
    #[case::account_full_through_root(&[("alice", 0, 4)], "alice", 0, Some("\"alice\" already has 4"))]
    #[case::another_account_through_root(&[("alice", 0, 4)], "bob", 0, None)]
    #[case::root_has_no_peer_cap(&[("a", 0, 3), ("b", 0, 3), ("c", 0, 3)], "d", 0, None)]
    #[case::peer_full(&[("x1", 1001, 2), ("x2", 1001, 2)], "x3", 1001, Some("uid 1001 already has 4"))]
    #[case::another_peer(&[("x1", 1001, 2), ("x2", 1001, 2)], "bob", 1002, None)]
    #[case::global_full(&[("g", 0, MAX_DEVICE_SESSIONS)], "bob", 1002, Some("1024 device authorizations"))]
    fn caps_per_account_per_peer_and_overall(
        #[case] rows: &[(&str, u32, usize)],
        #[case] account: &str,
        #[case] peer: u32,
        #[case] refused: Option<&str>,
    ) {
        let now = Instant::now();
        let mut devices = table(rows, now + Duration::from_secs(60));
        match (may_start(&mut devices, account, peer, now), refused) {
            (Ok(()), None) => {}
            (Err(r), Some(why)) => assert!(r.to_string().contains(why), "{r}"),
            (got, want) => panic!("{account} by uid {peer}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn expired_sessions_do_not_count() {
        let now = Instant::now();
        let mut devices = table(&[("alice", 1001, 4)], now);
        assert!(may_start(&mut devices, "alice", 1001, now).is_ok());
        assert!(devices.is_empty(), "expired sessions are dropped");
    }
}
