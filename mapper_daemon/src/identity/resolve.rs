//! The identity pipeline of SPEC "Identity resolution", steps 1–6, as a pure function: from a
//! name as a service hands it over to the local account name it stands for, and the rule that
//! said so.
//!
//! Nothing is looked up here. Whether the account exists and may be used (step 7) is decided by
//! the caller with [`crate::backends::system`] and [`crate::identity::policy`].

use crate::identity::accounts_file::Accounts;
use crate::identity::rewrite::RewriteRule;
use accountmap_wire::MAX_NAME_LEN;
use std::fmt;

/// The `[mapping]` settings the pipeline needs, borrowed from the config in force.
#[derive(Clone, Copy, Debug)]
pub struct MappingRules<'a> {
    pub lowercase: bool,
    /// `None` or `Some("")` turns the display-name split off.
    pub display_separator: Option<&'a str>,
    pub accounts: &'a Accounts,
    pub rewrite: &'a [RewriteRule],
}

/// Which step of the pipeline gave the account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// A line of the accounts file (1-based).
    AccountsFile { line: usize },
    /// `mapping.rewrite[index]` (0-based); shown 1-based, as `check-config` counts rules.
    Rewrite { index: usize, source: String },
    /// Step 5: the `[[ldap]]` section of this name had an entry for the name.
    Directory { name: String },
    /// No rule matched: the name itself is the account.
    Identity,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::AccountsFile { line } => write!(f, "accounts-file:{line}"),
            Rule::Rewrite { index, source } => write!(f, "rewrite rule {} '{source}'", index + 1),
            Rule::Directory { name } => write!(f, "ldap {name}"),
            Rule::Identity => f.write_str("identity"),
        }
    }
}

/// A name mapped to an account name that is syntactically valid (not yet known to exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// The name as the service handed it over.
    pub input: String,
    /// The part after the display separator, if the input had one (`None` when it was empty).
    pub display: Option<String>,
    /// The name after the separator split and lower-casing: what the rules were matched against.
    pub normalized: String,
    /// The local account name.
    pub account: String,
    pub rule: Rule,
}

impl Mapped {
    /// Whether the account differs from the name as typed. Lower-casing counts: `ROOT` is an
    /// alias of `root`, so the alias rule of step 7 applies to it.
    pub fn is_alias(&self) -> bool {
        self.account != self.input
    }
}

/// Why a name maps to no usable account name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The name (or its part before the display separator) is empty.
    Empty,
    /// The name is this many bytes long, more than [`MAX_NAME_LEN`].
    TooLong(usize),
    /// The name contains a control character (NUL, newline, DEL, …).
    ControlCharacter,
    /// The rule gave something that cannot be a user name; the caller reports "no such account".
    InvalidAccount { account: String, rule: Rule },
    /// Step 5 could not be answered: no directory server could be asked.
    DirectoryUnavailable(String),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::Empty => f.write_str("the name is empty"),
            MapError::TooLong(len) => write!(
                f,
                "the name is {len} bytes long; at most {MAX_NAME_LEN} are accepted"
            ),
            MapError::ControlCharacter => f.write_str("the name contains a control character"),
            MapError::InvalidAccount {
                account,
                rule: Rule::Identity,
            } => write!(
                f,
                "{account:?} matches no mapping rule and is not a valid user name"
            ),
            MapError::InvalidAccount { account, rule } => {
                write!(
                    f,
                    "{rule} gives {account:?}, which is not a valid user name"
                )
            }
            MapError::DirectoryUnavailable(e) => write!(f, "directory unavailable: {e}"),
        }
    }
}

impl std::error::Error for MapError {}

/// Step 5's answer for a name: the account a directory entry gives, and the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryAnswer {
    pub account: String,
    pub directory: String,
}

/// Step 5 as the caller performs it: `Ok(None)` when no directory knows the name, `Err` when
/// none could be asked. Passed in so that this module stays free of I/O.
pub type DirectoryStep<'a> = &'a mut dyn FnMut(&str) -> Result<Option<DirectoryAnswer>, String>;

