//! A CA in Vault's (or OpenBao's) SSH secrets engine: `[ca_keys.<group>] vault_ssh_mount` and
//! `vault_ssh_role`.
//!
//! The signer still decides everything that goes into a certificate (the [`CertSpec`]); only the
//! signing moves. For each certificate the signer logs in to Vault with a short JWT it signs for
//! the caller (`sub`, `tenant`, `groups`, `role`), so Vault's policies can be templated on who the
//! certificate is for, asks `POST /v1/<mount>/sign/<role>` for exactly the spec's principal,
//! critical options, extensions, key id and TTL, revokes the Vault token right after, and checks
//! the certificate Vault returned against the spec before anything uses it.
//!
//! Invariants:
//! - **Fail closed.** Vault unreachable, a refused login or signature, or a certificate that is
//!   not exactly what was asked (another key, principal, option, extension, key id or validity,
//!   or a bad signature) issues nothing.
//! - The Vault token lives for one certificate; its accessor (never the token) is what the audit
//!   record names.
//! - Vault picks the certificate's serial; the audit records name that serial.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use meho_config::VaultConfig;
use meho_vault::{IdentityClaims, JwtIssuer, SshSignRequest, VaultClient, VaultError};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::{Certificate, HashAlg};

use crate::Error;
use crate::ca::CertSpec;

/// How long a JWT meho signs for one certificate is valid: it is presented once, right away.
const OWN_JWT_TTL: Duration = Duration::from_secs(60);

/// How far Vault's clock may be from the signer's before a certificate's validity counts as
/// other than what was asked.
pub const CLOCK_TOLERANCE_SECONDS: u64 = 5;

/// meho's side of Vault for signing: the client, meho's own JWT issuer and `[vault]`. Shared by
/// every Vault CA of a [`crate::ca::CaSet`].
pub struct VaultBackend {
    client: VaultClient,
    issuer: JwtIssuer,
    config: VaultConfig,
}

impl fmt::Debug for VaultBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultBackend")
            .field("address", &self.config.address.as_str())
            .field("own_jwt_mount", &self.config.own_jwt_mount)
            .field("own_jwt_role", &self.config.own_jwt_role)
            .finish_non_exhaustive()
    }
}

impl VaultBackend {
    /// The backend `[vault]` describes; meho's JWT signing key is read from (or created at)
    /// `config.signing_key_file(data_dir)`, the key `meho serve` serves at
    /// `/.well-known/jwks.json`.
    pub fn new(config: &VaultConfig, data_dir: &Path) -> Result<Self, Error> {
        let ca = match &config.ca_cert {
            Some(path) => Some(std::fs::read(path).map_err(|err| {
                Error::VaultCa(format!(
                    "cannot read vault.ca_cert `{}`: {err}",
                    path.display()
                ))
            })?),
            None => None,
        };
        let client = VaultClient::new(&config.address, ca.as_deref(), config.timeout)
            .map_err(|err| Error::VaultCa(format!("cannot set up the Vault client: {err}")))?;
        let key_file = config.signing_key_file(data_dir);
        let issuer = JwtIssuer::load_or_create(&key_file, &config.issuer).map_err(|err| {
            Error::VaultCa(format!(
                "cannot load meho's JWT signing key `{}`: {err}",
                key_file.display()
            ))
        })?;
        Ok(Self::with_issuer(client, issuer, config.clone()))
    }

    /// A backend over an existing client and issuer (tests).
    pub fn with_issuer(client: VaultClient, issuer: JwtIssuer, config: VaultConfig) -> Self {
        VaultBackend {
            client,
            issuer,
            config,
        }
    }

    /// Vault's address.
    pub fn address(&self) -> &str {
        self.config.address.as_str()
    }
}

/// One CA in Vault: a role on an SSH secrets engine mount.
#[derive(Debug, Clone)]
pub struct VaultCa {
    backend: Arc<VaultBackend>,
    mount: String,
    role: String,
}

/// A certificate Vault signed and the signer checked, with the Vault token it was signed under.
#[derive(Debug)]
pub struct VaultSigned {
    /// The certificate, checked against the spec.
    pub certificate: Certificate,
    /// The accessor of the Vault token the signature was asked with (not a credential).
    pub token_accessor: String,
    /// Whether that token was revoked right after (it expires with its TTL otherwise).
    pub token_revoked: bool,
}

/// Why Vault issued nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum VaultCaError {
    /// Vault did not answer.
    #[error("{0}")]
    Unreachable(String),
    /// Vault refused the login or the signature.
    #[error("{0}")]
    Denied(String),
    /// Vault signed a certificate other than the one asked for.
    #[error("{0}")]
    Mismatch(String),
    /// Anything else (a malformed answer, a JWT that cannot be made, a bad request).
    #[error("{0}")]
    Other(String),
}

