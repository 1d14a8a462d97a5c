//! Process setup shared by the commands that run the backplane (`serve`, `signer`, `ssh …`):
//! logging, the async runtime, the store and the audit log, signals, and the SSH signer and
//! broker. Each command composes these; none of them builds its own.

use std::fmt;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use meho_audit::{
    AuditKey, AuditLog, AuditOptions, InProcessBus, NewRecord, RecordKind, Redactor, Witness,
};
use meho_config::{Config, FileUse, SignerLocation};
use meho_gateway::{Gateway, Governance, Holds};
use meho_ssh::broker::{SshBroker, SshConnector};
use meho_ssh::signer::Signer;
use meho_store::Store;
use serde_json::json;
use tracing::field::Field;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

use crate::Failure;

/// meho's own records (startup, reloads, certificates for calls that name no tenant) go to the
/// reserved system chain, never into a tenant's feed.
pub(crate) const TENANT: &str = meho_config::SYSTEM_TENANT;

/// Logs to stderr with `MEHO_LOG`, else `level`, as the filter.
pub(crate) fn init_tracing(level: &str) {
    let (directive, filter) = std::env::var("MEHO_LOG")
        .ok()
        .and_then(|d| EnvFilter::try_new(&d).ok().map(|f| (d, f)))
        .or_else(|| {
            EnvFilter::try_new(level)
                .ok()
                .map(|f| (level.to_owned(), f))
        })
        .unwrap_or_else(|| ("info".to_owned(), EnvFilter::new("info")));
    let filter = quiet_rmcp(&directive, filter);
    tracing_subscriber::fmt()
        .fmt_fields(escaping_fields())
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// rmcp logs every request and session at INFO; for meho's operator those are DEBUG lines. So
/// when the filter's most verbose level is INFO and it does not name `rmcp` itself, rmcp logs
/// warnings and up. (A quieter filter hides them already and must stay as quiet: `off` is off.)
fn quiet_rmcp(directive: &str, filter: EnvFilter) -> EnvFilter {
    let info = filter.max_level_hint() == Some(tracing::level_filters::LevelFilter::INFO);
    if !info || directive.contains("rmcp") {
        return filter;
    }
    match "rmcp=warn".parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    }
}

/// Log fields as the default formatter writes them, but with every control and bidi character
/// escaped ([`meho_core::display::escape`]): logs quote what agents send (ids, commands,
/// messages), and tracing-subscriber leaves `%field` values and parts of messages raw, so an ESC
/// or U+202E would reach an operator's terminal or log viewer as itself.
fn escaping_fields() -> impl for<'w> FormatFields<'w> + 'static {
    debug_fn(
        |writer: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug| {
            let text = format!("{value:?}");
            let shown = meho_core::display::escape(&text);
            if field.name() == "message" {
                write!(writer, "{shown}")
            } else {
                write!(writer, "{}={shown}", field.name())
            }
        },
    )
    .delimited(" ")
}

/// The multi-threaded tokio runtime the long-running commands use.
pub(crate) fn tokio_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?)
}

/// Where state lives: the data directory and the store URL, after flags and config.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    /// `--data-dir` / `MEHO_DATA_DIR`, else `[server] data_dir`.
    pub(crate) data_dir: PathBuf,
    /// `--store` / `MEHO_STORE_URL`, else `[store] url`, else SQLite in the data directory.
    pub(crate) url: String,
}

impl Paths {
    /// The paths `config` and the `data_dir` and `store` flags select.
    pub(crate) fn new(config: &Config, data_dir: Option<&Path>, store: Option<&str>) -> Self {
        let data_dir = data_dir.map_or_else(|| config.server.data_dir.clone(), Path::to_path_buf);
        let url = store.map_or_else(|| config.store.effective_url(&data_dir), str::to_owned);
        Paths { data_dir, url }
    }
}

/// The store and the audit log over it: what every governed call writes to.
#[derive(Debug)]
pub(crate) struct Backplane {
    pub(crate) store: Store,
    pub(crate) audit: Arc<AuditLog>,
    instance: String,
}

/// What a process that opens the backplane goes on to do: it decides which files the config
/// names must be there before anything is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Process {
    /// `serve`, `mcp`, `ssh`: the broker, with the in-process signer unless `[ssh] signer_url`.
    Broker,
    /// `meho signer`.
    Signer,
}

impl Process {
    fn reads(self, config: &Config) -> &'static [FileUse] {
        match (self, &config.ssh.signer) {
            (Process::Signer, _) => &[FileUse::SshCa, FileUse::SignerTls],
            (Process::Broker, SignerLocation::InProcess { .. }) => {
                &[FileUse::SshCa, FileUse::Kube, FileUse::Api]
            }
            (Process::Broker, SignerLocation::Remote { .. }) => {
                &[FileUse::BrokerTls, FileUse::Kube, FileUse::Api]
            }
        }
    }
}

