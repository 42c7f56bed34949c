//! Where the built binaries and modules are, and the system tools every test needs.

use crate::wrappers::{LIBNSS_WRAPPER, LIBPAM_WRAPPER};
use std::path::{Path, PathBuf};

/// The workspace root (`tests/..`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `<target>/debug`, honouring CARGO_TARGET_DIR when it is set; `ACCOUNTMAP_ARTIFACT_DIR`
/// overrides both (the benchmarks point it at `<target>/release`).
pub fn build_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ACCOUNTMAP_ARTIFACT_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            workspace_root().join(dir)
        };
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir.join("debug")
            } else {
                workspace_root().join(dir).join("debug")
            }
        }
        _ => workspace_root().join("target").join("debug"),
    }
}

/// A built artifact, or a panic that says how to build it.
pub fn artifact(name: &str) -> PathBuf {
    let path = build_dir().join(name);
    if !path.is_file() {
        panic!(
            "{} is missing: run `cargo build --workspace` first (make test does)",
            path.display()
        );
    }
    path
}

pub fn accountmapd() -> PathBuf {
    artifact("accountmapd")
}

pub fn accountmapctl() -> PathBuf {
    artifact("accountmapctl")
}

pub fn accountmap_gate() -> PathBuf {
    artifact("accountmap-gate")
}

pub fn pam_module() -> PathBuf {
    artifact("libpam_accountmap.so")
}

pub fn nss_module() -> PathBuf {
    artifact("libnss_accountmap.so")
}

/// Fails the test with an install hint when a system prerequisite is missing.
pub fn require_system_tools() {
    for path in [LIBPAM_WRAPPER, LIBNSS_WRAPPER, "/usr/bin/pamtester"] {
        if !Path::new(path).exists() {
            panic!("{path} is missing: run scripts/install-deps.sh (make test does)");
        }
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
