//! Issue 13, items 3 and 7: what a sign-in's timing tells a remote client, and what a frozen
//! daemon costs. pamtester under pam_wrapper and nss_wrapper, a real accountmapd.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::*;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The shipped Debian profile (etc/pam.d/rstudio.debian) with pam_accountmap.so pointed at
/// the test build and socket, and each `@include common-X` replaced by Debian 12's common-X
/// inline (pam_wrapper reads included files from the real /etc/pam.d): pam_unix checks the
/// password, with its own 2 s failure delay, as on a real host.
fn shipped_debian_stack(env: &Env) {
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/pam.d/rstudio.debian"),
    )
    .unwrap();
    let module = format!("{} socket={}", pam_module().display(), env.socket.display());
    let text: String = shipped
        .lines()
        .map(
            |line| match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["@include", "common-auth"] => {
                    "auth [success=1 default=ignore] pam_unix.so nullok\n\
                 auth requisite pam_deny.so\n\
                 auth required pam_permit.so\n"
                        .to_string()
                }
                ["@include", "common-account"] => {
                    "account [success=1 new_authtok_reqd=done default=ignore] pam_unix.so\n\
                 account requisite pam_deny.so\n\
                 account required pam_permit.so\n"
                        .to_string()
                }
                ["@include", _] => "session required pam_permit.so\n".to_string(),
                _ => line.replace("pam_accountmap.so", &module) + "\n",
            },
        )
        .collect();
    assert!(text.contains("pam_unix.so"), "{text}");
    env.add_service_text("rstudio", &text);
}

/// Sleeps until 50 ms past the next whole second. libpam seeds its randomisation of the failure
/// delay (up to half of it either way) with time(NULL) at the start of pam_authenticate: runs started within the
/// same second draw the same factor, so comparing them measures the stack, not the dice.
fn align_to_second() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let into = Duration::from_nanos(u64::from(now.subsec_nanos()));
    thread::sleep(Duration::from_secs(1) - into + Duration::from_millis(50));
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Item 3: through the shipped profile, an unknown user and a user refused by policy fail as
/// slowly as a known user with a wrong password (pam_unix's 2 s delay), within ±20 %. Before
/// the fix the two refusals took a few milliseconds. 3 rounds of 3 concurrent sign-ins
/// (about 8 s).
#[test]
fn unknown_refused_and_wrong_password_take_the_same_time() {
    // Cached answers, filled one at a time below (see the warm-up).
    let env = Env::builder("timing")
        .config(|c| {
            c.cache_ttl = 300;
            c.negative_cache_ttl = 300;
        })
        .build();
    shipped_debian_stack(&env);
    let cases: [(&str, &str); 3] = [
        ("alice", AUTH_ERR), // known, allowed by policy: pam_unix refuses the password
        ("nosuchuser", USER_UNKNOWN),
        ("bob", AUTH_ERR), // refused by policy (not in rstudio-users)
    ];
    // One look-up of each name first, one at a time: the daemon's look-ups of accounts go
    // through nss_wrapper here, which is not thread-safe (three at once once reported a known
    // user as unknown). Real hosts use glibc's thread-safe NSS. The timed rounds then take the
    // answers from the daemon's cache, as a busy host's sign-ins do.
    for (user, _) in &cases {
        let _ = env.ctl_json(&["resolve", user]);
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for _round in 0..3 {
        align_to_second();
        let runs: Vec<PamRun> = thread::scope(|s| {
            let handles: Vec<_> = cases
                .iter()
                .map(|(user, _)| {
                    let env = &env;
                    s.spawn(move || {
                        env.pam_with_stdin("rstudio", user, &["authenticate"], Some(b"wrong\n"))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, run) in runs.iter().enumerate() {
            assert_eq!(
                run.verdict(),
                cases[i].1,
                "{}\n{}\n--- daemon.log ---\n{}",
                cases[i].0,
                run.out.all(),
                env.daemon_log()
            );
            times[i].push(run.elapsed());
        }
    }
    let medians: Vec<Duration> = times.iter().cloned().map(median).collect();
    eprintln!(
        "medians: wrong password {:?}, unknown {:?}, refused by policy {:?} (all: {times:?})",
        medians[0], medians[1], medians[2]
    );
    let wrong = medians[0].as_secs_f64();
    assert!(wrong > 1.0, "pam_unix's delay did not apply: {wrong}s");
    for (i, m) in medians.iter().enumerate().skip(1) {
        let ratio = m.as_secs_f64() / wrong;
        assert!(
            (0.8..=1.2).contains(&ratio),
            "{}: {m:?} against {:?} for a wrong password (ratio {ratio:.2})",
            cases[i].0,
            medians[0]
        );
    }
}
