//! The append path: redaction, group commit, chain heads, checkpoints and feed publication.
//!
//! One writer task owns the store's write side. Appends queue on a channel; the writer takes
//! every append waiting (up to [`MAX_BATCH`]) and commits them in one transaction, so concurrent
//! callers share one fsync. Each caller is answered only after that commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use meho_core::{Decision, Tier};

use crate::checkpoint::{AuditKey, Checkpoint, Witness};
use crate::feed::{FeedBus, FeedEvent, Subscription};
use crate::record::{CallOutcome, CallRef, NewRecord, Record, RecordKind, canonical_bytes};
use crate::redact::Redactor;
use crate::store::{Appended, AuditStore, Filter, Page, Stamped};
use crate::{AuditError, DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_CHECKPOINT_RECORDS, MAX_BODY_BYTES};

/// The most appends committed in one transaction.
pub const MAX_BATCH: usize = 2048;
/// Appends that may wait for the writer before callers are slowed down.
const QUEUE_DEPTH: usize = 16 * 1024;

/// How the audit log runs.
#[derive(Debug)]
pub struct AuditOptions {
    /// Signs checkpoints; without it no checkpoints are written (and `verify` says so).
    pub key: Option<AuditKey>,
    /// Where checkpoints are also appended, outside the database.
    pub witness: Option<Witness>,
    /// Checkpoint a tenant after this many new records…
    pub checkpoint_every_records: u64,
    /// …or when its last checkpoint is this old and it has new records.
    pub checkpoint_interval: Duration,
    /// Applied to every record before it is stored.
    pub redactor: Redactor,
}

impl AuditOptions {
    /// No key, no witness, default cadence, built-in redaction only.
    pub fn new(redactor: Redactor) -> Self {
        AuditOptions {
            key: None,
            witness: None,
            checkpoint_every_records: DEFAULT_CHECKPOINT_RECORDS,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            redactor,
        }
    }
}

/// Proof that a governed call's intent record is durable.
///
/// Only [`AuditLog::record_intent`] creates one, and only after the record committed. The
/// gateway's execution step takes a receipt, so a call whose intent could not be recorded cannot
/// run: the audit log fails closed by construction.
#[derive(Debug)]
#[must_use = "a call must record its outcome with the receipt of its intent"]
pub struct IntentReceipt {
    intent: Appended,
    tenant: String,
    principal: String,
    target: String,
    action: String,
    call_id: String,
    session_id: Option<String>,
    approval_id: Option<String>,
}

impl IntentReceipt {
    /// The durable intent record.
    pub fn intent(&self) -> &Appended {
        &self.intent
    }

    /// The call id shared by the intent and outcome records.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }
}

#[expect(
    clippy::large_enum_variant,
    reason = "appends are the hot path and the common case; boxing would allocate once more per record"
)]
enum Command {
    Append(Pending),
    Checkpoint(oneshot::Sender<Result<Vec<Checkpoint>, AuditError>>),
    Shutdown(oneshot::Sender<Result<Vec<Checkpoint>, AuditError>>),
}

struct Pending {
    id: String,
    body_json: String,
    record: NewRecord,
    reply: oneshot::Sender<Result<Appended, AuditError>>,
}

/// The audit log: append (durably, redacted, chained), query, subscribe.
#[derive(Debug)]
pub struct AuditLog {
    commands: mpsc::Sender<Command>,
    store: Arc<dyn AuditStore>,
    bus: Arc<dyn FeedBus>,
    redactor: Arc<Redactor>,
    writer: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl AuditLog {
    /// Starts the writer over `store`. Reads each tenant's chain head and latest checkpoint first.
    pub async fn start(
        store: Arc<dyn AuditStore>,
        bus: Arc<dyn FeedBus>,
        options: AuditOptions,
    ) -> Result<Self, AuditError> {
        let mut tenants: HashMap<String, TenantState> = HashMap::new();
        for head in store.heads().await? {
            tenants.insert(
                head.tenant,
                TenantState {
                    seq: head.seq,
                    hash: head.hash,
                    checkpointed_seq: 0,
                    checkpointed_at: Instant::now(),
                },
            );
        }
        for checkpoint in store.latest_checkpoints().await? {
            if let Some(state) = tenants.get_mut(&checkpoint.tenant) {
                state.checkpointed_seq = checkpoint.seq;
            }
        }
        let redactor = Arc::new(options.redactor);
        let (commands, inbox) = mpsc::channel(QUEUE_DEPTH);
        let writer = Writer {
            store: store.clone(),
            bus: bus.clone(),
            key: options.key,
            witness: options.witness,
            every_records: options.checkpoint_every_records.max(1),
            interval: options.checkpoint_interval,
            tenants,
            last_ts: 0,
        };
        let handle = tokio::spawn(writer.run(inbox));
        Ok(AuditLog {
            commands,
            store,
            bus,
            redactor,
            writer: tokio::sync::Mutex::new(Some(handle)),
        })
    }

    /// The redactor every record passes; other places that show call text to humans (approval
    /// views, notifications) use the same one.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Redacts `record`, appends it to its tenant's chain, and returns once it is durable.
    pub async fn append(&self, mut record: NewRecord) -> Result<Appended, AuditError> {
        if record.tenant.is_empty() || record.principal.is_empty() {
            return Err(AuditError::Invalid(
                "a record needs a tenant and a principal".into(),
            ));
        }
        self.redactor.redact_record(&mut record);
        let body_json = String::from_utf8(canonical_bytes(&record.body))
            .map_err(|_| AuditError::Invalid("the body is not UTF-8 JSON".into()))?;
        if body_json.len() > MAX_BODY_BYTES {
            return Err(AuditError::Invalid(format!(
                "the body is {} bytes; the limit is {MAX_BODY_BYTES}",
                body_json.len()
            )));
        }
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            id: uuid::Uuid::now_v7().to_string(),
            body_json,
            record,
            reply,
        };
        self.commands
            .send(Command::Append(pending))
            .await
            .map_err(|_| AuditError::Closed)?;
        answer.await.map_err(|_| AuditError::Closed)?
    }

