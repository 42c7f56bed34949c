//! `rserver_standin --listen 127.0.0.1:PORT --pam-helper PATH [--min-uid N]
//! [--required-group G[,G…]] [--throttle-seconds S] [--root-path /] [--auth-timeout-minutes M]
//! [--require-password-prompt 0|1] [--encrypt-password 0|1] [--spawn-lock FILE]`
//!
//! A TEST STAND-IN for the sign-in of RStudio Server open source (`rserver`), which Debian does
//! not package: it is not RStudio and serves no IDE. It reproduces what a client of rserver's
//! sign-in sees, and what rserver asks of the system (NSS and a PAM helper run per sign-in),
//! as read in rstudio/rstudio (written anew here, nothing copied):
//!
//! - `src/cpp/core/system/Crypto.cpp` (`rsaInit`, `rsaPublicKey`, `rsaPrivateDecrypt`): a fresh
//!   RSA-2048 key at each start; `GET /auth-public-key` answers `EXPONENT:MODULUS` in OpenSSL's
//!   `BN_bn2hex` form (upper-case hex, whole bytes: `010001:…`), with no-cache headers
//!   (`ServerPAMAuth.cpp` `publicKey`); `v` is base64 of RSA PKCS#1 v1.5, or `$RSA-OAEP$`
//!   followed by base64 of RSA-OAEP with SHA-256 (the newer rservers; both are accepted here).
//! - `src/cpp/server/ServerPAMAuth.cpp` `signIn`/`doSignIn`/`pamLogin`/
//!   `userIdentifierToLocalUsername`: the typed name is canonicalised through `getpwnam` to its
//!   `pw_name` (cached for the life of the process, a failed lookup included, then the typed
//!   name is kept); an empty password never reaches PAM; the helper runs as
//!   `HELPER USER rstudio 1|0` (`auth-pam-require-password-prompt`) with the password on
//!   stdin, and only its exit status counts; with `auth-encrypt-password=0` the form fields
//!   are `username`, `password`, `staySignedIn`.
//! - `src/cpp/core/http/CSRFToken.cpp` `validateCSRFForm`, `setCSRFTokenCookie`: double submit
//!   only — the `rs-csrf-token` cookie (or the old `csrf-token`) must be non-empty and equal
//!   the form field; the token is a UUID set HttpOnly with path = root path, together with the
//!   old `csrf-token` cookie, and an existing token is re-used rather than replaced.
//! - `src/cpp/server/auth/ServerAuthCommon.cpp` `signIn`, `checkUser`, `doSignIn`, `signOut`,
//!   `setSignInCookies`, `clearSignInCookies`, `getCookieExpiry`: after PAM, in this order:
//!   the user must be valid (else error 3), not throttled (else error 2), authenticated (else
//!   error 1). Success sets `user-id` and `user-list-id` (secure cookies valid
//!   `auth-timeout-minutes`, default 60, kept by the browser only with `persist=1`),
//!   `persist-auth` (`1`/`0`), and the CSRF cookies again, and redirects to `appUri` (rooted
//!   with `/` if it is not). A sign-in page asked for with a valid cookie redirects to
//!   `appUri`. `/auth-sign-out` checks the CSRF form too (else 400), clears the cookies,
//!   revokes the `user-id` value server side and redirects to `/auth-sign-in`.
//! - `src/cpp/server/auth/ServerValidateUser.cpp` `validateUser`: `getpwnam(name)`, then the uid
//!   round trip `getpwuid(uid).pw_name == pw_name` (else "another user with the same UID"),
//!   uid ≥ `auth-minimum-user-id`, membership in one of the comma-separated
//!   `auth-required-user-group` (primary group counts).
//! - `src/cpp/server/auth/ServerAuthHandler.cpp` `isUserSignInThrottled`, `getUserIdentifier`,
//!   `invalidateAuthCookie`: one sign-in per user (the canonical name) per
//!   `auth-sign-in-throttle-seconds`, in whole seconds; the first check records the time, a
//!   check inside the window is refused without moving it. Every sign-in that got that far
//!   counts, failed ones included. A revoked `user-id` value is refused until it expires.
//!   `user-list-id` carries the open-source constant `9c16856330a7400cbbbba228392a5d83`.
//! - `src/cpp/server_core/http/SecureCookie.cpp`: `user-id` is `urlEncode(user)|urlEncode(expires)
//!   |urlEncode(base64(HMAC-SHA256(key, user + expires))))`, `expires` an HTTP date; reading
//!   checks three non-empty fields, the HMAC, and that `expires` is in the future.
//! - `src/cpp/server/ServerLoginPages.cpp`/`.hpp`: errors redirect to
//!   `/auth-sign-in?appUri=…&error=N` with N: 1 invalid login, 2 server error (also throttling,
//!   a bad `v`, a CSRF failure), 3 unauthorized user. On a CSRF failure rserver passes the
//!   literal string `appUri` as the app URI (`redirectToLoginPage(request, pResponse, kAppUri,
//!   kErrorServer)`): reproduced. Cookie names: `HeaderCookieConstants.hpp`.
//! - The main page (`mainPageFilter`): without a valid `user-id`, the sign-in cookies are
//!   cleared and the browser sent to `/auth-sign-in?appUri=<the request URI>`.
//!
//! Deviations, on purpose: the page bodies are this stand-in's own (the sign-in page has no
//! JavaScript, so a browser cannot encrypt `v`: clients such as accountmap-gate post it
//! themselves), and the "IDE" is a page saying `signed in as ACCOUNT`, titled
//! `RStudio (test stand-in)`; the secure-cookie key is made per start (rserver keeps one in a
//! file); the revocation list is in memory only; Location headers are absolute paths under
//! `--root-path` (rserver writes them relative to the request); the PAM helper is killed after
//! 60 s (rserver waits); requests are limited to 64 KiB. `--spawn-lock` is for the test harness
//! only: pam_wrapper's start-up races, so helper starts hold that lock file (flock) until
//! pam_wrapper has set the helper up.
//!
//! Each sign-in decision is logged on stderr.

