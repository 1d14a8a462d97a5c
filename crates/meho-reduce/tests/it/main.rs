//! The reduce stage and `result_query` through the gateway's one pipeline: a scripted connector
//! (the connector is not the point), the real audit log, and the real store (SQLite; PostgreSQL
//! for the replica test when `MEHO_TEST_DATABASE_URL` is set).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::sync::Arc;
use std::time::Duration;

use meho_approvals::FreezeKind;
use meho_audit::{AuditLog, Redactor, StoredRecord};
use meho_config::Role;
use meho_core::Tier;
use meho_gateway::govern::{Actor, Origin};
use meho_gateway::{Caller, ErrorCode, Gateway, Governance};
use meho_reduce::store::{Caps, ResultStore};
use meho_reduce::{RESULT_QUERY, Results, Settings};
use meho_store::Store;
use meho_test_support::connector::{Script, Scripted, tool};
use serde_json::{Value, json};

const CANARY: &str = "s3cr3t-Canary-9f2c";

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    audit: Arc<AuditLog>,
    governance: Arc<Governance>,
    results: Arc<Results>,
    gateway: Gateway,
}

/// A tool `list` answering `{"items": [n pods]}` for `{"n": n}`, `text` answering `{"stdout":
/// <n log lines>, "exit_code": 0}`.
fn connector() -> Arc<Scripted> {
    Scripted::new(
        vec![
            tool(
                "list",
                Tier::Read,
                json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
            ),
            tool(
                "text",
                Tier::Read,
                json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
            ),
        ],
        &["x"],
        |_caller, tool, arguments| {
            let n = arguments["n"].as_u64().unwrap_or(0);
            match tool {
                "list" => Script::Run(json!({"items": pods(n), "continue": "tok"})),
                _ => Script::Run(json!({"stdout": log(n), "stderr": "", "exit_code": 0})),
            }
        },
    )
}

fn pods(n: u64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "metadata": {"name": format!("web-{i}"), "namespace": "team"},
                "spec": {"nodeName": format!("node-{}", i % 3)},
                "status": {"phase": if i % 5 == 0 { "Pending" } else { "Running" }},
                "token": if i == 7 { format!("password={CANARY}") } else { String::new() },
            })
        })
        .collect()
}

fn log(n: u64) -> String {
    (1..=n)
        .map(|i| {
            let level = if i % 10 == 0 { "error" } else { "info" };
            format!(
                "Dec 07 19:{:02}:{:02} host app[42]: {level} request {i}\n",
                (i / 60) % 60,
                i % 60
            )
        })
        .collect()
}

impl World {
    async fn new(settings: Settings) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = meho_test_support::sqlite_store(dir.path()).await.unwrap();
        World::on(dir, store, settings).await
    }

    async fn on(dir: tempfile::TempDir, store: Store, settings: Settings) -> World {
        let audit = meho_test_support::audit_log(&store).await.unwrap();
        let governance = Arc::new(Governance::new(
            &store,
            meho_approvals::ApprovalPolicy::default(),
            audit.clone(),
            "http://127.0.0.1",
            Default::default(),
        ));
        let results = Arc::new(replica(&store, settings, audit.redactor().clone()));
        let gateway = Gateway::builder(governance.clone())
            .connector(connector())
            .reducer(results.clone())
            .connector(results.clone())
            .build()
            .unwrap();
        World {
            _dir: dir,
            store,
            audit,
            governance,
            results,
            gateway,
        }
    }

    async fn records(&self) -> Vec<StoredRecord> {
        meho_test_support::records(&self.audit).await.unwrap()
    }

    /// The body of the last record of `kind` whose action is `action`.
    async fn last(&self, kind: &str, action: &str) -> Value {
        let record = self
            .records()
            .await
            .into_iter()
            .rev()
            .find(|r| r.kind == kind && r.action.as_deref() == Some(action))
            .unwrap_or_else(|| panic!("no {kind} record of {action}"));
        serde_json::from_str(&record.body).unwrap()
    }
}

fn replica(store: &Store, settings: Settings, redactor: Redactor) -> Results {
    Results::new(
        ResultStore::new(store.pool().clone(), Caps::default()),
        settings,
        redactor,
    )
}

fn agent(tenant: &str, principal: &str) -> Caller {
    Caller {
        tenant: tenant.to_owned(),
        ..Caller::agent(principal)
    }
}

fn size(value: &Value) -> usize {
    serde_json::to_vec(value).unwrap().len()
}

