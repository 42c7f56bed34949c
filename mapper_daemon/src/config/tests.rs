use super::validate::check_host_port;
use super::*;
use rstest::rstest;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file; `{dir}` in the text becomes the fixture's directory.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(
            &p,
            text.replace("{dir}", &self.dir.path().display().to_string()),
        )
        .unwrap();
        p
    }

    fn secret(&self, name: &str, content: &str, mode: u32) -> PathBuf {
        let p = self.write(name, content);
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn config(&self, text: &str) -> PathBuf {
        self.write("accountmap.toml", text)
    }

    /// Every error of the config, each with the fixture's directory replaced by `{dir}`.
    fn errors(&self, text: &str) -> Vec<String> {
        let path = self.config(text);
        match load(&path) {
            Ok(c) => panic!("accepted:\n{text}\n{c:?}"),
            Err(e) => {
                assert!(!e.0.is_empty());
                e.0.iter()
                    .map(|e| {
                        assert!(!e.message.contains('\n'), "{e:?}");
                        e.to_string()
                            .replace(&self.dir.path().display().to_string(), "{dir}")
                    })
                    .collect()
            }
        }
    }

    fn load(&self, text: &str) -> Config {
        let path = self.config(text);
        match load(&path) {
            Ok(c) => c,
            Err(e) => panic!("refused:\n{text}\n{e}"),
        }
    }
}

/// The shipped example: local policy only, the other sections commented out.
const SHIPPED: &str = r#"# accountmap configuration
[daemon]
socket = "/run/accountmap/accountmapd.sock"
cache_ttl = 300            # seconds a positive answer is reused
negative_cache_ttl = 30    # seconds a "no such user" is reused
backend_timeout = 5        # seconds per LDAP/OIDC operation

[access]
minimum_uid = "auto"
required_groups = []
denied_users = []

[mapping]
lowercase = true
display_separator = "/"
accounts_file = "{dir}/accounts"
# Anchor every rule (^…$).
rewrite = ['^uid-([a-z]+)$ $1', '^([a-z0-9._-]+)@company\.com$ $1']

#[oidc]
#client_id = "…"
#client_secret_file = "/etc/accountmap/oidc-client-secret"

#[[ldap]]
#name = "corp"
#server_address = ["ldap1.company.com:389"]

#[proxy]
#hmac_key_file = "/etc/accountmap/proxy-hmac-key"
#max_clock_skew = 60
"#;

#[test]
fn shipped_example_loads_with_a_warning_for_the_missing_accounts_file() {
    let f = Fixture::new();
    let c = f.load(SHIPPED);
    assert_eq!(c.files, vec![f.path("accountmap.toml")]);
    assert_eq!(
        c.daemon.socket,
        PathBuf::from(accountmap_wire::DEFAULT_SOCKET)
    );
    assert_eq!(c.daemon.cache_ttl, Duration::from_secs(300));
    assert_eq!(c.daemon.negative_cache_ttl, Duration::from_secs(30));
    assert_eq!(c.daemon.backend_timeout, Duration::from_secs(5));
    assert_eq!(c.access.minimum_uid, MinimumUid::Auto);
    assert!(c.mapping.lowercase);
    assert_eq!(c.mapping.display_separator.as_deref(), Some("/"));
    assert_eq!(c.mapping.accounts_file, Some(f.path("accounts")));
    assert_eq!(c.mapping.rewrite.len(), 2);
    assert_eq!(
        c.mapping.rewrite[0].apply("uid-jsmith").as_deref(),
        Some("jsmith")
    );
    assert!(c.oidc.is_none() && c.ldap.is_empty() && c.proxy.is_none());
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].ends_with(":16:17: accounts_file {dir}/accounts does not exist yet; no accounts are mapped until it is created"
            .replace("{dir}", &f.dir.path().display().to_string())
            .as_str()),
        "{:?}",
        c.warnings
    );
    f.write("accounts", "John.Doe@Company.com = jdoe\n");
    assert!(f.load(SHIPPED).warnings.is_empty());
}

#[test]
fn empty_file_gives_the_defaults() {
    let f = Fixture::new();
    let c = f.load("");
    assert_eq!(
        c.daemon.socket,
        PathBuf::from(accountmap_wire::DEFAULT_SOCKET)
    );
    assert_eq!(c.daemon.backend_timeout, Duration::from_secs(5));
    assert!(c.mapping.lowercase);
    assert_eq!(c.mapping.display_separator.as_deref(), Some("/"));
    assert_eq!(c.mapping.accounts_file, None);
    assert!(c.warnings.is_empty());
}

