//! The flow of the module against a test double of the PAM handle and of the daemon.

use super::*;
use pam_ffi::{PAM_ABORT, PAM_BUF_ERR, PAM_CONV_ERR, PAM_IGNORE, PAM_SYSTEM_ERR, UNKNOWN_CODE};
use rstest::rstest;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;

const SECRET: &[u8] = b"hunter2-s3cret";

/// A PAM handle in memory that records what the module does to it.
struct FakePam {
    user: Option<Vec<u8>>,
    service: Option<Vec<u8>>,
    rhost: Option<Vec<u8>>,
    authtok: Option<Vec<u8>>,
    /// Answers of the conversation, one per prompt; running out is a conversation error.
    answers: VecDeque<Result<Vec<u8>, Code>>,
    prompts: usize,
    /// PAM_TEXT_INFO messages shown.
    infos: Vec<String>,
    user_sets: Vec<String>,
    authtok_sets: Vec<Vec<u8>>,
    cache: Option<CachedDecision>,
    cache_stores: Vec<Option<CachedDecision>>,
    fail_set_user: Option<Code>,
    fail_store: Option<Code>,
    /// Failure delays registered, in order.
    delays: Vec<Duration>,
    silent: Option<Instant>,
    logs: RefCell<Vec<(Level, String)>>,
}

impl FakePam {
    fn new(user: &str) -> FakePam {
        FakePam {
            user: Some(user.as_bytes().to_vec()),
            service: Some(b"rstudio".to_vec()),
            rhost: Some(b"10.0.0.7".to_vec()),
            authtok: None,
            answers: VecDeque::new(),
            prompts: 0,
            infos: Vec::new(),
            user_sets: Vec::new(),
            authtok_sets: Vec::new(),
            cache: None,
            cache_stores: Vec::new(),
            fail_set_user: None,
            fail_store: None,
            delays: Vec::new(),
            silent: None,
            logs: RefCell::new(Vec::new()),
        }
    }

    fn answering(mut self, answer: &[u8]) -> FakePam {
        self.answers.push_back(Ok(answer.to_vec()));
        self
    }

    fn with_authtok(mut self, tok: &[u8]) -> FakePam {
        self.authtok = Some(tok.to_vec());
        self
    }

    fn current_user(&self) -> Option<String> {
        self.user
            .as_ref()
            .map(|u| String::from_utf8_lossy(u).into_owned())
    }

    fn logged(&self, level: Level, needle: &str) -> bool {
        self.logs
            .borrow()
            .iter()
            .any(|(l, m)| *l == level && m.contains(needle))
    }

    fn count(&self, level: Level) -> usize {
        self.logs
            .borrow()
            .iter()
            .filter(|(l, _)| *l == level)
            .count()
    }

    /// No log line may ever carry the password.
    fn assert_no_secret_logged(&self) {
        let secret = String::from_utf8_lossy(SECRET);
        for (_, m) in self.logs.borrow().iter() {
            assert!(!m.contains(&*secret), "password in log: {m}");
        }
    }
}

impl PamHandle for FakePam {
    fn item(&self, which: Item) -> Result<Option<Vec<u8>>, Code> {
        Ok(match which {
            Item::Service => self.service.clone(),
            Item::User => self.user.clone(),
            Item::Rhost => self.rhost.clone(),
        })
    }

    fn set_user(&mut self, user: &str) -> Result<(), Code> {
        if let Some(code) = self.fail_set_user {
            return Err(code);
        }
        self.user_sets.push(user.to_string());
        self.user = Some(user.as_bytes().to_vec());
        Ok(())
    }

    fn authtok(&self) -> Result<Option<Credential>, Code> {
        Ok(self.authtok.clone().map(Credential::new))
    }

    fn set_authtok(&mut self, cred: &Credential) -> Result<(), Code> {
        assert!(!cred.expose().contains(&0));
        self.authtok_sets.push(cred.expose().to_vec());
        self.authtok = Some(cred.expose().to_vec());
        Ok(())
    }

    fn prompt_password(&mut self) -> Result<Credential, Code> {
        self.prompts += 1;
        match self.answers.pop_front() {
            Some(Ok(b)) => Ok(Credential::new(b)),
            Some(Err(code)) => Err(code),
            None => Err(PAM_CONV_ERR),
        }
    }

    fn text_info(&mut self, msg: &str) -> Result<(), Code> {
        self.infos.push(msg.to_string());
        Ok(())
    }

    fn log(&self, level: Level, msg: &str) {
        self.logs.borrow_mut().push((level, msg.to_string()));
    }

    fn cached_decision(&self) -> Option<CachedDecision> {
        self.cache.clone()
    }

    fn store_decision(&mut self, decision: Option<CachedDecision>) -> Result<(), Code> {
        if let Some(code) = self.fail_store {
            return Err(code);
        }
        self.cache_stores.push(decision.clone());
        self.cache = decision;
        Ok(())
    }

    fn fail_delay(&mut self, delay: Duration) -> Result<(), Code> {
        self.delays.push(delay);
        Ok(())
    }

    fn daemon_silent_since(&self) -> Option<Instant> {
        self.silent
    }

    fn note_daemon_silent(&mut self, at: Instant) -> Result<(), Code> {
        self.silent = Some(at);
        Ok(())
    }
}