async fn query(
    gateway: &Gateway,
    caller: &Caller,
    handle: &str,
    sql: &str,
) -> Result<Value, meho_gateway::ToolError> {
    gateway
        .call(caller, RESULT_QUERY, json!({"handle": handle, "sql": sql}))
        .await
}

#[tokio::test]
async fn a_small_result_passes_and_a_large_one_becomes_a_summary_named_on_its_outcome() {
    let world = World::new(Settings::default()).await;
    let caller = agent("default", "agent-1");

    let small = world
        .gateway
        .call(&caller, "list", json!({"n": 3}))
        .await
        .unwrap();
    assert_eq!(small["items"].as_array().unwrap().len(), 3);
    assert!(
        world
            .last("outcome", "list")
            .await
            .get("reduction")
            .is_none()
    );

    // 51 rows: over the row threshold.
    let answer = world
        .gateway
        .call(&caller, "list", json!({"n": 51}))
        .await
        .unwrap();
    assert_eq!(answer["reduced"], true);
    assert_eq!(answer["rows"], 51);
    assert_eq!(answer["shape"], "collection");
    assert_eq!(answer["context"]["continue"], "tok");
    assert!(size(&answer) <= 4096, "{}", size(&answer));
    let handle = answer["handle"].as_str().unwrap();
    assert!(handle.starts_with("res-") && handle.len() == 36);
    let reduction = &world.last("outcome", "list").await["reduction"];
    assert_eq!(reduction["handle"], handle);
    assert_eq!(reduction["shown_bytes"], json!(size(&answer)));
    assert_eq!(reduction["rows"], 51);
    assert!(reduction["source_bytes"].as_u64().unwrap() > 4096);
    // The example query works as given.
    let example = &answer["how_to_query"]["arguments"];
    let out = world
        .gateway
        .call(&caller, RESULT_QUERY, example.clone())
        .await
        .unwrap();
    assert_eq!(out["rows"], json!([["Running", 40], ["Pending", 11]]));
}

#[tokio::test]
async fn result_query_answers_sql_over_every_kept_row_and_audits_the_sql() {
    let world = World::new(Settings::default()).await;
    let caller = agent("default", "agent-1");
    let answer = world
        .gateway
        .call(&caller, "text", json!({"n": 3000}))
        .await
        .unwrap();
    assert_eq!(answer["shape"], "lines");
    assert_eq!(answer["rows"], 3000);
    assert_eq!(answer["context"]["exit_code"], 0);
    // The newest lines are the sample.
    let sample = answer["sample"].as_array().unwrap();
    assert_eq!(sample.last().unwrap()["n"], 3000);
    let handle = answer["handle"].as_str().unwrap();

    let sql = "SELECT count(*) FROM result WHERE line LIKE '%error%'";
    let out = query(&world.gateway, &caller, handle, sql).await.unwrap();
    assert_eq!(out["rows"], json!([[300]]));
    assert_eq!(out["truncated"], false);
    let intent = world.last("intent", RESULT_QUERY).await;
    assert_eq!(intent["arguments"]["sql"], sql);
    assert_eq!(world.last("outcome", RESULT_QUERY).await["rows"], 1);

    // More rows than an answer holds: 500 and `truncated`, or fewer with `limit`.
    let all = query(&world.gateway, &caller, handle, "SELECT n FROM result")
        .await
        .unwrap();
    assert_eq!(all["row_count"], 500, "{all}");
    assert_eq!(all["truncated"], true);
    let few = world
        .gateway
        .call(
            &caller,
            RESULT_QUERY,
            json!({"handle": handle, "sql": "SELECT n FROM result", "limit": 3}),
        )
        .await
        .unwrap();
    assert_eq!(few["rows"], json!([[1], [2], [3]]));
    // The query's own answer is never reduced.
    assert!(few.get("reduced").is_none());
}

#[tokio::test]
async fn raw_returns_the_whole_result_up_to_its_cap_and_is_a_boolean() {
    let settings = Settings {
        raw_max_bytes: 20_000,
        ..Settings::default()
    };
    let world = World::new(settings).await;
    let caller = agent("default", "agent-1");
    let whole = world
        .gateway
        .call(&caller, "list", json!({"n": 60, "raw": true}))
        .await
        .unwrap();
    assert_eq!(whole["items"].as_array().unwrap().len(), 60);
    let record = &world.last("outcome", "list").await["reduction"];
    assert_eq!(record["raw"], true);
    assert_eq!(record["shown_bytes"], json!(size(&whole)));
    // The connector never saw `raw`.
    let over = world
        .gateway
        .call(&caller, "list", json!({"n": 400, "raw": true}))
        .await
        .unwrap();
    assert_eq!(over["reduced"], true);
    assert!(
        over["note"]
            .as_str()
            .unwrap()
            .contains("raw cap of 20000 bytes")
    );

    let err = world
        .gateway
        .call(&caller, "list", json!({"n": 60, "raw": "yes"}))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArguments);
    assert!(err.message.contains("`raw` must be a boolean"));
    let denial = world.last("denial", "list").await;
    assert!(denial["error"].as_str().unwrap().contains("raw"));
}

