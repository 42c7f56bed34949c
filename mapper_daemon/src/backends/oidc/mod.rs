//! The OpenID Connect backend (`[oidc]`, Google by default): `verify=oidc`, where the PAM
//! password carries an ID token (a JWT) or an access token.
//!
//! - **ID tokens** are verified here, with no call to the provider but for its keys: the
//!   signature against the provider's JWKS (allowed algorithms only: RS256/384/512,
//!   PS256/384/512, ES256, ES384, EdDSA; never `none`, never HMAC, and the key type must fit
//!   the algorithm, so a public RSA key can never serve as an HMAC secret), then `iss` = the
//!   discovery document's issuer, `aud` contains `client_id` (with several audiences `azp`
//!   must be `client_id`), `exp`, `nbf` and `iat` with [`CLOCK_SKEW`].
//! - **Access tokens** (anything that is not a JWT, and JWT access tokens, `typ: at+jwt`,
//!   RFC 9068) are refused unless `accept_access_tokens = true`: userinfo accepts a token
//!   issued to any application of the provider, so it binds no client. Accepted, they are sent
//!   to the userinfo endpoint in the `Authorization` header, never in a URL.
//! - Then `email_verified` must be true and `allowed_domains` / `allowed_emails` apply with
//!   RStudio Connect's semantics ([`email_allowed`]). Mapping the email to the account is the
//!   engine's part.
//!
//! Discovery and keys: the discovery document and the JWKS are fetched on first use and
//! again when older than [`KEYS_MAX_AGE`] (the previous set stays in use, with a warning, for
//! up to [`KEYS_STALE_LIMIT`] while the provider cannot be reached), and at once when a token
//! names a key id the set lacks (a rotation) — but at most once per [`UNKNOWN_KID_INTERVAL`],
//! so a flood of tokens with made-up key ids cannot make the daemon hammer the provider.
//! Every HTTP call is bounded by `daemon.backend_timeout`, goes through rustls with the ring
//! provider (as the LDAP backend) and `ca_file` (else the system bundle) as the trust root,
//! follows no redirect and reads at most [`MAX_BODY`] bytes.
//!
//! Tokens are never logged, never cached, and never part of a refusal's text.
//!
//! Here: the facade ([`OidcBackend`]: verify, status) and [`Refusal`]. The token itself is
//! checked in `jwt`, the provider's documents are fetched and kept in `discovery`,
//! `verify=device` is `device`, and every HTTP call goes through `http`.

mod device;
mod discovery;
mod http;
mod jwt;

pub use device::{
    DevicePoll, DeviceStart, MAX_DEVICE_LIFETIME, MAX_DEVICE_SESSIONS,
    MAX_DEVICE_SESSIONS_PER_ACCOUNT, MAX_DEVICE_SESSIONS_PER_PEER,
};
pub use jwt::{
    check_claims, email_allowed, identity, parse_jwks, parse_jws, precheck_header, verify_id_token,
    Alg, Claims, Expected, Header, Identity, Jwk, Jws, NumericDate, PublicKey,
};

use crate::config::OidcConfig;
use device::DeviceSession;
use discovery::{Health, Provider};
use http::{block_on, lock};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Clock difference tolerated on `exp`, `nbf` and `iat`.
pub const CLOCK_SKEW: i64 = 60;
/// Keys and discovery document are fetched again when older than this.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// While the provider is unreachable, a key set up to this old is still used.
pub const KEYS_STALE_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// At most one fetch of the key set per this interval because of an unknown key id.
pub const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(5);
/// Discovery documents, key sets and userinfo answers are small; the bound keeps a wrong URL
/// from filling the daemon's memory.
pub const MAX_BODY: usize = 1 << 20;
/// How long `status` waits for its probe of the provider: status must answer within the
/// second that the CLI's and the test harness's readiness checks allow, LDAP probes included
/// (`ldap::PROBE_WAIT`, 500 ms). A probe still running reports on the next status.
pub const PROBE_WAIT: Duration = Duration::from_millis(300);
/// Tokens longer than this are not parsed (the wire already caps credentials at 16 KiB).
const MAX_TOKEN: usize = 16 * 1024;
/// A key set with more keys than this is cut (Google publishes 2 or 3).
const MAX_KEYS: usize = 64;
const GOOGLE_ISSUER: &str = "https://accounts.google.com";
const DISCOVERY_SUFFIX: &str = "/.well-known/openid-configuration";