#[test]
fn full_config_with_all_sections_loads() {
    let f = Fixture::new();
    f.secret("oidc-secret", "s3cret\r\n", 0o600);
    f.secret("bind-pw", "hunter2\n\n", 0o400);
    f.secret("client.key", "KEY", 0o600);
    f.secret("hmac", "k3y\n", 0o600);
    f.write("ca.pem", "CA");
    f.write("client.pem", "CERT");
    f.write("accounts", "a@b.c=alice\n");
    let c = f.load(
        r#"
[daemon]
socket = "/run/x.sock"
cache_ttl = 0
negative_cache_ttl = 0
backend_timeout = 2

[access]
minimum_uid = 500
required_groups = ["rstudio-users", "Domain Users"]
denied_users = ["root"]

[mapping]
lowercase = false
display_separator = ""
accounts_file = "{dir}/accounts"
rewrite = ['^UID-([a-z]+)$ $1']

[oidc]
discovery_endpoint = "http://localhost:3000/.well-known/openid-configuration"
client_id = "abc.apps.googleusercontent.com"
client_secret_file = "{dir}/oidc-secret"
allowed_domains = ["Company.com"]
allowed_emails = ["Ann@Other.org"]
ca_file = "{dir}/ca.pem"

[[ldap]]
name = "corp"
server_address = ["ldap1.company.com:389", "[::1]:389"]
start_tls = true
tls_ca_certificate = "{dir}/ca.pem"
tls_client_certificate = "{dir}/client.pem"
tls_client_key = "{dir}/client.key"
bind_dn = "cn=reader,dc=company,dc=com"
bind_password_file = "{dir}/bind-pw"
user_search_base_dn = "ou=People,dc=company,dc=com"
user_object_class = "inetOrgPerson"
username_attribute = "sAMAccountName"
user_email_attribute = "mail"
group_search_base_dn = "ou=Groups,dc=company,dc=com"
group_object_class = "group"
group_name_attribute = "cn"
whitelisted_login_groups = ["cn=scientists,ou=Groups,dc=company,dc=com"]

[[ldap]]
server_address = ["ad.company.com:636"]
tls = true
anonymous_bind = true
user_search_base_dn = "dc=ad"

[proxy]
hmac_key_file = "{dir}/hmac"
max_clock_skew = 30
"#,
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.daemon.socket, PathBuf::from("/run/x.sock"));
    assert_eq!(c.daemon.cache_ttl, Duration::ZERO);
    assert_eq!(c.daemon.backend_timeout, Duration::from_secs(2));
    assert_eq!(c.access.minimum_uid, MinimumUid::Fixed(500));
    assert_eq!(c.access.required_groups, ["rstudio-users", "Domain Users"]);
    assert_eq!(c.access.denied_users, ["root"]);
    assert!(!c.mapping.lowercase);
    assert_eq!(c.mapping.display_separator, None);
    let o = c.oidc.unwrap();
    assert_eq!(o.client_id, "abc.apps.googleusercontent.com");
    assert_eq!(o.client_secret.unwrap().expose(), b"s3cret");
    assert_eq!(o.allowed_domains, ["company.com"]);
    assert_eq!(o.allowed_emails, ["ann@other.org"]);
    assert_eq!(o.ca_file, Some(f.path("ca.pem")));
    assert_eq!(c.ldap.len(), 2);
    let l = &c.ldap[0];
    assert_eq!(l.name, "corp");
    assert_eq!(l.server_address, ["ldap1.company.com:389", "[::1]:389"]);
    assert!(l.start_tls && !l.tls && !l.server_tls_insecure && !l.anonymous_bind);
    assert_eq!(l.bind_password.as_ref().unwrap().expose(), b"hunter2");
    assert_eq!(format!("{:?}", l.bind_password), "Some(<redacted>)");
    assert_eq!(l.tls_client_key, Some(f.path("client.key")));
    assert_eq!(l.username_attribute, "sAMAccountName");
    assert_eq!(
        l.group_search_base_dn.as_deref(),
        Some("ou=Groups,dc=company,dc=com")
    );
    let ad = &c.ldap[1];
    assert_eq!(ad.name, "ldap2");
    assert!(ad.tls && ad.anonymous_bind && ad.bind_password.is_none());
    assert_eq!(
        (
            ad.user_object_class.as_str(),
            ad.username_attribute.as_str()
        ),
        ("posixAccount", "uid")
    );
    assert_eq!(ad.user_email_attributes, ["mail"]);
    assert_eq!(ad.group_object_class, "posixGroup");
    assert_eq!(ad.nested_groups, crate::config::NestedGroups::Auto);
    assert_eq!(ad.group_name_attribute, "cn");
    let p = c.proxy.unwrap();
    assert_eq!(p.hmac_key.expose(), b"k3y");
    assert_eq!(p.max_clock_skew, Duration::from_secs(30));
}

#[test]
fn oidc_defaults_to_google() {
    let f = Fixture::new();
    let c = f.load("[oidc]\nclient_id = \"x\"\nallowed_domains = [\"company.com\"]\n");
    let o = c.oidc.unwrap();
    assert_eq!(o.discovery_endpoint, GOOGLE_DISCOVERY);
    assert!(o.client_secret.is_none());
    assert!(c.warnings.is_empty());
}

#[test]
fn the_gates_own_keys_are_accepted_in_the_same_file() {
    let f = Fixture::new();
    let c = f.load(
        "[oidc]\nclient_id = \"x\"\nallowed_domains = [\"company.com\"]\n\
         [gate]\nticket_callers = [\"accountmap-gate\"]\nlisten = \"127.0.0.1:8788\"\n\
         public_url = \"https://rstudio.example.com/\"\nrserver_url = \"http://127.0.0.1:8787/\"\n\
         mode = \"oidc\"\nclient_secret_file = \"/etc/accountmap/gate/client-secret\"\n\
         scopes = [\"openid\", \"email\"]\nservice = \"rstudio\"\nrserver_encryption = \"pkcs1\"\n\
         stay_signed_in = false\ntimeout = 10\n",
    );
    let g = c.gate.unwrap();
    assert_eq!(g.ticket_callers, ["accountmap-gate"]);
    assert!(!g.unsigned_header);
}

