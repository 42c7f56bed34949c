use super::*;
use crate::memcache::{Kind, FILE_WORDS};
use std::sync::atomic::AtomicU64;

const SEC: u64 = 1_000_000_000;

fn words() -> Vec<AtomicU64> {
    (0..FILE_WORDS).map(|_| AtomicU64::new(0)).collect()
}

fn decision(verdict: Verdict, uid: Option<u32>) -> Decision {
    Decision {
        verdict,
        account: "alice".into(),
        uid,
        reason: "allowed (uid 1001 >= 1000, member of rstudio-users)".into(),
        rule: "rewrite rule 2".into(),
        groups: Vec::new(),
    }
}

#[test]
fn a_decision_round_trips_until_it_expires() {
    let w = words();
    let mut t = TableWriter::of(Kind::Policy, &w).unwrap();
    t.init([1, 2], [3, 4]);
    for (name, d) in [
        ("alice@company.com", decision(Verdict::Allowed, Some(1001))),
        ("bob", decision(Verdict::PolicyDenied, Some(1002))),
        ("nouid", decision(Verdict::PolicyDenied, None)),
    ] {
        assert!(insert(&mut t, name, &d, 10 * SEC, SEC));
        assert_eq!(lookup(&t.table(), name, 2 * SEC), Some(d), "{name}");
        assert_eq!(lookup(&t.table(), name, 11 * SEC), None, "{name} expired");
    }
    assert_eq!(
        lookup(&t.table(), "ALICE@company.com", 2 * SEC),
        None,
        "exact names"
    );
}

#[test]
fn only_policy_verdicts_are_kept() {
    let w = words();
    let mut t = TableWriter::of(Kind::Policy, &w).unwrap();
    t.init([1, 2], [3, 4]);
    for v in [
        Verdict::UserUnknown,
        Verdict::AuthFailed,
        Verdict::Unavailable,
        Verdict::BadInput,
        Verdict::AccountExpired,
        Verdict::NewAuthtokRequired,
    ] {
        assert!(
            !insert(&mut t, "x", &decision(v, Some(1)), 10 * SEC, SEC),
            "{v:?}"
        );
    }
    assert_eq!(t.table().live(SEC), 0);
}

#[test]
fn a_passwd_file_is_not_a_decision_table() {
    let w = words();
    let mut t = TableWriter::of(Kind::Passwd, &w).unwrap();
    t.init([1, 2], [3, 4]);
    assert!(!Table::of(Kind::Policy, &w).unwrap().layout_ok());
    assert!(Table::of(Kind::Passwd, &w).unwrap().layout_ok());
}
