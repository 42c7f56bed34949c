//! The installed package, end to end, on this machine (root only; skipped otherwise, with the
//! reason printed).
//!
//! Builds the .deb (`scripts/build-packages.sh --deb`: release build, strip, cargo-deb),
//! installs it with `dpkg -i`, creates real users and groups with useradd/groupadd, writes a
//! drop-in into `/etc/accountmap/conf.d/` and a real `/etc/pam.d/accountmap-e2e`, starts the
//! INSTALLED daemon (`/usr/sbin/accountmapd --log-stderr`; no systemd here) with the installed
//! configuration, and signs users in with pamtester against the installed PAM module; looks an
//! alias up through the installed NSS module (`getent -s accountmap`); runs
//! `accountmapctl test-login` where this version has it. Then `dpkg --remove` and
//! `dpkg --purge`, checking after each that nothing is left but what policy keeps, and that
//! `/etc/pam.d` and `/etc/nsswitch.conf` are byte for byte what they were before the install.
//!
//! Everything it creates is undone by a guard when the test fails half-way: daemon killed,
//! package purged, users, groups, drop-in and PAM service removed. It refuses to run (and says
//! why) when an `accountmap` package is already installed or a daemon already listens on the
//! installed socket: it will not replace an administrator's installation. Runs are serialised
//! by a lock file, and every command is bounded in time.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use accountmap_tests::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PACKAGE: &str = "accountmap";
const GROUP: &str = "am-e2e-users";
const ALICE: &str = "am-e2e-alice";
const BOB: &str = "am-e2e-bob";
/// Mapped to ALICE by the drop-in's rewrite rule (the daemon lower-cases it first).
const ALICE_ALIAS: &str = "E2E-Alias-Alice";
const SERVICE: &str = "accountmap-e2e";
const PAM_SERVICE_FILE: &str = "/etc/pam.d/accountmap-e2e";
const DROP_IN_DIR: &str = "/etc/accountmap/conf.d";
const DROP_IN: &str = "/etc/accountmap/conf.d/90-accountmap-e2e.toml";
const SOCKET: &str = "/run/accountmap/accountmapd.sock";
const DAEMON: &str = "/usr/sbin/accountmapd";
const CTL: &str = "/usr/bin/accountmapctl";
const GATE: &str = "/usr/sbin/accountmap-gate";
const GATE_USER: &str = "accountmap-gate";
const LOCK: &str = "/run/lock/accountmap-package-e2e.lock";

/// The release build may start from nothing on a CI machine.
const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);
/// dpkg, useradd, pamtester, getent and the CLI, each.
const STEP_LIMIT: Duration = Duration::from_secs(120);

