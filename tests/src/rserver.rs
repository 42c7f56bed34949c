//! The rserver stand-in (`src/bin/rserver_standin.rs`, a TEST STAND-IN for RStudio Server's
//! sign-in, not RStudio) run for one [`Env`], and a small blocking HTTP/1.1 client to talk to it.
//!
//! The stand-in runs under pam_wrapper and nss_wrapper with the accountmap NSS module
//! ([`Env::pam_wrapped`] then [`Env::nss_module_vars`]): its `getpwnam` sees the test's users
//! and the daemon's aliases, and its PAM helper (`rserver_pam`, which inherits the
//! environment) reads the test's PAM service files. Its stderr goes to `rserver.log` in the
//! test directory ([`RServer::log`]).

use crate::artifacts::artifact;
use crate::net::free_port;
use crate::server::{kill_and_wait_closed, listening, spawn_logged};
use crate::wrappers::PAM_WRAPPER_LOCK;
use crate::wrappers::{clean_stale_pam_wrapper_dirs, pam_wrapper_ready, StartLock};
use crate::Env;
use accountmap_gate::rserver::{encrypt_credentials, parse_public_key, sign_in_form, Scheme};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// How long the stand-in may take to make its RSA key and listen.
pub const RSERVER_START_LIMIT: Duration = Duration::from_secs(30);
/// How long one HTTP exchange may take (a sign-in runs the PAM helper).
pub const HTTP_LIMIT: Duration = Duration::from_secs(30);

/// rserver's options that the stand-in has (rserver.conf names in the comments).
#[derive(Clone, Debug)]
pub struct RServerOptions {
    /// `auth-minimum-user-id`.
    pub min_uid: u32,
    /// `auth-required-user-group`: comma-separated, `None` for no requirement.
    pub required_group: Option<String>,
    /// `auth-sign-in-throttle-seconds`.
    pub throttle_seconds: u64,
    /// `www-root-path`.
    pub root_path: String,
    /// `auth-pam-require-password-prompt`.
    pub require_password_prompt: bool,
}

impl Default for RServerOptions {
    /// rserver's defaults (with `auth-minimum-user-id` 1000).
    fn default() -> RServerOptions {
        RServerOptions {
            min_uid: 1000,
            required_group: None,
            throttle_seconds: 5,
            root_path: "/".into(),
            require_password_prompt: true,
        }
    }
}

/// A running stand-in, killed when dropped.
pub struct RServer {
    pub port: u16,
    pub log_path: PathBuf,
    child: Option<Child>,
}

impl RServer {
    /// Starts the stand-in on a free loopback port and waits until it listens.
    pub fn start(env: &Env, opts: &RServerOptions) -> RServer {
        let port = free_port();
        let log_path = env.path(&format!("rserver-{port}.log"));
        let mut cmd = Command::new(artifact("rserver_standin"));
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--pam-helper")
            .arg(artifact("rserver_pam"))
            .args(["--min-uid", &opts.min_uid.to_string()])
            .args(["--throttle-seconds", &opts.throttle_seconds.to_string()])
            .args(["--root-path", &opts.root_path])
            .args([
                "--require-password-prompt",
                if opts.require_password_prompt {
                    "1"
                } else {
                    "0"
                },
            ])
            .args(["--spawn-lock", PAM_WRAPPER_LOCK]);
        if let Some(g) = &opts.required_group {
            cmd.args(["--required-group", g]);
        }
        env.pam_wrapped(&mut cmd);
        env.nss_module_vars(&mut cmd);
        // pam_wrapper's start-up races with other preloaded processes: serialised as
        // run_bounded_pam does.
        let lock = StartLock::acquire();
        let child = spawn_logged(&mut cmd, &log_path);
        let start = Instant::now();
        while !pam_wrapper_ready(child.id()) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(lock);
        let mut rs = RServer {
            port,
            log_path,
            child: Some(child),
        };
        if !listening(&[port], RSERVER_START_LIMIT) {
            let log = rs.log();
            kill_and_wait_closed(&mut rs.child, port);
            panic!("the rserver stand-in did not listen on {port} within {RSERVER_START_LIMIT:?}\n{log}");
        }
        rs
    }

