//! The brute-force brake (issue 14, findings 1 and 2), attacked as the review did: root (the
//! PAM service's side of the socket) sending `verify=proxy` guesses for one account under
//! ever new name variants and remote hosts, from 32 threads, while the account's owner keeps
//! signing in with a right signature from her usual host.

use accountmap_tests::*;
use accountmap_wire::{call, Credential, PamRequest, Phase, Request, Response, Verdict, Verify};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const KEY: &str = "brake test hmac key";
const ATTACK: Duration = Duration::from_secs(30);
const THREADS: usize = 32;

/// A daemon with a `[proxy]` section.
fn proxy_env(name: &str) -> Env {
    let mut env = Env::builder(name).no_daemon().build();
    let key = env.path("proxy-hmac-key");
    write_with_mode(&key, &format!("{KEY}\n"), 0o600);
    let mut config = env.config().clone();
    // The account cache on, as in production: nss_wrapper's group look-ups are not
    // thread-safe (a test-harness artefact), so the daemon must not make them concurrently.
    config.cache_ttl = 300;
    config.extra = format!(
        "\n[proxy]\nhmac_key_file = \"{}\"\nmax_clock_skew = 60\n",
        key.display()
    );
    env.write_config(&config);
    env.start_daemon();
    env
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One `verify=proxy` auth request, as pam_accountmap sends it for a root service.
fn proxy_sign_in(env: &Env, user: &str, rhost: &str, password: String) -> (Verdict, String) {
    let req = Request::Pam(PamRequest {
        service: "sshd".into(),
        phase: Phase::Auth,
        user: user.into(),
        rhost: rhost.into(),
        verify: Verify::Proxy,
        credential: Some(Credential::new(password.into_bytes())),
    });
    match call(&env.socket, &req, Duration::from_secs(10)) {
        Ok(Response::Decision(d)) => (d.verdict, d.reason),
        other => panic!("{user} from {rhost}: {other:?}"),
    }
}

/// A right signature by the proxy's key, for `user` now (each one is accepted once; the
/// date changes every second, so the victim signs at most once a second).
fn right_signature(user: &str) -> String {
    let date = unix_now().to_string();
    let sig = openssl_proxy_signature(KEY, user, &date, "");
    format!("{date}\n{sig}")
}

/// 32 threads guess alice's proxy signature for 30 s, each guess under a new name variant
/// (`alice/N`, the display-separator form, in varying letter case) and a new remote host.
/// Meanwhile alice signs in once a second from the host she used before the attack: every one
/// of her sign-ins must succeed at once, and the attack must get at most the account's burst
/// plus one check per refill interval — the figures SECURITY.md states.
#[test]
fn name_variants_and_new_hosts_share_one_budget_and_the_owner_still_signs_in() {
    let env = proxy_env("brake-attack");
    let home = "127.0.0.9";
    let (v, r) = proxy_sign_in(&env, "alice", home, right_signature("alice"));
    assert_eq!(v, Verdict::Allowed, "{r}");

    let stop = Arc::new(AtomicBool::new(false));
    let checked = Arc::new(AtomicUsize::new(0));
    let unchecked = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let attackers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (stop, checked, unchecked) = (stop.clone(), checked.clone(), unchecked.clone());
            let env_socket = env.socket.clone();
            thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let user = if n.is_multiple_of(2) {
                        format!("alice/{t}-{n}")
                    } else {
                        format!("ALICE/{t}-{n}")
                    };
                    let rhost = format!("127.{}.{}.{}", t + 1, (n >> 8) & 255, n & 255);
                    let guess = format!(
                        "{}\nAAAAguess{t}x{n}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                        unix_now()
                    );
                    let req = Request::Pam(PamRequest {
                        service: "sshd".into(),
                        phase: Phase::Auth,
                        user,
                        rhost,
                        verify: Verify::Proxy,
                        credential: Some(Credential::new(guess.into_bytes())),
                    });
                    match call(&env_socket, &req, Duration::from_secs(10)) {
                        Ok(Response::Decision(d)) => {
                            assert_ne!(d.verdict, Verdict::Allowed, "a guess signed in");
                            if d.reason
                                .contains("refused unchecked by the brute-force brake")
                            {
                                unchecked.fetch_add(1, Ordering::Relaxed);
                            } else {
                                if std::env::var("BRAKE_DEBUG").is_ok() {
                                    eprintln!("checked: {:?} {}", d.verdict, d.reason);
                                }
                                checked.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        other => panic!("attacker: {other:?}"),
                    }
                }
            })
        })
        .collect();

    let mut owner = Vec::new();
    while started.elapsed() < ATTACK {
        thread::sleep(Duration::from_millis(1000));
        let t0 = Instant::now();
        let (v, reason) = proxy_sign_in(&env, "alice", home, right_signature("alice"));
        owner.push((v, reason, t0.elapsed()));
    }
    // A host alice never used shares the account's budget with the attack: refused unchecked.
    let (stranger, stranger_reason) =
        proxy_sign_in(&env, "alice", "127.0.0.77", right_signature("alice"));
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    let took = started.elapsed();
    let checked = checked.load(Ordering::Relaxed);
    let unchecked = unchecked.load(Ordering::Relaxed);
    let mut times: Vec<Duration> = owner.iter().map(|o| o.2).collect();
    times.sort();
    let slowest = *times.last().unwrap();
    let median = times[times.len() / 2];
    eprintln!(
        "{THREADS} threads for {took:?}: {checked} guesses checked ({:.2}/s), {unchecked} \
         refused unchecked ({:.0}/s); alice's {} sign-ins from her host: median {median:?}, slowest {slowest:?}",
        checked as f64 / took.as_secs_f64(),
        unchecked as f64 / took.as_secs_f64(),
        owner.len()
    );
    for (v, reason, _) in &owner {
        assert_eq!(*v, Verdict::Allowed, "alice was locked out: {reason}");
    }
    // Slowed only by the flood itself (the attack's 32 threads and the daemon share the CPUs):
    // well within the PAM module's 10 s timeout.
    assert!(slowest < Duration::from_secs(5), "{times:?}");
    // The budget: 5 at once, then one per 2 s (one more for the interval in progress).
    let bound = 5 + (took.as_secs_f64() / 2.0).ceil() as usize + 1;
    assert!(
        checked <= bound,
        "{checked} guesses checked, at most {bound} expected"
    );
    assert!(unchecked > 1000, "the attack hardly ran: {unchecked}");
    assert_eq!(stranger, Verdict::AuthFailed, "{stranger_reason}");
    assert!(
        stranger_reason.contains("refused unchecked") && stranger_reason.contains("\"alice\""),
        "{stranger_reason}"
    );
    // The daemon says what it did, and does not flood the log doing it: at most ten lines a
    // second for the refusals unchecked, the first after a pause saying how many were left out.
    let log = env.daemon_log();
    let lines = log
        .lines()
        .filter(|l| l.contains("refused unchecked by the brute-force brake: the failure budget"))
        .count();
    eprintln!("{lines} log lines for {unchecked} refusals unchecked");
    assert!(lines >= 1, "{log}");
    assert!(
        lines as f64 <= 10.0 * (took.as_secs_f64() + 3.0),
        "{lines} lines"
    );
    assert!(log.contains("more refused unchecked since the last such line"));
}
