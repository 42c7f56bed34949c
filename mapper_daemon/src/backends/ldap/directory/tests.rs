use super::*;
use std::collections::HashMap;

fn entry(attrs: &[(&str, &str)], sid: Option<Vec<u8>>) -> SearchEntry {
    SearchEntry {
        dn: "CN=adprimary,CN=Users,DC=acctmap,DC=test".into(),
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect(),
        bin_attrs: sid
            .map(|s| HashMap::from([("objectSid".to_string(), vec![s])]))
            .unwrap_or_default(),
    }
}

/// S-1-5-21-1-2-3-1105 in its binary form.
fn user_sid() -> Vec<u8> {
    let mut sid = vec![1, 5, 0, 0, 0, 0, 0, 5];
    for sub in [21u32, 1, 2, 3, 1105] {
        sid.extend_from_slice(&sub.to_le_bytes());
    }
    sid
}

#[test]
fn the_primary_group_sid_is_the_domain_sid_and_primary_group_id() {
    let e = entry(&[("primaryGroupID", "513")], Some(user_sid()));
    let primary = primary_group_sid(&e).unwrap();
    assert_eq!(&primary[..24], &user_sid()[..24], "the domain part is kept");
    assert_eq!(&primary[24..], &513u32.to_le_bytes());
    assert_eq!(
        escape_bytes(&primary[24..]),
        "\\01\\02\\00\\00",
        "every byte escaped for the filter"
    );
}

#[rstest::rstest]
#[case::no_primary_group_id(&[], Some(user_sid()))]
#[case::no_sid(&[("primaryGroupID", "513")], None)]
#[case::garbage_id(&[("primaryGroupID", "x")], Some(user_sid()))]
#[case::truncated_sid(&[("primaryGroupID", "513")], Some(user_sid()[..20].to_vec()))]
fn no_primary_group_without_both_attributes(
    #[case] attrs: &[(&str, &str)],
    #[case] sid: Option<Vec<u8>>,
) {
    assert_eq!(primary_group_sid(&entry(attrs, sid)), None);
}

#[rstest::rstest]
#[case(
    "CN=rstudio-ad,CN=Users,DC=acctmap,DC=test",
    "cn=rstudio-ad, cn=users, dc=acctmap, dc=test",
    true
)]
#[case("cn = a ,dc=x", "CN=a,DC=x", true)]
#[case("CN=a,DC=x", "CN=b,DC=x", false)]
fn dns_compare_as_the_server_writes_them(#[case] a: &str, #[case] b: &str, #[case] same: bool) {
    assert_eq!(same_dn(a, b), same);
}
