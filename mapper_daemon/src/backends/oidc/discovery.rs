//! The provider: its discovery document and key set, fetched on first use and again when
//! older than [`KEYS_MAX_AGE`] (a stale set serves up to [`KEYS_STALE_LIMIT`] while the
//! provider is down), at once for an unknown key id (a rotation; at most once per
//! [`UNKNOWN_KID_INTERVAL`]), and the userinfo endpoint for access tokens.

use super::http::{lock, HttpError};
use super::jwt::{from_object, or_absent};
use super::{
    identity, now_unix, parse_jwks, verify_id_token, Claims, Expected, Identity, Jwk, Jws,
    OidcBackend, Refusal, DISCOVERY_SUFFIX, KEYS_MAX_AGE, KEYS_STALE_LIMIT, MAX_TOKEN,
    UNKNOWN_KID_INTERVAL,
};
use crate::log;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Instant;

/// The provider's discovery document (OpenID Connect Discovery 1.0 §3): the members read here.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DiscoveryDocument {
    #[serde(deserialize_with = "or_absent")]
    pub(super) issuer: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    pub(super) jwks_uri: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    pub(super) userinfo_endpoint: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    pub(super) token_endpoint: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    pub(super) device_authorization_endpoint: Option<String>,
}

/// What the daemon knows about the provider.
#[derive(Clone, Debug)]
pub(super) struct Provider {
    pub(super) issuer: String,
    jwks_uri: String,
    userinfo_endpoint: Option<String>,
    pub(super) token_endpoint: Option<String>,
    pub(super) device_authorization_endpoint: Option<String>,
    pub(super) keys: Arc<Vec<Jwk>>,
    fetched: Instant,
    /// Wall-clock time of the fetch, for status.
    pub(super) fetched_unix: i64,
}

#[derive(Default)]
pub(super) struct Health {
    pub(super) reachable: Option<bool>,
    pub(super) last_error: Option<String>,
    /// The last key-set fetch caused by an unknown key id.
    last_kid_refresh: Option<Instant>,
}

impl OidcBackend {
    pub(super) async fn verify_id(&self, jws: &Jws<'_>, provider: Provider) -> Result<(), Refusal> {
        fn expect<'a>(p: &'a Provider, client_id: &'a str) -> Expected<'a> {
            Expected {
                issuer: &p.issuer,
                client_id,
                now: now_unix(),
            }
        }
        let client_id = self.0.cfg.client_id.as_str();
        match verify_id_token(jws, &provider.keys, &expect(&provider, client_id)) {
            Err(Refusal::UnknownKey(kid)) => {
                // A key id the set lacks: the provider may have rotated its keys.
                let Some(fresh) = self.refresh_for_unknown_kid(&provider).await? else {
                    return Err(Refusal::UnknownKey(kid));
                };
                verify_id_token(jws, &fresh.keys, &expect(&fresh, client_id))
            }
            other => other,
        }
    }

    /// A fresh key set, unless one was fetched for an unknown key id less than
    /// [`UNKNOWN_KID_INTERVAL`] ago (then `None`: the token is refused as signed by an unknown
    /// key). A refresh someone else finished while this one waited counts as this one's.
    async fn refresh_for_unknown_kid(&self, seen: &Provider) -> Result<Option<Provider>, Refusal> {
        let _one = self.0.fetching.lock().await;
        if let Some(p) = lock(&self.0.provider).clone() {
            if p.fetched > seen.fetched {
                return Ok(Some(p));
            }
        }
        {
            let mut health = lock(&self.0.health);
            if health
                .last_kid_refresh
                .is_some_and(|t| t.elapsed() < UNKNOWN_KID_INTERVAL)
            {
                return Ok(None);
            }
            health.last_kid_refresh = Some(Instant::now());
        }
        self.fetch_and_store().await.map(Some)
    }

