//! The gate's pages, under `{public_url}gate/`:
//! - `login?appUri=PATH`: OIDC mode sends the browser to the provider; header mode signs the
//!   proxy's user in at once;
//! - `callback?code&state`: the provider's answer: code → ID token → accountmapd's ticket →
//!   rserver's sign-in, whose cookies and redirect are relayed to the browser;
//! - `logout`: a page with a button (GET), which signs out of rserver and the gate (POST);
//! - `health`: `ok`, for load balancers.
//!
//! The ticket never reaches the browser. What a refused user sees names no policy detail;
//! accountmapd's log has the reason (`journalctl -u accountmapd`).

use crate::config::Mode;
use crate::flow::{self, Keys, Login, Spent};
use crate::oidc;
use crate::pages;
use crate::upstream::{SignIn, TicketAnswer, Upstream};
use accountmap_wire::{Verdict, Verify};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

/// The largest request body read (the logout form has none worth the name).
pub const MAX_BODY: usize = 8 * 1024;

pub struct Gate {
    pub up: Upstream,
    keys: Keys,
    spent: Spent,
}

/// The address of the TCP peer (the proxy in front, usually), set by the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl Gate {
    pub fn new(up: Upstream) -> Gate {
        Gate {
            up,
            keys: Keys::random(),
            spent: Spent::new(),
        }
    }
}

pub fn router(gate: Arc<Gate>) -> Router {
    let base = format!("{}gate/", gate.up.cfg.public_url.path);
    Router::new()
        .route(&format!("{base}login"), get(login))
        .route(&format!("{base}callback"), get(callback))
        .route(&format!("{base}logout"), get(logout_page).post(logout))
        .route(&format!("{base}health"), get(|| async { "ok\n" }))
        .fallback(|| async {
            page(
                StatusCode::NOT_FOUND,
                pages::message("Not found", "There is no such page."),
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(gate)
}

/// The query's pairs; a repeated key makes the query unusable (which value would count?).
fn query(raw: Option<&str>) -> Result<Vec<(String, String)>, &'static str> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err("a query parameter is repeated");
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn page(status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    r
}

fn redirect(location: &str, cookies: &[HeaderValue]) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::FOUND;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(LOCATION, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in cookies {
        h.append(SET_COOKIE, c.clone());
    }
    r
}

impl Gate {
    /// The gate's own cookie: Secure, HttpOnly, SameSite=Lax (the provider's redirect back is
    /// a top-level GET, which Lax lets through), scoped to the gate's pages.
    fn cookie(&self, value: &str, max_age: u64) -> HeaderValue {
        let path = format!("{}gate/", self.up.cfg.public_url.path);
        let text = format!(
            "{}={value}; Path={path}; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax",
            flow::COOKIE
        );
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn clear_cookie(&self) -> HeaderValue {
        self.cookie("", 0)
    }

    /// The browser's address for accountmapd's brake: the last `X-Forwarded-For` hop when
    /// the peer is a proxy on loopback (the deployment this gate is made for), else the peer.
    fn rhost(&self, peer: Option<Peer>, headers: &HeaderMap) -> String {
        let peer_ip = peer.map(|p| p.0.ip());
        if peer_ip.is_some_and(|ip| ip.is_loopback()) {
            if let Some(last) = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .rfind(|s| !s.is_empty())
            {
                if last.parse::<std::net::IpAddr>().is_ok() {
                    return last.to_string();
                }
            }
        }
        peer_ip.map_or_else(String::new, |ip| ip.to_string())
    }
}

async fn login(
    State(gate): State<Arc<Gate>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    peer: Option<Extension<Peer>>,
) -> Response {
    let peer = peer.map(|Extension(p)| p);
    let q = match query(raw.as_deref()) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    let app_uri = param(&q, "appUri").unwrap_or("/").to_string();
    let app_uri = if app_uri.is_empty() {
        "/".to_string()
    } else {
        app_uri
    };
    if let Err(e) = flow::check_app_uri(&app_uri) {
        eprintln!("accountmap-gate: refused a login: {e}: {app_uri:?}");
        return bad_request(e);
    }
    let rhost = gate.rhost(peer, &headers);
    match &gate.up.cfg.mode {
        Mode::Oidc { .. } => start_oidc(&gate, app_uri).await,
        Mode::Header {
            user_header,
            require_signature,
        } => {
            header_login(
                &gate,
                &headers,
                user_header,
                *require_signature,
                &rhost,
                &app_uri,
            )
            .await
        }
    }
}

async fn start_oidc(gate: &Gate, app_uri: String) -> Response {
    let endpoints = match gate.up.endpoints().await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("accountmap-gate: the provider's discovery document: {e}");
            return unavailable();
        }
    };
    let state = oidc::random_token();
    let login = Login {
        expires: flow::now_secs() + flow::LOGIN_LIFETIME.as_secs(),
        app_uri,
        state,
    };
    let url = oidc::authorization_url(
        &endpoints.authorization,
        &gate.up.cfg.client_id,
        &gate.up.redirect_uri(),
        &gate.up.cfg.scopes,
        &login.state,
        &gate.keys.nonce(&login.state),
        &gate.keys.verifier(&login.state),
    );
    let cookie = gate.cookie(&gate.keys.seal(&login), flow::LOGIN_LIFETIME.as_secs());
    redirect(&url, &[cookie])
}

async fn header_login(
    gate: &Gate,
    headers: &HeaderMap,
    user_header: &str,
    require_signature: bool,
    rhost: &str,
    app_uri: &str,
) -> Response {
    let one = |name: &str| -> Result<Option<String>, &'static str> {
        let mut values = headers.get_all(name).iter();
        let first = values.next();
        if values.next().is_some() {
            return Err("a header the gate relies on is repeated");
        }
        match first {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.trim().to_string()))
                .map_err(|_| "a header is not text"),
        }
    };
    let user = match one(user_header) {
        Ok(Some(u)) if !u.is_empty() => u,
        Ok(_) => {
            eprintln!("accountmap-gate: a login without the {user_header} header (is the request coming through the proxy?)");
            return page(
                StatusCode::FORBIDDEN,
                pages::message(
                    "Sign-in refused",
                    "Your sign-in did not come through this server's sign-in proxy.",
                ),
            );
        }
        Err(e) => return bad_request(e),
    };
    let (verify, credential) = if require_signature {
        match (one("x-proxy-signature"), one("date")) {
            (Ok(Some(sig)), Ok(Some(date))) => {
                (Verify::Proxy, format!("{date}\n{sig}").into_bytes())
            }
            _ => {
                eprintln!("accountmap-gate: a login for {user:?} without X-Proxy-Signature and Date ([gate] require_signature = true)");
                return page(
                    StatusCode::FORBIDDEN,
                    pages::message("Sign-in refused", "Your sign-in could not be verified."),
                );
            }
        }
    } else {
        (Verify::None, Vec::new())
    };
    finish(gate, &user, rhost, verify, credential, app_uri, Vec::new()).await
}

