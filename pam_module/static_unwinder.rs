//! Shared by the build scripts of both modules (pam_module/build.rs, nss_module/build.rs).

/// The unwinder (`_Unwind_*`, which a Rust panic needs: this module is built `panic = "unwind"`
/// and catches panics at its C boundary) comes from the C compiler's static `libgcc_eh.a`,
/// linked whole into the module, instead of from libgcc_s.so.1. Listed before std's `-lgcc_s`,
/// it defines every `_Unwind_*` symbol first, so `--as-needed` drops libgcc_s from DT_NEEDED
/// and the copy stays private (the cdylib exports only its own symbols). Why (issue 16): a
/// process that loads this module would otherwise load libgcc_s.so.1 too, whose constructor
/// (`__cpu_indicator_init`) executes CPUID repeatedly (13 sites in its code); on a VM each one
/// traps to the hypervisor (7.8 µs on the development VM), so that load cost ~140 µs, paid
/// by every fresh sign-in helper (and, for the NSS module, every process whose getpwnam misses
/// in `files`). When the compiler has no libgcc_eh.a, the module links libgcc_s as before.
pub fn static_unwinder() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let Ok(out) = std::process::Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        println!("cargo:warning={cc} not found: linking libgcc_s.so.1 for the unwinder");
        return;
    };
    let path = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    match path.parent() {
        Some(dir) if out.status.success() && path.is_absolute() && path.is_file() => {
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-lib=static:+whole-archive,-bundle=gcc_eh");
        }
        _ => println!("cargo:warning=no libgcc_eh.a: linking libgcc_s.so.1 for the unwinder"),
    }
}
