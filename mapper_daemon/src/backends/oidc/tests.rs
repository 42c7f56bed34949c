use super::*;
use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

const ISS: &str = "https://idp.example.org";
const NOW: i64 = 1_800_000_000;

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": "client", "sub": "123", "exp": NOW + 300, "iat": NOW - 10,
           "email": "Alice@Company.com", "email_verified": true})
}

struct Signer {
    key: EcdsaKeyPair,
    jwk: Jwk,
}

fn es256(kid: &str) -> Signer {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let jwk = Jwk {
        kid: Some(kid.into()),
        alg: None,
        key: PublicKey::P256(key.public_key().as_ref().to_vec()),
    };
    Signer { key, jwk }
}

fn sign(s: &Signer, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig = s.key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn check(token: &str, keys: &[Jwk]) -> Result<(), Refusal> {
    let jws = parse_jws(token)?;
    verify_id_token(
        &jws,
        keys,
        &Expected {
            issuer: ISS,
            client_id: "client",
            now: NOW,
        },
    )
}

#[test]
fn a_good_token_and_each_refusal() {
    let s = es256("k1");
    let keys = [s.jwk.clone()];
    let h = json!({"alg": "ES256", "kid": "k1"});
    assert_eq!(check(&sign(&s, &h, &claims()), &keys), Ok(()));
    let with = |k: &str, v: Value| {
        let mut c = claims();
        c[k] = v;
        sign(&s, &h, &c)
    };
    assert!(matches!(
        check(&with("iss", json!("https://evil")), &keys),
        Err(Refusal::WrongIssuer { .. })
    ));
    assert!(matches!(
        check(&with("aud", json!("other")), &keys),
        Err(Refusal::WrongAudience { .. })
    ));
    assert!(matches!(
        check(&with("aud", json!(["client", "other"])), &keys),
        Err(Refusal::WrongAuthorizedParty { .. })
    ));
    let mut c = claims();
    c["aud"] = json!(["client", "other"]);
    c["azp"] = json!("client");
    assert_eq!(check(&sign(&s, &h, &c), &keys), Ok(()));
    assert!(matches!(
        check(&with("exp", json!(NOW - 61)), &keys),
        Err(Refusal::Expired { seconds_ago: 61 })
    ));
    assert_eq!(
        check(&with("exp", json!(NOW - 59)), &keys),
        Ok(()),
        "within the skew"
    );
    assert!(matches!(
        check(&with("nbf", json!(NOW + 120)), &keys),
        Err(Refusal::NotYetValid { .. })
    ));
    assert!(matches!(
        check(&with("iat", json!(NOW + 120)), &keys),
        Err(Refusal::IssuedInFuture { .. })
    ));
    assert!(matches!(
        check(&with("exp", json!("soon")), &keys),
        Err(Refusal::Malformed(_))
    ));
    // another key id, another key with the same id, a tampered payload
    assert!(matches!(
        check(
            &sign(&s, &json!({"alg": "ES256", "kid": "k9"}), &claims()),
            &keys
        ),
        Err(Refusal::UnknownKey(_))
    ));
    let other = es256("k1");
    assert_eq!(
        check(&sign(&other, &h, &claims()), &keys),
        Err(Refusal::BadSignature)
    );
    let good = sign(&s, &h, &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = claims();
    c["email"] = json!("bob@company.com");
    let tampered = format!("{}.{}.{}", parts[0], b64(&c), parts[2]);
    assert_eq!(check(&tampered, &keys), Err(Refusal::BadSignature));
}

#[test]
fn unsigned_hmac_and_mismatched_key_types_are_refused() {
    let s = es256("k1");
    let keys = [s.jwk.clone()];
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "k1"})),
        b64(&claims())
    );
    assert_eq!(check(&none, &keys), Err(Refusal::AlgNone));
    let none = format!("{}.{}.", b64(&json!({"alg": "NONE"})), b64(&claims()));
    assert_eq!(check(&none, &keys), Err(Refusal::AlgNone));
    // HS256 "signed" with the public key's bytes as the secret: the classic confusion.
    let input = format!(
        "{}.{}",
        b64(&json!({"alg": "HS256", "kid": "k1"})),
        b64(&claims())
    );
    let PublicKey::P256(point) = &s.jwk.key else {
        unreachable!()
    };
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, point),
        input.as_bytes(),
    );
    let hs = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    assert!(matches!(check(&hs, &keys), Err(Refusal::AlgHmac(_))));
    // An EC signature presented as RS256 (or an Ed25519 key asked for ES256) never verifies.
    let rs = sign(&s, &json!({"alg": "RS256", "kid": "k1"}), &claims());
    assert_eq!(check(&rs, &keys), Err(Refusal::BadSignature));
    let crit = sign(
        &s,
        &json!({"alg": "ES256", "kid": "k1", "crit": ["exp"]}),
        &claims(),
    );
    assert_eq!(check(&crit, &keys), Err(Refusal::CriticalHeader));
    assert!(matches!(check("a.b", &keys), Err(Refusal::Malformed(_))));
}

#[test]
fn ed25519_and_jwks_parsing() {
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let x = URL_SAFE_NO_PAD.encode(key.public_key().as_ref());
    let doc = json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "ed"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB", "use": "enc", "kid": "enc"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "short"},
    ]});
    let keys = parse_jwks(&doc);
    assert_eq!(keys.len(), 1, "{keys:?}");
    let input = format!(
        "{}.{}",
        b64(&json!({"alg": "EdDSA", "kid": "ed"})),
        b64(&claims())
    );
    let sig = key.sign(input.as_bytes());
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
    assert_eq!(check(&token, &keys), Ok(()));
}

