//! The accounts file: one `external=local` per line, RStudio's `/etc/rstudio/google-accounts`
//! format. Blank lines and lines starting with `#` are ignored, spaces around both sides are
//! trimmed, and the external side is compared lower-cased.
//!
//! [`AccountsFile`] re-reads the file whenever its inode, size or times change, so edits take
//! effect without a restart. A file that no longer parses is reported and the last good version
//! is kept, exactly as a bad config is on SIGHUP.

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A parsed accounts file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accounts {
    /// lower-cased external name → (local account, line number)
    map: HashMap<String, (String, usize)>,
}

/// A line of the file that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountsError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for AccountsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl Accounts {
    pub fn parse(text: &str) -> Result<Accounts, AccountsError> {
        let mut map: HashMap<String, (String, usize)> = HashMap::new();
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let column = raw.len() - raw.trim_start().len() + 1;
            let Some((external, local)) = content.split_once('=') else {
                return Err(AccountsError {
                    line,
                    column,
                    message: format!("expected external=local, found {content:?}"),
                });
            };
            let (external, local) = (external.trim(), local.trim());
            if external.is_empty() || local.is_empty() {
                return Err(AccountsError {
                    line,
                    column,
                    message: "both sides of external=local must be non-empty".into(),
                });
            }
            if local.contains(|c: char| c.is_whitespace() || c == ':' || c == '/') {
                return Err(AccountsError {
                    line,
                    column: column + content.find('=').unwrap_or(0) + 1,
                    message: format!("{local:?} is not a valid local user name"),
                });
            }
            let key = external.to_lowercase();
            if let Some((earlier, at)) = map.get(&key) {
                if earlier != local {
                    return Err(AccountsError {
                        line,
                        column,
                        message: format!(
                            "{external:?} is already mapped to {earlier:?} on line {at}; one identity maps to one account"
                        ),
                    });
                }
                continue;
            }
            map.insert(key, (local.to_string(), line));
        }
        Ok(Accounts { map })
    }

    /// The local account for `external` and the line that says so.
    pub fn lookup(&self, external: &str) -> Option<(&str, usize)> {
        self.map
            .get(&external.to_lowercase())
            .map(|(local, line)| (local.as_str(), *line))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// What identifies one version of the file on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        }
    }
}

/// Reads a whole accounts file and parses it; errors carry `FILE:LINE:COLUMN`.
pub fn load(path: &Path) -> Result<Accounts, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Accounts::parse(&text).map_err(|e| format!("{}:{e}", path.display()))
}

#[derive(Debug)]
struct Loaded {
    /// `None` while the file does not exist.
    stamp: Option<Stamp>,
    accounts: std::sync::Arc<Accounts>,
}

/// An accounts file that follows its changes on disk.
#[derive(Debug)]
pub struct AccountsFile {
    path: PathBuf,
    state: Mutex<Loaded>,
}

/// What changed on a [`AccountsFile::current`] call, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Reloaded(usize),
    Missing,
    /// The new version is unusable; the previous one stays in force.
    Failed(String),
}