/// What the fake daemon answers.
#[derive(Clone)]
enum Answer {
    Verdict(Verdict, &'static str),
    Error(&'static str),
    Status,
    Flushed,
    BadPath,
    Refused,
    NoSocket,
    Timeout,
    Untrusted,
    Io,
    Protocol,
}

/// A daemon double: records every request, socket and timeout it is given.
struct FakeDaemon {
    /// What its decision table holds for any name (`None`: nothing).
    table: Option<Decision>,
    /// The names the table was asked about.
    table_asked: Vec<String>,
    answer: Answer,
    calls: Vec<(PathBuf, Request, Duration)>,
    /// Answers given first, in order, before `answer` (the device flow's exchanges).
    script: VecDeque<Response>,
    /// The pauses `wait` was asked for (no real sleeping in tests).
    waits: Vec<Duration>,
}

impl FakeDaemon {
    fn new(answer: Answer) -> FakeDaemon {
        FakeDaemon {
            table: None,
            table_asked: Vec::new(),
            answer,
            calls: Vec::new(),
            script: VecDeque::new(),
            waits: Vec::new(),
        }
    }

    fn allowing(account: &'static str) -> FakeDaemon {
        FakeDaemon::new(Answer::Verdict(Verdict::Allowed, account))
    }

    fn pam_request(&self, i: usize) -> &PamRequest {
        match &self.calls[i].1 {
            Request::Pam(p) => p,
            other => panic!("not a PAM request: {other:?}"),
        }
    }
}

impl Daemon for FakeDaemon {
    fn wait(&mut self, d: Duration) {
        self.waits.push(d);
    }

    fn decision_table(&mut self, _socket: &Path, user: &str) -> Option<Decision> {
        self.table_asked.push(user.to_string());
        self.table.clone()
    }

    fn call(
        &mut self,
        socket: &Path,
        req: &Request,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        self.calls
            .push((socket.to_path_buf(), req.clone(), timeout));
        if let Some(r) = self.script.pop_front() {
            return Ok(r);
        }
        match self.answer.clone() {
            Answer::Verdict(verdict, account) => Ok(Response::Decision(Decision {
                verdict,
                account: account.to_string(),
                uid: Some(1001),
                reason: "because the test says so".to_string(),
                rule: "identity".to_string(),
                groups: vec![],
            })),
            Answer::Error(m) => Ok(Response::Error(m.to_string())),
            Answer::Status => Ok(Response::Status(vec![])),
            Answer::Flushed => Ok(Response::Flushed(3)),
            Answer::BadPath => Err(ClientError::BadPath),
            Answer::Refused => Err(ClientError::Connect(io::Error::from(
                io::ErrorKind::ConnectionRefused,
            ))),
            Answer::NoSocket => Err(ClientError::Connect(io::Error::from(
                io::ErrorKind::NotFound,
            ))),
            Answer::Timeout => Err(ClientError::Timeout),
            Answer::Untrusted => Err(ClientError::UntrustedPeer(4242)),
            Answer::Io => Err(ClientError::Io(io::Error::from(
                io::ErrorKind::UnexpectedEof,
            ))),
            Answer::Protocol => Err(ClientError::Protocol(
                accountmap_wire::DecodeError::Truncated,
            )),
        }
    }
}

fn auth(h: &mut FakePam, args: &[&str], d: &mut FakeDaemon) -> Code {
    auth_env(h, args, &Env::default(), d)
}

fn auth_env(h: &mut FakePam, args: &[&str], env: &Env, d: &mut FakeDaemon) -> Code {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let code = authenticate(h, &args, env, d);
    h.assert_no_secret_logged();
    code
}

fn account(h: &mut FakePam, args: &[&str], d: &mut FakeDaemon) -> Code {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let code = acct_mgmt(h, &args, &Env::default(), d);
    h.assert_no_secret_logged();
    code
}

fn run(phase: Phase, h: &mut FakePam, args: &[&str], d: &mut FakeDaemon) -> Code {
    match phase {
        Phase::Auth => auth(h, args, d),
        Phase::Account => account(h, args, d),
    }
}

// ---------------------------------------------------------------- the return-code table

#[rstest]
#[case::allowed_auth(Verdict::Allowed, Phase::Auth, PAM_SUCCESS)]
#[case::allowed_account(Verdict::Allowed, Phase::Account, PAM_SUCCESS)]
#[case::unknown_auth(Verdict::UserUnknown, Phase::Auth, PAM_USER_UNKNOWN)]
#[case::unknown_account(Verdict::UserUnknown, Phase::Account, PAM_USER_UNKNOWN)]
#[case::denied_auth(Verdict::PolicyDenied, Phase::Auth, PAM_AUTH_ERR)]
#[case::denied_account(Verdict::PolicyDenied, Phase::Account, PAM_PERM_DENIED)]
#[case::auth_failed_auth(Verdict::AuthFailed, Phase::Auth, PAM_AUTH_ERR)]
#[case::auth_failed_account(Verdict::AuthFailed, Phase::Account, PAM_PERM_DENIED)]
#[case::unavailable_auth(Verdict::Unavailable, Phase::Auth, PAM_AUTHINFO_UNAVAIL)]
#[case::unavailable_account(Verdict::Unavailable, Phase::Account, PAM_AUTHINFO_UNAVAIL)]
#[case::bad_input_auth(Verdict::BadInput, Phase::Auth, PAM_AUTH_ERR)]
#[case::bad_input_account(Verdict::BadInput, Phase::Account, PAM_USER_UNKNOWN)]
#[case::expired_auth(Verdict::AccountExpired, Phase::Auth, PAM_AUTH_ERR)]
#[case::expired_account(Verdict::AccountExpired, Phase::Account, PAM_ACCT_EXPIRED)]
#[case::must_change_auth(Verdict::NewAuthtokRequired, Phase::Auth, PAM_AUTH_ERR)]
#[case::must_change_account(Verdict::NewAuthtokRequired, Phase::Account, PAM_NEW_AUTHTOK_REQD)]
fn verdicts_map_to_the_spec_table(
    #[case] verdict: Verdict,
    #[case] phase: Phase,
    #[case] want: Code,
    #[values(&[][..], &["verify=ldap"][..], &["debug"][..], &["keep_user", "verify=proxy"][..])]
    args: &[&str],
) {
    assert_eq!(code_for(verdict, phase), want);
    let mut h = FakePam::new("jdoe").answering(SECRET);
    let mut d = FakeDaemon::new(Answer::Verdict(verdict, "jdoe"));
    assert_eq!(run(phase, &mut h, args, &mut d), want);
    assert_eq!(d.calls.len(), 1);
    // A refusal is the daemon's to log; the module says nothing above debug about it.
    assert_eq!(h.count(Level::Err), 0, "{:?}", h.logs);
    let debug = args.contains(&"debug");
    assert_eq!(h.logged(Level::Debug, "because the test says so"), debug);
    if !debug {
        assert_eq!(h.count(Level::Debug), 0);
    }
}

#[rstest]
fn failures_are_never_ignore_nor_success(
    #[values(
        Verdict::UserUnknown,
        Verdict::PolicyDenied,
        Verdict::AuthFailed,
        Verdict::Unavailable,
        Verdict::BadInput,
        Verdict::AccountExpired,
        Verdict::NewAuthtokRequired
    )]
    verdict: Verdict,
    #[values(Phase::Auth, Phase::Account)] phase: Phase,
) {
    let code = code_for(verdict, phase);
    assert_ne!(code, PAM_SUCCESS);
    assert_ne!(code, PAM_IGNORE);
}

