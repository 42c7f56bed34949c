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

// This crate is test support: failing loudly with a message is what it is for.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use accountmap_wire::{Request, Response};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub use serde_json;

pub mod oidc_provider;
pub mod slapd;

/// pam_wrapper and nss_wrapper as Debian installs them (libpam-wrapper, libnss-wrapper).
pub const LIBPAM_WRAPPER: &str = "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so";
pub const LIBNSS_WRAPPER: &str = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so";

/// pamtester's verdict lines (without the `pamtester: ` prefix), one per PAM return code.
pub const AUTH_OK: &str = "successfully authenticated";
pub const ACCT_OK: &str = "account management done.";
pub const SETCRED_OK: &str = "credential info has successfully been set.";
pub const OPEN_SESSION_OK: &str = "successfully opened a session";
pub const CLOSE_SESSION_OK: &str = "session has successfully been closed.";
/// PAM_AUTH_ERR
pub const AUTH_ERR: &str = "Authentication failure";
/// PAM_PERM_DENIED
pub const PERM_DENIED: &str = "Permission denied";
/// PAM_USER_UNKNOWN
pub const USER_UNKNOWN: &str = "User not known to the underlying authentication module";
/// PAM_AUTHINFO_UNAVAIL
pub const AUTHINFO_UNAVAIL: &str = "Authentication service cannot retrieve authentication info";

/// How long the daemon may take to become ready, and to stop after SIGTERM.
pub const DAEMON_START_LIMIT: Duration = Duration::from_secs(10);
pub const DAEMON_STOP_LIMIT: Duration = Duration::from_secs(5);
/// Any single child process (pamtester, accountmapctl, openssl) is killed after this.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Artifacts

/// The workspace root (`tests/..`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `<target>/debug`, honouring CARGO_TARGET_DIR when it is set; `ACCOUNTMAP_ARTIFACT_DIR`
/// overrides both (the benchmarks point it at `<target>/release`).
pub fn build_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ACCOUNTMAP_ARTIFACT_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            workspace_root().join(dir)
        };
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir.join("debug")
            } else {
                workspace_root().join(dir).join("debug")
            }
        }
        _ => workspace_root().join("target").join("debug"),
    }
}

/// A built artifact, or a panic that says how to build it.
pub fn artifact(name: &str) -> PathBuf {
    let path = build_dir().join(name);
    if !path.is_file() {
        panic!(
            "{} is missing: run `cargo build --workspace` first (make test does)",
            path.display()
        );
    }
    path
}

pub fn accountmapd() -> PathBuf {
    artifact("accountmapd")
}

pub fn accountmapctl() -> PathBuf {
    artifact("accountmapctl")
}

pub fn pam_module() -> PathBuf {
    artifact("libpam_accountmap.so")
}

pub fn nss_module() -> PathBuf {
    artifact("libnss_accountmap.so")
}

