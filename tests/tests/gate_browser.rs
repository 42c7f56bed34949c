//! Issue 17 end to end: Google-style sign-in to RStudio Server open source through
//! accountmap-gate, in a real headless Chromium, through a real nginx, with the test OpenID
//! Provider's own login and consent pages.
//!
//! The parts: accountmapd (pam_wrapper + nss_wrapper world), the OpenID Provider
//! (panva/oidc-provider on loopback), **a stand-in for rserver** (`rserver_standin`: rserver is
//! not packaged for Debian; the stand-in is written from rstudio/rstudio's sign-in code — the
//! real `/auth-public-key` format, the CSRF double submit, both encryption formats, getpwnam
//! canonicalisation, a PAM transaction as rserver-pam runs it, minimum uid, required group and
//! the 5 s throttle — and its pages say it is a stand-in), accountmap-gate as uid 65534,
//! nginx with the README's site (`/gate/` to the gate, `/auth-sign-in` redirected to it, the
//! rest to rserver), and Chromium driven over WebDriver by chromedriver.
//!
//! What a user would check: opening RStudio's URL leads to the provider, and after signing in
//! there to RStudio's home page, signed in as the mapped local account with a valid `user-id`
//! cookie; refused users see a refusal and get no RStudio cookie; forged callbacks, replayed
//! callbacks and tickets, and an `appUri` to another host are refused. Screenshots of the
//! provider's page and of the landing page are saved in `target/gate-screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_gate::rserver::Scheme;
use accountmap_tests::browser::Browser;
use accountmap_tests::gate::{add_ticket_service, start_ticket_daemon, Gate};
use accountmap_tests::nginx::{rstudio_site, Nginx};
use accountmap_tests::oidc_provider::{oidc_config, OidcProvider, Setup, CLIENT_ID, CLIENT_SECRET};
use accountmap_tests::rserver::{http_request_with, HttpResponse, RServer, RServerOptions};
use accountmap_tests::*;
use accountmap_wire::{Credential, Request, Response, Verify};
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Why this test cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    if !is_root() {
        return Some(
            "runs the gate as uid 65534 with setpriv and nginx: needs root (CI runs it as root)"
                .into(),
        );
    }
    if !Browser::available() {
        return Some("chromium and chromium-driver are not installed (scripts/install-deps.sh installs them)".into());
    }
    if !Nginx::available() {
        return Some("nginx is not installed (scripts/install-deps.sh installs it)".into());
    }
    None
}

/// Everything of one RStudio site: daemon, provider, rserver stand-in, gate, nginx.
struct Site {
    env: Env,
    provider: OidcProvider,
    rserver: RServer,
    gate: Gate,
    nginx: Nginx,
    /// `http://localhost:PORT`: what the browser opens.
    url: String,
    /// nginx's port.
    port: u16,
}

/// How the gate learns who the user is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Oidc,
    /// A trusted upstream proxy's header, with (`true`) or without X-Proxy-Signature.
    Header {
        signed: bool,
    },
}

/// The header the upstream proxy names the user in (never X-RStudio-Username).
const USER_HEADER: &str = "X-Auth-Request-User";

impl Site {
    fn start(name: &str, mode: Mode) -> Site {
        let port = free_port();
        let url = format!("http://localhost:{port}");
        let setup = Setup {
            redirect_uris: vec![format!("{url}/gate/callback")],
            token_endpoint_auth_method: Some("client_secret_basic".into()),
            ..Setup::rsa()
        };
        let provider = OidcProvider::start_with(name, setup);
        let discovery = format!("{}/.well-known/openid-configuration", provider.issuer());
        let mut env = Env::builder(name).no_daemon().build();
        let gate_mode = match mode {
            Mode::Oidc => String::new(),
            Mode::Header { signed } => format!(
                "mode = \"header\"\nuser_header = \"{USER_HEADER}\"\nrequire_signature = {signed}\n"
            ),
        };
        let mut oidc = env.config().clone();
        oidc_config(&mut oidc, &discovery, "");
        start_ticket_daemon(&mut env, 30, &oidc.extra, &gate_mode);
        // rserver's PAM service as the README's /etc/pam.d/rstudio: a ticket first, local
        // passwords after it (pam_deny here: the test world has no passwords).
        add_ticket_service(&env, "auth required pam_deny.so");
        let rserver = RServer::start(
            &env,
            &RServerOptions {
                required_group: Some("rstudio-users".into()),
                ..RServerOptions::default()
            },
        );
        let gate = Gate::start(
            &env,
            &format!(
                "[oidc]\ndiscovery_endpoint = \"{discovery}\"\nclient_id = \"{CLIENT_ID}\"\n\
                 [gate]\npublic_url = \"{url}/\"\nrserver_url = \"http://127.0.0.1:{}/\"\ntimeout = 10\n{gate_mode}",
                rserver.port
            ),
            CLIENT_SECRET,
        );
        let nginx = Nginx::start(&env.dir, &rstudio_site(port, gate.port, rserver.port));
        Site {
            env,
            provider,
            rserver,
            gate,
            nginx,
            url,
            port,
        }
    }

