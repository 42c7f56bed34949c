//! A real OpenLDAP `slapd` for the LDAP tests, started by the test on 127.0.0.1.
//!
//! Each [`Slapd`] has its own directory: a `slapd.conf` (read with `-f`, so nothing of the
//! system's slapd is used), an mdb data directory filled by `slapadd` from a generated LDIF, a
//! CA and a server certificate made with openssl (SAN `IP:127.0.0.1`), and a second, unrelated
//! CA for the "wrong CA" cases. It listens on two free ports: plain LDAP (StartTLS offered)
//! and LDAPS. Start-up is bounded; the process is killed when the value is dropped, and it can
//! be stopped and started again on the same ports mid-test. [`Slapd::start_logging_operations`]
//! logs every connection and operation (slapd's `stats` level), which [`Slapd::operations_since`]
//! counts.
//!
//! The directory (`dc=example,dc=org`):
//!
//! | uid | uidNumber | mail | password | groups |
//! |---|---|---|---|---|
//! | alice | 1001 | alice@example.org | `alice-pw` ({SSHA}) | scientists (member), ldap-rstudio (memberUid) |
//! | bob | 1002 | bob@example.org | `bob-pw` | ldap-rstudio only: outside the whitelist |
//! | jdoe (also `jd`) | 1003 | John.Doe@example.org | `jdoe-pw` | scientists, ldap-rstudio |
//! | dave | 1004 | dave@example.org | `dave-pw` | scientists only: not in ldap-rstudio |
//! | ann | 1005 | ann@example.org | `ann-pw` | scientists, ldap-rstudio; no local account |
//!
//! | `o,brien+x` | 1006 | obrien@example.org | `obrien-pw` | none; DN `uid=o\,brien\+x,ou=People,…` |
//!
//! `cn=scientists,ou=Groups` is a groupOfNames (members by DN), `cn=ldap-rstudio,ou=Groups` a
//! posixGroup (members by `memberUid`). The service account is `cn=reader,dc=example,dc=org`
//! with password [`READER_PASSWORD`]; anonymous reads are allowed too, passwords are never
//! readable.

use crate::net::{forward_both_ways, free_port, AcceptLoop, Held};
use crate::server::{kill, kill_and_wait_closed, listening, remove_unless_kept, spawn_logged};
use crate::{run_bounded, write_with_mode, Config, Env, Group, User, World, COMMAND_LIMIT};
use std::fmt::Write as _;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const SLAPD: &str = "/usr/sbin/slapd";
pub const SLAPADD: &str = "/usr/sbin/slapadd";
pub const SLAPPASSWD: &str = "/usr/sbin/slappasswd";
pub const BASE_DN: &str = "dc=example,dc=org";
pub const PEOPLE_DN: &str = "ou=People,dc=example,dc=org";
pub const GROUPS_DN: &str = "ou=Groups,dc=example,dc=org";
pub const SCIENTISTS_DN: &str = "cn=scientists,ou=Groups,dc=example,dc=org";
/// The posixGroup listing its members by `memberUid`.
pub const LDAP_RSTUDIO_DN: &str = "cn=ldap-rstudio,ou=Groups,dc=example,dc=org";
pub const READER_DN: &str = "cn=reader,dc=example,dc=org";
pub const READER_PASSWORD: &str = "reader-secret";
/// A user whose uid needs escaping in a DN (not in [`LDAP_USERS`]: no local account, no groups).
pub const ESCAPED_UID: &str = "o,brien+x";
pub const ESCAPED_PASSWORD: &str = "obrien-pw";
/// How long slapd may take to accept connections.
pub const SLAPD_START_LIMIT: Duration = Duration::from_secs(15);

/// One user of the test directory.
pub struct LdapUser {
    pub uid: &'static str,
    pub uid_number: u32,
    pub mail: &'static str,
    pub password: &'static str,
    pub scientist: bool,
    pub rstudio: bool,
}

