//! The backend's HTTP client and the small helpers it shares with the LDAP backend's copies
//! (`block_on`, `tls_config`, `lock`, `shorten`, `read_bounded`): kept together here so that
//! they can move to shared modules in a few lines.

use super::{OidcBackend, MAX_BODY};
use crate::config::OidcConfig;
use crate::log;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub(super) use crate::backends::ldap::block_on;

const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single assignment: a poisoned lock holds sound data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `s` on one line (control characters as spaces), at most `max` characters.
fn one_line(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect()
}

/// A value from a token or a provider, fit for a refusal's text.
pub(super) fn shorten(s: &str) -> String {
    one_line(s, 120)
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let mut roots = RootCertStore::empty();
    let path = cfg
        .ca_file
        .as_deref()
        .unwrap_or(Path::new(SYSTEM_CA_BUNDLE));
    match std::fs::read(path) {
        Ok(bytes) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("{}: no usable CA certificate in it", path.display()));
            }
        }
        // Without ca_file, a missing system bundle only matters for https providers; say so
        // once and let each such call fail with a TLS error.
        Err(e) if cfg.ca_file.is_none() => log::warning(&format!(
            "[oidc]: cannot read the system CA bundle {}: {e}; https:// providers cannot be verified (set ca_file)",
            path.display()
        )),
        Err(e) => return Err(format!("[oidc] ca_file {}: {e}", path.display())),
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
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
        let body = read_bounded(res).await?;
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
        let bytes = read_bounded(res).await?;
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

async fn read_bounded(mut res: reqwest::Response) -> Result<Vec<u8>, HttpError> {
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
    one_line(&out, 400)
}
