//! compare-bench: the measuring client of `bench/compare.sh` (`make bench`), which compares
//! accountmap with SSSD and nslcd against one slapd on loopback.
//!
//!   compare-bench pam    full PAM password sign-ins (pam_start_confdir + pam_authenticate +
//!                        pam_acct_mgmt + pam_end) through a service of a private PAM directory,
//!                        N concurrent in-process clients; every verdict is checked
//!   compare-bench nss    glibc getpwnam_r through the machine's /etc/nsswitch.conf
//!   compare-bench render the results directory -> docs/benchmarks.md (see report.rs)
//!
//! `pam` and `nss` append one TSV row to `--out` (columns: [`report::COLUMNS`]) and exit 1 on
//! any wrong verdict: a benchmark that is fast by being wrong is worthless.

#[allow(dead_code)]
mod ffi;
mod report;

use pam_ffi::{
    alloc_responses, code_name, pam_conv, pam_message, pam_response, read_messages, AppHandle,
    PAM_CONV_ERR, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_SUCCESS,
};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage:
  compare-bench pam --confdir DIR --service NAME --users FILE --count N [options]
  compare-bench nss --names FILE --count N [options]
  compare-bench render --results DIR --out FILE.md

common options (pam, nss):
  --out FILE          append the result row (TSV) here (default: stdout)
  --label K=V         size=, system=, case=, phase= labels of the row (repeatable)
  --threads N         concurrent clients (default 1)
  --cpu-pid PID       a daemon whose CPU time (utime+stime delta) is counted (repeatable)
  --slapd-pid PID     slapd, whose CPU time is counted separately
  --max-seconds S     hard wall-clock cap (default 120): fewer operations, row marked capped

pam:
  --users FILE        `NAME PASSWORD allow|deny` a line; allowed users are signed in in order
                      (round robin when --count exceeds them); deny lines are checked once
                      before and after the measurement, not timed
  --unpinned          no PAM handle is held open besides the measured ones (1 client only,
                      run on the main thread: pam_sss 2.8 crashes a threaded client whose
                      thread exits after closing its last handle)
  --warmup N          checked, unmeasured sign-ins of the first N users before measuring

nss:
  --names FILE        `QUERY LOCALNAME` a line: getpwnam(QUERY) must return LOCALNAME
  --cold              each name once, measured (names never looked up before); otherwise
                      every name is looked up once unmeasured, then --count lookups measured
";

static PROMPTS: AtomicU64 = AtomicU64::new(0);

/// Answers every password prompt with the password `appdata_ptr` points at (a NUL-terminated
/// string that outlives the transaction); informational messages get no answer.
extern "C" fn password_conversation(
    num_msg: c_int,
    msg: *mut *const pam_message,
    resp: *mut *mut pam_response,
    appdata_ptr: *mut c_void,
) -> c_int {
    PROMPTS.fetch_add(1, Ordering::Relaxed);
    if resp.is_null() || appdata_ptr.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: Linux-PAM passes `num_msg` valid messages (NULL or out-of-range counts: `None`).
    let Some(messages) = (unsafe { read_messages(num_msg, msg) }) else {
        return PAM_CONV_ERR;
    };
    // SAFETY: `appdata_ptr` is the NUL-terminated password given to pam_start, alive until
    // pam_end.
    let password = unsafe { CStr::from_ptr(appdata_ptr.cast::<c_char>()) }.to_bytes();
    let answers: Vec<Option<&[u8]>> = messages
        .iter()
        .map(|m| match m {
            Some((PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON, _)) => Some(password),
            _ => None,
        })
        .collect();
    match alloc_responses(&answers) {
        Ok(array) => {
            // SAFETY: `resp` is a valid out-pointer (checked non-null); libpam frees `array`.
            unsafe { *resp = array };
            PAM_SUCCESS
        }
        Err(code) => code,
    }
}

