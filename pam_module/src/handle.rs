//! [`PamHandle`] over a real `pam_handle_t`: the only place that talks to libpam.

use crate::core::{CachedDecision, Item, Level, PamHandle};
use accountmap_wire::Credential;
use pam_ffi::{
    self as ffi, pam_conv, pam_handle_t, pam_message, pam_response, Code, PAM_AUTHTOK, PAM_BUF_ERR,
    PAM_CONV, PAM_CONV_ERR, PAM_PROMPT_ECHO_OFF, PAM_RHOST, PAM_SERVICE, PAM_SUCCESS,
    PAM_SYSTEM_ERR, PAM_TEXT_INFO, PAM_USER,
};
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::ptr;
use std::time::{Duration, Instant};

/// The key of the auth decision kept with pam_set_data. The version is part of it so that two
/// different builds of the module in one stack never read each other's layout.
const DATA_KEY: &[u8] =
    concat!("pam_accountmap_decision/", env!("CARGO_PKG_VERSION"), "\0").as_bytes();

/// The key of the moment a call on this handle found the daemon silent (a boxed `Instant`),
/// versioned like [`DATA_KEY`].
const SILENT_KEY: &[u8] =
    concat!("pam_accountmap_silent/", env!("CARGO_PKG_VERSION"), "\0").as_bytes();

/// The one prompt the module sends (PAM_PROMPT_ECHO_OFF), as a C string.
const PROMPT: &[u8] = b"Password: \0";

/// The format handed to the variadic pam_syslog: the message is always an argument, never a
/// format, so a `%` in a user name cannot read the stack.
const LOG_FORMAT: &[u8] = b"%s\0";

/// A handle libpam passed to one of the hooks, valid for the duration of that call.
pub struct FfiHandle {
    pamh: *mut pam_handle_t,
}

impl FfiHandle {
    /// `None` for a NULL handle.
    ///
    /// # Safety
    /// `pamh` is NULL or the handle libpam passed to the running hook, and the returned value
    /// does not outlive that call.
    pub unsafe fn new(pamh: *mut pam_handle_t) -> Option<FfiHandle> {
        if pamh.is_null() {
            None
        } else {
            Some(FfiHandle { pamh })
        }
    }

    /// The raw pointer of an item; `Ok(null)` when it is not set.
    fn raw_item(&self, which: c_int) -> Result<*const c_void, Code> {
        let mut item: *const c_void = ptr::null();
        // SAFETY: `self.pamh` is the live handle of the running hook (see `new`), and `item` is
        // a valid place for libpam to write one pointer to.
        let rc = unsafe { ffi::pam_get_item(self.pamh, which, &mut item) };
        if rc == PAM_SUCCESS {
            Ok(item)
        } else {
            Err(rc)
        }
    }

    /// A string item's bytes (copied); `Ok(None)` when it is not set.
    fn string_item(&self, which: c_int) -> Result<Option<Vec<u8>>, Code> {
        let p = self.raw_item(which)?;
        if p.is_null() {
            return Ok(None);
        }
        // SAFETY: for the string items (PAM_SERVICE, PAM_USER, PAM_RHOST, PAM_AUTHTOK) libpam
        // stores a NUL-terminated copy it owns, alive until the item is next set; we copy the
        // bytes out before returning and before calling anything that could set it.
        let bytes = unsafe { CStr::from_ptr(p.cast::<c_char>()) }
            .to_bytes()
            .to_vec();
        Ok(Some(bytes))
    }

    fn set_string_item(&mut self, which: c_int, value: &[u8]) -> Result<(), Code> {
        if value.contains(&0) {
            return Err(PAM_SYSTEM_ERR);
        }
        let mut buf = Vec::with_capacity(value.len() + 1);
        buf.extend_from_slice(value);
        buf.push(0);
        // A Credential wipes its bytes when dropped: the buffer may hold a password.
        let buf = Credential::new(buf);
        // SAFETY: `buf` is NUL-terminated with no interior NUL and outlives the call; libpam
        // copies the string (it does not keep the pointer). `self.pamh` is the live handle.
        let rc =
            unsafe { ffi::pam_set_item(self.pamh, which, buf.expose().as_ptr().cast::<c_void>()) };
        if rc == PAM_SUCCESS {
            Ok(())
        } else {
            Err(rc)
        }
    }
}

/// The reply array of a conversation: wiped and freed (it was malloc'd by the application and
/// belongs to us now) when this goes out of scope, on every path.
struct Reply(*mut pam_response);

impl Drop for Reply {
    fn drop(&mut self) {
        // SAFETY: `self.0` is NULL or the reply to a one-message conversation: per the PAM
        // conversation contract one malloc'd `pam_response` whose `resp` is NULL or a malloc'd
        // NUL-terminated string, both now owned by the module. They are wiped and freed exactly
        // once here, and nothing reads them afterwards.
        unsafe { ffi::free_responses(self.0, 1) };
    }
}

