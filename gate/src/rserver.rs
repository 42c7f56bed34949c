//! rserver's sign-in protocol, client side (read from rstudio/rstudio:
//! `src/cpp/server/auth/ServerAuthCommon.cpp`, `Crypto.cpp`, `encrypted-sign-in.htm`):
//! - `GET /auth-public-key` answers `EXPONENT:MODULUS`, both upper-case hex: an RSA key made at
//!   each rserver start;
//! - `POST /auth-do-sign-in`, `application/x-www-form-urlencoded`, fields `persist`,
//!   `rs-csrf-token`, `appUri`, `clientPath` and `v`, where `v` is the base64 of
//!   `username + "\n" + password` encrypted with that key: RSA PKCS#1 v1.5, or, in rservers
//!   since late 2025, `$RSA-OAEP$` followed by the base64 of RSA-OAEP with SHA-256;
//! - the CSRF check is a double submit: the `rs-csrf-token` cookie must equal the field, and
//!   nothing is stored on the server, so the gate sends a token of its own in both.

use base64::Engine as _;
use rand_core::CryptoRngCore;
use rsa::{BigUint, Oaep, Pkcs1v15Encrypt, RsaPublicKey};
use std::fmt;

/// How `v` is encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// RSA PKCS#1 v1.5: every rserver version accepts it.
    Pkcs1v15,
    /// RSA-OAEP with SHA-256, prefixed `$RSA-OAEP$`: rservers since late 2025.
    OaepSha256,
}

/// Why rserver's key or the credentials could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// `/auth-public-key` did not answer `EXPONENT:MODULUS` in hex.
    BadPublicKey(&'static str),
    /// The key cannot encrypt the credentials (too short a modulus for them).
    Encryption(String),
    /// A user name or secret with a line break would change what rserver reads.
    LineBreak,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::BadPublicKey(why) => {
                write!(
                    f,
                    "rserver's /auth-public-key answer is not EXPONENT:MODULUS in hex: {why}"
                )
            }
            ProtocolError::Encryption(e) => write!(f, "cannot encrypt for rserver: {e}"),
            ProtocolError::LineBreak => f.write_str("a user name or ticket contains a line break"),
        }
    }
}

/// The largest public key answer read (a 4096-bit modulus is 1,024 hex digits).
pub const MAX_PUBLIC_KEY_ANSWER: usize = 4096;

/// rserver's public key from the body of `/auth-public-key`.
pub fn parse_public_key(body: &str) -> Result<RsaPublicKey, ProtocolError> {
    parse_public_key_with_scheme(body).map(|(key, _)| key)
}

/// As [`parse_public_key`], with the scheme that key's rserver expects: `EXPONENT:MODULUS`
/// comes from rservers that take PKCS#1 v1.5 (and, since late 2025, `$RSA-OAEP$` too); a PEM
/// key (`-----BEGIN PUBLIC KEY-----`, which rstudio's newest `Crypto.cpp` exports) from those
/// that decrypt OAEP only.
pub fn parse_public_key_with_scheme(body: &str) -> Result<(RsaPublicKey, Scheme), ProtocolError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    let body = body.trim();
    if body.len() > MAX_PUBLIC_KEY_ANSWER {
        return Err(ProtocolError::BadPublicKey("too long"));
    }
    if body.starts_with("-----BEGIN PUBLIC KEY-----") {
        return RsaPublicKey::from_public_key_pem(body)
            .map(|k| (k, Scheme::OaepSha256))
            .map_err(|_| ProtocolError::BadPublicKey("not a PEM RSA public key"));
    }
    if body.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
        return RsaPublicKey::from_pkcs1_pem(body)
            .map(|k| (k, Scheme::OaepSha256))
            .map_err(|_| ProtocolError::BadPublicKey("not a PEM RSA public key"));
    }
    let (e, n) = body
        .split_once(':')
        .ok_or(ProtocolError::BadPublicKey("no ':'"))?;
    let hex = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| BigUint::parse_bytes(s.as_bytes(), 16))
            .flatten()
    };
    let e = hex(e).ok_or(ProtocolError::BadPublicKey("the exponent is not hex"))?;
    let n = hex(n).ok_or(ProtocolError::BadPublicKey("the modulus is not hex"))?;
    RsaPublicKey::new(n, e)
        .map(|k| (k, Scheme::Pkcs1v15))
        .map_err(|_| ProtocolError::BadPublicKey("not a usable RSA key"))
}

/// The `v` field: `user + "\n" + secret` encrypted with rserver's key.
pub fn encrypt_credentials(
    key: &RsaPublicKey,
    scheme: Scheme,
    user: &str,
    secret: &str,
    rng: &mut impl CryptoRngCore,
) -> Result<String, ProtocolError> {
    if user.contains(['\n', '\r']) || secret.contains(['\n', '\r']) {
        return Err(ProtocolError::LineBreak);
    }
    let plain = format!("{user}\n{secret}");
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    let err = |e: rsa::Error| ProtocolError::Encryption(e.to_string());
    match scheme {
        Scheme::Pkcs1v15 => key
            .encrypt(rng, Pkcs1v15Encrypt, plain.as_bytes())
            .map(b64)
            .map_err(err),
        Scheme::OaepSha256 => key
            .encrypt(rng, Oaep::new::<sha2::Sha256>(), plain.as_bytes())
            .map(|c| format!("$RSA-OAEP${}", b64(c)))
            .map_err(err),
    }
}

/// The body of `POST /auth-do-sign-in`; `csrf` must also go in the `rs-csrf-token` cookie.
pub fn sign_in_form(csrf: &str, app_uri: &str, v: &str) -> String {
    sign_in_form_with(csrf, app_uri, app_uri, false, v)
}

/// As [`sign_in_form`], with rserver's `clientPath` (the sign-in page's path as the browser
/// saw it) and `persist` ("Stay signed in").
pub fn sign_in_form_with(
    csrf: &str,
    app_uri: &str,
    client_path: &str,
    persist: bool,
    v: &str,
) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("persist", if persist { "1" } else { "0" })
        .append_pair("rs-csrf-token", csrf)
        .append_pair("appUri", app_uri)
        .append_pair("clientPath", client_path)
        .append_pair("v", v)
        .finish()
}

#[cfg(test)]
mod tests;
