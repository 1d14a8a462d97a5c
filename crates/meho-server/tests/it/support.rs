//! Shared fixtures for the MCP, resource-server and feed tests: a test OIDC issuer, signing keys,
//! a counting connector, a server on a loopback socket, and small MCP and SSE clients.
//!
//! Why not oidc-provider (the IdP the end-to-end tests in `crates/meho` run): these tests forge
//! tokens on purpose (wrong `iss`/`aud`, expired, tampered, `alg: none`, HMAC keyed with the public
//! key, a foreign key under a known `kid`, …). That needs signing keys the test holds and claims it
//! chooses freely, which a real IdP will not hand out. So the issuer here is a few lines of axum
//! serving discovery metadata and a JWKS built from keys generated per test binary.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use meho_audit::{AuditLog, NewRecord, RecordKind};
use meho_config::AuthConfig;
use meho_gateway::{Caller, ErrorCode, Gateway, Tier, ToolError};
use meho_server::McpState;
use meho_server::auth::Authenticator;
use meho_server::mcp::McpContext;
use meho_test_support::connector::{Script, Scripted, tool as scripted_tool};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a test waits for any one network answer before failing (never a timing assertion:
/// only a guard against hanging forever).
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// The MCP protocol revision the test client speaks (a session-based one).
const PROTOCOL: &str = "2025-06-18";

/// rustls needs a process-wide crypto provider before any client is built.
fn crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain HTTP client for the tests (no proxies: everything is on loopback).
pub(crate) fn http_client() -> reqwest::Client {
    crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .unwrap()
}

pub(crate) use meho_test_support::idp::b64;

pub(crate) fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

// ---------------------------------------------------------------------------------------------
// Keys and issuer: in the test support, shared with the MCP bench.

pub(crate) use meho_test_support::idp::{Issuer, TestKey, keys};

// ---------------------------------------------------------------------------------------------
// Connector

/// One call the test connector saw.
#[derive(Debug, Clone)]
pub(crate) struct SeenCall {
    pub(crate) caller: Caller,
    pub(crate) tool: String,
    pub(crate) arguments: Value,
}

/// A scripted connector that records every call it decides (and every target listing). Tools:
/// `ssh_execute` (held for commands starting `hold`, fails with `denied` for commands starting
/// `rm`) and `ssh_put_file` (WRITE tier; held for paths under `/hold`, with a preview: the
/// [`file_diff`] of the new content); one target `x`, none in tenant `lonely`.
#[derive(Debug)]
pub(crate) struct TestConnector {
    pub(crate) scripted: Arc<Scripted>,
}

impl Default for TestConnector {
    fn default() -> Self {
        let schema = |properties: Value, required: &[&str]| {
            json!({
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            })
        };
        // The hints of their SSH namesakes.
        let hinted = |mut spec: meho_gateway::ToolSpec, destructive: bool| {
            spec.annotations = meho_gateway::Annotations {
                read_only: false,
                destructive,
                idempotent: false,
                open_world: true,
            };
            spec
        };
        let tools = vec![
            hinted(
                scripted_tool(
                    "ssh_execute",
                    Tier::Read,
                    schema(
                        json!({
                            "server": { "type": "string" },
                            "command": { "type": "string" },
                            "args": { "type": "array", "items": { "type": "string" } },
                        }),
                        &["server", "command"],
                    ),
                ),
                true,
            ),
            hinted(
                scripted_tool(
                    "ssh_put_file",
                    Tier::Write,
                    schema(
                        json!({
                            "server": { "type": "string" },
                            "path": { "type": "string" },
                            "content": { "type": "string" },
                        }),
                        &["server", "path", "content"],
                    ),
                ),
                true,
            ),
        ];
        let scripted = Scripted::with_lonely(tools, &["x"], &["lonely"], |_, tool, arguments| {
            let text = |key: &str| {
                arguments
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            match tool {
                "ssh_execute" if text("command").starts_with("hold") => Script::Hold {
                    rule: "require_approval:^hold".into(),
                    tier: Tier::Write,
                    ran: json!({ "exit_status": 0, "stdout": format!("ran {}\n", text("command")) }),
                    preview: None,
                },
                "ssh_execute" if text("command").starts_with("rm") => Script::Fail(
                    ToolError::new(
                        ErrorCode::Denied,
                        format!("`{}` is refused by rule `no_rm` on `x`", text("command")),
                    )
                    .with_detail(json!({ "rule": "no_rm" })),
                ),
                "ssh_execute" => Script::Run(json!({ "exit_status": 0, "stdout": "ok\n" })),
                "ssh_put_file" if text("path").starts_with("/hold") => Script::Hold {
                    rule: "require_approval:^put /hold".into(),
                    tier: Tier::Write,
                    ran: json!({ "written": true }),
                    preview: Some(file_diff(text("path"), text("content"))),
                },
                _ => Script::Run(json!({ "written": true })),
            }
        });
        TestConnector { scripted }
    }
}

/// The preview of a held `ssh_put_file`: a unified diff that creates `path` with `content`, as a
/// connector that can compare with the live object would compute it.
pub(crate) fn file_diff(path: &str, content: &str) -> String {
    // Split on `\n` only: a carriage return stays in its line, as a connector would pass it.
    let body = content.strip_suffix('\n').unwrap_or(content);
    let lines: Vec<&str> = body.split('\n').collect();
    let mut diff = format!("--- /dev/null\n+++ {path}\n@@ -0,0 +1,{} @@\n", lines.len());
    for line in lines {
        diff.push('+');
        diff.push_str(line);
        diff.push('\n');
    }
    diff
}

impl TestConnector {
    /// Every call decided and every target listing, in order.
    pub(crate) fn calls(&self) -> Vec<SeenCall> {
        self.scripted
            .seen()
            .into_iter()
            .filter(|s| s.stage == "authorize" || s.stage == "targets")
            .map(|s| SeenCall {
                caller: s.caller,
                tool: s.tool,
                arguments: s.arguments,
            })
            .collect()
    }

    pub(crate) fn count(&self) -> usize {
        self.calls().len()
    }

    pub(crate) fn count_of(&self, tool: &str) -> usize {
        self.calls().iter().filter(|c| c.tool == tool).count()
    }
}

// ---------------------------------------------------------------------------------------------
// Server

/// How the server under test is configured.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) tenancy: bool,
    pub(crate) groups_claim: Option<String>,
    pub(crate) required_scopes: Vec<String>,
    pub(crate) clock_skew_seconds: u64,
    /// Overrides the issuer URL in `[auth]` (an unreachable one, say).
    pub(crate) issuer_override: Option<String>,
    /// Caps on open MCP sessions.
    pub(crate) sessions: meho_server::mcp::SessionLimits,
    /// `[ssh] recording_dir`.
    pub(crate) recordings: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tenancy: true,
            groups_claim: Some("groups".into()),
            required_scopes: Vec::new(),
            clock_skew_seconds: 60,
            issuer_override: None,
            sessions: Default::default(),
            recordings: None,
        }
    }
}