async fn callback(
    State(gate): State<Arc<Gate>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    peer: Option<Extension<Peer>>,
) -> Response {
    let peer = peer.map(|Extension(p)| p);
    if !matches!(gate.up.cfg.mode, Mode::Oidc { .. }) {
        return page(
            StatusCode::NOT_FOUND,
            pages::message("Not found", "There is no such page."),
        );
    }
    let q = match query(raw.as_deref()) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    let clear = vec![gate.clear_cookie()];
    if let Some(e) = param(&q, "error") {
        // The user cancelled, or the provider refused the client: nothing to check further.
        eprintln!(
            "accountmap-gate: the provider answered error={e:?} {:?}",
            param(&q, "error_description").unwrap_or("")
        );
        return with_cookies(
            page(
                StatusCode::FORBIDDEN,
                pages::message(
                    "Sign-in cancelled",
                    "The sign-in with your identity provider did not complete.",
                ),
            ),
            &clear,
        );
    }
    let (Some(code), Some(state)) = (param(&q, "code"), param(&q, "state")) else {
        return bad_request("the provider's answer has no code or state");
    };
    let cookie = cookie_value(&headers, flow::COOKIE);
    let login = match cookie
        .as_deref()
        .map(|c| gate.keys.open(c, flow::now_secs()))
    {
        Some(Ok(login)) if oidc::same(&login.state, state) => login,
        Some(Ok(_)) => {
            eprintln!("accountmap-gate: refused a callback: its state is not the one this browser's login started with");
            return forged_state(&clear);
        }
        Some(Err(e)) => {
            eprintln!("accountmap-gate: refused a callback: the login cookie is {e}");
            return forged_state(&clear);
        }
        None => {
            eprintln!("accountmap-gate: refused a callback: no login cookie (not started in this browser, or cookies blocked)");
            return forged_state(&clear);
        }
    };
    if !gate.spent.first_use(&login, flow::now_secs()) {
        eprintln!("accountmap-gate: refused a callback: its state was already used");
        return forged_state(&clear);
    }
    let id_token = match gate
        .up
        .id_token(code, &gate.keys.verifier(&login.state))
        .await
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("accountmap-gate: token exchange: {e}");
            return with_cookies(unavailable(), &clear);
        }
    };
    let claims = match oidc::unverified_claims(&id_token) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("accountmap-gate: {e}");
            return with_cookies(refused_page(), &clear);
        }
    };
    let nonce = gate.keys.nonce(&login.state);
    if !claims
        .nonce
        .as_deref()
        .is_some_and(|n| oidc::same(n, &nonce))
    {
        eprintln!("accountmap-gate: refused an ID token whose nonce is not this login's");
        return with_cookies(refused_page(), &clear);
    }
    let Some(email) = claims.email else {
        eprintln!("accountmap-gate: the ID token has no email (is \"email\" in [gate] scopes?)");
        return with_cookies(refused_page(), &clear);
    };
    let rhost = gate.rhost(peer, &headers);
    finish(
        &gate,
        &email,
        &rhost,
        Verify::Oidc,
        id_token.into_bytes(),
        &login.app_uri,
        clear,
    )
    .await
}

