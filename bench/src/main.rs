//! policy-bench: the same access policy (minimum uid + one required group) through
//! `pam_succeed_if.so` and through `pam_accountmap.so`, as full PAM transactions in one process,
//! single client and with concurrent clients. Prints µs per transaction, throughput, p50/p99 and
//! the ratio accountmap / succeed_if. Every verdict is checked against the expected one: any
//! wrong answer makes the run exit 1, because a benchmark that is fast by being wrong is worthless.
//!
//! Run it through `bench/run.sh`, which builds, makes the users (nss_wrapper), starts the daemon
//! and writes the two PAM service files.

// Shared with compare-bench, which uses other parts of it.
#[allow(dead_code)]
mod ffi;

use std::ffi::{CStr, CString};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Barrier;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: policy-bench --confdir DIR --users FILE [options]

  --confdir DIR        PAM service directory holding the services `policy-succeed-if` and
                       `policy-accountmap` (given to pam_start_confdir)
  --users FILE         one user a line: `NAME allow|deny-uid|deny-group` (# comments)
  --minimum-uid N      policy's minimum uid, for the NSS pre-check of FILE (default 1000)
  --group NAME         policy's required group, for the NSS pre-check (default rstudio-users)
  --transactions N     measured transactions per stack and concurrency (default 20000)
  --threads LIST       concurrency levels, comma-separated (default 1,8)
  --rounds N           rounds per concurrency; the stacks alternate each round (default 10)
  --warmup N           unmeasured (but checked) transactions per stack and concurrency (default 1000)
  --max-seconds S      hard wall-clock cap for the whole run (default 300)
  --stacks LIST        succeed_if,accountmap (default both)
  --daemon-pid PID     the daemon's pid: its CPU time is added to accountmap's CPU per
                       transaction (the CPU columns are less sensitive to other load than wall time)
  --pin PATH           dlopen PATH once and keep it loaded (diagnostic: takes the module's
                       load/unload out of pam_start/pam_end); repeatable
  --warmup-threads N   clients for the warm-up (default: as many as measured); 1 fills the
                       daemon's cache one lookup at a time
  --variant SUFFIX     use the services `policy-succeed-if`SUFFIX and `policy-accountmap`SUFFIX
                       (run.sh writes `-permit` and `-unix`: the module, then pam_permit or
                       pam_unix, in both phases)
  --password PW        answer echo-off prompts with PW (pam_unix stacks); prompts are then
                       expected and not counted as a failure
  --rss-pid PID        sample PID's resident memory (VmRSS) every 50 ms while measuring; print
                       peak and the mean of the first and last quarter of the run, and fail when
                       the last quarter exceeds the first by more than 10 % and 2 MiB (a leak)
";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Allow,
    DenyUid,
    DenyGroup,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    SucceedIf,
    Accountmap,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::SucceedIf => "succeed_if",
            Kind::Accountmap => "accountmap",
        }
    }

    /// The PAM service: `policy-succeed-if` or `policy-accountmap`, plus `--variant`'s suffix.
    fn service(self) -> CString {
        let base = match self {
            Kind::SucceedIf => "policy-succeed-if",
            Kind::Accountmap => "policy-accountmap",
        };
        let variant = VARIANT.get().map_or("", String::as_str);
        CString::new(format!("{base}{variant}")).unwrap_or_default()
    }

    /// The (pam_authenticate, pam_acct_mgmt) codes each stack must give: pam_succeed_if(8)
    /// answers PAM_AUTH_ERR for a false condition in both phases; SPEC.md fixes accountmap's
    /// policy refusal as PAM_AUTH_ERR (auth) and PAM_PERM_DENIED (account).
    fn expected(self, expect: Expect) -> [i32; 2] {
        match (self, expect) {
            (_, Expect::Allow) => [pam_ffi::PAM_SUCCESS, pam_ffi::PAM_SUCCESS],
            (Kind::SucceedIf, _) => [pam_ffi::PAM_AUTH_ERR, pam_ffi::PAM_AUTH_ERR],
            (Kind::Accountmap, _) => [pam_ffi::PAM_AUTH_ERR, pam_ffi::PAM_PERM_DENIED],
        }
    }
}

/// `--variant`: the suffix of both service names (e.g. `-permit`: the module, then pam_permit).
static VARIANT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
/// `--password`: the answer to echo-off prompts (stacks with pam_unix after the module).
static PASSWORD: std::sync::OnceLock<CString> = std::sync::OnceLock::new();