#[rstest]
fn daemon_unreachable_is_authinfo_unavail_and_logged(
    #[values(
        Answer::BadPath,
        Answer::Refused,
        Answer::NoSocket,
        Answer::Timeout,
        Answer::Untrusted,
        Answer::Io,
        Answer::Protocol,
        Answer::Error("unsupported protocol version"),
        Answer::Status,
        Answer::Flushed
    )]
    answer: Answer,
    #[values(Phase::Auth, Phase::Account)] phase: Phase,
) {
    let mut h = FakePam::new("jdoe");
    let mut d = FakeDaemon::new(answer);
    assert_eq!(run(phase, &mut h, &[], &mut d), PAM_AUTHINFO_UNAVAIL);
    // Always logged at LOG_ERR, debug or not: the daemon never saw the request.
    assert_eq!(h.count(Level::Err), 1, "{:?}", h.logs);
    assert!(h.logged(Level::Err, "PAM_AUTHINFO_UNAVAIL"));
    assert!(h.user_sets.is_empty());
    assert!(h.cache.is_none());
}

#[test]
fn client_errors_are_described_in_the_log() {
    let cases = [
        (Answer::Timeout, "did not answer in time"),
        (Answer::NoSocket, "cannot connect"),
        (Answer::Untrusted, "4242"),
        (Answer::Error("go away"), "go away"),
        (Answer::Status, "unexpected answer"),
    ];
    for (answer, needle) in cases {
        let mut h = FakePam::new("jdoe");
        let mut d = FakeDaemon::new(answer);
        assert_eq!(
            auth(&mut h, &["socket=/x/y.sock"], &mut d),
            PAM_AUTHINFO_UNAVAIL
        );
        assert!(h.logged(Level::Err, needle), "{needle}: {:?}", h.logs);
        assert!(h.logged(Level::Err, "/x/y.sock"), "{:?}", h.logs);
    }
}

// ---------------------------------------------------------------- options

#[rstest]
#[case::verify_bogus("verify=bogus")]
#[case::timeout_abc("timeout=abc")]
#[case::timeout_zero("timeout=0")]
#[case::timeout_too_long("timeout=601")]
#[case::socket_empty("socket=")]
fn invalid_option_values_fail_closed(
    #[case] arg: &str,
    #[values(Phase::Auth, Phase::Account)] phase: Phase,
) {
    let mut h = FakePam::new("jdoe").answering(SECRET);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(run(phase, &mut h, &[arg], &mut d), PAM_SERVICE_ERR);
    assert!(d.calls.is_empty());
    assert_eq!(h.prompts, 0);
    assert!(h.logged(Level::Err, "misconfigured"), "{:?}", h.logs);
}

#[rstest]
fn unknown_options_are_warned_about_and_ignored(
    #[values(Phase::Auth, Phase::Account)] phase: Phase,
) {
    let mut h = FakePam::new("jdoe");
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(
        run(phase, &mut h, &["nullok", "frob=1"], &mut d),
        PAM_SUCCESS
    );
    assert!(h.logged(Level::Warning, "\"nullok\""));
    assert!(h.logged(Level::Warning, "\"frob=1\""));
    assert_eq!(h.count(Level::Warning), 2);
}

#[test]
fn socket_comes_from_the_option_then_the_environment_then_the_default() {
    let env = Env {
        socket: Some(PathBuf::from("/env/sock")),
    };
    let mut d = FakeDaemon::allowing("jdoe");
    auth_env(
        &mut FakePam::new("jdoe"),
        &["socket=/opt/sock"],
        &env,
        &mut d,
    );
    auth_env(&mut FakePam::new("jdoe"), &[], &env, &mut d);
    auth_env(&mut FakePam::new("jdoe"), &[], &Env::default(), &mut d);
    let sockets: Vec<&Path> = d.calls.iter().map(|c| c.0.as_path()).collect();
    assert_eq!(
        sockets,
        [
            Path::new("/opt/sock"),
            Path::new("/env/sock"),
            Path::new(DEFAULT_SOCKET)
        ]
    );
}

#[rstest]
#[case(&[], 10)]
#[case(&["timeout=1"], 1)]
#[case(&["timeout=600"], 600)]
fn timeout_is_passed_to_the_client(#[case] args: &[&str], #[case] secs: u64) {
    let mut d = FakeDaemon::allowing("jdoe");
    auth(&mut FakePam::new("jdoe"), args, &mut d);
    account(&mut FakePam::new("jdoe"), args, &mut d);
    assert_eq!(d.calls[0].2, Duration::from_secs(secs));
    assert_eq!(d.calls[1].2, Duration::from_secs(secs));
}

// ---------------------------------------------------------------- the request

#[test]
fn the_auth_request_carries_service_user_rhost_verify_and_credential() {
    let mut h = FakePam::new("John.Doe@Company.com").answering(SECRET);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &["verify=ldap"], &mut d), PAM_SUCCESS);
    let p = d.pam_request(0);
    assert_eq!(p.service, "rstudio");
    assert_eq!(p.phase, Phase::Auth);
    assert_eq!(p.user, "John.Doe@Company.com");
    assert_eq!(p.rhost, "10.0.0.7");
    assert_eq!(p.verify, Verify::Ldap);
    assert_eq!(p.credential.as_ref().map(|c| c.expose()), Some(SECRET));
}

#[test]
fn the_account_request_has_no_credential() {
    let mut h = FakePam::new("jdoe").with_authtok(SECRET);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(
        account(&mut h, &["verify=ldap", "use_first_pass"], &mut d),
        PAM_SUCCESS
    );
    let p = d.pam_request(0);
    assert_eq!(p.phase, Phase::Account);
    assert!(p.credential.is_none());
    assert_eq!(h.prompts, 0);
}

