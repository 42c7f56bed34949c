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
//!   RFC 9068) are sent to the userinfo endpoint in the `Authorization` header, never in a URL.
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

use crate::backends::ldap::block_on;
use crate::config::OidcConfig;
use crate::log;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
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
// JWS parsing and verification: pure functions, no I/O (property-tested below)

/// The signature algorithms accepted for ID tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Alg {
    /// The header's `alg`, or why it is refused.
    pub fn parse(alg: &str) -> Result<Alg, Refusal> {
        Ok(match alg {
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "PS256" => Alg::Ps256,
            "PS384" => Alg::Ps384,
            "PS512" => Alg::Ps512,
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "EdDSA" => Alg::EdDsa,
            a if a.eq_ignore_ascii_case("none") => return Err(Refusal::AlgNone),
            a if a.starts_with("HS") => return Err(Refusal::AlgHmac(shorten(a))),
            a => return Err(Refusal::AlgNotAllowed(shorten(a))),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
        }
    }
}

/// A public key from the provider's JWKS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The key's own `alg`, when the set names one: the token's must then be the same.
    pub alg: Option<String>,
    pub key: PublicKey,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point `04 || x || y`.
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl Jwk {
    /// Whether this key can verify `alg` at all: the key type decides, never the token alone.
    fn fits(&self, alg: Alg) -> bool {
        if self.alg.as_deref().is_some_and(|a| a != alg.as_str()) {
            return false;
        }
        matches!(
            (&self.key, alg),
            (
                PublicKey::Rsa { .. },
                Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512
            ) | (PublicKey::P256(_), Alg::Es256)
                | (PublicKey::P384(_), Alg::Es384)
                | (PublicKey::Ed25519(_), Alg::EdDsa)
        )
    }

    fn verify(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        let rsa = |params: &'static signature::RsaParameters, n: &[u8], e: &[u8]| {
            RsaPublicKeyComponents { n, e }
                .verify(params, message, sig)
                .is_ok()
        };
        match (&self.key, alg) {
            (PublicKey::Rsa { n, e }, Alg::Rs256) => {
                rsa(&signature::RSA_PKCS1_2048_8192_SHA256, n, e)
            }
            (PublicKey::Rsa { n, e }, Alg::Rs384) => {
                rsa(&signature::RSA_PKCS1_2048_8192_SHA384, n, e)
            }
            (PublicKey::Rsa { n, e }, Alg::Rs512) => {
                rsa(&signature::RSA_PKCS1_2048_8192_SHA512, n, e)
            }
            (PublicKey::Rsa { n, e }, Alg::Ps256) => {
                rsa(&signature::RSA_PSS_2048_8192_SHA256, n, e)
            }
            (PublicKey::Rsa { n, e }, Alg::Ps384) => {
                rsa(&signature::RSA_PSS_2048_8192_SHA384, n, e)
            }
            (PublicKey::Rsa { n, e }, Alg::Ps512) => {
                rsa(&signature::RSA_PSS_2048_8192_SHA512, n, e)
            }
            (PublicKey::P256(point), Alg::Es256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            (PublicKey::P384(point), Alg::Es384) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            (PublicKey::Ed25519(x), Alg::EdDsa) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
            _ => false,
        }
    }
}

/// The signing keys of a JWKS document. Keys that cannot verify signatures (`use: enc`,
/// unknown types, broken fields) are left out, not errors: providers publish such keys too.
pub fn parse_jwks(doc: &Value) -> Vec<Jwk> {
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return Vec::new();
    };
    keys.iter().take(MAX_KEYS).filter_map(parse_jwk).collect()
}

fn parse_jwk(k: &Value) -> Option<Jwk> {
    let s = |name: &str| k.get(name).and_then(Value::as_str);
    let b = |name: &str| s(name).and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
    if s("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let key = match (s("kty")?, s("crv")) {
        ("RSA", _) => {
            let n = b("n")?;
            let e = b("e")?;
            if n.is_empty() || e.is_empty() {
                return None;
            }
            PublicKey::Rsa { n, e }
        }
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (x, y) = (b("x")?, b("y")?);
            let len = if crv == "P-256" { 32 } else { 48 };
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            if crv == "P-256" {
                PublicKey::P256(point)
            } else {
                PublicKey::P384(point)
            }
        }
        ("OKP", Some("Ed25519")) => {
            let x = b("x")?;
            if x.len() != 32 {
                return None;
            }
            PublicKey::Ed25519(x)
        }
        _ => return None,
    };
    Some(Jwk {
        kid: s("kid").map(str::to_string),
        alg: s("alg").map(str::to_string),
        key,
    })
}

