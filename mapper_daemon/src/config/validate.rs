//! Validation: the parsed files, section by section, into a [`Config`]. Every error is collected
//! (none stops the others), and accepted but risky settings become warnings.

use super::files::{open_regular, read_secret, SecretUse};
use super::raw::{access, daemon, gate, mapping, offset_in_literal, oidc, pick, proxy};
use super::raw::{List, RawLdap};
use super::raw::{Source, Val};
use super::trust::Trust;
use super::{AccessConfig, Config, ConfigError, ConfigErrors, DaemonConfig};
use super::{GateConfig, ProxyConfig};
use super::{LdapConfig, MappingConfig, MemberAttribute, MinimumUid, NestedGroups, OidcConfig};
use super::{Secret, GOOGLE_DISCOVERY};
use crate::identity::rewrite::RewriteRule;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Upper bounds keep every duration far from `Instant` overflow.
const MAX_CACHE_TTL: i64 = 365 * 24 * 3600;
const MAX_BACKEND_TIMEOUT: i64 = 3600;
/// A budget this large no longer brakes anything worth having a brake for.
const MAX_FAILURE_BUDGET: u32 = 1000;
const MAX_CLOCK_SKEW: i64 = 24 * 3600;

/// Parses and validates the texts of `files` in order (the main file first, then drop-ins),
/// adding to the `errors` found while reading them.
pub(super) fn all(
    files: Vec<PathBuf>,
    texts: Vec<(PathBuf, String)>,
    errors: Vec<ConfigError>,
    trust: &Trust,
) -> Result<Config, ConfigErrors> {
    let mut errors = errors;
    let mut sources = Vec::new();
    for (path, text) in texts {
        match Source::parse(path, text) {
            Ok(source) => sources.push(source),
            Err(e) => errors.push(e),
        }
    }

    // A key that seems missing may sit in a file that did not parse: say so only when all did.
    let complete = errors.is_empty();
    let mut ctx = Ctx {
        errors,
        warnings: Vec::new(),
        complete,
        trust: trust.clone(),
    };
    let daemon = ctx.daemon(&sources);
    let access = ctx.access(&sources);
    let mapping = ctx.mapping(&sources);
    let oidc = ctx.oidc(&sources);
    let ldap = ctx.ldap(&sources);
    let proxy = ctx.proxy(&sources);
    let gate = ctx.gate(&sources);

    if !ctx.errors.is_empty() {
        let order = |e: &ConfigError| {
            (
                files
                    .iter()
                    .position(|f| *f == e.file)
                    .unwrap_or(usize::MAX),
                e.line.unwrap_or(0),
                e.column.unwrap_or(0),
            )
        };
        ctx.errors.sort_by_key(order);
        return Err(ConfigErrors(ctx.errors));
    }
    Ok(Config {
        files,
        warnings: ctx.warnings,
        daemon,
        access,
        mapping,
        oidc,
        ldap,
        proxy,
        gate,
    })
}

/// What the checks have found so far.
struct Ctx {
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
    /// Every file parsed: a missing required key is really missing.
    complete: bool,
    /// Who may own the files the config names ([`super::trust`]).
    trust: Trust,
}
impl Ctx {
    fn err<T>(&mut self, v: Val<'_, T>, message: impl AsRef<str>) {
        self.errors.push(v.located(message.as_ref()));
    }

    fn warn<T>(&mut self, v: Val<'_, T>, message: impl AsRef<str>) {
        let e = v.located(message.as_ref());
        self.warnings.push(e.to_string());
    }

    fn missing<T>(&mut self, table: Val<'_, T>, key: &str, section: &str) {
        if self.complete {
            self.err(table, format!("missing required key `{key}` in {section}"));
        }
    }

    fn absolute(&mut self, v: Val<'_, String>) -> Option<PathBuf> {
        let p = PathBuf::from(v.get());
        if p.is_absolute() {
            Some(p)
        } else {
            self.err(
                v,
                format!("{:?} is a relative path; write an absolute path", v.get()),
            );
            None
        }
    }

