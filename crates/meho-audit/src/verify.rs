//! Offline verification: sequence continuity, the hash chain, checkpoint signatures, and the
//! database against the witness. Needs only the public key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::AuditError;
use crate::chain::links;
use crate::checkpoint::{AuditPublicKey, Checkpoint, WitnessLineError};
use crate::record::GENESIS_HASH;
use crate::store::AuditStore;

/// Records fetched per round trip while verifying.
const SCAN_PAGE: u32 = 10_000;

/// Where a checkpoint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointSource {
    /// The database's checkpoint table.
    Database,
    /// The witness file.
    Witness,
}

impl fmt::Display for CheckpointSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckpointSource::Database => "database",
            CheckpointSource::Witness => "witness",
        })
    }
}

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A sequence number is missing (a record was deleted) or out of place.
    SequenceGap,
    /// A record does not link to its predecessor (reordered, or inserted).
    BrokenLink,
    /// A record's content does not match its hash (edited).
    Modified,
    /// A checkpoint's signature is invalid (forged, or signed by another key).
    BadSignature,
    /// A valid checkpoint names a head hash the chain does not have (rewritten history).
    CheckpointMismatch,
    /// A valid checkpoint covers records the database no longer has (truncated or rolled back).
    Truncated,
    /// A witness line could not be read.
    WitnessUnreadable,
}

/// One finding, naming the record where the chain stops being trustworthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What kind of damage.
    pub kind: ProblemKind,
    /// The tenant.
    pub tenant: String,
    /// The first bad sequence number, if the problem has one.
    pub seq: Option<i64>,
    /// The first bad record's id, if it exists.
    pub record_id: Option<String>,
    /// A sentence saying what was found.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tenant `{}`", self.tenant)?;
        if let Some(seq) = self.seq {
            write!(f, " seq {seq}")?;
        }
        if let Some(id) = &self.record_id {
            write!(f, " (record {id})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What was checked for one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TenantSummary {
    /// The tenant.
    pub tenant: String,
    /// Records checked.
    pub records: u64,
    /// The last sequence number reached while the chain was intact.
    pub head_seq: i64,
    /// Its hash.
    pub head_hash: String,
    /// Database checkpoints checked.
    pub database_checkpoints: u64,
    /// Witness checkpoints checked.
    pub witness_checkpoints: u64,
    /// The highest seq any valid checkpoint vouches for.
    pub checkpointed_seq: i64,
}

/// The result of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Per tenant, in name order.
    pub tenants: Vec<TenantSummary>,
    /// Every problem, the first one per tenant first.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether nothing was wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Records checked across tenants.
    pub fn records(&self) -> u64 {
        self.tenants.iter().map(|t| t.records).sum()
    }
}

/// Everything `verify` checks against the store.
#[derive(Debug)]
pub struct VerifyInputs<'a> {
    /// The public audit key. Without it no checkpoint is trusted or checked, so truncation and
    /// rollback go undetected: callers should insist on a key (`meho audit verify` does).
    pub key: Option<&'a AuditPublicKey>,
    /// The witness file's checkpoints.
    pub witness: &'a [Checkpoint],
    /// Witness lines that did not parse.
    pub witness_errors: &'a [WitnessLineError],
}

/// Verifies every tenant's chain in `store` against its checkpoints and the witness.
pub async fn verify(
    store: &dyn AuditStore,
    inputs: VerifyInputs<'_>,
) -> Result<VerifyReport, AuditError> {
    let mut report = VerifyReport::default();
    for error in inputs.witness_errors {
        report.problems.push(Problem {
            kind: ProblemKind::WitnessUnreadable,
            tenant: String::new(),
            seq: None,
            record_id: None,
            message: format!(
                "witness line {} is unreadable: {}",
                error.line, error.message
            ),
        });
    }
    let mut tenants: BTreeSet<String> = store.tenants().await?.into_iter().collect();
    tenants.extend(inputs.witness.iter().map(|c| c.tenant.clone()));
    for tenant in tenants {
        let database = store.checkpoints(&tenant).await?;
        let witness: Vec<Checkpoint> = inputs
            .witness
            .iter()
            .filter(|c| c.tenant == tenant)
            .cloned()
            .collect();
        let summary = verify_tenant(
            store,
            &tenant,
            &database,
            &witness,
            inputs.key,
            &mut report.problems,
        )
        .await?;
        report.tenants.push(summary);
    }
    Ok(report)
}

