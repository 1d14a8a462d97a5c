//! Fail closed: when the store cannot take a record, the caller gets an error and no
//! `IntentReceipt`, and nothing is stored; a stopped log refuses everything.

use std::str::FromStr;
use std::sync::Arc;

use meho_audit::{AuditError, AuditLog, CallOutcome, Filter, InProcessBus, Page, StoredRecord};
use meho_store::Store;
use serde_json::json;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

use crate::support::{
    Fixture, allowed_decision, assert_verified, call, exec_pool, hang_guard, record, within,
};

async fn by_call_id(log: &AuditLog, call_id: &str) -> Vec<StoredRecord> {
    let filter = Filter {
        call_id: Some(call_id.to_owned()),
        ..Filter::default()
    };
    log.query(
        &filter,
        Page::Newest {
            before: None,
            limit: 100,
        },
    )
    .await
    .unwrap()
}

/// SQLite: another connection holds the write lock past the busy timeout, so the intent cannot
/// commit. `record_intent` fails (no receipt), nothing is stored, and the log recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_database_refuses_the_intent() {
    hang_guard(async {
        let fx = Fixture::sqlite().await;
        let log = fx.start_log(1000).await;
        log.append(record("acme", "alice", 0)).await.unwrap();

        let mut blocker =
            SqliteConnection::connect_with(&SqliteConnectOptions::from_str(&fx.url).unwrap())
                .await
                .unwrap();
        sqlx::raw_sql("BEGIN EXCLUSIVE")
            .execute(&mut blocker)
            .await
            .unwrap();
        let result = within(
            60,
            "record_intent against a locked database",
            log.record_intent(
                &call("acme", "call-locked"),
                json!({"command": "uptime"}),
                &allowed_decision(),
            ),
        )
        .await;
        let err = result.expect_err("an intent that could not be stored must not yield a receipt");
        assert!(matches!(err, AuditError::Store(_)), "{err:?}");
        assert!(err.to_string().contains("audit store failed"), "{err}");
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut blocker)
            .await
            .unwrap();
        blocker.close().await.unwrap();

        assert!(
            by_call_id(&log, "call-locked").await.is_empty(),
            "the refused intent is not stored"
        );
        assert_eq!(fx.records("acme").await.len(), 1);

        // Once the lock is gone, the log takes intents again and the chain continues unbroken.
        let receipt = log
            .record_intent(
                &call("acme", "call-after"),
                json!({"command": "uptime"}),
                &allowed_decision(),
            )
            .await
            .unwrap();
        assert_eq!(receipt.intent().seq, 2);
        let outcome = log
            .record_outcome(
                receipt,
                &CallOutcome {
                    exit_status: Some(0),
                    ..CallOutcome::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(outcome.seq, 3);
        log.shutdown().await.unwrap();
        let report = fx.verify().await;
        assert_verified(&report);
        assert_eq!(report.records(), 3);
    })
    .await;
}

/// PostgreSQL: the log runs as a role with only SELECT/INSERT on the audit tables. Once INSERT
/// is revoked, appends and intents fail and store nothing; re-granting it recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revoked_insert_refuses_the_intent() {
    let Some(mut fx) = Fixture::postgres().await else {
        return;
    };
    hang_guard(async move {
        let (role, url) = fx.create_pg_role("writer").await;
        // Opening a store runs the migrator, whose `CREATE TABLE IF NOT EXISTS _sqlx_migrations`
        // needs CREATE on the schema even when the table exists.
        fx.exec(&format!(
            "GRANT USAGE, CREATE ON SCHEMA public TO \"{role}\"; \
             GRANT SELECT ON _sqlx_migrations TO \"{role}\"; \
             GRANT SELECT, INSERT ON instance TO \"{role}\"; \
             GRANT SELECT, INSERT ON audit_records, audit_checkpoints TO \"{role}\"; \
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO \"{role}\";"
        ))
        .await
        .unwrap();
        let limited = Store::open(&url).await.unwrap();
        // The role really is limited: it can neither rewrite history nor lift the triggers.
        for sql in [
            "ALTER TABLE audit_records DISABLE TRIGGER USER",
            "TRUNCATE audit_records",
        ] {
            let err = exec_pool(limited.pool(), sql).await.expect_err(sql);
            assert!(
                err.to_string().contains("must be owner")
                    || err.to_string().contains("permission denied"),
                "{sql}: {err}"
            );
        }
        let log = AuditLog::start(
            meho_audit::store::open(&limited),
            Arc::new(InProcessBus::new()),
            fx.options(1000),
        )
        .await
        .unwrap();
        let first = log.append(record("acme", "alice", 0)).await.unwrap();
        assert_eq!(first.seq, 1);

        fx.exec(&format!("REVOKE INSERT ON audit_records FROM \"{role}\""))
            .await
            .unwrap();
        let err = log
            .record_intent(
                &call("acme", "call-revoked"),
                json!({"command": "uptime"}),
                &allowed_decision(),
            )
            .await
            .expect_err("an intent that could not be stored must not yield a receipt");
        assert!(matches!(err, AuditError::Store(_)), "{err:?}");
        let err = log
            .append(record("acme", "alice", 1))
            .await
            .expect_err("append without INSERT");
        assert!(matches!(err, AuditError::Store(_)), "{err:?}");
        let cause = std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(cause.contains("permission denied"), "{cause}");

        assert!(
            by_call_id(&log, "call-revoked").await.is_empty(),
            "the refused intent is not stored"
        );
        assert_eq!(fx.records("acme").await.len(), 1, "nothing new is stored");

        fx.exec(&format!("GRANT INSERT ON audit_records TO \"{role}\""))
            .await
            .unwrap();
        let receipt = log
            .record_intent(
                &call("acme", "call-granted"),
                json!({"command": "uptime"}),
                &allowed_decision(),
            )
            .await
            .unwrap();
        assert_eq!(receipt.intent().seq, 2, "the chain continues without a gap");
        drop(receipt);
        log.shutdown().await.unwrap();
        limited.close().await;
        let report = fx.verify().await;
        assert_verified(&report);
        assert_eq!(report.records(), 2);
    })
    .await;
}

both_backends!(shut_down_log_refuses_appends);

/// After `shutdown()` every write is refused with `AuditError::Closed`, and nothing is stored.
async fn shut_down_log_refuses_appends(fx: Fixture) {
    let log = fx.start_log(1000).await;
    log.append(record("acme", "alice", 0)).await.unwrap();
    log.shutdown().await.unwrap();

    let err = log.append(record("acme", "alice", 1)).await.unwrap_err();
    assert!(matches!(err, AuditError::Closed), "{err:?}");
    let err = log
        .record_intent(&call("acme", "call-closed"), json!({}), &allowed_decision())
        .await
        .expect_err("a stopped log must not yield a receipt");
    assert!(matches!(err, AuditError::Closed), "{err:?}");
    let err = log
        .announce("acme", "agent-7", "deploy", &[], meho_core::Tier::Write, 60)
        .await
        .unwrap_err();
    assert!(matches!(err, AuditError::Closed), "{err:?}");
    assert!(matches!(
        log.checkpoint_now().await,
        Err(AuditError::Closed)
    ));
    assert!(matches!(log.shutdown().await, Err(AuditError::Closed)));

    assert_eq!(
        fx.records("acme").await.len(),
        1,
        "nothing was stored after shutdown"
    );
    assert!(by_call_id(&log, "call-closed").await.is_empty());
    assert_verified(&fx.verify().await);
}
