use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use meho_audit::{
    AuditKey, AuditLog, AuditOptions, InProcessBus, NewRecord, RecordKind, Redactor, Witness,
};
use meho_config::Config;
use meho_server::State;
use meho_store::Store;
use serde_json::json;
use tracing_subscriber::EnvFilter;

use crate::Failure;
use crate::cli::ServeArgs;

pub(crate) fn run(args: &ServeArgs) -> Result<(), Failure> {
    let config = match args.config.resolve() {
        Some(path) => Config::load(&path)?,
        None => Config::default_config()?,
    };
    init_tracing(&config.log.level);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args, config))
}

fn init_tracing(level: &str) {
    let filter = std::env::var("MEHO_LOG")
        .ok()
        .and_then(|directive| EnvFilter::try_new(directive).ok())
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[expect(
    clippy::print_stdout,
    reason = "the listen line is CLI output scripts read"
)]
async fn serve(args: &ServeArgs, config: Config) -> Result<(), Failure> {
    let data_dir: PathBuf = args
        .data_dir
        .clone()
        .unwrap_or_else(|| config.server.data_dir.clone());
    let url = args
        .store
        .clone()
        .unwrap_or_else(|| config.store.effective_url(&data_dir));
    let store = Store::open(&url)
        .await
        .with_context(|| format!("cannot open the store at `{url}`"))?;
    let instance = store.instance_id().await.context("cannot read the store")?;
    tracing::info!(store = %store.url(), %instance, hosts = config.hosts.len(), "store ready");
    let audit = start_audit(&config, &data_dir, &store).await?;
    // Fail closed: a server that cannot write its first audit record does not serve.
    audit
        .append(NewRecord {
            action: Some("serve".to_owned()),
            outcome: Some("loaded".to_owned()),
            body: json!({
                "version": env!("CARGO_PKG_VERSION"),
                "config": config.source.as_ref().map(|p| p.display().to_string()),
                "hosts": config.hosts.keys().collect::<Vec<_>>(),
                "instance": instance,
            }),
            ..NewRecord::new("default", RecordKind::ConfigReload, "meho")
        })
        .await
        .context("cannot write the startup audit record")?;

    let listen = args.listen.unwrap_or(config.server.listen);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on `{listen}`"))?;
    let bound = listener
        .local_addr()
        .context("cannot read the bound address")?;
    // Handlers are installed before the listen line: a SIGTERM sent as soon as a script reads it
    // must shut down cleanly, not kill the process with the default action.
    let shutdown = shutdown_signal();
    println!("meho listening on http://{bound}");
    tracing::info!(addr = %bound, "listening");

    let served = meho_server::serve(listener, State::new(store.clone()), shutdown)
        .await
        .context("the HTTP server failed");
    // A clean shutdown always ends with a signed checkpoint of every chain.
    let checkpoints = audit
        .shutdown()
        .await
        .context("cannot write the shutdown checkpoint")?;
    tracing::info!(checkpoints = checkpoints.len(), "audit log checkpointed");
    served?;
    store.close().await;
    tracing::info!("shut down cleanly");
    Ok(())
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

/// Installs the ctrl-c (SIGINT) and SIGTERM handlers now and returns a future that resolves on
/// either. Must be called inside the runtime.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &'static str| {
        let registered = signal(kind)
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
    };
    let ctrl_c = listen(SignalKind::interrupt(), "ctrl-c");
    let terminate = listen(SignalKind::terminate(), "SIGTERM");
    async move {
        tokio::select! {
            () = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
            () = terminate => tracing::info!("SIGTERM received, shutting down"),
        }
    }
}
