//! Offline verification: sequence continuity, the hash chain, checkpoint signatures, and the
//! database against the witness. Needs only the public key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::AuditError;
use crate::chain::links;
use crate::checkpoint::{AuditPublicKey, Checkpoint, WitnessLineError};
use crate::record::{GENESIS_HASH, Record, RecordFields};
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

/// Verifies one tenant's chain: what a tenant may see of [`verify`] (the REST verify status).
pub async fn verify_tenant_chain(
    store: &dyn AuditStore,
    tenant: &str,
    inputs: VerifyInputs<'_>,
) -> Result<VerifyReport, AuditError> {
    let mut report = VerifyReport::default();
    let database = store.checkpoints(tenant).await?;
    let witness: Vec<Checkpoint> = inputs
        .witness
        .iter()
        .filter(|c| c.tenant == tenant)
        .cloned()
        .collect();
    let summary = verify_tenant(
        store,
        tenant,
        &database,
        &witness,
        inputs.key,
        &mut report.problems,
    )
    .await?;
    report.tenants.push(summary);
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
    // Only checkpoints with a valid signature vouch for anything.
    let mut vouched: BTreeMap<i64, Vec<(CheckpointSource, Checkpoint)>> = BTreeMap::new();
    let sources = database
        .iter()
        .map(|c| (CheckpointSource::Database, c))
        .chain(witness.iter().map(|c| (CheckpointSource::Witness, c)));
    for (source, checkpoint) in sources {
        match key {
            Some(key) if checkpoint.verify(key) => {
                vouched
                    .entry(checkpoint.seq)
                    .or_default()
                    .push((source, checkpoint.clone()));
            }
            Some(_) => problems.push(Problem {
                kind: ProblemKind::BadSignature,
                tenant: tenant.to_owned(),
                seq: Some(checkpoint.seq),
                record_id: None,
                message: format!(
                    "{source} checkpoint at seq {} has an invalid signature (forged, or signed by key `{}` instead of this audit key)",
                    checkpoint.seq, checkpoint.key_id
                ),
            }),
            None => {}
        }
    }
    let mut checker = ChainChecker::new(tenant, vouched);
    checker.summary.database_checkpoints = database.len() as u64;
    checker.summary.witness_checkpoints = witness.len() as u64;
    let mut checker = store.check_chain(checker).await?;
    problems.extend(checker.finish());
    Ok(checker.summary)
}

/// One record as the chain check sees it, borrowed from wherever the store keeps it.
#[derive(Debug, Clone, Copy)]
pub struct RowView<'a> {
    pub(crate) fields: RecordFields<'a>,
    pub(crate) prev_hash: &'a str,
    pub(crate) hash: &'a str,
}

impl<'a> RowView<'a> {
    /// A view of a stored record.
    pub fn of(record: &'a Record) -> Self {
        RowView {
            fields: record.fields(),
            prev_hash: &record.prev_hash,
            hash: &record.hash,
        }
    }
}

/// Checks one tenant's chain, fed its records in sequence order by the store
/// ([`AuditStore::check_chain`]), so each backend can read the chain its fastest way while the
/// checks stay in one place.
#[derive(Debug)]
pub struct ChainChecker {
    tenant: String,
    vouched: BTreeMap<i64, Vec<(CheckpointSource, Checkpoint)>>,
    prev_hash: String,
    expected: i64,
    canonical: Vec<u8>,
    broken: Option<Problem>,
    summary: TenantSummary,
}

impl ChainChecker {
    fn new(tenant: &str, vouched: BTreeMap<i64, Vec<(CheckpointSource, Checkpoint)>>) -> Self {
        let summary = TenantSummary {
            tenant: tenant.to_owned(),
            head_hash: GENESIS_HASH.to_owned(),
            checkpointed_seq: vouched.keys().next_back().copied().unwrap_or(0),
            ..TenantSummary::default()
        };
        ChainChecker {
            tenant: tenant.to_owned(),
            vouched,
            prev_hash: GENESIS_HASH.to_owned(),
            expected: 1,
            canonical: Vec::with_capacity(1024),
            broken: None,
            summary,
        }
    }

    /// The tenant being checked.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Whether the chain already broke; the store may stop feeding records.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// Records a record that could not even be read as one (a column of the wrong type).
    pub fn unreadable(&mut self, seq: i64, id: &str, message: String) {
        let problem = self.problem(ProblemKind::Modified, Some(seq), Some(id), message);
        self.broken.get_or_insert(problem);
    }

