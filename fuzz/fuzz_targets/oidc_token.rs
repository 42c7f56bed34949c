//! The OIDC token (JWT) parser and the checks that need no network: an arbitrary JWKS document
//! and an arbitrary compact token, split at the first NUL byte (no NUL: the whole input is the
//! token, checked against an empty key set). Parsing, key-set parsing, header pre-checks,
//! signature verification, claim checks and identity extraction return, never panic, and:
//! - a parsed token's signing input is `header.payload` of the text given, nothing else;
//! - a token that verifies also passes the claim checks on its own (verification implies them);
//! - an identity has a non-empty `sub` and a lower-cased, non-empty email.
#![no_main]

use accountmap::backends::oidc::{
    check_claims, email_allowed, identity, parse_jwks, parse_jws, precheck_header,
    verify_id_token, Expected,
};
use libfuzzer_sys::fuzz_target;

const ISSUER: &str = "https://issuer.example";
const CLIENT: &str = "client";

fuzz_target!(|data: &[u8]| {
    let (jwks, token) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let keys = serde_json::from_slice::<serde_json::Value>(jwks)
        .map(|doc| parse_jwks(&doc))
        .unwrap_or_default();
    let Ok(token) = std::str::from_utf8(token) else {
        return;
    };
    let Ok(jws) = parse_jws(token) else {
        return;
    };
    assert!(token.starts_with(jws.signing_input));
    assert_eq!(jws.signing_input.matches('.').count(), 1);
    let _ = jws.is_access_token();
    let _ = precheck_header(&jws);
    for now in [0, 1_700_000_000, i64::MIN, i64::MAX] {
        let expect = Expected {
            issuer: ISSUER,
            client_id: CLIENT,
            now,
        };
        let verified = verify_id_token(&jws, &keys, &expect);
        let claims = check_claims(&jws.claims, &expect);
        if verified.is_ok() {
            assert!(claims.is_ok());
        }
    }
    if let Ok(id) = identity(&jws.claims, "ID token") {
        assert!(!id.sub.is_empty());
        assert!(!id.email.is_empty());
        assert_eq!(id.email, id.email.to_lowercase());
        let domains = ["example.com".to_string()];
        let emails = ["a@example.com".to_string()];
        let _ = email_allowed(&id, ISSUER, &domains, &emails);
        let _ = email_allowed(&id, "https://accounts.google.com", &domains, &[]);
    }
});