    /// An absolute path to an existing, readable regular file (any mode).
    fn readable(&mut self, v: Val<'_, String>) -> Option<PathBuf> {
        let p = self.absolute(v)?;
        match open_regular(&p) {
            Ok(_) => Some(p),
            Err(e) => {
                self.err(v, e);
                None
            }
        }
    }

    /// An absolute path to a secret file: readable, regular, mode 0600 or stricter.
    fn secret(&mut self, v: Val<'_, String>, usage: SecretUse) -> Option<(PathBuf, Secret)> {
        let p = self.absolute(v)?;
        match read_secret(&p, usage, &self.trust) {
            Ok(s) => Some((p, s)),
            Err(e) => {
                self.err(v, e);
                None
            }
        }
    }

    fn seconds(
        &mut self,
        v: Option<Val<'_, i64>>,
        key: &str,
        default: u64,
        min: i64,
        max: i64,
    ) -> Duration {
        let Some(v) = v else {
            return Duration::from_secs(default);
        };
        let n = *v.get();
        if n < min {
            if min == 0 {
                self.err(
                    v,
                    format!(
                        "{key} must be 0 (no caching) or a positive number of seconds, found {n}"
                    ),
                );
            } else {
                self.err(
                    v,
                    format!("{key} must be at least {min} second(s), found {n}"),
                );
            }
            return Duration::from_secs(default);
        }
        if n > max {
            self.err(v, format!("{key} must be at most {max} seconds, found {n}"));
            return Duration::from_secs(default);
        }
        Duration::from_secs(u64::try_from(n).unwrap_or(default))
    }

    /// A non-empty string without NUL or line breaks.
    fn word(&mut self, v: Val<'_, String>, key: &str) -> String {
        let s = v.get();
        if s.trim().is_empty() {
            self.err(v, format!("{key} must not be empty"));
        } else if s.contains(['\0', '\n', '\r']) {
            self.err(v, format!("{key} {s:?} contains a NUL or line break"));
        }
        s.clone()
    }

    fn words(&mut self, v: Option<Val<'_, List>>, key: &str) -> Vec<String> {
        let Some(v) = v else {
            return Vec::new();
        };
        v.items()
            .map(|item| self.word(item, &format!("{key} entry")))
            .collect()
    }

    // --- [daemon] ---

    fn daemon(&mut self, s: &[Source]) -> DaemonConfig {
        let mut d = DaemonConfig::default();
        if let Some(v) = pick(s, |f| daemon(f)?.socket.as_ref()) {
            if let Some(p) = self.absolute(v) {
                d.socket = p;
            }
        }
        let cache_ttl = pick(s, |f| daemon(f)?.cache_ttl.as_ref());
        d.cache_ttl = self.seconds(cache_ttl, "cache_ttl", 300, 0, MAX_CACHE_TTL);
        let neg = pick(s, |f| daemon(f)?.negative_cache_ttl.as_ref());
        d.negative_cache_ttl = self.seconds(neg, "negative_cache_ttl", 30, 0, MAX_CACHE_TTL);
        let timeout = pick(s, |f| daemon(f)?.backend_timeout.as_ref());
        d.backend_timeout = self.seconds(timeout, "backend_timeout", 5, 1, MAX_BACKEND_TIMEOUT);
        let refill = pick(s, |f| daemon(f)?.failure_refill.as_ref());
        d.failure_refill = self.seconds(refill, "failure_refill", 2, 1, 3600);
        if let Some(v) = pick(s, |f| daemon(f)?.failure_budget.as_ref()) {
            match u32::try_from(*v.get()) {
                Ok(n) if (1..=MAX_FAILURE_BUDGET).contains(&n) => d.failure_budget = n,
                _ => self.err(
                    v,
                    format!(
                        "failure_budget must be a number of failures from 1 to {MAX_FAILURE_BUDGET}, found {}",
                        v.get()
                    ),
                ),
            }
        }
        d
    }

    // --- [access] ---

