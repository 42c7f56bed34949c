//! What the module does, written against [`PamHandle`] and [`Daemon`] so that it runs in unit
//! tests without libpam or a socket. `handle.rs` implements [`PamHandle`] over a real
//! `pam_handle_t`; `lib.rs` wires the two into the exported hooks.

use crate::options::{self, Options, Pass};
use accountmap_wire::{
    ClientError, Credential, Decision, PamRequest, Phase, Request, Response, Verdict, Verify,
    DEFAULT_SOCKET, MAX_CREDENTIAL_LEN, MAX_NAME_LEN,
};
use pam_ffi::{
    code_name, Code, PAM_ACCT_EXPIRED, PAM_AUTHINFO_UNAVAIL, PAM_AUTH_ERR, PAM_NEW_AUTHTOK_REQD,
    PAM_PERM_DENIED, PAM_SERVICE_ERR, PAM_SUCCESS, PAM_USER_UNKNOWN,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The string items the module reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    Service,
    User,
    Rhost,
}

/// Syslog priorities the module uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

impl Level {
    pub fn priority(self) -> std::ffi::c_int {
        match self {
            Level::Err => libc::LOG_ERR,
            Level::Warning => libc::LOG_WARNING,
            Level::Notice => libc::LOG_NOTICE,
            Level::Info => libc::LOG_INFO,
            Level::Debug => libc::LOG_DEBUG,
        }
    }
}

/// A successful auth decision, kept on the PAM handle for the account phase that follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedDecision {
    /// PAM_USER as the auth phase received it.
    pub original: String,
    /// The local account the daemon resolved it to (empty when there is none).
    pub account: String,
    /// Allowed, or a refusal by identity or policy (UserUnknown, PolicyDenied), which the
    /// account phase would repeat word for word. Refusals about the credential are never kept:
    /// they say nothing about the account phase.
    pub verdict: Verdict,
    /// When the daemon decided.
    pub at: Instant,
}

/// How long the account phase may reuse the auth phase's decision. RStudio, sshd and login
/// call acct_mgmt right after authenticate; a handle kept open longer (a screen locker) asks
/// the daemon again, so that an edit of `denied_users` is not outlived by an old handle.
pub const CACHE_MAX_AGE: Duration = Duration::from_secs(60);

/// How long a handle remembers that the daemon did not answer within `timeout=`: later calls
/// on the same handle (sshd's password retries, a second method, acct_mgmt) return
/// PAM_AUTHINFO_UNAVAIL at once instead of waiting `timeout=` again, so a frozen daemon costs
/// one timeout per handle, not one per attempt.
pub const SILENT_MEMORY: Duration = Duration::from_secs(60);

/// The PAM handle as the module sees it.
pub trait PamHandle {
    /// A string item as bytes; `Ok(None)` when it is not set.
    fn item(&self, which: Item) -> Result<Option<Vec<u8>>, Code>;
    /// Sets PAM_USER.
    fn set_user(&mut self, user: &str) -> Result<(), Code>;
    /// PAM_AUTHTOK as an earlier module in the stack left it; `Ok(None)` when it is not set.
    fn authtok(&self) -> Result<Option<Credential>, Code>;
    /// Sets PAM_AUTHTOK for the modules stacked after this one. `cred` has no NUL byte.
    fn set_authtok(&mut self, cred: &Credential) -> Result<(), Code>;
    /// Exactly one conversation message, PAM_PROMPT_ECHO_OFF with the text `Password: `
    /// (what RStudio's rserver-pam answers), and the answer. Any failure is `Err(PAM_CONV_ERR)` (or
    /// PAM_BUF_ERR when memory runs out).
    fn prompt_password(&mut self) -> Result<Credential, Code>;
    /// One PAM_TEXT_INFO message (`verify=device` only: the verification URL and code).
    fn text_info(&mut self, msg: &str) -> Result<(), Code>;
    fn log(&self, level: Level, msg: &str);
    /// The decision an earlier successful auth phase on this handle stored.
    fn cached_decision(&self) -> Option<CachedDecision>;
    /// Stores (`Some`) or forgets (`None`) the decision for the account phase.
    fn store_decision(&mut self, decision: Option<CachedDecision>) -> Result<(), Code>;
    /// Registers a failure delay (`pam_fail_delay`): libpam waits the largest one registered,
    /// once, if the whole authentication fails.
    fn fail_delay(&mut self, delay: Duration) -> Result<(), Code>;
    /// When a call on this handle last found the daemon silent (it did not answer within
    /// `timeout=`), as [`PamHandle::note_daemon_silent`] stored it.
    fn daemon_silent_since(&self) -> Option<Instant>;
    /// Remembers on this handle that the daemon did not answer in time.
    fn note_daemon_silent(&mut self, at: Instant) -> Result<(), Code>;
}

