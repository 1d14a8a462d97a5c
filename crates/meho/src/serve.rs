use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use meho_config::Config;
use meho_server::State;
use meho_server::auth::{DEV_APPROVER, DevTokens};

use crate::Failure;
use crate::cli::ServeArgs;
use crate::runtime::{self, Backplane, Paths, Process, Ssh};

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
    // Everything that can refuse the start is checked before anything is created: the listen
    // address (dev mode's loopback rule, a busy port) here, the files the config names in
    // `Backplane::open`.
    let listen = args.listen.unwrap_or(config.server.listen);
    if args.dev && !listen.ip().is_loopback() {
        return Err(Failure::Usage(format!(
            "--dev serves well-known tokens and binds to loopback only; `{listen}` is not a loopback address"
        )));
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on `{listen}`"))?;
    let paths = Paths::new(&config, args.data_dir.as_deref(), args.store.as_deref());
    let backplane = Backplane::open(&config, &paths, Process::Broker).await?;
    let served = serve_on(args, &config, &paths, &backplane, listener).await;
    // A clean shutdown always ends with a signed checkpoint of every chain, also after a failure
    // past this point.
    let closed = backplane.close().await;
    served?;
    closed?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// The agent's dev token file in the data directory (the file and `MEHO_TOKEN=` are a contract).
const DEV_TOKEN_FILE: &str = "dev-token";
/// The approver's dev token file (and `MEHO_APPROVER_TOKEN=`).
const DEV_APPROVER_TOKEN_FILE: &str = "dev-approver-token";

/// Both dev tokens, each created once (32 random bytes, mode 0600) and reused after.
fn dev_tokens(data_dir: &Path) -> Result<DevTokens, Failure> {
    Ok(DevTokens {
        agent: dev_token(data_dir, DEV_TOKEN_FILE, "meho_dev_")?,
        approver: dev_token(data_dir, DEV_APPROVER_TOKEN_FILE, "meho_dev_approver_")?,
    })
}

/// One dev bearer token: `<data_dir>/<file>` (mode 0600), created with 32 random bytes on first
/// run and reused after.
fn dev_token(data_dir: &Path, file: &str, prefix: &str) -> Result<String, Failure> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = data_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                return Err(Failure::Runtime(anyhow::anyhow!(
                    "{} is readable by others (mode {mode:o}); fix it with chmod 600 or delete it",
                    path.display()
                )));
            }
            return Ok(text.trim().to_owned());
        }
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(Failure::Runtime(anyhow::anyhow!(
                "cannot read {}: {err}",
                path.display()
            )));
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|err| Failure::Runtime(anyhow::anyhow!("OS RNG: {err}")))?;
    let token = format!("{prefix}{}", hex::encode(bytes));
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}

