//! The Kubernetes lab the meho-kube tests and bench share: one real kube-apiserver ([`crate::kube`])
//! per process, and per test a store, an audit log, the human in the loop and the gateway's
//! pipeline over meho's Kubernetes connector, with a cluster configured against that apiserver.
//!
//! Each `#[tokio::test]` has a runtime of its own that dies with the test, so the shared
//! apiserver lives on a runtime of its own ([`SharedKube`]): its start and every request of its
//! harness (whose HTTP client pools connections) run there, never on a test's runtime. Tests
//! share it by working in namespaces (and ServiceAccounts) of their own.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use meho_audit::{AuditLog, StoredRecord};
use meho_config::Config;
use meho_gateway::{Caller, Gateway, Governance, Holds, ToolError};
use meho_kube::KubeConnector;
use serde_json::Value;

use crate::kube::KubeApiserver;

/// A kube-apiserver shared by every test of a process, with the runtime its harness runs on.
#[derive(Debug)]
pub struct SharedKube {
    kube: &'static KubeApiserver,
    runtime: &'static tokio::runtime::Runtime,
    /// [`KubeApiserver::minter`] rewrites one token file: calls of it take turns.
    minting: tokio::sync::Mutex<()>,
}

/// The runtime the shared apiserver's harness runs on; it lives as long as the process.
fn harness_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kube-harness")
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Prints `SKIPPED: <why>` past the test harness's capture (as [`crate::kube`] does), so every
/// test that could not run is counted.
fn skipped(why: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\nSKIPPED: {why}");
    let _ = out.flush();
}

impl SharedKube {
    /// The process's apiserver, started on first use; `None` (after printing `SKIPPED:`) when
    /// the test peer is missing outside CI, as [`KubeApiserver::start`] decides.
    pub async fn get() -> Option<&'static SharedKube> {
        static SHARED: tokio::sync::OnceCell<Option<SharedKube>> =
            tokio::sync::OnceCell::const_new();
        // The start that finds the peer missing says so itself; every later test says it here.
        let mut started_here = false;
        let shared = SHARED
            .get_or_init(|| async {
                started_here = true;
                let runtime = harness_runtime();
                let started = runtime
                    .spawn(KubeApiserver::start())
                    .await
                    .unwrap_or_else(|e| panic!("the kube-apiserver did not start: {e}"))?;
                let kube: &'static KubeApiserver = Box::leak(Box::new(started));
                Some(SharedKube {
                    kube,
                    runtime,
                    minting: tokio::sync::Mutex::new(()),
                })
            })
            .await
            .as_ref();
        if shared.is_none() && !started_here {
            skipped("the kube-apiserver test peer is missing (see above); run scripts/test");
        }
        shared
    }

    /// The apiserver, for what needs no runtime (its URL, CA, audit log, logs to serve).
    pub fn kube(&self) -> &'static KubeApiserver {
        self.kube
    }

    /// Runs `f` with the apiserver on the harness's runtime and returns its answer.
    pub async fn run<T, F, Fut>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(&'static KubeApiserver) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.runtime
            .spawn(f(self.kube))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// [`KubeApiserver::apply`] on the harness's runtime.
    pub async fn apply(&self, manifest: impl Into<String>) {
        let manifest = manifest.into();
        self.run(|k| async move { k.apply(&manifest).await }).await;
    }

    /// [`KubeApiserver::admin`] on the harness's runtime.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (method, path) = (method.to_owned(), path.to_owned());
        self.run(|k| async move { k.admin(&method, &path, body).await })
            .await
    }

    /// [`KubeApiserver::admin_ok`] on the harness's runtime.
    pub async fn admin_ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (method, path) = (method.to_owned(), path.to_owned());
        self.run(|k| async move { k.admin_ok(&method, &path, body).await })
            .await
    }

    /// [`KubeApiserver::node`] on the harness's runtime.
    pub async fn node(&self, name: &str) {
        let name = name.to_owned();
        self.run(|k| async move { k.node(&name).await }).await;
    }

    /// [`KubeApiserver::pod_running`] on the harness's runtime.
    pub async fn pod_running(&self, namespace: &str, name: &str) {
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        self.run(|k| async move { k.pod_running(&namespace, &name).await })
            .await;
    }

    /// [`KubeApiserver::token`] on the harness's runtime.
    pub async fn token(&self, namespace: &str, name: &str, seconds: u64) -> String {
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        self.run(|k| async move { k.token(&namespace, &name, seconds).await })
            .await
    }

    /// Makes the minter for `accounts` (see [`KubeApiserver::minter`]) and writes its token to
    /// `into` (mode 0600), a file of the caller's own.
    pub async fn minter(&self, accounts: &[(&str, &str)], into: PathBuf) -> PathBuf {
        let accounts: Vec<(String, String)> = accounts
            .iter()
            .map(|(ns, sa)| ((*ns).to_owned(), (*sa).to_owned()))
            .collect();
        let _turn = self.minting.lock().await;
        let shared = self
            .run(|k| async move {
                let borrowed: Vec<(&str, &str)> = accounts
                    .iter()
                    .map(|(ns, sa)| (ns.as_str(), sa.as_str()))
                    .collect();
                k.minter(&borrowed).await
            })
            .await;
        let token = std::fs::read_to_string(&shared).unwrap();
        std::fs::write(&into, token).unwrap();
        std::fs::set_permissions(&into, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        into
    }
}

