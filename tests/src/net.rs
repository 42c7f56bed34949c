//! TCP helpers for the servers and fault-injecting proxies the tests put on loopback.

/// Makes closing `s` send a TCP RST instead of a FIN (SO_LINGER with a zero timeout): how the
/// fault-injecting proxies of the LDAP and OIDC fault tests imitate a server that resets.
pub fn reset_on_close(s: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor owned by `s`, and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
