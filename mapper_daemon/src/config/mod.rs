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
//! on the opened file (`fstat`), so the file checked is the file read. The contents, less any
//! trailing newline, are kept in a [`Secret`] (the TLS client key stays on disk and is only
//! checked).

use crate::identity::rewrite::RewriteRule;
use serde::Deserialize;
use std::fmt;
use std::fs;
use std::io::Read;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Where the config lives unless [`CONFIG_ENV`] or `--config` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/accountmap/accountmap.toml";
/// Environment variable that overrides the config path (daemon and CLI).
pub const CONFIG_ENV: &str = "ACCOUNTMAP_CONFIG";
/// Google's discovery document, used when `[oidc]` names no other.
pub const GOOGLE_DISCOVERY: &str = "https://accounts.google.com/.well-known/openid-configuration";

/// A config or drop-in file larger than this is refused before it is parsed.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// A secret file larger than this is refused: keys and passwords are small.
const MAX_SECRET_BYTES: u64 = 64 * 1024;
/// Upper bounds keep every duration far from `Instant` overflow.
const MAX_CACHE_TTL: i64 = 365 * 24 * 3600;
const MAX_BACKEND_TIMEOUT: i64 = 3600;
const MAX_CLOCK_SKEW: i64 = 24 * 3600;

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
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: PathBuf::from(accountmap_wire::DEFAULT_SOCKET),
            cache_ttl: Duration::from_secs(300),
            negative_cache_ttl: Duration::from_secs(30),
            backend_timeout: Duration::from_secs(5),
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
    pub user_email_attribute: String,
    pub group_search_base_dn: Option<String>,
    pub group_object_class: String,
    pub group_name_attribute: String,
    /// The one attribute group entries list their members in, when the directory uses one
    /// (`group_member_attribute`); `None`: any of `member`, `uniqueMember` and `memberUid`.
    pub group_member_attribute: Option<MemberAttribute>,
    pub whitelisted_login_groups: Vec<String>,
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

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub hmac_key_file: PathBuf,
    /// The file's content less trailing newlines; never empty.
    pub hmac_key: Secret,
    pub max_clock_skew: Duration,
}

// ---------------------------------------------------------------------------------------------
// What a file says, with positions
// ---------------------------------------------------------------------------------------------

type S<T> = Option<Spanned<T>>;
type List = Vec<Spanned<String>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    daemon: S<RawDaemon>,
    access: S<RawAccess>,
    mapping: S<RawMapping>,
    oidc: S<RawOidc>,
    ldap: S<Vec<Spanned<RawLdap>>>,
    proxy: S<RawProxy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    socket: S<String>,
    cache_ttl: S<i64>,
    negative_cache_ttl: S<i64>,
    backend_timeout: S<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    minimum_uid: S<toml::Value>,
    required_groups: S<List>,
    denied_users: S<List>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    lowercase: S<bool>,
    display_separator: S<String>,
    accounts_file: S<String>,
    rewrite: S<List>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    discovery_endpoint: S<String>,
    client_id: S<String>,
    client_secret_file: S<String>,
    allowed_domains: S<List>,
    allowed_emails: S<List>,
    ca_file: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLdap {
    name: S<String>,
    server_address: S<List>,
    tls: S<bool>,
    start_tls: S<bool>,
    tls_ca_certificate: S<String>,
    server_tls_insecure: S<bool>,
    tls_client_certificate: S<String>,
    tls_client_key: S<String>,
    bind_dn: S<String>,
    bind_password_file: S<String>,
    anonymous_bind: S<bool>,
    user_search_base_dn: S<String>,
    user_object_class: S<String>,
    username_attribute: S<String>,
    user_email_attribute: S<String>,
    group_search_base_dn: S<String>,
    group_object_class: S<String>,
    group_name_attribute: S<String>,
    group_member_attribute: S<String>,
    whitelisted_login_groups: S<List>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    hmac_key_file: S<String>,
    max_clock_skew: S<i64>,
}

/// One file that parsed: its text is kept to turn byte spans into lines and columns.
struct Source {
    path: PathBuf,
    text: String,
    raw: RawFile,
}

impl Source {
    fn position(&self, offset: usize) -> (usize, usize) {
        line_col(&self.text, offset)
    }

    fn located(&self, span: &Range<usize>, message: &str) -> ConfigError {
        let (line, column) = self.position(span.start);
        ConfigError {
            file: self.path.clone(),
            line: Some(line),
            column: Some(column),
            message: one_line(message),
        }
    }
}

