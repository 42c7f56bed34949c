//! libpam seen from the application side, as RStudio Server's `rserver-pam` uses it:
//! `pam_start(service, user)`, `pam_authenticate`, `pam_acct_mgmt`, `pam_end`, with
//! RStudio's strict conversation ([`classify`]).
//!
//! Only `accountmapctl test-login` links this (the daemon never runs PAM). Declarations are
//! copied by hand from Linux-PAM's `_pam_types.h` and `pam_appl.h`, like the PAM module's own
//! `ffi.rs`, so that no `-dev` header or binding crate is needed at run time.

#![allow(non_camel_case_types)]

use accountmap_wire::Credential;
use regex::Regex;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::marker::{PhantomData, PhantomPinned};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

pub type Code = c_int;
pub const PAM_SUCCESS: Code = 0;
const PAM_BUF_ERR: Code = 5;
const PAM_CONV_ERR: Code = 19;

pub const PAM_PROMPT_ECHO_OFF: c_int = 1;
pub const PAM_PROMPT_ECHO_ON: c_int = 2;
pub const PAM_ERROR_MSG: c_int = 3;
pub const PAM_TEXT_INFO: c_int = 4;
/// Linux-PAM's PAM_MAX_NUM_MSG: more messages in one call is a broken module.
const PAM_MAX_NUM_MSG: c_int = 32;

#[repr(C)]
struct pam_handle_t {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

#[repr(C)]
struct pam_message {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct pam_response {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const pam_message,
    resp: *mut *mut pam_response,
    appdata_ptr: *mut c_void,
) -> c_int;

#[repr(C)]
struct pam_conv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

#[link(name = "pam")]
extern "C" {
    fn pam_start(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const pam_conv,
        pamh: *mut *mut pam_handle_t,
    ) -> c_int;
    fn pam_authenticate(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut pam_handle_t, pam_status: c_int) -> c_int;
    fn pam_strerror(pamh: *mut pam_handle_t, errnum: c_int) -> *const c_char;
}

/// What RStudio's conversation does with one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A hidden prompt that ends in `password:`: answered with the password.
    Password,
    /// PAM_TEXT_INFO: accepted (answered with an empty string, not shown to the user).
    Info,
    /// Anything else makes RStudio's conversation return PAM_CONV_ERR: why.
    Refuse(String),
}

/// RStudio's rule for the prompt text of a PAM_PROMPT_ECHO_OFF message.
pub fn password_prompt() -> Option<Regex> {
    Regex::new(r"(?i)\bpassword:\s*$").ok()
}

/// RStudio's conversation, message by message (its `conv()` in `Pam.cpp`): hidden prompts
/// matching `\bpassword:\s*$` (any case) get the password, PAM_TEXT_INFO is accepted, and
/// PAM_PROMPT_ECHO_ON, PAM_ERROR_MSG, other hidden prompts and unknown styles fail the
/// whole conversation.
pub fn classify(prompt: &Regex, style: c_int, text: &str) -> Answer {
    match style {
        PAM_PROMPT_ECHO_OFF if prompt.is_match(text) => Answer::Password,
        PAM_PROMPT_ECHO_OFF => Answer::Refuse(format!(
            "a hidden prompt {text:?} that does not end in \"password:\""
        )),
        PAM_TEXT_INFO => Answer::Info,
        PAM_PROMPT_ECHO_ON => Answer::Refuse(format!("PAM_PROMPT_ECHO_ON {text:?}")),
        PAM_ERROR_MSG => Answer::Refuse(format!("PAM_ERROR_MSG {text:?}")),
        other => Answer::Refuse(format!("a message of unknown style {other} ({text:?})")),
    }
}

/// The conversation's state, behind `appdata_ptr`.
struct Conversation {
    password: Credential,
    prompt: Regex,
    /// Every message the stack sent, as `STYLE "text"`, in order.
    transcript: Vec<String>,
    /// The message that failed the conversation.
    broke: Option<String>,
    answered: usize,
}

/// What one sign-in did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// pam_start's code when it failed (then nothing else ran).
    pub start: Option<(Code, String)>,
    pub authenticate: Option<(Code, String)>,
    /// Run only after a successful pam_authenticate, as RStudio does.
    pub acct_mgmt: Option<(Code, String)>,
    pub transcript: Vec<String>,
    /// The message that made the conversation fail, as RStudio's would have.
    pub broke: Option<String>,
    /// How many password prompts were answered.
    pub answered: usize,
}