#[test]
fn missing_service_and_rhost_are_empty() {
    let mut h = FakePam::new("jdoe");
    h.service = None;
    h.rhost = None;
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &[], &mut d), PAM_SUCCESS);
    assert_eq!(d.pam_request(0).service, "");
    assert_eq!(d.pam_request(0).rhost, "");
}

#[test]
fn odd_rhost_is_made_printable_and_cut_not_refused() {
    let mut h = FakePam::new("jdoe");
    h.rhost = Some([&b"host\xff"[..], &"é".repeat(300).into_bytes()].concat());
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &[], &mut d), PAM_SUCCESS);
    let rhost = &d.pam_request(0).rhost;
    assert!(rhost.len() <= MAX_NAME_LEN);
    assert!(rhost.starts_with("host\u{fffd}é"));
}

#[rstest]
fn verify_none_never_prompts_nor_sends_a_credential(
    #[values(&[][..], &["try_first_pass"][..], &["use_first_pass"][..], &["verify=none"][..])]
    args: &[&str],
) {
    let mut h = FakePam::new("jdoe").answering(SECRET).with_authtok(SECRET);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, args, &mut d), PAM_SUCCESS);
    assert_eq!(h.prompts, 0);
    assert!(d.pam_request(0).credential.is_none());
    assert_eq!(d.pam_request(0).verify, Verify::None);
}

// ---------------------------------------------------------------- the user

#[rstest]
fn no_user_is_user_unknown(#[values(Phase::Auth, Phase::Account)] phase: Phase) {
    let mut h = FakePam::new("x").answering(SECRET);
    h.user = None;
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(
        run(phase, &mut h, &["verify=ldap"], &mut d),
        PAM_USER_UNKNOWN
    );
    assert!(d.calls.is_empty());
    assert_eq!(h.prompts, 0);
    assert!(h.logged(Level::Err, "PAM_USER is not set"));
}

#[rstest]
#[case::empty(b"".to_vec())]
#[case::too_long(vec![b'a'; MAX_NAME_LEN + 1])]
#[case::nul(b"jdoe\0root".to_vec())]
#[case::not_utf8(b"j\xffdoe".to_vec())]
fn unusable_user_names_are_refused_without_the_daemon(
    #[case] name: Vec<u8>,
    #[values(Phase::Auth, Phase::Account)] phase: Phase,
) {
    let mut h = FakePam::new("x").answering(SECRET);
    h.user = Some(name);
    let mut d = FakeDaemon::allowing("jdoe");
    let want = match phase {
        Phase::Auth => PAM_AUTH_ERR,
        Phase::Account => PAM_USER_UNKNOWN,
    };
    assert_eq!(run(phase, &mut h, &["verify=ldap"], &mut d), want);
    assert!(d.calls.is_empty());
    assert_eq!(h.prompts, 0);
    assert!(h.logged(Level::Notice, "unusable user name"));
}

#[test]
fn a_name_of_exactly_the_maximum_length_is_sent() {
    let name = "a".repeat(MAX_NAME_LEN);
    let mut h = FakePam::new(&name);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &[], &mut d), PAM_SUCCESS);
    assert_eq!(d.pam_request(0).user, name);
}

// ---------------------------------------------------------------- the credential

#[rstest]
fn the_only_conversation_is_one_password_prompt(
    #[values("ldap", "oidc", "proxy")] verify: &str,
    #[values(&[][..], &["try_first_pass"][..])] extra: &[&str],
) {
    let arg = format!("verify={verify}");
    let mut args = vec![arg.as_str()];
    args.extend_from_slice(extra);
    let mut h = FakePam::new("jdoe").answering(SECRET);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &args, &mut d), PAM_SUCCESS);
    assert_eq!(h.prompts, 1);
    // What was typed is offered to the modules stacked below.
    assert_eq!(h.authtok_sets, vec![SECRET.to_vec()]);
}

#[test]
fn without_first_pass_options_a_stacked_password_is_not_used() {
    let mut h = FakePam::new("jdoe")
        .answering(SECRET)
        .with_authtok(b"other");
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &["verify=ldap"], &mut d), PAM_SUCCESS);
    assert_eq!(h.prompts, 1);
    assert_eq!(
        d.pam_request(0).credential.as_ref().map(|c| c.expose()),
        Some(SECRET)
    );
}

#[rstest]
fn first_pass_options_use_the_stacked_password_without_prompting(
    #[values("use_first_pass", "try_first_pass")] opt: &str,
) {
    let mut h = FakePam::new("jdoe")
        .answering(b"never asked")
        .with_authtok(SECRET);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &["verify=proxy", opt], &mut d), PAM_SUCCESS);
    assert_eq!(h.prompts, 0);
    assert!(h.authtok_sets.is_empty());
    assert_eq!(
        d.pam_request(0).credential.as_ref().map(|c| c.expose()),
        Some(SECRET)
    );
}

#[test]
fn use_first_pass_without_a_stacked_password_is_auth_err() {
    let mut h = FakePam::new("jdoe").answering(SECRET);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(
        auth(&mut h, &["verify=ldap", "use_first_pass"], &mut d),
        PAM_AUTH_ERR
    );
    assert_eq!(h.prompts, 0);
    assert!(d.calls.is_empty());
    assert!(h.logged(Level::Err, "use_first_pass"));
}

#[test]
fn try_first_pass_without_a_stacked_password_prompts_once() {
    let mut h = FakePam::new("jdoe").answering(SECRET);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(
        auth(&mut h, &["verify=ldap", "try_first_pass"], &mut d),
        PAM_SUCCESS
    );
    assert_eq!(h.prompts, 1);
    assert_eq!(h.authtok_sets, vec![SECRET.to_vec()]);
    assert_eq!(
        d.pam_request(0).credential.as_ref().map(|c| c.expose()),
        Some(SECRET)
    );
}

