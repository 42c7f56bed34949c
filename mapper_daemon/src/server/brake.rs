//! The brute-force brake: a budget of credential checks per account, kept apart for the
//! places the account's owner signs in from.
//!
//! A credential check (`verify=ldap|oidc|proxy`) of a local account needs a token of a
//! budget; a wrong credential spends it, a right one gives it back. A budget holds [`BURST`]
//! tokens (a few typos cost nothing) and regains one every [`REFILL`]. When a budget is empty,
//! the attempt is refused *unchecked*, at once, with the same verdict as a wrong password: the
//! guess is wasted, and the guesser cannot tell it was never tried. So however many threads,
//! name variants (`alice`, `ALICE`, `rsuser/alice`, an email alias: all resolve to the account
//! before the budget is chosen) and remote hosts an attacker uses, one account's credential is
//! checked at most `BURST` times and then once per `REFILL`.
//!
//! Which budget: a *source* is where the attempt comes from — the remote host of a root
//! service (PAM_RHOST as sshd reports it), the uid of a non-root caller, or, for a root service
//! that names no remote host (RStudio's rserver-pam, su, login), "local".
//! - An attempt from a source that signed this account in successfully within [`FAMILIAR_FOR`]
//!   (a *familiar* source: the owner's own machine) uses a budget of its own for that account
//!   and source. Failures elsewhere do not touch it, so an attacker failing as alice from
//!   other hosts does not lock alice out of her usual one.
//! - Any other attempt uses the account's shared budget, and also its source's own budget
//!   ([`SOURCE_BURST`], one every [`SOURCE_REFILL`]), which slows one host spraying guesses
//!   over many accounts. "Local" has no source budget: it is every local service at once.
//!
//! What this does not do: tell an attacker from the owner when both come from the same
//! source, or when the owner signs in from a new host while the account is under attack (that
//! attempt may be refused until the attack stops: it shares the account's budget). Familiar
//! sources live in memory: a restart forgets them. Lock-outs are pam_faillock's job (README).
//!
//! Memory is bounded: at most [`MAX_KEYS`] budgets and as many familiar sources; when full,
//! full budgets (which carry no information) are dropped first, then the least recently used.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures a budget absorbs before it brakes (a few typos).
pub const BURST: u32 = 5;
/// One more check of an account per this long, once its budget is spent: at most 0.5 checked
/// guesses a second per account, however the attack is spread.
pub const REFILL: Duration = Duration::from_secs(2);
/// A source's own budget, over all the accounts it tries: a busy NAT gateway's typos fit.
pub const SOURCE_BURST: u32 = 10;
/// One more check from a source per this long, once its budget is spent.
pub const SOURCE_REFILL: Duration = Duration::from_secs(1);
/// How long a successful sign-in makes its source familiar for the account.
pub const FAMILIAR_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Budgets remembered at most, and familiar sources at most (each a few dozen bytes).
pub const MAX_KEYS: usize = 16 * 1024;

/// Where an attempt comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// PAM_RHOST as a root service reported it.
    RemoteHost(String),
    /// A non-root caller (which may only ask about its own account).
    PeerUid(u32),
    /// A root service that named no remote host.
    Local,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::RemoteHost(h) => write!(f, "remote host {h:?}"),
            Source::PeerUid(u) => write!(f, "peer uid {u}"),
            Source::Local => f.write_str("local services"),
        }
    }
}

/// A budget of checks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Budget {
    /// The account's, shared by every source that is not familiar.
    Account(String),
    /// The account's for one familiar source.
    Familiar(String, Source),
    /// A source's, over all the accounts it tries.
    Source(Source),
}

/// Tokens when full, and the time one token takes to come back.
type Shape = (f64, Duration);

