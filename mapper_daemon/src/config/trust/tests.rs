//! The trust rule ([`super`]): one rstest table over owners and modes with an injected set of
//! trusted uids (the same meaning as root and as a normal user), then walks over real files.

use super::*;
use rstest::rstest;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

const ME: u32 = 4242;
const OTHER: u32 = 1000;

fn trust() -> Trust {
    Trust::uids(&[0, ME])
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

fn is_root() -> bool {
    euid() == 0
}

#[rstest]
// the file itself
#[case::root_0644_file(Role::Config, Place::Target, 0, 0o644, false, None)]
#[case::daemon_user_0600_key(Role::Secret, Place::Target, ME, 0o600, false, None)]
#[case::user_owned_0600_key(
    Role::Secret,
    Place::Target,
    OTHER,
    0o600,
    false,
    Some("owned by uid 1000")
)]
#[case::world_writable_accounts(
    Role::Accounts,
    Place::Target,
    0,
    0o666,
    false,
    Some("has mode 0666")
)]
#[case::group_writable_drop_in(Role::Config, Place::Target, 0, 0o664, false, Some("chmod go-w"))]
// the file's own directory: no write for others, not even sticky
#[case::root_0755_dir(Role::Secret, Place::Parent, 0, 0o755, false, None)]
#[case::user_writable_dir(Role::Secret, Place::Parent, 0, 0o777, false, Some("has mode 0777"))]
#[case::sticky_tmp_as_own_dir(
    Role::Secret,
    Place::Parent,
    0,
    0o1777,
    false,
    Some("sticky bit does not protect")
)]
#[case::user_owned_dir(
    Role::Config,
    Place::Parent,
    OTHER,
    0o755,
    false,
    Some("chown root:root")
)]
// directories further up: sticky and world-writable (/tmp) passes, plain world-writable not
#[case::tmp_above(Role::Config, Place::Ancestor, 0, 0o1777, false, None)]
#[case::world_writable_above(Role::Config, Place::Ancestor, 0, 0o777, false, Some("0777"))]
#[case::sticky_below_sticky(Role::Config, Place::Ancestor, 0, 0o1777, true, Some("sticky"))]
#[case::user_owned_above(
    Role::Config,
    Place::Ancestor,
    OTHER,
    0o755,
    false,
    Some("owned by uid 1000")
)]
// the socket's directory is the target of its walk: nobody else may write it
#[case::socket_dir_0755(Role::SocketDir, Place::Target, 0, 0o755, false, None)]
#[case::socket_dir_1777(
    Role::SocketDir,
    Place::Target,
    0,
    0o1777,
    false,
    Some("group or others can write it")
)]
// links: only the owner matters (checked where others could replace the link)
#[case::own_link(Role::Secret, Place::Link, ME, 0o777, false, None)]
#[case::foreign_link(Role::Secret, Place::Link, OTHER, 0o777, false, Some("symbolic link"))]
fn entry_rules(
    #[case] role: Role,
    #[case] place: Place,
    #[case] uid: u32,
    #[case] mode: u32,
    #[case] below_sticky: bool,
    #[case] refusal: Option<&str>,
) {
    let e = Entry {
        uid,
        mode,
        below_sticky,
    };
    let got = check_entry(
        &trust(),
        role,
        place,
        e,
        Path::new("/x/y"),
        Path::new("/x/y/f"),
    );
    match (refusal, got) {
        (None, Ok(())) => {}
        (Some(want), Err(Untrusted(msg))) => {
            assert!(msg.contains(want), "{want:?} not in {msg:?}");
            assert!(
                msg.starts_with("/x/y ("),
                "the component comes first: {msg}"
            );
            assert!(
                msg.contains("chown") || msg.contains("chmod"),
                "no fix in {msg}"
            );
        }
        (want, got) => panic!("wanted refusal {want:?}, got {got:?}"),
    }
}