/// One sign-in: the two return codes (auth, account; -1 when not called) and its wall time.
fn sign_in(service: &CStr, user: &CStr, password: &CStr, confdir: &CStr) -> ([c_int; 3], u64) {
    let conv = pam_conv {
        conv: Some(password_conversation),
        appdata_ptr: password.as_ptr().cast_mut().cast::<c_void>(),
    };
    let t0 = Instant::now();
    // SAFETY: the password `conv` points to outlives the handle, ended below.
    let mut pamh = match unsafe { AppHandle::start_confdir(service, user, &conv, confdir) } {
        Ok(pamh) => pamh,
        Err(start) => return ([start, -1, -1], elapsed_ns(t0)),
    };
    let auth = pamh.authenticate(0);
    let acct = pamh.acct_mgmt(0);
    pamh.end(acct);
    ([PAM_SUCCESS, auth, acct], elapsed_ns(t0))
}

fn elapsed_ns(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A PAM handle kept open for the whole run: libpam keeps the service's modules loaded, so the
/// measured transactions pay no dlopen/dlclose, and pam_sss never sees its last handle close
/// on a thread that then exits. Ended (with PAM_SUCCESS) when dropped, on the main thread.
struct Held {
    _pamh: AppHandle,
}

impl Held {
    fn open(service: &CStr, confdir: &CStr) -> Result<Held, String> {
        let conv = pam_conv {
            conv: Some(password_conversation),
            appdata_ptr: c"-".as_ptr().cast_mut().cast::<c_void>(),
        };
        // SAFETY: the conversation's password is a static string.
        let pamh =
            unsafe { AppHandle::start_confdir(service, c"compare-bench-holder", &conv, confdir) }
                .map_err(|rc| format!("pam_start_confdir (held handle): {}", code_name(rc)))?;
        Ok(Held { _pamh: pamh })
    }
}

#[derive(Default)]
struct Common {
    out: Option<String>,
    labels: Vec<(String, String)>,
    threads: usize,
    cpu_pids: Vec<u32>,
    slapd_pid: Option<u32>,
    max_seconds: u64,
    count: usize,
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse::<T>()
        .map_err(|_| format!("{flag}: not a number: {v}"))
}

/// Parses the common flags; returns the other (flag, value) pairs for the subcommand.
fn parse_common(
    args: &[String],
    flags: &[&str],
) -> Result<(Common, Vec<(String, String)>), String> {
    let mut c = Common {
        threads: 1,
        max_seconds: 120,
        ..Common::default()
    };
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flags.contains(&flag.as_str()) {
            rest.push((flag.clone(), String::new()));
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .clone();
        match flag.as_str() {
            "--out" => c.out = Some(value),
            "--label" => {
                let (k, v) = value
                    .split_once('=')
                    .ok_or_else(|| format!("--label {value}: KEY=VALUE"))?;
                c.labels.push((k.to_string(), v.to_string()));
            }
            "--threads" => c.threads = num::<usize>(flag, &value)?.clamp(1, 256),
            "--cpu-pid" => c.cpu_pids.push(num(flag, &value)?),
            "--slapd-pid" => c.slapd_pid = Some(num(flag, &value)?),
            "--max-seconds" => c.max_seconds = num::<u64>(flag, &value)?.max(1),
            "--count" => c.count = num(flag, &value)?,
            _ => rest.push((flag.clone(), value)),
        }
    }
    Ok((c, rest))
}

/// CPU seconds so far: this process (getrusage), the daemons, slapd.
fn cpu_now(c: &Common) -> [f64; 3] {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let client = tv(ru.ru_utime) + tv(ru.ru_stime);
    let daemons: u64 = c
        .cpu_pids
        .iter()
        .filter_map(|&p| ffi::process_cpu_ns(p))
        .sum();
    let slapd = c.slapd_pid.and_then(ffi::process_cpu_ns).unwrap_or(0);
    [client, daemons as f64 / 1e9, slapd as f64 / 1e9]
}

/// The figures of one measured run.
struct Figures {
    n: usize,
    secs: f64,
    lat_ns: Vec<u64>,
    cpu: [f64; 3],
    capped: bool,
}

fn percentile_us(sorted: &[u64], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() * p).div_ceil(100)).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

