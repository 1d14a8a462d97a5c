//! The pipeline, at the gateway, with in-process scripted connectors (no target behind them is
//! the point: what is tested is the sequence around the connector's stages), a real SQLite store
//! and the real audit log.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::sync::Arc;
use std::time::Duration;

use meho_approvals::{FreezeKind, Status};
use meho_audit::{AuditLog, StoredRecord};
use meho_config::Role;
use meho_core::Tier;
use meho_gateway::govern::{Actor, Origin};
use meho_gateway::{Answer, Caller, ErrorCode, Gateway, Governance, Holds, ToolError};
use meho_test_support::connector::{Script, Scripted, tool};
use serde_json::{Value, json};

struct World {
    _dir: tempfile::TempDir,
    audit: Arc<AuditLog>,
    governance: Arc<Governance>,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = meho_test_support::sqlite_store(dir.path()).await.unwrap();
        let audit = meho_test_support::audit_log(&store).await.unwrap();
        let governance = Arc::new(Governance::new(
            &store,
            meho_approvals::ApprovalPolicy::default(),
            audit.clone(),
            "http://127.0.0.1",
            Default::default(),
        ));
        World {
            _dir: dir,
            audit,
            governance,
        }
    }

    fn gateway(&self, connectors: &[&Arc<Scripted>]) -> Gateway {
        let mut builder = Gateway::builder(self.governance.clone());
        for connector in connectors {
            builder = builder.connector((*connector).clone());
        }
        builder.build().unwrap()
    }

    /// Every record, oldest first.
    async fn records(&self) -> Vec<StoredRecord> {
        meho_test_support::records(&self.audit).await.unwrap()
    }

    /// `(kind, action, outcome)` of every record.
    async fn shape(&self) -> Vec<(String, String, String)> {
        self.records()
            .await
            .into_iter()
            .map(|r| {
                (
                    r.kind,
                    r.action.unwrap_or_default(),
                    r.outcome.unwrap_or_default(),
                )
            })
            .collect()
    }

    fn admin(&self) -> Actor {
        Actor {
            principal: "boss".into(),
            tenant: "default".into(),
            role: Role::TenantAdmin,
            origin: Origin::default(),
        }
    }
}

fn shape(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|(k, a, o)| ((*k).to_owned(), (*a).to_owned(), (*o).to_owned()))
        .collect()
}

/// `run`: allowed; `hold`: needs a human; `deny`: refused by policy; `fail`: the decider is
/// down; `break`: fails on the target; `bad`: malformed; `write` is WRITE tier at least.
fn scripted(targets: &[&str], tools: &[(&str, Tier)]) -> Arc<Scripted> {
    Scripted::new(
        tools
            .iter()
            .map(|(name, tier)| tool(name, *tier, json!({ "type": "object" })))
            .collect(),
        targets,
        |_, _, arguments| {
            let command = arguments["command"].as_str().unwrap_or_default();
            match command.split(' ').next().unwrap_or_default() {
                "hold" => Script::Hold {
                    rule: "require_approval:^hold".into(),
                    tier: Tier::Write,
                    ran: json!({ "ran": command }),
                    preview: None,
                },
                "deny" => Script::Deny("deny:^deny".into()),
                "fail" => Script::Fail(ToolError::new(ErrorCode::Unreachable, "decider down")),
                "break" => Script::Break(ToolError::new(ErrorCode::ExecutionFailed, "broke")),
                "bad" => Script::Unplannable(ToolError::invalid("run: `command` is malformed")),
                _ => Script::Run(json!({ "ran": command })),
            }
        },
    )
}

fn agent() -> Caller {
    Caller::agent("agent-1")
}

fn stages(connector: &Scripted) -> Vec<&'static str> {
    connector.seen().iter().map(|s| s.stage).collect()
}

