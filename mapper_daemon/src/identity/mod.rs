//! Who a typed name is, and whether that account may sign in: no I/O but reading the accounts
//! file, so every rule is unit-tested as a table.
//!
//! [`resolve`] runs the mapping pipeline (case folding, the display separator, the
//! [`accounts_file`], the [`rewrite`] rules, the directory's own answer) and [`policy`] checks
//! the account it found (minimum uid, required groups, denied users, aliases of privileged
//! accounts).

pub mod accounts_file;
pub mod policy;
pub mod resolve;
pub mod rewrite;