/// The way to the daemon: [`accountmap_wire::call`] in the module, a double in tests.
pub trait Daemon {
    fn call(
        &mut self,
        socket: &Path,
        req: &Request,
        timeout: Duration,
    ) -> Result<Response, ClientError>;

    /// Waits between two polls of `verify=device` (tests replace the clock).
    fn wait(&mut self, d: Duration) {
        std::thread::sleep(d);
    }

    /// The decision the daemon's decision table (`policy.cache` next to `socket`) holds for
    /// `user`, asked without a credential to check; `None` sends the question over the socket.
    fn decision_table(&mut self, _socket: &Path, _user: &str) -> Option<Decision> {
        None
    }
}

impl<F> Daemon for F
where
    F: FnMut(&Path, &Request, Duration) -> Result<Response, ClientError>,
{
    fn call(
        &mut self,
        socket: &Path,
        req: &Request,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        self(socket, req, timeout)
    }
}

/// The process environment the module consults: `ACCOUNTMAP_SOCKET` as `secure_getenv`
/// returns it.
#[derive(Clone, Debug, Default)]
pub struct Env {
    pub socket: Option<PathBuf>,
}

/// The PAM return code for a daemon verdict in a phase: SPEC's table.
pub fn code_for(verdict: Verdict, phase: Phase) -> Code {
    match (verdict, phase) {
        (Verdict::Allowed, _) => PAM_SUCCESS,
        (Verdict::UserUnknown, _) => PAM_USER_UNKNOWN,
        (Verdict::PolicyDenied | Verdict::AuthFailed, Phase::Auth) => PAM_AUTH_ERR,
        (Verdict::PolicyDenied | Verdict::AuthFailed, Phase::Account) => PAM_PERM_DENIED,
        (Verdict::Unavailable, _) => PAM_AUTHINFO_UNAVAIL,
        (Verdict::BadInput, _) => unusable_input(phase),
        // The auth phase never says more than "no": PAM_ACCT_EXPIRED and PAM_NEW_AUTHTOK_REQD
        // are account-management answers (pam_acct_mgmt(3)), and an auth that succeeded on a
        // password that must be changed would let a stack without our account line in.
        (Verdict::AccountExpired | Verdict::NewAuthtokRequired, Phase::Auth) => PAM_AUTH_ERR,
        (Verdict::AccountExpired, Phase::Account) => PAM_ACCT_EXPIRED,
        (Verdict::NewAuthtokRequired, Phase::Account) => PAM_NEW_AUTHTOK_REQD,
    }
}

/// The code for input the module refuses itself, without asking the daemon.
fn unusable_input(phase: Phase) -> Code {
    match phase {
        Phase::Auth => PAM_AUTH_ERR,
        Phase::Account => PAM_USER_UNKNOWN,
    }
}

fn flatten(r: Result<(), Code>) -> Code {
    match r {
        Ok(()) => PAM_SUCCESS,
        Err(code) => code,
    }
}

/// pam_sm_authenticate.
pub fn authenticate<H: PamHandle, D: Daemon>(
    h: &mut H,
    args: &[&[u8]],
    env: &Env,
    daemon: &mut D,
) -> Code {
    flatten(auth_inner(h, args, env, daemon))
}