    fn logs(&self) -> String {
        format!(
            "--- gate ---\n{}\n--- rserver stand-in ---\n{}\n--- nginx ---\n{}\n--- daemon ---\n{}",
            self.gate.log(),
            self.rserver.log(),
            self.nginx.logs(),
            self.env.daemon_log()
        )
    }

    fn browser(&self) -> Browser {
        Browser::start(&self.env.dir).unwrap_or_else(|e| panic!("cannot start chromium: {e}"))
    }

    /// Opens RStudio, is sent to the provider, signs in there as `sub`; returns once the
    /// browser has left the provider.
    fn sign_in_at_provider(&self, b: &Browser, sub: &str, shot: Option<&str>) {
        b.goto(&format!("{}/", self.url)).unwrap();
        let issuer = self.provider.issuer();
        b.wait_for_url(&issuer, WAIT)
            .unwrap_or_else(|e| panic!("not sent to the provider: {e}\n{}", self.logs()));
        b.wait_for(WAIT, |b| Ok(b.find("input[name=login]").is_ok()))
            .unwrap();
        if let Some(name) = shot {
            b.screenshot(&screenshot(name)).unwrap();
        }
        b.type_into("input[name=login]", sub).unwrap();
        b.type_into(
            "input[name=password]",
            "any password: the test provider's dev login",
        )
        .unwrap();
        b.click("button[type=submit]").unwrap();
        // The consent page, then back to the gate.
        b.wait_for(WAIT, |b| {
            let url = b.current_url()?;
            if !url.starts_with(&issuer) {
                return Ok(true);
            }
            if b.find("button[autofocus]").is_ok() || b.page_text()?.contains("Authorize") {
                let _ = b.click("button[type=submit]");
            }
            Ok(false)
        })
        .unwrap_or_else(|e| panic!("stuck at the provider: {e}\n{}", self.logs()));
    }

    fn rstudio_cookie(&self, b: &Browser) -> Option<String> {
        b.cookies()
            .unwrap()
            .into_iter()
            .find(|c| c.name == "user-id")
            .map(|c| c.value)
    }

    /// What the refused user sees, and that no RStudio cookie was set.
    fn assert_refused(&self, b: &Browser, who: &str) {
        b.wait_for(WAIT, |b| Ok(b.page_text()?.contains("Sign-in refused")))
            .unwrap_or_else(|e| panic!("{who}: no refusal page: {e}\n{}", self.logs()));
        assert!(
            self.rstudio_cookie(b).is_none(),
            "{who}: refused, yet a user-id cookie was set\n{}",
            self.logs()
        );
    }
}

