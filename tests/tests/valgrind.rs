//! `scripts/valgrind.sh` as a test: the PAM module in pamtester and the NSS module in getent
//! under valgrind memcheck, against a running daemon and with the daemon stopped. No memcheck
//! error, no leak in accountmap's code. About 20 s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn modules_under_memcheck_have_no_errors_and_no_leaks() {
    require_system_tools();
    if !std::path::Path::new("/usr/bin/valgrind").exists() {
        panic!("/usr/bin/valgrind is missing: run scripts/install-deps.sh (make test does)");
    }
    // The artefacts must exist (the script builds nothing).
    let _ = (accountmapd(), pam_module(), nss_module());
    let mut cmd = Command::new(workspace_root().join("scripts/valgrind.sh"));
    cmd.env("ACCOUNTMAP_ARTIFACT_DIR", build_dir());
    let out = run_bounded(&mut cmd, None, Duration::from_secs(180));
    eprintln!("{}", out.stdout);
    assert_eq!(out.code, 0, "{}", out.all());
    clean_stale_pam_wrapper_dirs();
}
