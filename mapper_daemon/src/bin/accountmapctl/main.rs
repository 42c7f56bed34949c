//! accountmapctl: answers an administrator's two questions — is my config right, and what
//! happens when this user signs in — plus status, cache control and proxy signatures.

// The test-login command's modules live outside src/bin/ so that Cargo does not take them for
// binaries of their own; only accountmapctl runs PAM, so only it links libpam.
mod pam_app;
mod pam_stack;
mod test_login;

use accountmap::backends::proxy;
use accountmap::config;
use accountmap_wire::{call, Decision, Request, Response, Verdict, DEFAULT_SOCKET, SOCKET_ENV};
use clap::{Parser, Subcommand};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Longer than the daemon's backend timeout, so a slow directory is not mistaken for a dead
/// daemon.
const TIMEOUT: Duration = Duration::from_secs(15);

const EXIT_REFUSED: u8 = 1;
const EXIT_INVALID: u8 = 2;
const EXIT_UNREACHABLE: u8 = 3;

#[derive(Parser)]
#[command(
    name = "accountmapctl",
    version,
    about = "Administer and question accountmapd"
)]
struct Args {
    /// Daemon socket [default: $ACCOUNTMAP_SOCKET, else daemon.socket of the config]
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Configuration file [default: $ACCOUNTMAP_CONFIG or /etc/accountmap/accountmap.toml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print one JSON object instead of text
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration without a daemon (exit 0 valid, 2 invalid)
    CheckConfig {
        /// File to check [default: the --config file]
        file: Option<PathBuf>,
    },
    /// Show the decision for NAME: account, uid, groups, the rule that matched, and why
    Resolve {
        name: String,
        /// PAM service the question is about (logged by the daemon)
        #[arg(long, default_value = "accountmapctl")]
        service: String,
    },
    /// Daemon version, configuration, backends and cache counters (exit 0 up, 3 down)
    Status,
    /// Cached answers
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Sign NAME in as RStudio Server does, step by step: NSS, uid round trip, PAM with
    /// RStudio's strict conversation (password from stdin), minimum uid, required groups
    /// (exit 0 all pass, 1 a step fails, 3 daemon unreachable)
    TestLogin {
        name: String,
        /// PAM service RStudio uses
        #[arg(long, default_value = "rstudio")]
        service: String,
    },
    /// Print the X-Proxy-Signature for a user and date
    ProxySign {
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
        #[arg(long)]
        user: String,
        #[arg(long)]
        date: String,
        #[arg(long, value_name = "FILE")]
        body_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CacheAction {
    /// Drop every cached answer (root only)
    Flush,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config_path = args.config.clone().unwrap_or_else(config::default_path);
    match &args.command {
        Command::CheckConfig { file } => {
            check_config(file.as_deref().unwrap_or(&config_path), args.json)
        }
        Command::ProxySign {
            key_file,
            user,
            date,
            body_file,
        } => proxy_sign(key_file, user, date, body_file.as_deref()),
        Command::Resolve { name, service } => {
            let socket = socket_path(&args, &config_path);
            let request = Request::Resolve {
                service: service.clone(),
                name: name.clone(),
            };
            match ask(&socket, &request) {
                Ok(Response::Decision(d)) => print_decision(name, &d, args.json),
                Ok(other) => unexpected(&other),
                Err(code) => code,
            }
        }
        Command::TestLogin { name, service } => {
            let socket = socket_path(&args, &config_path);
            test_login::run(&socket, name, service, args.json)
        }
        Command::Status => {
            let socket = socket_path(&args, &config_path);
            match ask(&socket, &Request::Status) {
                Ok(Response::Status(pairs)) => {
                    if args.json {
                        let map: serde_json::Map<String, serde_json::Value> = pairs
                            .into_iter()
                            .map(|(k, v)| (k, serde_json::Value::String(v)))
                            .collect();
                        println!("{}", serde_json::Value::Object(map));
                    } else {
                        let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                        for (k, v) in pairs {
                            println!("{:width$}  {v}", format!("{k}:"), width = width + 1);
                        }
                    }
                    ExitCode::SUCCESS
                }
                Ok(other) => unexpected(&other),
                Err(code) => code,
            }
        }
        Command::Cache {
            action: CacheAction::Flush,
        } => {
            let socket = socket_path(&args, &config_path);
            match ask(&socket, &Request::CacheFlush) {
                Ok(Response::Flushed(n)) => {
                    if args.json {
                        println!("{}", json!({ "flushed": n }));
                    } else {
                        println!("{n} cached answers dropped");
                    }
                    ExitCode::SUCCESS
                }
                Ok(Response::Error(e)) => {
                    eprintln!("accountmapctl: {e}");
                    ExitCode::from(EXIT_REFUSED)
                }
                Ok(other) => unexpected(&other),
                Err(code) => code,
            }
        }
    }
}

/// --socket, else $ACCOUNTMAP_SOCKET, else daemon.socket of the config (read leniently: only
/// that key, so that an unprivileged user who cannot read secret files still finds the
/// socket), else the default.
fn socket_path(args: &Args, config_path: &Path) -> PathBuf {
    if let Some(s) = &args.socket {
        return s.clone();
    }
    if let Some(s) = std::env::var_os(SOCKET_ENV) {
        return PathBuf::from(s);
    }
    std::fs::read_to_string(config_path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| t.get("daemon")?.get("socket")?.as_str().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

fn ask(socket: &Path, request: &Request) -> Result<Response, ExitCode> {
    call(socket, request, TIMEOUT).map_err(|e| {
        eprintln!("accountmapctl: {} ({})", e, socket.display());
        ExitCode::from(EXIT_UNREACHABLE)
    })
}

fn unexpected(response: &Response) -> ExitCode {
    match response {
        Response::Error(e) => eprintln!("accountmapctl: the daemon refused the request: {e}"),
        other => eprintln!("accountmapctl: unexpected answer from the daemon: {other:?}"),
    }
    ExitCode::from(EXIT_UNREACHABLE)
}

fn print_decision(name: &str, d: &Decision, as_json: bool) -> ExitCode {
    let allowed = d.verdict == Verdict::Allowed;
    if as_json {
        println!(
            "{}",
            json!({
                "name": name,
                "allowed": allowed,
                "verdict": d.verdict.as_str(),
                "account": if d.account.is_empty() { None } else { Some(&d.account) },
                "uid": d.uid,
                "groups": d.groups,
                "rule": if d.rule.is_empty() { None } else { Some(&d.rule) },
                "reason": d.reason,
            })
        );
    } else {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                s.to_string()
            }
        };
        println!("name:     {name}");
        println!("verdict:  {}", d.verdict.as_str());
        match d.uid {
            Some(uid) => println!("account:  {} (uid {uid})", d.account),
            None => println!("account:  {}", dash(&d.account)),
        }
        if !d.groups.is_empty() {
            println!("groups:   {}", d.groups.join(", "));
        }
        println!("rule:     {}", dash(&d.rule));
        println!("reason:   {}", d.reason);
    }
    match d.verdict {
        Verdict::Allowed => ExitCode::SUCCESS,
        Verdict::Unavailable => ExitCode::from(EXIT_UNREACHABLE),
        _ => ExitCode::from(EXIT_REFUSED),
    }
}

fn check_config(path: &Path, as_json: bool) -> ExitCode {
    match config::load(path) {
        Ok(c) => {
            if as_json {
                println!(
                    "{}",
                    json!({ "valid": true, "files": c.files, "warnings": c.warnings })
                );
            } else {
                for w in &c.warnings {
                    eprintln!("warning: {w}");
                }
                println!("{}: configuration is valid", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            if as_json {
                let list: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
                println!("{}", json!({ "valid": false, "errors": list }));
            } else {
                eprintln!("{errors}");
            }
            ExitCode::from(EXIT_INVALID)
        }
    }
}

fn proxy_sign(key_file: &Path, user: &str, date: &str, body_file: Option<&Path>) -> ExitCode {
    let key = match std::fs::read(key_file) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("accountmapctl: {}: {e}", key_file.display());
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let body = match body_file.map(std::fs::read).transpose() {
        Ok(b) => b.unwrap_or_default(),
        Err(e) => {
            eprintln!("accountmapctl: cannot read the body file: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    println!(
        "{}",
        proxy::sign(proxy::key_from_file_content(&key), user, date, &body)
    );
    ExitCode::SUCCESS
}
