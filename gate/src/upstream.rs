//! The three parties the gate talks to on a user's behalf: the OpenID provider (discovery and
//! the token endpoint), accountmapd (a ticket) and rserver (its own sign-in endpoints). Every
//! exchange is bounded in time and size.

use crate::config::{GateConfig, Mode};
use crate::oidc::{self, Endpoints};
use crate::rserver::{self, MAX_PUBLIC_KEY_ANSWER};
use accountmap::backends::tls::{self, Trust};
use accountmap::config::Secret;
use accountmap_wire::{Credential, Decision, Request, Response, Verify};
use reqwest::header::{HeaderValue, COOKIE, SET_COOKIE};
use serde_json::Value;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a discovery document is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

pub struct Upstream {
    pub cfg: GateConfig,
    http: reqwest::Client,
    client_secret: Option<Secret>,
    discovery: Mutex<Option<(Instant, Endpoints)>>,
}

/// What rserver answered to the gate's sign-in.
#[derive(Debug)]
pub enum SignIn {
    /// rserver signed the user in: send the browser to `location` with these cookies.
    SignedIn {
        location: String,
        cookies: Vec<HeaderValue>,
    },
    /// rserver refused (its `error=N`), although accountmapd had allowed the account.
    Refused { location: String },
}

/// What accountmapd answered to a ticket request.
pub enum TicketAnswer {
    Ticket {
        decision: Decision,
        ticket: String,
    },
    Refused(Decision),
    /// Not a decision: the daemon could not be reached, or refused the gate itself.
    Failed(String),
}

