use super::*;
use rstest::rstest;

fn host(h: &str) -> Source {
    Source::RemoteHost(h.into())
}

/// Fails `n` admitted checks of `account` from `source` at `now`; returns how many were admitted.
fn fail(b: &Brake, account: &str, source: &Source, n: usize, now: Instant) -> usize {
    (0..n)
        .filter(|_| match b.admit(account, source, now) {
            Ok(t) => {
                b.settle(t, Outcome::Failed, now);
                true
            }
            Err(_) => false,
        })
        .count()
}

fn allow(b: &Brake, account: &str, source: &Source, now: Instant) -> Result<(), Held> {
    let t = b.admit(account, source, now)?;
    b.settle(t, Outcome::Allowed, now);
    Ok(())
}

#[rstest]
#[case::one_host(false)]
#[case::a_new_host_each_time(true)]
fn an_account_gets_its_burst_then_one_check_per_refill(#[case] new_host_each_time: bool) {
    let b = Brake::new(MAX_KEYS);
    let t = Instant::now();
    let source = |i: usize| {
        host(&if new_host_each_time {
            format!("h{i}")
        } else {
            "h".into()
        })
    };
    let admitted = (0..100)
        .filter(|&i| fail(&b, "alice", &source(i), 1, t) == 1)
        .count();
    // The source's own budget (10) is larger than the account's (5): the account's decides.
    assert_eq!(admitted, BURST as usize);
    let held = b.admit("alice", &source(100), t).unwrap_err();
    assert_eq!(held.budget, Budget::Account("alice".into()));
    assert_eq!(held.retry_in, REFILL);
    // One refill later, exactly one more check.
    let later = t + REFILL;
    assert_eq!(fail(&b, "alice", &source(101), 10, later), 1);
    // Another account is not touched.
    assert_eq!(fail(&b, "bob", &host("h-bob"), 10, t), BURST as usize);
}

#[test]
fn a_success_gives_the_token_back_and_makes_the_source_familiar() {
    let b = Brake::new(MAX_KEYS);
    let t = Instant::now();
    for _ in 0..20 {
        allow(&b, "alice", &host("home"), t).expect("successes never spend the budget");
    }
    // An attacker spends the account's shared budget from elsewhere ...
    assert_eq!(fail(&b, "alice", &host("evil"), 50, t), BURST as usize);
    assert!(b.admit("alice", &host("elsewhere"), t).is_err());
    // ... but alice's own host has a budget of its own.
    allow(&b, "alice", &host("home"), t).expect("the familiar source is not locked out");
    // Even its own typos do not touch the shared budget, and are braked on their own.
    assert_eq!(fail(&b, "alice", &host("home"), 50, t), BURST as usize);
    let held = b.admit("alice", &host("home"), t).unwrap_err();
    assert_eq!(held.budget, Budget::Familiar("alice".into(), host("home")));
}

#[test]
fn familiarity_expires() {
    let b = Brake::new(MAX_KEYS);
    let t = Instant::now();
    allow(&b, "alice", &host("home"), t).unwrap();
    let much_later = t + FAMILIAR_FOR + Duration::from_secs(1);
    assert_eq!(
        fail(&b, "alice", &host("evil"), 50, much_later),
        BURST as usize
    );
    assert!(b.admit("alice", &host("home"), much_later).is_err());
}

#[rstest]
#[case::inconclusive(Outcome::Inconclusive, true)]
#[case::allowed(Outcome::Allowed, true)]
#[case::failed(Outcome::Failed, false)]
fn only_a_failure_spends_a_token(#[case] outcome: Outcome, #[case] refunded: bool) {
    let b = Brake::new(MAX_KEYS);
    let t = Instant::now();
    for _ in 0..BURST {
        let ticket = b.admit("alice", &Source::Local, t).unwrap();
        b.settle(ticket, outcome, t);
    }
    assert_eq!(b.admit("alice", &Source::Local, t).is_ok(), refunded);
}

#[test]
fn a_spraying_source_is_braked_over_all_accounts() {
    let b = Brake::new(MAX_KEYS);
    let t = Instant::now();
    let admitted = (0..100)
        .filter(|i| fail(&b, &format!("user{i}"), &host("sprayer"), 1, t) == 1)
        .count();
    assert_eq!(admitted, SOURCE_BURST as usize);
    // Local services have no source budget: they are everyone.
    let admitted = (0..100)
        .filter(|i| fail(&b, &format!("user{i}"), &Source::Local, 1, t) == 1)
        .count();
    assert_eq!(admitted, 100);
}