// Test support, as the crate's other binaries: a failure is reported and ends the process.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, Pkcs1v15Encrypt, RsaPrivateKey};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, CStr, CString};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USER_ID: &str = "user-id";
const USER_LIST_ID: &str = "user-list-id";
const PERSIST_AUTH: &str = "persist-auth";
const CSRF: &str = "rs-csrf-token";
const OLD_CSRF: &str = "csrf-token";
/// `getUserListCookieValue()` of the open-source overlay.
const USER_LIST_VALUE: &str = "9c16856330a7400cbbbba228392a5d83";
const OAEP_PREFIX: &str = "$RSA-OAEP$";

/// ServerLoginPages.hpp's `ErrorType`.
const ERROR_INVALID_LOGIN: u32 = 1;
const ERROR_SERVER: u32 = 2;
const ERROR_USER_UNAUTHORIZED: u32 = 3;

const MAX_BODY: usize = 64 * 1024;
const HELPER_LIMIT: Duration = Duration::from_secs(60);

struct Opts {
    listen: SocketAddr,
    pam_helper: PathBuf,
    min_uid: u32,
    required_groups: String,
    throttle_seconds: u64,
    root_path: String,
    timeout_minutes: u64,
    require_password_prompt: bool,
    encrypt_password: bool,
    spawn_lock: Option<PathBuf>,
}

fn usage(why: &str) -> ! {
    eprintln!(
        "rserver_standin: {why}\nusage: rserver_standin --listen ADDR --pam-helper PATH [--min-uid N] \
         [--required-group G[,G...]] [--throttle-seconds S] [--root-path /] \
         [--auth-timeout-minutes M] [--require-password-prompt 0|1] [--encrypt-password 0|1] \
         [--spawn-lock FILE]"
    );
    std::process::exit(2)
}