async fn verify_tenant(
    store: &dyn AuditStore,
    tenant: &str,
    database: &[Checkpoint],
    witness: &[Checkpoint],
    key: Option<&AuditPublicKey>,
    problems: &mut Vec<Problem>,
) -> Result<TenantSummary, AuditError> {
    let mut summary = TenantSummary {
        tenant: tenant.to_owned(),
        database_checkpoints: database.len() as u64,
        witness_checkpoints: witness.len() as u64,
        head_hash: GENESIS_HASH.to_owned(),
        ..TenantSummary::default()
    };
    let problem = |kind, seq, record_id: Option<&str>, message: String| Problem {
        kind,
        tenant: tenant.to_owned(),
        seq,
        record_id: record_id.map(str::to_owned),
        message,
    };

    // Only checkpoints with a valid signature vouch for anything.
    let mut vouched: BTreeMap<i64, Vec<(CheckpointSource, &Checkpoint)>> = BTreeMap::new();
    let sources = database
        .iter()
        .map(|c| (CheckpointSource::Database, c))
        .chain(witness.iter().map(|c| (CheckpointSource::Witness, c)));
    for (source, checkpoint) in sources {
        match key {
            Some(key) if checkpoint.verify(key) => {
                vouched.entry(checkpoint.seq).or_default().push((source, checkpoint));
            }
            Some(_) => problems.push(problem(
                ProblemKind::BadSignature,
                Some(checkpoint.seq),
                None,
                format!(
                    "{source} checkpoint at seq {} has an invalid signature (forged, or signed by key `{}` instead of this audit key)",
                    checkpoint.seq, checkpoint.key_id
                ),
            )),
            None => {}
        }
    }
    summary.checkpointed_seq = vouched.keys().next_back().copied().unwrap_or(0);

    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut expected = 1_i64;
    let mut broken = false;
    let mut canonical = Vec::with_capacity(1024);
    let mut rows = store.scan(tenant, 0, SCAN_PAGE).await?;
    'scan: while !rows.is_empty() {
        // Fetch the next page while this one is checked: the store works on its own thread.
        let next_after = rows.last().map_or(0, |r| r.seq);
        let full = rows.len() == SCAN_PAGE as usize;
        let next = async {
            if full {
                store.scan(tenant, next_after, SCAN_PAGE).await
            } else {
                Ok(Vec::new())
            }
        };
        let check = async {
            for row in &rows {
                if row.seq != expected {
                    let message = if row.seq > expected {
                        format!(
                            "records missing: expected seq {expected}, the next record is seq {} (deleted rows)",
                            row.seq
                        )
                    } else {
                        format!(
                            "seq {} appears out of order after seq {}",
                            row.seq,
                            expected - 1
                        )
                    };
                    return Some(problem(
                        ProblemKind::SequenceGap,
                        Some(expected),
                        Some(&row.id),
                        message,
                    ));
                }
                if row.prev_hash != prev_hash {
                    return Some(problem(
                        ProblemKind::BrokenLink,
                        Some(row.seq),
                        Some(&row.id),
                        format!(
                            "does not link to seq {}: its prev_hash is not the hash of the record before it (records reordered, replaced or inserted)",
                            row.seq - 1
                        ),
                    ));
                }
                canonical.clear();
                row.fields().write_canonical(&mut canonical);
                if !links(&prev_hash, &canonical, &row.hash) {
                    return Some(problem(
                        ProblemKind::Modified,
                        Some(row.seq),
                        Some(&row.id),
                        "its content does not match its hash (the record was edited)".to_owned(),
                    ));
                }
                if let Some(checkpoints) = vouched.get(&row.seq) {
                    for (source, checkpoint) in checkpoints {
                        if checkpoint.head_hash != row.hash {
                            return Some(problem(
                                ProblemKind::CheckpointMismatch,
                                Some(row.seq),
                                Some(&row.id),
                                format!(
                                    "the signed {source} checkpoint at this seq names head {}, but the chain has {} (history was rewritten)",
                                    checkpoint.head_hash, row.hash
                                ),
                            ));
                        }
                    }
                }
                prev_hash.clear();
                prev_hash.push_str(&row.hash);
                summary.records += 1;
                summary.head_seq = row.seq;
                expected += 1;
            }
            None
        };
        let (next, found) = tokio::join!(next, check);
        if let Some(found) = found {
            problems.push(found);
            broken = true;
            break 'scan;
        }
        rows = next?;
    }
    summary.head_hash = prev_hash;

    if !broken && let Some((&seq, checkpoints)) = vouched.range(expected..).next() {
        let sources: Vec<String> = checkpoints.iter().map(|(s, _)| s.to_string()).collect();
        problems.push(problem(
            ProblemKind::Truncated,
            Some(expected),
            None,
            format!(
                "the database ends at seq {}, but a signed {} checkpoint covers seq {seq}: records were cut off or the database was rolled back to an older copy",
                expected - 1,
                sources.join(" and ")
            ),
        ));
    }
    Ok(summary)
}