    /// What the stand-in has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn get(&self, path: &str, cookies: &[(&str, &str)]) -> HttpResponse {
        http_request(self.port, "GET", path, cookies, None)
    }

    /// rserver's sign-in as its page and the gate make it: the sign-in page for the CSRF
    /// cookie, the public key, then `/auth-do-sign-in` with the cookie and the same token in
    /// the form, `typed` and `secret` encrypted with `scheme` (the gate's own client code).
    pub fn sign_in(
        &self,
        typed: &str,
        secret: &str,
        scheme: Scheme,
        app_uri: &str,
    ) -> HttpResponse {
        let page = self.get("/auth-sign-in", &[]);
        assert_eq!(page.status, 200, "{page:?}");
        assert!(page.body.contains("TEST STAND-IN"), "{}", page.body);
        let csrf = page
            .cookie("rs-csrf-token")
            .expect("an rs-csrf-token cookie");
        let key = parse_public_key(&self.get("/auth-public-key", &[]).body)
            .expect("rserver's public key");
        let v = encrypt_credentials(&key, scheme, typed, secret, &mut rand_core::OsRng)
            .expect("the credentials encrypt");
        self.post_form(
            "/auth-do-sign-in",
            &[("rs-csrf-token", &csrf)],
            &sign_in_form(&csrf, app_uri, &v),
        )
    }

    /// POSTs an `application/x-www-form-urlencoded` body.
    pub fn post_form(&self, path: &str, cookies: &[(&str, &str)], form: &str) -> HttpResponse {
        http_request(
            self.port,
            "POST",
            path,
            cookies,
            Some(("application/x-www-form-urlencoded", form.as_bytes())),
        )
    }
}

impl Drop for RServer {
    fn drop(&mut self) {
        kill_and_wait_closed(&mut self.child, self.port);
        clean_stale_pam_wrapper_dirs();
    }
}

/// One HTTP response as the client read it.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case, in order (`Set-Cookie` may repeat).
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// Every `Set-Cookie` header, whole.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value the response sets for cookie `name` (the last `Set-Cookie` of that name).
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .filter_map(|c| c.split(';').next()?.split_once('='))
            .filter(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.to_string())
            .next_back()
    }
}

/// A blocking HTTP/1.1 exchange with 127.0.0.1:`port` (`Connection: close`), bounded by
/// [`HTTP_LIMIT`].
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    cookies: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> HttpResponse {
    http_request_with(port, method, path, cookies, &[], body)
}

/// As [`http_request`], with more request headers (a `Host` among them replaces
/// `127.0.0.1:PORT`): what a proxy in front adds, for instance.
pub fn http_request_with(
    port: u16,
    method: &str,
    path: &str,
    cookies: &[(&str, &str)],
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> HttpResponse {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(HTTP_LIMIT)).expect("read timeout");
    s.set_write_timeout(Some(HTTP_LIMIT))
        .expect("write timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req += &format!("Host: 127.0.0.1:{port}\r\n");
    }
    for (n, v) in headers {
        req += &format!("{n}: {v}\r\n");
    }
    if !cookies.is_empty() {
        let c: Vec<String> = cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
        req += &format!("Cookie: {}\r\n", c.join("; "));
    }
    let data: &[u8] = match body {
        Some((ctype, data)) => {
            req += &format!(
                "Content-Type: {ctype}\r\nContent-Length: {}\r\n",
                data.len()
            );
            data
        }
        None => b"",
    };
    req += "\r\n";
    s.write_all(req.as_bytes()).expect("send the request");
    s.write_all(data).expect("send the body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {path}: reading the answer: {e}"));
    parse_response(&raw).unwrap_or_else(|| {
        panic!(
            "{method} {path}: not an HTTP response: {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn parse_response(raw: &[u8]) -> Option<HttpResponse> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Some(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
