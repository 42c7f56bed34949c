//! Loading and validating `accountmap.toml` and its drop-ins.
//!
//! [`load`] reads the main file, then every `conf.d/*.toml` in the main file's directory, and
//! validates the result as a whole. Every problem it can find is reported at once, each as
//! `FILE:LINE:COLUMN: what is wrong` (or `FILE: what is wrong` where no position applies), so
//! that `accountmapd --check` and `accountmapctl check-config` show everything in one run.
//!
//! # Drop-ins and precedence
//!
//! * Drop-ins are the regular files `<directory of the main file>/conf.d/*.toml`, read after the
//!   main file in byte-wise order of their names (`10-ldap.toml` before `20-oidc.toml`). Files
//!   with another extension and hidden files (names starting with `.`) are ignored; a missing
//!   `conf.d` is fine.
//! * A key set in a later file replaces the value of an earlier file, key by key, in `[daemon]`,
//!   `[access]`, `[mapping]`, `[oidc]` and `[proxy]`. A list is one value: a later
//!   `required_groups` or `rewrite` replaces the earlier list, it does not extend it.
//! * `[[ldap]]` is the exception: a file that has any `[[ldap]]` entry replaces the whole list of
//!   directories of the earlier files (the entries themselves are never merged).
//! * A file that is not valid TOML (or has an unknown key or a wrong type) contributes nothing;
//!   its error is reported and the other files are still checked.
//!
//! # Paths
//!
//! Every path in the config must be absolute; a relative path is an error (no path is resolved
//! against the directory of the file or the daemon's working directory).
//!
//! # Secret files
//!
//! `oidc.client_secret_file`, `ldap.bind_password_file`, `ldap.tls_client_key` and
//! `proxy.hmac_key_file` must be readable regular files without any group or other permission
//! bit (mode 0600 or stricter). Symbolic links are followed: the checks apply to the file the
//! link leads to, which is what is read (a symlink's own mode is meaningless, and secret stores
//! such as Kubernetes mounts are made of links). The file is opened once, and its mode is checked
//! on the opened file (`fstat`), so the file checked is the file read.
//!
//! # Who may have written a file
//!
//! The main file, every drop-in, the accounts file and the secret files are also held to
//! [`trust`]'s rule (sshd's `StrictModes`): owned by root or the daemon's uid, not writable by
//! group or others, and so is every directory on the way to them, links followed one by one
//! with the directories of both the link's and the target's path checked. The walk must end at
//! the file that was opened (device and inode). The contents, less any
//! trailing newline, are kept in a [`Secret`] (the TLS client key stays on disk and is only
//! checked).
//!
//! # Parts
//!
//! * `raw`: what one file says, as serde structs that keep every value's position, and the rule
//!   that the last file setting a key wins.
//! * `files`: reading the main file, its drop-ins and the secret files, each opened once and
//!   checked on the opened file.
//! * `validate`: checking the parsed files section by section into a [`Config`], collecting
//!   every error and every warning.

use crate::identity::rewrite::RewriteRule;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod files;
mod raw;
pub mod trust;
mod validate;

#[cfg(test)]
mod tests;

pub(crate) use files::{open_regular, trusted};
pub(crate) use validate::is_acceptable_endpoint;

/// Where the config lives unless [`CONFIG_ENV`] or `--config` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/accountmap/accountmap.toml";
/// Environment variable that overrides the config path (daemon and CLI).
pub const CONFIG_ENV: &str = "ACCOUNTMAP_CONFIG";
/// Google's discovery document, used when `[oidc]` names no other.
pub const GOOGLE_DISCOVERY: &str = "https://accounts.google.com/.well-known/openid-configuration";

/// `ACCOUNTMAP_CONFIG` if set (and not empty), else [`DEFAULT_CONFIG`].
pub fn default_path() -> PathBuf {
    match std::env::var_os(CONFIG_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CONFIG),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// One problem, located in the file it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based.
    pub line: Option<usize>,
    /// 1-based, counted in characters.
    pub column: Option<usize>,
    /// One line, never a newline.
    pub message: String,
}

impl ConfigError {
    /// An error about a whole file (`FILE: message`).
    pub fn file(file: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            line: None,
            column: None,
            message: one_line(&message.into()),
        }
    }

    /// An error at a 1-based line and character column of `file`.
    fn at(file: &Path, (line, column): (usize, usize), message: &str) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            line: Some(line),
            column: Some(column),
            message: one_line(message),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file.display(), self.message),
            (Some(l), None) => write!(f, "{}:{l}: {}", self.file.display(), self.message),
            _ => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Everything wrong with a config, in file order.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