fn style_name(style: c_int) -> String {
    match style {
        PAM_PROMPT_ECHO_OFF => "PAM_PROMPT_ECHO_OFF".into(),
        PAM_PROMPT_ECHO_ON => "PAM_PROMPT_ECHO_ON".into(),
        PAM_ERROR_MSG => "PAM_ERROR_MSG".into(),
        PAM_TEXT_INFO => "PAM_TEXT_INFO".into(),
        other => format!("style {other}"),
    }
}

/// PAM's name and text for a code.
fn describe(pamh: *mut pam_handle_t, code: Code) -> String {
    // SAFETY: pam_strerror accepts any code and returns a static string (or NULL); it reads
    // nothing from `pamh` in Linux-PAM, and `pamh` is the live handle anyway.
    let text = unsafe { pam_strerror(pamh, code) };
    let text = if text.is_null() {
        String::new()
    } else {
        // SAFETY: a non-NULL result is a NUL-terminated static string.
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    };
    format!("{} ({text})", code_name(code))
}

pub fn code_name(code: Code) -> String {
    let name = match code {
        0 => "PAM_SUCCESS",
        1 => "PAM_OPEN_ERR",
        2 => "PAM_SYMBOL_ERR",
        3 => "PAM_SERVICE_ERR",
        4 => "PAM_SYSTEM_ERR",
        5 => "PAM_BUF_ERR",
        6 => "PAM_PERM_DENIED",
        7 => "PAM_AUTH_ERR",
        8 => "PAM_CRED_INSUFFICIENT",
        9 => "PAM_AUTHINFO_UNAVAIL",
        10 => "PAM_USER_UNKNOWN",
        11 => "PAM_MAXTRIES",
        12 => "PAM_NEW_AUTHTOK_REQD",
        13 => "PAM_ACCT_EXPIRED",
        19 => "PAM_CONV_ERR",
        25 => "PAM_IGNORE",
        26 => "PAM_ABORT",
        _ => return format!("PAM error {code}"),
    };
    name.to_string()
}

/// Signs `user` in to `service` as rserver-pam does: pam_start, pam_authenticate, then
/// pam_acct_mgmt (flags 0), pam_end. `Err` only for arguments C cannot take (NUL bytes).
pub fn sign_in(service: &str, user: &str, password: Credential) -> Result<Outcome, String> {
    let service_c = CString::new(service).map_err(|_| "the service name contains a NUL byte")?;
    let user_c = CString::new(user).map_err(|_| "the user name contains a NUL byte")?;
    if password.expose().contains(&0) {
        return Err("the password contains a NUL byte".into());
    }
    let prompt = password_prompt().ok_or("the password-prompt pattern does not compile")?;
    let mut state = Conversation {
        password,
        prompt,
        transcript: Vec::new(),
        broke: None,
        answered: 0,
    };
    let conv = pam_conv {
        conv: Some(conversation),
        appdata_ptr: ptr::addr_of_mut!(state).cast::<c_void>(),
    };
    let mut out = Outcome::default();
    let mut pamh: *mut pam_handle_t = ptr::null_mut();
    // SAFETY: both strings are NUL-terminated; `conv` and the `state` it points to live on
    // this stack frame until after pam_end below, so every conversation call libpam makes
    // sees them alive; `pamh` is a valid place for the handle.
    let rc = unsafe { pam_start(service_c.as_ptr(), user_c.as_ptr(), &conv, &mut pamh) };
    if rc != PAM_SUCCESS || pamh.is_null() {
        out.start = Some((rc, describe(pamh, rc)));
        if !pamh.is_null() {
            // SAFETY: a handle pam_start handed out is ended exactly once.
            unsafe { pam_end(pamh, rc) };
        }
        return Ok(out);
    }
    // SAFETY: `pamh` is the live handle from pam_start.
    let mut last = unsafe { pam_authenticate(pamh, 0) };
    out.authenticate = Some((last, describe(pamh, last)));
    if last == PAM_SUCCESS {
        // SAFETY: as above.
        last = unsafe { pam_acct_mgmt(pamh, 0) };
        out.acct_mgmt = Some((last, describe(pamh, last)));
    }
    // SAFETY: the live handle, ended exactly once; nothing uses it afterwards.
    unsafe { pam_end(pamh, last) };
    out.transcript = std::mem::take(&mut state.transcript);
    out.broke = state.broke.take();
    out.answered = state.answered;
    Ok(out)
}

