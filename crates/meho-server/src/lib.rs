//! The only crate that knows HTTP (and MCP). It serves the operational endpoints (`/healthz`,
//! `/ready`, `/metrics`), MCP over Streamable HTTP at `/mcp` behind the OAuth 2.1 resource server
//! ([`auth`]), its RFC 9728 metadata, and the live feed at `/api/v1/feed`. The same MCP handler
//! ([`mcp::MehoMcp`]) serves stdio.
//!
//! Invariants:
//! - [`app`] builds the whole router from a [`State`]; tests drive it with `oneshot`, no socket.
//! - Every error becomes a JSON body with a stable `error` code; nothing internal leaks.
//! - Nothing under `/mcp` or `/api` runs before the bearer token is verified; the verified
//!   [`auth::Principal`] travels in the request's extensions and is the only identity handlers use.

pub mod activity;
pub mod api;
pub mod auth;
pub mod console;
mod feed;
/// The human in the loop lives in the gateway; this is its path for existing callers.
pub use meho_gateway::govern as hitl;
pub mod mcp;
mod metrics;
pub mod recordings;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State as AxumState};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use meho_store::Store;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub use metrics::Metrics;

/// How long `/ready` waits for the store before calling it unavailable.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct State {
    /// The persistent store.
    pub store: Store,
    /// The Prometheus registry.
    pub metrics: Arc<Metrics>,
    /// MCP, the resource server and the feed; `None` serves the operational endpoints only.
    pub mcp: Option<Arc<McpState>>,
    /// The public keys of the JWTs meho signs for Vault (served at [`JWKS_PATH`]), when
    /// `[vault]` is configured.
    pub jwks: Option<Arc<serde_json::Value>>,
}

/// Where the JWKS of meho's own JWTs is served: Vault's JWT auth method may fetch it
/// (`jwks_url`) to trust the identities meho presents for stdio and dev-token callers.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

impl State {
    /// Bundles a store with a fresh metrics registry.
    pub fn new(store: Store) -> Self {
        State {
            store,
            metrics: Arc::new(Metrics::new()),
            mcp: None,
            jwks: None,
        }
    }
}

/// The MCP side of the server.
#[derive(Debug)]
pub struct McpState {
    /// Tools and their call path.
    pub context: Arc<mcp::McpContext>,
    /// Bearer token checks.
    pub auth: Arc<auth::Authenticator>,
    /// This server's MCP resource URL (`[auth] audience`, or `http://<listen>/mcp`).
    pub resource: String,
    /// `Host` values `/mcp` accepts besides loopback.
    pub allowed_hosts: Vec<String>,
    /// Ends open MCP streams at shutdown.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// What `/api/v1/audit/verify` checks checkpoints with.
    pub verify: AuditVerify,
    /// The web console's settings (its routes, CSP, CORS).
    pub console: Arc<console::ConsoleSettings>,
    /// Caps on open MCP sessions (`[mcp] max_sessions`, `max_sessions_per_principal`).
    pub sessions: mcp::SessionLimits,
    /// Where session recordings are (`[ssh] recording_dir`); `None` serves none.
    pub recordings: Option<std::path::PathBuf>,
}

/// The audit public key and witness file the verify status uses.
#[derive(Debug, Clone, Default)]
pub struct AuditVerify {
    /// The public audit key; without it checkpoints are not checked.
    pub public_key: Option<meho_audit::AuditPublicKey>,
    /// The witness file.
    pub witness: Option<std::path::PathBuf>,
}

impl McpState {
    /// `<origin>/.well-known/oauth-protected-resource`.
    pub fn metadata_url(&self) -> String {
        format!(
            "{}/.well-known/oauth-protected-resource",
            origin(&self.resource)
        )
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url.get(after_scheme..).and_then(|rest| rest.find('/')) {
        Some(slash) => url.get(..after_scheme + slash).unwrap_or(url),
        None => url,
    }
}

/// The whole HTTP surface.
pub fn app(state: State) -> Router {
    let mut router = Router::new();
    let mut console = None;
    if let Some(mcp) = &state.mcp {
        router = router
            .merge(mcp_routes(mcp.clone()))
            .merge(console::routes(mcp.console.clone()));
        console = Some(mcp.console.clone());
    }
    let mut router = router
        .route("/healthz", get(healthz))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route(JWKS_PATH, get(jwks))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Inside the counter, so what is counted is what the client gets.
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state);
    if let Some(settings) = console {
        // Outermost: CORS answers preflights before authentication; every response gets the
        // security headers.
        if let Some(cors) = console::cors_layer(&settings) {
            router = router.layer(cors);
        }
        router = router.layer(middleware::from_fn_with_state(
            settings,
            console::security_headers,
        ));
    }
    router
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: State,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    // Without TCP_NODELAY, a response written in two segments waits out the client's delayed
    // ACK (~40 ms per MCP call).
    let listener = listener.tap_io(|stream| {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%err, "cannot set TCP_NODELAY");
        }
    });
    // The peer address reaches handlers (audit records say where a human acted from).
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Largest `/mcp` request body.
pub const MAX_MCP_BODY_BYTES: usize = 1024 * 1024;