#[test]
fn installed_deb_signs_users_in_and_purges_cleanly() {
    if !is_root() {
        eprintln!(
            "package_e2e: SKIPPED: installs a .deb, creates users and writes /etc/pam.d: needs root \
             (CI runs it as root)"
        );
        return;
    }
    let started = Instant::now();
    let _lock = lock();
    if let Some(reason) = refuse_reason() {
        panic!("package_e2e: refusing to run: {reason}");
    }
    for tool in ["/usr/bin/pamtester", "/usr/bin/dpkg", "/usr/sbin/useradd"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run scripts/install-deps.sh (make test does)"
        );
    }
    remove_leftover_accounts();
    let before = config_snapshot();

    // --- build ---------------------------------------------------------------------------
    let t = Instant::now();
    let built = run_bounded(
        Command::new(workspace_root().join("scripts/build-packages.sh"))
            .arg("--deb")
            .current_dir(workspace_root()),
        None,
        BUILD_LIMIT,
    );
    assert_eq!(
        built.code,
        0,
        "scripts/build-packages.sh --deb failed (cargo-deb missing? run scripts/install-deps.sh)\n{}",
        built.all()
    );
    let deb = PathBuf::from(built.stdout.lines().last().unwrap_or_default().trim());
    assert!(deb.is_file(), "no .deb named on stdout\n{}", built.all());
    step("built", &deb.display().to_string(), t);

    let mut guard = Guard::default();
    let gate_user_before = run(Command::new("getent").args(["passwd", GATE_USER])).code == 0;

    // --- install -------------------------------------------------------------------------
    let t = Instant::now();
    guard.installed = true;
    guard.gate_user_created = !gate_user_before;
    let out = dpkg(&["-i", deb.to_str().unwrap()]);
    assert_eq!(out.code, 0, "dpkg -i\n{}", out.all());
    assert_eq!(package_status(), "install ok installed");
    let files = package_files();
    for f in [
        DAEMON,
        CTL,
        "/usr/lib/x86_64-linux-gnu/security/pam_accountmap.so",
        "/usr/lib/x86_64-linux-gnu/libnss_accountmap.so.2",
        "/usr/lib/systemd/system/accountmapd.service",
        "/etc/accountmap/accountmap.toml",
        "/etc/accountmap/accounts",
        "/usr/share/pam-configs/accountmap",
        "/usr/share/man/man8/pam_accountmap.8.gz",
        GATE,
        "/usr/lib/systemd/system/accountmap-gate.service",
        "/usr/share/man/man8/accountmap-gate.8.gz",
    ] {
        assert!(
            files.iter().any(|p| p == Path::new(f)),
            "{f} not in dpkg -L"
        );
        assert!(Path::new(f).is_file(), "{f} not installed");
    }
    assert_eq!(
        config_snapshot(),
        before,
        "installing the package changed /etc/pam.d or /etc/nsswitch.conf"
    );
    step("installed", &format!("{} files", files.len()), t);

    // The units as installed, where systemd-analyze exists (it checks the ExecStart binary
    // and, for the gate, that its User= exists).
    if Path::new("/usr/bin/systemd-analyze").exists() {
        for unit in ["accountmapd.service", "accountmap-gate.service"] {
            let out = run(Command::new("systemd-analyze")
                .arg("verify")
                .arg(format!("/usr/lib/systemd/system/{unit}")));
            assert_eq!(out.code, 0, "systemd-analyze verify {unit}\n{}", out.all());
            assert!(
                out.stderr.trim().is_empty() && out.stdout.trim().is_empty(),
                "systemd-analyze verify {unit} complained\n{}",
                out.all()
            );
        }
    }
    // The gate: its system user exists, and before any [gate] section is written it says what
    // to add (the package does not enable it).
    let out = run(Command::new("getent").args(["passwd", GATE_USER]));
    assert_eq!(
        out.code,
        0,
        "postinst did not create {GATE_USER}\n{}",
        out.all()
    );
    let out = run(Command::new(GATE).arg("--check"));
    assert_eq!(
        out.code,
        2,
        "accountmap-gate --check without [gate]\n{}",
        out.all()
    );
    assert!(
        out.stderr.contains("no [gate] section"),
        "accountmap-gate --check without [gate]\n{}",
        out.all()
    );
    assert!(
        !Path::new("/etc/systemd/system/multi-user.target.wants/accountmap-gate.service").exists(),
        "the package enabled accountmap-gate.service"
    );
    // Valid as shipped.
    let out = run(Command::new(DAEMON)
        .arg("--check")
        .env_remove("ACCOUNTMAP_CONFIG"));
    assert_eq!(
        out.code,
        0,
        "accountmapd --check of the shipped config\n{}",
        out.all()
    );

    // --- users, policy, PAM service ---------------------------------------------------------
    let t = Instant::now();
    guard.accounts = true;
    must(Command::new("groupadd").arg(GROUP));
    must(Command::new("useradd").args(["-M", "-s", "/usr/sbin/nologin", "-G", GROUP, ALICE]));
    must(Command::new("useradd").args(["-M", "-s", "/usr/sbin/nologin", BOB]));
    let alice_uid = uid_of(ALICE);
    assert!(
        alice_uid >= 1000,
        "useradd gave {ALICE} uid {alice_uid}, below the default minimum uid"
    );

    guard.files = true;
    fs::create_dir_all(DROP_IN_DIR).unwrap();
    fs::write(
        DROP_IN,
        format!(
            "# written by tests/tests/package_e2e.rs; removed when it ends\n\
             [access]\nrequired_groups = [\"{GROUP}\"]\n\n\
             [mapping]\nrewrite = ['^e2e-alias-([a-z]+)$ am-e2e-$1']\n"
        ),
    )
    .unwrap();
    fs::write(
        PAM_SERVICE_FILE,
        "# written by tests/tests/package_e2e.rs; removed when it ends\n\
         auth     requisite  pam_accountmap.so\n\
         auth     required   pam_permit.so\n\
         account  required   pam_accountmap.so\n",
    )
    .unwrap();
    let out = run(Command::new(CTL)
        .arg("check-config")
        .env_remove("ACCOUNTMAP_CONFIG"));
    assert_eq!(out.code, 0, "accountmapctl check-config\n{}", out.all());
    step("users, drop-in and PAM service", "", t);

    // --- the installed daemon ---------------------------------------------------------------
    let t = Instant::now();
    let log =
        std::env::temp_dir().join(format!("accountmap-package-e2e.{}.log", std::process::id()));
    guard.log = Some(log.clone());
    // As systemd would run it (Type=notify): READY=1 must come only once the socket answers.
    let notify_path = std::env::temp_dir().join(format!(
        "accountmap-package-e2e.{}.notify",
        std::process::id()
    ));
    let _ = fs::remove_file(&notify_path);
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    guard.notify = Some(notify_path.clone());
    let child = Command::new(DAEMON)
        .arg("--log-stderr")
        .env_remove("ACCOUNTMAP_CONFIG")
        .env_remove("ACCOUNTMAP_SOCKET")
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .expect("start /usr/sbin/accountmapd");
    guard.daemon = Some(child);
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap_or_else(|e| {
        panic!(
            "no READY=1 from the installed daemon within 10 s ({e})\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        )
    });
    // `READY=1`, then the status line, one `KEY=value` per line (sd_notify(3)).
    let message = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(
        message.lines().next(),
        Some("READY=1"),
        "the daemon's notification: {message:?}"
    );
    let status = ctl(&["status"]);
    assert_eq!(
        status.code,
        0,
        "READY=1 was sent but the daemon does not answer\n{}",
        status.all()
    );
    assert!(guard.daemon_alive(), "the installed daemon exited");
    step(
        "daemon answers",
        "READY=1 sent, then status answers at once",
        t,
    );

    // --- sign-ins through the installed PAM module --------------------------------------------
    let t = Instant::now();
    let (code, last) = pamtester(ALICE, &["authenticate", "acct_mgmt"]);
    assert_eq!(code, 0, "{ALICE} (in {GROUP}) must be allowed: {last}");
    let (code, last) = pamtester(ALICE_ALIAS, &["authenticate", "acct_mgmt"]);
    assert_eq!(
        code, 0,
        "{ALICE_ALIAS} (rewritten to {ALICE}) must be allowed: {last}"
    );
    let (code, last) = pamtester(BOB, &["authenticate"]);
    assert_eq!(
        (code, last.as_str()),
        (1, AUTH_ERR),
        "{BOB} (not in {GROUP}): auth"
    );
    let (code, last) = pamtester(BOB, &["acct_mgmt"]);
    assert_eq!(
        (code, last.as_str()),
        (1, PERM_DENIED),
        "{BOB} (not in {GROUP}): account"
    );
    let (code, last) = pamtester("am-e2e-nobody", &["authenticate"]);
    assert_eq!((code, last.as_str()), (1, USER_UNKNOWN), "an unknown user");
    let log_text = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log_text.contains(&format!("service=\"{SERVICE}\""))
            && log_text.contains(&format!("is in none of the required groups: {GROUP}")),
        "the daemon's log lacks the decisions\n{log_text}"
    );
    step(
        "pamtester",
        "allowed, alias allowed, refused (auth and account), unknown",
        t,
    );

    // --- the installed NSS module, without touching nsswitch.conf -----------------------------
    let t = Instant::now();
    let out = run(Command::new("getent").args(["-s", "accountmap", "passwd", ALICE_ALIAS]));
    assert_eq!(
        out.code,
        0,
        "getent -s accountmap passwd {ALICE_ALIAS}\n{}",
        out.all()
    );
    let fields: Vec<&str> = out.stdout.trim_end().split(':').collect();
    assert_eq!(
        fields.first(),
        Some(&ALICE),
        "pw_name is the local name: {}",
        out.stdout
    );
    assert_eq!(
        fields.get(2),
        Some(&alice_uid.to_string().as_str()),
        "{}",
        out.stdout
    );
    step(
        "NSS",
        "getent -s accountmap passwd ALIAS gives the local entry",
        t,
    );

    // --- accountmapctl test-login, where this version has it -------------------------------------
    if ctl(&["test-login", "--help"]).code == 0 {
        let t = Instant::now();
        let ok = run_bounded(
            Command::new(CTL).args(["test-login", ALICE, "--service", SERVICE]),
            Some(b"unused-password\n"),
            STEP_LIMIT,
        );
        assert_eq!(ok.code, 0, "test-login {ALICE}\n{}", ok.all());
        let refused = run_bounded(
            Command::new(CTL).args(["test-login", BOB, "--service", SERVICE]),
            Some(b"unused-password\n"),
            STEP_LIMIT,
        );
        assert_eq!(refused.code, 1, "test-login {BOB}\n{}", refused.all());
        step("accountmapctl test-login", "alice passes, bob fails", t);
    } else {
        eprintln!(
            "package_e2e: NOTE: accountmapctl test-login is not in this version; that step is skipped"
        );
    }

    // --- stop, remove, purge --------------------------------------------------------------
    let t = Instant::now();
    let status = guard.stop_daemon();
    assert_eq!(status, Some(0), "SIGTERM: the daemon must exit 0");
    assert!(
        !Path::new(SOCKET).exists(),
        "the daemon left its socket behind"
    );
    guard.remove_files();

    let out = dpkg(&["--remove", PACKAGE]);
    assert_eq!(out.code, 0, "dpkg --remove\n{}", out.all());
    assert_eq!(package_status(), "deinstall ok config-files");
    for f in &files {
        let conffile = f.starts_with("/etc/accountmap");
        assert_eq!(
            f.exists(),
            conffile,
            "after dpkg --remove, {} {}",
            f.display(),
            if conffile {
                "(a conffile) must stay"
            } else {
                "must be gone"
            }
        );
    }
    assert!(
        !Path::new("/run/accountmap").exists(),
        "/run/accountmap left after removal"
    );

    let out = dpkg(&["--purge", PACKAGE]);
    assert_eq!(out.code, 0, "dpkg --purge\n{}", out.all());
    guard.installed = false;
    assert_eq!(package_status(), "not-installed");
    let left: Vec<&PathBuf> = files.iter().filter(|f| f.exists()).collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
    assert!(
        !Path::new("/etc/accountmap").exists(),
        "/etc/accountmap left after purge"
    );
    assert!(
        !Path::new("/etc/systemd/system/multi-user.target.wants/accountmapd.service").exists(),
        "the unit's enablement symlink left after purge"
    );
    assert_eq!(
        config_snapshot(),
        before,
        "the package's life changed /etc/pam.d or /etc/nsswitch.conf"
    );
    step("removed and purged", "nothing left", t);

    drop(guard);
    eprintln!("package_e2e: passed in {:.1?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------

/// Undoes whatever the test did, in reverse order, when it ends (also by a panic).
#[derive(Default)]
struct Guard {
    daemon: Option<Child>,
    log: Option<PathBuf>,
    notify: Option<PathBuf>,
    files: bool,
    accounts: bool,
    installed: bool,
    /// The package's postinst created the gate's system user: removed at the end (the package
    /// keeps it on purge, as Debian packages keep their users).
    gate_user_created: bool,
}

impl Guard {
    fn daemon_alive(&mut self) -> bool {
        match &mut self.daemon {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGTERM, then SIGKILL after 5 s; the exit code when it exited by itself.
    fn stop_daemon(&mut self) -> Option<i32> {
        let mut child = self.daemon.take()?;
        let pid = libc::pid_t::try_from(child.id()).ok()?;
        // SAFETY: kill on the pid of our own child, which we have not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    fn remove_files(&mut self) {
        if self.files {
            let _ = fs::remove_file(DROP_IN);
            let _ = fs::remove_file(PAM_SERVICE_FILE);
            // Only if empty: it may hold an administrator's drop-ins (it cannot here, since the
            // test refuses to run over an existing installation, but never assume).
            let _ = fs::remove_dir(DROP_IN_DIR);
            self.files = false;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        if failing {
            if let Some(log) = &self.log {
                eprintln!(
                    "package_e2e: the daemon's log:\n{}",
                    fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
        self.stop_daemon();
        self.remove_files();
        if self.installed {
            let out = dpkg_quiet(&["--purge", PACKAGE]);
            if out.code != 0 {
                eprintln!("package_e2e: cleanup: dpkg --purge failed\n{}", out.all());
            }
        }
        if self.accounts {
            remove_leftover_accounts();
        }
        if self.gate_user_created {
            let out = run(Command::new("userdel").arg(GATE_USER));
            if out.code != 0 {
                eprintln!("package_e2e: cleanup: userdel {GATE_USER}\n{}", out.all());
            }
        }
        for path in [&self.log, &self.notify].into_iter().flatten() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Why the test must not run here, if it must not.
fn refuse_reason() -> Option<String> {
    let status = package_status();
    if status != "not-installed" {
        return Some(format!(
            "a package named {PACKAGE} is on this machine ({status}); the test would replace it. \
             If it is a leftover of an interrupted run: dpkg --purge {PACKAGE}"
        ));
    }
    if std::os::unix::net::UnixStream::connect(SOCKET).is_ok() {
        return Some(format!("a daemon already listens on {SOCKET}"));
    }
    if Path::new(PAM_SERVICE_FILE).exists() {
        return Some(format!(
            "{PAM_SERVICE_FILE} exists (a leftover of an interrupted run? remove it)"
        ));
    }
    None
}

/// One run at a time on this machine (the test changes the real system).
fn lock() -> fs::File {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(LOCK)
        .unwrap_or_else(|e| panic!("open {LOCK}: {e}"));
    let got = wait_until(Duration::from_secs(30 * 60), || {
        // SAFETY: flock on a descriptor we own; non-blocking, so the wait stays bounded.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
    });
    assert!(got, "another package_e2e run held {LOCK} for 30 minutes");
    file
}

fn step(what: &str, detail: &str, since: Instant) {
    eprintln!("package_e2e: {what} ({:.1?}) {detail}", since.elapsed());
}

fn run(cmd: &mut Command) -> Outcome {
    run_bounded(cmd, None, STEP_LIMIT)
}

fn must(cmd: &mut Command) {
    let out = run(cmd);
    assert_eq!(out.code, 0, "{cmd:?}\n{}", out.all());
}

fn ctl(args: &[&str]) -> Outcome {
    run(Command::new(CTL)
        .args(args)
        .env_remove("ACCOUNTMAP_CONFIG")
        .env_remove("ACCOUNTMAP_SOCKET"))
}

/// pamtester SERVICE USER OPS: exit code and its last verdict line (without the prefix).
fn pamtester(user: &str, ops: &[&str]) -> (i32, String) {
    let out = run_bounded(
        Command::new("pamtester").arg(SERVICE).arg(user).args(ops),
        // What a user types at the password prompt: a refusal asks for it too, so that it
        // looks like a wrong password (README, "Timing").
        Some(b"not-the-password\n"),
        STEP_LIMIT,
    );
    // pamtester's verdict follows the prompt on the same line ("Password: pamtester: …").
    let last = format!("{}{}", out.stdout, out.stderr)
        .lines()
        .rev()
        .find_map(|l| l.split_once("pamtester: ").map(|(_, verdict)| verdict))
        .unwrap_or_default()
        .to_string();
    (out.code, last)
}

/// dpkg, retried while another dpkg or apt holds the lock (up to two minutes).
fn dpkg(args: &[&str]) -> Outcome {
    let start = Instant::now();
    loop {
        let out = dpkg_quiet(args);
        let locked = out.stderr.contains("lock") && out.stderr.contains("dpkg frontend");
        if out.code == 0 || !locked || start.elapsed() > Duration::from_secs(120) {
            return out;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn dpkg_quiet(args: &[&str]) -> Outcome {
    run(Command::new("dpkg")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// `dpkg-query`'s status of the package, or "not-installed".
fn package_status() -> String {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", PACKAGE]));
    if out.code != 0 {
        return "not-installed".into();
    }
    match out.stdout.trim() {
        "" | "unknown ok not-installed" => "not-installed".into(),
        s => s.to_string(),
    }
}

/// The package's files (not directories) as `dpkg -L` lists them.
fn package_files() -> Vec<PathBuf> {
    let out = run(Command::new("dpkg").args(["-L", PACKAGE]));
    assert_eq!(out.code, 0, "dpkg -L\n{}", out.all());
    out.stdout
        .lines()
        .map(PathBuf::from)
        .filter(|p| !p.is_dir() && p.is_absolute())
        .collect()
}

fn uid_of(user: &str) -> u32 {
    let out = run(Command::new("id").args(["-u", user]));
    assert_eq!(out.code, 0, "id -u {user}\n{}", out.all());
    out.stdout.trim().parse().unwrap()
}

/// Deletes this test's users and group if they exist (a previous run may have been killed).
fn remove_leftover_accounts() {
    for user in [ALICE, BOB] {
        if run(Command::new("id").arg(user)).code == 0 {
            let out = run(Command::new("userdel").arg(user));
            if out.code != 0 {
                eprintln!("package_e2e: cleanup: userdel {user}\n{}", out.all());
            }
        }
    }
    if run(Command::new("getent").args(["group", GROUP])).code == 0 {
        let out = run(Command::new("groupdel").arg(GROUP));
        if out.code != 0 {
            eprintln!("package_e2e: cleanup: groupdel {GROUP}\n{}", out.all());
        }
    }
}

/// `/etc/pam.d/*` (but this test's own service) and `/etc/nsswitch.conf`, path → content.
fn config_snapshot() -> BTreeMap<PathBuf, Vec<u8>> {
    let mut map = BTreeMap::new();
    if let Ok(entries) = fs::read_dir("/etc/pam.d") {
        for e in entries.flatten() {
            let p = e.path();
            if p != Path::new(PAM_SERVICE_FILE) && p.is_file() {
                map.insert(p.clone(), fs::read(&p).unwrap_or_default());
            }
        }
    }
    let nss = PathBuf::from("/etc/nsswitch.conf");
    map.insert(nss.clone(), fs::read(&nss).unwrap_or_default());
    map
}
