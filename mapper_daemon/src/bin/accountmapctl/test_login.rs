//! `accountmapctl test-login NAME [--service rstudio]`: signs NAME in the way RStudio Server
//! does, step by step, and says which step would fail and why.
//!
//! RStudio's path (see the README, "RStudio Server"): it canonicalises the typed name through
//! NSS (`getpwnam(typed)` → uid and `pw_name`), checks that `getpwuid(uid).pw_name` gives the
//! same name back, runs PAM (`rserver-pam`: service `rstudio`, the local name, the password from
//! stdin, authenticate then account, a conversation that answers only hidden `password:`
//! prompts), and checks the minimum uid and the required groups itself. Here the last two are
//! checked against accountmapd's settings (`minimum uid`, `required groups` of its status),
//! which should be what `auth-minimum-user-id` and `auth-required-user-group` say too.
//!
//! Every lookup goes through this host's own NSS and PAM configuration (nsswitch.conf,
//! /etc/pam.d/SERVICE), as rserver's would: `--socket` only chooses where this command asks
//! accountmapd for its settings, not where the NSS and PAM modules connect.
//!
//! First, the `stack` step ([`super::pam_stack`]) names the PAM file libpam reads and fails
//! when it is the `other` fallback or lacks pam_accountmap.so in auth or account.
//!
//! All steps that can run are run and printed, so that one run shows every problem (RStudio
//! stops at the first). Exit 0 when all pass, 1 when one fails, 3 when accountmapd is
//! unreachable for the steps that need its settings.

use super::pam_app::{self, PAM_SUCCESS};
use super::pam_stack::{self, ModuleLine};
use accountmap::backends::system::{self, Account, Directory, SystemDirectory};
use accountmap_wire::{call, Credential, Request, Response, Verdict};
use serde_json::json;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// rserver-pam reads at most this many bytes of password from stdin and fails beyond.
pub const MAX_PASSWORD: usize = 200;

const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One printed step.
#[derive(Debug)]
pub struct Step {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    /// Further lines (the PAM conversation, hints).
    pub notes: Vec<String>,
}

impl Step {
    fn new(name: &'static str, status: Status, detail: String) -> Step {
        Step {
            name,
            status,
            detail,
            notes: Vec::new(),
        }
    }
}

/// The password as rserver-pam receives it: all of stdin (rserver writes the form's password
/// without a line break), at most [`MAX_PASSWORD`] bytes. One final `\n` (or `\r\n`) is
/// dropped so that `echo PASSWORD | accountmapctl test-login NAME` works; a `verify=proxy`
/// credential keeps its inner line break. At a terminal: one line, read with echo off.
pub fn read_password(name: &str) -> Result<Credential, String> {
    let stdin = std::io::stdin();
    let mut bytes = Vec::new();
    if stdin.is_terminal() {
        eprint!("Password for {name}: ");
        bytes = read_line_hidden()?;
        eprintln!();
    } else {
        stdin
            .lock()
            .take(MAX_PASSWORD as u64 + 3)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        if bytes.ends_with(b"\r\n") {
            bytes.truncate(bytes.len() - 2);
        } else if bytes.ends_with(b"\n") {
            bytes.truncate(bytes.len() - 1);
        }
    }
    let cred = Credential::new(bytes);
    if cred.expose().len() > MAX_PASSWORD {
        return Err(format!(
            "the password is longer than {MAX_PASSWORD} bytes: rserver-pam refuses it"
        ));
    }
    Ok(cred)
}

/// One line from the terminal on stdin with echo off; echo is restored on every path.
fn read_line_hidden() -> Result<Vec<u8>, String> {
    let fd = libc::STDIN_FILENO;
    let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: `fd` is stdin and `saved` a valid place for one termios.
    if unsafe { libc::tcgetattr(fd, saved.as_mut_ptr()) } != 0 {
        return Err("cannot read the terminal settings".into());
    }
    // SAFETY: tcgetattr succeeded and filled `saved`.
    let saved = unsafe { saved.assume_init() };
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    // SAFETY: `quiet` is a valid termios derived from the current one.
    unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) };
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    // SAFETY: restores the settings read above.
    unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &saved) };
    read.map_err(|e| format!("cannot read the password: {e}"))?;
    let mut bytes = line.into_bytes();
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    Ok(bytes)
}