fn screenshot(name: &str) -> PathBuf {
    let dir = build_dir().join("gate-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn google_style_sign_in_lands_on_rstudio_as_the_mapped_account_and_refusals_hold() {
    if let Some(why) = skip_reason() {
        eprintln!("gate_browser: SKIPPED: {why}");
        return;
    }
    let site = Site::start("gate-browser", Mode::Oidc);

    // --- alice@company.com signs in and lands on RStudio as alice ---------------------------
    let b = site.browser();
    site.sign_in_at_provider(&b, "alice-sub", Some("provider-login.png"));
    b.wait_for(WAIT, |b| Ok(b.page_text()?.contains("signed in as alice")))
        .unwrap_or_else(|e| panic!("alice did not land on RStudio: {e}\n{}", site.logs()));
    assert_eq!(b.current_url().unwrap(), format!("{}/", site.url));
    assert!(b.title().unwrap().contains("RStudio (test stand-in)"));
    b.screenshot(&screenshot("rstudio-landing.png")).unwrap();
    let cookie = site.rstudio_cookie(&b).expect("a user-id cookie");
    assert!(
        cookie.starts_with("alice|") || cookie.starts_with("alice%7C"),
        "{cookie}"
    );
    // The cookie is rserver's own and valid: rserver (the stand-in) accepts it on the next
    // request, sent directly with nothing but that cookie.
    let home = site.rserver.get("/", &[("user-id", &cookie)]);
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("signed in as alice"));
    // The gate's login cookie is gone, and no ticket ever reached the browser.
    let cookies = b.cookies().unwrap();
    assert!(
        cookies.iter().all(|c| c.name != "accountmap-gate-login"),
        "{cookies:?}"
    );
    assert!(!format!("{cookies:?}").contains("amt1."));
    assert!(!site.nginx.access_log().contains("amt1."));
    // accountmapd logged the ticket issued to the gate and its use by rserver's PAM.
    let log = site.env.daemon_log();
    assert!(log.contains("sign-in ticket issued"), "{log}");
    assert!(
        site.env
            .decision_lines("alice")
            .iter()
            .any(|l| l.contains("verify=ticket") || l.contains("ticket")),
        "{log}"
    );

    // --- the same callback again (back button, or a stolen URL): refused ---------------------
    let callback = site
        .nginx
        .access_log()
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("/gate/callback?"))
                .map(str::to_string)
        })
        .expect("the callback in nginx's access log");
    b.goto(&format!("{}{callback}", site.url)).unwrap();
    b.wait_for(WAIT, |b| Ok(b.page_text()?.contains("Sign-in refused")))
        .unwrap();

    // --- sign out ------------------------------------------------------------------------------
    b.goto(&format!("{}/gate/logout", site.url)).unwrap();
    b.click("#sign-out").unwrap();
    b.wait_for(WAIT, |b| Ok(b.page_text()?.contains("You are signed out")))
        .unwrap();
    assert!(
        site.rstudio_cookie(&b).is_none(),
        "user-id still set after sign-out"
    );
    drop(b);

    // --- refusals, each in a fresh browser -----------------------------------------------------
    for (sub, email, who) in [
        ("eve-sub", "eve@elsewhere.org", "outside allowed_domains"),
        ("carol-sub", "carol@company.com", "email not verified"),
        ("bob-sub", "bob@company.com", "outside the required group"),
    ] {
        let b = site.browser();
        site.sign_in_at_provider(&b, sub, None);
        site.assert_refused(&b, &format!("{email}, {who}"));
        if sub == "eve-sub" {
            b.screenshot(&screenshot("refused.png")).unwrap();
        }
        // The administrator finds why in accountmapd's log: a refused decision, no ticket.
        let lines = site.env.decision_lines(email);
        assert!(
            !lines.is_empty() && lines.iter().all(|l| !l.contains("verdict=allowed")),
            "{email}: {lines:?}\n{}",
            site.logs()
        );
    }

    // --- a forged state: a callback this browser never started ----------------------------------
    let b = site.browser();
    b.goto(&format!(
        "{}/gate/callback?code=forged&state=forged",
        site.url
    ))
    .unwrap();
    site.assert_refused(&b, "a forged state");
    // --- an appUri to another host ----------------------------------------------------------------
    b.goto(&format!(
        "{}/gate/login?appUri=https%3A%2F%2Fevil.example%2F",
        site.url
    ))
    .unwrap();
    b.wait_for(WAIT, |b| Ok(b.page_text()?.contains("Bad request")))
        .unwrap();
    assert!(b.current_url().unwrap().starts_with(&site.url));
    b.goto(&format!(
        "{}/gate/login?appUri=%2F%2Fevil.example%2F",
        site.url
    ))
    .unwrap();
    b.wait_for(WAIT, |b| Ok(b.page_text()?.contains("Bad request")))
        .unwrap();
    assert!(b.current_url().unwrap().starts_with(&site.url));
}

