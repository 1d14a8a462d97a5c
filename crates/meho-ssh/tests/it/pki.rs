//! A throw-away mTLS PKI for the signer tests, made with rcgen: one CA, a server certificate for
//! `localhost` / `127.0.0.1`, client certificates on demand, and rogue clients from another CA.
//! Every file is PEM (certificates `CERTIFICATE`, keys PKCS#8 `PRIVATE KEY`, ECDSA P-256).
#![allow(dead_code)] // shared helpers; not every test module uses every one

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A CA with its signing key.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn new_ca(cn: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.remove(DnType::CommonName);
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// Issues a leaf certificate and writes `<stem>.pem` and `<stem>-key.pem` into `dir`.
fn issue(
    ca: &Ca,
    dir: &Path,
    stem: &str,
    cn: &str,
    sans: &[&str],
    eku: ExtendedKeyUsagePurpose,
) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.remove(DnType::CommonName);
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}-key.pem"));
    fs::write(&cert_path, cert.pem()).unwrap();
    fs::write(&key_path, key.serialize_pem()).unwrap();
    // Private keys as a careful operator would keep them, in case the code under test checks.
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    (cert_path, key_path)
}

/// A file-name-safe form of a common name.
fn stem_for(cn: &str) -> String {
    cn.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The PKI: files live in `dir` and go away with it.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA certificate (the trust anchor for both sides).
    pub ca_pem: PathBuf,
    /// The server certificate (SANs `localhost` and IP `127.0.0.1`, EKU serverAuth).
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
    ca: Ca,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// A fresh CA (`ca.pem`, CN `meho test CA`) and server certificate (`server.pem`,
    /// `server-key.pem`).
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("meho-pki-")
            .tempdir()
            .unwrap();
        let ca = new_ca("meho test CA");
        let ca_pem = dir.path().join("ca.pem");
        fs::write(&ca_pem, &ca.pem).unwrap();
        let (server_cert, server_key) = issue(
            &ca,
            dir.path(),
            "server",
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        Pki {
            dir,
            ca_pem,
            server_cert,
            server_key,
            ca,
        }
    }

    /// The CA certificate as PEM text.
    pub fn ca_pem_text(&self) -> String {
        self.ca.pem.clone()
    }

    /// A client certificate with CommonName `cn` (EKU clientAuth) from this PKI's CA:
    /// `(client-<cn>.pem, client-<cn>-key.pem)`.
    pub fn client(&self, cn: &str) -> (PathBuf, PathBuf) {
        let stem = format!("client-{}", stem_for(cn));
        issue(
            &self.ca,
            self.dir.path(),
            &stem,
            cn,
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    /// A server certificate for other names (e.g. a name the client does not expect).
    pub fn server_for(&self, stem: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        let cn = sans.first().copied().unwrap_or("server");
        issue(
            &self.ca,
            self.dir.path(),
            stem,
            cn,
            sans,
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }
}

/// A client certificate with CommonName `cn` signed by a different, freshly made CA, written to
/// `dir` as `rogue-<cn>.pem` / `rogue-<cn>-key.pem` (the rogue CA as `rogue-<cn>-ca.pem`).
pub fn rogue_client(cn: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let ca = new_ca("meho test CA"); // same name as the real one: only the key differs
    let stem = format!("rogue-{}", stem_for(cn));
    fs::write(dir.join(format!("{stem}-ca.pem")), &ca.pem).unwrap();
    issue(
        &ca,
        dir,
        &stem,
        cn,
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::RootCertStore;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::server::WebPkiClientVerifier;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;

    fn cert(path: &Path) -> CertificateDer<'static> {
        let text = fs::read_to_string(path).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{text}");
        CertificateDer::from_pem_file(path).unwrap()
    }

    fn common_name(der: &CertificateDer<'_>) -> String {
        let (_, x509) = X509Certificate::from_der(der).unwrap();
        x509.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn roots(pki: &Pki) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(cert(&pki.ca_pem)).unwrap();
        Arc::new(roots)
    }

    #[test]
    fn pki_writes_pem_files_that_rustls_verifies() {
        let pki = Pki::new();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let now = UnixTime::now();

        let ca = cert(&pki.ca_pem);
        let (_, ca_x509) = X509Certificate::from_der(&ca).unwrap();
        assert!(ca_x509.is_ca());
        assert_eq!(pki.ca_pem_text(), fs::read_to_string(&pki.ca_pem).unwrap());

        // The server certificate is valid for localhost and 127.0.0.1 under the CA.
        let server = cert(&pki.server_cert);
        assert!(
            fs::read_to_string(&pki.server_key)
                .unwrap()
                .contains("BEGIN PRIVATE KEY")
        );
        PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
        let server_verifier =
            WebPkiServerVerifier::builder_with_provider(roots(&pki), provider.clone())
                .build()
                .unwrap();
        for name in ["localhost", "127.0.0.1"] {
            let name = ServerName::try_from(name).unwrap();
            server_verifier
                .verify_server_cert(&server, &[], &name, &[], now)
                .unwrap();
        }
        let other = ServerName::try_from("example.com").unwrap();
        assert!(
            server_verifier
                .verify_server_cert(&server, &[], &other, &[], now)
                .is_err()
        );

        // A client certificate carries its CN and verifies as a client under the CA.
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots(&pki), provider.clone())
                .build()
                .unwrap();
        let (client_cert, client_key) = pki.client("alice@example.com");
        PrivateKeyDer::from_pem_file(&client_key).unwrap();
        let client = cert(&client_cert);
        assert_eq!(common_name(&client), "alice@example.com");
        client_verifier
            .verify_client_cert(&client, &[], now)
            .unwrap();

        // A server certificate is not a client certificate (EKU).
        assert!(
            client_verifier
                .verify_client_cert(&server, &[], now)
                .is_err()
        );

        // A rogue client with the same CN from another CA of the same name is refused.
        let rogue_dir = tempfile::tempdir().unwrap();
        let (rogue_cert, rogue_key) = rogue_client("alice@example.com", rogue_dir.path());
        PrivateKeyDer::from_pem_file(&rogue_key).unwrap();
        let rogue = cert(&rogue_cert);
        assert_eq!(common_name(&rogue), "alice@example.com");
        assert!(
            client_verifier
                .verify_client_cert(&rogue, &[], now)
                .is_err()
        );
    }
}