impl AccountsFile {
    /// Loads the file now. A missing file is an empty mapping (the administrator may create it
    /// later); an unreadable or invalid one is an error.
    pub fn open(path: &Path) -> Result<AccountsFile, String> {
        let file = AccountsFile {
            path: path.to_path_buf(),
            state: Mutex::new(Loaded {
                stamp: None,
                accounts: Default::default(),
            }),
        };
        match file.refresh() {
            (_, Reload::Failed(e)) => Err(e),
            _ => Ok(file),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The accounts in force, re-reading the file first if it changed on disk.
    pub fn current(&self) -> (std::sync::Arc<Accounts>, Reload) {
        self.refresh()
    }

    fn refresh(&self) -> (std::sync::Arc<Accounts>, Reload) {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let stamp = match std::fs::metadata(&self.path) {
            Ok(meta) => Some(Stamp::of(&meta)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return (
                    state.accounts.clone(),
                    Reload::Failed(format!("{}: {e}", self.path.display())),
                )
            }
        };
        if stamp == state.stamp && (stamp.is_some() || state.accounts.is_empty()) {
            return (state.accounts.clone(), Reload::Unchanged);
        }
        if stamp.is_none() {
            state.stamp = None;
            state.accounts = Default::default();
            return (state.accounts.clone(), Reload::Missing);
        }
        match load(&self.path) {
            Ok(accounts) => {
                // Take the stamp again after reading: if the file changed while it was read,
                // the next call sees a different stamp and reads it again.
                state.stamp = std::fs::metadata(&self.path).ok().map(|m| Stamp::of(&m));
                let n = accounts.len();
                state.accounts = std::sync::Arc::new(accounts);
                (state.accounts.clone(), Reload::Reloaded(n))
            }
            Err(e) => {
                // Remember the stamp so that one bad edit is reported once, not per request.
                state.stamp = stamp;
                (state.accounts.clone(), Reload::Failed(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn google_accounts_format_parses() {
        let text =
            "# RStudio google-accounts\n\n  John.Doe@Company.com = jdoe \nann@company.com=ann\n";
        let acc = Accounts::parse(text).map_err(|e| e.to_string());
        assert!(acc.is_ok(), "{acc:?}");
        let acc = acc.unwrap_or_default();
        assert_eq!(acc.lookup("john.doe@company.com"), Some(("jdoe", 3)));
        assert_eq!(acc.lookup("JOHN.DOE@COMPANY.COM"), Some(("jdoe", 3)));
        assert_eq!(acc.lookup("ann@company.com"), Some(("ann", 4)));
        assert_eq!(acc.lookup("nobody@company.com"), None);
    }

    #[rstest]
    #[case::no_equals("jdoe\n", 1, 1, "expected external=local")]
    #[case::indented_no_equals("# c\n   jdoe\n", 2, 4, "expected external=local")]
    #[case::empty_local("a@b.c=\n", 1, 1, "non-empty")]
    #[case::empty_external(" = jdoe\n", 1, 2, "non-empty")]
    #[case::bad_local("a@b.c=j doe\n", 1, 7, "not a valid local user name")]
    #[case::conflict("a@b.c=x\nA@B.C=y\n", 2, 1, "already mapped to \"x\" on line 1")]
    fn bad_lines_are_located(
        #[case] text: &str,
        #[case] line: usize,
        #[case] column: usize,
        #[case] message: &str,
    ) {
        match Accounts::parse(text) {
            Ok(a) => panic!("accepted {text:?}: {a:?}"),
            Err(e) => {
                assert_eq!((e.line, e.column), (line, column), "{e}");
                assert!(e.message.contains(message), "{e}");
            }
        }
    }

    #[test]
    fn edits_are_followed_and_bad_edits_keep_the_old_version(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("accounts");
        let file = AccountsFile::open(&path)?;
        assert_eq!(file.current().1, Reload::Unchanged);
        assert!(file.current().0.is_empty());

        std::fs::write(&path, "a@x.org=alice\n")?;
        let (acc, what) = file.current();
        assert_eq!(what, Reload::Reloaded(1));
        assert_eq!(acc.lookup("a@x.org"), Some(("alice", 1)));

        std::fs::write(&path, "a@x.org=alice\nbroken line\n")?;
        let (acc, what) = file.current();
        assert!(
            matches!(what, Reload::Failed(ref e) if e.contains(":2:1: expected")),
            "{what:?}"
        );
        assert_eq!(acc.lookup("a@x.org"), Some(("alice", 1)));
        assert_eq!(
            file.current().1,
            Reload::Unchanged,
            "a bad edit is reported once"
        );

        std::fs::remove_file(&path)?;
        assert_eq!(file.current().1, Reload::Missing);
        assert!(file.current().0.is_empty());
        Ok(())
    }
}
