//! The identity pipeline of SPEC "Identity resolution", steps 1–6, as a pure function: from a
//! name as a service hands it over to the local account name it stands for, and the rule that
//! said so.
//!
//! Nothing is looked up here. Whether the account exists and may be used (step 7) is decided by
//! the caller with [`crate::system`] and [`crate::policy`].

use crate::accounts_file::Accounts;
use crate::rewrite::RewriteRule;
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
mod tests {
    use super::*;
    use rstest::rstest;

    const ACCOUNTS: &str = "\
# mapped by hand
John.Doe@Company.com = jdoe
uid-ann = ann
boss@company.com = root
bad@company.com = j@doe
";

    const REWRITE: &[&str] = &[
        r"^UID-([a-z]+)$ $1",
        r"^([a-z0-9._-]+)@company\.com$ $1",
        r"^([a-z]+)@.*$ ${1}_ext",
        r"^x(.*)$ $1",
    ];

    fn map(input: &str, lowercase: bool, separator: Option<&str>) -> Result<Mapped, MapError> {
        let accounts = Accounts::parse(ACCOUNTS).unwrap();
        let rewrite: Vec<RewriteRule> = REWRITE
            .iter()
            .map(|r| RewriteRule::parse(r).unwrap())
            .collect();
        let rules = MappingRules {
            lowercase,
            display_separator: separator,
            accounts: &accounts,
            rewrite: &rewrite,
        };
        map_name(input, &rules)
    }

    fn rewrite(index: usize) -> Rule {
        Rule::Rewrite {
            index,
            source: REWRITE[index].to_string(),
        }
    }

