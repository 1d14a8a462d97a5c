//! Appends link into per-tenant hash chains, and concurrent appends share transactions without
//! losing or duplicating a sequence number.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use meho_audit::{Appended, GENESIS_HASH, StoredRecord};

use crate::support::{Fixture, assert_verified, chain_hash, record};

/// Checks that `records` are exactly seq 1..=n of one chain, the records `appended` returned.
fn assert_chain(tenant: &str, records: &[StoredRecord], appended: &[Appended]) {
    assert_eq!(
        records.len(),
        appended.len(),
        "tenant `{tenant}`: every append is stored"
    );
    let mut prev = GENESIS_HASH.to_owned();
    for (index, (stored, done)) in records.iter().zip(appended).enumerate() {
        let seq = i64::try_from(index).unwrap() + 1;
        assert_eq!(stored.tenant, tenant);
        assert_eq!(stored.seq, seq, "tenant `{tenant}` has seq 1..n in order");
        assert_eq!(
            stored.id, done.id,
            "the stored record is the one acknowledged"
        );
        assert_eq!(
            done.seq, seq,
            "append returned the record's place in the chain"
        );
        assert_eq!(stored.hash, done.hash);
        assert_eq!(stored.ts, done.ts);
        assert_eq!(
            stored.prev_hash, prev,
            "tenant `{tenant}` seq {seq}: prev_hash is the hash of the record before it"
        );
        assert_eq!(
            stored.hash,
            chain_hash(&stored.prev_hash, stored),
            "tenant `{tenant}` seq {seq}: hash follows the documented formula"
        );
        prev.clone_from(&stored.hash);
    }
}

both_backends!(
    appends_link_into_per_tenant_chains,
    concurrent_appends_group_commit
);

/// Two tenants appended interleaved keep separate chains starting at the genesis hash.
async fn appends_link_into_per_tenant_chains(fx: Fixture) {
    let log = fx.start_log(1000).await;
    let mut appended: BTreeMap<&str, Vec<Appended>> = BTreeMap::new();
    // Interleaved: globex on every odd step up to 13 (7 records), acme on the rest (12).
    for i in 0..19 {
        let tenant = if i % 2 == 1 && i < 14 {
            "globex"
        } else {
            "acme"
        };
        let done = log.append(record(tenant, "alice", i)).await.unwrap();
        assert_eq!(done.tenant, tenant);
        appended.entry(tenant).or_default().push(done);
    }
    assert_eq!(appended["acme"].len(), 12);
    assert_eq!(appended["globex"].len(), 7);

    for (tenant, done) in &appended {
        assert_chain(tenant, &fx.records(tenant).await, done);
    }
    assert_ne!(
        appended["acme"][0].hash, appended["globex"][0].hash,
        "each chain has its own records"
    );

    log.shutdown().await.unwrap();
    let report = fx.verify().await;
    assert_verified(&report);
    assert_eq!(report.records(), 19);
    let summary: Vec<(&str, u64, i64)> = report
        .tenants
        .iter()
        .map(|t| (t.tenant.as_str(), t.records, t.head_seq))
        .collect();
    assert_eq!(summary, vec![("acme", 12, 12), ("globex", 7, 7)]);
    for tenant in &report.tenants {
        let last = appended[tenant.tenant.as_str()].last().unwrap();
        assert_eq!(tenant.head_hash, last.hash);
        assert_eq!(
            tenant.checkpointed_seq, last.seq,
            "shutdown checkpointed every tenant's head"
        );
        assert_eq!(tenant.database_checkpoints, 1);
        assert_eq!(tenant.witness_checkpoints, 1);
    }
}

/// 64 tasks × 40 appends at once: every append is acknowledged with its own place in its
/// tenant's chain, nothing is lost, and concurrent callers shared transactions.
async fn concurrent_appends_group_commit(fx: Fixture) {
    const TASKS: usize = 64;
    const PER_TASK: usize = 40;
    let log = Arc::new(fx.start_log(500).await);
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let log = log.clone();
        tasks.spawn(async move {
            let tenant = ["t0", "t1", "t2", "t3"][task % 4];
            let mut done = Vec::with_capacity(PER_TASK);
            for i in 0..PER_TASK {
                let principal = format!("agent-{task}");
                done.push(log.append(record(tenant, &principal, i)).await.unwrap());
            }
            done
        });
    }
    let mut all: Vec<Appended> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.unwrap());
    }
    assert_eq!(all.len(), TASKS * PER_TASK);

    let places: HashSet<(String, i64)> = all.iter().map(|a| (a.tenant.clone(), a.seq)).collect();
    assert_eq!(
        places.len(),
        all.len(),
        "every (tenant, seq) is acknowledged once"
    );
    let ids: HashSet<&str> = all.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), all.len(), "record ids are unique");

    for tenant in ["t0", "t1", "t2", "t3"] {
        let mut mine: Vec<Appended> = all.iter().filter(|a| a.tenant == tenant).cloned().collect();
        mine.sort_by_key(|a| a.seq);
        assert_eq!(mine.len(), TASKS / 4 * PER_TASK);
        assert_chain(tenant, &fx.records(tenant).await, &mine);
    }

    // Records committed in one transaction share its timestamp: with 64 concurrent callers
    // the writer must have committed some of them together.
    let stamps: BTreeSet<i64> = all.iter().map(|a| a.ts).collect();
    assert!(
        stamps.len() < all.len(),
        "{} appends in {} transactions: no group commit",
        all.len(),
        stamps.len()
    );

    log.shutdown().await.unwrap();
    let report = fx.verify().await;
    assert_verified(&report);
    assert_eq!(report.records(), u64::try_from(TASKS * PER_TASK).unwrap());
}
