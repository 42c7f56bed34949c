//! The language accountmap's clients (PAM module, NSS module, `accountmapctl`) and its daemon
//! (`accountmapd`) speak over the Unix socket, and the small blocking client they share.
//!
//! A connection carries one request frame and one response frame, then is closed.
//! Every message is one frame: a 4-byte big-endian length, then a body of at most
//! [`MAX_FRAME`] bytes. A body starts with the protocol version (u16) and an operation code (u8),
//! followed by that operation's fields. Strings are a u16 length and UTF-8 bytes. The decoder
//! rejects truncated bodies, trailing bytes, bad UTF-8 and unknown codes, so a malformed frame is
//! an error value, never a panic.
//!
//! The format is hand-written rather than serde-based on purpose: it keeps the PAM and NSS
//! modules small (they are loaded into sshd, login and rserver) and the whole parser fits on a
//! screen for review and fuzzing.
// Only the client (non-blocking connect, SO_PEERCRED, send without SIGPIPE) and the
// shared-memory cache (mmap, the clock) touch libc; the rest is safe code.
#![deny(unsafe_code)]

/// Declares a wire enum: `#[repr(u8)]`, each discriminant the variant's byte on the wire, so
/// that `variant as u8` encodes it and `TryFrom<u8>` decodes it, refusing any other byte with
/// the error that the expression after `else` makes of that byte. Each byte is written once,
/// in the declaration; encoder and decoder both follow from it.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $byte:literal,)+
        }
        else $unknown:expr
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        $vis enum $name {
            $($(#[$vmeta])* $variant = $byte,)+
        }

        impl TryFrom<u8> for $name {
            type Error = $crate::DecodeError;

            fn try_from(byte: u8) -> Result<$name, $crate::DecodeError> {
                match byte {
                    $($byte => Ok($name::$variant),)+
                    other => Err(($unknown)(other)),
                }
            }
        }

        #[cfg(test)]
        impl $name {
            /// Every variant, for the tests.
            const ALL: &'static [$name] = &[$($name::$variant),+];
        }
    };
}

#[allow(unsafe_code)]
mod client;
mod codec;
// send(MSG_NOSIGNAL): a refused connection must not kill the host program with SIGPIPE.
#[allow(unsafe_code)]
mod deadline;
// The shared-memory passwd cache maps a file and reads it with atomics (see the module).
#[allow(unsafe_code)]
pub mod memcache;
pub mod policy_cache;

pub use client::{call, peer_credentials, ClientError, PeerCred};
pub use codec::{
    decode_request, decode_response, encode_request, encode_response, frame_len, DecodeError,
    FRAME_HEADER_LEN,
};
pub use deadline::{write_all_by, FrameError, FrameReader};

use std::fmt;

/// The protocol version this build speaks. A daemon refuses any other.
pub const PROTOCOL_VERSION: u16 = 1;
/// The largest frame body either side accepts. Requests are a few hundred bytes; an ID token
/// is a few KiB. Anything larger is refused before it is read.
pub const MAX_FRAME: usize = 64 * 1024;
/// The longest name (user, service, host) the daemon considers; longer ones are unusable input.
pub const MAX_NAME_LEN: usize = 256;
/// The longest credential the daemon considers (an ID token fits comfortably).
pub const MAX_CREDENTIAL_LEN: usize = 16 * 1024;
/// Where the daemon listens unless configured otherwise.
pub const DEFAULT_SOCKET: &str = "/run/accountmap/accountmapd.sock";
/// Environment variable that overrides the socket path for clients.
pub const SOCKET_ENV: &str = "ACCOUNTMAP_SOCKET";
/// Environment variable `accountmapd` sets in itself at start-up. The NSS module answers
/// UNAVAIL at once in a process that has it, so that the daemon's own account lookups never
/// come back to the daemon through nsswitch.conf.
pub const DAEMON_ENV: &str = "ACCOUNTMAP_DAEMON";

wire_enum! {
    /// Which PAM phase a request comes from.
    pub enum Phase {
        Auth = 1,
        Account = 2,
    }
    else |_| DecodeError::BadValue("phase")
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Auth => "auth",
            Phase::Account => "account",
        }
    }
}

