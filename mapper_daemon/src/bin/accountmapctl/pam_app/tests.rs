use super::*;
use pam_ffi::free_responses;
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
    let (rc, answers, state) = converse_with(&[(PAM_PROMPT_ECHO_OFF, "Password: "), (style, text)]);
    assert_eq!(rc, PAM_CONV_ERR);
    assert!(answers.is_empty(), "no reply array on failure");
    assert_eq!(state.broke.as_deref(), Some(broke));
    assert_eq!(state.transcript.len(), 2);
}