#[rstest]
#[case::empty(b"".to_vec())]
#[case::too_long(vec![b'p'; MAX_CREDENTIAL_LEN + 1])]
#[case::nul(b"abc\0def".to_vec())]
fn unusable_passwords_are_auth_err_without_the_daemon(
    #[case] pw: Vec<u8>,
    #[values(&[][..], &["try_first_pass"][..], &["use_first_pass"][..])] how: &[&str],
) {
    let mut h = FakePam::new("jdoe");
    if how.is_empty() {
        h.answers.push_back(Ok(pw));
    } else {
        h.authtok = Some(pw);
    }
    let mut d = FakeDaemon::allowing("jdoe");
    let mut args = vec!["verify=ldap"];
    args.extend_from_slice(how);
    assert_eq!(auth(&mut h, &args, &mut d), PAM_AUTH_ERR);
    assert!(d.calls.is_empty());
    assert!(h.logged(Level::Notice, "unusable input"), "{:?}", h.logs);
    assert!(h.cache.is_none());
    assert!(h.user_sets.is_empty());
}

#[test]
fn a_password_of_exactly_the_maximum_length_is_sent() {
    let pw = vec![b'p'; MAX_CREDENTIAL_LEN];
    let mut h = FakePam::new("jdoe").answering(&pw);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &["verify=oidc"], &mut d), PAM_SUCCESS);
    assert_eq!(
        d.pam_request(0)
            .credential
            .as_ref()
            .map(|c| c.expose().len()),
        Some(MAX_CREDENTIAL_LEN)
    );
}

#[rstest]
fn a_failed_conversation_is_returned_as_is(#[values(PAM_CONV_ERR, PAM_BUF_ERR)] code: Code) {
    let mut h = FakePam::new("jdoe");
    h.answers.push_back(Err(code));
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &["verify=ldap"], &mut d), code);
    assert_eq!(h.prompts, 1);
    assert!(d.calls.is_empty());
    assert!(h.logged(Level::Err, "conversation failed"));
}

fn started(interval: u32, expires_in: u32) -> Response {
    Response::DeviceStarted {
        session: "s1".into(),
        verification_uri: "https://idp.example/device".into(),
        user_code: "WDJB-MJHT".into(),
        expires_in,
        interval,
    }
}

#[test]
fn verify_device_shows_the_code_then_polls_until_the_decision() {
    let mut h = FakePam::new("jdoe");
    let mut d = FakeDaemon::allowing("jdoe");
    d.script.push_back(started(5, 600));
    d.script.push_back(Response::DevicePending { interval: 5 });
    // the provider said slow_down: the daemon answers with a longer interval
    d.script.push_back(Response::DevicePending { interval: 10 });
    assert_eq!(auth(&mut h, &["verify=device"], &mut d), PAM_SUCCESS);
    assert_eq!(h.prompts, 0, "no password prompt");
    assert_eq!(
        h.infos,
        vec!["To sign in, visit https://idp.example/device and enter the code WDJB-MJHT"]
    );
    assert_eq!(
        d.waits,
        [5, 5, 10].map(Duration::from_secs).to_vec(),
        "interval honoured, slow_down lengthens it"
    );
    assert!(matches!(&d.calls[0].1, Request::DeviceStart { user, .. } if user == "jdoe"));
    assert!(matches!(&d.calls[3].1, Request::DevicePoll { session, .. } if session == "s1"));
    assert_eq!(h.user_sets, Vec::<String>::new());
}

#[test]
fn verify_device_stops_when_the_code_expires() {
    let mut h = FakePam::new("jdoe");
    let mut d = FakeDaemon::allowing("jdoe");
    d.script.push_back(started(5, 12));
    for _ in 0..10 {
        d.script.push_back(Response::DevicePending { interval: 5 });
    }
    assert_eq!(auth(&mut h, &["verify=device"], &mut d), PAM_AUTH_ERR);
    assert_eq!(d.waits.len(), 2, "two polls fit in 12 s at 5 s");
    assert!(h.logged(Level::Notice, "expired before it was approved"));
}

#[test]
fn verify_device_refusal_at_start_is_returned_without_a_code() {
    let mut h = FakePam::new("bob");
    let mut d = FakeDaemon::new(Answer::Verdict(Verdict::PolicyDenied, "bob"));
    assert_eq!(auth(&mut h, &["verify=device"], &mut d), PAM_AUTH_ERR);
    assert!(h.infos.is_empty());
    assert_eq!(d.calls.len(), 1);
    let mut d = FakeDaemon::new(Answer::Refused);
    assert_eq!(
        auth(&mut FakePam::new("bob"), &["verify=device"], &mut d),
        PAM_AUTHINFO_UNAVAIL
    );
}

#[test]
fn verify_device_account_phase_still_asks_the_daemon() {
    let mut h = FakePam::new("jdoe");
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(account(&mut h, &["verify=device"], &mut d), PAM_SUCCESS);
    assert_eq!(d.pam_request(0).verify, Verify::Device);
}

// ---------------------------------------------------------------- PAM_USER

/// Both phases: an account-only transaction with the alias (JupyterHub's
/// `check_account(typed_name)`, issue 13 item 1) hands the local account to the modules after
/// ours, as the auth phase does.
#[rstest]
fn success_rewrites_pam_user_to_the_account(#[values(Phase::Auth, Phase::Account)] phase: Phase) {
    let mut h = FakePam::new("John.Doe@Company.com");
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(run(phase, &mut h, &[], &mut d), PAM_SUCCESS);
    assert_eq!(h.user_sets, vec!["jdoe".to_string()]);
    assert_eq!(h.current_user().as_deref(), Some("jdoe"));
}

#[test]
fn auth_success_leaves_an_unchanged_name_alone() {
    let mut h = FakePam::new("jdoe");
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &[], &mut d), PAM_SUCCESS);
    assert!(h.user_sets.is_empty());
}

#[rstest]
fn keep_user_never_rewrites(#[values(Phase::Auth, Phase::Account)] phase: Phase) {
    let mut h = FakePam::new("John.Doe@Company.com");
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(run(phase, &mut h, &["keep_user"], &mut d), PAM_SUCCESS);
    assert!(h.user_sets.is_empty());
    assert_eq!(h.current_user().as_deref(), Some("John.Doe@Company.com"));
}

