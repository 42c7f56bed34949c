//! Compiles the C helpers of the benchmarks with the system C compiler, each found by the
//! benchmarks through an environment variable set here:
//! - `fresh.c`, the one-sign-in / one-look-up helper that fresh-bench starts as a new process
//!   each time: `fresh-pam` (linked to libpam; FRESH_PAM) and `fresh-nss` (libc only;
//!   FRESH_NSS);
//! - `floor_nss.c`: `libnss_amfloor.so.2`, nss-cache-bench's do-nothing NSS module (FLOOR_NSS);
//! - `dlcost.c`: `dlcost`, its load-cost probe (DLCOST).
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    // (environment variable, output, source, arguments after `-O2 -Wall -Wextra -o OUTPUT`)
    let helpers: [(&str, &str, &str, &[&str]); 4] = [
        ("FRESH_PAM", "fresh-pam", "fresh.c", &["-lpam"]),
        ("FRESH_NSS", "fresh-nss", "fresh.c", &["-DFRESH_NSS_ONLY"]),
        (
            "FLOOR_NSS",
            "libnss_amfloor.so.2",
            "floor_nss.c",
            &["-shared", "-fPIC", "-Wl,-soname,libnss_amfloor.so.2"],
        ),
        ("DLCOST", "dlcost", "dlcost.c", &["-ldl"]),
    ];
    for (var, name, source, extra) in helpers {
        let bin = out.join(name);
        let status = Command::new(&cc)
            .args(["-O2", "-Wall", "-Wextra", "-o"])
            .arg(&bin)
            .arg(source)
            .args(extra)
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            println!("cargo:warning={cc} could not build {name} from bench/{source}: {status:?}");
            std::process::exit(1);
        }
        println!("cargo:rustc-env={var}={}", bin.display());
        println!("cargo:rerun-if-changed={source}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