    fn access(&mut self, s: &[Source]) -> AccessConfig {
        let mut a = AccessConfig::default();
        if let Some(v) = pick(s, |f| access(f)?.minimum_uid.as_ref()) {
            match v.get() {
                toml::Value::String(s) if s == "auto" => a.minimum_uid = MinimumUid::Auto,
                toml::Value::Integer(n) => match u32::try_from(*n) {
                    Ok(uid) if uid != u32::MAX => a.minimum_uid = MinimumUid::Fixed(uid),
                    _ => self.err(
                        v,
                        format!("minimum_uid {n} is not a uid (0 to {})", u32::MAX - 1),
                    ),
                },
                toml::Value::String(s) => self.err(
                    v,
                    format!("minimum_uid must be \"auto\" or a uid number, found {s:?}"),
                ),
                other => self.err(
                    v,
                    format!(
                        "minimum_uid must be \"auto\" or a uid number, found a {}",
                        other.type_str()
                    ),
                ),
            }
        }
        let groups = pick(s, |f| access(f)?.required_groups.as_ref());
        a.required_groups = self.words(groups, "required_groups");
        let denied = pick(s, |f| access(f)?.denied_users.as_ref());
        a.denied_users = self.words(denied, "denied_users");
        a
    }

    // --- [mapping] ---

    fn mapping(&mut self, s: &[Source]) -> MappingConfig {
        let mut m = MappingConfig::default();
        if let Some(v) = pick(s, |f| mapping(f)?.lowercase.as_ref()) {
            m.lowercase = *v.get();
        }
        if let Some(v) = pick(s, |f| mapping(f)?.display_separator.as_ref()) {
            let sep = v.get();
            if sep.is_empty() {
                m.display_separator = None;
            } else if sep.contains(['\0', '\n', '\r']) {
                self.err(v, "display_separator contains a NUL or line break");
            } else {
                m.display_separator = Some(sep.clone());
            }
        }
        if let Some(v) = pick(s, |f| mapping(f)?.accounts_file.as_ref()) {
            if let Some(p) = self.absolute(v) {
                self.accounts_file(v, &p);
                m.accounts_file = Some(p);
            }
        }
        if let Some(list) = pick(s, |f| mapping(f)?.rewrite.as_ref()) {
            for (i, item) in list.items().enumerate() {
                // Names are lower-cased before the rules run, so the rules match without
                // regard to case: SPEC's own '^UID-([a-z]+)$ $1' must match "UID-jsmith".
                match RewriteRule::parse_with(item.get(), m.lowercase) {
                    Ok(rule) => {
                        m.rewrite.push(rule);
                    }
                    Err(e) => {
                        let text = e
                            .message
                            .strip_prefix("rewrite rule ")
                            .unwrap_or(&e.message);
                        let mut err = item.located(&format!("rewrite rule {}: {text}", i + 1));
                        if let (Some(col), Some(shift)) =
                            (err.column, offset_in_literal(item, e.offset))
                        {
                            err.column = Some(col + shift);
                        }
                        self.errors.push(err);
                    }
                }
            }
        }
        m
    }

    fn accounts_file(&mut self, v: Val<'_, String>, p: &Path) {
        match fs::metadata(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.warn(
                v,
                format!(
                    "accounts_file {} does not exist yet; no accounts are mapped until it is created",
                    p.display()
                ),
            ),
            Err(e) => self.err(v, format!("cannot read {}: {e}", p.display())),
            Ok(meta) if !meta.is_file() => {
                self.err(v, format!("{} is not a regular file", p.display()))
            }
            Ok(_) => {
                if let Err(e) = crate::identity::accounts_file::load_with(p, &self.trust) {
                    self.errors.push(accounts_error(p, &e));
                }
            }
        }
    }

    // --- [oidc] ---