#[rstest]
fn pam_user_is_rewritten_only_on_success(
    #[values(
        Verdict::Allowed,
        Verdict::UserUnknown,
        Verdict::PolicyDenied,
        Verdict::AuthFailed,
        Verdict::Unavailable,
        Verdict::BadInput
    )]
    verdict: Verdict,
    #[values(Phase::Auth, Phase::Account)] phase: Phase,
) {
    let mut h = FakePam::new("alias");
    let mut d = FakeDaemon::new(Answer::Verdict(verdict, "jdoe"));
    run(phase, &mut h, &[], &mut d);
    let rewritten = verdict == Verdict::Allowed;
    assert_eq!(!h.user_sets.is_empty(), rewritten, "{phase:?}");
}

#[test]
fn account_rewrites_from_a_cached_decision_made_under_the_alias() {
    let mut h = FakePam::new("alias");
    h.cache = Some(CachedDecision {
        verdict: Verdict::Allowed,
        original: "alias".into(),
        account: "jdoe".into(),
        at: Instant::now(),
    });
    let mut d = FakeDaemon::new(Answer::Refused);
    assert_eq!(account(&mut h, &[], &mut d), PAM_SUCCESS);
    assert!(d.calls.is_empty());
    assert_eq!(h.current_user().as_deref(), Some("jdoe"));
}

#[rstest]
#[case::empty("")]
#[case::nul("jd\0oe")]
fn an_allowed_account_decision_without_a_usable_account_fails_closed(#[case] acct: &'static str) {
    let mut h = FakePam::new("alias");
    let mut d = FakeDaemon::allowing(acct);
    assert_eq!(account(&mut h, &[], &mut d), PAM_AUTHINFO_UNAVAIL);
    assert!(h.user_sets.is_empty());
    assert!(h.logged(Level::Err, "no usable local account"));
}

#[rstest]
#[case::empty("")]
#[case::nul("jd\0oe")]
fn an_allowed_decision_without_a_usable_account_fails_closed(#[case] acct: &'static str) {
    let mut h = FakePam::new("alias");
    let mut d = FakeDaemon::allowing(acct);
    assert_eq!(auth(&mut h, &[], &mut d), PAM_AUTHINFO_UNAVAIL);
    assert!(h.user_sets.is_empty());
    assert!(h.cache.is_none());
    assert!(h.logged(Level::Err, "no usable local account"));
}

#[test]
fn failing_to_set_pam_user_is_that_error() {
    let mut h = FakePam::new("alias");
    h.fail_set_user = Some(PAM_BUF_ERR);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &[], &mut d), PAM_BUF_ERR);
    assert!(h.cache.is_none());
    assert!(h.logged(Level::Err, "cannot set PAM_USER"));
}

// ---------------------------------------------------------------- auth -> account

#[rstest]
fn account_reuses_the_auth_decision(
    #[values(&[][..], &["keep_user"][..])] args: &[&str],
    #[values(true, false)] debug: bool,
) {
    let mut args = args.to_vec();
    if debug {
        args.push("debug");
    }
    let mut h = FakePam::new("John.Doe@Company.com");
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &args, &mut d), PAM_SUCCESS);
    assert_eq!(
        h.cache
            .as_ref()
            .map(|c| (c.original.as_str(), c.account.as_str())),
        Some(("John.Doe@Company.com", "jdoe"))
    );
    d.answer = Answer::Verdict(Verdict::PolicyDenied, "jdoe");
    assert_eq!(account(&mut h, &args, &mut d), PAM_SUCCESS);
    assert_eq!(d.calls.len(), 1, "account phase asked the daemon again");
    assert_eq!(
        h.logged(Level::Debug, "not asking accountmapd again"),
        debug
    );
    // The auth phase already rewrote PAM_USER (or kept it): the account phase adds nothing.
    assert!(h.user_sets.len() <= 1);
}

#[test]
fn account_accepts_either_name_of_the_cached_decision() {
    for name in ["alias", "jdoe"] {
        let mut h = FakePam::new(name);
        h.cache = Some(CachedDecision {
            verdict: Verdict::Allowed,
            original: "alias".into(),
            account: "jdoe".into(),
            at: Instant::now(),
        });
        let mut d = FakeDaemon::new(Answer::Refused);
        assert_eq!(account(&mut h, &[], &mut d), PAM_SUCCESS);
        assert!(d.calls.is_empty());
    }
}

#[test]
fn account_asks_the_daemon_when_pam_user_changed_to_someone_else() {
    let mut h = FakePam::new("alias");
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &[], &mut d), PAM_SUCCESS);
    h.user = Some(b"mallory".to_vec());
    d.answer = Answer::Verdict(Verdict::PolicyDenied, "mallory");
    assert_eq!(account(&mut h, &[], &mut d), PAM_PERM_DENIED);
    assert_eq!(d.calls.len(), 2);
    assert_eq!(d.pam_request(1).user, "mallory");
}

#[test]
fn a_stale_cached_decision_is_not_reused() {
    let Some(long_ago) = Instant::now().checked_sub(CACHE_MAX_AGE + Duration::from_secs(1)) else {
        return; // the clock started too recently to represent it
    };
    let mut h = FakePam::new("jdoe");
    h.cache = Some(CachedDecision {
        verdict: Verdict::Allowed,
        original: "jdoe".into(),
        account: "jdoe".into(),
        at: long_ago,
    });
    let mut d = FakeDaemon::new(Answer::Verdict(Verdict::PolicyDenied, "jdoe"));
    assert_eq!(account(&mut h, &[], &mut d), PAM_PERM_DENIED);
    assert_eq!(d.calls.len(), 1);
}

#[rstest]
fn refusals_about_the_credential_or_the_daemon_are_not_cached(
    #[values(
        Answer::Verdict(Verdict::AuthFailed, "jdoe"),
        Answer::Verdict(Verdict::Unavailable, "jdoe"),
        Answer::Verdict(Verdict::BadInput, "jdoe"),
        Answer::Timeout
    )]
    answer: Answer,
) {
    let mut h = FakePam::new("jdoe");
    let mut d = FakeDaemon::new(answer);
    assert_ne!(auth(&mut h, &[], &mut d), PAM_SUCCESS);
    assert!(h.cache.is_none());
    assert!(h.cache_stores.is_empty());
}

