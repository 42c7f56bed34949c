//! The gate's refusals, through its router, without a provider, daemon or rserver: each is
//! decided before any of them is asked. The whole flow is tested end to end in
//! tests/tests/gate_browser.rs.

use super::*;
use crate::config::from_text;
use axum::http::{Method, Request};
use base64::Engine as _;
use std::path::Path;
use tower::ServiceExt as _;

fn gate(extra: &str, discovery: &str) -> Arc<Gate> {
    let text = format!(
        "[daemon]\nsocket = \"/nonexistent/accountmapd.sock\"\n\
         [oidc]\nclient_id = \"rstudio\"\ndiscovery_endpoint = \"{discovery}\"\n\
         [gate]\nticket_callers = [\"gate\"]\npublic_url = \"https://rstudio.example.com/\"\ntimeout = 2\n{extra}"
    );
    let cfg = from_text(Path::new("/t/accountmap.toml"), &text).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(Gate::new(Upstream::new(cfg).unwrap()))
}

async fn get(g: &Arc<Gate>, uri: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = Request::builder().uri(uri).method(Method::GET);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    router(g.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn text(r: Response) -> String {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A provider that publishes its discovery document and answers every code with an ID token
/// whose payload is `claims` (unsigned: the gate does not verify it, accountmapd does), on
/// loopback.
async fn provider(claims: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let doc = format!(
        r#"{{"issuer":"http://127.0.0.1:{port}","authorization_endpoint":"http://127.0.0.1:{port}/auth","token_endpoint":"http://127.0.0.1:{port}/token"}}"#
    );
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims);
    let token = format!(r#"{{"id_token":"e30.{payload}.c2ln","token_type":"Bearer"}}"#);
    let app = Router::new()
        .route("/.well-known/openid-configuration", get_route(doc))
        .route("/token", axum::routing::post(move || async move { token }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://127.0.0.1:{port}/.well-known/openid-configuration")
}

async fn discovery_server() -> String {
    provider("{}").await
}

fn get_route(doc: String) -> axum::routing::MethodRouter {
    axum::routing::get(move || async move { doc })
}

#[tokio::test]
async fn login_sends_the_browser_to_the_provider_with_a_sealed_cookie() {
    let g = gate("", &discovery_server().await);
    let r = get(&g, "/gate/login?appUri=%2Fs%2Fabc%2F", &[]).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let loc = r.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(
        loc.contains("/auth?response_type=code&client_id=rstudio"),
        "{loc}"
    );
    assert!(
        loc.contains("redirect_uri=https%3A%2F%2Frstudio.example.com%2Fgate%2Fcallback"),
        "{loc}"
    );
    assert!(loc.contains("code_challenge_method=S256"), "{loc}");
    let cookie = r.headers()[SET_COOKIE].to_str().unwrap();
    for attr in [
        "accountmap-gate-login=",
        "Path=/gate/",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=600",
    ] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    // The cookie's state is the one sent to the provider.
    let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    let login = g.keys.open(value, flow::now_secs()).unwrap();
    assert!(loc.contains(&format!("state={}", login.state)), "{loc}");
    assert_eq!(login.app_uri, "/s/abc/");
}

#[tokio::test]
async fn open_redirects_are_refused_before_anything_else() {
    let g = gate("", "http://127.0.0.1:9/none");
    for uri in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
    ] {
        let q = form_urlencoded::byte_serialize(uri.as_bytes()).collect::<String>();
        let r = get(&g, &format!("/gate/login?appUri={q}"), &[]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert!(r.headers().get(LOCATION).is_none());
    }
    let r = get(&g, "/gate/login?appUri=%2F&appUri=%2F%2Fevil", &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_callback_not_started_in_this_browser_is_refused() {
    let g = gate("", "http://127.0.0.1:9/none");
    // No cookie at all.
    let r = get(&g, "/gate/callback?code=c&state=s", &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(text(r).await.contains("not started in this browser"));
    // A valid cookie for another state (an attacker's callback URL in the victim's browser).
    let mine = g.keys.seal(&Login {
        state: "mine".into(),
        expires: flow::now_secs() + 60,
        app_uri: "/".into(),
    });
    let cookie = format!("{}={mine}", flow::COOKIE);
    let r = get(
        &g,
        "/gate/callback?code=c&state=theirs",
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A cookie sealed by another gate (or before a restart).
    let other = Keys::random().seal(&Login {
        state: "s".into(),
        expires: flow::now_secs() + 60,
        app_uri: "/".into(),
    });
    let r = get(
        &g,
        "/gate/callback?code=c&state=s",
        &[("cookie", &format!("{}={other}", flow::COOKIE))],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_state_is_accepted_once() {
    let g = gate("", "http://127.0.0.1:9/none");
    let sealed = g.keys.seal(&Login {
        state: "s1".into(),
        expires: flow::now_secs() + 60,
        app_uri: "/".into(),
    });
    let cookie = format!("{}={sealed}", flow::COOKIE);
    // First use goes on to the provider (unreachable here: 503); the second is refused.
    let first = get(&g, "/gate/callback?code=c&state=s1", &[("cookie", &cookie)]).await;
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    let again = get(&g, "/gate/callback?code=c&state=s1", &[("cookie", &cookie)]).await;
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn header_mode_needs_the_header_and_its_signature() {
    let g = gate(
        "mode = \"header\"\nuser_header = \"X-Auth-Request-User\"\n",
        "http://127.0.0.1:9/none",
    );
    let r = get(&g, "/gate/login?appUri=%2F", &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = get(
        &g,
        "/gate/login?appUri=%2F",
        &[("x-auth-request-user", "jsmith")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(text(r).await.contains("could not be verified"));
    // Signed: on to accountmapd (no daemon here: unavailable, not refused).
    let r = get(
        &g,
        "/gate/login?appUri=%2F",
        &[
            ("x-auth-request-user", "jsmith"),
            ("x-proxy-signature", "c2ln"),
            ("date", "Mon, 07 Dec 2026 10:00:00 GMT"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The callback does not exist in header mode.
    assert_eq!(
        get(&g, "/gate/callback?code=c&state=s", &[]).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn logout_from_another_site_is_refused() {
    let g = gate("", "http://127.0.0.1:9/none");
    let req = Request::builder()
        .uri("/gate/logout")
        .method(Method::POST)
        .header("origin", "https://evil.example")
        .body(Body::empty())
        .unwrap();
    let r = router(g.clone()).oneshot(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let page = get(&g, "/gate/logout", &[]).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(text(page).await.contains("action=\"/gate/logout\""));
}

#[test]
fn rhost_is_the_last_forwarded_hop_only_behind_a_loopback_proxy() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let g = rt.block_on(async { gate("", "http://127.0.0.1:9/none") });
    let mut h = HeaderMap::new();
    h.insert(
        "x-forwarded-for",
        HeaderValue::from_static("10.9.9.9, 192.0.2.7"),
    );
    let local = Some(Peer("127.0.0.1:5000".parse().unwrap()));
    let remote = Some(Peer("192.0.2.99:5000".parse().unwrap()));
    assert_eq!(g.rhost(local, &h), "192.0.2.7");
    assert_eq!(g.rhost(remote, &h), "192.0.2.99");
    assert_eq!(g.rhost(local, &HeaderMap::new()), "127.0.0.1");
}

#[tokio::test]
async fn an_id_token_without_this_logins_nonce_is_refused_before_accountmapd_is_asked() {
    let g = gate(
        "",
        &provider(r#"{"email":"alice@company.com","nonce":"not-this-one"}"#).await,
    );
    let sealed = g.keys.seal(&Login {
        state: "s".into(),
        expires: flow::now_secs() + 60,
        app_uri: "/".into(),
    });
    let cookie = format!("{}={sealed}", flow::COOKIE);
    let r = get(&g, "/gate/callback?code=c&state=s", &[("cookie", &cookie)]).await;
    // 403 refused, not 503: accountmapd (absent here) was never asked.
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(text(r).await.contains("may not sign in"));
    // With this login's nonce the gate goes on to accountmapd (absent: unavailable).
    let keys = Keys::random();
    let nonce = keys.nonce("s2");
    let other = gate(
        "",
        &provider(&format!(
            r#"{{"email":"alice@company.com","nonce":"{nonce}"}}"#
        ))
        .await,
    );
    let g2 = Arc::new(Gate {
        up: Upstream::new(other.up.cfg.clone()).unwrap(),
        keys,
        spent: Spent::new(),
    });
    let sealed = g2.keys.seal(&Login {
        state: "s2".into(),
        expires: flow::now_secs() + 60,
        app_uri: "/".into(),
    });
    let cookie = format!("{}={sealed}", flow::COOKIE);
    let r = get(
        &g2,
        "/gate/callback?code=c&state=s2",
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_and_the_gate_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let g = gate("", "http://127.0.0.1:9/none");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(crate::serve::run(listener, router(g)));
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let big = "a".repeat(crate::serve::MAX_HEAD * 2);
    let req = format!("GET /gate/health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = s.write_all(req.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        s.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /gate/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"),
        "{answer}"
    );
}