/// accountmapd's policy settings, from its status.
struct Policy {
    minimum_uid: u32,
    /// Empty: no restriction.
    required_groups: Vec<String>,
}

fn policy_from_status(pairs: &[(String, String)]) -> Result<Policy, String> {
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| format!("accountmapd's status has no {key:?}"))
    };
    let minimum_uid = get("minimum uid")?
        .parse()
        .map_err(|_| "accountmapd's minimum uid is not a number".to_string())?;
    let groups = get("required groups")?;
    let required_groups = if groups == "(none)" {
        Vec::new()
    } else {
        groups.split(", ").map(str::to_string).collect()
    };
    Ok(Policy {
        minimum_uid,
        required_groups,
    })
}

/// The daemon's verdict on `name`, for hints; `None` when it cannot be asked.
fn daemon_view(socket: &Path, service: &str, name: &str) -> Option<accountmap_wire::Decision> {
    match call(
        socket,
        &Request::Resolve {
            service: service.to_string(),
            name: name.to_string(),
        },
        TIMEOUT,
    ) {
        Ok(Response::Decision(d)) => Some(d),
        _ => None,
    }
}

/// Runs every step and prints them; the exit code of SPEC's table (plus 3 for "daemon
/// unreachable where it is needed").
pub fn run(socket: &Path, name: &str, service: &str, as_json: bool) -> ExitCode {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "accountmapctl: warning: not running as root. RStudio's rserver-pam runs as root; \
             as another user, pam_unix checks only your own password and accountmapd answers \
             only about your own account, so the PAM step may fail where RStudio would not."
        );
    }
    let password = read_password(name);
    let status = match call(socket, &Request::Status, TIMEOUT) {
        Ok(Response::Status(pairs)) => policy_from_status(&pairs),
        Ok(other) => Err(format!("unexpected answer from accountmapd: {other:?}")),
        Err(e) => Err(format!("{e} ({})", socket.display())),
    };
    let unreachable = status.is_err();
    let mut steps = Vec::new();

    // 0. The PAM file libpam reads for the service, and accountmap in its auth and account
    // stacks: without them a green PAM step proves nothing about accountmap.
    steps.push(stack_step(service, &pam_stack::confdirs()));

    // 1. NSS: getpwnam(typed name), as rserver canonicalises it.
    let account = match SystemDirectory.account(name) {
        Ok(Some(account)) => {
            let what = if account.name == name {
                "a local name".to_string()
            } else {
                format!(
                    "an alias: NSS answers with the local account {:?}",
                    account.name
                )
            };
            steps.push(Step::new(
                "nss",
                Status::Pass,
                format!(
                    "getpwnam({name:?}) = {} (uid {}): {what}",
                    account.name, account.uid
                ),
            ));
            Some(account)
        }
        Ok(None) => {
            let mut step = Step::new(
                "nss",
                Status::Fail,
                format!(
                    "getpwnam({name:?}) finds nothing: RStudio says \"Incorrect or invalid username/password\""
                ),
            );
            match daemon_view(socket, service, name) {
                Some(d) if !d.account.is_empty() && d.account != name => step.notes.push(format!(
                    "accountmapd maps {name:?} to {:?} ({}), but NSS does not: is `accountmap` on the passwd line of /etc/nsswitch.conf (passwd: files accountmap), and can the NSS module reach the daemon?",
                    d.account, d.rule
                )),
                Some(d) => step.notes.push(format!("accountmapd: {} ({})", d.verdict.as_str(), d.reason)),
                None => step.notes.push("accountmapd cannot be asked either: if NAME is an alias, the NSS module needs the daemon running".into()),
            }
            steps.push(step);
            None
        }
        Err(e) => {
            steps.push(Step::new(
                "nss",
                Status::Fail,
                format!("getpwnam({name:?}) failed: {e}"),
            ));
            None
        }
    };

    // 2. The uid round trip: getpwuid(uid).pw_name must be the name getpwnam returned.
    match &account {
        None => steps.push(skipped("uid", "no account from NSS")),
        Some(a) => steps.push(match system::passwd_by_uid(a.uid) {
            Ok(Some(back)) if back.name == a.name => Step::new(
                "uid",
                Status::Pass,
                format!("getpwuid({}) = {}: the uid round trip holds", a.uid, back.name),
            ),
            Ok(Some(back)) => Step::new(
                "uid",
                Status::Fail,
                format!(
                    "getpwuid({}) = {}, not {}: RStudio refuses \"another user with the same UID\" (two passwd entries share uid {}; or an NSS source returned the alias as pw_name)",
                    a.uid, back.name, a.name, a.uid
                ),
            ),
            Ok(None) => Step::new(
                "uid",
                Status::Fail,
                format!("getpwuid({}) finds nothing: RStudio cannot map the uid back to a user", a.uid),
            ),
            Err(e) => Step::new("uid", Status::Fail, format!("getpwuid({}) failed: {e}", a.uid)),
        }),
    }

    // 3. PAM, as rserver-pam runs it, with the local name.
    match (&account, password) {
        (None, _) => steps.push(skipped("pam", "no account from NSS")),
        (Some(_), Err(why)) => steps.push(Step::new("pam", Status::Fail, why)),
        (Some(a), Ok(password)) => steps.push(pam_step(socket, service, &a.name, password)),
    }

    // 4 and 5. accountmapd's minimum uid and required groups.
    match (&account, &status) {
        (None, _) => {
            steps.push(skipped("minimum-uid", "no account from NSS"));
            steps.push(skipped("groups", "no account from NSS"));
        }
        (Some(_), Err(e)) => {
            let why = format!("cannot ask accountmapd for its settings: {e}");
            steps.push(Step::new("minimum-uid", Status::Fail, why.clone()));
            steps.push(Step::new("groups", Status::Fail, why));
        }
        (Some(a), Ok(policy)) => {
            steps.push(minimum_uid_step(a, policy.minimum_uid));
            steps.push(groups_step(a, &policy.required_groups));
        }
    }

    let passed = steps.iter().all(|s| s.status == Status::Pass);
    print(name, service, account.as_ref(), &steps, passed, as_json);
    if passed {
        ExitCode::SUCCESS
    } else if unreachable {
        ExitCode::from(3)
    } else {
        ExitCode::from(1)
    }
}

