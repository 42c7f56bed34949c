//! Encoding and decoding of frame bodies. See the crate documentation for the layout.

use crate::{
    Credential, Decision, PamRequest, PasswdEntry, Phase, Request, Response, Verdict, Verify,
    MAX_FRAME, PROTOCOL_VERSION,
};
use std::fmt;

/// Bytes of the length prefix in front of every body.
pub const FRAME_HEADER_LEN: usize = 4;

// Operation codes. Requests are below 0x80, responses above.
wire_enum! {
    /// The operation code of a request, one per [`Request`] variant.
    enum RequestOp {
        Pam = 0x01,
        Resolve = 0x02,
        Status = 0x03,
        CacheFlush = 0x04,
        Getpwnam = 0x05,
        DeviceStart = 0x06,
        DevicePoll = 0x07,
    }
    else DecodeError::UnknownOp
}

wire_enum! {
    /// The operation code of a response, one per [`Response`] variant.
    enum ResponseOp {
        Decision = 0x81,
        Status = 0x83,
        Flushed = 0x84,
        Passwd = 0x85,
        DeviceStarted = 0x86,
        DevicePending = 0x87,
        Error = 0xFF,
    }
    else DecodeError::UnknownOp
}

/// Why a body could not be decoded. The daemon logs it and answers with
/// [`Response::Error`]; a client treats it as an unusable daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The body ended before a field did.
    Truncated,
    /// Bytes left over after the last field.
    TrailingBytes(usize),
    /// A version this build does not speak.
    Version(u16),
    UnknownOp(u8),
    /// A field held a value outside its set (name of the field).
    BadValue(&'static str),
    /// A string field was not UTF-8 (name of the field).
    NotUtf8(&'static str),
    /// A frame longer than [`MAX_FRAME`].
    TooLarge(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "truncated message"),
            DecodeError::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the message"),
            DecodeError::Version(v) => write!(
                f,
                "unsupported protocol version {v} (this daemon speaks {PROTOCOL_VERSION})"
            ),
            DecodeError::UnknownOp(op) => write!(f, "unknown operation 0x{op:02x}"),
            DecodeError::BadValue(field) => write!(f, "invalid value in field {field}"),
            DecodeError::NotUtf8(field) => write!(f, "field {field} is not UTF-8"),
            DecodeError::TooLarge(n) => {
                write!(f, "frame of {n} bytes exceeds the limit of {MAX_FRAME}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Builds one frame: the length prefix is filled in by [`Writer::finish`].
struct Writer(Vec<u8>);

impl Writer {
    fn new(op: u8) -> Writer {
        let mut v = Vec::with_capacity(128);
        v.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        v.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        v.push(op);
        Writer(v)
    }

    fn u8(&mut self, x: u8) {
        self.0.push(x);
    }

    fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_be_bytes());
    }

    /// A length-prefixed byte string. Longer than u16::MAX is cut there: no legitimate field
    /// comes near it, and the daemon refuses over-long names anyway.
    fn bytes(&mut self, b: &[u8]) {
        let len = b.len().min(u16::MAX as usize);
        self.0.extend_from_slice(&(len as u16).to_be_bytes());
        self.0.extend_from_slice(&b[..len]);
    }

    fn str(&mut self, s: &str) {
        // Cutting a string must not split a UTF-8 sequence, or the peer sees invalid UTF-8.
        let mut end = s.len().min(u16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.bytes(&s.as_bytes()[..end]);
    }

    fn list(&mut self, items: &[String]) {
        let n = items.len().min(u16::MAX as usize);
        self.0.extend_from_slice(&(n as u16).to_be_bytes());
        for s in &items[..n] {
            self.str(s);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        let body = (self.0.len() - FRAME_HEADER_LEN) as u32;
        self.0[..FRAME_HEADER_LEN].copy_from_slice(&body.to_be_bytes());
        self.0
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u16()? as usize;
        self.take(n)
    }

    fn str(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::NotUtf8(field))
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadValue(field)),
        }
    }

    fn list(&mut self, field: &'static str) -> Result<Vec<String>, DecodeError> {
        let n = self.u16()? as usize;
        // Each item takes at least two bytes: a count larger than that is a lie, and
        // believing it would let a 64 KiB frame reserve gigabytes.
        if n > self.buf.len() / 2 {
            return Err(DecodeError::Truncated);
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.str(field)?);
        }
        Ok(v)
    }

    fn end(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }
}