/// A private directory (0700, the process's own) holding the test's files: trusted as long as
/// the directories above it are (as `/tmp` is under the sticky rule).
fn private() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn write(path: &Path, mode: u32) {
    fs::write(path, "x = 1\n").unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_private_directory_under_tmp_is_trusted_and_the_walk_ends_at_the_file() {
    let dir = private();
    let f = dir.path().join("key");
    write(&f, 0o600);
    let (resolved, meta) = check_path(&f, Role::Secret, &Trust::process()).unwrap();
    assert_eq!(resolved, f);
    assert!(meta.is_file());
}

#[rstest]
#[case::world_writable_file(0o700, 0o666, "has mode 0666")]
#[case::group_writable_file(0o700, 0o620, "has mode 0620")]
#[case::world_writable_dir(0o777, 0o600, "has mode 0777")]
#[case::group_writable_dir(0o770, 0o600, "has mode 0770")]
#[case::sticky_own_dir(0o1777, 0o600, "sticky bit does not protect")]
fn modes_on_disk_are_refused(#[case] dir_mode: u32, #[case] file_mode: u32, #[case] want: &str) {
    let dir = private();
    let sub = dir.path().join("d");
    fs::create_dir(&sub).unwrap();
    let f = sub.join("f");
    write(&f, file_mode);
    chmod(&sub, dir_mode);
    let err = check_path(&f, Role::Accounts, &Trust::process()).unwrap_err();
    assert!(err.0.contains(want), "{want:?} not in {err}");
}

/// The owner rule on disk. As root the file is given to another uid; as a normal user the
/// process's own uid is left out of the trusted set, which makes its files foreign (the walk
/// then stops at the first of them: the private directory).
#[test]
fn a_file_of_an_untrusted_owner_is_refused_with_the_owner_and_the_fix() {
    let dir = private();
    let f = dir.path().join("hmac");
    write(&f, 0o600);
    let trust = if is_root() {
        std::os::unix::fs::chown(&f, Some(65534), Some(65534)).unwrap();
        Trust::process()
    } else {
        Trust::uids(&[0])
    };
    let err = check_path(&f, Role::Secret, &trust).unwrap_err();
    let owner = if is_root() { 65534 } else { euid() };
    assert!(err.0.contains(&format!("owned by uid {owner}")), "{err}");
    assert!(err.0.contains("chown root:root"), "{err}");
    if is_root() {
        assert!(err.0.starts_with(&f.display().to_string()), "{err}");
    }
}

#[test]
fn a_root_owned_key_in_a_directory_others_can_write_is_refused() {
    let dir = private();
    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    let f = open.join("key");
    write(&f, 0o600);
    chmod(&open, 0o777);
    let err = check_path(&f, Role::Secret, &Trust::process()).unwrap_err();
    assert!(
        err.0
            .starts_with(&format!("{} (the directory of", open.display())),
        "{err}"
    );
    assert!(err.0.contains("chmod go-w"), "{err}");
}

/// A link in a directory others can write is refused there (they could point it anywhere),
/// even though its target is fine; a link from a trusted directory to a target in a
/// directory others can write is refused at the target's directory; a link between trusted
/// places passes and resolves to its target.
#[test]
fn symbolic_links_are_checked_on_both_paths() {
    let dir = private();
    let safe = dir.path().join("safe");
    let open = dir.path().join("open");
    fs::create_dir(&safe).unwrap();
    fs::create_dir(&open).unwrap();
    let key = safe.join("key");
    write(&key, 0o600);

    // link in the open directory -> trusted key
    symlink(&key, open.join("link")).unwrap();
    chmod(&open, 0o777);
    let err = check_path(&open.join("link"), Role::Secret, &Trust::process()).unwrap_err();
    assert!(err.0.starts_with(&open.display().to_string()), "{err}");

    // link in the trusted directory -> key in the open directory (relative link)
    let exposed = open.join("exposed");
    write(&exposed, 0o600);
    symlink("../open/exposed", safe.join("to-open")).unwrap();
    let err = check_path(&safe.join("to-open"), Role::Secret, &Trust::process()).unwrap_err();
    assert!(err.0.starts_with(&open.display().to_string()), "{err}");

    // link between trusted places
    symlink(&key, safe.join("alias")).unwrap();
    let (resolved, _) = check_path(&safe.join("alias"), Role::Secret, &Trust::process()).unwrap();
    assert_eq!(resolved, key);
}

#[test]
fn a_loop_of_links_and_a_directory_in_place_of_a_file_are_errors() {
    let dir = private();
    symlink(dir.path().join("b"), dir.path().join("a")).unwrap();
    symlink(dir.path().join("a"), dir.path().join("b")).unwrap();
    let err = check_path(&dir.path().join("a"), Role::Config, &Trust::process()).unwrap_err();
    assert!(err.0.contains("symbolic links"), "{err}");
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let err = check_path(&sub, Role::Config, &Trust::process()).unwrap_err();
    assert!(err.0.contains("not a regular file"), "{err}");
    assert!(check_path(Path::new("relative"), Role::Config, &Trust::process()).is_err());
}

#[test]
fn the_socket_directory_must_be_writable_by_nobody_else() {
    let dir = private();
    let sock = dir.path().join("run");
    fs::create_dir(&sock).unwrap();
    chmod(&sock, 0o755);
    assert!(check_path(&sock, Role::SocketDir, &Trust::process()).is_ok());
    chmod(&sock, 0o1777);
    let err = check_path(&sock, Role::SocketDir, &Trust::process()).unwrap_err();
    assert!(err.0.contains("socket directory"), "{err}");
}
