//! TLS client settings of the backends: a rustls [`ClientConfig`] on the ring provider (the
//! daemon's only crypto provider), TLS 1.2 and 1.3, trusting a CA file, the platform's trust
//! store, or nothing at all, with an optional client certificate for mutual TLS.

use crate::log;
use crate::util::{one_line, read_bounded};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_native_certs::CertificateResult;
use std::path::Path;
use std::sync::Arc;

/// CA bundles, client certificates and keys are small; the bound only makes a wrong path
/// harmless.
pub const MAX_PEM_FILE: u64 = 4 << 20;

/// What a server's certificate is checked against.
pub enum Trust<'a> {
    /// The CA certificates in this PEM file (`tls_ca_certificate`, `ca_file`); each of them
    /// must be usable.
    CaFile(&'a Path),
    /// The platform's trust store ([`platform_roots`]). `setting` is the config key that names
    /// a CA file instead, for the error when the store has no certificate.
    Platform { setting: &'static str },
    /// Roots already loaded (OIDC loads the platform store itself, so that an empty store is
    /// a warning for a provider that may be plain http).
    Roots(RootCertStore),
    /// No check at all (LDAP's `server_tls_insecure = true`): any certificate is accepted. The
    /// handshake signatures are still checked, which proves only that the server holds the key
    /// of the certificate it sent. The caller says so in the log.
    Insecure,
}

impl Trust<'_> {
    /// The trust of an HTTP client whose peer may be https:// or, on loopback, http:// (an
    /// OpenID provider, rserver): the CA file `ca_file` names, else the platform store. An
    /// empty platform store only matters for https:// peers, so it is not an error here:
    /// `warn` is told why, and each https:// call then fails its TLS handshake.
    pub fn web(ca_file: Option<&Path>, warn: impl FnOnce(&str)) -> Trust<'_> {
        match ca_file {
            Some(path) => Trust::CaFile(path),
            None => Trust::Roots(platform_roots("ca_file").unwrap_or_else(|e| {
                warn(&e);
                RootCertStore::empty()
            })),
        }
    }
}

/// A client certificate (chain) and its private key, both PEM files: mutual TLS.
pub struct ClientAuth<'a> {
    pub certificate: &'a Path,
    pub key: &'a Path,
}

/// The rustls configuration for a backend's connections. Fails when a file cannot be read or
/// holds no usable certificate or key, or when the platform store is empty; the error names
/// the file (or what was looked for).
pub fn client_config(
    trust: Trust<'_>,
    client: Option<ClientAuth<'_>>,
) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let builder = match trust {
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider))),
        Trust::CaFile(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: unusable CA certificate: {e}", path.display()))?;
            }
            builder.with_root_certificates(roots)
        }
        Trust::Platform { setting } => builder.with_root_certificates(platform_roots(setting)?),
        Trust::Roots(roots) => builder.with_root_certificates(roots),
    };
    let config = match client {
        Some(ClientAuth { certificate, key }) => {
            let chain = certificates(certificate)?;
            let key_bytes = read_bounded(key, MAX_PEM_FILE)?;
            let key_der = PrivateKeyDer::from_pem_slice(&key_bytes)
                .map_err(|e| format!("{}: not a PEM private key: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("client certificate {}: {e}", certificate.display()))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// The PEM certificates in the file at `path`: at least one, all well-formed.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_bounded(path, MAX_PEM_FILE)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// The platform's trust store, as `rustls-native-certs` reads it on Linux: only the file and
/// directories named by `SSL_CERT_FILE` and `SSL_CERT_DIR` when either is set in the daemon's
/// environment; else the distribution's CA bundle (Debian's
/// `/etc/ssl/certs/ca-certificates.crt`, RHEL's
/// `/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem`, …) and certificate directories.
/// Read anew at each call (each config load), so a reload picks up an updated store.
/// Certificates rustls cannot use are skipped, as other TLS clients skip them; files that
/// cannot be read are logged. No usable certificate at all is an error that says what was
/// looked for and that `setting` names a CA file instead.
pub fn platform_roots(setting: &str) -> Result<RootCertStore, String> {
    platform_store(rustls_native_certs::load_native_certs(), setting)
}

fn platform_store(found: CertificateResult, setting: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let (added, _unusable) = roots.add_parsable_certificates(found.certs);
    let mut errors: Vec<String> = found
        .errors
        .iter()
        .take(3)
        .map(|e| one_line(&e.to_string()))
        .collect();
    if found.errors.len() > 3 {
        errors.push(format!("{} more", found.errors.len() - 3));
    }
    let errors = if errors.is_empty() {
        String::new()
    } else {
        format!("; errors: {}", errors.join("; "))
    };
    if added == 0 {
        return Err(format!(
            "no usable CA certificate in the platform trust store ({}{errors}); set {setting} to the CA file that signed the server's certificate",
            where_looked()
        ));
    }
    if !errors.is_empty() {
        log::warning(&format!(
            "platform trust store: part of it could not be read ({}{errors}); CA certificates in use: {added}",
            where_looked()
        ));
    }
    Ok(roots)
}

/// Where `rustls-native-certs` looks, for the messages. Its rules: `SSL_CERT_FILE` counts when
/// set at all, `SSL_CERT_DIR` when it names a directory; either one replaces the search.
fn where_looked() -> String {
    let file = std::env::var_os("SSL_CERT_FILE");
    let dir = std::env::var_os("SSL_CERT_DIR")
        .filter(|v| std::env::split_paths(v).any(|p| !p.as_os_str().is_empty()));
    let set: Vec<String> = [("SSL_CERT_FILE", file), ("SSL_CERT_DIR", dir)]
        .into_iter()
        .filter_map(|(var, value)| Some(format!("{var}={}", Path::new(&value?).display())))
        .collect();
    if set.is_empty() {
        "looked for the distribution's CA bundle, e.g. /etc/ssl/certs/ca-certificates.crt on Debian and Ubuntu or /etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem on RHEL and Fedora, and in /etc/ssl/certs and /etc/pki/tls/certs".to_string()
    } else {
        format!(
            "read only {}, set in accountmapd's environment",
            set.join(" and ")
        )
    }
}

/// [`Trust::Insecure`]: any certificate is accepted; the handshake signatures are checked.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS error as the log and `status` show it, with the cause and the fix for the one every
/// small Samba domain meets: a server certificate without subjectAltName (Samba's
/// self-generated one has only a CN). rustls, like every browser since 2017, matches a server
/// name against subjectAltName only (RFC 6125), and accountmap does not offer to match the CN
/// instead: a certificate is re-issued once, while a weakened check would stay.
pub fn explain(error: &str) -> String {
    if error.contains("is not valid for any names") {
        return format!(
            "{error}: the server's certificate has no subjectAltName (Samba's self-generated \
             certificate has only a CN, which TLS clients ignore). Fix: give the server a \
             certificate with subjectAltName DNS:<the name in server_address> (or IP:<the \
             address>) signed by the CA in tls_ca_certificate, e.g. for Samba set `tls \
             certfile`, `tls keyfile` and `tls cafile` in smb.conf; README, \"Active Directory\""
        );
    }
    if error.contains("certificate not valid for name") {
        return format!(
            "{error}: the name in server_address must be one the certificate names in its \
             subjectAltName"
        );
    }
    error.to_string()
}

#[cfg(test)]
mod tests;
