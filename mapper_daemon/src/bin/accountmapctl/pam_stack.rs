//! test-login's `stack` step: which PAM file libpam reads for a service, and whether its auth
//! and account stacks run pam_accountmap.so.
//!
//! libpam reads `CONFDIR/SERVICE` and, when there is none, `CONFDIR/other` (Linux-PAM also
//! looks in `/usr/lib/pam.d` when built with a vendor directory). A host without
//! `/etc/pam.d/rstudio` (Debian) therefore runs `other` for RStudio, and accountmap is never
//! asked: a sign-in test through PAM alone would pass without it. The file is parsed as libpam
//! parses it: `#` comments, `\` line continuations, an optional leading `-` on the type,
//! bracketed controls (`[success=ok default=die]`), `@include FILE` (every line of FILE), and
//! `TYPE include FILE` / `TYPE substack FILE` (the TYPE lines of FILE), followed to any depth up
//! to libpam's limit.

use std::path::{Path, PathBuf};

/// The system's PAM directory.
pub const ETC_PAM_D: &str = "/etc/pam.d";
/// Linux-PAM's vendor directory (distributions built with `--enable-vendordir`).
pub const VENDOR_PAM_D: &str = "/usr/lib/pam.d";
/// How deep includes are followed (Linux-PAM's PAM_SUBSTACK_MAX_LEVEL is 16).
const MAX_DEPTH: usize = 16;

/// The module file names that are accountmap: the installed name, and the build artifact that
/// tests and from-source installs name by absolute path.
const MODULE_NAMES: [&str; 2] = ["pam_accountmap.so", "libpam_accountmap.so"];

/// Where libpam reads service files in this process: pam_wrapper's directory when the process
/// runs under it (`PAM_WRAPPER=1`, `PAM_WRAPPER_SERVICE_DIR`), as the test suite does; else
/// `/etc/pam.d` and then the vendor directory.
pub fn confdirs() -> Vec<PathBuf> {
    if std::env::var_os("PAM_WRAPPER").is_some_and(|v| v == "1") {
        if let Some(dir) = std::env::var_os("PAM_WRAPPER_SERVICE_DIR").filter(|d| !d.is_empty()) {
            return vec![PathBuf::from(dir)];
        }
    }
    vec![PathBuf::from(ETC_PAM_D), PathBuf::from(VENDOR_PAM_D)]
}

/// One line of a stack that names a module, after includes were followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleLine {
    pub kind: String,
    pub module: String,
    /// The file and line number it came from.
    pub file: PathBuf,
    pub line: usize,
}

/// What the step found.
#[derive(Debug)]
pub struct Stack {
    /// The service's own file, or `None` when libpam falls back to `other`.
    pub service_file: Option<PathBuf>,
    /// The file libpam reads (the service's, or `other`'s); `None` when neither exists.
    pub read: Option<PathBuf>,
    /// Every module line, includes followed.
    pub lines: Vec<ModuleLine>,
    /// Includes that could not be read.
    pub problems: Vec<String>,
}

impl Stack {
    /// The first accountmap line of stack `kind`.
    pub fn accountmap_in(&self, kind: &str) -> Option<&ModuleLine> {
        self.lines.iter().find(|l| {
            l.kind == kind
                && Path::new(&l.module)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| MODULE_NAMES.contains(&n))
        })
    }
}

impl Stack {
    /// The auth stack lets only root through (`pam_rootok.so` then `pam_deny.so`, nothing
    /// else): Workbench's session profile, which is never a way to sign in.
    pub fn auth_is_root_only(&self) -> bool {
        let auth: Vec<&str> = self
            .lines
            .iter()
            .filter(|l| l.kind == "auth")
            .map(|l| {
                Path::new(&l.module)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("")
            })
            .collect();
        auth == ["pam_rootok.so", "pam_deny.so"]
    }
}

/// The file libpam reads for `service` among `dirs`, the fallback to `other` included, and its
/// module lines.
pub fn read(dirs: &[PathBuf], service: &str) -> Stack {
    let find = |name: &str| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
    // A service name with a slash is not a file name libpam would look up.
    let service_file = if service.contains('/') || service.is_empty() {
        None
    } else {
        find(service)
    };
    let read = service_file.clone().or_else(|| find("other"));
    let mut stack = Stack {
        service_file,
        read: read.clone(),
        lines: Vec::new(),
        problems: Vec::new(),
    };
    if let Some(file) = read {
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        parse(&dir, &file, None, 0, &mut stack);
    }
    stack
}

/// The lines of `file`, joined where they end in `\`, without comments, with line numbers.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            start = i + 1;
        }
        let line = raw.split('#').next().unwrap_or("");
        match line.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                out.push((start, std::mem::take(&mut pending)));
            }
        }
    }
    if !pending.is_empty() {
        out.push((start, pending));
    }
    out
}

