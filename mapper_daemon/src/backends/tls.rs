//! TLS client settings of the backends: a rustls [`ClientConfig`] on the ring provider (the
//! daemon's only crypto provider), TLS 1.2 and 1.3, trusting a CA file, the system CA bundle,
//! or nothing at all, with an optional client certificate for mutual TLS.

use crate::util::read_bounded;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// CA bundles, client certificates and keys are small; the bound only makes a wrong path
/// harmless.
pub const MAX_PEM_FILE: u64 = 4 << 20;
/// Where Debian and its derivatives keep the system CA bundle ([`Trust::SystemBundle`]).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What a server's certificate is checked against.
pub enum Trust<'a> {
    /// The CA certificates in this PEM file (`tls_ca_certificate`, `ca_file`); each of them
    /// must be usable.
    CaFile(&'a Path),
    /// The system CA bundle, as [`Trust::CaFile`].
    SystemBundle,
    /// No check at all (LDAP's `server_tls_insecure = true`): any certificate is accepted. The
    /// handshake signatures are still checked, which proves only that the server holds the key
    /// of the certificate it sent. The caller says so in the log.
    Insecure,
}

/// A client certificate (chain) and its private key, both PEM files: mutual TLS.
pub struct ClientAuth<'a> {
    pub certificate: &'a Path,
    pub key: &'a Path,
}

/// The rustls configuration for a backend's connections. Fails when a file cannot be read or
/// holds no usable certificate or key; the error names the file.
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
        Trust::CaFile(_) | Trust::SystemBundle => {
            let path = match trust {
                Trust::CaFile(path) => path,
                _ => Path::new(SYSTEM_CA_BUNDLE),
            };
            let mut roots = RootCertStore::empty();
            for cert in certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: unusable CA certificate: {e}", path.display()))?;
            }
            builder.with_root_certificates(roots)
        }
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

#[cfg(test)]
mod tests;