impl VaultCaError {
    /// The short word the signer's denial record carries.
    pub fn outcome(&self) -> &'static str {
        match self {
            VaultCaError::Unreachable(_) => "unreachable",
            VaultCaError::Denied(_) => "vault_denied",
            VaultCaError::Mismatch(_) => "certificate_mismatch",
            VaultCaError::Other(_) => "vault_error",
        }
    }
}

impl VaultCa {
    /// The CA at `mount`/`role` of `backend`'s Vault.
    pub fn new(backend: Arc<VaultBackend>, mount: &str, role: &str) -> Self {
        VaultCa {
            backend,
            mount: mount.to_owned(),
            role: role.to_owned(),
        }
    }

    /// The SSH secrets engine's mount.
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// The role on it.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// Vault's address.
    pub fn address(&self) -> &str {
        self.backend.address()
    }

    /// `vault:<address> <mount>/sign/<role>`, where `meho ca show` says the CA is.
    pub fn location(&self) -> String {
        format!(
            "vault:{} {}/sign/{}",
            self.backend.address().trim_end_matches('/'),
            self.mount,
            self.role
        )
    }

    /// Has Vault sign `spec` for `claims` (logged in as them for this one certificate), then
    /// checks the certificate against `spec`. `now` is the Unix time `spec` was made at.
    pub async fn sign(
        &self,
        spec: &CertSpec,
        claims: &IdentityClaims,
        now: u64,
    ) -> Result<VaultSigned, VaultCaError> {
        let backend = &*self.backend;
        let config = &backend.config;
        // Everything that can fail without Vault fails before the login: a token is always
        // revoked once it exists.
        let request = request(spec, now)?;
        let jwt = backend
            .issuer
            .issue(claims, &config.audience, OWN_JWT_TTL)
            .map_err(|err| self.error("sign meho's JWT", err))?;
        let token = backend
            .client
            .login_jwt(&config.own_jwt_mount, &config.own_jwt_role, &jwt)
            .await
            .map_err(|err| self.error("log in", err))?;
        let token_accessor = token.accessor.clone();
        let signed = backend
            .client
            .ssh_sign(&token, &self.mount, &self.role, &request)
            .await;
        let token_revoked = match backend.client.revoke_self(token).await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(error = %err, accessor = %token_accessor, "cannot revoke the Vault token of a certificate; it expires with its TTL");
                false
            }
        };
        let line = signed.map_err(|err| self.error("sign the certificate", err))?;
        let certificate = Certificate::from_openssh(&line).map_err(|err| {
            VaultCaError::Mismatch(format!(
                "vault at {} answered {}/sign/{} with an unreadable certificate ({err}); nothing issued",
                self.address(),
                self.mount,
                self.role
            ))
        })?;
        let elapsed = crate::signer::unix_now().saturating_sub(now);
        check_certificate(&certificate, spec, now, elapsed).map_err(|why| {
            VaultCaError::Mismatch(format!(
                "vault at {} signed a certificate other than the one asked for ({why}); nothing issued (check the role {}/roles/{}: no default_critical_options or default_extensions, allow_user_key_ids = true, not_before_duration = 30s)",
                self.address(),
                self.mount,
                self.role
            ))
        })?;
        Ok(VaultSigned {
            certificate,
            token_accessor,
            token_revoked,
        })
    }

    fn error(&self, step: &str, err: VaultError) -> VaultCaError {
        let message = format!(
            "vault CA {}: cannot {step}, nothing issued: {err}",
            self.location()
        );
        match err {
            VaultError::Unreachable { .. } => VaultCaError::Unreachable(message),
            VaultError::Denied { .. } => VaultCaError::Denied(message),
            _ => VaultCaError::Other(message),
        }
    }
}

/// The sign request for `spec`: its principal, critical options, extensions, key id and TTL.
fn request(spec: &CertSpec, now: u64) -> Result<SshSignRequest, VaultCaError> {
    let public_key = spec
        .public_key
        .to_openssh()
        .map_err(|err| VaultCaError::Other(format!("encode the public key: {err}")))?;
    Ok(SshSignRequest {
        public_key,
        valid_principals: spec.principal.clone(),
        ttl_seconds: spec.valid_before.saturating_sub(now).max(1),
        critical_options: critical_options(spec),
        extensions: extensions(spec),
        key_id: Some(spec.key_id.clone()),
        cert_type: "user",
    })
}

/// The critical options `spec` asks for.
pub fn critical_options(spec: &CertSpec) -> BTreeMap<String, String> {
    let mut options = BTreeMap::new();
    if let Some(command) = &spec.force_command {
        options.insert("force-command".to_owned(), command.clone());
    }
    if let Some(source) = &spec.source_address {
        options.insert("source-address".to_owned(), source.clone());
    }
    options
}

/// The extensions `spec` asks for.
pub fn extensions(spec: &CertSpec) -> BTreeMap<String, String> {
    let mut extensions = BTreeMap::new();
    if spec.permit_pty {
        extensions.insert("permit-pty".to_owned(), String::new());
    }
    if spec.permit_port_forwarding {
        extensions.insert("permit-port-forwarding".to_owned(), String::new());
    }
    extensions
}

