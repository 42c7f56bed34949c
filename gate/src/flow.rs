//! A login in progress, kept in the browser rather than in the gate: the `accountmap-gate-login`
//! cookie carries `state`, the `appUri` to return to and an expiry, under an HMAC with a key
//! made at each gate start. The PKCE verifier and the `nonce` are derived from `state` with the
//! same key, so they never leave the gate and nothing is stored per login: a flood of
//! `/gate/login` requests costs no memory. A restart of the gate voids logins in progress
//! (the user starts again).
//!
//! The cookie binds the callback to the browser that started the login (login CSRF): a
//! callback whose `state` is not the one in this browser's valid cookie is refused. Each
//! `state` is accepted once ([`Spent`]).

use crate::oidc::same;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The cookie's name.
pub const COOKIE: &str = "accountmap-gate-login";
/// How long a user has to finish signing in at the provider.
pub const LOGIN_LIFETIME: Duration = Duration::from_secs(600);
/// The longest `appUri` kept (RStudio's are short paths).
pub const MAX_APP_URI: usize = 2048;

pub struct Keys {
    key: [u8; 32],
}

impl Keys {
    pub fn random() -> Keys {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Keys { key }
    }

    fn mac(&self, label: &[u8], data: &[u8]) -> Vec<u8> {
        // An HMAC key may have any length: new_from_slice does not fail for 32 bytes.
        let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return Vec::new();
        };
        m.update(label);
        m.update(b"\0");
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    /// The PKCE verifier of the login `state` (43 characters, RFC 7636's minimum and more).
    pub fn verifier(&self, state: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(b"pkce-verifier", state.as_bytes()))
    }

    /// The `nonce` of the login `state`.
    pub fn nonce(&self, state: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(b"nonce", state.as_bytes()))
    }

    /// The cookie value for a login started now.
    pub fn seal(&self, login: &Login) -> String {
        let body = format!(
            "{}.{}.{}",
            login.state,
            login.expires,
            URL_SAFE_NO_PAD.encode(login.app_uri.as_bytes())
        );
        let tag = URL_SAFE_NO_PAD.encode(self.mac(b"login-cookie", body.as_bytes()));
        format!("{body}.{tag}")
    }

    /// The login of a cookie value this gate sealed, not expired at `now`.
    pub fn open(&self, value: &str, now: u64) -> Result<Login, &'static str> {
        let (body, tag) = value.rsplit_once('.').ok_or("malformed")?;
        let want = URL_SAFE_NO_PAD.encode(self.mac(b"login-cookie", body.as_bytes()));
        if !same(tag, &want) {
            return Err("not sealed by this gate (or the gate restarted since)");
        }
        let mut parts = body.splitn(3, '.');
        let (Some(state), Some(expires), Some(app)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed");
        };
        let expires: u64 = expires.parse().map_err(|_| "malformed")?;
        if now > expires {
            return Err("expired: the sign-in took longer than 10 minutes");
        }
        let app_uri = URL_SAFE_NO_PAD
            .decode(app)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("malformed")?;
        Ok(Login {
            state: state.to_string(),
            expires,
            app_uri,
        })
    }
}

/// A login in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub state: String,
    /// Seconds since the epoch.
    pub expires: u64,
    pub app_uri: String,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `appUri` as rserver and the gate accept it: a path on this origin. Anything that a browser
/// could take to another host (`//host`, `/\host`, a scheme) is refused: the gate must not
/// become an open redirect.
pub fn check_app_uri(app_uri: &str) -> Result<(), &'static str> {
    if app_uri.len() > MAX_APP_URI {
        return Err("appUri is too long");
    }
    if !app_uri.starts_with('/') {
        return Err("appUri must be a path on this server, starting with /");
    }
    let second = app_uri.as_bytes().get(1).copied();
    if matches!(second, Some(b'/' | b'\\')) {
        return Err("appUri must be a path on this server, not //host");
    }
    if app_uri
        .chars()
        .any(|c| c.is_control() || c == '\\' || c.is_whitespace())
    {
        return Err("appUri has characters a path on this server does not have");
    }
    Ok(())
}

/// The `state`s already used, until their logins would have expired anyway. Bounded: only a
/// callback with a valid sealed cookie gets here; past the bound the oldest recorded are
/// dropped first (a code is single use at the provider anyway, so a dropped state's callback
/// still fails at the token exchange).
pub struct Spent {
    seen: Mutex<(HashMap<String, u64>, VecDeque<String>)>,
}

const MAX_SPENT: usize = 100_000;

impl Spent {
    pub fn new() -> Spent {
        Spent {
            seen: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// Records `login.state`; false when it was already used.
    pub fn first_use(&self, login: &Login, now: u64) -> bool {
        let mut guard = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (seen, order) = &mut *guard;
        // Forget what has expired, oldest first, and the oldest beyond the bound.
        while let Some(oldest) = order.front() {
            let expired = seen.get(oldest).is_none_or(|e| *e < now);
            if !expired && order.len() < MAX_SPENT {
                break;
            }
            if let Some(k) = order.pop_front() {
                seen.remove(&k);
            }
        }
        if seen.contains_key(&login.state) {
            return false;
        }
        seen.insert(login.state.clone(), login.expires);
        order.push_back(login.state.clone());
        true
    }
}

impl Default for Spent {
    fn default() -> Self {
        Spent::new()
    }
}

#[cfg(test)]
mod tests;
