//! `meho mcp`: MCP over stdio, for a local client.
//!
//! stdout carries the protocol and nothing else; every log line goes to stderr.

use std::sync::Arc;

use anyhow::Context as _;
use meho_config::Config;
use meho_server::auth::{Principal, SCOPE_FEED, SCOPE_TOOLS};
use meho_server::mcp::{McpContext, MehoMcp};
use rmcp::ServiceExt as _;

use crate::Failure;
use crate::cli::McpArgs;
use crate::runtime::{self, Backplane, Paths, Process, Ssh};

pub(crate) fn run(args: &McpArgs) -> Result<(), Failure> {
    let config = args.store.config.load_or_default()?;
    runtime::init_tracing(&config.log.level);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    runtime::tokio_runtime()?.block_on(serve(args, config))
}

/// Who the stdio server acts as: `[mcp.stdio]`, else the OS user.
pub(crate) fn stdio_principal(config: &Config) -> Principal {
    let subject = config.mcp.stdio_principal.clone().unwrap_or_else(os_user);
    Principal {
        subject,
        tenant: config.mcp.stdio_tenant.clone(),
        role: config.mcp.stdio_role,
        groups: config.mcp.stdio_groups.clone(),
        scopes: vec![SCOPE_TOOLS.to_owned(), SCOPE_FEED.to_owned()],
        source: "stdio".to_owned(),
        client_id: None,
        token: None,
    }
}

/// The local user's name, from the environment the client started us in.
fn os_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "local".to_owned())
}

async fn serve(args: &McpArgs, config: Config) -> Result<(), Failure> {
    let paths = Paths::new(
        &config,
        args.store.data_dir.as_deref(),
        args.store.store.as_deref(),
    );
    let backplane = Backplane::open(&config, &paths, Process::Broker).await?;
    let served = serve_on(&config, &paths, &backplane).await;
    let closed = backplane.close().await;
    served?;
    closed?;
    Ok(())
}

async fn serve_on(config: &Config, paths: &Paths, backplane: &Backplane) -> Result<(), Failure> {
    backplane.record_start(config, "mcp").await?;
    let ssh = Ssh::start(config, &paths.data_dir, backplane, false)?;
    let governance = backplane.governance(config, &config.server.effective_public_url(), None)?;
    let (apis, _jwks) = crate::runtime::apis(config, &paths.data_dir, backplane).await?;
    let context = Arc::new(McpContext {
        gateway: ssh.gateway(
            config,
            backplane,
            governance.clone(),
            meho_gateway::Holds::Pending,
            apis,
        )?,
        tasks: Default::default(),
        tools: Default::default(),
    });
    let principal = stdio_principal(config);
    tracing::info!(principal = %principal.subject, tenant = %principal.tenant, "serving MCP on stdio");
    let service = MehoMcp::fixed(context, principal)
        .serve(rmcp::transport::stdio())
        .await
        .context("the MCP client did not complete the handshake")?;
    let shutdown = runtime::shutdown_signal();
    tokio::select! {
        ended = service.waiting() => {
            if let Err(err) = ended {
                tracing::warn!(%err, "the MCP session ended with an error");
            }
        }
        () = shutdown => {}
    }
    ssh.broker.shutdown().await;
    if let Some(notifier) = governance.notifier() {
        notifier.drain(std::time::Duration::from_secs(10)).await;
    }
    Ok(())
}
