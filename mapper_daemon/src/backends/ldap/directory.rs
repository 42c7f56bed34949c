//! One `[[ldap]]` section: the user search of step 5, the group and whitelist searches and
//! their filters, password and single-bind binds, and what LDAP result codes and server texts
//! mean for the caller.

use super::pool::{BindPool, ServerState, POOL_SIZE};
use super::state::{AccountState, COMPUTED_UAC, STATE_ATTRIBUTES};
use super::{single_bind_dn, LdapIdentity, PasswordCheck, SingleBind};
use crate::backends::tls::{self, ClientAuth, Trust};
use crate::config::{LdapConfig, MemberAttribute, NestedGroups};
use crate::log;
use crate::util::one_line;
use ldap3::{ldap_escape, Ldap, LdapError, Scope, SearchEntry};
use rustls::ClientConfig;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Group entries read per user; a directory answering more is cut off (and logged).
const MAX_GROUPS: usize = 1024;
/// Active Directory's in-chain matching rule (LDAP_MATCHING_RULE_IN_CHAIN): `member` through
/// any depth of nested groups, evaluated by the server.
const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";
/// The root DSE capability that says a server is Active Directory (LDAP_CAP_ACTIVE_DIRECTORY_OID;
/// Samba's AD DC announces it too).
const AD_CAPABILITY: &str = "1.2.840.113556.1.4.800";
/// Levels of nested groups followed on directories that cannot do it themselves.
const MAX_NESTING: usize = 8;

/// Who a membership search is about.
#[derive(Clone, Copy)]
struct Member<'a> {
    /// The entry's DN (empty when groups list members by name only).
    dn: &'a str,
    /// The entry's username attribute.
    uid: &'a str,
    /// The binary SID of the entry's primary group (Active Directory's `primaryGroupID`),
    /// which AD does not list in that group's `member`.
    primary: Option<&'a [u8]>,
}

/// How membership through nested groups is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Nesting {
    /// Direct membership only.
    Direct,
    /// The server follows the chain (Active Directory's matching rule).
    InChain,
    /// The daemon follows it, a bounded number of levels.
    Expand,
}

/// LDAP result codes the backend tells apart (RFC 4511, appendix A).
pub(super) const RC_SUCCESS: u32 = 0;
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
const RC_NO_SUCH_OBJECT: u32 = 32;
const RC_INVALID_CREDENTIALS: u32 = 49;
const RC_BUSY: u32 = 51;
const RC_UNAVAILABLE: u32 = 52;

/// Where a search runs: on the pooled service connections, or on a connection bound as the
/// user (single bind).
enum Via<'a> {
    Pool,
    User(&'a mut Ldap),
}

impl Via<'_> {
    fn is_user(&self) -> bool {
        matches!(self, Via::User(_))
    }
}

/// Why a user bind did not succeed.
enum BindFailure {
    /// A server answered no.
    Refused(String),
    /// No server answered.
    Unavailable(String),
}

/// What one bind on one connection came to.
enum BindAnswer {
    /// The server answered with this result code (success, or a refusal).
    Answered { rc: u32, text: String },
    /// The connection failed, or the server said it is busy or unavailable.
    Broken(String),
    /// No answer within the operation timeout.
    Timeout(String),
}

/// Why an operation did not complete: the server answered with a result code, or it could
/// not be asked at all (connection, TLS, timeout).
#[derive(Clone, Debug)]
pub(super) enum OpError {
    Result { rc: u32, text: String },
    Transport(String),
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Result { rc, text } if text.is_empty() => write!(f, "result code {rc}"),
            OpError::Result { rc, text } => write!(f, "result code {rc} ({text})"),
            OpError::Transport(e) => f.write_str(e),
        }
    }
}

pub(super) fn op_error(e: LdapError) -> OpError {
    match e {
        LdapError::LdapResult { result } => OpError::Result {
            rc: result.rc,
            text: one_line(&result.text),
        },
        other => OpError::Transport(one_line(&other.to_string())),
    }
}

/// One `[[ldap]]` section.
pub(super) struct Directory {
    pub(super) cfg: LdapConfig,
    pub(super) timeout: Duration,
    pub(super) lowercase: bool,
    /// `None` for plain LDAP.
    pub(super) tls: Option<Arc<ClientConfig>>,
    /// Idle service connections, already bound.
    pub(super) idle: Mutex<Vec<Ldap>>,
    /// At most [`POOL_SIZE`] service operations (and so connections) at once.
    pub(super) slots: Semaphore,
    pub(super) servers: Mutex<Vec<ServerState>>,
    /// Bind-only connections for password checks, per address.
    pub(super) binds: Arc<BindPool>,
    /// Password checks made (each one bind the server answered or not), for `status`.
    pub(super) password_checks: AtomicU64,
    /// Whether the server is Active Directory (its root DSE, read once it answered).
    pub(super) ad: Mutex<Option<bool>>,
}

