//! Fixtures: an audit log on a temporary SQLite store, a scripted HTTP receiver on a loopback
//! port that records every request, a closed port, and a process-wide log capture.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use meho_audit::{AuditLog, StoredRecord};
use meho_core::Tier;
use meho_notify::{Notifier, PendingApproval, WebhookConfig, WebhookFormat};
use serde_json::json;
use tempfile::TempDir;

/// The secret part of every webhook URL the failure tests use.
pub const CANARY: &str = "CANARY-s3cr3t";
/// The tenant of the test approvals.
pub const TENANT: &str = "acme";

/// An audit log over a fresh SQLite store in a tempdir.
pub struct Audit {
    _dir: TempDir,
    pub log: Arc<AuditLog>,
}

impl Audit {
    pub async fn start() -> Audit {
        let dir = tempfile::tempdir().unwrap();
        let store = meho_test_support::sqlite_store(dir.path()).await.unwrap();
        let log = meho_test_support::audit_log(&store).await.unwrap();
        Audit { _dir: dir, log }
    }

    /// Every record of `tenant`, in chain order.
    pub async fn records(&self, tenant: &str) -> Vec<StoredRecord> {
        self.log.store().scan(tenant, 0, 10_000).await.unwrap()
    }

    /// The `notify` records, in chain order.
    pub async fn notify_records(&self) -> Vec<StoredRecord> {
        self.records(TENANT)
            .await
            .into_iter()
            .filter(|r| r.action.as_deref() == Some("notify"))
            .collect()
    }
}

/// A pending approval like the server would announce.
pub fn approval(id: &str) -> PendingApproval {
    PendingApproval {
        id: id.to_owned(),
        tenant: TENANT.to_owned(),
        requester: "alice".to_owned(),
        target: "web-1".to_owned(),
        tool: "ssh_execute".to_owned(),
        summary: "ssh_execute on web-1: systemctl restart nginx (sudo)".to_owned(),
        rule: "approve:^systemctl restart ".to_owned(),
        tier: Tier::Write,
        arguments: json!({
            "server": "web-1",
            "command": "systemctl restart nginx",
            "sudo": true,
            "sudo_user": null,
        }),
        preview: None,
        created_at: "2026-11-25T17:03:04.123456Z".to_owned(),
        expires_at: "2026-11-25T17:13:04.123456Z".to_owned(),
        console_url: format!("http://127.0.0.1:8080/console/#/approvals/{id}"),
    }
}

/// A webhook config.
pub fn webhook(name: &str, url: &str, format: WebhookFormat, max_attempts: u32) -> WebhookConfig {
    WebhookConfig {
        name: name.to_owned(),
        url: url.to_owned(),
        format,
        max_attempts,
        timeout_seconds: 5,
    }
}

/// A notifier over `hooks` with a 5 ms backoff base.
pub fn notifier(hooks: Vec<WebhookConfig>, audit: &Audit) -> Notifier {
    Notifier::new(hooks, audit.log.clone())
        .unwrap()
        .with_backoff(Duration::from_millis(5))
}

/// Waits for every delivery, failing the test after 30 s.
pub async fn drained(notifier: &Notifier) {
    assert!(
        notifier.drain(Duration::from_secs(30)).await,
        "deliveries did not finish within 30 s"
    );
}

/// What the receiver answers to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Put the request path in the body (a receiver that echoes the URL in its error).
    pub echo_path: bool,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            echo_path: false,
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn echo_path(mut self) -> Reply {
        self.echo_path = true;
        self
    }

    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no `{name}` header"))
            .to_str()
            .unwrap()
    }
}

#[derive(Clone)]
struct ReceiverState {
    script: Arc<Mutex<VecDeque<Reply>>>,
    otherwise: Reply,
    received: Arc<Mutex<Vec<Received>>>,
}

/// An HTTP server on 127.0.0.1 answering with a script of replies, then `otherwise`.
pub struct Receiver {
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(script: Vec<Reply>, otherwise: Reply) -> Receiver {
        let state = ReceiverState {
            script: Arc::new(Mutex::new(script.into())),
            otherwise,
            received: Arc::new(Mutex::new(Vec::new())),
        };
        let received = state.received.clone();
        let app = axum::Router::new().fallback(receive).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            base,
            received,
            task,
        }
    }

    /// A receiver that always answers `status`.
    pub async fn always(status: u16) -> Receiver {
        Receiver::start(Vec::new(), Reply::status(status)).await
    }

    /// `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| state.otherwise.clone());
    tokio::time::sleep(reply.delay).await;
    let mut headers = HeaderMap::new();
    for (name, value) in &reply.headers {
        headers.insert(*name, value.parse().unwrap());
    }
    let body = if reply.echo_path {
        format!("{} (no such hook: {})", reply.body, uri)
    } else {
        reply.body.clone()
    };
    (StatusCode::from_u16(reply.status).unwrap(), headers, body).into_response()
}

/// A loopback URL on a port nothing listens on.
pub fn closed_port_url(path: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}{path}")
}

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every log line of the process (all crates, every level, `log` records too) to a buffer.
pub fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(|| Capture)
        .try_init();
}

/// Everything logged so far.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}