    fn problem(
        &self,
        kind: ProblemKind,
        seq: Option<i64>,
        id: Option<&str>,
        message: String,
    ) -> Problem {
        Problem {
            kind,
            tenant: self.tenant.clone(),
            seq,
            record_id: id.map(str::to_owned),
            message,
        }
    }

    /// Checks the next record. Returns `false` once the chain is broken.
    pub fn check(&mut self, row: RowView<'_>) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let seq = row.fields.seq;
        let id = row.fields.id;
        let expected = self.expected;
        if seq != expected {
            let message = if seq > expected {
                format!(
                    "records missing: expected seq {expected}, the next record is seq {seq} (deleted rows)"
                )
            } else {
                format!("seq {seq} appears out of order after seq {}", expected - 1)
            };
            self.broken =
                Some(self.problem(ProblemKind::SequenceGap, Some(expected), Some(id), message));
            return false;
        }
        if row.prev_hash != self.prev_hash {
            self.broken = Some(self.problem(
                ProblemKind::BrokenLink,
                Some(seq),
                Some(id),
                format!(
                    "does not link to seq {}: its prev_hash is not the hash of the record before it (records reordered, replaced or inserted)",
                    seq - 1
                ),
            ));
            return false;
        }
        self.canonical.clear();
        row.fields.write_canonical(&mut self.canonical);
        if !links(&self.prev_hash, &self.canonical, row.hash) {
            self.broken = Some(self.problem(
                ProblemKind::Modified,
                Some(seq),
                Some(id),
                "its content does not match its hash (the record was edited)".to_owned(),
            ));
            return false;
        }
        if let Some(checkpoints) = self.vouched.get(&seq) {
            for (source, checkpoint) in checkpoints {
                if checkpoint.head_hash != row.hash {
                    let message = format!(
                        "the signed {source} checkpoint at this seq names head {}, but the chain has {} (history was rewritten)",
                        checkpoint.head_hash, row.hash
                    );
                    self.broken = Some(self.problem(
                        ProblemKind::CheckpointMismatch,
                        Some(seq),
                        Some(id),
                        message,
                    ));
                    return false;
                }
            }
        }
        self.prev_hash.clear();
        self.prev_hash.push_str(row.hash);
        self.summary.records += 1;
        self.summary.head_seq = seq;
        self.expected += 1;
        true
    }

    /// The problem that broke the chain, or a truncation the checkpoints reveal.
    fn finish(&mut self) -> Option<Problem> {
        self.summary.head_hash.clone_from(&self.prev_hash);
        if let Some(problem) = self.broken.take() {
            return Some(problem);
        }
        let expected = self.expected;
        let (&seq, checkpoints) = self.vouched.range(expected..).next()?;
        let sources: Vec<String> = checkpoints.iter().map(|(s, _)| s.to_string()).collect();
        Some(self.problem(
            ProblemKind::Truncated,
            Some(expected),
            None,
            format!(
                "the database ends at seq {}, but a signed {} checkpoint covers seq {seq}: records were cut off or the database was rolled back to an older copy",
                expected - 1,
                sources.join(" and ")
            ),
        ))
    }
}

/// The portable way to feed a checker: pages of [`AuditStore::scan`], the next page fetched
/// while the current one is checked.
pub(crate) async fn check_chain_by_pages(
    store: &dyn AuditStore,
    mut checker: ChainChecker,
) -> Result<ChainChecker, AuditError> {
    let tenant = checker.tenant.clone();
    let mut rows = store.scan(&tenant, 0, SCAN_PAGE).await?;
    while !rows.is_empty() {
        let next_after = rows.last().map_or(0, |r| r.seq);
        let full = rows.len() == SCAN_PAGE as usize;
        let next = async {
            if full {
                store.scan(&tenant, next_after, SCAN_PAGE).await
            } else {
                Ok(Vec::new())
            }
        };
        let check = async {
            for row in &rows {
                if !checker.check(RowView::of(row)) {
                    return false;
                }
            }
            true
        };
        let (next, intact) = tokio::join!(next, check);
        if !intact {
            break;
        }
        rows = next?;
    }
    Ok(checker)
}
