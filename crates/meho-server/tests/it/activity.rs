//! The activity view (`/api/v1/activity`, `/summary`, `/api/v1/calls/{id}`): one row per call,
//! folded from the records a real call leaves.
//!
//! The broker's and the signer's records (`meho-ssh`, which this crate does not link) are written
//! here with the shapes they have (`NewRecord::intent`/`outcome`, the signer's `sign` records, the
//! broker's denials); holds, approvals and collections go through the real `Governance` over MCP
//! and the REST API, so the approval records are the ones it writes.

use std::sync::atomic::{AtomicU64, Ordering};

use meho_audit::{CallOutcome, CallRef, NewRecord, RecordKind};
use meho_core::{Decision, Effect, ReasonCode, Tier};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Mcp, Server};

/// One API answer: status and JSON body (checked to be `{error, message}` on errors).
async fn call(server: &Server, method: Method, path: &str, token: &str) -> (u16, Value) {
    let response = server
        .http
        .request(method.clone(), format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"));
    if status >= 400 {
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{method} {path}: {status} is not {{error, message}}: {body}"
        );
    }
    (status, body)
}

async fn get(server: &Server, path: &str, token: &str) -> Value {
    let (status, body) = call(server, Method::GET, path, token).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

async fn post(server: &Server, path: &str, token: &str, body: &Value) -> Value {
    let response = server
        .http
        .post(format!("{}{path}", server.base))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap();
    assert!(
        (200..300).contains(&status),
        "POST {path}: {status} {answer}"
    );
    answer
}

/// The calls of one activity page.
fn calls(page: &Value) -> Vec<Value> {
    page["calls"]
        .as_array()
        .unwrap_or_else(|| panic!("no calls: {page}"))
        .clone()
}

/// The calls whose summary is `summary`.
fn rows_of<'a>(calls: &'a [Value], summary: &str) -> Vec<&'a Value> {
    calls.iter().filter(|c| c["summary"] == summary).collect()
}

fn decision(allowed: bool, code: ReasonCode, rule: &str, tier: Tier) -> Decision {
    let mut decision = Decision::refused(code, rule, tier);
    decision.effect = match (allowed, code) {
        (false, _) => Effect::Deny,
        (true, ReasonCode::NeedsApproval) => Effect::RequireApproval,
        (true, _) => Effect::Allow,
    };
    decision
}

fn arguments(target: &str, command: &str) -> Value {
    json!({
        "server": target, "command": command, "ttl_seconds": null, "sudo": false,
        "sudo_user": null, "pty": false, "dry_run": false,
    })
}

/// Certificate serials, distinct across the tests of this binary.
static SERIALS: AtomicU64 = AtomicU64::new(1);

/// Writes what the broker and the signer write for calls of one agent.
struct Agent<'a> {
    server: &'a Server,
    tenant: &'a str,
    name: &'a str,
}