pub const LDAP_USERS: &[LdapUser] = &[
    LdapUser {
        uid: "alice",
        uid_number: 1001,
        mail: "alice@example.org",
        password: "alice-pw",
        scientist: true,
        rstudio: true,
    },
    LdapUser {
        uid: "bob",
        uid_number: 1002,
        mail: "bob@example.org",
        password: "bob-pw",
        scientist: false,
        rstudio: true,
    },
    LdapUser {
        uid: "jdoe",
        uid_number: 1003,
        mail: "John.Doe@example.org",
        password: "jdoe-pw",
        scientist: true,
        rstudio: true,
    },
    LdapUser {
        uid: "dave",
        uid_number: 1004,
        mail: "dave@example.org",
        password: "dave-pw",
        scientist: true,
        rstudio: false,
    },
    LdapUser {
        uid: "ann",
        uid_number: 1005,
        mail: "ann@example.org",
        password: "ann-pw",
        scientist: true,
        rstudio: true,
    },
];

/// Fails the test with an install hint when slapd or its tools are missing.
pub fn require_slapd() {
    for path in [SLAPD, SLAPADD, SLAPPASSWD, "/usr/bin/openssl"] {
        if !Path::new(path).exists() {
            panic!("{path} is missing: run scripts/install-deps.sh (make test does)");
        }
    }
}

fn sh(dir: &Path, script: &str) {
    let out = run_bounded(
        Command::new("sh").arg("-ec").arg(script).current_dir(dir),
        None,
        COMMAND_LIMIT,
    );
    assert_eq!(out.code, 0, "{script}\n{}", out.all());
}

/// A CA (`NAME-ca.pem`) and, with `server`, a server certificate and key it signed
/// (`NAME-server.pem`, `NAME-server.key`) for IP 127.0.0.1.
pub fn make_ca(dir: &Path, name: &str, server: bool) {
    sh(
        dir,
        &format!(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
               -keyout {name}-ca.key -out {name}-ca.pem -days 2 -subj '/CN=accountmap test CA {name}' 2>/dev/null"
        ),
    );
    if server {
        sh(
            dir,
            &format!(
                "printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nkeyUsage=digitalSignature,keyEncipherment\\nextendedKeyUsage=serverAuth\\n' > {name}-ext.cnf
                 openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                   -keyout {name}-server.key -out {name}-server.csr -subj '/CN=127.0.0.1' 2>/dev/null
                 openssl x509 -req -in {name}-server.csr -CA {name}-ca.pem -CAkey {name}-ca.key \
                   -CAcreateserial -out {name}-server.pem -days 2 -extfile {name}-ext.cnf 2>/dev/null"
            ),
        );
    }
}

/// A client certificate signed by the `good` CA (`client.pem`, `client.key` mode 0600), for
/// mutual TLS.
pub fn make_client_cert(dir: &Path) {
    sh(
        dir,
        "printf 'basicConstraints=CA:FALSE\\nkeyUsage=digitalSignature\\nextendedKeyUsage=clientAuth\\n' > client-ext.cnf
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
           -keyout client.key -out client.csr -subj '/CN=accountmapd' 2>/dev/null
         openssl x509 -req -in client.csr -CA good-ca.pem -CAkey good-ca.key \
           -CAcreateserial -out client.pem -days 2 -extfile client-ext.cnf 2>/dev/null
         chmod 600 client.key",
    );
}

fn ssha(password: &str) -> String {
    let out = run_bounded(
        Command::new(SLAPPASSWD).args(["-h", "{SSHA}", "-s", password]),
        None,
        COMMAND_LIMIT,
    );
    assert_eq!(out.code, 0, "slappasswd: {}", out.all());
    out.stdout.trim().to_string()
}

