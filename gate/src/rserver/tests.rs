use super::*;
use rand_core::OsRng;
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;

/// A key as rserver would publish it, and the private half to read what the gate sent.
fn rserver_key() -> (RsaPrivateKey, String) {
    // 1024 bits keeps the test quick; rserver's are 2048 and parse the same way.
    let private = RsaPrivateKey::new(&mut OsRng, 1024).unwrap();
    let public = private.to_public_key();
    let answer = format!(
        "{}:{}",
        public.e().to_str_radix(16).to_uppercase(),
        public.n().to_str_radix(16).to_uppercase()
    );
    (private, answer)
}

#[test]
fn credentials_decrypt_to_user_newline_secret_in_both_schemes() {
    let (private, answer) = rserver_key();
    let key = parse_public_key(&answer).unwrap();
    let v = encrypt_credentials(&key, Scheme::Pkcs1v15, "jsmith", "amt1.x", &mut OsRng).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD.decode(v).unwrap();
    assert_eq!(
        private.decrypt(Pkcs1v15Encrypt, &bytes).unwrap(),
        b"jsmith\namt1.x"
    );

    let v = encrypt_credentials(&key, Scheme::OaepSha256, "jsmith", "amt1.x", &mut OsRng).unwrap();
    let b64 = v.strip_prefix("$RSA-OAEP$").expect("the OAEP prefix");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let plain = private
        .decrypt(Oaep::new::<sha2::Sha256>(), &bytes)
        .unwrap();
    assert_eq!(plain, b"jsmith\namt1.x");
}

#[rstest::rstest]
#[case::no_colon("10001")]
#[case::not_hex("10001:XYZ")]
#[case::empty_modulus("10001:")]
#[case::garbage("<html>sign in</html>")]
fn answers_that_are_not_a_key_are_refused(#[case] answer: &str) {
    assert!(matches!(
        parse_public_key(answer),
        Err(ProtocolError::BadPublicKey(_))
    ));
}

#[test]
fn a_line_break_cannot_change_what_rserver_reads() {
    let (_, answer) = rserver_key();
    let key = parse_public_key(&answer).unwrap();
    assert_eq!(
        encrypt_credentials(&key, Scheme::Pkcs1v15, "eve\nroot", "x", &mut OsRng),
        Err(ProtocolError::LineBreak)
    );
}

#[test]
fn the_form_carries_the_token_and_an_encoded_ciphertext() {
    let form = sign_in_form("tok123", "/s/abc/?x=1", "a+b/c=");
    assert_eq!(
        form,
        "persist=0&rs-csrf-token=tok123&appUri=%2Fs%2Fabc%2F%3Fx%3D1&clientPath=%2Fs%2Fabc%2F%3Fx%3D1&v=a%2Bb%2Fc%3D"
    );
}

#[test]
fn a_pem_key_is_read_and_implies_oaep() {
    use rsa::pkcs8::EncodePublicKey;
    let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024).unwrap();
    let pem = private
        .to_public_key()
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let (key, scheme) = parse_public_key_with_scheme(&pem).unwrap();
    assert_eq!(key, private.to_public_key());
    assert_eq!(scheme, Scheme::OaepSha256);
    assert!(parse_public_key_with_scheme(
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
    )
    .is_err());
}
