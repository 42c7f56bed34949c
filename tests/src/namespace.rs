//! Real clients (sshd, su, pamtester against the real libpam) inside a private mount namespace.
//!
//! Every [`Namespace::run`] starts `unshare -m --propagation private` running a bash script
//! whose preamble mounts, inside that namespace only:
//! - a tmpfs on `/run`, with `/run/sshd` (sshd's privilege separation directory) and
//!   `/run/accountmap`, onto which the test's [`Env`] directory is bind-mounted: the daemon's
//!   socket is then at its installed path, `/run/accountmap/accountmapd.sock`, and the PAM and NSS
//!   modules use their defaults (no `socket=`);
//! - files the test wrote over `/etc/passwd`, `/etc/group`, `/etc/shadow` (real SHA-512 hashes
//!   from `openssl passwd -6`), `/etc/nsswitch.conf` (`passwd: files accountmap`) and the whole
//!   `/etc/pam.d` directory;
//! - a private `/etc/ld.so.cache`, built with `ldconfig -X -C FILE` (`-X`: no links are
//!   created anywhere) from the system's directories plus a directory of the test holding the
//!   built NSS module as `libnss_accountmap.so.2`. glibc's dlopen of `libnss_accountmap.so.2`
//!   looks in that cache first, setuid programs included, so the module is found without
//!   writing to `/lib` and without LD_LIBRARY_PATH (which `su` would ignore anyway).
//!
//! Nothing is written outside the test's directory: the mounts vanish with the namespace's
//! last process. The PAM files name `libpam_accountmap.so` by absolute path (the built one).
//! [`etc_fingerprint`] lets the suite assert that the host's `/etc` files did not change.

use crate::artifacts::{nss_module, pam_module};
use crate::command::{run_bounded, Outcome};
use crate::files::{write_atomic, write_with_mode};
use crate::Env;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The programs this suite drives; a missing one fails the test with an install hint.
pub const CLIENT_TOOLS: &[&str] = &[
    "/usr/bin/unshare",
    "/usr/sbin/sshd",
    "/usr/bin/ssh",
    "/usr/bin/sshpass",
    "/usr/bin/su",
    "/usr/bin/setpriv",
    "/usr/bin/pamtester",
    "/usr/bin/openssl",
    "/usr/sbin/ldconfig",
    "/usr/bin/python3",
];

/// One local user of the namespace: name and password (hashed into its `/etc/shadow`).
pub struct Login<'a> {
    pub name: &'a str,
    pub password: &'a str,
}

/// A prepared namespace: the files under `<env>/ns`, mounted by [`Namespace::run`].
pub struct Namespace {
    pub dir: PathBuf,
    env_dir: PathBuf,
}

