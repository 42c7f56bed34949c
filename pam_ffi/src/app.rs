//! [`AppHandle`]: a PAM transaction as an application runs it, ended exactly once.

use crate::{
    pam_acct_mgmt, pam_authenticate, pam_close_session, pam_conv, pam_end, pam_handle_t,
    pam_open_session, pam_setcred, pam_start, pam_start_confdir, Code, PAM_SUCCESS, PAM_SYSTEM_ERR,
};
use std::ffi::{c_int, CStr};
use std::ptr::{self, NonNull};

/// A live handle from `pam_start` or `pam_start_confdir`. [`AppHandle::end`], or dropping it,
/// calls `pam_end` once, with the code of the last call (PAM_SUCCESS when none was made).
pub struct AppHandle {
    pamh: NonNull<pam_handle_t>,
    last: Code,
}

impl AppHandle {
    /// `pam_start(service, user, conv)`. `Err` holds pam_start's code (PAM_SYSTEM_ERR if it
    /// reported success without a handle); a handle it left anyway has been ended.
    ///
    /// # Safety
    /// `conv.conv`, when libpam calls it during any call on the returned handle, may rely on
    /// `conv.appdata_ptr` as it expects: whatever that pointer refers to must stay valid (and
    /// not be used elsewhere during those calls) until the handle is ended or dropped. libpam
    /// copies the `pam_conv` itself.
    pub unsafe fn start(service: &CStr, user: &CStr, conv: &pam_conv) -> Result<AppHandle, Code> {
        let mut pamh: *mut pam_handle_t = ptr::null_mut();
        // SAFETY: NUL-terminated strings and a `pam_conv` valid for the call; `pamh` is a valid
        // place for the handle. The conversation's data is the caller's contract.
        let rc = unsafe { pam_start(service.as_ptr(), user.as_ptr(), conv, &mut pamh) };
        // SAFETY: `pamh` is what pam_start just wrote.
        unsafe { Self::started(rc, pamh) }
    }

    /// `pam_start_confdir(service, user, conv, confdir)` (Linux-PAM 1.4 and later): the
    /// service file is read from `confdir` instead of /etc/pam.d. As [`AppHandle::start`].
    ///
    /// # Safety
    /// As [`AppHandle::start`].
    pub unsafe fn start_confdir(
        service: &CStr,
        user: &CStr,
        conv: &pam_conv,
        confdir: &CStr,
    ) -> Result<AppHandle, Code> {
        let mut pamh: *mut pam_handle_t = ptr::null_mut();
        // SAFETY: as in `start`, with `confdir` NUL-terminated too.
        let rc = unsafe {
            pam_start_confdir(
                service.as_ptr(),
                user.as_ptr(),
                conv,
                confdir.as_ptr(),
                &mut pamh,
            )
        };
        // SAFETY: `pamh` is what pam_start_confdir just wrote.
        unsafe { Self::started(rc, pamh) }
    }

    /// # Safety
    /// `rc` and `pamh` are what pam_start or pam_start_confdir just returned and wrote.
    unsafe fn started(rc: Code, pamh: *mut pam_handle_t) -> Result<AppHandle, Code> {
        match (rc, NonNull::new(pamh)) {
            (PAM_SUCCESS, Some(pamh)) => Ok(AppHandle {
                pamh,
                last: PAM_SUCCESS,
            }),
            (PAM_SUCCESS, None) => Err(PAM_SYSTEM_ERR),
            (rc, Some(pamh)) => {
                // SAFETY: a handle pam_start left despite failing: ended once, never used.
                unsafe { pam_end(pamh.as_ptr(), rc) };
                Err(rc)
            }
            (rc, None) => Err(rc),
        }
    }

    /// The raw handle, for the calls this type does not wrap (pam_get_item, pam_getenv,
    /// pam_strerror). Valid until the handle is ended or dropped.
    pub fn as_ptr(&self) -> *mut pam_handle_t {
        self.pamh.as_ptr()
    }

    fn call(
        &mut self,
        f: unsafe extern "C" fn(*mut pam_handle_t, c_int) -> c_int,
        flags: c_int,
    ) -> Code {
        // SAFETY: `self.pamh` is a live handle (ended only by `end` or `drop`, which consume
        // it); `f` is one of libpam's (pam_handle_t *, int) calls; the conversation's data is
        // valid by the contract of `start`.
        self.last = unsafe { f(self.pamh.as_ptr(), flags) };
        self.last
    }

    pub fn authenticate(&mut self, flags: c_int) -> Code {
        self.call(pam_authenticate, flags)
    }

    pub fn acct_mgmt(&mut self, flags: c_int) -> Code {
        self.call(pam_acct_mgmt, flags)
    }

    pub fn setcred(&mut self, flags: c_int) -> Code {
        self.call(pam_setcred, flags)
    }

    pub fn open_session(&mut self, flags: c_int) -> Code {
        self.call(pam_open_session, flags)
    }

    pub fn close_session(&mut self, flags: c_int) -> Code {
        self.call(pam_close_session, flags)
    }

    /// `pam_end(pamh, status)`: its code.
    pub fn end(self, status: Code) -> Code {
        let pamh = self.pamh.as_ptr();
        std::mem::forget(self);
        // SAFETY: the live handle, ended exactly once: `self` is forgotten, so `drop` does not
        // end it again.
        unsafe { pam_end(pamh, status) }
    }
}

impl Drop for AppHandle {
    fn drop(&mut self) {
        // SAFETY: the live handle, ended exactly once (`end` forgets `self` instead).
        unsafe { pam_end(self.pamh.as_ptr(), self.last) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PAM_AUTH_ERR;
    use std::ffi::CString;

    fn cs(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn a_transaction_through_a_private_service() {
        let dir = std::env::temp_dir().join(format!("pam-ffi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("svc"),
            "auth required pam_permit.so\naccount required pam_deny.so\n\
             session required pam_permit.so\n",
        )
        .unwrap();
        let confdir = CString::new(dir.to_str().unwrap()).unwrap();
        let (svc, none, user) = (cs("svc"), cs("none"), cs("jdoe"));
        let conv = pam_conv {
            conv: None,
            appdata_ptr: ptr::null_mut(),
        };
        // SAFETY: no conversation function, so no data to keep alive.
        let mut h = unsafe { AppHandle::start_confdir(&svc, &user, &conv, &confdir) }.unwrap();
        assert_eq!(h.authenticate(0), PAM_SUCCESS);
        assert_eq!(h.acct_mgmt(0), PAM_AUTH_ERR); // pam_deny's account verdict
        assert_eq!(h.open_session(0), PAM_SUCCESS);
        assert_eq!(h.close_session(0), PAM_SUCCESS);
        assert_eq!(h.end(PAM_SUCCESS), PAM_SUCCESS);
        // A service without auth lines: libpam's verdict, then `drop` ends the handle.
        std::fs::write(dir.join("none"), "account required pam_permit.so\n").unwrap();
        // SAFETY: as above.
        let mut h = unsafe { AppHandle::start_confdir(&none, &user, &conv, &confdir) }.unwrap();
        assert_ne!(h.authenticate(0), PAM_SUCCESS);
        assert_ne!(h.setcred(0), PAM_SUCCESS);
        drop(h);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
