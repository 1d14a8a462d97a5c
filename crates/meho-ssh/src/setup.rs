//! Wiring from a validated [`Config`] to a signer and a broker, shared by `meho serve`,
//! `meho signer`, the CLI and the tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use meho_audit::AuditLog;
use meho_config::{CaSource, Config, SignerLocation};

use crate::Error;
use crate::broker::{BrokerOptions, SshBroker};
use crate::ca::{CaKey, CaSet};
use crate::signer::{Signer, SignerState};
use crate::signer_client::{LocalSigner, RemoteSigner, SignerClient};
use crate::vault_ca::VaultBackend;

/// Where dev mode keeps its CA when `[ca_keys]` is empty.
pub fn dev_ca_path(data_dir: &Path) -> PathBuf {
    data_dir.join("ca").join("ssh_ca_ed25519")
}

/// The CAs of `config`. With no `[ca_keys]`, the dev CA in the data directory is the one
/// `meho serve --dev` told the operator to trust: every command on that data directory (the
/// server, `meho mcp`, `meho ssh`, `meho signer`) uses it when it is there, and only
/// `create_dev` (`serve --dev`) creates it. The second value is its public line, for sshd.
pub fn load_cas(
    config: &Config,
    data_dir: &Path,
    create_dev: bool,
) -> Result<(CaSet, Option<String>), Error> {
    if !config.ca_keys.is_empty() {
        let vault = vault_backend(config, data_dir)?;
        return Ok((CaSet::load(&config.ca_keys, vault.as_ref())?, None));
    }
    let path = dev_ca_path(data_dir);
    let key = if path.exists() {
        CaKey::load(&path)?
    } else if create_dev {
        CaKey::init(&path)?
    } else {
        return Ok((CaSet::default(), None));
    };
    let line = key.public_line().to_owned();
    Ok((CaSet::single(key), Some(line)))
}

/// The Vault side of the CAs when a `[ca_keys]` CA is in Vault's SSH engine: the client and
/// meho's JWT issuer from `[vault]` (its signing key created when missing). `None` when every CA
/// is a key file.
pub fn vault_backend(config: &Config, data_dir: &Path) -> Result<Option<Arc<VaultBackend>>, Error> {
    let wanted = config
        .ca_keys
        .values()
        .any(|ca| matches!(ca, CaSource::Vault { .. }));
    if !wanted {
        return Ok(None);
    }
    let vault = config.vault.as_ref().ok_or_else(|| {
        Error::VaultCa(
            "a [ca_keys] CA is in Vault's SSH engine, but [vault] is not configured".into(),
        )
    })?;
    Ok(Some(Arc::new(VaultBackend::new(vault, data_dir)?)))
}

/// The signer's state from `config` and loaded CAs.
pub fn signer_state(config: &Config, cas: CaSet) -> SignerState {
    SignerState {
        hosts: config.hosts.clone(),
        cas,
    }
}

/// The broker `config` describes: against `local` (the in-process signer) unless `[ssh]
/// signer_url` points at a remote one.
pub fn broker(
    config: &Config,
    data_dir: &Path,
    audit: Arc<AuditLog>,
    local: Option<Arc<Signer>>,
) -> Result<Arc<SshBroker>, Error> {
    let client: Arc<dyn SignerClient> = match &config.ssh.signer {
        SignerLocation::Remote {
            url,
            tls_cert,
            tls_key,
            signer_ca,
        } => Arc::new(RemoteSigner::new(url, tls_cert, tls_key, signer_ca)?),
        SignerLocation::InProcess { caller } => {
            let signer = local.ok_or_else(|| {
                Error::Signer("no [ssh] signer_url and no in-process signer".into())
            })?;
            Arc::new(LocalSigner::new(signer, caller.clone()))
        }
    };
    Ok(Arc::new(SshBroker::new(
        client,
        audit,
        BrokerOptions::from_config(&config.ssh, data_dir),
    )))
}