impl Budget {
    /// The shape of this budget, where `account` is that of accounts' budgets.
    fn shape(&self, account: Shape) -> Shape {
        match self {
            Budget::Account(_) | Budget::Familiar(..) => account,
            Budget::Source(_) => (f64::from(SOURCE_BURST), SOURCE_REFILL),
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::Account(a) => write!(f, "account {a:?}"),
            Budget::Familiar(a, s) => write!(f, "account {a:?} from {s}"),
            Budget::Source(s) => write!(f, "{s}"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
    /// Checks admitted and not yet settled: each holds one of `tokens` until its outcome is
    /// known, so that parallel guesses cannot all pass on the same tokens.
    reserved: u32,
}

impl Bucket {
    fn refill(&mut self, now: Instant, (burst, per): Shape) {
        // Threads read the clock before they take the lock, so `now` can be a little older
        // than `at`: never move `at` back, or the same interval would be credited twice.
        if now <= self.at {
            return;
        }
        let gained = (now - self.at).as_secs_f64() / per.as_secs_f64();
        self.tokens = (self.tokens + gained).min(burst);
        self.at = now;
    }

    /// Time until a token is there.
    fn wait(&self, (_, per): Shape) -> Duration {
        per.mul_f64((1.0 - self.tokens).max(0.0))
    }
}

struct Books {
    /// The shape of the accounts' budgets (`daemon.failure_budget`, `failure_refill`).
    account: Shape,
    buckets: HashMap<Budget, Bucket>,
    /// (account, source) → the last successful sign-in.
    familiar: HashMap<(String, Source), Instant>,
}

/// A check that may go ahead; hand it back to [`Brake::settle`] with the outcome.
#[derive(Debug)]
#[must_use = "an admitted check must be settled, or its tokens stay spent"]
pub struct Ticket {
    account: String,
    source: Source,
    spent: Vec<Budget>,
}

/// How every refusal unchecked begins.
pub const HELD: &str = "refused unchecked by the brute-force brake:";

/// Why an attempt was refused unchecked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub budget: Budget,
    /// When the budget has a token again.
    pub retry_in: Duration,
    /// The budget has tokens, but checks in progress hold all of them (and did not finish
    /// within the wait).
    pub busy: bool,
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.busy {
            return write!(
                f,
                "{HELD} as many checks of {} are in progress as its failure budget has left",
                self.budget
            );
        }
        write!(
            f,
            "{HELD} the failure budget of {} is spent (the next check in {} ms)",
            self.budget,
            self.retry_in.as_millis()
        )
    }
}

/// What came of an admitted check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The credential was right and the sign-in allowed: tokens back, the source familiar.
    Allowed,
    /// The credential was wrong: the tokens stay spent.
    Failed,
    /// Anything else (a backend outage, the policy): tokens back, nothing learned.
    Inconclusive,
}

/// Refusals unchecked logged at most per [`UNCHECKED_LOG_INTERVAL`]: an attack makes thousands
/// a second, and syslog must not be the next thing it floods. The first line after a pause
/// says how many were not logged.
pub const UNCHECKED_LOG_LINES: u32 = 10;
pub const UNCHECKED_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The budgets; one per daemon, in [`crate::server::guards::Guards`] (a reload keeps them).
pub struct Brake {
    books: Mutex<Books>,
    /// Signalled when a check is settled (a reserved token is free again).
    settled: std::sync::Condvar,
    max_keys: usize,
    /// The refusals unchecked log: start of the current interval, lines logged in it, and
    /// refusals left out since the last line.
    unchecked_log: Mutex<(Option<Instant>, u32, u64)>,
}

impl Brake {
    pub fn new(max_keys: usize) -> Brake {
        Brake {
            books: Mutex::new(Books {
                account: (f64::from(BURST), REFILL),
                buckets: HashMap::new(),
                familiar: HashMap::new(),
            }),
            max_keys: max_keys.max(1),
            settled: std::sync::Condvar::new(),
            unchecked_log: Mutex::new((None, 0, 0)),
        }
    }

    /// The size of an account's budget and the time one failure takes to come back
    /// (`daemon.failure_budget`, `daemon.failure_refill`; a reload may change them: budgets
    /// already spent keep their tokens).
    pub fn configure(&self, budget: u32, refill: Duration) {
        self.lock().account = (
            f64::from(budget.max(1)),
            refill.max(Duration::from_millis(1)),
        );
    }