fn mcp_routes(mcp: Arc<McpState>) -> Router<State> {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let mut config = StreamableHttpServerConfig::default();
    config.cancellation_token = mcp.shutdown.child_token();
    config
        .allowed_hosts
        .extend(mcp.allowed_hosts.iter().cloned());
    if let Some(host) = url_authority(&mcp.resource) {
        config.allowed_hosts.push(host.to_owned());
        if let Some((name, _)) = host.rsplit_once(':') {
            config.allowed_hosts.push(name.to_owned());
        }
    }
    let context = mcp.context.clone();
    let sessions = Arc::new(mcp::SessionTable::new(mcp.sessions));
    let service = StreamableHttpService::new(
        move || Ok(mcp::MehoMcp::http(context.clone())),
        Arc::new(mcp::Sessions::new(sessions.clone())),
        config,
    );
    let guarded = Router::new()
        .nest_service("/mcp", service)
        // Inside authentication: only a verified caller's malformed message gets an answer.
        .layer(middleware::from_fn(jsonrpc_errors))
        .layer(middleware::from_fn(session_closed))
        .route("/api/v1/feed", get(feed::stream))
        .merge(api::guarded())
        // Layers run outside-in: the token is checked before any body is read.
        .layer(middleware::from_fn(limit_body))
        .layer(middleware::from_fn_with_state(
            (mcp.clone(), sessions),
            authenticate,
        ))
        .with_state(mcp.clone());
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(protected_resource),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(protected_resource),
        )
        .merge(api::public())
        .with_state(mcp)
        .merge(guarded)
}

fn url_authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// RFC 9728 protected resource metadata.
async fn protected_resource(AxumState(mcp): AxumState<Arc<McpState>>) -> Json<serde_json::Value> {
    Json(json!({
        "resource": mcp.resource,
        "authorization_servers": mcp.auth.issuer().map(|i| vec![i.to_owned()]).unwrap_or_default(),
        "scopes_supported": [auth::SCOPE_TOOLS, auth::SCOPE_FEED],
        "bearer_methods_supported": ["header"],
        "resource_name": "meho",
    }))
}

/// Verifies the bearer token and hands the principal to what follows; nothing runs otherwise.
/// On `/mcp` it also binds sessions to the principal that opened them and refuses sessions past
/// the caps.
async fn authenticate(
    AxumState((mcp, sessions)): AxumState<(Arc<McpState>, Arc<mcp::SessionTable>)>,
    mut request: Request,
    next: Next,
) -> Response {
    let principal = match mcp.auth.authenticate(request.headers()).await {
        Ok(principal) => principal,
        Err(err) => {
            tracing::info!(path = request.uri().path(), error = %err, "request refused by the resource server");
            return err.response(&mcp.metadata_url());
        }
    };
    let path = request.uri().path();
    let is_mcp = path == "/mcp" || path.starts_with("/mcp/");
    let reads = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let needed = if is_mcp || !reads {
        // Anything that acts (tools, approvals, grants, freezes) takes the tools scope.
        Some(auth::SCOPE_TOOLS)
    } else if principal.has_scope(auth::SCOPE_FEED) {
        None
    } else {
        Some(auth::SCOPE_TOOLS)
    };
    if let Some(scope) = needed
        && !principal.has_scope(scope)
    {
        return auth::AuthError::InsufficientScope(scope.to_owned()).response(&mcp.metadata_url());
    }
    let owner = mcp::Owner::of(&principal);
    request.extensions_mut().insert(principal);
    if !is_mcp {
        return next.run(request).await;
    }
    // Every open session has its owner in the table from the moment rmcp creates it until rmcp
    // closes it, so an id without one names no session. Another principal's session and one that
    // does not exist (or no longer does) get the same answer: a session id reveals nothing.
    let unusable = request.headers().get("mcp-session-id").is_some_and(|id| {
        id.to_str()
            .ok()
            .and_then(|id| sessions.owner_of(id))
            .is_none_or(|opened_by| opened_by != owner)
    });
    if unusable {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "session_not_found", "message": "no such MCP session" })),
        )
            .into_response();
    }
    let opener = Arc::new(mcp::Opener::new(owner));
    let response = mcp::opened_by(opener.clone(), next.run(request)).await;
    match opener.refusal() {
        Some(refusal) => session_refused(&refusal),
        None => response,
    }
}