fn parse_opts() -> Opts {
    let mut args = std::env::args().skip(1);
    let mut listen = None;
    let mut pam_helper = None;
    let mut opts = Opts {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        pam_helper: PathBuf::new(),
        // rserver's `auth-minimum-user-id` default `auto`: UID_MIN of login.defs, else 1000.
        min_uid: 1000,
        required_groups: String::new(),
        throttle_seconds: 5,
        root_path: "/".into(),
        timeout_minutes: 60,
        require_password_prompt: true,
        encrypt_password: true,
        spawn_lock: None,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = |v: &str| {
            v.parse::<u64>()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number: {v}")))
        };
        match flag.as_str() {
            "--listen" => {
                listen = Some(
                    value
                        .parse()
                        .unwrap_or_else(|_| usage(&format!("--listen: {value}"))),
                )
            }
            "--pam-helper" => pam_helper = Some(PathBuf::from(value)),
            "--min-uid" => {
                opts.min_uid = u32::try_from(number(&value)).unwrap_or_else(|_| usage("--min-uid"))
            }
            "--required-group" => opts.required_groups = value,
            "--throttle-seconds" => opts.throttle_seconds = number(&value),
            "--auth-timeout-minutes" => opts.timeout_minutes = number(&value),
            "--require-password-prompt" => opts.require_password_prompt = value == "1",
            "--encrypt-password" => opts.encrypt_password = value == "1",
            "--spawn-lock" => opts.spawn_lock = Some(PathBuf::from(value)),
            "--root-path" => {
                let mut root = value;
                if !root.starts_with('/') {
                    root.insert(0, '/');
                }
                if !root.ends_with('/') {
                    root.push('/');
                }
                opts.root_path = root;
            }
            _ => usage(&format!("unknown argument {flag}")),
        }
    }
    opts.listen = listen.unwrap_or_else(|| usage("--listen is required"));
    opts.pam_helper = pam_helper.unwrap_or_else(|| usage("--pam-helper is required"));
    opts
}

struct Server {
    opts: Opts,
    key: RsaPrivateKey,
    public_key: String,
    cookie_key: [u8; 32],
    /// `userIdentifierToLocalUsername`'s cache: typed name → account.
    canonical: Mutex<HashMap<String, String>>,
    /// `s_loginTimes`: account → last counted sign-in, Unix seconds.
    login_times: Mutex<HashMap<String, u64>>,
    /// `s_revokedCookies`: signed `user-id` values signed out.
    revoked: Mutex<HashSet<String>>,
}

fn log(line: &str) {
    let _ = writeln!(std::io::stderr(), "rserver_standin: {line}");
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `BN_bn2hex`: upper-case hex of the big-endian bytes, no leading zero byte.
fn bn2hex(n: &rsa::BigUint) -> String {
    n.to_bytes_be().iter().map(|b| format!("{b:02X}")).collect()
}

/// rserver's `urlEncode`: everything but unreserved characters percent-encoded.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn url_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// `core::system::generateUuid`: a random (version 4) UUID.
fn uuid() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A request cookie's value (the first one of that name).
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

/// `getCSRFTokenCookie`: the new cookie, else the old one.
fn csrf_cookie(headers: &HeaderMap) -> String {
    cookie(headers, CSRF)
        .filter(|v| !v.is_empty())
        .or_else(|| cookie(headers, OLD_CSRF))
        .unwrap_or_default()
}

/// Form or query fields; the first value of a name wins.
fn fields(text: &[u8]) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in form_urlencoded::parse(text) {
        map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    map
}

fn field<'a>(f: &'a HashMap<String, String>, name: &str) -> &'a str {
    f.get(name).map_or("", String::as_str)
}

/// A passwd entry, as much of it as rserver uses.
struct Pw {
    name: String,
    uid: u32,
    gid: u32,
}

/// Runs a `get*_r` lookup with a growing buffer (ERANGE), as glibc asks.
fn with_buffer<T>(mut f: impl FnMut(&mut Vec<c_char>) -> (i32, Option<T>)) -> Option<T> {
    let mut buf: Vec<c_char> = vec![0; 1024];
    loop {
        let (rc, found) = f(&mut buf);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        return if rc == 0 { found } else { None };
    }
}

/// # Safety
/// `p` is a passwd that getpw*_r just filled (its strings live in the caller's buffer).
unsafe fn pw_from(p: &libc::passwd) -> Pw {
    Pw {
        // SAFETY: pw_name of a filled entry is a NUL-terminated string in the buffer.
        name: unsafe { CStr::from_ptr(p.pw_name) }
            .to_string_lossy()
            .into_owned(),
        uid: p.pw_uid,
        gid: p.pw_gid,
    }
}

fn getpwnam(name: &str) -> Option<Pw> {
    let cname = CString::new(name).ok()?;
    with_buffer(|buf| {
        // SAFETY: zeroed passwd is a valid out-parameter (plain integers and pointers).
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: NUL-terminated name; `pw`, `buf` (with its length) and `result` are valid
        // places for glibc to write.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pw,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        // SAFETY: a non-NULL result is `pw`, filled, its strings in `buf`.
        (rc, (!result.is_null()).then(|| unsafe { pw_from(&pw) }))
    })
}

