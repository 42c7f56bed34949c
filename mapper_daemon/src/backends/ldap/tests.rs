use super::directory::{rdn_value, Directory};
use super::pool::BindPool;
use super::*;
use crate::config::MemberAttribute;
use ldap3::{ldap_escape, Ldap, LdapConnAsync};
use rstest::rstest;
use std::time::Instant;

#[test]
fn membership_filters_escape_what_they_quote() {
    assert_eq!(
        Directory::membership_filter(None, "uid=a*,ou=P\\2c,dc=x", ")(uid=*"),
        "(|(member=uid=a\\2a,ou=P\\5c2c,dc=x)(uniqueMember=uid=a\\2a,ou=P\\5c2c,dc=x)(memberUid=\\29\\28uid=\\2a))"
    );
    assert_eq!(ldap_escape("a\0b"), "a\\00b");
}

#[rstest]
#[case::member(Some(MemberAttribute::Member), "(member=uid=a\\2a,dc=x)")]
#[case::unique_member(Some(MemberAttribute::UniqueMember), "(uniqueMember=uid=a\\2a,dc=x)")]
#[case::member_uid(Some(MemberAttribute::MemberUid), "(memberUid=a\\2a)")]
fn one_member_attribute_makes_a_filter_of_one_term(
    #[case] attribute: Option<MemberAttribute>,
    #[case] filter: &str,
) {
    assert_eq!(
        Directory::membership_filter(attribute, "uid=a*,dc=x", "a*"),
        filter
    );
}

#[test]
fn the_rdn_value_is_read_only_when_plain() {
    assert_eq!(rdn_value("uid=jdoe,ou=People,dc=x", "UID"), Some("jdoe"));
    assert_eq!(rdn_value("cn=John Doe,ou=People,dc=x", "uid"), None);
    assert_eq!(rdn_value("uid=a\\2cb,dc=x", "uid"), None);
    assert_eq!(rdn_value("uid=a+cn=b,dc=x", "uid"), None);
    assert_eq!(rdn_value("", "uid"), None);
}

fn section(name: &str) -> LdapConfig {
    LdapConfig {
        name: name.into(),
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        server_address: vec!["127.0.0.1:1".into()],
        tls: false,
        start_tls: false,
        tls_ca_certificate: None,
        server_tls_insecure: false,
        tls_client_certificate: None,
        tls_client_key: None,
        bind_dn: None,
        bind_password_file: None,
        bind_password: None,
        anonymous_bind: true,
        user_search_base_dn: "dc=x".into(),
        user_object_class: "posixAccount".into(),
        username_attribute: "uid".into(),
        user_email_attributes: vec!["mail".into()],
        group_search_base_dn: None,
        group_object_class: "posixGroup".into(),
        group_name_attribute: "cn".into(),
        group_member_attribute: None,
        whitelisted_login_groups: Vec::new(),
        nested_groups: crate::config::NestedGroups::Auto,
    }
}