/// The `[clusters.NAME]` table of a cluster on `kube` whose minter token is `minter_token_file`,
/// followed by `extra` lines of the same table (`sa_bindings`, `rules`, `tenant`, …).
pub fn cluster_toml(
    name: &str,
    kube: &KubeApiserver,
    minter_token_file: &std::path::Path,
    extra: &str,
) -> String {
    format!(
        "[clusters.{name}]\napi_server = \"{}\"\nca_cert = \"{}\"\nminter_token_file = \"{}\"\n{extra}\n",
        kube.url(),
        kube.ca_pem_path().display(),
        minter_token_file.display()
    )
}

/// The pipeline over meho's Kubernetes connector for one test: its own store and audit log
/// (SQLite in `dir`), the human in the loop, and the clusters of `config`.
#[derive(Debug)]
pub struct KubeLab {
    /// The lab's directory (store, minter token).
    pub dir: tempfile::TempDir,
    /// The audit log every record of the lab goes to.
    pub audit: Arc<AuditLog>,
    /// The human in the loop (approvals, grants, freezes) on the lab's store.
    pub governance: Arc<Governance>,
    /// The pipeline: held calls become pending approvals (as over MCP).
    pub gateway: Gateway,
    /// The connector behind the gateway.
    pub connector: Arc<KubeConnector>,
    /// The config the clusters come from.
    pub config: Config,
}

impl KubeLab {
    /// A lab over `config_toml` (clusters built with [`cluster_toml`]), in `dir`.
    pub async fn new(dir: tempfile::TempDir, config_toml: &str) -> KubeLab {
        let config =
            Config::parse(config_toml, None).unwrap_or_else(|e| panic!("{e}\n{config_toml}"));
        let store = crate::sqlite_store(dir.path()).await.unwrap();
        let audit = crate::audit_log(&store).await.unwrap();
        let governance = Arc::new(
            Governance::new(
                &store,
                meho_approvals::ApprovalPolicy::default(),
                audit.clone(),
                "http://127.0.0.1",
                config.hosts.clone(),
            )
            .with_clusters(config.clusters.clone()),
        );
        let connector = Arc::new(
            KubeConnector::new(config.clusters.values().cloned(), audit.clone())
                .unwrap()
                .with_store(governance.approvals.clone(), governance.grants.clone()),
        );
        let gateway = Gateway::builder(governance.clone())
            .connector(connector.clone())
            .holds(Holds::Pending)
            .build()
            .unwrap();
        KubeLab {
            dir,
            audit,
            governance,
            gateway,
            connector,
            config,
        }
    }

    /// A call as `who`.
    pub async fn call_as(&self, who: &Caller, tool: &str, args: Value) -> Result<Value, ToolError> {
        self.gateway.call(who, tool, args).await
    }

    /// Every record, oldest first.
    pub async fn records(&self) -> Vec<StoredRecord> {
        crate::records(&self.audit).await.unwrap()
    }

    /// The records of `call_id`, oldest first.
    pub async fn records_of_call(&self, call_id: &str) -> Vec<StoredRecord> {
        self.records()
            .await
            .into_iter()
            .filter(|r| r.call_id.as_deref() == Some(call_id))
            .collect()
    }
}

/// A record's body as JSON.
pub fn body(record: &StoredRecord) -> Value {
    serde_json::from_str(&record.body).unwrap()
}