/// pam_sm_acct_mgmt.
pub fn acct_mgmt<H: PamHandle, D: Daemon>(
    h: &mut H,
    args: &[&[u8]],
    env: &Env,
    daemon: &mut D,
) -> Code {
    flatten(account_inner(h, args, env, daemon))
}

fn auth_inner<H: PamHandle, D: Daemon>(
    h: &mut H,
    args: &[&[u8]],
    env: &Env,
    daemon: &mut D,
) -> Result<(), Code> {
    // A new authentication on the same handle (sshd retries on one handle) first forgets what
    // an earlier one decided: only a success of this call may be reused by acct_mgmt.
    if h.cached_decision().is_some() {
        h.store_decision(None).map_err(|code| {
            h.log(
                Level::Err,
                &format!(
                    "cannot clear the previous decision on this handle: {}",
                    code_name(code)
                ),
            );
            code
        })?;
    }
    let opts = parse_options(h, args)?;
    let result = auth_decide(h, &opts, env, daemon);
    // Registered on every call, whatever the verdict (as pam_unix does): a refusal by identity
    // or policy, an unusable name or an unreachable daemon then fails no faster than a wrong
    // password. Except when the daemon is silent (it did not answer within `timeout=` on this
    // handle): that says nothing about the user, the caller has already waited `timeout=`, and
    // sshd pads each failed method up to a doubling of its own base delay, so a delay on top
    // could double a frozen daemon's cost again (issue 13, item 7).
    let silent = result == Err(PAM_AUTHINFO_UNAVAIL)
        && h.daemon_silent_since()
            .is_some_and(|since| since.elapsed() < SILENT_MEMORY);
    if !opts.fail_delay.is_zero() && !silent {
        // The handle converts to pam_fail_delay's microseconds (options cap it at 60 s).
        if let Err(code) = h.fail_delay(opts.fail_delay) {
            h.log(
                Level::Warning,
                &format!("cannot register the failure delay: {}", code_name(code)),
            );
        }
    }
    result
}

/// The auth phase after its options: identity, policy and (with `verify=`) the credential.
fn auth_decide<H: PamHandle, D: Daemon>(
    h: &mut H,
    opts: &Options,
    env: &Env,
    daemon: &mut D,
) -> Result<(), Code> {
    let user = pam_user(h, Phase::Auth)?;
    let decision = if opts.verify == Verify::Device {
        device_flow(h, opts, env, daemon, &user)?
    } else {
        let credential = match opts.verify {
            Verify::None => None,
            _ => Some(obtain_credential(h, opts)?),
        };
        // `verify=ticket` sits before the password modules: what is not a ticket is someone's
        // password, which is left to them and never sent to the daemon.
        if let (Verify::Ticket, Some(c)) = (opts.verify, &credential) {
            if !accountmap_wire::looks_like_ticket(c.expose()) {
                h.log(
                    Level::Debug,
                    "verify=ticket: the password is not a sign-in ticket; left to the next module",
                );
                return Err(PAM_AUTH_ERR);
            }
        }
        ask_daemon(h, opts, env, daemon, Phase::Auth, &user, credential)?
    };
    let code = code_for(decision.verdict, Phase::Auth);
    if code != PAM_SUCCESS {
        if matches!(
            decision.verdict,
            Verdict::UserUnknown | Verdict::PolicyDenied
        ) {
            if opts.verify == Verify::None {
                ask_for_the_password_anyway(h, opts);
            }
            remember(
                h,
                CachedDecision {
                    original: user,
                    account: decision.account,
                    verdict: decision.verdict,
                    at: Instant::now(),
                },
            );
        }
        return Err(code);
    }

    let account = decision.account;
    adopt_account(h, opts, &user, &account)?;
    remember(
        h,
        CachedDecision {
            original: user,
            account,
            verdict: Verdict::Allowed,
            at: Instant::now(),
        },
    );
    Ok(())
}