/// meho's HTTP surface on a loopback socket, with the test issuer and connector behind it.
#[derive(Debug)]
pub(crate) struct Server {
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
    /// The configured audience: `<base>/mcp`.
    pub(crate) audience: String,
    pub(crate) issuer: Issuer,
    pub(crate) connector: Arc<TestConnector>,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) options: Options,
    pub(crate) http: reqwest::Client,
    stop: CancellationToken,
    task: JoinHandle<()>,
    _dir: TempDir,
}

impl Server {
    pub(crate) async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub(crate) async fn start_with(options: Options) -> Self {
        let issuer = Issuer::start().await;
        Self::start_with_issuer(options, issuer).await
    }

    pub(crate) async fn start_with_issuer(options: Options, issuer: Issuer) -> Self {
        crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let store = meho_test_support::sqlite_store(dir.path()).await.unwrap();
        let audit = meho_test_support::audit_log(&store).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let audience = format!("{base}/mcp");
        let auth = Arc::new(
            Authenticator::new(
                AuthConfig {
                    issuer: Some(
                        options
                            .issuer_override
                            .clone()
                            .unwrap_or_else(|| issuer.url.clone()),
                    ),
                    audience: Some(audience.clone()),
                    required_scopes: options.required_scopes.clone(),
                    user_claim: "sub".into(),
                    groups_claim: options.groups_claim.clone(),
                    tenant_claim: "tenant_id".into(),
                    role_claim: "tenant_role".into(),
                    clock_skew_seconds: options.clock_skew_seconds,
                },
                options.tenancy,
                None,
            )
            .unwrap(),
        );
        let connector = Arc::new(TestConnector::default());
        let stop = CancellationToken::new();
        let governance = Arc::new(meho_gateway::Governance::new(
            &store,
            meho_approvals::ApprovalPolicy::default(),
            audit.clone(),
            &base,
            Default::default(),
        ));
        let gateway = Gateway::builder(governance)
            .connector(connector.scripted.clone())
            .build()
            .unwrap();
        let mut state = meho_server::State::new(store);
        state.mcp = Some(Arc::new(McpState {
            context: Arc::new(McpContext {
                gateway,
                tasks: Default::default(),
                tools: Default::default(),
            }),
            auth: auth.clone(),
            resource: audience.clone(),
            allowed_hosts: vec!["meho.test".into()],
            shutdown: stop.clone(),
            verify: Default::default(),
            console: Arc::new(meho_server::console::ConsoleSettings {
                issuer: Some(issuer.url.clone()),
                client_id: "meho-console".into(),
                scopes: vec!["openid".into(), "mcp:tools".into()],
                resource: audience.clone(),
                dev: false,
                public_url: base.clone(),
                cors_origins: Vec::new(),
            }),
            sessions: options.sessions,
            recordings: options.recordings.clone(),
        }));
        let shutdown = stop.clone();
        let task = tokio::spawn(async move {
            meho_server::serve(listener, state, shutdown.cancelled_owned())
                .await
                .unwrap();
        });
        Server {
            base,
            audience,
            issuer,
            connector,
            audit,
            auth,
            options,
            http: http_client(),
            stop,
            task,
            _dir: dir,
        }
    }