/// A refusal by identity or policy is what the account phase would answer too: it is kept, and
/// the account phase repeats it with its own code, without a second round trip.
#[rstest]
#[case::unknown(Verdict::UserUnknown, PAM_USER_UNKNOWN)]
#[case::denied(Verdict::PolicyDenied, PAM_PERM_DENIED)]
fn policy_refusals_are_repeated_by_the_account_phase(#[case] verdict: Verdict, #[case] code: Code) {
    let mut h = FakePam::new("jdoe");
    let mut d = FakeDaemon::new(Answer::Verdict(verdict, "jdoe"));
    assert_ne!(auth(&mut h, &[], &mut d), PAM_SUCCESS);
    assert!(h.cache.as_ref().is_some_and(|c| c.verdict == verdict));
    d.answer = Answer::Verdict(Verdict::Allowed, "jdoe");
    assert_eq!(account(&mut h, &[], &mut d), code);
    assert_eq!(d.calls.len(), 1, "the account phase must not ask again");
}

#[test]
fn a_failed_auth_replaces_an_earlier_success_on_the_same_handle() {
    let mut h = FakePam::new("jdoe");
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &[], &mut d), PAM_SUCCESS);
    assert!(h.cache.is_some());
    d.answer = Answer::Verdict(Verdict::AuthFailed, "jdoe");
    assert_eq!(auth(&mut h, &[], &mut d), PAM_AUTH_ERR);
    assert!(h.cache.is_none());
    d.answer = Answer::Verdict(Verdict::PolicyDenied, "jdoe");
    assert_eq!(account(&mut h, &[], &mut d), PAM_PERM_DENIED);
    assert_eq!(d.calls.len(), 3);
}

#[test]
fn a_cached_decision_is_forgotten_even_when_options_are_bad() {
    let mut h = FakePam::new("jdoe");
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &[], &mut d), PAM_SUCCESS);
    assert_eq!(auth(&mut h, &["timeout=x"], &mut d), PAM_SERVICE_ERR);
    assert!(h.cache.is_none());
}

#[test]
fn account_phase_does_not_cache_and_cannot_be_reused_by_itself() {
    let mut h = FakePam::new("jdoe");
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(account(&mut h, &[], &mut d), PAM_SUCCESS);
    assert_eq!(account(&mut h, &[], &mut d), PAM_SUCCESS);
    assert_eq!(d.calls.len(), 2);
    assert!(h.cache_stores.is_empty());
}

#[test]
fn failing_to_store_the_decision_is_only_a_warning() {
    let mut h = FakePam::new("jdoe");
    h.fail_store = Some(PAM_BUF_ERR);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &[], &mut d), PAM_SUCCESS);
    assert!(h.logged(Level::Warning, "cannot keep the decision"));
    assert_eq!(account(&mut h, &[], &mut d), PAM_SUCCESS);
    assert_eq!(d.calls.len(), 2);
}

#[test]
fn failing_to_clear_an_old_decision_fails_closed() {
    let mut h = FakePam::new("jdoe");
    h.cache = Some(CachedDecision {
        verdict: Verdict::Allowed,
        original: "jdoe".into(),
        account: "jdoe".into(),
        at: Instant::now(),
    });
    h.fail_store = Some(PAM_BUF_ERR);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &[], &mut d), PAM_BUF_ERR);
    assert!(d.calls.is_empty());
}

// ---------------------------------------------------------------- logging

#[test]
fn debug_logs_the_request_without_the_password() {
    let mut h = FakePam::new("jdoe").answering(SECRET);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &["verify=ldap", "debug"], &mut d), PAM_SUCCESS);
    assert!(h.logged(Level::Debug, "asking accountmapd"));
    assert!(h.logged(Level::Debug, "credential=yes"));
}

#[test]
fn without_debug_a_success_logs_nothing() {
    let mut h = FakePam::new("alias").answering(SECRET);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &["verify=ldap"], &mut d), PAM_SUCCESS);
    assert_eq!(account(&mut h, &["verify=ldap"], &mut d), PAM_SUCCESS);
    assert!(h.logs.borrow().is_empty(), "{:?}", h.logs);
}

#[test]
fn secrets_never_reach_the_log_even_in_failures() {
    // assert_no_secret_logged runs after every call; exercise the error paths with debug on.
    for answer in [
        Answer::Verdict(Verdict::AuthFailed, "jdoe"),
        Answer::Error("bad"),
        Answer::Protocol,
    ] {
        let mut h = FakePam::new("jdoe").answering(SECRET);
        let mut d = FakeDaemon::new(answer);
        assert_ne!(auth(&mut h, &["verify=ldap", "debug"], &mut d), PAM_SUCCESS);
    }
}

#[test]
fn code_names_cover_the_codes_returned() {
    for code in [
        PAM_SUCCESS,
        PAM_SERVICE_ERR,
        PAM_SYSTEM_ERR,
        PAM_BUF_ERR,
        PAM_PERM_DENIED,
        PAM_AUTH_ERR,
        PAM_AUTHINFO_UNAVAIL,
        PAM_USER_UNKNOWN,
        PAM_CONV_ERR,
    ] {
        assert!(code_name(code).starts_with("PAM_"));
    }
    assert_eq!(code_name(PAM_ABORT), "PAM_ABORT");
    assert_eq!(code_name(-1), UNKNOWN_CODE);
}

/// Item 3 of issue 13: every auth call registers the failure delay (2 s by default, as
/// pam_unix), whatever the verdict, so a refusal by identity or policy is not faster than a
/// wrong password; `fail_delay=0` registers none.
#[rstest]
#[case::allowed(Answer::Verdict(Verdict::Allowed, "alice"))]
#[case::unknown(Answer::Verdict(Verdict::UserUnknown, ""))]
#[case::refused(Answer::Verdict(Verdict::PolicyDenied, "bob"))]
#[case::daemon_down(Answer::Refused)]
fn every_auth_call_registers_the_failure_delay(#[case] answer: Answer) {
    let mut h = FakePam::new("alice");
    auth(&mut h, &[], &mut FakeDaemon::new(answer.clone()));
    assert_eq!(h.delays, vec![Duration::from_secs(2)]);

    let mut h = FakePam::new("alice");
    auth(
        &mut h,
        &["fail_delay=750"],
        &mut FakeDaemon::new(answer.clone()),
    );
    assert_eq!(h.delays, vec![Duration::from_millis(750)]);

    let mut h = FakePam::new("alice");
    auth(&mut h, &["fail_delay=0"], &mut FakeDaemon::new(answer));
    assert!(h.delays.is_empty());
}