/// A refusal by identity or policy with `verify=none` still asks for the password, as the
/// password module stacked after us would have for a known user (issue 13, item 3): without
/// it, a `requisite` refusal ends the stack before any prompt, and a client sees the
/// difference without a clock (sshd's keyboard-interactive fails with no prompt for those
/// names only, and the ssh client then tries its password method too: a refused sign-in took
/// twice as long as a wrong password). Nothing is asked when an earlier module already set
/// PAM_AUTHTOK; the answer is set as PAM_AUTHTOK for modules after us; a failed conversation
/// changes nothing (the refusal stands).
fn ask_for_the_password_anyway<H: PamHandle>(h: &mut H, opts: &Options) {
    if !matches!(h.authtok(), Ok(None)) {
        return;
    }
    match h.prompt_password() {
        Ok(cred) => {
            let bytes = cred.expose();
            if !bytes.is_empty() && bytes.len() <= MAX_CREDENTIAL_LEN && !bytes.contains(&0) {
                let _ = h.set_authtok(&cred);
            }
        }
        Err(code) => {
            if opts.debug {
                h.log(
                    Level::Debug,
                    &format!(
                        "auth: refused; the password prompt asked for appearances failed: {}",
                        code_name(code)
                    ),
                );
            }
        }
    }
}

/// Keeps the auth phase's decision for the account phase of the same handle. The cache only
/// saves that phase a round trip: failing to store it is not fatal.
fn remember<H: PamHandle>(h: &mut H, decision: CachedDecision) {
    if let Err(code) = h.store_decision(Some(decision)) {
        h.log(
            Level::Warning,
            &format!(
                "cannot keep the decision for the account phase: {}",
                code_name(code)
            ),
        );
    }
}

fn account_inner<H: PamHandle, D: Daemon>(
    h: &mut H,
    args: &[&[u8]],
    env: &Env,
    daemon: &mut D,
) -> Result<(), Code> {
    let opts = parse_options(h, args)?;
    let user = pam_user(h, Phase::Account)?;
    if let Some(cached) = h.cached_decision() {
        let fresh = cached.at.elapsed() < CACHE_MAX_AGE;
        if fresh && (user == cached.original || user == cached.account) {
            if opts.debug {
                h.log(
                    Level::Debug,
                    &format!(
                        "account: {user:?} {} by this handle's auth decision ({:?} as {:?}); not asking accountmapd again",
                        cached.verdict.as_str(),
                        cached.original,
                        cached.account
                    ),
                );
            }
            return match code_for(cached.verdict, Phase::Account) {
                PAM_SUCCESS => adopt_account(h, &opts, &user, &cached.account),
                code => Err(code),
            };
        }
    }
    let decision = ask_daemon(h, &opts, env, daemon, Phase::Account, &user, None)?;
    match code_for(decision.verdict, Phase::Account) {
        PAM_SUCCESS => adopt_account(h, &opts, &user, &decision.account),
        code => Err(code),
    }
}

/// After an allowed decision, in both phases: refuses an unusable account name, then sets
/// PAM_USER from the name `user` to the local `account` unless `keep_user`. The account phase
/// needs it too: an account-only transaction (JupyterHub's `check_account(typed_name)`,
/// `pamtester SERVICE ALIAS acct_mgmt`) hands the alias to the modules after ours, and
/// pam_unix knows only the local name.
fn adopt_account<H: PamHandle>(
    h: &mut H,
    opts: &Options,
    user: &str,
    account: &str,
) -> Result<(), Code> {
    if account.is_empty() || account.len() > MAX_NAME_LEN || account.contains('\0') {
        h.log(
            Level::Err,
            &format!(
                "accountmapd allowed {user:?} but named no usable local account ({account:?}); refusing"
            ),
        );
        return Err(PAM_AUTHINFO_UNAVAIL);
    }
    if opts.keep_user || account == user {
        return Ok(());
    }
    h.set_user(account).map_err(|code| {
        h.log(
            Level::Err,
            &format!("cannot set PAM_USER to {account:?}: {}", code_name(code)),
        );
        code
    })?;
    if opts.debug {
        h.log(
            Level::Debug,
            &format!("PAM_USER changed from {user:?} to {account:?}"),
        );
    }
    Ok(())
}