#[test]
fn parallel_attempts_cannot_overdraw_a_budget() {
    let b = std::sync::Arc::new(Brake::new(MAX_KEYS));
    let t = Instant::now();
    let admitted: usize = (0..16)
        .map(|i| {
            let b = b.clone();
            std::thread::spawn(move || fail(&b, "alice", &host(&format!("h{i}")), 10, t))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(admitted, BURST as usize);
}

#[test]
fn memory_is_bounded_and_keeps_what_matters() {
    let b = Brake::new(64);
    let t = Instant::now();
    // The attacked account's budget is spent, then touched again after a flood of new sources.
    assert_eq!(fail(&b, "alice", &Source::Local, 10, t), BURST as usize);
    let mut now = t;
    for i in 0..1000 {
        now += Duration::from_micros(100);
        let _ = fail(&b, &format!("u{i}"), &host(&format!("h{i}")), 1, now);
        let _ = b
            .admit("alice", &Source::Local, now)
            .map(|k| b.settle(k, Outcome::Failed, now));
    }
    assert!(b.len() <= 64 + 1, "{}", b.len());
    assert!(
        b.admit("alice", &Source::Local, now).is_err(),
        "the flood evicted the attacked account's budget"
    );
}

#[test]
fn the_refusal_names_the_budget_and_when_to_retry() {
    let held = Held {
        budget: Budget::Account("alice".into()),
        retry_in: Duration::from_millis(1500),
        busy: false,
    };
    assert_eq!(
        held.to_string(),
        "refused unchecked by the brute-force brake: the failure budget of account \"alice\" \
         is spent (the next check in 1500 ms)"
    );
}

#[test]
fn a_clock_reading_older_than_the_last_one_adds_no_tokens() {
    let b = Brake::new(MAX_KEYS);
    let t = Instant::now();
    let later = t + REFILL;
    assert_eq!(fail(&b, "alice", &Source::Local, 10, t), BURST as usize);
    assert_eq!(fail(&b, "alice", &Source::Local, 10, later), 1);
    // A thread that read the clock before `later` but took the lock after it.
    assert_eq!(fail(&b, "alice", &Source::Local, 10, t), 0);
    assert_eq!(
        fail(&b, "alice", &Source::Local, 10, later),
        0,
        "the interval was credited twice"
    );
}

#[test]
fn refusals_unchecked_are_logged_ten_a_second_with_a_count() {
    let b = Brake::new(MAX_KEYS);
    let t = Instant::now();
    for _ in 0..UNCHECKED_LOG_LINES {
        assert_eq!(b.log_unchecked(t), Some(0));
    }
    for _ in 0..100 {
        assert_eq!(b.log_unchecked(t + Duration::from_millis(500)), None);
    }
    assert_eq!(b.log_unchecked(t + UNCHECKED_LOG_INTERVAL), Some(100));
    assert_eq!(b.log_unchecked(t + UNCHECKED_LOG_INTERVAL), Some(0));
}

#[test]
fn concurrent_right_passwords_wait_for_checks_in_progress_instead_of_being_refused() {
    let b = std::sync::Arc::new(Brake::new(MAX_KEYS));
    let allowed: usize = (0..16)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || {
                (0..20)
                    .filter(|_| {
                        match b.admit_within("alice", &Source::Local, Duration::from_secs(5)) {
                            Ok(t) => {
                                std::thread::sleep(Duration::from_millis(2));
                                b.settle(t, Outcome::Allowed, Instant::now());
                                true
                            }
                            Err(_) => false,
                        }
                    })
                    .count()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(allowed, 16 * 20);
}

#[test]
fn a_spent_budget_is_refused_at_once_and_a_busy_one_says_so() {
    let b = Brake::new(MAX_KEYS);
    let t = Instant::now();
    let tickets: Vec<Ticket> = (0..BURST)
        .map(|_| b.admit("alice", &Source::Local, t).unwrap())
        .collect();
    let busy = b.admit("alice", &Source::Local, t).unwrap_err();
    assert!(
        busy.busy && busy.to_string().contains("in progress"),
        "{busy}"
    );
    for ticket in tickets {
        b.settle(ticket, Outcome::Failed, t);
    }
    let started = Instant::now();
    let spent = b
        .admit_within("alice", &Source::Local, Duration::from_secs(5))
        .unwrap_err();
    assert!(!spent.busy, "{spent}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a spent budget must not wait"
    );
}
