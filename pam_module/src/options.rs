//! The module arguments of a PAM service line (`pam_accountmap.so socket=… verify=ldap …`).

use accountmap_wire::Verify;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

/// The daemon timeout when no `timeout=` is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest accepted `timeout=`, in seconds.
pub const MAX_TIMEOUT_SECS: u64 = 600;

/// The failure delay the auth phase registers when no `fail_delay=` is given: pam_unix's 2 s,
/// so that a refusal by identity or policy takes as long as pam_unix's wrong password.
pub const DEFAULT_FAIL_DELAY: Duration = Duration::from_secs(2);
/// The largest accepted `fail_delay=`, in milliseconds.
pub const MAX_FAIL_DELAY_MS: u64 = 60_000;

/// How the auth phase obtains the credential that `verify=` checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Ask with one `Password: ` prompt.
    Prompt,
    /// Use the password an earlier module stored (PAM_AUTHTOK); prompt if there is none.
    TryFirst,
    /// Use only the password an earlier module stored; fail if there is none.
    UseFirst,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// `socket=`; `None` means the environment or the default.
    pub socket: Option<PathBuf>,
    pub verify: Verify,
    pub pass: Pass,
    pub keep_user: bool,
    pub timeout: Duration,
    /// `fail_delay=`: registered with pam_fail_delay on every auth call; zero registers none.
    pub fail_delay: Duration,
    pub debug: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            socket: None,
            verify: Verify::None,
            pass: Pass::Prompt,
            keep_user: false,
            timeout: DEFAULT_TIMEOUT,
            fail_delay: DEFAULT_FAIL_DELAY,
            debug: false,
        }
    }
}

/// The arguments parsed, plus what deserves a warning in the log.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    pub options: Options,
    /// Unknown arguments (ignored), as printable text.
    pub unknown: Vec<String>,
}

/// An argument whose value is invalid: a misconfiguration, so the module fails closed.
#[derive(Debug, PartialEq, Eq)]
pub struct OptionError(pub String);

