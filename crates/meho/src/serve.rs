use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use meho_config::Config;
use meho_server::State;

use crate::Failure;
use crate::cli::ServeArgs;
use crate::runtime::{self, Backplane, Paths, Ssh};

/// How often idle and expired SSH sessions are closed.
const REAP_EVERY: Duration = Duration::from_secs(5);

pub(crate) fn run(args: &ServeArgs) -> Result<(), Failure> {
    let config = args.config.load_or_default()?;
    runtime::init_tracing(&config.log.level);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    runtime::tokio_runtime()?.block_on(serve(args, config))
}

async fn serve(args: &ServeArgs, config: Config) -> Result<(), Failure> {
    let paths = Paths::new(&config, args.data_dir.as_deref(), args.store.as_deref());
    let backplane = Backplane::open(&config, &paths).await?;
    let served = serve_on(args, &config, &paths, &backplane).await;
    // A clean shutdown always ends with a signed checkpoint of every chain, also after a failure
    // past this point.
    let closed = backplane.close().await;
    served?;
    closed?;
    tracing::info!("shut down cleanly");
    Ok(())
}

#[expect(
    clippy::print_stdout,
    reason = "the dev CA and listen lines are CLI output scripts read"
)]
async fn serve_on(
    args: &ServeArgs,
    config: &Config,
    paths: &Paths,
    backplane: &Backplane,
) -> Result<(), Failure> {
    // Fail closed: a server that cannot write its first audit record does not serve.
    backplane.record_start(config, "serve").await?;
    let ssh = Ssh::start(config, &paths.data_dir, &backplane.audit, args.dev)?;

    let listen = args.listen.unwrap_or(config.server.listen);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on `{listen}`"))?;
    let bound = listener
        .local_addr()
        .context("cannot read the bound address")?;
    // Handlers are installed before the listen line: a SIGTERM sent as soon as a script reads it
    // must shut down cleanly, not kill the process with the default action.
    let shutdown = runtime::shutdown_signal();
    if let Some(line) = &ssh.dev_ca {
        println!("meho dev CA (add to sshd TrustedUserCAKeys): {line}");
    }
    println!("meho listening on http://{bound}");
    let _ = std::io::stdout().flush();
    tracing::info!(addr = %bound, "listening");
    let reaper = ssh.broker.spawn_reaper(REAP_EVERY);

    let served = meho_server::serve(listener, State::new(backplane.store.clone()), shutdown)
        .await
        .context("the HTTP server failed");
    // Open sessions are closed (and their closing records written) before the audit log is.
    ssh.broker.shutdown().await;
    reaper.abort();
    served?;
    Ok(())
}
