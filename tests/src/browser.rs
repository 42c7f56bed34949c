//! A real headless Chromium (Debian's `chromium` and `chromium-driver`) driven over W3C
//! WebDriver, for the browser tests.
//!
//! [`Browser::start`] runs `chromedriver` on a free loopback port and opens one session; the
//! client is a few blocking HTTP/1.1 requests with JSON bodies over a `TcpStream` (one
//! connection per command, `Connection: close`), every one with a read timeout. Every wait is
//! bounded. Dropping the browser ends the session and kills chromedriver and Chromium.
//!
//! Chromium runs with the flags this machine needs (as root: `--no-sandbox`; with no network:
//! no background networking, component updates or sync, no QUIC) and a fresh profile in the
//! test's directory, so no cookie or cache survives from another test.

use crate::net::free_port;
use crate::server::spawn_logged;
use crate::wait::wait_until;
use base64::Engine as _;
use serde_json::{json, Value};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long chromedriver may take to listen.
pub const DRIVER_START_LIMIT: Duration = Duration::from_secs(15);
/// A page load (WebDriver's pageLoad timeout); a command's HTTP read timeout is above it.
pub const PAGE_LOAD_LIMIT: Duration = Duration::from_secs(30);
const COMMAND_READ_LIMIT: Duration = Duration::from_secs(60);

/// W3C's key for an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver element reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementId(pub String);

/// A cookie as WebDriver reports it for the current page's origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub domain: String,
    pub path: String,
    pub secure: bool,
    pub http_only: bool,
    /// `Strict`, `Lax` or `None` (Chromium reports `Lax` for a cookie set without SameSite).
    pub same_site: String,
}

pub struct Browser {
    /// chromedriver's port on 127.0.0.1.
    pub port: u16,
    session: String,
    dir: PathBuf,
    driver: Option<Child>,
}

impl Browser {
    /// Whether Debian's chromium and chromium-driver are installed.
    pub fn available() -> bool {
        Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
    }

