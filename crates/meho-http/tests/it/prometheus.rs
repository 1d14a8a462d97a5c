use meho_http::{Location, Method, ParamError, build, search};
use serde_json::json;

use crate::prometheus;

#[test]
fn parses_the_prometheus_spec_without_warnings() {
    let spec = prometheus();
    assert_eq!(spec.title(), "Prometheus HTTP API");
    assert_eq!(spec.openapi_version(), "3.1.0");
    assert_eq!(spec.operations().len(), 12);
    assert!(spec.warnings().is_empty(), "{:#?}", spec.warnings());
    assert_eq!(spec.servers()[0].url, "http://localhost:9090");
}

#[test]
fn builds_an_instant_query() {
    let spec = prometheus();
    let op = spec.find("query").unwrap();
    let req = build(
        op,
        &json!({"query": "up{job=\"node\"}", "time": 1_700_000_000, "timeout": "5s"}),
    )
    .unwrap();
    assert_eq!(req.method, Method::Get);
    assert_eq!(
        req.path_and_query(),
        "/api/v1/query?query=up%7Bjob%3D%22node%22%7D&time=1700000000&timeout=5s"
    );
    assert!(req.body.is_none());
}

#[test]
fn series_match_is_repeated() {
    let spec = prometheus();
    let op = spec.find("GET /api/v1/series").unwrap();
    let req = build(
        op,
        &json!({"match[]": ["up", "process_start_time_seconds{job=\"p\"}"]}),
    )
    .unwrap();
    assert_eq!(
        req.query,
        vec![
            ("match[]".to_owned(), "up".to_owned()),
            (
                "match[]".to_owned(),
                "process_start_time_seconds{job=\"p\"}".to_owned()
            ),
        ]
    );
    assert!(
        req.path_and_query()
            .starts_with("/api/v1/series?match%5B%5D=up&match%5B%5D=process")
    );
}

#[test]
fn series_requires_at_least_one_match() {
    let spec = prometheus();
    let op = spec.find("findSeries").unwrap();
    let err = build(op, &json!({})).unwrap_err();
    assert_eq!(err.to_string(), "`match[]` (query) is required");
    let err = build(op, &json!({"match[]": []})).unwrap_err();
    assert!(err.to_string().starts_with("`match[]` (query): "), "{err}");
}

#[test]
fn label_values_path_and_shared_parameters() {
    let spec = prometheus();
    let op = spec.find("listLabelValues").unwrap();
    let p = op.parameter("label_name").unwrap();
    assert_eq!(p.location, Location::Path);
    assert!(p.required);
    let req = build(
        op,
        &json!({"label_name": "job", "start": "2023-01-01T00:00:00Z"}),
    )
    .unwrap();
    assert_eq!(
        req.path_and_query(),
        "/api/v1/label/job/values?start=2023-01-01T00%3A00%3A00Z"
    );
}

#[test]
fn targets_state_is_an_enumeration() {
    let spec = prometheus();
    let op = spec.find("listTargets").unwrap();
    let err = build(op, &json!({"state": "sleeping"})).unwrap_err();
    assert!(matches!(err, ParamError::Invalid { .. }), "{err}");
    assert_eq!(
        op.compact_params()["state"]["enum"],
        json!(["active", "dropped", "any"])
    );
}

#[test]
fn admin_and_lifecycle_operations() {
    let spec = prometheus();
    let op = spec.find("snapshot").unwrap();
    assert_eq!(op.method, Method::Post);
    // A boolean given as text is read as one and sent as text.
    let req = build(op, &json!({"skip_head": "true"})).unwrap();
    assert_eq!(
        req.path_and_query(),
        "/api/v1/admin/tsdb/snapshot?skip_head=true"
    );
    let err = build(op, &json!({"skip_head": "maybe"})).unwrap_err();
    assert!(err.to_string().contains("boolean"), "{err}");

    let op = spec.find("deleteSeries").unwrap();
    let req = build(op, &json!({"match[]": ["{job=\"x\"}"]})).unwrap();
    assert_eq!(
        req.path_and_query(),
        "/api/v1/admin/tsdb/delete_series?match%5B%5D=%7Bjob%3D%22x%22%7D"
    );
    assert_eq!(
        spec.find("POST /api/v1/admin/tsdb/clean_tombstones")
            .unwrap()
            .id
            .as_deref(),
        Some("cleanTombstones")
    );
    let reload = spec.find("POST /-/reload").unwrap();
    assert_eq!(build(reload, &json!({})).unwrap().path, "/-/reload");
    let err = build(reload, &json!({"force": true})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown parameter `force` (this operation takes: nothing)"
    );
}

#[test]
fn search_finds_prometheus_operations() {
    let spec = prometheus();
    assert_eq!(
        search(&spec, "query range", 1)[0].operation.key(),
        "GET /api/v1/query_range"
    );
    assert_eq!(
        search(&spec, "queryRange", 1)[0].operation.key(),
        "GET /api/v1/query_range"
    );
    assert_eq!(
        search(&spec, "label values", 1)[0].operation.key(),
        "GET /api/v1/label/{label_name}/values"
    );
    assert_eq!(
        search(&spec, "delete series", 1)[0].operation.key(),
        "POST /api/v1/admin/tsdb/delete_series"
    );
    assert_eq!(
        search(&spec, "reload config", 1)[0].operation.key(),
        "POST /-/reload"
    );
    assert_eq!(search(&spec, "", 3).len(), 3);
}
