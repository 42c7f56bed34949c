//! `accountmap-gate [--config FILE] [--check]`: see accountmap-gate(8).

use accountmap_gate::{config, serve, upstream::Upstream, web};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    version,
    about = "Google/OIDC and trusted-proxy sign-in for RStudio Server, through accountmapd tickets"
)]
struct Args {
    /// The accountmap configuration ([gate], [oidc] and [daemon] socket are read).
    #[arg(long, default_value = "/etc/accountmap/accountmap.toml")]
    config: PathBuf,
    /// Check the configuration and the client secret, print what would be served, and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("accountmap-gate: {e}");
            return ExitCode::from(2);
        }
    };
    // rustls needs one crypto provider for the process; ring, as accountmapd.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let up = match Upstream::new(cfg) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("accountmap-gate: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = &up.cfg;
    let mode = match &cfg.mode {
        config::Mode::Oidc { .. } => format!(
            "OpenID Connect with {} as client {}",
            cfg.discovery_endpoint, cfg.client_id
        ),
        config::Mode::Header {
            user_header,
            require_signature,
        } => format!(
            "the trusted header {user_header}{}",
            if *require_signature {
                " with X-Proxy-Signature"
            } else {
                " (unsigned)"
            }
        ),
    };
    let summary = format!(
        "listening on {}, signing in to {} (rserver at {}) by {mode}; redirect URI {}; tickets from {}",
        cfg.listen,
        cfg.public_url,
        cfg.rserver_url,
        up.redirect_uri(),
        cfg.socket.display()
    );
    if args.check {
        println!("configuration OK: {summary}");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("accountmap-gate: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listen = cfg.listen;
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("accountmap-gate: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!("accountmap-gate: {summary}");
        let app = web::router(Arc::new(web::Gate::new(up)));
        tokio::select! {
            r = serve::run(listener, app) => {
                if let Err(e) = r {
                    eprintln!("accountmap-gate: {e}");
                }
                ExitCode::FAILURE
            }
            _ = shutdown() => {
                eprintln!("accountmap-gate: stopping");
                ExitCode::SUCCESS
            }
        }
    })
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