    fn oidc(&mut self, s: &[Source]) -> Option<OidcConfig> {
        let table = pick(s, |f| f.oidc.as_ref())?;
        let mut o = OidcConfig {
            discovery_endpoint: GOOGLE_DISCOVERY.to_string(),
            client_id: String::new(),
            client_secret_file: None,
            client_secret: None,
            allowed_domains: Vec::new(),
            allowed_emails: Vec::new(),
            ca_file: None,
            accept_access_tokens: false,
        };
        if let Some(v) = pick(s, |f| oidc(f)?.discovery_endpoint.as_ref()) {
            if is_acceptable_endpoint(v.get()) {
                o.discovery_endpoint = v.get().clone();
            } else {
                self.err(
                    v,
                    format!(
                        "discovery_endpoint must be an https:// URL (http:// only for localhost), found {:?}",
                        v.get()
                    ),
                );
            }
        }
        match pick(s, |f| oidc(f)?.client_id.as_ref()) {
            Some(v) => o.client_id = self.word(v, "client_id"),
            None => self.missing(table, "client_id", "[oidc]"),
        }
        if let Some(v) = pick(s, |f| oidc(f)?.client_secret_file.as_ref()) {
            if let Some((p, secret)) = self.secret(v, SecretUse::Text) {
                o.client_secret_file = Some(p);
                o.client_secret = Some(secret);
            }
        }
        if let Some(list) = pick(s, |f| oidc(f)?.allowed_domains.as_ref()) {
            for item in list.items() {
                let d = item.get().trim().to_lowercase();
                if d.contains('@') {
                    self.err(
                        item,
                        format!(
                            "allowed_domains entry {:?} contains @; write the domain alone (e.g. \"company.com\") or put the address in allowed_emails",
                            item.get()
                        ),
                    );
                } else if d.is_empty() || d.contains(char::is_whitespace) || !d.contains('.') {
                    self.err(
                        item,
                        format!(
                            "allowed_domains entry {:?} is not a domain name",
                            item.get()
                        ),
                    );
                } else {
                    o.allowed_domains.push(d);
                }
            }
        }
        if let Some(list) = pick(s, |f| oidc(f)?.allowed_emails.as_ref()) {
            for item in list.items() {
                let e = item.get().trim().to_lowercase();
                let ok = matches!(e.split_once('@'), Some((user, domain))
                    if !user.is_empty() && !domain.is_empty() && !domain.contains('@'))
                    && !e.contains(char::is_whitespace);
                if ok {
                    o.allowed_emails.push(e);
                } else {
                    self.err(
                        item,
                        format!(
                            "allowed_emails entry {:?} is not an email address",
                            item.get()
                        ),
                    );
                }
            }
        }
        if let Some(v) = pick(s, |f| oidc(f)?.ca_file.as_ref()) {
            o.ca_file = self.readable(v);
        }
        if let Some(v) = pick(s, |f| oidc(f)?.accept_access_tokens.as_ref()) {
            o.accept_access_tokens = *v.get();
        }
        if o.allowed_domains.is_empty()
            && o.allowed_emails.is_empty()
            && pick(s, |f| oidc(f)?.allowed_domains.as_ref()).is_none()
            && pick(s, |f| oidc(f)?.allowed_emails.as_ref()).is_none()
        {
            self.warn(
                table,
                "[oidc] sets neither allowed_domains nor allowed_emails: any account of the identity provider whose name maps to a local account may sign in",
            );
        }
        Some(o)
    }

    // --- [[ldap]] ---

    fn ldap(&mut self, s: &[Source]) -> Vec<LdapConfig> {
        let Some(list) = pick(s, |f| f.ldap.as_ref()) else {
            return Vec::new();
        };
        let mut out: Vec<LdapConfig> = Vec::new();
        let mut names: Vec<(String, usize)> = Vec::new();
        for (i, e) in list.items().enumerate() {
            let cfg = self.ldap_entry(e, i);
            if let Some(v) = e.field(&e.get().name) {
                if let Some((_, line)) = names.iter().find(|(n, _)| *n == cfg.name) {
                    self.err(
                        v,
                        format!(
                            "duplicate ldap name {:?} (already used on line {line}); give each [[ldap]] its own name",
                            cfg.name
                        ),
                    );
                }
                names.push((cfg.name.clone(), v.line()));
            } else {
                names.push((cfg.name.clone(), e.line()));
            }
            out.push(cfg);
        }
        out
    }

