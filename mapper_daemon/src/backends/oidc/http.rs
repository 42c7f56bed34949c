//! The backend's HTTP client: rustls from [`crate::backends::tls`], async calls run through
//! [`crate::backends::runtime`], answers read with a bound.

use super::{OidcBackend, MAX_BODY};
use crate::backends::tls::{self, Trust};
use crate::config::OidcConfig;
use crate::log;
use crate::util;
use rustls::ClientConfig;
use serde_json::Value;
use std::time::Duration;

pub(super) use crate::backends::runtime::block_on;
pub(super) use crate::util::lock;

/// A value from a token or a provider, fit for a refusal's text.
pub(super) fn shorten(s: &str) -> String {
    util::shorten(s, 120)
}

/// The client every call to the provider goes through: rustls with the ring provider,
/// `backend_timeout` on connecting and on the whole exchange, no redirect.
pub(super) fn client(cfg: &OidcConfig, timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(cfg)?)
        .connect_timeout(timeout)
        .timeout(timeout)
        // A redirect could lead a bearer token elsewhere; providers do not need one.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("accountmapd/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("[oidc]: HTTP client: {e}"))
}

fn tls_config(cfg: &OidcConfig) -> Result<ClientConfig, String> {
    let trust = Trust::web(cfg.ca_file.as_deref(), |e| {
        log::warning(&format!(
            "[oidc]: https:// providers cannot be verified: {e}"
        ))
    });
    tls::client_config(trust, None).map_err(|e| format!("[oidc] ca_file: {e}"))
}

/// A failed HTTP exchange: the provider answered with a status, or could not be asked.
pub(super) enum HttpError {
    Status(u16),
    Transport(String),
}

impl HttpError {
    pub(super) fn describe(&self, url: &str) -> String {
        match self {
            HttpError::Status(s) => format!("{url} answered HTTP {s}"),
            HttpError::Transport(e) => format!("{url}: {e}"),
        }
    }
}

impl OidcBackend {
    /// GET `url` (with the bearer token in the Authorization header, if any) and parse the
    /// JSON answer, reading at most [`MAX_BODY`] bytes.
    pub(super) async fn get_json(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<Value, HttpError> {
        let mut req = self.0.http.get(url).header("accept", "application/json");
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        // reqwest's messages name the URL, never a header: the token stays out of them.
        let res = req
            .send()
            .await
            .map_err(|e| HttpError::Transport(error_chain(&e)))?;
        if !res.status().is_success() {
            return Err(HttpError::Status(res.status().as_u16()));
        }
        let body = read_body(res).await?;
        serde_json::from_slice(&body)
            .map_err(|e| HttpError::Transport(format!("the answer is not JSON: {e}")))
    }

    /// POST a form to the provider with the client's credentials: HTTP Basic when a
    /// `client_secret_file` is set (RFC 6749 §2.3.1), else `client_id` in the body (a public
    /// client). Returns the status and the JSON answer (`null` when the body is not JSON).
    pub(super) async fn post_form(
        &self,
        url: &str,
        params: &[(&str, &str)],
    ) -> Result<(u16, Value), HttpError> {
        let cfg = &self.0.cfg;
        let mut form: Vec<(&str, &str)> = params.to_vec();
        let mut req = self.0.http.post(url).header("accept", "application/json");
        match &cfg.client_secret {
            Some(secret) => {
                let secret = std::str::from_utf8(secret.expose())
                    .map_err(|_| HttpError::Transport("client_secret_file is not UTF-8".into()))?;
                req = req.basic_auth(form_encode(&cfg.client_id), Some(form_encode(secret)));
            }
            None => form.push(("client_id", &cfg.client_id)),
        }
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect();
        let res = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
            .send()
            .await
            .map_err(|e| HttpError::Transport(error_chain(&e)))?;
        let status = res.status().as_u16();
        let bytes = read_body(res).await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

/// application/x-www-form-urlencoded (and the Basic credentials of RFC 6749 §2.3.1).
fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn read_body(mut res: reqwest::Response) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| HttpError::Transport(error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(HttpError::Transport(format!(
                "answer larger than {MAX_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its sources on one line (reqwest's own message is often just "error sending
/// request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    util::shorten(&out, 400)
}
