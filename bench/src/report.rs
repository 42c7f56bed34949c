//! The results directory of `bench/compare.sh` -> `docs/benchmarks.md` (and the data file of
//! the plot). Inputs, all written by one run:
//!
//! - `results.tsv`: one [`Row`] a line (sign-ins, NSS look-ups, policy transactions, raw LDAP);
//! - `memory.tsv`: `size system process pid VmRSS_kB VmHWM_kB`, taken after the warm runs;
//! - `machine.tsv`: `key<TAB>value` (cpu, cores, kernel, versions, duration, ...);
//! - `commands.txt`: the exact commands of the run, copied into the page.
//!
//! Ratios and the targets table are computed here from the figures of the same run, pair by
//! pair (same size, phase, clients, pinning), never from reference numbers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const COLUMNS: &str = "size\tsystem\tcase\tphase\tclients\tpinned\tn\tsecs\tper_sec\tp50_us\tp99_us\tmean_us\tcpu_client_s\tcpu_daemon_s\tcpu_slapd_s\tnote";

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub size: String,
    pub system: String,
    pub case: String,
    pub phase: String,
    pub clients: usize,
    pub pinned: String,
    pub n: usize,
    pub secs: f64,
    pub per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub cpu_client_s: f64,
    pub cpu_daemon_s: f64,
    pub cpu_slapd_s: f64,
    pub note: String,
}

impl Row {
    pub fn to_tsv(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.4}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{:.3}\t{:.3}\t{:.3}\t{}",
            self.size,
            self.system,
            self.case,
            self.phase,
            self.clients,
            self.pinned,
            self.n,
            self.secs,
            self.per_sec,
            self.p50_us,
            self.p99_us,
            self.mean_us,
            self.cpu_client_s,
            self.cpu_daemon_s,
            self.cpu_slapd_s,
            self.note
        )
    }

    pub fn from_tsv(line: &str) -> Option<Row> {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 16 || f[0] == "size" {
            return None;
        }
        let x = |i: usize| f[i].parse::<f64>().unwrap_or(f64::NAN);
        Some(Row {
            size: f[0].into(),
            system: f[1].into(),
            case: f[2].into(),
            phase: f[3].into(),
            clients: f[4].parse().ok()?,
            pinned: f[5].into(),
            n: f[6].parse().ok()?,
            secs: x(7),
            per_sec: x(8),
            p50_us: x(9),
            p99_us: x(10),
            mean_us: x(11),
            cpu_client_s: x(12),
            cpu_daemon_s: x(13),
            cpu_slapd_s: x(14),
            note: f[15].into(),
        })
    }

    /// CPU seconds (client + daemons + slapd) per 10,000 operations.
    fn cpu_per_10k(&self) -> f64 {
        (self.cpu_client_s + self.cpu_daemon_s + self.cpu_slapd_s) * 10_000.0 / self.n as f64
    }
}

pub struct Memory {
    pub size: String,
    pub system: String,
    pub process: String,
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

pub struct Inputs {
    pub rows: Vec<Row>,
    pub memory: Vec<Memory>,
    pub machine: Vec<(String, String)>,
    pub commands: String,
    /// run.sh's realistic rows (issue 16), `policy-realistic.md`: fresh-bench's markdown tables
    /// among policy-bench's plain-text ones. Empty: no section.
    pub realistic: String,
}

/// Text whose lines starting with `|` or `#` are markdown and the rest plain output: the plain
/// runs go in code blocks, the tables stay tables.
fn embed_mixed(text: &str) -> String {
    let mut o = String::new();
    let mut in_code = false;
    for line in text.lines() {
        let markdown = line.starts_with('|') || line.starts_with('#');
        if markdown && in_code {
            o.push_str("```\n\n");
            in_code = false;
        } else if !markdown && !in_code {
            if line.trim().is_empty() {
                o.push('\n');
                continue;
            }
            o.push_str("\n```\n");
            in_code = true;
        }
        o.push_str(line);
        o.push('\n');
    }
    if in_code {
        o.push_str("```\n");
    }
    o
}

pub fn parse_rows(text: &str) -> Vec<Row> {
    text.lines().filter_map(Row::from_tsv).collect()
}

pub fn parse_memory(text: &str) -> Vec<Memory> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 6).then_some(())?;
            Some(Memory {
                size: f[0].into(),
                system: f[1].into(),
                process: f[2].into(),
                rss_kb: f[4].parse().ok()?,
                hwm_kb: f[5].parse().ok()?,
            })
        })
        .collect()
}

fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn sizes(rows: &[Row]) -> Vec<String> {
    let mut s: Vec<String> = Vec::new();
    for r in rows {
        if r.size != "-" && !s.contains(&r.size) {
            s.push(r.size.clone());
        }
    }
    s
}

fn find<'a>(
    rows: &'a [Row],
    size: &str,
    system: &str,
    case: &str,
    phase: &str,
    clients: usize,
    pinned: &str,
) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.size == size
            && r.system == system
            && r.case == case
            && r.phase == phase
            && r.clients == clients
            && (pinned.is_empty() || r.pinned == pinned)
    })
}

fn table(out: &mut String, rows: &[&Row], with_cpu: bool) {
    out.push_str("| system | phase | clients | pinned | ops | ops/s | p50 µs | p99 µs | mean µs |");
    if with_cpu {
        out.push_str(" CPU s / 10k (client+daemons+slapd) |");
    }
    out.push_str(" note |\n|---|---|---|---|---|---|---|---|---|");
    if with_cpu {
        out.push_str("---|");
    }
    out.push_str("---|\n");
    for r in rows {
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.system,
            r.phase,
            r.clients,
            r.pinned,
            r.n,
            fmt_num(r.per_sec),
            fmt_num(r.p50_us),
            fmt_num(r.p99_us),
            fmt_num(r.mean_us)
        );
        if with_cpu {
            let _ = write!(
                out,
                " {} ({} + {} + {}) |",
                fmt_num(r.cpu_per_10k()),
                fmt_num(r.cpu_client_s * 10_000.0 / r.n as f64),
                fmt_num(r.cpu_daemon_s * 10_000.0 / r.n as f64),
                fmt_num(r.cpu_slapd_s * 10_000.0 / r.n as f64)
            );
        }
        let _ = writeln!(out, " {} |", r.note);
    }
    out.push('\n');
}

/// One line of the targets table.
pub struct Check {
    pub size: String,
    pub target: String,
    pub figure: String,
    /// None: a figure is missing (not measured in this run).
    pub met: Option<bool>,
}

