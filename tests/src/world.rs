//! The made-up users and groups nss_wrapper serves to the daemon and to pamtester.

use std::fmt::Write as _;

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The users and groups nss_wrapper serves to the daemon (and to pamtester).
#[derive(Clone, Debug)]
pub struct World {
    pub users: Vec<User>,
    pub groups: Vec<Group>,
}

/// gid of `rstudio-users`, the required group of the default config.
pub const RSTUDIO_USERS_GID: u32 = 2000;

impl World {
    /// The cast every test shares (minimum uid 1000, required group `rstudio-users`):
    ///
    /// | name | uid | groups | expected |
    /// |---|---|---|---|
    /// | root | 0 | root | denied (uid) |
    /// | sysuser | 500 | rstudio-users (supplementary) | denied (uid) |
    /// | alice | 1001 | rstudio-users (supplementary) | allowed |
    /// | bob | 1002 | staff only | denied (group) |
    /// | jdoe | 1003 | rstudio-users | allowed; alias `John.Doe@Company.com` in the accounts file |
    /// | jsmith | 1004 | rstudio-users | allowed; alias `UID-jsmith` by rewrite |
    /// | rsuser24 | 1005 | rstudio-users | allowed; `rsuser24/jsmith` |
    /// | carol | 1006 | rstudio-users as PRIMARY group only | allowed |
    /// | mallory | 1007 | rstudio-users | denied (denied_users) |
    /// | erin | 1009 | rstudio-admins only | denied unless rstudio-admins is required too |
    /// | nobody | 65534 | rstudio-users | allowed (the unprivileged peer of the peer tests) |
    pub fn standard() -> World {
        let mut w = World {
            users: Vec::new(),
            groups: Vec::new(),
        };
        for (name, uid, gid) in [
            ("root", 0, 0),
            ("sysuser", 500, 500),
            ("alice", 1001, 1001),
            ("bob", 1002, 1002),
            ("jdoe", 1003, 1003),
            ("jsmith", 1004, 1004),
            ("rsuser24", 1005, 1005),
            ("carol", 1006, RSTUDIO_USERS_GID),
            ("mallory", 1007, 1007),
            ("erin", 1009, 1009),
            ("nobody", 65534, 65534),
        ] {
            w.users.push(User {
                name: name.into(),
                uid,
                gid,
            });
            if gid == uid {
                let group = if name == "nobody" { "nogroup" } else { name };
                w.groups.push(Group {
                    name: group.into(),
                    gid,
                    members: vec![],
                });
            }
        }
        w.groups.push(Group {
            name: "rstudio-users".into(),
            gid: RSTUDIO_USERS_GID,
            members: [
                "sysuser", "alice", "jdoe", "jsmith", "rsuser24", "mallory", "nobody",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        });
        w.groups.push(Group {
            name: "rstudio-admins".into(),
            gid: 2001,
            members: vec!["erin".into()],
        });
        w.groups.push(Group {
            name: "staff".into(),
            gid: 2002,
            members: vec!["bob".into()],
        });
        w
    }

    pub fn group_mut(&mut self, name: &str) -> &mut Group {
        self.groups
            .iter_mut()
            .find(|g| g.name == name)
            .unwrap_or_else(|| panic!("no group {name} in the test world"))
    }

    pub fn passwd(&self) -> String {
        let mut s = String::new();
        for u in &self.users {
            let _ = writeln!(
                s,
                "{}:x:{}:{}:{} (test):/home/{}:/bin/sh",
                u.name, u.uid, u.gid, u.name, u.name
            );
        }
        s
    }

    pub fn group(&self) -> String {
        let mut s = String::new();
        for g in &self.groups {
            let _ = writeln!(s, "{}:x:{}:{}", g.name, g.gid, g.members.join(","));
        }
        s
    }
}
