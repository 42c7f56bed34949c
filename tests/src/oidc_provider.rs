//! A real OpenID Provider for the OIDC tests: panva's `oidc-provider` (an OpenID-certified
//! implementation, pinned in `tests/oidc-provider/package-lock.json`) run by node on
//! 127.0.0.1 with the clients, accounts and signing keys a test gives it
//! (`tests/oidc-provider/provider.mjs`).
//!
//! Tokens come out of the provider's own authorization code flow: `login.mjs` plays the
//! browser through `/auth`, the provider's development login and consent pages and `/token`,
//! so every token is minted and signed by the provider with the keys it publishes in its JWKS.
//! Two knobs make the unusual tokens a test needs without touching a token by hand: a second
//! provider with the same keys on another port (another issuer), and a provider whose clock
//! runs two hours behind (an expired token).

use crate::net::free_port;
use crate::server::{kill, kill_and_wait_closed, listening, remove_unless_kept, spawn_logged};
use crate::{run_bounded, write_atomic, Config, COMMAND_LIMIT};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

/// How long node may take to listen.
pub const PROVIDER_START_LIMIT: Duration = Duration::from_secs(20);
/// The client accountmapd is configured with, and another client of the same provider.
pub const CLIENT_ID: &str = "accountmap";
pub const OTHER_CLIENT_ID: &str = "other-app";
pub const CLIENT_SECRET: &str = "test-client-secret";

/// The accounts of the test provider: (sub, email, email_verified).
pub const ACCOUNTS: &[(&str, &str, bool)] = &[
    ("alice-sub", "alice@company.com", true),
    ("jdoe-sub", "John.Doe@Company.com", true),
    ("carol-sub", "carol@company.com", false),
    ("eve-sub", "eve@elsewhere.org", true),
    ("partner-sub", "partner@elsewhere.org", true),
    // bob exists locally but is outside the required group (the gate's browser test).
    ("bob-sub", "bob@company.com", true),
];

/// The PAM service of the OIDC tests: our module with `verify=oidc`, PAM_USER echoed.
pub const SVC_OIDC: &str = "oidc";

/// Points `config` at the provider of `discovery` for the test client, with
/// `allowed_domains = ["company.com"]`, `more` (further keys of the section) and a 2 s
/// backend timeout.
pub fn oidc_config(config: &mut Config, discovery: &str, more: &str) {
    config.backend_timeout = 2;
    config.extra = format!(
        "\n[oidc]\n\
         discovery_endpoint = \"{discovery}\"\n\
         client_id = \"{CLIENT_ID}\"\n\
         allowed_domains = [\"company.com\"]\n\
         {more}"
    );
}

pub fn provider_dir() -> PathBuf {
    crate::workspace_root().join("tests/oidc-provider")
}

/// `npm ci` once per test process when `node_modules` is missing (`make test` runs it in
/// scripts/install-deps.sh already).
pub fn require_node_modules() {
    static ONCE: Mutex<bool> = Mutex::new(false);
    let mut done = ONCE.lock().unwrap_or_else(|p| p.into_inner());
    if *done {
        return;
    }
    let dir = provider_dir();
    if !dir.join("node_modules/oidc-provider/package.json").exists() {
        let out = run_bounded(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
            None,
            Duration::from_secs(300),
        );
        assert_eq!(
            out.code,
            0,
            "npm ci in {} failed (node and npm are needed: scripts/install-deps.sh installs them)\n{}",
            dir.display(),
            out.all()
        );
    }
    *done = true;
}

/// A new private signing key (a JWK) from node's crypto: `"RSA"` (2048 bits) or `"EC"` (P-256).
pub fn generate_key(kty: &str) -> String {
    require_node_modules();
    let out = run_bounded(
        Command::new("node")
            .arg(provider_dir().join("provider.mjs"))
            .args(["--genkey", kty]),
        None,
        COMMAND_LIMIT,
    );
    assert_eq!(out.code, 0, "{}", out.all());
    out.stdout.trim().to_string()
}

/// What a provider instance is started with.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Private JWKs; the first one of the client's algorithm signs.
    pub keys: Vec<String>,
    /// `id_token_signed_response_alg` of both clients.
    pub alg: String,
    /// Seconds the provider's clock is off.
    pub clock_offset: i64,
    /// Redirect URIs both clients register besides [`LOGIN_REDIRECT_URI`] (which `login`
    /// uses), e.g. the gate's `http://localhost:PORT/gate/callback`.
    pub redirect_uris: Vec<String>,
    /// Both clients' `token_endpoint_auth_method`; `None`: the provider's default,
    /// `client_secret_basic`.
    pub token_endpoint_auth_method: Option<String>,
}

impl Setup {
    /// One new RSA key, RS256, a correct clock, the default redirect URI and client auth.
    pub fn rsa() -> Setup {
        Setup {
            keys: vec![generate_key("RSA")],
            alg: "RS256".into(),
            clock_offset: 0,
            redirect_uris: Vec::new(),
            token_endpoint_auth_method: None,
        }
    }
}

/// The redirect URI `login.mjs` signs in with, registered for every client.
pub const LOGIN_REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// The ID token and access token of one sign-in.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub id_token: String,
    pub access_token: String,
}

pub struct OidcProvider {
    /// Where the provider listens.
    pub port: u16,
    /// The port of its issuer URL: `port`, or a proxy's in front of it ([`start_behind`]).
    ///
    /// [`start_behind`]: OidcProvider::start_behind
    pub public_port: u16,
    dir: PathBuf,
    child: Option<Child>,
    pub setup: Setup,
}