/// Splits `rest` into the control (a word or a bracketed list) and what follows.
fn split_control(rest: &str) -> (&str, &str) {
    let rest = rest.trim_start();
    if rest.starts_with('[') {
        match rest.find(']') {
            Some(end) => (&rest[..=end], &rest[end + 1..]),
            None => (rest, ""),
        }
    } else {
        match rest.split_once(char::is_whitespace) {
            Some((c, after)) => (c, after),
            None => (rest, ""),
        }
    }
}

/// Reads `file` into `stack`, keeping only the lines of type `only` when it is set (an
/// `include` or `substack` line).
fn parse(dir: &Path, file: &Path, only: Option<&str>, depth: usize, stack: &mut Stack) {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            stack
                .problems
                .push(format!("cannot read {}: {e}", file.display()));
            return;
        }
    };
    let include = |name: &str, only: Option<&str>, stack: &mut Stack| {
        if depth + 1 >= MAX_DEPTH {
            stack.problems.push(format!(
                "{}: includes nested deeper than {MAX_DEPTH}",
                file.display()
            ));
            return;
        }
        let path = if name.starts_with('/') {
            PathBuf::from(name)
        } else {
            dir.join(name)
        };
        parse(dir, &path, only, depth + 1, stack);
    };
    for (number, line) in logical_lines(&text) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix("@include") {
            include(name.trim(), only, stack);
            continue;
        }
        let Some((kind, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let kind = kind.trim_start_matches('-').to_ascii_lowercase();
        if only.is_some_and(|o| o != kind) {
            continue;
        }
        let (control, rest) = split_control(rest);
        let target = rest.split_whitespace().next().unwrap_or("");
        match control {
            "include" | "substack" => include(target, Some(&kind), stack),
            _ if !target.is_empty() => stack.lines.push(ModuleLine {
                kind,
                module: target.to_string(),
                file: file.to_path_buf(),
                line: number,
            }),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        d
    }

    #[test]
    fn a_missing_service_falls_back_to_other() {
        let d = dir(&[("other", "auth required pam_deny.so\n")]);
        let s = read(&[d.path().to_path_buf()], "rstudio");
        assert_eq!(s.service_file, None);
        assert_eq!(s.read, Some(d.path().join("other")));
        assert!(s.accountmap_in("auth").is_none());
        let s = read(&[d.path().join("nowhere")], "rstudio");
        assert_eq!((s.service_file, s.read), (None, None));
    }

    #[test]
    fn includes_and_substacks_are_followed_for_their_type() {
        let d = dir(&[
            (
                "rstudio",
                "# comment\n@include common-am\n-account \\\n substack am-account\n",
            ),
            (
                "common-am",
                "auth requisite /usr/lib/security/pam_accountmap.so socket=/x # trailing\n\
                 auth include common-pw\naccount [success=ok default=die] pam_permit.so\n",
            ),
            (
                "common-pw",
                "auth required pam_unix.so\naccount required pam_accountmap.so\n",
            ),
            (
                "am-account",
                "auth required pam_deny.so\naccount required libpam_accountmap.so\n",
            ),
        ]);
        let s = read(&[d.path().to_path_buf()], "rstudio");
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        let auth = s.accountmap_in("auth").expect("auth line");
        assert_eq!(
            (auth.file.clone(), auth.line),
            (d.path().join("common-am"), 1)
        );
        // common-pw's account line is not part of `auth include common-pw`.
        let account = s.accountmap_in("account").expect("account line");
        assert_eq!(account.file, d.path().join("am-account"));
        let kinds: Vec<_> = s
            .lines
            .iter()
            .map(|l| (l.kind.as_str(), l.module.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("auth", "/usr/lib/security/pam_accountmap.so"),
                ("auth", "pam_unix.so"),
                ("account", "pam_permit.so"),
                ("account", "libpam_accountmap.so"),
            ]
        );
    }

    #[test]
    fn a_stack_without_accountmap_and_a_loop_are_reported() {
        let d = dir(&[
            (
                "svc",
                "auth required pam_unix.so\naccount required pam_unix.so\n",
            ),
            ("loop", "@include loop\n"),
            ("broken", "@include missing\n"),
        ]);
        let s = read(&[d.path().to_path_buf()], "svc");
        assert!(s.accountmap_in("auth").is_none() && s.accountmap_in("account").is_none());
        let s = read(&[d.path().to_path_buf()], "loop");
        assert!(
            s.problems.iter().any(|p| p.contains("deeper")),
            "{:?}",
            s.problems
        );
        let d2 = dir(&[(
            "session",
            "auth sufficient pam_rootok.so\nauth required pam_deny.so\naccount required pam_accountmap.so\n",
        )]);
        let s = read(&[d2.path().to_path_buf()], "session");
        assert!(s.auth_is_root_only() && s.accountmap_in("account").is_some());
        let s = read(&[d.path().to_path_buf()], "broken");
        assert!(
            s.problems.iter().any(|p| p.contains("missing")),
            "{:?}",
            s.problems
        );
    }
}
