//! The only crate that knows HTTP. Today it serves the operational endpoints: `/healthz`, `/ready`
//! and `/metrics`. MCP, the REST API and the console join here.
//!
//! Invariants:
//! - [`app`] builds the whole router from a [`State`]; tests drive it with `oneshot`, no socket.
//! - Every error becomes a JSON body with a stable `error` code; nothing internal leaks.

mod metrics;

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
use serde_json::json;
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
}

impl State {
    /// Bundles a store with a fresh metrics registry.
    pub fn new(store: Store) -> Self {
        State {
            store,
            metrics: Arc::new(Metrics::new()),
        }
    }
}

/// The whole HTTP surface.
pub fn app(state: State) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: State,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
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
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    state
        .metrics
        .record_request(&route, &method, response.status().as_u16());
    response
}
