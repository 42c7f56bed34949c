//! The environment of one test: a private directory with its users, config, accounts file and
//! PAM services, and the daemon running over them (its process: [`crate::daemon`]).

use crate::artifacts::{pam_module, require_system_tools};
use crate::config::{Config, STANDARD_ACCOUNTS};
use crate::daemon::DAEMON_STOP_LIMIT;
use crate::files::write_atomic;
use crate::server::remove_unless_kept;
use crate::world::World;
use crate::wrappers::clean_stale_pam_wrapper_dirs;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

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
    pub(crate) daemon: Option<Child>,
    pub(crate) config: Config,
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

    /// One PAM line naming our module by absolute path, with `socket=` filled in. Auth lines
    /// start with `fail_delay=0`, so that the suite's many refusals do not each wait the
    /// module's 2 s failure delay; a test of that delay passes `fail_delay=…` in `options`
    /// (the last value wins).
    pub fn module_line(&self, kind: &str, control: &str, options: &str) -> String {
        let delay = if kind == "auth" { "fail_delay=0 " } else { "" };
        format!(
            "{kind} {control} {} socket={} {delay}{options}\n",
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
        remove_unless_kept(&self.dir);
        clean_stale_pam_wrapper_dirs();
    }
}