/// A value together with the file it comes from.
struct Val<'a, T> {
    src: &'a Source,
    v: &'a Spanned<T>,
}

impl<T> Clone for Val<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Val<'_, T> {}

impl<'a, T> Val<'a, T> {
    fn get(self) -> &'a T {
        self.v.get_ref()
    }

    fn span(self) -> Range<usize> {
        self.v.span()
    }

    fn line(self) -> usize {
        self.src.position(self.v.span().start).0
    }

    /// A value of the same file.
    fn field<U>(self, o: &'a Option<Spanned<U>>) -> Option<Val<'a, U>> {
        o.as_ref().map(|v| Val { src: self.src, v })
    }

    fn items(self) -> impl Iterator<Item = Val<'a, String>>
    where
        T: AsRef<[Spanned<String>]>,
    {
        let src = self.src;
        self.v
            .get_ref()
            .as_ref()
            .iter()
            .map(move |v| Val { src, v })
    }
}

/// The value of the last file that sets it.
fn pick<'a, T: 'a>(
    sources: &'a [Source],
    f: impl Fn(&'a RawFile) -> Option<&'a Spanned<T>>,
) -> Option<Val<'a, T>> {
    sources
        .iter()
        .rev()
        .find_map(|src| f(&src.raw).map(|v| Val { src, v }))
}

fn daemon(f: &RawFile) -> Option<&RawDaemon> {
    f.daemon.as_ref().map(Spanned::get_ref)
}
fn access(f: &RawFile) -> Option<&RawAccess> {
    f.access.as_ref().map(Spanned::get_ref)
}
fn mapping(f: &RawFile) -> Option<&RawMapping> {
    f.mapping.as_ref().map(Spanned::get_ref)
}
fn oidc(f: &RawFile) -> Option<&RawOidc> {
    f.oidc.as_ref().map(Spanned::get_ref)
}
fn proxy(f: &RawFile) -> Option<&RawProxy> {
    f.proxy.as_ref().map(Spanned::get_ref)
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// Reads `path` and then every `conf.d/*.toml` beside it in name order (later files win, see the
/// module documentation for the exact rule), and validates everything. On failure, every error
/// found is returned, sorted by file and position.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut files = vec![path.to_path_buf()];
    let main_text = match read_config_file(path) {
        Ok(text) => text,
        Err(e) => return Err(ConfigErrors(vec![e])),
    };
    let mut texts = vec![(path.to_path_buf(), main_text)];
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match drop_ins(&dir.join("conf.d")) {
        Ok(paths) => {
            for p in paths {
                files.push(p.clone());
                match read_config_file(&p) {
                    Ok(text) => texts.push((p, text)),
                    Err(e) => errors.push(e),
                }
            }
        }
        Err(e) => errors.push(e),
    }
    validate(files, texts, errors)
}

/// Validates `text` as the whole configuration, as if it were the file `path` with no drop-ins;
/// nothing is read but the files the text names (secrets, CA files). For `--check`-style tools
/// and the config fuzz target.
pub fn parse_str(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    validate(
        vec![path.to_path_buf()],
        vec![(path.to_path_buf(), text.to_string())],
        Vec::new(),
    )
}

/// Parses and validates the texts of `files` in order (the main file first, then drop-ins),
/// adding to the `errors` found while reading them.
fn validate(
    files: Vec<PathBuf>,
    texts: Vec<(PathBuf, String)>,
    errors: Vec<ConfigError>,
) -> Result<Config, ConfigErrors> {
    let mut errors = errors;
    let mut sources = Vec::new();
    for (path, text) in texts {
        match toml::from_str::<RawFile>(&text) {
            Ok(raw) => sources.push(Source { path, text, raw }),
            Err(e) => {
                let position = e.span().map(|s| line_col(&text, s.start));
                errors.push(ConfigError {
                    file: path,
                    line: position.map(|p| p.0),
                    column: position.map(|p| p.1),
                    message: one_line(e.message()),
                });
            }
        }
    }

    // A key that seems missing may sit in a file that did not parse: say so only when all did.
    let complete = errors.is_empty();
    let mut ctx = Ctx {
        errors,
        warnings: Vec::new(),
        complete,
    };
    let daemon = ctx.daemon(&sources);
    let access = ctx.access(&sources);
    let mapping = ctx.mapping(&sources);
    let oidc = ctx.oidc(&sources);
    let ldap = ctx.ldap(&sources);
    let proxy = ctx.proxy(&sources);

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
    })
}

