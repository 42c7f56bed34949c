use super::device::{DeviceAuthorization, OAuthError, TokenAnswer};
use super::discovery::DiscoveryDocument;
use super::jwt::from_object;
use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rstest::rstest;
use serde_json::{json, Value};

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
    let c = |v: Value| from_object::<Claims>(&v).unwrap();
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

// ---------------------------------------------------------------------------------------------
// The JSON type rules of header, claims and key set, pinned: a value of the wrong type reads
// as absent where the code asks for a string, and as "not a number" where it asks for a time.

/// Unsigned `header.payload.` from raw JSON text: the rules below need no signature.
fn unsigned(header: &str, payload: &str) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    )
}

/// `base` with `name` set to `value`, or removed where `value` is `None`.
fn with_claim(mut base: Value, name: &str, value: Option<Value>) -> String {
    match value {
        Some(v) => base[name] = v,
        None => {
            base.as_object_mut().unwrap().remove(name);
        }
    }
    base.to_string()
}

fn expected() -> Expected<'static> {
    Expected {
        issuer: ISS,
        client_id: "client",
        now: NOW,
    }
}

fn claims_check(payload: &str) -> Result<(), Refusal> {
    let token = unsigned(r#"{"alg":"ES256"}"#, payload);
    check_claims(&parse_jws(&token)?.claims, &expected())
}

fn wrong_audience(found: &str) -> Result<(), Refusal> {
    Err(Refusal::WrongAudience {
        found: found.into(),
        expected: "client".into(),
    })
}

fn wrong_azp(found: &str) -> Result<(), Refusal> {
    Err(Refusal::WrongAuthorizedParty {
        found: found.into(),
        expected: "client".into(),
    })
}

fn not_a_number(name: &str) -> Result<(), Refusal> {
    Err(Refusal::Malformed(format!("{name} is not a number")))
}

#[rstest]
#[case::iss_absent("iss", None, Err(Refusal::MissingClaim("iss")))]
#[case::iss_number("iss", Some(json!(5)), Err(Refusal::MissingClaim("iss")))]
#[case::iss_null("iss", Some(json!(null)), Err(Refusal::MissingClaim("iss")))]
#[case::aud_absent("aud", None, Err(Refusal::MissingClaim("aud")))]
#[case::aud_number("aud", Some(json!(5)), Err(Refusal::MissingClaim("aud")))]
#[case::aud_null("aud", Some(json!(null)), Err(Refusal::MissingClaim("aud")))]
#[case::aud_object("aud", Some(json!({"client": 1})), Err(Refusal::MissingClaim("aud")))]
#[case::aud_empty_list("aud", Some(json!([])), wrong_audience("[]"))]
#[case::aud_list_of_one("aud", Some(json!(["client"])), Ok(()))]
#[case::aud_numbers_in_list_are_dropped("aud", Some(json!(["client", 5, null])), Ok(()))]
#[case::aud_only_numbers("aud", Some(json!([5])), wrong_audience("[]"))]
#[case::aud_twice_the_same("aud", Some(json!(["client", "client"])), wrong_azp("None"))]
#[case::azp_number_one_audience_is_absent("azp", Some(json!(5)), Ok(()))]
#[case::azp_other_one_audience("azp", Some(json!("other")), wrong_azp("Some(\"other\")"))]
#[case::azp_client_one_audience("azp", Some(json!("client")), Ok(()))]
#[case::exp_absent("exp", None, Err(Refusal::MissingClaim("exp")))]
#[case::exp_string("exp", Some(json!("soon")), not_a_number("exp"))]
#[case::exp_null("exp", Some(json!(null)), not_a_number("exp"))]
#[case::exp_bool("exp", Some(json!(true)), not_a_number("exp"))]
#[case::exp_list("exp", Some(json!([NOW])), not_a_number("exp"))]
#[case::exp_float_truncates("exp", Some(json!((NOW - 61) as f64 + 0.9)), Err(Refusal::Expired { seconds_ago: 61 }))]
#[case::exp_float_fine("exp", Some(json!((NOW + 300) as f64)), Ok(()))]
#[case::exp_beyond_i64_saturates("exp", Some(json!(u64::MAX)), Ok(()))]
#[case::exp_i64_min("exp", Some(json!(i64::MIN)), Err(Refusal::Expired { seconds_ago: i64::MAX }))]
#[case::nbf_absent("nbf", None, Ok(()))]
#[case::nbf_string("nbf", Some(json!("now")), not_a_number("nbf"))]
#[case::nbf_null("nbf", Some(json!(null)), not_a_number("nbf"))]
#[case::nbf_past("nbf", Some(json!(NOW - 5)), Ok(()))]
#[case::iat_absent("iat", None, Err(Refusal::MissingClaim("iat")))]
#[case::iat_string("iat", Some(json!("then")), not_a_number("iat"))]
#[case::iat_within_skew("iat", Some(json!(NOW + 60)), Ok(()))]
#[case::unknown_claim_ignored("x-anything", Some(json!({"deep": [1, 2]})), Ok(()))]
fn claim_types(
    #[case] name: &str,
    #[case] value: Option<Value>,
    #[case] want: Result<(), Refusal>,
) {
    assert_eq!(claims_check(&with_claim(claims(), name, value)), want);
}

#[test]
fn claim_checks_run_in_order_and_duplicate_keys_take_the_last() {
    // iss before a malformed exp; exp before a malformed nbf; nbf before a missing iat.
    let mut c = claims();
    c["iss"] = json!("https://evil");
    c["exp"] = json!("soon");
    assert!(matches!(
        claims_check(&c.to_string()),
        Err(Refusal::WrongIssuer { .. })
    ));
    let mut c = claims();
    c["exp"] = json!("soon");
    c["nbf"] = json!("now");
    assert_eq!(claims_check(&c.to_string()), not_a_number("exp"));
    let mut c = claims();
    c["nbf"] = json!("now");
    c.as_object_mut().unwrap().remove("iat");
    assert_eq!(claims_check(&c.to_string()), not_a_number("nbf"));
    // A repeated key: the last one counts, in the payload and in the header.
    let payload = format!(
        r#"{{"iss":"https://evil","iss":"{ISS}","aud":"client","exp":{},"iat":{NOW}}}"#,
        NOW + 300
    );
    assert_eq!(claims_check(&payload), Ok(()));
    let payload = format!(
        r#"{{"iss":"{ISS}","aud":"client","exp":{},"exp":"x","iat":{NOW}}}"#,
        NOW + 300
    );
    assert_eq!(claims_check(&payload), not_a_number("exp"));
    let token = unsigned(r#"{"alg":"none","alg":"ES256"}"#, "{}");
    assert_eq!(precheck_header(&parse_jws(&token).unwrap()), Ok(Alg::Es256));
}

#[rstest]
#[case::alg_absent(r#"{"kid":"k1"}"#, Err(Refusal::AlgNone))]
#[case::alg_number(r#"{"alg":256}"#, Err(Refusal::AlgNone))]
#[case::alg_null(r#"{"alg":null}"#, Err(Refusal::AlgNone))]
#[case::alg_none_any_case(r#"{"alg":"nOnE"}"#, Err(Refusal::AlgNone))]
#[case::alg_hmac(r#"{"alg":"HS512"}"#, Err(Refusal::AlgHmac("HS512".into())))]
#[case::alg_other(r#"{"alg":"ES512"}"#, Err(Refusal::AlgNotAllowed("ES512".into())))]
#[case::alg_lower_case(r#"{"alg":"rs256"}"#, Err(Refusal::AlgNotAllowed("rs256".into())))]
#[case::crit_null(r#"{"alg":"ES256","crit":null}"#, Err(Refusal::CriticalHeader))]
#[case::crit_empty(r#"{"alg":"ES256","crit":[]}"#, Err(Refusal::CriticalHeader))]
#[case::crit_before_alg(r#"{"alg":"none","crit":["b64"]}"#, Err(Refusal::CriticalHeader))]
#[case::allowed(r#"{"alg":"PS384","typ":5,"kid":[1]}"#, Ok(Alg::Ps384))]
fn header_rules(#[case] header: &str, #[case] want: Result<Alg, Refusal>) {
    let token = unsigned(header, "{}");
    assert_eq!(precheck_header(&parse_jws(&token).unwrap()), want);
}

#[rstest]
#[case::at_jwt(r#""at+jwt""#, true)]
#[case::any_case(r#""AT+JWT""#, true)]
#[case::media_type(r#""application/at+jwt""#, true)]
#[case::jwt(r#""JWT""#, false)]
#[case::number("5", false)]
#[case::null("null", false)]
fn typ_rules(#[case] typ: &str, #[case] access_token: bool) {
    let token = unsigned(&format!(r#"{{"alg":"ES256","typ":{typ}}}"#), "{}");
    assert_eq!(parse_jws(&token).unwrap().is_access_token(), access_token);
}

#[rstest]
#[case::three_parts_only("a.b.c.d", "not three dot-separated parts")]
#[case::header_not_base64("*.e30.", "header is not base64url")]
#[case::header_padded("e30=.e30.", "header is not base64url")]
#[case::header_a_list("W10.e30.", "header is not a JSON object")]
#[case::header_not_json("ew.e30.", "header is not a JSON object")]
#[case::payload_a_string("e30.Ingi.", "payload is not a JSON object")]
#[case::payload_null("e30.bnVsbA.", "payload is not a JSON object")]
#[case::signature_not_base64("e30.e30.*", "signature is not base64url")]
fn malformed_shapes(#[case] token: &str, #[case] why: &str) {
    assert_eq!(
        parse_jws(token).map(|_| ()),
        Err(Refusal::Malformed(why.into()))
    );
}

#[test]
fn a_key_id_of_another_type_is_no_key_id() {
    let s = es256("k1");
    let keys = [s.jwk.clone()];
    // kid 5 reads as no kid: every key is a candidate.
    let token = sign(&s, &json!({"alg": "ES256", "kid": 5}), &claims());
    assert_eq!(check(&token, &keys), Ok(()));
    let token = sign(&s, &json!({"alg": "ES256"}), &claims());
    assert_eq!(check(&token, &keys), Ok(()));
    // A key whose own alg differs from the token's cannot verify it.
    let mut rs = s.jwk.clone();
    rs.alg = Some("RS256".into());
    let token = sign(&s, &json!({"alg": "ES256", "kid": "k1"}), &claims());
    assert_eq!(check(&token, &[rs]), Err(Refusal::BadSignature));
}

fn verified() -> Value {
    json!({"sub": "1", "email": "A@B.C", "email_verified": true})
}

#[rstest]
#[case::sub_absent("sub", None, Err(Refusal::MissingClaim("sub")))]
#[case::sub_number("sub", Some(json!(1)), Err(Refusal::MissingClaim("sub")))]
#[case::sub_empty("sub", Some(json!("")), Err(Refusal::MissingClaim("sub")))]
#[case::email_absent("email", None, Err(Refusal::NoEmail))]
#[case::email_number("email", Some(json!(5)), Err(Refusal::NoEmail))]
#[case::email_blank("email", Some(json!("  ")), Err(Refusal::NoEmail))]
#[case::email_trimmed("email", Some(json!(" Bob@B.C ")), Ok(("bob@b.c", None)))]
#[case::verified_string_true("email_verified", Some(json!("true")), Ok(("a@b.c", None)))]
#[case::verified_string_true_upper("email_verified", Some(json!("TRUE")), Err(Refusal::UnverifiedEmail("a@b.c".into())))]
#[case::verified_string_false("email_verified", Some(json!("false")), Err(Refusal::UnverifiedEmail("a@b.c".into())))]
#[case::verified_false("email_verified", Some(json!(false)), Err(Refusal::UnverifiedEmail("a@b.c".into())))]
#[case::verified_one("email_verified", Some(json!(1)), Err(Refusal::UnverifiedEmail("a@b.c".into())))]
#[case::verified_null("email_verified", Some(json!(null)), Err(Refusal::UnverifiedEmail("a@b.c".into())))]
#[case::verified_absent("email_verified", None, Err(Refusal::UnverifiedEmail("a@b.c".into())))]
#[case::hd_lowered("hd", Some(json!(" Company.COM ")), Ok(("a@b.c", Some("company.com"))))]
#[case::hd_empty("hd", Some(json!("")), Ok(("a@b.c", Some(""))))]
#[case::hd_number("hd", Some(json!(5)), Ok(("a@b.c", None)))]
fn identity_rules(
    #[case] name: &str,
    #[case] value: Option<Value>,
    #[case] want: Result<(&str, Option<&str>), Refusal>,
) {
    let token = unsigned(r#"{"alg":"ES256"}"#, &with_claim(verified(), name, value));
    let jws = parse_jws(&token).unwrap();
    let got = identity(&jws.claims, "ID token");
    assert_eq!(
        got.as_ref()
            .map(|id| (id.email.as_str(), id.hd.as_deref()))
            .map_err(Clone::clone),
        want
    );
    if let Ok(id) = got {
        assert_eq!((id.sub.as_str(), id.via), ("1", "ID token"));
    }
}

/// A JWK entry: an RSA key (any non-empty n and e do) with `extra` fields set or replaced.
fn rsa_jwk(extra: Value) -> Value {
    let mut k = json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "r"});
    for (name, v) in extra.as_object().unwrap() {
        k[name] = v.clone();
    }
    k
}

#[rstest]
#[case::doc_a_list(json!([rsa_jwk(json!({}))]), &[])]
#[case::keys_an_object(json!({"keys": {"r": rsa_jwk(json!({}))}}), &[])]
#[case::keys_absent(json!({"jwks": [rsa_jwk(json!({}))]}), &[])]
#[case::entries_not_objects(json!({"keys": [5, "RSA", null, ["RSA", "AQAB", "AQAB"], rsa_jwk(json!({}))]}), &[(Some("r"), None)])]
#[case::use_sig(json!({"keys": [rsa_jwk(json!({"use": "sig"}))]}), &[(Some("r"), None)])]
#[case::use_enc(json!({"keys": [rsa_jwk(json!({"use": "enc"}))]}), &[])]
#[case::use_number_is_absent(json!({"keys": [rsa_jwk(json!({"use": 1}))]}), &[(Some("r"), None)])]
#[case::kty_number(json!({"keys": [rsa_jwk(json!({"kty": 1}))]}), &[])]
#[case::kty_lower_case(json!({"keys": [rsa_jwk(json!({"kty": "rsa"}))]}), &[])]
#[case::kid_and_alg_numbers_are_absent(json!({"keys": [rsa_jwk(json!({"kid": 1, "alg": 2}))]}), &[(None, None)])]
#[case::alg_kept(json!({"keys": [rsa_jwk(json!({"alg": "RS256"}))]}), &[(Some("r"), Some("RS256"))])]
#[case::n_empty(json!({"keys": [rsa_jwk(json!({"n": ""}))]}), &[])]
#[case::n_padded(json!({"keys": [rsa_jwk(json!({"n": "AQAB="}))]}), &[])]
#[case::n_standard_base64(json!({"keys": [rsa_jwk(json!({"n": "+/+/"}))]}), &[])]
#[case::e_number(json!({"keys": [rsa_jwk(json!({"e": 65537}))]}), &[])]
#[case::ec_crv_number(json!({"keys": [{"kty": "EC", "crv": 1, "x": URL_SAFE_NO_PAD.encode([1u8; 32]), "y": URL_SAFE_NO_PAD.encode([1u8; 32])}]}), &[])]
#[case::ec_p256(json!({"keys": [{"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode([1u8; 32]), "y": URL_SAFE_NO_PAD.encode([1u8; 32])}]}), &[(None, None)])]
#[case::ec_p384_short(json!({"keys": [{"kty": "EC", "crv": "P-384", "x": URL_SAFE_NO_PAD.encode([1u8; 32]), "y": URL_SAFE_NO_PAD.encode([1u8; 32])}]}), &[])]
#[case::okp_ed25519(json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([1u8; 32])}]}), &[(None, None)])]
#[case::okp_x448(json!({"keys": [{"kty": "OKP", "crv": "Ed448", "x": URL_SAFE_NO_PAD.encode([1u8; 57])}]}), &[])]
fn jwks_rules(#[case] doc: Value, #[case] want: &[(Option<&str>, Option<&str>)]) {
    let keys = parse_jwks(&doc);
    let got: Vec<(Option<&str>, Option<&str>)> = keys
        .iter()
        .map(|k| (k.kid.as_deref(), k.alg.as_deref()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn only_the_first_keys_of_a_set_are_read() {
    let junk = json!({"kty": "oct"});
    let mut keys = vec![junk; MAX_KEYS - 1];
    keys.push(rsa_jwk(json!({})));
    assert_eq!(parse_jwks(&json!({ "keys": keys })).len(), 1);
    keys.insert(0, json!(5));
    assert_eq!(
        parse_jwks(&json!({ "keys": keys })).len(),
        0,
        "entries past MAX_KEYS are not read, usable or not"
    );
}

#[test]
fn provider_documents_read_strings_and_numbers_of_the_right_type_only() {
    let doc: DiscoveryDocument = from_object(&json!({
        "issuer": 5, "jwks_uri": "https://idp/keys", "token_endpoint": null,
        "userinfo_endpoint": ["https://idp/userinfo"], "device_authorization_endpoint": "https://idp/device",
        "scopes_supported": ["openid"],
    }))
    .unwrap();
    assert_eq!(
        (
            doc.issuer,
            doc.jwks_uri.as_deref(),
            doc.token_endpoint,
            doc.userinfo_endpoint,
            doc.device_authorization_endpoint.as_deref()
        ),
        (
            None,
            Some("https://idp/keys"),
            None,
            None,
            Some("https://idp/device")
        )
    );
    // Not an object: nothing (serde alone would read a list's items as the fields in order).
    assert!(
        from_object::<DiscoveryDocument>(&json!(["https://idp", "https://idp/keys"])).is_none()
    );
    assert!(from_object::<Claims>(&json!(["1", "a@b.c"])).is_none());
    assert!(from_object::<Claims>(&json!("claims")).is_none());
}

/// device_code, user_code, verification_uri (or _url), expires_in, interval.
type DeviceFields = (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<u64>,
    Option<u64>,
);

#[rstest]
#[case::all(json!({"device_code": "d", "user_code": "U", "verification_uri": "https://v", "expires_in": 900, "interval": 7}),
            (Some("d"), Some("U"), Some("https://v"), Some(900), Some(7)))]
#[case::google_url(json!({"device_code": "d", "user_code": "U", "verification_url": "https://g", "expires_in": 1800}),
                   (Some("d"), Some("U"), Some("https://g"), Some(1800), None))]
#[case::uri_of_another_type_falls_back_to_url(json!({"verification_uri": 1, "verification_url": "https://g"}),
                                              (None, None, Some("https://g"), None, None))]
