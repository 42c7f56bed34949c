//! Linux-PAM's C interface, declared once, by hand, for every crate of the workspace that talks
//! to libpam: the PAM module (`pam_accountmap.so`, module side), `accountmapctl test-login`, the
//! benchmarks and the module's integration tests (application side).
//!
//! Why a crate of our own and not a binding crate: the module is loaded into sshd, su, sudo and
//! rserver, so what it links must be small enough to read line by line. This crate depends on
//! `libc` only, has no build script and runs no code of its own; it holds the opaque handle, the
//! conversation structures, the return codes and constants the workspace uses, one
//! [`code_name`] table, the `extern "C"` declarations (linked with `-lpam` here, once), and a few
//! application-side helpers ([`AppHandle`], [`read_messages`], [`alloc_responses`],
//! [`free_responses`]) shared by several callers.
//!
//! Every number, layout and signature is copied from `/usr/include/security/_pam_types.h`,
//! `pam_appl.h`, `pam_modules.h` and `pam_ext.h` (Linux-PAM 1.5); the module-side items are
//! the same in OpenPAM where both define them. `pam_get_user` is deliberately not declared: the
//! module must never prompt for a user name (`pam_module/tests/exports.rs` checks it).
//!
//! Functions that nothing calls are not linked: a binary's undefined libpam symbols are the ones
//! it uses (the module's are the module-side ones; `pam_start_confdir`, Linux-PAM 1.4, is
//! referenced only by the tests and the benchmarks).

#![allow(non_camel_case_types)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod app;
mod conv;

pub use app::AppHandle;
pub use conv::{alloc_responses, free_responses, read_messages};

use std::ffi::{c_char, c_int, c_void};
use std::marker::{PhantomData, PhantomPinned};

/// A PAM return code.
pub type Code = c_int;

pub const PAM_SUCCESS: Code = 0;
pub const PAM_OPEN_ERR: Code = 1;
pub const PAM_SYMBOL_ERR: Code = 2;
pub const PAM_SERVICE_ERR: Code = 3;
pub const PAM_SYSTEM_ERR: Code = 4;
pub const PAM_BUF_ERR: Code = 5;
pub const PAM_PERM_DENIED: Code = 6;
pub const PAM_AUTH_ERR: Code = 7;
pub const PAM_CRED_INSUFFICIENT: Code = 8;
pub const PAM_AUTHINFO_UNAVAIL: Code = 9;
pub const PAM_USER_UNKNOWN: Code = 10;
pub const PAM_MAXTRIES: Code = 11;
pub const PAM_NEW_AUTHTOK_REQD: Code = 12;
pub const PAM_ACCT_EXPIRED: Code = 13;
pub const PAM_SESSION_ERR: Code = 14;
pub const PAM_CRED_UNAVAIL: Code = 15;
pub const PAM_CRED_EXPIRED: Code = 16;
pub const PAM_CRED_ERR: Code = 17;
pub const PAM_NO_MODULE_DATA: Code = 18;
pub const PAM_CONV_ERR: Code = 19;
pub const PAM_AUTHTOK_ERR: Code = 20;
pub const PAM_AUTHTOK_RECOVERY_ERR: Code = 21;
pub const PAM_AUTHTOK_LOCK_BUSY: Code = 22;
pub const PAM_AUTHTOK_DISABLE_AGING: Code = 23;
pub const PAM_TRY_AGAIN: Code = 24;
pub const PAM_IGNORE: Code = 25;
pub const PAM_ABORT: Code = 26;
pub const PAM_AUTHTOK_EXPIRED: Code = 27;
pub const PAM_MODULE_UNKNOWN: Code = 28;
pub const PAM_BAD_ITEM: Code = 29;
pub const PAM_CONV_AGAIN: Code = 30;
pub const PAM_INCOMPLETE: Code = 31;

/// What [`code_name`] says for a number that is not a Linux-PAM return code.
pub const UNKNOWN_CODE: &str = "an unknown PAM code";

