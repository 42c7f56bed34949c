use super::*;
use rustls_native_certs::load_certs_from_paths;

/// ISRG Root X2, a public root CA (as quoted in rustls-native-certs' documentation).
const ROOT_CA: &str = "-----BEGIN CERTIFICATE-----
MIICGzCCAaGgAwIBAgIQQdKd0XLq7qeAwSxs6S+HUjAKBggqhkjOPQQDAzBPMQsw
CQYDVQQGEwJVUzEpMCcGA1UEChMgSW50ZXJuZXQgU2VjdXJpdHkgUmVzZWFyY2gg
R3JvdXAxFTATBgNVBAMTDElTUkcgUm9vdCBYMjAeFw0yMDA5MDQwMDAwMDBaFw00
MDA5MTcxNjAwMDBaME8xCzAJBgNVBAYTAlVTMSkwJwYDVQQKEyBJbnRlcm5ldCBT
ZWN1cml0eSBSZXNlYXJjaCBHcm91cDEVMBMGA1UEAxMMSVNSRyBSb290IFgyMHYw
EAYHKoZIzj0CAQYFK4EEACIDYgAEzZvVn4CDCuwJSvMWSj5cz3es3mcFDR0HttwW
+1qLFNvicWDEukWVEYmO6gbf9yoWHKS5xcUy4APgHoIYOIvXRdgKam7mAHf7AlF9
ItgKbppbd9/w+kHsOdx1ymgHDB/qo0IwQDAOBgNVHQ8BAf8EBAMCAQYwDwYDVR0T
AQH/BAUwAwEB/zAdBgNVHQ4EFgQUfEKWrt5LSDv6kviejM9ti6lyN5UwCgYIKoZI
zj0EAwMDaAAwZQIwe3lORlCEwkSHRhtFcP9Ymd70/aTSVaYgLXTWNLxBo1BfASdW
tL4ndQavEi51mI38AjEAi/V3bNTIZargCyzuFJ0nN6T5U6VR5CmD1/iQMVtCnwr1
/q4AaOeMSQ+2b1tbFfLn
-----END CERTIFICATE-----
";

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_ca_file_is_trusted_and_its_errors_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = file(&dir, "ca.pem", ROOT_CA);
    assert!(client_config(Trust::CaFile(&ca), None).is_ok());
    let err = |path: &Path| {
        client_config(Trust::CaFile(path), None)
            .err()
            .unwrap_or_default()
    };
    let missing = dir.path().join("missing.pem");
    assert!(
        err(&missing).starts_with("cannot read "),
        "{}",
        err(&missing)
    );
    let empty = file(&dir, "empty.pem", "no certificate here\n");
    assert!(
        err(&empty).ends_with("empty.pem: no PEM certificate in it"),
        "{}",
        err(&empty)
    );
    let broken = file(
        &dir,
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    );
    assert!(
        err(&broken).contains("broken.pem: not a PEM certificate file"),
        "{}",
        err(&broken)
    );
}

#[test]
fn a_client_key_that_cannot_be_read_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = file(&dir, "ca.pem", ROOT_CA);
    let key = dir.path().join("client.key");
    let client = ClientAuth {
        certificate: &ca,
        key: &key,
    };
    let err = client_config(Trust::Insecure, Some(client))
        .err()
        .unwrap_or_default();
    assert!(
        err.starts_with("cannot read ") && err.contains("client.key"),
        "{err}"
    );
}

#[test]
fn the_insecure_mode_builds_without_any_ca() {
    assert!(client_config(Trust::Insecure, None).is_ok());
}

#[test]
fn an_empty_platform_store_is_an_error_naming_the_fix() {
    let err = platform_store(CertificateResult::default(), "tls_ca_certificate")
        .err()
        .unwrap_or_default();
    assert!(
        err.starts_with("no usable CA certificate in the platform trust store (")
            && err.contains("SSL_CERT_FILE")
            && err.ends_with(
                "set tls_ca_certificate to the CA file that signed the server's certificate"
            ),
        "{err}"
    );
    // what the store could not read is part of the message
    let dir = tempfile::tempdir().unwrap();
    let found = load_certs_from_paths(Some(&dir.path().join("bundle.crt")), None);
    let err = platform_store(found, "ca_file").err().unwrap_or_default();
    assert!(
        err.contains("bundle.crt") && err.contains("set ca_file to"),
        "{err}"
    );
}

#[test]
fn the_platform_store_is_what_rustls_native_certs_reads() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = file(&dir, "bundle.crt", &format!("{ROOT_CA}{ROOT_CA}"));
    let roots = platform_store(load_certs_from_paths(Some(&bundle), None), "ca_file").unwrap();
    assert_eq!(roots.len(), 1, "duplicates are read once");
    // a directory that cannot be read costs only its own certificates (and a warning)
    let found = load_certs_from_paths(Some(&bundle), Some(&dir.path().join("no-such-dir")));
    assert!(!found.errors.is_empty());
    assert_eq!(platform_store(found, "ca_file").unwrap().len(), 1);
}

#[test]
fn a_certificate_without_subject_alt_name_is_explained() {
    let e = "invalid peer certificate: certificate not valid for name \"127.0.0.1\"; certificate is not valid for any names (according to its subjectAltName extension)";
    let out = explain(e);
    assert!(out.starts_with(e));
    assert!(out.contains("has no subjectAltName"), "{out}");
    assert!(out.contains("tls certfile"), "{out}");
    assert_eq!(explain("connection refused"), "connection refused");
}