    fn ldap_entry(&mut self, e: Val<'_, RawLdap>, index: usize) -> LdapConfig {
        let r = e.get();
        let name = match e.field(&r.name) {
            Some(v) => self.word(v, "name"),
            None => format!("ldap{}", index + 1),
        };
        let section = format!("[[ldap]] {name:?}");
        let mut c = ldap_defaults(r, name);
        // In this order: warnings are not sorted, they are logged as they come.
        self.ldap_servers(e, &section, &mut c);
        self.ldap_transport(e, &mut c);
        let single_bind = self.ldap_bind(e, &mut c);
        self.ldap_search(e, &section, &mut c);
        self.ldap_groups(e, &mut c);
        if single_bind {
            self.warn(
                e,
                format!(
                    "ldap {name:?} uses single bind (neither bind_dn nor anonymous_bind): a user is bound as {}=<account>,{} with the password of a verify=ldap sign-in, and its groups and whitelisted_login_groups are read with that bind; without a password (the account phase, NSS, accountmapctl resolve, identity resolution step 5) this directory is not asked at all, so it maps no email or other name to an account and its groups count only at verify=ldap sign-in",
                    c.username_attribute,
                    c.user_search_base_dn,
                    name = c.name
                ),
            );
        }
        c
    }

    /// `server_address`: one or more host:port.
    fn ldap_servers(&mut self, e: Val<'_, RawLdap>, section: &str, c: &mut LdapConfig) {
        match e.field(&e.get().server_address) {
            None => self.missing(e, "server_address", section),
            Some(list) if list.get().is_empty() => self.err(
                list,
                "server_address is empty: list at least one host:port, e.g. [\"ldap1.company.com:389\"]",
            ),
            Some(list) => {
                for item in list.items() {
                    match check_host_port(item.get()) {
                        Ok(()) => c.server_address.push(item.get().clone()),
                        Err(msg) => self.err(item, msg),
                    }
                }
            }
        }
    }

    /// LDAPS or StartTLS, the server's CA and the client certificate.
    fn ldap_transport(&mut self, e: Val<'_, RawLdap>, c: &mut LdapConfig) {
        let r = e.get();
        if c.tls && c.start_tls {
            if let Some(v) = e.field(&r.start_tls) {
                self.err(v, "choose one of tls (LDAPS) and start_tls");
            }
        }
        let encrypted = c.tls || c.start_tls;
        if let Some(v) = e.field(&r.tls_ca_certificate) {
            c.tls_ca_certificate = self.readable(v);
        }
        if let Some(v) = e.field(&r.server_tls_insecure) {
            if *v.get() {
                if r.tls_ca_certificate.is_some() {
                    self.err(
                        v,
                        "server_tls_insecure = true contradicts tls_ca_certificate (a CA turns the insecure mode off): remove one",
                    );
                } else {
                    self.warn(
                        v,
                        format!(
                            "server_tls_insecure = true disables certificate checks for ldap {name:?}: anyone on the network path can impersonate the directory and read the passwords sent to it; set tls_ca_certificate instead",
                            name = c.name
                        ),
                    );
                }
            }
        }
        if !encrypted {
            self.warn(
                e,
                format!(
                    "ldap {name:?} uses neither tls nor start_tls: bind and user passwords cross the network in clear text, and Active Directory and Samba refuse such binds altogether (\"Transport encryption required\"); set start_tls = true or tls = true",
                    name = c.name
                ),
            );
        }
        let cert = e.field(&r.tls_client_certificate);
        let key = e.field(&r.tls_client_key);
        match (cert, key) {
            (Some(v), None) => self.err(v, "tls_client_certificate needs tls_client_key"),
            (None, Some(v)) => self.err(v, "tls_client_key needs tls_client_certificate"),
            (Some(cv), Some(kv)) => {
                if !encrypted {
                    self.err(
                        cv,
                        "tls_client_certificate needs tls = true or start_tls = true",
                    );
                }
                c.tls_client_certificate = self.readable(cv);
                c.tls_client_key = self.secret(kv, SecretUse::Check).map(|(p, _)| p);
            }
            (None, None) => {}
        }
    }