/// The conversation function libpam calls. A panic (a bug) fails the conversation instead of
/// unwinding into C.
unsafe extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const pam_message,
    resp: *mut *mut pam_response,
    appdata_ptr: *mut c_void,
) -> c_int {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded unchanged from libpam, with `appdata_ptr` the `Conversation` that
        // `sign_in` registered and keeps alive.
        unsafe { converse(num_msg, msg, resp, appdata_ptr) }
    }))
    .unwrap_or(PAM_CONV_ERR)
}

/// # Safety
/// The PAM conversation contract: `msg` holds `num_msg` pointers to valid messages whose
/// texts are NULL or NUL-terminated; `resp` is a place for one pointer; `appdata_ptr` is the
/// `Conversation` of the running `sign_in`, used by nobody else during the call.
unsafe fn converse(
    num_msg: c_int,
    msg: *mut *const pam_message,
    resp: *mut *mut pam_response,
    appdata_ptr: *mut c_void,
) -> c_int {
    if msg.is_null() || resp.is_null() || appdata_ptr.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: `resp` is a valid place for one pointer (contract).
    unsafe { *resp = ptr::null_mut() };
    if !(1..=PAM_MAX_NUM_MSG).contains(&num_msg) {
        return PAM_CONV_ERR;
    }
    // SAFETY: `appdata_ptr` is the live `Conversation` of `sign_in`, not aliased (contract).
    let state = unsafe { &mut *appdata_ptr.cast::<Conversation>() };
    let n = num_msg as usize;
    // SAFETY: Linux-PAM passes an array of `num_msg` message pointers (contract).
    let messages = unsafe { std::slice::from_raw_parts(msg, n) };
    let mut answers = Vec::with_capacity(n);
    for &m in messages {
        if m.is_null() {
            state.broke = Some("a NULL message".into());
            return PAM_CONV_ERR;
        }
        // SAFETY: a non-NULL message pointer of the array points to a valid `pam_message`.
        let m = unsafe { &*m };
        let text = if m.msg.is_null() {
            String::new()
        } else {
            // SAFETY: a non-NULL message text is NUL-terminated (contract).
            unsafe { CStr::from_ptr(m.msg) }
                .to_string_lossy()
                .into_owned()
        };
        state
            .transcript
            .push(format!("{} {text:?}", style_name(m.msg_style)));
        match classify(&state.prompt, m.msg_style, &text) {
            Answer::Refuse(why) => {
                // RStudio returns at the first message it cannot answer.
                state.broke = Some(why);
                return PAM_CONV_ERR;
            }
            answer => answers.push(answer),
        }
    }
    // SAFETY: calloc of `n` zeroed responses (NULL `resp` strings); libpam frees the array and
    // each string with free().
    let array =
        unsafe { libc::calloc(n, std::mem::size_of::<pam_response>()) }.cast::<pam_response>();
    if array.is_null() {
        return PAM_BUF_ERR;
    }
    for (i, answer) in answers.iter().enumerate() {
        let bytes: &[u8] = match answer {
            Answer::Password => state.password.expose(),
            _ => b"",
        };
        // SAFETY: malloc of len + 1 bytes, filled below; NULL is handled.
        let s = unsafe { libc::malloc(bytes.len() + 1) }.cast::<u8>();
        if s.is_null() {
            // SAFETY: frees what this call allocated: the strings set so far and the array.
            unsafe { free_responses(array, i) };
            return PAM_BUF_ERR;
        }
        // SAFETY: `s` has room for `bytes.len() + 1` bytes and does not overlap `bytes`;
        // `array` has `n` elements and `i < n`.
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), s, bytes.len());
            *s.add(bytes.len()) = 0;
            (*array.add(i)).resp = s.cast::<c_char>();
            (*array.add(i)).resp_retcode = 0;
        }
        if *answer == Answer::Password {
            state.answered += 1;
        }
    }
    // SAFETY: `resp` is a valid place for one pointer; libpam now owns `array`.
    unsafe { *resp = array };
    PAM_SUCCESS
}

