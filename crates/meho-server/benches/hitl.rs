//! Human-in-the-loop costs (`cargo bench -p meho-server --bench hitl`), on a real SQLite store
//! with its audit log (fsync per commit), and on PostgreSQL when `MEHO_TEST_DATABASE_URL` is set:
//!
//! - the freeze check every tool call pays, with 1000 active freezes of other principals;
//! - holding a call (approval row + audit record), deciding it (four-eyes checks + audit), and
//!   collecting it (status read, replay through the gateway);
//! - how fast a waiting `approval_status` wakes after a decision in the same process.
//!
//! The connector is a stand-in that answers `needs_approval` until the call carries an approval
//! (the SSH path is measured by `cargo bench -p meho-ssh`). Prints p50/p99; nothing is asserted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    missing_debug_implementations
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use meho_approvals::{FreezeKind, Subject};
use meho_config::Role;
use meho_gateway::{Caller, Gateway};
use meho_server::hitl::{Actor, Governance, Origin};
use meho_test_support::connector::{Script, Scripted, tool};
use serde_json::json;

/// A connector that holds every call until it is approved.
fn held() -> std::sync::Arc<Scripted> {
    Scripted::new(
        vec![tool(
            "run",
            meho_core::Tier::Read,
            json!({ "type": "object" }),
        )],
        &["web"],
        |_, _, _| Script::Hold {
            rule: "require_approval:^x".into(),
            tier: meho_core::Tier::Write,
            ran: json!({ "stdout": "done" }),
            preview: None,
        },
    )
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    let p50 = percentile(&mut samples, 0.50);
    let p99 = percentile(&mut samples, 0.99);
    println!(
        "{name:<44} p50 {:>9.3} ms   p99 {:>9.3} ms   (n={})",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        samples.len()
    );
}

async fn run(label: &str, url: &str) {
    let store = meho_store::Store::open(url).await.unwrap();
    let audit = meho_test_support::audit_log(&store).await.unwrap();
    let governance = Arc::new(Governance::new(
        &store,
        Default::default(),
        audit.clone(),
        "http://127.0.0.1",
        Default::default(),
    ));
    let gateway = Gateway::builder(governance.clone())
        .connector(held())
        .build()
        .unwrap();
    let tenant = format!("bench-{}", uuid_like());
    let admin = Actor {
        principal: "boss".into(),
        tenant: tenant.clone(),
        role: Role::TenantAdmin,
        origin: Origin::default(),
    };
    for i in 0..1000 {
        governance
            .freezes
            .create(
                &tenant,
                FreezeKind::Principal,
                &format!("other-{i}"),
                "bench",
                "boss",
            )
            .await
            .unwrap();
    }
    let agent = Caller {
        tenant: tenant.clone(),
        ..Caller::agent("agent")
    };
    println!("\n{label}");

    let mut samples = Vec::new();
    for _ in 0..2000 {
        let started = Instant::now();
        let found = governance
            .freezes
            .check(
                &tenant,
                Subject {
                    principal: "agent",
                    session: Some("s-1"),
                    serial: None,
                },
            )
            .await
            .unwrap();
        samples.push(started.elapsed());
        assert!(found.is_none());
    }
    report("freeze check (1000 active freezes)", samples);

    let (mut hold, mut decide, mut collect) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..300 {
        let started = Instant::now();
        let pending = gateway
            .call(&agent, "run", json!({ "command": format!("x {i}") }))
            .await
            .unwrap();
        hold.push(started.elapsed());
        let id = pending["approval_id"].as_str().unwrap().to_owned();
        let started = Instant::now();
        governance
            .decide(&admin, &id, true, "bench", None)
            .await
            .unwrap();
        decide.push(started.elapsed());
        let started = Instant::now();
        let done = gateway
            .approval_status(&agent, &id, Duration::ZERO, &|_, _| {})
            .await
            .unwrap();
        collect.push(started.elapsed());
        assert_eq!(done["status"], "executed");
    }
    report("hold a call (approval row + audit record)", hold);
    report("decide (four eyes + audit record)", decide);
    report("collect (status + replay)", collect);

    let mut wake = Vec::new();
    for i in 0..50 {
        let pending = gateway
            .call(&agent, "run", json!({ "command": format!("w {i}") }))
            .await
            .unwrap();
        let id = pending["approval_id"].as_str().unwrap().to_owned();
        let waiter = {
            let (gateway, agent, id) = (gateway.clone(), agent.clone(), id.clone());
            tokio::spawn(async move {
                gateway
                    .approval_status(&agent, &id, Duration::from_secs(10), &|_, _| {})
                    .await
                    .unwrap();
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let decided = Instant::now();
        governance
            .decide(&admin, &id, true, "bench", None)
            .await
            .unwrap();
        let woke = waiter.await.unwrap();
        wake.push(woke.saturating_duration_since(decided));
    }
    report("decision -> waiting approval_status returns", wake);
    audit.shutdown().await.unwrap();
    store.close().await;
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    runtime.block_on(run("SQLite (WAL, synchronous=FULL)", &sqlite));
    if let Ok(url) = std::env::var("MEHO_TEST_DATABASE_URL") {
        runtime.block_on(run("PostgreSQL", &url));
    } else {
        println!("\n(PostgreSQL skipped: MEHO_TEST_DATABASE_URL is not set)");
    }
}