#[rstest]
#[case::not_toml("[daemon\n", ":1:8: invalid table header")]
#[case::unknown_top("[deamon]\n", ":1:2: unknown field `deamon`, expected one of `daemon`")]
#[case::unknown_key(
    "[daemon]\nsockett = \"/x\"\n",
    ":2:1: unknown field `sockett`, expected one of `socket`, `cache_ttl`, `negative_cache_ttl`, `backend_timeout`, `failure_budget`, `failure_refill`"
)]
#[case::unknown_ldap_key(
    "[[ldap]]\nserver_address = [\"a:1\"]\nbase_dn = \"x\"\n",
    ":3:1: unknown field `base_dn`"
)]
#[case::wrong_type(
    "[daemon]\ncache_ttl = \"300\"\n",
    ":2:13: invalid type: string \"300\", expected i64"
)]
#[case::wrong_list_type(
    "[access]\nrequired_groups = \"staff\"\n",
    ":2:19: invalid type: string \"staff\", expected a sequence"
)]
#[case::negative_ttl(
    "[daemon]\ncache_ttl = -1\n",
    ":2:13: cache_ttl must be 0 (no caching) or a positive number of seconds, found -1"
)]
#[case::zero_timeout(
    "[daemon]\nbackend_timeout = 0\n",
    ":2:19: backend_timeout must be at least 1 second(s), found 0"
)]
#[case::zero_failure_budget(
    "[daemon]\nfailure_budget = 0\n",
    ":2:18: failure_budget must be a number of failures from 1 to 1000, found 0"
)]
#[case::zero_failure_refill(
    "[daemon]\nfailure_refill = 0\n",
    ":2:18: failure_refill must be at least 1 second(s), found 0"
)]
#[case::huge_ttl(
    "[daemon]\nnegative_cache_ttl = 99999999999\n",
    ":2:22: negative_cache_ttl must be at most"
)]
#[case::relative_socket(
    "[daemon]\nsocket = \"run/x.sock\"\n",
    ":2:10: \"run/x.sock\" is a relative path; write an absolute path"
)]
#[case::bad_min_uid(
    "[access]\nminimum_uid = \"automatic\"\n",
    ":2:15: minimum_uid must be \"auto\" or a uid number, found \"automatic\""
)]
#[case::negative_min_uid("[access]\nminimum_uid = -1\n", ":2:15: minimum_uid -1 is not a uid")]
#[case::float_min_uid(
    "[access]\nminimum_uid = 1.5\n",
    ":2:15: minimum_uid must be \"auto\" or a uid number, found a float"
)]
#[case::empty_group(
    "[access]\nrequired_groups = [\"a\", \"\"]\n",
    ":2:25: required_groups entry must not be empty"
)]
#[case::bad_rule(
    "[mapping]\nrewrite = ['^a$ b', '^UID-(.*)$']\n",
    ":2:22: rewrite rule 2: \"^UID-(.*)$\" has no replacement"
)]
#[case::bad_rule_regex(
    "[mapping]\nrewrite = [\n  '^([a-z]+$ $1',\n]\n",
    ":3:4: rewrite rule 1: regex does not compile: regex parse error: ^([a-z]+$ ^ error: unclosed group"
)]
#[case::bad_rule_reference_offset(
    "[mapping]\nrewrite = ['^([a-z]+)$ $2']\n",
    ":2:24: rewrite rule 1: replacement \"$2\" refers to $2"
)]
#[case::relative_accounts(
    "[mapping]\naccounts_file = \"accounts\"\n",
    ":2:17: \"accounts\" is a relative path; write an absolute path"
)]
#[case::missing_client_id(
    "[oidc]\nallowed_domains = [\"company.com\"]\n",
    ":1:1: missing required key `client_id` in [oidc]"
)]
#[case::http_discovery(
    "[oidc]\nclient_id = \"x\"\ndiscovery_endpoint = \"http://idp.company.com/.well-known/openid-configuration\"\n",
    ":3:22: discovery_endpoint must be an https:// URL (http:// only for localhost)"
)]
#[case::domain_with_at(
    "[oidc]\nclient_id = \"x\"\nallowed_domains = [\"@company.com\"]\n",
    ":3:20: allowed_domains entry \"@company.com\" contains @"
)]
#[case::bad_email(
    "[oidc]\nclient_id = \"x\"\nallowed_emails = [\"jdoe\"]\n",
    ":3:19: allowed_emails entry \"jdoe\" is not an email address"
)]
#[case::gate_mode(
    "[gate]\nticket_callers = [\"g\"]\nmode = \"saml\"\n",
    ":3:8: mode must be \"oidc\" or \"header\", found \"saml\""
)]
#[case::gate_header_without_proxy_key(
    "[gate]\nticket_callers = [\"g\"]\nmode = \"header\"\nuser_header = \"X-Auth-User\"\n",
    ":1:1: [gate] mode = \"header\" checks X-Proxy-Signature with [proxy] hmac_key_file"
)]
#[case::missing_secret(
    "[oidc]\nclient_id = \"x\"\nclient_secret_file = \"{dir}/nope\"\n",
    ":3:22: cannot read {dir}/nope: No such file or directory (os error 2)"
)]
#[case::missing_ca(
    "[oidc]\nclient_id = \"x\"\nallowed_emails = [\"a@b.c\"]\nca_file = \"{dir}/nope.pem\"\n",
    ":4:11: cannot read {dir}/nope.pem: No such file or directory"
)]
#[case::ldap_missing_address(
    "[[ldap]]\nanonymous_bind = true\nstart_tls = true\nuser_search_base_dn = \"dc=x\"\n",
    ":1:1: missing required key `server_address` in [[ldap]] \"ldap1\""
)]
#[case::ldap_missing_base(
    "[[ldap]]\nname = \"corp\"\nanonymous_bind = true\nstart_tls = true\nserver_address = [\"a:389\"]\n",
    ":1:1: missing required key `user_search_base_dn` in [[ldap]] \"corp\""
)]
#[case::ldap_empty_address(
    "[[ldap]]\nserver_address = []\nanonymous_bind = true\nstart_tls = true\nuser_search_base_dn = \"dc=x\"\n",
    ":2:18: server_address is empty"
)]
#[case::ldap_url_address(
    "[[ldap]]\nserver_address = [\"ldaps://a:636\"]\nanonymous_bind = true\ntls = true\nuser_search_base_dn = \"dc=x\"\n",
    ":2:19: server_address entry \"ldaps://a:636\" is a URL"
)]
#[case::ldap_no_port(
    "[[ldap]]\nserver_address = [\"a:389\", \"b\"]\nanonymous_bind = true\ntls = true\nuser_search_base_dn = \"dc=x\"\n",
    ":2:28: server_address entry \"b\" is not host:port"
)]
#[case::ldap_tls_and_start_tls(
    "[[ldap]]\nserver_address = [\"a:389\"]\ntls = true\nstart_tls = true\nanonymous_bind = true\nuser_search_base_dn = \"dc=x\"\n",
    ":4:13: choose one of tls (LDAPS) and start_tls"
)]
#[case::ldap_dn_without_password(
    "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nbind_dn = \"cn=r\"\nuser_search_base_dn = \"dc=x\"\n",
    ":4:11: bind_dn needs bind_password_file"
)]
#[case::ldap_anonymous_with_dn(
    "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nbind_dn = \"cn=r\"\nanonymous_bind = true\nuser_search_base_dn = \"dc=x\"\n",
    ":5:18: anonymous_bind = true together with bind_dn: choose one"
)]
#[case::ldap_password_without_dn(
    "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nbind_password_file = \"/x\"\nuser_search_base_dn = \"dc=x\"\n",
    ":4:22: bind_password_file needs bind_dn"
)]
#[case::ldap_password_file_is_not_single_bind(
    "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nanonymous_bind = false\nbind_password_file = \"/x\"\nuser_search_base_dn = \"dc=x\"\n",
    ":5:22: bind_password_file needs bind_dn"
)]
#[case::ldap_cert_without_key(
    "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nanonymous_bind = true\ntls_client_certificate = \"/c.pem\"\nuser_search_base_dn = \"dc=x\"\n",
    ":5:26: tls_client_certificate needs tls_client_key"
)]
#[case::ldap_key_without_cert(
    "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nanonymous_bind = true\ntls_client_key = \"/c.key\"\nuser_search_base_dn = \"dc=x\"\n",
    ":5:18: tls_client_key needs tls_client_certificate"
)]
#[case::ldap_insecure_with_ca(
    "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nanonymous_bind = true\nserver_tls_insecure = true\ntls_ca_certificate = \"/etc/hostname\"\nuser_search_base_dn = \"dc=x\"\n",
    ":5:23: server_tls_insecure = true contradicts tls_ca_certificate"
)]
#[case::ldap_duplicate_name(
    "[[ldap]]\nname = \"corp\"\nserver_address = [\"a:389\"]\nstart_tls = true\nanonymous_bind = true\nuser_search_base_dn = \"dc=x\"\n\n[[ldap]]\nname = \"corp\"\nserver_address = [\"b:389\"]\nstart_tls = true\nanonymous_bind = true\nuser_search_base_dn = \"dc=x\"\n",
    ":9:8: duplicate ldap name \"corp\" (already used on line 2)"
)]
#[case::ldap_bad_attribute(
    "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nanonymous_bind = true\nuser_search_base_dn = \"dc=x\"\nusername_attribute = \"u id\"\n",
    ":6:22: username_attribute \"u id\" is not an LDAP attribute or class name"
)]
#[case::ldap_bad_member_attribute(
    "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nanonymous_bind = true\nuser_search_base_dn = \"dc=x\"\ngroup_member_attribute = \"members\"\n",
    ":6:26: group_member_attribute \"members\" is not one of member, uniqueMember, memberUid (leave it out to match any of the three)"
)]
#[case::ldap_whitelist_entry_not_a_dn(
    "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nanonymous_bind = true\nuser_search_base_dn = \"dc=x\"\nwhitelisted_login_groups = [\"CN=ok,DC=x\", \"rstudio-users\"]\n",
    ":6:43: whitelisted_login_groups entry \"rstudio-users\" is not a DN: write the group's full DN"
)]
#[case::ldap_whitelist_entry_half_a_dn(
    "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nanonymous_bind = true\nuser_search_base_dn = \"dc=x\"\nwhitelisted_login_groups = [\"CN=x,rstudio\"]\n",
    ":6:29: whitelisted_login_groups entry \"CN=x,rstudio\" is not a DN"
)]
#[case::ldap_bad_email_attribute(
    "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nanonymous_bind = true\nuser_search_base_dn = \"dc=x\"\nuser_email_attribute = [\"mail\", \"user principal\"]\n",
    ":6:24: user_email_attribute must be an attribute name or a list of them (such as [\"mail\", \"userPrincipalName\"]); \"user principal\" is not an LDAP attribute name"
)]
#[case::ldap_empty_email_attributes(
    "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nanonymous_bind = true\nuser_search_base_dn = \"dc=x\"\nuser_email_attribute = []\n",
    ":6:24: user_email_attribute must name at least one attribute"
)]
#[case::ldap_bad_nested_groups(
    "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nanonymous_bind = true\nuser_search_base_dn = \"dc=x\"\nnested_groups = \"yes\"\n",
    ":6:17: nested_groups must be \"auto\", true or false, found \"yes\""
)]
#[case::proxy_missing_key(
    "[proxy]\nmax_clock_skew = 60\n",
    ":1:1: missing required key `hmac_key_file` in [proxy]"
)]
#[case::proxy_missing_key_file(
    "[proxy]\nhmac_key_file = \"/nonexistent\"\nmax_clock_skew = 0\n",
    ":2:17: cannot read /nonexistent"
)]
fn bad_configs_are_located(#[case] text: &str, #[case] want: &str) {
    let f = Fixture::new();
    let errors = f.errors(text);
    let want = format!("{{dir}}/accountmap.toml{want}");
    assert!(
        errors.iter().any(|e| e.starts_with(&want)),
        "want {want:?}\ngot {errors:#?}"
    );
}

