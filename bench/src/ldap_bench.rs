//! The LDAP benchmark (`make bench-ldap`): password sign-ins through accountmapd against a
//! real slapd on loopback (service bind, posixGroup groups, a whitelisted group), with TLS
//! off (plain LDAP, as in the side-by-side comparison with nslcd and SSSD) and with
//! StartTLS, single and with 8 concurrent clients:
//! - cold: `cache_ttl = 0`, so every sign-in finds nothing cached (as after `accountmapctl
//!   cache flush`): it searches the user, their groups and the whitelisted group, then binds;
//! - warm: the identity is cached, only the password bind reaches the directory (passwords
//!   are never cached).
//!
//! Beside them, in the same run, the raw cost of the LDAP work with ldap3 alone: a search on
//! a bound connection, a bind as the user on a new connection, and both in a row (a search
//! for the user, then a bind on a fresh connection: the floor a cold sign-in is measured
//! against).
//!
//! A sign-in here is the daemon's half of a PAM auth with `verify=ldap`: the request the PAM
//! module sends (service, user, password) over the Unix socket, and its verdict, which must be
//! "allowed" every time. The PAM library and pamtester's process start are not in the figures.
//!
//! `make bench-ldap` runs it on release binaries: `ACCOUNTMAP_ARTIFACT_DIR` names the directory
//! of the `accountmapd` under test (default: the debug build directory). It uses the end-to-end
//! tests' harness (`accountmap-tests`: the slapd fixture, the daemon's environment). No timing
//! is asserted; a sign-in that is not allowed ends the run.

// A benchmark tool: a failure is reported and ends the process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::slapd::*;
use accountmap_tests::*;
use accountmap_wire::{Credential, PamRequest, Phase, Request, Response, Verdict, Verify};
use ldap3::SearchEntry;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SINGLE: usize = 1000;
const THREADS: usize = 8;
const PER_THREAD: usize = 250;
const RAW: usize = 1000;

struct Figures {
    what: String,
    n: usize,
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn new(what: &str, wall: Duration, mut latencies: Vec<Duration>) -> Figures {
        latencies.sort();
        Figures {
            what: what.to_string(),
            n: latencies.len(),
            wall,
            latencies,
        }
    }