/// A new MCP session past a cap: 429 when the principal holds its share (it can close one),
/// 503 when the server is full (nothing the caller can do but wait).
fn session_refused(refusal: &mcp::SessionRefusal) -> Response {
    let (status, code) = match refusal {
        mcp::SessionRefusal::PerPrincipal { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "too_many_sessions")
        }
        mcp::SessionRefusal::Total { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, "sessions_exhausted")
        }
    };
    tracing::warn!(error = code, message = %refusal, "MCP session refused");
    (
        status,
        Json(json!({ "error": code, "message": refusal.to_string() })),
    )
        .into_response()
}

fn too_large_response() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        Json(json!({
            "error": "payload_too_large",
            "message": format!("request bodies are limited to {MAX_MCP_BODY_BYTES} bytes"),
        })),
    )
        .into_response()
}

/// A closed session is answered `204 No Content`. rmcp answers a client's `DELETE /mcp` with
/// `202 Accepted`, which the MCP SDKs (which expect 200 or 204) log as a failed termination on
/// every disconnect; the session is closed by then either way.
async fn session_closed(request: Request, next: Next) -> Response {
    let delete = request.method() == axum::http::Method::DELETE;
    let mut response = next.run(request).await;
    if delete && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
        *response.body_mut() = axum::body::Body::empty();
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    response
}

/// Refuses bodies over [`MAX_MCP_BODY_BYTES`]: by `Content-Length` up front, and by counting
/// for streamed bodies.
async fn limit_body(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_MCP_BODY_BYTES) {
        return too_large_response();
    }
    if request.method() != axum::http::Method::POST {
        // GET (SSE) and DELETE carry no body worth buffering.
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, MAX_MCP_BODY_BYTES).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(err) => {
            let too_large = std::error::Error::source(&err)
                .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
            if too_large {
                too_large_response()
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    Json(json!({
                        "error": "bad_request",
                        "message": format!("cannot read the request body: {err}"),
                    })),
                )
                    .into_response()
            }
        }
    }
}

/// meho's JWKS, or 404 when meho signs no JWTs.
async fn jwks(AxumState(state): AxumState<State>, uri: Uri) -> Response {
    match &state.jwks {
        Some(keys) => Json(keys.as_ref().clone()).into_response(),
        None => not_found(uri).await,
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(AxumState(state): AxumState<State>) -> Response {
    let outcome = tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await;
    let ok = matches!(outcome, Ok(Ok(())));
    state.metrics.set_ready(ok);
    if ok {
        (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response()
    } else {
        let detail = match outcome {
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "readiness check failed");
                "the store did not answer a query"
            }
            _ => "the store did not answer within 2s",
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({ "status": "unavailable", "error": "store_unavailable", "message": detail }),
            ),
        )
            .into_response()
    }
}

async fn metrics_text(AxumState(state): AxumState<State>) -> Response {
    match state.metrics.encode() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": "internal", "message": "metrics encoding failed" })),
        )
            .into_response(),
    }
}

async fn not_found(uri: Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "not_found", "message": format!("no route for `{}`", uri.path()) })),
    )
        .into_response()
}

async fn method_not_allowed(request: Request) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({
            "error": "method_not_allowed",
            "message": format!("`{}` is not allowed on `{}`", request.method(), request.uri().path()),
        })),
    )
        .into_response()
}

async fn count_requests(
    AxumState(state): AxumState<State>,
    request: Request,
    next: Next,
) -> Response {
    // Labels come from the request, so each is drawn from a fixed set: the route templates the
    // router knows (never the raw path), the standard methods (anything else is `other`), and
    // the statuses the server itself chose. Otherwise any client could grow the registry without
    // bound, one made-up method or path at a time.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = metrics::method_label(request.method());
    let response = next.run(request).await;
    state
        .metrics
        .record_request(&route, method, response.status().as_u16());
    response
}

/// Largest plain-text error body read back to re-wrap as JSON (such bodies are one sentence).
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .is_some_and(|essence| essence == "application/json" || essence.ends_with("+json"))
}

