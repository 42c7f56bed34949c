//! fresh-bench: a new process per sign-in (or per look-up), as rserver runs one `rserver-pam`
//! per sign-in and `id NAME` one process per query (issue 16). For every case it starts the job
//! programs N times (posix_spawn/fork + exec, wait), from 1 or more concurrent driver threads,
//! checks each job's verdict from the first line it prints, and reports the wall time per
//! process. The cases run in interleaved rounds (the order reversed every other round) so that
//! noise on the machine hits all of them; figures are medians over the rounds.
//!
//! A JOBS file has one job a line: `EXPECT<TAB>ARGV` — EXPECT is what the job's first output
//! line must start with (e.g. `0 0` for PAM_SUCCESS twice, `7 7` for PAM_AUTH_ERR twice, `ok`),
//! ARGV the program and its arguments separated by single spaces. A program `@pam` or `@nss` is
//! the helper built with this bench from `bench/fresh.c` in its mode (`fresh-pam pam`,
//! `fresh-nss getpwnam`). The jobs
//! of a case are taken in turn, cycling; every client starts at its own offset. Numbers printed
//! after EXPECT are the helper's own timings (ns) and are averaged into the `inner` column.
//!
//! Cases are compared in pairs: the 2nd against the 1st, the 4th against the 3rd, …

// A benchmark tool: a failure is reported and ends the process.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod stats;

use stats::median;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: fresh-bench --case LABEL=JOBS [--case LABEL=JOBS ...] [options]

  --case LABEL=JOBS   a case: JOBS file (`EXPECT<TAB>ARGV` lines); cases compare in pairs
  --per-round N       processes per case and round, spread over the clients (default 500)
  --rounds N          rounds; the case order is reversed every other round (default 5)
  --clients LIST      concurrent driver threads, comma-separated (default 1,8)
  --warmup N          checked, unmeasured processes per case before each level (default 20)
  --max-seconds S     wall-clock cap of the whole run; rounds not started by then are skipped
                      and the table says so (default 600)
  --title TEXT        printed above the table
  --inner NAMES       comma-separated names of the helper's timing fields, for the inner column
  --copy-before LABEL=SRC:DST
                      before every batch of case LABEL, write SRC's bytes over DST in place
                      (same inode): DST is a file bind-mounted over /etc/nsswitch.conf in a
                      private mount namespace, so each case sees its own NSS configuration
";

struct Job {
    expect: String,
    argv: Vec<String>,
}

struct Case {
    label: String,
    jobs: Vec<Job>,
    /// `--copy-before`: (bytes, destination) written before each batch.
    before: Option<(Vec<u8>, String)>,
}

struct Args {
    cases: Vec<Case>,
    per_round: usize,
    rounds: usize,
    clients: Vec<usize>,
    warmup: usize,
    max_seconds: u64,
    title: Option<String>,
    inner: Vec<String>,
}

/// The program and its first arguments: `@pam` is `fresh-pam pam`, `@nss` is
/// `fresh-nss getpwnam` (bench/fresh.c, built by build.rs); anything else is itself.
fn helper(name: &str) -> Vec<String> {
    match name {
        "@pam" => vec![env!("FRESH_PAM").to_string(), "pam".to_string()],
        "@nss" => vec![env!("FRESH_NSS").to_string(), "getpwnam".to_string()],
        other => vec![other.to_string()],
    }
}

