//! ID tokens: JWS compact parsing, the provider's JWKs, signature verification with ring
//! (an allow-list of public-key algorithms; the key type must fit the algorithm), the claim
//! checks, and the identity and email rules. Pure functions, no I/O (property-tested in
//! `tests.rs`, fuzzed by `fuzz/fuzz_targets/oidc_token.rs`).

use super::http::shorten;
use super::{Refusal, CLOCK_SKEW, GOOGLE_ISSUER, MAX_KEYS, MAX_TOKEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny};
use serde::Deserialize;
use serde_json::Value;

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

/// A JWKS document (RFC 7517 §5) as published.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JwkSet {
    /// The first [`MAX_KEYS`] entries of `keys` (none when it is not a list); an entry that is
    /// not a JSON object is `None`.
    #[serde(deserialize_with = "first_entries")]
    keys: Vec<Option<JwkEntry>>,
}

/// One key of a JWKS as published (RFC 7517 §4, RFC 7518 §6): the members read here.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JwkEntry {
    #[serde(deserialize_with = "or_absent")]
    kty: Option<String>,
    #[serde(rename = "use", deserialize_with = "or_absent")]
    use_: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    kid: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    alg: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    crv: Option<String>,
    /// RSA modulus and exponent, base64url.
    #[serde(deserialize_with = "or_absent")]
    n: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    e: Option<String>,
    /// EC coordinates, or the Ed25519 public key (`x`), base64url.
    #[serde(deserialize_with = "or_absent")]
    x: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    y: Option<String>,
}

fn first_entries<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Option<JwkEntry>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(list) => list.iter().take(MAX_KEYS).map(from_object).collect(),
        _ => Vec::new(),
    })
}

/// The signing keys of a JWKS document. Keys that cannot verify signatures (`use: enc`,
/// unknown types, broken fields) are left out, not errors: providers publish such keys too.
pub fn parse_jwks(doc: &Value) -> Vec<Jwk> {
    let set: JwkSet = from_object(doc).unwrap_or_default();
    set.keys.iter().flatten().filter_map(parse_jwk).collect()
}

fn parse_jwk(k: &JwkEntry) -> Option<Jwk> {
    let b = |v: &Option<String>| v.as_deref().and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
    if k.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let key = match (k.kty.as_deref()?, k.crv.as_deref()) {
        ("RSA", _) => {
            let n = b(&k.n)?;
            let e = b(&k.e)?;
            if n.is_empty() || e.is_empty() {
                return None;
            }
            PublicKey::Rsa { n, e }
        }
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (x, y) = (b(&k.x)?, b(&k.y)?);
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
            let x = b(&k.x)?;
            if x.len() != 32 {
                return None;
            }
            PublicKey::Ed25519(x)
        }
        _ => return None,
    };
    Some(Jwk {
        kid: k.kid.clone(),
        alg: k.alg.clone(),
        key,
    })
}

/// The JOSE header (RFC 7515 §4): the members read here.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Header {
    #[serde(deserialize_with = "or_absent")]
    pub alg: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    pub kid: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    pub typ: Option<String>,
    /// Whether the header has a `crit` member at all, whatever its value (`null` included).
    #[serde(deserialize_with = "present")]
    pub crit: bool,
}

/// The claims of an ID token (RFC 7519 §4.1, OpenID Connect Core §2 and §5.1) or a userinfo
/// answer: the members read here.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Claims {
    #[serde(deserialize_with = "or_absent")]
    pub iss: Option<String>,
    /// The strings of `aud`, one or a list (other members of a list are left out); `None`
    /// when `aud` is absent or neither a string nor a list.
    #[serde(deserialize_with = "audiences")]
    pub aud: Option<Vec<String>>,
    #[serde(deserialize_with = "or_absent")]
    pub azp: Option<String>,
    pub exp: NumericDate,
    pub nbf: NumericDate,
    pub iat: NumericDate,
    #[serde(deserialize_with = "or_absent")]
    pub sub: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    pub email: Option<String>,
    /// `true`, or the string `"true"` (Cognito and older Okta send the boolean as a string);
    /// anything else, absent included, is `false`.
    #[serde(deserialize_with = "verified_flag")]
    pub email_verified: bool,
    /// Google's hosted domain.
    #[serde(deserialize_with = "or_absent")]
    pub hd: Option<String>,
}

/// A time claim (RFC 7519 §2 NumericDate) as found in the token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NumericDate {
    #[default]
    Absent,
    /// Unix seconds: a fraction is cut off, a number beyond `i64` saturates.
    Seconds(i64),
    /// Present, but not a JSON number (`null` included).
    NotANumber,
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                .map_or(NumericDate::NotANumber, NumericDate::Seconds),
            _ => NumericDate::NotANumber,
        })
    }
}

impl NumericDate {
    /// The seconds, `None` when absent, or the refusal for a claim `name` that is no number.
    fn seconds(self, name: &str) -> Result<Option<i64>, Refusal> {
        match self {
            NumericDate::Absent => Ok(None),
            NumericDate::Seconds(s) => Ok(Some(s)),
            NumericDate::NotANumber => Err(Refusal::Malformed(format!("{name} is not a number"))),
        }
    }
}