/// Splits an error response whose body is not JSON (a framework's or a library's plain text)
/// into its status and headers (less the body's) and its text; any other response comes back
/// unchanged as the `Err`. Server errors lose their text, which may name internals; it goes to
/// the log instead.
async fn plain_error(
    response: Response,
) -> Result<(axum::http::response::Parts, String), Response> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return Err(response);
    }
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let text = axum::body::to_bytes(body, MAX_ERROR_BODY_BYTES)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let text = if status.is_server_error() {
        tracing::warn!(%status, error = %text, "request failed");
        "the server failed to handle the request".to_owned()
    } else if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_lowercase()
    } else {
        text
    };
    Ok((parts, text))
}

/// Every error response is JSON `{error, message}`: whatever a handler, an extractor or the
/// framework answered as plain text is re-wrapped here, so no route can slip through.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    match plain_error(response).await {
        Err(response) => response,
        Ok((parts, message)) => {
            let body = json!({ "error": api::error_code(parts.status), "message": message });
            (parts, Json(body)).into_response()
        }
    }
}

/// `/mcp` speaks JSON-RPC, and so do its refusals. A POST body that is not one JSON-RPC message
/// is a 400 with a JSON-RPC error before rmcp sees it (rmcp answers malformed JSON with a
/// plain-text 415): malformed JSON is a parse error (-32700); a batch (MCP dropped batching in
/// 2025-06-18) or a message of no known shape is an invalid request (-32600). rmcp's other
/// plain-text refusals (406, 415, 404 for an unknown session, …) keep their status and get the
/// same JSON-RPC error body, with no `id` (the MCP spec's form for HTTP-level errors).
async fn jsonrpc_errors(request: Request, next: Next) -> Response {
    let request = if request.method() == axum::http::Method::POST && is_json(request.headers()) {
        let (parts, body) = request.into_parts();
        // `limit_body` has read and bounded the body already; this takes it back out.
        let bytes = match axum::body::to_bytes(body, MAX_MCP_BODY_BYTES).await {
            Ok(bytes) => bytes,
            Err(_) => return too_large_response(),
        };
        if let Some(refusal) = not_one_message(&bytes) {
            return refusal;
        }
        Request::from_parts(parts, axum::body::Body::from(bytes))
    } else {
        request
    };
    let response = next.run(request).await;
    match plain_error(response).await {
        Err(response) => response,
        Ok((parts, message)) => {
            let code = if parts.status.is_server_error() {
                rmcp::model::ErrorCode::INTERNAL_ERROR
            } else {
                rmcp::model::ErrorCode::INVALID_REQUEST
            };
            (parts, Json(jsonrpc_error(Value::Null, code, &message))).into_response()
        }
    }
}

/// A JSON-RPC error object.
fn jsonrpc_error(id: Value, code: rmcp::model::ErrorCode, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code.0, "message": message } })
}

/// The 400 for a POST body that is not exactly one JSON-RPC message, if it is not.
fn not_one_message(bytes: &[u8]) -> Option<Response> {
    use rmcp::model::ErrorCode;
    let refuse = |id: Value, code: ErrorCode, message: String| {
        Some(
            (
                StatusCode::BAD_REQUEST,
                Json(jsonrpc_error(id, code, &message)),
            )
                .into_response(),
        )
    };
    // The hot path: one message MCP knows. Only a refusal needs the closer look below.
    if serde_json::from_slice::<rmcp::model::ClientJsonRpcMessage>(bytes).is_ok() {
        return None;
    }
    let value = match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => value,
        Err(err) => {
            return refuse(
                Value::Null,
                ErrorCode::PARSE_ERROR,
                format!("parse error: the body is not JSON: {err}"),
            );
        }
    };
    if value.is_array() {
        return refuse(
            Value::Null,
            ErrorCode::INVALID_REQUEST,
            "invalid request: JSON-RPC batches are not supported (MCP removed them in 2025-06-18); send one message per request".to_owned(),
        );
    }
    match <rmcp::model::ClientJsonRpcMessage as serde::Deserialize>::deserialize(&value) {
        Ok(_) => None,
        Err(err) => {
            // Answer with the request's id when it has a usable one.
            let id = value
                .get("id")
                .filter(|id| id.is_string() || id.is_i64() || id.is_u64())
                .cloned()
                .unwrap_or(Value::Null);
            refuse(
                id,
                ErrorCode::INVALID_REQUEST,
                format!("invalid request: not a JSON-RPC message MCP knows: {err}"),
            )
        }
    }
}
