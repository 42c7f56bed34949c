//! The config loader on arbitrary text: errors, never a panic; every error names a position
//! inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/nonexistent/accountmap.toml");
    if let Err(errors) = accountmap::config::parse_str(path, text) {
        let shown = errors.to_string();
        assert!(!shown.is_empty());
    }
});