/// accountmapd's ticket, then rserver's sign-in, relayed.
async fn finish(
    gate: &Gate,
    name: &str,
    rhost: &str,
    verify: Verify,
    credential: Vec<u8>,
    app_uri: &str,
    mut cookies: Vec<HeaderValue>,
) -> Response {
    let (decision, ticket) = match gate.up.ticket(name, rhost, verify, credential).await {
        TicketAnswer::Ticket { decision, ticket } => (decision, ticket),
        TicketAnswer::Refused(d) => {
            eprintln!(
                "accountmap-gate: accountmapd refused {name:?} from {rhost}: {} ({})",
                d.verdict.as_str(),
                d.reason
            );
            let r = match d.verdict {
                Verdict::Unavailable => unavailable(),
                _ => refused_page(),
            };
            return with_cookies(r, &cookies);
        }
        TicketAnswer::Failed(e) => {
            eprintln!("accountmap-gate: no ticket for {name:?}: {e}");
            return with_cookies(unavailable(), &cookies);
        }
    };
    match gate
        .up
        .rserver_sign_in(&decision.account, &ticket, app_uri)
        .await
    {
        Ok(SignIn::SignedIn {
            location,
            cookies: rs,
        }) => {
            eprintln!(
                "accountmap-gate: signed {name:?} in to rserver as {} from {rhost}",
                decision.account
            );
            cookies.extend(rs);
            redirect(&location, &cookies)
        }
        Ok(SignIn::Refused { location }) => {
            eprintln!(
                "accountmap-gate: rserver refused {} ({name:?}) although accountmapd allowed it: {location}",
                decision.account
            );
            with_cookies(refused_page(), &cookies)
        }
        Err(e) => {
            eprintln!(
                "accountmap-gate: rserver sign-in for {}: {e}",
                decision.account
            );
            with_cookies(unavailable(), &cookies)
        }
    }
}

async fn logout_page(State(gate): State<Arc<Gate>>) -> Response {
    let action = format!("{}gate/logout", gate.up.cfg.public_url.path);
    page(StatusCode::OK, pages::logout_form(&action))
}

async fn logout(State(gate): State<Arc<Gate>>, headers: HeaderMap) -> Response {
    // A cross-site form could post here; browsers send Origin with every POST.
    let origin = headers.get("origin").and_then(|v| v.to_str().ok());
    if origin.is_some_and(|o| o != "null" && o != gate.up.cfg.public_url.origin()) {
        return page(
            StatusCode::FORBIDDEN,
            pages::message("Refused", "Sign out from this server's own page."),
        );
    }
    let browser = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ");
    let mut cookies = vec![gate.clear_cookie()];
    match gate.up.rserver_sign_out(&browser).await {
        Ok(rs) => cookies.extend(rs),
        Err(e) => eprintln!("accountmap-gate: rserver sign-out: {e}"),
    }
    let again = format!("{}gate/login?appUri=%2F", gate.up.cfg.public_url.path);
    with_cookies(page(StatusCode::OK, pages::signed_out(&again)), &cookies)
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn with_cookies(mut r: Response, cookies: &[HeaderValue]) -> Response {
    for c in cookies {
        r.headers_mut().append(SET_COOKIE, c.clone());
    }
    r
}

fn bad_request(why: &str) -> Response {
    page(StatusCode::BAD_REQUEST, pages::message("Bad request", why))
}

fn forged_state(clear: &[HeaderValue]) -> Response {
    with_cookies(
        page(
            StatusCode::FORBIDDEN,
            pages::message(
                "Sign-in refused",
                "This sign-in was not started in this browser, was already used, or took too long. Start again from RStudio's address.",
            ),
        ),
        clear,
    )
}

fn refused_page() -> Response {
    page(
        StatusCode::FORBIDDEN,
        pages::message(
            "Sign-in refused",
            "This account may not sign in to RStudio on this server. If you think it should, ask your administrator (the reason is in the server's log).",
        ),
    )
}

fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::message(
            "Sign-in unavailable",
            "Signing in is not possible right now. Try again in a minute.",
        ),
    )
}

#[cfg(test)]
mod tests;