/// Fails the test with an install hint when a system prerequisite is missing.
pub fn require_system_tools() {
    for path in [LIBPAM_WRAPPER, LIBNSS_WRAPPER, "/usr/bin/pamtester"] {
        if !Path::new(path).exists() {
            panic!("{path} is missing: run scripts/install-deps.sh (make test does)");
        }
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

// ---------------------------------------------------------------------------------------------
// Running commands, bounded in time

/// What a finished command did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Exit code; -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    /// stdout then stderr, for messages.
    pub fn all(&self) -> String {
        format!(
            "--- exit code {} after {:?} ---\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with `stdin` fed to it; kills it and fails the test after `limit`.
pub fn run_bounded(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Outcome {
    run_inner(cmd, stdin, limit, false)
}

/// As [`run_bounded`], for a command preloaded with pam_wrapper.
///
/// pam_wrapper picks its `/tmp/pam.X` directory with a check-then-mkdir race: processes that
/// start at the same moment collide ("Failed to create pam_wrapper config dir … File exists",
/// then "Initialization failure" or a stack with no modules). So starts are serialised: a lock
/// file is held from just before the spawn until the child's `/tmp/pam.X/pid` names it (or it
/// has exited). The PAM transactions themselves still run concurrently.
pub fn run_bounded_pam(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Outcome {
    let out = run_inner(cmd, stdin, limit, true);
    clean_stale_pam_wrapper_dirs();
    out
}

/// An exclusive `flock` on a lock file shared by every test process on the machine.
struct StartLock {
    // Held for its descriptor: closing it releases the lock.
    _file: fs::File,
}

const PAM_WRAPPER_LOCK: &str = "/tmp/accountmap-tests.pam_wrapper.lock";

impl StartLock {
    fn acquire() -> StartLock {
        use std::os::fd::AsRawFd;
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(PAM_WRAPPER_LOCK)
            .unwrap_or_else(|e| panic!("open {PAM_WRAPPER_LOCK}: {e}"));
        let _ = fs::set_permissions(PAM_WRAPPER_LOCK, fs::Permissions::from_mode(0o666));
        let got = wait_until(Duration::from_secs(60), || {
            // SAFETY: flock on a descriptor we own; non-blocking, so the wait stays bounded.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
        });
        assert!(got, "could not take {PAM_WRAPPER_LOCK} within 60 s");
        StartLock { _file: file }
    }
}

/// Whether some `/tmp/pam.X/pid` names `pid`: pam_wrapper has set that process up.
fn pam_wrapper_ready(pid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/tmp") else {
        return true;
    };
    let want = pid.to_string();
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.starts_with("pam.")
            && name.len() == 5
            && fs::read_to_string(e.path().join("pid")).is_ok_and(|p| p.trim() == want)
    })
}

fn run_inner(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration, pam: bool) -> Outcome {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut lock = if pam {
        Some(StartLock::acquire())
    } else {
        None
    };
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A child that does not read its stdin must not block us: write from a thread.
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let out_reader = reader_thread(child.stdout.take());
    let err_reader = reader_thread(child.stderr.take());
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitpid") {
            break status;
        }
        if lock.is_some()
            && (pam_wrapper_ready(child.id()) || start.elapsed() > Duration::from_secs(5))
        {
            lock = None;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_reader.join().unwrap_or_default();
            let stderr = err_reader.join().unwrap_or_default();
            panic!(
                "{cmd:?} did not finish within {limit:?}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
            );
        }
        thread::sleep(Duration::from_millis(if lock.is_some() { 1 } else { 2 }));
    };
    let elapsed = start.elapsed();
    drop(lock);
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        elapsed,
    }
}

fn reader_thread<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Polls `cond` every few milliseconds until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// `accountmapd --check --config PATH`.
pub fn daemon_check(config: &Path) -> Outcome {
    run_bounded(
        Command::new(accountmapd())
            .arg("--check")
            .arg("--config")
            .arg(config),
        None,
        COMMAND_LIMIT,
    )
}

/// `accountmapctl check-config PATH` (no daemon involved).
pub fn ctl_check(config: &Path) -> Outcome {
    run_bounded(
        Command::new(accountmapctl())
            .arg("check-config")
            .arg(config),
        None,
        COMMAND_LIMIT,
    )
}