/// The drop-ins of `conf_d`, in byte-wise name order.
fn drop_ins(conf_d: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match fs::read_dir(conf_d) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ConfigError::file(
                conf_d,
                format!("cannot read directory: {e}"),
            ))
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| ConfigError::file(conf_d, format!("cannot read directory: {e}")))?;
        let name = entry.file_name();
        let bytes = name.as_bytes();
        if bytes.ends_with(b".toml") && !bytes.starts_with(b".") {
            names.push(name);
        }
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names.into_iter().map(|n| conf_d.join(n)).collect())
}

/// Opens without blocking on a FIFO and without taking a controlling terminal, and checks that
/// the opened file (symlinks followed) is a regular file.
fn open_regular(path: &Path) -> Result<(fs::File, fs::Metadata), String> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    Ok((file, meta))
}

fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let (file, meta) = open_regular(path).map_err(|e| {
        // "FILE: cannot read: …" rather than repeating the path.
        let prefix = format!("cannot read {}: ", path.display());
        match e.strip_prefix(&prefix) {
            Some(rest) => ConfigError::file(path, format!("cannot read: {rest}")),
            None => ConfigError::file(path, "not a regular file"),
        }
    })?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::file(
            path,
            format!(
                "is {} bytes; a config file may have at most {MAX_CONFIG_BYTES}",
                meta.len()
            ),
        ));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| ConfigError::file(path, format!("cannot read: {e}")))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::file(
            path,
            format!("a config file may have at most {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

struct Ctx {
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
    /// Every file parsed: a missing required key is really missing.
    complete: bool,
}

/// What to do with a secret file's content.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SecretUse {
    /// Check only (the TLS client key, which the TLS library reads itself).
    Check,
    /// Keep the bytes; must not be empty.
    Bytes,
    /// Keep the bytes; must be non-empty UTF-8 without NUL (passwords, client secrets).
    Text,
}

impl Ctx {
    fn err<T>(&mut self, v: Val<'_, T>, message: impl AsRef<str>) {
        self.errors.push(v.src.located(&v.span(), message.as_ref()));
    }

    fn warn<T>(&mut self, v: Val<'_, T>, message: impl AsRef<str>) {
        let e = v.src.located(&v.span(), message.as_ref());
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
        match read_secret(&p, usage) {
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
                        let mut err = item
                            .src
                            .located(&item.span(), &format!("rewrite rule {}: {text}", i + 1));
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
                if let Err(e) = crate::identity::accounts_file::load(p) {
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
        for (i, entry) in list.get().iter().enumerate() {
            let e = Val {
                src: list.src,
                v: entry,
            };
            let cfg = self.ldap_entry(e, i);
            if let Some(v) = e.field(&entry.get_ref().name) {
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
        let text = |o: &Option<Spanned<String>>, default: &str| {
            o.as_ref()
                .map_or_else(|| default.to_string(), |v| v.get_ref().clone())
        };
        let flag = |o: &Option<Spanned<bool>>| o.as_ref().is_some_and(|v| *v.get_ref());
        let mut c = LdapConfig {
            name: name.clone(),
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
            user_email_attribute: text(&r.user_email_attribute, "mail"),
            group_search_base_dn: None,
            group_object_class: text(&r.group_object_class, "posixGroup"),
            group_name_attribute: text(&r.group_name_attribute, "cn"),
            group_member_attribute: None,
            whitelisted_login_groups: Vec::new(),
        };

        match e.field(&r.server_address) {
            None => self.missing(e, "server_address", &section),
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

        // Transport.
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
                            "server_tls_insecure = true disables certificate checks for ldap {name:?}: anyone on the network path can impersonate the directory and read the passwords sent to it; set tls_ca_certificate instead"
                        ),
                    );
                }
            }
        }
        if !encrypted {
            self.warn(
                e,
                format!(
                    "ldap {name:?} uses neither tls nor start_tls: bind and user passwords cross the network in clear text; set start_tls = true or tls = true"
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

        // Binding.
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
            // Neither: single bind (see the warning below, once the layout is known).
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

        // Directory layout.
        match e.field(&r.user_search_base_dn) {
            Some(v) => c.user_search_base_dn = self.word(v, "user_search_base_dn"),
            None => self.missing(e, "user_search_base_dn", &section),
        }
        if let Some(v) = e.field(&r.group_search_base_dn) {
            c.group_search_base_dn = Some(self.word(v, "group_search_base_dn"));
        }
        for (o, key) in [
            (&r.user_object_class, "user_object_class"),
            (&r.username_attribute, "username_attribute"),
            (&r.user_email_attribute, "user_email_attribute"),
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
        c.whitelisted_login_groups = self.words(
            e.field(&r.whitelisted_login_groups),
            "whitelisted_login_groups",
        );
        if dn.is_none() && pw.is_none() && anon.is_none() {
            self.warn(
                e,
                format!(
                    "ldap {name:?} uses single bind (neither bind_dn nor anonymous_bind): a user is bound as {}=<account>,{} with the password of a verify=ldap sign-in, and its groups and whitelisted_login_groups are read with that bind; without a password (the account phase, NSS, accountmapctl resolve, identity resolution step 5) this directory is not asked at all, so it maps no email or other name to an account and its groups count only at verify=ldap sign-in",
                    c.username_attribute, c.user_search_base_dn
                ),
            );
        }
        c
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

/// Opens a secret file, checks its type and mode on the opened file, and reads it.
fn read_secret(path: &Path, usage: SecretUse) -> Result<Secret, String> {
    let (file, meta) = open_regular(path)?;
    let mode = meta.permissions().mode() & 0o7777;
    let shown = path.display();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{shown} has mode {mode:04o}; secrets must be 0600 or stricter: chmod 600 {shown}"
        ));
    }
    if usage == SecretUse::Check {
        return Ok(Secret::new(Vec::new()));
    }
    if meta.len() > MAX_SECRET_BYTES {
        return Err(format!(
            "{shown} is {} bytes; a secret file may have at most {MAX_SECRET_BYTES}",
            meta.len()
        ));
    }
    // Read straight into a Secret so that every early return zeroes what was read.
    let capacity = usize::try_from(meta.len()).unwrap_or(0).saturating_add(1);
    let mut secret = Secret(Vec::with_capacity(capacity));
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut secret.0)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if secret.0.len() as u64 > MAX_SECRET_BYTES {
        return Err(format!(
            "{shown} is larger than {MAX_SECRET_BYTES} bytes; a secret file is expected to be small"
        ));
    }
    while matches!(secret.0.last(), Some(b'\n' | b'\r')) {
        secret.0.pop();
    }
    if secret.0.is_empty() {
        return Err(match usage {
            SecretUse::Bytes => format!(
                "{shown} is empty; write a random key into it, e.g. head -c 32 /dev/urandom | base64 > {shown}"
            ),
            _ => format!("{shown} is empty"),
        });
    }
    if usage == SecretUse::Text {
        if std::str::from_utf8(&secret.0).is_err() {
            return Err(format!("{shown} is not valid UTF-8"));
        }
        if secret.0.contains(&0) {
            return Err(format!("{shown} contains a NUL byte"));
        }
    }
    Ok(secret)
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
        Some((line, column, message)) => ConfigError {
            file: path.to_path_buf(),
            line: Some(line),
            column: Some(column),
            message: one_line(message),
        },
        None => ConfigError::file(path, rest),
    }
}

// ---------------------------------------------------------------------------------------------
// Small checks
// ---------------------------------------------------------------------------------------------

/// 1-based line and character column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut off = offset.min(text.len());
    while off > 0 && !text.is_char_boundary(off) {
        off -= 1;
    }
    let before = text.get(..off).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// How many columns past the literal's opening position the rule's byte `offset` lies, when the
/// literal sits on one line (approximate for basic strings with escapes).
fn offset_in_literal(item: Val<'_, String>, offset: usize) -> Option<usize> {
    let literal = item.src.text.get(item.span())?;
    if literal.contains('\n') {
        return None;
    }
    let quote = if literal.starts_with("'''") || literal.starts_with("\"\"\"") {
        3
    } else {
        1
    };
    let value = item.get();
    let mut off = offset.min(value.len());
    while off > 0 && !value.is_char_boundary(off) {
        off -= 1;
    }
    Some(quote + value.get(..off).map_or(0, |s| s.chars().count()))
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

fn check_host_port(s: &str) -> Result<(), String> {
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
fn is_attribute_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ';' | '.'))
}

/// Error texts from toml, regex and the OS may span lines; a config error is one line.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