    /// Starts chromedriver and a headless Chromium session whose profile and logs live in
    /// `dir/browser-N`: each browser a new profile, as a new user's would be (no cookies, no
    /// provider session left by an earlier one).
    pub fn start(dir: &Path) -> Result<Browser, String> {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = dir.join(format!("browser-{n}"));
        let profile = dir.join("profile");
        fs::create_dir_all(&profile).map_err(|e| format!("create {}: {e}", profile.display()))?;
        let port = free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            // Chromium's own stderr goes to chromedriver's log too.
            .arg(format!(
                "--log-path={}",
                dir.join("chromedriver.log").display()
            ))
            .arg("--enable-chrome-logs")
            // Its own process group, so that Chromium's processes go with it on Drop.
            .process_group(0);
        let driver = spawn_logged(&mut cmd, &dir.join("chromedriver.out"));
        let mut b = Browser {
            port,
            session: String::new(),
            dir,
            driver: Some(driver),
        };
        if !wait_until(DRIVER_START_LIMIT, || {
            b.request("GET", "/status", None)
                .map(|v| v["ready"] == json!(true))
                .unwrap_or(false)
        }) {
            return Err(format!(
                "chromedriver not ready on {port} within {DRIVER_START_LIMIT:?}\n{}",
                b.log()
            ));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {"pageLoad": PAGE_LOAD_LIMIT.as_millis() as u64, "script": 10_000, "implicit": 0},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
                    "--window-size=1200,900",
                ],
            },
        }}});
        let v = b
            .request("POST", "/session", Some(&caps))
            .map_err(|e| format!("new session: {e}\n{}", b.log()))?;
        b.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| format!("new session: no sessionId in {v}"))?
            .to_string();
        Ok(b)
    }

    /// The end of chromedriver's log (every command and response, with Chromium's stderr),
    /// for failure messages; the whole file is `dir/browser/chromedriver.log`.
    pub fn log(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let log = read("chromedriver.log");
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "--- chromedriver.log (last 150 lines) ---\n{}\n--- chromedriver output ---\n{}",
            lines[lines.len().saturating_sub(150)..].join("\n"),
            read("chromedriver.out")
        )
    }

    /// Navigates to `url` and waits for the page load (at most [`PAGE_LOAD_LIMIT`]).
    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.cmd("POST", "/url", json!({ "url": url })).map(|_| ())
    }

    pub fn current_url(&self) -> Result<String, String> {
        self.string(self.cmd("GET", "/url", Value::Null)?)
    }

    pub fn title(&self) -> Result<String, String> {
        self.string(self.cmd("GET", "/title", Value::Null)?)
    }

    /// The page's visible text (`document.body.innerText`).
    pub fn page_text(&self) -> Result<String, String> {
        let v = self.execute(
            "return document.body ? document.body.innerText : '';",
            json!([]),
        )?;
        self.string(v)
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page; its return value.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
    }

    /// The first element matching the CSS selector `css`.
    pub fn find(&self, css: &str) -> Result<ElementId, String> {
        let v = self
            .cmd(
                "POST",
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .map_err(|e| format!("find {css:?}: {e}"))?;
        v[ELEMENT_KEY]
            .as_str()
            .map(|id| ElementId(id.to_string()))
            .ok_or_else(|| format!("find {css:?}: no element reference in {v}"))
    }

    /// Types `text` into the element matching `css` (after what it holds already).
    pub fn type_into(&self, css: &str, text: &str) -> Result<(), String> {
        let el = self.find(css)?;
        self.cmd(
            "POST",
            &format!("/element/{}/value", el.0),
            json!({ "text": text }),
        )
        .map(|_| ())
        .map_err(|e| format!("type into {css:?}: {e}"))
    }

    /// Clicks the element matching `css`; a click that submits a form returns once the next
    /// page has started loading, so callers wait for what they expect next.
    pub fn click(&self, css: &str) -> Result<(), String> {
        let el = self.find(css)?;
        self.cmd("POST", &format!("/element/{}/click", el.0), json!({}))
            .map(|_| ())
            .map_err(|e| format!("click {css:?}: {e}"))
    }

    /// Polls `pred` every 100 ms until it returns true or `limit` passes; the error names the
    /// page the browser is on and the last error `pred` returned.
    pub fn wait_for(
        &self,
        limit: Duration,
        mut pred: impl FnMut(&Browser) -> Result<bool, String>,
    ) -> Result<(), String> {
        let start = Instant::now();
        let mut last = String::new();
        loop {
            match pred(self) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last = e,
            }
            if start.elapsed() > limit {
                let url = self.current_url().unwrap_or_else(|e| format!("({e})"));
                let text = self.page_text().unwrap_or_else(|e| format!("({e})"));
                return Err(format!(
                    "timed out after {limit:?} at {url}; last error: {last:?}\n--- page text ---\n{text}"
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the current URL starts with `prefix`; the URL.
    pub fn wait_for_url(&self, prefix: &str, limit: Duration) -> Result<String, String> {
        let mut url = String::new();
        self.wait_for(limit, |b| {
            url = b.current_url()?;
            Ok(url.starts_with(prefix))
        })
        .map_err(|e| format!("waiting for a URL starting with {prefix}: {e}"))?;
        Ok(url)
    }

    /// The cookies visible to the current page.
    pub fn cookies(&self) -> Result<Vec<Cookie>, String> {
        let v = self.cmd("GET", "/cookie", Value::Null)?;
        let list = v
            .as_array()
            .ok_or_else(|| format!("cookies: not a list: {v}"))?;
        let text = |c: &Value, k: &str| c[k].as_str().unwrap_or_default().to_string();
        Ok(list
            .iter()
            .map(|c| Cookie {
                name: text(c, "name"),
                value: text(c, "value"),
                domain: text(c, "domain"),
                path: text(c, "path"),
                secure: c["secure"].as_bool().unwrap_or(false),
                http_only: c["httpOnly"].as_bool().unwrap_or(false),
                same_site: text(c, "sameSite"),
            })
            .collect())
    }

    /// Saves a PNG screenshot of the viewport to `path`.
    pub fn screenshot(&self, path: &Path) -> Result<(), String> {
        let v = self.cmd("GET", "/screenshot", Value::Null)?;
        let b64 = v
            .as_str()
            .ok_or_else(|| format!("screenshot: not a string: {v}"))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("screenshot: bad base64: {e}"))?;
        fs::write(path, png).map_err(|e| format!("write {}: {e}", path.display()))
    }

    /// Ends the session (Chromium exits) and kills chromedriver's process group.
    pub fn quit(&mut self) {
        if !self.session.is_empty() {
            let _ = self.request("DELETE", &format!("/session/{}", self.session), None);
            self.session.clear();
        }
        if let Some(mut child) = self.driver.take() {
            let pgid = child.id() as libc::pid_t;
            // SAFETY: kill(2) with a negative pid signals the process group made at spawn
            // (chromedriver leads it, Chromium inherits it); no memory is involved.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }

    fn string(&self, v: Value) -> Result<String, String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("expected a string, got {v}"))
    }

    /// A command of the session: its `value`.
    fn cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let body = if body.is_null() { None } else { Some(&body) };
        self.request(method, &format!("/session/{}{path}", self.session), body)
    }

    /// One WebDriver request: the response's `value`, or its error and message.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let (status, text) = http(self.port, method, path, body.map(|b| b.to_string()))
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{method} {path}: HTTP {status}, not JSON ({e}): {text}"))?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if status != 200 {
            return Err(format!(
                "{method} {path}: HTTP {status}: {}: {}",
                value["error"].as_str().unwrap_or("?"),
                value["message"].as_str().unwrap_or(&text)
            ));
        }
        Ok(value)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.quit();
    }
}

/// A blocking HTTP/1.1 exchange with chromedriver on 127.0.0.1:`port`: status and body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(COMMAND_READ_LIMIT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(COMMAND_READ_LIMIT))
        .map_err(|e| e.to_string())?;
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(body.as_bytes()))
        .map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open despite `Connection: close`: the body ends at
    // its Content-Length (or the last chunk), not at EOF.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut head_end = None;
    loop {
        if let Some(end) = head_end {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let body = &raw[end + 4..];
            if let Some(len) = head.lines().find_map(|l| {
                l.strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            }) {
                if body.len() >= len {
                    break;
                }
            } else if head.contains("transfer-encoding:")
                && head.contains("chunked")
                && body.ends_with(b"0\r\n\r\n")
                && dechunk(body).is_ok()
            {
                break;
            }
        }
        let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if head_end.is_none() {
            head_end = raw.windows(4).position(|w| w == b"\r\n\r\n");
        }
    }
    let split = head_end.ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    let lower = head.to_ascii_lowercase();
    if lower.contains("transfer-encoding:") && lower.contains("chunked") {
        body = dechunk(&body)?;
    }
    Ok((status, String::from_utf8_lossy(&body).to_string()))
}

/// The payload of a chunked body.
fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&raw[..eol]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"5\r\nab").is_err());
    }
}