fn backend(ttl: Duration) -> LdapBackend {
    LdapBackend::new(&[section("corp")], Duration::from_secs(1), ttl, ttl, true)
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_directory_is_an_error_and_a_cached_answer_is_served_stale() {
    let b = backend(Duration::from_secs(60));
    let err = b.lookup("alice").unwrap_err();
    assert!(
        err.contains("ldap \"corp\"") && err.contains("127.0.0.1:1"),
        "{err}"
    );
    let alice = LdapIdentity {
        directory: "corp".into(),
        dn: "uid=alice,dc=x".into(),
        account: "alice".into(),
        groups: vec![],
        whitelisted: true,
        single_bind: false,
        state: Default::default(),
    };
    // An expired answer, as if cached before the directory went down.
    b.remember("alice", Some(alice.clone()), Instant::now());
    assert_eq!(
        b.lookup("alice").unwrap(),
        (Some(alice.clone()), Freshness::Stale)
    );
    b.remember(
        "alice",
        Some(alice.clone()),
        Instant::now() + Duration::from_secs(60),
    );
    assert_eq!(b.lookup("alice").unwrap(), (Some(alice), Freshness::Cached));
    let status = b.status();
    assert!(
        status
            .iter()
            .any(|(k, v)| k == "ldap corp 127.0.0.1:1" && v.starts_with("unreachable: ")),
        "{status:?}"
    );
    assert_eq!(b.flush(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_checked_for_use_before_any_connection() {
    let b = backend(Duration::ZERO);
    let id = LdapIdentity {
        directory: "corp".into(),
        dn: "uid=alice,dc=x".into(),
        account: "alice".into(),
        groups: vec![],
        whitelisted: true,
        single_bind: false,
        state: Default::default(),
    };
    for bad in [&b""[..], b"a\0b", b"\xff\xfe"] {
        assert!(matches!(
            b.check_password(&id, bad),
            PasswordCheck::Refused(_)
        ));
    }
    assert!(matches!(
        b.check_password(&id, b"right"),
        PasswordCheck::Unavailable(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_lookups_in_flight_share_one_round_trip() {
    // A listener that never accepts: connections complete in the backlog and then no LDAP
    // answer ever comes, so every look-up runs into the operation timeout (1 s) and the
    // eight callers overlap for certain.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut s = section("corp");
    s.server_address = vec![silent.local_addr().unwrap().to_string()];
    let b = Arc::new(
        LdapBackend::new(
            &[s],
            Duration::from_secs(1),
            Duration::ZERO,
            Duration::ZERO,
            true,
        )
        .unwrap()
        .unwrap(),
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let b = b.clone();
            tokio::task::spawn_blocking(move || b.lookup("alice"))
        })
        .collect();
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(err.contains("within 1s"), "{err}");
    }
    assert_eq!(
        b.lookups.load(Ordering::Relaxed),
        1,
        "one round trip for all"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // and the next one, after the first finished, is a round trip of its own
    let b2 = b.clone();
    tokio::task::spawn_blocking(move || b2.lookup("alice"))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(b.lookups.load(Ordering::Relaxed), 2);
}

#[test]
fn single_bind_dns_escape_the_account() {
    let mut s = section("corp");
    s.anonymous_bind = false;
    s.user_search_base_dn = "ou=People,dc=x".into();
    let dn = |a: &str| single_bind_dn(&s, a);
    assert_eq!(dn("alice"), "uid=alice,ou=People,dc=x");
    // every name a local account may have needs no escaping
    assert_eq!(dn("john.doe_1-x$"), "uid=john.doe_1-x$,ou=People,dc=x");
    // an RDN cannot be injected: separators and '=' stay part of the value
    assert_eq!(dn("a,ou=x"), "uid=a\\2cou\\3dx,ou=People,dc=x");
    assert_eq!(dn("a+cn=b"), "uid=a\\2bcn\\3db,ou=People,dc=x");
    assert_eq!(dn("a;b"), "uid=a\\3bb,ou=People,dc=x");
    assert_eq!(dn("\\\"<>\0"), "uid=\\5c\\22\\3c\\3e\\00,ou=People,dc=x");
    assert_eq!(dn("#a b "), "uid=\\23a b\\20,ou=People,dc=x");
    assert_eq!(dn(" a"), "uid=\\20a,ou=People,dc=x");
    s.username_attribute = "sAMAccountName".into();
    assert_eq!(
        single_bind_dn(&s, "jdoe"),
        "sAMAccountName=jdoe,ou=People,dc=x"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_bind_directory_is_not_searched_and_says_so_in_status() {
    let mut s = section("corp");
    s.anonymous_bind = false;
    assert!(s.single_bind());
    let b = LdapBackend::new(
        &[s],
        Duration::from_secs(1),
        Duration::from_secs(60),
        Duration::from_secs(60),
        true,
    )
    .unwrap()
    .unwrap();
    assert!(b.has_single_bind());
    // step 5: not asked (the only address refuses connections, so asking would fail)
    assert_eq!(b.lookup("alice").unwrap(), (None, Freshness::Fresh));
    assert_eq!(b.lookups.load(Ordering::Relaxed), 0);
    // a password: the empty one and NUL bytes are refused before any connection, a
    // usable one reaches the (dead) server
    for bad in [&b""[..], b"a\0b", b"\xff"] {
        assert!(
            matches!(b.single_bind("alice", bad), SingleBind::Refused(_)),
            "{bad:?}"
        );
    }
    match b.single_bind("alice", b"pw") {
        SingleBind::Unavailable(e) => assert!(e.contains("127.0.0.1:1"), "{e}"),
        other => panic!("{other:?}"),
    }
    let status = b.status();
    assert!(
        status
            .iter()
            .any(|(k, v)| k == "ldap corp bind"
                && v.starts_with("single bind as uid=<account>,dc=x")),
        "{status:?}"
    );
}

/// A plain-LDAP connection to a listener that accepts and says nothing (connecting sends
/// nothing, so this is a usable `Ldap` handle), and the server's end of it.
async fn idle_connection(listener: &tokio::net::TcpListener) -> (Ldap, tokio::net::TcpStream) {
    let url = format!("ldap://{}", listener.local_addr().unwrap());
    let (connected, accepted) = tokio::join!(LdapConnAsync::new(&url), listener.accept());
    let (conn, ldap) = connected.unwrap();
    ldap3::drive!(conn);
    (ldap, accepted.unwrap().0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bind_pool_is_bounded_and_drops_expired_and_closed_connections() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pool = Arc::new(BindPool::new(2));
    let mut server_ends = Vec::new();
    for _ in 0..BIND_POOL_SIZE + 3 {
        let (ldap, server) = idle_connection(&listener).await;
        server_ends.push(server);
        pool.put(1, ldap);
    }
    // at most BIND_POOL_SIZE kept, per address
    assert_eq!(pool.idle_counts(), vec![0, BIND_POOL_SIZE]);
    assert!(pool.take(0).is_none());
    let taken = pool.take(1).expect("an idle connection");
    assert_eq!(pool.idle_counts(), vec![0, BIND_POOL_SIZE - 1]);
    pool.put(1, taken);
    // a sweep keeps fresh ones
    assert!(!pool.sweep());
    assert_eq!(pool.idle_counts(), vec![0, BIND_POOL_SIZE]);
    // the server closes them all (a restart): neither taken nor kept
    server_ends.clear();
    let closed = Instant::now();
    while pool.idle_counts() != vec![0, 0] && closed.elapsed() < Duration::from_secs(5) {
        pool.sweep();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pool.idle_counts(), vec![0, 0]);
    assert!(pool.take(1).is_none());
    assert!(
        !pool.sweeping.load(Ordering::SeqCst),
        "the sweeper stops when empty"
    );
    // expired ones are neither taken nor kept
    let (ldap, _server) = idle_connection(&listener).await;
    pool.put(0, ldap);
    let (ldap, _server2) = idle_connection(&listener).await;
    pool.put(0, ldap);
    assert!(
        pool.sweeping.load(Ordering::SeqCst),
        "a put starts the sweeper"
    );
    pool.age(BIND_IDLE);
    assert!(pool.take(0).is_none());
    assert_eq!(pool.idle_counts(), vec![0, 0]);
    let (ldap, _server3) = idle_connection(&listener).await;
    pool.put(0, ldap);
    pool.age(BIND_IDLE);
    assert!(pool.sweep());
    assert_eq!(pool.idle_counts(), vec![0, 0]);
}

#[test]
fn a_missing_ca_file_is_an_error() {
    let mut s = section("corp");
    s.tls = true;
    s.tls_ca_certificate = Some("/nonexistent/ca.pem".into());
    let err = LdapBackend::new(
        &[s],
        Duration::from_secs(1),
        Duration::ZERO,
        Duration::ZERO,
        true,
    )
    .err()
    .unwrap_or_default();
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}
