use meho_http::{Method, ParamError, build, search};
use serde_json::json;

use crate::openbao;

#[test]
fn parses_openbao_with_hundreds_of_operations() {
    let spec = openbao();
    assert_eq!(spec.title(), "OpenBao API");
    assert_eq!(spec.version(), "2.7.2");
    assert!(spec.operations().len() > 300, "{}", spec.operations().len());
    assert!(spec.warnings().len() < 10, "{:#?}", spec.warnings());
}

#[test]
fn finds_sys_health_by_key_and_by_id() {
    let spec = openbao();
    let op = spec.find("GET /sys/health").unwrap();
    assert_eq!(op.method, Method::Get);
    assert_eq!(op.path, "/sys/health");
    assert_eq!(
        spec.find("get /sys/health").unwrap().key(),
        "GET /sys/health"
    );
    assert_eq!(
        spec.find("read-health-status").unwrap().key(),
        "GET /sys/health"
    );
    assert!(spec.find("GET /sys/nothing-here").is_none());
}

#[test]
fn search_health_ranks_sys_health_first() {
    let spec = openbao();
    let hits = search(&spec, "health", 5);
    assert_eq!(
        hits[0].operation.key(),
        "GET /sys/health",
        "{:?}",
        keys(&hits)
    );
}

#[test]
fn search_kv_secret_write_finds_the_kv_write() {
    let spec = openbao();
    let hits = search(&spec, "kv secret write", 3);
    assert!(
        keys(&hits).contains(&"POST /secret/data/{path}".to_owned()),
        "{:?}",
        keys(&hits)
    );
}

#[test]
fn policy_name_with_dot_dot_stays_one_segment() {
    let spec = openbao();
    let op = spec.find("GET /sys/policy/{name}").unwrap();
    let req = build(op, &json!({"name": "../x"})).unwrap();
    assert_eq!(req.path, "/sys/policy/%2E%2E%2Fx");
    assert_eq!(req.path_and_query(), "/sys/policy/%2E%2E%2Fx");
}

#[test]
fn policy_write_body_failing_the_schema_names_the_field() {
    let spec = openbao();
    let op = spec.find("POST /sys/policy/{name}").unwrap();
    let body = op.body.as_ref().unwrap();
    assert_eq!(body.content_type, "application/json");
    let err = build(op, &json!({"name": "ops", "body": {"policy": 42}})).unwrap_err();
    assert!(matches!(err, ParamError::InvalidBody { .. }), "{err}");
    assert!(err.to_string().contains("`/policy`"), "{err}");
    let ok = build(
        op,
        &json!({"name": "ops", "body": {"policy": "path \"*\" {}"}}),
    )
    .unwrap();
    assert_eq!(ok.body, Some(json!({"policy": "path \"*\" {}"})));
    assert_eq!(ok.content_type.as_deref(), Some("application/json"));
}

#[test]
fn kv_write_refuses_a_non_object_data() {
    let spec = openbao();
    let op = spec.find("kv-write-data-path").unwrap();
    let err = build(op, &json!({"path": "app/db", "body": {"data": "x"}})).unwrap_err();
    assert!(err.to_string().starts_with("`body` at `/data`"), "{err}");
    let ok = build(
        op,
        &json!({"path": "app/db", "body": {"data": {"pw": "s"}}}),
    )
    .unwrap();
    assert_eq!(ok.path, "/secret/data/app%2Fdb");
}

#[test]
fn every_operation_has_a_compact_view_and_a_params_schema() {
    let spec = openbao();
    for op in spec.operations() {
        let compact = op.compact_params();
        assert!(compact.is_object());
        assert!(compact.to_string().len() < 4096, "{}: {compact}", op.key());
        let schema = op.params_schema();
        assert_eq!(schema["additionalProperties"], json!(false));
        // The params schema is itself a valid 2020-12 schema.
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&schema)
            .unwrap();
    }
}

fn keys(hits: &[meho_http::Hit<'_>]) -> Vec<String> {
    hits.iter().map(|h| h.operation.key()).collect()
}
