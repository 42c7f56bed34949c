//! The cost of a warm `getpwnam(alias)` through the NSS module: from the daemon's shared-memory
//! cache (`passwd.cache`) and over the socket (cache off), N calls in one process
//! (`nss-bench`, `src/nss_bench.rs`). `make bench-nss` runs it on release builds:
//! `ACCOUNTMAP_ARTIFACT_DIR` names the directory of the daemon, the module and `nss-bench`
//! (default: the debug build directory). `ACCOUNTMAP_BENCH_DIR` names the directory of
//! `libnss_accountmap.so` and `nss-bench` when they are not with the other artifacts (a release
//! module against a debug daemon). It uses the end-to-end tests' harness (`accountmap-tests`).
//!
//! Two ways into the C library:
//! - glibc's own NSS, as a host has it: `passwd: files accountmap` in nsswitch.conf and the
//!   module found as `libnss_accountmap.so.2` through LD_LIBRARY_PATH. nsswitch.conf is replaced
//!   only inside a private mount namespace of the benchmark process (`unshare --mount` and a
//!   bind mount; root only); the host's /etc is never touched.
//! - nss_wrapper with the module (any user), which adds nss_wrapper's own costs.

// A benchmark tool: a failure is reported and ends the process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod stats;

use accountmap_tests::*;
use stats::median;
use std::process::Command;

const ALIAS: &str = "John.Doe@Company.com";
const CACHED_CALLS: &str = "200000";
/// Under the daemon's per-peer burst (400): every call reaches the daemon and is answered.
/// Per measurement; two measurements stay under it together.
const SOCKET_CALLS: &str = "150";
/// Fresh processes per case and round, 5 rounds + 10 warm-up: the new-name case sends 510
/// look-ups to the daemon over about 2.5 s (the five cases interleaved, ~1 ms each), under the
/// per-uid budget (400 at once, then 200/s).
const FRESH_PER_ROUND: &str = "100";

/// The module or `nss-bench`: from `ACCOUNTMAP_BENCH_DIR` when set, else the build directory.
fn bench_artifact(name: &str) -> std::path::PathBuf {
    match std::env::var_os("ACCOUNTMAP_BENCH_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => {
            let path = std::path::Path::new(&dir).join(name);
            assert!(path.is_file(), "{} is missing", path.display());
            path
        }
        None => artifact(name),
    }
}

fn ns_per_call(out: &Outcome) -> u64 {
    assert_eq!(out.code, 0, "{}", out.all());
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[1] == "ns/call")
        .and_then(|w| w[0].parse().ok())
        .unwrap_or_else(|| panic!("no ns/call in {}", out.all()))
}

/// A directory holding the NSS module under the name glibc loads (`libnss_accountmap.so.2`),
/// for LD_LIBRARY_PATH.
fn module_dir(env: &Env) -> std::path::PathBuf {
    let libdir = env.path("lib");
    std::fs::create_dir_all(&libdir).unwrap();
    let link = libdir.join("libnss_accountmap.so.2");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(bench_artifact("libnss_accountmap.so"), &link).unwrap();
    let floor = libdir.join("libnss_amfloor.so.2");
    let _ = std::fs::remove_file(&floor);
    std::os::unix::fs::symlink(env!("FLOOR_NSS"), &floor).unwrap();
    libdir
}

