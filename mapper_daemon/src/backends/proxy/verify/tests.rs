use super::*;
use crate::config::Secret;
use crate::engine::Engine;
use accountmap_wire::{Decision, PamRequest};
use rstest::rstest;
use std::time::Duration;

const KEY: &[u8] = b"correct horse battery staple";
/// Mon, 23 Nov 2026 13:00:00 GMT
const NOW: i64 = 1_795_438_800;

fn config(skew: u64) -> ProxyConfig {
    ProxyConfig {
        hmac_key_file: "/etc/accountmap/proxy-hmac-key".into(),
        hmac_key: Secret::new(KEY.to_vec()),
        max_clock_skew: Duration::from_secs(skew),
    }
}

fn credential(key: &[u8], user: &str, date: &str) -> Vec<u8> {
    format!("{date}\n{}", proxy::sign(key, user, date, b"")).into_bytes()
}

#[rstest]
#[case::imf("Mon, 23 Nov 2026 13:00:00 GMT", Some(NOW))]
#[case::unix("1795438800", Some(NOW))]
#[case::epoch("Thu, 01 Jan 1970 00:00:00 GMT", Some(0))]
#[case::leap_day("Thu, 29 Feb 2024 12:00:00 GMT", Some(1_709_208_000))]
#[case::rfc_example("Sun, 06 Nov 1994 08:49:37 GMT", Some(784_111_777))]
#[case::wrong_weekday("Tue, 23 Nov 2026 13:00:00 GMT", None)]
#[case::no_leap_day("Thu, 29 Feb 2025 12:00:00 GMT", None)]
#[case::not_gmt("Mon, 23 Nov 2026 13:00:00 UTC", None)]
#[case::rfc850("Monday, 23-Nov-26 13:00:00 GMT", None)]
#[case::hour_25("Mon, 23 Nov 2026 25:00:00 GMT", None)]
#[case::signed("-1", None)]
#[case::empty("", None)]
#[case::too_many_digits("1234567890123", None)]
#[case::multibyte("Mon, 23 Nov 2026 13:00:00 GM\u{e9}", None)]
#[case::multibyte_at_the_comma("Mo\u{e9} 23 Nov 2026 13:00:00 GMT", None)]
fn dates(#[case] text: &str, #[case] want: Option<i64>) {
    assert_eq!(parse_date(text), want);
}

#[rstest]
#[case::imf_date("jdoe", "Mon, 23 Nov 2026 13:00:00 GMT", NOW)]
#[case::unix_date("jdoe", "1795438800", NOW)]
#[case::alias_as_handed_over("John.Doe@Company.com", "1795438800", NOW)]
#[case::skew_edge_past("jdoe", "1795438740", NOW)]
#[case::skew_edge_future("jdoe", "1795438860", NOW)]
fn a_fresh_signature_passes_once(#[case] user: &str, #[case] date: &str, #[case] now: i64) {
    let memory = ReplayMemory::new(10);
    let cred = credential(KEY, user, date);
    assert_eq!(check(&config(60), user, &cred, now, &memory), Ok(()));
    let again = check(&config(60), user, &cred, now, &memory);
    assert!(
        matches!(again, Err(ProxyRefusal::Replay { .. })),
        "{again:?}"
    );
    assert_eq!(again.unwrap_err().verdict(), Verdict::AuthFailed);
}