/// Runs operations 0..`count` on `c.threads` threads (the calling one when there is one), for at
/// most `c.max_seconds`: `per_thread` makes each thread's operation, which does operation `i` and
/// returns its latency in ns. CPU is counted from just before the first to just after the last.
fn measure<F, Op>(c: &Common, count: usize, per_thread: F) -> Figures
where
    F: Fn() -> Op + Sync,
    Op: FnMut(usize) -> u64,
{
    let deadline = Instant::now() + Duration::from_secs(c.max_seconds);
    let next = AtomicUsize::new(0);
    let before = cpu_now(c);
    let t0 = Instant::now();
    let work = || {
        let mut op = per_thread();
        let mut lat = Vec::with_capacity(count / c.threads + 1);
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count || Instant::now() >= deadline {
                break;
            }
            lat.push(op(i));
        }
        lat
    };
    let lat_ns: Vec<u64> = if c.threads == 1 {
        work()
    } else {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..c.threads).map(|_| s.spawn(work)).collect();
            hs.into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    };
    let secs = t0.elapsed().as_secs_f64();
    let after = cpu_now(c);
    let n = lat_ns.len();
    Figures {
        n,
        secs,
        lat_ns,
        cpu: [
            after[0] - before[0],
            after[1] - before[1],
            after[2] - before[2],
        ],
        capped: n < count,
    }
}

fn emit(c: &Common, mut f: Figures, extra: &str) -> Result<(), String> {
    f.lat_ns.sort_unstable();
    let label = |k: &str| {
        c.labels
            .iter()
            .find(|(key, _)| key == k)
            .map_or("-".to_string(), |(_, v)| v.clone())
    };
    let mean = if f.n > 0 {
        f.lat_ns.iter().sum::<u64>() as f64 / f.n as f64 / 1000.0
    } else {
        f64::NAN
    };
    let row = report::Row {
        size: label("size"),
        system: label("system"),
        case: label("case"),
        phase: label("phase"),
        clients: c.threads,
        pinned: label("pinned"),
        n: f.n,
        secs: f.secs,
        per_sec: f.n as f64 / f.secs,
        p50_us: percentile_us(&f.lat_ns, 50),
        p99_us: percentile_us(&f.lat_ns, 99),
        mean_us: mean,
        cpu_client_s: f.cpu[0],
        cpu_daemon_s: f.cpu[1],
        cpu_slapd_s: f.cpu[2],
        note: if f.capped {
            format!("capped{extra}")
        } else if extra.is_empty() {
            "-".to_string()
        } else {
            extra.trim_start_matches(';').to_string()
        },
    };
    let line = row.to_tsv();
    eprintln!(
        "compare-bench: {} {} {} {} x{}: {} ops in {:.2} s = {:.0}/s, p50 {:.1} us, p99 {:.1} us",
        row.size,
        row.system,
        row.case,
        row.phase,
        row.clients,
        row.n,
        row.secs,
        row.per_sec,
        row.p50_us,
        row.p99_us
    );
    match &c.out {
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("{path}: {e}"))?;
            let fresh = file.metadata().map(|m| m.len() == 0).unwrap_or(false);
            if fresh {
                writeln!(file, "{}", report::COLUMNS).map_err(|e| format!("{path}: {e}"))?;
            }
            writeln!(file, "{line}").map_err(|e| format!("{path}: {e}"))?;
        }
        None => println!("{line}"),
    }
    Ok(())
}

struct PamUser {
    name: CString,
    password: CString,
    allow: bool,
}

fn read_lines(path: &str) -> Result<Vec<Vec<String>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect())
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("NUL byte in {s:?}"))
}