/// A JWS in compact serialisation, split and decoded, not yet verified.
#[derive(Debug)]
pub struct Jws<'a> {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// `BASE64URL(header) . BASE64URL(payload)`: what the signature covers.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
}

impl Jws<'_> {
    fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// `typ: at+jwt` (RFC 9068): an access token in JWT form, to be checked at userinfo.
    pub fn is_access_token(&self) -> bool {
        self.header_str("typ").is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t == "at+jwt" || t == "application/at+jwt"
        })
    }
}

/// Splits and decodes a compact JWS. Never panics, whatever `token` is.
pub fn parse_jws(token: &str) -> Result<Jws<'_>, Refusal> {
    if token.len() > MAX_TOKEN {
        return Err(Refusal::Malformed(format!(
            "{} bytes, more than {MAX_TOKEN}",
            token.len()
        )));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed("not three dot-separated parts".into()));
    };
    let object = |part: &str, what: &str| -> Result<Map<String, Value>, Refusal> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| Refusal::Malformed(format!("{what} is not base64url")))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(Refusal::Malformed(format!("{what} is not a JSON object"))),
        }
    };
    let header = object(h, "header")?;
    let claims = object(p, "payload")?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| Refusal::Malformed("signature is not base64url".into()))?;
    Ok(Jws {
        header,
        claims,
        signing_input: &token[..h.len() + 1 + p.len()],
        signature,
    })
}

/// What an ID token must say.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// Unix seconds.
    pub now: i64,
}

/// The claims the daemon uses from a verified token or a userinfo answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub sub: String,
    /// Lower-cased.
    pub email: String,
    /// Google's hosted domain, lower-cased.
    pub hd: Option<String>,
    /// "ID token" or "access token".
    pub via: &'static str,
}

/// Signature (with the key set as it is) and claims of an ID token. `Refusal::UnknownKey`
/// tells the caller that a fresher key set might know the key.
pub fn verify_id_token(jws: &Jws<'_>, keys: &[Jwk], expect: &Expected<'_>) -> Result<(), Refusal> {
    let alg = precheck_header(jws)?;
    let kid = jws.header_str("kid");
    let candidates: Vec<&Jwk> = keys
        .iter()
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
        .collect();
    if candidates.is_empty() {
        return Err(Refusal::UnknownKey(shorten(kid.unwrap_or(""))));
    }
    let verified = candidates
        .iter()
        .filter(|k| k.fits(alg))
        .any(|k| k.verify(alg, jws.signing_input.as_bytes(), &jws.signature));
    if !verified {
        return Err(Refusal::BadSignature);
    }
    check_claims(&jws.claims, expect)
}

/// The header checks that need no key: no `crit`, an allowed `alg`.
pub fn precheck_header(jws: &Jws<'_>) -> Result<Alg, Refusal> {
    if jws.header.contains_key("crit") {
        return Err(Refusal::CriticalHeader);
    }
    Alg::parse(jws.header_str("alg").unwrap_or("none"))
}