impl Backplane {
    /// Opens (creating and migrating) the store and starts the audit log, creating the audit key
    /// pair on first run. Every file the config names for `process` is checked first, so a
    /// config that cannot work leaves nothing behind.
    pub(crate) async fn open(
        config: &Config,
        paths: &Paths,
        process: Process,
    ) -> Result<Self, Failure> {
        config.check_files(process.reads(config))?;
        let store = Store::open(&paths.url).await.with_context(|| {
            format!(
                "cannot open the store at `{}`",
                meho_store::mask_password(&paths.url)
            )
        })?;
        let instance = store.instance_id().await.context("cannot read the store")?;
        tracing::info!(store = %store.url(), %instance, hosts = config.hosts.len(), "store ready");
        let audit = match start_audit(config, &paths.data_dir, &store).await {
            Ok(audit) => audit,
            Err(err) => {
                store.close().await;
                return Err(err);
            }
        };
        Ok(Backplane {
            store,
            audit: Arc::new(audit),
            instance,
        })
    }

    /// Writes the `config_reload` record that says `process` (`serve`, `signer`) started on
    /// `config`. A process that cannot write it must not serve (fail closed).
    pub(crate) async fn record_start(&self, config: &Config, process: &str) -> Result<(), Failure> {
        self.audit
            .append(NewRecord {
                action: Some(process.to_owned()),
                outcome: Some("loaded".to_owned()),
                body: json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "config": config.source.as_ref().map(|p| p.display().to_string()),
                    "hosts": config.hosts.keys().collect::<Vec<_>>(),
                    "clusters": config.clusters.keys().collect::<Vec<_>>(),
                    "instance": self.instance,
                }),
                ..NewRecord::new(TENANT, RecordKind::ConfigReload, "meho")
            })
            .await
            .context("cannot write the startup audit record")?;
        Ok(())
    }

    /// What the signer reads from the store: approvals to redeem, grants and waivers.
    pub(crate) fn signer_store(&self, config: &Config) -> meho_ssh::signer::SignerStore {
        let pool = self.store.pool().clone();
        meho_ssh::signer::SignerStore {
            approvals: meho_approvals::Approvals::new(
                pool.clone(),
                meho_approvals::ApprovalPolicy::from_config(&config.approvals),
            ),
            grants: meho_approvals::Grants::new(pool),
        }
    }

    /// The human-in-the-loop state over this store, announcing to the configured webhooks.
    pub(crate) fn governance(
        &self,
        config: &Config,
        public_url: &str,
        self_approval_hint: Option<String>,
    ) -> Result<Arc<Governance>, Failure> {
        let mut governance = Governance::new(
            &self.store,
            meho_approvals::ApprovalPolicy::from_config(&config.approvals),
            self.audit.clone(),
            public_url,
            config.hosts.clone(),
        )
        .with_clusters(config.clusters.clone())
        .with_apis(
            config
                .apis
                .values()
                .map(|api| (api.name.clone(), api.tenant.clone())),
        );
        if let Some(hint) = self_approval_hint {
            governance = governance.with_self_approval_hint(hint);
        }
        if !config.webhooks.is_empty() {
            let notifier = meho_notify::Notifier::new(config.webhooks.clone(), self.audit.clone())
                .context("cannot set up the approval webhooks")?;
            governance = governance.with_notifier(notifier);
        }
        Ok(Arc::new(governance))
    }

    /// Ends with a signed checkpoint of every chain, then closes the store.
    pub(crate) async fn close(self) -> Result<(), Failure> {
        let checkpoints = self
            .audit
            .shutdown()
            .await
            .context("cannot write the shutdown checkpoint");
        self.store.close().await;
        let checkpoints = checkpoints?;
        tracing::info!(checkpoints = checkpoints.len(), "audit log checkpointed");
        Ok(())
    }
}

