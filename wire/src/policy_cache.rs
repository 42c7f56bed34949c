//! The decision table: `policy.cache`, next to the daemon's socket, in the layout of
//! [`crate::memcache`] (its own magic, mode 0600). For each name a root PAM stack asked about
//! without a credential to check — the auth phase of `verify=none`, and every account phase —
//! the daemon keeps its decision for `cache_ttl`, and the PAM module answers the same question
//! from the table without a socket round trip, and logs that it did (the daemon never sees
//! those calls).
//!
//! Why this is sound: such a decision depends on the name and the directory alone (the daemon
//! decides it with no credential and no source: see `Engine::decide`), and the daemon stores
//! only what it decided for a root peer (a non-root caller gets another answer, and cannot read
//! the file). The file is the daemon's: readers trust it only when it is a regular file owned
//! by root (or themselves), writable by nobody else, of this boot and layout, exactly as
//! `passwd.cache`; it is emptied on every reload, accounts-file change and `cache flush`.
//!
//! Record: the numbers word holds the uid (bits 0–31), the verdict (32–39) and whether there
//! is a uid (bit 40); the strings are the account, the rule and the reason.

use crate::memcache::{Record, Table, TableWriter};
use crate::{Decision, Verdict};

/// The table's file name, in the directory of the daemon's socket.
pub const FILE_NAME: &str = "policy.cache";

/// The verdicts kept: what a policy decides. Errors, unknown names (anyone can make up
/// millions) and account states the directory may change at any moment are asked again.
pub fn storable(d: &Decision) -> bool {
    matches!(d.verdict, Verdict::Allowed | Verdict::PolicyDenied)
}

/// Stores `d` as the decision for `name` until `expiry`; false when it is not
/// [`storable`] or does not fit a record.
pub fn insert(w: &mut TableWriter<'_>, name: &str, d: &Decision, expiry: u64, now: u64) -> bool {
    if !storable(d) {
        return false;
    }
    let ids = u64::from(d.uid.unwrap_or(0))
        | (u64::from(d.verdict as u8) << 32)
        | (u64::from(d.uid.is_some()) << 40);
    let fields = [
        d.account.as_bytes(),
        d.rule.as_bytes(),
        d.reason.as_bytes(),
        b"".as_slice(),
    ];
    w.insert_record(name.as_bytes(), ids, fields, expiry, now)
}

/// The decision stored for `name`, if there is an unexpired one at `now`.
pub fn lookup(t: &Table<'_>, name: &str, now: u64) -> Option<Decision> {
    let Record { ids, fields } = t.lookup_record(name.as_bytes(), now)?;
    let verdict = Verdict::try_from(((ids >> 32) & 0xff) as u8).ok()?;
    let [account, rule, reason, _] = fields;
    let d = Decision {
        verdict,
        account,
        uid: (ids & (1 << 40) != 0).then_some(ids as u32),
        reason,
        rule,
        groups: Vec::new(),
    };
    storable(&d).then_some(d)
}

#[cfg(test)]
mod tests;
