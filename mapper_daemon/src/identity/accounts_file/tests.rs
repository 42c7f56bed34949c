use super::*;
use rstest::rstest;

#[test]
fn google_accounts_format_parses() {
    let text = "# RStudio google-accounts\n\n  John.Doe@Company.com = jdoe \nann@company.com=ann\n";
    let acc = Accounts::parse(text).map_err(|e| e.to_string());
    assert!(acc.is_ok(), "{acc:?}");
    let acc = acc.unwrap_or_default();
    assert_eq!(acc.lookup("john.doe@company.com"), Some(("jdoe", 3)));
    assert_eq!(acc.lookup("JOHN.DOE@COMPANY.COM"), Some(("jdoe", 3)));
    assert_eq!(acc.lookup("ann@company.com"), Some(("ann", 4)));
    assert_eq!(acc.lookup("nobody@company.com"), None);
}

#[rstest]
#[case::no_equals("jdoe\n", 1, 1, "expected external=local")]
#[case::indented_no_equals("# c\n   jdoe\n", 2, 4, "expected external=local")]
#[case::empty_local("a@b.c=\n", 1, 1, "non-empty")]
#[case::empty_external(" = jdoe\n", 1, 2, "non-empty")]
#[case::bad_local("a@b.c=j doe\n", 1, 7, "not a valid local user name")]
#[case::conflict(
    "a@b.c=x\nA@B.C=y\n",
    2,
    1,
    "already mapped to another account on line 1"
)]
fn bad_lines_are_located(
    #[case] text: &str,
    #[case] line: usize,
    #[case] column: usize,
    #[case] message: &str,
) {
    match Accounts::parse(text) {
        Ok(a) => panic!("accepted {text:?}: {a:?}"),
        Err(e) => {
            assert_eq!((e.line, e.column), (line, column), "{e}");
            assert!(e.message.contains(message), "{e}");
        }
    }
}

/// Issue 14, finding 11: `accounts_file` pointed at `/etc/shadow` or a key file. Whatever
/// the line, the error names the line and column and what was expected, never the text.
#[rstest]
#[case::shadow_line("root:$6$s3cr3tSALT$s3cr3tHASH:19000:0:99999:7:::\n", 1, 1)]
#[case::key_line("# a comment\n  s3cr3tKEYs3cr3tKEY\n", 2, 3)]
#[case::secret_local_side("x=s3cr3t pass\n", 1, 3)]
#[case::secret_conflict("s3cr3t=a\ns3cr3t=b\n", 2, 1)]
#[case::not_utf8("ok=a\ns3cr3t\u{0}\u{ff}", 2, 8)]
fn errors_never_quote_the_file(#[case] text: &str, #[case] line: usize, #[case] column: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts");
    // \u{ff} as a lone byte: not UTF-8.
    let bytes: Vec<u8> = text
        .chars()
        .map(|c| if c == '\u{ff}' { 0xff } else { c as u8 })
        .collect();
    std::fs::write(&path, &bytes).unwrap();
    let err = load(&path).unwrap_err();
    assert!(!err.contains("s3cr3t"), "the file's text is in {err:?}");
    assert!(
        err.starts_with(&format!("{}:{line}:{column}: ", path.display())),
        "{err}"
    );
}

/// Issue 14, finding 5: a changed accounts file that others can write is refused like one
/// that does not parse, and the previous mapping stays.
#[test]
fn an_edit_that_breaks_the_trust_rule_keeps_the_old_version() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts");
    std::fs::write(&path, "a@x.org=alice\n").unwrap();
    let file = AccountsFile::open_with_settle(&path, Duration::ZERO).unwrap();
    assert_eq!(file.current().0.lookup("a@x.org"), Some(("alice", 1)));

    // A writable-by-all version that would map a@x.org elsewhere, by rename.
    let tmp = dir.path().join("accounts.new");
    std::fs::write(&tmp, "a@x.org=root\n").unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let (acc, what) = file.current();
    assert!(
        matches!(what, Reload::Failed(ref e) if e.contains("has mode 0666") && e.contains("chmod go-w")),
        "{what:?}"
    );
    assert_eq!(acc.lookup("a@x.org"), Some(("alice", 1)));

    // And one owned by someone the daemon does not trust (the injected set leaves this
    // process's uid out when it is not root; as root the file is given away).
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let trust = if root {
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        Trust::process()
    } else {
        Trust::uids(&[0])
    };
    let err = AccountsFile::open_with(&path, Duration::ZERO, trust).unwrap_err();
    assert!(err.contains("is owned by uid"), "{err}");
}

#[test]
fn edits_are_followed_and_bad_edits_keep_the_old_version() -> Result<(), Box<dyn std::error::Error>>
{
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("accounts");
    let file = AccountsFile::open_with_settle(&path, Duration::ZERO)?;
    assert_eq!(file.current().1, Reload::Unchanged);
    assert!(file.current().0.is_empty());

    std::fs::write(&path, "a@x.org=alice\n")?;
    let (acc, what) = file.current();
    assert_eq!(what, Reload::Reloaded(1));
    assert_eq!(acc.lookup("a@x.org"), Some(("alice", 1)));

    std::fs::write(&path, "a@x.org=alice\nbroken line\n")?;
    let (acc, what) = file.current();
    assert!(
        matches!(what, Reload::Failed(ref e) if e.contains(":2:1: expected")),
        "{what:?}"
    );
    assert_eq!(acc.lookup("a@x.org"), Some(("alice", 1)));
    assert_eq!(
        file.current().1,
        Reload::Unchanged,
        "a bad edit is reported once"
    );

    std::fs::remove_file(&path)?;
    assert_eq!(file.current().1, Reload::Missing);
    assert!(file.current().0.is_empty());
    Ok(())
}

/// In place: the truncated (empty) file and a half-written one are never taken; the whole
/// new version is, once left alone for the settle time. A rename is taken at once.
#[test]
fn an_in_place_rewrite_is_taken_only_once_settled() -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("accounts");
    std::fs::write(&path, "a@x.org=alice\n")?;
    let settle = Duration::from_millis(300);
    let file = AccountsFile::open_with_settle(&path, settle)?;
    assert_eq!(file.current().0.lookup("a@x.org"), Some(("alice", 1)));

    let mut f = std::fs::File::create(&path)?; // truncates: the file is empty now
    assert_eq!(file.current().0.lookup("a@x.org"), Some(("alice", 1)));
    f.write_all(b"a@x.org=bo")?; // half a line, valid and wrong
    assert_eq!(file.current().0.lookup("a@x.org"), Some(("alice", 1)));
    f.write_all(b"b\n")?;
    drop(f);
    assert_eq!(file.current().0.lookup("a@x.org"), Some(("alice", 1)));
    std::thread::sleep(settle + Duration::from_millis(50));
    let (acc, what) = file.current();
    assert_eq!(what, Reload::Reloaded(1));
    assert_eq!(acc.lookup("a@x.org"), Some(("bob", 1)));

    let tmp = dir.path().join("accounts.new");
    std::fs::write(&tmp, "a@x.org=carol\n")?;
    std::fs::rename(&tmp, &path)?;
    assert_eq!(file.current().0.lookup("a@x.org"), Some(("carol", 1)));
    Ok(())
}