impl Namespace {
    /// Writes the namespace's files for `env`: its users (plus sshd's privilege separation
    /// user) with `logins`' passwords, its groups, nsswitch.conf, the NSS module and its
    /// ld.so.cache, and `pam_files` (name → text; `pam_accountmap.so` is replaced by the built
    /// module's absolute path).
    pub fn new(env: &Env, logins: &[Login<'_>], pam_files: &BTreeMap<String, String>) -> Namespace {
        for tool in CLIENT_TOOLS {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: run scripts/install-deps.sh (make test does)"
            );
        }
        let dir = env.path("ns");
        fs::create_dir_all(dir.join("pam.d")).unwrap();
        fs::create_dir_all(dir.join("lib")).unwrap();

        let mut passwd = fs::read_to_string(&env.passwd_path).unwrap();
        passwd += "sshd:x:103:65534::/run/sshd:/usr/sbin/nologin\n";
        write_atomic(&dir.join("passwd"), &passwd);
        write_atomic(
            &dir.join("group"),
            &fs::read_to_string(&env.group_path).unwrap(),
        );
        let mut shadow = String::new();
        for line in passwd.lines() {
            let name = line.split(':').next().unwrap();
            let hash = match logins.iter().find(|l| l.name == name) {
                Some(l) => sha512_crypt(l.password),
                None => "*".to_string(),
            };
            shadow += &format!("{name}:{hash}:19000:0:99999:7:::\n");
        }
        write_with_mode(&dir.join("shadow"), &shadow, 0o600);
        write_atomic(
            &dir.join("nsswitch.conf"),
            "passwd: files accountmap\ngroup: files\nshadow: files\nhosts: files\n",
        );

        fs::copy(nss_module(), dir.join("lib/libnss_accountmap.so.2")).unwrap();
        write_atomic(
            &dir.join("ld.so.conf"),
            &format!(
                "include /etc/ld.so.conf.d/*.conf\n{}\n",
                dir.join("lib").display()
            ),
        );
        let out = run_bounded(
            Command::new("/usr/sbin/ldconfig")
                .arg("-X")
                .arg("-C")
                .arg(dir.join("ld.so.cache"))
                .arg("-f")
                .arg(dir.join("ld.so.conf")),
            None,
            Duration::from_secs(20),
        );
        assert_eq!(out.code, 0, "ldconfig: {}", out.all());

        let module = pam_module();
        for (name, text) in pam_files {
            let text = text.replace("pam_accountmap.so", &module.display().to_string());
            write_atomic(&dir.join("pam.d").join(name), &text);
        }
        Namespace {
            dir,
            env_dir: env.dir.clone(),
        }
    }

    /// A path inside the namespace's directory (as seen from inside and outside: it is not
    /// mounted over).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn preamble(&self) -> String {
        let ns = self.dir.display();
        let mut s = String::from("set -u\nmount -t tmpfs -o mode=0755 accountmap-test /run\n");
        s += "mkdir -m 0755 /run/sshd /run/accountmap\n";
        s += &format!("mount --bind {} /run/accountmap\n", self.env_dir.display());
        for f in ["passwd", "group", "shadow", "nsswitch.conf", "ld.so.cache"] {
            s += &format!("mount --bind {ns}/{f} /etc/{f}\n");
        }
        s += &format!("mount --bind {ns}/pam.d /etc/pam.d\n");
        s
    }

    /// Runs `script` (bash) in a fresh private mount namespace after the preamble; the whole
    /// run is bounded by `limit`.
    pub fn run(&self, script: &str, limit: Duration) -> Outcome {
        let full = format!("{}{script}", self.preamble());
        run_bounded(
            Command::new("/usr/bin/unshare")
                .args(["-m", "--propagation", "private", "--", "/bin/bash", "-c"])
                .arg(full)
                .env_remove("ACCOUNTMAP_SOCKET")
                .env_remove("LD_PRELOAD"),
            None,
            limit,
        )
    }
}

/// `openssl passwd -6` of `password` (a fresh random salt).
pub fn sha512_crypt(password: &str) -> String {
    let out = run_bounded(
        Command::new("/usr/bin/openssl").args(["passwd", "-6", "-stdin"]),
        Some(format!("{password}\n").as_bytes()),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, 0, "openssl passwd: {}", out.all());
    out.stdout.trim().to_string()
}

/// The contents of the host files the suite must leave alone: `/etc/passwd`, `/etc/group`,
/// `/etc/shadow`, `/etc/nsswitch.conf`, `/etc/ld.so.cache` and every file under `/etc/pam.d`.
pub fn etc_fingerprint() -> BTreeMap<PathBuf, Vec<u8>> {
    let mut map = BTreeMap::new();
    for f in [
        "/etc/passwd",
        "/etc/group",
        "/etc/shadow",
        "/etc/nsswitch.conf",
        "/etc/ld.so.cache",
    ] {
        map.insert(PathBuf::from(f), fs::read(f).unwrap_or_default());
    }
    if let Ok(entries) = fs::read_dir("/etc/pam.d") {
        for e in entries.flatten() {
            map.insert(e.path(), fs::read(e.path()).unwrap_or_default());
        }
    }
    map
}
