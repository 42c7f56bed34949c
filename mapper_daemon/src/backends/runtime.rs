//! How the backends run their async I/O (ldap3, reqwest: both on tokio) from the engine, which
//! is synchronous: it runs on the server's connection threads, which have entered the daemon's
//! multi-threaded runtime.

use std::future::Future;

/// Drives `fut` to completion from synchronous code that has entered the daemon's
/// multi-threaded runtime: a connection thread (where `block_in_place` does nothing), a
/// blocking task, or a runtime worker (which `block_in_place` hands over to another thread
/// first). Anything else (no runtime, a current-thread runtime) is an error, not a panic.
pub(crate) fn block_on<F: Future>(fut: F) -> Result<F::Output, String> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
        "the LDAP and OIDC backends run only inside accountmapd's runtime".to_string()
    })?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return Err("the LDAP and OIDC backends need a multi-threaded runtime".into());
    }
    Ok(tokio::task::block_in_place(|| handle.block_on(fut)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_runtime_the_backend_answers_an_error() {
        assert!(block_on(async { 1 }).is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_current_thread_runtime_is_refused_not_a_panic() {
        assert!(block_on(async { 1 }).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_runtime_worker_drives_the_future() {
        assert_eq!(block_on(async { 1 }), Ok(1));
    }
}
