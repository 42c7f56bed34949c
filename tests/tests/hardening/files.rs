//! Issue 14, the file findings: the NSS cache file on a full filesystem (3), who may own the
//! files the daemon trusts (5), the socket's directory (10), and file contents in error
//! messages (11). Each test performs the attack of the issue.

use accountmap_tests::namespace::{Login, Namespace};
use accountmap_tests::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How long a daemon that refuses its files may take to say so and exit.
const REFUSAL_LIMIT: Duration = Duration::from_secs(10);

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// `accountmapd --config PATH` run to its (quick) end: a daemon that refuses its config
/// exits at once; one that starts would be killed at the limit and fail the test.
fn daemon_start_refused(config: &Path) -> Outcome {
    let out = run_bounded(
        Command::new(accountmapd())
            .arg("--config")
            .arg(config)
            .arg("--log-stderr")
            .env_remove("ACCOUNTMAP_SOCKET")
            .env_remove("ACCOUNTMAP_CONFIG"),
        None,
        REFUSAL_LIMIT,
    );
    assert_ne!(out.code, 0, "the daemon started: {}", out.all());
    out
}

// ---------------------------------------------------------------------------------------------
// Finding 3: passwd.cache on a full filesystem

/// The socket directory is a 3 MiB tmpfs in a private mount namespace with a 1777 directory
/// in it, which an unprivileged user (65534) fills with `dd`, before the daemon starts
/// (`fill_first`) or after. Then 64 `getent passwd` of distinct spellings of an alias (each a
/// record of its own in the cache, spread over its pages) and one PAM sign-in of the alias
/// through the real libpam. Returns what the script printed.
fn on_a_small_filesystem(env: &Env, ns: &Namespace, fill_first: bool) -> Outcome {
    let dir = "/run/amsmall";
    let sock = format!("{dir}/accountmapd.sock");
    let fill = format!(
        "fill() {{ setpriv --reuid=65534 --regid=65534 --clear-groups dd if=/dev/zero of={dir}/shared/fill.$1 bs=64k 2>/dev/null; echo \"free_kib=$(df -k --output=avail {dir} | tail -1 | tr -d ' ')\"; }}\n"
    );
    // 64 spellings of alice@company.com: the case of the first six letters.
    let names: Vec<String> = (0..64u32)
        .map(|bits| {
            "alice@company.com"
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i < 6 && bits & (1 << i) != 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect()
        })
        .collect();
    let script = format!(
        "mkdir {dir}\n\
         mount -t tmpfs -o size=3m,mode=0755 amsmall {dir}\n\
         mkdir -m 1777 {dir}/shared\n\
         {fill}\
         {first}\
         {daemon} --config {config} --log-stderr 2>>{log} &\n\
         pid=$!\n\
         for i in $(seq 100); do [ -S {sock} ] && break; sleep 0.1; done\n\
         {after}\
         ok=0\n\
         for n in {names}; do ACCOUNTMAP_SOCKET={sock} getent passwd \"$n\" | grep -q '^alice:' && ok=$((ok+1)); done\n\
         echo \"getent_ok=$ok\"\n\
         printf 'x\\n' | timeout 20 pamtester small Alice@Company.com authenticate acct_mgmt; echo \"pam_rc=$?\"\n\
         {ctl} --socket {sock} status | grep nss_cache_file\n\
         if kill -0 $pid 2>/dev/null; then echo alive=1; kill -TERM $pid; wait $pid; echo \"exit=$?\"; \
         else wait $pid; echo \"alive=0 exit=$?\"; fi\n",
        first = if fill_first { "fill a\n" } else { "" },
        after = if fill_first { "" } else { "fill b\n" },
        daemon = accountmapd().display(),
        ctl = accountmapctl().display(),
        config = env.config_path.display(),
        log = env.log_path.display(),
        names = names.join(" "),
    );
    let out = ns.run(&script, Duration::from_secs(120));
    eprintln!("{}", out.all());
    out
}

fn small_fs_env(name: &str) -> Option<(Env, Namespace)> {
    if !is_root() {
        eprintln!("{name}: skipped, not root (mounting a tmpfs needs root; CI runs as root)");
        return None;
    }
    let mut env = Env::builder(name)
        .config(|c| c.cache_ttl = 300)
        .no_daemon()
        .build();
    let mut config = env.config().clone();
    config.cache_ttl = 300;
    let text = config.render(
        Path::new("/run/amsmall/accountmapd.sock"),
        &env.accounts_path,
    );
    env.write_config(&config);
    env.write_config_text(&text);
    let mut pam = BTreeMap::new();
    let module = "pam_accountmap.so socket=/run/amsmall/accountmapd.sock";
    pam.insert(
        "small".to_string(),
        format!(
            "auth requisite {module} fail_delay=0\nauth required pam_permit.so\naccount required {module}\n"
        ),
    );
    pam.insert(
        "other".to_string(),
        "auth required pam_deny.so\naccount required pam_deny.so\n".to_string(),
    );
    let logins = [Login {
        name: "alice",
        password: "pw-alice",
    }];
    let ns = Namespace::new(&env, &logins, &pam);
    Some((env, ns))
}

