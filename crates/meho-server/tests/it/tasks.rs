//! Held calls over MCP: `approval_status` and, for clients that declare the tasks extension
//! (SEP-2663), a task that `tasks/get` completes once a human approves.

use serde_json::{Value, json};

use crate::support::Server;

const TASKS: &str = "io.modelcontextprotocol/tasks";

async fn approve(server: &Server, token: &str, id: &str, verb: &str) -> (u16, Value) {
    let response = server
        .http
        .post(format!("{}/api/v1/approvals/{id}/{verb}", server.base))
        .bearer_auth(token)
        .json(&json!({ "reason": "tested" }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_held_call_is_pending_then_collected_once_with_approval_status() {
    let server = Server::start().await;
    let agent = server.token_with_role("agent", "a", "operator");
    let boss = server.token_with_role("boss", "a", "tenant_admin");
    let mut mcp = server.connect(&agent).await;
    let held = mcp
        .call_tool("ssh_execute", json!({ "server": "x", "command": "hold 1" }))
        .await;
    let pending = &held["result"]["structuredContent"];
    assert_eq!(pending["status"], "pending_approval", "{held}");
    assert_eq!(held["result"]["isError"], false, "{held}");
    let id = pending["approval_id"].as_str().unwrap().to_owned();
    // The connector saw one call, without an approval: nothing ran.
    assert_eq!(server.connector.count_of("ssh_execute"), 1);

    let answer = mcp
        .call_tool("approval_status", json!({ "approval_id": id }))
        .await;
    assert_eq!(
        answer["result"]["structuredContent"]["status"],
        "pending_approval"
    );
    let (status, _) = approve(&server, &boss, &id, "approve").await;
    assert_eq!(status, 200);
    let done = mcp
        .call_tool(
            "approval_status",
            json!({ "approval_id": id, "wait_seconds": 5 }),
        )
        .await;
    let result = &done["result"]["structuredContent"];
    assert_eq!(result["status"], "executed", "{done}");
    assert_eq!(result["result"]["stdout"], "ran hold 1\n");
    let replayed = server.connector.calls().pop().unwrap();
    assert_eq!(replayed.caller.principal, "agent", "runs as the requester");
    assert_eq!(replayed.caller.approval_id.as_deref(), Some(id.as_str()));
    let bad = mcp
        .call_tool(
            "approval_status",
            json!({ "approval_id": id, "wait_seconds": 61 }),
        )
        .await;
    assert_eq!(bad["result"]["isError"], true, "{bad}");
}

#[tokio::test]
async fn a_tasks_client_gets_a_task_that_completes_after_approval() {
    let server = Server::start().await;
    let agent = server.token_with_role("agent", "a", "operator");
    let boss = server.token_with_role("boss", "a", "tenant_admin");
    let mut mcp = server
        .connect_with(&agent, json!({ "extensions": { TASKS: {} } }))
        .await;
    let created = mcp
        .call_tool("ssh_execute", json!({ "server": "x", "command": "hold 2" }))
        .await;
    let task = &created["result"];
    assert_eq!(task["resultType"], "task", "{created}");
    assert_eq!(task["status"], "working", "{created}");
    let id = task["taskId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("apr-"));
    assert!(task["pollIntervalMs"].as_u64().unwrap() > 0);

    let polled = mcp.request("tasks/get", json!({ "taskId": id })).await;
    assert_eq!(polled["result"]["status"], "working", "{polled}");
    // Another principal of the tenant sees the task, but cannot run it.
    let other = server.token_with_role("other", "a", "operator");
    let mut theirs = server
        .connect_with(&other, json!({ "extensions": { TASKS: {} } }))
        .await;
    let (status, _) = approve(&server, &boss, &id, "approve").await;
    assert_eq!(status, 200);
    let seen = theirs.request("tasks/get", json!({ "taskId": id })).await;
    assert_eq!(seen["result"]["status"], "working", "{seen}");

    let completed = mcp.request("tasks/get", json!({ "taskId": id })).await;
    assert_eq!(completed["result"]["status"], "completed", "{completed}");
    let result = &completed["result"]["result"];
    assert_eq!(result["isError"], false, "{completed}");
    assert_eq!(
        result["structuredContent"]["result"]["stdout"],
        "ran hold 2\n"
    );
    // Asking again gives the same result; the call ran once.
    let runs = server.connector.count_of("ssh_execute");
    let again = mcp.request("tasks/get", json!({ "taskId": id })).await;
    assert_eq!(again["result"]["result"], *result);
    assert_eq!(server.connector.count_of("ssh_execute"), runs);

    // A denied call's task completes with the isError result and the reason.
    let created = mcp
        .call_tool("ssh_execute", json!({ "server": "x", "command": "hold 3" }))
        .await;
    let id = created["result"]["taskId"].as_str().unwrap().to_owned();
    let (status, _) = approve(&server, &boss, &id, "deny").await;
    assert_eq!(status, 200);
    let denied = mcp.request("tasks/get", json!({ "taskId": id })).await;
    assert_eq!(denied["result"]["status"], "completed", "{denied}");
    assert_eq!(denied["result"]["result"]["isError"], true, "{denied}");
    assert_eq!(
        denied["result"]["result"]["structuredContent"]["error"],
        "approval_denied"
    );
    let unknown = mcp
        .request("tasks/get", json!({ "taskId": "apr-nope" }))
        .await;
    assert!(unknown.get("error").is_some(), "{unknown}");
}

#[tokio::test]
async fn approve_and_learn_is_refused_before_deciding_when_the_call_has_no_command() {
    let server = Server::start().await;
    let agent = server.token_with_role("agent", "a", "operator");
    let boss = server.token_with_role("boss", "a", "tenant_admin");
    let mut mcp = server.connect(&agent).await;
    let held = mcp
        .call_tool(
            "ssh_put_file",
            json!({ "server": "x", "path": "/hold/app.conf", "content": "x" }),
        )
        .await;
    let id = held["result"]["structuredContent"]["approval_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{held}"))
        .to_owned();
    let response = server
        .http
        .post(format!("{}/api/v1/approvals/{id}/approve", server.base))
        .bearer_auth(&boss)
        .json(&json!({ "reason": "ok", "learn_ttl_seconds": 3600 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "bad_request", "{body}");
    // Nothing was decided: it can still be approved (without learning).
    let (status, approved) = approve(&server, &boss, &id, "approve").await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
}