impl Directory {
    pub(super) fn new(
        cfg: &LdapConfig,
        timeout: Duration,
        lowercase: bool,
    ) -> Result<Directory, String> {
        let tls = if cfg.tls || cfg.start_tls {
            Some(tls_settings(cfg).map_err(|e| format!("ldap {:?}: {e}", cfg.name))?)
        } else {
            None
        };
        Ok(Directory {
            cfg: cfg.clone(),
            timeout,
            lowercase,
            tls,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(POOL_SIZE),
            servers: Mutex::new(vec![ServerState::default(); cfg.server_address.len()]),
            binds: Arc::new(BindPool::new(cfg.server_address.len())),
            password_checks: AtomicU64::new(0),
            ad: Mutex::new(None),
        })
    }

    pub(super) fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn search_via(
        &self,
        via: &mut Via<'_>,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, OpError> {
        match via {
            Via::Pool => self.search(base, scope, filter, attrs).await,
            Via::User(ldap) => self.search_on(ldap, base, scope, filter, attrs).await,
        }
    }

    pub(super) async fn search_on(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, OpError> {
        let result = tokio::time::timeout(self.timeout, ldap.search(base, scope, filter, attrs))
            .await
            .map_err(|_| {
                OpError::Transport(format!(
                    "search not answered within {}s",
                    self.timeout.as_secs()
                ))
            })?
            .map_err(op_error)?;
        let (entries, res) = (result.0, result.1);
        if res.rc != RC_SUCCESS {
            return Err(OpError::Result {
                rc: res.rc,
                text: one_line(&res.text),
            });
        }
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries.into_iter().take(MAX_GROUPS + 1) {
            // SearchEntry::construct panics on BER it cannot parse: a broken or hostile server
            // must cost this answer, not the daemon's request thread.
            let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                SearchEntry::construct(entry)
            }));
            match parsed {
                Ok(e) => out.push(e),
                Err(_) => {
                    return Err(OpError::Transport(
                        "the server sent an entry that cannot be parsed".into(),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// Step 5 in this directory: the entry for `identity` (by email attribute when it contains
    /// `@`), `Ok(None)` when there is none.
    pub(super) async fn find(&self, identity: &str) -> Result<Option<LdapIdentity>, String> {
        let cfg = &self.cfg;
        if cfg.single_bind() {
            // Nothing to search with: only a sign-in with a password reads this directory.
            return Ok(None);
        }
        // Attribute and class names were checked at config load (letters, digits, '-', ';');
        // the identity is the only outside text in the filter, so it is escaped.
        let value = ldap_escape(identity);
        let by = if identity.contains('@') {
            let any: Vec<String> = cfg
                .user_email_attributes
                .iter()
                .map(|a| format!("({a}={value})"))
                .collect();
            match any.as_slice() {
                [one] => one.clone(),
                _ => format!("(|{})", any.concat()),
            }
        } else {
            format!("({}={value})", cfg.username_attribute)
        };
        let filter = format!("(&(objectClass={}){by})", cfg.user_object_class);
        let wanted = self.user_attributes();
        let user_search = async {
            self.search(&cfg.user_search_base_dn, Scope::Subtree, &filter, &wanted)
                .await
                .or_else(|e| match e {
                    OpError::Result {
                        rc: RC_NO_SUCH_OBJECT,
                        ..
                    } => Ok(Vec::new()),
                    e => Err(e),
                })
                .map_err(|e| format!("user search {filter:?}: {e}"))
        };
        // Members listed by name (group_member_attribute = "memberUid"): the groups of a
        // username do not depend on its entry, so the group and whitelist searches go out with
        // the user search and a cold look-up costs one round trip instead of two. Their answer
        // is used only when the entry's name is the name searched for (memberUid matches
        // exactly); otherwise they are sent again with the entry's name, as without the key.
        let early = (cfg.group_member_attribute == Some(MemberAttribute::MemberUid)
            && !identity.contains('@'))
        .then_some(identity);
        let (entries, early) = match early {
            Some(name) => {
                let by_name = Member {
                    dn: "",
                    uid: name,
                    primary: None,
                };
                let (entries, memberships) =
                    tokio::join!(Box::pin(user_search), Box::pin(self.memberships(by_name)));
                (entries?, Some((name, memberships)))
            }
            None => (user_search.await?, None),
        };
        let entry = match entries.as_slice() {
            [] => return Ok(None),
            [one] => one,
            _ => {
                log::warning(&format!(
                    "ldap {:?}: {} entries match {filter:?} under {:?}; an identity must match exactly one, so none is used",
                    self.name(),
                    entries.len(),
                    cfg.user_search_base_dn
                ));
                return Ok(None);
            }
        };
        // A multi-valued username attribute (uid: jdoe, uid: john.doe) must not map by the
        // server's arbitrary value order: the value searched for wins, then the one naming the
        // entry in its DN (uid=jdoe,…), then the first.
        let names = values(entry, &cfg.username_attribute);
        let searched = (!identity.contains('@'))
            .then(|| names.iter().find(|v| v.eq_ignore_ascii_case(identity)))
            .flatten();
        let in_dn = rdn_value(&entry.dn, &cfg.username_attribute)
            .and_then(|r| names.iter().find(|v| v.eq_ignore_ascii_case(r)));
        let Some(raw_name) = searched.or(in_dn).or_else(|| names.first()) else {
            log::warning(&format!(
                "ldap {:?}: entry {:?} has no {} attribute (or it is not readable); it is not used",
                self.name(),
                entry.dn,
                cfg.username_attribute
            ));
            return Ok(None);
        };
        if entry.dn.is_empty() {
            // An empty DN would make the password check an anonymous bind.
            return Ok(None);
        }
        let account = if self.lowercase {
            raw_name.to_lowercase()
        } else {
            raw_name.clone()
        };
        let primary = primary_group_sid(entry);
        let (groups, whitelisted) = match early {
            Some((name, memberships)) if name == raw_name.as_str() => memberships,
            _ => {
                self.memberships(Member {
                    dn: &entry.dn,
                    uid: raw_name,
                    primary: primary.as_deref(),
                })
                .await
            }
        };
        let (groups, whitelisted) = (groups?, whitelisted?);
        let state = self.account_state(&mut Via::Pool, entry).await;
        Ok(Some(LdapIdentity {
            directory: self.name().to_string(),
            dn: entry.dn.clone(),
            account,
            groups,
            whitelisted,
            single_bind: false,
            state,
        }))
    }

    /// What is read of a user's entry: the name, what finds the primary group, and the
    /// account state.
    fn user_attributes(&self) -> Vec<&str> {
        let mut wanted = vec![
            self.cfg.username_attribute.as_str(),
            "primaryGroupID",
            "objectSid",
        ];
        wanted.extend_from_slice(STATE_ATTRIBUTES);
        wanted
    }

    /// The entry's account state. Active Directory computes lockout and password expiry in
    /// `msDS-User-Account-Control-Computed`, which it may leave out of a subtree search: when
    /// an AD entry (one with `userAccountControl`) lacks it, the entry is read once more.
    async fn account_state(&self, via: &mut Via<'_>, entry: &SearchEntry) -> AccountState {
        let mut computed = None;
        if !values(entry, "userAccountControl").is_empty() && values(entry, COMPUTED_UAC).is_empty()
        {
            if let Ok(found) = self
                .search_via(
                    via,
                    &entry.dn,
                    Scope::Base,
                    "(objectClass=*)",
                    &[COMPUTED_UAC],
                )
                .await
            {
                computed = found
                    .first()
                    .and_then(|e| first_value(e, COMPUTED_UAC))
                    .cloned();
            }
        }
        AccountState::from_attributes(
            |name| {
                if name.eq_ignore_ascii_case(COMPUTED_UAC) && computed.is_some() {
                    return computed.as_deref();
                }
                first_value(entry, name).map(String::as_str)
            },
            std::time::SystemTime::now(),
        )
    }

    /// How membership through nested groups is found for `who` in this section:
    /// `nested_groups`, where `"auto"` follows the chain on Active Directory (asked once, in
    /// its root DSE) and nowhere else. Nothing to follow without the entry's DN.
    async fn nesting(&self, who: Member<'_>) -> Nesting {
        if who.dn.is_empty() || self.cfg.nested_groups == NestedGroups::Off {
            return Nesting::Direct;
        }
        match (self.cfg.nested_groups, self.is_ad().await) {
            (_, true) => Nesting::InChain,
            (NestedGroups::On, false) => Nesting::Expand,
            _ => Nesting::Direct,
        }
    }

    /// Whether the server announces Active Directory's capability (Samba's DC does too). An
    /// unanswered question is asked again next time; the answer, once given, is kept.
    async fn is_ad(&self) -> bool {
        if let Some(known) = *crate::util::lock(&self.ad) {
            return known;
        }
        match self
            .search(
                "",
                Scope::Base,
                "(objectClass=*)",
                &["supportedCapabilities"],
            )
            .await
        {
            Ok(entries) => {
                let ad = entries.iter().any(|e| {
                    values(e, "supportedCapabilities")
                        .iter()
                        .any(|c| c == AD_CAPABILITY)
                });
                *crate::util::lock(&self.ad) = Some(ad);
                ad
            }
            Err(_) => false,
        }
    }

    /// A filter matching groups that list the user by DN (`member`, `uniqueMember`) or by
    /// name (`memberUid`, posixGroup). Both values are escaped.
    /// The groups of the entry `dn` named `uid`, and whether it is in a whitelisted login
    /// group. They do not depend on each other: both searches are sent at once, each on a
    /// service connection of its own. `dn` may be empty when members are listed by name only.
    async fn memberships(
        &self,
        who: Member<'_>,
    ) -> (Result<Vec<String>, String>, Result<bool, String>) {
        let nesting = self.nesting(who).await;
        let (mut for_groups, mut for_whitelist) = (Via::Pool, Via::Pool);
        tokio::join!(
            Box::pin(self.groups(&mut for_groups, who, nesting)),
            Box::pin(self.whitelisted(&mut for_whitelist, who, nesting))
        )
    }

    /// Matches a group listing the entry `dn` (named `uid`) as a member: by the section's
    /// `group_member_attribute`, or else by any of the three member attributes.
    pub(super) fn membership_filter(
        attribute: Option<MemberAttribute>,
        dn: &str,
        uid: &str,
    ) -> String {
        let (dn, uid) = (ldap_escape(dn), ldap_escape(uid));
        match attribute {
            Some(MemberAttribute::MemberUid) => format!("(memberUid={uid})"),
            Some(a) => format!("({}={dn})", a.as_str()),
            None => format!("(|(member={dn})(uniqueMember={dn})(memberUid={uid}))"),
        }
    }

    /// Names of the groups under `group_search_base_dn` the user is in. With the user's own
    /// bind, groups the user may not read are not found; a search the server refuses is logged
    /// and gives no groups (so they satisfy no `access.required_groups`).
    async fn groups(
        &self,
        via: &mut Via<'_>,
        who: Member<'_>,
        nesting: Nesting,
    ) -> Result<Vec<String>, String> {
        let (dn, uid) = (who.dn, who.uid);
        let cfg = &self.cfg;
        let Some(base) = &cfg.group_search_base_dn else {
            return Ok(Vec::new());
        };
        let filter = format!(
            "(&(objectClass={}){})",
            cfg.group_object_class,
            self.member_of(who, nesting)
        );
        let as_user = via.is_user();
        let entries = match self.search_groups(via, base, &filter).await {
            Ok(e) if nesting == Nesting::Expand => {
                self.expand(via, base, e, Some(&cfg.group_object_class))
                    .await?
            }
            Ok(e) => e,
            Err(OpError::Result {
                rc: RC_NO_SUCH_OBJECT,
                ..
            }) => {
                log::warning(&format!(
                    "ldap {:?}: group_search_base_dn {base:?} does not exist{}",
                    self.name(),
                    if as_user {
                        " or the user may not read it (single bind: groups are read with the user's own bind); no LDAP groups count"
                    } else {
                        ""
                    }
                ));
                Vec::new()
            }
            Err(OpError::Result { rc, text }) if as_user => {
                log::warning(&format!(
                    "ldap {:?}: the group search as {dn:?} was refused (result code {rc}, {}): single bind reads groups with the user's own bind; no LDAP groups count",
                    self.name(),
                    one_line(&text)
                ));
                Vec::new()
            }
            Err(OpError::Result {
                rc: RC_SIZE_LIMIT_EXCEEDED,
                ..
            }) => {
                return Err(format!(
                    "group search {filter:?}: the server's size limit cut the answer short"
                ))
            }
            Err(e) => return Err(format!("group search {filter:?}: {e}")),
        };
        if entries.len() > MAX_GROUPS {
            log::warning(&format!(
                "ldap {:?}: {:?} is in more than {MAX_GROUPS} groups; only the first {MAX_GROUPS} count",
                self.name(),
                if dn.is_empty() { uid } else { dn }
            ));
        }
        let mut names: Vec<String> = Vec::new();
        for e in entries.iter().take(MAX_GROUPS) {
            if let Some(n) = first_value(e, &cfg.group_name_attribute) {
                // Group names are compared with access.required_groups and logged: only plain,
                // printable names are kept.
                if !n.is_empty() && !n.chars().any(char::is_control) && !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        Ok(names)
    }

    /// Whether the user is in one of `whitelisted_login_groups`. Each group is read by its DN
    /// with a membership filter, so the server's DN matching rules decide, not string equality.
    /// With the user's own bind (single bind), a group the user may not read counts as one
    /// the user is not in: the restriction is never skipped, the sign-in is refused.
    async fn whitelisted(
        &self,
        via: &mut Via<'_>,
        who: Member<'_>,
        nesting: Nesting,
    ) -> Result<bool, String> {
        let dn = who.dn;
        if self.cfg.whitelisted_login_groups.is_empty() {
            return Ok(true);
        }
        let as_user = via.is_user();
        if nesting == Nesting::Expand {
            if let Some(base) = &self.cfg.group_search_base_dn {
                // The user's groups through every level, compared by DN with the whitelist.
                // Of any object class: whitelisted groups need not be of group_object_class.
                let filter = self.member_of(who, Nesting::Direct);
                let direct = self
                    .search_via(via, base, Scope::Subtree, &filter, &["1.1"])
                    .await
                    .map_err(|e| format!("group search {filter:?}: {e}"))?;
                let all = self.expand(via, base, direct, None).await?;
                let listed = |g: &SearchEntry| {
                    self.cfg
                        .whitelisted_login_groups
                        .iter()
                        .any(|w| same_dn(w, &g.dn))
                };
                if all.iter().any(listed) {
                    return Ok(true);
                }
            }
        }
        let filter = self.member_of(who, nesting.min(Nesting::InChain));
        for group in &self.cfg.whitelisted_login_groups {
            match self
                .search_via(via, group, Scope::Base, &filter, &["1.1"])
                .await
            {
                Ok(entries) if !entries.is_empty() => return Ok(true),
                Ok(_) => {}
                Err(OpError::Result {
                    rc: RC_NO_SUCH_OBJECT,
                    ..
                }) if as_user => log::warning(&format!(
                    "ldap {:?}: whitelisted login group {group:?} does not exist or {dn:?} may not read it (single bind reads it with the user's own bind); it counts as a group the user is not in",
                    self.name()
                )),
                Err(OpError::Result {
                    rc: RC_NO_SUCH_OBJECT,
                    ..
                }) => log::warning(&format!(
                    "ldap {:?}: whitelisted login group {group:?} does not exist",
                    self.name()
                )),
                Err(OpError::Result { rc, text }) if as_user => log::warning(&format!(
                    "ldap {:?}: {dn:?} may not read whitelisted login group {group:?} (result code {rc}, {}); single bind reads it with the user's own bind, so it counts as a group the user is not in",
                    self.name(),
                    one_line(&text)
                )),
                Err(e) => return Err(format!("reading whitelisted group {group:?}: {e}")),
            }
        }
        Ok(false)
    }

    /// The groups under `base` that `filter` matches, with their names.
    async fn search_groups(
        &self,
        via: &mut Via<'_>,
        base: &str,
        filter: &str,
    ) -> Result<Vec<SearchEntry>, OpError> {
        let name = [self.cfg.group_name_attribute.as_str()];
        self.search_via(via, base, Scope::Subtree, filter, &name)
            .await
    }

    /// A filter matching the groups `who` is a member of: directly (by the section's member
    /// attribute), through any nesting (AD's in-chain rule), or as its primary group.
    fn member_of(&self, who: Member<'_>, nesting: Nesting) -> String {
        let direct = match nesting {
            Nesting::InChain => format!("(member:{IN_CHAIN}:={})", ldap_escape(who.dn)),
            Nesting::Direct | Nesting::Expand => {
                Self::membership_filter(self.cfg.group_member_attribute, who.dn, who.uid)
            }
        };
        match who.primary {
            Some(sid) => format!("(|{direct}(objectSid={}))", escape_bytes(sid)),
            None => direct,
        }
    }

    /// `found` and the groups they are members of, level by level (at most [`MAX_NESTING`]
    /// levels and [`MAX_GROUPS`] groups), for directories without the in-chain rule; of
    /// `class` when one is given.
    async fn expand(
        &self,
        via: &mut Via<'_>,
        base: &str,
        found: Vec<SearchEntry>,
        class: Option<&str>,
    ) -> Result<Vec<SearchEntry>, String> {
        let cfg = &self.cfg;
        let mut all = found;
        let mut frontier: Vec<String> = all.iter().map(|e| e.dn.clone()).collect();
        for _ in 0..MAX_NESTING {
            if frontier.is_empty() || all.len() > MAX_GROUPS {
                break;
            }
            let any: String = frontier
                .iter()
                .map(|dn| Self::membership_filter(cfg.group_member_attribute, dn, ""))
                .collect();
            let filter = match class {
                Some(class) => format!("(&(objectClass={class})(|{any}))"),
                None => format!("(|{any})"),
            };
            let parents = self
                .search_groups(via, base, &filter)
                .await
                .map_err(|e| format!("nested group search {filter:?}: {e}"))?;
            frontier.clear();
            for p in parents {
                if !all.iter().any(|e| same_dn(&e.dn, &p.dn)) {
                    frontier.push(p.dn.clone());
                    all.push(p);
                }
            }
        }
        Ok(all)
    }

    /// One simple bind as `dn` on `ldap`, bounded by the operation timeout.
    async fn bind_once(&self, ldap: &mut Ldap, dn: &str, password: &str) -> BindAnswer {
        match tokio::time::timeout(self.timeout, ldap.simple_bind(dn, password)).await {
            Err(_) => BindAnswer::Timeout(format!(
                "bind not answered within {}s",
                self.timeout.as_secs()
            )),
            Ok(Err(e)) => match op_error(e) {
                OpError::Transport(e) => BindAnswer::Broken(e),
                OpError::Result { rc, text } => BindAnswer::Answered { rc, text },
            },
            Ok(Ok(r)) if matches!(r.rc, RC_BUSY | RC_UNAVAILABLE) => BindAnswer::Broken(format!(
                "server busy or unavailable ({})",
                one_line(&r.text)
            )),
            Ok(Ok(r)) => BindAnswer::Answered {
                rc: r.rc,
                text: r.text,
            },
        }
    }

    /// Binds as `dn` with `password` on a bind-only connection ([`BindPool`]): an idle one to
    /// the address if there is one, else a new one. Addresses are tried in order until one
    /// answers. An idle connection that turns out to be broken (the server restarted or
    /// closed it) is replaced by a new one to the same address, once; a timeout is not
    /// retried on the same address (the server is slow or gone, and another try would only
    /// double the wait).
    pub(super) async fn check_password(&self, dn: &str, password: &str) -> PasswordCheck {
        self.password_checks.fetch_add(1, Ordering::Relaxed);
        let mut errors = Vec::new();
        'addresses: for (index, address) in self.cfg.server_address.iter().enumerate() {
            let mut pooled = self.binds.take(index);
            loop {
                let reused = pooled.is_some();
                let mut ldap = match pooled.take() {
                    Some(l) => l,
                    None => match Box::pin(self.open(index)).await {
                        Ok(l) => l,
                        Err(e) => {
                            self.record(index, Err(&e));
                            errors.push(format!("{address}: {e}"));
                            continue 'addresses;
                        }
                    },
                };
                match self.bind_once(&mut ldap, dn, password).await {
                    BindAnswer::Answered { rc, text } => {
                        self.record(index, Ok(()));
                        // Success and invalidCredentials leave the connection usable (bound
                        // as the user, or anonymous): it goes back for the next check. Any
                        // other refusal closes it, to be on the safe side.
                        if matches!(rc, RC_SUCCESS | RC_INVALID_CREDENTIALS) {
                            self.binds.put(index, ldap);
                        }
                        return if rc == RC_SUCCESS {
                            PasswordCheck::Accepted
                        } else {
                            PasswordCheck::Refused(refused(rc, &text))
                        };
                    }
                    BindAnswer::Broken(_) if reused => {
                        // The idle connection died while it waited: a new one, same address.
                        continue;
                    }
                    BindAnswer::Broken(e) | BindAnswer::Timeout(e) => {
                        self.record(index, Err(&e));
                        errors.push(format!("{address}: {e}"));
                        continue 'addresses;
                    }
                }
            }
        }
        PasswordCheck::Unavailable(self.no_bind_answer(&errors))
    }

    /// Why a bind failed on every address (`errors`: one "address: why" each), for the log.
    fn no_bind_answer(&self, errors: &[String]) -> String {
        format!(
            "ldap {:?}: no server answered the bind ({})",
            self.name(),
            errors.join("; ")
        )
    }

    /// A fresh connection bound as `dn` with `password`: addresses in order until one answers.
    /// For single bind, which then reads as the user on it (never on a pooled connection).
    async fn user_bind(&self, dn: &str, password: &str) -> Result<Ldap, BindFailure> {
        let mut errors = Vec::new();
        for (index, address) in self.cfg.server_address.iter().enumerate() {
            let mut ldap = match self.open(index).await {
                Ok(l) => l,
                Err(e) => {
                    self.record(index, Err(&e));
                    errors.push(format!("{address}: {e}"));
                    continue;
                }
            };
            let outcome = self.bind_once(&mut ldap, dn, password).await;
            if matches!(&outcome, BindAnswer::Answered { rc, .. } if *rc == RC_SUCCESS) {
                self.record(index, Ok(()));
                return Ok(ldap);
            }
            // Best effort: the connection is closed either way when `ldap` is dropped.
            let _ = tokio::time::timeout(Duration::from_millis(200), ldap.unbind()).await;
            match outcome {
                BindAnswer::Answered { rc, text } => {
                    self.record(index, Ok(()));
                    return Err(BindFailure::Refused(refused(rc, &text)));
                }
                BindAnswer::Broken(e) | BindAnswer::Timeout(e) => {
                    self.record(index, Err(&e));
                    errors.push(format!("{address}: {e}"));
                }
            }
        }
        Err(BindFailure::Unavailable(self.no_bind_answer(&errors)))
    }

    /// Single bind in this section: binds as [`single_bind_dn`] with `password`, then, on that
    /// connection and as that user, reads the user's own entry (base scope, `user_object_class`)
    /// for its username attribute, then the groups and the whitelisted groups.
    pub(super) async fn single_bind(&self, account: &str, password: &str) -> SingleBind {
        let dn = single_bind_dn(&self.cfg, account);
        let mut ldap = match self.user_bind(&dn, password).await {
            Ok(l) => l,
            Err(BindFailure::Refused(why)) => {
                return SingleBind::Refused(format!("bind as {dn:?}: {why}"))
            }
            Err(BindFailure::Unavailable(e)) => return SingleBind::Unavailable(e),
        };
        let outcome = self.own_identity(&mut ldap, &dn, account).await;
        let _ = tokio::time::timeout(Duration::from_millis(200), ldap.unbind()).await;
        outcome
    }

    async fn own_identity(&self, ldap: &mut Ldap, dn: &str, account: &str) -> SingleBind {
        let cfg = &self.cfg;
        let filter = format!("(objectClass={})", cfg.user_object_class);
        let wanted = self.user_attributes();
        let entries = match self
            .search_on(ldap, dn, Scope::Base, &filter, &wanted)
            .await
        {
            Ok(e) => e,
            Err(OpError::Transport(e)) => {
                return SingleBind::Unavailable(format!(
                    "ldap {:?}: reading {dn:?} as itself: {e}",
                    self.name()
                ))
            }
            Err(e) => {
                return SingleBind::Denied(format!(
                    "bound as {dn:?}, but it may not read its own entry ({e}); single bind needs users to read their own entry"
                ))
            }
        };
        let Some(entry) = entries.first() else {
            return SingleBind::Denied(format!(
                "bound as {dn:?}, but it is no {} entry (or may not read its own entry)",
                cfg.user_object_class
            ));
        };
        // The RDN value is one of the entry's values, but the server compares it
        // case-insensitively: the local account must be the directory's name exactly (after
        // lower-casing when mapping.lowercase is on), or `Alice` could sign in with alice's
        // password.
        let names = values(entry, &cfg.username_attribute);
        let matching = names.iter().find(|v| {
            if self.lowercase {
                v.to_lowercase() == account
            } else {
                v.as_str() == account
            }
        });
        let Some(raw_name) = matching else {
            return SingleBind::Denied(format!(
                "bound as {dn:?}, but no readable {} value of the entry is {account:?}",
                cfg.username_attribute
            ));
        };
        let raw_name = raw_name.clone();
        let primary = primary_group_sid(entry);
        let who = Member {
            dn,
            uid: &raw_name,
            primary: primary.as_deref(),
        };
        // No service connection to ask the root DSE with: an entry with userAccountControl is
        // Active Directory's, and `"auto"` keeps to direct membership here.
        let nesting = match (self.cfg.nested_groups, values(entry, "userAccountControl")) {
            (NestedGroups::On, []) => Nesting::Expand,
            (NestedGroups::On, _) => Nesting::InChain,
            _ => Nesting::Direct,
        };
        let state = self.account_state(&mut Via::User(&mut *ldap), entry).await;
        let groups = match self.groups(&mut Via::User(&mut *ldap), who, nesting).await {
            Ok(g) => g,
            Err(e) => return SingleBind::Unavailable(format!("ldap {:?}: {e}", self.name())),
        };
        let whitelisted = match self
            .whitelisted(&mut Via::User(&mut *ldap), who, nesting)
            .await
        {
            Ok(w) => w,
            Err(e) => return SingleBind::Unavailable(format!("ldap {:?}: {e}", self.name())),
        };
        SingleBind::Accepted(LdapIdentity {
            directory: self.name().to_string(),
            dn: dn.to_string(),
            account: account.to_string(),
            groups,
            whitelisted,
            single_bind: true,
            state,
        })
    }
}

/// The rustls configuration of a section: its CA (or the platform's trust store), or no
/// verification at all with `server_tls_insecure`, and a client certificate for mutual TLS.
fn tls_settings(cfg: &LdapConfig) -> Result<Arc<ClientConfig>, String> {
    let trust = if cfg.server_tls_insecure {
        // Config loading refuses this together with a CA and has already warned; say it again
        // where the connection is made, since it turns every certificate check off.
        log::warning(&format!(
            "ldap {:?}: server_tls_insecure = true: the directory's certificate is NOT checked",
            cfg.name
        ));
        Trust::Insecure
    } else if let Some(ca) = &cfg.tls_ca_certificate {
        Trust::CaFile(ca)
    } else {
        Trust::Platform {
            setting: "tls_ca_certificate",
        }
    };
    let client = match (&cfg.tls_client_certificate, &cfg.tls_client_key) {
        (Some(certificate), Some(key)) => Some(ClientAuth { certificate, key }),
        _ => None,
    };
    tls::client_config(trust, client).map(Arc::new)
}

fn refused(rc: u32, text: &str) -> String {
    let what = if rc == RC_INVALID_CREDENTIALS {
        "invalid credentials".to_string()
    } else if let Some(hint) = needs_tls(rc) {
        format!("bind refused with result code {rc}: {hint}")
    } else {
        format!("bind refused with result code {rc}")
    };
    let text = one_line(text);
    if text.is_empty() {
        what
    } else {
        format!("{what} ({text})")
    }
}

/// What result codes 8 (strongerAuthRequired) and 13 (confidentialityRequired) mean for a
/// simple bind: the server wants TLS first (Active Directory and Samba by default: "Transport
/// encryption required").
pub(super) fn needs_tls(rc: u32) -> Option<&'static str> {
    matches!(rc, 8 | 13).then_some(
        "the server accepts simple binds only over TLS (Active Directory and Samba by default); set start_tls = true, or tls = true with the LDAPS port (636)",
    )
}

/// The values of `attribute` (its name compared case-insensitively, as LDAP attribute names
/// are).
fn values<'a>(entry: &'a SearchEntry, attribute: &str) -> &'a [String] {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attribute))
        .map_or(&[], |(_, v)| v.as_slice())
}

/// The value of the first RDN of `dn` when its attribute is `attribute` and it has no escapes
/// (`uid=jdoe,ou=People,…` → `jdoe`).
pub(super) fn rdn_value<'a>(dn: &'a str, attribute: &str) -> Option<&'a str> {
    let first = dn.split(',').next()?;
    let (attr, value) = first.split_once('=')?;
    (attr.trim().eq_ignore_ascii_case(attribute) && !value.contains(['\\', '+']))
        .then(|| value.trim())
}

