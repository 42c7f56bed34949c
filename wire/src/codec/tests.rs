use super::*;
use rstest::rstest;

// The op bytes the malformed-body cases below are written with.
const OP_PAM: u8 = RequestOp::Pam as u8;
const OP_RESOLVE: u8 = RequestOp::Resolve as u8;
const OP_STATUS: u8 = RequestOp::Status as u8;
const OP_GETPWNAM: u8 = RequestOp::Getpwnam as u8;
const OP_DECISION: u8 = ResponseOp::Decision as u8;
const OP_PASSWD: u8 = ResponseOp::Passwd as u8;

/// Every wire enum against its bytes as written out here, independently of the
/// declarations (a changed discriminant changes the wire format and fails): each variant's
/// byte, each variant back from its byte, and every other byte refused with the error the
/// decoder has always given for it.
#[rstest]
#[case::phase(
    &[(Phase::Auth as u8, 1), (Phase::Account as u8, 2)],
    Phase::ALL.len(),
    |b| Phase::try_from(b).map(|v| v as u8),
    |_| DecodeError::BadValue("phase"),
)]
#[case::verify(
    &[
        (Verify::None as u8, 0),
        (Verify::Ldap as u8, 1),
        (Verify::Oidc as u8, 2),
        (Verify::Device as u8, 3),
        (Verify::Proxy as u8, 4),
        (Verify::Ticket as u8, 5),
    ],
    Verify::ALL.len(),
    |b| Verify::try_from(b).map(|v| v as u8),
    |_| DecodeError::BadValue("verify"),
)]
#[case::verdict(
    &[
        (Verdict::Allowed as u8, 0),
        (Verdict::UserUnknown as u8, 1),
        (Verdict::PolicyDenied as u8, 2),
        (Verdict::AuthFailed as u8, 3),
        (Verdict::Unavailable as u8, 4),
        (Verdict::BadInput as u8, 5),
        (Verdict::AccountExpired as u8, 6),
        (Verdict::NewAuthtokRequired as u8, 7),
    ],
    Verdict::ALL.len(),
    |b| Verdict::try_from(b).map(|v| v as u8),
    |_| DecodeError::BadValue("verdict"),
)]
#[case::request_op(
    &[
        (RequestOp::Pam as u8, 0x01),
        (RequestOp::Resolve as u8, 0x02),
        (RequestOp::Status as u8, 0x03),
        (RequestOp::CacheFlush as u8, 0x04),
        (RequestOp::Getpwnam as u8, 0x05),
        (RequestOp::DeviceStart as u8, 0x06),
        (RequestOp::DevicePoll as u8, 0x07),
        (RequestOp::IssueTicket as u8, 0x08),
    ],
    RequestOp::ALL.len(),
    |b| RequestOp::try_from(b).map(|v| v as u8),
    DecodeError::UnknownOp,
)]
#[case::response_op(
    &[
        (ResponseOp::Decision as u8, 0x81),
        (ResponseOp::Status as u8, 0x83),
        (ResponseOp::Flushed as u8, 0x84),
        (ResponseOp::Passwd as u8, 0x85),
        (ResponseOp::DeviceStarted as u8, 0x86),
        (ResponseOp::DevicePending as u8, 0x87),
        (ResponseOp::Ticket as u8, 0x88),
        (ResponseOp::Error as u8, 0xFF),
    ],
    ResponseOp::ALL.len(),
    |b| ResponseOp::try_from(b).map(|v| v as u8),
    DecodeError::UnknownOp,
)]
fn wire_enums_are_their_bytes(
    #[case] table: &[(u8, u8)],
    #[case] variants: usize,
    #[case] decode: fn(u8) -> Result<u8, DecodeError>,
    #[case] unknown: fn(u8) -> DecodeError,
) {
    assert_eq!(table.len(), variants, "every variant is in the table");
    for &(encoded, wire) in table {
        assert_eq!(encoded, wire);
    }
    for byte in 0..=u8::MAX {
        if table.iter().any(|&(_, wire)| wire == byte) {
            assert_eq!(decode(byte), Ok(byte), "byte {byte:#04x} round-trips");
        } else {
            assert_eq!(decode(byte), Err(unknown(byte)), "byte {byte:#04x}");
        }
    }
}