fn parse_options<H: PamHandle>(h: &H, args: &[&[u8]]) -> Result<Options, Code> {
    match options::parse(args) {
        Ok(parsed) => {
            for arg in &parsed.unknown {
                h.log(Level::Warning, &format!("unknown option {arg:?} ignored"));
            }
            Ok(parsed.options)
        }
        Err(options::OptionError(why)) => {
            h.log(Level::Err, &format!("misconfigured: {why}"));
            Err(PAM_SERVICE_ERR)
        }
    }
}

/// PAM_USER, checked. Never `pam_get_user`: it may prompt with PAM_PROMPT_ECHO_ON.
fn pam_user<H: PamHandle>(h: &H, phase: Phase) -> Result<String, Code> {
    let Some(raw) = h.item(Item::User)? else {
        h.log(
            Level::Err,
            "PAM_USER is not set (pam_accountmap never asks for a user name; the application or an earlier module must set it)",
        );
        return Err(PAM_USER_UNKNOWN);
    };
    let problem = if raw.is_empty() {
        Some("empty".to_string())
    } else if raw.len() > MAX_NAME_LEN {
        Some(format!("{} bytes, more than {MAX_NAME_LEN}", raw.len()))
    } else if raw.contains(&0) {
        Some("contains a NUL byte".to_string())
    } else {
        None
    };
    let refuse = |why: &str| {
        h.log(
            Level::Notice,
            &format!("{}: refusing an unusable user name ({why})", phase.as_str()),
        );
        unusable_input(phase)
    };
    if let Some(why) = problem {
        return Err(refuse(&why));
    }
    String::from_utf8(raw).map_err(|_| refuse("not UTF-8"))
}

