//! Compiles `fresh.c` (the one-sign-in / one-look-up helper that fresh-bench starts as a new
//! process each time) with the system C compiler: `fresh-pam` (linked to libpam) and `fresh-nss`
//! (libc only). fresh-bench finds them through FRESH_PAM / FRESH_NSS, set here. Also
//! `libnss_amfloor.so.2` (floor_nss.c, FLOOR_NSS), nss-cache-bench's do-nothing NSS module,
//! and `dlcost` (dlcost.c, DLCOST), its load-cost probe.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    for (name, extra) in [
        ("fresh-pam", &["-lpam"][..]),
        ("fresh-nss", &["-DFRESH_NSS_ONLY"][..]),
    ] {
        let bin = out.join(name);
        let status = Command::new(&cc)
            .args(["-O2", "-Wall", "-Wextra", "-o"])
            .arg(&bin)
            .arg("fresh.c")
            .args(extra)
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => {
                println!("cargo:warning={cc} could not build {name} from bench/fresh.c: {other:?}");
                std::process::exit(1);
            }
        }
        println!(
            "cargo:rustc-env={}={}",
            name.to_uppercase().replace('-', "_"),
            bin.display()
        );
    }
    // The floor of an NSS module's cost (bench/floor_nss.c), loaded as `amfloor`.
    let floor = out.join("libnss_amfloor.so.2");
    let status = Command::new(&cc)
        .args(["-O2", "-Wall", "-Wextra", "-shared", "-fPIC"])
        .arg("-Wl,-soname,libnss_amfloor.so.2")
        .arg("-o")
        .arg(&floor)
        .arg("floor_nss.c")
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        println!("cargo:warning={cc} could not build bench/floor_nss.c: {status:?}");
        std::process::exit(1);
    }
    println!("cargo:rustc-env=FLOOR_NSS={}", floor.display());
    // dlcost (bench/dlcost.c): nss-cache-bench's load/first-call breakdown.
    let dlcost = out.join("dlcost");
    let status = Command::new(&cc)
        .args(["-O2", "-Wall", "-Wextra", "-o"])
        .arg(&dlcost)
        .arg("dlcost.c")
        .arg("-ldl")
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        println!("cargo:warning={cc} could not build bench/dlcost.c: {status:?}");
        std::process::exit(1);
    }
    println!("cargo:rustc-env=DLCOST={}", dlcost.display());
    println!("cargo:rerun-if-changed=dlcost.c");
    println!("cargo:rerun-if-changed=floor_nss.c");
    println!("cargo:rerun-if-changed=fresh.c");
    println!("cargo:rerun-if-changed=build.rs");
}