#[test]
fn the_account_phase_registers_no_failure_delay() {
    let mut h = FakePam::new("alice");
    let mut d = FakeDaemon::new(Answer::Verdict(Verdict::PolicyDenied, "alice"));
    assert_eq!(
        acct_mgmt(&mut h, &[], &Env::default(), &mut d),
        PAM_PERM_DENIED
    );
    assert!(h.delays.is_empty());
}

/// Item 7 of issue 13: once the daemon did not answer within timeout= on a handle, later calls
/// on that handle (sshd's next method or retry, acct_mgmt) do not wait again.
#[test]
fn a_silent_daemon_is_waited_for_once_per_handle() {
    let mut h = FakePam::new("alice");
    let mut d = FakeDaemon::new(Answer::Timeout);
    assert_eq!(auth(&mut h, &[], &mut d), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(d.calls.len(), 1);
    assert!(h.silent.is_some());
    assert_eq!(auth(&mut h, &[], &mut d), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(
        acct_mgmt(&mut h, &[], &Env::default(), &mut d),
        PAM_AUTHINFO_UNAVAIL
    );
    assert_eq!(d.calls.len(), 1, "the daemon was asked again");
    assert!(h.logged(Level::Err, "not waiting again"));
    // The wait was the delay: no failure delay on top, neither for the call that waited nor
    // for the later ones (sshd pads each failed method to a doubling of its own base delay,
    // so a delay on top can double the cost again).
    assert!(h.delays.is_empty(), "{:?}", h.delays);

    // Long ago: ask again.
    let mut h = FakePam::new("alice");
    h.silent = Instant::now().checked_sub(SILENT_MEMORY + Duration::from_secs(1));
    let mut d = FakeDaemon::allowing("alice");
    assert_eq!(auth(&mut h, &[], &mut d), PAM_SUCCESS);

    // A refused connection (fast anyway) is not remembered.
    let mut h = FakePam::new("alice");
    let mut d = FakeDaemon::new(Answer::Refused);
    assert_eq!(auth(&mut h, &[], &mut d), PAM_AUTHINFO_UNAVAIL);
    assert!(h.silent.is_none());
}

/// `verify=ticket` sits before the password modules: a typed password is not a ticket, so it
/// is refused here (the stack's `default=ignore` moves on) and never sent to the daemon; a
/// ticket-shaped one is sent as the credential.
#[test]
fn verify_ticket_sends_only_tickets() {
    let mut h = FakePam::new("jdoe").answering(SECRET);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &["verify=ticket"], &mut d), PAM_AUTH_ERR);
    assert!(d.calls.is_empty(), "a password went to the daemon");
    assert_eq!(h.authtok_sets.len(), 1, "offered to the next module");

    let ticket = b"amt1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let mut h = FakePam::new("jdoe").answering(ticket);
    let mut d = FakeDaemon::allowing("jdoe");
    assert_eq!(auth(&mut h, &["verify=ticket"], &mut d), PAM_SUCCESS);
    let req = d.pam_request(0);
    assert_eq!(req.verify, Verify::Ticket);
    assert_eq!(
        req.credential.as_ref().map(|c| c.expose()),
        Some(&ticket[..])
    );
}

// ---------------------------------------------------------------- the decision table

fn table_decision(verdict: Verdict) -> Decision {
    Decision {
        verdict,
        account: "alice".into(),
        uid: Some(1001),
        reason: "from the table".into(),
        rule: "identity".into(),
        groups: vec![],
    }
}

#[rstest]
#[case::allowed(Verdict::Allowed, PAM_SUCCESS, PAM_SUCCESS)]
#[case::denied(Verdict::PolicyDenied, PAM_AUTH_ERR, PAM_PERM_DENIED)]
fn questions_without_a_credential_are_answered_from_the_table_and_logged(
    #[case] verdict: Verdict,
    #[case] auth_code: Code,
    #[case] account_code: Code,
) {
    for (phase, want) in [(Phase::Auth, auth_code), (Phase::Account, account_code)] {
        let mut d = FakeDaemon::new(Answer::Error("the socket must not be used"));
        d.table = Some(table_decision(verdict));
        let mut h = FakePam::new("alice");
        // verify=none: no password is asked for when the answer is allowed.
        h.answers.push_back(Ok(b"unused".to_vec()));
        assert_eq!(run(phase, &mut h, &[], &mut d), want, "{phase:?}");
        assert!(d.calls.is_empty(), "{phase:?}: the daemon was asked");
        assert_eq!(d.table_asked, ["alice"]);
        let logs = h.logs.borrow();
        assert!(
            logs.iter().any(|(l, m)| *l == Level::Info
                && m.contains("decision from accountmapd's table")
                && m.contains(&format!("verdict={}", verdict.as_str()))
                && m.contains(&format!("phase={}", phase.as_str()))),
            "{phase:?}: {logs:?}"
        );
    }
}

#[test]
fn a_credential_to_check_always_goes_to_the_daemon() {
    for verify in [
        "verify=ldap",
        "verify=oidc",
        "verify=proxy",
        "verify=ticket",
    ] {
        let mut d = FakeDaemon::allowing("alice");
        d.table = Some(table_decision(Verdict::Allowed));
        let mut h = FakePam::new("alice");
        let secret = if verify == "verify=ticket" {
            format!("amt1.{}", "A".repeat(43))
        } else {
            "secret".to_string()
        };
        h.answers.push_back(Ok(secret.into_bytes()));
        assert_eq!(auth(&mut h, &[verify], &mut d), PAM_SUCCESS, "{verify}");
        assert_eq!(d.calls.len(), 1, "{verify}");
        assert!(d.table_asked.is_empty(), "{verify}: the table was asked");
    }
}