fn value<'a>(out: &'a Outcome, key: &str) -> &'a str {
    out.stdout
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in\n{}", out.all()))
}

/// What both full-filesystem tests check: the filesystem was full, the daemon lived and
/// stopped cleanly, and all 64 look-ups and the sign-in succeeded. The daemon's log.
fn served_while_full(env: &Env, out: &Outcome) -> String {
    let log = env.daemon_log();
    assert_eq!(value(out, "free_kib"), "0", "the filesystem was not full");
    assert_eq!(value(out, "alive"), "1", "the daemon died\n{log}");
    assert_eq!(value(out, "exit"), "0", "{log}");
    assert_eq!(value(out, "getent_ok"), "64", "{log}");
    assert_eq!(value(out, "pam_rc"), "0", "{log}");
    log
}

/// Issue 14 finding 3, full before the start: the daemon dies of SIGBUS at its first write to
/// the sparse cache file (before the fix: wait status 135, every sign-in fails). Now the cache
/// is off, the log says so once and why, `status` says so, and NSS (through the socket) and
/// PAM keep working.
#[test]
fn a_full_socket_filesystem_turns_the_cache_off_and_nothing_else() {
    let Some((env, ns)) = small_fs_env("full-at-start") else {
        return;
    };
    let out = on_a_small_filesystem(&env, &ns, true);
    let log = served_while_full(&env, &out);
    let off: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("nss cache off"))
        .collect();
    assert_eq!(off.len(), 1, "said once\n{log}");
    assert!(off[0].contains("No space left on device"), "{}", off[0]);
    assert!(
        out.stdout.contains("nss_cache_file") && out.stdout.contains("off: cannot create"),
        "status does not say the cache is off\n{}",
        out.all()
    );
}

/// Issue 14 finding 3, full after the start: the cache file's 2 MiB were allocated when it
/// was made, so stores into every page of it still succeed once the filesystem is full
/// (before the fix: SIGBUS at the first store into a page that had no block).
#[test]
fn a_filesystem_that_fills_up_after_the_start_does_not_kill_the_daemon() {
    let Some((env, ns)) = small_fs_env("full-after-start") else {
        return;
    };
    let out = on_a_small_filesystem(&env, &ns, false);
    let log = served_while_full(&env, &out);
    assert!(!log.contains("nss cache off"), "{log}");
    assert!(
        out.stdout.contains("/run/amsmall/passwd.cache"),
        "the cache is on\n{}",
        out.all()
    );
}

// ---------------------------------------------------------------------------------------------
// Finding 5: who may own the files the daemon trusts

/// Issue 14 finding 5, the attack: an unprivileged user (65534) owns a 0600 `hmac_key_file`
/// and so can sign proxy sign-ins for anyone. Before the fix `accountmapd --check` passed and
/// the daemon served with it. Now `--check` fails with the file, the owner and the fix, the
/// daemon refuses to start with it, and a running daemon refuses a reload to it (the old
/// config stays).
#[test]
fn an_hmac_key_owned_by_an_unprivileged_user_is_refused_everywhere() {
    if !is_root() {
        eprintln!("skipped, not root: giving a file to another user needs root (CI runs as root)");
        return;
    }
    let mut env = Env::builder("key-owner").no_daemon().build();
    let key = env.path("proxy-hmac-key");
    write_with_mode(&key, "k3y-of-the-proxy\n", 0o600);
    std::os::unix::fs::chown(&key, Some(65534), Some(65534)).unwrap();
    let mut config = env.config().clone();
    config.extra = format!("\n[proxy]\nhmac_key_file = \"{}\"\n", key.display());
    env.write_config(&config);

    let check = daemon_check(&env.config_path);
    eprintln!("--check: {}", check.all());
    assert_eq!(check.code, 2, "{}", check.all());
    let want = format!(
        "{} (the secret file) is owned by uid 65534; it must be owned by root",
        key.display()
    );
    assert!(check.stderr.contains(&want), "{}", check.all());
    assert!(
        check
            .stderr
            .contains(&format!("chown root:root {}", key.display())),
        "{}",
        check.all()
    );
    let ctl = ctl_check(&env.config_path);
    assert_eq!(ctl.code, 2, "{}", ctl.all());
    assert!(ctl.all().contains(&want), "{}", ctl.all());

    let start = daemon_start_refused(&env.config_path);
    assert!(start.stderr.contains(&want), "{}", start.all());

    // A daemon running with the key root's, then the key given away and SIGHUP.
    std::os::unix::fs::chown(&key, Some(0), Some(0)).unwrap();
    env.start_daemon();
    std::os::unix::fs::chown(&key, Some(65534), Some(65534)).unwrap();
    let from = env.log_len();
    env.sighup();
    let line = env.expect_log(from, Duration::from_secs(5), |l| {
        l.contains("reload refused")
    });
    assert!(line.contains(&want), "{line}");
    assert!(env.daemon_alive());
    assert_eq!(
        env.pam(SVC, "alice", &["authenticate"]).verdicts(),
        vec![AUTH_OK],
        "the old config still serves"
    );
}