fn getpwuid(uid: u32) -> Option<Pw> {
    with_buffer(|buf| {
        // SAFETY: as in getpwnam.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: as in getpwnam.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) };
        // SAFETY: as in getpwnam.
        (rc, (!result.is_null()).then(|| unsafe { pw_from(&pw) }))
    })
}

fn group_gid(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    with_buffer(|buf| {
        // SAFETY: zeroed group is a valid out-parameter.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: NUL-terminated name; valid places for glibc to write.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut gr,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        (rc, (!result.is_null()).then_some(gr.gr_gid))
    })
}

/// `getgrouplist(name, gid)`: the user's groups, the primary one included.
fn group_list(name: &str, gid: u32) -> Vec<u32> {
    let Ok(cname) = CString::new(name) else {
        return Vec::new();
    };
    let mut n: libc::c_int = 64;
    loop {
        let mut groups: Vec<libc::gid_t> = vec![0; usize::try_from(n).unwrap_or(64)];
        let mut count = n;
        // SAFETY: NUL-terminated name; `groups` holds `count` entries, and glibc writes at most
        // that many (updating `count`).
        let rc =
            unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(usize::try_from(count).unwrap_or(0));
            return groups;
        }
        if count <= n || n > 65536 {
            return Vec::new();
        }
        n = count;
    }
}

impl Server {
    fn new(opts: Opts) -> Server {
        let key = RsaPrivateKey::new(&mut OsRng, 2048).expect("generate an RSA-2048 key");
        let public_key = format!("{}:{}", bn2hex(key.e()), bn2hex(key.n()));
        let mut cookie_key = [0u8; 32];
        OsRng.fill_bytes(&mut cookie_key);
        Server {
            opts,
            key,
            public_key,
            cookie_key,
            canonical: Mutex::new(HashMap::new()),
            login_times: Mutex::new(HashMap::new()),
            revoked: Mutex::new(HashSet::new()),
        }
    }

    fn root(&self) -> &str {
        &self.opts.root_path
    }

    /// `getCookieExpiry(true)`: how long the sign-in cookies are valid.
    fn validity(&self) -> Duration {
        if self.opts.timeout_minutes > 0 {
            Duration::from_secs(self.opts.timeout_minutes * 60)
        } else {
            // auth-stay-signed-in-days, default 30
            Duration::from_secs(30 * 24 * 3600)
        }
    }