/// A JWS in compact serialisation, split and decoded, not yet verified.
#[derive(Debug)]
pub struct Jws<'a> {
    pub header: Header,
    pub claims: Claims,
    /// `BASE64URL(header) . BASE64URL(payload)`: what the signature covers.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
}

impl Jws<'_> {
    /// `typ: at+jwt` (RFC 9068): an access token in JWT form, to be checked at userinfo.
    pub fn is_access_token(&self) -> bool {
        self.header.typ.as_deref().is_some_and(|t| {
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
    let header: Header = json_part(h, "header")?;
    let claims: Claims = json_part(p, "payload")?;
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

/// The header or the payload of a compact JWS: base64url of a JSON object.
fn json_part<T: DeserializeOwned>(part: &str, what: &str) -> Result<T, Refusal> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Refusal::Malformed(format!("{what} is not base64url")))?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| from_object(&v))
        .ok_or_else(|| Refusal::Malformed(format!("{what} is not a JSON object")))
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
    let kid = jws.header.kid.as_deref();
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
    if jws.header.crit {
        return Err(Refusal::CriticalHeader);
    }
    Alg::parse(jws.header.alg.as_deref().unwrap_or("none"))
}

/// `iss`, `aud`/`azp`, `exp`, `nbf`, `iat` of a token whose signature has been checked.
pub fn check_claims(c: &Claims, expect: &Expected<'_>) -> Result<(), Refusal> {
    let iss = c.iss.as_deref().ok_or(Refusal::MissingClaim("iss"))?;
    // Google's ID tokens carry either form (its documentation says so).
    let google_bare = expect.issuer == GOOGLE_ISSUER && iss == "accounts.google.com";
    if iss != expect.issuer && !google_bare {
        return Err(Refusal::WrongIssuer {
            found: shorten(iss),
            expected: expect.issuer.to_string(),
        });
    }
    let audiences = c.aud.as_deref().ok_or(Refusal::MissingClaim("aud"))?;
    if !audiences.iter().any(|a| a == expect.client_id) {
        return Err(Refusal::WrongAudience {
            found: shorten(&format!("{audiences:?}")),
            expected: expect.client_id.to_string(),
        });
    }
    let azp = c.azp.as_deref();
    if (audiences.len() > 1 || azp.is_some()) && azp != Some(expect.client_id) {
        return Err(Refusal::WrongAuthorizedParty {
            found: shorten(&format!("{azp:?}")),
            expected: expect.client_id.to_string(),
        });
    }
    let exp = c.exp.seconds("exp")?.ok_or(Refusal::MissingClaim("exp"))?;
    if expect.now > exp.saturating_add(CLOCK_SKEW) {
        return Err(Refusal::Expired {
            seconds_ago: expect.now.saturating_sub(exp),
        });
    }
    if let Some(nbf) = c.nbf.seconds("nbf")? {
        if nbf > expect.now.saturating_add(CLOCK_SKEW) {
            return Err(Refusal::NotYetValid {
                seconds_ahead: nbf.saturating_sub(expect.now),
            });
        }
    }
    let iat = c.iat.seconds("iat")?.ok_or(Refusal::MissingClaim("iat"))?;
    if iat > expect.now.saturating_add(CLOCK_SKEW) {
        return Err(Refusal::IssuedInFuture {
            seconds_ahead: iat.saturating_sub(expect.now),
        });
    }
    Ok(())
}

/// `sub`, a verified `email` and `hd` from ID-token claims or a userinfo answer.
pub fn identity(c: &Claims, via: &'static str) -> Result<Identity, Refusal> {
    let sub = c
        .sub
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or(Refusal::MissingClaim("sub"))?;
    let email = c
        .email
        .as_deref()
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty())
        .ok_or(Refusal::NoEmail)?;
    if !c.email_verified {
        return Err(Refusal::UnverifiedEmail(shorten(&email)));
    }
    Ok(Identity {
        sub: shorten(sub),
        email,
        hd: c.hd.as_deref().map(|h| h.trim().to_lowercase()),
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

// ---------------------------------------------------------------------------------------------
// How the documents above, and those of `discovery` and `device`, are read from JSON: unknown
// members are ignored, and a member of an unexpected JSON type reads as absent (a time claim
// as `NumericDate::NotANumber`), so that each check refuses it with its own reason.

/// `T` from a JSON object; `None` for any other JSON value (serde would read an array's
/// elements as the fields in order). A repeated member has its last value: `v` was parsed
/// into a `Value` first.
pub(super) fn from_object<T: DeserializeOwned>(v: &Value) -> Option<T> {
    match v {
        Value::Object(_) => T::deserialize(v).ok(),
        _ => None,
    }
}

/// A member used only when it has `T`'s JSON type (a string, an unsigned number): another
/// type, `null` included, reads as absent.
pub(super) fn or_absent<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(T::deserialize(Value::deserialize(d)?).ok())
}

/// Whether the member is there at all, whatever its value.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

fn audiences<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let string = |v: Value| match v {
        Value::String(s) => Some(s),
        _ => None,
    };
    Ok(match Value::deserialize(d)? {
        Value::Array(list) => Some(list.into_iter().filter_map(string).collect()),
        one => string(one).map(|a| vec![a]),
    })
}

fn verified_flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::String(s) => s == "true",
        _ => false,
    })
}
