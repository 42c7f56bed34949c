//! Harness for accountmap's end-to-end tests.
//!
//! Every test gets an [`Env`]: its own temporary directory (mode 0755, so that an unprivileged
//! peer can reach the socket) holding made-up users for nss_wrapper (`passwd`, `group`), an
//! `accountmap.toml`, an accounts file, a PAM service directory for pam_wrapper whose service
//! files name `libpam_accountmap.so` by absolute path, and a real `accountmapd` started under
//! nss_wrapper with `--log-stderr` (its stderr goes to `daemon.log`, read back with
//! [`Env::daemon_log`]). The daemon is stopped when the `Env` is dropped.
//!
//! PAM stacks run in `pamtester` under `LD_PRELOAD="libpam_wrapper.so:libnss_wrapper.so"` with
//! `PAM_WRAPPER=1` (preloading pam_wrapper without it makes pamtester spin). pamtester prints
//! one line per operation: success lines on stdout, the failure on stderr; [`PamRun::verdicts`]
//! puts them back in order.
//!
//! How a test sees PAM_USER after our module: the `*-echo` services stack
//! `pam_echo.so "auth: PAM_USER=%u"` after `pam_accountmap.so`. pam_echo expands `%u` from
//! PAM_USER at the moment it runs and sends it as PAM_TEXT_INFO, which pamtester prints on
//! stdout; [`PamRun::pam_user_after`] reads it back.
//!
//! Every wait here is bounded: processes are killed past their deadline and the test fails with
//! what they printed.

//!
//! Where things are:
//! - [`env`]: [`Env`] and its builder — the test's directory, files and PAM services;
//! - [`daemon`]: the daemon process of an `Env` (start, signals, stop, log);
//! - [`clients`]: pamtester, `getent`, `accountmapctl` run against an `Env`;
//! - [`pamtester`]: pamtester's verdict lines and [`PamRun`];
//! - [`wrappers`]: pam_wrapper and nss_wrapper (paths, variables, start lock, stale directories);
//! - [`world`], [`config`]: the made-up users and groups, and `accountmap.toml`;
//! - [`command`]: bounded child processes and one-shot commands ([`run_bounded`], [`daemon_check`]);
//! - [`wait`], [`files`], [`artifacts`]: polling, file writing, where the built binaries are;
//! - [`namespace`]: real sshd, su and pamtester in a private mount namespace;
//! - [`raw_client`], [`net`]: raw frames to the daemon socket; loopback ports, accept loops
//!   and forwarding for the tests' proxies;
//! - [`server`]: the long-running processes a test owns (spawn with a log, wait, kill, clean up);
//! - [`slapd`], [`oidc_provider`]: a real OpenLDAP and a real OpenID Provider on loopback;
//! - [`samba`]: a real Samba Active Directory domain controller on loopback (ports 389/636);
//! - [`nginx`], [`browser`]: a real nginx in front, and a real headless Chromium over WebDriver.
//! - [`rserver`]: the TEST STAND-IN for RStudio Server's sign-in (`rserver_standin`, not
//!   RStudio) on loopback, and a small blocking HTTP client for it.

// This crate is test support: failing loudly with a message is what it is for.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub use serde_json;

pub mod artifacts;
pub mod browser;
pub mod clients;
pub mod command;
pub mod config;
pub mod daemon;
pub mod env;
pub mod files;
pub mod gate;
pub mod namespace;
pub mod net;
pub mod nginx;
pub mod oidc_provider;
pub mod pamtester;
pub mod raw_client;
pub mod rserver;
pub mod samba;
pub mod server;
pub mod slapd;
pub mod wait;
pub mod world;
pub mod wrappers;

pub use artifacts::*;
pub use command::*;
pub use config::*;
pub use daemon::*;
pub use env::*;
pub use files::*;
pub use net::*;
pub use pamtester::*;
pub use raw_client::*;
pub use rserver::*;
pub use server::*;
pub use wait::*;
pub use world::*;
pub use wrappers::*;
