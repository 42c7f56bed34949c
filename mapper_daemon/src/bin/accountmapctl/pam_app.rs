//! libpam seen from the application side, as RStudio Server's `rserver-pam` uses it:
//! `pam_start(service, user)`, `pam_authenticate`, `pam_acct_mgmt`, `pam_end`, with
//! RStudio's strict conversation ([`classify`]).
//!
//! Only `accountmapctl test-login` uses this (the daemon never runs PAM). libpam's C interface
//! is the workspace's `pam_ffi` crate, the one the PAM module uses.

use accountmap_wire::Credential;
pub use pam_ffi::PAM_SUCCESS;
use pam_ffi::{
    alloc_responses, code_name, pam_conv, pam_handle_t, pam_message, pam_response, pam_strerror,
    read_messages, AppHandle, Code, PAM_CONV_ERR, PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF,
    PAM_PROMPT_ECHO_ON, PAM_TEXT_INFO, UNKNOWN_CODE,
};
use regex::Regex;
use std::ffi::{c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

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

/// PAM's name and text for a code; `pamh` is the live handle or NULL.
fn describe(pamh: *mut pam_handle_t, code: Code) -> String {
    // SAFETY: pam_strerror accepts any code and returns a static string (or NULL); it reads
    // nothing from `pamh` in Linux-PAM (the header does not require it to be non-NULL).
    let text = unsafe { pam_strerror(pamh, code) };
    let text = if text.is_null() {
        String::new()
    } else {
        // SAFETY: a non-NULL result is a NUL-terminated static string.
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    };
    match code_name(code) {
        UNKNOWN_CODE => format!("PAM error {code} ({text})"),
        name => format!("{name} ({text})"),
    }
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
    // SAFETY: `state`, which `conv` points to, lives on this stack frame until after the
    // handle is ended below, and nothing else touches it meanwhile.
    let mut pamh = match unsafe { AppHandle::start(&service_c, &user_c, &conv) } {
        Ok(pamh) => pamh,
        Err(rc) => {
            out.start = Some((rc, describe(ptr::null_mut(), rc)));
            return Ok(out);
        }
    };
    let mut last = pamh.authenticate(0);
    out.authenticate = Some((last, describe(pamh.as_ptr(), last)));
    if last == PAM_SUCCESS {
        last = pamh.acct_mgmt(0);
        out.acct_mgmt = Some((last, describe(pamh.as_ptr(), last)));
    }
    pamh.end(last);
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
    // SAFETY: `msg` holds `num_msg` valid messages (contract); more than PAM_MAX_NUM_MSG or
    // none is a broken module: `None`.
    let Some(messages) = (unsafe { read_messages(num_msg, msg) }) else {
        return PAM_CONV_ERR;
    };
    // SAFETY: `appdata_ptr` is the live `Conversation` of `sign_in`, not aliased (contract).
    let state = unsafe { &mut *appdata_ptr.cast::<Conversation>() };
    let mut answers = Vec::with_capacity(messages.len());
    let mut passwords = 0;
    for m in messages {
        let Some((style, text)) = m else {
            state.broke = Some("a NULL message".into());
            return PAM_CONV_ERR;
        };
        state
            .transcript
            .push(format!("{} {text:?}", style_name(style)));
        match classify(&state.prompt, style, &text) {
            Answer::Refuse(why) => {
                // RStudio returns at the first message it cannot answer.
                state.broke = Some(why);
                return PAM_CONV_ERR;
            }
            // PAM_TEXT_INFO gets an empty string, not NULL, as RStudio's does.
            Answer::Password => {
                passwords += 1;
                answers.push(Some(state.password.expose()));
            }
            Answer::Info => answers.push(Some(b"".as_slice())),
        }
    }
    let array = match alloc_responses(&answers) {
        Ok(array) => array,
        Err(code) => return code,
    };
    state.answered += passwords;
    // SAFETY: `resp` is a valid place for one pointer; libpam now owns `array`.
    unsafe { *resp = array };
    PAM_SUCCESS
}

#[cfg(test)]
mod tests;
