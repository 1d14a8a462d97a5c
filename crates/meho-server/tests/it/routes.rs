use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::Fixture;

/// The value of the first sample of metric `name` carrying every one of `labels`, if any.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| label_text.split(',').any(|l| l == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

#[tokio::test]
async fn healthz_is_ok_json() {
    let fixture = Fixture::new().await;
    let reply = fixture.get("/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({ "status": "ok" }));
}

#[tokio::test]
async fn ready_is_ok_with_a_working_store() {
    let fixture = Fixture::new().await;
    let reply = fixture.get("/ready").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["status"], "ready");
}

#[tokio::test]
async fn ready_is_503_store_unavailable_after_the_store_closes() {
    let fixture = Fixture::new().await;
    fixture.state.store.close().await;
    let reply = fixture.get("/ready").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = reply.json();
    assert_eq!(body["error"], "store_unavailable");
    assert_eq!(body["status"], "unavailable");
    assert!(body["message"].is_string());
}

#[tokio::test]
async fn healthz_stays_ok_when_the_store_is_down() {
    let fixture = Fixture::new().await;
    fixture.state.store.close().await;
    assert_eq!(fixture.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_are_openmetrics_with_build_info_and_request_counts() {
    let fixture = Fixture::new().await;
    assert_eq!(fixture.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(fixture.get("/healthz").await.status, StatusCode::OK);

    let reply = fixture.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    let content_type = reply.content_type.clone().unwrap_or_default();
    assert!(
        content_type.contains("openmetrics-text"),
        "content type {content_type}"
    );
    let metrics = &reply.body;
    assert!(metrics.contains("meho_build_info"), "{metrics}");
    assert_eq!(
        sample(
            metrics,
            "meho_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            metrics,
            "meho_http_requests_total",
            &[("route", "/healthz"), ("method", "GET"), ("status", "200")]
        ),
        Some(2.0),
        "{metrics}"
    );
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");
}

#[tokio::test]
async fn ready_gauge_follows_the_last_readiness_check() {
    let fixture = Fixture::new().await;
    assert_eq!(fixture.get("/ready").await.status, StatusCode::OK);
    let metrics = fixture.get("/metrics").await.body;
    assert_eq!(sample(&metrics, "meho_ready", &[]), Some(1.0), "{metrics}");

    fixture.state.store.close().await;
    assert_eq!(
        fixture.get("/ready").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let metrics = fixture.get("/metrics").await.body;
    assert_eq!(sample(&metrics, "meho_ready", &[]), Some(0.0), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            "meho_http_requests_total",
            &[("route", "/ready"), ("method", "GET"), ("status", "503")]
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn unknown_route_is_404_json_not_found() {
    let fixture = Fixture::new().await;
    let reply = fixture.get("/no/such/route").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let body = reply.json();
    assert_eq!(body["error"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("/no/such/route"));
}

#[tokio::test]
async fn unknown_paths_do_not_become_metric_labels() {
    let fixture = Fixture::new().await;
    fixture.get("/secret-token-abc123").await;
    let metrics = fixture.get("/metrics").await.body;
    assert!(!metrics.contains("secret-token-abc123"), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("meho_http_requests_total{") && l.contains("status=\"404\"")),
        "the 404 is still counted: {metrics}"
    );
}

#[tokio::test]
async fn post_to_healthz_is_405() {
    let fixture = Fixture::new().await;
    let reply = fixture.send(Method::POST, "/healthz").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    let allow = reply.allow.clone().unwrap_or_default();
    assert!(allow.contains("GET"), "allow header: {allow}");
    let body: serde_json::Value = serde_json::from_str(&reply.body).expect("405 body is JSON");
    assert_eq!(body["error"], "method_not_allowed", "{body}");
}

/// The `meho_http_requests_total` series in a scrape.
fn request_series(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with("meho_http_requests_total{"))
        .map(str::to_owned)
        .collect()
}

/// Requests with made-up methods on made-up and real paths (no token: nobody needs one to
/// reach `/metrics` or to be counted).
async fn junk(server: &crate::support::Server, round: &str, count: usize) {
    let paths = [
        "/x",
        "/api/v1/approvals",
        "/api/v1/freezes",
        "/mcp",
        "/console",
        "/healthz",
    ];
    for i in 0..count {
        let method = reqwest::Method::from_bytes(format!("EVIL{round}{i}").as_bytes()).unwrap();
        let path = paths[i % paths.len()];
        let response = server
            .http
            .request(method, format!("{}{path}/{round}-{i}", server.base))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
        // A made-up method on a real route as well.
        let method = reqwest::Method::from_bytes(format!("ODD{round}{i}").as_bytes()).unwrap();
        server
            .http
            .request(method, format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn made_up_methods_and_paths_leave_the_request_metric_bounded() {
    let server = crate::support::Server::start().await;
    junk(&server, "a", 60).await;
    let scrape = |server: &crate::support::Server| {
        let request = server.http.get(format!("{}/metrics", server.base));
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    // Scraped twice, so the scrape's own series is in the count.
    scrape(&server).await;
    let before = request_series(&scrape(&server).await);
    junk(&server, "b", 300).await;
    let metrics = scrape(&server).await;
    let after = request_series(&metrics);
    // Six hundred more distinct method and path pairs added no series at all.
    assert_eq!(before.len(), after.len(), "{metrics}");
    assert!(after.len() <= 12, "{metrics}");
    assert!(
        !metrics.contains("EVIL") && !metrics.contains("ODD"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("b-1"),
        "raw paths are never labels: {metrics}"
    );
    assert!(
        after.iter().any(|l| l.contains("method=\"other\"")),
        "made-up methods are counted as `other`: {metrics}"
    );
}