    fn hmac(&self, value: &str, expires: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.cookie_key).expect("HMAC takes any key length");
        mac.update(value.as_bytes());
        mac.update(expires.as_bytes());
        mac
    }

    /// SecureCookie.cpp `createSecureCookie`'s value.
    fn secure_value(&self, value: &str, valid: Duration) -> String {
        let expires = httpdate::fmt_http_date(SystemTime::now() + valid);
        let mac = base64::engine::general_purpose::STANDARD
            .encode(self.hmac(value, &expires).finalize().into_bytes());
        format!(
            "{}|{}|{}",
            url_encode(value),
            url_encode(&expires),
            url_encode(&mac)
        )
    }

    /// SecureCookie.cpp `readSecureCookie`: the value, if the HMAC holds and it has not expired.
    fn read_secure(&self, signed: &str) -> Option<String> {
        // boost's char_separator drops empty tokens: "a||b" has two fields.
        let parts: Vec<&str> = signed.split('|').filter(|p| !p.is_empty()).collect();
        let [value, expires, mac] = parts.as_slice() else {
            log(&format!(
                "invalid secure cookie (wrong number of fields): {signed}"
            ));
            return None;
        };
        let (value, expires, mac) = (url_decode(value)?, url_decode(expires)?, url_decode(mac)?);
        let mac = base64::engine::general_purpose::STANDARD.decode(mac).ok()?;
        self.hmac(&value, &expires).verify_slice(&mac).ok()?;
        let expires = httpdate::parse_http_date(&expires).ok()?;
        (expires > SystemTime::now() && !value.is_empty()).then_some(value)
    }

    /// `getUserIdentifier(request, true)`: the signed-in account, if any.
    fn signed_in(&self, headers: &HeaderMap) -> Option<String> {
        let raw = cookie(headers, USER_ID).filter(|v| !v.is_empty())?;
        if self.revoked.lock().unwrap().contains(&raw) {
            return None;
        }
        // The open-source overlay's `isUserListCookieValid` accepts any user-list-id.
        self.read_secure(&raw)
    }

    fn set_cookie(&self, name: &str, value: &str, expires: Option<Duration>) -> String {
        let mut c = format!("{name}={value}; Path={}; HttpOnly", self.root());
        if let Some(d) = expires {
            c += &format!(
                "; Expires={}",
                httpdate::fmt_http_date(SystemTime::now() + d)
            );
        }
        c
    }

    fn delete_cookie(&self, name: &str) -> String {
        format!(
            "{name}=; Path={}; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly",
            self.root()
        )
    }

    /// `setCSRFTokenCookie`: both CSRF cookies, `token` or a new UUID; the token.
    fn csrf_cookies(&self, token: &str, expires: Option<Duration>) -> (String, Vec<String>) {
        let token = if token.is_empty() {
            uuid()
        } else {
            token.to_string()
        };
        let cookies = vec![
            self.set_cookie(CSRF, &token, expires),
            self.set_cookie(OLD_CSRF, &token, expires),
        ];
        (token, cookies)
    }

    /// `clearSignInCookies`.
    fn clear_cookies(&self) -> Vec<String> {
        let mut v = vec![
            self.delete_cookie(USER_ID),
            self.delete_cookie(USER_LIST_ID),
        ];
        if self.opts.timeout_minutes > 0 {
            v.push(self.delete_cookie(PERSIST_AUTH));
        }
        v
    }

    /// `setSignInCookies`.
    fn sign_in_cookies(&self, account: &str, persist: bool, csrf: &str) -> Vec<String> {
        let valid = self.validity();
        let expiry = persist.then_some(valid);
        let mut v = vec![
            self.set_cookie(USER_ID, &self.secure_value(account, valid), expiry),
            self.set_cookie(
                USER_LIST_ID,
                &self.secure_value(USER_LIST_VALUE, valid),
                expiry,
            ),
        ];
        if self.opts.timeout_minutes > 0 {
            v.push(self.set_cookie(PERSIST_AUTH, if persist { "1" } else { "0" }, Some(valid)));
        }
        v.extend(self.csrf_cookies(csrf, expiry).1);
        v
    }

    /// `generateLoginPath`: `/auth-sign-in?appUri=…[&error=N]`.
    fn login_path(&self, app_uri: &str, error: u32) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("appUri", app_uri);
        if error != 0 {
            q.append_pair("error", &error.to_string());
        }
        format!("{}auth-sign-in?{}", self.root(), q.finish())
    }

    /// `userIdentifierToLocalUsername`: getpwnam's pw_name, cached, failures included.
    fn canonical(&self, typed: &str) -> String {
        let mut cache = self.canonical.lock().unwrap();
        if let Some(name) = cache.get(typed) {
            return name.clone();
        }
        let name = match getpwnam(typed) {
            Some(pw) => pw.name,
            None => {
                log(&format!(
                    "no passwd entry for {typed:?}: keeping the typed name"
                ));
                typed.to_string()
            }
        };
        cache.insert(typed.to_string(), name.clone());
        name
    }

    /// `validateUser`: Err(why) when the account may not sign in.
    fn validate_user(&self, name: &str) -> Result<(), String> {
        let pw = getpwnam(name).ok_or("no such user")?;
        let again = getpwuid(pw.uid).ok_or("no passwd entry for its uid")?;
        if again.name != pw.name {
            return Err(format!(
                "another user with the same UID {} exists: {}",
                pw.uid, again.name
            ));
        }
        if pw.uid < self.opts.min_uid {
            return Err(format!(
                "uid {} is below auth-minimum-user-id {}",
                pw.uid, self.opts.min_uid
            ));
        }
        let wanted: Vec<&str> = self
            .opts
            .required_groups
            .split(',')
            .filter(|g| !g.is_empty())
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let mine = group_list(&pw.name, pw.gid);
        let member = wanted
            .iter()
            .any(|g| group_gid(g).is_some_and(|gid| gid == pw.gid || mine.contains(&gid)));
        if member {
            Ok(())
        } else {
            Err(format!(
                "not in any of the required groups ({})",
                self.opts.required_groups
            ))
        }
    }

    /// `isUserSignInThrottled`.
    fn throttled(&self, account: &str) -> bool {
        let now = now_secs();
        let mut times = self.login_times.lock().unwrap();
        match times.get_mut(account) {
            None => {
                times.insert(account.to_string(), now);
                false
            }
            Some(last) if *last + self.opts.throttle_seconds > now => true,
            Some(last) => {
                *last = now;
                false
            }
        }
    }

    /// `RSA private decrypt` of `v`.
    fn decrypt(&self, v: &str) -> Result<Vec<u8>, String> {
        let (oaep, b64) = match v.strip_prefix(OAEP_PREFIX) {
            Some(rest) => (true, rest),
            None => (false, v),
        };
        let clean: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(clean)
            .map_err(|e| format!("base64: {e}"))?;
        let plain = if oaep {
            self.key.decrypt(Oaep::new::<Sha256>(), &bytes)
        } else {
            self.key.decrypt(Pkcs1v15Encrypt, &bytes)
        };
        plain.map_err(|e| {
            format!(
                "RSA decrypt ({}): {e}",
                if oaep { "OAEP" } else { "PKCS#1 v1.5" }
            )
        })
    }

    /// `pamLogin`: runs the helper, password on stdin; true on exit status 0.
    fn pam_login(&self, account: &str, password: &[u8]) -> bool {
        if !self.opts.pam_helper.exists() {
            log(&format!(
                "PAM helper binary does not exist at {}",
                self.opts.pam_helper.display()
            ));
            return false;
        }
        if password.is_empty() {
            log(&format!(
                "No PAM password provided for user '{account}'; refusing login"
            ));
            return false;
        }
        let mut cmd = Command::new(&self.opts.pam_helper);
        cmd.args([
            account,
            "rstudio",
            if self.opts.require_password_prompt {
                "1"
            } else {
                "0"
            },
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let lock = self
            .opts
            .spawn_lock
            .as_ref()
            .and_then(|p| SpawnLock::take(p));
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                log(&format!("cannot run the PAM helper: {e}"));
                return false;
            }
        };
        if let Some(lock) = lock {
            lock.release_when_ready(child.id());
        }
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(password);
        }
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if start.elapsed() < HELPER_LIMIT => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let out = child
            .wait_with_output()
            .map(|o| o.stderr)
            .unwrap_or_default();
        for line in String::from_utf8_lossy(&out).lines() {
            log(&format!("pam helper: {line}"));
        }
        status.is_some_and(|s| s.success())
    }
}

