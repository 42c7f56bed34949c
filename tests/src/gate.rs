//! accountmap-gate as its unit runs it: an unprivileged user (uid 65534, `nobody` in the test
//! world, named in `[gate] ticket_callers`), started with its own configuration file, its
//! output kept in a log.

use crate::artifacts::accountmap_gate;
use crate::command::{run_bounded, Outcome};
use crate::files::write_with_mode;
use crate::net::free_port;
use crate::server::{kill_and_wait_closed, listening, spawn_logged};
use crate::{Env, COMMAND_LIMIT};
use std::fs;
use std::os::unix::fs::chown;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

/// The uid the gate runs as in the tests.
pub const GATE_UID: u32 = 65534;
/// Its name in the test world ([`crate::World::standard`]).
pub const GATE_USER: &str = "nobody";

pub struct Gate {
    pub port: u16,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    child: Option<Child>,
}

impl Gate {
    /// Writes `DIR/gate.toml` (`[daemon] socket` of `env`, `[gate] listen` on a free port, then
    /// `config`) and the client secret `DIR/gate-client-secret` (owned by the gate's uid, 0600),
    /// checks the configuration with `--check`, starts the gate as uid 65534 and waits until it
    /// listens.
    pub fn start(env: &Env, config: &str, client_secret: &str) -> Gate {
        let port = free_port();
        let secret = env.path("gate-client-secret");
        write_with_mode(&secret, &format!("{client_secret}\n"), 0o600);
        chown(&secret, Some(GATE_UID), Some(GATE_UID)).expect("chown the gate's client secret");
        let config_path = env.path("gate.toml");
        let text = format!(
            "[daemon]\nsocket = \"{}\"\n{config}\n",
            env.socket.display()
        )
        .replace(
            "[gate]\n",
            &format!(
                "[gate]\nlisten = \"127.0.0.1:{port}\"\nclient_secret_file = \"{}\"\n",
                secret.display()
            ),
        );
        write_with_mode(&config_path, &text, 0o644);
        let check = Gate::run(
            env,
            &["--config", &config_path.to_string_lossy(), "--check"],
        );
        assert_eq!(
            check.code,
            0,
            "accountmap-gate --check\n{}\n{text}",
            check.all()
        );
        let log_path = env.path(&format!("gate-{port}.log"));
        let mut cmd = Gate::command(env);
        cmd.arg("--config").arg(&config_path);
        let child = spawn_logged(&mut cmd, &log_path);
        let gate = Gate {
            port,
            config_path,
            log_path,
            child: Some(child),
        };
        assert!(
            listening(&[port], Duration::from_secs(10)),
            "accountmap-gate did not listen on {port}\n{}",
            gate.log()
        );
        gate
    }

    /// `setpriv` to uid/gid 65534, no groups, running the world-readable copy of the gate.
    fn command(env: &Env) -> Command {
        let program = env.world_readable(&accountmap_gate());
        let mut cmd = Command::new("setpriv");
        cmd.args([
            &format!("--reuid={GATE_UID}"),
            &format!("--regid={GATE_UID}"),
            "--clear-groups",
            "--",
        ])
        .arg(program)
        .current_dir("/");
        cmd
    }

    /// Runs the gate's binary with `args` as its unit would, to completion.
    pub fn run(env: &Env, args: &[&str]) -> Outcome {
        run_bounded(Gate::command(env).args(args), None, COMMAND_LIMIT)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        kill_and_wait_closed(&mut self.child, self.port);
    }
}

/// The HMAC key of the ticket tests' trusted proxy (`[proxy] hmac_key_file`).
pub const PROXY_KEY: &str = "ticket tests proxy hmac key";

/// Starts `env`'s daemon with `[proxy]` (key [`PROXY_KEY`]), `[gate]` naming the gate's user
/// (`nobody`) as the one that may ask for tickets, valid `lifetime` seconds, `gate_lines` more
/// in `[gate]`, and `more` (other sections) before them.
pub fn start_ticket_daemon(env: &mut Env, lifetime: u32, more: &str, gate_lines: &str) {
    let key = env.path("proxy-hmac-key");
    write_with_mode(&key, &format!("{PROXY_KEY}\n"), 0o600);
    let mut config = env.config().clone();
    config.extra.push_str(&format!(
        "{more}\n[proxy]\nhmac_key_file = \"{}\"\nmax_clock_skew = 60\n\
         \n[gate]\nticket_callers = [\"{GATE_USER}\"]\nticket_lifetime = {lifetime}\n{gate_lines}",
        key.display()
    ));
    env.write_config(&config);
    env.start_daemon();
}

/// The `rstudio` service: a ticket signs in (`[success=done default=ignore]`, the README's
/// profile), then `after` (the password modules' stand-in), then the account phase.
pub fn add_ticket_service(env: &Env, after: &str) {
    env.add_service_text(
        "rstudio",
        &format!(
            "{}{after}\n{}",
            env.module_line("auth", "[success=done default=ignore]", "verify=ticket"),
            env.module_line("account", "[success=ok default=die]", "")
        ),
    );
}

/// A one-time ticket for `name` (an alias or an account), asked for as the gate asks in
/// header mode: signed by the proxy key. The daemon refuses a signature replayed (same user and
/// date), so each request for a name gets a date of its own, now or a few seconds back, well
/// inside max_clock_skew.
pub fn proxy_ticket(env: &Env, name: &str) -> Result<String, accountmap_wire::Response> {
    use accountmap_wire::{call, Credential, Request, Response, Verify};
    use std::sync::Mutex;
    static USED: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let date = {
        let mut used = USED.lock().unwrap_or_else(|p| p.into_inner());
        let date = (0..60)
            .map(|back| now - back)
            .find(|d| !used.contains(&(name.to_string(), *d)))
            .expect("fewer than 60 tickets per name and minute");
        used.push((name.to_string(), date));
        date.to_string()
    };
    let sig = crate::openssl_proxy_signature(PROXY_KEY, name, &date, "");
    let req = Request::IssueTicket {
        service: "rstudio".into(),
        name: name.into(),
        rhost: "127.0.0.1".into(),
        verify: Verify::Proxy,
        credential: Credential::new(format!("{date}\n{sig}").into_bytes()),
    };
    match call(&env.socket, &req, Duration::from_secs(10)) {
        Ok(Response::Ticket { ticket, .. }) => Ok(ticket),
        Ok(other) => Err(other),
        Err(e) => panic!("IssueTicket: {e}"),
    }
}