/// nss-bench through glibc's NSS with `passwd: SOURCES`, in a private mount namespace:
/// `getpwnam_r(name)` must give `want`.
fn through_glibc(env: &Env, sources: &str, name: &str, want: &str, calls: &str) -> Option<u64> {
    if !is_root() || !std::path::Path::new("/usr/bin/unshare").exists() {
        return None;
    }
    let libdir = module_dir(env);
    let nsswitch = env.path("nsswitch.conf");
    write_atomic(&nsswitch, &format!("passwd: {sources}\ngroup: files\n"));
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/nsswitch.conf && shift && exec "$@""#)
        .arg("sh")
        .arg(&nsswitch)
        .arg(bench_artifact("nss-bench"))
        .args([name, want, calls])
        .env("LD_LIBRARY_PATH", &libdir)
        .env("ACCOUNTMAP_SOCKET", &env.socket)
        .env_remove("LD_PRELOAD");
    let out = run_bounded(&mut cmd, None, COMMAND_LIMIT);
    if out.code != 0 && out.stderr.contains("mount") {
        eprintln!(
            "glibc path skipped (no private mount namespace here):\n{}",
            out.all()
        );
        return None;
    }
    Some(ns_per_call(&out))
}

/// Fresh processes (issue 16): `fresh-bench` starts bench/fresh.c's `fresh-nss` helper (one
/// `getpwnam`, then exit; libc only) for every look-up, inside a private mount namespace whose
/// /etc/nsswitch.conf is a bind mount of a file in the test directory, rewritten before each
/// case's batch: a miss with `passwd: files` against `files accountmap` (daemon up, the shipped
/// `negative_cache_ttl = 30`: the same name again is answered "no such alias" from
/// `passwd.cache`), a miss of a name never asked before (600 names: a socket round trip each
/// time), and a `files` hit (last line of /etc/passwd) against an alias from the shared-memory
/// cache. The module comes through
/// LD_LIBRARY_PATH, set for every case alike. Misses reach the daemon, whose NSS budget per
/// uid is 400 at once and 200/s: the counts stay under it (a refused look-up would look like
/// a miss to the caller). Prints fresh-bench's markdown table; None when not root.
fn fresh_processes(env: &Env) -> Option<String> {
    if !is_root() || !std::path::Path::new("/usr/bin/unshare").exists() {
        return None;
    }
    let libdir = module_dir(env);
    let nsswitch = env.path("nsswitch.conf");
    let files = env.path("nsswitch-files");
    let files_am = env.path("nsswitch-files-accountmap");
    write_atomic(&files, "passwd: files\ngroup: files\n");
    write_atomic(&files_am, "passwd: files accountmap\ngroup: files\n");
    let files_floor = env.path("nsswitch-files-amfloor");
    write_atomic(&files_floor, "passwd: files amfloor\ngroup: files\n");
    std::fs::copy(&files, &nsswitch).unwrap();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let last = passwd
        .lines()
        .filter_map(|l| l.split(':').next())
        .next_back()
        .unwrap_or("root")
        .to_string();
    let job = |label: &str, name: &str, want: &str| {
        let path = env.path(&format!("{label}.jobs"));
        write_atomic(&path, &format!("ok\t@nss {name} {want}\n"));
        path
    };
    // A name never asked before in every process (more names than processes): the daemon is
    // asked each time, whatever it caches.
    let new_names = env.path("am-new-name.jobs");
    let lines: String = (0..600)
        .map(|i| format!("ok\t@nss nosuch-bench-{i:04} -\n"))
        .collect();
    write_atomic(&new_names, &lines);
    // The same missing name in every process: after the first, the daemon's cached answer.
    let miss = |label: &str| job(label, "nosuch-bench-user", "-");
    // Compared in pairs (fresh-bench: the 2nd against the 1st, and so on).
    let cases = [
        ("files-miss", miss("files-miss"), &files),
        ("files-accountmap-miss", miss("am-miss"), &files_am),
        (
            "files-hit-last-line",
            job("files-hit", &last, &last),
            &files,
        ),
        ("alias-from-cache", job("alias", ALIAS, "jdoe"), &files_am),
        ("files-miss-again", miss("files-miss"), &files),
        ("files-accountmap-new-name", new_names, &files_am),
        // The floor: a module that answers NOTFOUND at once (bench/floor_nss.c).
        ("files-miss-3", miss("files-miss"), &files),
        ("files-floor-module-miss", miss("floor-miss"), &files_floor),
    ];
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/nsswitch.conf && shift && exec "$@""#)
        .arg("sh")
        .arg(&nsswitch)
        .arg(bench_artifact("fresh-bench"));
    for (label, jobs, conf) in &cases {
        cmd.arg("--case").arg(format!("{label}={}", jobs.display()));
        cmd.arg("--copy-before")
            .arg(format!("{label}={}:{}", conf.display(), nsswitch.display()));
    }
    cmd.args([
        "--clients",
        "1",
        "--per-round",
        FRESH_PER_ROUND,
        "--rounds",
        "5",
    ])
    .args([
        "--warmup",
        "10",
        "--inner",
        "getpwnam",
        "--max-seconds",
        "200",
    ])
    .args([
        "--title",
        "fresh process per getpwnam (bench/fresh.c's fresh-nss), glibc NSS",
    ])
    .env("LD_LIBRARY_PATH", &libdir)
    .env("ACCOUNTMAP_SOCKET", &env.socket)
    .env_remove("LD_PRELOAD");
    let out = run_bounded(&mut cmd, None, std::time::Duration::from_secs(240));
    if out.code != 0 && out.stderr.contains("mount") {
        eprintln!(
            "fresh rows skipped (no private mount namespace here):\n{}",
            out.all()
        );
        return None;
    }
    assert_eq!(out.code, 0, "{}", out.all());
    Some(out.stdout)
}