    /// A service account (`bind_dn` with `bind_password_file`), `anonymous_bind`, or neither:
    /// single bind, for which `true` is returned (warned about once the search base is known).
    fn ldap_bind(&mut self, e: Val<'_, RawLdap>, c: &mut LdapConfig) -> bool {
        let r = e.get();
        let dn = e.field(&r.bind_dn);
        let pw = e.field(&r.bind_password_file);
        let anon = e.field(&r.anonymous_bind).filter(|v| *v.get());
        match (dn, pw, anon) {
            (Some(_), _, Some(a)) => {
                self.err(a, "anonymous_bind = true together with bind_dn: choose one")
            }
            (None, Some(_), Some(a)) => self.err(
                a,
                "anonymous_bind = true together with bind_password_file: choose one",
            ),
            (Some(d), None, None) => self.err(
                d,
                "bind_dn needs bind_password_file (or remove bind_dn and set anonymous_bind = true)",
            ),
            (None, Some(p), None) => self.err(p, "bind_password_file needs bind_dn"),
            // Neither: single bind.
            (None, None, None) => {}
            (Some(d), Some(p), None) => {
                c.bind_dn = Some(self.word(d, "bind_dn"));
                if let Some((path, secret)) = self.secret(p, SecretUse::Text) {
                    c.bind_password_file = Some(path);
                    c.bind_password = Some(secret);
                }
            }
            (None, None, Some(_)) => {}
        }
        dn.is_none() && pw.is_none() && anon.is_none()
    }

    /// Where users and groups are searched, and the classes and attributes that name them.
    fn ldap_search(&mut self, e: Val<'_, RawLdap>, section: &str, c: &mut LdapConfig) {
        let r = e.get();
        match e.field(&r.user_search_base_dn) {
            Some(v) => c.user_search_base_dn = self.word(v, "user_search_base_dn"),
            None => self.missing(e, "user_search_base_dn", section),
        }
        if let Some(v) = e.field(&r.group_search_base_dn) {
            c.group_search_base_dn = Some(self.word(v, "group_search_base_dn"));
        }
        if let Some(v) = e.field(&r.user_email_attribute) {
            c.user_email_attributes = self.email_attributes(v);
        }
        for (o, key) in [
            (&r.user_object_class, "user_object_class"),
            (&r.username_attribute, "username_attribute"),
            (&r.group_object_class, "group_object_class"),
            (&r.group_name_attribute, "group_name_attribute"),
        ] {
            if let Some(v) = e.field(o) {
                if !is_attribute_name(v.get()) {
                    self.err(
                        v,
                        format!("{key} {:?} is not an LDAP attribute or class name", v.get()),
                    );
                }
            }
        }
    }

    /// How groups list their members, and the groups whose members may sign in.
    fn ldap_groups(&mut self, e: Val<'_, RawLdap>, c: &mut LdapConfig) {
        let r = e.get();
        if let Some(v) = e.field(&r.group_member_attribute) {
            c.group_member_attribute = MemberAttribute::ALL
                .into_iter()
                .find(|a| a.as_str().eq_ignore_ascii_case(v.get()));
            if c.group_member_attribute.is_none() {
                self.err(
                    v,
                    format!(
                        "group_member_attribute {:?} is not one of member, uniqueMember, memberUid (leave it out to match any of the three)",
                        v.get()
                    ),
                );
            }
        }
        if let Some(list) = e.field(&r.whitelisted_login_groups) {
            for item in list.items::<String>() {
                let group = self.word(item, "whitelisted_login_groups entry");
                if !group.trim().is_empty() && !looks_like_dn(&group) {
                    // Each entry is read by its DN; a bare name makes every look-up fail.
                    self.err(
                        item,
                        format!(
                            "whitelisted_login_groups entry {group:?} is not a DN: write the group's full DN, such as \"CN={0},OU=Groups,DC=example,DC=com\" (ldapsearch -b BASE '(cn={0})' dn finds it)",
                            group.replace(['"', '\\'], "")
                        ),
                    );
                }
                c.whitelisted_login_groups.push(group);
            }
        }
        if let Some(v) = e.field(&r.nested_groups) {
            c.nested_groups = match v.get() {
                toml::Value::Boolean(true) => NestedGroups::On,
                toml::Value::Boolean(false) => NestedGroups::Off,
                toml::Value::String(s) if s == "auto" => NestedGroups::Auto,
                other => {
                    self.err(
                        v,
                        format!("nested_groups must be \"auto\", true or false, found {other}"),
                    );
                    NestedGroups::Auto
                }
            };
        }
    }