impl Agent<'_> {
    async fn append(&self, record: NewRecord) -> i64 {
        self.server.audit.append(record).await.unwrap().seq
    }

    /// The signer's record of a decision on `command` (a credential when `serial` is given).
    async fn sign(
        &self,
        target: &str,
        command: &str,
        decision: &Decision,
        serial: Option<u64>,
        approval: Option<&str>,
    ) {
        let (kind, outcome, certificate) = match serial {
            Some(serial) => (
                RecordKind::Credential,
                "issued".to_owned(),
                json!({ "serial": serial.to_string(), "key_id": format!("meho:agent={} serial={serial}", self.name) }),
            ),
            None => (
                RecordKind::Denial,
                decision.reason_code.as_str().to_owned(),
                json!({}),
            ),
        };
        self.append(NewRecord {
            target: Some(target.to_owned()),
            action: Some("sign".to_owned()),
            outcome: Some(outcome),
            approval_id: approval.map(str::to_owned),
            body: json!({
                "intent": { "agent": self.name, "command": command, "tenant": self.tenant },
                "decision": decision,
                "certificate": certificate,
            }),
            ..NewRecord::new(self.tenant, kind, self.name)
        })
        .await;
    }

    /// A call that policy allowed and that ran: credential, intent, outcome. Returns its call id.
    async fn ran(
        &self,
        target: &str,
        command: &str,
        exit: i64,
        tier: Tier,
        approval: Option<&str>,
    ) -> String {
        let serial = 4_000_000 + SERIALS.fetch_add(1, Ordering::Relaxed);
        // An approved call is decided by the approval rule, redeemed.
        let rule = match approval {
            Some(_) => "require_approval:^hold".to_owned(),
            None => format!("allow:^{command}$"),
        };
        let mut decided = decision(true, ReasonCode::Allowed, &rule, tier);
        decided.approval_id = approval.map(str::to_owned);
        self.sign(target, command, &decided, Some(serial), approval)
            .await;
        let call_id = uuid_like(serial);
        let call = CallRef {
            tenant: self.tenant,
            principal: self.name,
            target,
            action: "ssh_execute",
            call_id: &call_id,
            session_id: None,
            approval_id: approval,
        };
        self.append(NewRecord::intent(
            &call,
            arguments(target, command),
            &decided,
        ))
        .await;
        self.append(NewRecord::outcome(
            &call,
            &CallOutcome {
                exit_status: Some(exit),
                duration_ms: 188,
                credential_serial: Some(serial.to_string()),
                output_bytes: 6,
                output_sha256: Some("58".repeat(32)),
                ..CallOutcome::default()
            },
        ))
        .await;
        call_id
    }

    /// A call policy refused: the signer's denial, then the broker's. Returns the broker's
    /// record id.
    async fn refused(&self, target: &str, command: &str) -> String {
        let decided = decision(
            false,
            ReasonCode::AllowlistNoMatch,
            "allowlist:no-match",
            Tier::Write,
        );
        self.sign(target, command, &decided, None, None).await;
        self.broker_denial(target, command, "denied", &decided)
            .await
    }

    /// The broker's denial record.
    async fn broker_denial(
        &self,
        target: &str,
        command: &str,
        code: &str,
        decided: &Decision,
    ) -> String {
        self.server
            .audit
            .append(NewRecord {
                target: Some(target.to_owned()),
                action: Some("ssh_execute".to_owned()),
                outcome: Some(code.to_owned()),
                body: json!({
                    "arguments": arguments(target, command),
                    "decision": decided,
                    "error": format!("denied by policy: {} (rule `{}`)", decided.reason_code.as_str(), decided.rule),
                }),
                ..NewRecord::new(self.tenant, RecordKind::Denial, self.name)
            })
            .await
            .unwrap()
            .id
    }

    /// The signer's record of a held call, before the pipeline's own refusal and approval
    /// request (the scripted connector has no signer).
    async fn held(&self, target: &str, command: &str) {
        let decided = decision(
            true,
            ReasonCode::NeedsApproval,
            "require_approval:^hold",
            Tier::Write,
        );
        self.sign(target, command, &decided, None, None).await;
    }
}

/// A UUID-shaped call id, distinct per serial.
fn uuid_like(n: u64) -> String {
    format!("0190c0de-0000-7000-8000-{n:012}")
}

/// Holds `command` on `x` over MCP (the broker's refusal first, as it comes): the approval id.
async fn hold(agent: &Agent<'_>, mcp: &mut Mcp<'_>, command: &str) -> String {
    agent.held("x", command).await;
    let held = mcp
        .call_tool("ssh_execute", json!({ "server": "x", "command": command }))
        .await;
    let pending = &held["result"]["structuredContent"];
    assert_eq!(pending["status"], "pending_approval", "{held}");
    pending["approval_id"].as_str().unwrap().to_owned()
}

/// A decision on `id` through the REST API.
async fn decide(server: &Server, token: &str, id: &str, verb: &str, reason: &str) {
    post(
        server,
        &format!("/api/v1/approvals/{id}/{verb}"),
        token,
        &json!({ "reason": reason }),
    )
    .await;
}

