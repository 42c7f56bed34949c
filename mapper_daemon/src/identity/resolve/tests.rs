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
#[case::rewrite_case_sensitive("UID-jsmith", false, None, "UID-jsmith", "jsmith", None, rewrite(0))]
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
