//! Where audit records live. One [`AuditStore`] trait, two backends chosen by the store URL:
//! SQLite (the default) and PostgreSQL. Both keep the same tables (see `meho-store`'s
//! migrations), refuse UPDATE and DELETE inside the database, and pass the same test suite.

mod sql;
mod sqlite_direct;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use meho_store::{Pool, Store};
use serde::{Deserialize, Serialize};

use crate::AuditError;
use crate::checkpoint::Checkpoint;
use crate::record::{NewRecord, StoredRecord};
use crate::verify::ChainChecker;

/// A boxed future, so the trait stays object-safe (`Arc<dyn AuditStore>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A record about to be appended: already redacted, with its id and time assigned.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamped {
    /// The record id (UUIDv7).
    pub id: String,
    /// Unix microseconds.
    pub ts: i64,
    /// The body as RFC 8785 JSON, exactly as it will be stored and hashed.
    pub body_json: String,
    /// The rest of the record.
    pub record: NewRecord,
}

/// What an append returns once the record is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// The record id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// Its place in the tenant's chain.
    pub seq: i64,
    /// Its chain hash.
    pub hash: String,
    /// Unix microseconds.
    pub ts: i64,
}

/// The chain head of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The tenant.
    pub tenant: String,
    /// The last sequence number.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// Query filters; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this principal.
    pub principal: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this outcome word.
    pub outcome: Option<String>,
    /// Only this kind (`intent`, `outcome`, `approval`, …).
    pub kind: Option<String>,
    /// Only this session.
    pub session_id: Option<String>,
    /// Only this approval.
    pub approval_id: Option<String>,
    /// Only this call.
    pub call_id: Option<String>,
    /// At or after this time (unix microseconds).
    pub since: Option<i64>,
    /// Before this time (unix microseconds).
    pub until: Option<i64>,
}

/// Keyset pagination over the store's insertion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Page {
    /// Newest first: rows strictly before `before` (or from the newest when `None`).
    Newest {
        /// The cursor: the `row` of the last record of the previous page.
        before: Option<i64>,
        /// At most this many records.
        limit: u32,
    },
    /// Oldest first: rows strictly after `after` (`tail -f` follows with this).
    After {
        /// The cursor: the `row` of the last record already seen.
        after: i64,
        /// At most this many records.
        limit: u32,
    },
}

/// Storage of the audit log.
///
/// Appends are all-or-nothing per batch: the batch is linked to each tenant's chain and written
/// in one transaction; when `append_batch` returns `Ok`, every record in it is durable.
pub trait AuditStore: Send + Sync + std::fmt::Debug {
    /// Links `batch` to the chains and writes it in one transaction.
    fn append_batch<'a>(
        &'a self,
        batch: &'a [Stamped],
    ) -> BoxFuture<'a, Result<Vec<Appended>, AuditError>>;

    /// Records of `tenant` with `seq > after_seq`, in sequence order.
    fn scan<'a>(
        &'a self,
        tenant: &'a str,
        after_seq: i64,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<StoredRecord>, AuditError>>;

    /// Feeds `checker` every record of its tenant in sequence order, until the chain breaks, and
    /// hands it back. Each backend reads its fastest way; the checks live in the checker.
    fn check_chain(&self, checker: ChainChecker)
    -> BoxFuture<'_, Result<ChainChecker, AuditError>>;

    /// Every tenant with at least one record.
    fn tenants(&self) -> BoxFuture<'_, Result<Vec<String>, AuditError>>;

    /// Every tenant's chain head.
    fn heads(&self) -> BoxFuture<'_, Result<Vec<Head>, AuditError>>;

    /// Records matching `filter`, one page.
    fn query<'a>(
        &'a self,
        filter: &'a Filter,
        page: Page,
    ) -> BoxFuture<'a, Result<Vec<StoredRecord>, AuditError>>;

    /// One record by id.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<StoredRecord>, AuditError>>;

    /// The records of `tenant` that carry one of `call_ids` or one of `approval_ids`, oldest
    /// first: everything the log holds about those calls, read through the call and approval
    /// indexes (the activity view folds calls from them). `limit` bounds the work, it is not a
    /// page: when more records match, which ones are left out is unspecified.
    fn linked<'a>(
        &'a self,
        tenant: &'a str,
        call_ids: &'a [String],
        approval_ids: &'a [String],
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<StoredRecord>, AuditError>>;

    /// Stores a signed checkpoint.
    fn insert_checkpoint<'a>(
        &'a self,
        checkpoint: &'a Checkpoint,
    ) -> BoxFuture<'a, Result<(), AuditError>>;

    /// Every checkpoint of `tenant`, oldest first.
    fn checkpoints<'a>(
        &'a self,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Checkpoint>, AuditError>>;

    /// The latest checkpoint of every tenant.
    fn latest_checkpoints(&self) -> BoxFuture<'_, Result<Vec<Checkpoint>, AuditError>>;
}

/// The audit store of an open `meho-store`, backend chosen by its URL.
pub fn open(store: &Store) -> Arc<dyn AuditStore> {
    match store.pool() {
        Pool::Sqlite(pool) => Arc::new(sql::SqliteAudit::new(pool.clone())),
        Pool::Postgres(pool) => Arc::new(sql::PostgresAudit { pool: pool.clone() }),
    }
}
