//! Who may have written a file the daemon trusts: the rule of sshd's `StrictModes`, applied to
//! the config and its drop-ins, the accounts file, the secret files and the socket's directory.
//!
//! A file is trusted when
//! - it is owned by root or by the daemon's own effective uid ([`Trust::process`]), and not
//!   writable by group or others (secret files must moreover be 0600 or stricter, which the
//!   caller checks);
//! - every directory on its path, from `/` down, is owned by root or the daemon's uid and not
//!   writable by group or others. One exception, so that files under a private directory in
//!   `/tmp` (tests, containers) can be trusted: a directory writable by others *with the sticky
//!   bit* (`/tmp`, mode 1777) is accepted when it is not the file's own directory and the entry
//!   below it is owned by root or the daemon's uid and itself not writable by group or others.
//!   In a sticky directory nobody but an entry's owner (and the directory's) may rename or
//!   remove it, so that entry cannot be swapped; the file's own directory must be writable by
//!   root or the daemon alone, since anyone who can create names there can plant the file
//!   before it exists.
//! - symbolic links are followed one by one, as the kernel does: each link is reached through
//!   directories that passed the checks above (so nobody else can replace it; a link in a
//!   sticky directory must itself be owned by root or the daemon's uid), and its target is
//!   walked from `/` (absolute) or from the link's directory (relative) under the same rules.
//!   So the directories of both the link's path and the target's path are checked, and the
//!   file the checks approve is the file the daemon opens (the caller compares device and inode
//!   with the descriptor it reads from).
//!
//! The trusted uids are a parameter ([`Trust`]) so that unit tests mean the same as root (CI)
//! and as a normal user.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Symbolic links followed on one path at most (the kernel's limit is 40).
const MAX_LINKS: usize = 40;

/// The owners a trusted file or directory may have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trust {
    uids: Vec<u32>,
}

impl Trust {
    /// Root and the process's effective uid: the daemon trusts itself and root.
    pub fn process() -> Trust {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        Trust::uids(&[0, euid])
    }

    /// Exactly these owners (tests).
    pub fn uids(uids: &[u32]) -> Trust {
        let mut uids = uids.to_vec();
        uids.sort_unstable();
        uids.dedup();
        Trust { uids }
    }

    fn trusts(&self, uid: u32) -> bool {
        self.uids.contains(&uid)
    }

    /// "root" or "root or uid N", for messages.
    fn owners(&self) -> String {
        let names: Vec<String> = self
            .uids
            .iter()
            .map(|u| {
                if *u == 0 {
                    "root".to_string()
                } else {
                    format!("uid {u} (accountmapd's user)")
                }
            })
            .collect();
        names.join(" or ")
    }

    /// The owner to suggest in a `chown`.
    fn chown_to(&self) -> String {
        match self.uids.first() {
            Some(0) | None => "root:root".to_string(),
            Some(u) => u.to_string(),
        }
    }
}

/// What the file is, for the rule on its own mode and for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The config file or a drop-in.
    Config,
    /// `mapping.accounts_file`.
    Accounts,
    /// A secret file (0600 or stricter is checked by the caller, on the opened file).
    Secret,
    /// The directory of the socket (the walk ends on a directory).
    SocketDir,
}

impl Role {
    fn what(self) -> &'static str {
        match self {
            Role::Config => "config file",
            Role::Accounts => "accounts file",
            Role::Secret => "secret file",
            Role::SocketDir => "socket directory",
        }
    }
}

/// Why a path is not trusted: one located sentence with the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Untrusted(pub String);

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an entry sits on the walk, which decides what it may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A directory above the file, not its own directory.
    Ancestor,
    /// The directory that holds the file (or the link being followed).
    Parent,
    /// The file itself (for [`Role::SocketDir`], the directory itself).
    Target,
    /// A symbolic link on the way.
    Link,
}

/// The owner and mode of one entry, and whether it sits right below a sticky directory
/// writable by others (it must then itself be writable by nobody else).
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub uid: u32,
    pub mode: u32,
    pub below_sticky: bool,
}

/// The rule for one entry; `shown` is its path, `of` the file the walk is for.
pub fn check_entry(
    trust: &Trust,
    role: Role,
    place: Place,
    e: Entry,
    shown: &Path,
    of: &Path,
) -> Result<(), Untrusted> {
    let s = shown.display();
    let where_ = match place {
        Place::Target => format!("the {}", role.what()),
        Place::Parent => format!("the directory of {}", of.display()),
        Place::Ancestor => format!("a directory above {}", of.display()),
        Place::Link => format!("a symbolic link on the path of {}", of.display()),
    };
    if !trust.trusts(e.uid) {
        return Err(Untrusted(format!(
            "{s} ({where_}) is owned by uid {}; it must be owned by {}, or anyone with that uid can change what accountmapd trusts: chown {} {s}",
            e.uid,
            trust.owners(),
            trust.chown_to()
        )));
    }
    // A link's own mode means nothing; its directory decides who can replace it.
    if place == Place::Link {
        return Ok(());
    }
    let writable = e.mode & 0o022 != 0;
    if !writable {
        return Ok(());
    }
    let sticky = e.mode & 0o1000 != 0;
    let mode = e.mode & 0o7777;
    if place == Place::Ancestor && sticky && !e.below_sticky {
        // /tmp: the entry below is checked not to be writable by others.
        return Ok(());
    }
    let fix = if place == Place::Target && role == Role::Secret {
        format!("chmod 600 {s}")
    } else if place == Place::Target && role != Role::SocketDir {
        format!("chmod go-w {s}")
    } else if sticky {
        format!(
            "move {} to a directory that only {} can write (such as /etc/accountmap), or chmod go-w {s}",
            of.display(),
            trust.owners()
        )
    } else {
        format!("chmod go-w {s}")
    };
    Err(Untrusted(format!(
        "{s} ({where_}) has mode {mode:04o}: group or others can write it{}, so they could change what accountmapd trusts: {fix}",
        if sticky && place != Place::Target {
            " (the sticky bit does not protect a file's own directory or an entry right below another sticky directory)"
        } else {
            ""
        }
    )))
}

