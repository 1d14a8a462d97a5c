//! SSH certificate authorities and the certificates they sign.
//!
//! A CA is an unencrypted Ed25519 private key in OpenSSH format: what `ssh-keygen -t ed25519`
//! writes, or what [`CaKey::init`] (`meho ca init --out FILE`) writes. The key file is a contract
//! with operators, so nothing here invents another format. A group's CA can instead be a role of
//! Vault's SSH secrets engine ([`crate::vault_ca`]): the signer builds the same [`CertSpec`] and
//! only the signing moves.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::ssh_key::{Algorithm, Certificate, HashAlg, LineEnding, PrivateKey, PublicKey};

use meho_config::CaSource;

use crate::Error;
use crate::vault_ca::{VaultBackend, VaultCa};

/// One certificate authority: its private key, and the public line sshd is told to trust.
pub struct CaKey {
    key: PrivateKey,
    public_line: String,
    fingerprint: String,
    source: PathBuf,
}

impl fmt::Debug for CaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private half never appears in a Debug string.
        f.debug_struct("CaKey")
            .field("fingerprint", &self.fingerprint)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl CaKey {
    /// Loads a CA key file. It must be an unencrypted Ed25519 key in OpenSSH format.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::CaKey {
            path: path.to_path_buf(),
            message: format!("cannot read it: {source}"),
        })?;
        let key = PrivateKey::from_openssh(text.as_bytes()).map_err(|err| Error::CaKey {
            path: path.to_path_buf(),
            message: format!(
                "not an OpenSSH private key ({err}); create one with `meho ca init --out FILE` or `ssh-keygen -t ed25519`"
            ),
        })?;
        if key.is_encrypted() {
            return Err(Error::CaKey {
                path: path.to_path_buf(),
                message: "the key is passphrase-protected; meho needs an unencrypted key file (protect it with file permissions)".into(),
            });
        }
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(Error::CaKey {
                path: path.to_path_buf(),
                message: format!("the key is {}, not Ed25519", key.algorithm()),
            });
        }
        Self::from_key(key, path.to_path_buf())
    }

    fn from_key(key: PrivateKey, source: PathBuf) -> Result<Self, Error> {
        let public = key.public_key();
        let public_line = PublicKey::new(public.key_data().clone(), "meho-ca")
            .to_openssh()
            .map_err(|err| Error::Internal(format!("encode CA public key: {err}")))?;
        let fingerprint = public.fingerprint(HashAlg::Sha256).to_string();
        Ok(CaKey {
            key,
            public_line,
            fingerprint,
            source,
        })
    }

    /// Creates a new CA key at `path` (mode 0600) and its `.pub` beside it. Refuses to replace an
    /// existing file: losing a CA key silently would lock every host out.
    pub fn init(path: &Path) -> Result<Self, Error> {
        let key = generate_ed25519("meho-ca")?;
        let text = key
            .to_openssh(LineEnding::LF)
            .map_err(|err| Error::Internal(format!("encode CA key: {err}")))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::CaKey {
                path: path.to_path_buf(),
                message: format!("cannot create its directory: {source}"),
            })?;
        }
        write_new_file(path, text.as_bytes(), 0o600).map_err(|source| Error::CaKey {
            path: path.to_path_buf(),
            message: if source.kind() == std::io::ErrorKind::AlreadyExists {
                "the file already exists; meho never replaces a CA key".to_owned()
            } else {
                format!("cannot write it: {source}")
            },
        })?;
        let ca = Self::from_key(key, path.to_path_buf())?;
        // The `.pub` is derived from the new key, so replacing a stale one is right. If it cannot
        // be written, the new private key goes too: a retry must not find half a CA.
        let public_path = public_path_of(path);
        if let Err(source) = std::fs::write(&public_path, format!("{}\n", ca.public_line)) {
            let _ = std::fs::remove_file(path);
            return Err(Error::CaKey {
                path: public_path,
                message: format!("cannot write the public key: {source}"),
            });
        }
        Ok(ca)
    }

    /// The public key as an OpenSSH line, for sshd's `TrustedUserCAKeys`.
    pub fn public_line(&self) -> &str {
        &self.public_line
    }

    /// `SHA256:…` fingerprint of the public key.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The file the key was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Signs a user certificate as `spec` describes.
    pub fn sign(&self, spec: &CertSpec) -> Result<Certificate, Error> {
        let nonce = random_bytes::<32>()?;
        let err = |err: russh::keys::ssh_key::Error| Error::Internal(format!("certificate: {err}"));
        let mut builder = Builder::new(
            nonce.to_vec(),
            spec.public_key.key_data().clone(),
            spec.valid_after,
            spec.valid_before,
        )
        .map_err(err)?;
        builder
            .serial(spec.serial)
            .map_err(err)?
            .cert_type(CertType::User)
            .map_err(err)?
            .key_id(spec.key_id.clone())
            .map_err(err)?
            .valid_principal(spec.principal.clone())
            .map_err(err)?;
        if let Some(command) = &spec.force_command {
            builder
                .critical_option("force-command", command.clone())
                .map_err(err)?;
        }
        if let Some(source) = &spec.source_address {
            builder
                .critical_option("source-address", source.clone())
                .map_err(err)?;
        }
        if spec.permit_pty {
            builder.extension("permit-pty", "").map_err(err)?;
        }
        if spec.permit_port_forwarding {
            builder
                .extension("permit-port-forwarding", "")
                .map_err(err)?;
        }
        builder.sign(&self.key).map_err(err)
    }
}

