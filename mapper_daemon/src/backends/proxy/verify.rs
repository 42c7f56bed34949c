//! `verify=proxy` (SPEC "Proxy signatures"): the auth phase accepts a sign-in only when the
//! password is a fresh signature of the trusted reverse proxy over the user name.
//!
//! The password is `DATE\nSIGNATURE` (an optional final `\n` or `\r\n` is ignored), where
//! `SIGNATURE = BASE64(HMAC-SHA256(key, user + "\n" + DATE + "\n" + ""))` — the body is empty.
//!
//! Choices where the spec is silent:
//! - **user** is PAM_USER exactly as the service handed it to PAM, before any mapping
//!   (letter case included). Under RStudio Server that already is the local account name,
//!   because rserver canonicalises the typed name through NSS before it runs PAM; under sshd or
//!   JupyterHub it is the name as typed.
//! - **DATE** is either an RFC 7231 IMF-fixdate (`Mon, 23 Nov 2026 13:00:00 GMT`, what an
//!   HTTP `Date` header carries; the weekday must match the date) or Unix seconds (`1795006800`).
//!   The signature covers the string as sent, so both forms are equally safe.
//! - **Freshness**: refused when `|now - DATE| > max_clock_skew`.
//! - **Replays**: each `(user, DATE, SIGNATURE)` is accepted once. A signature is remembered
//!   until its DATE has left the skew window (`DATE + max_clock_skew`; at most 2 × skew after
//!   it was first seen), after which the freshness check refuses it anyway. At most
//!   [`REPLAY_CAPACITY`] signatures are remembered (32-byte digests, a few MB at most); when
//!   that many unexpired ones are held, further proxy sign-ins are refused as Unavailable
//!   rather than forgetting one (which would re-open its replay).
//! - The comparison is constant-time ([`crate::backends::proxy::verify()`]); the signature never appears in
//!   a reason or a log line, the date and the user do.

use crate::backends::proxy;
use crate::backends::{Backend, Claim, CredentialVerifier, Failure, Verified};
use crate::config::{Config, ProxyConfig};
use accountmap_wire::{Verdict, Verify};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Signatures remembered at most (see the module documentation).
pub const REPLAY_CAPACITY: usize = 100_000;

/// Why a proxy credential was refused. The `Display` form is the reason in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyRefusal {
    /// No `[proxy]` section: verify=proxy cannot be checked.
    NotConfigured,
    /// The password is not `DATE\nSIGNATURE`.
    Malformed(&'static str),
    /// DATE is neither an IMF-fixdate nor Unix seconds (the offending text, shortened).
    BadDate(String),
    /// DATE is further from now than `max_clock_skew` (seconds off, allowed).
    Skew { off: i64, allowed: i64 },
    /// The signature does not match the user and date under the key.
    Mismatch { user: String, date: String },
    /// This exact signature was accepted before.
    Replay { user: String, date: String },
    /// The replay memory is full of unexpired signatures.
    ReplayMemoryFull,
}

impl ProxyRefusal {
    pub fn verdict(&self) -> Verdict {
        match self {
            ProxyRefusal::NotConfigured | ProxyRefusal::ReplayMemoryFull => Verdict::Unavailable,
            _ => Verdict::AuthFailed,
        }
    }
}

impl fmt::Display for ProxyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyRefusal::NotConfigured => f.write_str("verify=proxy needs a [proxy] section"),
            ProxyRefusal::Malformed(why) => {
                write!(f, "proxy credential is not DATE\\nSIGNATURE: {why}")
            }
            ProxyRefusal::BadDate(d) => write!(
                f,
                "proxy signature date {d:?} is neither an IMF-fixdate (\"Mon, 23 Nov 2026 13:00:00 GMT\") nor Unix seconds"
            ),
            ProxyRefusal::Skew { off, allowed } => write!(
                f,
                "signature date outside the allowed clock skew ({off:+} s from now, allowed ±{allowed} s; check the clocks of proxy and host)"
            ),
            ProxyRefusal::Mismatch { user, date } => write!(
                f,
                "proxy signature does not match user {user:?} and date {date:?} (wrong key, or the proxy signed another name)"
            ),
            ProxyRefusal::Replay { user, date } => write!(
                f,
                "proxy signature for user {user:?} and date {date:?} was already used (replay refused)"
            ),
            ProxyRefusal::ReplayMemoryFull => write!(
                f,
                "{REPLAY_CAPACITY} unexpired proxy signatures are remembered already; refusing until some expire (lower max_clock_skew?)"
            ),
        }
    }
}

/// The signatures accepted within their skew window: digest → Unix time it may be forgotten.
pub struct ReplayMemory {
    capacity: usize,
    seen: Mutex<HashMap<[u8; 32], i64>>,
}

/// What [`ReplayMemory::record`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    First,
    Replay,
    Full,
}

