//! Account state as a directory records it: disabled, locked, expired, or a password that must
//! be changed first. SSSD refuses such accounts; so do we, in the account phase and before
//! every credential check, so that a sign-in that never binds as the user (an SSH key, an ID
//! token, a proxy signature, a cached decision) does not let a disabled user in.
//!
//! What is read (when the entry has it and the service account may read it):
//! - Active Directory: `userAccountControl` (ACCOUNTDISABLE 0x2), the constructed
//!   `msDS-User-Account-Control-Computed` (LOCKOUT 0x10, PASSWORD_EXPIRED 0x800000; it knows the
//!   domain's lockout duration, which `lockoutTime` alone does not), `accountExpires` (100 ns
//!   ticks since 1601; 0 and 0x7FFFFFFFFFFFFFFF mean never) and `pwdLastSet` (0: "user must
//!   change password at next logon").
//! - OpenLDAP ppolicy: `pwdAccountLockedTime` = `000001010000Z` (locked by an administrator
//!   until unlocked; a time-limited lockout is left to the bind, which knows the policy's
//!   duration) and `pwdReset: TRUE` (the password was reset and must be changed).
//! - RFC 2307 shadow attributes: `shadowExpire` (days since 1970), `shadowLastChange` = 0
//!   (must change), `shadowLastChange` + `shadowMax` in the past (password expired), as
//!   pam_unix reads /etc/shadow.

use accountmap_wire::Verdict;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The attributes [`AccountState::from_attributes`] reads; requested with every user search.
pub const STATE_ATTRIBUTES: &[&str] = &[
    "userAccountControl",
    COMPUTED_UAC,
    "accountExpires",
    "pwdLastSet",
    "pwdAccountLockedTime",
    "pwdReset",
    "shadowExpire",
    "shadowLastChange",
    "shadowMax",
];

/// Active Directory's constructed account-control attribute.
pub const COMPUTED_UAC: &str = "msDS-User-Account-Control-Computed";

const UF_ACCOUNTDISABLE: u64 = 0x2;
const UF_LOCKOUT: u64 = 0x10;
const UF_PASSWORD_EXPIRED: u64 = 0x80_0000;
/// Seconds from 1601-01-01 (Windows FILETIME's epoch) to 1970-01-01.
const FILETIME_TO_UNIX: u64 = 11_644_473_600;
/// ppolicy's "locked until an administrator unlocks it".
const PPOLICY_PERMANENT_LOCK: &str = "000001010000Z";

/// Why an account may not be used, whatever the credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    Disabled,
    Locked,
    MustChange,
    PasswordExpired,
}

impl Block {
    fn verdict(self) -> Verdict {
        match self {
            Block::Disabled | Block::Locked => Verdict::PolicyDenied,
            Block::MustChange | Block::PasswordExpired => Verdict::NewAuthtokRequired,
        }
    }
}

/// What the directory says about the account's usability.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountState {
    /// A block that holds at any time, with the reason naming the attribute.
    pub block: Option<(Block, String)>,
    /// When the account stops working, with the attribute that says so.
    pub expires: Option<(SystemTime, String)>,
}

