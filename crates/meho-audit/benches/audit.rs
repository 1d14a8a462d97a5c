//! The audit-log figures issue #3 asks for:
//! - appends/s with 1, 8 and 64 concurrent writers on SQLite and on PostgreSQL, chain and
//!   checkpoints on (a signed checkpoint every 1000 records, plus the witness file);
//! - `verify` rate in records/s over 1M records.
//!
//! Run: `cargo bench -p meho-audit --bench audit`. PostgreSQL comes from `MEHO_TEST_DATABASE_URL`
//! (default `postgres://root@127.0.0.1:5432/postgres`); each run uses a fresh database and drops
//! it. `MEHO_BENCH_SECONDS` (default 3) sets each append measurement; `MEHO_BENCH_VERIFY_RECORDS`
//! (default 1000000) the verify corpus.

// A bench binary, like a test: a broken setup should stop it loudly.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::panic
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use meho_audit::{
    AuditKey, AuditLog, AuditOptions, InProcessBus, NewRecord, RecordKind, Redactor, VerifyInputs,
    Witness,
};
use meho_store::Store;
use serde_json::json;
use sqlx::Connection as _;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn record(writer: usize, n: u64) -> NewRecord {
    NewRecord {
        target: Some(format!("web{}", writer % 8)),
        action: Some("ssh_execute".to_owned()),
        outcome: Some("allowed".to_owned()),
        call_id: Some(format!("call-{writer}-{n}")),
        body: json!({
            "arguments": { "command": "journalctl -u nginx --since '1 hour ago' | tail -n 50" },
            "decision": { "allowed": true, "rule": "allow:^journalctl\\s", "tier": "read" },
        }),
        ..NewRecord::new(
            "default",
            RecordKind::Intent,
            format!("agent-{}", writer % 4),
        )
    }
}

async fn start(
    store: &Store,
    dir: &std::path::Path,
) -> (Arc<AuditLog>, meho_audit::AuditPublicKey) {
    let key = AuditKey::generate().unwrap();
    let public = key.public().clone();
    let mut options = AuditOptions::new(Redactor::new::<&str>(&[]).unwrap());
    options.key = Some(key);
    options.witness = Some(Witness::new(dir.join("witness.jsonl")));
    options.checkpoint_every_records = 1000;
    let log = AuditLog::start(
        meho_audit::store::open(store),
        Arc::new(InProcessBus::new()),
        options,
    )
    .await
    .unwrap();
    (Arc::new(log), public)
}

/// Appends from `writers` concurrent tasks for `seconds`; returns acknowledged appends per second.
async fn appends_per_second(log: &Arc<AuditLog>, writers: usize, seconds: u64) -> f64 {
    let acked = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let log = log.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < deadline {
                log.append(record(writer, n)).await.unwrap();
                acked.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    acked.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Appends `total` records as fast as 64 writers can, for the verify corpus.
async fn fill(log: &Arc<AuditLog>, total: u64) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for writer in 0..64 {
        let log = log.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                log.append(record(writer, n)).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

async fn verify_rate(
    store: &Store,
    dir: &std::path::Path,
    public: &meho_audit::AuditPublicKey,
) -> (u64, f64) {
    let (witness, errors) = Witness::new(dir.join("witness.jsonl")).read().unwrap();
    let audit = meho_audit::store::open(store);
    let started = Instant::now();
    let report = meho_audit::verify(
        audit.as_ref(),
        VerifyInputs {
            key: Some(public),
            witness: &witness,
            witness_errors: &errors,
        },
    )
    .await
    .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(report.is_ok(), "{:?}", report.problems);
    (report.records(), report.records() as f64 / elapsed)
}

async fn bench_backend(
    name: &str,
    url: &str,
    dir: &std::path::Path,
    seconds: u64,
    verify_records: u64,
) {
    for writers in [1, 8, 64] {
        let sub = dir.join(format!("{name}-{writers}"));
        std::fs::create_dir_all(&sub).unwrap();
        let store = Store::open(&url.replace("{n}", &writers.to_string()))
            .await
            .unwrap();
        let (log, _) = start(&store, &sub).await;
        let rate = appends_per_second(&log, writers, seconds).await;
        log.shutdown().await.unwrap();
        println!(
            "{name}: {writers:>2} writer(s): {rate:>9.0} appends/s (durable, chained, checkpointed)"
        );
        store.close().await;
    }
    if verify_records > 0 {
        let sub = dir.join(format!("{name}-verify"));
        std::fs::create_dir_all(&sub).unwrap();
        let store = Store::open(&url.replace("{n}", "verify")).await.unwrap();
        let (log, public) = start(&store, &sub).await;
        let started = Instant::now();
        fill(&log, verify_records).await;
        let fill_rate = verify_records as f64 / started.elapsed().as_secs_f64();
        log.shutdown().await.unwrap();
        let (records, rate) = verify_rate(&store, &sub, &public).await;
        println!(
            "{name}: verify: {records} records at {rate:.0} records/s (corpus written at {fill_rate:.0} appends/s by 64 writers)"
        );
        store.close().await;
    }
}

async fn postgres_databases(
    admin: &str,
    names: &[String],
    create: bool,
) -> Result<(), sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    for name in names {
        let sql = if create {
            format!("CREATE DATABASE {name}")
        } else {
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await
}

fn main() {
    // `cargo test --all-targets` builds benches and runs them without `--bench`: do nothing then.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let seconds = env_u64("MEHO_BENCH_SECONDS", 3);
    let verify_records = env_u64("MEHO_BENCH_VERIFY_RECORDS", 1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        println!(
            "machine: {} cpus; each append figure is a {seconds}s run",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let sqlite_url = format!("sqlite://{}/sqlite-{{n}}.db", dir.path().display());
        bench_backend("sqlite", &sqlite_url, dir.path(), seconds, verify_records).await;

        let admin = std::env::var("MEHO_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".to_owned());
        let prefix = format!("meho_bench_{}", std::process::id());
        let names: Vec<String> = ["1", "8", "64", "verify"]
            .iter()
            .map(|n| format!("{prefix}_{n}"))
            .collect();
        match postgres_databases(&admin, &names, true).await {
            Ok(()) => {
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                let pg_url = format!("{base}/{prefix}_{{n}}");
                // Verify over the same corpus size on PostgreSQL would double the run; 200k is
                // enough to give its rate.
                bench_backend(
                    "postgres",
                    &pg_url,
                    dir.path(),
                    seconds,
                    verify_records.min(200_000),
                )
                .await;
                let _ = postgres_databases(&admin, &names, false).await;
            }
            Err(err) => eprintln!("postgres: SKIPPED, cannot create bench databases: {err}"),
        }
    });
}
