use super::*;
use rstest::rstest;

#[test]
fn a_ticket_is_used_once_for_its_account() {
    let store = TicketStore::new(MAX_TICKETS);
    let t = Instant::now();
    let ticket = store.mint("alice", TICKET_LIFETIME, t).unwrap();
    assert!(looks_like_ticket(ticket.as_bytes()), "{ticket}");
    assert_eq!(ticket.len(), TICKET_LEN);
    assert_eq!(store.len(), 1);
    assert_eq!(store.consume(ticket.as_bytes(), "alice", t), Ok(()));
    assert_eq!(
        store.consume(ticket.as_bytes(), "alice", t),
        Err(TicketRefusal::Unknown),
        "replayed"
    );
    assert!(store.is_empty());
}

#[test]
fn another_account_or_a_late_use_is_refused_and_uses_the_ticket_up() {
    let store = TicketStore::new(MAX_TICKETS);
    let t = Instant::now();
    let ticket = store.mint("alice", TICKET_LIFETIME, t).unwrap();
    assert_eq!(
        store.consume(ticket.as_bytes(), "bob", t),
        Err(TicketRefusal::OtherAccount {
            minted_for: "alice".into()
        })
    );
    assert_eq!(
        store.consume(ticket.as_bytes(), "alice", t),
        Err(TicketRefusal::Unknown)
    );
    let late = store.mint("alice", TICKET_LIFETIME, t).unwrap();
    let after = t + TICKET_LIFETIME + Duration::from_millis(5);
    assert_eq!(
        store.consume(late.as_bytes(), "alice", after),
        Err(TicketRefusal::Expired {
            ago: Duration::from_millis(5)
        })
    );
}

#[rstest]
#[case::a_password(b"correct horse battery staple".as_slice())]
#[case::empty(b"".as_slice())]
#[case::prefix_only(b"amt1.".as_slice())]
#[case::one_short(b"amt1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".as_slice())]
#[case::bad_character(b"amt1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+A".as_slice())]
fn what_is_not_a_ticket_is_refused_as_such(#[case] text: &[u8]) {
    let store = TicketStore::new(MAX_TICKETS);
    assert_eq!(
        store.consume(text, "alice", Instant::now()),
        Err(TicketRefusal::Malformed)
    );
}

#[test]
fn tickets_are_all_different_and_never_in_a_reason() {
    let store = TicketStore::new(MAX_TICKETS);
    let t = Instant::now();
    let a = store.mint("alice", TICKET_LIFETIME, t).unwrap();
    let b = store.mint("alice", TICKET_LIFETIME, t).unwrap();
    assert_ne!(a, b);
    let refused = store.consume(a.as_bytes(), "bob", t).unwrap_err();
    assert!(!refused.to_string().contains(&a[PREFIX.len()..]));
}

#[test]
fn a_full_store_forgets_expired_tickets_but_never_a_live_one() {
    let store = TicketStore::new(2);
    let t = Instant::now();
    let first = store.mint("alice", Duration::from_secs(1), t).unwrap();
    store.mint("bob", TICKET_LIFETIME, t).unwrap();
    assert_eq!(
        store.mint("carol", TICKET_LIFETIME, t),
        Err(MintError::Full)
    );
    let later = t + Duration::from_secs(2);
    store.mint("carol", TICKET_LIFETIME, later).unwrap();
    assert_eq!(
        store.consume(first.as_bytes(), "alice", later),
        Err(TicketRefusal::Unknown),
        "the expired one made room"
    );
}
