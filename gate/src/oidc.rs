//! The gate's side of OpenID Connect: the authorization-code flow with PKCE (RFC 7636),
//! `state` and `nonce`. The gate only obtains the ID token; accountmapd verifies it (issuer,
//! audience, signature with the provider's keys, expiry, email) when the gate asks for a
//! ticket. The gate checks what only it can: that `state` is one it issued to this browser and
//! that the token carries the `nonce` of that same login.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::{OsRng, RngCore};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The largest answer read from the provider.
pub const MAX_ANSWER: usize = 256 * 1024;

/// The two endpoints the flow needs, from the discovery document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
}

/// Reads the discovery document's endpoints; each must be https (http only on loopback,
/// for tests), like accountmapd's rule for the provider.
pub fn endpoints(doc: &Value) -> Result<Endpoints, String> {
    let field = |name: &str| -> Result<String, String> {
        let url = doc
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("the discovery document has no {name}"))?;
        if url.starts_with("https://") || is_loopback_http(url) {
            Ok(url.to_string())
        } else {
            Err(format!(
                "{name} {url:?} is not https:// (http:// only on loopback)"
            ))
        }
    };
    Ok(Endpoints {
        authorization: field("authorization_endpoint")?,
        token: field("token_endpoint")?,
    })
}

fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// 32 random bytes, base64url: a `state`, `nonce`, PKCE verifier or cookie value.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE S256 challenge of `verifier`.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Where the browser is sent to sign in.
pub fn authorization_url(
    endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[String],
    state: &str,
    nonce: &str,
    verifier: &str,
) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &scopes.join(" "))
        .append_pair("state", state)
        .append_pair("nonce", nonce)
        .append_pair("code_challenge", &pkce_challenge(verifier))
        .append_pair("code_challenge_method", "S256")
        .finish();
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{query}")
}

/// The body of the token request (client authentication goes in the Authorization header
/// when there is a secret, `client_secret_basic`, which every provider supports).
pub fn token_request_body(
    code: &str,
    redirect_uri: &str,
    client_id: &str,
    verifier: &str,
) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("client_id", client_id)
        .append_pair("code_verifier", verifier)
        .finish()
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined.
pub fn basic_auth(client_id: &str, secret: &[u8]) -> String {
    let enc = |b: &[u8]| form_urlencoded::byte_serialize(b).collect::<String>();
    let pair = format!("{}:{}", enc(client_id.as_bytes()), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// The claims the gate reads from an ID token before accountmapd has verified it: only to
/// compare `nonce` and to name the user in the request. Nothing here decides a sign-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnverifiedClaims {
    pub email: Option<String>,
    pub nonce: Option<String>,
}

pub fn unverified_claims(id_token: &str) -> Result<UnverifiedClaims, String> {
    let mut parts = id_token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the ID token is not a JWS (three dot-separated parts)".into());
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the ID token's payload is not base64url".to_string())?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|_| "the ID token's payload is not JSON".to_string())?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(UnverifiedClaims {
        email: text("email"),
        nonce: text("nonce"),
    })
}

/// The ID token from a token endpoint answer, or the provider's error.
pub fn id_token_of(answer: &Value) -> Result<String, String> {
    if let Some(e) = answer.get("error").and_then(Value::as_str) {
        let detail = answer
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(format!("the provider refused the code: {e} {detail}"));
    }
    answer
        .get("id_token")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            "the provider's answer has no id_token (is \"openid\" in [gate] scopes?)".into()
        })
}

/// Constant-time comparison for `state`, `nonce` and cookie values.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