/// Where a fresh process's miss goes, step by step: bench/dlcost.c's `nss` mode, in a new
/// process each time, loads the module and calls its `getpwnam_r` twice for a name the daemon
/// has already answered "no such alias" (the first call maps `passwd.cache`; the second only
/// reads it), beside the do-nothing module. Medians of [`BREAKDOWN_RUNS`] processes of the ns
/// and minor page faults of each step, as a markdown table.
fn load_breakdown(env: &Env) -> String {
    let libdir = module_dir(env);
    let mut table = String::from(
        "| module | dlopen µs | dlopen faults | first call µs | first call faults | second call µs |\n|---|---|---|---|---|---|\n",
    );
    for (label, source) in [
        ("libnss_accountmap (cached miss)", "accountmap"),
        ("floor (bench/floor_nss.c)", "amfloor"),
    ] {
        let so = libdir.join(format!("libnss_{source}.so.2"));
        let mut columns: Vec<Vec<f64>> = vec![Vec::new(); 5];
        for _ in 0..BREAKDOWN_RUNS {
            let mut cmd = Command::new(env!("DLCOST"));
            cmd.arg("nss")
                .arg(&so)
                .args([source, "nosuch-bench-user"])
                .env("ACCOUNTMAP_SOCKET", &env.socket)
                .env_remove("LD_PRELOAD");
            let out = run_bounded(&mut cmd, None, COMMAND_LIMIT);
            assert_eq!(out.code, 0, "{}", out.all());
            // dlopen NS FAULTS call1 NS FAULTS call2 NS FAULTS status S1 S2; both NOTFOUND (0).
            let w: Vec<&str> = out.stdout.split_whitespace().collect();
            assert_eq!(
                w.get(9..12),
                Some(&["status", "0", "0"][..]),
                "{}",
                out.all()
            );
            for (column, at) in columns.iter_mut().zip([1, 2, 4, 5, 7]) {
                column.push(w[at].parse().unwrap());
            }
        }
        let m: Vec<f64> = columns.iter_mut().map(|c| median(c)).collect();
        table.push_str(&format!(
            "| {label} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} |\n",
            m[0] / 1000.0,
            m[1],
            m[2] / 1000.0,
            m[3],
            m[4] / 1000.0
        ));
    }
    table
}

/// Processes per module in [`load_breakdown`].
const BREAKDOWN_RUNS: usize = 201;