wire_enum! {
    /// What the auth phase checks besides identity and policy (`verify=` of the PAM module).
    pub enum Verify {
        None = 0,
        Ldap = 1,
        Oidc = 2,
        Device = 3,
        Proxy = 4,
        Ticket = 5,
    }
    else |_| DecodeError::BadValue("verify")
}

impl Verify {
    pub fn as_str(self) -> &'static str {
        match self {
            Verify::None => "none",
            Verify::Ldap => "ldap",
            Verify::Oidc => "oidc",
            Verify::Device => "device",
            Verify::Proxy => "proxy",
            Verify::Ticket => "ticket",
        }
    }

    pub fn parse(s: &str) -> Option<Verify> {
        Some(match s {
            "none" => Verify::None,
            "ldap" => Verify::Ldap,
            "oidc" => Verify::Oidc,
            "device" => Verify::Device,
            "proxy" => Verify::Proxy,
            "ticket" => Verify::Ticket,
            _ => return None,
        })
    }
}

/// A password or token. Its `Debug` form never shows the content, and its bytes are
/// overwritten when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(Vec<u8>);

impl Credential {
    pub fn new(bytes: Vec<u8>) -> Credential {
        Credential(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential(<{} bytes redacted>)", self.0.len())
    }
}

impl Drop for Credential {
    fn drop(&mut self) {
        // Wipe the secret before the allocator reuses the memory; `black_box` keeps the
        // optimiser from treating the writes to memory about to be freed as dead.
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// A PAM module asking for a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PamRequest {
    /// PAM_SERVICE of the host (`rstudio`, `sshd`). Logged; never trusted for authorisation.
    pub service: String,
    pub phase: Phase,
    /// PAM_USER as the host handed it over (may be an alias).
    pub user: String,
    /// PAM_RHOST, or empty. Logged only.
    pub rhost: String,
    pub verify: Verify,
    /// The password or token of `verify=`, when the auth phase has one.
    pub credential: Option<Credential>,
}

/// How every `verify=ticket` sign-in ticket begins (`amt1.` and 43 characters of base64url:
/// 256 random bits), so that the PAM module can tell a ticket from a password without sending
/// the password anywhere.
pub const TICKET_PREFIX: &str = "amt1.";
/// A ticket's length.
pub const TICKET_LEN: usize = TICKET_PREFIX.len() + 43;

/// Whether `text` has a sign-in ticket's form.
pub fn looks_like_ticket(text: &[u8]) -> bool {
    text.len() == TICKET_LEN
        && text.starts_with(TICKET_PREFIX.as_bytes())
        && text[TICKET_PREFIX.len()..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// A request to the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A PAM auth or account decision.
    Pam(PamRequest),
    /// `accountmapctl resolve`: the same pipeline and policy, answered with the details.
    Resolve { service: String, name: String },
    /// `accountmapctl status`.
    Status,
    /// `accountmapctl cache flush`.
    CacheFlush,
    /// The NSS module's `getpwnam(name)`: the same pipeline as PAM, answered with
    /// [`Response::Passwd`].
    Getpwnam { name: String },
    /// `verify=device`, step 1: resolve `user`, apply policy, and start an OAuth 2.0 device
    /// authorization (RFC 8628). Answered with [`Response::DeviceStarted`] or a refusal
    /// ([`Response::Decision`]).
    DeviceStart {
        service: String,
        user: String,
        rhost: String,
    },
    /// `verify=device`, step 2, repeated: has the user approved `session` yet? Answered with
    /// [`Response::DevicePending`] or the final [`Response::Decision`].
    DevicePoll {
        service: String,
        user: String,
        session: String,
    },
    /// `accountmap-gate` (a caller `[gate] ticket_callers` names): `name` signed in with
    /// `credential` (`verify` = `oidc`: an ID token, `proxy`: a proxy signature) from `rhost`;
    /// if the pipeline and policy allow the account, answered with [`Response::Ticket`],
    /// otherwise with the refusal ([`Response::Decision`]).
    IssueTicket {
        service: String,
        name: String,
        rhost: String,
        verify: Verify,
        credential: Credential,
    },
}

impl Request {
    /// A one-line description for logs. It cannot print a credential.
    pub fn log_form(&self) -> String {
        match self {
            Request::Pam(p) => format!(
                "pam {} service={:?} user={:?} rhost={:?} verify={} credential={}",
                p.phase.as_str(),
                p.service,
                p.user,
                p.rhost,
                p.verify.as_str(),
                if p.credential.is_some() { "yes" } else { "no" }
            ),
            Request::Resolve { service, name } => {
                format!("resolve service={service:?} name={name:?}")
            }
            Request::Status => "status".to_string(),
            Request::CacheFlush => "cache flush".to_string(),
            Request::Getpwnam { name } => format!("getpwnam name={name:?}"),
            Request::DeviceStart { service, user, .. } => {
                format!("device start service={service:?} user={user:?}")
            }
            Request::DevicePoll { service, user, .. } => {
                format!("device poll service={service:?} user={user:?}")
            }
            Request::IssueTicket {
                service,
                name,
                verify,
                ..
            } => format!(
                "issue ticket service={service:?} name={name:?} verify={}",
                verify.as_str()
            ),
        }
    }
}

wire_enum! {
    /// The daemon's verdict. Each maps to one PAM return code per phase (see the PAM module).
    pub enum Verdict {
        Allowed = 0,
        /// No such account after resolution.
        UserUnknown = 1,
        /// Refused by policy: uid, group, denied user, domain, or a peer asking about someone
        /// else.
        PolicyDenied = 2,
        /// Wrong password, bad or expired token.
        AuthFailed = 3,
        /// A backend is down or not configured for what was asked.
        Unavailable = 4,
        /// Unusable input: empty password, NUL bytes, over-long or malformed names.
        BadInput = 5,
        /// The directory says the account has expired (`accountExpires`, `shadowExpire`).
        AccountExpired = 6,
        /// The directory says the password must be changed first (`pwdLastSet` 0, an
        /// expired password, ppolicy's `pwdReset`).
        NewAuthtokRequired = 7,
    }
    else |_| DecodeError::BadValue("verdict")
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::UserUnknown => "user-unknown",
            Verdict::PolicyDenied => "denied",
            Verdict::AuthFailed => "auth-failed",
            Verdict::Unavailable => "unavailable",
            Verdict::BadInput => "bad-input",
            Verdict::AccountExpired => "account-expired",
            Verdict::NewAuthtokRequired => "new-authtok-required",
        }
    }
}

/// The answer to a [`Request::Pam`] or [`Request::Resolve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The local account the name resolved to (empty when none).
    pub account: String,
    pub uid: Option<u32>,
    /// Why: for the log and for `accountmapctl resolve`, never shown to the user signing in.
    pub reason: String,
    /// Which mapping step gave the account (`accounts-file:12`, `rewrite[0]`, `identity`).
    pub rule: String,
    /// The account's groups, primary first (filled for `resolve`).
    pub groups: Vec<String>,
}