/// Reads version and op from the start of a body.
fn header(body: &[u8]) -> Result<(Reader<'_>, u8), DecodeError> {
    if body.len() > MAX_FRAME {
        return Err(DecodeError::TooLarge(body.len()));
    }
    let mut r = Reader { buf: body };
    let version = r.u16()?;
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::Version(version));
    }
    let op = r.u8()?;
    Ok((r, op))
}

/// Encodes a request as a complete frame (length prefix included).
pub fn encode_request(req: &Request) -> Vec<u8> {
    match req {
        Request::Pam(p) => {
            let mut w = Writer::new(RequestOp::Pam as u8);
            w.str(&p.service);
            w.u8(p.phase as u8);
            w.str(&p.user);
            w.str(&p.rhost);
            w.u8(p.verify as u8);
            match &p.credential {
                None => w.u8(0),
                Some(c) => {
                    w.u8(1);
                    w.bytes(c.expose());
                }
            }
            w.finish()
        }
        Request::Resolve { service, name } => {
            let mut w = Writer::new(RequestOp::Resolve as u8);
            w.str(service);
            w.str(name);
            w.finish()
        }
        Request::Status => Writer::new(RequestOp::Status as u8).finish(),
        Request::CacheFlush => Writer::new(RequestOp::CacheFlush as u8).finish(),
        Request::Getpwnam { name } => {
            let mut w = Writer::new(RequestOp::Getpwnam as u8);
            w.str(name);
            w.finish()
        }
        Request::DeviceStart {
            service,
            user,
            rhost,
        } => {
            let mut w = Writer::new(RequestOp::DeviceStart as u8);
            w.str(service);
            w.str(user);
            w.str(rhost);
            w.finish()
        }
        Request::DevicePoll {
            service,
            user,
            session,
        } => {
            let mut w = Writer::new(RequestOp::DevicePoll as u8);
            w.str(service);
            w.str(user);
            w.str(session);
            w.finish()
        }
    }
}

/// Decodes a request body (without the length prefix).
pub fn decode_request(body: &[u8]) -> Result<Request, DecodeError> {
    let (mut r, op) = header(body)?;
    let req = match RequestOp::try_from(op)? {
        RequestOp::Pam => {
            let service = r.str("service")?;
            let phase = Phase::try_from(r.u8()?)?;
            let user = r.str("user")?;
            let rhost = r.str("rhost")?;
            let verify = Verify::try_from(r.u8()?)?;
            let credential = if r.bool("credential")? {
                Some(Credential::new(r.bytes()?.to_vec()))
            } else {
                None
            };
            Request::Pam(PamRequest {
                service,
                phase,
                user,
                rhost,
                verify,
                credential,
            })
        }
        RequestOp::Resolve => Request::Resolve {
            service: r.str("service")?,
            name: r.str("name")?,
        },
        RequestOp::Status => Request::Status,
        RequestOp::CacheFlush => Request::CacheFlush,
        RequestOp::Getpwnam => Request::Getpwnam {
            name: r.str("name")?,
        },
        RequestOp::DeviceStart => Request::DeviceStart {
            service: r.str("service")?,
            user: r.str("user")?,
            rhost: r.str("rhost")?,
        },
        RequestOp::DevicePoll => Request::DevicePoll {
            service: r.str("service")?,
            user: r.str("user")?,
            session: r.str("session")?,
        },
    };
    r.end()?;
    Ok(req)
}