    /// The provider as known, fetched first when unknown or older than [`KEYS_MAX_AGE`].
    pub(super) async fn provider(&self) -> Result<Provider, Refusal> {
        if let Some(p) = lock(&self.0.provider).clone() {
            if p.fetched.elapsed() < KEYS_MAX_AGE {
                return Ok(p);
            }
        }
        let _one = self.0.fetching.lock().await;
        let known = lock(&self.0.provider).clone();
        if let Some(p) = &known {
            if p.fetched.elapsed() < KEYS_MAX_AGE {
                return Ok(p.clone());
            }
        }
        match (self.fetch_and_store().await, known) {
            (Ok(p), _) => Ok(p),
            (Err(e), Some(old)) if old.fetched.elapsed() < KEYS_STALE_LIMIT => {
                log::warning(&format!(
                    "{e}; using the key set fetched {} s ago",
                    old.fetched.elapsed().as_secs()
                ));
                Ok(old)
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Fetches discovery document and key set, records the outcome for status, and stores
    /// the result. The caller holds `fetching`.
    async fn fetch_and_store(&self) -> Result<Provider, Refusal> {
        let result = self.fetch().await;
        let mut health = lock(&self.0.health);
        match &result {
            Ok(p) => {
                health.reachable = Some(true);
                health.last_error = None;
                log::info(&format!(
                    "OIDC provider {}: {} signing keys fetched from {}",
                    p.issuer,
                    p.keys.len(),
                    p.jwks_uri
                ));
                *lock(&self.0.provider) = Some(p.clone());
            }
            Err(e) => {
                health.reachable = Some(false);
                health.last_error = Some(e.to_string());
            }
        }
        result
    }

    async fn fetch(&self) -> Result<Provider, Refusal> {
        let cfg = &self.0.cfg;
        let unavailable = Refusal::Unavailable;
        let doc = self
            .get_json(&cfg.discovery_endpoint, None)
            .await
            .map_err(|e| unavailable(e.describe(&cfg.discovery_endpoint)))?;
        let doc: DiscoveryDocument = from_object(&doc).unwrap_or_default();
        let issuer = doc.issuer.ok_or_else(|| {
            unavailable(format!(
                "{}: no issuer in the discovery document",
                cfg.discovery_endpoint
            ))
        })?;
        // OpenID Connect Discovery 1.0 §4.3: the issuer is the URL the document was found
        // under; a document that names another issuer would let that issuer's tokens in.
        if let Some(base) = cfg.discovery_endpoint.strip_suffix(DISCOVERY_SUFFIX) {
            if base.trim_end_matches('/') != issuer.trim_end_matches('/') {
                return Err(unavailable(format!(
                    "{}: the discovery document names issuer {issuer:?}, not {base:?}",
                    cfg.discovery_endpoint
                )));
            }
        }
        let endpoint = |name: &str, url: Option<String>| -> Result<Option<String>, Refusal> {
            match url {
                Some(url) if crate::config::is_acceptable_endpoint(&url) => Ok(Some(url)),
                Some(url) => Err(unavailable(format!(
                    "{}: {name} {url:?} is not https:// (http:// only on loopback)",
                    cfg.discovery_endpoint
                ))),
                None => Ok(None),
            }
        };
        let jwks_uri = endpoint("jwks_uri", doc.jwks_uri)?.ok_or_else(|| {
            unavailable(format!(
                "{}: no jwks_uri in the discovery document",
                cfg.discovery_endpoint
            ))
        })?;
        let userinfo_endpoint = endpoint("userinfo_endpoint", doc.userinfo_endpoint)?;
        let token_endpoint = endpoint("token_endpoint", doc.token_endpoint)?;
        let device_authorization_endpoint = endpoint(
            "device_authorization_endpoint",
            doc.device_authorization_endpoint,
        )?;
        let jwks = self
            .get_json(&jwks_uri, None)
            .await
            .map_err(|e| unavailable(e.describe(&jwks_uri)))?;
        let keys = parse_jwks(&jwks);
        if keys.is_empty() {
            return Err(unavailable(format!(
                "{jwks_uri}: no usable signing key in the key set"
            )));
        }
        Ok(Provider {
            issuer,
            jwks_uri,
            userinfo_endpoint,
            token_endpoint,
            device_authorization_endpoint,
            keys: Arc::new(keys),
            fetched: Instant::now(),
            fetched_unix: now_unix(),
        })
    }

    /// The userinfo answer for an access token.
    pub(super) async fn userinfo(
        &self,
        provider: &Provider,
        token: &str,
    ) -> Result<Identity, Refusal> {
        let Some(url) = &provider.userinfo_endpoint else {
            return Err(Refusal::NoUserinfo);
        };
        if token.is_empty()
            || token.len() > MAX_TOKEN
            || !token.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(Refusal::Malformed(
                "neither a JWT nor an access token".into(),
            ));
        }
        match self.get_json(url, Some(token)).await {
            Ok(answer) => match from_object::<Claims>(&answer) {
                Some(claims) => identity(&claims, "access token"),
                None => Err(Refusal::Unavailable(format!(
                    "{url}: the answer is not a JSON object"
                ))),
            },
            Err(HttpError::Status(s @ (400 | 401 | 403))) => Err(Refusal::UserinfoRefused(s)),
            Err(e) => Err(Refusal::Unavailable(e.describe(url))),
        }
    }
}
