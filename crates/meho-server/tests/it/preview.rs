//! A held call's preview (what it would change, as its connector computed it) on the REST API:
//! the approval view carries it as approvers are shown it (through the audit redactor), the
//! audit log only its hash, and the OpenAPI document describes it.

use serde_json::{Value, json};

use crate::support::{Server, file_diff};

/// A secret inside the file the held call would write: redacted from the preview.
const CANARY: &str = "CANARY-41d7-preview";

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

#[tokio::test]
async fn the_approval_view_carries_the_preview_redacted_and_the_log_only_its_hash() {
    let server = Server::start().await;
    let agent = server.token_with_role("agent", "a", "operator");
    let boss = server.token_with_role("boss", "a", "tenant_admin");
    let mut mcp = server.connect(&agent).await;
    // A control character and a bidi override too: the API is exact, screens escape.
    let content = format!("replicas: 3\npassword={CANARY}\nmode: x\u{1b}[2K\u{202e}y\n");
    let held = mcp
        .call_tool(
            "ssh_put_file",
            json!({ "server": "x", "path": "/hold/app.conf", "content": content }),
        )
        .await;
    let pending = &held["result"]["structuredContent"];
    assert_eq!(pending["status"], "pending_approval", "{held}");
    let id = pending["approval_id"].as_str().unwrap().to_owned();
    assert!(!held.to_string().contains(CANARY), "{held}");

    let shown = file_diff(
        "/hold/app.conf",
        "replicas: 3\npassword=[REDACTED]\nmode: x\u{1b}[2K\u{202e}y\n",
    );
    let approval = get(&server, &boss, &format!("/api/v1/approvals/{id}")).await;
    assert_eq!(approval["preview"], shown.as_str(), "{approval:#}");
    let listed = get(&server, &boss, "/api/v1/approvals?status=pending").await;
    let row = listed["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{listed:#}"))
        .clone();
    assert_eq!(row["preview"], shown.as_str());

    // A held call without one says `null`.
    let command = mcp
        .call_tool(
            "ssh_execute",
            json!({ "server": "x", "command": "hold on" }),
        )
        .await;
    let plain = command["result"]["structuredContent"]["approval_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{command}"))
        .to_owned();
    let plain = get(&server, &boss, &format!("/api/v1/approvals/{plain}")).await;
    assert!(plain["preview"].is_null(), "{plain:#}");

    // The decision's answer is the same view.
    let response = server
        .http
        .post(format!("{}/api/v1/approvals/{id}/approve", server.base))
        .bearer_auth(&boss)
        .json(&json!({ "reason": "the diff is what we want" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let approved: Value = response.json().await.unwrap();
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["preview"], shown.as_str());

    // The audit log: the held call's refusal and the request carry the hash of exactly what
    // the API shows; no record holds the text or the secret.
    let page = get(&server, &boss, &format!("/api/v1/audit?approval_id={id}")).await;
    let request = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "request")
        .unwrap_or_else(|| panic!("{page:#}"))
        .clone();
    let hash = meho_gateway::govern::preview_sha256(&shown);
    assert_eq!(request["body"]["preview_sha256"], hash.as_str());
    let call_id = request["call_id"].as_str().unwrap();
    let call = get(&server, &boss, &format!("/api/v1/audit?call_id={call_id}")).await;
    let denial = call["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "denial")
        .unwrap_or_else(|| panic!("{call:#}"))
        .clone();
    assert_eq!(denial["body"]["preview_sha256"], hash.as_str());
    let everything = get(&server, &boss, "/api/v1/audit?limit=1000").await;
    let text = everything.to_string();
    assert!(!text.contains(CANARY), "the canary reached the audit log");
    // (The file's content is in the call's arguments; the diff's own lines are not.)
    assert!(
        !text.contains("@@ -0,0 +1,3 @@"),
        "the preview's text is in the log"
    );
}

#[test]
fn the_openapi_document_describes_the_preview_as_optional_text() {
    let document = serde_json::to_value(meho_server::api::openapi()).unwrap();
    let approval = &document["components"]["schemas"]["ApprovalView"];
    let preview = &approval["properties"]["preview"];
    assert_eq!(preview["type"], json!(["string", "null"]), "{preview:#}");
    assert!(
        preview["description"]
            .as_str()
            .is_some_and(|d| d.contains("call_hash")),
        "{preview:#}"
    );
    let required = approval["required"].as_array().unwrap();
    assert!(!required.contains(&json!("preview")), "{required:?}");
}
