//! Rewrite rules: an arbitrary rule is compiled (or refused) and applied to an arbitrary name,
//! both ways of case folding. Never a panic; a regex that would take unbounded time or memory
//! is refused at compile time (the regex crate's size limits), never hangs the daemon.
#![no_main]

use accountmap::identity::rewrite::RewriteRule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // First line: the rule; the rest: names to apply it to.
    let mut lines = text.split('\n');
    let Some(rule) = lines.next() else {
        return;
    };
    for ci in [false, true] {
        if let Ok(r) = RewriteRule::parse_with(rule, ci) {
            for name in lines.clone().take(8) {
                let _ = r.apply(name);
            }
        }
    }
});
