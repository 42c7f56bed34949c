//! `rserver_pam USER [SERVICE [0|1]]`, password on stdin: a test stand-in for RStudio Server's
//! PAM helper `rserver-pam`, which rserver runs once per sign-in and of which it reads only the
//! exit status. Written from rstudio/rstudio, not copied:
//!
//! - `src/cpp/server/pam/PamMain.cpp`: refuses to run when stdin or stdout is a terminal, or
//!   with other than 1 to 3 arguments (says so on stderr, sleeps 10 s, exits 1); SERVICE
//!   defaults to `rstudio`; the third argument, `1` (the default) or anything else, is
//!   `auth-pam-require-password-prompt`; reads the password from stdin, at most 200 bytes (more
//!   is a failure); exits 0 only when the PAM login succeeds.
//! - `src/cpp/server_core/system/Pam.cpp`: `pam_start(service, user, conv)`, then
//!   `pam_authenticate(0)`, then `pam_acct_mgmt(0)` (flags 0: PAM is not silenced), then
//!   `pam_end` with the last status. The conversation answers a `PAM_PROMPT_ECHO_OFF` prompt
//!   with the password only when the prompt matches `\bpassword:\s*$` case-insensitively (or
//!   the prompt requirement is off), answers `PAM_TEXT_INFO` with an empty string, and fails
//!   the whole conversation (PAM_CONV_ERR) on `PAM_PROMPT_ECHO_ON`, `PAM_ERROR_MSG`, any other
//!   style, or a password prompt it does not recognise.
//!
//! Deviations: rserver-pam logs to syslog, this helper to stderr (the stand-in keeps it in its
//! log); Pam.cpp writes the reply of message `i` through `resp[i]->` (right only for the
//! first message), this helper fills `(*resp)[i]` as the PAM contract says.

use pam_ffi::{
    alloc_responses, code_name, pam_conv, pam_message, pam_response, read_messages, AppHandle,
    Code, PAM_CONV_ERR, PAM_PROMPT_ECHO_OFF, PAM_SUCCESS, PAM_TEXT_INFO,
};
use std::ffi::{c_int, c_void, CString};
use std::io::{IsTerminal, Read};
use std::process::ExitCode;

/// PamMain.cpp's MAXPASS.
const MAX_PASSWORD: usize = 200;

/// What the conversation needs: the password and whether prompts must look like one.
struct ConvData {
    password: Vec<u8>,
    require_password_prompt: bool,
}

/// Pam.cpp's `\bpassword:\s*$` with `icase`, `$` matching at the end of the text or of a line
/// (Boost's default), without a regex engine.
fn is_password_prompt(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let needle = b"password:";
    (0..bytes.len().saturating_sub(needle.len() - 1)).any(|i| {
        if !bytes[i..].starts_with(needle) {
            return false;
        }
        // \b before `p`: the previous byte is not a word character.
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        // \s*$: whitespace up to the end, or up to a line end.
        let rest = &bytes[i + needle.len()..];
        let ws = rest
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .collect::<Vec<_>>();
        boundary && (ws.len() == rest.len() || ws.iter().any(|b| **b == b'\n'))
    })
}

