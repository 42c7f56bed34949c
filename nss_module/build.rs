// The same unwinder choice as the PAM module: one copy of the code, in pam_module/.
#[path = "../pam_module/static_unwinder.rs"]
mod static_unwinder;

fn main() {
    // Keep the module mapped even if a host dlcloses it. Rust std may leave per-thread state
    // (thread-local destructors of the panic machinery) pointing into this object that runs
    // when a host thread exits; if the code had been unmapped by then, the host would jump
    // into freed memory. glibc itself never unloads NSS modules, but nss_wrapper, nscd-like
    // tools and test drivers may. The cost is one mapping for the life of the process.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    // The name glibc loads for `accountmap` in nsswitch.conf, for ldd and readelf.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnss_accountmap.so.2");
    static_unwinder::static_unwinder();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../pam_module/static_unwinder.rs");
}