/// `iss`, `aud`/`azp`, `exp`, `nbf`, `iat` of a token whose signature has been checked.
pub fn check_claims(c: &Map<String, Value>, expect: &Expected<'_>) -> Result<(), Refusal> {
    let iss = c
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(Refusal::MissingClaim("iss"))?;
    // Google's ID tokens carry either form (its documentation says so).
    let google_bare = expect.issuer == GOOGLE_ISSUER && iss == "accounts.google.com";
    if iss != expect.issuer && !google_bare {
        return Err(Refusal::WrongIssuer {
            found: shorten(iss),
            expected: expect.issuer.to_string(),
        });
    }
    let audiences: Vec<&str> = match c.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err(Refusal::MissingClaim("aud")),
    };
    if !audiences.contains(&expect.client_id) {
        return Err(Refusal::WrongAudience {
            found: shorten(&format!("{audiences:?}")),
            expected: expect.client_id.to_string(),
        });
    }
    let azp = c.get("azp").and_then(Value::as_str);
    if (audiences.len() > 1 || azp.is_some()) && azp != Some(expect.client_id) {
        return Err(Refusal::WrongAuthorizedParty {
            found: shorten(&format!("{azp:?}")),
            expected: expect.client_id.to_string(),
        });
    }
    let time = |name: &'static str| -> Result<Option<i64>, Refusal> {
        match c.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                .map(Some)
                .ok_or(Refusal::Malformed(format!("{name} is not a number"))),
        }
    };
    let exp = time("exp")?.ok_or(Refusal::MissingClaim("exp"))?;
    if expect.now > exp.saturating_add(CLOCK_SKEW) {
        return Err(Refusal::Expired {
            seconds_ago: expect.now.saturating_sub(exp),
        });
    }
    if let Some(nbf) = time("nbf")? {
        if nbf > expect.now.saturating_add(CLOCK_SKEW) {
            return Err(Refusal::NotYetValid {
                seconds_ahead: nbf.saturating_sub(expect.now),
            });
        }
    }
    let iat = time("iat")?.ok_or(Refusal::MissingClaim("iat"))?;
    if iat > expect.now.saturating_add(CLOCK_SKEW) {
        return Err(Refusal::IssuedInFuture {
            seconds_ahead: iat.saturating_sub(expect.now),
        });
    }
    Ok(())
}

/// `sub`, a verified `email` and `hd` from ID-token claims or a userinfo answer.
pub fn identity(c: &Map<String, Value>, via: &'static str) -> Result<Identity, Refusal> {
    let sub = c
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(Refusal::MissingClaim("sub"))?;
    let email = c
        .get("email")
        .and_then(Value::as_str)
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty())
        .ok_or(Refusal::NoEmail)?;
    // Some providers (Cognito, older Okta) send the boolean as a string.
    let verified = match c.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    if !verified {
        return Err(Refusal::UnverifiedEmail(shorten(&email)));
    }
    Ok(Identity {
        sub: shorten(sub),
        email,
        hd: c
            .get("hd")
            .and_then(Value::as_str)
            .map(|h| h.trim().to_lowercase()),
        via,
    })
}

/// RStudio Connect's `AllowedDomains` / `AllowedEmails`: only domains → the email's domain
/// must be listed; only emails → the email must be listed; both → either; neither → any
/// verified email. Where the token has Google's `hd` (hosted domain) claim, a domain match
/// also needs `hd` to be that domain; for Google itself `hd` is required, since a consumer
/// Google account can carry an address at any domain without the domain's owner having a say.
pub fn email_allowed(
    id: &Identity,
    issuer: &str,
    domains: &[String],
    emails: &[String],
) -> Result<(), Refusal> {
    if domains.is_empty() && emails.is_empty() {
        return Ok(());
    }
    if emails.contains(&id.email) {
        return Ok(());
    }
    let domain = id.email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    let hd_ok = match &id.hd {
        Some(hd) => hd == domain,
        None => issuer != GOOGLE_ISSUER,
    };
    if domains.iter().any(|d| d == domain) && hd_ok {
        return Ok(());
    }
    let why = match (&id.hd, domains.iter().any(|d| d == domain)) {
        (_, false) => format!("domain {domain:?} is not in allowed_domains"),
        (Some(hd), true) => format!("its hosted domain (hd) is {hd:?}, not {domain:?}"),
        (None, true) => {
            "Google sent no hosted domain (hd): not a Google Workspace account of that domain"
                .to_string()
        }
    };
    Err(Refusal::NotAllowed(format!(
        "email {:?} not allowed: {why}{}",
        id.email,
        if emails.is_empty() {
            String::new()
        } else {
            " and the address is not in allowed_emails".to_string()
        }
    )))
}