    /// Records the intent of a governed call. The call may run only with the returned receipt;
    /// an error means the intent is not durable and the call must not run.
    pub async fn record_intent(
        &self,
        call: &CallRef<'_>,
        arguments: Value,
        decision: &Decision,
    ) -> Result<IntentReceipt, AuditError> {
        let intent = self
            .append(NewRecord::intent(call, arguments, decision))
            .await?;
        Ok(IntentReceipt {
            intent,
            tenant: call.tenant.to_owned(),
            principal: call.principal.to_owned(),
            target: call.target.to_owned(),
            action: call.action.to_owned(),
            call_id: call.call_id.to_owned(),
            session_id: call.session_id.map(str::to_owned),
            approval_id: call.approval_id.map(str::to_owned),
        })
    }

    /// Records what a call whose intent was recorded produced.
    pub async fn record_outcome(
        &self,
        receipt: IntentReceipt,
        outcome: &CallOutcome,
    ) -> Result<Appended, AuditError> {
        self.record_outcome_with(receipt, outcome, serde_json::Map::new())
            .await
    }

    /// As [`AuditLog::record_outcome`], with `notes` added to the record's body (why a session
    /// closed, say); a note never replaces one of the outcome's own fields.
    pub async fn record_outcome_with(
        &self,
        receipt: IntentReceipt,
        outcome: &CallOutcome,
        notes: serde_json::Map<String, Value>,
    ) -> Result<Appended, AuditError> {
        let call = CallRef {
            tenant: &receipt.tenant,
            principal: &receipt.principal,
            target: &receipt.target,
            action: &receipt.action,
            call_id: &receipt.call_id,
            session_id: receipt.session_id.as_deref(),
            approval_id: receipt.approval_id.as_deref(),
        };
        let mut record = NewRecord::outcome(&call, outcome);
        if let Some(body) = record.body.as_object_mut() {
            for (key, value) in notes {
                body.entry(key).or_insert(value);
            }
        }
        self.append(record).await
    }

    /// Records an agent's announcement of what it is about to do; it is published on the feed.
    pub async fn announce(
        &self,
        tenant: &str,
        principal: &str,
        activity: &str,
        targets: &[String],
        planned_tier: Tier,
        ttl_seconds: u32,
    ) -> Result<Appended, AuditError> {
        let record = NewRecord {
            action: Some("announce".to_owned()),
            target: targets.first().cloned(),
            body: json!({
                "activity": activity,
                "targets": targets,
                "planned_tier": planned_tier,
                "ttl_seconds": ttl_seconds,
            }),
            ..NewRecord::new(tenant, RecordKind::Announce, principal)
        };
        self.append(record).await
    }

    /// Writes a checkpoint for every tenant with records since its last one.
    pub async fn checkpoint_now(&self) -> Result<Vec<Checkpoint>, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Checkpoint(reply))
            .await
            .map_err(|_| AuditError::Closed)?;
        answer.await.map_err(|_| AuditError::Closed)?
    }

    /// Drains pending appends, checkpoints every tenant with new records, and stops the writer.
    pub async fn shutdown(&self) -> Result<Vec<Checkpoint>, AuditError> {
        let (reply, answer) = oneshot::channel();
        let sent = self.commands.send(Command::Shutdown(reply)).await;
        let result = match sent {
            Ok(()) => answer.await.map_err(|_| AuditError::Closed)?,
            Err(_) => Err(AuditError::Closed),
        };
        if let Some(handle) = self.writer.lock().await.take() {
            let _ = handle.await;
        }
        result
    }

    /// Records matching `filter`, one page.
    pub async fn query(&self, filter: &Filter, page: Page) -> Result<Vec<Record>, AuditError> {
        self.store.query(filter, page).await
    }

    /// One record by id.
    pub async fn get(&self, id: &str) -> Result<Option<Record>, AuditError> {
        self.store.get(id).await
    }

    /// A gap-free subscription to `tenant`'s events after `after_seq`.
    pub fn subscribe(&self, tenant: &str, after_seq: i64) -> Subscription {
        Subscription::new(self.store.clone(), self.bus.as_ref(), tenant, after_seq)
    }

    /// The store behind the log.
    pub fn store(&self) -> &Arc<dyn AuditStore> {
        &self.store
    }
}

