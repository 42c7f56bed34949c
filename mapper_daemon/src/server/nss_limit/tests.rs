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

#[rstest::rstest]
#[case::setuid_root(
    "Name:\tsu\nUid:\t65534\t0\t0\t0\nGid:\t65534\t65534\t65534\t65534\n",
    Some(65534)
)]
#[case::root("Name:\tsshd\nUid:\t0\t0\t0\t0\n", Some(0))]
#[case::no_uid_line("Name:\tx\n", None)]
#[case::garbage("Uid:\tx\t0\n", None)]
fn the_real_uid_is_read_from_the_status_file(#[case] status: &str, #[case] want: Option<u32>) {
    assert_eq!(real_uid(status), want);
}

#[test]
fn this_process_pays_with_its_real_uid_and_a_gone_one_pays_nothing() {
    // SAFETY: getuid cannot fail and has no preconditions.
    let me = unsafe { libc::getuid() };
    let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    // Whatever SO_PEERCRED said (here: a made-up effective uid), the real uid pays.
    assert_eq!(payer(pid, 4242), Payer::Uid(me));
    // An unknown pid namespace: the peer uid pays.
    assert_eq!(payer(0, 4242), Payer::Uid(4242));
    // A child that has exited and been reaped: its pid is gone.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = i32::try_from(child.id()).unwrap_or(i32::MAX);
    child.wait().unwrap();
    assert_eq!(payer(gone, 0), Payer::Gone);
}