/// Encodes a response as a complete frame (length prefix included).
pub fn encode_response(resp: &Response) -> Vec<u8> {
    match resp {
        Response::Decision(d) => {
            let mut w = Writer::new(ResponseOp::Decision as u8);
            w.u8(d.verdict as u8);
            w.str(&d.account);
            match d.uid {
                None => w.u8(0),
                Some(uid) => {
                    w.u8(1);
                    w.u32(uid);
                }
            }
            w.str(&d.reason);
            w.str(&d.rule);
            w.list(&d.groups);
            w.finish()
        }
        Response::Status(pairs) => {
            let mut w = Writer::new(ResponseOp::Status as u8);
            let flat: Vec<String> = pairs
                .iter()
                .flat_map(|(k, v)| [k.clone(), v.clone()])
                .collect();
            w.list(&flat);
            w.finish()
        }
        Response::Flushed(n) => {
            let mut w = Writer::new(ResponseOp::Flushed as u8);
            w.u32(*n);
            w.finish()
        }
        Response::Passwd(entry) => {
            let mut w = Writer::new(ResponseOp::Passwd as u8);
            match entry {
                None => w.u8(0),
                Some(pw) => {
                    w.u8(1);
                    w.str(&pw.name);
                    w.u32(pw.uid);
                    w.u32(pw.gid);
                    w.str(&pw.gecos);
                    w.str(&pw.dir);
                    w.str(&pw.shell);
                }
            }
            w.finish()
        }
        Response::Error(reason) => {
            let mut w = Writer::new(ResponseOp::Error as u8);
            w.str(reason);
            w.finish()
        }
        Response::DeviceStarted {
            session,
            verification_uri,
            user_code,
            expires_in,
            interval,
        } => {
            let mut w = Writer::new(ResponseOp::DeviceStarted as u8);
            w.str(session);
            w.str(verification_uri);
            w.str(user_code);
            w.u32(*expires_in);
            w.u32(*interval);
            w.finish()
        }
        Response::DevicePending { interval } => {
            let mut w = Writer::new(ResponseOp::DevicePending as u8);
            w.u32(*interval);
            w.finish()
        }
    }
}

/// Decodes a response body (without the length prefix).
pub fn decode_response(body: &[u8]) -> Result<Response, DecodeError> {
    let (mut r, op) = header(body)?;
    let resp = match ResponseOp::try_from(op)? {
        ResponseOp::Decision => {
            let verdict = Verdict::try_from(r.u8()?)?;
            let account = r.str("account")?;
            let uid = if r.bool("uid")? { Some(r.u32()?) } else { None };
            Response::Decision(Decision {
                verdict,
                account,
                uid,
                reason: r.str("reason")?,
                rule: r.str("rule")?,
                groups: r.list("groups")?,
            })
        }
        ResponseOp::Status => {
            let flat = r.list("status")?;
            if flat.len() % 2 != 0 {
                return Err(DecodeError::BadValue("status"));
            }
            let mut pairs = Vec::with_capacity(flat.len() / 2);
            let mut it = flat.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Response::Status(pairs)
        }
        ResponseOp::Flushed => Response::Flushed(r.u32()?),
        ResponseOp::Passwd => Response::Passwd(if r.bool("passwd")? {
            Some(PasswdEntry {
                name: r.str("pw_name")?,
                uid: r.u32()?,
                gid: r.u32()?,
                gecos: r.str("pw_gecos")?,
                dir: r.str("pw_dir")?,
                shell: r.str("pw_shell")?,
            })
        } else {
            None
        }),
        ResponseOp::Error => Response::Error(r.str("reason")?),
        ResponseOp::DeviceStarted => Response::DeviceStarted {
            session: r.str("session")?,
            verification_uri: r.str("verification_uri")?,
            user_code: r.str("user_code")?,
            expires_in: r.u32()?,
            interval: r.u32()?,
        },
        ResponseOp::DevicePending => Response::DevicePending { interval: r.u32()? },
    };
    r.end()?;
    Ok(resp)
}

/// Reads the length prefix of a frame and checks it against [`MAX_FRAME`].
pub fn frame_len(header: [u8; FRAME_HEADER_LEN]) -> Result<usize, DecodeError> {
    let n = u32::from_be_bytes(header) as usize;
    if n > MAX_FRAME {
        Err(DecodeError::TooLarge(n))
    } else {
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
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
        decode_response(&[0, 1, OP_DECISION, 6]),
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
}