/// A ticket works once: the gate's caller (root here) gets a ticket for alice, rserver signs
/// alice in with it, and the same ticket posted again is refused, as is a ticket used for
/// another account.
#[test]
fn a_replayed_ticket_is_refused_by_rserver() {
    if let Some(why) = skip_reason() {
        eprintln!("gate_browser: SKIPPED: {why}");
        return;
    }
    let site = Site::start("gate-replay", Mode::Oidc);
    let ticket = |name: &str| -> String {
        let tokens = site.provider.login(CLIENT_ID, &format!("{name}-sub"));
        match accountmap_wire::call(
            &site.env.socket,
            &Request::IssueTicket {
                service: "rstudio".into(),
                name: format!("{name}@company.com"),
                rhost: "127.0.0.1".into(),
                verify: Verify::Oidc,
                credential: Credential::new(tokens.id_token.into_bytes()),
            },
            Duration::from_secs(20),
        ) {
            Ok(Response::Ticket { ticket, .. }) => ticket,
            other => panic!("no ticket for {name}: {other:?}\n{}", site.logs()),
        }
    };
    let t = ticket("alice");
    let first = site.rserver.sign_in("alice", &t, Scheme::Pkcs1v15, "/");
    assert_eq!(first.status, 302);
    assert!(
        first.cookie("user-id").is_some(),
        "{first:?}\n{}",
        site.logs()
    );
    // rserver's throttle is one attempt per user per 5 s: wait it out so that the replay is
    // refused for being a replay.
    std::thread::sleep(Duration::from_secs(6));
    let again = site.rserver.sign_in("alice", &t, Scheme::Pkcs1v15, "/");
    assert!(
        again.cookie("user-id").is_none(),
        "a replayed ticket signed in\n{}",
        site.logs()
    );
    assert!(
        again.location().unwrap_or("").contains("error="),
        "{again:?}"
    );
    // A fresh ticket for alice does not sign jdoe in.
    let t2 = ticket("alice");
    let other = site.rserver.sign_in("jdoe", &t2, Scheme::Pkcs1v15, "/");
    assert!(
        other.cookie("user-id").is_none(),
        "alice's ticket signed jdoe in\n{}",
        site.logs()
    );
}

/// A GET through nginx with `headers`, as the upstream SSO proxy forwards a browser's request.
fn get_through(site: &Site, path: &str, headers: &[(&str, String)]) -> HttpResponse {
    let host = format!("localhost:{}", site.port);
    let mut all: Vec<(&str, &str)> = vec![("Host", &host)];
    all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
    http_request_with(site.port, "GET", path, &[], &all, None)
}

fn http_date() -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now())
}

/// RStudio Workbench's proxied authentication, for RStudio open source: an upstream SSO proxy
/// names the user in a header only it sets, signs it, and the gate signs that user in to
/// rserver; names go through the rewrite rules and the display separator as for PAM.
#[test]
fn header_mode_signs_the_proxys_user_in_with_a_valid_signature_only() {
    if let Some(why) = skip_reason() {
        eprintln!("gate_browser: SKIPPED: {why}");
        return;
    }
    let site = Site::start("gate-header", Mode::Header { signed: true });
    let key = site.env.path("proxy-hmac-key");
    let signed = |user: &str| -> Vec<(&'static str, String)> {
        let date = http_date();
        let sig = site.env.proxy_sign(&key, user, &date, None);
        assert_eq!(sig.code, 0, "{}", sig.all());
        vec![
            (USER_HEADER, user.to_string()),
            ("Date", date),
            ("X-Proxy-Signature", sig.stdout.trim().to_string()),
        ]
    };
    for (header, account) in [("UID-jsmith", "jsmith"), ("rsuser24/jsmith", "rsuser24")] {
        let r = get_through(&site, "/auth-sign-in?appUri=%2F", &[]);
        assert_eq!(r.status, 302, "{r:?}");
        let r = get_through(&site, r.location().unwrap(), &signed(header));
        assert_eq!(r.status, 302, "{header}: {r:?}\n{}", site.logs());
        assert_eq!(r.location(), Some("/"), "{header}: {r:?}");
        let cookie = r
            .cookie("user-id")
            .unwrap_or_else(|| panic!("{header}: no user-id\n{}", site.logs()));
        let home = site.rserver.get("/", &[("user-id", &cookie)]);
        assert!(
            home.body.contains(&format!("signed in as {account}")),
            "{header}: {}",
            home.body
        );
    }
    // No signature, a signature for another user, or the header missing: refused, no cookie.
    let mut forged = signed("alice");
    forged[0].1 = "jdoe".into();
    for (what, headers) in [
        ("unsigned", vec![(USER_HEADER, "jdoe".to_string())]),
        ("signed for another user", forged),
        ("no user header", Vec::new()),
    ] {
        let r = get_through(&site, "/gate/login?appUri=%2F", &headers);
        assert_eq!(r.status, 403, "{what}: {r:?}");
        assert!(r.cookie("user-id").is_none(), "{what}: {r:?}");
    }
    // X-RStudio-Username is what any client could send: the gate refuses to be configured
    // with it.
    let out = Gate::run(
        &site.env,
        &[
            "--config",
            &write_config(
                &site,
                "mode = \"header\"\nuser_header = \"X-RStudio-Username\"\n",
            ),
            "--check",
        ],
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("name a header only your proxy sets"),
        "{}",
        out.all()
    );
}

