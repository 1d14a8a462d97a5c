//! Integration tests of the HTTP surface, driven through the router with `oneshot`: no socket.

// Test helpers outside `#[test]` functions are not covered by clippy.toml's test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod activity;
mod api;
mod auth;
mod console;
mod feed;
mod mcp;
mod preview;
mod recordings;
mod routes;
mod sessions;
mod support;
mod tasks;
mod wire;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use meho_server::State;
use meho_store::Store;
use tempfile::TempDir;
use tower::ServiceExt as _;

/// A state backed by a real SQLite store in a temporary directory, kept alive with it.
pub(crate) struct Fixture {
    pub(crate) state: State,
    _dir: TempDir,
}

impl Fixture {
    pub(crate) async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("meho.db").display());
        let store = Store::open(&url).await.unwrap();
        Fixture {
            state: State::new(store),
            _dir: dir,
        }
    }

    /// Sends one request through a fresh router over the shared state.
    pub(crate) async fn send(&self, method: Method, path: &str) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = meho_server::app(self.state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let allow = response
            .headers()
            .get(header::ALLOW)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            content_type,
            allow,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path).await
    }
}

/// A collected response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<String>,
    pub(crate) allow: Option<String>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn json(&self) -> serde_json::Value {
        assert!(
            self.content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("application/json")),
            "expected JSON, got {:?}",
            self.content_type
        );
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {}", self.body))
    }
}
