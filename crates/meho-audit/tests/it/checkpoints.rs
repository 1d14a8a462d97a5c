//! Checkpoint cadence: every N records per tenant, at shutdown, continuing across restarts; the
//! database and the witness agree; without a key there are none.

use meho_audit::{AuditOptions, Checkpoint, Redactor};

use crate::support::{Fixture, assert_verified, record};

async fn store_checkpoints(fx: &Fixture, tenant: &str) -> Vec<Checkpoint> {
    fx.audit().checkpoints(tenant).await.unwrap()
}

fn witness_checkpoints(fx: &Fixture, tenant: &str) -> Vec<Checkpoint> {
    let (checkpoints, errors) = fx.witness.read().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    checkpoints
        .into_iter()
        .filter(|c| c.tenant == tenant)
        .collect()
}

fn seqs(checkpoints: &[Checkpoint]) -> Vec<i64> {
    checkpoints.iter().map(|c| c.seq).collect()
}

both_backends!(
    checkpoints_every_n_records_and_at_shutdown,
    no_key_means_no_checkpoints
);

/// Every 10 records: checkpoints at 10, 20, 30; shutdown adds 35; after a restart the count
/// continues from 35. Each one is signed, names the head at its seq, and is in both places.
async fn checkpoints_every_n_records_and_at_shutdown(fx: Fixture) {
    let log = fx.start_log(10).await;
    for i in 0..35 {
        log.append(record("acme", "alice", i)).await.unwrap();
    }
    // The writer handles one command at a time and checkpoints right after a commit, so once
    // a later append is acknowledged, the checkpoints due before it are written.
    log.append(record("barrier", "alice", 0)).await.unwrap();
    assert_eq!(
        seqs(&store_checkpoints(&fx, "acme").await),
        vec![10, 20, 30]
    );
    assert_eq!(
        store_checkpoints(&fx, "acme").await,
        witness_checkpoints(&fx, "acme")
    );
    assert!(store_checkpoints(&fx, "barrier").await.is_empty());

    let at_shutdown = log.shutdown().await.unwrap();
    let mut written: Vec<(String, i64)> = at_shutdown
        .iter()
        .map(|c| (c.tenant.clone(), c.seq))
        .collect();
    written.sort();
    assert_eq!(
        written,
        vec![("acme".to_owned(), 35), ("barrier".to_owned(), 1)]
    );
    let acme = store_checkpoints(&fx, "acme").await;
    assert_eq!(seqs(&acme), vec![10, 20, 30, 35]);
    assert_eq!(
        acme,
        witness_checkpoints(&fx, "acme"),
        "database and witness agree"
    );

    let records = fx.records("acme").await;
    for checkpoint in &acme {
        let head = &records[usize::try_from(checkpoint.seq - 1).unwrap()];
        assert_eq!(
            checkpoint.head_hash, head.hash,
            "checkpoint at {} names its head",
            checkpoint.seq
        );
        assert_eq!(checkpoint.key_id, fx.public.key_id());
        assert!(
            checkpoint.verify(&fx.public),
            "checkpoint at {} is signed",
            checkpoint.seq
        );
    }

    // A restarted log picks up the cadence from the last checkpoint, and a shutdown with
    // nothing new writes nothing.
    let log = fx.start_log(10).await;
    for i in 35..44 {
        log.append(record("acme", "alice", i)).await.unwrap();
    }
    log.append(record("barrier", "alice", 1)).await.unwrap();
    assert_eq!(
        seqs(&store_checkpoints(&fx, "acme").await),
        vec![10, 20, 30, 35]
    );
    log.append(record("acme", "alice", 44)).await.unwrap();
    log.append(record("barrier", "alice", 2)).await.unwrap();
    assert_eq!(
        seqs(&store_checkpoints(&fx, "acme").await),
        vec![10, 20, 30, 35, 45]
    );
    let at_shutdown = log.shutdown().await.unwrap();
    assert_eq!(
        seqs(&at_shutdown),
        vec![3],
        "only barrier had records since its checkpoint"
    );
    let log = fx.start_log(10).await;
    assert!(
        log.shutdown().await.unwrap().is_empty(),
        "nothing new, nothing written"
    );
    assert_eq!(
        store_checkpoints(&fx, "acme").await,
        witness_checkpoints(&fx, "acme")
    );

    let report = fx.verify().await;
    assert_verified(&report);
    let acme = report.tenants.iter().find(|t| t.tenant == "acme").unwrap();
    assert_eq!(
        (
            acme.records,
            acme.database_checkpoints,
            acme.witness_checkpoints,
            acme.checkpointed_seq
        ),
        (45, 5, 5, 45)
    );
}

/// Without a key no checkpoint is written anywhere, and verify still checks the chain.
async fn no_key_means_no_checkpoints(fx: Fixture) {
    let options = AuditOptions {
        witness: Some(fx.witness.clone()),
        checkpoint_every_records: 10,
        ..AuditOptions::new(Redactor::new::<&str>(&[]).unwrap())
    };
    let log = fx.start(options).await;
    for i in 0..35 {
        log.append(record("acme", "alice", i)).await.unwrap();
    }
    assert!(log.checkpoint_now().await.unwrap().is_empty());
    assert!(log.shutdown().await.unwrap().is_empty());
    assert!(store_checkpoints(&fx, "acme").await.is_empty());
    assert!(
        !fx.witness.path().exists(),
        "no witness lines without a key"
    );

    let report = fx.verify().await;
    assert_verified(&report);
    assert_eq!(report.records(), 35);
    assert_eq!(report.tenants[0].checkpointed_seq, 0);
    let unkeyed = crate::support::verify_with(fx.audit().as_ref(), None, &fx.witness).await;
    assert_verified(&unkeyed);
    assert_eq!(unkeyed.records(), 35);

    // The chain is still checked without checkpoints: an edit is caught.
    fx.disable_append_only().await;
    fx.exec("UPDATE audit_records SET action = 'noop' WHERE seq = 7")
        .await
        .unwrap();
    let report = fx.verify().await;
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    assert_eq!(report.problems[0].kind, meho_audit::ProblemKind::Modified);
    assert_eq!(report.problems[0].seq, Some(7));
}