/// Parses the module arguments. A repeated option takes its last value, except that
/// `use_first_pass` wins over `try_first_pass` whatever the order (it is the stricter one, and
/// pam_unix behaves the same way).
pub fn parse(args: &[&[u8]]) -> Result<Parsed, OptionError> {
    let mut options = Options::default();
    let mut unknown = Vec::new();
    let mut use_first = false;
    let mut try_first = false;
    for &arg in args {
        let mut parts = arg.splitn(2, |&b| b == b'=');
        let key = parts.next().unwrap_or_default();
        let value = parts.next();
        match (key, value) {
            (b"socket", Some(v)) => {
                if v.is_empty() {
                    return Err(OptionError("socket= needs a path".to_string()));
                }
                options.socket = Some(PathBuf::from(OsStr::from_bytes(v)));
            }
            (b"verify", Some(v)) => {
                options.verify = std::str::from_utf8(v)
                    .ok()
                    .and_then(Verify::parse)
                    .ok_or_else(|| {
                        OptionError(format!(
                            "invalid verify={:?} (expected none, ldap, oidc, device or proxy)",
                            String::from_utf8_lossy(v)
                        ))
                    })?;
            }
            (b"timeout", Some(v)) => {
                let secs = std::str::from_utf8(v)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .filter(|n| (1..=MAX_TIMEOUT_SECS).contains(n))
                    .ok_or_else(|| {
                        OptionError(format!(
                            "invalid timeout={:?} (expected whole seconds from 1 to {MAX_TIMEOUT_SECS})",
                            String::from_utf8_lossy(v)
                        ))
                    })?;
                options.timeout = Duration::from_secs(secs);
            }
            (b"fail_delay", Some(v)) => {
                let ms = std::str::from_utf8(v)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .filter(|n| *n <= MAX_FAIL_DELAY_MS)
                    .ok_or_else(|| {
                        OptionError(format!(
                            "invalid fail_delay={:?} (expected whole milliseconds from 0 to {MAX_FAIL_DELAY_MS})",
                            String::from_utf8_lossy(v)
                        ))
                    })?;
                options.fail_delay = Duration::from_millis(ms);
            }
            (b"use_first_pass", None) => use_first = true,
            (b"try_first_pass", None) => try_first = true,
            (b"keep_user", None) => options.keep_user = true,
            (b"debug", None) => options.debug = true,
            // A known flag given a value, a known key without one, or anything else.
            _ => unknown.push(String::from_utf8_lossy(arg).into_owned()),
        }
    }
    options.pass = if use_first {
        Pass::UseFirst
    } else if try_first {
        Pass::TryFirst
    } else {
        Pass::Prompt
    };
    Ok(Parsed { options, unknown })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn parse_strs(args: &[&str]) -> Result<Parsed, OptionError> {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        parse(&bytes)
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        let p = parse_strs(&[]).unwrap();
        assert_eq!(p.options, Options::default());
        assert_eq!(p.options.timeout, Duration::from_secs(10));
        assert_eq!(p.options.verify, Verify::None);
        assert!(p.unknown.is_empty());
    }

    #[rstest]
    #[case::socket(&["socket=/tmp/x.sock"], |o: &Options| o.socket == Some(PathBuf::from("/tmp/x.sock")))]
    #[case::socket_with_equals(&["socket=/tmp/a=b"], |o: &Options| o.socket == Some(PathBuf::from("/tmp/a=b")))]
    #[case::verify_none(&["verify=none"], |o: &Options| o.verify == Verify::None)]
    #[case::verify_ldap(&["verify=ldap"], |o: &Options| o.verify == Verify::Ldap)]
    #[case::verify_oidc(&["verify=oidc"], |o: &Options| o.verify == Verify::Oidc)]
    #[case::verify_device(&["verify=device"], |o: &Options| o.verify == Verify::Device)]
    #[case::verify_proxy(&["verify=proxy"], |o: &Options| o.verify == Verify::Proxy)]
    #[case::last_verify_wins(&["verify=ldap", "verify=proxy"], |o: &Options| o.verify == Verify::Proxy)]
    #[case::use_first(&["use_first_pass"], |o: &Options| o.pass == Pass::UseFirst)]
    #[case::try_first(&["try_first_pass"], |o: &Options| o.pass == Pass::TryFirst)]
    #[case::use_wins_over_try(&["use_first_pass", "try_first_pass"], |o: &Options| o.pass == Pass::UseFirst)]
    #[case::use_wins_over_try_either_order(&["try_first_pass", "use_first_pass"], |o: &Options| o.pass == Pass::UseFirst)]
    #[case::keep_user(&["keep_user"], |o: &Options| o.keep_user)]
    #[case::debug(&["debug"], |o: &Options| o.debug)]
    #[case::fail_delay_0(&["fail_delay=0"], |o: &Options| o.fail_delay.is_zero())]
    #[case::fail_delay_1500(&["fail_delay=1500"], |o: &Options| o.fail_delay == Duration::from_millis(1500))]
    #[case::fail_delay_max(&["fail_delay=60000"], |o: &Options| o.fail_delay == Duration::from_secs(60))]
    #[case::timeout_1(&["timeout=1"], |o: &Options| o.timeout == Duration::from_secs(1))]
    #[case::timeout_600(&["timeout=600"], |o: &Options| o.timeout == Duration::from_secs(600))]
    #[case::timeout_leading_zero(&["timeout=07"], |o: &Options| o.timeout == Duration::from_secs(7))]
    fn valid_options(#[case] args: &[&str], #[case] check: fn(&Options) -> bool) {
        let p = parse_strs(args).unwrap();
        assert!(check(&p.options), "{args:?} gave {:?}", p.options);
        assert!(p.unknown.is_empty());
    }

    #[rstest]
    #[case::verify_bogus("verify=bogus")]
    #[case::verify_empty("verify=")]
    #[case::verify_upper("verify=LDAP")]
    #[case::fail_delay_abc("fail_delay=abc")]
    #[case::fail_delay_empty("fail_delay=")]
    #[case::fail_delay_too_long("fail_delay=60001")]
    #[case::fail_delay_negative("fail_delay=-1")]
    #[case::timeout_abc("timeout=abc")]
    #[case::timeout_empty("timeout=")]
    #[case::timeout_zero("timeout=0")]
    #[case::timeout_601("timeout=601")]
    #[case::timeout_negative("timeout=-1")]
    #[case::timeout_plus("timeout=+5")]
    #[case::timeout_fraction("timeout=1.5")]
    #[case::timeout_space("timeout= 5")]
    #[case::timeout_huge("timeout=99999999999999999999999")]
    #[case::socket_empty("socket=")]
    fn invalid_values_are_errors(#[case] arg: &str) {
        assert!(parse_strs(&["debug", arg]).is_err(), "{arg} accepted");
    }

    #[rstest]
    #[case::unknown("frobnicate")]
    #[case::unknown_with_value("colour=blue")]
    #[case::flag_with_value("debug=1")]
    #[case::key_without_value("socket")]
    #[case::timeout_without_value("timeout")]
    #[case::wrong_case("DEBUG")]
    #[case::empty("")]
    fn unknown_arguments_are_reported_and_ignored(#[case] arg: &str) {
        let p = parse_strs(&[arg, "keep_user"]).unwrap();
        assert_eq!(p.unknown, vec![arg.to_string()]);
        assert!(p.options.keep_user);
        assert!(!p.options.debug);
    }

    #[test]
    fn non_utf8_arguments_do_not_panic() {
        let p = parse(&[b"\xff\xfe", b"socket=/tmp/\xff"]).unwrap();
        assert_eq!(p.unknown.len(), 1);
        assert!(p.options.socket.is_some());
        assert!(parse(&[b"verify=\xff"]).is_err());
        assert!(parse(&[b"timeout=\xff"]).is_err());
    }
}