impl PamHandle for FfiHandle {
    fn item(&self, which: Item) -> Result<Option<Vec<u8>>, Code> {
        self.string_item(match which {
            Item::Service => PAM_SERVICE,
            Item::User => PAM_USER,
            Item::Rhost => PAM_RHOST,
        })
    }

    fn set_user(&mut self, user: &str) -> Result<(), Code> {
        self.set_string_item(PAM_USER, user.as_bytes())
    }

    fn authtok(&self) -> Result<Option<Credential>, Code> {
        Ok(self.string_item(PAM_AUTHTOK)?.map(Credential::new))
    }

    fn set_authtok(&mut self, cred: &Credential) -> Result<(), Code> {
        self.set_string_item(PAM_AUTHTOK, cred.expose())
    }

    fn text_info(&mut self, msg: &str) -> Result<(), Code> {
        let text = CString::new(msg.replace('\0', "")).map_err(|_| PAM_BUF_ERR)?;
        let conv = self.raw_item(PAM_CONV).map_err(|_| PAM_CONV_ERR)?;
        if conv.is_null() {
            return Err(PAM_CONV_ERR);
        }
        // SAFETY: as in prompt_password: the application's `struct pam_conv`, read only.
        let conv = unsafe { &*conv.cast::<pam_conv>() };
        let Some(func) = conv.conv else {
            return Err(PAM_CONV_ERR);
        };
        let message = pam_message {
            msg_style: PAM_TEXT_INFO,
            msg: text.as_ptr(),
        };
        let mut messages: [*const pam_message; 1] = [&message];
        let mut raw: *mut pam_response = ptr::null_mut();
        // SAFETY: one valid message whose text (`text`) outlives the call; the application
        // may allocate a reply (unused for PAM_TEXT_INFO), which `Reply` frees.
        let rc = unsafe { func(1, messages.as_mut_ptr(), &mut raw, conv.appdata_ptr) };
        let _reply = Reply(raw);
        if rc == PAM_SUCCESS {
            Ok(())
        } else if rc == PAM_BUF_ERR {
            Err(PAM_BUF_ERR)
        } else {
            Err(PAM_CONV_ERR)
        }
    }

    fn prompt_password(&mut self) -> Result<Credential, Code> {
        let conv = self.raw_item(PAM_CONV).map_err(|_| PAM_CONV_ERR)?;
        if conv.is_null() {
            return Err(PAM_CONV_ERR);
        }
        // SAFETY: PAM_CONV is a `struct pam_conv` the application passed to pam_start; libpam
        // keeps a copy alive for the life of the handle. We only read it.
        let conv = unsafe { &*conv.cast::<pam_conv>() };
        let Some(func) = conv.conv else {
            return Err(PAM_CONV_ERR);
        };
        let message = pam_message {
            msg_style: PAM_PROMPT_ECHO_OFF,
            msg: PROMPT.as_ptr().cast::<c_char>(),
        };
        // One message: Linux-PAM's array-of-pointers and Solaris' pointer-to-array readings of
        // `const struct pam_message **` agree.
        let mut messages: [*const pam_message; 1] = [&message];
        let mut raw: *mut pam_response = ptr::null_mut();
        // SAFETY: the conversation contract: one valid message (its text a static C string)
        // that outlives the call, and a place for the reply pointer. The application may
        // allocate a reply, which `Reply` takes over below.
        let rc = unsafe { func(1, messages.as_mut_ptr(), &mut raw, conv.appdata_ptr) };
        let reply = Reply(raw);
        if rc != PAM_SUCCESS {
            // libpam's own pam_prompt frees a reply left by a failed conversation, too.
            return Err(if rc == PAM_BUF_ERR {
                PAM_BUF_ERR
            } else {
                PAM_CONV_ERR
            });
        }
        if reply.0.is_null() {
            return Err(PAM_CONV_ERR);
        }
        // SAFETY: non-NULL reply of a successful one-message conversation: one `pam_response`.
        let resp = unsafe { (*reply.0).resp };
        if resp.is_null() {
            return Err(PAM_CONV_ERR);
        }
        // SAFETY: `resp` is the application's NUL-terminated answer, alive until `reply` is
        // dropped at the end of this function.
        let bytes = unsafe { CStr::from_ptr(resp) }.to_bytes().to_vec();
        Ok(Credential::new(bytes))
    }

    fn log(&self, level: Level, msg: &str) {
        let Ok(msg) = CString::new(msg.replace('\0', "\\0")) else {
            return;
        };
        // SAFETY: `self.pamh` is the live handle; the format is the static "%s" and the one
        // variadic argument is a valid NUL-terminated string, as that format expects.
        unsafe {
            ffi::pam_syslog(
                self.pamh,
                level.priority(),
                LOG_FORMAT.as_ptr().cast::<c_char>(),
                msg.as_ptr(),
            );
        }
    }