/// The `stack` step: names the file libpam reads for `service` (among `dirs`), and fails when
/// that is the `other` fallback or when its auth or account stack lacks pam_accountmap.so.
fn stack_step(service: &str, dirs: &[PathBuf]) -> Step {
    let stack = pam_stack::read(dirs, service);
    let wanted = dirs
        .first()
        .map(|d| d.join(service).display().to_string())
        .unwrap_or_default();
    let mut step = match (&stack.service_file, &stack.read) {
        (_, None) => Step::new(
            "stack",
            Status::Fail,
            format!("no PAM file {wanted} and no \"other\" to fall back to: libpam refuses every sign-in"),
        ),
        (None, Some(other)) => Step::new(
            "stack",
            Status::Fail,
            format!(
                "no PAM file {wanted}: libpam falls back to {}, and accountmap does not decide this service's sign-ins",
                other.display()
            ),
        ),
        (Some(file), Some(_)) => {
            let at = |l: &ModuleLine| format!("{}:{}", l.file.display(), l.line);
            match (stack.accountmap_in("auth"), stack.accountmap_in("account")) {
                (Some(auth), Some(account)) => Step::new(
                    "stack",
                    Status::Pass,
                    format!(
                        "read {}: pam_accountmap.so in auth ({}) and account ({})",
                        file.display(),
                        at(auth),
                        at(account)
                    ),
                ),
                // Workbench's session profile: nobody but root passes auth, and accountmap
                // decides in the account phase.
                (None, Some(account)) if stack.auth_is_root_only() => Step::new(
                    "stack",
                    Status::Pass,
                    format!(
                        "read {}: auth lets only root through (pam_rootok, pam_deny: a session profile); pam_accountmap.so in account ({})",
                        file.display(),
                        at(account)
                    ),
                ),
                (auth, account) => {
                    let missing: Vec<&str> = [("auth", auth), ("account", account)]
                        .iter()
                        .filter(|(_, l)| l.is_none())
                        .map(|(k, _)| *k)
                        .collect();
                    Step::new(
                        "stack",
                        Status::Fail,
                        format!(
                            "read {}: its {} stack does not run pam_accountmap.so (includes followed), so accountmap does not decide this sign-in",
                            file.display(),
                            missing.join(" and ")
                        ),
                    )
                }
            }
        }
    };
    if step.status == Status::Fail {
        step.notes.push(format!(
            "install /etc/pam.d/{service} from /usr/share/doc/accountmap/examples/pam.d/ (rstudio.debian or rstudio.rhel)"
        ));
    }
    step.notes.extend(stack.problems);
    step
}

