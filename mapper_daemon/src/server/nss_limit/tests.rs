use super::*;

#[test]
fn the_bucket_refills_at_the_rate() {
    let l = RateLimiter::new(10, 20);
    let t0 = Instant::now();
    for i in 0..20 {
        assert_eq!(l.admit(7, t0), Admission::Admitted, "request {i}");
    }
    assert_eq!(l.admit(7, t0), Admission::Refused { warn: true });
    assert_eq!(l.admit(7, t0), Admission::Refused { warn: false });
    // 100 ms later: one more token.
    let t1 = t0 + Duration::from_millis(100);
    assert_eq!(l.admit(7, t1), Admission::Admitted);
    assert_eq!(l.admit(7, t1), Admission::Refused { warn: false });
    // A second after the first warning, the next refusal warns again.
    let t2 = t0 + Duration::from_millis(1000);
    for _ in 0..9 {
        assert_eq!(l.admit(7, t2), Admission::Admitted);
    }
    assert_eq!(l.admit(7, t2), Admission::Refused { warn: true });
    // Another uid has its own bucket.
    assert_eq!(l.admit(8, t0), Admission::Admitted);
    // A long pause refills to the burst, no further.
    let t3 = t2 + Duration::from_secs(3600);
    for _ in 0..20 {
        assert_eq!(l.admit(7, t3), Admission::Admitted);
    }
    assert!(matches!(l.admit(7, t3), Admission::Refused { .. }));
}

#[test]
fn idle_buckets_are_dropped_when_the_table_is_full() {
    let l = RateLimiter::new(10, 20);
    let t0 = Instant::now();
    for uid in 0..(MAX_BUCKETS as u32) {
        l.admit(uid, t0);
    }
    // Everyone is idle and full again a few seconds later; a new uid prunes them.
    l.admit(u32::MAX, t0 + Duration::from_secs(5));
    let n = l.buckets.lock().unwrap().len();
    assert_eq!(n, 1, "{n} buckets kept");
}