fn ident(email: &str, hd: Option<&str>) -> Identity {
    Identity {
        sub: "1".into(),
        email: email.into(),
        hd: hd.map(str::to_string),
        via: "ID token",
    }
}

#[test]
fn allowed_domains_and_emails_as_rstudio_connect() {
    let d = vec!["company.com".to_string()];
    let e = vec!["partner@elsewhere.org".to_string()];
    let none: Vec<String> = Vec::new();
    let ok = |id: &Identity, ds: &[String], es: &[String]| email_allowed(id, ISS, ds, es).is_ok();
    let alice = ident("alice@company.com", None);
    let partner = ident("partner@elsewhere.org", None);
    let eve = ident("eve@elsewhere.org", None);
    assert!(
        ok(&alice, &none, &none) && ok(&eve, &none, &none),
        "neither: any verified email"
    );
    assert!(
        ok(&alice, &d, &none) && !ok(&partner, &d, &none),
        "only domains"
    );
    assert!(
        !ok(&alice, &none, &e) && ok(&partner, &none, &e),
        "only emails"
    );
    assert!(
        ok(&alice, &d, &e) && ok(&partner, &d, &e) && !ok(&eve, &d, &e),
        "both: either"
    );
    assert!(
        !ok(&ident("alice@sub.company.com", None), &d, &none),
        "no subdomains"
    );
    // hd: must match where present; Google must send it for a domain match
    assert!(!ok(
        &ident("alice@company.com", Some("other.com")),
        &d,
        &none
    ));
    assert!(email_allowed(&alice, GOOGLE_ISSUER, &d, &none).is_err());
    assert!(email_allowed(
        &ident("alice@company.com", Some("company.com")),
        GOOGLE_ISSUER,
        &d,
        &none
    )
    .is_ok());
    assert!(
        email_allowed(&partner, GOOGLE_ISSUER, &d, &e).is_ok(),
        "a listed address needs no hd"
    );
}

#[test]
fn identity_needs_a_verified_email() {
    let c = |v: Value| v.as_object().cloned().unwrap();
    assert_eq!(
        identity(
            &c(json!({"sub": "1", "email": "A@B.C", "email_verified": true})),
            "ID token"
        )
        .map(|i| i.email),
        Ok("a@b.c".to_string())
    );
    assert!(matches!(
        identity(&c(json!({"sub": "1", "email": "a@b.c"})), "x"),
        Err(Refusal::UnverifiedEmail(_))
    ));
    assert!(matches!(
        identity(
            &c(json!({"sub": "1", "email": "a@b.c", "email_verified": "false"})),
            "x"
        ),
        Err(Refusal::UnverifiedEmail(_))
    ));
    assert_eq!(
        identity(&c(json!({"sub": "1"})), "x"),
        Err(Refusal::NoEmail)
    );
    assert_eq!(
        identity(&c(json!({"email": "a@b.c"})), "x"),
        Err(Refusal::MissingClaim("sub"))
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any string: parsing and verification return, never panic.
    #[test]
    fn any_string_is_handled(token in ".{0,600}") {
        let s = es256("k1");
        let _ = check(&token, &[s.jwk]);
    }

    /// Dot-separated base64url-ish parts, closer to real tokens.
    #[test]
    fn any_three_parts_are_handled(h in "[A-Za-z0-9_=-]{0,80}", p in "[A-Za-z0-9_=-]{0,200}", sig in "[A-Za-z0-9_=-]{0,120}") {
        let _ = check(&format!("{h}.{p}.{sig}"), &[]);
    }

    /// Real base64url of arbitrary JSON-ish bytes in header and payload.
    #[test]
    fn any_decoded_header_and_payload_are_handled(h in proptest::collection::vec(any::<u8>(), 0..120), p in proptest::collection::vec(any::<u8>(), 0..300)) {
        let s = es256("k1");
        let token = format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(&h), URL_SAFE_NO_PAD.encode(&p), URL_SAFE_NO_PAD.encode([0u8; 64]));
        let _ = check(&token, &[s.jwk]);
    }

    /// Claims of any JSON type where numbers and strings are expected.
    #[test]
    fn odd_claim_values_are_handled(exp in prop_oneof![any::<i64>().prop_map(|n| json!(n)), any::<f64>().prop_map(|f| json!(f)), ".{0,10}".prop_map(|s| json!(s))],
                                     aud in prop_oneof![Just(json!(null)), Just(json!([])), Just(json!([1, 2])), ".{0,10}".prop_map(|s| json!(s))]) {
        let s = es256("k1");
        let mut c = claims();
        c["exp"] = exp;
        c["aud"] = aud;
        c["iat"] = json!(i64::MIN);
        let token = sign(&s, &json!({"alg": "ES256", "kid": "k1"}), &c);
        let _ = check(&token, &[s.jwk]);
        let _ = c.as_object().map(|m| identity(m, "x"));
    }

    /// Arbitrary JWKS documents.
    #[test]
    fn any_jwks_is_handled(kty in prop_oneof![Just("RSA".to_string()), Just("EC".to_string()), Just("OKP".to_string()), ".{0,4}"], crv in prop_oneof![Just("P-256".to_string()), Just("P-384".to_string()), Just("Ed25519".to_string()), ".{0,6}"],
                           n in "[A-Za-z0-9_-]{0,50}", x in "[A-Za-z0-9_-]{0,70}") {
        let keys = parse_jwks(&json!({"keys": [{"kty": kty, "crv": crv, "n": n, "e": "AQAB", "x": x, "y": x}]}));
        let token = format!("{}.{}.AAAA", b64(&json!({"alg": "RS256"})), b64(&claims()));
        let _ = check(&token, &keys);
        let token = format!("{}.{}.AAAA", b64(&json!({"alg": "ES256"})), b64(&claims()));
        let _ = check(&token, &keys);
    }
}