/// pam_wrapper's start-up race (tests/src/command.rs): an exclusive flock held from just
/// before the spawn until `/tmp/pam.X/pid` names the child (5 s at most).
struct SpawnLock {
    // Held for its descriptor: closing it releases the lock.
    _file: std::fs::File,
}

impl SpawnLock {
    fn take(path: &std::path::Path) -> Option<SpawnLock> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()?;
        let start = Instant::now();
        // SAFETY: flock on a descriptor we own, non-blocking: the wait stays bounded.
        while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            if start.elapsed() > Duration::from_secs(60) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Some(SpawnLock { _file: file })
    }

    fn release_when_ready(self, pid: u32) {
        let start = Instant::now();
        let want = pid.to_string();
        while start.elapsed() < Duration::from_secs(5) {
            let ready = std::fs::read_dir("/tmp").is_ok_and(|entries| {
                entries.flatten().any(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.starts_with("pam.")
                        && name.len() == 5
                        && std::fs::read_to_string(e.path().join("pid"))
                            .is_ok_and(|p| p.trim() == want)
                })
            });
            if ready {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(self);
    }
}

type Shared = Arc<Server>;

fn redirect(location: &str, cookies: Vec<String>) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

fn no_cache(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, max-age=0, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::EXPIRES,
        HeaderValue::from_static("Fri, 01 Jan 1990 00:00:00 GMT"),
    );
}

fn html(status: StatusCode, body: String, cookies: Vec<String>) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

const BANNER: &str = "<p style=\"background:#fd0;padding:1em;font-weight:bold\">TEST STAND-IN for \
    RStudio Server's sign-in (rserver), used by accountmap's tests. This is not RStudio.</p>";

async fn public_key(State(s): State<Shared>) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, "text/plain")], s.public_key.clone()).into_response();
    no_cache(&mut resp);
    resp
}

/// ServerLoginPages.cpp `loginErrorMessage`.
fn error_message(code: &str) -> &'static str {
    match code {
        "1" => "Incorrect or invalid username/password",
        "2" => "Temporary server error, please try again",
        "3" => "Unauthorized user.",
        "4" => "The user limit for this license has been reached, or you are not allowed access.",
        "5" => "The user licensing system is temporarily unavailable. Please try again later.",
        _ => "",
    }
}