impl ReplayMemory {
    pub fn new(capacity: usize) -> ReplayMemory {
        ReplayMemory {
            capacity,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers `key` until `forget_at` unless it is remembered already. Check and insert
    /// are one step under the lock, so two concurrent uses of a signature cannot both pass.
    pub fn record(&self, key: [u8; 32], forget_at: i64, now: i64) -> Recorded {
        // A poisoned lock only means a panic elsewhere mid-insert; the map is still sound.
        let mut seen = crate::util::lock(&self.seen);
        match seen.get(&key) {
            Some(&until) if until >= now => return Recorded::Replay,
            _ => {}
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, until| *until >= now);
            if seen.len() >= self.capacity {
                return Recorded::Full;
            }
        }
        seen.insert(key, forget_at);
        Recorded::First
    }

    pub fn len(&self) -> usize {
        crate::util::lock(&self.seen).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks a `verify=proxy` credential for `user` at Unix time `now`.
pub fn check(
    proxy: &ProxyConfig,
    user: &str,
    credential: &[u8],
    now: i64,
    memory: &ReplayMemory,
) -> Result<(), ProxyRefusal> {
    let text = std::str::from_utf8(credential).map_err(|_| ProxyRefusal::Malformed("not UTF-8"))?;
    // A proxy (or a shell's echo) may end the value with a line break; the signature is base64
    // and has none of its own.
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    let Some((date, signature)) = text.split_once('\n') else {
        return Err(ProxyRefusal::Malformed(
            "no line break between date and signature",
        ));
    };
    if signature.is_empty() || signature.contains(['\n', '\r']) {
        return Err(ProxyRefusal::Malformed(
            "the signature must be one non-empty line",
        ));
    }
    // Only base64's own characters: the HMAC check would tolerate surrounding blanks, and a
    // signature with a blank added must not count as a new one for the replay memory. (The
    // decoder accepts one canonical encoding per MAC, padding and trailing bits included.)
    if !signature
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return Err(ProxyRefusal::Malformed("the signature is not base64"));
    }
    let Some(signed_at) = parse_date(date) else {
        return Err(ProxyRefusal::BadDate(shorten(date)));
    };
    let allowed = i64::try_from(proxy.max_clock_skew.as_secs()).unwrap_or(i64::MAX);
    let off = signed_at.saturating_sub(now);
    if off.saturating_abs() > allowed {
        return Err(ProxyRefusal::Skew { off, allowed });
    }
    if !proxy::verify(proxy.hmac_key.expose(), user, date, b"", signature) {
        return Err(ProxyRefusal::Mismatch {
            user: user.to_string(),
            date: date.to_string(),
        });
    }
    let mut digest = Sha256::new();
    for part in [user, date, signature] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    match memory.record(
        digest.finalize().into(),
        signed_at.saturating_add(allowed),
        now,
    ) {
        Recorded::First => Ok(()),
        Recorded::Replay => Err(ProxyRefusal::Replay {
            user: user.to_string(),
            date: date.to_string(),
        }),
        Recorded::Full => Err(ProxyRefusal::ReplayMemoryFull),
    }
}

/// At most 40 characters of untrusted text for a reason.
fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Unix seconds of an IMF-fixdate or of a plain decimal number of seconds.
pub fn parse_date(s: &str) -> Option<i64> {
    if !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    parse_imf_fixdate(s)
}

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]; // 1970-01-01 was a Thursday
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 7231 §7.1.1.1), exactly; the weekday must be right.
fn parse_imf_fixdate(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    // ASCII only, so that every byte offset below is a character boundary.
    if !s.is_ascii() || b.len() != 29 || s.get(3..5)? != ", " || s.get(25..)? != " GMT" {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(range)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let sep = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(sep(7, b' ') && sep(11, b' ') && sep(16, b' ') && sep(19, b':') && sep(22, b':')) {
        return None;
    }
    let day = num(5..7)?;
    let month = MONTHS.iter().position(|m| s.get(8..11) == Some(*m))? as i64 + 1;
    let year = num(12..16)?;
    let (hour, minute, second) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if !(1..=days_in_month(year, month)).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if WEEKDAYS.get(days.rem_euclid(7) as usize) != s.get(0..3).as_ref() {
        return None;
    }
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // A clock before 1970 makes every date look far in the future: refused by the skew.
        Err(_) => 0,
    }
}

/// The `verify=proxy` [`CredentialVerifier`]: a fresh, unused, matching signature over
/// PAM_USER as the service handed it over.
pub struct ProxyVerifier {
    /// The config in force; built only when it has a `[proxy]` section.
    config: Arc<Config>,
    /// The daemon's replay memory, which outlives this verifier: a SIGHUP builds a new engine,
    /// and must not make used signatures usable again.
    memory: Arc<ReplayMemory>,
}

impl ProxyVerifier {
    /// `None` when `config` has no `[proxy]` section.
    pub fn new(config: Arc<Config>, memory: Arc<ReplayMemory>) -> Option<ProxyVerifier> {
        config.proxy.as_ref()?;
        Some(ProxyVerifier { config, memory })
    }
}

impl Backend for ProxyVerifier {
    fn status(&self) -> Vec<(String, String)> {
        vec![(
            "backend proxy".to_string(),
            format!("{} signatures remembered", self.memory.len()),
        )]
    }
}

impl CredentialVerifier for ProxyVerifier {
    fn method(&self) -> Verify {
        Verify::Proxy
    }

    fn verify(&self, claim: &Claim<'_>) -> Result<Verified, Failure> {
        let Some(proxy) = &self.config.proxy else {
            let refused = ProxyRefusal::NotConfigured;
            return Err(Failure::new(refused.verdict(), refused.to_string()));
        };
        match check(
            proxy,
            claim.typed,
            claim.credential.expose(),
            unix_now(),
            &self.memory,
        ) {
            Ok(()) => Ok(Verified {
                note: Some("with a valid proxy signature".into()),
                entry: None,
            }),
            Err(refused) => Err(Failure::new(refused.verdict(), refused.to_string())),
        }
    }
}

#[cfg(test)]
mod tests;