/// Collects an approved call over MCP (the signer's credential first, as the signer writes it
/// while the pipeline authorizes the run); returns the run's call id.
async fn collect(agent: &Agent<'_>, mcp: &mut Mcp<'_>, id: &str, command: &str) -> String {
    let serial = 4_000_000 + SERIALS.fetch_add(1, Ordering::Relaxed);
    let mut decided = decision(
        true,
        ReasonCode::Allowed,
        "require_approval:^hold",
        Tier::Write,
    );
    decided.approval_id = Some(id.to_owned());
    agent
        .sign("x", command, &decided, Some(serial), Some(id))
        .await;
    let done = mcp
        .call_tool(
            "approval_status",
            json!({ "approval_id": id, "wait_seconds": 5 }),
        )
        .await;
    assert_eq!(
        done["result"]["structuredContent"]["status"], "executed",
        "{done}"
    );
    let runs = agent
        .server
        .audit
        .query(
            &meho_audit::Filter {
                approval_id: Some(id.to_owned()),
                kind: Some("intent".to_owned()),
                ..meho_audit::Filter::default()
            },
            meho_audit::Page::Newest {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "one run of the approved call");
    runs[0].call_id.clone().unwrap()
}

/// The fixture most tests share, in tenant `a` by `agent-1`: an allowed call that ran
/// (`uptime`), one that exited 1 (`false`), a refusal (`rm -rf /`), a held call approved and run
/// (`hold restart`), one still pending (`hold pending`), one a human denied (`hold no`), and a
/// listing (an outcome without an intent).
struct Story {
    server: Server,
    admin: String,
    agent_token: String,
    uptime: String,
    refused: String,
    approved: String,
    approved_run: String,
    pending: String,
    rejected: String,
}

async fn story() -> Story {
    let server = Server::start().await;
    let admin = server.token_with_role("boss", "a", "tenant_admin");
    let agent_token = server.token_with_role("agent-1", "a", "operator");
    let agent = Agent {
        server: &server,
        tenant: "a",
        name: "agent-1",
    };
    let uptime = agent.ran("x", "uptime", 0, Tier::Read, None).await;
    agent.ran("x", "false", 1, Tier::Write, None).await;
    let refused = agent.refused("x", "rm -rf /").await;
    let mut mcp = server.connect(&agent_token).await;
    let approved = hold(&agent, &mut mcp, "hold restart").await;
    let pending = hold(&agent, &mut mcp, "hold pending").await;
    let rejected = hold(&agent, &mut mcp, "hold no").await;
    decide(&server, &admin, &approved, "approve", "change CHG-7").await;
    decide(&server, &admin, &rejected, "deny", "not today").await;
    let approved_run = collect(&agent, &mut mcp, &approved, "hold restart").await;
    agent
        .append(NewRecord {
            action: Some("list_targets".to_owned()),
            outcome: Some("ok".to_owned()),
            body: json!({ "count": 1, "targets": ["x"] }),
            ..NewRecord::new("a", RecordKind::Outcome, "agent-1")
        })
        .await;
    drop(mcp);
    Story {
        server,
        admin,
        agent_token,
        uptime,
        refused,
        approved,
        approved_run,
        pending,
        rejected,
    }
}

#[tokio::test]
async fn one_row_per_call_for_allowed_denied_and_held_then_approved_and_run_calls() {
    let s = story().await;
    let page = get(&s.server, "/api/v1/activity", &s.admin).await;
    let calls = calls(&page);
    assert_eq!(page["next_before"], Value::Null, "one page holds it all");
    // Seven calls, each once, newest first (the listing was last).
    let summaries: Vec<&str> = calls
        .iter()
        .map(|c| c["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        [
            "list targets",
            "hold no",
            "hold pending",
            "hold restart",
            "rm -rf /",
            "false",
            "uptime"
        ],
        "{page:#}"
    );

    let uptime = rows_of(&calls, "uptime")[0];
    assert_eq!(uptime["id"], s.uptime.as_str());
    assert_eq!(uptime["call_id"], s.uptime.as_str());
    assert_eq!(uptime["principal"], "agent-1");
    assert_eq!(uptime["target"], "x");
    assert_eq!(uptime["tool"], "ssh_execute");
    assert_eq!(uptime["command"], "uptime");
    assert_eq!(uptime["rule"], "allow:^uptime$");
    assert_eq!(uptime["tier"], "read");
    assert_eq!(uptime["decision"], "allowed");
    assert_eq!(uptime["outcome"], "ok");
    assert_eq!(uptime["exit_status"], 0);
    assert_eq!(uptime["duration_ms"], 188);
    assert_eq!(uptime["output_bytes"], 6);
    assert!(
        uptime["serial"]
            .as_str()
            .is_some_and(|s| s.starts_with('4')),
        "{uptime}"
    );
    assert_eq!(uptime["approval"], Value::Null);
    // The timeline folds the broker's intent and outcome; the signer's credential is detail.
    assert_eq!(uptime["records"], 2);
    assert!(uptime["last_seq"].as_i64() > uptime["first_seq"].as_i64());

    let failed = rows_of(&calls, "false")[0];
    assert_eq!(failed["decision"], "allowed");
    assert_eq!(failed["outcome"], "nonzero_exit");
    assert_eq!(failed["exit_status"], 1);

    let refused = rows_of(&calls, "rm -rf /")[0];
    assert_eq!(refused["id"], s.refused.as_str());
    assert_eq!(refused["decision"], "denied");
    assert_eq!(refused["reason_code"], "allowlist_no_match");
    assert_eq!(refused["rule"], "allowlist:no-match");
    assert_eq!(refused["tier"], "write");
    assert_eq!(refused["outcome"], Value::Null, "nothing ran");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("allowlist_no_match")
    );

    // Held, approved, run: the broker's refusal, the request, the decision, the run: one row.
    let approved = rows_of(&calls, "hold restart");
    assert_eq!(approved.len(), 1, "{calls:#?}");
    let approved = approved[0];
    assert_eq!(approved["id"], s.approved.as_str());
    assert_eq!(approved["approval_id"], s.approved.as_str());
    assert_eq!(approved["call_id"], s.approved_run.as_str());
    assert_eq!(
        approved["principal"], "agent-1",
        "the requester, not the approver"
    );
    assert_eq!(approved["decision"], "approved");
    assert_eq!(approved["outcome"], "ok");
    assert_eq!(approved["rule"], "require_approval:^hold");
    assert_eq!(approved["error"], Value::Null);
    let step = &approved["approval"];
    assert_eq!(step["status"], "approved");
    assert_eq!(step["requested_by"], "agent-1");
    assert_eq!(step["decided_by"], "boss");
    assert_eq!(step["reason"], "change CHG-7");
    assert!(step["decided_at"].is_string() && step["requested_at"].is_string());
    // held denial + request + approve + credential + intent + outcome
    assert!(approved["records"].as_u64().unwrap() >= 5, "{approved}");

    let pending = rows_of(&calls, "hold pending")[0];
    assert_eq!(pending["id"], s.pending.as_str());
    assert_eq!(pending["decision"], "held");
    assert_eq!(pending["outcome"], Value::Null);
    assert_eq!(pending["approval"]["status"], "pending");
    assert_eq!(pending["rule"], "require_approval:^hold");
    assert_eq!(pending["reason_code"], "needs_approval");
    assert_eq!(pending["error"], Value::Null, "waiting is not an error");

    let rejected = rows_of(&calls, "hold no")[0];
    assert_eq!(rejected["id"], s.rejected.as_str());
    assert_eq!(rejected["decision"], "rejected");
    assert_eq!(rejected["approval"]["decided_by"], "boss");
    assert_eq!(rejected["approval"]["reason"], "not today");

    let listing = rows_of(&calls, "list targets")[0];
    assert_eq!(listing["decision"], "allowed");
    assert_eq!(listing["outcome"], "ok");
    assert_eq!(listing["tool"], "list_targets");

    // The agent reads the same, and filters compose with it.
    let theirs = get(&s.server, "/api/v1/activity", &s.agent_token).await;
    assert_eq!(theirs["calls"].as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn the_call_detail_links_every_record_in_chain_order() {
    let s = story().await;
    let detail = get(&s.server, &format!("/api/v1/calls/{}", s.uptime), &s.admin).await;
    assert_eq!(detail["call"]["id"], s.uptime.as_str());
    let records = detail["records"].as_array().unwrap();
    let shape: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["linked_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("credential", "credential_serial"),
            ("intent", "call_id"),
            ("outcome", "call_id")
        ]
    );
    assert!(
        records
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()),
        "chain order"
    );
    assert_eq!(
        records[0]["body"]["certificate"]["serial"], detail["call"]["serial"],
        "the credential the outcome names"
    );
    assert_eq!(detail["call"]["records"], 3);

    // A refusal, by its record id: the signer's decision joins the broker's record.
    let detail = get(&s.server, &format!("/api/v1/calls/{}", s.refused), &s.admin).await;
    let kinds: Vec<(&str, &str, &str)> = detail["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["action"].as_str().unwrap(),
                r["linked_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("denial", "sign", "signer_decision"),
            ("denial", "ssh_execute", "record")
        ]
    );
    assert_eq!(detail["call"]["decision"], "denied");

    // The held, approved and run call: by its approval id, by the run's call id, by the id of
    // its first record: the same call.
    let by_approval = get(
        &s.server,
        &format!("/api/v1/calls/{}", s.approved),
        &s.admin,
    )
    .await;
    let by_run = get(
        &s.server,
        &format!("/api/v1/calls/{}", s.approved_run),
        &s.admin,
    )
    .await;
    assert_eq!(by_approval["call"]["id"], s.approved.as_str());
    assert_eq!(by_run, by_approval);
    let records = by_approval["records"].as_array().unwrap();
    let first = records[0]["id"].as_str().unwrap();
    let by_record = get(&s.server, &format!("/api/v1/calls/{first}"), &s.admin).await;
    assert_eq!(by_record, by_approval);
    let shape: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["action"].as_str().unwrap(),
                r["linked_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("denial", "sign", "signer_decision"),
            ("denial", "ssh_execute", "held_call"),
            ("approval", "request", "approval_id"),
            ("approval", "approve", "approval_id"),
            ("credential", "sign", "approval_id"),
            ("intent", "ssh_execute", "approval_id"),
            ("outcome", "ssh_execute", "approval_id"),
        ],
        "{by_approval:#}"
    );
    assert!(
        records
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64())
    );
    let decided = &records[3];
    assert_eq!(decided["principal"], "boss");
    assert_eq!(decided["body"]["reason"], "change CHG-7");

    for missing in ["apr-0000", "0190c0de-0000-7000-8000-999999999999", "nope"] {
        let (status, body) = call(
            &s.server,
            Method::GET,
            &format!("/api/v1/calls/{missing}"),
            &s.admin,
        )
        .await;
        assert_eq!(status, 404, "{missing}: {body}");
        assert_eq!(body["error"], "not_found");
    }
}