#[case::numbers_not_unsigned_integers(json!({"device_code": 1, "user_code": null, "expires_in": 600.5, "interval": -5}),
                                      (None, None, None, None, None))]
#[case::numbers_as_strings(json!({"expires_in": "600", "interval": "5"}), (None, None, None, None, None))]
fn device_authorization_answers(#[case] answer: Value, #[case] want: DeviceFields) {
    let a: DeviceAuthorization = from_object(&answer).unwrap();
    let uri = a.verification_uri.or(a.verification_url);
    assert_eq!(
        (
            a.device_code.as_deref(),
            a.user_code.as_deref(),
            uri.as_deref(),
            a.expires_in,
            a.interval
        ),
        want
    );
}

#[rstest]
#[case::error_and_description(json!({"error": "access_denied", "error_description": "no\nthanks"}), "access_denied (nothanks)")]
#[case::error_only(json!({"error": "slow_down", "error_uri": "https://x"}), "slow_down")]
#[case::error_of_another_type(json!({"error": 400, "error_description": "bad"}), "no OAuth error in the answer")]
#[case::nothing(json!({}), "no OAuth error in the answer")]
fn oauth_error_answers(#[case] answer: Value, #[case] described: &str) {
    let error: OAuthError = from_object(&answer).unwrap();
    assert_eq!(error.describe(), described);
    // The same members read through the answers that embed them.
    let token: TokenAnswer = from_object(&answer).unwrap();
    assert_eq!(token.oauth.describe(), described);
    let device: DeviceAuthorization = from_object(&answer).unwrap();
    assert_eq!(device.oauth.describe(), described);
}

#[test]
fn token_answers() {
    let t: TokenAnswer =
        from_object(&json!({"id_token": "a.b.c", "access_token": "x", "expires_in": 3600}))
            .unwrap();
    assert_eq!(
        (t.id_token.as_deref(), t.oauth.error),
        (Some("a.b.c"), None)
    );
    let t: TokenAnswer =
        from_object(&json!({"id_token": 5, "error": "authorization_pending"})).unwrap();
    assert_eq!(
        (t.id_token, t.oauth.error.as_deref()),
        (None, Some("authorization_pending"))
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
        let _ = from_object::<Claims>(&c).map(|m| identity(&m, "x"));
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
