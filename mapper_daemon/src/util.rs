//! Small helpers with no home of their own: locks that survive a panic, remote text made fit
//! for a log line, bounded file reads.

use std::io::Read;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Locks `m`, and keeps going when a thread panicked while holding it. Only for locks whose
/// every update is a single push, pop, insert or assignment: a poisoned one of those still
/// holds consistent data.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Text from outside (a server's message, a token's claim) made fit for a log line or a
/// refusal reason: control characters (line breaks among them) become spaces, and at most
/// `max_chars` characters are kept.
pub fn shorten(text: &str, max_chars: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max_chars)
        .collect()
}

/// A server's message for a log line: [`shorten`] to 300 characters, trailing blanks removed.
pub fn one_line(text: &str) -> String {
    let mut out = shorten(text, 300);
    out.truncate(out.trim_end().len());
    out
}

/// At most the first `limit` bytes of the file at `path` (a bound that makes a wrong path
/// harmless, as a device or a huge log would be); the error names the path.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_becomes_one_bounded_line() {
        assert_eq!(one_line("a\nb\r\n"), "a b");
        assert_eq!(one_line(&"x".repeat(1000)).len(), 300);
        assert_eq!(shorten("a\tb ", 120), "a b ");
        assert_eq!(shorten("äöü", 2), "äö");
    }

    #[test]
    fn a_poisoned_lock_is_still_usable() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _guard = m2.lock();
            std::panic::panic_any("poison");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }

    #[test]
    fn reads_are_bounded_and_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, [b'x'; 100]).unwrap();
        assert_eq!(read_bounded(&path, 10).unwrap().len(), 10);
        assert_eq!(read_bounded(&path, 1000).unwrap().len(), 100);
        let err = read_bounded(&dir.path().join("missing"), 10).unwrap_err();
        assert!(
            err.starts_with("cannot read ") && err.contains("missing"),
            "{err}"
        );
    }
}