fn rss_of(mem: &[Memory], size: &str, system: &str) -> Option<u64> {
    let v: Vec<u64> = mem
        .iter()
        .filter(|m| m.size == size && m.system == system)
        .map(|m| m.rss_kb)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

pub fn checks(inp: &Inputs) -> Vec<Check> {
    let rows = &inp.rows;
    // accountmap's figures count only when it decided every sign-in (no service errors).
    let clean = |r: &Row| !r.note.contains("errors=") && !r.note.contains("capped");
    let mut out = Vec::new();
    let mut push = |size: &str, target: &str, figure: String, met: Option<bool>| {
        out.push(Check {
            size: size.into(),
            target: target.into(),
            figure,
            met,
        })
    };
    for size in sizes(rows) {
        let s = size.as_str();
        for clients in [1usize, 8] {
            let am = find(rows, s, "accountmap", "signin", "warm", clients, "yes");
            let nl = find(rows, s, "nslcd", "signin", "warm", clients, "yes");
            let (fig, met) = match (am, nl) {
                (Some(a), Some(n)) => (
                    format!(
                        "{} /s vs nslcd {} /s = {:.2}×",
                        fmt_num(a.per_sec),
                        fmt_num(n.per_sec),
                        a.per_sec / n.per_sec
                    ),
                    Some(a.per_sec >= 2.0 * n.per_sec && clean(a)),
                ),
                _ => ("not measured".into(), None),
            };
            push(
                s,
                &format!("warm sign-ins/s ≥ 2× nslcd, {clients} client(s)"),
                fig,
                met,
            );
            let (fig, met) = match (am, nl) {
                (Some(a), Some(n)) => (
                    format!(
                        "p99 {} µs vs nslcd {} µs = {:.2}×",
                        fmt_num(a.p99_us),
                        fmt_num(n.p99_us),
                        a.p99_us / n.p99_us
                    ),
                    Some(a.p99_us <= 0.5 * n.p99_us && clean(a)),
                ),
                _ => ("not measured".into(), None),
            };
            push(
                s,
                &format!("warm sign-in p99 ≤ ½ nslcd's, {clients} client(s)"),
                fig,
                met,
            );
        }
        let cold = find(rows, s, "accountmap", "signin", "cold", 1, "yes");
        let raw = find(rows, s, "raw-ldap", "signin", "raw", 1, "");
        let (fig, met) = match (cold, raw) {
            (Some(c), Some(r)) => (
                format!(
                    "cold p50 {} µs vs raw search+bind p50 {} µs = {:.2}×",
                    fmt_num(c.p50_us),
                    fmt_num(r.p50_us),
                    c.p50_us / r.p50_us
                ),
                Some(c.p50_us <= 1.3 * r.p50_us && clean(c)),
            ),
            _ => ("not measured".into(), None),
        };
        push(
            s,
            "cold sign-in ≤ 1.3× raw LDAP work (p50, 1 client)",
            fig,
            met,
        );
        let alias = find(rows, s, "accountmap", "nss-alias", "warm", 1, "");
        for (case, order) in [
            ("nss-sss-files", "sss files"),
            ("nss-files-sss", "files sss"),
        ] {
            let sss = find(rows, s, "sssd", case, "warm", 1, "");
            let (fig, met) = match (alias, sss) {
                (Some(a), Some(b)) => {
                    let failed =
                        |r: &Row| r.note.contains("unanswered") || r.note.contains("WRONG");
                    let mut fig = format!(
                        "alias p50 {} µs vs SSSD ({order}) p50 {} µs = {:.2}×",
                        fmt_num(a.p50_us),
                        fmt_num(b.p50_us),
                        a.p50_us / b.p50_us
                    );
                    for r in [a, b].into_iter().filter(|r| failed(r)) {
                        let _ = write!(
                            fig,
                            "; {} {} of {} calls got no entry",
                            r.system, r.note, r.n
                        );
                    }
                    (
                        fig,
                        Some(a.p50_us <= 2.0 * b.p50_us && !failed(a) && !failed(b)),
                    )
                }
                _ => ("not measured".into(), None),
            };
            // accountmap's own line is `files accountmap`: local names never wait for the daemon.
            // SSSD is shown both ways; `files sss` is the like-for-like order.
            push(
            s,
            &format!("warm getpwnam of an alias ≤ 2× SSSD's in-memory cache (p50; accountmap `files accountmap`, SSSD `{order}`)"),
            fig,
            met,
        );
        }
        let am = rss_of(&inp.memory, s, "accountmap");
        let nl = rss_of(&inp.memory, s, "nslcd");
        // nss_wrapper's parsed copy of the bench's passwd/group files lives inside accountmapd
        // (a daemon reading /etc/passwd through glibc has none): the difference between two
        // idle daemons, over these files and over a 3-line file, is taken off.
        let nss_wrapper = match (
            rss_of(&inp.memory, s, "accountmap-baseline-full"),
            rss_of(&inp.memory, s, "accountmap-baseline-tiny"),
        ) {
            (Some(full), Some(tiny)) => full.saturating_sub(tiny),
            _ => 0,
        };
        let (fig, met) = match (am, nl) {
            (Some(a), Some(n)) => {
                let own = a.saturating_sub(nss_wrapper);
                (
                    format!(
                        "accountmapd {a} kB, of which nss_wrapper's copy of the user files {nss_wrapper} kB: {own} kB vs nslcd {n} kB = {:.2}×",
                        own as f64 / n as f64
                    ),
                    Some(own <= 2 * n),
                )
            }
            _ => ("not measured".into(), None),
        };
        push(
            s,
            "daemon RSS ≤ 2× nslcd's (VmRSS after the warm runs)",
            fig,
            met,
        );
    }
    for clients in [1usize, 8] {
        let am = rows
            .iter()
            .find(|r| r.system == "accountmap" && r.case == "policy" && r.clients == clients);
        let si = rows
            .iter()
            .find(|r| r.system == "pam_succeed_if" && r.case == "policy" && r.clients == clients);
        let (fig, met) = match (am, si) {
            (Some(a), Some(b)) => (
                format!(
                    "{} µs/txn vs pam_succeed_if {} µs/txn = {:.2}×",
                    fmt_num(a.mean_us),
                    fmt_num(b.mean_us),
                    a.mean_us / b.mean_us
                ),
                Some(a.mean_us <= b.mean_us),
            ),
            _ => ("not measured".into(), None),
        };
        push(
            "-",
            &format!("policy-only transaction ≤ pam_succeed_if, {clients} client(s)"),
            fig,
            met,
        );
    }
    out
}

pub fn render(inp: &Inputs) -> String {
    let rows = &inp.rows;
    let mut o = String::new();
    o.push_str(
        "# Benchmarks: accountmap, SSSD, nslcd and pam_succeed_if\n\n\
         Generated by `make bench` (`bench/compare.sh`) from one run; do not edit by hand — \
         run it again. What is set up and how the machine is restored: `bench/README.md`.\n\n",
    );
    o.push_str("## Machine and versions\n\n| | |\n|---|---|\n");
    for (k, v) in &inp.machine {
        let _ = writeln!(o, "| {k} | {v} |");
    }
    o.push('\n');
    o.push_str(
        "## Setup\n\n\
         - One slapd 2.5 on 127.0.0.1 (MDB, loaded with `slapadd -q`, equality indexes on \
         objectClass, uid, mail, memberUid, member, uniqueMember, cn), TLS off for every system. \
         Users are posixAccount + inetOrgPerson, uid ≥ 10000, `mail: NAME@example.test`, \
         **cleartext** `userPassword` for everyone. The posixGroup `benchusers` (memberUid, and \
         the primary group) holds all users but every 50th; those and 5 users with uid < 1000 \
         are refused by every system, and so are wrong passwords: each run checks 16 refusals.\n\
         - Same policy everywhere: search base `dc=example,dc=test`, minimum uid 1000, required \
         group benchusers. SSSD 2.8: id/auth ldap, `access_provider = simple`, \
         `simple_allow_groups`, `min_id`; `sssd-initgroups-never` rows: the same daemon with \
         `pam_initgroups_scheme = never` (the default scans every /proc entry per request when \
         logind is absent, as here). nslcd 0.9.12: `nss_min_uid 1000`, `pam_authz_search` on \
         memberUid, `pam_ldap.so minimum_uid=1000`. accountmap: `[[ldap]]` anonymous bind, \
         `whitelisted_login_groups = [cn=benchusers,…]` with `group_member_attribute = \
         \"memberUid\"` (the group is checked in the directory, as nslcd does; no group-name \
         search), `minimum_uid = 1000`, `pam_accountmap.so verify=ldap`.\n\
         - accountmap maps to LOCAL accounts it looks up through NSS: here `accountmapd` runs \
         under **nss_wrapper** with a generated passwd file of the same users (no /etc/passwd \
         edits). nss_wrapper reads the whole file into the daemon (a few MB at 50,000 users, \
         part of its RSS below, measured separately and taken off for the RSS target) and scans \
         it linearly for each account the daemon has not cached (part of the cold figures); \
         SSSD and nslcd resolve accounts from LDAP instead.\n\
         - Each system's caches as shipped; cold = caches emptied (SSSD's cache files removed \
         before it starts, `accountmapctl cache flush`; nslcd has none) and users never seen \
         before; warm = the same users again after a checked warm-up. One system runs at a \
         time. CPU columns: client (getrusage) + daemon processes + slapd (/proc/PID/stat, \
         10 ms ticks), per 10,000 operations.\n\n",
    );
    let checks = checks(inp);
    o.push_str("## Targets\n\nComputed from this run's figures.\n\n| users | target | figure | met |\n|---|---|---|---|\n");
    for c in &checks {
        let met = match c.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        let _ = writeln!(o, "| {} | {} | {} | {} |", c.size, c.target, c.figure, met);
    }
    o.push('\n');
    for size in sizes(rows) {
        let _ = writeln!(o, "## {size} users\n");
        let signins: Vec<&Row> = rows
            .iter()
            .filter(|r| r.size == size && r.case == "signin")
            .collect();
        o.push_str(
            "### PAM password sign-ins (auth + account)\n\n\
             `pinned`: one PAM handle of the service is held open for the whole run, so the \
             modules stay loaded; `no`: libpam loads and unloads them in every transaction \
             (1 client on the main thread only). `raw-ldap` is the C loop: search by uid on a \
             bound connection, then a simple bind as the user on a fresh connection.\n\n",
        );
        table(&mut o, &signins, true);
        o.push_str(
            "Ratios accountmap / other, same phase, clients and pinning (ops/s: higher is \
             better for accountmap when > 1; p50 and p99: lower is better when < 1):\n\n\
             | other | phase | clients | pinned | ops/s ratio | p50 ratio | p99 ratio |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for a in signins.iter().filter(|r| r.system == "accountmap") {
            for b in signins
                .iter()
                .filter(|r| r.system != "accountmap" && r.system != "raw-ldap")
            {
                if a.phase == b.phase && a.clients == b.clients && a.pinned == b.pinned {
                    let _ = writeln!(
                        o,
                        "| {} | {} | {} | {} | {:.2}× | {:.2}× | {:.2}× |",
                        b.system,
                        a.phase,
                        a.clients,
                        a.pinned,
                        a.per_sec / b.per_sec,
                        a.p50_us / b.p50_us,
                        a.p99_us / b.p99_us
                    );
                }
            }
        }
        o.push('\n');
        let nss: Vec<&Row> = rows
            .iter()
            .filter(|r| r.size == size && r.case.starts_with("nss"))
            .collect();
        let mut nss_sorted = nss.clone();
        nss_sorted.sort_by(|a, b| (&a.case, &a.system).cmp(&(&b.case, &b.system)));
        o.push_str(
            "### NSS getpwnam (glibc, the machine's /etc/nsswitch.conf rewritten for the run)\n\n\
             `nss-user`: an existing user's own name; `nss-sss-files` / `nss-files-sss`: SSSD \
             with `passwd: sss files` / `files sss`; `nss-alias`: `uid@example.test` through \
             libnss_accountmap (`passwd: files accountmap`). accountmap does not answer for a \
             local name itself (files does): **n/a**.\n\n",
        );
        let mut t = String::new();
        table(&mut t, &nss_sorted, false);
        // The case is part of the row: insert it in the system column.
        for r in &nss_sorted {
            t = t.replacen(
                &format!("| {} | {} | {} |", r.system, r.phase, r.clients),
                &format!("| {} {} | {} | {} |", r.system, r.case, r.phase, r.clients),
                1,
            );
        }
        o.push_str(&t);
        let mem: Vec<&Memory> = inp.memory.iter().filter(|m| m.size == size).collect();
        if !mem.is_empty() {
            o.push_str(
                "### Resident memory after the warm runs\n\n| system | process | VmRSS kB | VmHWM kB |\n|---|---|---|---|\n",
            );
            let mut totals: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
            for m in &mem {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    m.system, m.process, m.rss_kb, m.hwm_kb
                );
                let e = totals.entry(m.system.as_str()).or_default();
                e.0 += m.rss_kb;
                e.1 += m.hwm_kb;
            }
            for (s, (r, h)) in totals {
                let _ = writeln!(o, "| {s} | **total** | {r} | {h} |");
            }
            o.push_str(
                "\n`accountmap-baseline-full` / `-tiny`: an idle accountmapd without `[[ldap]]` \
                 under nss_wrapper over this run's user files / over a 3-line passwd file, after \
                 one lookup; their difference is nss_wrapper's parsed copy of the files, which \
                 the RSS target takes off accountmapd's figure.\n",
            );
            o.push('\n');
        }
    }
    let policy: Vec<&Row> = rows.iter().filter(|r| r.case == "policy").collect();
    if !policy.is_empty() {
        o.push_str(
            "## Policy only (minimum uid + required group; policy-bench under pam_wrapper/nss_wrapper)\n\n\
             `mean µs` is policy-bench's µs/txn (wall time × clients / transactions).\n\n",
        );
        table(&mut o, &policy, false);
    }
    if !inp.realistic.trim().is_empty() {
        o.push_str(
            "## Realistic PAM rows (issue 16): stacks with pam_permit / pam_unix, fresh processes, a busy machine\n\n\
             From `bench/run.sh` in the same run (what each row measures: bench/README.md).\n\n",
        );
        o.push_str(&embed_mixed(&inp.realistic));
        o.push('\n');
    }
    o.push_str("## Plot\n\n![sign-in p50 latency per system and case](benchmarks.png)\n\n");
    o.push_str("## Commands of this run\n\n```\n");
    o.push_str(inp.commands.trim_end());
    o.push_str("\n```\n");
    o
}

