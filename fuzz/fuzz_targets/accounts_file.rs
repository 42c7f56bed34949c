//! The accounts-file parser on arbitrary text: a mapping or an error with a line inside the
//! text, never a panic; every key it accepted can be looked up, in any case.
#![no_main]

use accountmap::identity::accounts_file::Accounts;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Accounts::parse(text) {
        Ok(acc) => {
            for line in text.lines() {
                if let Some((external, _)) = line.trim().split_once('=') {
                    let external = external.trim();
                    if !line.trim_start().starts_with('#') && !external.is_empty() {
                        assert!(acc.lookup(external).is_some(), "{external:?}");
                        let _ = acc.lookup(&external.to_uppercase());
                    }
                }
            }
        }
        Err(e) => assert!(e.line >= 1 && e.line <= text.lines().count().max(1), "{e}"),
    }
});
