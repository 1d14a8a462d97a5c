//! An attacker with database access disables the append-only triggers and rewrites history;
//! `verify` must fail and name the record where the chain stops being trustworthy.

use std::collections::BTreeSet;

use meho_audit::{AuditKey, ProblemKind, StoredRecord};
use meho_store::Store;
use serde_json::Value;

use crate::support::{
    Fixture, assert_verified, chain_hash, problems_of, record, verify_with, witness_path,
};

/// 20 records of `acme` and 5 of `other`, checkpointed at shutdown (acme@20, other@5), verified
/// clean; then the triggers are dropped. Returns acme's records.
async fn tamperable(fx: &Fixture) -> Vec<StoredRecord> {
    let log = fx.start_log(1000).await;
    for i in 0..20 {
        log.append(record("acme", "alice", i)).await.unwrap();
    }
    for i in 0..5 {
        log.append(record("other", "bob", i)).await.unwrap();
    }
    log.shutdown().await.unwrap();
    assert_verified(&fx.verify().await);
    fx.disable_append_only().await;
    let acme = fx.records("acme").await;
    assert_eq!(acme.len(), 20);
    acme
}

/// Runs one tampering statement, which must hit exactly `rows` rows.
async fn tamper(fx: &Fixture, sql: &str, rows: u64) {
    assert_eq!(fx.exec(sql).await.unwrap(), rows, "tampering with `{sql}`");
}

/// Rewrites one witness line with `edit`.
fn edit_witness_line(fx: &Fixture, tenant: &str, edit: impl Fn(&mut Value) -> Option<String>) {
    let path = witness_path(fx);
    let text = std::fs::read_to_string(path).unwrap();
    let mut edited = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let mut value: Value = serde_json::from_str(line).unwrap();
            if value["tenant"] == tenant {
                edited += 1;
                match edit(&mut value) {
                    Some(raw) => raw,
                    None => value.to_string(),
                }
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert_eq!(edited, 1, "the witness has one line for `{tenant}`");
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

both_backends!(
    edited_principal_is_modified,
    edited_body_is_modified,
    deleted_row_is_a_sequence_gap,
    swapped_rows_break_the_chain,
    truncated_tail_is_caught,
    truncated_tail_and_checkpoints_is_caught_by_the_witness,
    rewritten_history_with_recomputed_hashes_mismatches_the_checkpoint,
    rollback_to_an_older_copy_is_truncation,
    checkpoint_signed_by_another_key_is_bad_signature,
    altered_checkpoint_with_valid_key_id_is_bad_signature,
    altered_witness_line_is_bad_signature,
    garbled_witness_line_is_unreadable,
    wrong_public_key_rejects_every_checkpoint
);

/// Editing one field of a middle record is caught at that record.
async fn edited_principal_is_modified(fx: Fixture) {
    let acme = tamperable(&fx).await;
    tamper(
        &fx,
        "UPDATE audit_records SET principal = 'mallory' WHERE tenant = 'acme' AND seq = 10",
        1,
    )
    .await;

    let report = fx.verify().await;
    let problems = problems_of(&report, "acme");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].kind, ProblemKind::Modified);
    assert_eq!(problems[0].seq, Some(10));
    assert_eq!(problems[0].record_id.as_deref(), Some(acme[9].id.as_str()));
    let summary = report.tenants.iter().find(|t| t.tenant == "acme").unwrap();
    assert_eq!(summary.head_seq, 9, "the chain is trustworthy up to seq 9");
}

/// Editing a middle record's body is caught at that record.
async fn edited_body_is_modified(fx: Fixture) {
    let acme = tamperable(&fx).await;
    let original: Value = serde_json::from_str(&acme[9].body).unwrap();
    assert_eq!(original["command"], "systemctl restart app-9");
    tamper(
        &fx,
        r#"UPDATE audit_records SET body = '{"command":"true","i":9}' WHERE tenant = 'acme' AND seq = 10"#,
        1,
    )
    .await;

    let report = fx.verify().await;
    let problems = problems_of(&report, "acme");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].kind, ProblemKind::Modified);
    assert_eq!(problems[0].seq, Some(10));
    assert_eq!(problems[0].record_id.as_deref(), Some(acme[9].id.as_str()));
}

/// Deleting a middle row leaves a gap at its sequence number.
async fn deleted_row_is_a_sequence_gap(fx: Fixture) {
    let acme = tamperable(&fx).await;
    tamper(
        &fx,
        "DELETE FROM audit_records WHERE tenant = 'acme' AND seq = 10",
        1,
    )
    .await;

    let report = fx.verify().await;
    let problems = problems_of(&report, "acme");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].kind, ProblemKind::SequenceGap);
    assert_eq!(problems[0].seq, Some(10), "the missing seq is named");
    assert_eq!(
        problems[0].record_id.as_deref(),
        Some(acme[10].id.as_str()),
        "the record found in its place (seq 11) is named"
    );
}