/// Walks `path` from `/` as the kernel resolves it, checking every directory, every symbolic
/// link and the final entry under `trust` for `role`. Returns the resolved path and the final
/// entry's metadata (a regular file or, for [`Role::SocketDir`], a directory), so that the
/// caller can compare it with what it opens.
pub fn check_path(
    path: &Path,
    role: Role,
    trust: &Trust,
) -> Result<(PathBuf, std::fs::Metadata), Untrusted> {
    if !path.is_absolute() {
        return Err(Untrusted(format!(
            "{} is a relative path; write an absolute path",
            path.display()
        )));
    }
    let io = |p: &Path, e: std::io::Error| Untrusted(format!("cannot check {}: {e}", p.display()));
    let mut todo: VecDeque<OsString> = components(path);
    let mut cur = PathBuf::from("/");
    let root = std::fs::symlink_metadata(&cur).map_err(|e| io(&cur, e))?;
    if todo.is_empty() {
        return Err(Untrusted(format!("{} names no file", path.display())));
    }
    let place = place_of(role, todo.len());
    check_entry(trust, role, place, entry(&root, false), &cur, path)?;
    let mut below_sticky = sticky_writable(&root);
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            // `cur`'s parent was checked on the way down (the walk always starts at `/`).
            cur.pop();
            let meta = std::fs::symlink_metadata(&cur).map_err(|e| io(&cur, e))?;
            below_sticky = sticky_writable(&meta);
            continue;
        }
        let next = cur.join(&name);
        let meta = std::fs::symlink_metadata(&next).map_err(|e| io(&next, e))?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(Untrusted(format!(
                    "{}: more than {MAX_LINKS} symbolic links on the way",
                    path.display()
                )));
            }
            // Only the link's owner (and root) may replace a link in a sticky directory; in
            // other directories, checked above, nobody else may.
            if below_sticky {
                check_entry(trust, role, Place::Link, entry(&meta, true), &next, path)?;
            }
            let target = std::fs::read_link(&next).map_err(|e| io(&next, e))?;
            let mut front = components(&target);
            front.extend(todo.drain(..));
            todo = front;
            if target.is_absolute() {
                cur = PathBuf::from("/");
                below_sticky = sticky_writable(&root);
            }
            continue;
        }
        let last = todo.is_empty();
        let place = if last {
            Place::Target
        } else {
            place_of(role, todo.len())
        };
        if last {
            let ok_type = if role_is_dir(role) {
                meta.is_dir()
            } else {
                meta.is_file()
            };
            if !ok_type {
                return Err(Untrusted(format!(
                    "{} is not a {}",
                    next.display(),
                    if role_is_dir(role) {
                        "directory"
                    } else {
                        "regular file"
                    }
                )));
            }
            check_entry(trust, role, place, entry(&meta, below_sticky), &next, path)?;
            return Ok((next, meta));
        }
        if !meta.is_dir() {
            return Err(Untrusted(format!("{} is not a directory", next.display())));
        }
        // When the next name is a link, its target is walked with the same rules, so the
        // target's own directory gets the strict check too.
        check_entry(trust, role, place, entry(&meta, below_sticky), &next, path)?;
        below_sticky = sticky_writable(&meta);
        cur = next;
    }
    Err(Untrusted(format!("{} names no file", path.display())))
}

/// The place of a directory with `left` names still to walk below it: the file's own
/// directory when one is left (the socket directory is itself the target, so its parent is a
/// plain ancestor).
fn place_of(role: Role, left: usize) -> Place {
    if left == 1 && !role_is_dir(role) {
        Place::Parent
    } else {
        Place::Ancestor
    }
}

fn role_is_dir(role: Role) -> bool {
    role == Role::SocketDir
}

fn sticky_writable(meta: &std::fs::Metadata) -> bool {
    meta.mode() & 0o1000 != 0 && meta.mode() & 0o022 != 0
}

fn entry(meta: &std::fs::Metadata, below_sticky: bool) -> Entry {
    Entry {
        uid: meta.uid(),
        mode: meta.mode() & 0o7777,
        below_sticky,
    }
}

/// The names of `path`, without the root and `.`.
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
