//! The connector's limits against a small HTTP server this test runs (a real server on a
//! loopback socket; it plays the misbehaving vendor API that no packaged peer can be made to
//! be): a 10 MiB answer, a slow answer, an answer that sets cookies and echoes the credential, a
//! redirect. Each ends in a clear error or a clean answer, and every call is audited.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use meho_gateway::ErrorCode;
use serde_json::{Value, json};

use meho_test_support::api_lab::{ApiLab, TOKEN_CANARY, agent};

const SPEC: &str = r#"
openapi: 3.1.0
info: { title: Edge, version: "1" }
paths:
  /big:
    get: { operationId: big, responses: { "200": { description: ok } } }
  /big-stream:
    get: { operationId: bigStream, responses: { "200": { description: ok } } }
  /slow:
    get: { operationId: slow, responses: { "200": { description: ok } } }
  /echo:
    get: { operationId: echo, responses: { "200": { description: ok } } }
  /moved:
    get: { operationId: moved, responses: { "302": { description: moved } } }
"#;

/// Bytes of the large answers.
const BIG: usize = 10 * 1024 * 1024;

/// Starts the server; returns its base URL and how many times `/echo` was reached.
async fn serve() -> (String, Arc<AtomicUsize>) {
    let echoed = Arc::new(AtomicUsize::new(0));
    let hits = echoed.clone();
    let app = Router::new()
        .route("/big", get(|| async { "x".repeat(BIG) }))
        .route(
            "/big-stream",
            get(|| async {
                // No Content-Length: the cap must hold while reading.
                let chunks =
                    (0..BIG / 65536 + 1).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 65536]));
                axum::body::Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/echo",
            get(move |headers: HeaderMap| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let seen: serde_json::Map<String, Value> = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
                        .collect();
                    (
                        [
                            (header::SET_COOKIE, "session=abc123; HttpOnly".to_owned()),
                            (
                                header::HeaderName::from_static("x-auth-token"),
                                "leaky".to_owned(),
                            ),
                            (
                                header::HeaderName::from_static("x-request-id"),
                                "req-1".to_owned(),
                            ),
                        ],
                        axum::Json(json!({ "seen": seen })),
                    )
                }
            }),
        )
        .route(
            "/moved",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/echo")]).into_response() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), echoed)
}

