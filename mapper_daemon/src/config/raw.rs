//! What a file says, with positions: the serde structs of `accountmap.toml` (every value
//! [`Spanned`], so that an error can name its line and column) and [`pick`], the rule that the
//! last file setting a key wins.

use super::ConfigError;
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;
use toml::Spanned;

pub(super) type S<T> = Option<Spanned<T>>;
pub(super) type List = Vec<Spanned<String>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    daemon: S<RawDaemon>,
    access: S<RawAccess>,
    mapping: S<RawMapping>,
    pub(super) oidc: S<RawOidc>,
    pub(super) ldap: S<Vec<Spanned<RawLdap>>>,
    pub(super) proxy: S<RawProxy>,
    pub(super) gate: S<RawGate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub(super) socket: S<String>,
    pub(super) cache_ttl: S<i64>,
    pub(super) negative_cache_ttl: S<i64>,
    pub(super) backend_timeout: S<i64>,
    pub(super) failure_budget: S<i64>,
    pub(super) failure_refill: S<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccess {
    pub(super) minimum_uid: S<toml::Value>,
    pub(super) required_groups: S<List>,
    pub(super) denied_users: S<List>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMapping {
    pub(super) lowercase: S<bool>,
    pub(super) display_separator: S<String>,
    pub(super) accounts_file: S<String>,
    pub(super) rewrite: S<List>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOidc {
    pub(super) discovery_endpoint: S<String>,
    pub(super) client_id: S<String>,
    pub(super) client_secret_file: S<String>,
    pub(super) allowed_domains: S<List>,
    pub(super) allowed_emails: S<List>,
    pub(super) ca_file: S<String>,
    pub(super) accept_access_tokens: S<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLdap {
    pub(super) name: S<String>,
    pub(super) server_address: S<List>,
    pub(super) tls: S<bool>,
    pub(super) start_tls: S<bool>,
    pub(super) tls_ca_certificate: S<String>,
    pub(super) server_tls_insecure: S<bool>,
    pub(super) tls_client_certificate: S<String>,
    pub(super) tls_client_key: S<String>,
    pub(super) bind_dn: S<String>,
    pub(super) bind_password_file: S<String>,
    pub(super) anonymous_bind: S<bool>,
    pub(super) user_search_base_dn: S<String>,
    pub(super) user_object_class: S<String>,
    pub(super) username_attribute: S<String>,
    /// One attribute name, or a list of them.
    pub(super) user_email_attribute: S<toml::Value>,
    pub(super) group_search_base_dn: S<String>,
    pub(super) group_object_class: S<String>,
    pub(super) group_name_attribute: S<String>,
    pub(super) group_member_attribute: S<String>,
    pub(super) whitelisted_login_groups: S<List>,
    /// `"auto"`, `true` or `false`.
    pub(super) nested_groups: S<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGate {
    pub(super) ticket_callers: S<List>,
    pub(super) ticket_lifetime: S<i64>,
    /// `"oidc"` or `"header"`: accountmapd mints without a credential only for an unsigned
    /// header gate.
    pub(super) mode: S<String>,
    pub(super) require_signature: S<bool>,
    // The gate's own keys: accountmap-gate reads and checks them (`accountmap-gate --check`);
    // accepted here so that one file serves both programs.
    #[allow(dead_code)]
    pub(super) listen: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    pub(super) public_url: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    pub(super) rserver_url: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    pub(super) user_header: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    pub(super) client_secret_file: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    pub(super) scopes: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    pub(super) service: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    pub(super) rserver_encryption: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    pub(super) stay_signed_in: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    pub(super) timeout: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    pub(super) hmac_key_file: S<String>,
    pub(super) max_clock_skew: S<i64>,
}

/// One file that parsed: its text is kept to turn byte spans into lines and columns.
pub(super) struct Source {
    path: PathBuf,
    text: String,
    raw: RawFile,
}

impl Source {
    /// A file that is not valid TOML (or has an unknown key or a wrong type) is one error, where
    /// toml locates it.
    pub(super) fn parse(path: PathBuf, text: String) -> Result<Source, ConfigError> {
        match toml::from_str::<RawFile>(&text) {
            Ok(raw) => Ok(Source { path, text, raw }),
            Err(e) => Err(match e.span() {
                Some(span) => ConfigError::at(&path, line_col(&text, span.start), e.message()),
                None => ConfigError::file(&path, e.message()),
            }),
        }
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        line_col(&self.text, offset)
    }
}

/// A value together with the file it comes from.
pub(super) struct Val<'a, T> {
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
    pub(super) fn get(self) -> &'a T {
        self.v.get_ref()
    }

    pub(super) fn span(self) -> Range<usize> {
        self.v.span()
    }

    pub(super) fn line(self) -> usize {
        self.src.position(self.v.span().start).0
    }

    /// `message` at the start of the value.
    pub(super) fn located(self, message: &str) -> ConfigError {
        let position = self.src.position(self.v.span().start);
        ConfigError::at(&self.src.path, position, message)
    }

    /// A value of the same file.
    pub(super) fn field<U>(self, o: &'a Option<Spanned<U>>) -> Option<Val<'a, U>> {
        o.as_ref().map(|v| Val { src: self.src, v })
    }

    /// The entries of a list, each of the same file.
    pub(super) fn items<U: 'a>(self) -> impl Iterator<Item = Val<'a, U>>
    where
        T: AsRef<[Spanned<U>]>,
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
pub(super) fn pick<'a, T: 'a>(
    sources: &'a [Source],
    f: impl Fn(&'a RawFile) -> Option<&'a Spanned<T>>,
) -> Option<Val<'a, T>> {
    sources
        .iter()
        .rev()
        .find_map(|src| f(&src.raw).map(|v| Val { src, v }))
}

pub(super) fn daemon(f: &RawFile) -> Option<&RawDaemon> {
    f.daemon.as_ref().map(Spanned::get_ref)
}
pub(super) fn access(f: &RawFile) -> Option<&RawAccess> {
    f.access.as_ref().map(Spanned::get_ref)
}
pub(super) fn mapping(f: &RawFile) -> Option<&RawMapping> {
    f.mapping.as_ref().map(Spanned::get_ref)
}
pub(super) fn oidc(f: &RawFile) -> Option<&RawOidc> {
    f.oidc.as_ref().map(Spanned::get_ref)
}
pub(super) fn proxy(f: &RawFile) -> Option<&RawProxy> {
    f.proxy.as_ref().map(Spanned::get_ref)
}
pub(super) fn gate(f: &RawFile) -> Option<&RawGate> {
    f.gate.as_ref().map(Spanned::get_ref)
}

/// 1-based line and character column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = up_to(text, offset);
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// How many columns past the literal's opening position the rule's byte `offset` lies, when the
/// literal sits on one line (approximate for basic strings with escapes).
pub(super) fn offset_in_literal(item: Val<'_, String>, offset: usize) -> Option<usize> {
    let literal = item.src.text.get(item.span())?;
    if literal.contains('\n') {
        return None;
    }
    let quote = if literal.starts_with("'''") || literal.starts_with("\"\"\"") {
        3
    } else {
        1
    };
    Some(quote + up_to(item.get(), offset).chars().count())
}

/// `s` up to byte `offset` (at most all of it), backed off to a character boundary.
fn up_to(s: &str, offset: usize) -> &str {
    let mut off = offset.min(s.len());
    while off > 0 && !s.is_char_boundary(off) {
        off -= 1;
    }
    s.get(..off).unwrap_or("")
}