/// A passwd entry as the NSS module hands it to the C library. For an alias it is the local
/// account's entry, `name` included: RStudio checks that `getpwuid(uid).pw_name` gives back the
/// name `getpwnam` returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub dir: String,
    pub shell: String,
}

/// A reply from the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Decision(Decision),
    /// Ordered key/value pairs for `accountmapctl status`.
    Status(Vec<(String, String)>),
    /// How many cached answers `cache flush` dropped.
    Flushed(u32),
    /// The answer to [`Request::Getpwnam`]: `None` when the name is not an alias this daemon
    /// answers for (local names, unknown names, aliases of privileged accounts).
    Passwd(Option<PasswdEntry>),
    /// The request was refused as a whole (malformed, wrong version, not permitted).
    Error(String),
    /// A device authorization was started: show `verification_uri` and `user_code` to the
    /// user, then poll with `session` every `interval` seconds for at most `expires_in`.
    DeviceStarted {
        session: String,
        verification_uri: String,
        user_code: String,
        expires_in: u32,
        interval: u32,
    },
    /// The answer to an allowed [`Request::IssueTicket`]: the decision, and the one-time
    /// ticket for `decision.account` (`verify=ticket`). The decision is boxed: inline, it
    /// would make every other answer as large.
    Ticket {
        decision: Box<Decision>,
        ticket: String,
    },
    /// Not approved yet: poll again in `interval` seconds.
    DevicePending {
        interval: u32,
    },
}
