fn main() {
    // A Rust cdylib does not pull in libpam by itself: without an explicit DT_NEEDED some hosts
    // (those that dlopen the module without RTLD_GLOBAL libpam symbols in scope, pam_wrapper)
    // fail with "undefined symbol: pam_get_item".
    println!("cargo:rustc-link-lib=pam");
    // Keep the module mapped after pam_end's dlclose. Rust std registers thread-local
    // destructors (and may leave other per-thread state pointing into this object) that run
    // when the host's thread exits, which can be long after pam_end: if the code had been
    // unmapped by then, the host would jump into freed memory. `-z nodelete` makes dlclose a
    // no-op for this object; the cost is one mapping for the life of the process.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    // The name it is installed under, for ldd and readelf.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,pam_accountmap.so");
    println!("cargo:rerun-if-changed=build.rs");
}