/// A string item for the request's log-only fields: never refused, made printable and cut to
/// [`MAX_NAME_LEN`] bytes.
fn log_item<H: PamHandle>(h: &H, which: Item) -> Result<String, Code> {
    let raw = h.item(which)?.unwrap_or_default();
    let mut s = String::from_utf8_lossy(&raw).replace('\0', "");
    if s.len() > MAX_NAME_LEN {
        let mut end = MAX_NAME_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    Ok(s)
}

/// The credential `verify=` checks, from the stack or from one prompt, checked for use.
fn obtain_credential<H: PamHandle>(h: &mut H, opts: &Options) -> Result<Credential, Code> {
    let stacked = match opts.pass {
        Pass::Prompt => None,
        Pass::TryFirst | Pass::UseFirst => h.authtok()?,
    };
    let cred = match (stacked, opts.pass) {
        (Some(c), _) => c,
        (None, Pass::UseFirst) => {
            h.log(
                Level::Err,
                "use_first_pass: no password from an earlier module (PAM_AUTHTOK is not set)",
            );
            return Err(PAM_AUTH_ERR);
        }
        (None, _) => prompt(h)?,
    };
    let bytes = cred.expose();
    let problem = if bytes.is_empty() {
        Some("empty password".to_string())
    } else if bytes.len() > MAX_CREDENTIAL_LEN {
        Some(format!(
            "password of {} bytes, more than {MAX_CREDENTIAL_LEN}",
            bytes.len()
        ))
    } else if bytes.contains(&0) {
        Some("password contains a NUL byte".to_string())
    } else {
        None
    };
    if let Some(why) = problem {
        h.log(
            Level::Notice,
            &format!("auth: refusing unusable input ({why})"),
        );
        return Err(PAM_AUTH_ERR);
    }
    Ok(cred)
}

fn prompt<H: PamHandle>(h: &mut H) -> Result<Credential, Code> {
    let cred = h.prompt_password().map_err(|code| {
        h.log(
            Level::Err,
            &format!("password conversation failed: {}", code_name(code)),
        );
        code
    })?;
    // Like pam_get_authtok: what was typed is offered to the modules stacked after this one
    // (use_first_pass), so that the user is asked once. A NUL byte cannot come from a C
    // conversation and cannot be stored; such input is refused by the caller anyway.
    if !cred.expose().contains(&0) {
        h.set_authtok(&cred).map_err(|code| {
            h.log(
                Level::Err,
                &format!("cannot set PAM_AUTHTOK: {}", code_name(code)),
            );
            code
        })?;
    }
    Ok(cred)
}

/// `verify=device` (RFC 8628): the daemon starts a device authorization, the user is shown
/// the verification URL and code (PAM_TEXT_INFO), and the module polls the daemon every
/// `interval` seconds (which the daemon lengthens on the provider's `slow_down`) until it
/// decides or the code expires. Each exchange with the daemon is bounded by `timeout=`; the
/// whole wait by the code's lifetime, which the daemon caps at 30 minutes.
fn device_flow<H: PamHandle, D: Daemon>(
    h: &mut H,
    opts: &Options,
    env: &Env,
    daemon: &mut D,
    user: &str,
) -> Result<Decision, Code> {
    let service = log_item(h, Item::Service)?;
    let socket = socket_path(opts, env);
    let unavailable = |h: &H, why: String| {
        h.log(
            Level::Err,
            &format!(
                "auth (device) for {user:?}: {why} (socket {}); returning PAM_AUTHINFO_UNAVAIL",
                socket.display()
            ),
        );
        PAM_AUTHINFO_UNAVAIL
    };
    let start = Request::DeviceStart {
        service: service.clone(),
        user: user.to_string(),
        rhost: log_item(h, Item::Rhost)?,
    };
    let (session, uri, code, expires_in, mut interval) =
        match daemon.call(&socket, &start, opts.timeout) {
            Ok(Response::DeviceStarted {
                session,
                verification_uri,
                user_code,
                expires_in,
                interval,
            }) => (session, verification_uri, user_code, expires_in, interval),
            Ok(Response::Decision(d)) => return Ok(d),
            other => return Err(unavailable(h, unusable(other))),
        };
    h.text_info(&format!(
        "To sign in, visit {uri} and enter the code {code}"
    ))
    .map_err(|c| {
        h.log(
            Level::Err,
            &format!(
                "device: cannot show the verification code: {}",
                code_name(c)
            ),
        );
        c
    })?;
    let lifetime = Duration::from_secs(u64::from(expires_in.min(1800)));
    let deadline = Instant::now() + lifetime;
    // Both the wall clock and the sum of the pauses count (the latter lets tests replace the
    // clock; in real use the two agree but for the exchanges' own time).
    let mut waited = Duration::ZERO;
    loop {
        let pause = Duration::from_secs(u64::from(interval.clamp(1, 60)));
        waited += pause;
        if waited > lifetime || Instant::now() + pause > deadline {
            h.log(
                Level::Notice,
                &format!("auth (device) for {user:?}: the code expired before it was approved"),
            );
            return Err(PAM_AUTH_ERR);
        }
        daemon.wait(pause);
        let poll = Request::DevicePoll {
            service: service.clone(),
            user: user.to_string(),
            session: session.clone(),
        };
        match daemon.call(&socket, &poll, opts.timeout) {
            Ok(Response::DevicePending { interval: next }) => interval = next,
            Ok(Response::Decision(d)) => {
                if opts.debug {
                    h.log(
                        Level::Debug,
                        &format!(
                            "auth (device): {user:?} -> {} account={:?} reason={:?}",
                            d.verdict.as_str(),
                            d.account,
                            d.reason
                        ),
                    );
                }
                return Ok(d);
            }
            other => return Err(unavailable(h, unusable(other))),
        }
    }
}

fn socket_path(opts: &Options, env: &Env) -> PathBuf {
    opts.socket
        .clone()
        .or_else(|| env.socket.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// Sends the request; the daemon's decision, or PAM_AUTHINFO_UNAVAIL when there is none.
fn ask_daemon<H: PamHandle, D: Daemon>(
    h: &mut H,
    opts: &Options,
    env: &Env,
    daemon: &mut D,
    phase: Phase,
    user: &str,
    credential: Option<Credential>,
) -> Result<Decision, Code> {
    let req = Request::Pam(PamRequest {
        service: log_item(h, Item::Service)?,
        phase,
        user: user.to_string(),
        rhost: log_item(h, Item::Rhost)?,
        verify: opts.verify,
        credential,
    });
    let socket = socket_path(opts, env);
    if opts.debug {
        h.log(
            Level::Debug,
            &format!(
                "asking accountmapd at {}: {}",
                socket.display(),
                req.log_form()
            ),
        );
    }
    let unavailable = |why: String| {
        h.log(
            Level::Err,
            &format!(
                "{} for {user:?}: {why} (socket {}); returning PAM_AUTHINFO_UNAVAIL",
                phase.as_str(),
                socket.display()
            ),
        );
        PAM_AUTHINFO_UNAVAIL
    };
    // A question with no credential to check (every account phase; the auth phase of
    // verify=none) has the same answer as the last time the daemon was asked it, until the
    // directory or the configuration changes: the daemon's decision table has it, and the
    // daemon never sees this call, so the module logs the decision itself.
    if phase != Phase::Auth || opts.verify == Verify::None {
        if let Request::Pam(p) = &req {
            if let Some(d) = daemon.decision_table(&socket, user) {
                h.log(
                    Level::Info,
                    &format!(
                        "decision from accountmapd's table ({}): service={:?} phase={} name={user:?} account={:?} uid={} verdict={} rule={:?} reason={:?}",
                        socket.display(),
                        p.service,
                        phase.as_str(),
                        d.account,
                        d.uid.map_or_else(|| "-".to_string(), |u| u.to_string()),
                        d.verdict.as_str(),
                        d.rule,
                        d.reason
                    ),
                );
                return Ok(d);
            }
        }
    }
    if let Some(since) = h.daemon_silent_since() {
        if since.elapsed() < SILENT_MEMORY {
            return Err(unavailable(format!(
                "accountmapd did not answer within timeout= on this handle {}s ago; not waiting again",
                since.elapsed().as_secs()
            )));
        }
    }
    let answer = daemon.call(&socket, &req, opts.timeout);
    let silent = matches!(answer, Err(ClientError::Timeout));
    let decision = match answer {
        Ok(Response::Decision(d)) => d,
        other => {
            let code = unavailable(unusable(other));
            if silent {
                if let Err(c) = h.note_daemon_silent(Instant::now()) {
                    h.log(
                        Level::Warning,
                        &format!(
                            "cannot remember that accountmapd is silent: {}",
                            code_name(c)
                        ),
                    );
                }
            }
            return Err(code);
        }
    };
    let code = code_for(decision.verdict, phase);
    if opts.debug {
        h.log(
            Level::Debug,
            &format!(
                "{}: {user:?} -> {} account={:?} rule={:?} reason={:?}: {}",
                phase.as_str(),
                decision.verdict.as_str(),
                decision.account,
                decision.rule,
                decision.reason,
                code_name(code)
            ),
        );
    }
    Ok(decision)
}

/// Why an answer the caller cannot use means that the daemon cannot answer: for the log line
/// that goes with PAM_AUTHINFO_UNAVAIL.
fn unusable(answer: Result<Response, ClientError>) -> String {
    match answer {
        Ok(Response::Error(m)) => format!("accountmapd refused the request: {m}"),
        Ok(other) => format!(
            "unexpected answer from accountmapd: {}",
            response_kind(&other)
        ),
        Err(e) => e.to_string(),
    }
}

fn response_kind(r: &Response) -> &'static str {
    match r {
        Response::Decision(_) => "decision",
        Response::Status(_) => "status",
        Response::Flushed(_) => "flushed",
        Response::Passwd(_) => "passwd",
        Response::Error(_) => "error",
        Response::DeviceStarted { .. } => "device started",
        Response::DevicePending { .. } => "device pending",
        Response::Ticket { .. } => "ticket",
    }
}

#[cfg(test)]
mod tests;
