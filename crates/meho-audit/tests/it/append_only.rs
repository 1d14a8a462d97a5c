//! The database itself refuses to rewrite audit history while its triggers are in place.

use crate::support::{Backend, Fixture, assert_verified, record};

/// Runs `sql`, which the database must refuse as append-only.
async fn refused(fx: &Fixture, sql: &str) {
    let err = fx
        .exec(sql)
        .await
        .err()
        .unwrap_or_else(|| panic!("the database accepted `{sql}` on an append-only table"));
    let text = err.to_string();
    assert!(
        text.contains("append-only"),
        "`{sql}` was refused, but not as append-only: {text}"
    );
}

both_backends!(database_refuses_update_delete_and_truncate);

/// UPDATE and DELETE (and on PostgreSQL TRUNCATE) on both audit tables are refused, and the
/// refused statements change nothing.
async fn database_refuses_update_delete_and_truncate(fx: Fixture) {
    let log = fx.start_log(1000).await;
    for i in 0..5 {
        log.append(record("acme", "alice", i)).await.unwrap();
    }
    let checkpoints = log.checkpoint_now().await.unwrap();
    assert_eq!(checkpoints.len(), 1);
    let before = fx.records("acme").await;

    for sql in [
        "UPDATE audit_records SET principal = 'mallory' WHERE seq = 3",
        "UPDATE audit_records SET body = '{}'",
        "DELETE FROM audit_records WHERE seq = 5",
        "DELETE FROM audit_records",
        "UPDATE audit_checkpoints SET seq = 1",
        "DELETE FROM audit_checkpoints",
    ] {
        refused(&fx, sql).await;
    }
    if fx.backend == Backend::Postgres {
        refused(&fx, "TRUNCATE audit_records").await;
        refused(&fx, "TRUNCATE audit_checkpoints").await;
        refused(&fx, "TRUNCATE audit_records, audit_checkpoints").await;
    }

    assert_eq!(fx.records("acme").await, before, "nothing changed");
    assert_eq!(fx.audit().checkpoints("acme").await.unwrap(), checkpoints);
    // Appending (INSERT) still works.
    let next = log.append(record("acme", "alice", 5)).await.unwrap();
    assert_eq!(next.seq, 6);
    log.shutdown().await.unwrap();
    assert_verified(&fx.verify().await);
}