async fn serve_on(
    args: &ServeArgs,
    config: &Config,
    paths: &Paths,
    backplane: &Backplane,
    listener: tokio::net::TcpListener,
) -> Result<(), Failure> {
    // Fail closed: a server that cannot write its first audit record does not serve.
    backplane.record_start(config, "serve").await?;
    let ssh = Ssh::start(config, &paths.data_dir, backplane, args.dev)?;
    let dev = if args.dev {
        Some(dev_tokens(&paths.data_dir)?)
    } else {
        None
    };
    let bound = listener
        .local_addr()
        .context("cannot read the bound address")?;
    // Handlers are installed before the listen line: a SIGTERM sent as soon as a script reads it
    // must shut down cleanly, not kill the process with the default action.
    let signal = runtime::shutdown_signal();
    let resource = config
        .auth
        .audience
        .clone()
        .unwrap_or_else(|| format!("http://{bound}/mcp"));
    let authenticator = meho_server::auth::Authenticator::new(
        config.auth.clone(),
        config.tenancy_enabled,
        dev.clone(),
    )
    .map_err(|err| Failure::Runtime(anyhow::anyhow!(err)))?;
    if !authenticator.enabled() {
        tracing::warn!(
            "/mcp refuses every request: configure [auth] issuer and audience, or run with --dev"
        );
    }
    let mcp_shutdown = tokio_util::sync::CancellationToken::new();
    let public_url = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"));
    let hint = args.dev.then(|| {
        format!(
            "in dev mode, approve as `{DEV_APPROVER}`: sign in to the console, or pass --token, with MEHO_APPROVER_TOKEN (printed by `meho serve --dev`, kept in {})",
            paths.data_dir.join(DEV_APPROVER_TOKEN_FILE).display()
        )
    });
    let governance = backplane.governance(config, &public_url, hint)?;
    let public_key_path = config.audit.public_key_path(&paths.data_dir);
    let verify = meho_server::AuditVerify {
        public_key: meho_audit::AuditPublicKey::load(&public_key_path)
            .map_err(|err| tracing::warn!(%err, "audit verify status runs without the public key"))
            .ok(),
        witness: Some(config.audit.witness_path(&paths.data_dir)),
    };
    let console = meho_server::console::ConsoleSettings {
        issuer: config.auth.issuer.clone(),
        client_id: config.console.client_id.clone(),
        scopes: config.console.scopes.clone(),
        resource: resource.clone(),
        dev: args.dev,
        public_url: public_url.clone(),
        cors_origins: config.server.cors_origins.clone(),
    };
    let (apis, jwks) = crate::runtime::apis(config, &paths.data_dir, backplane).await?;
    // SIGHUP reloads the API specs (a file edited, an `api:` spec the API now serves anew).
    // Installed before the listen line, so a SIGHUP is never the default action (which dies).
    if let Some(apis) = &apis {
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?;
        let apis = apis.clone();
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP received, reloading the API specs");
                apis.reload().await;
            }
        });
    }
    let mut state = State::new(backplane.store.clone());
    state.jwks = jwks.map(Arc::new);
    state.mcp = Some(Arc::new(meho_server::McpState {
        context: Arc::new(meho_server::mcp::McpContext {
            gateway: ssh.gateway(
                config,
                backplane,
                governance.clone(),
                meho_gateway::Holds::Pending,
                apis,
            )?,
            tasks: Default::default(),
            tools: Default::default(),
        }),
        auth: Arc::new(authenticator),
        resource: resource.clone(),
        allowed_hosts: config.mcp.allowed_hosts.clone(),
        shutdown: mcp_shutdown.clone(),
        verify,
        console: Arc::new(console),
        sessions: (&config.mcp).into(),
        recordings: Some(config.ssh.recording_path(&paths.data_dir)),
    }));
    if let Some(line) = &ssh.dev_ca {
        outln!("meho dev CA (add to sshd TrustedUserCAKeys): {line}")?;
    }
    if let Some(DevTokens {
        agent: token,
        approver,
    }) = &dev
    {
        outln!("MEHO_TOKEN={token}")?;
        outln!("MEHO_APPROVER_TOKEN={approver}")?;
        outln!(
            "claude mcp add --transport http meho {resource} --header \"Authorization: Bearer {token}\""
        )?;
        outln!(
            "cursor ~/.cursor/mcp.json: {}",
            serde_json::json!({ "mcpServers": { "meho": {
                "url": resource,
                "headers": { "Authorization": format!("Bearer {token}") },
            }}})
        )?;
    }
    // The listen line is the first line without --dev: scripts wait for it.
    let console_url = format!("{public_url}/console/");
    outln!("meho listening on http://{bound}")?;
    outln!("meho console: {console_url}")?;
    let _ = std::io::stdout().flush();
    tracing::info!(addr = %bound, %resource, console = %console_url, "listening");
    let reaper = ssh.broker.spawn_reaper(REAP_EVERY);
    let sweeper = tokio::spawn({
        let governance = governance.clone();
        async move {
            let mut tick = tokio::time::interval(REAP_EVERY);
            loop {
                tick.tick().await;
                if let Err(err) = governance.sweep().await {
                    tracing::warn!(%err, "could not expire timed-out approvals");
                }
            }
        }
    });

    // Streams (MCP, the feed) end when the signal comes, so the graceful drain can finish.
    let shutdown = async move {
        signal.await;
        mcp_shutdown.cancel();
    };
    let served = meho_server::serve(listener, state, shutdown)
        .await
        .context("the HTTP server failed");
    // Open sessions are closed (and their closing records written) before the audit log is.
    ssh.broker.shutdown().await;
    reaper.abort();
    sweeper.abort();
    // Deliveries still running write their audit records before the log closes.
    if let Some(notifier) = governance.notifier() {
        notifier.drain(Duration::from_secs(10)).await;
    }
    served?;
    Ok(())
}