#[rstest]
#[case::stale(
    credential(KEY, "jdoe", "1795438739"),
    "outside the allowed clock skew"
)]
#[case::future(
    credential(KEY, "jdoe", "1795438861"),
    "outside the allowed clock skew"
)]
#[case::wrong_key(credential(b"another key", "jdoe", "1795438800"), "does not match")]
#[case::other_user(credential(KEY, "mallory", "1795438800"), "does not match")]
#[case::case_matters(credential(KEY, "JDOE", "1795438800"), "does not match")]
#[case::plain_password(b"hunter2".to_vec(), "no line break")]
#[case::garbled_signature(b"1795438800\nnot base64!".to_vec(), "not base64")]
#[case::valid_base64_wrong_mac(b"1795438800\nAAAA".to_vec(), "does not match")]
#[case::empty_signature(b"1795438800\n\n".to_vec(), "one non-empty line")]
#[case::three_lines(b"1795438800\nAAAA\nBBBB".to_vec(), "one non-empty line")]
#[case::bad_date(b"yesterday\nAAAA".to_vec(), "neither an IMF-fixdate")]
#[case::not_utf8(b"1795438800\n\xff".to_vec(), "not UTF-8")]
fn refusals(#[case] cred: Vec<u8>, #[case] reason: &str) {
    let memory = ReplayMemory::new(10);
    let got = check(&config(60), "jdoe", &cred, NOW, &memory);
    let refused = got.expect_err("must be refused");
    assert_eq!(refused.verdict(), Verdict::AuthFailed);
    assert!(refused.to_string().contains(reason), "{refused}");
    assert!(memory.is_empty(), "a refused signature is not remembered");
}

#[test]
fn a_replay_with_blanks_around_the_signature_is_refused() {
    let memory = ReplayMemory::new(10);
    let cred = credential(KEY, "jdoe", "1795438800");
    assert_eq!(check(&config(60), "jdoe", &cred, NOW, &memory), Ok(()));
    for padded in [
        [cred.as_slice(), b" "].concat(),
        [cred.as_slice(), b"\t"].concat(),
        [cred.as_slice(), b"\n"].concat(),
    ] {
        assert!(check(&config(60), "jdoe", &padded, NOW, &memory).is_err());
    }
    assert_eq!(memory.len(), 1);
}

#[test]
fn a_trailing_line_break_is_tolerated() {
    let memory = ReplayMemory::new(10);
    let mut cred = credential(KEY, "jdoe", "1795438800");
    cred.extend_from_slice(b"\r\n");
    assert_eq!(check(&config(60), "jdoe", &cred, NOW, &memory), Ok(()));
}

#[test]
fn the_reason_never_contains_the_signature() {
    let memory = ReplayMemory::new(10);
    let signature = proxy::sign(b"another key", "jdoe", "1795438800", b"");
    let cred = format!("1795438800\n{signature}");
    let refused = check(&config(60), "jdoe", cred.as_bytes(), NOW, &memory).unwrap_err();
    assert!(!refused.to_string().contains(&signature), "{refused}");
    let cred = credential(KEY, "jdoe", "1795438800");
    check(&config(60), "jdoe", &cred, NOW, &memory).unwrap();
    let replay = check(&config(60), "jdoe", &cred, NOW, &memory).unwrap_err();
    let signature = String::from_utf8_lossy(&cred[11..]).into_owned();
    assert!(!replay.to_string().contains(&signature), "{replay}");
}

#[test]
fn memory_is_bounded_and_forgets_what_the_skew_refuses_anyway() {
    let memory = ReplayMemory::new(3);
    let p = config(60);
    for i in 0..3 {
        let date = (NOW - i).to_string();
        check(&p, "jdoe", &credential(KEY, "jdoe", &date), NOW, &memory).unwrap();
    }
    // Full of unexpired signatures: a fourth is refused as Unavailable, not let through
    // by forgetting one.
    let fourth = credential(KEY, "jdoe", &(NOW - 3).to_string());
    let full = check(&p, "jdoe", &fourth, NOW, &memory).unwrap_err();
    assert_eq!(full, ProxyRefusal::ReplayMemoryFull);
    assert_eq!(full.verdict(), Verdict::Unavailable);
    // 61 s later the first three are past DATE + skew: dropped, and the new one fits.
    let later = NOW + 58;
    let fresh = credential(KEY, "jdoe", &later.to_string());
    assert_eq!(check(&p, "jdoe", &fresh, later + 3, &memory), Ok(()));
    assert_eq!(memory.len(), 1);
}