/// Opens the audit log over `store`, creating the audit key pair on first run.
async fn start_audit(config: &Config, data_dir: &Path, store: &Store) -> Result<AuditLog, Failure> {
    let key_path = config.audit.key_path(data_dir);
    if !key_path.exists() {
        let public_path = config.audit.public_key_path(data_dir);
        AuditKey::generate()
            .and_then(|key| key.save(&key_path, &public_path))
            .context("cannot create the audit key")?;
        tracing::info!(key = %key_path.display(), public_key = %public_path.display(), "created the audit key pair");
    }
    let key = AuditKey::load(&key_path).context("cannot load the audit key")?;
    let redactor = Redactor::new(&config.audit.redact).context("invalid [audit] redact pattern")?;
    let options = AuditOptions {
        key: Some(key),
        witness: Some(Witness::new(config.audit.witness_path(data_dir))),
        checkpoint_every_records: config.audit.checkpoint_every_records,
        checkpoint_interval: Duration::from_secs(config.audit.checkpoint_every_seconds),
        redactor,
    };
    let audit = AuditLog::start(
        meho_audit::store::open(store),
        Arc::new(InProcessBus::new()),
        options,
    )
    .await
    .context("cannot start the audit log")?;
    Ok(audit)
}

/// The SSH side of a process: the in-process signer (unless `[ssh] signer_url` names a remote
/// one) and the broker every SSH tool call goes through.
#[derive(Debug)]
pub(crate) struct Ssh {
    pub(crate) broker: Arc<SshBroker>,
    /// The dev CA's public line, when the data directory has one (and `[ca_keys]` is empty).
    pub(crate) dev_ca: Option<String>,
}

impl Ssh {
    /// Builds the signer and the broker. With `[ca_keys]` empty the data directory's dev CA is
    /// used when it is there; `dev` (`serve --dev`) also creates it. With a remote signer no
    /// CA key is loaded here: keeping them out of this process is the point of one.
    pub(crate) fn start(
        config: &Config,
        data_dir: &Path,
        backplane: &Backplane,
        dev: bool,
    ) -> Result<Self, Failure> {
        let audit = &backplane.audit;
        let (signer, dev_ca) = match &config.ssh.signer {
            SignerLocation::Remote { url, .. } => {
                if dev {
                    tracing::warn!(%url, "--dev has no effect with [ssh] signer_url: the remote signer holds the CAs");
                }
                (None, None)
            }
            SignerLocation::InProcess { .. } => {
                let (cas, dev_ca) = meho_ssh::setup::load_cas(config, data_dir, dev)
                    .context("cannot load the SSH CA keys")?;
                if cas.is_empty() {
                    tracing::debug!(
                        "no SSH CA configured: certificates cannot be issued until [ca_keys._default] (or `meho serve --dev`) provides one"
                    );
                }
                let state = meho_ssh::setup::signer_state(config, cas);
                let signer = Arc::new(
                    Signer::new(state, audit.clone(), TENANT)
                        .with_store(backplane.signer_store(config)),
                );
                (Some(signer), dev_ca)
            }
        };
        let broker = meho_ssh::setup::broker(config, data_dir, audit.clone(), signer)
            .context("cannot set up the SSH broker")?;
        Ok(Ssh { broker, dev_ca })
    }

    /// The gateway over every connector (SSH, and Kubernetes when `[clusters]` names any),
    /// governed by `governance`: the one call path MCP, the REST API and the CLI share. `holds`
    /// says what a call that needs approval becomes.
    pub(crate) fn gateway(
        &self,
        config: &Config,
        backplane: &Backplane,
        governance: Arc<Governance>,
        holds: Holds,
        apis: Option<Arc<meho_http::HttpConnector>>,
    ) -> Result<Gateway, Failure> {
        let mut builder = Gateway::builder(governance)
            .connector(Arc::new(SshConnector::new(self.broker.clone())))
            .holds(holds);
        if let Some(apis) = apis {
            builder = builder.connector(apis);
        }
        if !config.clusters.is_empty() {
            let store = backplane.signer_store(config);
            let kube = meho_kube::KubeConnector::new(
                config.clusters.values().cloned(),
                backplane.audit.clone(),
            )
            .map_err(|err| Failure::Runtime(anyhow::anyhow!("cannot set up the clusters: {err}")))?
            .with_store(store.approvals, store.grants);
            builder = builder.connector(Arc::new(kube));
        }
        // Large results are reduced for the frontends an agent uses (MCP, the REST API); the
        // CLI, which holds nothing and shows a human the output, gets results whole.
        if holds == Holds::Pending && config.reduction.enabled {
            let results = Arc::new(meho_reduce::Results::new(
                meho_reduce::store::ResultStore::new(
                    backplane.store.pool().clone(),
                    meho_reduce::store::Caps {
                        max_result_bytes: config.reduction.max_result_bytes,
                        max_principal_bytes: config.reduction.max_principal_bytes,
                    },
                ),
                meho_reduce::Settings::from_config(&config.reduction),
                backplane.audit.redactor().clone(),
            ));
            builder = builder.reducer(results.clone()).connector(results);
        }
        builder
            .build()
            .map_err(|err| Failure::Runtime(anyhow::anyhow!("cannot build the gateway: {err}")))
    }
}

