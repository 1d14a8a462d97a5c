//! `meho signer`: the signer as its own process, behind mutual TLS. It alone holds the CA keys;
//! brokers (`meho serve` with `[ssh] signer_url`) ask it for one certificate per call.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use meho_audit::{AuditLog, NewRecord, RecordKind};
use meho_config::{Config, SignerConfig};
use meho_ssh::ca::CaSet;
use meho_ssh::signer::Signer;
use serde_json::json;

use crate::Failure;
use crate::cli::SignerArgs;
use crate::runtime::{self, Backplane, Paths, Process, TENANT};

/// The `[signer]` settings `meho signer` cannot run without.
struct Tls {
    cert: PathBuf,
    key: PathBuf,
    client_ca: PathBuf,
}

pub(crate) fn run(args: &SignerArgs) -> Result<(), Failure> {
    let path = args.store.config.resolve().ok_or_else(|| {
        Failure::Usage(
            "no config file: pass --config FILE, set MEHO_CONFIG, or create ./meho.toml (`meho signer` needs [signer] and [ca_keys])".into(),
        )
    })?;
    let config = Config::load(&path)?;
    let tls = required_settings(&config.signer)?;
    runtime::init_tracing(&config.log.level);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    runtime::tokio_runtime()?.block_on(signer(args, &path, config, &tls))
}

/// The TLS files and callers, each missing one named (exit 2).
fn required_settings(signer: &SignerConfig) -> Result<Tls, Failure> {
    let required = |value: &Option<PathBuf>, key: &str, what: &str| {
        value.clone().ok_or_else(|| {
            Failure::Usage(format!(
                "[signer] {key} is required to run `meho signer` ({what})"
            ))
        })
    };
    let tls = Tls {
        cert: required(
            &signer.tls_cert,
            "tls_cert",
            "the signer's TLS certificate chain, PEM",
        )?,
        key: required(
            &signer.tls_key,
            "tls_key",
            "the signer's TLS private key, PEM",
        )?,
        client_ca: required(
            &signer.client_ca,
            "client_ca",
            "the CA bundle broker client certificates must chain to, PEM",
        )?,
    };
    if signer.allowed_callers.is_empty() {
        return Err(Failure::Usage(
            "[signer] allowed_callers is required to run `meho signer` (the client-certificate CNs of the brokers that may call it)".into(),
        ));
    }
    Ok(tls)
}

/// The CAs of `config`; the signer has nothing to sign with without one.
fn load_cas(config: &Config, data_dir: &Path) -> Result<CaSet, Failure> {
    let (cas, _) = meho_ssh::setup::load_cas(config, data_dir, false)
        .context("cannot load the SSH CA keys")?;
    if cas.is_empty() {
        return Err(Failure::Usage(
            "no SSH CA configured: configure [ca_keys._default] path (create a key with `meho ca init --out FILE`)".into(),
        ));
    }
    Ok(cas)
}

