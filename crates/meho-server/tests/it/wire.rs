//! The audit record's wire shapes, pinned: `GET /api/v1/audit`, `GET /api/v1/audit/{id}`, the
//! records of `GET /api/v1/calls/{id}`, the feed's SSE events, and what the OpenAPI document says
//! about them. Clients parse these; a field renamed, dropped, added or no longer `null` when
//! absent breaks them.

use meho_audit::{Appended, NewRecord, RecordKind};
use serde_json::{Map, Value, json};

use crate::support::{Server, SseReader};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

async fn get(server: &Server, token: &str, path: &str) -> Value {
    let response = server
        .http
        .get(format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// Two records of one call: an intent with every optional field set, and an outcome with none
/// but the call id.
async fn two_records(server: &Server) -> Vec<(NewRecord, Appended)> {
    let intent = NewRecord {
        target: Some("web-1".into()),
        action: Some("ssh_execute".into()),
        outcome: Some("allowed".into()),
        session_id: Some("s-wire".into()),
        approval_id: Some("apr-wire".into()),
        call_id: Some("c-wire".into()),
        body: json!({ "arguments": { "command": "uptime" }, "n": 1.5, "list": [1, null, "ü"] }),
        ..NewRecord::new("a", RecordKind::Intent, "agent-wire")
    };
    let outcome = NewRecord {
        call_id: Some("c-wire".into()),
        body: json!({}),
        ..NewRecord::new("a", RecordKind::Outcome, "agent-wire")
    };
    let mut out = Vec::new();
    for record in [intent, outcome] {
        let appended = server.audit.append(record.clone()).await.unwrap();
        out.push((record, appended));
    }
    out
}

/// The record as the REST API shows it.
fn rest_record(record: &NewRecord, appended: &Appended, prev_hash: &str) -> Value {
    json!({
        "id": appended.id, "seq": appended.seq, "tenant": record.tenant, "ts": appended.ts,
        "time": meho_server::hitl::rfc3339(appended.ts), "kind": record.kind.as_str(),
        "principal": record.principal, "target": record.target, "action": record.action,
        "outcome": record.outcome, "session_id": record.session_id,
        "approval_id": record.approval_id, "call_id": record.call_id, "body": record.body,
        "prev_hash": prev_hash, "hash": appended.hash,
    })
}

/// The record as a feed event shows it: no chain hashes, no `time`.
fn feed_record(record: &NewRecord, appended: &Appended) -> Value {
    json!({
        "tenant": record.tenant, "seq": appended.seq, "id": appended.id, "ts": appended.ts,
        "kind": record.kind.as_str(), "principal": record.principal, "target": record.target,
        "action": record.action, "outcome": record.outcome, "session_id": record.session_id,
        "approval_id": record.approval_id, "call_id": record.call_id, "body": record.body,
    })
}

#[tokio::test]
async fn rest_and_feed_records_keep_their_shape() {
    let server = Server::start().await;
    let token = server.token_with_role("boss", "a", "tenant_admin");
    let written = two_records(&server).await;
    let prev = |i: usize| {
        if i == 0 {
            GENESIS.to_owned()
        } else {
            written[i - 1].1.hash.clone()
        }
    };
    let expected: Vec<Value> = written
        .iter()
        .enumerate()
        .map(|(i, (r, a))| rest_record(r, a, &prev(i)))
        .collect();

    // The search, newest first, and one record.
    let page = get(&server, &token, "/api/v1/audit?call_id=c-wire").await;
    assert_eq!(
        page,
        json!({ "records": [expected[1], expected[0]], "next_before": null })
    );
    for (i, (_, appended)) in written.iter().enumerate() {
        let one = get(&server, &token, &format!("/api/v1/audit/{}", appended.id)).await;
        assert_eq!(one, expected[i]);
    }

    // A call's records: the same object plus `linked_by`.
    let detail = get(&server, &token, "/api/v1/calls/apr-wire").await;
    let records = detail["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{detail}");
    for (record, expected) in records.iter().zip(&expected) {
        let mut expected = expected.clone();
        expected["linked_by"] = record["linked_by"].clone();
        assert!(record["linked_by"].is_string(), "{record}");
        assert_eq!(record, &expected);
    }

    // The feed: every event's data is the record without `time`, `prev_hash` and `hash`.
    let response = server.feed(Some(&token), "?after=0", None).await;
    assert_eq!(response.status(), 200);
    let mut events = SseReader::new(response);
    for (record, appended) in &written {
        let event = events.next().await.unwrap();
        assert_eq!(event.id.as_deref(), Some(appended.seq.to_string().as_str()));
        assert_eq!(event.event.as_deref(), Some(record.kind.as_str()));
        assert_eq!(event.json(), feed_record(record, appended));
    }
}

/// `schema` with every `$ref` and `allOf` resolved into one object's properties and required
/// names: what a client generator ends up with, whichever way the document spells it.
fn resolved(
    document: &Value,
    schema: &Value,
    properties: &mut Map<String, Value>,
    required: &mut Vec<String>,
) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return resolved(
            document,
            &document["components"]["schemas"][name],
            properties,
            required,
        );
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        resolved(document, part, properties, required);
    }
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        properties.insert(name.clone(), property.clone());
    }
    for name in schema["required"].as_array().into_iter().flatten() {
        required.push(name.as_str().unwrap().to_owned());
    }
}

fn flat(document: &Value, name: &str) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    resolved(
        document,
        &json!({ "$ref": format!("#/components/schemas/{name}") }),
        &mut properties,
        &mut required,
    );
    required.sort();
    json!({ "properties": properties, "required": required })
}

/// Captured from the document before records and filters were defined once in `meho-audit`
/// (`wire/*.json`): the properties (names, types, descriptions) and required names of a record,
/// resolved through `$ref` and `allOf`, and the parameters of the audit search, in order.
#[test]
fn the_openapi_document_describes_records_and_their_filter_as_before() {
    let document = serde_json::to_value(meho_server::api::openapi()).unwrap();
    let pinned = |text: &str| serde_json::from_str::<Value>(text).unwrap();
    assert_eq!(
        flat(&document, "RecordView"),
        pinned(include_str!("wire/record_view.json"))
    );
    assert_eq!(
        flat(&document, "LinkedRecord"),
        pinned(include_str!("wire/linked_record.json"))
    );
    assert_eq!(
        document["paths"]["/api/v1/audit"]["get"]["parameters"],
        pinned(include_str!("wire/audit_parameters.json"))
    );
}
