use super::*;
use rstest::rstest;

fn login(state: &str) -> Login {
    Login {
        state: state.into(),
        expires: 1_000,
        app_uri: "/s/abc/?x=1".into(),
    }
}

#[test]
fn a_sealed_login_opens_only_with_its_key_and_before_expiry() {
    let keys = Keys::random();
    let sealed = keys.seal(&login("st"));
    assert_eq!(keys.open(&sealed, 999).unwrap(), login("st"));
    assert!(keys.open(&sealed, 1_001).unwrap_err().contains("expired"));
    assert!(Keys::random()
        .open(&sealed, 999)
        .unwrap_err()
        .contains("not sealed"));
}

#[test]
fn a_changed_cookie_is_refused() {
    let keys = Keys::random();
    let sealed = keys.seal(&login("st"));
    // Another appUri or a later expiry with the old tag.
    let (body, tag) = sealed.rsplit_once('.').unwrap();
    let forged = body.replace("1000", "9999999999");
    assert!(keys.open(&format!("{forged}.{tag}"), 999).is_err());
    assert!(keys.open("garbage", 999).is_err());
}

#[test]
fn verifier_and_nonce_are_per_state_and_per_gate() {
    let k = Keys::random();
    assert_eq!(k.verifier("a"), k.verifier("a"));
    assert_ne!(k.verifier("a"), k.verifier("b"));
    assert_ne!(k.verifier("a"), k.nonce("a"));
    assert_ne!(k.verifier("a"), Keys::random().verifier("a"));
    // RFC 7636: 43 to 128 characters.
    assert_eq!(k.verifier("a").len(), 43);
}

#[rstest]
#[case::root("/", true)]
#[case::session("/s/6a1c3f/?x=1#y", true)]
#[case::other_host("//evil.example/", false)]
#[case::backslash("/\\evil.example/", false)]
#[case::absolute("https://evil.example/", false)]
#[case::relative("s/abc", false)]
#[case::control("/a\r\nLocation: x", false)]
#[case::space("/a b", false)]
fn app_uri_must_be_a_path_on_this_server(#[case] uri: &str, #[case] ok: bool) {
    assert_eq!(check_app_uri(uri).is_ok(), ok, "{uri:?}");
}

#[test]
fn a_state_is_used_once() {
    let s = Spent::new();
    assert!(s.first_use(&login("a"), 10));
    assert!(!s.first_use(&login("a"), 10));
    assert!(s.first_use(&login("b"), 10));
}

#[test]
fn expired_states_are_forgotten() {
    let s = Spent::new();
    assert!(s.first_use(&login("a"), 10));
    // login("a") expires at 1000: after that its record goes (the cookie is refused anyway).
    assert!(s.first_use(&login("b"), 2_000));
    assert!(s.first_use(&login("a"), 2_000));
}