impl AccountState {
    /// The state from an entry's attributes; `get(name)` gives an attribute's first value
    /// (names compared case-insensitively by the caller). Values that do not parse are
    /// ignored, as a missing attribute is.
    pub fn from_attributes<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
        now: SystemTime,
    ) -> AccountState {
        let number = |name: &str| get(name).and_then(|v| v.trim().parse::<i64>().ok());
        let flags = |name: &str| number(name).map(|n| n as u64);
        let mut block = None;
        let mut set = |b: Block, reason: String| {
            // The first found is the one reported: disabled before locked before the rest.
            block.get_or_insert((b, reason));
        };
        if let Some(uac) = flags("userAccountControl") {
            if uac & UF_ACCOUNTDISABLE != 0 {
                set(
                    Block::Disabled,
                    format!("userAccountControl {uac:#x} has ACCOUNTDISABLE (0x2): the account is disabled in the directory"),
                );
            }
        }
        if let Some(computed) = flags(COMPUTED_UAC) {
            if computed & UF_LOCKOUT != 0 {
                set(
                    Block::Locked,
                    format!("{COMPUTED_UAC} {computed:#x} has LOCKOUT (0x10): the account is locked out"),
                );
            }
        }
        if get("pwdAccountLockedTime").map(str::trim) == Some(PPOLICY_PERMANENT_LOCK) {
            set(
                Block::Locked,
                format!("pwdAccountLockedTime is {PPOLICY_PERMANENT_LOCK}: the account is locked by an administrator"),
            );
        }
        if number("pwdLastSet") == Some(0) {
            set(
                Block::MustChange,
                "pwdLastSet is 0: the user must change the password at next logon".into(),
            );
        }
        // After pwdLastSet: AD also sets PASSWORD_EXPIRED for "must change at next logon", and
        // the more specific reason is the one to report.
        if let Some(computed) = flags(COMPUTED_UAC).filter(|c| c & UF_PASSWORD_EXPIRED != 0) {
            set(
                Block::PasswordExpired,
                format!("{COMPUTED_UAC} {computed:#x} has PASSWORD_EXPIRED (0x800000): the password has expired and must be changed"),
            );
        }
        if get("pwdReset").is_some_and(|v| v.trim().eq_ignore_ascii_case("TRUE")) {
            set(
                Block::MustChange,
                "pwdReset is TRUE: the password was reset and must be changed".into(),
            );
        }
        let today = days_since_epoch(now);
        if let Some(last) = number("shadowLastChange") {
            if last == 0 {
                set(
                    Block::MustChange,
                    "shadowLastChange is 0: the password must be changed".into(),
                );
            } else if let Some(max) = number("shadowMax").filter(|m| (0..99_999).contains(m)) {
                if last.saturating_add(max) < today {
                    set(
                        Block::PasswordExpired,
                        format!("shadowLastChange {last} + shadowMax {max} is before today ({today}): the password has expired"),
                    );
                }
            }
        }
        let mut expires = None;
        if let Some(ticks) = number("accountExpires") {
            if let Some(at) = filetime(ticks) {
                expires = Some((at, format!("accountExpires {ticks}")));
            }
        }
        if let Some(day) = number("shadowExpire").filter(|d| *d >= 0) {
            let at = UNIX_EPOCH + Duration::from_secs(day as u64 * 86_400);
            if expires.as_ref().is_none_or(|(e, _)| at < *e) {
                expires = Some((at, format!("shadowExpire {day}")));
            }
        }
        AccountState { block, expires }
    }

    /// Why the account may not be used at `now`, as a verdict and a reason.
    pub fn refusal(&self, now: SystemTime) -> Option<(Verdict, String)> {
        if let Some((b, reason)) = &self.block {
            return Some((b.verdict(), reason.clone()));
        }
        let (at, attribute) = self.expires.as_ref()?;
        (*at <= now).then(|| {
            let ago = now.duration_since(*at).unwrap_or_default().as_secs() / 86_400;
            (
                Verdict::AccountExpired,
                format!("{attribute}: the account expired {ago} day(s) ago"),
            )
        })
    }
}

/// A FILETIME count of 100 ns ticks since 1601 as a time; `None` for "never" (0 and the
/// largest value).
fn filetime(ticks: i64) -> Option<SystemTime> {
    if ticks <= 0 || ticks == i64::MAX {
        return None;
    }
    let secs = (ticks as u64 / 10_000_000).checked_sub(FILETIME_TO_UNIX)?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

fn days_since_epoch(now: SystemTime) -> i64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as i64)
}

/// An AD bind refusal's `data NNN` (in the server's diagnostic text, as in
/// `80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 773, v4563`)
/// as a verdict and what it means; `None` for a plain wrong password (52e) or no code.
pub fn ad_bind_refusal(text: &str) -> Option<(Verdict, &'static str)> {
    let code = text
        .split(", data ")
        .nth(1)?
        .split(|c: char| !c.is_ascii_hexdigit())
        .next()?;
    Some(match code.to_ascii_lowercase().as_str() {
        "530" => (Verdict::PolicyDenied, "logon not permitted at this time"),
        "531" => (
            Verdict::PolicyDenied,
            "logon not permitted from this workstation",
        ),
        "532" => (Verdict::NewAuthtokRequired, "the password has expired"),
        "533" => (Verdict::PolicyDenied, "the account is disabled"),
        "701" => (Verdict::AccountExpired, "the account has expired"),
        "773" => (
            Verdict::NewAuthtokRequired,
            "the user must change the password before signing in",
        ),
        "775" => (Verdict::PolicyDenied, "the account is locked out"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
