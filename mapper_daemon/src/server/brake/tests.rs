use super::*;

#[test]
fn delays_start_after_the_free_failures_double_and_are_capped() {
    let d: Vec<u64> = (1..=12).map(|n| delay_for(n).as_millis() as u64).collect();
    assert_eq!(
        d,
        vec![0, 0, 0, 0, 0, 500, 1000, 2000, 4000, 4000, 4000, 4000]
    );
    assert_eq!(delay_for(u32::MAX), MAX_DELAY);
    assert!(MAX_DELAY < Duration::from_secs(10), "below the PAM timeout");
}

#[test]
fn the_worst_key_decides_and_a_success_clears_only_its_account() {
    let b = Brake::new(100);
    let t = Instant::now();
    let peer = Key::PeerUid(1000);
    for i in 0..FREE_FAILURES {
        let (d, _) = b.failed(&[Key::Account(format!("user{i}")), peer.clone()], t);
        assert_eq!(d, Duration::ZERO);
    }
    // A new account each time, the same peer: the peer's count brakes.
    let (d, worst) = b.failed(&[Key::Account("fresh".into()), peer.clone()], t);
    assert_eq!(d, FIRST_DELAY);
    assert_eq!(worst, Some((peer.clone(), FREE_FAILURES + 1)));
    b.succeeded("fresh");
    let (d, _) = b.failed(&[Key::Account("fresh".into()), peer], t);
    assert_eq!(d, FIRST_DELAY * 2, "the peer's count survives a success");
}

#[test]
fn failures_expire_after_the_window() {
    let b = Brake::new(100);
    let t = Instant::now();
    let k = [Key::Account("alice".into())];
    for _ in 0..10 {
        b.failed(&k, t);
    }
    assert_eq!(b.failed(&k, t).0, MAX_DELAY);
    let later = t + WINDOW + Duration::from_secs(1);
    assert_eq!(b.failed(&k, later).0, Duration::ZERO);
}

#[test]
fn a_braked_key_is_held_until_its_delay_has_run_out() {
    let b = Brake::new(100);
    let t = Instant::now();
    let k = [Key::RemoteHost("203.0.113.9".into())];
    for _ in 0..FREE_FAILURES {
        b.failed(&k, t);
    }
    assert_eq!(b.held(&k, t), None, "free failures hold nothing");
    let (d, _) = b.failed(&k, t);
    assert_eq!(d, FIRST_DELAY);
    assert_eq!(b.held(&k, t).map(|h| h.1), Some(FIRST_DELAY));
    assert_eq!(b.held(&[Key::RemoteHost("other".into())], t), None);
    assert_eq!(b.held(&k, t + FIRST_DELAY), None);
}

#[test]
fn at_most_max_sleeping_answers_are_delayed_at_once() {
    let b = std::sync::Arc::new(Brake::new(10));
    let n = MAX_SLEEPING + 8;
    let start = std::sync::Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (b, start) = (b.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                b.sleep(Duration::from_millis(500))
            })
        })
        .collect();
    let slept = handles
        .into_iter()
        .map(|h| h.join().unwrap_or(false))
        .filter(|s| *s)
        .count();
    assert!(slept <= MAX_SLEEPING, "{slept} slept at once");
    assert!(slept < n, "the excess did not sleep");
}

#[test]
fn memory_is_bounded_by_max_keys() {
    let b = Brake::new(64);
    let t = Instant::now();
    for i in 0..10_000u32 {
        b.failed(&[Key::Account(format!("spray{i}"))], t);
    }
    assert!(b.len() <= 64, "{}", b.len());
    // The most recent keys are kept.
    let (_, worst) = b.failed(&[Key::Account("spray9999".into())], t);
    assert_eq!(worst.map(|w| w.1), Some(2));
}
