//! ID tokens: JWS compact parsing, the provider's JWKs, signature verification with ring
//! (an allow-list of public-key algorithms; the key type must fit the algorithm), the claim
//! checks, and the identity and email rules. Pure functions, no I/O (property-tested in
//! `tests.rs`, fuzzed by `fuzz/fuzz_targets/oidc_token.rs`).

use super::http::shorten;
use super::{Refusal, CLOCK_SKEW, GOOGLE_ISSUER, MAX_KEYS, MAX_TOKEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

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