#[rstest]
#[case::unknown_request_op(decode_request(&[0, 1, 0x81]), DecodeError::UnknownOp(0x81))]
#[case::unknown_response_op(decode_response(&[0, 1, 0x01]), DecodeError::UnknownOp(0x01))]
#[case::bad_verify(
    decode_request(&[0, 1, OP_PAM, 0, 0, 1, 0, 0, 0, 0, 9, 0]),
    DecodeError::BadValue("verify")
)]
#[case::bad_verdict(
    decode_response(&[0, 1, OP_DECISION, 8]),
    DecodeError::BadValue("verdict")
)]
fn unknown_enum_bytes_in_a_body_are_refused<T: std::fmt::Debug + PartialEq>(
    #[case] got: Result<T, DecodeError>,
    #[case] want: DecodeError,
) {
    assert_eq!(got, Err(want));
}

fn pam(credential: Option<&[u8]>) -> Request {
    Request::Pam(PamRequest {
        service: "rstudio".into(),
        phase: Phase::Auth,
        user: "John.Doe@Company.com".into(),
        rhost: "127.0.0.1".into(),
        verify: Verify::Proxy,
        credential: credential.map(|c| Credential::new(c.to_vec())),
    })
}

#[rstest]
#[case::pam_no_credential(pam(None))]
#[case::pam_empty_credential(pam(Some(b"")))]
#[case::pam_credential(pam(Some(b"date\nsig")))]
#[case::resolve(Request::Resolve { service: "sshd".into(), name: "rsuser24/jsmith".into() })]
#[case::status(Request::Status)]
#[case::flush(Request::CacheFlush)]
#[case::getpwnam(Request::Getpwnam { name: "John.Doe@Company.com".into() })]
#[case::getpwnam_empty(Request::Getpwnam { name: String::new() })]
#[case::device_start(Request::DeviceStart { service: "sshd".into(), user: "alice".into(), rhost: "10.0.0.1".into() })]
#[case::device_poll(Request::DevicePoll { service: "sshd".into(), user: "alice".into(), session: "abc".into() })]
#[case::issue_ticket(Request::IssueTicket { service: "gate".into(), name: "alice@company.com".into(), rhost: "127.0.0.1".into(), verify: Verify::Oidc, credential: Credential::new(b"eyJ.x.y".to_vec()) })]
fn requests_round_trip(#[case] req: Request) {
    let frame = encode_request(&req);
    let len = frame_len([frame[0], frame[1], frame[2], frame[3]]);
    assert_eq!(len, Ok(frame.len() - FRAME_HEADER_LEN));
    assert_eq!(decode_request(&frame[FRAME_HEADER_LEN..]), Ok(req));
}

#[rstest]
#[case::decision(Response::Decision(Decision {
    verdict: Verdict::PolicyDenied,
    account: "jdoe".into(),
    uid: Some(1001),
    reason: "not in any required group".into(),
    rule: "rewrite[1]".into(),
    groups: vec!["jdoe".into(), "staff".into()],
}))]
#[case::decision_no_uid(Response::Decision(Decision {
    verdict: Verdict::UserUnknown, account: String::new(), uid: None,
    reason: String::new(), rule: String::new(), groups: vec![],
}))]
#[case::status(Response::Status(vec![("version".into(), "0.1.0".into())]))]
#[case::flushed(Response::Flushed(7))]
#[case::error(Response::Error("no".into()))]
#[case::passwd(Response::Passwd(Some(PasswdEntry {
    name: "jdoe".into(), uid: 1003, gid: 2000, gecos: "John Doe,,,".into(),
    dir: "/home/jdoe".into(), shell: "/bin/bash".into(),
})))]
#[case::passwd_none(Response::Passwd(None))]
#[case::device_started(Response::DeviceStarted { session: "s".into(), verification_uri: "https://idp/device".into(), user_code: "ABCD-EFGH".into(), expires_in: 600, interval: 5 })]
#[case::device_pending(Response::DevicePending { interval: 10 })]
#[case::ticket(Response::Ticket { decision: Box::new(Decision { verdict: Verdict::Allowed, account: "alice".into(), uid: Some(1001), reason: "allowed".into(), rule: "identity".into(), groups: vec!["alice".into()] }), ticket: "amt1.x".into() })]
fn responses_round_trip(#[case] resp: Response) {
    let frame = encode_response(&resp);
    assert_eq!(decode_response(&frame[FRAME_HEADER_LEN..]), Ok(resp));
}

