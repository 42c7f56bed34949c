use super::*;
use rstest::rstest;

#[test]
fn root_is_found_with_its_groups() {
    let root = SystemDirectory.account("root");
    assert!(matches!(root, Ok(Some(_))), "{root:?}");
    if let Ok(Some(root)) = root {
        assert_eq!((root.name.as_str(), root.uid), ("root", 0));
        assert!(root.groups.contains(&"root".to_string()), "{root:?}");
        // gid 0 is root's primary group, so "root" comes first.
        assert_eq!(root.groups.first().map(String::as_str), Some("root"));
        let mut unique = root.groups.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), root.groups.len(), "duplicates in {root:?}");
    }
}

#[rstest]
#[case::does_not_exist("accountmap-no-such-user-7f3a")]
#[case::nul_byte("root\0x")]
#[case::only_nul("\0")]
#[case::empty("")]
#[case::very_long(&"x".repeat(100_000))]
fn unknown_names_are_none(#[case] name: &str) {
    assert_eq!(SystemDirectory.account(name), Ok(None));
}

#[test]
fn static_directory_answers_from_its_table() {
    let jdoe = Account {
        name: "jdoe".into(),
        uid: 1001,
        gid: 1001,
        gecos: "John Doe".into(),
        dir: "/home/jdoe".into(),
        shell: "/bin/bash".into(),
        groups: vec!["jdoe".into(), "staff".into()],
    };
    let down = LookupError::Failed("ldap is down".into());
    let dir = StaticDirectory::new(vec![jdoe.clone()]).with_failure("ann", down.clone());
    assert_eq!(dir.account("jdoe"), Ok(Some(jdoe)));
    assert_eq!(dir.account("JDOE"), Ok(None));
    assert_eq!(dir.account("ann"), Err(down));
}

#[rstest]
#[case::debian("#\n# Min/max values for automatic uid selection in useradd\n#\nUID_MIN\t\t\t 1000\nUID_MAX\t\t\t60000\n", Some(1000))]
#[case::rhel_style(
    "UID_MIN                  1000\nSYS_UID_MIN               201\n",
    Some(1000)
)]
#[case::custom("UID_MIN 5000\n", Some(5000))]
#[case::tabs("\tUID_MIN\t500\t\n", Some(500))]
#[case::commented_out("#UID_MIN 500\n", None)]
#[case::commented_after_real("UID_MIN 1000\n# UID_MIN 500\n", Some(1000))]
#[case::trailing_comment("UID_MIN 2000 # local policy\n", Some(2000))]
#[case::comment_glued("UID_MIN 2000#x\n", Some(2000))]
#[case::last_wins("UID_MIN 1000\nUID_MIN 3000\n", Some(3000))]
#[case::last_garbage_wins("UID_MIN 1000\nUID_MIN lots\n", None)]
#[case::quoted("UID_MIN \"1500\"\n", Some(1500))]
#[case::missing_value("UID_MIN\n", None)]
#[case::negative("UID_MIN -1\n", None)]
#[case::overflow("UID_MIN 99999999999\n", None)]
#[case::prefix_only("SYS_UID_MIN 100\nUID_MIN_X 7\n", None)]
#[case::lower_case_key("uid_min 700\n", None)]
#[case::absent("UID_MAX 60000\n", None)]
#[case::empty("", None)]
#[case::garbage("\u{0}\u{1}}{ \n==\n", None)]
#[case::crlf("UID_MIN 1200\r\n", Some(1200))]
fn uid_min_is_read_like_shadow(#[case] text: &str, #[case] want: Option<u32>) {
    assert_eq!(parse_uid_min(text), want);
}

#[test]
fn auto_minimum_uid_reads_the_file_or_defaults() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("login.defs");
    assert_eq!(auto_minimum_uid(&path), 1000, "missing file");
    std::fs::write(&path, b"# \xff\xfe not UTF-8\nUID_MIN 1500\n")?;
    assert_eq!(auto_minimum_uid(&path), 1500);
    std::fs::write(&path, "UID_MIN nope\n")?;
    assert_eq!(auto_minimum_uid(&path), 1000);
    Ok(())
}
