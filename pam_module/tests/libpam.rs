//! The built module under the real libpam (pam_start_confdir, no pam_wrapper, no root), talking
//! to a fake daemon on a Unix socket in this process. This covers what the unit tests cannot:
//! the conversation as the application sees it, pam_set_item / pam_set_data, freeing replies.

// Test code: a failed unwrap is a failed test (clippy.toml allows it only inside #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use accountmap_wire::{
    decode_request, encode_response, frame_len, Decision, Request, Response, Verdict,
    FRAME_HEADER_LEN,
};
use pam_ffi::{
    alloc_responses, pam_conv, pam_get_item, pam_getenv, pam_message, pam_response, read_messages,
    AppHandle, PAM_AUTHINFO_UNAVAIL, PAM_AUTH_ERR, PAM_CONV_ERR, PAM_PERM_DENIED,
    PAM_PROMPT_ECHO_OFF, PAM_SERVICE_ERR, PAM_SUCCESS, PAM_USER, PAM_USER_UNKNOWN,
};
use std::ffi::{c_int, c_void, CStr, CString};
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the test application's conversation behaves.
#[derive(Clone, Copy)]
enum ConvMode {
    Answer(&'static str),
    Fail,
    NullReply,
    NullResp,
}

struct App {
    mode: ConvMode,
    /// (style, text) of every message the module sent.
    seen: Vec<(c_int, String)>,
}

unsafe extern "C" fn conversation(
    n: c_int,
    msgs: *mut *const pam_message,
    resp: *mut *mut pam_response,
    appdata: *mut c_void,
) -> c_int {
    // SAFETY: libpam passes `n` valid messages and a place for the reply; `appdata` is the
    // `App` of the running transaction.
    let app = unsafe { &mut *(appdata as *mut App) };
    // SAFETY: as above.
    let messages = unsafe { read_messages(n, msgs) }.unwrap();
    app.seen.extend(messages.into_iter().map(Option::unwrap));
    let reply = match app.mode {
        ConvMode::Fail => return PAM_CONV_ERR,
        ConvMode::NullReply => std::ptr::null_mut(),
        ConvMode::NullResp => alloc_responses(&vec![None; n as usize]).unwrap(),
        ConvMode::Answer(pw) => {
            let mut answers = vec![None; n as usize];
            answers[0] = Some(pw.as_bytes());
            alloc_responses(&answers).unwrap()
        }
    };
    // SAFETY: as above: a place for the reply, which libpam frees.
    unsafe { *resp = reply };
    PAM_SUCCESS
}

/// A daemon double listening on a socket in a private directory.
struct FakeDaemon {
    dir: PathBuf,
    socket: PathBuf,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeDaemon {
    /// Answers every request with `answer`; `None` accepts and never answers.
    fn start(name: &str, answer: Option<Response>) -> FakeDaemon {
        let dir =
            std::env::temp_dir().join(format!("pam-accountmap-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("d.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let Some(answer) = answer.clone() else {
                    held.push(stream);
                    continue;
                };
                let mut header = [0u8; FRAME_HEADER_LEN];
                if stream.read_exact(&mut header).is_err() {
                    continue;
                }
                let mut body = vec![0u8; frame_len(header).unwrap()];
                stream.read_exact(&mut body).unwrap();
                seen.lock().unwrap().push(decode_request(&body).unwrap());
                let _ = stream.write_all(&encode_response(&answer));
            }
        });
        FakeDaemon {
            dir,
            socket,
            requests,
        }
    }