#[tokio::test]
async fn an_allowed_call_runs_plan_authorize_intent_execute_outcome_in_that_order() {
    let world = World::new().await;
    let ssh = scripted(&["web"], &[("run", Tier::Read)]);
    let gateway = world.gateway(&[&ssh]);
    let out = gateway
        .call(
            &agent(),
            "run",
            json!({ "server": "web", "command": "uptime" }),
        )
        .await
        .unwrap();
    assert_eq!(out, json!({ "ran": "uptime" }));
    assert_eq!(stages(&ssh), ["plan", "authorize", "execute"]);
    assert_eq!(
        world.shape().await,
        shape(&[("intent", "run", "allowed"), ("outcome", "run", "ok")])
    );
    // The receipt execute got names the intent record, durable before execute ran.
    let records = world.records().await;
    let executed = &ssh.seen_at("execute")[0];
    assert_eq!(executed.intent_id.as_deref(), Some(records[0].id.as_str()));
    // One call id on both records.
    assert!(records[0].call_id.is_some());
    assert_eq!(records[0].call_id, records[1].call_id);
    assert_eq!(records[0].target.as_deref(), Some("web"));
}

#[tokio::test]
async fn a_held_call_is_replayed_through_every_stage_with_the_approval_bound_to_its_plan() {
    let world = World::new().await;
    let ssh = scripted(&["web"], &[("run", Tier::Read)]);
    let gateway = world.gateway(&[&ssh]);
    let asked = json!({ "server": "web", "command": "hold restart" });
    let held = gateway
        .dispatch(&agent(), "run", asked.clone())
        .await
        .unwrap();
    let Answer::Held { approval_id, value } = held else {
        panic!("not held: {held:?}");
    };
    assert_eq!(value["status"], "pending_approval");
    assert_eq!(value["approval_id"], approval_id.as_str());
    assert_eq!(stages(&ssh), ["plan", "authorize"], "nothing ran");
    let approval = world
        .governance
        .approvals
        .get("default", &approval_id)
        .await
        .unwrap();
    assert_eq!(approval.status, Status::Pending);
    assert_eq!(approval.request.as_ref(), Some(&asked));
    assert_eq!(
        approval.learnable.as_ref().map(|l| l.command.as_str()),
        Some("hold restart")
    );

    // Approve, then collect: the replay goes through plan, authorize (with the claim bound to
    // the same plan hash) and execute.
    world
        .governance
        .decide(&world.admin(), &approval_id, true, "ok", None)
        .await
        .unwrap();
    let done = gateway
        .approval_status(&agent(), &approval_id, Duration::ZERO, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(done["status"], "executed");
    assert_eq!(done["result"], json!({ "ran": "hold restart" }));
    assert_eq!(
        stages(&ssh),
        ["plan", "authorize", "plan", "authorize", "execute"]
    );
    let claim = ssh.seen_at("authorize")[1].approval.clone().unwrap();
    assert_eq!(claim.id, approval_id);
    assert_eq!(claim.call_hash, approval.call_hash, "bound to the plan");
    assert!(ssh.seen_at("authorize")[0].approval.is_none());

    let records = world.records().await;
    assert_eq!(
        world.shape().await,
        shape(&[
            ("denial", "run", "needs_approval"),
            ("approval", "request", "pending"),
            ("approval", "approve", "approved"),
            ("intent", "run", "allowed"),
            ("outcome", "run", "ok"),
        ])
    );
    // The held call's refusal and the request share the held call's id; the run has its own,
    // and carries the approval.
    assert_eq!(records[0].call_id, records[1].call_id);
    assert_ne!(records[3].call_id, records[0].call_id);
    assert_eq!(
        records[3].approval_id.as_deref(),
        Some(approval_id.as_str())
    );
}

#[tokio::test]
async fn a_refusal_at_each_stage_is_audited_exactly_once_and_nothing_runs() {
    let world = World::new().await;
    let ssh = scripted(&["web"], &[("run", Tier::Read), ("write", Tier::Write)]);
    let gateway = world.gateway(&[&ssh]).clone();
    let reader = Caller {
        max_tier: Tier::Read,
        ..agent()
    };
    let cases: [(&Caller, &str, &str, ErrorCode); 5] = [
        (&reader, "run", "bad", ErrorCode::InvalidArguments),
        (&reader, "write", "ls", ErrorCode::Denied),
        (&reader, "run", "deny", ErrorCode::Denied),
        (&reader, "run", "fail", ErrorCode::Unreachable),
        (&reader, "run", "hold", ErrorCode::NeedsApproval),
    ];
    let refusing = Gateway::builder(world.governance.clone())
        .connector(ssh.clone())
        .holds(Holds::Refuse)
        .build()
        .unwrap();
    for (i, (caller, tool, command, code)) in cases.iter().enumerate() {
        let before = world.records().await.len();
        let gateway = if *code == ErrorCode::NeedsApproval {
            &refusing
        } else {
            &gateway
        };
        let err = gateway
            .call(caller, tool, json!({ "server": "web", "command": command }))
            .await
            .unwrap_err();
        assert_eq!(err.code, *code, "case {i}: {err}");
        let new: Vec<StoredRecord> = world.records().await.split_off(before);
        assert_eq!(new.len(), 1, "case {i}: exactly one record: {new:?}");
        assert_eq!(new[0].kind, "denial", "case {i}");
        assert_eq!(new[0].outcome.as_deref(), Some(code.as_str()), "case {i}");
        assert!(new[0].call_id.is_some(), "case {i}");
    }
    // The stage each refusal stopped at, and nothing was ever executed.
    assert_eq!(
        stages(&ssh),
        [
            "plan", // bad
            "plan", // write: the tier gate, before authorize
            "plan",
            "authorize", // deny
            "plan",
            "authorize", // fail
            "plan",
            "authorize", // hold, refused by this frontend
        ]
    );
    // The needs_approval refusal names the call an approval must bind to.
    let held = refusing
        .call(
            &agent(),
            "run",
            json!({ "server": "web", "command": "hold x" }),
        )
        .await
        .unwrap_err();
    let detail = held.detail.unwrap();
    assert_eq!(detail["call"]["target"], "web");
    assert_eq!(detail["call"]["action"]["arguments"]["command"], "hold x");
    assert_eq!(detail["call_hash"].as_str().map(str::len), Some(64));
}

#[tokio::test]
async fn a_failure_on_the_target_is_an_intent_and_an_error_outcome_never_a_denial() {
    let world = World::new().await;
    let ssh = scripted(&["web"], &[("run", Tier::Read)]);
    let gateway = world.gateway(&[&ssh]);
    let err = gateway
        .call(
            &agent(),
            "run",
            json!({ "server": "web", "command": "break" }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ExecutionFailed);
    assert_eq!(
        world.shape().await,
        shape(&[("intent", "run", "allowed"), ("outcome", "run", "error")])
    );
    let outcome = &world.records().await[1];
    let body: Value = serde_json::from_str(&outcome.body).unwrap();
    assert_eq!(body["error"], "broke");
}

#[tokio::test]
async fn without_a_durable_intent_nothing_executes() {
    let world = World::new().await;
    let ssh = scripted(&["web"], &[("run", Tier::Read)]);
    let gateway = world.gateway(&[&ssh]);
    world.audit.shutdown().await.unwrap();
    let err = gateway
        .call(
            &agent(),
            "run",
            json!({ "server": "web", "command": "uptime" }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Internal);
    assert!(err.message.contains("nothing was run"), "{err}");
    assert_eq!(stages(&ssh), ["plan", "authorize"], "execute never ran");
}

#[tokio::test]
async fn list_targets_merges_every_connectors_targets_in_one_record() {
    let world = World::new().await;
    let ssh = scripted(&["web", "db"], &[("run", Tier::Read)]);
    let k8s = scripted(&["prod"], &[("k8s_get", Tier::Read)]);
    let gateway = world.gateway(&[&ssh, &k8s]);
    let listed = gateway
        .call(&agent(), "list_targets", json!({}))
        .await
        .unwrap();
    let names: Vec<&str> = listed["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "db", "prod"]);
    assert_eq!(
        world.shape().await,
        shape(&[("outcome", "list_targets", "ok")])
    );
    let body: Value = serde_json::from_str(&world.records().await[0].body).unwrap();
    assert_eq!(body["count"], 3);
    // `list_targets` is the gateway's own: a connector cannot claim it, nor two one tool.
    let twice = Gateway::builder(world.governance.clone())
        .connector(scripted(&[], &[("run", Tier::Read)]))
        .connector(scripted(&[], &[("run", Tier::Read)]))
        .build();
    assert!(twice.is_err());
    let claims = Gateway::builder(world.governance.clone())
        .connector(scripted(&[], &[("list_targets", Tier::Read)]))
        .build();
    assert!(claims.is_err());
    // Arguments to a tool that takes none are refused.
    let err = gateway
        .call(&agent(), "list_targets", json!({ "all": true }))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArguments);
}

#[tokio::test]
async fn a_freeze_stops_a_call_before_it_is_planned() {
    let world = World::new().await;
    let ssh = scripted(&["web"], &[("run", Tier::Read)]);
    let gateway = world.gateway(&[&ssh]);
    world
        .governance
        .freeze(
            &gateway,
            &world.admin(),
            FreezeKind::Principal,
            "agent-1",
            "incident",
        )
        .await
        .unwrap();
    let before = world.records().await.len();
    for tool in ["run", "list_targets"] {
        let err = gateway
            .call(
                &agent(),
                tool,
                json!({ "server": "web", "command": "uptime" }),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Frozen, "{tool}");
    }
    assert!(ssh.seen().is_empty(), "no stage ran: {:?}", ssh.seen());
    let new = world.records().await.split_off(before);
    assert_eq!(new.len(), 2, "one refusal each: {new:?}");
    assert!(
        new.iter()
            .all(|r| r.kind == "denial" && r.outcome.as_deref() == Some("frozen"))
    );
    // Another principal is not frozen.
    gateway
        .call(
            &Caller::agent("agent-2"),
            "run",
            json!({ "server": "web", "command": "uptime" }),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_preview_decides_and_runs_nothing() {
    let world = World::new().await;
    let ssh = scripted(&["web"], &[("run", Tier::Read)]);
    let gateway = world.gateway(&[&ssh]);
    for command in ["uptime", "deny"] {
        let out = gateway
            .call(
                &agent(),
                "run",
                json!({ "server": "web", "command": command, "dry_run": true }),
            )
            .await
            .unwrap();
        assert_eq!(out["dry_run"], true);
        assert_eq!(out["decision"]["allowed"], command == "uptime");
    }
    assert!(ssh.seen_at("execute").is_empty());
    assert!(
        world.records().await.is_empty(),
        "a preview is the decider's to record"
    );
}

#[test]
fn the_tier_gate_refuses_only_above_the_callers_tier() {
    let reader = Caller {
        max_tier: Tier::Read,
        ..agent()
    };
    assert!(meho_gateway::tier_gate(&reader, Tier::Read, "t").is_ok());
    let err = meho_gateway::tier_gate(&reader, Tier::Write, "t").unwrap_err();
    assert_eq!(err.code, ErrorCode::Denied);
    assert!(err.message.contains("write-tier") && err.message.contains("read-tier"));
    assert!(meho_gateway::tier_gate(&agent(), Tier::Destructive, "t").is_ok());
}

// --- previews of held calls ----------------------------------------------------------------------

/// A secret inside a preview: the audit redactor must take it out of everything people see.
const CANARY: &str = "CANARY-9c1e-preview";

/// What a Kubernetes connector's server-side dry run of an `apply` would diff against the live
/// object, with a secret in it (a URL password and a `token:` line) and a line that would
/// redraw the terminal and reverse the rest if printed raw. `generation` makes each call's
/// preview differ.
fn dry_run_diff(generation: usize) -> String {
    format!(
        "--- deployment/web (live)\n+++ deployment/web (dry run {generation})\n@@ -3,3 +3,3 @@\n\
         -  replicas: 2\n+  replicas: 3\n   env: DB_URL=postgres://app:{CANARY}@db/app\n\
         +  token: {CANARY}\n+  image: web:2 \u{1b}[2K\u{202e}\n"
    )
}

/// [`dry_run_diff`] as approvers must be shown it: the secrets redacted, nothing else changed
/// (escaping is for the screens that show it, not for the store).
fn dry_run_diff_shown(generation: usize) -> String {
    format!(
        "--- deployment/web (live)\n+++ deployment/web (dry run {generation})\n@@ -3,3 +3,3 @@\n\
         -  replicas: 2\n+  replicas: 3\n   env: DB_URL=postgres://app:[REDACTED]@db/app\n\
         +  token: [REDACTED]\n+  image: web:2 \u{1b}[2K\u{202e}\n"
    )
}

/// One `apply` tool (WRITE) that is always held, with `preview(n)` as the preview of the n-th
/// call (counting from 1).
fn previewing(preview: impl Fn(usize) -> Option<String> + Send + Sync + 'static) -> Arc<Scripted> {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    Scripted::new(
        vec![tool("apply", Tier::Write, json!({ "type": "object" }))],
        &["prod"],
        move |_, _, _| {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Script::Hold {
                rule: "require_approval:apply".into(),
                tier: Tier::Write,
                ran: json!({ "applied": true }),
                preview: preview(n),
            }
        },
    )
}

fn apply_arguments() -> Value {
    json!({ "server": "prod", "manifest": "deployment/web" })
}

fn body_of(record: &StoredRecord) -> Value {
    serde_json::from_str(&record.body).unwrap()
}

#[tokio::test]
async fn a_held_calls_preview_reaches_its_approval_redacted_and_its_records_only_by_hash() {
    let world = World::new().await;
    let k8s = previewing(|n| Some(dry_run_diff(n)));
    let gateway = world.gateway(&[&k8s]);
    let held = gateway
        .dispatch(&agent(), "apply", apply_arguments())
        .await
        .unwrap();
    let Answer::Held { approval_id, value } = held else {
        panic!("not held: {held:?}");
    };
    assert!(!value.to_string().contains(CANARY), "{value}");
    let approval = world
        .governance
        .approvals
        .get("default", &approval_id)
        .await
        .unwrap();
    let shown = dry_run_diff_shown(1);
    assert_eq!(approval.preview.as_deref(), Some(shown.as_str()));

    // The REST view carries it as the approval keeps it.
    let view = serde_json::to_value(meho_gateway::govern::view(&approval, "http://x")).unwrap();
    assert_eq!(view["preview"], shown.as_str());

    // The held call's refusal and the approval's request carry its hash, never the text.
    let hash = meho_gateway::govern::preview_sha256(&shown);
    assert_eq!(hash.len(), 64);
    let records = world.records().await;
    assert_eq!(
        world.shape().await,
        shape(&[
            ("denial", "apply", "needs_approval"),
            ("approval", "request", "pending"),
        ])
    );
    for record in &records {
        let body = body_of(record);
        assert_eq!(body["preview_sha256"], hash.as_str(), "{}", record.kind);
        assert!(
            !record.body.contains("replicas"),
            "the text: {}",
            record.body
        );
    }
    assert!(
        !serde_json::to_string(&records).unwrap().contains(CANARY),
        "the canary reached the audit log"
    );

    // The approval binds the call, not the preview: the same call with another preview is
    // bound to the same hash.
    let again = gateway
        .dispatch(&agent(), "apply", apply_arguments())
        .await
        .unwrap();
    let Answer::Held {
        approval_id: second,
        ..
    } = again
    else {
        panic!("not held: {again:?}");
    };
    let second = world
        .governance
        .approvals
        .get("default", &second)
        .await
        .unwrap();
    assert_eq!(
        second.preview.as_deref(),
        Some(dry_run_diff_shown(2).as_str())
    );
    assert_ne!(second.preview, approval.preview);
    assert_eq!(second.call_hash, approval.call_hash);

    // A frontend that cannot hold (the CLI) records the hash in its refusal all the same.
    let refusing = Gateway::builder(world.governance.clone())
        .connector(k8s.clone())
        .holds(Holds::Refuse)
        .build()
        .unwrap();
    let before = world.records().await.len();
    let err = refusing
        .call(&agent(), "apply", apply_arguments())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NeedsApproval);
    let new = world.records().await.split_off(before);
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(
        body_of(&new[0])["preview_sha256"],
        meho_gateway::govern::preview_sha256(&dry_run_diff_shown(3)).as_str()
    );
}

#[tokio::test]
async fn without_a_preview_the_approval_and_its_records_have_none() {
    let world = World::new().await;
    let k8s = previewing(|_| None);
    let gateway = world.gateway(&[&k8s]);
    let Answer::Held { approval_id, .. } = gateway
        .dispatch(&agent(), "apply", apply_arguments())
        .await
        .unwrap()
    else {
        panic!("not held");
    };
    let approval = world
        .governance
        .approvals
        .get("default", &approval_id)
        .await
        .unwrap();
    assert_eq!(approval.preview, None);
    let view = serde_json::to_value(meho_gateway::govern::view(&approval, "http://x")).unwrap();
    assert!(view["preview"].is_null(), "{view}");
    for record in world.records().await {
        assert!(
            body_of(&record).get("preview_sha256").is_none(),
            "{record:?}"
        );
    }
}

#[tokio::test]
async fn a_long_preview_is_cut_at_a_line_break_and_says_so_and_nul_cannot_reach_the_store() {
    let world = World::new().await;
    // 100 KiB of complete lines, a NUL on the second (PostgreSQL text cannot hold one).
    let mut long = String::from("--- a\n+with a NUL \0 here\n");
    let mut n = 0;
    while long.len() < 100 * 1024 {
        long.push_str(&format!("+line {n:06} é\n"));
        n += 1;
    }
    let k8s = previewing(move |_| Some(long.clone()));
    let gateway = world.gateway(&[&k8s]);
    let Answer::Held { approval_id, .. } = gateway
        .dispatch(&agent(), "apply", apply_arguments())
        .await
        .unwrap()
    else {
        panic!("not held");
    };
    let approval = world
        .governance
        .approvals
        .get("default", &approval_id)
        .await
        .unwrap();
    let preview = approval.preview.unwrap();
    assert!(
        preview.len() <= meho_gateway::govern::MAX_PREVIEW_BYTES,
        "{}",
        preview.len()
    );
    assert!(
        preview.len() > meho_gateway::govern::MAX_PREVIEW_BYTES - 64,
        "{}",
        preview.len()
    );
    let kept = preview
        .strip_suffix(&format!("\n{}", meho_gateway::govern::PREVIEW_TRUNCATED))
        .unwrap_or_else(|| {
            panic!(
                "no truncation line at the end of …{}",
                &preview[preview.len() - 40..]
            )
        });
    assert!(kept.starts_with("--- a\n+with a NUL \u{fffd} here\n+line 000000 é\n"));
    assert!(!preview.contains('\0'));
    // Cut between lines, never inside one.
    let last = kept.rsplit('\n').next().unwrap();
    assert!(
        last.starts_with("+line ") && last.ends_with(" é"),
        "{last:?}"
    );
    // The refusal's hash is of the text as kept.
    let denial = &world.records().await[0];
    assert_eq!(
        body_of(denial)["preview_sha256"],
        meho_gateway::govern::preview_sha256(&preview).as_str()
    );
}

/// A webhook receiver on a loopback port: every JSON body POSTed to it, answered 200.
struct Receiver {
    url: String,
    bodies: Arc<std::sync::Mutex<Vec<(String, Value)>>>,
}

impl Receiver {
    fn start() -> Receiver {
        use std::io::{BufRead as _, BufReader, Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut path, mut length, mut line) = (String::new(), 0usize, String::new());
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if path.is_empty() {
                        path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(value) = lower.strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_ok()
                    && let Ok(value) = serde_json::from_slice(&body)
                {
                    seen.lock().unwrap().push((path, value));
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        Receiver { url, bodies }
    }

    fn body(&self, path: &str) -> Value {
        let bodies = self.bodies.lock().unwrap();
        let found = bodies.iter().find(|(p, _)| p == path);
        found
            .map(|(_, body)| body.clone())
            .unwrap_or_else(|| panic!("nothing POSTed to {path}: {bodies:?}"))
    }
}

#[tokio::test]
async fn the_webhooks_announce_a_held_calls_preview_redacted_and_escaped_for_chat() {
    let dir = tempfile::tempdir().unwrap();
    let store = meho_test_support::sqlite_store(dir.path()).await.unwrap();
    let audit = meho_test_support::audit_log(&store).await.unwrap();
    let receiver = Receiver::start();
    let webhook = |name: &str, format: meho_notify::WebhookFormat| meho_notify::WebhookConfig {
        name: name.to_owned(),
        url: format!("{}/{name}", receiver.url),
        format,
        max_attempts: 3,
        timeout_seconds: 10,
    };
    let notifier = meho_notify::Notifier::new(
        vec![
            webhook("generic", meho_notify::WebhookFormat::Generic),
            webhook("slack", meho_notify::WebhookFormat::Slack),
            webhook("teams", meho_notify::WebhookFormat::Teams),
        ],
        audit.clone(),
    )
    .unwrap();
    let governance = Arc::new(
        Governance::new(
            &store,
            meho_approvals::ApprovalPolicy::default(),
            audit.clone(),
            "http://127.0.0.1",
            Default::default(),
        )
        .with_notifier(notifier),
    );
    let gateway = Gateway::builder(governance.clone())
        .connector(previewing(|n| Some(dry_run_diff(n))))
        .build()
        .unwrap();
    let Answer::Held { approval_id, .. } = gateway
        .dispatch(&agent(), "apply", apply_arguments())
        .await
        .unwrap()
    else {
        panic!("not held");
    };
    assert!(
        governance
            .notifier()
            .unwrap()
            .drain(Duration::from_secs(30))
            .await,
        "the deliveries did not finish"
    );
    let shown = dry_run_diff_shown(1);

    // Generic: the preview exactly as the approval keeps it.
    let generic = receiver.body("/generic");
    assert_eq!(generic["approval"]["id"], approval_id.as_str());
    assert_eq!(generic["approval"]["preview"], shown.as_str());

    // Slack: a code block of its lines, each escaped on its own.
    let slack = receiver.body("/slack");
    let blocks = slack["blocks"].as_array().unwrap();
    let preview = blocks
        .iter()
        .filter_map(|b| b["text"]["text"].as_str())
        .find(|t| t.starts_with("*Preview*"))
        .unwrap_or_else(|| panic!("no preview block: {slack:#}"));
    assert_eq!(
        preview,
        "*Preview*\n```--- deployment/web (live)\n+++ deployment/web (dry run 1)\n@@ -3,3 +3,3 @@\n\
         -  replicas: 2\n+  replicas: 3\n   env: DB_URL=postgres://app:[REDACTED]@db/app\n\
         +  token: [REDACTED]\n+  image: web:2 \\x1b[2K\\u{202e}```"
    );

    // Teams: one plain-text run per line, coloured by its sign.
    let teams = receiver.body("/teams");
    let card = &teams["attachments"][0]["content"];
    let container = card["body"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["type"] == "Container")
        .unwrap_or_else(|| panic!("no preview container: {card:#}"));
    let runs: Vec<(String, String)> = container["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let run = &item["inlines"][0];
            (
                run["text"].as_str().unwrap().to_owned(),
                run["color"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(runs.len(), 8, "{runs:?}");
    assert_eq!(
        runs[3],
        ("-  replicas: 2".to_owned(), "Attention".to_owned())
    );
    assert_eq!(runs[4], ("+  replicas: 3".to_owned(), "Good".to_owned()));
    assert_eq!(
        runs[7],
        (
            "+  image: web:2 \\x1b[2K\\u{202e}".to_owned(),
            "Good".to_owned()
        )
    );

    for path in ["/generic", "/slack", "/teams"] {
        assert!(
            !receiver.body(path).to_string().contains(CANARY),
            "the canary reached {path}"
        );
    }
}