/// The generated directory content.
pub fn ldif() -> String {
    let mut s = format!(
        "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: {PEOPLE_DN}\nobjectClass: organizationalUnit\nou: People\n\n\
         dn: {GROUPS_DN}\nobjectClass: organizationalUnit\nou: Groups\n\n\
         dn: {READER_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\nuserPassword: {READER_PASSWORD}\n\n"
    );
    for u in LDAP_USERS {
        // One hashed password, to show {SSHA} works as well as clear text.
        let pw = if u.uid == "alice" {
            ssha(u.password)
        } else {
            u.password.to_string()
        };
        // jdoe's uid is multi-valued, the other value listed first: an email look-up must
        // still give the value that names the entry (uid=jdoe), not the first one.
        let extra_uid = if u.uid == "jdoe" { "uid: jd\n" } else { "" };
        let _ = write!(
            s,
            "dn: uid={uid},{PEOPLE_DN}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
             {extra_uid}uid: {uid}\ncn: {uid}\nsn: {uid}\nmail: {mail}\nuidNumber: {n}\ngidNumber: {n}\n\
             homeDirectory: /home/{uid}\nuserPassword: {pw}\n\n",
            uid = u.uid,
            mail = u.mail,
            n = u.uid_number,
        );
    }
    let _ = write!(
        s,
        "dn: uid=o\\,brien\\+x,{PEOPLE_DN}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
         uid: {ESCAPED_UID}\ncn: obrien\nsn: obrien\nmail: obrien@example.org\nuidNumber: 1006\n\
         gidNumber: 1006\nhomeDirectory: /home/obrien\nuserPassword: {ESCAPED_PASSWORD}\n\n"
    );
    for (uid, n, object_class, state) in STATE_USERS {
        let _ = write!(
            s,
            "dn: uid={uid},{PEOPLE_DN}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
             {object_class}uid: {uid}\ncn: {uid}\nsn: {uid}\nmail: {uid}@example.org\n\
             uidNumber: {n}\ngidNumber: {n}\nhomeDirectory: /home/{uid}\n\
             userPassword: {uid}-pw\n{state}\n"
        );
    }
    // Nested groups: nested is a member of team, team a member of parent (groupOfNames).
    let _ = write!(
        s,
        "dn: {TEAM_DN}\nobjectClass: groupOfNames\ncn: team\nmember: uid=nested,{PEOPLE_DN}\n\n\
         dn: {PARENT_DN}\nobjectClass: groupOfNames\ncn: parent\nmember: {TEAM_DN}\n\n"
    );
    let _ = writeln!(
        s,
        "dn: {SCIENTISTS_DN}\nobjectClass: groupOfNames\ncn: scientists"
    );
    for u in LDAP_USERS.iter().filter(|u| u.scientist) {
        let _ = writeln!(s, "member: uid={},{PEOPLE_DN}", u.uid);
    }
    let _ = writeln!(
        s,
        "\ndn: {LDAP_RSTUDIO_DN}\nobjectClass: posixGroup\ncn: ldap-rstudio\ngidNumber: 3000"
    );
    for u in LDAP_USERS.iter().filter(|u| u.rstudio) {
        let _ = writeln!(s, "memberUid: {}", u.uid);
    }
    for (uid, ..) in STATE_USERS {
        let _ = writeln!(s, "memberUid: {uid}");
    }
    s
}

/// Users whose entries record an account state (issue 15), each in ldap-rstudio, with the
/// password `<uid>-pw`: (uid, uidNumber, extra object class line, state attributes).
/// `nested` is in no whitelisted group directly, only through `team` ⊂ `parent`.
pub const STATE_USERS: &[(&str, u32, &str, &str)] = &[
    ("locked", 1011, "", "pwdAccountLockedTime: 000001010000Z\n"),
    ("reset", 1012, "", "pwdReset: TRUE\n"),
    (
        "expired",
        1013,
        "objectClass: shadowAccount\n",
        "shadowExpire: 1\n",
    ),
    (
        "mustchg",
        1014,
        "objectClass: shadowAccount\n",
        "shadowLastChange: 0\n",
    ),
    ("nested", 1015, "", ""),
];
pub const TEAM_DN: &str = "cn=team,ou=Groups,dc=example,dc=org";
pub const PARENT_DN: &str = "cn=parent,ou=Groups,dc=example,dc=org";

