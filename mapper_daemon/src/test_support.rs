//! Fixtures shared by the unit tests: made-up accounts, and an engine built the way the daemon
//! builds one, from a config file written to a temporary directory.

use crate::backends::system::{Account, StaticDirectory};
use crate::engine::Engine;
use crate::server::guards::Guards;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

/// The README's example policy: minimum uid 1000, group rstudio-users, mallory denied, an
/// accounts file `{dir}/accounts`, and rules for a proxy header and a company email.
pub const EXAMPLE_CONFIG: &str = "[daemon]\nsocket = \"/run/x.sock\"\n[access]\nminimum_uid = 1000\nrequired_groups = [\"rstudio-users\"]\ndenied_users = [\"mallory\"]\n[mapping]\naccounts_file = \"{dir}/accounts\"\nrewrite = ['^UID-([a-z]+)$ $1', '^([a-z0-9._-]+)@company\\.com$ $1']\n";

pub fn account(name: &str, uid: u32, gid: u32, groups: &[&str]) -> Account {
    Account {
        name: name.into(),
        uid,
        gid,
        gecos: format!("{name} (test)"),
        dir: format!("/home/{name}"),
        shell: "/bin/sh".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// Writes `files` (name, content, mode) into a new temporary directory, then `config` with
/// every `{dir}` replaced by that directory, and builds an engine over `directory` with guards
/// of its own (no two tests share a brake or a rate limit).
pub fn engine(
    files: &[(&str, &[u8], u32)],
    config: &str,
    directory: StaticDirectory,
) -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, content, mode) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    let path = dir.path().join("accountmap.toml");
    std::fs::write(
        &path,
        config.replace("{dir}", &dir.path().display().to_string()),
    )
    .unwrap();
    let engine = Engine::new(
        crate::config::load(&path).unwrap(),
        Arc::new(directory),
        Arc::new(Guards::new()),
    )
    .unwrap();
    (engine, dir)
}