    fn pct(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies
            .get(i.min(self.latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    }

    fn row(&self) -> String {
        let per_second = self.n as f64 / self.wall.as_secs_f64();
        format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            self.what,
            self.n,
            per_second,
            1e6 / per_second,
            self.pct(0.50).as_secs_f64() * 1e6,
            self.pct(0.99).as_secs_f64() * 1e6
        )
    }
}

fn sign_in_once(socket: &std::path::Path, (user, password): (&str, &str)) -> Duration {
    let req = Request::Pam(PamRequest {
        service: "bench".into(),
        phase: Phase::Auth,
        user: user.into(),
        rhost: String::new(),
        verify: Verify::Ldap,
        credential: Some(Credential::new(password.as_bytes().to_vec())),
    });
    let t = Instant::now();
    let response = accountmap_wire::call(socket, &req, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("daemon call failed: {e}"));
    let took = t.elapsed();
    match response {
        Response::Decision(d) if d.verdict == Verdict::Allowed => took,
        other => panic!("sign-in not allowed: {other:?}"),
    }
}

fn run_sign_ins(env: &Env, what: &str, who: (&'static str, &'static str)) -> Vec<Figures> {
    // one warm-up, so that the pool holds a service connection as in steady state
    sign_in_once(&env.socket, who);
    let t = Instant::now();
    let single: Vec<Duration> = (0..SINGLE)
        .map(|_| sign_in_once(&env.socket, who))
        .collect();
    let single = Figures::new(&format!("{what}, 1 client"), t.elapsed(), single);
    let socket = Arc::new(env.socket.clone());
    let t = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                (0..PER_THREAD)
                    .map(|_| sign_in_once(&socket, who))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let concurrent = Figures::new(&format!("{what}, {THREADS} clients"), t.elapsed(), all);
    vec![single, concurrent]
}

fn tls_config(ca: &std::path::Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// ldap3 alone, with or without StartTLS: a search for alice's entry on one bound
/// connection; a bind as alice on a new connection; and the two in a row (the raw LDAP work
/// of a cold sign-in, the floor it is compared with).
fn raw_ldap(slapd: &Slapd, start_tls: bool) -> Vec<Figures> {
    let tag = if start_tls { "StartTLS" } else { "plain" };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("ldap://{}", slapd.address());
    let config = tls_config(&slapd.ca());
    rt.block_on(async move {
        let address = url.trim_start_matches("ldap://").to_string();
        // As the daemon connects: TCP_NODELAY on (see mapper_daemon/src/ldap.rs), StartTLS
        // with the test CA when asked for.
        let settings = || async {
            let tcp = tokio::net::TcpStream::connect(address.as_str())
                .await
                .unwrap();
            tcp.set_nodelay(true).unwrap();
            let s = ldap3::LdapConnSettings::new()
                .set_conn_timeout(Duration::from_secs(5))
                .set_starttls(start_tls)
                .set_std_stream(ldap3::StdStream::Tcp(tcp.into_std().unwrap()));
            if start_tls {
                s.set_config(config.clone())
            } else {
                s
            }
        };
        let search = |mut service: ldap3::Ldap| async move {
            let (entries, _) = service
                .search(
                    PEOPLE_DN,
                    ldap3::Scope::Subtree,
                    "(&(objectClass=posixAccount)(uid=alice))",
                    vec!["uid"],
                )
                .await
                .unwrap()
                .success()
                .unwrap();
            assert_eq!(entries.len(), 1);
            SearchEntry::construct(entries.into_iter().next().unwrap()).dn
        };
        let url = url.as_str();
        let settings = &settings;
        let bind = |dn: String| async move {
            let (conn, mut ldap) = ldap3::LdapConnAsync::with_settings(settings().await, url)
                .await
                .unwrap();
            ldap3::drive!(conn);
            ldap.simple_bind(&dn, "alice-pw")
                .await
                .unwrap()
                .success()
                .unwrap();
            let _ = ldap.unbind().await;
        };
        let (conn, mut service) = ldap3::LdapConnAsync::with_settings(settings().await, url)
            .await
            .unwrap();
        ldap3::drive!(conn);
        service
            .simple_bind(READER_DN, READER_PASSWORD)
            .await
            .unwrap()
            .success()
            .unwrap();
        let t = Instant::now();
        let mut searches = Vec::new();
        for _ in 0..RAW {
            let s = Instant::now();
            search(service.clone()).await;
            searches.push(s.elapsed());
        }
        let searches = Figures::new(
            &format!("raw ldap3, {tag}: search on a bound connection"),
            t.elapsed(),
            searches,
        );
        let dn = format!("uid=alice,{PEOPLE_DN}");
        let t = Instant::now();
        let mut binds = Vec::new();
        for _ in 0..RAW {
            let s = Instant::now();
            bind(dn.clone()).await;
            binds.push(s.elapsed());
        }
        let binds = Figures::new(
            &format!("raw ldap3, {tag}: new connection + user bind"),
            t.elapsed(),
            binds,
        );
        let t = Instant::now();
        let mut both = Vec::new();
        for _ in 0..RAW {
            let s = Instant::now();
            let dn = search(service.clone()).await;
            bind(dn).await;
            both.push(s.elapsed());
        }
        let both = Figures::new(
            &format!("raw ldap3, {tag}: search, then new connection + user bind (cold floor)"),
            t.elapsed(),
            both,
        );
        vec![searches, binds, both]
    })
}

fn main() {
    let slapd = Slapd::start("bench");
    let mut rows = Vec::new();
    for (transport, tag) in [
        (Transport::Plain, "plain"),
        (Transport::StartTls, "StartTLS"),
    ] {
        let section = Section {
            transport,
            ..Section::default()
        };
        for (ttl, what) in [(0, "cold"), (300, "warm")] {
            let env = ldap_env("ldap-bench", &slapd, &section, ttl);
            rows.extend(run_sign_ins(
                &env,
                &format!("sign-in, {tag}, {what}"),
                ("alice", "alice-pw"),
            ));
        }
        rows.extend(raw_ldap(&slapd, transport == Transport::StartTls));
    }
    drop(slapd);
    // The same sign-ins against a Samba AD DC (issue 15): the README's AD configuration
    // (sAMAccountName, groups by DN, nested groups through the in-chain rule, the primary
    // group, account state read with the identity).
    let dc = samba::SambaDc::start("bench");
    for (ldaps, tag) in [(true, "Samba AD, LDAPS"), (false, "Samba AD, StartTLS")] {
        let section = samba::AdSection {
            ldaps,
            ..samba::AdSection::default()
        };
        for (ttl, what) in [(0, "cold"), (300, "warm")] {
            let env = samba::samba_env_with("ad-bench", &dc, &section, |c| {
                c.cache_ttl = ttl;
                c.negative_cache_ttl = ttl;
            });
            let adalice = samba::ADALICE;
            rows.extend(run_sign_ins(
                &env,
                &format!("sign-in, {tag}, {what}"),
                (adalice.name, adalice.password),
            ));
        }
    }
    println!(
        "\nLDAP benchmark: slapd and a Samba AD DC on loopback, service bind, groups (+ whitelist for slapd); cold = nothing cached, warm = identity cached (the password is always bound); accountmapd from {}\n",
        build_dir().display()
    );
    println!("| case | n | per second | µs per sign-in | p50 µs | p99 µs |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!("{}", r.row());
    }
}