async fn signer(args: &SignerArgs, path: &Path, config: Config, tls: &Tls) -> Result<(), Failure> {
    let paths = Paths::new(
        &config,
        args.store.data_dir.as_deref(),
        args.store.store.as_deref(),
    );
    // Everything that can be wrong with the config is found before any state is created.
    let cas = load_cas(&config, &paths.data_dir)?;
    let server_tls = meho_ssh::tls::server_config(&tls.cert, &tls.key, &tls.client_ca)
        .context("cannot load the signer's TLS material")?;
    let backplane = Backplane::open(&config, &paths, Process::Signer).await?;
    let served = serve(args, path, config, cas, server_tls, &paths, &backplane).await;
    let closed = backplane.close().await;
    served?;
    closed?;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn serve(
    args: &SignerArgs,
    path: &Path,
    config: Config,
    cas: CaSet,
    server_tls: rustls::ServerConfig,
    paths: &Paths,
    backplane: &Backplane,
) -> Result<(), Failure> {
    backplane.record_start(&config, "signer").await?;
    let listen = args.listen.unwrap_or(config.signer.listen);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on `{listen}`"))?;
    let bound = listener
        .local_addr()
        .context("cannot read the bound address")?;
    // Approvals are redeemed against this process's store: share it with the servers (one
    // PostgreSQL) or approved calls stay refused here (fail closed).
    let signer = Arc::new(
        Signer::new(
            meho_ssh::setup::signer_state(&config, cas),
            backplane.audit.clone(),
            TENANT,
        )
        .with_store(backplane.signer_store(&config)),
    );
    let allowed_callers = config.signer.allowed_callers.clone();

    // Every handler is installed before the listen line: a signal sent as soon as a script reads
    // it must be handled, not take the default action (which for SIGHUP is to die).
    let shutdown = runtime::shutdown_signal();
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    let reloader = tokio::spawn(reload_on_hangup(
        hangup,
        Reload {
            path: path.to_path_buf(),
            data_dir: paths.data_dir.clone(),
            signer: signer.clone(),
            audit: backplane.audit.clone(),
            running: config.signer,
        },
    ));
    outln!("meho signer listening on https://{bound}")?;
    let _ = std::io::stdout().flush();
    tracing::info!(addr = %bound, callers = ?allowed_callers, "signer listening");

    let served =
        meho_ssh::signer_http::serve(listener, server_tls, signer, allowed_callers, shutdown)
            .await
            .context("the signer failed");
    reloader.abort();
    served?;
    Ok(())
}

/// What a SIGHUP reload needs.
struct Reload {
    path: PathBuf,
    data_dir: PathBuf,
    signer: Arc<Signer>,
    audit: Arc<AuditLog>,
    /// The `[signer]` section the process runs with; listen, TLS and callers need a restart.
    running: SignerConfig,
}

async fn reload_on_hangup(mut hangup: tokio::signal::unix::Signal, reload: Reload) {
    while hangup.recv().await.is_some() {
        tracing::info!(config = %reload.path.display(), "SIGHUP received, reloading the config");
        reload.run().await;
    }
}

impl Reload {
    /// Re-reads and re-validates the config and the CA keys; on success the signer answers from
    /// the new hosts and CAs, on failure it keeps the old ones. Either way the audit log says so.
    async fn run(&self) {
        let loaded = Config::load(&self.path)
            .map_err(|err| err.to_string())
            .and_then(|config| {
                load_cas(&config, &self.data_dir)
                    .map(|cas| (config, cas))
                    .map_err(|err| match err {
                        Failure::Usage(message) => message,
                        Failure::Runtime(err) => format!("{err:#}"),
                        Failure::Silent(code) => format!("exit status {code}"),
                    })
            });
        match loaded {
            Ok((config, cas)) => {
                if config.signer != self.running {
                    tracing::warn!(
                        "[signer] changed; listen, TLS files and allowed_callers take effect on restart"
                    );
                }
                let fingerprints: Vec<String> = cas
                    .iter()
                    .map(|(group, ca)| format!("{group}={}", ca.identity()))
                    .collect();
                let hosts: Vec<String> = config.hosts.keys().cloned().collect();
                // Recorded first: the signer never answers from a config the log does not name.
                let record = self.record(
                    "reloaded",
                    json!({
                        "config": self.path.display().to_string(),
                        "hosts": hosts,
                        "cas": fingerprints,
                    }),
                );
                if let Err(err) = self.audit.append(record).await {
                    tracing::error!(%err, "cannot audit the config reload; keeping the running config");
                    return;
                }
                self.signer
                    .reload(meho_ssh::setup::signer_state(&config, cas));
                tracing::info!(hosts = config.hosts.len(), "config reloaded");
            }
            Err(error) => {
                tracing::error!(%error, "config reload failed; keeping the running config");
                let record = self.record(
                    "reload_failed",
                    json!({ "config": self.path.display().to_string(), "error": error }),
                );
                if let Err(err) = self.audit.append(record).await {
                    tracing::error!(%err, "could not audit a failed config reload");
                }
            }
        }
    }

    fn record(&self, outcome: &str, body: serde_json::Value) -> NewRecord {
        NewRecord {
            action: Some("signer".to_owned()),
            outcome: Some(outcome.to_owned()),
            body,
            ..NewRecord::new(TENANT, RecordKind::ConfigReload, "meho")
        }
    }
}