pub struct Slapd {
    pub dir: PathBuf,
    /// Plain LDAP (StartTLS offered here).
    pub port: u16,
    /// LDAPS.
    pub tls_port: u16,
    /// slapd's `-d` level: `0` (nothing), or `256` (stats: every connection and operation,
    /// see [`Slapd::start_logging_operations`]).
    debug: &'static str,
    child: Option<Child>,
}

impl Slapd {
    /// Configures, fills and starts a slapd in a new temporary directory named after `name`
    /// (removed on drop unless ACCOUNTMAP_TESTS_KEEP is set).
    pub fn start(name: &str) -> Slapd {
        Slapd::start_with(name, false)
    }

    /// As [`Slapd::start`]; with `require_client_cert`, every TLS client must present a
    /// certificate signed by the good CA (`TLSVerifyClient demand`).
    pub fn start_with(name: &str, require_client_cert: bool) -> Slapd {
        Slapd::start_opts(name, require_client_cert, false)
    }

    /// As [`Slapd::start`]; with `hide_groups`, only the service account may read
    /// `ou=Groups` (users bound as themselves cannot see any group).
    pub fn start_opts(name: &str, require_client_cert: bool, hide_groups: bool) -> Slapd {
        Slapd::start_full(name, require_client_cert, hide_groups, "0")
    }

    /// As [`Slapd::start`], logging every connection and operation (`-d 256`, slapd's `stats`
    /// level) to `slapd.log`, for [`Slapd::operations_since`].
    pub fn start_logging_operations(name: &str) -> Slapd {
        Slapd::start_full(name, false, false, "256")
    }

    fn start_full(
        name: &str,
        require_client_cert: bool,
        hide_groups: bool,
        debug: &'static str,
    ) -> Slapd {
        require_slapd();
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let short: String = name.chars().take(20).collect();
        let dir = std::env::temp_dir().join(format!("am-slapd-{}-{n}-{short}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let dir = dir.as_path();
        fs::create_dir_all(dir.join("data")).expect("create slapd dirs");
        make_ca(dir, "good", true);
        make_ca(dir, "wrong", false);
        make_client_cert(dir);
        let groups_acl = if hide_groups {
            format!(
                "access to dn.subtree=\"{GROUPS_DN}\" by dn.exact=\"{READER_DN}\" read by * none\n"
            )
        } else {
            String::new()
        };
        let verify_client = if require_client_cert {
            "TLSVerifyClient demand\n"
        } else {
            ""
        };
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             pidfile {d}/slapd.pid\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             moduleload ppolicy\n\
             TLSCACertificateFile {d}/good-ca.pem\n\
             TLSCertificateFile {d}/good-server.pem\n\
             TLSCertificateKeyFile {d}/good-server.key\n\
             {verify_client}\
             database mdb\n\
             suffix \"{BASE_DN}\"\n\
             rootdn \"cn=admin,{BASE_DN}\"\n\
             directory {d}/data\n\
             maxsize 10485760\n\
             overlay ppolicy\n\
             access to attrs=userPassword by anonymous auth by * none\n\
             {groups_acl}\
             access to * by * read\n",
            d = dir.display()
        );
        fs::write(dir.join("slapd.conf"), conf).expect("write slapd.conf");
        fs::write(dir.join("data.ldif"), ldif()).expect("write data.ldif");
        let out = run_bounded(
            Command::new(SLAPADD)
                .arg("-f")
                .arg(dir.join("slapd.conf"))
                .arg("-l")
                .arg(dir.join("data.ldif")),
            None,
            COMMAND_LIMIT,
        );
        assert_eq!(out.code, 0, "slapadd failed: {}", out.all());
        let mut s = Slapd {
            dir: dir.to_path_buf(),
            port: free_port(),
            tls_port: free_port(),
            debug,
            child: None,
        };
        s.resume();
        s
    }

    /// `host:port` of the plain listener.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `host:port` of the LDAPS listener.
    pub fn tls_address(&self) -> String {
        format!("127.0.0.1:{}", self.tls_port)
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("good-ca.pem")
    }

    pub fn wrong_ca(&self) -> PathBuf {
        self.dir.join("wrong-ca.pem")
    }

    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.pem")
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    /// Starts slapd (again) on the same ports and waits until both accept connections.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "slapd already running");
        // -d: stay in the foreground (so the test owns the process); 0 = no debug output.
        let child = spawn_logged(
            Command::new(SLAPD)
                .arg("-f")
                .arg(self.dir.join("slapd.conf"))
                .arg("-h")
                .arg(format!(
                    "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
                    self.port, self.tls_port
                ))
                .args(["-d", self.debug]),
            &self.dir.join("slapd.log"),
        );
        self.child = Some(child);
        let ports = [self.port, self.tls_port];
        if !listening(&ports, SLAPD_START_LIMIT) {
            self.stop();
            panic!(
                "slapd did not listen on {ports:?} within {SLAPD_START_LIMIT:?}:\n{}",
                fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default()
            );
        }
    }

