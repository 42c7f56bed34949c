//! Reading files: the main file and its `conf.d` drop-ins (see the module documentation of
//! [`super`] for the order), and secret files. Each file is opened once and checked on the opened
//! file, so the file checked is the file read.

use super::trust::{check_path, Role, Trust};
use super::{ConfigError, Secret};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A config or drop-in file larger than this is refused before it is parsed.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// A secret file larger than this is refused: keys and passwords are small.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// The texts [`super::load`] validates.
pub(super) struct Texts {
    /// Every file, main first, also a drop-in that could not be read.
    pub(super) files: Vec<PathBuf>,
    /// Each file that could be read, with its text, in the order of `files`.
    pub(super) texts: Vec<(PathBuf, String)>,
    /// Why a drop-in (or `conf.d` itself) could not be read.
    pub(super) errors: Vec<ConfigError>,
}

/// Reads `path` and then every `conf.d/*.toml` beside it in name order. A main file that cannot
/// be read is the only error: the drop-ins are then not read.
pub(super) fn read_with_drop_ins(path: &Path, trust: &Trust) -> Result<Texts, ConfigError> {
    let mut errors = Vec::new();
    let mut files = vec![path.to_path_buf()];
    let main_text = read_config_file(path, trust)?;
    let mut texts = vec![(path.to_path_buf(), main_text)];
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match drop_ins(&dir.join("conf.d")) {
        Ok(paths) => {
            for p in paths {
                files.push(p.clone());
                match read_config_file(&p, trust) {
                    Ok(text) => texts.push((p, text)),
                    Err(e) => errors.push(e),
                }
            }
        }
        Err(e) => errors.push(e),
    }
    Ok(Texts {
        files,
        texts,
        errors,
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
pub(crate) fn open_regular(path: &Path) -> Result<(fs::File, fs::Metadata), String> {
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

/// Checks that the file opened as `opened` from `path` may be trusted ([`super::trust`]): the
/// walk from `/` must end at the very file that was opened.
pub(crate) fn trusted(
    path: &Path,
    role: Role,
    trust: &Trust,
    opened: &fs::Metadata,
) -> Result<(), String> {
    let (_, walked) = check_path(path, role, trust).map_err(|e| e.0)?;
    if (walked.dev(), walked.ino()) != (opened.dev(), opened.ino()) {
        return Err(format!(
            "{} was replaced while it was checked; check it again",
            path.display()
        ));
    }
    Ok(())
}

fn read_config_file(path: &Path, trust: &Trust) -> Result<String, ConfigError> {
    let (file, meta) = open_regular(path).map_err(|e| {
        // "FILE: cannot read: …" rather than repeating the path.
        let prefix = format!("cannot read {}: ", path.display());
        match e.strip_prefix(&prefix) {
            Some(rest) => ConfigError::file(path, format!("cannot read: {rest}")),
            None => ConfigError::file(path, "not a regular file"),
        }
    })?;
    trusted(path, Role::Config, trust, &meta).map_err(|e| ConfigError::file(path, e))?;
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

/// What to do with a secret file's content.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum SecretUse {
    /// Check only (the TLS client key, which the TLS library reads itself).
    Check,
    /// Keep the bytes; must not be empty.
    Bytes,
    /// Keep the bytes; must be non-empty UTF-8 without NUL (passwords, client secrets).
    Text,
}

/// Opens a secret file, checks who may have written it ([`super::trust`]) and its type and
/// mode on the opened file, and reads it.
pub(super) fn read_secret(path: &Path, usage: SecretUse, trust: &Trust) -> Result<Secret, String> {
    let (file, meta) = open_regular(path)?;
    trusted(path, Role::Secret, trust, &meta)?;
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