// ---------------------------------------------------------------------------------------------
// Refusals

/// Why a token was not accepted. The `Display` form is the reason in the log; none contains
/// the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a JWS compact serialisation, or its parts do not decode.
    Malformed(String),
    AlgNone,
    /// HS256/384/512: a shared-secret algorithm, refused whatever the key.
    AlgHmac(String),
    AlgNotAllowed(String),
    /// The header has a `crit` list: extensions this verifier does not implement.
    CriticalHeader,
    /// No key of the provider's set has this id (after a refresh, if one was allowed).
    UnknownKey(String),
    BadSignature,
    WrongIssuer {
        found: String,
        expected: String,
    },
    WrongAudience {
        found: String,
        expected: String,
    },
    /// Several audiences and `azp` is missing or not `client_id`.
    WrongAuthorizedParty {
        found: String,
        expected: String,
    },
    Expired {
        seconds_ago: i64,
    },
    NotYetValid {
        seconds_ahead: i64,
    },
    IssuedInFuture {
        seconds_ahead: i64,
    },
    MissingClaim(&'static str),
    /// The userinfo endpoint refused the access token (HTTP status).
    UserinfoRefused(u16),
    /// The provider has no userinfo endpoint, so an access token cannot be checked.
    NoUserinfo,
    /// An access token, and `accept_access_tokens` is off.
    AccessTokensOff,
    NoEmail,
    UnverifiedEmail(String),
    /// Outside `allowed_domains` / `allowed_emails` (a policy refusal).
    NotAllowed(String),
    /// The provider could not be asked (network, TLS, timeout, HTTP 5xx, a broken document).
    Unavailable(String),
    /// A device authorization ended without a token (denied, expired, unknown session).
    Device(String),
}

