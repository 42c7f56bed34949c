//! The clients a test runs against its [`Env`]'s daemon: pamtester (under pam_wrapper and
//! nss_wrapper), `getent` through the NSS module, `accountmapctl`, and any of them as an
//! unprivileged user.

use crate::artifacts::{accountmapctl, build_dir, pam_module};
use crate::command::{run_bounded, run_bounded_pam, Outcome, COMMAND_LIMIT};
use crate::pamtester::PamRun;
use crate::Env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

impl Env {
    /// `getent passwd KEY` through nss_wrapper with our NSS module.
    pub fn getent_passwd(&self, key: &str) -> Outcome {
        let mut cmd = Command::new("getent");
        cmd.arg("passwd").arg(key);
        self.nss_module_wrapped(&mut cmd);
        run_bounded(&mut cmd, None, COMMAND_LIMIT)
    }

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

    /// A sign-in as RStudio does it: pamtester SERVICE USER authenticate acct_mgmt, with
    /// `secret` (a password, a signed date, a token) and a newline on stdin for the module's
    /// prompt.
    pub fn sign_in(&self, service: &str, user: &str, secret: &str) -> PamRun {
        self.pam_with_stdin(
            service,
            user,
            &["authenticate", "acct_mgmt"],
            Some(format!("{secret}\n").as_bytes()),
        )
    }

    /// Asserts that `run`'s verdict lines are `want`; the message names `what` and shows what
    /// pamtester printed and the daemon log.
    #[track_caller]
    pub fn assert_verdicts(&self, run: &PamRun, want: &[&str], what: &str) {
        assert_eq!(
            run.verdicts(),
            want,
            "{what}\n{}\n--- daemon.log ---\n{}",
            run.out.all(),
            self.daemon_log()
        );
    }

    /// [`Env::pam`] whose verdict lines must be `want`; the run, for further checks.
    #[track_caller]
    pub fn assert_pam(&self, service: &str, user: &str, ops: &[&str], want: &[&str]) -> PamRun {
        let run = self.pam(service, user, ops);
        self.assert_verdicts(&run, want, &format!("pamtester {service} {user:?} {ops:?}"));
        run
    }

    /// [`Env::sign_in`] whose verdict lines must be `want`; the run, for further checks.
    #[track_caller]
    pub fn assert_sign_in(&self, service: &str, user: &str, secret: &str, want: &[&str]) -> PamRun {
        let run = self.sign_in(service, user, secret);
        self.assert_verdicts(
            &run,
            want,
            &format!("sign-in of {user:?} through {service}"),
        );
        run
    }

    /// The pamtester command line, for tests that start it themselves.
    pub fn pamtester_command(&self, service: &str, user: &str, ops: &[&str]) -> Command {
        let mut cmd = Command::new("pamtester");
        cmd.arg(service).arg(user).args(ops);
        self.pam_wrapped(&mut cmd);
        cmd
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

    /// `accountmapctl proxy-sign --key-file KEY --user USER --date DATE [--body-file BODY]`.
    pub fn proxy_sign(&self, key: &Path, user: &str, date: &str, body: Option<&Path>) -> Outcome {
        let key = key.to_string_lossy();
        let mut args = vec![
            "proxy-sign",
            "--key-file",
            &key,
            "--user",
            user,
            "--date",
            date,
        ];
        let body = body.map(|b| b.to_string_lossy());
        if let Some(body) = &body {
            args.extend(["--body-file", body]);
        }
        self.ctl(&args)
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
    ///
    /// uid 65534 may not be able to read the build directory (a clone in a 0700 directory,
    /// such as a fresh `mktemp -d` or /root): built programs and the PAM module are run from
    /// world-readable copies in this environment's directory, and PAM services from a copy
    /// of the service directory whose module paths name those copies.
    pub fn run_unprivileged(&self, program: &Path, args: &[&str], pam: bool) -> Outcome {
        let program = self.world_readable(program);
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&program)
            .args(args)
            .current_dir("/");
        if pam {
            self.pam_wrapped(&mut cmd);
            cmd.env("PAM_WRAPPER_SERVICE_DIR", self.world_readable_services());
            run_bounded_pam(&mut cmd, None, COMMAND_LIMIT)
        } else {
            run_bounded(&mut cmd, None, COMMAND_LIMIT)
        }
    }

    /// `path` itself when it is outside the build directory, else a copy (mode 0755) in
    /// `DIR/world-readable/` (DIR is 0755 under the temporary directory).
    pub fn world_readable(&self, path: &Path) -> PathBuf {
        if !path.starts_with(build_dir()) {
            return path.to_path_buf();
        }
        let dir = self.dir.join("world-readable");
        fs::create_dir_all(&dir).expect("create DIR/world-readable");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
        let name = path.file_name().expect("an artifact has a file name");
        let copy = dir.join(name);
        if !copy.exists() {
            // Copied by `cp`, not by this process: a file this process held open for writing
            // would be inherited by the children other test threads fork at that moment, and
            // exec of the copy would then fail with ETXTBSY ("Text file busy") until they exec.
            let tmp = dir.join(format!(
                ".{}.{}",
                name.to_string_lossy(),
                std::process::id()
            ));
            let out = run_bounded(Command::new("cp").arg(path).arg(&tmp), None, COMMAND_LIMIT);
            assert_eq!(out.code, 0, "cp {}: {}", path.display(), out.all());
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
            fs::rename(&tmp, &copy).expect("rename the copy into place");
        }
        copy
    }

    /// A copy of the PAM service directory whose lines name the world-readable copy of the
    /// PAM module ([`Env::world_readable`]); its path.
    pub fn world_readable_services(&self) -> PathBuf {
        let module = pam_module();
        let copy = self.world_readable(&module);
        let (module, copy) = (module.to_string_lossy(), copy.to_string_lossy());
        let dir = self.dir.join("pam.d-world-readable");
        fs::create_dir_all(&dir).expect("create DIR/pam.d-world-readable");
        for entry in fs::read_dir(&self.pam_dir).expect("read DIR/pam.d") {
            let entry = entry.expect("read DIR/pam.d");
            let text = fs::read_to_string(entry.path()).expect("read a service file");
            fs::write(
                dir.join(entry.file_name()),
                text.replace(module.as_ref(), copy.as_ref()),
            )
            .expect("write a service file");
        }
        dir
    }
}