    /// `<origin>/.well-known/oauth-protected-resource`, as every challenge must name it.
    pub(crate) fn metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource", self.base)
    }

    /// Claims of a valid token for `sub` in tenant `tenant`, operator, scope `mcp:tools`.
    pub(crate) fn claims(&self, sub: &str, tenant: &str) -> Value {
        let now = now();
        json!({
            "iss": self.issuer.url,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "scope": "openid mcp:tools",
            "tenant_id": tenant,
            "tenant_role": "operator",
            "groups": ["ops"],
            "client_id": "test-client",
        })
    }

    /// A valid RS256 token for `sub` in `tenant`.
    pub(crate) fn token(&self, sub: &str, tenant: &str) -> String {
        keys().rsa.sign(&self.claims(sub, tenant))
    }

    /// A valid token for `sub` in `tenant` with `role`.
    pub(crate) fn token_with_role(&self, sub: &str, tenant: &str, role: &str) -> String {
        keys()
            .rsa
            .sign(&with(self.claims(sub, tenant), "tenant_role", json!(role)))
    }

    /// POSTs one JSON-RPC message to `/mcp`.
    pub(crate) async fn post_mcp(
        &self,
        token: Option<&str>,
        session: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/mcp", self.base))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(serde_json::to_vec(body).unwrap());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(session) = session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", PROTOCOL);
        }
        request.send().await.unwrap()
    }

    /// `DELETE /mcp` of `session` with `token`: the client ending its session.
    pub(crate) async fn delete_mcp(&self, token: &str, session: &str) -> reqwest::Response {
        self.http
            .delete(format!("{}/mcp", self.base))
            .bearer_auth(token)
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", PROTOCOL)
            .send()
            .await
            .unwrap()
    }

    /// An initialized MCP session for `token`.
    pub(crate) async fn connect(&self, token: &str) -> Mcp<'_> {
        self.connect_with(token, json!({})).await
    }

    /// An initialized MCP session for `token`, declaring `capabilities`.
    pub(crate) async fn connect_with(&self, token: &str, capabilities: Value) -> Mcp<'_> {
        let mut initialize = initialize_request(1);
        initialize["params"]["capabilities"] = capabilities;
        let response = self.post_mcp(Some(token), None, &initialize).await;
        assert_eq!(response.status(), 200, "initialize was refused");
        let session = response
            .headers()
            .get("mcp-session-id")
            .expect("initialize answers with a session id")
            .to_str()
            .unwrap()
            .to_owned();
        let init = read_jsonrpc(response, 1).await;
        assert!(init["result"]["serverInfo"]["name"] == "meho", "{init}");
        let mut mcp = Mcp {
            server: self,
            token: token.to_owned(),
            session,
            next_id: 2,
        };
        let ack = mcp
            .notify("notifications/initialized", json!({}))
            .await
            .status();
        assert_eq!(ack, 202, "notifications/initialized");
        mcp
    }

    /// Opens the feed.
    pub(crate) async fn feed(
        &self,
        token: Option<&str>,
        query: &str,
        last_event_id: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .get(format!("{}/api/v1/feed{query}", self.base))
            .header("accept", "text/event-stream");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        request.send().await.unwrap()
    }

    /// Appends one record to `tenant`'s chain; returns its sequence number.
    pub(crate) async fn append(
        &self,
        tenant: &str,
        kind: RecordKind,
        principal: &str,
        target: Option<&str>,
    ) -> i64 {
        let record = NewRecord {
            target: target.map(str::to_owned),
            action: Some("test".into()),
            body: json!({ "note": format!("{kind} by {principal}") }),
            ..NewRecord::new(tenant, kind, principal)
        };
        self.audit.append(record).await.unwrap().seq
    }
}