fn shorten(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect()
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The provider: discovery, keys, userinfo

/// What the daemon knows about the provider.
#[derive(Clone, Debug)]
struct Provider {
    issuer: String,
    jwks_uri: String,
    userinfo_endpoint: Option<String>,
    token_endpoint: Option<String>,
    device_authorization_endpoint: Option<String>,
    keys: Arc<Vec<Jwk>>,
    fetched: Instant,
    /// Wall-clock time of the fetch, for status.
    fetched_unix: i64,
}

#[derive(Default)]
struct Health {
    reachable: Option<bool>,
    last_error: Option<String>,
    /// The last key-set fetch caused by an unknown key id.
    last_kid_refresh: Option<Instant>,
}

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single assignment: a poisoned lock holds sound data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A failed HTTP exchange: the provider answered with a status, or could not be asked.
enum HttpError {
    Status(u16),
    Transport(String),
}

impl HttpError {
    fn describe(&self, url: &str) -> String {
        match self {
            HttpError::Status(s) => format!("{url} answered HTTP {s}"),
            HttpError::Transport(e) => format!("{url}: {e}"),
        }
    }
}

fn tls_config(cfg: &OidcConfig) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let mut roots = RootCertStore::empty();
    let path = cfg
        .ca_file
        .as_deref()
        .unwrap_or(Path::new(SYSTEM_CA_BUNDLE));
    match std::fs::read(path) {
        Ok(bytes) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("{}: no usable CA certificate in it", path.display()));
            }
        }
        // Without ca_file, a missing system bundle only matters for https providers; say so
        // once and let each such call fail with a TLS error.
        Err(e) if cfg.ca_file.is_none() => log::warning(&format!(
            "[oidc]: cannot read the system CA bundle {}: {e}; https:// providers cannot be verified (set ca_file)",
            path.display()
        )),
        Err(e) => return Err(format!("[oidc] ca_file {}: {e}", path.display())),
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

