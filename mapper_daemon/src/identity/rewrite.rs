//! Rewrite rules in RStudio's `auth-proxy-user-header-rewrite` syntax: a regular expression, a
//! space, and a replacement that may refer to captures as `$1`, `${1}` or `${name}`.
//!
//! The replacement, with its captures filled in, becomes the account name; the text around the
//! match is not kept. Rules should therefore be anchored (`^…$`): an unanchored rule also matches
//! inside longer names, which is rarely what an administrator means.

use regex::Regex;
use std::fmt;

/// One compiled rule.
#[derive(Clone, Debug)]
pub struct RewriteRule {
    source: String,
    regex: Regex,
    replacement: String,
}

/// Why a rule was refused, with the byte offset in the rule text where the problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Compiled regexes are capped so that a rule cannot make the daemon allocate without bound.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl RewriteRule {
    /// Parses `"<regex> <replacement>"`. The split is at the last space, so a regex may itself
    /// contain spaces; a replacement (an account name) never does.
    pub fn parse(rule: &str) -> Result<RewriteRule, RuleError> {
        RewriteRule::parse_with(rule, false)
    }

    /// Like [`RewriteRule::parse`]; with `case_insensitive` the regex ignores case. The
    /// config uses it when `mapping.lowercase` is on: names reach the rules lower-cased, and
    /// a rule written as RStudio documents it (`^UID-([a-z]+)$ $1`) must still match.
    pub fn parse_with(rule: &str, case_insensitive: bool) -> Result<RewriteRule, RuleError> {
        let trimmed = rule.trim_end();
        let Some(split) = trimmed.rfind([' ', '\t']) else {
            return Err(RuleError {
                offset: 0,
                message: format!(
                    "rewrite rule {rule:?} has no replacement: write \"<regex> <replacement>\", e.g. '^UID-([a-z]+)$ $1'"
                ),
            });
        };
        let pattern = trimmed[..split].trim_end();
        let replacement = &trimmed[split + 1..];
        if pattern.is_empty() {
            return Err(RuleError {
                offset: 0,
                message: format!("rewrite rule {rule:?} has an empty regular expression"),
            });
        }
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .case_insensitive(case_insensitive)
            .build()
            .map_err(|e| RuleError {
                offset: 0,
                // The regex crate's message is multi-line with its own caret; keep it on one
                // line so that the FILE:LINE:COLUMN form stays greppable.
                message: format!(
                    "rewrite rule regex does not compile: {}",
                    e.to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            })?;
        check_references(&regex, replacement).map_err(|message| RuleError {
            offset: split + 1,
            message,
        })?;
        Ok(RewriteRule {
            source: rule.to_string(),
            regex,
            replacement: replacement.to_string(),
        })
    }

    /// The rule as written in the config.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The account this rule gives for `name`, or `None` when its regex does not match.
    pub fn apply(&self, name: &str) -> Option<String> {
        let caps = self.regex.captures(name)?;
        let mut out = String::new();
        caps.expand(&self.replacement, &mut out);
        Some(out)
    }
}

/// Refuses a replacement that names a capture the regex does not have: the regex crate would
/// silently expand it to nothing, and every name would map to the same (empty or prefix) account.
fn check_references(regex: &Regex, replacement: &str) -> Result<(), String> {
    let bytes = replacement.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        i += 1;
        if i < bytes.len() && bytes[i] == b'$' {
            i += 1; // `$$` is a literal dollar
            continue;
        }
        let (name, next) = if i < bytes.len() && bytes[i] == b'{' {
            match replacement[i + 1..].find('}') {
                Some(end) => (&replacement[i + 1..i + 1 + end], i + end + 2),
                None => return Err(format!("unclosed ${{ in replacement {replacement:?}")),
            }
        } else {
            let end = replacement[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(replacement.len(), |n| i + n);
            (&replacement[i..end], end)
        };
        if name.is_empty() {
            return Err(format!(
                "lone $ in replacement {replacement:?}; write $$ for a dollar sign"
            ));
        }
        let known = match name.parse::<usize>() {
            Ok(n) => n < regex.captures_len(),
            Err(_) => regex.capture_names().any(|c| c == Some(name)),
        };
        if !known {
            return Err(format!(
                "replacement {replacement:?} refers to ${name}, which the regex does not capture (write ${{1}}x rather than $1x when a letter follows)"
            ));
        }
        i = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::rstudio_doc_example("^UID-([a-z]+)$ $1", "uid-jsmith", None)]
    #[case::rstudio_doc_example_match("^UID-([a-z]+)$ $1", "UID-jsmith", Some("jsmith"))]
    #[case::email_domain(
        r"^([a-z0-9._-]+)@company\.com$ $1",
        "john.doe@company.com",
        Some("john.doe")
    )]
    #[case::other_domain(r"^([a-z0-9._-]+)@company\.com$ $1", "john@evil.com", None)]
    #[case::named_capture(r"^(?P<u>[a-z]+)\+.*$ ${u}", "jdoe+lab", Some("jdoe"))]
    #[case::braced_number(r"^x-([a-z]+)$ ${1}_ext", "x-ann", Some("ann_ext"))]
    #[case::constant(r"^admin@company\.com$ root", "admin@company.com", Some("root"))]
    #[case::regex_with_space(r"^([a-z]+) [a-z]+$ $1", "john doe", Some("john"))]
    #[case::unanchored_keeps_only_replacement(r"UID-([a-z]+) $1", "xUID-bob", Some("bob"))]
    fn rules_apply(#[case] rule: &str, #[case] name: &str, #[case] want: Option<&str>) {
        let parsed = RewriteRule::parse(rule);
        assert!(parsed.is_ok(), "{parsed:?}");
        if let Ok(r) = parsed {
            assert_eq!(r.apply(name).as_deref(), want);
        }
    }

    #[test]
    fn case_insensitive_rules_match_lower_cased_names() {
        let r = RewriteRule::parse_with("^UID-([a-z]+)$ $1", true).unwrap();
        assert_eq!(r.apply("uid-jsmith").as_deref(), Some("jsmith"));
        let r = RewriteRule::parse_with("^UID-([a-z]+)$ $1", false).unwrap();
        assert_eq!(r.apply("uid-jsmith"), None);
    }

    #[rstest]
    #[case::no_replacement("^UID-(.*)$", "has no replacement")]
    #[case::bad_regex("^UID-([a-z]+$ $1", "does not compile")]
    #[case::unknown_group("^UID-([a-z]+)$ $2", "refers to $2")]
    #[case::letter_after_number("^UID-([a-z]+)$ $1x", "refers to $1x")]
    #[case::unknown_name("^(?P<u>[a-z]+)$ ${v}", "refers to $v")]
    #[case::unclosed_brace("^([a-z]+)$ ${1", "unclosed")]
    #[case::lone_dollar("^([a-z]+)$ a$", "lone $")]
    fn bad_rules_are_refused(#[case] rule: &str, #[case] want: &str) {
        let err = RewriteRule::parse(rule).map(|_| ()).unwrap_err_or_default();
        assert!(err.contains(want), "{rule:?} gave {err:?}");
        assert!(!err.contains('\n'), "message must be one line: {err:?}");
    }

    trait ErrText {
        fn unwrap_err_or_default(self) -> String;
    }
    impl ErrText for Result<(), RuleError> {
        fn unwrap_err_or_default(self) -> String {
            match self {
                Ok(()) => String::from("<accepted>"),
                Err(e) => e.message,
            }
        }
    }
}