impl Server {
    /// Shuts the server down as `meho serve` does on SIGTERM: open streams end, in-flight
    /// requests drain.
    pub(crate) fn shutdown(&self) {
        self.stop.cancel();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

/// `claims` with `key` set to `value`.
pub(crate) fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

/// `claims` without `key`.
pub(crate) fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

pub(crate) fn initialize_request(id: u64) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": { "name": "meho-it", "version": "0" },
        },
    })
}

/// One MCP session.
#[derive(Debug)]
pub(crate) struct Mcp<'a> {
    server: &'a Server,
    pub(crate) token: String,
    pub(crate) session: String,
    next_id: u64,
}

impl Mcp<'_> {
    /// The JSON-RPC request body for `method`, with a fresh id.
    pub(crate) fn message(&mut self, method: &str, params: Value) -> (u64, Value) {
        let id = self.next_id;
        self.next_id += 1;
        (
            id,
            json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }),
        )
    }

    /// Sends `method` with this session's token; returns the whole JSON-RPC answer.
    pub(crate) async fn request(&mut self, method: &str, params: Value) -> Value {
        let token = self.token.clone();
        self.request_as(&token, method, params).await
    }

    /// Sends `method` on this session with another token.
    pub(crate) async fn request_as(&mut self, token: &str, method: &str, params: Value) -> Value {
        let (id, body) = self.message(method, params);
        let response = self
            .server
            .post_mcp(Some(token), Some(&self.session), &body)
            .await;
        assert_eq!(response.status(), 200, "{method} was refused");
        read_jsonrpc(response, id).await
    }

    pub(crate) async fn notify(&mut self, method: &str, params: Value) -> reqwest::Response {
        let body = json!({ "jsonrpc": "2.0", "method": method, "params": params });
        self.server
            .post_mcp(Some(&self.token), Some(&self.session), &body)
            .await
    }

    /// `tools/call`; returns the JSON-RPC answer (a `result` or an `error`).
    pub(crate) async fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        self.request(
            "tools/call",
            json!({ "name": name, "arguments": arguments }),
        )
        .await
    }

    /// `tools/list`; returns the tools.
    pub(crate) async fn list_tools(&mut self) -> Vec<Value> {
        let answer = self.request("tools/list", json!({})).await;
        answer["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("tools/list: {answer}"))
            .clone()
    }
}

