//! The REST API's hygiene: every refusal is the JSON `{error, message}` with the right status
//! (extractor rejections included), 404s name their own kind, every reason obeys one limit, the
//! freeze lift takes its reason in the body, and the OpenAPI document states the constraints
//! the handlers enforce.

use meho_approvals::{MAX_REASON_CHARS, Status};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::Server;

/// One API answer: status and JSON body (after checking it is the `{error, message}` shape
/// when the status is an error).
async fn call(
    server: &Server,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = server
        .http
        .request(method.clone(), format!("{}{path}", server.base))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    read_answer(request.send().await.unwrap(), &format!("{method} {path}")).await
}

async fn read_answer(response: reqwest::Response, what: &str) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: {status} {content_type}: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
    if status >= 400 {
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{what}: {status} is not {{error, message}}: {body}"
        );
    }
    (status, body)
}

fn admin(server: &Server) -> String {
    server.token_with_role("boss", "a", "tenant_admin")
}

async fn freeze(server: &Server, token: &str, value: &str) -> String {
    let (status, body) = call(
        server,
        Method::POST,
        "/api/v1/freezes",
        token,
        Some(&json!({ "kind": "principal", "value": value, "reason": "tested" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn unknown_ids_are_404s_that_name_their_own_kind() {
    let server = Server::start().await;
    let token = admin(&server);
    // Ids shaped like another kind's must not change what the answer names.
    let cases = [
        (
            Method::GET,
            "/api/v1/approvals/grt-1",
            "no approval `grt-1`",
        ),
        (Method::GET, "/api/v1/grants/apr-1", "no grant `apr-1`"),
        (Method::GET, "/api/v1/grants/nope", "no grant `nope`"),
        (Method::DELETE, "/api/v1/grants/frz-1", "no grant `frz-1`"),
        (Method::GET, "/api/v1/freezes/apr-1", "no freeze `apr-1`"),
        (Method::GET, "/api/v1/freezes/nope", "no freeze `nope`"),
        (Method::DELETE, "/api/v1/freezes/grt-1", "no freeze `grt-1`"),
        (Method::GET, "/api/v1/audit/nope", "no audit record `nope`"),
    ];
    for (method, path, said) in cases {
        let (status, body) = call(&server, method, path, &token, None).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"], "not_found", "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(said),
            "{path}: {body}"
        );
    }
    let reason = json!({ "reason": "because" });
    for (path, said) in [
        ("/api/v1/approvals/frz-1/approve", "no approval `frz-1`"),
        ("/api/v1/approvals/grt-1/deny", "no approval `grt-1`"),
        ("/api/v1/freezes/apr-1/lift", "no freeze `apr-1`"),
    ] {
        let (status, body) = call(&server, Method::POST, path, &token, Some(&reason)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(said),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn every_reason_obeys_the_one_limit() {
    let server = Server::start().await;
    let token = admin(&server);
    let longest = "r".repeat(MAX_REASON_CHARS);
    let too_long = "r".repeat(MAX_REASON_CHARS + 1);
    let lift_target = freeze(&server, &token, "agent-lift").await;
    let query_target = freeze(&server, &token, "agent-query").await;
    let lift = format!("/api/v1/freezes/{lift_target}/lift");
    let by_query = |reason: &str| format!("/api/v1/freezes/{query_target}?reason={reason}");
    let grant = |reason: &str| json!({ "target": "x", "pattern": "^uptime$", "tier": "read", "ttl_seconds": 600, "reason": reason });
    let frozen = |reason: &str| json!({ "kind": "session", "value": "s-1", "reason": reason });

    // One over the limit: the same 400, naming the same limit, wherever a reason goes.
    let refusals = [
        (
            Method::POST,
            "/api/v1/approvals/apr-x/approve".to_owned(),
            Some(json!({ "reason": too_long })),
        ),
        (
            Method::POST,
            "/api/v1/approvals/apr-x/deny".to_owned(),
            Some(json!({ "reason": too_long })),
        ),
        (
            Method::POST,
            "/api/v1/grants".to_owned(),
            Some(grant(&too_long)),
        ),
        (
            Method::POST,
            "/api/v1/freezes".to_owned(),
            Some(frozen(&too_long)),
        ),
        (
            Method::POST,
            lift.clone(),
            Some(json!({ "reason": too_long })),
        ),
        (Method::DELETE, by_query(&too_long), None),
    ];
    for (method, path, body) in &refusals {
        let (status, answer) = call(&server, method.clone(), path, &token, body.as_ref()).await;
        assert_eq!(status, 400, "{method} {path}: {answer}");
        assert_eq!(answer["error"], "bad_request");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains(&format!("1 to {MAX_REASON_CHARS} characters")),
            "{method} {path}: {answer}"
        );
    }
    // A blank reason is no reason where one is required.
    let (status, _) = call(
        &server,
        Method::POST,
        "/api/v1/freezes",
        &token,
        Some(&frozen(" \t ")),
    )
    .await;
    assert_eq!(status, 400);

    // At the limit: accepted (an unknown approval or target is the next thing refused).
    for (path, body, expected) in [
        (
            "/api/v1/approvals/apr-x/approve",
            json!({ "reason": longest }),
            404,
        ),
        (
            "/api/v1/approvals/apr-x/deny",
            json!({ "reason": longest }),
            404,
        ),
        ("/api/v1/grants", grant(&longest), 404),
        ("/api/v1/freezes", frozen(&longest), 201),
        (lift.as_str(), json!({ "reason": longest }), 200),
    ] {
        let (status, answer) = call(&server, Method::POST, path, &token, Some(&body)).await;
        assert_eq!(status, expected, "{path}: {answer}");
    }
    let (status, answer) = call(&server, Method::DELETE, &by_query(&longest), &token, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["lift_reason"].as_str().unwrap().len(),
        MAX_REASON_CHARS
    );
}

#[tokio::test]
async fn a_freeze_is_lifted_with_the_reason_in_the_body() {
    let server = Server::start().await;
    let token = admin(&server);
    let id = freeze(&server, &token, "agent-7").await;
    let lift = format!("/api/v1/freezes/{id}/lift");
    // The body is JSON with known fields only.
    let (status, body) = call(
        &server,
        Method::POST,
        &lift,
        &token,
        Some(&json!({ "reason": "fixed", "why": "x" })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, lifted) = call(
        &server,
        Method::POST,
        &lift,
        &token,
        Some(&json!({ "reason": "fixed" })),
    )
    .await;
    assert_eq!(status, 200, "{lifted}");
    assert_eq!(lifted["active"], false);
    assert_eq!(lifted["lift_reason"], "fixed");
    assert_eq!(lifted["lifted_by"], "boss");
    let (status, body) = call(&server, Method::POST, &lift, &token, Some(&json!({}))).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "wrong_state");

    // Without a reason, and by the older DELETE form.
    let quiet = freeze(&server, &token, "agent-8").await;
    let (status, lifted) = call(
        &server,
        Method::POST,
        &format!("/api/v1/freezes/{quiet}/lift"),
        &token,
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 200, "{lifted}");
    assert_eq!(lifted["lift_reason"], Value::Null);
    let old = freeze(&server, &token, "agent-9").await;
    let (status, lifted) = call(
        &server,
        Method::DELETE,
        &format!("/api/v1/freezes/{old}?reason=resolved"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{lifted}");
    assert_eq!(lifted["lift_reason"], "resolved");
    // Lifting takes an operator, like freezing.
    let reader = server.token_with_role("eve", "a", "read_only");
    let other = freeze(&server, &token, "agent-10").await;
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/api/v1/freezes/{other}/lift"),
        &reader,
        Some(&json!({ "reason": "mine" })),
    )
    .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn serials_are_frozen_in_their_canonical_form_and_must_be_numbers() {
    let server = Server::start().await;
    let token = admin(&server);
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/freezes",
        &token,
        Some(&json!({ "kind": "serial", "value": "0042", "reason": "leaked" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["value"], "42",
        "the form the freeze check compares with"
    );
    for value in ["", "4a", " 42", "12345678901234567890"] {
        let (status, body) = call(
            &server,
            Method::POST,
            "/api/v1/freezes",
            &token,
            Some(&json!({ "kind": "serial", "value": value, "reason": "leaked" })),
        )
        .await;
        assert_eq!(status, 400, "`{value}`: {body}");
    }
}

/// Every operation of the OpenAPI document, as (method, path template).
fn operations(document: &Value) -> Vec<(Method, String)> {
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in ["get", "post", "delete", "put", "patch"] {
            if item.get(method).is_some() {
                out.push((
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    path.clone(),
                ));
            }
        }
    }
    out
}

fn document() -> Value {
    serde_json::to_value(meho_server::api::openapi()).unwrap()
}

#[tokio::test]
async fn every_rejection_of_a_path_query_or_body_is_the_json_error() {
    let server = Server::start().await;
    let token = admin(&server);
    let doc = document();
    let mut with_id = 0;
    // A path segment that is not UTF-8, on every route that takes one.
    for (method, path) in operations(&doc) {
        if !path.contains("{id}") {
            continue;
        }
        with_id += 1;
        let path = path.replace("{id}", "%ff%fe");
        let body = json!({ "reason": "because" });
        let (status, answer) = call(&server, method.clone(), &path, &token, Some(&body)).await;
        assert_eq!(status, 400, "{method} {path}: {answer}");
        assert_eq!(answer["error"], "bad_request", "{method} {path}");
    }
    assert!(with_id >= 8, "{with_id}");
    // Queries that do not parse, are out of range, or name unknown parameters.
    for path in [
        "/api/v1/approvals?limit=abc",
        "/api/v1/approvals?limit=0",
        "/api/v1/approvals?limit=501",
        "/api/v1/approvals?status=lost",
        "/api/v1/approvals?bogus=1",
        "/api/v1/grants?all=maybe",
        "/api/v1/freezes?limit=-1",
        "/api/v1/audit?limit=1001",
        "/api/v1/audit?kind=nope",
        "/api/v1/audit?since=yesterday",
        "/api/v1/audit?before=x",
    ] {
        let (status, answer) = call(&server, Method::GET, path, &token, None).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["error"], "bad_request", "{path}");
    }
    // Bodies: not JSON, malformed, unknown fields, wrong types, too large.
    let post = |content_type: &'static str, body: String| {
        server
            .http
            .post(format!("{}/api/v1/freezes", server.base))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let (status, answer) =
        read_answer(post("text/plain", "{}".into()).await.unwrap(), "text").await;
    assert_eq!(status, 415, "{answer}");
    assert_eq!(answer["error"], "unsupported_media_type");
    for body in [
        "{\"kind\": ",
        r#"{"kind": "principal", "value": "a", "reason": "r", "extra": 1}"#,
        r#"{"kind": "principal", "value": 7, "reason": "r"}"#,
        r#"{"kind": "frog", "value": "a", "reason": "r"}"#,
        "[]",
    ] {
        let (status, answer) =
            read_answer(post("application/json", body.into()).await.unwrap(), body).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let huge = format!(
        r#"{{"kind": "principal", "value": "a", "reason": "{}"}}"#,
        "r".repeat(meho_server::MAX_MCP_BODY_BYTES)
    );
    let (status, answer) = read_answer(post("application/json", huge).await.unwrap(), "huge").await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"], "payload_too_large");
    // Outside the API too: a console asset name that is not UTF-8.
    let response = server
        .http
        .get(format!("{}/console/%ff", server.base))
        .send()
        .await
        .unwrap();
    let (status, _) = read_answer(response, "console").await;
    assert_eq!(status, 400);
}

#[test]
fn the_openapi_document_states_every_constraint_the_handlers_enforce() {
    let doc = document();
    // Every operation names the refusals every request can meet.
    for (method, path) in operations(&doc) {
        let operation = &doc["paths"][&path][method.as_str().to_lowercase()];
        let responses = &operation["responses"];
        for status in ["400", "401", "500", "503"] {
            assert!(
                responses[status].is_object(),
                "{method} {path} lacks {status}"
            );
        }
        assert!(
            responses["401"]["headers"]["WWW-Authenticate"].is_object(),
            "{method} {path}"
        );
        if operation["requestBody"].is_object() {
            for status in ["413", "415"] {
                assert!(
                    responses[status].is_object(),
                    "{method} {path} lacks {status}"
                );
            }
        }
    }
    let schemas = &doc["components"]["schemas"];
    // Not blank (a character outside the blanks), and no NUL anywhere.
    let blanks = meho_approvals::not_blank_pattern();
    let pattern = format!(
        "^[^\\u0000]*[^\\u0000{}[^\\u0000]*$",
        blanks.strip_prefix("[^").unwrap()
    );
    for (schema, field) in [
        ("DecisionBody", "reason"),
        ("DenyBody", "reason"),
        ("NewGrantBody", "reason"),
    ] {
        let reason = &schemas[schema]["properties"][field];
        assert_eq!(reason["maxLength"], MAX_REASON_CHARS, "{schema}.{field}");
        assert_eq!(reason["minLength"], 1, "{schema}.{field}");
        assert_eq!(reason["pattern"], pattern.as_str(), "{schema}.{field}");
    }
    assert_eq!(
        schemas["LiftBody"]["properties"]["reason"]["maxLength"],
        MAX_REASON_CHARS
    );
    for variant in schemas["NewFreezeBody"]["oneOf"].as_array().unwrap() {
        assert_eq!(
            variant["properties"]["reason"]["maxLength"],
            MAX_REASON_CHARS
        );
        assert_eq!(variant["additionalProperties"], false);
    }
    let statuses: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        schemas["ApprovalView"]["properties"]["status"]["enum"],
        json!(statuses)
    );
    assert_eq!(
        schemas["ApprovalView"]["properties"]["tier"]["enum"],
        json!(["read", "write", "destructive"])
    );
    assert_eq!(
        schemas["FreezeView"]["properties"]["kind"]["enum"],
        json!(["principal", "session", "serial"])
    );
    let ttl = &schemas["NewGrantBody"]["properties"]["ttl_seconds"];
    assert_eq!(
        (ttl["minimum"].clone(), ttl["maximum"].clone()),
        (json!(60), json!(604_800))
    );
    let param = |path: &str, name: &str| {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} has no `{name}`"))["schema"]
            .clone()
    };
    for (path, max) in [
        ("/api/v1/approvals", 500),
        ("/api/v1/grants", 500),
        ("/api/v1/freezes", 500),
        ("/api/v1/audit", 1000),
    ] {
        let limit = param(path, "limit");
        assert_eq!(
            (limit["minimum"].clone(), limit["maximum"].clone()),
            (json!(1), json!(max)),
            "{path}"
        );
    }
    assert_eq!(
        param("/api/v1/approvals", "status")["enum"],
        json!(statuses)
    );
    let kinds: Vec<&str> = meho_audit::RecordKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(param("/api/v1/audit", "kind")["enum"], json!(kinds));
    assert_eq!(param("/api/v1/audit", "since")["format"], "date-time");
    // The activity view's filters, and its limit.
    let limit = param("/api/v1/activity", "limit");
    assert_eq!(
        (limit["minimum"].clone(), limit["maximum"].clone()),
        (json!(1), json!(200))
    );
    assert_eq!(
        param("/api/v1/activity", "tier")["enum"],
        json!(["read", "write", "destructive"])
    );
    assert_eq!(
        param("/api/v1/activity", "decision")["enum"],
        json!([
            "allowed",
            "denied",
            "held",
            "approved",
            "rejected",
            "expired",
            "announced"
        ])
    );
    // No string a request sends may hold NUL (the extractors refuse it), and the document says
    // so for every free string: parameters and body fields alike.
    let no_nul = "^[^\\u0000]*$";
    for (method, path) in operations(&doc) {
        let operation = &doc["paths"][&path][method.as_str().to_lowercase()];
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let schema = &parameter["schema"];
            let is_string = schema["type"] == "string"
                || schema["type"]
                    .as_array()
                    .is_some_and(|t| t.contains(&json!("string")));
            if is_string && schema["enum"].is_null() {
                assert!(
                    schema["pattern"].is_string(),
                    "{method} {path} `{}` may hold NUL: {schema}",
                    parameter["name"]
                );
            }
        }
    }
    assert_eq!(param("/api/v1/activity", "agent")["pattern"], no_nul);
    assert_eq!(param("/api/v1/audit", "principal")["pattern"], no_nul);
    for (schema, field) in [
        ("NewGrantBody", "target"),
        ("NewGrantBody", "pattern"),
        ("LiftBody", "reason"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][field]["pattern"], no_nul,
            "{schema}.{field}"
        );
    }
    // The lift takes its reason in the body; the query form is deprecated.
    assert!(doc["paths"]["/api/v1/freezes/{id}/lift"]["post"]["requestBody"].is_object());
    assert_eq!(
        doc["paths"]["/api/v1/freezes/{id}"]["delete"]["deprecated"],
        true
    );
}

/// PostgreSQL text cannot hold NUL, so a NUL anywhere in a request would fail deep in the store as
/// a 500 there: every body, query and path with one is a 400 on every backend, before any store.
#[tokio::test]
async fn a_nul_anywhere_in_a_request_is_a_400() {
    let server = Server::start().await;
    let token = admin(&server);
    let cases: [(Method, &str, Option<Value>); 6] = [
        (
            Method::POST,
            "/api/v1/freezes",
            Some(json!({ "kind": "principal", "value": "x", "reason": "a\u{0}b" })),
        ),
        (
            Method::POST,
            "/api/v1/freezes",
            Some(json!({ "kind": "principal", "value": "x\u{0}", "reason": "r" })),
        ),
        (
            Method::POST,
            "/api/v1/grants",
            Some(
                json!({ "target": "h", "pattern": "^ls\u{0}$", "reason": "r", "ttl_seconds": 600 }),
            ),
        ),
        (Method::GET, "/api/v1/approvals?status=pen%00ding", None),
        (Method::GET, "/api/v1/audit?principal=a%00", None),
        (Method::GET, "/api/v1/approvals/apr-%00", None),
    ];
    for (method, path, body) in cases {
        let (status, answer) = call(&server, method.clone(), path, &token, body.as_ref()).await;
        assert_eq!(status, 400, "{method} {path}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains("NUL"),
            "{method} {path}: {answer}"
        );
    }
    // An escaped backslash followed by `u0000` is text, not a NUL.
    let (status, answer) = call(
        &server,
        Method::POST,
        "/api/v1/freezes",
        &token,
        Some(&json!({ "kind": "principal", "value": "nul-text", "reason": "a\\u0000b" })),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["reason"], "a\\u0000b");
}