/// What goes into one certificate. The signer fills it from the host policy and the decision;
/// nothing here is taken from the broker's request as is.
#[derive(Debug, Clone)]
pub struct CertSpec {
    /// The broker's ephemeral public key.
    pub public_key: PublicKey,
    /// The one principal the certificate is valid for.
    pub principal: String,
    /// `meho:agent=… user=… host=… serial=…`, logged by sshd.
    pub key_id: String,
    /// Unique serial.
    pub serial: u64,
    /// Unix seconds.
    pub valid_after: u64,
    /// Unix seconds.
    pub valid_before: u64,
    /// `force-command` critical option.
    pub force_command: Option<String>,
    /// `source-address` critical option.
    pub source_address: Option<String>,
    /// `permit-pty` extension.
    pub permit_pty: bool,
    /// `permit-port-forwarding` extension (bastions only).
    pub permit_port_forwarding: bool,
}

/// One configured CA: a key file the signer signs with itself, or a role of Vault's SSH secrets
/// engine that signs for it.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per host group, held behind an Arc"
)]
pub enum Ca {
    /// `[ca_keys.<group>] path`.
    Key(CaKey),
    /// `[ca_keys.<group>] vault_ssh_mount`, `vault_ssh_role`.
    Vault(VaultCa),
}

impl Ca {
    /// Where the CA is, for listings and logs: its key file, or `vault:<address> <mount>/sign/<role>`.
    pub fn location(&self) -> String {
        match self {
            Ca::Key(key) => key.source().display().to_string(),
            Ca::Vault(vault) => vault.location(),
        }
    }

    /// What identifies the CA in a record: a key file's `SHA256:…` fingerprint, or a Vault
    /// CA's location (its key never leaves Vault).
    pub fn identity(&self) -> String {
        match self {
            Ca::Key(key) => key.fingerprint().to_owned(),
            Ca::Vault(vault) => vault.location(),
        }
    }
}

/// The CAs by host group, as `[ca_keys]` configures them.
#[derive(Debug, Clone, Default)]
pub struct CaSet {
    by_group: BTreeMap<String, Arc<Ca>>,
    default: Option<Arc<Ca>>,
}

impl CaSet {
    /// Loads every configured CA; `_default` is the fallback. Key files are read now; a Vault CA
    /// needs `vault` (from `[vault]`), and is first reached when it signs.
    pub fn load(
        keys: &BTreeMap<String, CaSource>,
        vault: Option<&Arc<VaultBackend>>,
    ) -> Result<Self, Error> {
        let mut set = CaSet::default();
        for (group, source) in keys {
            let ca = match source {
                CaSource::File(path) => Ca::Key(CaKey::load(path)?),
                CaSource::Vault { mount, role } => {
                    let backend = vault.ok_or_else(|| {
                        Error::VaultCa(format!(
                            "ca_keys `{group}` is in Vault's SSH engine, but [vault] is not configured"
                        ))
                    })?;
                    Ca::Vault(VaultCa::new(backend.clone(), mount, role))
                }
            };
            set.insert(group, ca);
        }
        Ok(set)
    }

    /// Adds (or replaces) the CA of `group`.
    pub fn insert(&mut self, group: &str, ca: Ca) {
        let ca = Arc::new(ca);
        if group == meho_config::DEFAULT_GROUP {
            self.default = Some(ca);
        } else {
            self.by_group.insert(group.to_owned(), ca);
        }
    }

    /// A set with only a default CA (dev mode, tests).
    pub fn single(key: CaKey) -> Self {
        CaSet {
            by_group: BTreeMap::new(),
            default: Some(Arc::new(Ca::Key(key))),
        }
    }

    /// The CA for a host: its first group that has one, else `_default`.
    pub fn for_groups(&self, groups: &[String]) -> Option<&Arc<Ca>> {
        groups
            .iter()
            .find_map(|g| self.by_group.get(g))
            .or(self.default.as_ref())
    }

    /// Whether no CA is configured at all.
    pub fn is_empty(&self) -> bool {
        self.by_group.is_empty() && self.default.is_none()
    }

    /// Every CA with the group it serves, for `meho ca show`-style listings.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<Ca>)> {
        self.default
            .iter()
            .map(|k| (meho_config::DEFAULT_GROUP, k))
            .chain(self.by_group.iter().map(|(g, k)| (g.as_str(), k)))
    }
}

/// A fresh Ed25519 key from the OS RNG. Used for the broker's per-call keys and for new CAs.
pub fn generate_ed25519(comment: &str) -> Result<PrivateKey, Error> {
    let seed = random_bytes::<32>()?;
    let keypair = Ed25519Keypair::from_seed(&seed);
    PrivateKey::new(KeypairData::Ed25519(keypair), comment)
        .map_err(|err| Error::Internal(format!("ed25519 key: {err}")))
}

/// `N` bytes from the OS RNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|err| Error::Internal(format!("OS RNG: {err}")))?;
    Ok(bytes)
}

/// `FILE.pub` beside `FILE`, as ssh-keygen names it.
pub fn public_path_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Creates `path` exclusively with `mode` and writes `bytes`, syncing before returning.
pub(crate) fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