/// `openssl`'s HMAC-SHA256 of `user\ndate\nbody` under `key`, base64: SPEC's reference recipe.
pub fn openssl_proxy_signature(key: &str, user: &str, date: &str, body: &str) -> String {
    let out = run_bounded(
        Command::new("sh")
            .arg("-c")
            .arg(r#"printf '%s\n%s\n%s' "$U" "$D" "$B" | openssl dgst -sha256 -hmac "$KEY" -binary | base64"#)
            .env("U", user)
            .env("D", date)
            .env("B", body)
            .env("KEY", key),
        None,
        COMMAND_LIMIT,
    );
    assert_eq!(out.code, 0, "openssl recipe failed: {}", out.all());
    out.stdout.trim().to_string()
}

/// Removes the `/tmp/pam.X` directories pam_wrapper leaves behind when a preloaded process dies
/// without cleaning up (there are only 62 such names). Only directories whose `pid` file names
/// a process that no longer exists are touched, so parallel tests are safe.
pub fn clean_stale_pam_wrapper_dirs() {
    let Ok(entries) = fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with("pam.") || name.len() != 5 {
            continue;
        }
        let dir = entry.path();
        let Ok(pid) = fs::read_to_string(dir.join("pid")) else {
            continue;
        };
        let Ok(pid) = pid.trim().parse::<libc::pid_t>() else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Made-up users

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The users and groups nss_wrapper serves to the daemon (and to pamtester).
#[derive(Clone, Debug)]
pub struct World {
    pub users: Vec<User>,
    pub groups: Vec<Group>,
}

/// gid of `rstudio-users`, the required group of the default config.
pub const RSTUDIO_USERS_GID: u32 = 2000;

impl World {
    /// The cast every test shares (minimum uid 1000, required group `rstudio-users`):
    ///
    /// | name | uid | groups | expected |
    /// |---|---|---|---|
    /// | root | 0 | root | denied (uid) |
    /// | sysuser | 500 | rstudio-users (supplementary) | denied (uid) |
    /// | alice | 1001 | rstudio-users (supplementary) | allowed |
    /// | bob | 1002 | staff only | denied (group) |
    /// | jdoe | 1003 | rstudio-users | allowed; alias `John.Doe@Company.com` in the accounts file |
    /// | jsmith | 1004 | rstudio-users | allowed; alias `UID-jsmith` by rewrite |
    /// | rsuser24 | 1005 | rstudio-users | allowed; `rsuser24/jsmith` |
    /// | carol | 1006 | rstudio-users as PRIMARY group only | allowed |
    /// | mallory | 1007 | rstudio-users | denied (denied_users) |
    /// | erin | 1009 | rstudio-admins only | denied unless rstudio-admins is required too |
    /// | nobody | 65534 | rstudio-users | allowed (the unprivileged peer of the peer tests) |
    pub fn standard() -> World {
        let mut w = World {
            users: Vec::new(),
            groups: Vec::new(),
        };
        for (name, uid, gid) in [
            ("root", 0, 0),
            ("sysuser", 500, 500),
            ("alice", 1001, 1001),
            ("bob", 1002, 1002),
            ("jdoe", 1003, 1003),
            ("jsmith", 1004, 1004),
            ("rsuser24", 1005, 1005),
            ("carol", 1006, RSTUDIO_USERS_GID),
            ("mallory", 1007, 1007),
            ("erin", 1009, 1009),
            ("nobody", 65534, 65534),
        ] {
            w.users.push(User {
                name: name.into(),
                uid,
                gid,
            });
            if gid == uid {
                let group = if name == "nobody" { "nogroup" } else { name };
                w.groups.push(Group {
                    name: group.into(),
                    gid,
                    members: vec![],
                });
            }
        }
        w.groups.push(Group {
            name: "rstudio-users".into(),
            gid: RSTUDIO_USERS_GID,
            members: [
                "sysuser", "alice", "jdoe", "jsmith", "rsuser24", "mallory", "nobody",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        });
        w.groups.push(Group {
            name: "rstudio-admins".into(),
            gid: 2001,
            members: vec!["erin".into()],
        });
        w.groups.push(Group {
            name: "staff".into(),
            gid: 2002,
            members: vec!["bob".into()],
        });
        w
    }

    pub fn group_mut(&mut self, name: &str) -> &mut Group {
        self.groups
            .iter_mut()
            .find(|g| g.name == name)
            .unwrap_or_else(|| panic!("no group {name} in the test world"))
    }

    pub fn passwd(&self) -> String {
        let mut s = String::new();
        for u in &self.users {
            let _ = writeln!(
                s,
                "{}:x:{}:{}:{} (test):/home/{}:/bin/sh",
                u.name, u.uid, u.gid, u.name, u.name
            );
        }
        s
    }

    pub fn group(&self) -> String {
        let mut s = String::new();
        for g in &self.groups {
            let _ = writeln!(s, "{}:x:{}:{}", g.name, g.gid, g.members.join(","));
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Config

/// The knobs of `accountmap.toml` the tests turn. [`Config::render`] writes SPEC's syntax.
#[derive(Clone, Debug)]
pub struct Config {
    /// A TOML value: `1000` or `"auto"`.
    pub minimum_uid: String,
    pub required_groups: Vec<String>,
    pub denied_users: Vec<String>,
    pub lowercase: bool,
    pub display_separator: String,
    pub rewrite: Vec<String>,
    pub cache_ttl: u32,
    pub negative_cache_ttl: u32,
    /// `daemon.backend_timeout`, seconds.
    pub backend_timeout: u32,
    /// Raw TOML appended at the end (extra sections).
    pub extra: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            minimum_uid: "1000".into(),
            required_groups: vec!["rstudio-users".into()],
            denied_users: vec!["mallory".into()],
            lowercase: true,
            display_separator: "/".into(),
            rewrite: vec![
                "^UID-([a-z]+)$ $1".into(),
                r"^([a-z0-9._-]+)@company\.com$ $1".into(),
            ],
            // No caching by default: tests edit users and files and expect to see the edit.
            cache_ttl: 0,
            negative_cache_ttl: 0,
            backend_timeout: 5,
            extra: String::new(),
        }
    }
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", quoted.join(", "))
}

impl Config {
    pub fn render(&self, socket: &Path, accounts_file: &Path) -> String {
        format!(
            "# written by accountmap-tests\n\
             [daemon]\n\
             socket = \"{}\"\n\
             cache_ttl = {}\n\
             negative_cache_ttl = {}\n\
             backend_timeout = {}\n\
             \n\
             [access]\n\
             minimum_uid = {}\n\
             required_groups = {}\n\
             denied_users = {}\n\
             \n\
             [mapping]\n\
             lowercase = {}\n\
             display_separator = \"{}\"\n\
             accounts_file = \"{}\"\n\
             rewrite = {}\n\
             {}",
            socket.display(),
            self.cache_ttl,
            self.negative_cache_ttl,
            self.backend_timeout,
            self.minimum_uid,
            toml_list(&self.required_groups),
            toml_list(&self.denied_users),
            self.lowercase,
            self.display_separator,
            accounts_file.display(),
            toml_list(&self.rewrite),
            self.extra,
        )
    }
}

/// The accounts file every test starts with.
pub const STANDARD_ACCOUNTS: &str = "\
# external=local, as in /etc/rstudio/google-accounts
John.Doe@Company.com = jdoe
ops@company.com=root
legacy-sys = sysuser
";

// ---------------------------------------------------------------------------------------------
// PAM runs

/// What one pamtester run did.
#[derive(Debug, Clone)]
pub struct PamRun {
    pub out: Outcome,
}

impl PamRun {
    pub fn code(&self) -> i32 {
        self.out.code
    }

    pub fn elapsed(&self) -> Duration {
        self.out.elapsed
    }

    /// pamtester's verdict lines in order, without the `pamtester: ` prefix: the success lines
    /// (stdout) followed by the failure that stopped it (stderr), if any.
    pub fn verdicts(&self) -> Vec<String> {
        let pick = |text: &str| -> Vec<String> {
            text.lines()
                // pamtester prints the module's prompt (`Password: `) without a newline, so
                // the verdict of a run that prompted follows it on the same line.
                .filter_map(|l| {
                    l.trim_start_matches("Password: ")
                        .strip_prefix("pamtester: ")
                })
                .filter(|l| !l.starts_with("invoking ") && !l.starts_with("performing "))
                .map(str::to_string)
                .collect()
        };
        let mut v = pick(&self.out.stdout);
        v.extend(pick(&self.out.stderr));
        v
    }

    /// The last verdict line.
    pub fn verdict(&self) -> String {
        self.verdicts().pop().unwrap_or_default()
    }

    /// PAM_USER as the `pam_echo.so` line after our module in `phase` ("auth" or "account")
    /// printed it, in the `*-echo` services.
    pub fn pam_user_after(&self, phase: &str) -> Option<String> {
        let prefix = format!("{phase}: PAM_USER=");
        self.out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(str::to_string)
    }
}

// ---------------------------------------------------------------------------------------------
// The environment of one test

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Builds an [`Env`]; see [`Env::builder`].
pub struct EnvBuilder {
    name: String,
    world: World,
    config: Config,
    accounts: String,
    start: bool,
}

impl EnvBuilder {
    pub fn world(mut self, f: impl FnOnce(&mut World)) -> Self {
        f(&mut self.world);
        self
    }

    pub fn config(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    pub fn accounts(mut self, text: &str) -> Self {
        self.accounts = text.to_string();
        self
    }

    /// Prepare everything but do not start the daemon.
    pub fn no_daemon(mut self) -> Self {
        self.start = false;
        self
    }

    pub fn build(self) -> Env {
        require_system_tools();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let short: String = self.name.chars().take(20).collect();
        let dir = std::env::temp_dir().join(format!("am-{}-{n}-{short}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("pam.d")).expect("create the test directory");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
        let mut env = Env {
            socket: dir.join("accountmapd.sock"),
            config_path: dir.join("accountmap.toml"),
            accounts_path: dir.join("accounts"),
            passwd_path: dir.join("passwd"),
            group_path: dir.join("group"),
            log_path: dir.join("daemon.log"),
            pam_dir: dir.join("pam.d"),
            dir,
            daemon: None,
            config: self.config,
        };
        env.write_world(&self.world);
        env.write_accounts(&self.accounts);
        let config = env.config.clone();
        env.write_config(&config);
        env.write_standard_services();
        if self.start {
            env.start_daemon();
        }
        env
    }
}

/// One test's private world: files, PAM services and a running daemon.
pub struct Env {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub config_path: PathBuf,
    pub accounts_path: PathBuf,
    pub passwd_path: PathBuf,
    pub group_path: PathBuf,
    pub log_path: PathBuf,
    pub pam_dir: PathBuf,
    daemon: Option<Child>,
    config: Config,
}

/// Service names written for every [`Env`]:
/// - `accountmap`: auth + account + session with our module alone (the verdict is ours);
/// - `accountmap-echo`: the same followed by pam_echo, which prints PAM_USER after each phase;
/// - `accountmap-keep`: as `accountmap-echo` with `keep_user`.
pub const SVC: &str = "accountmap";
pub const SVC_ECHO: &str = "accountmap-echo";
pub const SVC_KEEP: &str = "accountmap-keep";

impl Env {
    /// A started daemon with the standard world, config and accounts file.
    pub fn new(name: &str) -> Env {
        Env::builder(name).build()
    }

    pub fn builder(name: &str) -> EnvBuilder {
        EnvBuilder {
            name: name.to_string(),
            world: World::standard(),
            config: Config::default(),
            accounts: STANDARD_ACCOUNTS.to_string(),
            start: true,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn write_world(&self, world: &World) {
        write_atomic(&self.passwd_path, &world.passwd());
        write_atomic(&self.group_path, &world.group());
    }

    pub fn write_accounts(&self, text: &str) {
        write_atomic(&self.accounts_path, text);
    }

    pub fn write_config(&mut self, config: &Config) {
        self.config = config.clone();
        let text = config.render(&self.socket, &self.accounts_path);
        write_atomic(&self.config_path, &text);
    }

    pub fn write_config_text(&self, text: &str) {
        write_atomic(&self.config_path, text);
    }

    /// A path inside the test directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// One PAM line naming our module by absolute path, with `socket=` filled in.
    pub fn module_line(&self, kind: &str, control: &str, options: &str) -> String {
        format!(
            "{kind} {control} {} socket={} {options}\n",
            pam_module().display(),
            self.socket.display()
        )
    }

    /// A service whose auth, account and session phases run only our module with `options`,
    /// and, with `echo`, print PAM_USER after auth and account.
    pub fn add_service(&self, name: &str, options: &str, echo: bool) {
        let mut text = String::new();
        text += &self.module_line("auth", "requisite", options);
        if echo {
            text += "auth optional pam_echo.so auth: PAM_USER=%u\n";
        }
        text += &self.module_line("account", "required", options);
        if echo {
            text += "account optional pam_echo.so account: PAM_USER=%u\n";
        }
        text += &self.module_line("session", "required", options);
        self.add_service_text(name, &text);
    }

    pub fn add_service_text(&self, name: &str, text: &str) {
        write_atomic(&self.pam_dir.join(name), text);
    }

    fn write_standard_services(&self) {
        self.add_service(SVC, "", false);
        self.add_service(SVC_ECHO, "", true);
        self.add_service(SVC_KEEP, "keep_user", true);
        // Silences pam_wrapper's "no default config other" and fails closed.
        self.add_service_text(
            "other",
            "auth required pam_deny.so\naccount required pam_deny.so\n",
        );
    }

    // --- the daemon -------------------------------------------------------------------------

    /// Sets the nss_wrapper variables on `cmd` (and LD_PRELOAD=libnss_wrapper.so).
    pub fn nss_wrapped(&self, cmd: &mut Command) {
        cmd.env("LD_PRELOAD", LIBNSS_WRAPPER)
            .env("NSS_WRAPPER_PASSWD", &self.passwd_path)
            .env("NSS_WRAPPER_GROUP", &self.group_path);
    }

    /// Sets nss_wrapper's variables with `libnss_accountmap.so` as its NSS module (nss_wrapper
    /// asks `files` first, then the module), pointed at this environment's socket.
    pub fn nss_module_wrapped(&self, cmd: &mut Command) {
        self.nss_wrapped(cmd);
        cmd.env("NSS_WRAPPER_MODULE_SO_PATH", nss_module())
            .env("NSS_WRAPPER_MODULE_FN_PREFIX", "accountmap")
            .env("ACCOUNTMAP_SOCKET", &self.socket)
            .env_remove(accountmap_wire::DAEMON_ENV);
    }

    /// `getent passwd KEY` through nss_wrapper with our NSS module.
    pub fn getent_passwd(&self, key: &str) -> Outcome {
        let mut cmd = Command::new("getent");
        cmd.arg("passwd").arg(key);
        self.nss_module_wrapped(&mut cmd);
        run_bounded(&mut cmd, None, COMMAND_LIMIT)
    }

    pub fn start_daemon(&mut self) {
        self.start_daemon_with(|_| {});
    }

    /// As [`Env::start_daemon`], with `extra` applied to the command line last (more
    /// environment, such as nss_wrapper's module variables).
    pub fn start_daemon_with(&mut self, extra: impl FnOnce(&mut Command)) {
        self.start_daemon_inner(&[], extra);
    }

    /// As [`Env::start_daemon`], run through `wrapper` (a program and its arguments, such as
    /// `setpriv --bounding-set=-dac_override --`), which execs the daemon.
    pub fn start_daemon_via(&mut self, wrapper: &[&str]) {
        self.start_daemon_inner(wrapper, |_| {});
    }

    /// The daemon's resident memory (VmRSS), KiB.
    pub fn daemon_rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.daemon_pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    fn start_daemon_inner(&mut self, wrapper: &[&str], extra: impl FnOnce(&mut Command)) {
        assert!(self.daemon.is_none(), "daemon already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open daemon.log");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(accountmapd());
                c
            }
            None => Command::new(accountmapd()),
        };
        cmd.arg("--config")
            .arg(&self.config_path)
            .arg("--log-stderr")
            .env_remove("ACCOUNTMAP_SOCKET")
            .env_remove("ACCOUNTMAP_CONFIG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        self.nss_wrapped(&mut cmd);
        extra(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start accountmapd: {e}"));
        self.daemon = Some(child);
        let start = Instant::now();
        loop {
            if let Some(status) = self
                .daemon
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.daemon = None;
                panic!(
                    "accountmapd exited during start-up with {status}\n--- daemon.log ---\n{}",
                    self.daemon_log()
                );
            }
            if self.daemon_answers() {
                return;
            }
            if start.elapsed() > DAEMON_START_LIMIT {
                let log = self.daemon_log();
                self.kill_daemon();
                panic!(
                    "accountmapd not ready within {DAEMON_START_LIMIT:?} on {}\n--- daemon.log ---\n{log}",
                    self.socket.display()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether a Status request over the socket gets a status reply within a second.
    pub fn daemon_answers(&self) -> bool {
        matches!(
            accountmap_wire::call(&self.socket, &Request::Status, Duration::from_secs(1)),
            Ok(Response::Status(_))
        )
    }

    pub fn daemon_pid(&self) -> Option<libc::pid_t> {
        self.daemon.as_ref().map(|c| c.id() as libc::pid_t)
    }

    /// Whether the daemon process is still running.
    pub fn daemon_alive(&mut self) -> bool {
        match self.daemon.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.daemon_pid().expect("daemon not running");
        // SAFETY: plain syscall on our own child's pid.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    pub fn sighup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// SIGTERM, then wait (bounded); returns the exit status. SIGKILL and a failed test past
    /// [`DAEMON_STOP_LIMIT`].
    pub fn stop_daemon(&mut self) -> ExitStatus {
        let mut child = self.daemon.take().expect("daemon not running");
        // SAFETY: plain syscall on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("waitpid") {
                return status;
            }
            if start.elapsed() > DAEMON_STOP_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "accountmapd did not exit within {DAEMON_STOP_LIMIT:?} of SIGTERM\n--- daemon.log ---\n{}",
                    self.daemon_log()
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL: the daemon dies without cleaning up (its socket file stays).
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn daemon_log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits (bounded) for a daemon log line that satisfies `pred`, among lines written after
    /// byte `from` of the log (see [`Env::log_len`]). Returns the line.
    pub fn wait_for_log(
        &self,
        from: usize,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let mut found = None;
        wait_until(limit, || {
            let log = self.daemon_log();
            found = log
                .get(from..)
                .unwrap_or("")
                .lines()
                .find(|l| pred(l))
                .map(str::to_string);
            found.is_some()
        });
        found
    }

    /// Current size of the daemon log, to look only at what comes next.
    pub fn log_len(&self) -> usize {
        self.daemon_log().len()
    }

    /// The decision lines (`verdict=`) of the log that mention `name="<name>"`.
    pub fn decision_lines(&self, name: &str) -> Vec<String> {
        let needle = format!("name=\"{name}\"");
        self.daemon_log()
            .lines()
            .filter(|l| l.contains("verdict=") && l.contains(&needle))
            .map(str::to_string)
            .collect()
    }

    // --- clients ----------------------------------------------------------------------------

    /// pamtester SERVICE USER OPS… under pam_wrapper and nss_wrapper, stdin from /dev/null.
    pub fn pam(&self, service: &str, user: &str, ops: &[&str]) -> PamRun {
        self.pam_with_stdin(service, user, ops, None)
    }

    pub fn pam_with_stdin(
        &self,
        service: &str,
        user: &str,
        ops: &[&str],
        stdin: Option<&[u8]>,
    ) -> PamRun {
        let mut cmd = self.pamtester_command(service, user, ops);
        PamRun {
            out: run_bounded_pam(&mut cmd, stdin, COMMAND_LIMIT),
        }
    }

    /// The pamtester command line, for tests that start it themselves.
    pub fn pamtester_command(&self, service: &str, user: &str, ops: &[&str]) -> Command {
        let mut cmd = Command::new("pamtester");
        cmd.arg(service).arg(user).args(ops);
        self.pam_wrapped(&mut cmd);
        cmd
    }

    /// Sets pam_wrapper + nss_wrapper variables on `cmd`. PAM_WRAPPER=1 always goes with the
    /// preload: without it pam_wrapper makes the process spin.
    pub fn pam_wrapped(&self, cmd: &mut Command) {
        cmd.env("LD_PRELOAD", format!("{LIBPAM_WRAPPER}:{LIBNSS_WRAPPER}"))
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", &self.pam_dir)
            .env("NSS_WRAPPER_PASSWD", &self.passwd_path)
            .env("NSS_WRAPPER_GROUP", &self.group_path)
            .env_remove("ACCOUNTMAP_SOCKET");
    }

    /// `accountmapctl --socket S ARGS…`.
    pub fn ctl(&self, args: &[&str]) -> Outcome {
        run_bounded(
            Command::new(accountmapctl())
                .arg("--socket")
                .arg(&self.socket)
                .args(args)
                .env_remove("ACCOUNTMAP_SOCKET")
                .env("ACCOUNTMAP_CONFIG", &self.config_path),
            None,
            COMMAND_LIMIT,
        )
    }

    /// `accountmapctl --socket S --json ARGS…`, its exit code and the parsed object.
    pub fn ctl_json(&self, args: &[&str]) -> (i32, serde_json::Value, Outcome) {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.ctl(&full);
        let value: serde_json::Value =
            serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
                panic!("--json output is not one JSON object ({e}):\n{}", out.all())
            });
        assert!(value.is_object(), "--json output is not an object: {value}");
        (out.code, value, out)
    }

    /// Runs PROGRAM ARGS… as uid/gid 65534 with no supplementary groups (setpriv).
    /// Requires root; the caller checks [`is_root`].
    pub fn run_unprivileged(&self, program: &Path, args: &[&str], pam: bool) -> Outcome {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program)
            .args(args)
            .current_dir("/");
        if pam {
            self.pam_wrapped(&mut cmd);
            run_bounded_pam(&mut cmd, None, COMMAND_LIMIT)
        } else {
            run_bounded(&mut cmd, None, COMMAND_LIMIT)
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            // SAFETY: plain syscall on our own child's pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let start = Instant::now();
            while start.elapsed() < DAEMON_STOP_LIMIT {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(5));
            }
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::env::var_os("ACCOUNTMAP_TESTS_KEEP").is_some() {
            eprintln!("keeping {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
        clean_stale_pam_wrapper_dirs();
    }
}

/// Writes a file through a temporary name and a rename, so a reader never sees half of it.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
}

/// Writes a file with the given mode (for secret files).
pub fn write_with_mode(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

// ---------------------------------------------------------------------------------------------
// Raw socket clients (fault tests)

/// What the daemon did with a raw frame.
#[derive(Debug)]
pub enum RawReply {
    /// It closed (or reset) the connection.
    Closed,
    /// It answered with a frame that decodes to this.
    Reply(Response),
    /// It answered with bytes that are not a valid frame.
    Garbage(Vec<u8>),
    /// Nothing within the limit: the connection is held open without an answer.
    Silent,
}

/// Connects to `socket` and sends `bytes`, then reads one reply (bounded by `limit`).
pub fn raw_exchange(socket: &Path, bytes: &[u8], limit: Duration) -> RawReply {
    let mut s = UnixStream::connect(socket).expect("connect to the daemon socket");
    s.set_write_timeout(Some(limit)).expect("timeout");
    // The daemon may close before we finish writing an oversized frame: that is fine.
    let _ = s.write_all(bytes);
    read_raw_reply(&mut s, limit)
}

/// Reads one frame from `s` within `limit` (or notices the peer closed).
pub fn read_raw_reply(s: &mut UnixStream, limit: Duration) -> RawReply {
    let deadline = Instant::now() + limit;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return RawReply::Silent;
        }
        s.set_read_timeout(Some(left)).expect("timeout");
        match s.read(&mut chunk) {
            Ok(0) => {
                return if buf.is_empty() {
                    RawReply::Closed
                } else {
                    decode_raw(&buf)
                };
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() >= 4 {
                    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                    if buf.len() >= 4 + len {
                        return decode_raw(&buf);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return RawReply::Silent;
            }
            Err(_) => return RawReply::Closed,
        }
    }
}

fn decode_raw(buf: &[u8]) -> RawReply {
    if buf.len() < 4 {
        return RawReply::Garbage(buf.to_vec());
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    match buf.get(4..4 + len) {
        Some(body) => match accountmap_wire::decode_response(body) {
            Ok(r) => RawReply::Reply(r),
            Err(_) => RawReply::Garbage(buf.to_vec()),
        },
        None => RawReply::Garbage(buf.to_vec()),
    }
}

/// A frame: 4-byte big-endian length, then `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// Makes closing `s` send a TCP RST instead of a FIN (SO_LINGER with a zero timeout): how the
/// fault-injecting proxies of the LDAP and OIDC fault tests imitate a server that resets.
pub fn reset_on_close(s: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor owned by `s`, and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
