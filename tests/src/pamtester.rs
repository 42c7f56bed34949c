//! pamtester's verdict lines and what one pamtester run printed.

use crate::command::Outcome;
use std::time::Duration;

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
/// PAM_ACCT_EXPIRED, as pamtester prints it.
pub const ACCT_EXPIRED: &str = "User account has expired";
/// PAM_NEW_AUTHTOK_REQD, as pamtester prints it.
pub const NEW_AUTHTOK_REQD: &str = "Authentication token is no longer valid; new one required";
/// PAM_USER_UNKNOWN
pub const USER_UNKNOWN: &str = "User not known to the underlying authentication module";
/// PAM_AUTHINFO_UNAVAIL
pub const AUTHINFO_UNAVAIL: &str = "Authentication service cannot retrieve authentication info";
/// A sign-in that passed: authentication, then the account phase.
pub const SIGNED_IN: &[&str] = &[AUTH_OK, ACCT_OK];

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

    /// Asserts that pamtester finished within `limit`; `what` names the case in the message.
    #[track_caller]
    pub fn assert_within(&self, limit: Duration, what: &str) {
        assert!(
            self.out.elapsed < limit,
            "{what} took {:?}, more than {limit:?}\n{}",
            self.out.elapsed,
            self.out.all()
        );
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

    /// Asserts that PAM_USER after our module in `phase` was `want` (see
    /// [`PamRun::pam_user_after`]).
    #[track_caller]
    pub fn assert_user_after(&self, phase: &str, want: &str) {
        assert_eq!(
            self.pam_user_after(phase).as_deref(),
            Some(want),
            "PAM_USER after {phase}\n{}",
            self.out.all()
        );
    }
}