// ---------------------------------------------------------------------------------------------
// The validated config
// ---------------------------------------------------------------------------------------------

/// The bytes of a secret file. `Debug` never shows them; they are zeroed when dropped.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Zero the whole allocation, including bytes cut off by trimming. Resizing up to the
        // capacity never reallocates; black_box keeps the writes from being optimised away.
        let capacity = self.0.capacity();
        self.0.fill(0);
        self.0.resize(capacity, 0);
        self.0.fill(0);
        std::hint::black_box(&mut self.0);
    }
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Every file read, main first.
    pub files: Vec<PathBuf>,
    /// `FILE:LINE:COLUMN: …` lines for the log: accepted but risky settings.
    pub warnings: Vec<String>,
    pub daemon: DaemonConfig,
    pub access: AccessConfig,
    pub mapping: MappingConfig,
    pub oidc: Option<OidcConfig>,
    pub ldap: Vec<LdapConfig>,
    pub proxy: Option<ProxyConfig>,
    pub gate: Option<GateConfig>,
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub socket: PathBuf,
    /// 0 = no caching of positive answers.
    pub cache_ttl: Duration,
    /// 0 = no caching of "no such user".
    pub negative_cache_ttl: Duration,
    /// At least one second.
    pub backend_timeout: Duration,
    /// The brute-force brake ([`crate::server::brake`]): failures one account's budget absorbs.
    pub failure_budget: u32,
    /// ... and how long one of them takes to come back.
    pub failure_refill: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: PathBuf::from(accountmap_wire::DEFAULT_SOCKET),
            cache_ttl: Duration::from_secs(300),
            negative_cache_ttl: Duration::from_secs(30),
            backend_timeout: Duration::from_secs(5),
            failure_budget: crate::server::brake::BURST,
            failure_refill: crate::server::brake::REFILL,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinimumUid {
    /// `UID_MIN` from `/etc/login.defs`, else 1000.
    #[default]
    Auto,
    Fixed(u32),
}

#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    pub minimum_uid: MinimumUid,
    pub required_groups: Vec<String>,
    pub denied_users: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct MappingConfig {
    pub lowercase: bool,
    /// `None` when the file says `display_separator = ""`.
    pub display_separator: Option<String>,
    pub accounts_file: Option<PathBuf>,
    pub rewrite: Vec<RewriteRule>,
}

impl Default for MappingConfig {
    fn default() -> Self {
        MappingConfig {
            lowercase: true,
            display_separator: Some("/".to_string()),
            accounts_file: None,
            rewrite: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub discovery_endpoint: String,
    pub client_id: String,
    pub client_secret_file: Option<PathBuf>,
    pub client_secret: Option<Secret>,
    /// Lower-cased.
    pub allowed_domains: Vec<String>,
    /// Lower-cased.
    pub allowed_emails: Vec<String>,
    pub ca_file: Option<PathBuf>,
    /// `accept_access_tokens` (default false): whether `verify=oidc` takes access tokens,
    /// checked at the userinfo endpoint. Off, only ID tokens are accepted: an ID token's
    /// audience is checked to be `client_id`, while userinfo accepts an access token issued to
    /// any application of the provider, so any application the user signed in to could sign
    /// in as them here.
    pub accept_access_tokens: bool,
}

#[derive(Debug, Clone)]
pub struct LdapConfig {
    /// `ldap1`, `ldap2`, … (by position) when the entry names none.
    pub name: String,
    pub server_address: Vec<String>,
    pub tls: bool,
    pub start_tls: bool,
    pub tls_ca_certificate: Option<PathBuf>,
    pub server_tls_insecure: bool,
    pub tls_client_certificate: Option<PathBuf>,
    pub tls_client_key: Option<PathBuf>,
    pub bind_dn: Option<String>,
    pub bind_password_file: Option<PathBuf>,
    pub bind_password: Option<Secret>,
    pub anonymous_bind: bool,
    pub user_search_base_dn: String,
    pub user_object_class: String,
    pub username_attribute: String,
    /// The attributes an identity with `@` is searched in (`mail`, `userPrincipalName`).
    pub user_email_attributes: Vec<String>,
    pub group_search_base_dn: Option<String>,
    pub group_object_class: String,
    pub group_name_attribute: String,
    /// The one attribute group entries list their members in, when the directory uses one
    /// (`group_member_attribute`); `None`: any of `member`, `uniqueMember` and `memberUid`.
    pub group_member_attribute: Option<MemberAttribute>,
    pub whitelisted_login_groups: Vec<String>,
    /// Whether membership through nested groups counts (`nested_groups`).
    pub nested_groups: NestedGroups,
}

/// `nested_groups`: does a user count as a member of the groups its groups are in?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NestedGroups {
    /// On for Active Directory (found in the server's root DSE), off elsewhere.
    #[default]
    Auto,
    On,
    Off,
}

/// How group entries name their members (`group_member_attribute`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberAttribute {
    /// `member: <DN>` (groupOfNames, RFC 2307bis, Active Directory).
    Member,
    /// `uniqueMember: <DN>` (groupOfUniqueNames).
    UniqueMember,
    /// `memberUid: <username>` (RFC 2307 posixGroup): needs only the name, not the entry, so
    /// the group search can be sent together with the user search.
    MemberUid,
}

