//! MCP throughput and latency (`cargo bench -p meho --bench mcp`).
//!
//! `tools/call` of `list_targets` over Streamable HTTP on loopback at concurrency 16, through
//! meho's whole path (bearer JWT verified against the issuer's JWKS, the gateway, the in-process
//! signer's host view, an audit record on SQLite), side by side with a bare rmcp Streamable HTTP
//! server exposing one trivial tool. Both servers use rmcp's default server config and are driven
//! by the same client code. Prints calls/s and p50/p99 for both, and the ratio. Then `tools/list`
//! on both: meho shapes the list with the connectors' unaudited target view, so a client that
//! lists tools writes no audit record. Timings are never asserted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    missing_debug_implementations
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use meho_audit::AuditLog;
use meho_config::Config;
use meho_gateway::Gateway;
use meho_server::mcp::{McpContext, MehoMcp};
use meho_server::{McpState, State};
use meho_ssh::broker::SshConnector;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, InitializeResult, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};

/// The allocator the `meho` binary ships with, so the bench measures what runs (both servers
/// share the process, and so the allocator).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONCURRENCY: usize = 16;
const CALLS_PER_WORKER: usize = 400;
const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

/// The bare server: one trivial tool, nothing else.
#[derive(Clone)]
struct Bare;

impl ServerHandler for Bare {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, rmcp::ErrorData> {
        let schema = json!({"type": "object"}).as_object().cloned().unwrap();
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "list_targets",
            "trivial",
            Arc::new(schema),
        )]))
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, rmcp::ErrorData> {
        Ok(CallToolResult::structured(json!({"targets": [{"name": "web"}]})).into())
    }
}

