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
        IssueTicket = 0x08,
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
        Ticket = 0x88,
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
        Request::IssueTicket {
            service,
            name,
            rhost,
            verify,
            credential,
        } => {
            let mut w = Writer::new(RequestOp::IssueTicket as u8);
            w.str(service);
            w.str(name);
            w.str(rhost);
            w.u8(*verify as u8);
            w.bytes(credential.expose());
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
        RequestOp::IssueTicket => Request::IssueTicket {
            service: r.str("service")?,
            name: r.str("name")?,
            rhost: r.str("rhost")?,
            verify: Verify::try_from(r.u8()?)?,
            credential: Credential::new(r.bytes()?.to_vec()),
        },
    };
    r.end()?;
    Ok(req)
}

fn write_decision(w: &mut Writer, d: &Decision) {
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
}

fn read_decision(r: &mut Reader<'_>) -> Result<Decision, DecodeError> {
    let verdict = Verdict::try_from(r.u8()?)?;
    let account = r.str("account")?;
    let uid = if r.bool("uid")? { Some(r.u32()?) } else { None };
    Ok(Decision {
        verdict,
        account,
        uid,
        reason: r.str("reason")?,
        rule: r.str("rule")?,
        groups: r.list("groups")?,
    })
}

/// Encodes a response as a complete frame (length prefix included).
pub fn encode_response(resp: &Response) -> Vec<u8> {
    match resp {
        Response::Decision(d) => {
            let mut w = Writer::new(ResponseOp::Decision as u8);
            write_decision(&mut w, d);
            w.finish()
        }
        Response::Ticket { decision, ticket } => {
            let mut w = Writer::new(ResponseOp::Ticket as u8);
            write_decision(&mut w, decision);
            w.str(ticket);
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
        ResponseOp::Decision => Response::Decision(read_decision(&mut r)?),
        ResponseOp::Ticket => Response::Ticket {
            decision: Box::new(read_decision(&mut r)?),
            ticket: r.str("ticket")?,
        },
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
mod tests;