fn skipped(name: &'static str, why: &str) -> Step {
    Step::new(name, Status::Skip, format!("not run: {why}"))
}

fn pam_step(socket: &Path, service: &str, user: &str, password: Credential) -> Step {
    let what = format!("pam_authenticate + pam_acct_mgmt as {user:?}, service {service:?}");
    let out = match pam_app::sign_in(service, user, password) {
        Ok(out) => out,
        Err(why) => return Step::new("pam", Status::Fail, format!("{what}: {why}")),
    };
    let mut step = if let Some((_, text)) = &out.start {
        Step::new("pam", Status::Fail, format!("pam_start failed: {text}"))
    } else if let Some(broke) = &out.broke {
        Step::new(
            "pam",
            Status::Fail,
            format!(
                "{what}: the stack sent {broke}; RStudio's conversation answers only hidden \"password:\" prompts and info text, so its sign-in fails (\"Incorrect or invalid username/password\")"
            ),
        )
    } else {
        match (&out.authenticate, &out.acct_mgmt) {
            (Some((PAM_SUCCESS, _)), Some((PAM_SUCCESS, _))) => Step::new(
                "pam",
                Status::Pass,
                format!(
                    "{what}: PAM_SUCCESS ({} password prompt(s) answered)",
                    out.answered
                ),
            ),
            (Some((PAM_SUCCESS, _)), Some((_, text))) => {
                Step::new("pam", Status::Fail, format!("pam_acct_mgmt: {text}"))
            }
            (Some((_, text)), _) => {
                Step::new("pam", Status::Fail, format!("pam_authenticate: {text}"))
            }
            (None, _) => Step::new("pam", Status::Fail, format!("{what}: did not run")),
        }
    };
    for line in &out.transcript {
        step.notes.push(format!("conversation: {line}"));
    }
    if step.status == Status::Fail && out.broke.is_none() {
        // What accountmapd thinks of the local name tells whether the refusal is its own.
        match daemon_view(socket, service, user) {
            Some(d) if d.verdict == Verdict::Allowed => step.notes.push(format!(
                "accountmapd allows {user:?}; the refusal comes from another module of /etc/pam.d/{service} (a wrong password?) or from a verify= check: see the logs"
            )),
            Some(d) => step.notes.push(format!(
                "accountmapd: {} ({})",
                d.verdict.as_str(),
                d.reason
            )),
            None => {}
        }
    }
    step
}