/// # Safety
/// `array` came from calloc with at least `filled` elements whose `resp` are NULL or malloc'd.
unsafe fn free_responses(array: *mut pam_response, filled: usize) {
    for i in 0..filled {
        // SAFETY: element `i < filled` of the array; its string is NULL or malloc'd, freed once.
        unsafe { libc::free((*array.add(i)).resp.cast::<c_void>()) };
    }
    // SAFETY: the calloc'd array, freed once.
    unsafe { libc::free(array.cast::<c_void>()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::pam_unix(PAM_PROMPT_ECHO_OFF, "Password: ", Answer::Password)]
    #[case::lower(PAM_PROMPT_ECHO_OFF, "password:", Answer::Password)]
    #[case::upper_trailing_spaces(PAM_PROMPT_ECHO_OFF, "LDAP PASSWORD:   ", Answer::Password)]
    #[case::sss_current(PAM_PROMPT_ECHO_OFF, "Current Password: ", Answer::Password)]
    #[case::info(PAM_TEXT_INFO, "Welcome", Answer::Info)]
    fn answered(#[case] style: c_int, #[case] text: &str, #[case] want: Answer) {
        let re = password_prompt().unwrap();
        assert_eq!(classify(&re, style, text), want);
    }

    #[rstest]
    #[case::echo_on_username(PAM_PROMPT_ECHO_ON, "login: ")]
    #[case::echo_on_password(PAM_PROMPT_ECHO_ON, "Password: ")]
    #[case::error_message(PAM_ERROR_MSG, "Authentication failed")]
    #[case::otp(PAM_PROMPT_ECHO_OFF, "Verification code: ")]
    #[case::no_word_boundary(PAM_PROMPT_ECHO_OFF, "mypassword: ")]
    #[case::text_after(PAM_PROMPT_ECHO_OFF, "Password: (again)")]
    #[case::german(PAM_PROMPT_ECHO_OFF, "Passwort: ")]
    #[case::binary_prompt(7, "")]
    fn refused(#[case] style: c_int, #[case] text: &str) {
        let re = password_prompt().unwrap();
        assert!(
            matches!(classify(&re, style, text), Answer::Refuse(_)),
            "{style} {text:?}"
        );
    }

    /// Calls the C conversation function the way libpam does, with these messages.
    fn converse_with(messages: &[(c_int, &str)]) -> (c_int, Vec<Option<String>>, Conversation) {
        let texts: Vec<CString> = messages
            .iter()
            .map(|(_, t)| CString::new(*t).unwrap())
            .collect();
        let msgs: Vec<pam_message> = messages
            .iter()
            .zip(&texts)
            .map(|((style, _), t)| pam_message {
                msg_style: *style,
                msg: t.as_ptr(),
            })
            .collect();
        let mut ptrs: Vec<*const pam_message> = msgs.iter().map(|m| m as *const _).collect();
        let mut state = Conversation {
            password: Credential::new(b"s3cret".to_vec()),
            prompt: password_prompt().unwrap(),
            transcript: Vec::new(),
            broke: None,
            answered: 0,
        };
        let mut resp: *mut pam_response = ptr::null_mut();
        let rc = unsafe {
            conversation(
                ptrs.len() as c_int,
                ptrs.as_mut_ptr(),
                &mut resp,
                ptr::addr_of_mut!(state).cast(),
            )
        };
        let mut answers = Vec::new();
        if !resp.is_null() {
            for i in 0..messages.len() {
                let r = unsafe { (*resp.add(i)).resp };
                answers.push(if r.is_null() {
                    None
                } else {
                    Some(unsafe { CStr::from_ptr(r) }.to_string_lossy().into_owned())
                });
            }
            unsafe { free_responses(resp, messages.len()) };
        }
        (rc, answers, state)
    }

    #[test]
    fn the_conversation_answers_password_prompts_and_info() {
        let (rc, answers, state) = converse_with(&[
            (PAM_TEXT_INFO, "Hello"),
            (PAM_PROMPT_ECHO_OFF, "Password: "),
        ]);
        assert_eq!(rc, PAM_SUCCESS);
        assert_eq!(answers, vec![Some(String::new()), Some("s3cret".into())]);
        assert_eq!((state.answered, state.broke), (1, None));
    }

    #[rstest]
    #[case::echo_on(PAM_PROMPT_ECHO_ON, "Username: ", "PAM_PROMPT_ECHO_ON \"Username: \"")]
    #[case::error(PAM_ERROR_MSG, "Sorry", "PAM_ERROR_MSG \"Sorry\"")]
    fn the_conversation_fails_and_says_which_message(
        #[case] style: c_int,
        #[case] text: &str,
        #[case] broke: &str,
    ) {
        let (rc, answers, state) =
            converse_with(&[(PAM_PROMPT_ECHO_OFF, "Password: "), (style, text)]);
        assert_eq!(rc, PAM_CONV_ERR);
        assert!(answers.is_empty(), "no reply array on failure");
        assert_eq!(state.broke.as_deref(), Some(broke));
        assert_eq!(state.transcript.len(), 2);
    }
}
