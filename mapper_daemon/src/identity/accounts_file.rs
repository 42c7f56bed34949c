//! The accounts file: one `external=local` per line, RStudio's `/etc/rstudio/google-accounts`
//! format. Blank lines and lines starting with `#` are ignored, spaces around both sides are
//! trimmed, and the external side is compared lower-cased.
//!
//! [`AccountsFile`] re-reads the file whenever its inode, size or times change, so edits take
//! effect without a restart. A file that no longer parses is reported and the last good version
//! is kept, exactly as a bad config is on SIGHUP.
//!
//! Every decision must use either the old or the new mapping, never half a file. A file
//! replaced by a rename (`mv`, `sed -i`, `install`, most editors) is a new inode, complete when
//! it appears, and is taken at once. A file rewritten in place (`cat >`, `echo >`) goes through
//! states that are valid but wrong, an empty file after the truncation above all; so a change
//! to the same inode is taken only once the file has been left alone for [`SETTLE`], and a
//! version that changed while it was read is never taken. Until then the previous version
//! stays in force.
//!
//! The file decides who signs in as whom, so it is trusted only under the rules of
//! [`crate::config::trust`] (owned by root or the daemon, writable by nobody else, in
//! directories only they can write): a version that breaks them is refused like a version
//! that does not parse. Errors name the line and column and what was expected, never the
//! line's text: the file may be pointed at something secret (`/etc/shadow`, a key).

use crate::config::trust::{Role, Trust};
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How long a file rewritten in place must stay unchanged before it is taken (see the module
/// comment).
pub const SETTLE: Duration = Duration::from_secs(1);

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
                    message: "expected external=local (this line has no '='; its text is not shown, the file may hold secrets)".into(),
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
                    message: "the local side (after '=') is not a valid local user name: it must have no blanks, ':' or '/'".into(),
                });
            }
            let key = external.to_lowercase();
            if let Some((earlier, at)) = map.get(&key) {
                if earlier != local {
                    return Err(AccountsError {
                        line,
                        column,
                        message: format!(
                            "the identity on this line is already mapped to another account on line {at}; one identity maps to one account"
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

/// The largest accounts file read: far more than any mapping needs.
const MAX_ACCOUNTS_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a whole accounts file and parses it, trusting root and the daemon's own uid;
/// errors carry `FILE:LINE:COLUMN` (or `FILE:` alone) and never the file's text.
pub fn load(path: &Path) -> Result<Accounts, String> {
    load_with(path, &Trust::process())
}

/// As [`load`], trusting the owners in `trust`.
pub fn load_with(path: &Path, trust: &Trust) -> Result<Accounts, String> {
    let shown = path.display();
    let (file, meta) = crate::config::open_regular(path).map_err(|e| format!("{shown}: {e}"))?;
    crate::config::trusted(path, Role::Accounts, trust, &meta)
        .map_err(|e| format!("{shown}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_ACCOUNTS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{shown}: cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_ACCOUNTS_BYTES {
        return Err(format!(
            "{shown}: larger than {MAX_ACCOUNTS_BYTES} bytes; not an accounts file"
        ));
    }
    // The position of the first bad byte, not the bytes around it.
    let text = String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let before = e.as_bytes().get(..good).unwrap_or(&[]);
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(before.get(start..).unwrap_or(&[]))
            .chars()
            .count()
            + 1;
        format!("{shown}:{line}:{column}: not UTF-8 text")
    })?;
    Accounts::parse(&text).map_err(|e| format!("{shown}:{e}"))
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
    settle: Duration,
    /// Who may own the file and its directories.
    trust: Trust,
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
        AccountsFile::open_with_settle(path, SETTLE)
    }

    /// As [`AccountsFile::open`], with another settle time (tests).
    pub fn open_with_settle(path: &Path, settle: Duration) -> Result<AccountsFile, String> {
        AccountsFile::open_with(path, settle, Trust::process())
    }

    /// As [`AccountsFile::open`], with another settle time and the owners to trust (tests).
    pub fn open_with(path: &Path, settle: Duration, trust: Trust) -> Result<AccountsFile, String> {
        let file = AccountsFile {
            path: path.to_path_buf(),
            settle,
            trust,
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
        let mut state = crate::util::lock(&self.state);
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
        let Some(new) = stamp else {
            state.stamp = None;
            state.accounts = Default::default();
            return (state.accounts.clone(), Reload::Missing);
        };
        // The same inode changed: an in-place rewrite, perhaps still under way. Keep the
        // previous version (and its stamp, so that the next call looks again) until the file
        // has been left alone for the settle time.
        if let Some(old) = state.stamp {
            if (old.dev, old.ino) == (new.dev, new.ino) && !self.settled(&new) {
                return (state.accounts.clone(), Reload::Unchanged);
            }
        }
        match load_with(&self.path, &self.trust) {
            // Changed while it was read (or replaced since the stat): what was read may be
            // half of something; the next call reads it again.
            Ok(_) if std::fs::metadata(&self.path).ok().map(|m| Stamp::of(&m)) != stamp => {
                (state.accounts.clone(), Reload::Unchanged)
            }
            Ok(accounts) => {
                state.stamp = stamp;
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

impl AccountsFile {
    /// Whether the version with this stamp was last modified at least the settle time ago. A
    /// modification time in the future (a clock step) counts as settled once it is a settle
    /// time ahead, lest the file be ignored until the clock catches up.
    fn settled(&self, stamp: &Stamp) -> bool {
        if self.settle.is_zero() {
            return true;
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let settle = self.settle.as_nanos() as i128;
        let age = now - stamp.mtime_ns.max(stamp.ctime_ns);
        age >= settle || age <= -settle
    }
}

#[cfg(test)]
mod tests;