#[rstest]
#[case::empty(&[], DecodeError::Truncated)]
#[case::version_only(&[0, 1], DecodeError::Truncated)]
#[case::wrong_version(&[0, 2, OP_STATUS], DecodeError::Version(2))]
#[case::unknown_op(&[0, 1, 0x42], DecodeError::UnknownOp(0x42))]
#[case::trailing(&[0, 1, OP_STATUS, 9], DecodeError::TrailingBytes(1))]
#[case::string_past_end(&[0, 1, OP_RESOLVE, 0, 200, b'a'], DecodeError::Truncated)]
#[case::bad_utf8(&[0, 1, OP_RESOLVE, 0, 1, 0xff, 0, 0], DecodeError::NotUtf8("service"))]
#[case::bad_phase(&[0, 1, OP_PAM, 0, 0, 9], DecodeError::BadValue("phase"))]
#[case::getpwnam_no_name(&[0, 1, OP_GETPWNAM], DecodeError::Truncated)]
#[case::getpwnam_name_past_end(&[0, 1, OP_GETPWNAM, 0, 5, b'j'], DecodeError::Truncated)]
#[case::getpwnam_bad_utf8(&[0, 1, OP_GETPWNAM, 0, 1, 0xc3], DecodeError::NotUtf8("name"))]
#[case::getpwnam_trailing(&[0, 1, OP_GETPWNAM, 0, 1, b'j', 0], DecodeError::TrailingBytes(1))]
fn malformed_requests_are_errors(#[case] body: &[u8], #[case] want: DecodeError) {
    assert_eq!(decode_request(body), Err(want));
}

#[rstest]
#[case::no_presence_flag(&[0, 1, OP_PASSWD], DecodeError::Truncated)]
#[case::bad_presence_flag(&[0, 1, OP_PASSWD, 2], DecodeError::BadValue("passwd"))]
#[case::none_with_trailing(&[0, 1, OP_PASSWD, 0, 0], DecodeError::TrailingBytes(1))]
#[case::entry_without_uid(&[0, 1, OP_PASSWD, 1, 0, 1, b'j', 0, 0], DecodeError::Truncated)]
#[case::name_not_utf8(&[0, 1, OP_PASSWD, 1, 0, 1, 0xff], DecodeError::NotUtf8("pw_name"))]
fn malformed_responses_are_errors(#[case] body: &[u8], #[case] want: DecodeError) {
    assert_eq!(decode_response(body), Err(want));
}

#[test]
fn every_prefix_of_a_passwd_reply_is_an_error_not_a_panic() {
    let frame = encode_response(&Response::Passwd(Some(PasswdEntry {
        name: "jdoe".into(),
        uid: 1003,
        gid: 1003,
        gecos: String::new(),
        dir: "/home/jdoe".into(),
        shell: "/bin/sh".into(),
    })));
    let body = &frame[FRAME_HEADER_LEN..];
    for n in 0..body.len() {
        assert!(decode_response(&body[..n]).is_err(), "prefix {n} decoded");
    }
}

#[test]
fn getpwnam_log_form_escapes_the_name() {
    // A newline in a name must not start a forged log line.
    let req = Request::Getpwnam {
        name: "evil\nname".into(),
    };
    assert_eq!(req.log_form(), r#"getpwnam name="evil\nname""#);
}

#[test]
fn oversized_frames_are_refused_from_the_header() {
    let n = (MAX_FRAME as u32 + 1).to_be_bytes();
    assert_eq!(frame_len(n), Err(DecodeError::TooLarge(MAX_FRAME + 1)));
}

#[test]
fn a_lying_list_count_does_not_allocate() {
    // Decision with a group count of 65535 and no items.
    let mut body = vec![0, 1, OP_DECISION, 0, 0, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&[0xff, 0xff]);
    assert_eq!(decode_response(&body), Err(DecodeError::Truncated));
}

#[test]
fn debug_and_log_forms_never_show_the_credential() {
    let req = pam(Some(b"hunter2"));
    assert!(!format!("{req:?}").contains("hunter2"));
    assert!(!req.log_form().contains("hunter2"));
}

#[test]
fn every_prefix_of_a_valid_request_is_an_error_not_a_panic() {
    let frame = encode_request(&pam(Some(b"secret")));
    let body = &frame[FRAME_HEADER_LEN..];
    for n in 0..body.len() {
        assert!(decode_request(&body[..n]).is_err(), "prefix {n} decoded");
    }
}