async fn get_activity(s: &Story, query: String) -> Value {
    get(&s.server, &format!("/api/v1/activity?{query}"), &s.admin).await
}

#[tokio::test]
async fn filters_narrow_by_agent_target_tier_and_decision() {
    let s = story().await;
    let other = Agent {
        server: &s.server,
        tenant: "a",
        name: "agent-2",
    };
    other.ran("y", "uptime", 0, Tier::Read, None).await;
    other.refused("y", "shutdown now").await;
    let summaries = |page: &Value| {
        calls(page)
            .iter()
            .map(|c| c["summary"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let ask = |query: &str| get_activity(&s, query.to_owned());
    assert_eq!(
        summaries(&ask("agent=agent-2").await),
        ["shutdown now", "uptime"]
    );
    assert_eq!(
        summaries(&ask("target=y").await),
        ["shutdown now", "uptime"]
    );
    assert_eq!(
        summaries(&ask("decision=denied").await),
        ["shutdown now", "rm -rf /"]
    );
    assert_eq!(summaries(&ask("decision=held").await), ["hold pending"]);
    assert_eq!(summaries(&ask("decision=approved").await), ["hold restart"]);
    assert_eq!(summaries(&ask("decision=rejected").await), ["hold no"]);
    assert_eq!(summaries(&ask("tier=read").await), ["uptime", "uptime"]);
    assert_eq!(
        summaries(&ask("agent=agent-1&tier=read&decision=allowed").await),
        ["uptime"]
    );
    // The approver is not an agent of any call: its decisions belong to the requester's calls.
    assert!(summaries(&ask("agent=boss").await).is_empty());
    // An approval filtered by agent still carries the approver's decision.
    let held = ask("agent=agent-1&decision=approved").await;
    assert_eq!(calls(&held)[0]["approval"]["decided_by"], "boss");
}

#[tokio::test]
async fn another_tenants_calls_never_appear() {
    let s = story().await;
    let theirs = Agent {
        server: &s.server,
        tenant: "b",
        name: "agent-1",
    };
    let foreign = theirs
        .ran("x", "cat /etc/b-secret", 0, Tier::Read, None)
        .await;
    let foreign_refusal = theirs.refused("x", "rm -rf /b").await;
    let b_admin = s.server.token_with_role("boss", "b", "tenant_admin");

    let mine = get(&s.server, "/api/v1/activity?limit=200", &s.admin).await;
    let text = mine.to_string();
    assert!(
        !text.contains("b-secret") && !text.contains("rm -rf /b"),
        "{mine:#}"
    );
    assert_eq!(calls(&mine).len(), 7);
    let b = get(&s.server, "/api/v1/activity", &b_admin).await;
    assert_eq!(
        calls(&b)
            .iter()
            .map(|c| c["summary"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["rm -rf /b", "cat /etc/b-secret"]
    );
    // Another tenant's call, by any id, is a 404 like a missing one.
    for (id, token) in [
        (&s.uptime, &b_admin),
        (&s.refused, &b_admin),
        (&s.approved, &b_admin),
        (&s.approved_run, &b_admin),
        (&foreign, &s.admin),
        (&foreign_refusal, &s.admin),
    ] {
        let (status, body) = call(
            &s.server,
            Method::GET,
            &format!("/api/v1/calls/{id}"),
            token,
        )
        .await;
        assert_eq!(status, 404, "{id}: {body}");
    }
    let (status, _) = call(
        &s.server,
        Method::GET,
        &format!("/api/v1/calls/{foreign}"),
        &b_admin,
    )
    .await;
    assert_eq!(status, 200, "its own tenant reads it");
    let summary = get(&s.server, "/api/v1/activity/summary", &b_admin).await;
    assert_eq!(summary["counters"]["pending_approvals"], 0);
    assert_eq!(summary["counters"]["denials_last_hour"], 1);
}

#[tokio::test]
async fn pages_visit_every_call_once_even_when_its_records_straddle_pages() {
    let server = Server::start().await;
    let admin = server.token_with_role("boss", "a", "tenant_admin");
    // 300 intents, then their outcomes newest call first: every outcome lies pages away from
    // its intent (the batches are 500 records), and calls come in many pages of 37.
    let n = 300u64;
    let mut ids = Vec::new();
    for i in 0..n {
        let call_id = uuid_like(i);
        let call = CallRef {
            tenant: "a",
            principal: "agent",
            target: "x",
            action: "ssh_execute",
            call_id: &call_id,
            session_id: None,
            approval_id: None,
        };
        let decided = decision(true, ReasonCode::Allowed, "allow:^echo ", Tier::Write);
        server
            .audit
            .append(NewRecord::intent(
                &call,
                arguments("x", &format!("echo {i}")),
                &decided,
            ))
            .await
            .unwrap();
        ids.push(call_id);
    }
    for i in (0..n).rev() {
        let call_id = uuid_like(i);
        let call = CallRef {
            tenant: "a",
            principal: "agent",
            target: "x",
            action: "ssh_execute",
            call_id: &call_id,
            session_id: None,
            approval_id: None,
        };
        let outcome = CallOutcome {
            exit_status: Some(0),
            ..CallOutcome::default()
        };
        server
            .audit
            .append(NewRecord::outcome(&call, &outcome))
            .await
            .unwrap();
    }
    let mut seen: Vec<String> = Vec::new();
    let mut before: Option<i64> = None;
    for _page in 0..100 {
        let query = match before {
            Some(b) => format!("limit=37&before={b}"),
            None => "limit=37".to_owned(),
        };
        let page = get(&server, &format!("/api/v1/activity?{query}"), &admin).await;
        let found = calls(&page);
        assert!(found.len() <= 37);
        for c in &found {
            assert_eq!(c["outcome"], "ok", "folded with its outcome: {c}");
            assert_eq!(c["records"], 2, "{c}");
            seen.push(c["call_id"].as_str().unwrap().to_owned());
        }
        match page["next_before"].as_i64() {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "every call once, newest first");
}

#[tokio::test]
async fn bad_parameters_are_400s_with_the_json_error() {
    let server = Server::start().await;
    let admin = server.token_with_role("boss", "a", "tenant_admin");
    for query in [
        "limit=0",
        "limit=201",
        "limit=2.5",
        "limit=x",
        "tier=root",
        "tier=",
        "decision=maybe",
        "decision=",
        "before=yesterday",
        "before=99999999999999999999",
        "color=red",
        "agent=%00",
    ] {
        let (status, body) = call(
            &server,
            Method::GET,
            &format!("/api/v1/activity?{query}"),
            &admin,
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "bad_request", "{query}");
    }
    let (status, _) = call(&server, Method::GET, "/api/v1/calls/a%00b", &admin).await;
    assert_eq!(status, 400);
    // In range, they are fine.
    for query in [
        "limit=1",
        "limit=200",
        "limit=50.0",
        "before=-5",
        "tier=destructive",
        "decision=expired",
        "agent=",
    ] {
        let (status, body) = call(
            &server,
            Method::GET,
            &format!("/api/v1/activity?{query}"),
            &admin,
        )
        .await;
        assert_eq!(status, 200, "{query}: {body}");
    }
    // Without a token, nothing.
    let response = server
        .http
        .get(format!("{}/api/v1/activity/summary", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn the_summary_counts_pending_approvals_denials_freezes_and_open_sessions() {
    let s = story().await;
    let server = &s.server;
    let agent = Agent {
        server,
        tenant: "a",
        name: "agent-1",
    };
    // Two sessions opened, one closed; an open that failed does not count.
    for (session, outcome) in [("s-1", "ok"), ("s-2", "ok"), ("s-3", "error")] {
        let call_id = format!("open-{session}");
        let call = CallRef {
            tenant: "a",
            principal: "agent-1",
            target: "x",
            action: "ssh_session_open",
            call_id: &call_id,
            session_id: Some(session),
            approval_id: None,
        };
        let result = CallOutcome {
            error: (outcome == "error").then(|| "connect failed".to_owned()),
            ..CallOutcome::default()
        };
        agent.append(NewRecord::outcome(&call, &result)).await;
    }
    let call = CallRef {
        tenant: "a",
        principal: "agent-1",
        target: "x",
        action: "ssh_session_close",
        call_id: "close-s-1",
        session_id: Some("s-1"),
        approval_id: None,
    };
    agent
        .append(NewRecord::outcome(&call, &CallOutcome::default()))
        .await;
    // Two freezes, one lifted.
    let mut freezes = Vec::new();
    for value in ["agent-9", "agent-8"] {
        let frozen = post(
            server,
            "/api/v1/freezes",
            &s.admin,
            &json!({ "kind": "principal", "value": value, "reason": "tested" }),
        )
        .await;
        freezes.push(frozen["id"].as_str().unwrap().to_owned());
    }
    post(
        server,
        &format!("/api/v1/freezes/{}/lift", freezes[0]),
        &s.admin,
        &json!({}),
    )
    .await;

    let summary = get(server, "/api/v1/activity/summary", &s.admin).await;
    let counters = &summary["counters"];
    assert_eq!(counters["pending_approvals"], 1, "{summary:#}");
    // The refusal and the human's denial.
    assert_eq!(counters["denials_last_hour"], 2, "{summary:#}");
    assert_eq!(counters["active_freezes"], 1);
    assert_eq!(counters["sessions_open"], 1);
    assert_eq!(summary["truncated"], false);

    let buckets = summary["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 60);
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0]["start"].as_str() < w[1]["start"].as_str()),
        "oldest first"
    );
    let sum = |pointer: &str| -> u64 {
        buckets
            .iter()
            .map(|b| b.pointer(pointer).and_then(Value::as_u64).unwrap())
            .sum()
    };
    // The story's seven calls, three session opens and one close.
    assert_eq!(sum("/total"), 11, "{summary:#}");
    assert_eq!(sum("/by_decision/allowed"), 7);
    assert_eq!(sum("/by_decision/denied"), 1);
    assert_eq!(sum("/by_decision/held"), 1);
    assert_eq!(sum("/by_decision/approved"), 1);
    assert_eq!(sum("/by_decision/rejected"), 1);
    assert_eq!(sum("/by_tier/read"), 1);
    assert_eq!(sum("/by_tier/write"), 5);
    assert_eq!(sum("/by_tier/unknown"), 5);
    for bucket in buckets {
        let decisions: u64 = bucket["by_decision"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        let tiers: u64 = bucket["by_tier"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(decisions, bucket["total"].as_u64().unwrap());
        assert_eq!(tiers, decisions);
    }
}

#[tokio::test]
async fn an_announcement_and_a_frozen_call_are_rows_of_their_own() {
    let server = Server::start().await;
    let admin = server.token_with_role("boss", "a", "tenant_admin");
    let agent_token = server.token_with_role("agent-1", "a", "operator");
    let mut mcp = server.connect(&agent_token).await;
    let announced = mcp
        .call_tool(
            "announce",
            json!({ "activity": "rotating nginx logs", "targets": ["x"], "planned_tier": "destructive", "ttl_seconds": 600 }),
        )
        .await;
    assert_eq!(announced["result"]["isError"], false, "{announced}");
    // A freeze of the agent: its next call is refused by governance, before any connector.
    post(
        &server,
        "/api/v1/freezes",
        &admin,
        &json!({ "kind": "principal", "value": "agent-1", "reason": "incident" }),
    )
    .await;
    let frozen = mcp
        .call_tool("ssh_execute", json!({ "server": "x", "command": "uptime" }))
        .await;
    assert_eq!(frozen["result"]["isError"], true, "{frozen}");

    let page = get(&server, "/api/v1/activity", &admin).await;
    let calls = calls(&page);
    assert_eq!(calls.len(), 2, "{page:#}");
    let refused = &calls[0];
    assert_eq!(refused["decision"], "denied");
    assert_eq!(refused["reason_code"], "frozen");
    assert_eq!(refused["tool"], "ssh_execute");
    assert!(
        refused["error"].as_str().unwrap().contains("frozen"),
        "{refused}"
    );
    let announcement = &calls[1];
    assert_eq!(announcement["decision"], "announced");
    assert_eq!(announcement["summary"], "announce: rotating nginx logs");
    assert_eq!(announcement["tier"], "destructive");
    assert_eq!(announcement["target"], "x");
    assert_eq!(announcement["outcome"], Value::Null);
    let summary = get(&server, "/api/v1/activity/summary", &admin).await;
    assert_eq!(summary["counters"]["active_freezes"], 1);
    assert_eq!(summary["counters"]["denials_last_hour"], 1);
}