    /// `user_email_attribute`: one attribute name or a list of them.
    fn email_attributes(&mut self, v: Val<'_, toml::Value>) -> Vec<String> {
        let names: Vec<&toml::Value> = match v.get() {
            toml::Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        let mut out = Vec::new();
        for name in names {
            match name.as_str() {
                Some(n) if is_attribute_name(n) => out.push(n.to_string()),
                _ => self.err(
                    v,
                    format!(
                        "user_email_attribute must be an attribute name or a list of them (such as [\"mail\", \"userPrincipalName\"]); {name} is not an LDAP attribute name"
                    ),
                ),
            }
        }
        if out.is_empty() && !matches!(v.get(), toml::Value::Array(a) if !a.is_empty()) {
            self.err(v, "user_email_attribute must name at least one attribute");
        }
        out
    }

    // --- [gate] ---

    fn gate(&mut self, s: &[Source]) -> Option<GateConfig> {
        let table = pick(s, |f| f.gate.as_ref())?;
        let lifetime = pick(s, |f| gate(f)?.ticket_lifetime.as_ref());
        let ticket_lifetime = self.seconds(lifetime, "ticket_lifetime", 30, 1, 300);
        let callers = pick(s, |f| gate(f)?.ticket_callers.as_ref());
        let ticket_callers = self.words(callers, "ticket_callers");
        if ticket_callers.is_empty() {
            // Without a caller nobody could ask for a ticket: a [gate] section that does nothing.
            self.missing(table, "ticket_callers", "[gate]");
            return None;
        }
        let header = match pick(s, |f| gate(f)?.mode.as_ref()) {
            None => false,
            Some(v) => match v.get().as_str() {
                "oidc" => false,
                "header" => true,
                other => {
                    self.err(
                        v,
                        format!("mode must be \"oidc\" or \"header\", found {other:?}"),
                    );
                    false
                }
            },
        };
        let signed =
            !matches!(pick(s, |f| gate(f)?.require_signature.as_ref()), Some(v) if !*v.get());
        if header && signed && pick(s, |f| f.proxy.as_ref()).is_none() {
            // The signatures are checked with [proxy]'s key: without it every sign-in fails.
            if self.complete {
                self.err(
                    table,
                    "[gate] mode = \"header\" checks X-Proxy-Signature with [proxy] hmac_key_file, and there is no [proxy] section: add it, or set require_signature = false in [gate] if the proxy cannot sign",
                );
            }
        }
        Some(GateConfig {
            ticket_callers,
            ticket_lifetime,
            unsigned_header: header && !signed,
        })
    }

    // --- [proxy] ---

    fn proxy(&mut self, s: &[Source]) -> Option<ProxyConfig> {
        let table = pick(s, |f| f.proxy.as_ref())?;
        let skew = pick(s, |f| proxy(f)?.max_clock_skew.as_ref());
        let max_clock_skew = self.seconds(skew, "max_clock_skew", 60, 1, MAX_CLOCK_SKEW);
        let Some(v) = pick(s, |f| proxy(f)?.hmac_key_file.as_ref()) else {
            self.missing(table, "hmac_key_file", "[proxy]");
            return None;
        };
        let (hmac_key_file, hmac_key) = self.secret(v, SecretUse::Bytes)?;
        Some(ProxyConfig {
            hmac_key_file,
            hmac_key,
            max_clock_skew,
        })
    }
}

/// A `[[ldap]]` entry's flags and the defaults of the names it may leave out; the checks fill
/// in the rest.
fn ldap_defaults(r: &RawLdap, name: String) -> LdapConfig {
    let text = |o: &Option<Spanned<String>>, default: &str| {
        o.as_ref()
            .map_or_else(|| default.to_string(), |v| v.get_ref().clone())
    };
    let flag = |o: &Option<Spanned<bool>>| o.as_ref().is_some_and(|v| *v.get_ref());
    LdapConfig {
        name,
        server_address: Vec::new(),
        tls: flag(&r.tls),
        start_tls: flag(&r.start_tls),
        tls_ca_certificate: None,
        server_tls_insecure: flag(&r.server_tls_insecure),
        tls_client_certificate: None,
        tls_client_key: None,
        bind_dn: None,
        bind_password_file: None,
        bind_password: None,
        anonymous_bind: flag(&r.anonymous_bind),
        user_search_base_dn: String::new(),
        user_object_class: text(&r.user_object_class, "posixAccount"),
        username_attribute: text(&r.username_attribute, "uid"),
        user_email_attributes: vec!["mail".to_string()],
        group_search_base_dn: None,
        group_object_class: text(&r.group_object_class, "posixGroup"),
        group_name_attribute: text(&r.group_name_attribute, "cn"),
        group_member_attribute: None,
        whitelisted_login_groups: Vec::new(),
        nested_groups: NestedGroups::Auto,
    }
}

/// Turns `accounts_file::load`'s "FILE:LINE:COLUMN: message" back into its parts.
fn accounts_error(path: &Path, text: &str) -> ConfigError {
    let prefix = format!("{}:", path.display());
    let rest = text.strip_prefix(&prefix).unwrap_or(text);
    let located = rest.split_once(':').and_then(|(l, rest)| {
        let (c, message) = rest.split_once(':')?;
        Some((l.parse::<usize>().ok()?, c.parse::<usize>().ok()?, message))
    });
    match located {
        Some((line, column, message)) => ConfigError::at(path, (line, column), message.trim()),
        None => ConfigError::file(path, rest.trim()),
    }
}

/// https://, or http:// on loopback only (also applied to the URLs a discovery document names).
pub(crate) fn is_acceptable_endpoint(url: &str) -> bool {
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty() && !rest.contains(char::is_whitespace);
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    ["localhost", "127.0.0.1", "[::1]"].iter().any(|host| {
        rest.strip_prefix(host)
            .is_some_and(|after| after.is_empty() || after.starts_with([':', '/']))
    })
}

pub(super) fn check_host_port(s: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "server_address entry {s:?} is not host:port (e.g. \"ldap1.company.com:389\" or \"[2001:db8::1]:636\")"
        )
    };
    if s.contains("://") {
        return Err(format!(
            "server_address entry {s:?} is a URL; write host:port (e.g. \"ldap1.company.com:389\") and set tls = true for LDAPS"
        ));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':').ok_or_else(bad)?)
    } else {
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        if host.contains(':') {
            return Err(bad());
        }
        (host, port)
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// An LDAP attribute description or object class: a name (letters, digits, hyphens, options
/// after `;`) or a numeric OID.
/// `attr=value` components separated by commas (RFC 4514; escaped commas stay inside a
/// value), each attribute a name or an OID and each value non-empty. Catches a bare group name
/// written where a DN belongs; the server has the last word on the rest.
fn looks_like_dn(s: &str) -> bool {
    let mut rdns = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, ch) in s.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                rdns.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    rdns.push(&s[start..]);
    rdns.iter().all(|rdn| {
        rdn.split('+').all(|ava| match ava.split_once('=') {
            Some((attr, value)) => is_attribute_name(attr.trim()) && !value.trim().is_empty(),
            None => false,
        })
    })
}

fn is_attribute_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ';' | '.'))
}
