#[path = "static_unwinder.rs"]
mod static_unwinder;

fn main() {
    // libpam itself is linked by the `pam_ffi` crate's `#[link(name = "pam")]`, which gives the
    // module its DT_NEEDED on libpam.so.0 (hosts that dlopen it without libpam's symbols in
    // scope, pam_wrapper, need it; tests/exports.rs checks it).
    // Keep the module mapped after pam_end's dlclose. Rust std registers thread-local
    // destructors (and may leave other per-thread state pointing into this object) that run
    // when the host's thread exits, which can be long after pam_end: if the code had been
    // unmapped by then, the host would jump into freed memory. `-z nodelete` makes dlclose a
    // no-op for this object; the cost is one mapping for the life of the process.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    // The name it is installed under, for ldd and readelf.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,pam_accountmap.so");
    static_unwinder::static_unwinder();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=static_unwinder.rs");
}
