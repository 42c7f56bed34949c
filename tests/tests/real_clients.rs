//! Real clients against the built modules and a real accountmapd: OpenSSH's sshd with the `ssh`
//! client (sshpass), setuid `su` run by an unprivileged user on a pty, pamtester against
//! the system's libpam (no pam_wrapper, no nss_wrapper in the client), and JupyterHub's PAM
//! calls through python3-pamela. Each runs inside a
//! private mount namespace ([`accountmap_tests::namespace`]); the host's `/etc` is checked
//! byte for byte before and after. Root only (CI runs as root): the test is skipped otherwise.
//!
//! The PAM files are Debian's layout: `common-auth` and `common-account` as pam-auth-update
//! writes them with the shipped profile (debian/pam-configs/accountmap) enabled, and
//! `sshd`/`su` including them. Cases per client:
//!
//! | case | typed name | expected |
//! |---|---|---|
//! | local user allowed | alice | uid 1001 with rstudio-users |
//! | wrong password | alice | refused (pam_unix) |
//! | not in the required group | bob | refused, daemon logs `verdict=denied` |
//! | below the minimum uid | sysuser (500) | refused, daemon logs `verdict=denied` |
//! | unknown | nosuchuser | refused |
//! | email alias | Alice.Example@Gmail.com (accounts file) | uid 1001 with rstudio-users |
//! | proxy-header alias | UID-alice (rewrite rule) | uid 1001 with rstudio-users |
//! | denied alias | UID-mallory (mallory is in denied_users) | refused: the daemon logs `verdict=denied`, or, where the client asks NSS first (su), NSS does not answer the alias (`not answered: … denied_users`) |
//! | daemon stopped (last) | alice, right password | refused |

// Test code: a failed expectation is a panic with a message.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use accountmap_tests::namespace::{etc_fingerprint, Login, Namespace};
use accountmap_tests::{free_port, is_root, workspace_root, Env, Outcome, STANDARD_ACCOUNTS};
use std::collections::BTreeMap;
use std::fs;
use std::process::Command;
use std::time::Duration;

const CASE_LIMIT: Duration = Duration::from_secs(90);

struct Case {
    what: &'static str,
    typed: &'static str,
    password: &'static str,
    /// The local account a success signs in as; `None`: refused.
    allowed_as: Option<&'static str>,
    /// Names whose decision line must say `verdict=denied` (policy refusals).
    denied_names: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        what: "local user allowed",
        typed: "alice",
        password: "pw-alice",
        allowed_as: Some("alice"),
        denied_names: &[],
    },
    Case {
        what: "wrong password",
        typed: "alice",
        password: "not-her-password",
        allowed_as: None,
        denied_names: &[],
    },
    Case {
        what: "not in the required group",
        typed: "bob",
        password: "pw-bob",
        allowed_as: None,
        denied_names: &["bob"],
    },
    Case {
        what: "below the minimum uid",
        typed: "sysuser",
        password: "pw-sysuser",
        allowed_as: None,
        denied_names: &["sysuser"],
    },
    Case {
        what: "unknown",
        typed: "nosuchuser",
        password: "pw-nosuchuser",
        allowed_as: None,
        denied_names: &[],
    },
    Case {
        what: "email alias",
        typed: "Alice.Example@Gmail.com",
        password: "pw-alice",
        allowed_as: Some("alice"),
        denied_names: &[],
    },
    Case {
        what: "proxy-header alias",
        typed: "UID-alice",
        password: "pw-alice",
        allowed_as: Some("alice"),
        denied_names: &[],
    },
    Case {
        what: "denied alias",
        typed: "UID-mallory",
        password: "pw-mallory",
        allowed_as: None,
        denied_names: &["UID-mallory", "mallory"],
    },
];

const LOGINS: &[Login<'static>] = &[
    Login {
        name: "alice",
        password: "pw-alice",
    },
    Login {
        name: "bob",
        password: "pw-bob",
    },
    Login {
        name: "sysuser",
        password: "pw-sysuser",
    },
    Login {
        name: "mallory",
        password: "pw-mallory",
    },
];

/// The `Auth:` and `Account:` lines of the shipped pam-auth-update profile, as pam-auth-update
/// puts them in common-auth and common-account.
fn profile_lines(section: &str) -> String {
    let profile = fs::read_to_string(workspace_root().join("debian/pam-configs/accountmap"))
        .expect("read debian/pam-configs/accountmap");
    let mut out = String::new();
    let mut inside = false;
    for line in profile.lines() {
        if line.starts_with(char::is_whitespace) {
            if inside {
                out += &format!("{} {}\n", section.to_lowercase(), line.trim());
            }
        } else {
            inside = line.trim_end() == format!("{section}:");
        }
    }
    assert!(!out.is_empty(), "no {section}: lines in the profile");
    out
}