/// Whether `certificate` is exactly what `spec` asked for: a user certificate for the spec's
/// public key, its one principal, key id, critical options and extensions and nothing else,
/// valid from and until what was asked (within [`CLOCK_TOLERANCE_SECONDS`], plus the `elapsed`
/// seconds the signature took), signed by the key it names. `now` is when `spec` was made.
pub fn check_certificate(
    certificate: &Certificate,
    spec: &CertSpec,
    now: u64,
    elapsed: u64,
) -> Result<(), String> {
    if certificate.cert_type() != CertType::User {
        return Err("not a user certificate".to_owned());
    }
    if certificate.public_key() != spec.public_key.key_data() {
        return Err("it certifies another public key".to_owned());
    }
    if certificate.valid_principals() != [spec.principal.clone()] {
        return Err(format!(
            "principals {:?}, asked {:?}",
            certificate.valid_principals(),
            [&spec.principal]
        ));
    }
    if certificate.key_id() != spec.key_id {
        return Err(format!(
            "key id `{}`, asked `{}`",
            certificate.key_id(),
            spec.key_id
        ));
    }
    let options = &certificate.critical_options().0;
    if *options != critical_options(spec) {
        return Err(format!(
            "critical options {options:?}, asked {:?}",
            critical_options(spec)
        ));
    }
    let extensions_got = &certificate.extensions().0;
    if *extensions_got != extensions(spec) {
        return Err(format!(
            "extensions {extensions_got:?}, asked {:?}",
            extensions(spec)
        ));
    }
    let within = |got: u64, asked: u64| {
        got >= asked.saturating_sub(CLOCK_TOLERANCE_SECONDS)
            && got <= asked + elapsed + CLOCK_TOLERANCE_SECONDS
    };
    if !within(certificate.valid_after(), spec.valid_after)
        || !within(certificate.valid_before(), spec.valid_before)
    {
        return Err(format!(
            "valid {}..{}, asked {}..{}",
            certificate.valid_after(),
            certificate.valid_before(),
            spec.valid_after,
            spec.valid_before
        ));
    }
    let ca = certificate.signature_key().fingerprint(HashAlg::Sha256);
    certificate
        .validate_at(now + elapsed, [&ca])
        .map_err(|err| format!("it does not verify: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{CaKey, generate_ed25519};

    fn spec(now: u64) -> CertSpec {
        CertSpec {
            public_key: generate_ed25519("t").unwrap().public_key().clone(),
            principal: "deploy".to_owned(),
            key_id: "meho:agent=a user=- host=web".to_owned(),
            serial: 7,
            valid_after: now - 30,
            valid_before: now + 60,
            force_command: Some("uptime".to_owned()),
            source_address: Some("10.0.0.1/32".to_owned()),
            permit_pty: false,
            permit_port_forwarding: false,
        }
    }

    type Change = Box<dyn Fn(&mut CertSpec)>;

    fn ca() -> (tempfile::TempDir, CaKey) {
        let dir = tempfile::tempdir().unwrap();
        let ca = CaKey::init(&dir.path().join("ca")).unwrap();
        (dir, ca)
    }

    #[test]
    fn accepts_exactly_the_certificate_asked_for() {
        let (_dir, ca) = ca();
        let now = crate::signer::unix_now();
        let asked = spec(now);
        let certificate = ca.sign(&asked).unwrap();
        check_certificate(&certificate, &asked, now, 0).unwrap();
        // Vault answered a little later: its clock moved on.
        let mut later = asked.clone();
        later.valid_after += 3;
        later.valid_before += 3;
        check_certificate(&ca.sign(&later).unwrap(), &asked, now, 3).unwrap();
    }

    #[test]
    fn refuses_a_certificate_that_differs_in_any_constraint() {
        let (_dir, ca) = ca();
        let now = crate::signer::unix_now();
        let asked = spec(now);
        let changes: Vec<(&str, Change)> = vec![
            (
                "another public key",
                Box::new(|s| s.public_key = generate_ed25519("x").unwrap().public_key().clone()),
            ),
            ("principals", Box::new(|s| s.principal = "root".to_owned())),
            (
                "key id",
                Box::new(|s| s.key_id = "vault-root-abc".to_owned()),
            ),
            ("critical options", Box::new(|s| s.force_command = None)),
            (
                "critical options",
                Box::new(|s| s.force_command = Some("id".to_owned())),
            ),
            ("critical options", Box::new(|s| s.source_address = None)),
            ("extensions", Box::new(|s| s.permit_pty = true)),
            ("valid", Box::new(|s| s.valid_before += 3600)),
            ("valid", Box::new(|s| s.valid_after -= 3600)),
            ("valid", Box::new(|s| s.valid_before -= 40)),
        ];
        for (words, change) in changes {
            let mut signed = asked.clone();
            change(&mut signed);
            let why = check_certificate(&ca.sign(&signed).unwrap(), &asked, now, 1).unwrap_err();
            assert!(why.contains(words), "{words}: {why}");
        }
    }
}