    /// Kills slapd and waits until its ports refuse connections.
    pub fn stop(&mut self) {
        kill_and_wait_closed(&mut self.child, self.port);
    }

    /// How far `slapd.log` goes now: [`Slapd::operations_since`] counts what comes after.
    /// Waits until the log has been quiet for a moment, so that lines of operations already
    /// answered are in it.
    pub fn log_mark(&self) -> u64 {
        let path = self.dir.join("slapd.log");
        let size = || fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut last = size();
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(100));
            let now = size();
            if now == last {
                break;
            }
            last = now;
        }
        last
    }

    /// The connections and operations slapd logged after `mark` (from [`Slapd::log_mark`]);
    /// needs a slapd from [`Slapd::start_logging_operations`].
    pub fn operations_since(&self, mark: u64) -> Operations {
        let end = self.log_mark();
        let log = fs::read(self.dir.join("slapd.log")).expect("read slapd.log");
        let from = usize::try_from(mark).unwrap_or(usize::MAX).min(log.len());
        let to = usize::try_from(end)
            .unwrap_or(usize::MAX)
            .clamp(from, log.len());
        Operations::parse(&String::from_utf8_lossy(&log[from..to]))
    }
}

/// What slapd's stats log (`-d 256`) says clients did: connections, TLS set-ups and operations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Operations {
    /// Connections accepted.
    pub connections: usize,
    /// StartTLS requests.
    pub start_tls: usize,
    /// TLS sessions set up (StartTLS or LDAPS).
    pub tls_handshakes: usize,
    /// Bind requests, one `dn` each.
    pub binds: Vec<String>,
    /// Search requests, one `base scope filter` each.
    pub searches: Vec<String>,
    pub unbinds: usize,
}