fn service<S: ServerHandler + Clone + Send + Sync + 'static>(
    make: impl Fn() -> S + Send + Sync + 'static,
) -> StreamableHttpService<S, LocalSessionManager> {
    StreamableHttpService::new(
        move || Ok(make()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    )
}

/// The first JSON-RPC message in a Streamable HTTP response (JSON or SSE).
fn message(body: &str) -> Value {
    if let Ok(value) = serde_json::from_str(body) {
        return value;
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find_map(|d| {
            serde_json::from_str::<Value>(d)
                .ok()
                .filter(|v| v.get("id").is_some())
        })
        .unwrap_or_else(|| panic!("no JSON-RPC response in {body:?}"))
}

/// Opens an MCP session; returns its id.
async fn initialize(client: &reqwest::Client, url: &str, token: &str) -> String {
    let response = client
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let _ = response.text().await.unwrap();
    let mut note = client
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    if !session.is_empty() {
        note = note.header("mcp-session-id", &session);
    }
    note.send().await.unwrap();
    session
}

/// `tools/call` of `list_targets`.
fn call_list_targets() -> (&'static str, Value) {
    (
        "tools/call",
        json!({"name": "list_targets", "arguments": {}}),
    )
}

/// `tools/list`.
fn list_tools() -> (&'static str, Value) {
    ("tools/list", json!({}))
}

/// Runs the load of `request`; returns (calls/s, p50 ms, p99 ms).
async fn load(url: &str, token: &str, request: (&'static str, Value)) -> (f64, f64, f64) {
    let (method, params) = request;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let mut sessions = Vec::new();
    for _ in 0..CONCURRENCY {
        sessions.push(initialize(&client, url, token).await);
    }
    let url: Arc<str> = Arc::from(url);
    let token: Arc<str> = Arc::from(token);
    let call = move |client: reqwest::Client, session: String, id: usize| {
        let url = url.clone();
        let token = token.clone();
        let params = params.clone();
        async move {
            let mut request = client
                .post(&*url)
                .bearer_auth(&*token)
                .header("accept", "application/json, text/event-stream")
                .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
            if !session.is_empty() {
                request = request.header("mcp-session-id", &session);
            }
            let started = Instant::now();
            let body = request.send().await.unwrap().text().await.unwrap();
            let elapsed = started.elapsed();
            let reply = message(&body);
            let result = &reply["result"];
            assert!(
                result["isError"] == false || result["tools"].is_array(),
                "{reply}"
            );
            elapsed
        }
    };
    // Warm up.
    for session in &sessions {
        for i in 0..20 {
            call(client.clone(), session.clone(), i).await;
        }
    }
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for session in sessions {
        let client = client.clone();
        let call = call.clone();
        workers.spawn(async move {
            let mut samples = Vec::with_capacity(CALLS_PER_WORKER);
            for i in 0..CALLS_PER_WORKER {
                samples.push(call(client.clone(), session.clone(), i + 100).await);
            }
            samples
        });
    }
    let mut samples: Vec<Duration> = Vec::new();
    while let Some(done) = workers.join_next().await {
        samples.extend(done.unwrap());
    }
    let wall = started.elapsed();
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p50 = ms(samples[samples.len() / 2]);
    let p99 = ms(samples[samples.len() * 99 / 100]);
    (samples.len() as f64 / wall.as_secs_f64(), p50, p99)
}

/// The test support's issuer on loopback with one Ed25519 key; returns it and a token for
/// `audience` (kept alive by the caller).
async fn issuer(audience: String) -> (meho_test_support::idp::Issuer, String) {
    let key = meho_test_support::idp::TestKey::ed("bench");
    let issuer = meho_test_support::idp::Issuer::start_with(vec![key.jwk.clone()]).await;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"iss": issuer.url, "aud": audience, "sub": "bench-agent", "iat": now,
        "exp": now + 3600, "scope": "mcp:tools", "tenant_id": "default", "tenant_role": "operator"});
    let token = key.sign(&claims);
    (issuer, token)
}

fn main() {
    // `cargo test --all-targets` builds benches and runs them without `--bench`: do nothing then.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
        let (idp, token) = issuer(resource.clone()).await;
        let issuer = idp.url.clone();
        let config = Config::parse(
            &format!(
                "[auth]\nissuer = \"{issuer}\"\naudience = \"{resource}\"\n\
                 [hosts.web]\naddr = \"127.0.0.1:22\"\nuser = \"deploy\"\nhost_key = \"{HOST_KEY}\"\n"
            ),
            None,
        )
        .unwrap();
        let store = meho_test_support::sqlite_store(dir.path()).await.unwrap();
        let audit = meho_test_support::audit_log(&store).await.unwrap();
        let (cas, _) = meho_ssh::setup::load_cas(&config, dir.path(), false).unwrap();
        let pool = store.pool().clone();
        let signer = Arc::new(
            meho_ssh::signer::Signer::new(
                meho_ssh::setup::signer_state(&config, cas),
                audit.clone(),
                "default",
            )
            .with_store(meho_ssh::signer::SignerStore {
                approvals: meho_approvals::Approvals::new(pool.clone(), Default::default()),
                grants: meho_approvals::Grants::new(pool),
            }),
        );
        let broker =
            meho_ssh::setup::broker(&config, dir.path(), audit.clone(), Some(signer)).unwrap();
        let governance = Arc::new(meho_gateway::Governance::new(
            &store,
            Default::default(),
            audit.clone(),
            &resource,
            config.hosts.clone(),
        ));
        let gateway = Gateway::builder(governance)
            .connector(Arc::new(SshConnector::new(broker)))
            .build()
            .unwrap();
        let mut state = State::new(store.clone());
        state.mcp = Some(Arc::new(McpState {
            context: Arc::new(McpContext {
                gateway,
                tasks: Default::default(),
            tools: Default::default(),
            }),
            auth: Arc::new(
                meho_server::auth::Authenticator::new(config.auth.clone(), false, None).unwrap(),
            ),
            resource: resource.clone(),
            allowed_hosts: vec![],
            shutdown: tokio_util::sync::CancellationToken::new(),
            verify: Default::default(),
            console: Arc::new(meho_server::console::ConsoleSettings {
                issuer: None,
                client_id: "meho-console".into(),
                scopes: vec![],
                resource: resource.clone(),
                dev: true,
                public_url: resource.clone(),
                cors_origins: vec![],
            }),
            sessions: Default::default(),
            recordings: None,
        }));
        tokio::spawn(meho_server::serve(listener, state, std::future::pending()));
        let _ = MehoMcp::http; // the handler under test is the one `serve` mounts

        let bare_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bare_url = format!("http://{}/mcp", bare_listener.local_addr().unwrap());
        let bare = axum::Router::new().nest_service("/mcp", service(|| Bare));
        // The same socket option meho_server::serve sets, so the comparison is fair.
        use axum::serve::ListenerExt as _;
        let bare_listener = bare_listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(bare_listener, bare).await.unwrap() });

        let (bare_rate, bare_p50, bare_p99) = load(&bare_url, "unused", call_list_targets()).await;
        let (meho_rate, meho_p50, meho_p99) = load(&resource, &token, call_list_targets()).await;
        println!(
            "tools/call list_targets, Streamable HTTP on loopback, concurrency {CONCURRENCY}, {} calls each:",
            CONCURRENCY * CALLS_PER_WORKER
        );
        println!(
            "  bare rmcp server   {bare_rate:8.0} calls/s   p50 {bare_p50:6.2} ms   p99 {bare_p99:6.2} ms"
        );
        println!(
            "  meho (JWT+audit)   {meho_rate:8.0} calls/s   p50 {meho_p50:6.2} ms   p99 {meho_p99:6.2} ms"
        );
        println!(
            "  ratio meho/bare    latency p50 {:.2}x  p99 {:.2}x   throughput {:.2}x   (targets: <= 2x p50 latency, >= 10k calls/s)",
            meho_p50 / bare_p50,
            meho_p99 / bare_p99,
            meho_rate / bare_rate
        );
        // Every tenant's chain length: what was written, whatever the tenant.
        let records = |audit: Arc<AuditLog>| async move {
            audit
                .store()
                .heads()
                .await
                .unwrap()
                .iter()
                .map(|head| head.seq)
                .sum::<i64>()
        };
        let before = records(audit.clone()).await;
        let (bare_rate, bare_p50, bare_p99) = load(&bare_url, "unused", list_tools()).await;
        let (meho_rate, meho_p50, meho_p99) = load(&resource, &token, list_tools()).await;
        let written = records(audit.clone()).await - before;
        println!("tools/list, same load:");
        println!(
            "  bare rmcp server   {bare_rate:8.0} calls/s   p50 {bare_p50:6.2} ms   p99 {bare_p99:6.2} ms"
        );
        println!(
            "  meho (JWT+view)    {meho_rate:8.0} calls/s   p50 {meho_p50:6.2} ms   p99 {meho_p99:6.2} ms   audit records written: {written}"
        );
        println!(
            "  ratio meho/bare    latency p50 {:.2}x  p99 {:.2}x   throughput {:.2}x",
            meho_p50 / bare_p50,
            meho_p99 / bare_p99,
            meho_rate / bare_rate
        );
        audit.shutdown().await.unwrap();
    });
}
