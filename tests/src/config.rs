//! The daemon's `accountmap.toml` as the tests write it, and the standard accounts file.

use std::path::Path;

/// The knobs of `accountmap.toml` the tests turn. [`Config::render`] writes SPEC's syntax.
#[derive(Clone, Debug)]
pub struct Config {
    /// A TOML value: `1000` or `"auto"`.
    pub minimum_uid: String,
    pub required_groups: Vec<String>,
    pub denied_users: Vec<String>,
    pub lowercase: bool,
    pub display_separator: String,
    pub rewrite: Vec<String>,
    pub cache_ttl: u32,
    pub negative_cache_ttl: u32,
    /// `daemon.backend_timeout`, seconds.
    pub backend_timeout: u32,
    /// `daemon.failure_budget` (the brute-force brake), when not the default.
    pub failure_budget: Option<u32>,
    /// Raw TOML appended at the end (extra sections).
    pub extra: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            minimum_uid: "1000".into(),
            required_groups: vec!["rstudio-users".into()],
            denied_users: vec!["mallory".into()],
            lowercase: true,
            display_separator: "/".into(),
            rewrite: vec![
                "^UID-([a-z]+)$ $1".into(),
                r"^([a-z0-9._-]+)@company\.com$ $1".into(),
            ],
            // No caching by default: tests edit users and files and expect to see the edit.
            cache_ttl: 0,
            negative_cache_ttl: 0,
            backend_timeout: 5,
            failure_budget: None,
            extra: String::new(),
        }
    }
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", quoted.join(", "))
}

impl Config {
    pub fn render(&self, socket: &Path, accounts_file: &Path) -> String {
        format!(
            "# written by accountmap-tests\n\
             [daemon]\n\
             socket = \"{}\"\n\
             cache_ttl = {}\n\
             negative_cache_ttl = {}\n\
             backend_timeout = {}\n\
             {}\
             \n\
             [access]\n\
             minimum_uid = {}\n\
             required_groups = {}\n\
             denied_users = {}\n\
             \n\
             [mapping]\n\
             lowercase = {}\n\
             display_separator = \"{}\"\n\
             accounts_file = \"{}\"\n\
             rewrite = {}\n\
             {}",
            socket.display(),
            self.cache_ttl,
            self.negative_cache_ttl,
            self.backend_timeout,
            self.failure_budget
                .map_or(String::new(), |n| format!("failure_budget = {n}\n")),
            self.minimum_uid,
            toml_list(&self.required_groups),
            toml_list(&self.denied_users),
            self.lowercase,
            self.display_separator,
            accounts_file.display(),
            toml_list(&self.rewrite),
            self.extra,
        )
    }
}

/// The accounts file every test starts with.
pub const STANDARD_ACCOUNTS: &str = "\
# external=local, as in /etc/rstudio/google-accounts
John.Doe@Company.com = jdoe
ops@company.com=root
legacy-sys = sysuser
";