#[tokio::test]
async fn a_handle_does_not_exist_for_another_principal_or_tenant() {
    let world = World::new(Settings::default()).await;
    let owner = agent("a", "agent-1");
    let answer = world
        .gateway
        .call(&owner, "list", json!({"n": 80}))
        .await
        .unwrap();
    let handle = answer["handle"].as_str().unwrap();
    let sql = "SELECT count(*) FROM result";
    assert_eq!(
        query(&world.gateway, &owner, handle, sql).await.unwrap()["rows"],
        json!([[80]])
    );

    let absent = query(
        &world.gateway,
        &owner,
        "res-00000000000000000000000000000000",
        sql,
    )
    .await
    .unwrap_err();
    for other in [agent("b", "agent-1"), agent("a", "agent-2")] {
        let err = query(&world.gateway, &other, handle, sql)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound, "{other:?}");
        assert_eq!(
            err.message.replace(handle, "H"),
            absent
                .message
                .replace("res-00000000000000000000000000000000", "H")
        );
    }
    // Each refusal is audited.
    let denials = world
        .records()
        .await
        .into_iter()
        .filter(|r| r.kind == "denial" && r.action.as_deref() == Some(RESULT_QUERY))
        .count();
    assert_eq!(denials, 3);
}

#[tokio::test]
async fn secrets_are_redacted_before_rows_are_kept_or_shown() {
    let world = World::new(Settings::default()).await;
    let caller = agent("default", "agent-1");
    let answer = world
        .gateway
        .call(&caller, "list", json!({"n": 60}))
        .await
        .unwrap();
    assert!(!answer.to_string().contains(CANARY));
    let handle = answer["handle"].as_str().unwrap();
    let (_, blob) = world
        .results
        .store()
        .rows("default", "agent-1", handle, 0)
        .await
        .unwrap();
    let kept = String::from_utf8(meho_reduce::stage::decode_rows(&blob).unwrap()).unwrap();
    assert!(!kept.contains(CANARY));
    assert!(kept.contains("password=[REDACTED]"));
    let out = query(
        &world.gateway,
        &caller,
        handle,
        "SELECT token FROM result WHERE token <> ''",
    )
    .await
    .unwrap();
    assert_eq!(out["rows"], json!([["password=[REDACTED]"]]));
    for record in world.records().await {
        assert!(!record.body.contains(CANARY), "{}", record.body);
    }
}

#[tokio::test]
async fn the_sandbox_refuses_with_clear_errors_through_the_tool() {
    let settings = Settings {
        query: meho_reduce::sql::Limits {
            deadline: Duration::from_millis(300),
            ..meho_reduce::sql::Limits::default()
        },
        ..Settings::default()
    };
    let world = World::new(settings).await;
    let caller = agent("default", "agent-1");
    let answer = world
        .gateway
        .call(&caller, "list", json!({"n": 60}))
        .await
        .unwrap();
    let handle = answer["handle"].as_str().unwrap();
    let cases = [
        ("ATTACH DATABASE '/tmp/x.db' AS x", ErrorCode::Denied),
        ("PRAGMA table_info(result)", ErrorCode::Denied),
        ("DELETE FROM result", ErrorCode::Denied),
        ("SELECT load_extension('x')", ErrorCode::Denied),
        (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
            ErrorCode::Limit,
        ),
        ("SELECT nope FROM result", ErrorCode::InvalidArguments),
    ];
    for (sql, code) in cases {
        let err = query(&world.gateway, &caller, handle, sql)
            .await
            .unwrap_err();
        assert_eq!(err.code, code, "{sql}: {}", err.message);
        assert!(err.message.starts_with("result_query: "), "{}", err.message);
    }
    // Nothing was changed: every row is still there.
    let out = query(
        &world.gateway,
        &caller,
        handle,
        "SELECT count(*) FROM result",
    )
    .await
    .unwrap();
    assert_eq!(out["rows"], json!([[60]]));
}

