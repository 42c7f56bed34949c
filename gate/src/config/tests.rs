use super::*;
use rstest::rstest;

const BASE: &str = r#"
[daemon]
socket = "/run/test/accountmapd.sock"
[oidc]
client_id = "rstudio-client"
[gate]
ticket_callers = ["accountmap-gate"]
public_url = "https://rstudio.example.com"
"#;

fn parse(text: &str) -> Result<GateConfig, ConfigError> {
    from_text(Path::new("/etc/accountmap/accountmap.toml"), text)
}

#[test]
fn defaults_for_google_and_a_local_rserver() {
    let c = parse(BASE).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8788");
    assert_eq!(c.public_url.to_string(), "https://rstudio.example.com/");
    assert_eq!(c.rserver_url.to_string(), "http://127.0.0.1:8787/");
    assert_eq!(c.discovery_endpoint, GOOGLE_DISCOVERY);
    assert_eq!(
        c.mode,
        Mode::Oidc {
            client_secret_file: None
        }
    );
    assert_eq!(c.scopes, ["openid", "email"]);
    assert_eq!(c.service, "rstudio");
    assert_eq!(c.rserver_encryption, None);
    assert_eq!(c.socket, PathBuf::from("/run/test/accountmapd.sock"));
    assert_eq!(
        c.public_url.join("gate/callback"),
        "https://rstudio.example.com/gate/callback"
    );
}

#[test]
fn a_root_path_is_kept() {
    let c = parse(&BASE.replace(
        "https://rstudio.example.com",
        "https://Example.com:8443/rstudio",
    ))
    .unwrap();
    assert_eq!(
        c.public_url.join("gate/login"),
        "https://example.com:8443/rstudio/gate/login"
    );
    assert_eq!(c.public_url.host(), "example.com");
}

#[rstest]
#[case::http_elsewhere("public_url = \"http://rstudio.example.com/\"", "not https://")]
#[case::query("public_url = \"https://h/?x=1\"", "without user, query or fragment")]
#[case::userinfo("public_url = \"https://u@h/\"", "without user, query or fragment")]
#[case::scheme("public_url = \"ftp://h/\"", "not an http:// or https:// URL")]
#[case::listen("listen = \"8788\"", "is not ADDRESS:PORT")]
#[case::mode("mode = \"saml\"", "must be \"oidc\" or \"header\"")]
#[case::rstudio_header(
    "mode = \"header\"\nuser_header = \"X-RStudio-Username\"",
    "name a header only your proxy sets"
)]
#[case::no_header("mode = \"header\"", "has no user_header")]
#[case::bad_header("mode = \"header\"\nuser_header = \"X User\"", "is not a header name")]
#[case::scopes("scopes = [\"email\"]", "must include \"openid\"")]
#[case::encryption("rserver_encryption = \"rsa\"", "must be \"auto\"")]
#[case::timeout("timeout = 0", "from 1 to 300")]
#[case::type_("stay_signed_in = \"yes\"", "must be true or false")]
fn mistakes_name_the_key_and_the_fix(#[case] line: &str, #[case] want: &str) {
    let text = if line.starts_with("public_url") {
        BASE.replace("public_url = \"https://rstudio.example.com\"", line)
    } else {
        format!("{BASE}{line}\n")
    };
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains(want), "{e}");
}

#[test]
fn oidc_mode_needs_the_client_id_header_mode_does_not() {
    let no_oidc = BASE.replace("[oidc]\nclient_id = \"rstudio-client\"\n", "");
    let e = parse(&no_oidc).unwrap_err().to_string();
    assert!(e.contains("needs [oidc] client_id"), "{e}");
    let c = parse(&format!(
        "{no_oidc}mode = \"header\"\nuser_header = \"X-Auth-Request-User\"\n"
    ))
    .unwrap();
    assert_eq!(
        c.mode,
        Mode::Header {
            user_header: "x-auth-request-user".into(),
            require_signature: true
        }
    );
}

#[test]
fn http_is_allowed_for_localhost_only() {
    let c = parse(&BASE.replace("https://rstudio.example.com", "http://localhost:8080")).unwrap();
    assert!(c.public_url.is_loopback_host());
}

#[test]
fn drop_ins_override_the_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("accountmap.toml");
    std::fs::write(&main, BASE).unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    std::fs::write(
        dir.path().join("conf.d/50-gate.toml"),
        "[gate]\nlisten = \"127.0.0.1:9999\"\n",
    )
    .unwrap();
    let c = load(&main).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(c.public_url.to_string(), "https://rstudio.example.com/");
}

#[test]
fn no_gate_section_says_what_to_add() {
    let e = parse("[oidc]\nclient_id = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no [gate] section"), "{e}");
}