fn load_jobs(path: &str) -> Vec<Job> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let jobs: Vec<Job> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (expect, argv) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("{path}: no TAB in {l:?}"));
            let mut words = argv.split(' ');
            let mut argv = helper(words.next().unwrap_or_default());
            argv.extend(words.map(str::to_string));
            Job {
                expect: expect.to_string(),
                argv,
            }
        })
        .collect();
    assert!(!jobs.is_empty(), "{path}: no jobs");
    jobs
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        cases: Vec::new(),
        per_round: 500,
        rounds: 5,
        clients: vec![1, 8],
        warmup: 20,
        max_seconds: 600,
        title: None,
        inner: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--case" => {
                let (label, path) = value.split_once('=').ok_or("--case LABEL=JOBS")?;
                a.cases.push(Case {
                    label: label.to_string(),
                    jobs: load_jobs(path),
                    before: None,
                });
            }
            "--per-round" => a.per_round = num(&value)?.clamp(1, 100_000),
            "--rounds" => a.rounds = num(&value)?.clamp(1, 100),
            "--warmup" => a.warmup = num(&value)?.min(10_000),
            "--max-seconds" => a.max_seconds = num(&value)?.max(1) as u64,
            "--title" => a.title = Some(value),
            "--copy-before" => {
                let (label, files) = value.split_once('=').ok_or("--copy-before LABEL=SRC:DST")?;
                let (src, dst) = files.split_once(':').ok_or("--copy-before LABEL=SRC:DST")?;
                let bytes = std::fs::read(src).map_err(|e| format!("{src}: {e}"))?;
                let case = a
                    .cases
                    .iter_mut()
                    .find(|c| c.label == label)
                    .ok_or(format!(
                        "--copy-before: no case {label} (give --case first)"
                    ))?;
                case.before = Some((bytes, dst.to_string()));
            }
            "--inner" => a.inner = value.split(',').map(str::to_string).collect(),
            "--clients" => {
                a.clients = value
                    .split(',')
                    .map(|c| {
                        c.parse::<usize>()
                            .ok()
                            .filter(|n| (1..=64).contains(n))
                            .ok_or(format!("--clients: bad count {c:?}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.cases.is_empty() {
        return Err("at least one --case".into());
    }
    Ok(a)
}

/// What one process gave: its wall time (spawn to reaped), and its own timings.
struct Sample {
    ns: u64,
    inner: Vec<u64>,
}

/// Runs one job; `Err` describes a wrong verdict or a failed process.
fn run_job(job: &Job) -> Result<Sample, String> {
    let t0 = Instant::now();
    let out = Command::new(&job.argv[0])
        .args(&job.argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{}: {e}", job.argv[0]))?;
    let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap_or("");
    if !out.status.success() || !first.starts_with(&job.expect) {
        return Err(format!(
            "{}: {} printed {first:?}, expected {:?}{}",
            job.argv.join(" "),
            out.status,
            job.expect,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .map(|l| format!(" (stderr: {l})"))
                .unwrap_or_default()
        ));
    }
    let inner = first[job.expect.len()..]
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    Ok(Sample { ns, inner })
}

/// `n` processes of `case` from `clients` threads; (samples, wall time of the batch).
fn batch(case: &Case, clients: usize, n: usize, base: usize) -> (Vec<Sample>, Duration) {
    if let Some((bytes, dst)) = &case.before {
        std::fs::write(dst, bytes).unwrap_or_else(|e| panic!("{dst}: {e}"));
    }
    let t0 = Instant::now();
    let samples = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let count = n / clients + usize::from(c < n % clients);
                let offset = base + c * case.jobs.len() / clients;
                s.spawn(move || {
                    (0..count)
                        .map(|k| {
                            let job = &case.jobs[(offset + k) % case.jobs.len()];
                            run_job(job).unwrap_or_else(|e| panic!("{}: {e}", case.label))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a client thread failed"))
            .collect::<Vec<_>>()
    });
    (samples, t0.elapsed())
}

fn percentile_us(sorted: &[u64], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)] as f64 / 1000.0
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fresh-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let deadline = Instant::now() + Duration::from_secs(a.max_seconds);
    if let Some(t) = &a.title {
        println!("### {t}");
    }
    println!(
        "{} processes per case and round, {} rounds (order reversed every other round), \
         {} checked warm-up processes per case; load average at start: {}",
        a.per_round,
        a.rounds,
        a.warmup,
        load()
    );
    for c in &a.cases {
        println!(
            "- {}: {} jobs, e.g. `{}`",
            c.label,
            c.jobs.len(),
            c.jobs[0].argv.join(" ")
        );
    }
    let inner_names = if a.inner.is_empty() {
        "inner µs".to_string()
    } else {
        format!("inner µs ({})", a.inner.join(" / "))
    };
    println!();
    println!(
        "| clients | case | processes | µs per process (median of rounds) | round range | per second | p50 µs | p90 µs | {inner_names} |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut capped = false;
    for &clients in &a.clients {
        for c in &a.cases {
            let (_, _) = batch(c, clients.min(a.warmup.max(1)), a.warmup, 0);
        }
        // per case: per-round mean µs, all samples
        let mut per: Vec<(Vec<f64>, Vec<Sample>)> =
            a.cases.iter().map(|_| (Vec::new(), Vec::new())).collect();
        let load0 = load();
        for r in 0..a.rounds {
            if Instant::now() >= deadline {
                capped = true;
                break;
            }
            let order: Vec<usize> = if r % 2 == 0 {
                (0..a.cases.len()).collect()
            } else {
                (0..a.cases.len()).rev().collect()
            };
            for i in order {
                let (samples, wall) = batch(&a.cases[i], clients, a.per_round, r * a.per_round);
                let mean_us = wall.as_secs_f64() * 1e6 * clients as f64 / samples.len() as f64;
                per[i].0.push(mean_us);
                per[i].1.extend(samples);
            }
        }
        let mut medians = Vec::new();
        for (c, (means, samples)) in a.cases.iter().zip(per.iter_mut()) {
            let mut ns: Vec<u64> = samples.iter().map(|s| s.ns).collect();
            ns.sort_unstable();
            let fields = samples.iter().map(|s| s.inner.len()).min().unwrap_or(0);
            let inner: Vec<String> = (0..fields)
                .map(|f| {
                    let sum: u64 = samples.iter().map(|s| s.inner[f]).sum();
                    format!("{:.0}", sum as f64 / samples.len().max(1) as f64 / 1000.0)
                })
                .collect();
            let lo = means.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = means.iter().copied().fold(0.0, f64::max);
            let m = median(means);
            medians.push((m, means.clone()));
            println!(
                "| {clients} | {} | {} | {m:.0} | {lo:.0}–{hi:.0} | {:.0} | {:.0} | {:.0} | {} |",
                c.label,
                samples.len(),
                1e6 * clients as f64 / m,
                percentile_us(&ns, 50),
                percentile_us(&ns, 90),
                if inner.is_empty() {
                    "-".into()
                } else {
                    inner.join(" / ")
                }
            );
        }
        for pair in 0..a.cases.len() / 2 {
            let (b, c) = (&medians[2 * pair], &medians[2 * pair + 1]);
            let per_round: Vec<String> =
                b.1.iter()
                    .zip(&c.1)
                    .map(|(x, y)| format!("{:.2}", y / x))
                    .collect();
            println!(
                "| {clients} | ratio {} / {} | | **{:.2}×** | rounds: {} | | | | load at start of level: {load0} |",
                a.cases[2 * pair + 1].label,
                a.cases[2 * pair].label,
                c.0 / b.0,
                per_round.join(" ")
            );
        }
    }
    println!(
        "\n(µs per process = wall time of a round × clients / processes: spawn, exec, the job, exit, \
         reaped = the mean latency; per second = clients / that; p50/p90 over every process of \
         the level; inner = the helper's own mean timings; load average at the end: {}{})",
        load(),
        if capped {
            "; STOPPED BY THE WALL-CLOCK CAP: fewer rounds than asked"
        } else {
            ""
        }
    );
    ExitCode::SUCCESS
}