impl Refusal {
    /// Whether the provider's state, not the token, is the cause.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Refusal::Unavailable(_))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed(why) => write!(f, "token refused: malformed ({why})"),
            Refusal::AlgNone => f.write_str("token refused: alg \"none\" (unsigned) is never accepted"),
            Refusal::AlgHmac(alg) => write!(
                f,
                "token refused: alg {alg:?} (HMAC) is never accepted: ID tokens must be signed with the provider's public-key algorithms"
            ),
            Refusal::AlgNotAllowed(alg) => write!(f, "token refused: alg {alg:?} is not allowed"),
            Refusal::CriticalHeader => {
                f.write_str("token refused: the header has critical extensions (crit) this verifier does not implement")
            }
            Refusal::UnknownKey(kid) => write!(
                f,
                "token refused: bad signature: signed with key id {kid:?}, which is not in the provider's key set"
            ),
            Refusal::BadSignature => f.write_str("token refused: bad signature"),
            Refusal::WrongIssuer { found, expected } => {
                write!(f, "token refused: wrong issuer {found:?} (expected {expected:?})")
            }
            Refusal::WrongAudience { found, expected } => write!(
                f,
                "token refused: wrong audience {found} (expected client_id {expected:?})"
            ),
            Refusal::WrongAuthorizedParty { found, expected } => write!(
                f,
                "token refused: wrong audience: several audiences and azp {found} is not client_id {expected:?}"
            ),
            Refusal::Expired { seconds_ago } => {
                write!(f, "token refused: expired {seconds_ago} s ago (allowed clock skew {CLOCK_SKEW} s)")
            }
            Refusal::NotYetValid { seconds_ahead } => write!(
                f,
                "token refused: not valid before {seconds_ahead} s from now (nbf; allowed clock skew {CLOCK_SKEW} s)"
            ),
            Refusal::IssuedInFuture { seconds_ahead } => write!(
                f,
                "token refused: issued {seconds_ahead} s in the future (iat; allowed clock skew {CLOCK_SKEW} s)"
            ),
            Refusal::MissingClaim(c) => write!(f, "token refused: no {c:?} claim"),
            Refusal::UserinfoRefused(status) => write!(
                f,
                "access token refused: the userinfo endpoint answered HTTP {status} (invalid, expired or revoked token)"
            ),
            Refusal::NoUserinfo => f.write_str(
                "access token refused: the provider publishes no userinfo endpoint; present an ID token",
            ),
            Refusal::AccessTokensOff => f.write_str(
                "access token refused: only ID tokens are accepted (an access token is not bound to this client: any application the user signed in to holds one); to accept access tokens at the userinfo endpoint, set accept_access_tokens = true in [oidc]",
            ),
            Refusal::NoEmail => f.write_str("token refused: no email claim (request the \"email\" scope)"),
            Refusal::UnverifiedEmail(email) => {
                write!(f, "token refused: email {email:?} is not verified (email_verified is not true)")
            }
            Refusal::NotAllowed(why) => f.write_str(why),
            Refusal::Unavailable(why) => write!(f, "OIDC provider unavailable: {why}"),
            Refusal::Device(why) => write!(f, "device authorization refused: {why}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The backend

struct Inner {
    cfg: OidcConfig,
    /// `daemon.backend_timeout`: each HTTP call, and a whole verification, however many
    /// calls it takes (discovery, keys, a refresh), so that the PAM module's deadline holds.
    timeout: Duration,
    http: reqwest::Client,
    provider: Mutex<Option<Provider>>,
    health: Mutex<Health>,
    /// One fetch at a time: concurrent sign-ins after a rotation share one round trip.
    fetching: tokio::sync::Mutex<()>,
    /// `verify=device` authorizations in progress, by session id.
    devices: Mutex<HashMap<String, DeviceSession>>,
}

/// The `[oidc]` backend. Cheap to clone (status probes run on their own task).
#[derive(Clone)]
pub struct OidcBackend(Arc<Inner>);

impl OidcBackend {
    /// `None` without an `[oidc]` section. Nothing is fetched here: the daemon starts while
    /// the provider is down.
    pub fn new(cfg: Option<&OidcConfig>, timeout: Duration) -> Result<Option<OidcBackend>, String> {
        let Some(cfg) = cfg else { return Ok(None) };
        let http = http::client(cfg, timeout)?;
        Ok(Some(OidcBackend(Arc::new(Inner {
            cfg: cfg.clone(),
            timeout,
            http,
            provider: Mutex::new(None),
            health: Mutex::new(Health::default()),
            fetching: tokio::sync::Mutex::new(()),
            devices: Mutex::new(HashMap::new()),
        }))))
    }

    pub fn config(&self) -> &OidcConfig {
        &self.0.cfg
    }

    /// Verifies `token` (an ID token or an access token) and returns the verified identity,
    /// with `allowed_domains` / `allowed_emails` applied.
    pub fn verify(&self, token: &[u8]) -> Result<Identity, Refusal> {
        let token = std::str::from_utf8(token)
            .map_err(|_| Refusal::Malformed("not UTF-8".into()))?
            .trim();
        self.run(self.verify_async(token))
    }

    /// Runs `work` to its end, or until `backend_timeout` has passed: a whole verification
    /// or device step, however many calls to the provider it takes, so that the PAM
    /// module's deadline holds.
    fn run<T>(&self, work: impl Future<Output = Result<T, Refusal>>) -> Result<T, Refusal> {
        match block_on(tokio::time::timeout(self.0.timeout, work)) {
            Ok(Ok(result)) => result,
            Ok(Err(_elapsed)) => Err(Refusal::Unavailable(format!(
                "no answer within backend_timeout ({} s)",
                self.0.timeout.as_secs()
            ))),
            Err(e) => Err(Refusal::Unavailable(e)),
        }
    }

    async fn verify_async(&self, token: &str) -> Result<Identity, Refusal> {
        let parsed = parse_jws(token);
        let id_token = matches!(&parsed, Ok(j) if !j.is_access_token());
        if !id_token && !self.0.cfg.accept_access_tokens {
            // Before the provider is asked. Something shaped like a JWT that does not parse is
            // refused as malformed, not called an access token.
            return Err(match parsed {
                Err(e) if token.split('.').count() == 3 => e,
                _ => Refusal::AccessTokensOff,
            });
        }
        let jws = parsed.ok().filter(|j| !j.is_access_token());
        if let Some(jws) = &jws {
            // What needs no key is refused before the provider is asked: an unsigned or
            // HMAC token is refused as such even while the provider is down.
            precheck_header(jws)?;
        }
        let provider = self.provider().await?;
        let id = match jws {
            Some(jws) => {
                self.verify_id(&jws, provider.clone()).await?;
                identity(&jws.claims, "ID token")?
            }
            // An opaque access token (Google's `ya29.…`), or a JWT access token.
            None => self.userinfo(&provider, token).await?,
        };
        let cfg = &self.0.cfg;
        email_allowed(
            &id,
            &provider.issuer,
            &cfg.allowed_domains,
            &cfg.allowed_emails,
        )?;
        Ok(id)
    }

    /// Status lines: the provider's reachability (probed now by fetching the discovery
    /// document, waiting at most [`PROBE_WAIT`]; the key set is left as it is, so its age
    /// means something) and the key set's age.
    pub fn status(&self) -> Vec<(String, String)> {
        let me = self.clone();
        let probed = block_on(async move {
            let task = tokio::spawn(async move {
                let url = me.0.cfg.discovery_endpoint.clone();
                let result = me
                    .get_json(&url, None)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.describe(&url));
                let mut health = lock(&me.0.health);
                health.reachable = Some(result.is_ok());
                if let Err(e) = &result {
                    health.last_error = Some(e.clone());
                }
                result
            });
            tokio::time::timeout(PROBE_WAIT, task).await
        });
        let endpoint = &self.0.cfg.discovery_endpoint;
        let health = lock(&self.0.health);
        let last = match (health.reachable, &health.last_error) {
            (Some(true), _) => "reachable".to_string(),
            (Some(false), Some(e)) => format!("unreachable: {e}"),
            _ => "not asked yet".to_string(),
        };
        let reach = match probed {
            Ok(Ok(Ok(Ok(())))) => "reachable".to_string(),
            Ok(Ok(Ok(Err(e)))) => format!("unreachable: {e}"),
            Ok(Ok(Err(_))) => "unreachable: the probe failed".to_string(),
            Ok(Err(_)) => format!(
                "no answer within {} ms (probe still running); last known: {last}",
                PROBE_WAIT.as_millis()
            ),
            Err(e) => format!("not probed: {e}"),
        };
        drop(health);
        let keys = match lock(&self.0.provider).as_ref() {
            Some(p) => format!(
                "{} keys ({}), fetched {} s ago",
                p.keys.len(),
                p.keys
                    .iter()
                    .map(|k| k.kid.clone().unwrap_or_else(|| "no kid".into()))
                    .collect::<Vec<_>>()
                    .join(", "),
                now_unix().saturating_sub(p.fetched_unix)
            ),
            None => "none fetched".to_string(),
        };
        vec![
            (format!("oidc provider {endpoint}"), reach),
            ("oidc keys".to_string(), keys),
        ]
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

mod verify;

#[cfg(test)]
mod tests;