/// Swapping two records' places is caught at the lower one.
async fn swapped_rows_break_the_chain(fx: Fixture) {
    let acme = tamperable(&fx).await;
    tamper(
        &fx,
        "UPDATE audit_records SET seq = -1 WHERE tenant = 'acme' AND seq = 5",
        1,
    )
    .await;
    tamper(
        &fx,
        "UPDATE audit_records SET seq = 5 WHERE tenant = 'acme' AND seq = 12",
        1,
    )
    .await;
    tamper(
        &fx,
        "UPDATE audit_records SET seq = 12 WHERE tenant = 'acme' AND seq = -1",
        1,
    )
    .await;
    let swapped = fx.records("acme").await;
    assert_eq!(swapped[4].id, acme[11].id, "the swap happened");

    let report = fx.verify().await;
    let problems = problems_of(&report, "acme");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].kind, ProblemKind::BrokenLink);
    assert_eq!(problems[0].seq, Some(5));
    assert_eq!(problems[0].record_id.as_deref(), Some(acme[11].id.as_str()));
}

/// Cutting off the tail that a checkpoint covers is truncation.
async fn truncated_tail_is_caught(fx: Fixture) {
    tamperable(&fx).await;
    tamper(
        &fx,
        "DELETE FROM audit_records WHERE tenant = 'acme' AND seq > 17",
        3,
    )
    .await;

    let report = fx.verify().await;
    let problems = problems_of(&report, "acme");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].kind, ProblemKind::Truncated);
    assert_eq!(problems[0].seq, Some(18), "the first missing seq is named");
    assert_eq!(problems[0].record_id, None);
    assert!(
        problems[0]
            .message
            .contains("database and witness checkpoint covers seq 20"),
        "{}",
        problems[0].message
    );
}

/// Cutting off the tail and deleting the database's checkpoints too: the witness remembers.
async fn truncated_tail_and_checkpoints_is_caught_by_the_witness(fx: Fixture) {
    tamperable(&fx).await;
    tamper(
        &fx,
        "DELETE FROM audit_records WHERE tenant = 'acme' AND seq > 17",
        3,
    )
    .await;
    tamper(
        &fx,
        "DELETE FROM audit_checkpoints WHERE tenant = 'acme'",
        1,
    )
    .await;

    let report = fx.verify().await;
    let problems = problems_of(&report, "acme");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].kind, ProblemKind::Truncated);
    assert_eq!(problems[0].seq, Some(18));
    assert!(
        problems[0]
            .message
            .contains("signed witness checkpoint covers seq 20"),
        "{}",
        problems[0].message
    );
}

/// Rewriting history with recomputed hashes keeps the chain consistent, but the signed
/// checkpoint of the old head no longer matches.
async fn rewritten_history_with_recomputed_hashes_mismatches_the_checkpoint(fx: Fixture) {
    let acme = tamperable(&fx).await;
    let mut prev = acme[8].hash.clone();
    for original in &acme[9..] {
        let mut forged = original.clone();
        if forged.seq == 10 {
            forged.principal = "mallory".to_owned();
        }
        forged.prev_hash.clone_from(&prev);
        forged.hash = chain_hash(&prev, &forged);
        tamper(
            &fx,
            &format!(
                "UPDATE audit_records SET principal = '{}', prev_hash = '{}', hash = '{}' WHERE id = '{}'",
                forged.principal, forged.prev_hash, forged.hash, forged.id
            ),
            1,
        )
        .await;
        prev = forged.hash;
    }

    let report = fx.verify().await;
    let problems = problems_of(&report, "acme");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].kind, ProblemKind::CheckpointMismatch);
    assert_eq!(problems[0].seq, Some(20));
    assert_eq!(problems[0].record_id.as_deref(), Some(acme[19].id.as_str()));
}

/// A database rolled back to an older copy no longer reaches the witness's latest checkpoint.
async fn rollback_to_an_older_copy_is_truncation(mut fx: Fixture) {
    let log = fx.start_log(1000).await;
    for i in 0..10 {
        log.append(record("acme", "alice", i)).await.unwrap();
    }
    for i in 0..3 {
        log.append(record("other", "bob", i)).await.unwrap();
    }
    log.shutdown().await.unwrap();
    let old_url = fx.snapshot("old").await;

    let log = fx.start_log(1000).await;
    for i in 10..20 {
        log.append(record("acme", "alice", i)).await.unwrap();
    }
    log.shutdown().await.unwrap();
    assert_verified(&fx.verify().await);

    let old = Store::open(&old_url).await.unwrap();
    let report = verify_with(
        meho_audit::store::open(&old).as_ref(),
        Some(&fx.public),
        &fx.witness,
    )
    .await;
    old.close().await;
    let problems = problems_of(&report, "acme");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].kind, ProblemKind::Truncated);
    assert_eq!(problems[0].seq, Some(11));
    assert!(
        problems[0]
            .message
            .contains("witness checkpoint covers seq 20"),
        "{}",
        problems[0].message
    );
}