impl OidcProvider {
    /// Starts a provider on a free port with one new RSA key.
    pub fn start(name: &str) -> OidcProvider {
        OidcProvider::start_on(name, free_port(), Setup::rsa())
    }

    /// Starts a provider on a free port with `setup` (e.g. [`Setup::rsa`] with the gate's
    /// redirect URI).
    pub fn start_with(name: &str, setup: Setup) -> OidcProvider {
        OidcProvider::start_on(name, free_port(), setup)
    }

    pub fn start_on(name: &str, port: u16, setup: Setup) -> OidcProvider {
        OidcProvider::start_inner(name, port, port, setup)
    }

    /// Starts a provider listening on `port` whose issuer (and so every URL of its discovery
    /// document) is `http://127.0.0.1:{public_port}`: a proxy on `public_port` sees all
    /// traffic to it.
    pub fn start_behind(name: &str, port: u16, public_port: u16) -> OidcProvider {
        OidcProvider::start_inner(name, port, public_port, Setup::rsa())
    }

    fn start_inner(name: &str, port: u16, public_port: u16, setup: Setup) -> OidcProvider {
        require_node_modules();
        let dir = std::env::temp_dir().join(format!(
            "am-oidc-{}-{port}-{}",
            std::process::id(),
            name.chars().take(20).collect::<String>()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the provider directory");
        let mut p = OidcProvider {
            port,
            public_port,
            dir,
            child: None,
            setup,
        };
        p.run();
        p
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.public_port)
    }

    pub fn discovery_endpoint(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    fn run(&mut self) {
        let accounts: Vec<String> = ACCOUNTS
            .iter()
            .map(|(sub, email, verified)| {
                format!("\"{sub}\": {{\"email\": \"{email}\", \"email_verified\": {verified}}}")
            })
            .collect();
        let mut redirect_uris = vec![LOGIN_REDIRECT_URI.to_string()];
        redirect_uris.extend(self.setup.redirect_uris.iter().cloned());
        let clients: Vec<serde_json::Value> = [CLIENT_ID, OTHER_CLIENT_ID]
            .iter()
            .map(|id| {
                let mut c = serde_json::json!({
                    "client_id": id,
                    "client_secret": CLIENT_SECRET,
                    "id_token_signed_response_alg": self.setup.alg,
                    "redirect_uris": redirect_uris,
                });
                if let Some(m) = &self.setup.token_endpoint_auth_method {
                    c["token_endpoint_auth_method"] = m.as_str().into();
                }
                c
            })
            .collect();
        let config = format!(
            "{{\"port\": {}, \"issuer\": \"{}\", \"keys\": [{}], \"clients\": {}, \"accounts\": {{{}}}, \"clock_offset\": {}}}",
            self.port,
            self.issuer(),
            self.setup.keys.join(", "),
            serde_json::Value::from(clients),
            accounts.join(", "),
            self.setup.clock_offset
        );
        let config_path = self.dir.join("provider.json");
        write_atomic(&config_path, &config);
        let child = spawn_logged(
            Command::new("node")
                .arg(provider_dir().join("provider.mjs"))
                .arg(&config_path),
            &self.dir.join("provider.log"),
        );
        self.child = Some(child);
        let port = self.port;
        if !listening(&[port], PROVIDER_START_LIMIT) {
            self.stop();
            panic!(
                "oidc-provider not listening on {port} within {PROVIDER_START_LIMIT:?}\n{}",
                self.log()
            );
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("provider.log")).unwrap_or_default()
    }

    /// Kills the provider and waits until its port refuses connections.
    pub fn stop(&mut self) {
        kill_and_wait_closed(&mut self.child, self.port);
    }

    /// Stops the provider and starts it again on the same port (same issuer) with `setup`.
    pub fn restart(&mut self, setup: Setup) {
        self.stop();
        self.setup = setup;
        self.run();
    }

    /// Signs `account` (a sub of [`ACCOUNTS`]) in for `client` through the authorization
    /// code flow; the provider's tokens.
    pub fn login(&self, client: &str, account: &str) -> Tokens {
        let out = run_bounded(
            Command::new("node")
                .arg(provider_dir().join("login.mjs"))
                .args([&self.issuer(), client, CLIENT_SECRET, account]),
            None,
            COMMAND_LIMIT,
        );
        assert_eq!(
            out.code,
            0,
            "login of {account} at {} failed\n{}\n--- provider log ---\n{}",
            self.issuer(),
            out.all(),
            self.log()
        );
        let v: serde_json::Value =
            serde_json::from_str(out.stdout.trim()).expect("login.mjs prints JSON");
        Tokens {
            id_token: v["id_token"].as_str().expect("id_token").to_string(),
            access_token: v["access_token"]
                .as_str()
                .expect("access_token")
                .to_string(),
        }
    }
}

impl OidcProvider {
    /// Approves the device authorization with `user_code` as `account` would in a browser:
    /// the provider's /device page, its confirmation, login and consent (`approve.mjs`).
    pub fn approve(&self, user_code: &str, account: &str) {
        let out = run_bounded(
            Command::new("node")
                .arg(provider_dir().join("approve.mjs"))
                .args([&self.issuer(), user_code, account]),
            None,
            COMMAND_LIMIT,
        );
        assert_eq!(
            out.code,
            0,
            "approval of {user_code} as {account} failed\n{}\n--- provider log ---\n{}",
            out.all(),
            self.log()
        );
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        kill(&mut self.child);
        remove_unless_kept(&self.dir);
    }
}