fn through_nss_wrapper(env: &Env, calls: &str) -> u64 {
    let mut cmd = Command::new(bench_artifact("nss-bench"));
    cmd.args([ALIAS, "jdoe", calls]);
    env.nss_module_wrapped(&mut cmd);
    cmd.env(
        "NSS_WRAPPER_MODULE_SO_PATH",
        bench_artifact("libnss_accountmap.so"),
    );
    ns_per_call(&run_bounded(&mut cmd, None, COMMAND_LIMIT))
}

fn main() {
    // The daemons' directories on tmpfs, as /run/accountmap is on systemd hosts (where the NSS
    // module does not read the boot id: `memcache::of_this_boot`). Some VMs and containers
    // keep /run and /tmp on disk; TMPDIR given by the caller wins.
    let shm = std::fs::File::open("/dev/shm");
    if std::env::var_os("TMPDIR").is_none()
        && shm.is_ok_and(|f| accountmap_wire::memcache::on_volatile_fs(&f))
    {
        std::env::set_var("TMPDIR", "/dev/shm");
    }
    // The shipped cache settings (the test harness turns both off by default).
    let cached = Env::builder("bench-nss-cached")
        .config(|c| {
            c.cache_ttl = 300;
            c.negative_cache_ttl = 30;
        })
        .build();
    // One lookup fills the cache.
    assert_eq!(cached.getent_passwd(ALIAS).code, 0);
    let socket = Env::new("bench-nss-socket"); // cache_ttl = 0: every call asks the daemon
    let show = |what: &str, ns: Option<u64>| match ns {
        Some(ns) => println!("{what:<46} {ns:>8} ns/call"),
        None => println!("{what:<46} {:>8}", "skipped"),
    };
    let files_am = "files accountmap";
    show(
        "glibc `files accountmap`, alias, cached",
        through_glibc(&cached, files_am, ALIAS, "jdoe", CACHED_CALLS),
    );
    show(
        "glibc `files accountmap`, alias, socket",
        through_glibc(&socket, files_am, ALIAS, "jdoe", SOCKET_CALLS),
    );
    show(
        "glibc `accountmap`, alias, cached",
        through_glibc(&cached, "accountmap", ALIAS, "jdoe", CACHED_CALLS),
    );
    // What `files` alone costs on this host, for reference: the first and a missing line of
    // /etc/passwd (a `files accountmap` alias lookup reads the whole file first).
    show(
        "glibc `files`, root (first line), reference",
        through_glibc(&cached, "files", "root", "root", CACHED_CALLS),
    );
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    if let Some(last) = passwd
        .lines()
        .filter_map(|l| l.split(':').next())
        .next_back()
    {
        show(
            "glibc `files`, last line, reference",
            through_glibc(&cached, "files", last, last, CACHED_CALLS),
        );
    }
    match fresh_processes(&cached) {
        Some(table) => {
            let dir = cached.socket.parent().unwrap_or(std::path::Path::new("/"));
            let tmpfs = std::fs::File::open(dir)
                .is_ok_and(|f| accountmap_wire::memcache::on_volatile_fs(&f));
            println!(
                "\n(the daemon's passwd.cache: {} ({}); floor = bench/floor_nss.c, a module \
                 that answers NOTFOUND at once)\n{table}",
                dir.display(),
                if tmpfs {
                    "tmpfs, as /run"
                } else {
                    "not tmpfs: the boot id is read"
                }
            );
            println!(
                "\nA fresh process's miss step by step (bench/dlcost.c `nss`, medians of \
                 {BREAKDOWN_RUNS} processes per module):\n\n{}",
                load_breakdown(&cached)
            );
        }
        None => println!("fresh-process rows: skipped (root and unshare needed)"),
    }
    show(
        "nss_wrapper, cached (shared memory)",
        Some(through_nss_wrapper(&cached, CACHED_CALLS)),
    );
    show(
        "nss_wrapper, socket (cache off)",
        Some(through_nss_wrapper(&socket, SOCKET_CALLS)),
    );
}
