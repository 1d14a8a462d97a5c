//! The live feed: a per-tenant publish/subscribe bus of audited events.
//!
//! The bus only carries events live; the audit log is the durable copy. Every event carries its
//! tenant's audit sequence number, so a [`Subscription`] that starts from a `Last-Event-ID` (or
//! falls behind, or sees a gap) fills in from the store and never yields an event twice or skips
//! one. A bus backend (in-process today, Valkey later) therefore only has to deliver live events
//! best-effort.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::AuditError;
use crate::record::{NewRecord, Record};
use crate::store::AuditStore;

/// Events buffered per tenant for slow subscribers before they fall back to the store.
const CHANNEL_CAPACITY: usize = 1024;
/// Records fetched per round trip while catching up.
const CATCH_UP_PAGE: u32 = 500;

/// One event of the feed: an audited record as a subscriber sees it. The record as submitted
/// (redacted), with the id, place and time the log gave it; not its hashes, which
/// `GET /api/v1/audit/{id}` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedEvent {
    /// The record id.
    pub id: String,
    /// The tenant's audit sequence number: the SSE event id.
    pub seq: i64,
    /// Unix microseconds.
    pub ts: i64,
    /// What was recorded: tenant, kind, principal, target, …, body.
    #[serde(flatten)]
    pub record: NewRecord,
}

impl FeedEvent {
    /// The event for a stored record; an error if its kind or body no longer parse (an edited
    /// row).
    pub fn from_stored(record: Record) -> Result<Self, AuditError> {
        Ok(FeedEvent {
            record: record.submitted()?,
            id: record.id,
            seq: record.seq,
            ts: record.ts,
        })
    }
}

/// A transport for live feed events. Delivery may be lossy (a slow subscriber may lag); the
/// [`Subscription`] repairs that from the store.
pub trait FeedBus: Send + Sync + std::fmt::Debug {
    /// Publishes `event` to the subscribers of its tenant.
    fn publish(&self, event: Arc<FeedEvent>);

    /// Live events of `tenant` from now on.
    fn subscribe(&self, tenant: &str) -> broadcast::Receiver<Arc<FeedEvent>>;
}

/// The in-process bus: one broadcast channel per tenant.
#[derive(Debug, Default)]
pub struct InProcessBus {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<FeedEvent>>>>,
}

impl InProcessBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    fn sender(&self, tenant: &str) -> broadcast::Sender<Arc<FeedEvent>> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        channels
            .entry(tenant.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .clone()
    }
}

impl FeedBus for InProcessBus {
    fn publish(&self, event: Arc<FeedEvent>) {
        // No subscriber is not an error: the store has the event.
        let _ = self.sender(&event.record.tenant).send(event);
    }

    fn subscribe(&self, tenant: &str) -> broadcast::Receiver<Arc<FeedEvent>> {
        self.sender(tenant).subscribe()
    }
}

/// A gap-free, duplicate-free stream of one tenant's events, resuming after a given sequence.
#[derive(Debug)]
pub struct Subscription {
    store: Arc<dyn AuditStore>,
    tenant: String,
    last_seq: i64,
    live: broadcast::Receiver<Arc<FeedEvent>>,
    backlog: VecDeque<Arc<FeedEvent>>,
    /// Set while older events may still be in the store.
    catching_up: bool,
}

impl Subscription {
    /// Subscribes to `tenant`, yielding every event with `seq > after_seq` (0 for everything, or
    /// the SSE `Last-Event-ID`).
    pub fn new(
        store: Arc<dyn AuditStore>,
        bus: &dyn FeedBus,
        tenant: &str,
        after_seq: i64,
    ) -> Self {
        // Subscribe to live events before reading the store, so nothing committed in between is
        // missed; duplicates are dropped by sequence number.
        let live = bus.subscribe(tenant);
        Subscription {
            store,
            tenant: tenant.to_owned(),
            last_seq: after_seq,
            live,
            backlog: VecDeque::new(),
            catching_up: true,
        }
    }

    /// The sequence number of the last event yielded.
    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }

    /// The next event, waiting for one if needed.
    pub async fn next(&mut self) -> Result<Arc<FeedEvent>, AuditError> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                if event.seq == self.last_seq + 1 {
                    self.last_seq = event.seq;
                    return Ok(event);
                }
                continue;
            }
            if self.catching_up {
                self.fill_from_store(None).await?;
                if self.backlog.is_empty() {
                    self.catching_up = false;
                }
                continue;
            }
            match self.live.recv().await {
                Ok(event) if event.seq <= self.last_seq => {}
                Ok(event) if event.seq == self.last_seq + 1 => {
                    self.last_seq = event.seq;
                    return Ok(event);
                }
                Ok(event) => {
                    // A gap: the bus dropped something. The store has it.
                    self.fill_from_store(Some(event.seq)).await?;
                    self.backlog.push_back(event);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.catching_up = true,
                Err(broadcast::error::RecvError::Closed) => return Err(AuditError::Closed),
            }
        }
    }

    /// Loads the next page after `last_seq` (only below `before`, when given) into the backlog.
    async fn fill_from_store(&mut self, before: Option<i64>) -> Result<(), AuditError> {
        let mut after = self.last_seq;
        loop {
            let rows = self.store.scan(&self.tenant, after, CATCH_UP_PAGE).await?;
            let full = rows.len() == CATCH_UP_PAGE as usize;
            for row in rows {
                if before.is_some_and(|b| row.seq >= b) {
                    return Ok(());
                }
                after = row.seq;
                self.backlog
                    .push_back(Arc::new(FeedEvent::from_stored(row)?));
            }
            if before.is_none() || !full {
                return Ok(());
            }
        }
    }
}