/// What a case writes into `[proxy]`, how it prepares the files, and the error it expects.
type Case = (&'static str, String, Box<dyn Fn(&Env)>, String);

/// Issue 14 finding 5, the other files: a root-owned key in a directory others can write, a
/// symlink to a good key from such a directory, a 0666 accounts file, a group-writable
/// drop-in. Each fails `--check` with its file, what was found and the fix.
#[test]
fn keys_in_writable_directories_writable_accounts_files_and_drop_ins_fail_the_check() {
    let env = Env::builder("file-modes").no_daemon().build();
    let good_key = env.path("good-key");
    write_with_mode(&good_key, "k3y\n", 0o600);
    let open = env.path("open");
    fs::create_dir(&open).unwrap();
    let open_key = open.join("key");
    write_with_mode(&open_key, "k3y\n", 0o600);
    std::os::unix::fs::symlink(&good_key, open.join("link")).unwrap();
    chmod(&open, 0o777);
    let open_shown = open.display().to_string();
    let proxy = |key: &Path| format!("\n[proxy]\nhmac_key_file = \"{}\"\n", key.display());

    let cases: Vec<Case> = vec![
        (
            "root-owned key in a user-writable directory",
            proxy(&open_key),
            Box::new(|_| {}),
            format!("{open_shown} (the directory of {open_shown}/key) has mode 0777"),
        ),
        (
            "symlink in a user-writable directory",
            proxy(&open.join("link")),
            Box::new(|_| {}),
            format!("{open_shown} (the directory of {open_shown}/link) has mode 0777"),
        ),
        (
            "0666 accounts file",
            String::new(),
            Box::new(|env: &Env| chmod(&env.accounts_path, 0o666)),
            format!(
                "{a} (the accounts file) has mode 0666: group or others can write it, so they could change what accountmapd trusts: chmod go-w {a}",
                a = env.accounts_path.display()
            ),
        ),
        (
            "group-writable drop-in",
            String::new(),
            Box::new(|env: &Env| {
                let d = env.path("conf.d");
                fs::create_dir_all(&d).unwrap();
                write_with_mode(&d.join("50-x.toml"), "[access]\ndenied_users = []\n", 0o664);
            }),
            format!(
                "{d} (the config file) has mode 0664",
                d = env.path("conf.d/50-x.toml").display()
            ),
        ),
    ];
    for (what, extra, prepare, want) in cases {
        let mut config = env.config().clone();
        config.extra = extra;
        let text = config.render(&env.socket, &env.accounts_path);
        env.write_config_text(&text);
        env.write_accounts(STANDARD_ACCOUNTS);
        let _ = fs::remove_dir_all(env.path("conf.d"));
        prepare(&env);
        let check = daemon_check(&env.config_path);
        eprintln!("{what}: {}", check.stderr.trim());
        assert_eq!(check.code, 2, "{what}: {}", check.all());
        assert!(
            check.stderr.contains(&want),
            "{what}: want {want:?}\n{}",
            check.all()
        );
    }
    // The good key through a trusted path passes.
    let mut config = env.config().clone();
    config.extra = proxy(&good_key);
    env.write_config_text(&config.render(&env.socket, &env.accounts_path));
    env.write_accounts(STANDARD_ACCOUNTS);
    let _ = fs::remove_dir_all(env.path("conf.d"));
    let check = daemon_check(&env.config_path);
    assert_eq!(check.code, 0, "{}", check.all());
}

/// Issue 14 finding 5 at run time: with `verify=oidc`, write access to the accounts file maps
/// one's own email to another account. A new version that others can write is refused like a
/// version that does not parse: logged, the old mapping kept.
#[test]
fn a_writable_accounts_file_is_not_followed_and_the_old_mapping_stays() {
    let env = Env::new("accounts-0666");
    let resolve = |env: &Env| {
        let (code, v, out) = env.ctl_json(&["resolve", "John.Doe@Company.com"]);
        assert_eq!(code, 0, "{}", out.all());
        v["account"].as_str().unwrap_or("").to_string()
    };
    assert_eq!(resolve(&env), "jdoe");
    let from = env.log_len();
    let tmp = env.path("accounts.new");
    fs::write(&tmp, "John.Doe@Company.com = jsmith\n").unwrap();
    chmod(&tmp, 0o666);
    fs::rename(&tmp, &env.accounts_path).unwrap();
    let line = env.expect_log(from, Duration::from_secs(5), |l| {
        l.contains("accounts file not reloaded")
    });
    eprintln!("{line}");
    assert!(line.contains("has mode 0666"), "{line}");
    assert_eq!(resolve(&env), "jdoe", "the writable version was taken");
}

// ---------------------------------------------------------------------------------------------
// Finding 10: the socket's directory

/// Issue 14 finding 10: a socket directory others can write is refused at start with a
/// located error (before the fix the daemon bound there and chmod-ed the path, following any
/// symlink swapped in); in a trusted directory the socket is 0666 from the start.
#[test]
fn a_socket_directory_others_can_write_is_refused_at_start() {
    let mut env = Env::builder("socket-dir").no_daemon().build();
    let open = env.path("run");
    fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    let config = env.config().clone();
    let text = config.render(&open.join("accountmapd.sock"), &env.accounts_path);
    env.write_config_text(&text);
    let out = daemon_start_refused(&env.config_path);
    eprintln!("{}", out.stderr.trim());
    let want = format!(
        "cannot listen on {}/accountmapd.sock: {} (the socket directory) has mode 0777",
        open.display(),
        open.display()
    );
    assert!(out.stderr.contains(&want), "{}", out.all());
    assert_eq!(
        fs::read_dir(&open).unwrap().count(),
        0,
        "nothing was created"
    );

    let config = env.config().clone();
    env.write_config(&config);
    env.start_daemon();
    let mode = fs::symlink_metadata(&env.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o666);
}

// ---------------------------------------------------------------------------------------------
// Finding 11: file contents in error messages

/// Issue 14 finding 11: `accounts_file` pointed at a shadow-like file (root, 0640) or at the
/// HMAC key. Before the fix `--check` and the daemon's log printed the line (root's hash, the
/// key). Now they name the file, line and column and what was expected, never the text.
#[test]
fn accounts_file_pointed_at_a_secret_never_shows_its_content() {
    const HASH: &str = "$6$S3cretSalt$S3cretHashOfRoot";
    const KEY: &str = "S3cretHmacKeyBytes";
    let mut env = Env::new("accounts-secret");
    let shadow = env.path("shadow");
    write_with_mode(&shadow, &format!("root:{HASH}:19000:0:99999:7:::\n"), 0o640);
    let key = env.path("proxy-hmac-key");
    write_with_mode(&key, &format!("{KEY}\n"), 0o600);
    for target in [&shadow, &key] {
        let config = env.config().clone();
        let text = config.render(&env.socket, target);
        let path = env.path("secret.toml");
        write_atomic(&path, &text);
        for out in [daemon_check(&path), ctl_check(&path)] {
            eprintln!("{}", out.all());
            assert_eq!(out.code, 2, "{}", out.all());
            let all = out.all();
            assert!(
                !all.contains("S3cret"),
                "the secret is in the output:\n{all}"
            );
            assert!(
                all.contains(&format!(
                    "{}:1:1: expected external=local",
                    target.display()
                )),
                "{all}"
            );
        }
    }
    // The running daemon's accounts file becomes the shadow-like text.
    let from = env.log_len();
    let tmp = env.path("accounts.new");
    write_with_mode(&tmp, &format!("root:{HASH}:19000:0:99999:7:::\n"), 0o640);
    fs::rename(&tmp, &env.accounts_path).unwrap();
    let line = env.expect_log(from, Duration::from_secs(5), |l| {
        l.contains("accounts file not reloaded")
    });
    eprintln!("{line}");
    assert!(line.contains(":1:1: expected external=local"), "{line}");
    let log = env.daemon_log();
    assert!(!log.contains("S3cret"), "the secret is in the log:\n{log}");
    assert!(env.daemon_alive());
}