/// Runs SPEC's identity pipeline (steps 1–6) on `input`, without a directory (step 5 skipped).
pub fn map_name(input: &str, rules: &MappingRules) -> Result<Mapped, MapError> {
    map_name_with(input, rules, &mut |_| Ok(None))
}

/// Runs SPEC's identity pipeline (steps 1–6) on `input`, asking `directory` at step 5.
pub fn map_name_with(
    input: &str,
    rules: &MappingRules,
    directory: DirectoryStep<'_>,
) -> Result<Mapped, MapError> {
    // Unusable input is refused before any rule sees it, so that no regex or log line ever
    // handles a NUL, a newline or an unbounded string.
    if input.is_empty() {
        return Err(MapError::Empty);
    }
    if input.len() > MAX_NAME_LEN {
        return Err(MapError::TooLong(input.len()));
    }
    if input.chars().any(char::is_control) {
        return Err(MapError::ControlCharacter);
    }

    // 1. `account/display`: RStudio's way of showing another name for a shared account.
    let (name, display) = match rules.display_separator.filter(|s| !s.is_empty()) {
        Some(sep) => match input.split_once(sep) {
            Some((name, display)) => (name, Some(display).filter(|d| !d.is_empty())),
            None => (input, None),
        },
        None => (input, None),
    };
    if name.is_empty() {
        return Err(MapError::Empty);
    }

    // 2.
    let normalized = if rules.lowercase {
        name.to_lowercase()
    } else {
        name.to_string()
    };

    let (account, rule) = pick_account(&normalized, rules, directory)?;
    if !is_valid_account_name(&account) {
        return Err(MapError::InvalidAccount { account, rule });
    }
    Ok(Mapped {
        input: input.to_string(),
        display: display.map(str::to_string),
        normalized,
        account,
        rule,
    })
}

/// Steps 3–6: the first rule that knows `name` gives the account.
fn pick_account(
    name: &str,
    rules: &MappingRules,
    directory: DirectoryStep<'_>,
) -> Result<(String, Rule), MapError> {
    // 3. The accounts file is the administrator's explicit word, so it beats any pattern.
    if let Some((local, line)) = rules.accounts.lookup(name) {
        return Ok((local.to_string(), Rule::AccountsFile { line }));
    }
    // 4. Rewrite rules in config order; the first whose regex matches decides.
    for (index, rule) in rules.rewrite.iter().enumerate() {
        if let Some(account) = rule.apply(name) {
            let source = rule.source().to_string();
            return Ok((account, Rule::Rewrite { index, source }));
        }
    }
    // 5. LDAP: an email-looking name is searched by the email attribute, any other by the
    //    username attribute, and the entry's username attribute gives the account (the caller
    //    does the round trip). A name no directory knows falls through to step 6; a directory
    //    that cannot be asked is an error, not a fall-through, so that an outage never maps a
    //    name differently.
    if let Some(found) = directory(name).map_err(MapError::DirectoryUnavailable)? {
        return Ok((
            found.account,
            Rule::Directory {
                name: found.directory,
            },
        ));
    }
    // 6.
    Ok((name.to_string(), Rule::Identity))
}

/// Whether `name` can be a local user name: ASCII letters, digits, `.`, `_` and `-`, with an
/// optional single trailing `$` (Samba machine accounts); not starting with `-` (it would read as
/// an option to tools such as `chown`), not all digits (it would read as a uid), not `.` or `..`,
/// at most [`MAX_NAME_LEN`] bytes. This is the shadow-utils/systemd portable set, so a name that
/// passes is safe in a log line, a path component and a command line.
pub fn is_valid_account_name(name: &str) -> bool {
    let body = name.strip_suffix('$').unwrap_or(name);
    !body.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !body.starts_with('-')
        && body != "."
        && body != ".."
        && !body.bytes().all(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests;