impl OidcBackend {
    /// `None` without an `[oidc]` section. Nothing is fetched here: the daemon starts while
    /// the provider is down.
    pub fn new(cfg: Option<&OidcConfig>, timeout: Duration) -> Result<Option<OidcBackend>, String> {
        let Some(cfg) = cfg else { return Ok(None) };
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config(cfg)?)
            .connect_timeout(timeout)
            .timeout(timeout)
            // A redirect could lead a bearer token elsewhere; providers do not need one.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("accountmapd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("[oidc]: HTTP client: {e}"))?;
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
        let timeout = self.0.timeout;
        let verification =
            tokio::time::timeout(timeout, self.clone().verify_async(token.to_string()));
        match block_on(verification) {
            Ok(Ok(result)) => result,
            Ok(Err(_elapsed)) => Err(Refusal::Unavailable(format!(
                "no answer within backend_timeout ({} s)",
                timeout.as_secs()
            ))),
            Err(e) => Err(Refusal::Unavailable(e)),
        }
    }

    async fn verify_async(self, token: String) -> Result<Identity, Refusal> {
        let jws = parse_jws(&token).ok().filter(|j| !j.is_access_token());
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
            None => self.userinfo(&provider, &token).await?,
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

    async fn verify_id(&self, jws: &Jws<'_>, provider: Provider) -> Result<(), Refusal> {
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
    async fn provider(&self) -> Result<Provider, Refusal> {
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
        let field = |name: &str| doc.get(name).and_then(Value::as_str).map(str::to_string);
        let issuer = field("issuer").ok_or_else(|| {
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
        let endpoint = |name: &str| -> Result<Option<String>, Refusal> {
            match field(name) {
                Some(url) if crate::config::is_acceptable_endpoint(&url) => Ok(Some(url)),
                Some(url) => Err(unavailable(format!(
                    "{}: {name} {url:?} is not https:// (http:// only on loopback)",
                    cfg.discovery_endpoint
                ))),
                None => Ok(None),
            }
        };
        let jwks_uri = endpoint("jwks_uri")?.ok_or_else(|| {
            unavailable(format!(
                "{}: no jwks_uri in the discovery document",
                cfg.discovery_endpoint
            ))
        })?;
        let userinfo_endpoint = endpoint("userinfo_endpoint")?;
        let token_endpoint = endpoint("token_endpoint")?;
        let device_authorization_endpoint = endpoint("device_authorization_endpoint")?;
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
    async fn userinfo(&self, provider: &Provider, token: &str) -> Result<Identity, Refusal> {
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
            Ok(Value::Object(claims)) => identity(&claims, "access token"),
            Ok(_) => Err(Refusal::Unavailable(format!(
                "{url}: the answer is not a JSON object"
            ))),
            Err(HttpError::Status(s @ (400 | 401 | 403))) => Err(Refusal::UserinfoRefused(s)),
            Err(e) => Err(Refusal::Unavailable(e.describe(url))),
        }
    }

    /// GET `url` (with the bearer token in the Authorization header, if any) and parse the
    /// JSON answer, reading at most [`MAX_BODY`] bytes.
    async fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<Value, HttpError> {
        let mut req = self.0.http.get(url).header("accept", "application/json");
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        // reqwest's messages name the URL, never a header: the token stays out of them.
        let transport = |e: reqwest::Error| HttpError::Transport(error_chain(&e));
        let mut res = req.send().await.map_err(transport)?;
        if !res.status().is_success() {
            return Err(HttpError::Status(res.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(HttpError::Transport(format!(
                    "answer larger than {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body)
            .map_err(|e| HttpError::Transport(format!("the answer is not JSON: {e}")))
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

// ---------------------------------------------------------------------------------------------
// verify=device: the OAuth 2.0 device authorization grant (RFC 8628)

/// Device authorizations in progress at most; more are refused as Unavailable.
pub const MAX_DEVICE_SESSIONS: usize = 1024;
/// The longest a device authorization is waited for, whatever the provider says.
pub const MAX_DEVICE_LIFETIME: Duration = Duration::from_secs(1800);
/// RFC 8628 §3.2: the default polling interval, and §3.5: what `slow_down` adds.
const DEFAULT_INTERVAL: u64 = 5;
const SLOW_DOWN_STEP: u64 = 5;
const MAX_INTERVAL: u64 = 60;

/// One device authorization. The device code is the provider's secret for this sign-in: it
/// stays in the daemon, bound to the peer and the user that started it.
struct DeviceSession {
    device_code: String,
    user: String,
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

fn printable(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

impl OidcBackend {
    /// Starts a device authorization for `user` (already resolved and allowed by policy) on
    /// behalf of the peer with uid `peer_uid`.
    pub fn device_start(&self, user: &str, peer_uid: u32) -> Result<DeviceStart, Refusal> {
        let me = self.clone();
        let fut = tokio::time::timeout(self.0.timeout, async move {
            let provider = me.provider().await?;
            let Some(url) = provider.device_authorization_endpoint.clone() else {
                return Err(Refusal::Unavailable(
                    "the provider publishes no device_authorization_endpoint (verify=device needs a provider and a client that support RFC 8628)".into(),
                ));
            };
            let (status, answer) = me
                .post_form(&url, &[("scope", "openid email")])
                .await
                .map_err(|e| Refusal::Unavailable(e.describe(&url)))?;
            if status != 200 {
                return Err(Refusal::Unavailable(format!(
                    "{url} answered HTTP {status}: {}",
                    oauth_error(&answer)
                )));
            }
            Ok(answer)
        });
        let answer = match block_on(fut) {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => {
                return Err(Refusal::Unavailable(format!(
                    "no answer within backend_timeout ({} s)",
                    self.0.timeout.as_secs()
                )))
            }
            Err(e) => return Err(Refusal::Unavailable(e)),
        };
        let field = |name: &str| answer.get(name).and_then(Value::as_str);
        let (Some(device_code), Some(user_code), Some(uri)) = (
            field("device_code"),
            field("user_code"),
            // Google calls it verification_url.
            field("verification_uri").or_else(|| field("verification_url")),
        ) else {
            return Err(Refusal::Unavailable(
                "the device authorization answer lacks device_code, user_code or verification_uri"
                    .into(),
            ));
        };
        let expires_in = answer
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(600)
            .min(MAX_DEVICE_LIFETIME.as_secs());
        let interval = answer
            .get("interval")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_INTERVAL)
            .clamp(1, MAX_INTERVAL);
        let mut id = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| Refusal::Unavailable("no randomness for a session id".into()))?;
        let session: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut devices = lock(&self.0.devices);
        devices.retain(|_, d| d.expires > now);
        if devices.len() >= MAX_DEVICE_SESSIONS {
            return Err(Refusal::Unavailable(format!(
                "{MAX_DEVICE_SESSIONS} device authorizations are in progress already"
            )));
        }
        devices.insert(
            session.clone(),
            DeviceSession {
                device_code: device_code.to_string(),
                user: user.to_string(),
                peer_uid,
                expires: now + Duration::from_secs(expires_in),
                interval: Duration::from_secs(interval),
                next_poll: now + Duration::from_secs(interval),
            },
        );
        Ok(DeviceStart {
            session,
            verification_uri: printable(uri, 512),
            user_code: printable(user_code, 64),
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
        let me = self.clone();
        let fut = tokio::time::timeout(self.0.timeout, async move {
            let provider = me.provider().await?;
            let Some(url) = provider.token_endpoint.clone() else {
                return Err(Refusal::Unavailable(
                    "the provider publishes no token_endpoint".into(),
                ));
            };
            me.post_form(
                &url,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", &device_code),
                ],
            )
            .await
            .map_err(|e| Refusal::Unavailable(e.describe(&url)))
        });
        let (status, answer) = match block_on(fut) {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => {
                return Err(Refusal::Unavailable(format!(
                    "no answer within backend_timeout ({} s)",
                    self.0.timeout.as_secs()
                )))
            }
            Err(e) => return Err(Refusal::Unavailable(e)),
        };
        let mut devices = lock(&self.0.devices);
        let finish = |devices: &mut HashMap<String, DeviceSession>| {
            devices.remove(session);
        };
        if status == 200 {
            finish(&mut devices);
            return match answer.get("id_token").and_then(Value::as_str) {
                Some(t) => Ok(DevicePoll::IdToken(t.to_string())),
                None => Err(Refusal::Device(
                    "approved, but the provider sent no ID token (the client needs the openid scope)".into(),
                )),
            };
        }
        let error = answer.get("error").and_then(Value::as_str).unwrap_or("");
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
                    oauth_error(&answer)
                )))
            }
        }
    }

    /// POST a form to the provider with the client's credentials: HTTP Basic when a
    /// `client_secret_file` is set (RFC 6749 §2.3.1), else `client_id` in the body (a public
    /// client). Returns the status and the JSON answer (`{}` when the body is not JSON).
    async fn post_form(
        &self,
        url: &str,
        params: &[(&str, &str)],
    ) -> Result<(u16, Value), HttpError> {
        let cfg = &self.0.cfg;
        let mut form: Vec<(&str, &str)> = params.to_vec();
        let mut req = self.0.http.post(url).header("accept", "application/json");
        match &cfg.client_secret {
            Some(secret) => {
                let secret = std::str::from_utf8(secret.expose())
                    .map_err(|_| HttpError::Transport("client_secret_file is not UTF-8".into()))?;
                req = req.basic_auth(form_encode(&cfg.client_id), Some(form_encode(secret)));
            }
            None => form.push(("client_id", &cfg.client_id)),
        }
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect();
        let res = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
            .send()
            .await
            .map_err(|e| HttpError::Transport(error_chain(&e)))?;
        let status = res.status().as_u16();
        let bytes = read_bounded(res).await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

/// `error` and `error_description` of an OAuth error answer, for the log.
fn oauth_error(v: &Value) -> String {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(|s| printable(s, 200));
    match (s("error"), s("error_description")) {
        (Some(e), Some(d)) => format!("{e} ({d})"),
        (Some(e), None) => e,
        _ => "no OAuth error in the answer".into(),
    }
}

/// application/x-www-form-urlencoded (and the Basic credentials of RFC 6749 §2.3.1).
fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn read_bounded(mut res: reqwest::Response) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| HttpError::Transport(error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(HttpError::Transport(format!(
                "answer larger than {MAX_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its sources on one line (reqwest's own message is often just "error sending
/// request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    shorten_long(&out)
}

fn shorten_long(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(400)
        .collect()
}

mod verify;

#[cfg(test)]
mod tests;
