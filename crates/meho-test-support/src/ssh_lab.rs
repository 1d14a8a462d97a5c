//! The SSH lab the meho-ssh tests and benches share: a CA, an audit log on SQLite, config built
//! from real sshd instances, the broker over an in-process signer, and the gateway's pipeline over
//! it (the CLI's: a call that needs approval is refused with the call it must be bound to).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use meho_audit::{AuditLog, StoredRecord};
use meho_config::Config;
use meho_gateway::{Caller, Gateway, ToolError};
use meho_ssh::broker::{BrokerOptions, SshBroker, SshConnector};
use meho_ssh::ca::CaKey;
use meho_ssh::signer::{Signer, SignerState};
use meho_ssh::signer_client::LocalSigner;
use serde_json::Value;

use crate::sshd::{Sshd, SshdOptions, ensure_user};

/// The login user every test host uses.
pub const USER: &str = "mehotest";

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub ca_path: PathBuf,
    /// The approvals the signer redeems (same store).
    pub approvals: meho_approvals::Approvals,
    /// The grants and waivers the signer overlays (same store).
    pub grants: meho_approvals::Grants,
    pub audit: Arc<AuditLog>,
    pub signer: Arc<Signer>,
    pub broker: Arc<SshBroker>,
    pub gateway: Gateway,
    /// The human in the loop behind the gateway (same store).
    pub governance: Arc<meho_gateway::Governance>,
    pub config: Config,
}

impl Lab {
    /// The CA's public line and path, made before any sshd starts.
    pub fn ca() -> (tempfile::TempDir, PathBuf, String) {
        ensure_user(USER);
        let dir = tempfile::Builder::new()
            .prefix("meho-lab-")
            .tempdir()
            .unwrap();
        let ca_path = dir.path().join("ca");
        let ca = CaKey::init(&ca_path).unwrap();
        let line = ca.public_line().to_owned();
        (dir, ca_path, line)
    }

    /// Starts an sshd trusting `ca_line`.
    pub fn sshd(ca_line: &str) -> Sshd {
        Sshd::start(SshdOptions::new([ca_line]))
    }

    /// A lab over `config_toml` (which must not set `[ca_keys]`: the lab CA is added).
    pub async fn new(
        dir: tempfile::TempDir,
        ca_path: PathBuf,
        config_toml: &str,
        tweak: impl FnOnce(&mut BrokerOptions),
    ) -> Lab {
        let text = format!(
            "{config_toml}\n[ca_keys._default]\npath = \"{}\"\n",
            ca_path.display()
        );
        Self::with_config(dir, ca_path, &text, tweak).await
    }

    /// A lab over `text`, which configures its own `[ca_keys]` (e.g. a CA in Vault); the lab's
    /// directory is the data directory.
    pub async fn with_config(
        dir: tempfile::TempDir,
        ca_path: PathBuf,
        text: &str,
        tweak: impl FnOnce(&mut BrokerOptions),
    ) -> Lab {
        let config = Config::parse(text, None).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let store = crate::sqlite_store(dir.path()).await.unwrap();
        let audit = crate::audit_log(&store).await.unwrap();
        let (cas, _) = meho_ssh::setup::load_cas(&config, dir.path(), false).unwrap();
        let approvals = meho_approvals::Approvals::new(
            store.pool().clone(),
            meho_approvals::ApprovalPolicy::default(),
        );
        let grants = meho_approvals::Grants::new(store.pool().clone());
        let signer = Arc::new(
            Signer::new(
                SignerState {
                    hosts: config.hosts.clone(),
                    cas,
                },
                audit.clone(),
                "default",
            )
            .with_store(meho_ssh::signer::SignerStore {
                approvals: approvals.clone(),
                grants: grants.clone(),
            }),
        );
        let mut options = BrokerOptions::from_config(&config.ssh, dir.path());
        options.connect.connect_timeout = Duration::from_secs(10);
        tweak(&mut options);
        let broker = Arc::new(SshBroker::new(
            Arc::new(LocalSigner::new(signer.clone(), "meho-test")),
            audit.clone(),
            options,
        ));
        let governance = Arc::new(meho_gateway::Governance::new(
            &store,
            meho_approvals::ApprovalPolicy::default(),
            audit.clone(),
            "http://127.0.0.1",
            config.hosts.clone(),
        ));
        let gateway = Self::gateway_over(&governance, broker.clone());
        Lab {
            dir,
            ca_path,
            approvals,
            grants,
            audit,
            signer,
            broker,
            gateway,
            governance,
            config,
        }
    }

    /// The pipeline over `broker`: the CLI's (a call that needs approval is refused with the
    /// call it must be bound to; these tests create and decide approvals themselves).
    pub fn gateway_over(
        governance: &Arc<meho_gateway::Governance>,
        broker: Arc<SshBroker>,
    ) -> Gateway {
        Gateway::builder(governance.clone())
            .connector(Arc::new(SshConnector::new(broker)))
            .holds(meho_gateway::Holds::Refuse)
            .build()
            .unwrap()
    }

    /// Applies a new config to the running signer (a policy reload).
    pub fn reload(&self, config_toml: &str) {
        let text = format!(
            "{config_toml}\n[ca_keys._default]\npath = \"{}\"\n",
            self.ca_path.display()
        );
        let config = Config::parse(&text, None).unwrap();
        self.signer.reload(SignerState {
            hosts: config.hosts.clone(),
            cas: meho_ssh::setup::load_cas(&config, self.dir.path(), false)
                .unwrap()
                .0,
        });
    }

    pub async fn call(&self, tool: &str, args: Value) -> Result<Value, ToolError> {
        self.gateway.call(&caller(), tool, args).await
    }

    pub async fn call_as(&self, who: &Caller, tool: &str, args: Value) -> Result<Value, ToolError> {
        self.gateway.call(who, tool, args).await
    }

    /// Every record, oldest first.
    pub async fn records(&self) -> Vec<StoredRecord> {
        crate::records(&self.audit).await.unwrap()
    }

    /// Records of `action`.
    pub async fn records_of(&self, action: &str) -> Vec<StoredRecord> {
        self.records()
            .await
            .into_iter()
            .filter(|r| r.action.as_deref() == Some(action))
            .collect()
    }
}

pub fn caller() -> Caller {
    Caller::agent("agent-1")
}

/// A `[hosts.NAME]` block for `sshd`, plus `extra` lines.
pub fn host(name: &str, sshd: &Sshd, extra: &str) -> String {
    format!(
        "[hosts.{name}]\naddr = \"{}\"\nuser = \"{USER}\"\nhost_key = \"{}\"\n{extra}\n",
        sshd.addr_string(),
        sshd.host_key_line()
    )
}

pub fn body(record: &StoredRecord) -> Value {
    serde_json::from_str(&record.body).unwrap()
}