struct User {
    name: CString,
    expect: Expect,
}

struct Args {
    confdir: CString,
    users: String,
    minimum_uid: u32,
    group: String,
    transactions: u64,
    threads: Vec<usize>,
    rounds: u64,
    warmup: u64,
    max_seconds: u64,
    stacks: Vec<Kind>,
    pin: Vec<String>,
    daemon_pid: Option<u32>,
    rss_pid: Option<u32>,
    warmup_threads: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut confdir = None;
    let mut users = None;
    let mut a = Args {
        confdir: CString::default(),
        users: String::new(),
        minimum_uid: 1000,
        group: "rstudio-users".to_string(),
        transactions: 20_000,
        threads: vec![1, 8],
        rounds: 10,
        warmup: 1000,
        max_seconds: 300,
        stacks: vec![Kind::SucceedIf, Kind::Accountmap],
        pin: Vec::new(),
        daemon_pid: None,
        rss_pid: None,
        warmup_threads: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--confdir" => confdir = Some(value),
            "--users" => users = Some(value),
            "--minimum-uid" => {
                a.minimum_uid = u32::try_from(num(&value)?).map_err(|_| "uid too large")?
            }
            "--group" => a.group = value,
            "--transactions" => a.transactions = num(&value)?,
            "--rounds" => a.rounds = num(&value)?.max(1),
            "--warmup" => a.warmup = num(&value)?,
            "--max-seconds" => a.max_seconds = num(&value)?.max(1),
            "--threads" => {
                a.threads = value
                    .split(',')
                    .map(|t| {
                        t.trim()
                            .parse::<usize>()
                            .ok()
                            .filter(|n| (1..=256).contains(n))
                            .ok_or_else(|| format!("--threads: bad count {t:?}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--stacks" => {
                a.stacks = value
                    .split(',')
                    .map(|s| match s.trim() {
                        "succeed_if" => Ok(Kind::SucceedIf),
                        "accountmap" => Ok(Kind::Accountmap),
                        other => Err(format!("--stacks: unknown stack {other:?}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--pin" => a.pin.push(value),
            "--variant" => {
                VARIANT.set(value).map_err(|_| "--variant given twice")?;
            }
            "--password" => {
                let pw = CString::new(value).map_err(|_| "--password: NUL")?;
                PASSWORD.set(pw).map_err(|_| "--password given twice")?;
            }
            "--daemon-pid" => {
                a.daemon_pid = Some(u32::try_from(num(&value)?).map_err(|_| "pid too large")?)
            }
            "--warmup-threads" => {
                a.warmup_threads = Some(
                    usize::try_from(num(&value)?)
                        .ok()
                        .filter(|n| (1..=256).contains(n))
                        .ok_or("--warmup-threads: 1 to 256")?,
                )
            }
            "--rss-pid" => {
                a.rss_pid = Some(u32::try_from(num(&value)?).map_err(|_| "pid too large")?)
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    let confdir = confdir.ok_or("--confdir is required")?;
    a.confdir = CString::new(confdir).map_err(|_| "--confdir: NUL in path")?;
    a.users = users.ok_or("--users is required")?;
    if a.stacks.is_empty() || a.threads.is_empty() {
        return Err("--stacks and --threads must not be empty".to_string());
    }
    Ok(a)
}

fn load_users(path: &str) -> Result<Vec<User>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let (Some(name), Some(exp), None) = (f.next(), f.next(), f.next()) else {
            return Err(format!("{path}:{}: expected `NAME EXPECTATION`", i + 1));
        };
        let expect = match exp {
            "allow" => Expect::Allow,
            "deny-uid" => Expect::DenyUid,
            "deny-group" => Expect::DenyGroup,
            other => return Err(format!("{path}:{}: unknown expectation {other:?}", i + 1)),
        };
        let name = CString::new(name).map_err(|_| format!("{path}:{}: NUL in name", i + 1))?;
        users.push(User { name, expect });
    }
    if users.is_empty() {
        return Err(format!("{path}: no users"));
    }
    Ok(users)
}

/// Checks the expectations of the users file against what this process's NSS says, so that a
/// wrong answer later is the stack's fault and not the fixture's (or a missing nss_wrapper).
fn precheck(users: &[User], minimum_uid: u32, group: &str) -> Result<(), String> {
    let gname = CString::new(group).map_err(|_| "group: NUL in name")?;
    let gid = ffi::nss_group_gid(&gname)?.ok_or_else(|| {
        format!("group {group} not found through NSS (is libnss_wrapper.so preloaded?)")
    })?;
    for u in users {
        let name = u.name.to_string_lossy();
        let nu = ffi::nss_user(&u.name)?.ok_or_else(|| {
            format!("user {name} not found through NSS (is libnss_wrapper.so preloaded?)")
        })?;
        let actual = if nu.uid < minimum_uid {
            Expect::DenyUid
        } else if nu.gids.contains(&gid) {
            Expect::Allow
        } else {
            Expect::DenyGroup
        };
        if actual != u.expect {
            return Err(format!(
                "users file says {name} is {:?} but NSS makes it {actual:?}",
                u.expect
            ));
        }
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    lat_ns: Vec<u64>,
    phase_ns: [u64; 4],
    /// CPU time of the client threads.
    cpu_ns: u64,
    count: u64,
    wrong_decision: u64,
    wrong_code: u64,
    start_failed: u64,
    examples: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.lat_ns.extend(other.lat_ns);
        for (a, b) in self.phase_ns.iter_mut().zip(other.phase_ns) {
            *a += b;
        }
        self.cpu_ns += other.cpu_ns;
        self.count += other.count;
        self.wrong_decision += other.wrong_decision;
        self.wrong_code += other.wrong_code;
        self.start_failed += other.start_failed;
        for e in other.examples {
            if self.examples.len() < 5 {
                self.examples.push(e);
            }
        }
    }

    fn wrong(&self) -> u64 {
        self.wrong_decision + self.wrong_code + self.start_failed
    }
}

/// One client: `n` transactions over the users, starting at `offset`, until `deadline`.
fn client(
    kind: Kind,
    users: &[User],
    confdir: &CStr,
    offset: usize,
    n: u64,
    deadline: Instant,
    record: bool,
) -> Tally {
    let mut t = Tally::default();
    if record {
        t.lat_ns.reserve(usize::try_from(n).unwrap_or(0));
    }
    let mut idx = offset % users.len();
    let cpu0 = ffi::thread_cpu_ns();
    for _ in 0..n {
        if Instant::now() >= deadline {
            break;
        }
        let u = &users[idx];
        idx = (idx + 1) % users.len();
        let tx = ffi::transaction(
            &kind.service(),
            &u.name,
            confdir,
            PASSWORD.get().map(CString::as_c_str),
        );
        t.count += 1;
        if record {
            t.lat_ns.push(tx.phase_ns.iter().sum());
            for (a, b) in t.phase_ns.iter_mut().zip(tx.phase_ns) {
                *a += b;
            }
        }
        let [start, auth, acct] = tx.codes;
        let want = kind.expected(u.expect);
        let problem = if start != pam_ffi::PAM_SUCCESS {
            t.start_failed += 1;
            Some("pam_start_confdir failed")
        } else if (auth == pam_ffi::PAM_SUCCESS && acct == pam_ffi::PAM_SUCCESS)
            != (u.expect == Expect::Allow)
        {
            t.wrong_decision += 1;
            Some("WRONG DECISION")
        } else if [auth, acct] != want {
            t.wrong_code += 1;
            Some("wrong return code")
        } else {
            None
        };
        if let (Some(what), true) = (problem, t.examples.len() < 5) {
            t.examples.push(format!(
                "{}: {what}: user {} ({:?}): start={} auth={} acct={}, expected auth={} acct={}",
                kind.label(),
                u.name.to_string_lossy(),
                u.expect,
                pam_ffi::code_name(start),
                pam_ffi::code_name(auth),
                pam_ffi::code_name(acct),
                pam_ffi::code_name(want[0]),
                pam_ffi::code_name(want[1]),
            ));
        }
    }
    if record {
        t.cpu_ns = ffi::thread_cpu_ns().saturating_sub(cpu0);
    }
    t
}

/// `total` transactions spread over `threads` concurrent clients; the wall time runs from the
/// moment all clients are released until the last one finishes.
#[allow(clippy::too_many_arguments)]
fn run_chunk(
    kind: Kind,
    users: &[User],
    confdir: &CStr,
    threads: usize,
    total: u64,
    base: usize,
    deadline: Instant,
    record: bool,
) -> Result<(Tally, Duration), String> {
    let barrier = Barrier::new(threads + 1);
    let th = threads as u64;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let n = total / th + u64::from((i as u64) < total % th);
                let offset = base + i * users.len() / threads;
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    client(kind, users, confdir, offset, n, deadline, record)
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        let mut tally = Tally::default();
        let mut failed = false;
        for h in handles {
            match h.join() {
                Ok(t) => tally.merge(t),
                Err(_) => failed = true,
            }
        }
        let wall = t0.elapsed();
        if failed {
            Err("a client thread panicked".to_string())
        } else {
            Ok((tally, wall))
        }
    })
}

struct Measured {
    threads: usize,
    kind: Kind,
    tally: Tally,
    warm: Tally,
    wall: Duration,
    prompts: u64,
    /// CPU time the daemon used while this stack ran (None without --daemon-pid).
    daemon_cpu_ns: Option<u64>,
}

impl Measured {
    fn us_per_tx(&self) -> f64 {
        if self.tally.count == 0 {
            return f64::NAN;
        }
        self.wall.as_secs_f64() * self.threads as f64 / self.tally.count as f64 * 1e6
    }

    fn per_second(&self) -> f64 {
        self.tally.count as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn percentile_us(&self, sorted: &[u64], p: usize) -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        let i = (sorted.len() * p / 100).min(sorted.len() - 1);
        sorted[i] as f64 / 1000.0
    }

    /// (client CPU, daemon CPU) in µs per transaction.
    fn cpu_us(&self) -> (f64, Option<f64>) {
        let n = self.tally.count.max(1) as f64;
        (
            self.tally.cpu_ns as f64 / n / 1000.0,
            self.daemon_cpu_ns.map(|d| d as f64 / n / 1000.0),
        )
    }

    fn phase_us(&self, i: usize) -> f64 {
        self.tally.phase_ns[i] as f64 / self.tally.count.max(1) as f64 / 1000.0
    }
}

/// VmRSS of `pid` in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples `pid`'s RSS every 50 ms until `stop`; the samples in time order.
fn sample_rss(pid: u32, stop: &std::sync::atomic::AtomicBool) -> Vec<u64> {
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(k) = rss_kib(pid) {
            samples.push(k);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    samples
}

/// Prints the RSS figures; `false` when the last quarter grew past the tolerance.
fn judge_rss(pid: u32, samples: &[u64]) -> bool {
    if samples.len() < 8 {
        println!(
            "daemon RSS (pid {pid}): too few samples ({}) to judge",
            samples.len()
        );
        return true;
    }
    let q = samples.len() / 4;
    let mean = |s: &[u64]| s.iter().sum::<u64>() / s.len().max(1) as u64;
    let (first, last) = (mean(&samples[..q]), mean(&samples[samples.len() - q..]));
    let peak = samples.iter().copied().max().unwrap_or(0);
    let grew = last > first + (first / 10).max(2048);
    println!(
        "daemon RSS (pid {pid}, {} samples): first quarter {first} KiB, last quarter {last} KiB, \
         peak {peak} KiB: {}",
        samples.len(),
        if grew { "GREW (leak?)" } else { "flat" }
    );
    !grew
}

fn run(a: &Args) -> Result<bool, String> {
    let users = load_users(&a.users)?;
    precheck(&users, a.minimum_uid, &a.group)?;
    let _pinned: Vec<ffi::Pinned> = a
        .pin
        .iter()
        .map(|p| ffi::pin(p))
        .collect::<Result<_, _>>()?;

    let count = |e: Expect| users.iter().filter(|u| u.expect == e).count();
    let confdir = a.confdir.to_string_lossy().into_owned();
    println!(
        "users: {} ({} allowed, {} uid < {}, {} not in {}), cycled by every client",
        users.len(),
        count(Expect::Allow),
        count(Expect::DenyUid),
        a.minimum_uid,
        count(Expect::DenyGroup),
        a.group
    );
    println!(
        "transaction = pam_start_confdir + pam_authenticate + pam_acct_mgmt + pam_end, fresh handle each"
    );
    println!(
        "{} measured transactions per stack and concurrency in {} rounds alternating the stacks, \
         after {} checked warm-up transactions; cap {} s",
        a.transactions, a.rounds, a.warmup, a.max_seconds
    );
    println!(
        "note: libpam dlopens each module in pam_start and dlcloses it in pam_end. \
         pam_succeed_if.so is really unmapped each time; a Rust cdylib is linked -z nodelete and \
         stays mapped after its first load (compare the start/end columns; --pin both modules \
         to compare without module loading)"
    );
    if !a.pin.is_empty() {
        println!("DIAGNOSTIC: modules pinned in memory: {}", a.pin.join(", "));
    }
    for k in &a.stacks {
        let path = format!("{confdir}/{}", k.service().to_string_lossy());
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        println!("--- {path}");
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            println!("    {l}");
        }
    }
    println!();

    let rss_stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sampler = a.rss_pid.map(|pid| {
            let stop = &rss_stop;
            scope.spawn(move || (pid, sample_rss(pid, stop)))
        });
        let ok = measure(a, &users);
        rss_stop.store(true, Ordering::Relaxed);
        let rss_ok = match sampler.map(|h| h.join()) {
            Some(Ok((pid, samples))) => judge_rss(pid, &samples),
            Some(Err(_)) => false,
            None => true,
        };
        ok.map(|ok| ok && rss_ok)
    })
}

fn measure(a: &Args, users: &[User]) -> Result<bool, String> {
    let started = Instant::now();
    let hard_deadline = started + Duration::from_secs(a.max_seconds);
    let mut results: Vec<Measured> = Vec::new();
    let mut capped = false;

    // The first transaction of each stack in this process loads its module for the first time,
    // as every login does in a helper that runs once per sign-in (rserver-pam). One sample each,
    // checked like the others. A transaction on `policy-warm` (pam_permit.so, when run.sh wrote
    // it) goes first, so that libpam's own first-use costs fall on neither stack.
    let _ = ffi::transaction(c"policy-warm", &users[0].name, &a.confdir, None);
    let mut first = Vec::new();
    for &kind in &a.stacks {
        let (t, _) = run_chunk(kind, users, &a.confdir, 1, 1, 0, hard_deadline, true)?;
        first.push(format!(
            "{} {:.0} us",
            kind.label(),
            t.lat_ns.first().map_or(f64::NAN, |&n| n as f64 / 1000.0)
        ));
        if t.wrong() > 0 {
            for e in &t.examples {
                println!("FAIL first transaction: {e}");
            }
            return Ok(false);
        }
    }
    println!(
        "first transaction in this process (module loaded for the first time), one sample: {}",
        first.join(", ")
    );
    for (level, &threads) in a.threads.iter().enumerate() {
        // Each concurrency level gets an equal share of what is left of the cap.
        let left = hard_deadline.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(a.threads.len() - level).unwrap_or(1);
        let deadline = Instant::now() + share;
        let mut per: Vec<Measured> = a
            .stacks
            .iter()
            .map(|&kind| Measured {
                threads,
                kind,
                tally: Tally::default(),
                warm: Tally::default(),
                wall: Duration::ZERO,
                prompts: 0,
                daemon_cpu_ns: a.daemon_pid.map(|_| 0),
            })
            .collect();
        eprintln!("policy-bench: {threads} client(s): warm-up");
        for m in per.iter_mut() {
            let before = ffi::CONVERSATION_CALLS.load(Ordering::Relaxed);
            let (t, _) = run_chunk(
                m.kind,
                users,
                &a.confdir,
                a.warmup_threads.unwrap_or(threads),
                a.warmup,
                0,
                deadline,
                false,
            )?;
            m.prompts += ffi::CONVERSATION_CALLS.load(Ordering::Relaxed) - before;
            m.warm.merge(t);
        }
        eprintln!("policy-bench: {threads} client(s): measuring");
        let mut base = 0usize;
        for r in 0..a.rounds {
            let n = a.transactions / a.rounds + u64::from(r < a.transactions % a.rounds);
            let order: Vec<usize> = if r % 2 == 0 {
                (0..per.len()).collect()
            } else {
                (0..per.len()).rev().collect()
            };
            for i in order {
                let m = &mut per[i];
                let before = ffi::CONVERSATION_CALLS.load(Ordering::Relaxed);
                let daemon0 = a.daemon_pid.and_then(ffi::process_cpu_ns);
                let (t, wall) =
                    run_chunk(m.kind, users, &a.confdir, threads, n, base, deadline, true)?;
                m.prompts += ffi::CONVERSATION_CALLS.load(Ordering::Relaxed) - before;
                let daemon1 = a.daemon_pid.and_then(ffi::process_cpu_ns);
                m.daemon_cpu_ns = match (m.daemon_cpu_ns, daemon0, daemon1) {
                    (Some(sum), Some(d0), Some(d1)) => Some(sum + d1.saturating_sub(d0)),
                    _ => None,
                };
                m.tally.merge(t);
                m.wall += wall;
            }
            base += usize::try_from(n / threads as u64).unwrap_or(0);
        }
        if Instant::now() >= deadline {
            capped = true;
        }
        results.extend(per);
    }

    print_table(a, &mut results, capped, started.elapsed());

    let mut ok = true;
    for m in &results {
        let wrong = m.tally.wrong() + m.warm.wrong();
        let prompts = if PASSWORD.get().is_some() {
            0
        } else {
            m.prompts
        };
        if wrong > 0 || prompts > 0 {
            ok = false;
            println!(
                "FAIL {} with {} client(s): {} wrong decisions, {} wrong return codes, \
                 {} pam_start failures, {} conversation prompts",
                m.kind.label(),
                m.threads,
                m.tally.wrong_decision + m.warm.wrong_decision,
                m.tally.wrong_code + m.warm.wrong_code,
                m.tally.start_failed + m.warm.start_failed,
                prompts
            );
            for e in m.warm.examples.iter().chain(&m.tally.examples).take(5) {
                println!("    {e}");
            }
        }
        if m.tally.count == 0 {
            ok = false;
            println!(
                "FAIL {} with {} client(s): nothing measured before the cap",
                m.kind.label(),
                m.threads
            );
        }
    }
    Ok(ok)
}

fn print_table(a: &Args, results: &mut [Measured], capped: bool, elapsed: Duration) {
    println!(
        "{:>7}  {:<10}  {:>7}  {:>9}  {:>9}  {:>8}  {:>8}  {:>9}  {:>5}   {:>8} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "clients",
        "stack",
        "txns",
        "us/txn",
        "txn/s",
        "p50 us",
        "p99 us",
        "max us",
        "wrong",
        "cpu us",
        "daemon",
        "start",
        "auth",
        "acct",
        "end"
    );
    for &threads in &a.threads {
        // (kind, us/txn, p50, cpu us/txn)
        let mut means: Vec<(Kind, f64, f64, f64)> = Vec::new();
        for m in results.iter_mut().filter(|m| m.threads == threads) {
            m.tally.lat_ns.sort_unstable();
            let p50 = m.percentile_us(&m.tally.lat_ns, 50);
            let p99 = m.percentile_us(&m.tally.lat_ns, 99);
            let (client_cpu, daemon_cpu) = m.cpu_us();
            let cpu = client_cpu + daemon_cpu.unwrap_or(0.0);
            println!(
                "{:>7}  {:<10}  {:>7}  {:>9.1}  {:>9.0}  {:>8.1}  {:>8.1}  {:>9.1}  {:>5}   {:>8.1} {:>7} {:>7.1} {:>7.1} {:>7.1} {:>7.1}",
                threads,
                m.kind.label(),
                m.tally.count,
                m.us_per_tx(),
                m.per_second(),
                p50,
                p99,
                m.percentile_us(&m.tally.lat_ns, 100),
                m.tally.wrong() + m.warm.wrong(),
                cpu,
                daemon_cpu.map_or("-".to_string(), |d| format!("{d:.1}")),
                m.phase_us(0),
                m.phase_us(1),
                m.phase_us(2),
                m.phase_us(3),
            );
            means.push((m.kind, m.us_per_tx(), p50, cpu));
        }
        let find = |k: Kind| means.iter().find(|m| m.0 == k);
        if let (Some(s), Some(am)) = (find(Kind::SucceedIf), find(Kind::Accountmap)) {
            let ratio = am.1 / s.1;
            // Issue 16's targets: at most pam_succeed_if's cost with one client, 1.2× with more.
            let target = if threads == 1 { 1.0 } else { 1.2 };
            println!(
                "{:>7}  ratio accountmap/succeed_if: {:.2}x per transaction (p50 {:.2}x, CPU {:.2}x); \
                 target <= {target:.2}x: {}",
                threads,
                ratio,
                am.2 / s.2,
                am.3 / s.3,
                if ratio <= target { "met" } else { "NOT met" }
            );
        }
    }
    println!(
        "(us/txn = wall time x clients / transactions = mean latency; cpu us = CPU per transaction \
         of the client threads plus, for accountmap, of the daemon (its share shown as daemon, \
         {}); start/auth/acct/end = mean us in pam_start_confdir / pam_authenticate / \
         pam_acct_mgmt / pam_end; run took {:.1} s{})",
        if a.daemon_pid.is_some() {
            "10 ms ticks summed over the rounds"
        } else {
            "not measured: no --daemon-pid"
        },
        elapsed.as_secs_f64(),
        if capped {
            ", STOPPED BY THE WALL-CLOCK CAP: fewer transactions than asked"
        } else {
            ""
        }
    );
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("policy-bench: {e}");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("policy-bench: {e}");
            ExitCode::from(1)
        }
    }
}