/// An unsigned header gate: the policy still decides.
#[test]
fn unsigned_header_mode_still_applies_the_policy() {
    if let Some(why) = skip_reason() {
        eprintln!("gate_browser: SKIPPED: {why}");
        return;
    }
    let site = Site::start("gate-header-unsigned", Mode::Header { signed: false });
    let r = get_through(
        &site,
        "/gate/login?appUri=%2F",
        &[(USER_HEADER, "UID-jsmith".into())],
    );
    assert_eq!(r.status, 302, "{r:?}\n{}", site.logs());
    assert!(r.cookie("user-id").is_some(), "{r:?}");
    for refused in ["bob", "mallory", "root"] {
        let r = get_through(
            &site,
            "/gate/login?appUri=%2F",
            &[(USER_HEADER, refused.into())],
        );
        assert_eq!(r.status, 403, "{refused}: {r:?}");
        assert!(r.cookie("user-id").is_none(), "{refused}: {r:?}");
    }
}

/// A gate config next to the site's, with `gate_lines` in `[gate]`; its path.
fn write_config(site: &Site, gate_lines: &str) -> String {
    let path = site.env.path("gate-check.toml");
    write_with_mode(
        &path,
        &format!("[gate]\npublic_url = \"{}/\"\n{gate_lines}", site.url),
        0o644,
    );
    path.to_string_lossy().into_owned()
}

/// The README's "Google sign-in for RStudio Server" as written: its TOML passes accountmapd's
/// and the gate's checks (only the secret's path replaced), the gate prints the redirect URI
/// step 1 tells the administrator to register, and the nginx lines that route users to the gate
/// are the ones the browser test runs.
#[test]
fn the_readme_gate_walkthrough_is_what_the_tests_run() {
    if !is_root() {
        eprintln!("gate_browser: SKIPPED: runs the gate as uid 65534 with setpriv: needs root");
        return;
    }
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- gate-walkthrough:begin -->")
        .expect("README has the gate walk-through");
    let block = &readme[start..readme.find("<!-- gate-walkthrough:end -->").unwrap()];
    let toml = &block[block.find("```toml\n").unwrap() + 8..];
    let toml = &toml[..toml.find("```").unwrap()];
    let env = Env::builder("gate-readme").no_daemon().build();
    let secret = env.path("gate-client-secret");
    write_with_mode(&secret, "GOCSPX-readme-test\n", 0o600);
    std::os::unix::fs::chown(&secret, Some(65534), Some(65534)).unwrap();
    let toml = toml.replace(
        "/etc/accountmap/gate/client-secret",
        &secret.to_string_lossy(),
    );
    let config = env.path("readme.toml");
    write_with_mode(
        &config,
        &format!("[daemon]\nsocket = \"{}\"\n{toml}", env.socket.display()),
        0o644,
    );
    let out = daemon_check(&config);
    assert_eq!(
        out.code,
        0,
        "accountmapd --check of the README's config\n{}",
        out.all()
    );
    let out = Gate::run(&env, &["--config", &config.to_string_lossy(), "--check"]);
    assert_eq!(
        out.code,
        0,
        "accountmap-gate --check of the README's config\n{}",
        out.all()
    );
    assert!(
        out.stdout
            .contains("redirect URI https://rstudio.example.com/gate/callback"),
        "{}",
        out.all()
    );
    assert!(block.contains("`https://rstudio.example.com/gate/callback`"));
    let site = rstudio_site(8080, 8788, 8787);
    for line in [
        "return 302 /gate/login$is_args$args;",
        "location = /auth-sign-in {",
        "location /gate/ {",
        "proxy_pass http://127.0.0.1:8788;",
        "proxy_pass http://127.0.0.1:8787;",
    ] {
        assert!(block.contains(line), "README's nginx lines lack {line:?}");
        assert!(site.contains(line), "the tested site lacks {line:?}");
    }
}