    /// Whether to log a refusal unchecked at `now`: `Some(n)` with the number not logged
    /// since the last line, or `None` to leave this one out.
    pub fn log_unchecked(&self, now: Instant) -> Option<u64> {
        let mut log = crate::util::lock(&self.unchecked_log);
        let (start, lines, skipped) = &mut *log;
        if start.is_none_or(|at| now.saturating_duration_since(at) >= UNCHECKED_LOG_INTERVAL) {
            (*start, *lines) = (Some(now), 0);
        }
        if *lines >= UNCHECKED_LOG_LINES {
            *skipped += 1;
            return None;
        }
        *lines += 1;
        Some(std::mem::take(skipped))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Books> {
        // Plain numbers and times, consistent after any panic elsewhere.
        crate::util::lock(&self.books)
    }

    /// The budgets an attempt on `account` from `source` spends.
    fn budgets(books: &Books, account: &str, source: &Source, now: Instant) -> Vec<Budget> {
        let familiar = books
            .familiar
            .get(&(account.to_string(), source.clone()))
            .is_some_and(|at| now.saturating_duration_since(*at) <= FAMILIAR_FOR);
        if familiar {
            return vec![Budget::Familiar(account.to_string(), source.clone())];
        }
        let mut budgets = vec![Budget::Account(account.to_string())];
        if *source != Source::Local {
            budgets.push(Budget::Source(source.clone()));
        }
        budgets
    }

    /// May a credential of `account` from `source` be checked at `now`? Reserves a token of
    /// each budget involved, or none when one of them is spent or all its tokens are reserved
    /// by checks in progress (`busy`).
    pub fn admit(&self, account: &str, source: &Source, now: Instant) -> Result<Ticket, Held> {
        let mut books = self.lock();
        Self::try_admit(&mut books, self.max_keys, account, source, now)
    }

    /// As [`Brake::admit`] at the current time, but an attempt that finds its budget's tokens
    /// all reserved by checks in progress waits up to `wait` for one of them to finish, instead
    /// of being refused: concurrent sign-ins with the right password (8 clients of one
    /// account) are not refused for being concurrent. A spent budget is refused at once.
    pub fn admit_within(
        &self,
        account: &str,
        source: &Source,
        wait: Duration,
    ) -> Result<Ticket, Held> {
        let deadline = Instant::now() + wait;
        let mut books = self.lock();
        loop {
            let now = Instant::now();
            match Self::try_admit(&mut books, self.max_keys, account, source, now) {
                Err(held) if held.busy && now < deadline => {
                    books = self
                        .settled
                        .wait_timeout(books, deadline - now)
                        .map_or_else(|e| e.into_inner().0, |(g, _)| g);
                }
                other => return other,
            }
        }
    }

    fn try_admit(
        books: &mut Books,
        max_keys: usize,
        account: &str,
        source: &Source,
        now: Instant,
    ) -> Result<Ticket, Held> {
        let budgets = Self::budgets(books, account, source, now);
        for budget in &budgets {
            let shape = budget.shape(books.account);
            if !books.buckets.contains_key(budget) && books.buckets.len() >= max_keys {
                let account = books.account;
                make_room(&mut books.buckets, now, &budgets, account);
            }
            let bucket = books.buckets.entry(budget.clone()).or_insert(Bucket {
                tokens: shape.0,
                at: now,
                reserved: 0,
            });
            bucket.refill(now, shape);
            let free = bucket.tokens - f64::from(bucket.reserved);
            if free < 1.0 {
                return Err(Held {
                    budget: budget.clone(),
                    retry_in: bucket.wait(shape),
                    busy: bucket.tokens >= 1.0,
                });
            }
        }
        for budget in &budgets {
            if let Some(b) = books.buckets.get_mut(budget) {
                b.reserved += 1;
            }
        }
        Ok(Ticket {
            account: account.to_string(),
            source: source.clone(),
            spent: budgets,
        })
    }

    /// The outcome of an admitted check.
    pub fn settle(&self, ticket: Ticket, outcome: Outcome, now: Instant) {
        let mut books = self.lock();
        for budget in &ticket.spent {
            let shape = budget.shape(books.account);
            if let Some(b) = books.buckets.get_mut(budget) {
                b.reserved = b.reserved.saturating_sub(1);
                if outcome == Outcome::Failed {
                    b.refill(now, shape);
                    b.tokens -= 1.0;
                }
            }
        }
        self.settled.notify_all();
        if outcome == Outcome::Allowed {
            let key = (ticket.account, ticket.source);
            if !books.familiar.contains_key(&key) && books.familiar.len() >= self.max_keys {
                let oldest = books
                    .familiar
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    books.familiar.remove(&oldest);
                }
            }
            books.familiar.insert(key, now);
        }
    }

    /// Budgets and familiar sources remembered now.
    pub fn len(&self) -> usize {
        let books = self.lock();
        books.buckets.len() + books.familiar.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops the budgets that have filled up again (they say nothing a new one would not); if
/// none has, the least recently touched one. Never one of `keep` (the attempt's own).
fn make_room(buckets: &mut HashMap<Budget, Bucket>, now: Instant, keep: &[Budget], account: Shape) {
    let before = buckets.len();
    buckets.retain(|budget, b| {
        let mut b = *b;
        let shape = budget.shape(account);
        b.refill(now, shape);
        b.tokens < shape.0 || b.reserved > 0 || keep.contains(budget)
    });
    if buckets.len() < before {
        return;
    }
    if let Some(oldest) = buckets
        .iter()
        .filter(|(k, b)| !keep.contains(k) && b.reserved == 0)
        .min_by_key(|(_, b)| b.at)
        .map(|(k, _)| k.clone())
    {
        buckets.remove(&oldest);
    }
}

#[cfg(test)]
mod tests;