async fn sign_in_page(State(s): State<Shared>, uri: Uri, headers: HeaderMap) -> Response {
    let q = fields(uri.query().unwrap_or("").as_bytes());
    let app_uri = field(&q, "appUri").to_string();
    if s.signed_in(&headers).is_some() {
        let to = if app_uri.starts_with('/') {
            app_uri
        } else {
            format!("./{app_uri}")
        };
        return redirect(&to, vec![]);
    }
    let existing = cookie(&headers, CSRF).unwrap_or_default();
    let (token, cookies) = s.csrf_cookies(&existing, None);
    let error = error_message(field(&q, "error"));
    let credentials = if s.opts.encrypt_password {
        "<p>This page has no JavaScript: the client posts <code>v</code> (the encrypted \
         <code>username\\npassword</code>) itself.</p>\n\
         <label>v <input name=\"v\"></label>\n\
         <label><input type=\"checkbox\" name=\"persist\" value=\"1\"> Stay signed in</label>"
    } else {
        "<label>Username <input name=\"username\" autocomplete=\"username\"></label>\n\
         <label>Password <input type=\"password\" name=\"password\"></label>\n\
         <label><input type=\"checkbox\" name=\"staySignedIn\" value=\"1\"> Stay signed in</label>"
    };
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <title>Sign in - RStudio Server (test stand-in, not RStudio)</title></head><body>\n\
         {BANNER}\n<h1>Sign in to RStudio Server (test stand-in)</h1>\n\
         <p id=\"errorpanel\" style=\"display:{}\">{}</p>\n\
         <form method=\"POST\" action=\"{}auth-do-sign-in\">\n\
         <input type=\"hidden\" name=\"rs-csrf-token\" value=\"{}\">\n\
         <input type=\"hidden\" name=\"appUri\" value=\"{}\">\n\
         <input type=\"hidden\" name=\"clientPath\" value=\"\">\n{credentials}\n\
         <button type=\"submit\">Sign In</button>\n</form>\n\
         <p>Public key: <a href=\"{}auth-public-key\">auth-public-key</a></p>\n</body></html>\n",
        if error.is_empty() { "none" } else { "block" },
        html_escape(error),
        html_escape(s.root()),
        html_escape(&token),
        html_escape(&app_uri),
        html_escape(s.root()),
    );
    let mut resp = html(StatusCode::OK, body, cookies);
    no_cache(&mut resp);
    resp.headers_mut()
        .insert("x-frame-options", HeaderValue::from_static("DENY"));
    resp
}

async fn do_sign_in(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form = fields(&body);
    let app_uri = field(&form, "appUri").to_string();

    // validateCSRFForm
    let cookie_token = csrf_cookie(&headers);
    let mut body_token = field(&form, CSRF);
    if body_token.is_empty() {
        body_token = field(&form, OLD_CSRF);
    }
    if cookie_token.is_empty() || body_token != cookie_token {
        log("sign-in refused: missing or incorrect CSRF token -> error=2");
        // rserver passes the constant "appUri" here, not the app URI.
        return redirect(&s.login_path("appUri", ERROR_SERVER), vec![]);
    }

    let (typed, password, persist) = if s.opts.encrypt_password {
        let plain = match s.decrypt(field(&form, "v")) {
            Ok(p) => p,
            Err(e) => {
                log(&format!("sign-in refused: {e} -> error=2"));
                return redirect(&s.login_path(&app_uri, ERROR_SERVER), vec![]);
            }
        };
        let Some(at) = plain.iter().position(|b| *b == b'\n') else {
            log("sign-in refused: Didn't find newline in plaintext -> error=2");
            return redirect(&s.login_path(&app_uri, ERROR_SERVER), vec![]);
        };
        let Ok(typed) = String::from_utf8(plain[..at].to_vec()) else {
            log("sign-in refused: the user name is not UTF-8 -> error=2");
            return redirect(&s.login_path(&app_uri, ERROR_SERVER), vec![]);
        };
        (
            typed,
            plain[at + 1..].to_vec(),
            field(&form, "persist") == "1",
        )
    } else {
        (
            field(&form, "username").to_string(),
            field(&form, "password").as_bytes().to_vec(),
            field(&form, "staySignedIn") == "1",
        )
    };

    let server = Arc::clone(&s);
    let decision = tokio::task::spawn_blocking(move || {
        let account = server.canonical(&typed);
        let authenticated = server.pam_login(&account, &password);
        // checkUser: valid user, then throttle, then the PAM verdict.
        let outcome = if let Err(why) = server.validate_user(&account) {
            Err((ERROR_USER_UNAUTHORIZED, why))
        } else if server.throttled(&account) {
            Err((
                ERROR_SERVER,
                format!(
                    "throttled: one sign-in per {} s",
                    server.opts.throttle_seconds
                ),
            ))
        } else if !authenticated {
            Err((ERROR_INVALID_LOGIN, "PAM refused".to_string()))
        } else {
            Ok(())
        };
        log(&format!(
            "sign-in typed={typed:?} account={account:?} pam={} -> {}",
            if authenticated { "ok" } else { "failed" },
            match &outcome {
                Ok(()) => "signed in".to_string(),
                Err((n, why)) => format!("error={n} ({why})"),
            }
        ));
        (account, outcome)
    })
    .await;
    let Ok((account, outcome)) = decision else {
        return redirect(&s.login_path(&app_uri, ERROR_SERVER), vec![]);
    };
    match outcome {
        Err((n, _)) => redirect(&s.login_path(&app_uri, n), vec![]),
        Ok(()) => {
            let to = if app_uri.starts_with('/') {
                app_uri
            } else {
                format!("/{app_uri}")
            };
            redirect(&to, s.sign_in_cookies(&account, persist, &cookie_token))
        }
    }
}