#[test]
fn concurrent_uses_of_one_signature_pass_once() {
    let memory = std::sync::Arc::new(ReplayMemory::new(100));
    let cred = credential(KEY, "jdoe", "1795438800");
    let passed: usize = (0..8)
        .map(|_| {
            let (memory, cred) = (memory.clone(), cred.clone());
            std::thread::spawn(move || check(&config(60), "jdoe", &cred, NOW, &memory).is_ok())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| usize::from(t.join().unwrap()))
        .sum();
    assert_eq!(passed, 1);
}

/// An engine over made-up users; `with_proxy` adds a `[proxy]` section with [`KEY`].
fn engine(with_proxy: bool) -> (Engine, tempfile::TempDir) {
    use crate::test_support::account;
    let proxy = if with_proxy {
        "[proxy]\nhmac_key_file = \"{dir}/proxy-hmac-key\"\nmax_clock_skew = 60\n"
    } else {
        ""
    };
    let config = format!("[daemon]\nsocket = \"/run/x.sock\"\n[access]\nminimum_uid = 1000\nrequired_groups = [\"rstudio-users\"]\n[mapping]\nrewrite = ['^UID-([a-z]+)$ $1']\n{proxy}");
    let directory = crate::backends::system::StaticDirectory::new(vec![
        account("jsmith", 1004, 1004, &["rstudio-users"]),
        account("bob", 1002, 1002, &["staff"]),
    ]);
    let key = [KEY, b"\n"].concat();
    crate::test_support::engine(&[("proxy-hmac-key", &key, 0o600)], &config, directory)
}

fn auth(e: &Engine, user: &str, cred: &[u8]) -> Decision {
    use accountmap_wire::{Credential, Phase, Request, Response, Verify};
    let req = Request::Pam(PamRequest {
        service: "rstudio".into(),
        phase: Phase::Auth,
        user: user.into(),
        rhost: String::new(),
        verify: Verify::Proxy,
        credential: Some(Credential::new(cred.to_vec())),
    });
    let root = crate::engine::Peer {
        pid: 1,
        uid: 0,
        gid: 0,
    };
    match e.handle(&root, &req) {
        Response::Decision(d) => d,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn through_the_engine() {
    let now = unix_now().to_string();
    let (e, _dir) = engine(true);
    // The signature is over the name as handed to PAM (the alias), and the decision names
    // the mapped account. Each test signs its own (user, date) pairs: the daemon's replay
    // memory is process-wide.
    let d = auth(&e, "UID-jsmith", &credential(KEY, "UID-jsmith", &now));
    assert_eq!(
        (d.verdict, d.account.as_str()),
        (Verdict::Allowed, "jsmith"),
        "{d:?}"
    );
    let d = auth(&e, "UID-jsmith", &credential(KEY, "UID-jsmith", &now));
    assert_eq!(d.verdict, Verdict::AuthFailed, "replay: {d:?}");
    let d = auth(&e, "UID-jsmith", &credential(KEY, "jsmith", &now));
    assert_eq!(d.verdict, Verdict::AuthFailed, "signed another name: {d:?}");
    // Policy comes first: a valid signature does not let bob (not in the group) in.
    let d = auth(&e, "bob", &credential(KEY, "bob", &now));
    assert_eq!(d.verdict, Verdict::PolicyDenied, "{d:?}");
    // The account phase has no credential and checks identity and policy only.
    let account = accountmap_wire::Request::Pam(PamRequest {
        service: "rstudio".into(),
        phase: accountmap_wire::Phase::Account,
        user: "UID-jsmith".into(),
        rhost: String::new(),
        verify: accountmap_wire::Verify::Proxy,
        credential: None,
    });
    let root = crate::engine::Peer {
        pid: 1,
        uid: 0,
        gid: 0,
    };
    assert!(matches!(
        e.handle(&root, &account),
        accountmap_wire::Response::Decision(d) if d.verdict == Verdict::Allowed
    ));
    // Without a [proxy] section the check cannot run: Unavailable, with the fix.
    let (e, _dir) = engine(false);
    let d = auth(&e, "jsmith", &credential(KEY, "jsmith", &now));
    assert_eq!(d.verdict, Verdict::Unavailable, "{d:?}");
    assert_eq!(d.reason, "verify=proxy needs a [proxy] section");
}