#[test]
fn several_errors_are_reported_together_in_file_order() {
    let f = Fixture::new();
    let errors = f.errors(
        "[daemon]\nbackend_timeout = 0\ncache_ttl = -3\n[access]\nminimum_uid = \"x\"\n[proxy]\nmax_clock_skew = 0\n",
    );
    let positions: Vec<&str> = errors
        .iter()
        .map(|e| e.split(": ").next().unwrap_or(""))
        .collect();
    assert_eq!(
        positions,
        [
            "{dir}/accountmap.toml:2:19",
            "{dir}/accountmap.toml:3:13",
            "{dir}/accountmap.toml:5:15",
            "{dir}/accountmap.toml:6:1",
            "{dir}/accountmap.toml:7:18",
        ],
        "{errors:#?}"
    );
}

#[test]
fn a_missing_main_file_is_one_file_error() {
    let f = Fixture::new();
    let err = load(&f.path("nope.toml")).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: cannot read: No such file or directory (os error 2)",
            f.path("nope.toml").display()
        )
    );
}

#[test]
fn a_directory_is_not_a_config_file() {
    let f = Fixture::new();
    fs::create_dir(f.path("d.toml")).unwrap();
    let err = load(&f.path("d.toml")).unwrap_err();
    assert!(
        err.to_string().ends_with("d.toml: not a regular file"),
        "{err}"
    );
}