impl Operations {
    /// Counts the request lines of a stats log (`conn=N op=M SRCH base=…`, `… BIND dn=… method=…`,
    /// `conn=N fd=F ACCEPT from …`, …); with `-d` a line may start with a timestamp.
    pub fn parse(log: &str) -> Operations {
        let mut ops = Operations::default();
        for line in log.lines() {
            let Some(at) = line.find("conn=") else {
                continue;
            };
            let line = &line[at..];
            let words: Vec<&str> = line.split(' ').collect();
            let verb = |i: usize| words.get(i).copied().unwrap_or_default();
            let rest = |i: usize| words.get(i..).map(|w| w.join(" ")).unwrap_or_default();
            match (verb(2), verb(3)) {
                ("ACCEPT", _) => ops.connections += 1,
                ("TLS", "established") => ops.tls_handshakes += 1,
                ("STARTTLS", _) => ops.start_tls += 1,
                ("BIND", _) if line.contains(" method=") => ops.binds.push(rest(3)),
                ("SRCH", w) if w.starts_with("base=") => ops.searches.push(rest(3)),
                ("UNBIND", _) => ops.unbinds += 1,
                _ => {}
            }
        }
        ops
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        kill(&mut self.child);
        remove_unless_kept(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// A daemon configured against a Slapd

/// The PAM service of these tests: our module alone with `verify=ldap`, PAM_USER echoed.
pub const SVC_LDAP: &str = "ldap";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transport {
    Plain,
    StartTls,
    Ldaps,
}

#[derive(Clone, Debug)]
pub struct Section {
    pub name: &'static str,
    pub transport: Transport,
    /// `server_tls_insecure = true` instead of a CA.
    pub insecure: bool,
    /// Present the slapd's client certificate (mutual TLS).
    pub client_cert: bool,
    /// `user_search_base_dn`; `None` = ou=People.
    pub user_base: Option<String>,
    /// The CA file named by `tls_ca_certificate` (ignored for plain LDAP).
    pub ca_wrong: bool,
    pub anonymous: bool,
    /// Neither `bind_dn` nor `anonymous_bind`: single bind (wins over `anonymous`).
    pub single: bool,
    /// Server addresses; `None` = the slapd's own for the transport.
    pub addresses: Option<Vec<String>>,
    /// `group_member_attribute`; `None` = the key is left out (any member attribute).
    pub member_attribute: Option<&'static str>,
    /// The one `whitelisted_login_groups` entry; empty = no whitelist.
    pub whitelist: &'static str,
    /// More keys for the section, as TOML lines (`nested_groups = true\n`).
    pub extra: &'static str,
    /// `group_search_base_dn` (ou=Groups) and the group keys; false = no group names are read,
    /// only `whitelisted_login_groups` is checked.
    pub groups: bool,
}

impl Default for Section {
    fn default() -> Section {
        Section {
            name: "corp",
            transport: Transport::StartTls,
            insecure: false,
            client_cert: false,
            user_base: None,
            ca_wrong: false,
            anonymous: false,
            single: false,
            addresses: None,
            member_attribute: None,
            whitelist: SCIENTISTS_DN,
            extra: "",
            groups: true,
        }
    }
}

impl Section {
    /// A section named `first` whose user search base (`ou=Groups`) holds no user: it finds
    /// nobody, so the section after it is asked.
    pub fn finding_nobody() -> Section {
        Section {
            name: "first",
            user_base: Some(GROUPS_DN.to_string()),
            ..Section::default()
        }
    }
}

/// The local users, mirroring the directory's uids (no `ann`); no local `ldap-rstudio` group.
pub fn local_world() -> World {
    let mut w = World {
        users: Vec::new(),
        groups: Vec::new(),
    };
    for (name, uid) in [
        ("root", 0),
        ("alice", 1001),
        ("bob", 1002),
        ("jdoe", 1003),
        ("dave", 1004),
        ("locked", 1011),
        ("reset", 1012),
        ("expired", 1013),
        ("mustchg", 1014),
        ("nested", 1015),
    ] {
        w.users.push(User {
            name: name.into(),
            uid,
            gid: uid,
        });
        w.groups.push(Group {
            name: name.into(),
            gid: uid,
            members: vec![],
        });
    }
    w
}

pub fn section_toml(env: &Env, slapd: &Slapd, s: &Section) -> String {
    let addresses = s.addresses.clone().unwrap_or_else(|| {
        vec![if s.transport == Transport::Ldaps {
            slapd.tls_address()
        } else {
            slapd.address()
        }]
    });
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    let mut t = format!(
        "\n[[ldap]]\nname = \"{}\"\nserver_address = [{}]\n",
        s.name,
        list.join(", ")
    );
    match s.transport {
        Transport::Plain => {}
        Transport::StartTls => t += "start_tls = true\n",
        Transport::Ldaps => t += "tls = true\n",
    }
    if s.insecure {
        t += "server_tls_insecure = true\n";
    } else if s.transport != Transport::Plain {
        let ca = if s.ca_wrong {
            slapd.wrong_ca()
        } else {
            slapd.ca()
        };
        t += &format!("tls_ca_certificate = \"{}\"\n", ca.display());
    }
    if s.client_cert {
        t += &format!(
            "tls_client_certificate = \"{}\"\ntls_client_key = \"{}\"\n",
            slapd.client_cert().display(),
            slapd.client_key().display()
        );
    }
    if s.single {
        // single bind: no bind key at all
    } else if s.anonymous {
        t += "anonymous_bind = true\n";
    } else {
        let pw = env.path("ldap-bind-password");
        write_with_mode(&pw, &format!("{READER_PASSWORD}\n"), 0o600);
        t += &format!(
            "bind_dn = \"{READER_DN}\"\nbind_password_file = \"{}\"\n",
            pw.display()
        );
    }
    t += &format!(
        "user_search_base_dn = \"{}\"\n\
         user_object_class = \"posixAccount\"\n\
         username_attribute = \"uid\"\n\
         user_email_attribute = \"mail\"\n",
        s.user_base.as_deref().unwrap_or(PEOPLE_DN)
    );
    if s.groups {
        t += &format!(
            "group_search_base_dn = \"{GROUPS_DN}\"\n\
             group_object_class = \"posixGroup\"\n\
             group_name_attribute = \"cn\"\n"
        );
    }
    if !s.whitelist.is_empty() {
        t += &format!("whitelisted_login_groups = [\"{}\"]\n", s.whitelist);
    }
    if let Some(a) = s.member_attribute {
        t += &format!("group_member_attribute = \"{a}\"\n");
    }
    t += s.extra;
    t
}

/// A daemon whose only `[[ldap]]` section is `section` against `slapd`.
pub fn ldap_env(name: &str, slapd: &Slapd, section: &Section, cache_ttl: u32) -> Env {
    ldap_env_sections(name, slapd, std::slice::from_ref(section), cache_ttl, 2)
}

/// A daemon with these `[[ldap]]` sections, in order, and `backend_timeout` seconds.
pub fn ldap_env_sections(
    name: &str,
    slapd: &Slapd,
    sections: &[Section],
    cache_ttl: u32,
    backend_timeout: u32,
) -> Env {
    ldap_env_with(
        name,
        slapd,
        sections,
        cache_ttl,
        backend_timeout,
        &["ldap-rstudio"],
    )
}

/// As [`ldap_env_sections`], with these `access.required_groups`.
pub fn ldap_env_with(
    name: &str,
    slapd: &Slapd,
    sections: &[Section],
    cache_ttl: u32,
    backend_timeout: u32,
    required_groups: &[&str],
) -> Env {
    let mut env = Env::builder(name)
        .world(|w| *w = local_world())
        .accounts("")
        .no_daemon()
        .build();
    let mut config = Config {
        required_groups: required_groups.iter().map(|g| g.to_string()).collect(),
        denied_users: vec![],
        rewrite: vec![],
        cache_ttl,
        negative_cache_ttl: cache_ttl,
        backend_timeout,
        ..Config::default()
    };
    config.extra = sections
        .iter()
        .map(|s| section_toml(&env, slapd, s))
        .collect();
    env.write_config(&config);
    env.add_service(SVC_LDAP, "verify=ldap", true);
    env.start_daemon();
    env
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy that counts the connections it accepts

/// Forwards every connection to `upstream` unchanged (TLS passes through end to end) and
/// counts the connections accepted: how the tests see how many connections the daemon opens
/// to a directory. [`CountingProxy::break_all`] closes the connections open, as a server
/// restart does.
pub struct CountingProxy {
    pub addr: String,
    accepted: Arc<AtomicUsize>,
    live: Held,
    _accept: AcceptLoop,
}

impl CountingProxy {
    pub fn start(upstream: String) -> CountingProxy {
        let accepted = Arc::new(AtomicUsize::new(0));
        let live = Held::default();
        let (count, held) = (accepted.clone(), live.clone());
        let accept = AcceptLoop::start(move |client| {
            count.fetch_add(1, Ordering::SeqCst);
            let _ = client.set_nodelay(true);
            let Ok(server) = TcpStream::connect(&upstream) else {
                return;
            };
            let _ = server.set_nodelay(true);
            held.keep(&client);
            held.keep(&server);
            forward_both_ways(client, server);
        });
        CountingProxy {
            addr: accept.addr.to_string(),
            accepted,
            live,
            _accept: accept,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes every connection open through the proxy (both ends).
    pub fn break_all(&self) {
        self.live.close_all(false);
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.break_all();
    }
}
