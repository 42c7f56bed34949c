//! Smoke tests of the browser harness the RStudio sign-in end-to-end test stands on: a real
//! nginx (Debian's) with the README's RStudio site, a real headless Chromium driven over
//! WebDriver, and the test OpenID Provider's own interactive login and consent pages.
//!
//! Both need root (Chromium and nginx run as the CI does) and Debian's `nginx`, `chromium` and
//! `chromium-driver` (scripts/install-deps.sh); without them they say why and pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::browser::{Browser, Cookie};
use accountmap_tests::nginx::{rstudio_site, Nginx};
use accountmap_tests::oidc_provider::{OidcProvider, Setup, CLIENT_ID, CLIENT_SECRET};
use accountmap_tests::{free_port, is_root, remove_unless_kept, AcceptLoop};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const STEP: Duration = Duration::from_secs(20);

/// Why the browser tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    if !is_root() {
        return Some("not root (CI runs as root)".into());
    }
    if !Browser::available() {
        return Some("chromium or chromium-driver missing (scripts/install-deps.sh)".into());
    }
    if !Nginx::available() {
        return Some("nginx missing (scripts/install-deps.sh)".into());
    }
    None
}

/// The test's own directory (0755), removed at the end unless ACCOUNTMAP_TESTS_KEEP is set.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!("am-browser-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the test directory");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        remove_unless_kept(&self.0);
    }
}