    fn calls(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// A PAM config directory with one service whose lines name the built module.
    fn service(&self, lines: &[&str]) -> PathBuf {
        let so = common::cdylib();
        let text: String = lines
            .iter()
            .map(|l| {
                l.replace("MODULE", so.to_str().unwrap())
                    .replace("SOCKET", self.socket.to_str().unwrap())
                    + "\n"
            })
            .collect();
        let confdir = self.dir.join("pam.d");
        std::fs::create_dir_all(&confdir).unwrap();
        std::fs::write(confdir.join("svc"), text).unwrap();
        confdir
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn decision(verdict: Verdict, account: &str) -> Response {
    Response::Decision(Decision {
        verdict,
        account: account.into(),
        uid: Some(1001),
        reason: "test".into(),
        rule: "identity".into(),
        groups: vec![],
    })
}

/// One PAM transaction. `pamh` is declared first: it is ended before the conversation's data
/// is dropped.
struct Txn {
    pamh: AppHandle,
    app: Box<App>,
    _conv: Box<pam_conv>,
}

impl Txn {
    fn start(confdir: &Path, user: &str, mode: ConvMode) -> Txn {
        let mut app = Box::new(App {
            mode,
            seen: Vec::new(),
        });
        let conv = Box::new(pam_conv {
            conv: Some(conversation),
            appdata_ptr: (&mut *app as *mut App).cast(),
        });
        let service = CString::new("svc").unwrap();
        let user = CString::new(user).unwrap();
        let dir = CString::new(confdir.to_str().unwrap()).unwrap();
        // SAFETY: `app` is boxed and kept in the `Txn`, dropped after the handle.
        let pamh = unsafe { AppHandle::start_confdir(&service, &user, &conv, &dir) }.unwrap();
        Txn {
            pamh,
            app,
            _conv: conv,
        }
    }

    fn user(&self) -> String {
        let mut p: *const c_void = std::ptr::null();
        assert_eq!(
            unsafe { pam_get_item(self.pamh.as_ptr(), PAM_USER, &mut p) },
            PAM_SUCCESS
        );
        unsafe { CStr::from_ptr(p.cast()) }
            .to_string_lossy()
            .into_owned()
    }

    fn env(&self, name: &str) -> Option<String> {
        let n = CString::new(name).unwrap();
        let p = unsafe { pam_getenv(self.pamh.as_ptr(), n.as_ptr()) };
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

const GET_ITEMS: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_get_items.so";

#[test]
fn rstudio_like_auth_then_account() {
    let d = FakeDaemon::start("allowed", Some(decision(Verdict::Allowed, "jdoe")));
    let has_get_items = std::path::Path::new(GET_ITEMS).exists();
    let mut lines = vec!["auth required MODULE socket=SOCKET verify=ldap"];
    let get_items = format!("auth optional {GET_ITEMS}");
    if has_get_items {
        lines.push(&get_items);
    }
    lines.push("account required MODULE socket=SOCKET");
    lines.push("session required MODULE");
    let confdir = d.service(&lines);
    let mut t = Txn::start(&confdir, "John.Doe@Company.com", ConvMode::Answer("s3cret"));

    assert_eq!(t.pamh.authenticate(0), PAM_SUCCESS);
    assert_eq!(
        t.app.seen,
        vec![(PAM_PROMPT_ECHO_OFF, "Password: ".to_string())]
    );
    assert_eq!(t.user(), "jdoe");
    match &d.requests.lock().unwrap()[0] {
        Request::Pam(p) => {
            assert_eq!(p.user, "John.Doe@Company.com");
            assert_eq!(p.service, "svc");
            assert_eq!(p.credential.as_ref().unwrap().expose(), b"s3cret");
        }
        other => panic!("{other:?}"),
    }
    if has_get_items {
        // The module offered the typed password to the modules stacked after it.
        assert_eq!(t.env("PAM_AUTHTOK").as_deref(), Some("s3cret"));
    }

    // The account phase reuses the decision kept with pam_set_data.
    assert_eq!(t.pamh.acct_mgmt(0), PAM_SUCCESS);
    assert_eq!(d.calls(), 1);
    assert_eq!(t.pamh.setcred(0), PAM_SUCCESS);
    assert_eq!(t.pamh.open_session(0), PAM_SUCCESS);
    assert_eq!(t.pamh.close_session(0), PAM_SUCCESS);
    t.app.seen.clear();
    drop(t); // pam_end runs the cleanup of the kept decision
}

#[test]
fn account_alone_asks_the_daemon() {
    let d = FakeDaemon::start("account", Some(decision(Verdict::PolicyDenied, "jdoe")));
    let confdir = d.service(&["account required MODULE socket=SOCKET"]);
    let mut t = Txn::start(&confdir, "jdoe", ConvMode::Fail);
    assert_eq!(t.pamh.acct_mgmt(0), PAM_PERM_DENIED);
    assert_eq!(d.calls(), 1);
    assert!(t.app.seen.is_empty());
}

#[test]
fn denied_leaves_pam_user_alone() {
    let d = FakeDaemon::start("denied", Some(decision(Verdict::PolicyDenied, "jdoe")));
    let confdir = d.service(&["auth required MODULE socket=SOCKET"]);
    let mut t = Txn::start(&confdir, "alias", ConvMode::Fail);
    assert_eq!(t.pamh.authenticate(0), PAM_AUTH_ERR);
    assert_eq!(t.user(), "alias");
    // Issue 13, item 3: a refusal asks for the password as a wrong password would (one
    // echo-off prompt); a failed conversation leaves the refusal as it was.
    assert_eq!(
        t.app.seen,
        vec![(PAM_PROMPT_ECHO_OFF, "Password: ".to_string())]
    );
}

#[test]
fn a_refusal_asks_for_the_password_like_a_wrong_password() {
    for verdict in [Verdict::PolicyDenied, Verdict::UserUnknown] {
        let d = FakeDaemon::start(
            &format!("refused-prompt-{verdict:?}"),
            Some(decision(verdict, "jdoe")),
        );
        let confdir = d.service(&["auth requisite MODULE socket=SOCKET"]);
        let mut t = Txn::start(&confdir, "alias", ConvMode::Answer("typed"));
        assert_ne!(t.pamh.authenticate(0), PAM_SUCCESS);
        assert_eq!(
            t.app.seen,
            vec![(PAM_PROMPT_ECHO_OFF, "Password: ".to_string())],
            "{verdict:?}"
        );
    }
    // Allowed with verify=none: nothing is asked (pam_unix after us asks).
    let d = FakeDaemon::start(
        "allowed-no-prompt",
        Some(decision(Verdict::Allowed, "jdoe")),
    );
    let confdir = d.service(&["auth requisite MODULE socket=SOCKET"]);
    let mut t = Txn::start(&confdir, "alias", ConvMode::Answer("typed"));
    assert_eq!(t.pamh.authenticate(0), PAM_SUCCESS);
    assert!(t.app.seen.is_empty());
}

#[test]
fn keep_user_keeps_the_name() {
    let d = FakeDaemon::start("keep", Some(decision(Verdict::Allowed, "jdoe")));
    let confdir = d.service(&["auth required MODULE socket=SOCKET keep_user"]);
    let mut t = Txn::start(&confdir, "alias", ConvMode::Fail);
    assert_eq!(t.pamh.authenticate(0), PAM_SUCCESS);
    assert_eq!(t.user(), "alias");
}

#[test]
fn conversation_failures_are_conv_err() {
    let d = FakeDaemon::start("conv", Some(decision(Verdict::Allowed, "jdoe")));
    let confdir = d.service(&["auth required MODULE socket=SOCKET verify=proxy"]);
    for mode in [ConvMode::Fail, ConvMode::NullReply, ConvMode::NullResp] {
        let mut t = Txn::start(&confdir, "jdoe", mode);
        assert_eq!(t.pamh.authenticate(0), PAM_CONV_ERR);
        assert_eq!(t.app.seen.len(), 1);
    }
    assert_eq!(d.calls(), 0);
}

#[test]
fn empty_password_is_refused_without_the_daemon() {
    let d = FakeDaemon::start("empty", Some(decision(Verdict::Allowed, "jdoe")));
    let confdir = d.service(&["auth required MODULE socket=SOCKET verify=ldap"]);
    let mut t = Txn::start(&confdir, "jdoe", ConvMode::Answer(""));
    assert_eq!(t.pamh.authenticate(0), PAM_AUTH_ERR);
    assert_eq!(d.calls(), 0);
}

#[test]
fn use_first_pass_without_a_password_does_not_converse() {
    let d = FakeDaemon::start("ufp", Some(decision(Verdict::Allowed, "jdoe")));
    let confdir = d.service(&["auth required MODULE socket=SOCKET verify=ldap use_first_pass"]);
    let mut t = Txn::start(&confdir, "jdoe", ConvMode::Answer("pw"));
    assert_eq!(t.pamh.authenticate(0), PAM_AUTH_ERR);
    assert!(t.app.seen.is_empty());
    assert_eq!(d.calls(), 0);
}

#[test]
fn no_daemon_is_authinfo_unavail_at_once() {
    let d = FakeDaemon::start("nodaemon", None);
    let confdir = d.service(&[
        "auth required MODULE socket=/nonexistent/accountmap.sock fail_delay=0",
        "account required MODULE socket=/nonexistent/accountmap.sock",
    ]);
    let mut t = Txn::start(&confdir, "jdoe", ConvMode::Fail);
    let start = Instant::now();
    assert_eq!(t.pamh.authenticate(0), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(t.pamh.acct_mgmt(0), PAM_AUTHINFO_UNAVAIL);
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn silent_daemon_is_authinfo_unavail_after_the_timeout() {
    let d = FakeDaemon::start("silent", None);
    let confdir = d.service(&["auth required MODULE socket=SOCKET timeout=1 fail_delay=0"]);
    let mut t = Txn::start(&confdir, "jdoe", ConvMode::Fail);
    let start = Instant::now();
    assert_eq!(t.pamh.authenticate(0), PAM_AUTHINFO_UNAVAIL);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(1500),
        "{took:?}"
    );
}

/// Issue 13, item 7: sshd tries keyboard-interactive, then password (and retries) on one PAM
/// handle; a frozen daemon must cost that handle one `timeout=`, not one per attempt. Before
/// the fix, three calls here took three timeouts (3 s).
#[test]
fn frozen_daemon_costs_one_timeout_per_handle() {
    let d = FakeDaemon::start("frozen", None);
    let confdir = d.service(&[
        "auth required MODULE socket=SOCKET timeout=1 fail_delay=0",
        "account required MODULE socket=SOCKET timeout=1",
    ]);
    let mut t = Txn::start(&confdir, "jdoe", ConvMode::Fail);
    let start = Instant::now();
    assert_eq!(t.pamh.authenticate(0), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(t.pamh.authenticate(0), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(t.pamh.acct_mgmt(0), PAM_AUTHINFO_UNAVAIL);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(1600),
        "three calls on one handle took {took:?}"
    );
}

/// Issue 13, item 3: the auth phase registers its failure delay (pam_fail_delay) on every
/// call, so an instant refusal (unknown user, policy) waits like pam_unix's wrong password.
/// libpam randomises the delay (up to half of it either way). `fail_delay=0` registers none.
#[test]
fn refusals_wait_the_registered_failure_delay() {
    let d = FakeDaemon::start("delay", Some(decision(Verdict::UserUnknown, "")));
    let confdir = d.service(&["auth required MODULE socket=SOCKET fail_delay=800"]);
    let mut t = Txn::start(&confdir, "nobody-here", ConvMode::Fail);
    let start = Instant::now();
    assert_eq!(t.pamh.authenticate(0), PAM_USER_UNKNOWN);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(390) && took < Duration::from_millis(1500),
        "{took:?}"
    );

    let confdir = d.service(&["auth required MODULE socket=SOCKET fail_delay=0"]);
    let mut t = Txn::start(&confdir, "nobody-here", ConvMode::Fail);
    let start = Instant::now();
    assert_eq!(t.pamh.authenticate(0), PAM_USER_UNKNOWN);
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn bad_option_values_are_service_err() {
    let d = FakeDaemon::start("badopt", Some(decision(Verdict::Allowed, "jdoe")));
    let confdir = d.service(&["auth required MODULE socket=SOCKET verify=bogus"]);
    let mut t = Txn::start(&confdir, "jdoe", ConvMode::Fail);
    assert_eq!(t.pamh.authenticate(0), PAM_SERVICE_ERR);
    assert_eq!(d.calls(), 0);
}
