//! Proxy signatures (SPEC "Proxy signatures"):
//! `BASE64( HMAC-SHA256( key, user + "\n" + date + "\n" + body ) )`, the key being the key
//! file's content with its trailing newline removed, so that the value equals
//! `printf '%s\n%s\n%s' USER DATE BODY | openssl dgst -sha256 -hmac "$KEY" -binary | base64`.

pub mod verify;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The key as SPEC defines it: the file's bytes without trailing line breaks.
pub fn key_from_file_content(content: &[u8]) -> &[u8] {
    let mut end = content.len();
    while end > 0 && matches!(content[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &content[..end]
}

/// `None` cannot happen (HMAC accepts keys of every length); the type says so only because
/// the `Mac` trait also serves fixed-key MACs.
fn mac(key: &[u8], user: &str, date: &str, body: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(user.as_bytes());
    mac.update(b"\n");
    mac.update(date.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    Some(mac)
}

/// The X-Proxy-Signature value.
pub fn sign(key: &[u8], user: &str, date: &str, body: &[u8]) -> String {
    mac(key, user, date, body)
        .map(|m| base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Whether `signature` (base64) is the signature of the other arguments. The comparison is
/// constant-time (`Mac::verify_slice`), so timing does not reveal how much of a guess matched.
pub fn verify(key: &[u8], user: &str, date: &str, body: &[u8], signature: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    mac(key, user, date, body).is_some_and(|m| m.verify_slice(&given).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::empty_body(b"s3cret\n", "jdoe", "Mon, 23 Nov 2026 13:00:00 GMT", "")]
    #[case::with_body(b"another key", "rsuser24", "1795006800", "{\"a\": 1}")]
    fn matches_the_openssl_recipe(
        #[case] file: &[u8],
        #[case] user: &str,
        #[case] date: &str,
        #[case] body: &str,
    ) {
        let key = key_from_file_content(file);
        let sig = sign(key, user, date, body.as_bytes());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("printf '%s\\n%s\\n%s' \"$1\" \"$2\" \"$3\" | openssl dgst -sha256 -hmac \"$4\" -binary | base64")
            .arg("sh")
            .args([user, date, body, &String::from_utf8_lossy(key)])
            .output()
            .expect("openssl and sh are needed for this test");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(sig, String::from_utf8_lossy(&out.stdout).trim());
        assert!(verify(key, user, date, body.as_bytes(), &sig));
    }

    #[rstest]
    #[case::trailing_newline(b"key\n", b"key")]
    #[case::crlf(b"key\r\n", b"key")]
    #[case::several(b"key\n\n", b"key")]
    #[case::inner_newline_kept(b"k\ney\n", b"k\ney")]
    #[case::empty(b"", b"")]
    fn key_trimming(#[case] file: &[u8], #[case] want: &[u8]) {
        assert_eq!(key_from_file_content(file), want);
    }

    #[rstest]
    #[case::other_user("mallory", "d", "")]
    #[case::other_date("jdoe", "e", "")]
    #[case::other_body("jdoe", "d", "x")]
    fn a_signature_covers_every_field(#[case] user: &str, #[case] date: &str, #[case] body: &str) {
        let sig = sign(b"k", "jdoe", "d", b"");
        assert!(!verify(b"k", user, date, body.as_bytes(), &sig));
        assert!(!verify(b"other", "jdoe", "d", b"", &sig));
        assert!(!verify(b"k", "jdoe", "d", b"", "not base64!"));
    }
}
