//! `meho signer` on the wire: `POST /v1/sign` and `GET /v1/hosts` over mutual TLS.
//!
//! TLS is terminated here rather than by a reverse proxy so the caller's identity is the verified
//! client certificate itself: its subject CN must be in `[signer] allowed_callers`. A connection
//! without a certificate chaining to `client_ca` fails the handshake and never reaches a handler.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::signer::{SignError, Signer};
use crate::wire::{ErrorBody, HostsResponse, Intent};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
struct Conn {
    signer: Arc<Signer>,
    caller: Option<String>,
    allowed: Arc<Vec<String>>,
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            code: code.to_owned(),
            error: message.into(),
        }),
    )
        .into_response()
}

impl Conn {
    /// The verified CN, if it may call at all.
    async fn authorize(&self, what: &str) -> Result<String, Response> {
        match &self.caller {
            Some(cn) if self.allowed.iter().any(|a| a == cn) => Ok(cn.clone()),
            other => {
                let cn = other.clone().unwrap_or_else(|| "<no CN>".to_owned());
                let message =
                    format!("client certificate CN `{cn}` is not in [signer] allowed_callers");
                if let Err(err) = self.signer.audit_caller_refused(&cn, what, &message).await {
                    tracing::error!(%err, "could not audit a refused signer caller");
                }
                Err(error(StatusCode::FORBIDDEN, "forbidden", message))
            }
        }
    }
}

async fn sign(State(conn): State<Conn>, body: Bytes) -> Response {
    let caller = match conn.authorize("sign").await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let intent: Intent = match serde_json::from_slice(&body) {
        Ok(intent) => intent,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the body is not a sign intent: {err}"),
            );
        }
    };
    match conn.signer.sign(&caller, &intent).await {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(err) => {
            let status = match &err {
                SignError::Forbidden(_) => StatusCode::FORBIDDEN,
                SignError::UnknownHost(_) => StatusCode::NOT_FOUND,
                SignError::BadRequest(_) => StatusCode::BAD_REQUEST,
                SignError::Unreachable(_) => StatusCode::BAD_GATEWAY,
                SignError::Internal(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, err.code(), err.to_string())
        }
    }
}

#[derive(serde::Deserialize)]
struct HostsQuery {
    /// Comma-separated groups of the human behind the call; absent applies no group filter.
    groups: Option<String>,
    /// Only this tenant's hosts.
    tenant: Option<String>,
}

async fn hosts(State(conn): State<Conn>, Query(query): Query<HostsQuery>) -> Response {
    let caller = match conn.authorize("hosts").await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let groups: Option<Vec<String>> = query.groups.map(|g| {
        g.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    });
    axum::Json(HostsResponse {
        hosts: conn
            .signer
            .hosts(&caller, query.tenant.as_deref(), groups.as_deref()),
    })
    .into_response()
}

fn router(conn: Conn) -> Router {
    Router::new()
        .route("/v1/sign", post(sign))
        .route("/v1/hosts", get(hosts))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(conn)
}

/// How long a shutdown waits for requests in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the signer on `listener` until `shutdown` resolves, then lets requests in flight finish
/// (up to [`DRAIN_TIMEOUT`]) so their audit records are written before the caller checkpoints.
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    signer: Arc<Signer>,
    allowed_callers: Vec<String>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let allowed = Arc::new(allowed_callers);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => {
                if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
                    tracing::warn!("signer requests still running after the drain timeout");
                }
                return Ok(());
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let signer = signer.clone();
        let allowed = allowed.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    tracing::warn!(%peer, %err, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::warn!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let caller = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|cert| crate::tls::common_name(cert));
            let service = TowerToHyperService::new(router(Conn {
                signer,
                caller,
                allowed,
            }));
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder
                .serve_connection(TokioIo::new(tls), service)
                .into_owned();
            if let Err(err) = watcher.watch(connection).await {
                tracing::debug!(%peer, %err, "signer connection ended with an error");
            }
        });
    }
}
