//! Shared by the integration tests: where the built module is.

// Test code: a failed unwrap is a failed test (clippy.toml allows it only inside #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

/// The cdylib cargo built for this test run. `cargo test` builds the library's crate types
/// next to the test executables (target/<profile>/deps) and does not always copy the cdylib up
/// to target/<profile>, so the copy in deps is the fresh one.
pub fn cdylib() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let candidates = [
        deps.join("libpam_accountmap.so"),
        deps.parent().unwrap().join("libpam_accountmap.so"),
    ];
    for c in &candidates {
        if c.exists() {
            return c.clone();
        }
    }
    panic!("libpam_accountmap.so not found in {candidates:?}");
}