/// Debian's PAM files with the shipped profile enabled, plus the services the cases use.
fn pam_files() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(
        "common-auth".into(),
        profile_lines("Auth")
            + "auth [success=1 default=ignore] pam_unix.so nullok\n\
               auth requisite pam_deny.so\n\
               auth required pam_permit.so\n",
    );
    m.insert(
        "common-account".into(),
        profile_lines("Account")
            + "account [success=1 new_authtok_reqd=done default=ignore] pam_unix.so\n\
               account requisite pam_deny.so\n\
               account required pam_permit.so\n",
    );
    m.insert(
        "common-session".into(),
        "session required pam_permit.so\nsession required pam_unix.so\n".into(),
    );
    m.insert(
        "common-password".into(),
        "password requisite pam_deny.so\n".into(),
    );
    let common = "@include common-auth\n@include common-account\n@include common-session\n";
    m.insert("sshd".into(), common.into());
    m.insert("pamtester".into(), common.into());
    // JupyterHub's PAMAuthenticator uses service "login" by default.
    m.insert("login".into(), common.into());
    m.insert(
        "su".into(),
        format!("auth sufficient pam_rootok.so\n{common}"),
    );
    // Item 1 alone: our account phase, then pam_unix's, no keep_user anywhere.
    m.insert(
        "acct-only".into(),
        "auth required pam_deny.so\n\
         account [success=ok default=die] pam_accountmap.so\n\
         account required pam_unix.so\n"
            .into(),
    );
    m.insert(
        "other".into(),
        "auth required pam_deny.so\naccount required pam_deny.so\n\
         session required pam_deny.so\npassword required pam_deny.so\n"
            .into(),
    );
    m
}

fn setup(name: &str) -> Option<(Env, Namespace)> {
    setup_with(name, pam_files())
}

fn setup_with(name: &str, pam: BTreeMap<String, String>) -> Option<(Env, Namespace)> {
    if !is_root() {
        eprintln!("real_clients: skipped, not root (CI runs as root)");
        return None;
    }
    let env = Env::builder(name)
        .accounts(&format!(
            "{STANDARD_ACCOUNTS}Alice.Example@Gmail.com = alice\n"
        ))
        .build();
    let ns = Namespace::new(&env, LOGINS, &pam);
    Some((env, ns))
}

/// `id` output of a success: uid 1001 (alice) and rstudio-users among the groups.
fn signed_in_as_alice(out: &Outcome) -> bool {
    out.stdout.contains("uid=1001(alice)") && out.stdout.contains("(rstudio-users)")
}

/// Checks one case's outcome; returns a failure message or None.
fn judge(env: &Env, from: usize, client: &str, case: &Case, out: &Outcome) -> Option<String> {
    let log = env.daemon_log();
    let new = log.get(from..).unwrap_or("");
    let ok = match case.allowed_as {
        Some(_) => out.code == 0 && signed_in_as_alice(out),
        None => {
            out.code != 0
                && !out.stdout.contains("uid=")
                && (case.denied_names.is_empty()
                    || new.lines().any(|l| {
                        // PAM's refusal, or (for clients that canonicalise the name through
                        // NSS first, as su does) NSS not answering the denied alias at all.
                        (l.contains("verdict=denied")
                            || (l.contains("not answered") && l.contains("denied_users")))
                            && case
                                .denied_names
                                .iter()
                                .any(|n| l.contains(&format!("name=\"{n}\"")))
                    }))
        }
    };
    if ok {
        eprintln!("PASS {client:9} {:28} {}", case.what, case.typed);
        None
    } else {
        Some(format!(
            "FAIL {client} / {} ({}): {}\n--- daemon log (new) ---\n{new}",
            case.what,
            case.typed,
            out.all()
        ))
    }
}

/// The last case, run after the others with the daemon stopped: alice, right password.
const DAEMON_STOPPED: Case = Case {
    what: "daemon stopped",
    typed: "alice",
    password: "pw-alice",
    allowed_as: None,
    denied_names: &[],
};