/// The REST connector over `[apis.*]`, with Vault federation when `[vault]` is configured and
/// meho's sealed secrets; `None` when no API is configured. Loads every spec now. Also returns
/// the JWKS of meho's own JWTs (for `/.well-known/jwks.json`) when `[vault]` is configured.
pub(crate) async fn apis(
    config: &Config,
    data_dir: &Path,
    backplane: &Backplane,
) -> Result<
    (
        Option<Arc<meho_http::HttpConnector>>,
        Option<serde_json::Value>,
    ),
    Failure,
> {
    let federation = match &config.vault {
        Some(vault) => {
            let key_file = vault.signing_key_file(data_dir);
            let issuer = meho_vault::JwtIssuer::load_or_create(&key_file, &vault.issuer)
                .with_context(|| {
                    format!("cannot load meho's JWT signing key {}", key_file.display())
                })?;
            let federation = meho_http::Federation::new(vault.clone(), issuer)
                .map_err(|err| Failure::Runtime(anyhow::anyhow!("[vault]: {err}")))?;
            Some(Arc::new(federation))
        }
        None => None,
    };
    let jwks = federation.as_ref().map(|f| f.jwks());
    if config.apis.is_empty() {
        return Ok((None, jwks));
    }
    let key = meho_store::secrets::SecretKey::load(config.secrets.key_file.as_deref())
        .context("cannot load the secrets key")?;
    let sources = meho_http::Sources {
        federation,
        sealed: Some(Arc::new(meho_store::secrets::SealedSecrets::new(
            &backplane.store,
            key,
        ))),
    };
    let store = backplane.signer_store(config);
    let connector = meho_http::HttpConnector::start(
        config.apis.values().cloned(),
        sources,
        backplane.audit.clone(),
    )
    .await
    .map_err(|err| Failure::Runtime(anyhow::anyhow!("cannot set up the apis: {err}")))?
    .with_store(store.approvals, store.grants);
    Ok((Some(Arc::new(connector)), jwks))
}

/// Installs a handler for one signal now and returns a future that resolves when it arrives
/// (never, when the handler cannot be installed, which is logged).
fn on_signal(
    kind: tokio::signal::unix::SignalKind,
    name: &'static str,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let registered = tokio::signal::unix::signal(kind)
        .map_err(|err| tracing::error!(error = %err, "cannot listen for {name}"))
        .ok();
    async move {
        match registered {
            Some(mut signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
}

/// Installs the ctrl-c (SIGINT) and SIGTERM handlers now and returns a future that resolves on
/// either. Must be called inside the runtime, before anything tells a script the process is up.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::SignalKind;
    let ctrl_c = on_signal(SignalKind::interrupt(), "ctrl-c");
    let terminate = on_signal(SignalKind::terminate(), "SIGTERM");
    async move {
        tokio::select! {
            () = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
            () = terminate => tracing::info!("SIGTERM received, shutting down"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_escape_control_and_bidi_characters_in_every_field() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(escaping_fields())
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let agent = "x\u{1b}[2K\u{9b}\u{202e}txt";
            tracing::warn!(display = %agent, debug = ?agent, plain = agent, "call {agent} refused\nfaked");
        });
        let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{9b}') && !out.contains('\u{202e}'),
            "{out:?}"
        );
        assert!(out.contains("display=x\\x1b[2K\\x9b\\u{202e}txt"), "{out}");
        assert!(out.contains("call x\\x1b[2K"), "{out}");
        assert!(out.contains("refused\\x0afaked"), "{out}");
        assert_eq!(out.lines().count(), 1, "one event is one line: {out}");
    }

    fn quieted(directive: &str) -> String {
        let filter = EnvFilter::try_new(directive).expect("a valid filter");
        quiet_rmcp(directive, filter).to_string()
    }

    #[test]
    fn rmcp_info_lines_are_quieted_at_info_only() {
        // At INFO, rmcp's per-request INFO lines are dropped, its warnings kept.
        assert!(quieted("info").contains("rmcp=warn"), "{}", quieted("info"));
        assert!(quieted("meho=info").contains("rmcp=warn"));
        // Asking for debug, naming rmcp, or a quieter filter leaves the filter as it was: `off`
        // stays off, `warn` stays warn.
        for unchanged in [
            "debug",
            "meho=debug,info",
            "info,rmcp=info",
            "off",
            "warn",
            "error",
        ] {
            assert!(!quieted(unchanged).contains("rmcp=warn"), "{unchanged}");
        }
    }
}