/// The name of a Linux-PAM return code, as `_pam_types.h` spells it ("PAM_AUTH_ERR"), for
/// messages and logs; [`UNKNOWN_CODE`] for any other number.
pub fn code_name(code: Code) -> &'static str {
    match code {
        PAM_SUCCESS => "PAM_SUCCESS",
        PAM_OPEN_ERR => "PAM_OPEN_ERR",
        PAM_SYMBOL_ERR => "PAM_SYMBOL_ERR",
        PAM_SERVICE_ERR => "PAM_SERVICE_ERR",
        PAM_SYSTEM_ERR => "PAM_SYSTEM_ERR",
        PAM_BUF_ERR => "PAM_BUF_ERR",
        PAM_PERM_DENIED => "PAM_PERM_DENIED",
        PAM_AUTH_ERR => "PAM_AUTH_ERR",
        PAM_CRED_INSUFFICIENT => "PAM_CRED_INSUFFICIENT",
        PAM_AUTHINFO_UNAVAIL => "PAM_AUTHINFO_UNAVAIL",
        PAM_USER_UNKNOWN => "PAM_USER_UNKNOWN",
        PAM_MAXTRIES => "PAM_MAXTRIES",
        PAM_NEW_AUTHTOK_REQD => "PAM_NEW_AUTHTOK_REQD",
        PAM_ACCT_EXPIRED => "PAM_ACCT_EXPIRED",
        PAM_SESSION_ERR => "PAM_SESSION_ERR",
        PAM_CRED_UNAVAIL => "PAM_CRED_UNAVAIL",
        PAM_CRED_EXPIRED => "PAM_CRED_EXPIRED",
        PAM_CRED_ERR => "PAM_CRED_ERR",
        PAM_NO_MODULE_DATA => "PAM_NO_MODULE_DATA",
        PAM_CONV_ERR => "PAM_CONV_ERR",
        PAM_AUTHTOK_ERR => "PAM_AUTHTOK_ERR",
        PAM_AUTHTOK_RECOVERY_ERR => "PAM_AUTHTOK_RECOVERY_ERR",
        PAM_AUTHTOK_LOCK_BUSY => "PAM_AUTHTOK_LOCK_BUSY",
        PAM_AUTHTOK_DISABLE_AGING => "PAM_AUTHTOK_DISABLE_AGING",
        PAM_TRY_AGAIN => "PAM_TRY_AGAIN",
        PAM_IGNORE => "PAM_IGNORE",
        PAM_ABORT => "PAM_ABORT",
        PAM_AUTHTOK_EXPIRED => "PAM_AUTHTOK_EXPIRED",
        PAM_MODULE_UNKNOWN => "PAM_MODULE_UNKNOWN",
        PAM_BAD_ITEM => "PAM_BAD_ITEM",
        PAM_CONV_AGAIN => "PAM_CONV_AGAIN",
        PAM_INCOMPLETE => "PAM_INCOMPLETE",
        _ => UNKNOWN_CODE,
    }
}

// Items for pam_get_item / pam_set_item.
pub const PAM_SERVICE: c_int = 1;
pub const PAM_USER: c_int = 2;
pub const PAM_RHOST: c_int = 4;
pub const PAM_CONV: c_int = 5;
pub const PAM_AUTHTOK: c_int = 6;

// Conversation message styles.
pub const PAM_PROMPT_ECHO_OFF: c_int = 1;
pub const PAM_PROMPT_ECHO_ON: c_int = 2;
pub const PAM_ERROR_MSG: c_int = 3;
pub const PAM_TEXT_INFO: c_int = 4;

/// The most messages Linux-PAM passes in one conversation call.
pub const PAM_MAX_NUM_MSG: c_int = 32;

/// The opaque `pam_handle_t`. Only ever used behind a pointer that libpam hands out.
#[repr(C)]
pub struct pam_handle_t {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `struct pam_message`.
#[repr(C)]
pub struct pam_message {
    pub msg_style: c_int,
    pub msg: *const c_char,
}

/// `struct pam_response`. Both the array and each `resp` are allocated with malloc by the
/// application's conversation and freed with free by whoever called it (libpam or a module).
#[repr(C)]
pub struct pam_response {
    pub resp: *mut c_char,
    pub resp_retcode: c_int,
}

/// The application's conversation function, `pam_conv.conv`.
pub type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const pam_message,
    resp: *mut *mut pam_response,
    appdata_ptr: *mut c_void,
) -> c_int;

