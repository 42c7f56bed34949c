use super::*;
use serde_json::json;

#[test]
fn pkce_s256_matches_rfc_7636_appendix_b() {
    assert_eq!(
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[test]
fn the_authorization_url_carries_state_nonce_and_challenge() {
    let url = authorization_url(
        "https://idp/auth",
        "client",
        "https://r/gate/callback",
        &["openid".into(), "email".into()],
        "S",
        "N",
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    );
    let (base, q) = url.split_once('?').unwrap();
    assert_eq!(base, "https://idp/auth");
    let q: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("response_type"), Some("code"));
    assert_eq!(get("redirect_uri"), Some("https://r/gate/callback"));
    assert_eq!(get("scope"), Some("openid email"));
    assert_eq!(get("state"), Some("S"));
    assert_eq!(get("nonce"), Some("N"));
    assert_eq!(
        get("code_challenge"),
        Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    );
    assert_eq!(get("code_challenge_method"), Some("S256"));
}

#[test]
fn endpoints_must_be_https_except_on_loopback() {
    let doc = json!({"authorization_endpoint": "https://idp/a", "token_endpoint": "http://127.0.0.1:9/t"});
    assert_eq!(endpoints(&doc).unwrap().token, "http://127.0.0.1:9/t");
    let doc = json!({"authorization_endpoint": "http://idp/a", "token_endpoint": "https://idp/t"});
    assert!(endpoints(&doc).unwrap_err().contains("not https://"));
    let doc = json!({"authorization_endpoint": "http://127.0.0.1.evil/a", "token_endpoint": "https://idp/t"});
    assert!(endpoints(&doc).is_err());
    assert!(endpoints(&json!({"token_endpoint": "https://idp/t"}))
        .unwrap_err()
        .contains("authorization_endpoint"));
}

#[test]
fn claims_are_read_without_trusting_them() {
    let payload = URL_SAFE_NO_PAD.encode(br#"{"email":"a@b.c","nonce":"n1"}"#);
    let c = unverified_claims(&format!("h.{payload}.s")).unwrap();
    assert_eq!(c.email.as_deref(), Some("a@b.c"));
    assert_eq!(c.nonce.as_deref(), Some("n1"));
    assert!(unverified_claims("only.two").is_err());
    assert!(unverified_claims("a.!!!.c").is_err());
}

#[test]
fn token_answers() {
    assert_eq!(id_token_of(&json!({"id_token": "x.y.z"})).unwrap(), "x.y.z");
    assert!(id_token_of(&json!({"error": "invalid_grant"}))
        .unwrap_err()
        .contains("invalid_grant"));
    assert!(id_token_of(&json!({"access_token": "a"}))
        .unwrap_err()
        .contains("no id_token"));
}

#[test]
fn basic_auth_encodes_before_joining() {
    // RFC 6749 2.3.1: "a:b" as a client id must not split the pair.
    assert_eq!(
        basic_auth("a:b", b"s c"),
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("a%3Ab:s+c")
        )
    );
}

#[test]
fn random_tokens_differ_and_compare_in_constant_time() {
    let (a, b) = (random_token(), random_token());
    assert_ne!(a, b);
    assert_eq!(a.len(), 43);
    assert!(same(&a, &a.clone()));
    assert!(!same(&a, &b));
    assert!(!same("ab", "abc"));
}