    fn cached_decision(&self) -> Option<CachedDecision> {
        let mut data: *const c_void = ptr::null();
        // SAFETY: `self.pamh` is the live handle, DATA_KEY a static C string, `data` a valid
        // place for one pointer.
        let rc =
            unsafe { ffi::pam_get_data(self.pamh, DATA_KEY.as_ptr().cast::<c_char>(), &mut data) };
        if rc != PAM_SUCCESS || data.is_null() {
            return None;
        }
        // SAFETY: under DATA_KEY (versioned) only `store_decision` of this very build stores
        // anything, and it stores a `Box<CachedDecision>` that lives until libpam calls
        // `cleanup`, which cannot happen during this hook.
        let cached = unsafe { &*data.cast::<CachedDecision>() };
        Some(cached.clone())
    }

    fn store_decision(&mut self, decision: Option<CachedDecision>) -> Result<(), Code> {
        let key = DATA_KEY.as_ptr().cast::<c_char>();
        let rc = match decision {
            // SAFETY: live handle, static key; NULL data with no cleanup replaces (and, through
            // the old entry's cleanup, frees) an earlier decision.
            None => unsafe { ffi::pam_set_data(self.pamh, key, ptr::null_mut(), None) },
            Some(d) => {
                let data = Box::into_raw(Box::new(d));
                // SAFETY: live handle, static key; on success libpam owns `data` and hands it
                // back to `cleanup` exactly once (on replacement or at pam_end).
                let rc = unsafe {
                    ffi::pam_set_data(self.pamh, key, data.cast::<c_void>(), Some(cleanup))
                };
                if rc != PAM_SUCCESS {
                    // SAFETY: libpam refused the pointer and did not call `cleanup`: it is still
                    // ours, from the Box::into_raw just above.
                    drop(unsafe { Box::from_raw(data) });
                }
                rc
            }
        };
        if rc == PAM_SUCCESS {
            Ok(())
        } else {
            Err(rc)
        }
    }

    fn fail_delay(&mut self, delay: Duration) -> Result<(), Code> {
        let usec = c_uint::try_from(delay.as_micros()).unwrap_or(c_uint::MAX);
        // SAFETY: `self.pamh` is the live handle of the running hook; the call takes a plain
        // integer and only records it in the handle.
        let rc = unsafe { ffi::pam_fail_delay(self.pamh, usec) };
        if rc == PAM_SUCCESS {
            Ok(())
        } else {
            Err(rc)
        }
    }

    fn daemon_silent_since(&self) -> Option<Instant> {
        let mut data: *const c_void = ptr::null();
        // SAFETY: `self.pamh` is the live handle, SILENT_KEY a static C string, `data` a valid
        // place for one pointer.
        let rc = unsafe {
            ffi::pam_get_data(self.pamh, SILENT_KEY.as_ptr().cast::<c_char>(), &mut data)
        };
        if rc != PAM_SUCCESS || data.is_null() {
            return None;
        }
        // SAFETY: under SILENT_KEY (versioned) only `note_daemon_silent` of this very build
        // stores anything: a `Box<Instant>` alive until libpam calls `cleanup_instant`, which
        // cannot happen during this hook.
        Some(unsafe { *data.cast::<Instant>() })
    }

    fn note_daemon_silent(&mut self, at: Instant) -> Result<(), Code> {
        let data = Box::into_raw(Box::new(at));
        // SAFETY: live handle, static key; on success libpam owns `data` and hands it back to
        // `cleanup_instant` exactly once (on replacement or at pam_end).
        let rc = unsafe {
            ffi::pam_set_data(
                self.pamh,
                SILENT_KEY.as_ptr().cast::<c_char>(),
                data.cast::<c_void>(),
                Some(cleanup_instant),
            )
        };
        if rc == PAM_SUCCESS {
            Ok(())
        } else {
            // SAFETY: libpam refused the pointer and did not call the cleanup: it is still
            // ours, from the Box::into_raw just above.
            drop(unsafe { Box::from_raw(data) });
            Err(rc)
        }
    }
}

/// Frees an `Instant` stored by `note_daemon_silent`. Called by libpam, at pam_end or when the
/// entry is replaced.
unsafe extern "C" fn cleanup_instant(
    _pamh: *mut pam_handle_t,
    data: *mut c_void,
    _error_status: c_int,
) {
    if data.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `data` came from Box::into_raw in `note_daemon_silent` and libpam calls the
        // cleanup of an entry exactly once.
        drop(unsafe { Box::from_raw(data.cast::<Instant>()) });
    });
}

/// Frees a decision stored by `store_decision`. Called by libpam, at pam_end or when the entry
/// is replaced.
unsafe extern "C" fn cleanup(_pamh: *mut pam_handle_t, data: *mut c_void, _error_status: c_int) {
    if data.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `data` came from Box::into_raw in `store_decision` and libpam calls the cleanup
        // of an entry exactly once.
        drop(unsafe { Box::from_raw(data.cast::<CachedDecision>()) });
    });
}
