use super::*;
use rstest::rstest;

/// 2026-12-07, the day these tests were written, and a fixed "now" for every case.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_601_600)
}

fn state(attrs: &[(&str, &str)]) -> AccountState {
    AccountState::from_attributes(
        |name| {
            attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        },
        now(),
    )
}

/// FILETIME ticks of `t`.
fn ticks(t: SystemTime) -> String {
    let unix = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    ((unix + FILETIME_TO_UNIX) * 10_000_000).to_string()
}

#[rstest]
#[case::enabled_ad_user(&[("userAccountControl", "512"), ("pwdLastSet", "134000000000000000"), ("accountExpires", "9223372036854775807")], None)]
#[case::never_expires_zero(&[("accountExpires", "0")], None)]
#[case::disabled(&[("userAccountControl", "514")], Some((Verdict::PolicyDenied, "ACCOUNTDISABLE")))]
#[case::locked(&[("userAccountControl", "512"), ("msDS-User-Account-Control-Computed", "16")], Some((Verdict::PolicyDenied, "LOCKOUT")))]
#[case::password_expired(&[("msDS-User-Account-Control-Computed", "8388608")], Some((Verdict::NewAuthtokRequired, "PASSWORD_EXPIRED")))]
#[case::must_change(&[("userAccountControl", "512"), ("pwdLastSet", "0")], Some((Verdict::NewAuthtokRequired, "pwdLastSet is 0")))]
#[case::must_change_named_before_the_computed_flag(&[("pwdLastSet", "0"), ("msDS-User-Account-Control-Computed", "8388608")], Some((Verdict::NewAuthtokRequired, "pwdLastSet is 0")))]
#[case::disabled_wins_over_must_change(&[("userAccountControl", "514"), ("pwdLastSet", "0")], Some((Verdict::PolicyDenied, "ACCOUNTDISABLE")))]
#[case::ppolicy_admin_lock(&[("pwdAccountLockedTime", "000001010000Z")], Some((Verdict::PolicyDenied, "locked by an administrator")))]
#[case::ppolicy_timed_lock_left_to_the_bind(&[("pwdAccountLockedTime", "20261207101500Z")], None)]
#[case::ppolicy_reset(&[("pwdReset", "TRUE")], Some((Verdict::NewAuthtokRequired, "pwdReset")))]
#[case::shadow_must_change(&[("shadowLastChange", "0")], Some((Verdict::NewAuthtokRequired, "shadowLastChange is 0")))]
#[case::shadow_password_expired(&[("shadowLastChange", "20000"), ("shadowMax", "90")], Some((Verdict::NewAuthtokRequired, "the password has expired")))]
#[case::shadow_password_fresh(&[("shadowLastChange", "20790"), ("shadowMax", "90")], None)]
#[case::shadow_max_99999_is_never(&[("shadowLastChange", "1"), ("shadowMax", "99999")], None)]
#[case::shadow_expired(&[("shadowExpire", "20000")], Some((Verdict::AccountExpired, "shadowExpire 20000")))]
#[case::shadow_expires_later(&[("shadowExpire", "30000")], None)]
#[case::garbage_is_ignored(&[("userAccountControl", "lots"), ("accountExpires", "-5"), ("pwdLastSet", "")], None)]
fn directory_attributes_give_the_account_state(
    #[case] attrs: &[(&str, &str)],
    #[case] want: Option<(Verdict, &str)>,
) {
    let got = state(attrs).refusal(now());
    match (got, want) {
        (None, None) => {}
        (Some((v, reason)), Some((want_v, want_text))) => {
            assert_eq!(v, want_v, "{reason}");
            assert!(reason.contains(want_text), "{reason:?} lacks {want_text:?}");
        }
        (got, want) => panic!("{got:?}, expected {want:?}"),
    }
}

#[test]
fn account_expires_is_read_at_decision_time() {
    let tomorrow = now() + Duration::from_secs(86_400);
    let s = state(&[("accountExpires", &ticks(tomorrow))]);
    assert_eq!(s.refusal(now()), None);
    let (verdict, reason) = s
        .refusal(tomorrow + Duration::from_secs(3 * 86_400))
        .unwrap();
    assert_eq!(verdict, Verdict::AccountExpired);
    assert!(reason.contains("expired 3 day(s) ago"), "{reason}");
}

#[rstest]
#[case::must_change(
    "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 773, v4563",
    Some(Verdict::NewAuthtokRequired)
)]
#[case::disabled(
    "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 533, v4563",
    Some(Verdict::PolicyDenied)
)]
#[case::expired(
    "... AcceptSecurityContext error, data 701, v893",
    Some(Verdict::AccountExpired)
)]
#[case::locked(
    "... AcceptSecurityContext error, data 775, v893",
    Some(Verdict::PolicyDenied)
)]
#[case::password_expired(
    "... AcceptSecurityContext error, data 532, v893",
    Some(Verdict::NewAuthtokRequired)
)]
#[case::wrong_password("... AcceptSecurityContext error, data 52e, v893", None)]
#[case::openldap("", None)]
fn ad_bind_refusals_are_told_apart(#[case] text: &str, #[case] want: Option<Verdict>) {
    assert_eq!(ad_bind_refusal(text).map(|(v, _)| v), want);
}