/// gnuplot data: one line per (size, case) with the p50 of each sign-in system.
pub fn plot_data(rows: &[Row]) -> String {
    let systems = [
        "accountmap",
        "sssd",
        "sssd-initgroups-never",
        "nslcd",
        "raw-ldap",
    ];
    let mut o = String::from("case");
    for s in systems {
        let _ = write!(o, "\t{s}");
    }
    o.push('\n');
    let mut keys: Vec<(String, String, usize, String)> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.case == "signin" && r.system != "raw-ldap")
    {
        let k = (r.size.clone(), r.phase.clone(), r.clients, r.pinned.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for (size, phase, clients, pinned) in keys {
        let pin = if pinned == "yes" { "" } else { ",unpinned" };
        let _ = write!(o, "\"{size}u {phase} x{clients}{pin}\"");
        for s in systems {
            let r = if s == "raw-ldap" {
                find(rows, &size, s, "signin", "raw", 1, "")
            } else {
                find(rows, &size, s, "signin", &phase, clients, &pinned)
            };
            match r {
                Some(r) if r.p50_us.is_finite() => {
                    let _ = write!(o, "\t{:.1}", r.p50_us);
                }
                _ => o.push_str("\t-"),
            }
        }
        o.push('\n');
    }
    o
}

pub fn render_main(args: &[String]) -> Result<(), String> {
    let mut dir = None;
    let mut out = None;
    let mut plot = None;
    let mut it = args.iter();
    while let Some(f) = it.next() {
        let v = it.next().ok_or_else(|| format!("{f} needs a value"))?;
        match f.as_str() {
            "--results" => dir = Some(v.clone()),
            "--out" => out = Some(v.clone()),
            "--plot-data" => plot = Some(v.clone()),
            other => return Err(format!("render: unknown option {other}")),
        }
    }
    let dir = dir.ok_or("--results is required")?;
    let out = out.ok_or("--out is required")?;
    let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).unwrap_or_default();
    let inp = Inputs {
        rows: parse_rows(&read("results.tsv")),
        memory: parse_memory(&read("memory.tsv")),
        machine: read("machine.tsv")
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        commands: read("commands.txt"),
        realistic: read("policy-realistic.md"),
    };
    if inp.rows.is_empty() {
        return Err(format!("{dir}/results.tsv: no rows"));
    }
    std::fs::write(&out, render(&inp)).map_err(|e| format!("{out}: {e}"))?;
    if let Some(p) = plot {
        std::fs::write(&p, plot_data(&inp.rows)).map_err(|e| format!("{p}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, case: &str, phase: &str, clients: usize, per_sec: f64, p50: f64) -> Row {
        Row {
            size: "1000".into(),
            system: system.into(),
            case: case.into(),
            phase: phase.into(),
            clients,
            pinned: if case == "signin" && system != "raw-ldap" {
                "yes".into()
            } else {
                "-".into()
            },
            n: 1000,
            secs: 1000.0 / per_sec,
            per_sec,
            p50_us: p50,
            p99_us: p50 * 3.0,
            mean_us: p50 * 1.2,
            cpu_client_s: 0.1,
            cpu_daemon_s: 0.2,
            cpu_slapd_s: 0.3,
            note: "-".into(),
        }
    }

    #[test]
    fn tsv_round_trip() {
        let r = row("nslcd", "signin", "warm", 8, 2204.0, 800.0);
        let back = Row::from_tsv(&r.to_tsv()).expect("parses");
        assert_eq!(back.system, "nslcd");
        assert_eq!(back.clients, 8);
        assert!((back.per_sec - 2204.0).abs() < 0.1);
        assert!(Row::from_tsv(COLUMNS).is_none());
    }

    #[test]
    fn targets_are_computed_pair_by_pair() {
        let inp = Inputs {
            rows: vec![
                row("accountmap", "signin", "warm", 1, 3000.0, 300.0),
                row("nslcd", "signin", "warm", 1, 1200.0, 800.0),
                row("accountmap", "signin", "warm", 8, 3000.0, 2000.0),
                row("nslcd", "signin", "warm", 8, 2200.0, 3000.0),
                row("accountmap", "signin", "cold", 1, 1000.0, 500.0),
                row("raw-ldap", "signin", "raw", 1, 3000.0, 300.0),
                row("accountmap", "nss-alias", "warm", 1, 1e5, 5.0),
                row("sssd", "nss-sss-files", "warm", 1, 3e5, 3.4),
                row("accountmap", "policy", "warm", 1, 8000.0, 100.0),
                row("pam_succeed_if", "policy", "warm", 1, 7000.0, 110.0),
            ],
            memory: parse_memory(
                "1000\taccountmap\taccountmapd\t1\t8000\t9000\n1000\tnslcd\tnslcd\t2\t3000\t3000\n",
            ),
            machine: vec![("cpu".into(), "test".into())],
            commands: "make bench".into(),
            realistic: "== realistic\n| a | b |\n|---|---|\ntext\n".into(),
        };
        let md = render(&inp);
        assert!(
            md.contains("```\n== realistic\n```\n\n| a | b |\n|---|---|\n\n```\ntext\n```"),
            "{md}"
        );
        let c = checks(&inp);
        let get = |t: &str| {
            c.iter()
                .find(|c| c.target.starts_with(t))
                .unwrap_or_else(|| panic!("no check {t}"))
                .met
        };
        assert_eq!(get("warm sign-ins/s ≥ 2× nslcd, 1"), Some(true));
        assert_eq!(get("warm sign-ins/s ≥ 2× nslcd, 8"), Some(false));
        assert_eq!(get("warm sign-in p99 ≤ ½ nslcd's, 1"), Some(true));
        assert_eq!(get("cold sign-in"), Some(false)); // 500 > 1.3 × 300
        assert_eq!(get("warm getpwnam"), Some(true)); // 5.0 ≤ 6.8
        assert_eq!(get("daemon RSS"), Some(false)); // 8000 > 6000
        assert_eq!(
            get("policy-only transaction ≤ pam_succeed_if, 1"),
            Some(true)
        );
        assert_eq!(get("policy-only transaction ≤ pam_succeed_if, 8"), None);
        let md = render(&inp);
        assert!(md.contains("| 1000 | warm sign-ins/s ≥ 2× nslcd, 1 client(s) | 3000 /s vs nslcd 1200 /s = 2.50× | yes |"), "{md}");
        assert!(md.contains("| nslcd | warm | 1 | yes | 2.50× |"), "{md}");
        assert!(md.contains("| accountmap nss-alias | warm | 1 |"), "{md}");
        let plot = plot_data(&inp.rows);
        assert!(
            plot.contains("\"1000u warm x1\"\t300.0\t-\t-\t800.0\t300.0"),
            "{plot}"
        );
    }
}