/// One request as a tiny server saw it: the request line and the headers, lowercased names.
#[derive(Clone, Debug)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP server on loopback that records every request and answers each with
/// `respond(request line)`: (extra header lines, HTML body).
fn tiny_server(
    respond: impl Fn(&str) -> (String, String) + Send + 'static,
) -> (AcceptLoop, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = AcceptLoop::start(move |mut s: TcpStream| {
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let Ok(reader) = s.try_clone() else { return };
        let mut lines = BufReader::new(reader).lines();
        let Some(Ok(line)) = lines.next() else { return };
        let mut headers = Vec::new();
        for l in lines.map_while(Result::ok).take_while(|l| !l.is_empty()) {
            if let Some((n, v)) = l.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let (extra, body) = respond(&line);
        log.lock().unwrap().push(Seen { line, headers });
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n{extra}\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    (server, seen)
}

fn is_png(path: &std::path::Path) -> bool {
    let bytes = fs::read(path).unwrap_or_default();
    bytes.len() > 8 && bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

/// nginx with the README's RStudio site in front of a tiny server standing for both rserver
/// and the gate; Chromium loads pages through it, and keeps and sends back a Secure cookie
/// set over plain http://localhost.
#[test]
fn chromium_through_nginx_keeps_a_secure_cookie_on_localhost() {
    if let Some(why) = skip_reason() {
        eprintln!("browser_smoke: skipped, {why}");
        return;
    }
    let dir = TestDir::new("nginx");
    let (server, seen) = tiny_server(|line| {
        let cookie = "Set-Cookie: smoke=s3cr3t; Path=/; Secure; HttpOnly; SameSite=Lax\r\n";
        let extra = if line.starts_with("GET / ") {
            cookie.to_string()
        } else {
            String::new()
        };
        (
            extra,
            "<!doctype html><title>Smoke page</title><body><h1>Hello through nginx</h1>".into(),
        )
    });
    let port = free_port();
    let backend = server.addr.port();
    let nginx = Nginx::start(&dir.0, &rstudio_site(port, backend, backend));
    let browser = Browser::start(&dir.0).unwrap_or_else(|e| panic!("{e}"));
    let base = format!("http://localhost:{port}");
    let fail = |e: String| -> ! { panic!("{e}\n{}\n{}", nginx.logs(), browser.log()) };

    browser
        .goto(&format!("{base}/"))
        .unwrap_or_else(|e| fail(e));
    assert_eq!(browser.title().unwrap_or_else(|e| fail(e)), "Smoke page");
    assert!(browser
        .page_text()
        .unwrap_or_else(|e| fail(e))
        .contains("Hello through nginx"));
    let shot = dir.0.join("smoke.png");
    browser.screenshot(&shot).unwrap_or_else(|e| fail(e));
    assert!(is_png(&shot), "{} is not a PNG", shot.display());

    // Chromium counts http://localhost as a secure context: the Secure cookie is kept...
    let cookies = browser.cookies().unwrap_or_else(|e| fail(e));
    let smoke: Vec<&Cookie> = cookies.iter().filter(|c| c.name == "smoke").collect();
    assert_eq!(smoke.len(), 1, "cookies: {cookies:?}");
    let c = smoke[0];
    assert_eq!(
        (
            c.value.as_str(),
            c.secure,
            c.http_only,
            c.same_site.as_str()
        ),
        ("s3cr3t", true, true, "Lax"),
        "{c:?}"
    );
    assert_eq!((c.domain.as_str(), c.path.as_str()), ("localhost", "/"));
    // ...and sent back on the next request.
    browser
        .goto(&format!("{base}/second"))
        .unwrap_or_else(|e| fail(e));

    // RStudio's sign-in page goes to the gate, with the query (appUri) kept.
    browser
        .goto(&format!("{base}/auth-sign-in?appUri=%2Fhome"))
        .unwrap_or_else(|e| fail(e));
    let url = browser.current_url().unwrap_or_else(|e| fail(e));
    assert_eq!(url, format!("{base}/gate/login?appUri=%2Fhome"));

    let seen = seen.lock().unwrap().clone();
    let find = |prefix: &str| {
        seen.iter()
            .find(|s| s.line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {seen:#?}\n{}", nginx.logs()))
    };
    let second = find("GET /second ");
    assert_eq!(second.header("cookie"), Some("smoke=s3cr3t"), "{second:?}");
    let gate = find("GET /gate/login?appUri=%2Fhome ");
    // The gate sees the host and scheme the browser used.
    assert_eq!(
        gate.header("host"),
        Some(format!("localhost:{port}").as_str())
    );
    assert_eq!(gate.header("x-forwarded-proto"), Some("http"));
    assert_eq!(gate.header("x-forwarded-for"), Some("127.0.0.1"));
    let root = find("GET / ");
    assert_eq!(
        root.header("host"),
        Some(format!("localhost:{port}").as_str())
    );
    assert!(
        nginx
            .access_log()
            .contains("GET /auth-sign-in?appUri=%2Fhome HTTP/1.1\" 302"),
        "{}",
        nginx.logs()
    );
}

/// Chromium goes through the provider's own login and consent pages and lands on the
/// gate's callback (http://localhost, the redirect URI the end-to-end test registers) with a
/// code and the state it was sent with.
#[test]
fn chromium_signs_in_at_the_test_provider() {
    if let Some(why) = skip_reason() {
        eprintln!("browser_smoke: skipped, {why}");
        return;
    }
    let dir = TestDir::new("provider");
    let (callback, seen) = tiny_server(|_| {
        (
            String::new(),
            "<!doctype html><title>Callback</title><body>callback reached".into(),
        )
    });
    let redirect_uri = format!("http://localhost:{}/gate/callback", callback.addr.port());
    let provider = OidcProvider::start_with(
        "browser",
        Setup {
            redirect_uris: vec![redirect_uri.clone()],
            token_endpoint_auth_method: Some("client_secret_post".into()),
            ..Setup::rsa()
        },
    );
    let browser = Browser::start(&dir.0).unwrap_or_else(|e| panic!("{e}"));
    let fail = |e: String| -> ! {
        panic!(
            "{e}\n--- provider log ---\n{}\n{}",
            provider.log(),
            browser.log()
        )
    };

    // What the gate will send: code flow, PKCE S256 (the challenge is the verifier's SHA-256,
    // base64url), state and nonce.
    let state = "st-4f1c2a";
    let query = [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", redirect_uri.as_str()),
        ("scope", "openid email"),
        ("state", state),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", PKCE_CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", percent_encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    browser
        .goto(&format!("{}/auth?{query}", provider.issuer()))
        .unwrap_or_else(|e| fail(e));

    let on_page = |prompt: &'static str| {
        move |b: &Browser| {
            Ok(b.find(&format!("input[name=prompt][value={prompt}]"))
                .is_ok())
        }
    };
    browser
        .wait_for(STEP, on_page("login"))
        .unwrap_or_else(|e| fail(format!("the login page: {e}")));
    let shot = dir.0.join("provider-login.png");
    browser.screenshot(&shot).unwrap_or_else(|e| fail(e));
    assert!(is_png(&shot), "{} is not a PNG", shot.display());
    browser
        .type_into("input[name=login]", "alice-sub")
        .and_then(|_| browser.type_into("input[name=password]", "any password"))
        .and_then(|_| browser.click("button[type=submit]"))
        .unwrap_or_else(|e| fail(e));

    browser
        .wait_for(STEP, on_page("consent"))
        .unwrap_or_else(|e| fail(format!("the consent page: {e}")));
    browser
        .click("button[type=submit]")
        .unwrap_or_else(|e| fail(e));

    let url = browser
        .wait_for_url(&redirect_uri, STEP)
        .unwrap_or_else(|e| fail(e));
    let params = query_params(&url);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert!(get("code").is_some_and(|c| !c.is_empty()), "{url}");
    assert_eq!(get("state"), Some(state), "{url}");
    assert_eq!(get("iss"), Some(provider.issuer().as_str()), "{url}");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|s| s.line.starts_with("GET /gate/callback?")),
        "the callback server saw {seen:?}"
    );

    // The code is good for an ID token, exchanged as the gate will: client_secret_post, the
    // same redirect URI, the PKCE verifier.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", get("code").unwrap_or("")),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", PKCE_VERIFIER),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", percent_encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    let answer = post_form(provider.port, "/token", &form);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("\"id_token\""),
        "token endpoint: {answer}\n--- provider log ---\n{}",
        provider.log()
    );
}

const PKCE_VERIFIER: &str = "accountmap-browser-smoke-pkce-verifier-0123456789";
/// base64url(SHA-256(PKCE_VERIFIER)), as node's crypto computes it.
const PKCE_CHALLENGE: &str = "_cFYm83zUznf1E0mq5SWt1Cp1_-vjF2-ASqzs1fC-fQ";

/// POSTs a form to 127.0.0.1:`port` and reads the whole answer (node closes the connection).
fn post_form(port: u16, path: &str, form: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .expect("send the form");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read the answer");
    answer
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The query of `url`, percent-decoded (enough for codes, states and issuers).
fn query_params(url: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' if i + 2 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).to_string()
    };
    url.split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(""))
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}
