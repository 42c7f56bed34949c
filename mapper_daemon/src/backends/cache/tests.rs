use super::*;
use std::sync::atomic::AtomicBool;

struct Flaky {
    calls: AtomicU64,
    down: AtomicBool,
}

impl Directory for Flaky {
    fn account(&self, name: &str) -> Result<Option<Account>, LookupError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.down.load(Ordering::Relaxed) {
            return Err(LookupError::Failed("directory down".into()));
        }
        Ok((name == "alice").then(|| Account {
            name: "alice".into(),
            uid: 1001,
            gid: 1001,
            gecos: String::new(),
            dir: "/home/alice".into(),
            shell: "/bin/sh".into(),
            groups: vec!["alice".into()],
        }))
    }

    fn name_of_uid(&self, uid: u32) -> Result<Option<String>, LookupError> {
        Ok((uid == 1001).then(|| "alice".to_string()))
    }
}

fn flaky() -> Arc<Flaky> {
    Arc::new(Flaky {
        calls: AtomicU64::new(0),
        down: AtomicBool::new(false),
    })
}

#[test]
fn answers_are_reused_within_their_ttl() {
    let dir = flaky();
    let cache = CachedDirectory::new(
        dir.clone(),
        Duration::from_secs(60),
        Duration::from_secs(60),
    );
    for _ in 0..3 {
        assert!(cache.account("alice").unwrap().0.is_some());
        assert!(cache.account("nobody").unwrap().0.is_none());
    }
    assert_eq!(dir.calls.load(Ordering::Relaxed), 2);
    let stats = cache.stats();
    assert_eq!((stats.entries, stats.hits, stats.misses), (2, 4, 2));
    assert_eq!(cache.flush(), 2);
    assert!(cache.account("alice").unwrap().0.is_some());
    assert_eq!(dir.calls.load(Ordering::Relaxed), 3);
}

#[test]
fn zero_ttl_means_no_caching() {
    let dir = flaky();
    let cache = CachedDirectory::new(dir.clone(), Duration::ZERO, Duration::ZERO);
    cache.account("alice").unwrap();
    cache.account("alice").unwrap();
    assert_eq!(dir.calls.load(Ordering::Relaxed), 2);
}

#[test]
fn expired_answers_are_served_stale_while_the_directory_is_down() {
    let dir = flaky();
    let cache = CachedDirectory::new(
        dir.clone(),
        Duration::from_millis(1),
        Duration::from_millis(1),
    );
    assert_eq!(cache.account("alice").unwrap().1, Freshness::Fresh);
    std::thread::sleep(Duration::from_millis(5));
    dir.down.store(true, Ordering::Relaxed);
    let (value, freshness) = cache.account("alice").unwrap();
    assert_eq!(
        (value.map(|a| a.uid), freshness),
        (Some(1001), Freshness::Stale)
    );
    assert!(cache.account("never-seen").is_err());
}

#[test]
fn jitter_stays_within_a_tenth() {
    for name in ["a", "alice", "bob@example.com", ""] {
        let j = jitter(Duration::from_secs(300), name);
        assert!(
            j <= Duration::from_secs(300) && j >= Duration::from_secs(270),
            "{name}: {j:?}"
        );
    }
}

#[test]
fn an_idle_purge_keeps_fresh_positive_answers_only_and_shrinks_the_table() {
    let cache: TtlCache<u32> = TtlCache::new(Duration::from_secs(300), Duration::from_secs(300));
    let now = Instant::now();
    for i in 0..10_000u32 {
        cache.insert(
            &format!("made-up-{i}"),
            None,
            now + Duration::from_secs(300),
        );
    }
    cache.insert("alice", Some(1001), now + Duration::from_secs(300));
    cache.insert("old", Some(1), now);
    let before = cache.lock().capacity();
    cache.purge_idle(now + Duration::from_secs(1));
    let map = cache.lock();
    assert_eq!(map.keys().collect::<Vec<_>>(), [&"alice".to_string()]);
    assert!(
        map.capacity() < before / 10,
        "{} of {before}",
        map.capacity()
    );
}

#[test]
fn made_up_names_take_at_most_max_negative_entries() {
    let cache: TtlCache<u32> = TtlCache::new(Duration::from_secs(300), Duration::from_secs(300));
    let later = Instant::now() + Duration::from_secs(300);
    cache.insert("alice", Some(1001), later);
    let mut most = 0;
    for i in 0..(3 * MAX_NEGATIVE) {
        cache.insert(&format!("made-up-{i}"), None, later);
        most = most.max(cache.lock().len());
    }
    assert!(most <= MAX_NEGATIVE + 1, "{most} entries at once");
    assert!(cache.lock().contains_key("alice"), "real answers are kept");
    // A name that turns out to exist replaces its negative answer and is counted out.
    cache.insert("made-up-0", None, later);
    cache.insert("made-up-0", Some(7), later);
    let negatives = cache.lock().values().filter(|e| e.value.is_none()).count();
    assert_eq!(cache.negatives.load(Ordering::Relaxed), negatives);
}