fn run_cases(env: &mut Env, client: &str, mut one: impl FnMut(&Case) -> Outcome) {
    let before = etc_fingerprint();
    let mut failures = Vec::new();
    for case in CASES {
        let from = env.log_len();
        let out = one(case);
        if let Some(f) = judge(env, from, client, case, &out) {
            failures.push(f);
        }
    }
    env.stop_daemon();
    let from = env.log_len();
    let out = one(&DAEMON_STOPPED);
    if let Some(f) = judge(env, from, client, &DAEMON_STOPPED, &out) {
        failures.push(f);
    }
    assert!(before == etc_fingerprint(), "the host's /etc changed");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A real sshd of the namespace on a loopback port, with its own host key and config.
struct Sshd {
    port: u16,
    config: std::path::PathBuf,
    key: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Sshd {
    fn new(ns: &Namespace) -> Sshd {
        let key = ns.path("ssh_host_ed25519_key");
        let out = accountmap_tests::run_bounded(
            Command::new("/usr/bin/ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key),
            None,
            Duration::from_secs(20),
        );
        assert_eq!(out.code, 0, "ssh-keygen: {}", out.all());
        let port = free_port();
        let config = ns.path("sshd_config");
        accountmap_tests::write_atomic(
            &config,
            &format!(
                "Port {port}\nListenAddress 127.0.0.1\nPidFile none\nUsePAM yes\n\
                 KbdInteractiveAuthentication yes\nPasswordAuthentication yes\n\
                 PubkeyAuthentication no\nPermitRootLogin no\nStrictModes no\nMaxAuthTries 4\n\
                 LogLevel VERBOSE\n"
            ),
        );
        Sshd {
            port,
            config,
            key,
            log: ns.path("sshd.log"),
        }
    }

    /// Starts sshd in a fresh namespace, signs in as `user` with `ssh` (sshpass) running `id`,
    /// stops sshd; the outcome is the ssh client's.
    fn sign_in(&self, ns: &Namespace, user: &str, password: &str) -> Outcome {
        let script = format!(
            "/usr/sbin/sshd -D -e -f {cfg} -h {key} 2>>{log} &\n\
             SSHD=$!\n\
             for i in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; sleep 0.05; done\n\
             timeout 60 sshpass -p '{password}' /usr/bin/ssh -F /dev/null -p {port} \
               -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
               -o PreferredAuthentications=keyboard-interactive,password \
               -o NumberOfPasswordPrompts=1 -o ConnectTimeout=10 '{user}'@127.0.0.1 id\n\
             rc=$?\nkill $SSHD; wait $SSHD 2>/dev/null\nexit $rc\n",
            cfg = self.config.display(),
            key = self.key.display(),
            log = self.log.display(),
            port = self.port,
        );
        ns.run(&script, CASE_LIMIT)
    }
}

/// Also issue 13 item 2: the aliases sign in over ssh with the shipped pam-auth-update profile.
#[test]
fn sshd_with_the_ssh_client() {
    let Some((mut env, ns)) = setup("real-sshd") else {
        return;
    };
    let sshd = Sshd::new(&ns);
    run_cases(&mut env, "sshd", |case| {
        sshd.sign_in(&ns, case.typed, case.password)
    });
}

/// Issue 13 item 2: the shipped sshd example (etc/pam.d/sshd.accountmap; its auth and account
/// lines, with plain common-auth and common-account) signs in aliases over ssh and refuses by
/// policy. Its session lines are Debian's (pam_loginuid and friends) and are left out here.
#[test]
fn sshd_with_the_shipped_example_profile() {
    let example = fs::read_to_string(workspace_root().join("etc/pam.d/sshd.accountmap")).unwrap();
    let mut sshd_file: String = example
        .lines()
        .filter(|l| {
            l.starts_with("auth")
                || l.starts_with("account")
                || *l == "@include common-auth"
                || *l == "@include common-account"
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(sshd_file.contains("pam_accountmap.so"), "{sshd_file}");
    sshd_file += "@include common-session\n";
    let mut pam = pam_files();
    pam.insert(
        "common-auth".into(),
        "auth [success=1 default=ignore] pam_unix.so nullok\n\
         auth requisite pam_deny.so\nauth required pam_permit.so\n"
            .into(),
    );
    pam.insert(
        "common-account".into(),
        "account [success=1 new_authtok_reqd=done default=ignore] pam_unix.so\n\
         account requisite pam_deny.so\naccount required pam_permit.so\n"
            .into(),
    );
    pam.insert("sshd".into(), sshd_file);
    let Some((env, ns)) = setup_with("real-sshd-example", pam) else {
        return;
    };
    let sshd = Sshd::new(&ns);
    let before = etc_fingerprint();
    for (typed, password, allowed) in [
        ("Alice.Example@Gmail.com", "pw-alice", true),
        ("UID-alice", "pw-alice", true),
        ("bob", "pw-bob", false),
    ] {
        let out = sshd.sign_in(&ns, typed, password);
        assert_eq!(
            out.code == 0 && signed_in_as_alice(&out),
            allowed,
            "{typed}: {}\n{}",
            out.all(),
            env.daemon_log()
        );
    }
    assert!(before == etc_fingerprint(), "the host's /etc changed");
}

const SU_ON_A_PTY: &str = r#"
import os, pty, select, sys, time
name, pw = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv("/usr/bin/su", ["su", name, "-c", "id"])
buf, sent, end = b"", False, time.time() + 30
while time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.5)
    if fd in r:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        buf += data
        if not sent and b"assword" in buf:
            os.write(fd, pw.encode() + b"\n")
            sent = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(buf.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;

#[test]
fn su_run_by_an_unprivileged_user() {
    let Some((mut env, ns)) = setup("real-su") else {
        return;
    };
    let helper = ns.path("su_on_a_pty.py");
    accountmap_tests::write_atomic(&helper, SU_ON_A_PTY);
    run_cases(&mut env, "su", |case| {
        let script = format!(
            "exec setpriv --reuid=65534 --regid=65534 --clear-groups -- \
             /usr/bin/python3 {helper} '{user}' '{pw}'\n",
            helper = helper.display(),
            user = case.typed,
            pw = case.password,
        );
        ns.run(&script, CASE_LIMIT)
    });
}

#[test]
fn pamtester_against_the_real_libpam() {
    let Some((mut env, ns)) = setup("real-pamtester") else {
        return;
    };
    run_cases(&mut env, "pamtester", |case| {
        // pamtester prints no `id`: on success, `id` of the local account it signed in as.
        let script = format!(
            "printf '%s\\n' '{pw}' | timeout 60 pamtester pamtester '{user}' authenticate acct_mgmt || exit $?\n\
             exec id '{account}'\n",
            pw = case.password,
            user = case.typed,
            account = case.allowed_as.unwrap_or("nosuchuser"),
        );
        ns.run(&script, CASE_LIMIT)
    });
}

/// Issue 13 item 1: JupyterHub's `check_account(typed_name)` is an account-only transaction
/// with the alias; pam_unix after pam_accountmap must see the local account.
#[test]
fn item1_account_phase_maps_an_alias_for_pam_unix() {
    let Some((env, ns)) = setup("real-acct") else {
        return;
    };
    let before = etc_fingerprint();
    for typed in ["Alice.Example@Gmail.com", "UID-alice", "alice"] {
        let out = ns.run(
            &format!("timeout 60 pamtester acct-only '{typed}' acct_mgmt\n"),
            CASE_LIMIT,
        );
        assert_eq!(
            out.code,
            0,
            "acct_mgmt {typed}: {}\n{}",
            out.all(),
            env.daemon_log()
        );
    }
    for typed in ["UID-mallory", "bob"] {
        let out = ns.run(
            &format!("timeout 60 pamtester acct-only '{typed}' acct_mgmt\n"),
            CASE_LIMIT,
        );
        assert_ne!(
            out.code,
            0,
            "acct_mgmt {typed} must be refused: {}",
            out.all()
        );
    }
    assert!(before == etc_fingerprint(), "the host's /etc changed");
}

/// JupyterHub's PAMAuthenticator, default settings: `pamela.authenticate(name, password,
/// service="login")`, then `pamela.check_account(name, service="login")`, a second transaction
/// with the typed name (issue 13 item 1). Prints `uid=…` of `getpwnam(name)` on success as
/// JupyterHub's local spawners would use it.
const PAMELA: &str = r#"
import pamela, pwd, sys
name, pw = sys.argv[1], sys.argv[2]
try:
    pamela.authenticate(name, pw, service="login")
except pamela.PAMError as e:
    print("authenticate:", e); sys.exit(2)
try:
    pamela.check_account(name, service="login")
except pamela.PAMError as e:
    print("check_account:", e); sys.exit(3)
p = pwd.getpwnam(name)
print("uid=%d(%s)" % (p.pw_uid, p.pw_name))
"#;

#[test]
fn jupyterhub_pamela_authenticate_then_check_account() {
    let Some((env, ns)) = setup("real-pamela") else {
        return;
    };
    let helper = ns.path("pamela_login.py");
    accountmap_tests::write_atomic(&helper, PAMELA);
    let before = etc_fingerprint();
    for case in CASES {
        let out = ns.run(
            &format!(
                "exec timeout 60 /usr/bin/python3 {} '{}' '{}'\n",
                helper.display(),
                case.typed,
                case.password
            ),
            CASE_LIMIT,
        );
        let ok = match case.allowed_as {
            Some(_) => out.code == 0 && out.stdout.contains("uid=1001(alice)"),
            None => out.code != 0 && !out.stdout.contains("uid="),
        };
        assert!(
            ok,
            "pamela / {} ({}): {}\n{}",
            case.what,
            case.typed,
            out.all(),
            env.daemon_log()
        );
        eprintln!("PASS pamela    {:28} {}", case.what, case.typed);
    }
    assert!(before == etc_fingerprint(), "the host's /etc changed");
}