    #[rstest]
    #[case::identity("jdoe", true, Some("/"), "jdoe", "jdoe", None, Rule::Identity)]
    #[case::identity_lowercased("JDoe", true, Some("/"), "jdoe", "jdoe", None, Rule::Identity)]
    #[case::identity_case_kept("JDoe", false, Some("/"), "JDoe", "JDoe", None, Rule::Identity)]
    #[case::display_name(
        "rsuser24/jsmith",
        true,
        Some("/"),
        "rsuser24",
        "rsuser24",
        Some("jsmith"),
        Rule::Identity
    )]
    #[case::display_first_separator(
        "rsuser24/j/smith",
        true,
        Some("/"),
        "rsuser24",
        "rsuser24",
        Some("j/smith"),
        Rule::Identity
    )]
    #[case::display_empty(
        "rsuser24/",
        true,
        Some("/"),
        "rsuser24",
        "rsuser24",
        None,
        Rule::Identity
    )]
    #[case::display_long_separator(
        "rsuser24::J Smith",
        true,
        Some("::"),
        "rsuser24",
        "rsuser24",
        Some("J Smith"),
        Rule::Identity
    )]
    #[case::display_then_rule("UID-Ann/Ann Smith", true, Some("/"), "uid-ann", "ann", Some("Ann Smith"), Rule::AccountsFile { line: 3 })]
    #[case::accounts_file("John.Doe@Company.com", true, None, "john.doe@company.com", "jdoe", None, Rule::AccountsFile { line: 2 })]
    // The accounts file compares lower-cased whatever mapping.lowercase says (SPEC).
    #[case::accounts_file_without_lowercase("John.Doe@Company.com", false, None, "John.Doe@Company.com", "jdoe", None, Rule::AccountsFile { line: 2 })]
    #[case::accounts_file_beats_rewrite("uid-ann", false, None, "uid-ann", "ann", None, Rule::AccountsFile { line: 3 })]
    #[case::accounts_file_to_root("boss@company.com", true, None, "boss@company.com", "root", None, Rule::AccountsFile { line: 4 })]
    #[case::rewrite_case_sensitive(
        "UID-jsmith",
        false,
        None,
        "UID-jsmith",
        "jsmith",
        None,
        rewrite(0)
    )]
    #[case::rewrite_after_lowercase(
        "UID-jsmith",
        true,
        None,
        "uid-jsmith",
        "uid-jsmith",
        None,
        Rule::Identity
    )]
    #[case::rewrite_first_match_wins(
        "ann.lee@company.com",
        true,
        None,
        "ann.lee@company.com",
        "ann.lee",
        None,
        rewrite(1)
    )]
    #[case::rewrite_later_rule(
        "ann@other.org",
        true,
        None,
        "ann@other.org",
        "ann_ext",
        None,
        rewrite(2)
    )]
    #[case::separator_off(
        "rsuser24/jsmith",
        true,
        None,
        "rsuser24/jsmith",
        "rsuser24/jsmith",
        None,
        Rule::Identity
    )]
    #[case::separator_empty_is_off("a/b", true, Some(""), "a/b", "a/b", None, Rule::Identity)]
    fn names_map(
        #[case] input: &str,
        #[case] lowercase: bool,
        #[case] separator: Option<&str>,
        #[case] normalized: &str,
        #[case] account: &str,
        #[case] display: Option<&str>,
        #[case] rule: Rule,
    ) {
        // `a/b` and `rsuser24/jsmith` without a separator are not valid accounts: check them
        // through the error, everything else through the result.
        match map(input, lowercase, separator) {
            Ok(m) => {
                assert_eq!(m.input, input);
                assert_eq!(m.normalized, normalized);
                assert_eq!(m.account, account);
                assert_eq!(m.display.as_deref(), display);
                assert_eq!(m.rule, rule);
            }
            Err(MapError::InvalidAccount {
                account: a,
                rule: r,
            }) => {
                assert_eq!((a.as_str(), r), (account, rule));
                assert!(!is_valid_account_name(account));
            }
            Err(e) => panic!("{input:?}: {e}"),
        }
    }

    #[rstest]
    #[case::empty("", MapError::Empty)]
    #[case::empty_before_separator("/jsmith", MapError::Empty)]
    #[case::too_long(&"a".repeat(MAX_NAME_LEN + 1), MapError::TooLong(MAX_NAME_LEN + 1))]
    #[case::too_long_multibyte(&"é".repeat(200), MapError::TooLong(400))]
    #[case::nul("jdoe\0", MapError::ControlCharacter)]
    #[case::newline("jdoe\nroot", MapError::ControlCharacter)]
    #[case::tab("j\tdoe", MapError::ControlCharacter)]
    #[case::del("jdoe\u{7f}", MapError::ControlCharacter)]
    #[case::c1("jdoe\u{85}", MapError::ControlCharacter)]
    #[case::control_in_display("jdoe/\u{1b}[2J", MapError::ControlCharacter)]
    #[case::email_no_rule("john.smith@x.com", MapError::InvalidAccount { account: "john.smith@x.com".into(), rule: Rule::Identity })]
    #[case::bad_accounts_file_target("bad@company.com", MapError::InvalidAccount { account: "j@doe".into(), rule: Rule::AccountsFile { line: 5 } })]
    #[case::rewrite_gives_empty("x", MapError::InvalidAccount { account: "".into(), rule: rewrite(3) })]
    #[case::rewrite_gives_dash("x-rf", MapError::InvalidAccount { account: "-rf".into(), rule: rewrite(3) })]
    #[case::all_digits("1000", MapError::InvalidAccount { account: "1000".into(), rule: Rule::Identity })]
    #[case::dot_dot("..", MapError::InvalidAccount { account: "..".into(), rule: Rule::Identity })]
    #[case::space("j doe", MapError::InvalidAccount { account: "j doe".into(), rule: Rule::Identity })]
    #[case::non_ascii("jöe", MapError::InvalidAccount { account: "jöe".into(), rule: Rule::Identity })]
    fn bad_names_are_refused(#[case] input: &str, #[case] want: MapError) {
        assert_eq!(map(input, true, Some("/")), Err(want));
    }

    #[test]
    fn an_email_no_rule_maps_is_not_an_account() {
        let accounts = Accounts::default();
        let rules = MappingRules {
            lowercase: true,
            display_separator: Some("/"),
            accounts: &accounts,
            rewrite: &[],
        };
        let err = map_name("john@x.com", &rules).unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"john@x.com\" matches no mapping rule and is not a valid user name"
        );
    }

    #[rstest]
    #[case::plain("jdoe", false)]
    #[case::case_changed("JDoe", true)]
    #[case::root_upper_case("ROOT", true)]
    #[case::display_name("rsuser24/jsmith", true)]
    #[case::accounts_file("john.doe@company.com", true)]
    #[case::rewrite("ann@other.org", true)]
    fn aliases_are_names_that_change(#[case] input: &str, #[case] alias: bool) {
        assert_eq!(map(input, true, Some("/")).unwrap().is_alias(), alias);
    }

    #[rstest]
    #[case("jdoe", true)]
    #[case("j.doe_2-x", true)]
    #[case("WS01$", true)]
    #[case("_apt", true)]
    #[case("a", true)]
    #[case("1a", true)]
    #[case("", false)]
    #[case("$", false)]
    #[case("a$$", false)]
    #[case("a$b", false)]
    #[case("-a", false)]
    #[case("-", false)]
    #[case("0", false)]
    #[case("123$", false)]
    #[case(".", false)]
    #[case("..", false)]
    #[case("...", true)]
    #[case("a/b", false)]
    #[case("a:b", false)]
    #[case("a@b", false)]
    #[case("a b", false)]
    #[case("é", false)]
    #[case(&"a".repeat(MAX_NAME_LEN), true)]
    #[case(&"a".repeat(MAX_NAME_LEN + 1), false)]
    fn account_names_are_checked(#[case] name: &str, #[case] valid: bool) {
        assert_eq!(is_valid_account_name(name), valid, "{name:?}");
    }

    #[rstest]
    #[case(Rule::AccountsFile { line: 12 }, "accounts-file:12")]
    #[case(Rule::Rewrite { index: 0, source: "^UID-([a-z]+)$ $1".into() }, "rewrite rule 1 '^UID-([a-z]+)$ $1'")]
    #[case(Rule::Identity, "identity")]
    fn rules_display(#[case] rule: Rule, #[case] want: &str) {
        assert_eq!(rule.to_string(), want);
    }

    #[rstest]
    #[case(MapError::Empty, "the name is empty")]
    #[case(
        MapError::TooLong(300),
        "the name is 300 bytes long; at most 256 are accepted"
    )]
    #[case(MapError::ControlCharacter, "the name contains a control character")]
    #[case(MapError::InvalidAccount { account: "in:valid".into(), rule: Rule::AccountsFile { line: 5 } }, "accounts-file:5 gives \"in:valid\", which is not a valid user name")]
    fn errors_display(#[case] err: MapError, #[case] want: &str) {
        assert_eq!(err.to_string(), want);
    }
}