/// `struct pam_conv`. A NULL `conv` is represented as `None`.
#[repr(C)]
pub struct pam_conv {
    pub conv: Option<ConvFn>,
    pub appdata_ptr: *mut c_void,
}

/// The cleanup callback of `pam_set_data`.
pub type CleanupFn =
    unsafe extern "C" fn(pamh: *mut pam_handle_t, data: *mut c_void, error_status: c_int);

#[link(name = "pam")]
extern "C" {
    // Both sides (_pam_types.h).
    pub fn pam_get_item(
        pamh: *const pam_handle_t,
        item_type: c_int,
        item: *mut *const c_void,
    ) -> c_int;
    pub fn pam_set_item(pamh: *mut pam_handle_t, item_type: c_int, item: *const c_void) -> c_int;
    pub fn pam_strerror(pamh: *mut pam_handle_t, errnum: c_int) -> *const c_char;
    pub fn pam_getenv(pamh: *mut pam_handle_t, name: *const c_char) -> *const c_char;
    /// Registers a failure delay of at least `musec_delay` microseconds: libpam waits the
    /// largest one registered (varied by up to half either way) once, when the whole
    /// pam_authenticate fails (`int pam_fail_delay(pam_handle_t *, unsigned int)`).
    pub fn pam_fail_delay(pamh: *mut pam_handle_t, musec_delay: std::ffi::c_uint) -> c_int;

    // Module side (pam_modules.h, pam_ext.h).
    pub fn pam_get_data(
        pamh: *const pam_handle_t,
        module_data_name: *const c_char,
        data: *mut *const c_void,
    ) -> c_int;
    pub fn pam_set_data(
        pamh: *mut pam_handle_t,
        module_data_name: *const c_char,
        data: *mut c_void,
        cleanup: Option<CleanupFn>,
    ) -> c_int;
    /// Variadic: call it with the format `"%s"` and one string, never with a format built from
    /// data.
    pub fn pam_syslog(pamh: *const pam_handle_t, priority: c_int, fmt: *const c_char, ...);

    // Application side (pam_appl.h).
    pub fn pam_start(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const pam_conv,
        pamh: *mut *mut pam_handle_t,
    ) -> c_int;
    /// Linux-PAM 1.4 and later.
    pub fn pam_start_confdir(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const pam_conv,
        confdir: *const c_char,
        pamh: *mut *mut pam_handle_t,
    ) -> c_int;
    pub fn pam_end(pamh: *mut pam_handle_t, pam_status: c_int) -> c_int;
    pub fn pam_authenticate(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
    pub fn pam_setcred(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
    pub fn pam_acct_mgmt(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
    pub fn pam_open_session(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
    pub fn pam_close_session(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::ffi::CStr;

    #[test]
    fn every_linux_pam_code_has_its_own_name() {
        let names: BTreeSet<&str> = (PAM_SUCCESS..=PAM_INCOMPLETE).map(code_name).collect();
        assert_eq!(names.len(), 32);
        assert!(names.iter().all(|n| n.starts_with("PAM_")));
        assert_eq!(code_name(PAM_AUTH_ERR), "PAM_AUTH_ERR");
        assert_eq!(code_name(-1), UNKNOWN_CODE);
        assert_eq!(code_name(32), UNKNOWN_CODE);
    }

    #[test]
    fn the_table_agrees_with_libpam() {
        // pam_strerror accepts a NULL handle (no PAM_NONNULL in _pam_types.h) and Linux-PAM's
        // texts are fixed: two spot checks that the numbers above are libpam's.
        for (code, text) in [
            (PAM_AUTH_ERR, "Authentication failure"),
            (PAM_CONV_ERR, "Conversation error"),
        ] {
            // SAFETY: pam_strerror takes any code and returns NULL or a static C string.
            let p = unsafe { pam_strerror(std::ptr::null_mut(), code) };
            assert!(!p.is_null());
            // SAFETY: non-NULL: a NUL-terminated static string.
            assert_eq!(unsafe { CStr::from_ptr(p) }.to_str().unwrap(), text);
        }
    }
}
