//! The part of Linux-PAM's C interface this module uses, declared by hand.
//!
//! Every number and layout below is copied from `/usr/include/security/_pam_types.h`,
//! `pam_modules.h` and `pam_ext.h` (Linux-PAM 1.5) and is the same in OpenPAM where both define it.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};
use std::marker::{PhantomData, PhantomPinned};

/// A PAM return code.
pub type Code = c_int;

pub const PAM_SUCCESS: Code = 0;
pub const PAM_SERVICE_ERR: Code = 3;
pub const PAM_SYSTEM_ERR: Code = 4;
pub const PAM_BUF_ERR: Code = 5;
pub const PAM_PERM_DENIED: Code = 6;
pub const PAM_AUTH_ERR: Code = 7;
pub const PAM_AUTHINFO_UNAVAIL: Code = 9;
pub const PAM_USER_UNKNOWN: Code = 10;
pub const PAM_CONV_ERR: Code = 19;
pub const PAM_IGNORE: Code = 25;
pub const PAM_ABORT: Code = 26;

// Items for pam_get_item / pam_set_item.
pub const PAM_SERVICE: c_int = 1;
pub const PAM_USER: c_int = 2;
pub const PAM_RHOST: c_int = 4;
pub const PAM_CONV: c_int = 5;
pub const PAM_AUTHTOK: c_int = 6;

// Conversation message styles.
pub const PAM_PROMPT_ECHO_OFF: c_int = 1;
pub const PAM_TEXT_INFO: c_int = 4;

/// The opaque `pam_handle_t`. Only ever used behind a pointer that libpam hands over.
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

/// `struct pam_response`. Both it and `resp` are allocated with malloc by the application
/// and freed with free by the module.
#[repr(C)]
pub struct pam_response {
    pub resp: *mut c_char,
    pub resp_retcode: c_int,
}

/// The application's conversation function.
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

extern "C" {
    pub fn pam_get_item(
        pamh: *const pam_handle_t,
        item_type: c_int,
        item: *mut *const c_void,
    ) -> c_int;
    pub fn pam_set_item(pamh: *mut pam_handle_t, item_type: c_int, item: *const c_void) -> c_int;
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
    /// Variadic: always called with the format `"%s"` and one string.
    pub fn pam_syslog(pamh: *const pam_handle_t, priority: c_int, fmt: *const c_char, ...);

    /// glibc: `getenv` that returns NULL in a setuid/setgid (AT_SECURE) process.
    pub fn secure_getenv(name: *const c_char) -> *mut c_char;
}