/// The conversation function rserver-pam gives libpam (Pam.cpp's `conv`).
///
/// # Safety
/// Called by libpam under the conversation contract, with `appdata_ptr` the `ConvData` that
/// `main` keeps alive for the whole transaction.
unsafe extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const pam_message,
    resp: *mut *mut pam_response,
    appdata_ptr: *mut c_void,
) -> c_int {
    if resp.is_null() || appdata_ptr.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: libpam passes `num_msg` messages at `msg` (read_messages checks count and NULLs).
    let Some(messages) = (unsafe { read_messages(num_msg, msg.cast_const()) }) else {
        return PAM_CONV_ERR;
    };
    // SAFETY: `appdata_ptr` is main's `ConvData`, alive and not otherwise used during the call.
    let data = unsafe { &*appdata_ptr.cast::<ConvData>() };
    let mut answers: Vec<Option<&[u8]>> = Vec::with_capacity(messages.len());
    for m in &messages {
        let Some((style, text)) = m else {
            return PAM_CONV_ERR;
        };
        match *style {
            PAM_PROMPT_ECHO_OFF if !data.require_password_prompt || is_password_prompt(text) => {
                answers.push(Some(&data.password));
            }
            PAM_TEXT_INFO => answers.push(Some(b"")),
            _ => {
                eprintln!("rserver_pam: conversation refused: style {style}, text {text:?}");
                return PAM_CONV_ERR;
            }
        }
    }
    match alloc_responses(&answers) {
        Ok(array) => {
            // SAFETY: `resp` is non-NULL, libpam's place for the reply array it will free.
            unsafe { *resp = array };
            PAM_SUCCESS
        }
        Err(code) => code,
    }
}

/// PamMain.cpp's `inappropriateUsage`.
fn inappropriate_usage() -> ExitCode {
    eprintln!("\nThis binary is not designed for running this way\n-- the system administrator has been informed\n");
    std::thread::sleep(std::time::Duration::from_secs(10));
    ExitCode::FAILURE
}

fn login(service: &str, user: &str, data: &mut ConvData) -> Code {
    let (Ok(service), Ok(user)) = (CString::new(service), CString::new(user)) else {
        return PAM_CONV_ERR;
    };
    let conv = pam_conv {
        conv: Some(conversation),
        appdata_ptr: (data as *mut ConvData).cast::<c_void>(),
    };
    // SAFETY: `data` outlives the handle (ended before this function returns) and is used by
    // nothing else meanwhile.
    let mut pamh = match unsafe { AppHandle::start(&service, &user, &conv) } {
        Ok(h) => h,
        Err(rc) => {
            eprintln!("rserver_pam: pam_start failed: {}", code_name(rc));
            return rc;
        }
    };
    let rc = pamh.authenticate(0);
    if rc != PAM_SUCCESS {
        eprintln!("rserver_pam: pam_authenticate failed: {}", code_name(rc));
        pamh.end(rc);
        return rc;
    }
    let rc = pamh.acct_mgmt(0);
    if rc != PAM_SUCCESS {
        eprintln!("rserver_pam: pam_acct_mgmt failed: {}", code_name(rc));
    }
    pamh.end(rc);
    rc
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if std::io::stdin().is_terminal() || std::io::stdout().is_terminal() {
        return inappropriate_usage();
    }
    if args.len() < 2 || args.len() > 4 {
        return inappropriate_usage();
    }
    let user = &args[1];
    let service = args.get(2).map_or("rstudio", String::as_str);
    let require_password_prompt = args.get(3).is_none_or(|a| a == "1");

    let mut password = Vec::new();
    let read = std::io::stdin()
        .lock()
        .take(MAX_PASSWORD as u64 + 1)
        .read_to_end(&mut password);
    if read.is_err() {
        return ExitCode::FAILURE;
    }
    if password.len() > MAX_PASSWORD {
        eprintln!("rserver_pam: Password exceeded maximum length for user {user}");
        return ExitCode::FAILURE;
    }
    let mut data = ConvData {
        password,
        require_password_prompt,
    };
    let rc = login(service, user, &mut data);
    data.password.fill(0);
    if rc == PAM_SUCCESS {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::is_password_prompt;

    #[test]
    fn password_prompts_as_rserver_recognises_them() {
        for yes in [
            "Password: ",
            "password:",
            "LDAP Password:  ",
            "Password:\n",
            "x password:\t",
        ] {
            assert!(is_password_prompt(yes), "{yes:?}");
        }
        for no in [
            "Passwort: ",
            "Token: ",
            "OTP password: code",
            "mypassword:",
            "",
        ] {
            assert!(!is_password_prompt(no), "{no:?}");
        }
    }
}