/// The text of a tool result's first content block.
pub(crate) fn result_text(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {answer}"))
        .to_owned()
}

/// Reads a `/mcp` answer (JSON or an SSE stream) until the JSON-RPC message answering `id`.
pub(crate) async fn read_jsonrpc(response: reqwest::Response, id: u64) -> Value {
    let is_json = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response.json().await.unwrap();
    }
    let mut events = SseReader::new(response);
    loop {
        let event = events
            .next()
            .await
            .unwrap_or_else(|| panic!("the stream ended before the answer to request {id}"));
        let Ok(message) = serde_json::from_str::<Value>(&event.data) else {
            continue;
        };
        if message["id"] == json!(id)
            && (message.get("result").is_some() || message.get("error").is_some())
        {
            return message;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SSE

/// One server-sent event.
#[derive(Debug, Clone, Default)]
pub(crate) struct SseEvent {
    pub(crate) id: Option<String>,
    pub(crate) event: Option<String>,
    pub(crate) data: String,
}

impl SseEvent {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|err| panic!("event data is not JSON ({err}): {}", self.data))
    }
}

/// Reads events from a streaming response, chunk by chunk.
#[derive(Debug)]
pub(crate) struct SseReader {
    response: reqwest::Response,
    buffer: String,
    done: bool,
}

impl SseReader {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        SseReader {
            response,
            buffer: String::new(),
            done: false,
        }
    }

    /// The next event with a `data` field (comments and bare `retry`/`id` primers are skipped),
    /// or `None` when the stream ends. Panics if nothing arrives within [`WAIT`].
    pub(crate) async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.take_event() {
                if event.data.is_empty() {
                    continue;
                }
                return Some(event);
            }
            if self.done {
                return None;
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("no event within the wait limit")
                .unwrap();
            match chunk {
                Some(bytes) => self
                    .buffer
                    .push_str(&String::from_utf8_lossy(&bytes).replace("\r\n", "\n")),
                None => self.done = true,
            }
        }
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        let end = self.buffer.find("\n\n")?;
        let block: String = self.buffer.drain(..end + 2).collect();
        let mut event = SseEvent::default();
        let mut data = Vec::new();
        for line in block.lines() {
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => event.id = Some(value.to_owned()),
                "event" => event.event = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
        event.data = data.join("\n");
        Some(event)
    }
}

/// The `WWW-Authenticate` challenge's parameters (`Bearer k="v", …`).
pub(crate) fn challenge(response: &reqwest::Response) -> HashMap<String, String> {
    let value = response
        .headers()
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("no WWW-Authenticate on a {}", response.status()))
        .to_str()
        .unwrap()
        .to_owned();
    parse_challenge(&value)
}

pub(crate) fn parse_challenge(value: &str) -> HashMap<String, String> {
    let rest = value
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("not a Bearer challenge: {value}"));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').unwrap();
        let after = after.strip_prefix('"').unwrap();
        let close = after.find('"').unwrap();
        params.insert(key.trim().to_owned(), after[..close].to_owned());
        rest = after[close + 1..].trim_start_matches(',').trim();
    }
    params
}
