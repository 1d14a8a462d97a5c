use std::path::PathBuf;

use anyhow::Context as _;
use meho_config::Config;
use meho_server::State;
use meho_store::Store;
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
    let url = config.store.effective_url(&data_dir);
    let store = Store::open(&url)
        .await
        .with_context(|| format!("cannot open the store at `{url}`"))?;
    let instance = store.instance_id().await.context("cannot read the store")?;
    tracing::info!(store = %store.url(), %instance, hosts = config.hosts.len(), "store ready");

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

    meho_server::serve(listener, State::new(store.clone()), shutdown)
        .await
        .context("the HTTP server failed")?;
    store.close().await;
    tracing::info!("shut down cleanly");
    Ok(())
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