/// Checkpoints signed by another key are reported, and vouch for nothing (no truncation is
/// claimed from a forged checkpoint past the end).
async fn checkpoint_signed_by_another_key_is_bad_signature(fx: Fixture) {
    let acme = tamperable(&fx).await;
    let mallory = AuditKey::generate().unwrap();
    let audit = fx.audit();
    audit
        .insert_checkpoint(&mallory.checkpoint("acme", 20, &acme[19].hash, acme[19].ts))
        .await
        .unwrap();
    audit
        .insert_checkpoint(&mallory.checkpoint("acme", 30, &acme[19].hash, acme[19].ts))
        .await
        .unwrap();

    let report = fx.verify().await;
    let problems = problems_of(&report, "acme");
    assert_eq!(problems.len(), 2, "{problems:#?}");
    let seqs: BTreeSet<Option<i64>> = problems.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, BTreeSet::from([Some(20), Some(30)]));
    for problem in &problems {
        assert_eq!(problem.kind, ProblemKind::BadSignature);
        assert!(
            problem.message.contains("database checkpoint"),
            "{}",
            problem.message
        );
        assert!(
            problem.message.contains(mallory.public().key_id()),
            "{}",
            problem.message
        );
    }
}

/// A real checkpoint with its key id but an altered head hash or seq is a bad signature.
async fn altered_checkpoint_with_valid_key_id_is_bad_signature(fx: Fixture) {
    let acme = tamperable(&fx).await;
    let audit = fx.audit();
    let real = audit.checkpoints("acme").await.unwrap();
    assert_eq!(real.len(), 1);
    let real = &real[0];
    assert_eq!((real.seq, real.key_id.as_str()), (20, fx.public.key_id()));

    let mut other_head = real.clone();
    other_head.head_hash.clone_from(&acme[9].hash);
    let mut other_seq = real.clone();
    other_seq.seq = 19;
    let mut beyond = real.clone();
    beyond.seq = 25;
    for forged in [&other_head, &other_seq, &beyond] {
        audit.insert_checkpoint(forged).await.unwrap();
    }

    let report = fx.verify().await;
    let problems = problems_of(&report, "acme");
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems.iter().all(|p| p.kind == ProblemKind::BadSignature),
        "{problems:#?}"
    );
    let seqs: BTreeSet<Option<i64>> = problems.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, BTreeSet::from([Some(19), Some(20), Some(25)]));
}

/// An edited witness line no longer carries a valid signature.
async fn altered_witness_line_is_bad_signature(fx: Fixture) {
    tamperable(&fx).await;
    edit_witness_line(&fx, "acme", |line| {
        line["seq"] = Value::from(21);
        None
    });

    let report = fx.verify().await;
    let problems = problems_of(&report, "acme");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].kind, ProblemKind::BadSignature);
    assert_eq!(problems[0].seq, Some(21));
    assert!(
        problems[0].message.contains("witness checkpoint"),
        "{}",
        problems[0].message
    );
}

/// An edited witness line that is no longer a checkpoint is reported as unreadable.
async fn garbled_witness_line_is_unreadable(fx: Fixture) {
    tamperable(&fx).await;
    edit_witness_line(&fx, "acme", |line| {
        Some(line.to_string().replace("\"seq\":20", "\"seq\":twenty"))
    });

    let report = fx.verify().await;
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    assert_eq!(report.problems[0].kind, ProblemKind::WitnessUnreadable);
    assert!(
        report.problems[0].message.contains("witness line"),
        "{}",
        report.problems[0].message
    );
}

/// Verifying with the wrong public key distrusts every checkpoint, in the database and in
/// the witness.
async fn wrong_public_key_rejects_every_checkpoint(fx: Fixture) {
    let log = fx.start_log(5).await;
    for i in 0..20 {
        log.append(record("acme", "alice", i)).await.unwrap();
    }
    for i in 0..5 {
        log.append(record("other", "bob", i)).await.unwrap();
    }
    log.shutdown().await.unwrap();
    assert_verified(&fx.verify().await);

    let stranger = AuditKey::generate().unwrap();
    let report = verify_with(fx.audit().as_ref(), Some(stranger.public()), &fx.witness).await;
    let (witness, _) = fx.witness.read().unwrap();
    let mut expected: Vec<(String, &str, i64)> = Vec::new();
    for tenant in ["acme", "other"] {
        for checkpoint in fx.audit().checkpoints(tenant).await.unwrap() {
            expected.push((tenant.to_owned(), "database", checkpoint.seq));
        }
    }
    for checkpoint in &witness {
        expected.push((checkpoint.tenant.clone(), "witness", checkpoint.seq));
    }
    assert_eq!(
        expected.len(),
        10,
        "acme@5,10,15,20 and other@5, in both places"
    );
    let mut reported: Vec<(String, &str, i64)> = report
        .problems
        .iter()
        .map(|p| {
            assert_eq!(p.kind, ProblemKind::BadSignature, "{p:#?}");
            let source = if p.message.starts_with("database") {
                "database"
            } else {
                "witness"
            };
            (p.tenant.clone(), source, p.seq.unwrap())
        })
        .collect();
    reported.sort();
    expected.sort();
    assert_eq!(reported, expected);
    for summary in &report.tenants {
        assert_eq!(
            summary.checkpointed_seq, 0,
            "no checkpoint vouches for anything"
        );
    }
    assert_eq!(report.records(), 25, "the chains themselves still verify");
}