impl MemberAttribute {
    pub const ALL: [MemberAttribute; 3] = [
        MemberAttribute::Member,
        MemberAttribute::UniqueMember,
        MemberAttribute::MemberUid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MemberAttribute::Member => "member",
            MemberAttribute::UniqueMember => "uniqueMember",
            MemberAttribute::MemberUid => "memberUid",
        }
    }
}

impl LdapConfig {
    /// Single bind: neither `bind_dn` nor `anonymous_bind`. The directory is read only as the
    /// user, with the password of a `verify=ldap` sign-in.
    pub fn single_bind(&self) -> bool {
        self.bind_dn.is_none() && !self.anonymous_bind
    }

    /// How the section binds, for `status`.
    pub fn bind_mode(&self) -> String {
        match &self.bind_dn {
            Some(dn) => format!("double bind (service account {dn})"),
            None if self.anonymous_bind => "anonymous bind".to_string(),
            None => format!(
                "single bind as {}=<account>,{} at verify=ldap sign-in only; not searched for identities, NSS or the account phase",
                self.username_attribute, self.user_search_base_dn
            ),
        }
    }
}

/// `[gate]`: what accountmapd needs for `accountmap-gate`'s sign-in tickets.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Local users whose processes may ask for tickets (the gate's own user).
    pub ticket_callers: Vec<String>,
    /// How long a ticket stays usable.
    pub ticket_lifetime: Duration,
    /// `mode = "header"` with `require_signature = false`: the gate vouches for the name its
    /// proxy's header carries, so a ticket is minted without a credential to check.
    pub unsigned_header: bool,
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub hmac_key_file: PathBuf,
    /// The file's content less trailing newlines; never empty.
    pub hmac_key: Secret,
    pub max_clock_skew: Duration,
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// Reads `path` and then every `conf.d/*.toml` beside it in name order (later files win, see the
/// module documentation for the exact rule), and validates everything. On failure, every error
/// found is returned, sorted by file and position.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, &trust::Trust::process())
}

/// As [`load`], trusting files and directories owned by the uids of `trust` only (tests; the
/// daemon trusts root and itself).
pub fn load_with(path: &Path, trust: &trust::Trust) -> Result<Config, ConfigErrors> {
    let read = files::read_with_drop_ins(path, trust).map_err(|e| ConfigErrors(vec![e]))?;
    validate::all(read.files, read.texts, read.errors, trust)
}

/// Reads a secret file for another program of the package (accountmap-gate's OAuth client
/// secret) under the same rules as the daemon's own: owned by root or by the reading process's
/// user, mode 0600 or stricter, every directory above it trusted; trailing newlines removed;
/// non-empty UTF-8. The error names the file and the fix, never its content.
pub fn read_secret_file(path: &Path) -> Result<Secret, String> {
    files::read_secret(path, files::SecretUse::Text, &trust::Trust::process())
}

/// Validates `text` as the whole configuration, as if it were the file `path` with no drop-ins;
/// nothing is read but the files the text names (secrets, CA files). For `--check`-style tools
/// and the config fuzz target.
pub fn parse_str(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    validate::all(
        vec![path.to_path_buf()],
        vec![(path.to_path_buf(), text.to_string())],
        Vec::new(),
        &trust::Trust::process(),
    )
}

/// Error texts from toml, regex and the OS may span lines; a config error is one line.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