impl Upstream {
    pub fn new(cfg: GateConfig) -> Result<Upstream, String> {
        let trust = Trust::web(cfg.ca_file.as_deref(), |e| {
            eprintln!("accountmap-gate: warning: https:// providers cannot be verified: {e}");
        });
        let tls = tls::client_config(trust, None).map_err(|e| format!("[oidc] ca_file: {e}"))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(cfg.timeout)
            .timeout(cfg.timeout)
            // rserver's answer is a redirect the gate relays; a provider needs none.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("accountmap-gate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let client_secret = match &cfg.mode {
            Mode::Oidc {
                client_secret_file: Some(path),
            } => Some(
                accountmap::config::read_secret_file(path)
                    .map_err(|e| format!("[gate] client_secret_file: {e}"))?,
            ),
            _ => None,
        };
        Ok(Upstream {
            cfg,
            http,
            client_secret,
            discovery: Mutex::new(None),
        })
    }

    pub fn redirect_uri(&self) -> String {
        self.cfg.public_url.join("gate/callback")
    }

    /// The provider's endpoints, from its discovery document (cached for an hour).
    pub async fn endpoints(&self) -> Result<Endpoints, String> {
        {
            let cached = self.discovery.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, e)) = cached.as_ref() {
                if at.elapsed() < DISCOVERY_TTL {
                    return Ok(e.clone());
                }
            }
        }
        let url = &self.cfg.discovery_endpoint;
        let resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered HTTP {}", resp.status().as_u16()));
        }
        let doc = json_body(resp, url).await?;
        let e = oidc::endpoints(&doc)?;
        *self.discovery.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), e.clone()));
        Ok(e)
    }

    /// Exchanges the authorization code for the ID token.
    pub async fn id_token(&self, code: &str, verifier: &str) -> Result<String, String> {
        let endpoints = self.endpoints().await?;
        let body =
            oidc::token_request_body(code, &self.redirect_uri(), &self.cfg.client_id, verifier);
        let mut req = self
            .http
            .post(&endpoints.token)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body);
        if let Some(secret) = &self.client_secret {
            req = req.header(
                "authorization",
                oidc::basic_auth(&self.cfg.client_id, secret.expose()),
            );
        }
        let url = &endpoints.token;
        let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        let answer = json_body(resp, url).await;
        match answer {
            Ok(v) => oidc::id_token_of(&v).map_err(|e| format!("{e} (HTTP {})", status.as_u16())),
            Err(e) => Err(format!("{e} (HTTP {})", status.as_u16())),
        }
    }

    /// Asks accountmapd for a ticket: it checks the credential and the policy as for a PAM
    /// sign-in to `[gate] service`.
    pub async fn ticket(
        &self,
        name: &str,
        rhost: &str,
        verify: Verify,
        credential: Vec<u8>,
    ) -> TicketAnswer {
        let req = Request::IssueTicket {
            service: self.cfg.service.clone(),
            name: name.to_string(),
            rhost: rhost.to_string(),
            verify,
            credential: Credential::new(credential),
        };
        let socket = self.cfg.socket.clone();
        // A provider's keys may be fetched during the check: allow the daemon its own
        // backend timeout on top of ours.
        let limit = self.cfg.timeout * 2;
        let answer =
            tokio::task::spawn_blocking(move || accountmap_wire::call(&socket, &req, limit)).await;
        match answer {
            Ok(Ok(Response::Ticket { decision, ticket })) => TicketAnswer::Ticket {
                decision: *decision,
                ticket,
            },
            Ok(Ok(Response::Decision(d))) => TicketAnswer::Refused(d),
            Ok(Ok(Response::Error(e))) => TicketAnswer::Failed(format!("accountmapd: {e}")),
            Ok(Ok(_)) => TicketAnswer::Failed("accountmapd gave an answer of another kind".into()),
            Ok(Err(e)) => TicketAnswer::Failed(format!("{}: {e}", self.cfg.socket.display())),
            Err(e) => TicketAnswer::Failed(format!("ticket request: {e}")),
        }
    }

    /// Signs `account` in to rserver with `ticket` as the password, through rserver's own
    /// endpoints, as its sign-in page would.
    pub async fn rserver_sign_in(
        &self,
        account: &str,
        ticket: &str,
        app_uri: &str,
    ) -> Result<SignIn, String> {
        let base = &self.cfg.rserver_url;
        let key_url = base.join("auth-public-key");
        let resp = self
            .http
            .get(&key_url)
            .send()
            .await
            .map_err(|e| format!("{key_url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!(
                "{key_url} answered HTTP {}",
                resp.status().as_u16()
            ));
        }
        let body = bounded_body(resp, MAX_PUBLIC_KEY_ANSWER, &key_url).await?;
        let (key, implied) = rserver::parse_public_key_with_scheme(&String::from_utf8_lossy(&body))
            .map_err(|e| format!("{key_url}: {e}"))?;
        let v = rserver::encrypt_credentials(
            &key,
            self.cfg.rserver_encryption.unwrap_or(implied),
            account,
            ticket,
            &mut rand_core::OsRng,
        )
        .map_err(|e| e.to_string())?;
        // The double-submit token: the gate's own, in the cookie and the field.
        let csrf = oidc::random_token();
        let public = &self.cfg.public_url;
        let form = rserver::sign_in_form_with(
            &csrf,
            app_uri,
            &format!("{}auth-sign-in", public.path),
            self.cfg.stay_signed_in,
            &v,
        );
        let url = base.join("auth-do-sign-in");
        let resp = self
            .post_to_rserver(&url, format!("rs-csrf-token={csrf}"), form)
            .await?;
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let cookies: Vec<HeaderValue> =
            resp.headers().get_all(SET_COOKIE).iter().cloned().collect();
        let Some(location) = location.filter(|_| status.is_redirection()) else {
            return Err(format!(
                "{url} answered HTTP {} without a redirect",
                status.as_u16()
            ));
        };
        let location = self.local_location(&location)?;
        if is_sign_in_error(&location) {
            return Ok(SignIn::Refused { location });
        }
        Ok(SignIn::SignedIn { location, cookies })
    }

    /// Signs the browser's user out of rserver: its sign-out with the browser's cookies, the
    /// gate's own double-submit token, and rserver's answer relayed.
    pub async fn rserver_sign_out(
        &self,
        browser_cookies: &str,
    ) -> Result<Vec<HeaderValue>, String> {
        let csrf = oidc::random_token();
        let kept: Vec<&str> = browser_cookies
            .split(';')
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.starts_with("rs-csrf-token="))
            .collect();
        let mut cookie = kept.join("; ");
        if !cookie.is_empty() {
            cookie.push_str("; ");
        }
        cookie.push_str(&format!("rs-csrf-token={csrf}"));
        let url = self.cfg.rserver_url.join("auth-sign-out");
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("rs-csrf-token", &csrf)
            .finish();
        let resp = self.post_to_rserver(&url, cookie, form).await?;
        Ok(resp.headers().get_all(SET_COOKIE).iter().cloned().collect())
    }

    /// POSTs `form` to rserver's `url` with `cookie`, under the host and scheme the browser
    /// used (those of `public_url`, not the gate's own connection), from which rserver builds
    /// its redirects.
    async fn post_to_rserver(
        &self,
        url: &str,
        cookie: String,
        form: String,
    ) -> Result<reqwest::Response, String> {
        let public = &self.cfg.public_url;
        self.http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header(COOKIE, cookie)
            .header("host", public.authority.as_str())
            .header("x-forwarded-host", public.authority.as_str())
            .header("x-forwarded-proto", public.scheme.as_str())
            .body(form)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))
    }

    /// rserver's redirect as a path on the public origin: a relative path is kept, an absolute
    /// URL is accepted only on the public origin or rserver's own (whose path is then kept).
    fn local_location(&self, location: &str) -> Result<String, String> {
        if location.starts_with('/') && !location.starts_with("//") {
            return Ok(location.to_string());
        }
        for origin in [self.cfg.public_url.origin(), self.cfg.rserver_url.origin()] {
            if let Some(rest) = location.strip_prefix(&origin) {
                if rest.is_empty() {
                    return Ok("/".into());
                }
                if rest.starts_with('/') && !rest.starts_with("//") {
                    return Ok(rest.to_string());
                }
            }
        }
        Err(format!(
            "rserver redirected to {location:?}, which is not on this server"
        ))
    }
}

/// rserver sends a refused sign-in back to its sign-in page with `error=N`.
pub fn is_sign_in_error(location: &str) -> bool {
    let (path, query) = location.split_once('?').unwrap_or((location, ""));
    path.ends_with("auth-sign-in")
        && form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "error")
}

async fn bounded_body(
    mut resp: reqwest::Response,
    max: usize,
    url: &str,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
        if out.len() + chunk.len() > max {
            return Err(format!("{url}: the answer is larger than {max} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn json_body(resp: reqwest::Response, url: &str) -> Result<Value, String> {
    let body = bounded_body(resp, oidc::MAX_ANSWER, url).await?;
    serde_json::from_slice(&body).map_err(|_| format!("{url}: the answer is not JSON"))
}