async fn sign_out(State(s): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let Some(account) = s.signed_in(&headers) else {
        return redirect(&s.login_path(&uri.to_string(), 0), s.clear_cookies());
    };
    let form = fields(&body);
    let cookie_token = csrf_cookie(&headers);
    let mut body_token = field(&form, CSRF);
    if body_token.is_empty() {
        body_token = field(&form, OLD_CSRF);
    }
    if cookie_token.is_empty() || body_token != cookie_token {
        log(&format!(
            "sign-out of {account:?} refused: missing or incorrect CSRF token"
        ));
        return (StatusCode::BAD_REQUEST, "Missing or incorrect token.").into_response();
    }
    if let Some(raw) = cookie(&headers, USER_ID) {
        s.revoked.lock().unwrap().insert(raw);
    }
    log(&format!(
        "signed out {account:?}; its user-id cookie is revoked"
    ));
    redirect(&format!("{}auth-sign-in", s.root()), s.clear_cookies())
}

async fn main_page(State(s): State<Shared>, uri: Uri, headers: HeaderMap) -> Response {
    let Some(account) = s.signed_in(&headers) else {
        let app_uri = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |p| p.to_string());
        return redirect(&s.login_path(&app_uri, 0), s.clear_cookies());
    };
    let token = csrf_cookie(&headers);
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <title>RStudio (test stand-in)</title></head><body>\n{BANNER}\n\
         <h1>RStudio (test stand-in)</h1>\n<p id=\"user\">signed in as {}</p>\n\
         <form method=\"POST\" action=\"{}auth-sign-out\">\
         <input type=\"hidden\" name=\"rs-csrf-token\" value=\"{}\">\
         <button type=\"submit\">Sign out</button></form>\n</body></html>\n",
        html_escape(&account),
        html_escape(s.root()),
        html_escape(&token),
    );
    html(StatusCode::OK, body, vec![])
}

fn main() -> ExitCode {
    let opts = parse_opts();
    let listen = opts.listen;
    let started = Instant::now();
    let server = Arc::new(Server::new(opts));
    log(&format!(
        "TEST STAND-IN for rserver (not RStudio): RSA-2048 key made in {:?}; min uid {}, \
         required groups {:?}, throttle {} s, root path {}",
        started.elapsed(),
        server.opts.min_uid,
        server.opts.required_groups,
        server.opts.throttle_seconds,
        server.opts.root_path
    ));
    let app = Router::new()
        .route("/auth-public-key", get(public_key))
        .route("/auth-sign-in", get(sign_in_page))
        .route("/auth-do-sign-in", any(do_sign_in))
        .route("/auth-sign-out", any(sign_out))
        .fallback(main_page)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(server);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log(&format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                log(&format!("cannot listen on {listen}: {e}"));
                return ExitCode::FAILURE;
            }
        };
        log(&format!("listening on {listen}"));
        match axum::serve(listener, app).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log(&format!("server error: {e}"));
                ExitCode::FAILURE
            }
        }
    })
}