#[test]
fn column_is_counted_in_characters() {
    let f = Fixture::new();
    let errors = f.errors("# é€\n[access]\nrequired_groups = [\"é\", \"\"]\n");
    assert!(
        errors[0]
            .starts_with("{dir}/accountmap.toml:3:25: required_groups entry must not be empty"),
        "{errors:?}"
    );
}

#[test]
fn server_tls_insecure_is_accepted_with_a_loud_warning() {
    let f = Fixture::new();
    let c = f.load(
        "[[ldap]]\nname = \"corp\"\nserver_address = [\"a:636\"]\ntls = true\nserver_tls_insecure = true\nanonymous_bind = true\nuser_search_base_dn = \"dc=x\"\n",
    );
    assert!(c.ldap[0].server_tls_insecure);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("accountmap.toml:5:23: server_tls_insecure = true disables certificate checks for ldap \"corp\""),
        "{:?}",
        c.warnings
    );
}

#[rstest]
#[case::absent("", None)]
#[case::member_uid(
    "group_member_attribute = \"memberUid\"\n",
    Some(MemberAttribute::MemberUid)
)]
#[case::any_case("group_member_attribute = \"MEMBER\"\n", Some(MemberAttribute::Member))]
#[case::unique_member(
    "group_member_attribute = \"uniquemember\"\n",
    Some(MemberAttribute::UniqueMember)
)]
fn group_member_attribute_names_one_attribute_in_any_case(
    #[case] line: &str,
    #[case] expected: Option<MemberAttribute>,
) {
    let f = Fixture::new();
    let c = f.load(&format!(
        "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nanonymous_bind = true\nuser_search_base_dn = \"dc=x\"\n{line}"
    ));
    assert_eq!(c.ldap[0].group_member_attribute, expected);
}