fn minimum_uid_step(a: &Account, minimum: u32) -> Step {
    if a.uid >= minimum {
        Step::new(
            "minimum-uid",
            Status::Pass,
            format!("uid {} >= {minimum}, accountmapd's minimum uid", a.uid),
        )
    } else {
        Step::new(
            "minimum-uid",
            Status::Fail,
            format!(
                "uid {} < {minimum}, accountmapd's minimum uid (RStudio's auth-minimum-user-id refuses it too)",
                a.uid
            ),
        )
    }
}

fn groups_step(a: &Account, required: &[String]) -> Step {
    let have = a.groups.join(", ");
    if required.is_empty() {
        return Step::new(
            "groups",
            Status::Pass,
            format!("no required groups; {} is in: {have}", a.name),
        );
    }
    match required.iter().find(|g| a.groups.contains(g)) {
        Some(g) => Step::new(
            "groups",
            Status::Pass,
            format!(
                "{} is in {g} (required: any of {})",
                a.name,
                required.join(", ")
            ),
        ),
        None => Step::new(
            "groups",
            Status::Fail,
            format!(
                "{} is in none of the required groups {} (getgrouplist: {have})",
                a.name,
                required.join(", ")
            ),
        ),
    }
}

fn print(
    name: &str,
    service: &str,
    account: Option<&Account>,
    steps: &[Step],
    passed: bool,
    as_json: bool,
) {
    if as_json {
        let list: Vec<_> = steps
            .iter()
            .map(|s| {
                json!({
                    "step": s.name,
                    "result": s.status.as_str(),
                    "detail": s.detail,
                    "notes": s.notes,
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "name": name,
                "service": service,
                "account": account.map(|a| &a.name),
                "uid": account.map(|a| a.uid),
                "alias": account.map(|a| a.name != name),
                "passed": passed,
                "steps": list,
            })
        );
        return;
    }
    println!(
        "test-login {name:?}, PAM service {service:?}: the steps of an RStudio Server sign-in"
    );
    for s in steps {
        println!("{}  {:<11}  {}", s.status.as_str(), s.name, s.detail);
        for note in &s.notes {
            println!("{:19}{note}", "");
        }
    }
    match (passed, account) {
        (true, Some(a)) => println!(
            "RESULT PASS: {name:?} signs in to RStudio Server as {} (uid {})",
            a.name, a.uid
        ),
        _ => println!("RESULT FAIL: RStudio Server would refuse {name:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(groups: &[&str], uid: u32) -> Account {
        Account {
            name: "jdoe".into(),
            uid,
            gid: uid,
            gecos: String::new(),
            dir: "/home/jdoe".into(),
            shell: "/bin/sh".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn policy_is_read_from_the_status_reply() {
        let pairs = |groups: &str| {
            vec![
                ("minimum uid".to_string(), "1000".to_string()),
                ("required groups".to_string(), groups.to_string()),
            ]
        };
        let p = policy_from_status(&pairs("rstudio-users, rstudio-admins")).unwrap();
        assert_eq!(p.minimum_uid, 1000);
        assert_eq!(p.required_groups, vec!["rstudio-users", "rstudio-admins"]);
        assert!(policy_from_status(&pairs("(none)"))
            .unwrap()
            .required_groups
            .is_empty());
        assert!(policy_from_status(&[]).is_err());
    }

    #[test]
    fn group_and_uid_steps() {
        let required = vec!["rstudio-users".to_string(), "rstudio-admins".to_string()];
        let a = account(&["jdoe", "rstudio-admins"], 1003);
        assert_eq!(groups_step(&a, &required).status, Status::Pass);
        let b = account(&["jdoe", "staff"], 1003);
        let s = groups_step(&b, &required);
        assert_eq!(s.status, Status::Fail);
        assert!(s.detail.contains("jdoe, staff"), "{}", s.detail);
        assert_eq!(groups_step(&b, &[]).status, Status::Pass);
        assert_eq!(minimum_uid_step(&a, 1003).status, Status::Pass);
        assert_eq!(minimum_uid_step(&a, 1004).status, Status::Fail);
    }
}