/// The first value of `attribute`.
fn first_value<'a>(entry: &'a SearchEntry, attribute: &str) -> Option<&'a String> {
    values(entry, attribute).first()
}

/// Two DNs written alike but for letter case and spaces around separators: enough for the DNs
/// a server hands back and an administrator copies from it.
fn same_dn(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> String {
        s.split(',')
            .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
            .collect::<Vec<_>>()
            .join(",")
            .to_lowercase()
    };
    norm(a) == norm(b)
}

/// The SID of the entry's primary group: its own `objectSid` with the last sub-authority (the
/// RID) replaced by `primaryGroupID`. `None` outside Active Directory.
fn primary_group_sid(entry: &SearchEntry) -> Option<Vec<u8>> {
    let rid: u32 = first_value(entry, "primaryGroupID")?.trim().parse().ok()?;
    let sid = entry
        .bin_attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("objectSid"))
        .and_then(|(_, v)| v.first())?;
    // revision, sub-authority count, 6-byte authority, then count × 4-byte little-endian.
    let count = usize::from(*sid.get(1)?);
    if count == 0 || sid.len() != 8 + 4 * count {
        return None;
    }
    let mut primary = sid.clone();
    primary[sid.len() - 4..].copy_from_slice(&rid.to_le_bytes());
    Some(primary)
}

/// Bytes as an RFC 4515 filter value: every byte `\XX`.
fn escape_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