fn run_pam(args: &[String]) -> Result<bool, String> {
    let (c, rest) = parse_common(args, &["--unpinned"])?;
    let mut confdir = None;
    let mut service = None;
    let mut users_path = None;
    let mut unpinned = false;
    let mut warmup = 0usize;
    for (k, v) in rest {
        match k.as_str() {
            "--confdir" => confdir = Some(cstring(&v)?),
            "--service" => service = Some(cstring(&v)?),
            "--users" => users_path = Some(v),
            "--unpinned" => unpinned = true,
            "--warmup" => warmup = num(&k, &v)?,
            other => return Err(format!("pam: unknown option {other}")),
        }
    }
    let confdir = confdir.ok_or("--confdir is required")?;
    let service = service.ok_or("--service is required")?;
    let users_path = users_path.ok_or("--users is required")?;
    if unpinned && c.threads != 1 {
        return Err("--unpinned needs --threads 1".into());
    }
    let mut users = Vec::new();
    for f in read_lines(&users_path)? {
        if f.len() != 3 || !(f[2] == "allow" || f[2] == "deny") {
            return Err(format!("{users_path}: bad line {f:?}"));
        }
        users.push(PamUser {
            name: cstring(&f[0])?,
            password: cstring(&f[1])?,
            allow: f[2] == "allow",
        });
    }
    let allowed: Vec<&PamUser> = users.iter().filter(|u| u.allow).collect();
    let denied: Vec<&PamUser> = users.iter().filter(|u| !u.allow).collect();
    if allowed.is_empty() || c.count == 0 {
        return Err("no allowed user or --count 0".into());
    }
    let _held = if unpinned {
        None
    } else {
        Some(Held::open(&service, &confdir)?)
    };
    // A wrong verdict (an allowed user refused by policy or password, a refused user let in)
    // fails the run. A service failure (PAM_AUTHINFO_UNAVAIL, PAM_SYSTEM_ERR, ...: the system
    // could not decide) is not a verdict: it is counted and shown in the row's note.
    let wrong = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let first_error = std::sync::Mutex::new(String::new());
    let is_error = |c: c_int| matches!(c, 1..=5 | 9 | 19 | 24..=26) || c > 26;
    let check = |u: &PamUser, codes: [c_int; 3]| {
        let allowed = codes == [PAM_SUCCESS; 3];
        let failing = codes.iter().copied().find(|&c| c != PAM_SUCCESS && c >= 0);
        let describe = || {
            format!(
                "{} (expected {}): start {} auth {} account {}",
                u.name.to_string_lossy(),
                if u.allow { "allowed" } else { "refused" },
                code_name(codes[0]),
                if codes[1] < 0 {
                    "-"
                } else {
                    code_name(codes[1])
                },
                if codes[2] < 0 {
                    "-"
                } else {
                    code_name(codes[2])
                },
            )
        };
        if allowed == u.allow {
            return;
        }
        if failing.is_some_and(is_error) {
            if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                eprintln!("compare-bench: service error for {}", describe());
            }
            if let Ok(mut f) = first_error.lock() {
                if f.is_empty() {
                    *f = failing.map(code_name).unwrap_or("?").to_string();
                }
            }
        } else if wrong.fetch_add(1, Ordering::Relaxed) < 5 {
            eprintln!("compare-bench: WRONG VERDICT for {}", describe());
        }
    };
    // Refusals (wrong password, not in the group, low uid): checked, not timed.
    for u in &denied {
        let (codes, _) = sign_in(&service, &u.name, &u.password, &confdir);
        check(u, codes);
    }
    for u in allowed.iter().take(warmup) {
        let (codes, _) = sign_in(&service, &u.name, &u.password, &confdir);
        check(u, codes);
    }
    let fig = measure(&c, c.count, || {
        |i: usize| {
            let u = allowed[i % allowed.len()];
            let (codes, ns) = sign_in(&service, &u.name, &u.password, &confdir);
            check(u, codes);
            ns
        }
    });
    for u in &denied {
        let (codes, _) = sign_in(&service, &u.name, &u.password, &confdir);
        check(u, codes);
    }
    let n = fig.n;
    let wrong = wrong.load(Ordering::Relaxed);
    let errors = errors.load(Ordering::Relaxed);
    let mut extra = if wrong > 0 {
        format!(";WRONG={wrong}")
    } else {
        format!(";refusals_checked={}", denied.len() * 2)
    };
    if errors > 0 {
        let first = first_error.lock().map(|f| f.clone()).unwrap_or_default();
        extra += &format!(";errors={errors}({first})");
    }
    emit(&c, fig, &extra)?;
    Ok(wrong == 0 && n > 0)
}