#[test]
fn plain_ldap_is_accepted_with_a_warning() {
    let f = Fixture::new();
    let c = f.load(
        "[[ldap]]\nserver_address = [\"a:389\"]\nanonymous_bind = true\nuser_search_base_dn = \"dc=x\"\n",
    );
    assert!(
        c.warnings.len() == 1
            && c.warnings[0].contains(":1:1: ldap \"ldap1\" uses neither tls nor start_tls"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn neither_bind_dn_nor_anonymous_bind_is_single_bind_with_a_warning() {
    let f = Fixture::new();
    let c = f.load(
        "[[ldap]]\nname = \"corp\"\nserver_address = [\"a:389\"]\nstart_tls = true\nuser_search_base_dn = \"ou=People,dc=x\"\n",
    );
    let l = &c.ldap[0];
    assert!(l.single_bind() && l.bind_dn.is_none() && !l.anonymous_bind);
    assert!(l
        .bind_mode()
        .starts_with("single bind as uid=<account>,ou=People,dc=x"));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains(":1:1: ldap \"corp\" uses single bind")
            && c.warnings[0].contains("uid=<account>,ou=People,dc=x")
            && c.warnings[0].contains("step 5"),
        "{:?}",
        c.warnings
    );
    // the other two modes are not single bind
    let c = f.load(
        "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nanonymous_bind = true\nuser_search_base_dn = \"dc=x\"\n",
    );
    assert!(!c.ldap[0].single_bind() && c.warnings.is_empty());
    assert_eq!(c.ldap[0].bind_mode(), "anonymous bind");
    // anonymous_bind = false says nothing either: single bind too
    let c = f.load(
        "[[ldap]]\nserver_address = [\"a:389\"]\nstart_tls = true\nanonymous_bind = false\nuser_search_base_dn = \"dc=x\"\n",
    );
    assert!(c.ldap[0].single_bind());
}

#[test]
fn oidc_without_restrictions_warns() {
    let f = Fixture::new();
    let c = f.load("[oidc]\nclient_id = \"x\"\n");
    assert!(
        c.warnings.len() == 1
            && c.warnings[0]
                .contains(":1:1: [oidc] sets neither allowed_domains nor allowed_emails"),
        "{:?}",
        c.warnings
    );
}

#[rstest]
#[case::group_readable(0o640, "{dir}/proxy-hmac-key has mode 0640; secrets must be 0600 or stricter: chmod 600 {dir}/proxy-hmac-key")]
#[case::world_readable(0o644, "{dir}/proxy-hmac-key has mode 0644; secrets must be 0600 or stricter: chmod 600 {dir}/proxy-hmac-key")]
// Writable by others: the trust rule (config::trust) refuses it first.
#[case::group_writable(0o620, "{dir}/proxy-hmac-key (the secret file) has mode 0620: group or others can write it, so they could change what accountmapd trusts: chmod 600 {dir}/proxy-hmac-key")]
fn too_open_secret_files_are_refused_with_the_fix(#[case] mode: u32, #[case] message: &str) {
    let f = Fixture::new();
    f.secret("proxy-hmac-key", "key\n", mode);
    let errors = f.errors("[proxy]\nhmac_key_file = \"{dir}/proxy-hmac-key\"\n");
    assert_eq!(errors, [format!("{{dir}}/accountmap.toml:2:17: {message}")]);
}

#[test]
fn every_secret_file_is_mode_checked() {
    let f = Fixture::new();
    for name in ["oidc", "bind", "client.key"] {
        f.secret(name, "x", 0o604);
    }
    f.write("client.pem", "CERT");
    let errors = f.errors(
        "[oidc]\nclient_id = \"x\"\nclient_secret_file = \"{dir}/oidc\"\nallowed_emails = [\"a@b.c\"]\n[[ldap]]\nserver_address = [\"a:1\"]\ntls = true\ntls_client_certificate = \"{dir}/client.pem\"\ntls_client_key = \"{dir}/client.key\"\nbind_dn = \"cn=x\"\nbind_password_file = \"{dir}/bind\"\nuser_search_base_dn = \"dc=x\"\n",
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
    for (e, (pos, name)) in errors.iter().zip([
        (":3:22:", "oidc"),
        (":9:18:", "client.key"),
        (":11:22:", "bind"),
    ]) {
        assert!(
            e.contains(pos) && e.contains(&format!("chmod 600 {{dir}}/{name}")),
            "{e}"
        );
    }
}

#[test]
fn empty_secrets_are_refused() {
    let f = Fixture::new();
    f.secret("hmac", "\n", 0o600);
    let errors = f.errors("[proxy]\nhmac_key_file = \"{dir}/hmac\"\n");
    assert!(
        errors[0].contains(":2:17: {dir}/hmac is empty; write a random key"),
        "{errors:?}"
    );
}

#[test]
fn a_secret_that_is_a_directory_is_refused() {
    let f = Fixture::new();
    fs::create_dir(f.path("hmac")).unwrap();
    let errors = f.errors("[proxy]\nhmac_key_file = \"{dir}/hmac\"\n");
    assert!(
        errors[0].ends_with(":2:17: {dir}/hmac is not a regular file"),
        "{errors:?}"
    );
}

#[test]
fn symlinks_to_secrets_are_followed_and_the_target_is_checked() {
    let f = Fixture::new();
    let good = f.secret("real-key", "key\n", 0o600);
    symlink(&good, f.path("link-key")).unwrap();
    let c = f.load("[proxy]\nhmac_key_file = \"{dir}/link-key\"\n");
    assert_eq!(c.proxy.unwrap().hmac_key.expose(), b"key");

    let open = f.secret("open-key", "key\n", 0o644);
    symlink(&open, f.path("link-open")).unwrap();
    let errors = f.errors("[proxy]\nhmac_key_file = \"{dir}/link-open\"\n");
    assert!(
        errors[0].contains("{dir}/link-open has mode 0644; secrets must be 0600 or stricter"),
        "{errors:?}"
    );

    symlink(f.path("gone"), f.path("dangling")).unwrap();
    let errors = f.errors("[proxy]\nhmac_key_file = \"{dir}/dangling\"\n");
    assert!(
        errors[0].contains("cannot read {dir}/dangling: No such file"),
        "{errors:?}"
    );
}

#[test]
fn drop_ins_override_key_by_key_in_name_order() {
    let f = Fixture::new();
    f.secret("hmac1", "one\n", 0o600);
    f.secret("hmac2", "two\n", 0o600);
    let main = f.config(
        "[daemon]\ncache_ttl = 100\nbackend_timeout = 7\n[access]\nrequired_groups = [\"a\", \"b\"]\n[oidc]\nclient_id = \"main\"\nallowed_domains = [\"x.org\"]\n[[ldap]]\nname = \"one\"\nserver_address = [\"a:1\"]\ntls = true\nanonymous_bind = true\nuser_search_base_dn = \"dc=a\"\n[proxy]\nhmac_key_file = \"{dir}/hmac1\"\nmax_clock_skew = 10\n",
    );
    f.write(
        "conf.d/20-later.toml",
        "[daemon]\ncache_ttl = 20\n[oidc]\nclient_id = \"later\"\n",
    );
    f.write(
        "conf.d/10-first.toml",
        "[daemon]\ncache_ttl = 10\n[access]\nrequired_groups = [\"c\"]\n[[ldap]]\nname = \"two\"\nserver_address = [\"b:1\"]\ntls = true\nanonymous_bind = true\nuser_search_base_dn = \"dc=b\"\n[proxy]\nhmac_key_file = \"{dir}/hmac2\"\n",
    );
    f.write("conf.d/30-ignored.conf", "this is not toml");
    f.write("conf.d/.hidden.toml", "this is not toml");
    let c = load(&main).unwrap();
    assert_eq!(
        c.files,
        [
            main,
            f.path("conf.d/10-first.toml"),
            f.path("conf.d/20-later.toml")
        ]
    );
    assert_eq!(c.daemon.cache_ttl, Duration::from_secs(20));
    assert_eq!(c.daemon.backend_timeout, Duration::from_secs(7));
    assert_eq!(
        c.access.required_groups,
        ["c"],
        "lists are replaced, not extended"
    );
    let o = c.oidc.unwrap();
    assert_eq!(o.client_id, "later");
    assert_eq!(o.allowed_domains, ["x.org"], "[oidc] is merged key by key");
    assert_eq!(
        c.ldap.len(),
        1,
        "a later [[ldap]] list replaces the whole list"
    );
    assert_eq!(c.ldap[0].name, "two");
    let p = c.proxy.unwrap();
    assert_eq!(p.hmac_key.expose(), b"two");
    assert_eq!(
        p.max_clock_skew,
        Duration::from_secs(10),
        "[proxy] is merged key by key"
    );
}

#[test]
fn errors_name_the_drop_in_they_come_from() {
    let f = Fixture::new();
    let main = f.config("[oidc]\nallowed_domains = [\"x.org\"]\n");
    f.write(
        "conf.d/10-id.toml",
        "[oidc]\nclient_id = \"x\"\nca_file = \"rel.pem\"\n",
    );
    f.write("conf.d/20-bad.toml", "[daemon]\nfoo = 1\n");
    let err = load(&main).unwrap_err().to_string();
    let dir = f.dir.path().display().to_string();
    assert_eq!(
        err.replace(&dir, "{dir}"),
        "{dir}/conf.d/10-id.toml:3:11: \"rel.pem\" is a relative path; write an absolute path\n\
         {dir}/conf.d/20-bad.toml:2:1: unknown field `foo`, expected one of `socket`, `cache_ttl`, `negative_cache_ttl`, `backend_timeout`, `failure_budget`, `failure_refill`"
    );
}

#[test]
fn missing_keys_are_not_claimed_when_another_file_failed() {
    let f = Fixture::new();
    let main = f.config("[oidc]\nallowed_domains = [\"x.org\"]\n");
    f.write("conf.d/10-id.toml", "[oidc]\nclient_id = \"x\"\nbroken");
    let err = load(&main).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert!(err.0[0].file.ends_with("conf.d/10-id.toml"), "{err}");
}

#[test]
fn accounts_file_errors_point_into_the_accounts_file() {
    let f = Fixture::new();
    let accounts = f.write("accounts", "# ok\nbroken line\n");
    let path = f.config("[mapping]\naccounts_file = \"{dir}/accounts\"\n");
    let err = load(&path).unwrap_err();
    assert_eq!(
        err.0,
        [ConfigError {
            file: accounts,
            line: Some(2),
            column: Some(1),
            message: "expected external=local (this line has no '='; its text is not shown, the file may hold secrets)".into(),
        }]
    );
}

#[test]
fn config_error_display() {
    let e = ConfigError {
        file: PathBuf::from("/etc/a.toml"),
        line: Some(3),
        column: Some(7),
        message: "bad".into(),
    };
    assert_eq!(e.to_string(), "/etc/a.toml:3:7: bad");
    assert_eq!(
        ConfigError::file(Path::new("/etc/a.toml"), "gone\nreally").to_string(),
        "/etc/a.toml: gone; really"
    );
}

#[rstest]
#[case("ldap.company.com:389", true)]
#[case("10.0.0.1:636", true)]
#[case("[2001:db8::1]:636", true)]
#[case("ldap.company.com", false)]
#[case("ldap.company.com:0", false)]
#[case("ldap.company.com:99999", false)]
#[case(":389", false)]
#[case("2001:db8::1:636", false)]
#[case("[::1]", false)]
#[case("ldap://a:389", false)]
fn host_port(#[case] s: &str, #[case] ok: bool) {
    assert_eq!(check_host_port(s).is_ok(), ok, "{s}");
}

#[test]
fn default_path_honours_the_environment_name() {
    // The variable is not set in tests (changing it would race other tests): the default.
    if std::env::var_os(CONFIG_ENV).is_none() {
        assert_eq!(default_path(), PathBuf::from(DEFAULT_CONFIG));
    }
}

#[test]
fn secret_debug_is_redacted() {
    let s = Secret::new(b"pw".to_vec());
    assert_eq!(format!("{s:?}"), "<redacted>");
    assert_eq!(s.clone().expose(), b"pw");
}

/// Issue 14, finding 5, at the level of `load`: each file the config trusts is held to the
/// ownership rule (config::trust), with the file at fault, what was found and the fix; a bad
/// drop-in does not hide the errors of the others.
#[rstest]
#[case::group_writable_main("accountmap.toml", 0o664, "{dir}/accountmap.toml: {dir}/accountmap.toml (the config file) has mode 0664: group or others can write it, so they could change what accountmapd trusts: chmod go-w {dir}/accountmap.toml")]
#[case::group_writable_drop_in("conf.d/50-x.toml", 0o664, "{dir}/conf.d/50-x.toml: {dir}/conf.d/50-x.toml (the config file) has mode 0664: group or others can write it, so they could change what accountmapd trusts: chmod go-w {dir}/conf.d/50-x.toml")]
#[case::world_writable_accounts("accounts", 0o666, "{dir}/accounts: {dir}/accounts (the accounts file) has mode 0666: group or others can write it, so they could change what accountmapd trusts: chmod go-w {dir}/accounts")]
#[case::key_in_a_writable_directory("keys", 0o777, "{dir}/accountmap.toml:4:17: {dir}/keys (the directory of {dir}/keys/proxy-hmac-key) has mode 0777: group or others can write it, so they could change what accountmapd trusts: chmod go-w {dir}/keys")]
fn files_others_can_write_are_refused(#[case] name: &str, #[case] mode: u32, #[case] want: &str) {
    let f = Fixture::new();
    f.write("accounts", "a@x.org = alice\n");
    f.write("conf.d/50-x.toml", "[access]\ndenied_users = []\n");
    f.secret("keys/proxy-hmac-key", "k3y\n", 0o600);
    let main = f.config(
        "[mapping]\naccounts_file = \"{dir}/accounts\"\n[proxy]\nhmac_key_file = \"{dir}/keys/proxy-hmac-key\"\n",
    );
    assert!(load(&main).is_ok(), "the files as written pass");
    fs::set_permissions(f.path(name), fs::Permissions::from_mode(mode)).unwrap();
    let dir = f.dir.path().display().to_string();
    let errors: Vec<String> = match load(&main) {
        Ok(_) => panic!("{name} with mode {mode:o} was accepted"),
        Err(e) => {
            e.0.iter()
                .map(|e| e.to_string().replace(&dir, "{dir}"))
                .collect()
        }
    };
    assert_eq!(errors, [want.to_string()]);
}

/// The owner rule, with the trusted owners injected: as root the key is given to another
/// uid; as a normal user this process's own uid is left out of the trusted set.
#[test]
fn a_key_of_an_untrusted_owner_is_refused_at_its_line() {
    let f = Fixture::new();
    let key = f.secret("proxy-hmac-key", "k3y\n", 0o600);
    let main = f.config("[proxy]\nhmac_key_file = \"{dir}/proxy-hmac-key\"\n");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let trust = if root {
        std::os::unix::fs::chown(&key, Some(65534), None).unwrap();
        trust::Trust::process()
    } else {
        trust::Trust::uids(&[0])
    };
    let err = load_with(&main, &trust).unwrap_err().to_string();
    assert!(err.contains("is owned by uid"), "{err}");
    assert!(err.contains("chown root:root"), "{err}");
    if root {
        assert!(
            err.starts_with(&format!(
                "{}:2:17: {} (the secret file) is owned by uid 65534",
                main.display(),
                key.display()
            )),
            "{err}"
        );
    }
}
