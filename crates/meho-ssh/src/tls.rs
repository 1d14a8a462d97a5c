//! rustls configuration for the signer's mutual TLS, with the ring provider.

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|err| Error::Tls(format!("{what} {}: {err}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "{what} {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

fn key(path: &Path, what: &str) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|err| Error::Tls(format!("{what} {}: {err}", path.display())))
}

fn roots(path: &Path, what: &str) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    for cert in certs(path, what)? {
        store
            .add(cert)
            .map_err(|err| Error::Tls(format!("{what} {}: {err}", path.display())))?;
    }
    Ok(store)
}

/// The signer's server config: its own certificate, and client certificates required and
/// verified against `client_ca`.
pub fn server_config(
    cert: &Path,
    key_path: &Path,
    client_ca: &Path,
) -> Result<ServerConfig, Error> {
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(client_ca, "client CA")?),
        provider(),
    )
    .build()
    .map_err(|err| Error::Tls(format!("client verifier: {err}")))?;
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Tls(err.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs(cert, "signer certificate")?,
            key(key_path, "signer key")?,
        )
        .map_err(|err| Error::Tls(format!("signer certificate and key: {err}")))
}

/// The broker's client config: its certificate, and only `ca` trusted for the signer.
pub fn client_config(cert: &Path, key_path: &Path, ca: &Path) -> Result<ClientConfig, Error> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Tls(err.to_string()))?
        .with_root_certificates(roots(ca, "signer CA")?)
        .with_client_auth_cert(
            certs(cert, "broker certificate")?,
            key(key_path, "broker key")?,
        )
        .map_err(|err| Error::Tls(format!("broker certificate and key: {err}")))
}

/// The subject common name of a DER certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}
