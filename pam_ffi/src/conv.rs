//! The two ends of a conversation call that several callers share: reading the messages (an
//! application's conversation function) and allocating or freeing the reply array (the
//! application allocates it, the caller of the conversation frees it).

use crate::{pam_message, pam_response, Code, PAM_BUF_ERR, PAM_CONV_ERR, PAM_MAX_NUM_MSG};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;

/// The messages of one conversation call, copied: `(msg_style, text)` each, the text decoded
/// lossily and empty when NULL; a NULL message is `None`. `None` overall when `msg` is NULL or
/// `num_msg` is not in `1..=PAM_MAX_NUM_MSG` (a broken caller).
///
/// One message means the same under Linux-PAM's array-of-pointers reading of
/// `const struct pam_message **` and Solaris' pointer-to-array one; for more, this reads
/// Linux-PAM's.
///
/// # Safety
/// The conversation contract: `msg` is NULL or points to `num_msg` pointers, each NULL or a
/// valid `pam_message` whose `msg` is NULL or a NUL-terminated string, all readable during the
/// call.
pub unsafe fn read_messages(
    num_msg: c_int,
    msg: *const *const pam_message,
) -> Option<Vec<Option<(c_int, String)>>> {
    if msg.is_null() || !(1..=PAM_MAX_NUM_MSG).contains(&num_msg) {
        return None;
    }
    let n = usize::try_from(num_msg).ok()?;
    // SAFETY: by the contract, `msg` points to `num_msg` (checked positive) readable pointers.
    let pointers = unsafe { std::slice::from_raw_parts(msg, n) };
    let messages = pointers
        .iter()
        .map(|&m| {
            if m.is_null() {
                return None;
            }
            // SAFETY: a non-NULL entry points to a valid `pam_message` (contract).
            let m = unsafe { &*m };
            let text = if m.msg.is_null() {
                String::new()
            } else {
                // SAFETY: a non-NULL message text is NUL-terminated (contract).
                unsafe { CStr::from_ptr(m.msg) }
                    .to_string_lossy()
                    .into_owned()
            };
            Some((m.msg_style, text))
        })
        .collect();
    Some(messages)
}

/// A reply array as libpam expects it from a conversation: `answers.len()` responses from
/// calloc, each `resp` NULL (`None`) or a malloc'd NUL-terminated copy of the bytes, and
/// `resp_retcode` 0. The caller hands the pointer to libpam (through the conversation's `resp`),
/// which frees it; [`free_responses`] frees it otherwise.
///
/// Errors: PAM_CONV_ERR for no answers or an answer holding a NUL byte (C would cut it
/// short), PAM_BUF_ERR when memory runs out (then nothing stays allocated).
pub fn alloc_responses(answers: &[Option<&[u8]>]) -> Result<*mut pam_response, Code> {
    let n = answers.len();
    if n == 0 || answers.iter().flatten().any(|a| a.contains(&0)) {
        return Err(PAM_CONV_ERR);
    }
    // SAFETY: calloc of `n` zeroed responses: NULL `resp`, `resp_retcode` 0. NULL is handled.
    let array =
        unsafe { libc::calloc(n, std::mem::size_of::<pam_response>()) }.cast::<pam_response>();
    if array.is_null() {
        return Err(PAM_BUF_ERR);
    }
    for (i, answer) in answers.iter().enumerate() {
        let Some(bytes) = answer else { continue };
        // SAFETY: malloc of len + 1 bytes, filled below; NULL is handled.
        let s = unsafe { libc::malloc(bytes.len() + 1) }.cast::<u8>();
        if s.is_null() {
            // SAFETY: `array` is the calloc'd array of `n` responses whose `resp` are the
            // strings set so far or NULL; nothing uses it afterwards.
            unsafe { free_responses(array, n) };
            return Err(PAM_BUF_ERR);
        }
        // SAFETY: `s` has room for `bytes.len() + 1` bytes and does not overlap `bytes`;
        // `array` has `n` elements and `i < n`.
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), s, bytes.len());
            *s.add(bytes.len()) = 0;
            (*array.add(i)).resp = s.cast::<c_char>();
        }
    }
    Ok(array)
}

/// Wipes (explicit_bzero: they may hold passwords) and frees the first `n` response strings of
/// a reply array, then the array. NULL `array` does nothing.
///
/// # Safety
/// `array` is NULL or a malloc'd (calloc'd) array of at least `n` responses, each `resp` NULL or
/// a malloc'd NUL-terminated string, as a conversation returns it; the caller owns them, and
/// nothing uses any of them afterwards.
pub unsafe fn free_responses(array: *mut pam_response, n: usize) {
    if array.is_null() {
        return;
    }
    for i in 0..n {
        // SAFETY: element `i < n` of the array (contract).
        let resp = unsafe { (*array.add(i)).resp };
        if !resp.is_null() {
            // SAFETY: a malloc'd NUL-terminated string owned by the caller, wiped up to its
            // terminator and freed exactly once.
            unsafe {
                libc::explicit_bzero(resp.cast::<c_void>(), libc::strlen(resp));
                libc::free(resp.cast::<c_void>());
            }
        }
    }
    // SAFETY: the malloc'd array, freed exactly once.
    unsafe { libc::free(array.cast::<c_void>()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PAM_PROMPT_ECHO_OFF, PAM_TEXT_INFO};
    use std::ffi::CString;

    #[test]
    fn messages_are_copied_and_broken_calls_refused() {
        let text = CString::new("Password: ").unwrap();
        let a = pam_message {
            msg_style: PAM_PROMPT_ECHO_OFF,
            msg: text.as_ptr(),
        };
        let b = pam_message {
            msg_style: PAM_TEXT_INFO,
            msg: ptr::null(),
        };
        let list = [&a as *const pam_message, ptr::null(), &b];
        // SAFETY: three entries, valid or NULL, with valid or NULL texts.
        let got = unsafe { read_messages(3, list.as_ptr()) }.unwrap();
        assert_eq!(
            got,
            vec![
                Some((PAM_PROMPT_ECHO_OFF, "Password: ".to_string())),
                None,
                Some((PAM_TEXT_INFO, String::new())),
            ]
        );
        // SAFETY: NULL and out-of-range counts are refused before anything is read.
        unsafe {
            assert_eq!(read_messages(1, ptr::null()), None);
            assert_eq!(read_messages(0, list.as_ptr()), None);
            assert_eq!(read_messages(PAM_MAX_NUM_MSG + 1, list.as_ptr()), None);
        }
    }

    #[test]
    fn responses_hold_copies_and_nulls() {
        let array = alloc_responses(&[Some(b"s3cret"), None, Some(b"")]).unwrap();
        // SAFETY: three responses from alloc_responses, read, then freed once.
        unsafe {
            let r = std::slice::from_raw_parts(array, 3);
            assert_eq!(CStr::from_ptr(r[0].resp).to_bytes(), b"s3cret");
            assert!(r[1].resp.is_null());
            assert_eq!(CStr::from_ptr(r[2].resp).to_bytes(), b"");
            assert!(r.iter().all(|r| r.resp_retcode == 0));
            free_responses(array, 3);
        }
        assert_eq!(alloc_responses(&[]), Err(PAM_CONV_ERR));
        assert_eq!(alloc_responses(&[Some(b"a\0b")]), Err(PAM_CONV_ERR));
        // SAFETY: NULL is allowed and does nothing.
        unsafe { free_responses(ptr::null_mut(), 1) };
    }
}