/// getpwnam_r of `name`: the entry's name, or None.
fn getpwnam(name: &CStr, buf: &mut Vec<c_char>) -> Result<Option<String>, String> {
    Ok(ffi::getpwnam(name, buf)?.map(|pwd| {
        // SAFETY: pw_name points into `buf`, NUL-terminated, and `buf` is not touched until
        // the name is copied.
        unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned()
    }))
}

fn run_nss(args: &[String]) -> Result<bool, String> {
    let (c, rest) = parse_common(args, &["--cold"])?;
    let mut names_path = None;
    let mut cold = false;
    for (k, v) in rest {
        match k.as_str() {
            "--names" => names_path = Some(v),
            "--cold" => cold = true,
            other => return Err(format!("nss: unknown option {other}")),
        }
    }
    let names_path = names_path.ok_or("--names is required")?;
    let mut names = Vec::new();
    for f in read_lines(&names_path)? {
        if f.len() != 2 {
            return Err(format!("{names_path}: bad line {f:?}"));
        }
        names.push((cstring(&f[0])?, f[1].clone()));
    }
    if names.is_empty() {
        return Err("no names".into());
    }
    let count = if cold {
        names.len().min(c.count.max(1))
    } else {
        c.count.max(1)
    };
    // A different entry is a wrong answer (fails the run); no entry at all (not found, or the
    // source unavailable, e.g. a daemon refusing over its rate limit) is counted and reported.
    let wrong = AtomicU64::new(0);
    let unanswered = AtomicU64::new(0);
    let check = |q: &CStr, want: &str, got: Result<Option<String>, String>| match got {
        Ok(Some(g)) if g == want => {}
        Ok(Some(g)) => {
            if wrong.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!(
                    "compare-bench: WRONG getpwnam({}) = {g}, expected {want}",
                    q.to_string_lossy()
                );
            }
        }
        other => {
            if unanswered.fetch_add(1, Ordering::Relaxed) < 3 {
                eprintln!(
                    "compare-bench: no entry for getpwnam({}): {other:?} (expected {want})",
                    q.to_string_lossy()
                );
            }
        }
    };
    if !cold {
        let mut buf = vec![0; 4096];
        for (q, want) in &names {
            check(q, want, getpwnam(q, &mut buf));
        }
        // Only the measured calls count in the note.
        unanswered.store(0, Ordering::Relaxed);
    }
    let fig = measure(&c, count, || {
        let mut buf = vec![0; 4096];
        let (names, check) = (&names, &check);
        move |i: usize| {
            let (q, want) = &names[i % names.len()];
            let t = Instant::now();
            let got = getpwnam(q, &mut buf);
            let ns = elapsed_ns(t);
            check(q, want, got);
            ns
        }
    });
    let n = fig.n;
    let wrong = wrong.load(Ordering::Relaxed);
    let unanswered = unanswered.load(Ordering::Relaxed);
    let mut note = String::new();
    if wrong > 0 {
        note += &format!(";WRONG={wrong}");
    }
    if unanswered > 0 {
        note += &format!(";unanswered={unanswered}");
    }
    emit(&c, fig, &note)?;
    Ok(wrong == 0 && n > 0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("pam") => run_pam(&args[1..]),
        Some("nss") => run_nss(&args[1..]),
        Some("render") => report::render_main(&args[1..]).map(|()| true),
        _ => Err(String::new()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("compare-bench: FAILED (wrong verdicts or nothing measured)");
            ExitCode::FAILURE
        }
        Err(e) if e.is_empty() => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("compare-bench: {e}");
            ExitCode::from(2)
        }
    }
}