async fn lab() -> (ApiLab, Arc<AtomicUsize>) {
    lab_with_auth(r#"{ kind = "bearer", secret = "stored:bao-token" }"#).await
}

async fn lab_with_auth(auth: &str) -> (ApiLab, Arc<AtomicUsize>) {
    let (url, echoed) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("edge.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let toml = format!(
        r#"
[apis.edge]
base_url = "{url}"
spec = "{spec}"
timeout_seconds = 1
max_response_bytes = 1048576
auth = {auth}
"#,
        spec = spec.display()
    );
    (ApiLab::new(dir, &toml, TOKEN_CANARY).await, echoed)
}

#[tokio::test]
async fn a_10_mib_answer_is_refused_whole_not_cut() {
    let (lab, _) = lab().await;
    for operation in ["big", "bigStream"] {
        let err = lab
            .call(
                &agent(),
                "api_call",
                json!({ "api": "edge", "operation": operation }),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Limit, "{operation}: {err:?}");
        assert!(
            err.message.contains("max_response_bytes = 1048576"),
            "{}",
            err.message
        );
    }
    // Both calls ran (intent and outcome) and failed on the target: audited as such.
    let records = lab.records().await;
    let outcomes: Vec<_> = records.iter().filter(|r| r.kind == "outcome").collect();
    assert_eq!(outcomes.len(), 2, "{records:?}");
    assert!(
        outcomes
            .iter()
            .all(|r| r.body.contains("max_response_bytes"))
    );
}

#[tokio::test]
async fn a_slow_api_times_out_with_a_clear_error() {
    let (lab, _) = lab().await;
    let started = std::time::Instant::now();
    let err = lab
        .call(
            &agent(),
            "api_call",
            json!({ "api": "edge", "operation": "slow" }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unreachable, "{err:?}");
    assert!(
        err.message.contains("did not answer within 1 s"),
        "{}",
        err.message
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the deadline was not kept"
    );
    let records = lab.records().await;
    assert!(
        records
            .iter()
            .any(|r| r.kind == "outcome" && r.body.contains("did not answer"))
    );
}

#[tokio::test]
async fn cookies_auth_headers_and_an_echoed_credential_never_reach_the_model() {
    let (lab, echoed) = lab().await;
    let answer = lab
        .call(
            &agent(),
            "api_call",
            json!({ "api": "edge", "operation": "echo" }),
        )
        .await
        .unwrap();
    assert_eq!(echoed.load(Ordering::SeqCst), 1);
    // The API did get the credential...
    let seen = answer["body"]["seen"].as_object().unwrap();
    assert!(seen.contains_key("authorization"), "{answer}");
    // ...but its value never comes back, and neither do cookies or auth headers.
    let text = answer.to_string();
    assert!(!text.contains(TOKEN_CANARY), "{text}");
    assert!(!text.contains("abc123"), "{text}");
    assert!(!text.contains("leaky"), "{text}");
    assert_eq!(answer["headers"]["x-request-id"], "req-1", "{answer}");
    assert!(answer["headers"].get("set-cookie").is_none());
    let records = lab.records().await;
    let all = serde_json::to_string(&records).unwrap();
    assert!(
        !all.contains(TOKEN_CANARY),
        "the audit log holds the credential"
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let (lab, echoed) = lab().await;
    let answer = lab
        .call(
            &agent(),
            "api_call",
            json!({ "api": "edge", "operation": "moved" }),
        )
        .await
        .unwrap();
    assert_eq!(answer["status"], 302, "{answer}");
    assert_eq!(answer["headers"]["location"], "/echo", "{answer}");
    assert_eq!(
        echoed.load(Ordering::SeqCst),
        0,
        "the redirect was followed (with the credential)"
    );
}

#[tokio::test]
async fn an_echoed_basic_credential_is_scrubbed_in_every_spelling() {
    use base64::Engine as _;
    let (lab, echoed) =
        lab_with_auth(r#"{ kind = "basic", username = "ops", secret = "stored:bao-token" }"#).await;
    let answer = lab
        .call(
            &agent(),
            "api_call",
            json!({ "api": "edge", "operation": "echo" }),
        )
        .await
        .unwrap();
    assert_eq!(echoed.load(Ordering::SeqCst), 1);
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("ops:{TOKEN_CANARY}"));
    let text = answer.to_string();
    assert!(
        answer["body"]["seen"]["authorization"].is_string(),
        "{answer}"
    );
    assert!(
        !text.contains(&encoded),
        "the basic credential came back: {text}"
    );
    assert!(!text.contains(TOKEN_CANARY), "{text}");
    let records = serde_json::to_string(&lab.records().await).unwrap();
    assert!(!records.contains(&encoded) && !records.contains(TOKEN_CANARY));
}

#[tokio::test]
async fn a_reload_picks_up_a_changed_spec_and_keeps_the_old_one_when_the_new_is_broken() {
    let (lab, _) = lab().await;
    let spec = lab.dir.path().join("edge.yaml");
    let unknown = lab
        .call(
            &agent(),
            "api_call",
            json!({ "api": "edge", "operation": "fresh" }),
        )
        .await
        .unwrap_err();
    assert_eq!(unknown.code, ErrorCode::NotFound, "{unknown:?}");
    // A new operation in the file: a reload serves it.
    let grown = SPEC.replace(
        "paths:\n",
        "paths:\n  /fresh:\n    get: { operationId: fresh, responses: { \"200\": { description: ok } } }\n",
    );
    std::fs::write(&spec, grown).unwrap();
    assert!(lab.connector.reload().await.is_empty());
    let found = lab
        .call(
            &agent(),
            "api_search_operations",
            json!({ "api": "edge", "query": "fresh" }),
        )
        .await
        .unwrap();
    assert_eq!(found["operations"][0]["operation"], "fresh", "{found}");
    // A broken file: the reload says so, and the API keeps the spec it had.
    std::fs::write(&spec, "openapi: [").unwrap();
    let failed = lab.connector.reload().await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "edge");
    assert!(failed[0].1.contains("cannot be used"), "{failed:?}");
    let still = lab
        .call(
            &agent(),
            "api_search_operations",
            json!({ "api": "edge", "query": "fresh" }),
        )
        .await
        .unwrap();
    assert_eq!(still["operations"][0]["operation"], "fresh", "{still}");
}