#[tokio::test]
async fn an_expired_handle_is_gone_and_a_frozen_principal_cannot_query() {
    let settings = Settings {
        ttl: Duration::from_millis(300),
        ..Settings::default()
    };
    let world = World::new(settings).await;
    let caller = agent("default", "agent-1");
    let answer = world
        .gateway
        .call(&caller, "list", json!({"n": 60}))
        .await
        .unwrap();
    let handle = answer["handle"].as_str().unwrap().to_owned();
    let frozen_out = world
        .governance
        .freeze(
            &world.gateway,
            &Actor {
                principal: "boss".into(),
                tenant: "default".into(),
                role: Role::TenantAdmin,
                origin: Origin::default(),
            },
            FreezeKind::Principal,
            "agent-1",
            "incident",
        )
        .await;
    assert!(frozen_out.is_ok());
    let err = query(&world.gateway, &caller, &handle, "SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Frozen);

    let other = agent("default", "agent-2");
    let answer = world
        .gateway
        .call(&other, "list", json!({"n": 60}))
        .await
        .unwrap();
    let handle = answer["handle"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let err = query(&world.gateway, &other, &handle, "SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert_eq!(world.results.sweep().await.unwrap(), 2);
}

#[tokio::test]
async fn the_tool_list_declares_raw_and_the_output_schema() {
    let world = World::new(Settings::default()).await;
    for spec in world.gateway.tools() {
        let raw = spec.input_schema["properties"].get("raw");
        match spec.name.as_str() {
            "list" | "text" => {
                assert_eq!(raw.unwrap()["type"], "boolean");
                let schema = spec.output_schema.as_ref().unwrap();
                assert_eq!(schema["type"], "object");
            }
            RESULT_QUERY => {
                assert!(raw.is_none());
                assert!(spec.output_schema.is_some());
                assert_eq!(spec.min_tier, Tier::Read);
            }
            _ => assert!(raw.is_none(), "{}", spec.name),
        }
    }
    let _ = &world.store;
}

/// Another replica (its own cache, the same store) answers a handle the first one made; on
/// PostgreSQL when `MEHO_TEST_DATABASE_URL` is set, else on the shared SQLite file.
#[tokio::test]
async fn any_replica_answers_from_the_store() {
    let world = World::new(Settings::default()).await;
    let caller = agent("default", "agent-1");
    check_replicas(&world, &caller).await;

    match std::env::var("MEHO_TEST_DATABASE_URL") {
        Ok(url) => {
            let (pg, drop_db) = postgres(&url).await;
            let world = World::on(tempfile::tempdir().unwrap(), pg, Settings::default()).await;
            check_replicas(&world, &caller).await;
            drop(world);
            drop_db.await;
        }
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "MEHO_TEST_DATABASE_URL is not set under CI: the PostgreSQL replica test cannot be skipped"
            )
        }
        Err(_) => {
            eprintln!("SKIPPED: the PostgreSQL replica test (MEHO_TEST_DATABASE_URL is not set)")
        }
    }
}

async fn check_replicas(world: &World, caller: &Caller) {
    let answer = world
        .gateway
        .call(caller, "list", json!({"n": 90}))
        .await
        .unwrap();
    let handle = answer["handle"].as_str().unwrap();
    let other = replica(
        &world.store,
        Settings::default(),
        Redactor::new::<&str>(&[]).unwrap(),
    );
    let out = other
        .query(
            caller,
            handle,
            "SELECT spec->>'$.nodeName' AS node, count(*) FROM result GROUP BY node ORDER BY node"
                .to_owned(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        out.rows,
        vec![
            vec![json!("node-0"), json!(30)],
            vec![json!("node-1"), json!(30)],
            vec![json!("node-2"), json!(30)]
        ]
    );
    let stranger = agent("default", "someone-else");
    assert!(matches!(
        other
            .query(&stranger, handle, "SELECT 1".to_owned(), None)
            .await,
        Err(meho_reduce::ReduceError::NotFound(_))
    ));
}

/// A fresh PostgreSQL database for one test, and the future that drops it.
async fn postgres(url: &str) -> (Store, impl std::future::Future<Output = ()>) {
    use sqlx::Connection as _;
    let name = format!("meho_reduce_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let base = url
        .rsplit_once('/')
        .map_or(url, |(base, _)| base)
        .to_owned();
    let store = Store::open(&format!("{base}/{name}")).await.unwrap();
    let admin_url = url.to_owned();
    let closer = store.clone();
    (store, async move {
        closer.close().await;
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
    })
}