struct TenantState {
    seq: i64,
    hash: String,
    checkpointed_seq: i64,
    checkpointed_at: Instant,
}

struct Writer {
    store: Arc<dyn AuditStore>,
    bus: Arc<dyn FeedBus>,
    key: Option<AuditKey>,
    witness: Option<Witness>,
    every_records: u64,
    interval: Duration,
    tenants: HashMap<String, TenantState>,
    /// Timestamps never go backwards within a process, even if the clock does.
    last_ts: i64,
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Writer {
    async fn run(mut self, mut inbox: mpsc::Receiver<Command>) {
        let mut ticker = tokio::time::interval(self.interval.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = inbox.recv() => {
                    let Some(command) = command else {
                        let _ = self.checkpoint(true).await;
                        return;
                    };
                    let mut next = Some(command);
                    while let Some(command) = next.take() {
                        match command {
                            Command::Append(first) => {
                                let mut batch = vec![first];
                                while batch.len() < MAX_BATCH {
                                    match inbox.try_recv() {
                                        Ok(Command::Append(more)) => batch.push(more),
                                        Ok(other) => {
                                            next = Some(other);
                                            break;
                                        }
                                        Err(_) => break,
                                    }
                                }
                                self.commit(batch).await;
                            }
                            Command::Checkpoint(reply) => {
                                let _ = reply.send(self.checkpoint(true).await);
                            }
                            Command::Shutdown(reply) => {
                                let _ = reply.send(self.checkpoint(true).await);
                                return;
                            }
                        }
                    }
                }
                _ = ticker.tick() => {
                    if let Err(err) = self.checkpoint(false).await {
                        tracing::error!(error = %err, "periodic audit checkpoint failed");
                    }
                }
            }
        }
    }

    async fn commit(&mut self, batch: Vec<Pending>) {
        let ts = now_micros().max(self.last_ts);
        self.last_ts = ts;
        let mut replies = Vec::with_capacity(batch.len());
        let stamped: Vec<Stamped> = batch
            .into_iter()
            .map(|pending| {
                replies.push(pending.reply);
                Stamped {
                    id: pending.id,
                    ts,
                    body_json: pending.body_json,
                    record: pending.record,
                }
            })
            .collect();
        match self.store.append_batch(&stamped).await {
            Ok(appended) => {
                for (record, done) in stamped.into_iter().zip(&appended) {
                    let state =
                        self.tenants
                            .entry(done.tenant.clone())
                            .or_insert_with(|| TenantState {
                                seq: 0,
                                hash: String::new(),
                                checkpointed_seq: 0,
                                checkpointed_at: Instant::now(),
                            });
                    state.seq = done.seq;
                    state.hash.clone_from(&done.hash);
                    self.bus.publish(Arc::new(feed_event(record, done)));
                }
                for (reply, done) in replies.into_iter().zip(appended) {
                    let _ = reply.send(Ok(done));
                }
                if let Err(err) = self.checkpoint(false).await {
                    tracing::error!(error = %err, "audit checkpoint failed");
                }
            }
            Err(err) => {
                tracing::error!(error = %err, records = replies.len(), "audit append failed; nothing was acknowledged");
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    /// Checkpoints every tenant with new records: all of them when `force`, else those past the
    /// record count or the interval.
    async fn checkpoint(&mut self, force: bool) -> Result<Vec<Checkpoint>, AuditError> {
        let Some(key) = &self.key else {
            return Ok(Vec::new());
        };
        let mut written = Vec::new();
        for (tenant, state) in &mut self.tenants {
            let pending = u64::try_from(state.seq - state.checkpointed_seq).unwrap_or(0);
            let due = pending > 0
                && (force
                    || pending >= self.every_records
                    || state.checkpointed_at.elapsed() >= self.interval);
            if !due {
                continue;
            }
            let checkpoint = key.checkpoint(tenant, state.seq, &state.hash, now_micros());
            self.store.insert_checkpoint(&checkpoint).await?;
            if let Some(witness) = &self.witness {
                witness.append(&checkpoint)?;
            }
            state.checkpointed_seq = state.seq;
            state.checkpointed_at = Instant::now();
            tracing::debug!(tenant = %tenant, seq = state.seq, "audit checkpoint written");
            written.push(checkpoint);
        }
        Ok(written)
    }
}

fn feed_event(stamped: Stamped, appended: &Appended) -> FeedEvent {
    FeedEvent {
        id: stamped.id,
        seq: appended.seq,
        ts: stamped.ts,
        record: stamped.record,
    }
}
