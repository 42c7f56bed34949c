//! accountmapd: resolves identities and decides sign-ins for pam_accountmap.so and
//! libnss_accountmap.so over a Unix socket. See accountmapd(8) and the README.

use accountmap::backends::system;
use accountmap::{config, log, server};
use clap::Parser;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "accountmapd", version, about = "accountmap's decision daemon")]
struct Args {
    /// Configuration file [default: $ACCOUNTMAP_CONFIG or /etc/accountmap/accountmap.toml]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit: 0 valid, 2 invalid
    #[arg(long)]
    check: bool,
    /// Also log to stderr (the default when stderr is a terminal)
    #[arg(long)]
    log_stderr: bool,
}

fn main() -> ExitCode {
    // The daemon looks accounts up through the system's NSS, and nsswitch.conf may list
    // accountmap itself: this marker makes libnss_accountmap.so answer UNAVAIL inside the daemon
    // instead of calling the daemon from one of its own request threads. Set first thing, before
    // the runtime starts any thread (setenv is not thread-safe).
    std::env::set_var(accountmap_wire::DAEMON_ENV, "1");
    // Before any thread too: fewer malloc arenas, so memory freed after a burst is reused and
    // can be given back (server::memory).
    server::memory::limit_arenas();
    let args = Args::parse();
    let path = args.config.unwrap_or_else(config::default_path);
    if args.check {
        return match config::load(&path) {
            Ok(c) => {
                for w in &c.warnings {
                    eprintln!("warning: {w}");
                }
                println!("{}: configuration is valid", path.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::from(2)
            }
        };
    }
    log::init(true, args.log_stderr || std::io::stderr().is_terminal());
    match server::run(path, Arc::new(system::SystemDirectory)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error(&e);
            ExitCode::FAILURE
        }
    }
}
