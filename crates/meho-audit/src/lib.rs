//! The tamper-evident audit log and the live feed behind it.
//!
//! Every record joins its tenant's hash chain (`hash = sha256(prev_hash || canonical_bytes)`, see
//! [`Record::canonical_bytes`]); signed checkpoints of each chain head go to the database and to a
//! witness file outside it; [`verify()`] checks all of it with only the public key.
//!
//! # Guarantees
//!
//! - **Durable before acknowledged.** [`AuditLog::append`] returns `Ok` only after the record's
//!   transaction committed (SQLite: WAL with `synchronous = FULL`; PostgreSQL: a committed
//!   transaction). Concurrent appends share one transaction and one fsync (group commit).
//! - **Fail closed.** A governed call needs an [`IntentReceipt`], which only
//!   [`AuditLog::record_intent`] creates, and only once the intent record is durable. If the
//!   store cannot take the record, the caller gets an [`AuditError`] and no receipt, so the call
//!   cannot run.
//! - **Redacted before stored.** Every free-text field passes the [`Redactor`] before it is hashed,
//!   stored or published.
//! - **Append-only in the database.** Both backends refuse UPDATE and DELETE on audit tables.
//!
//! Invariants: this crate never logs a record's body; only ids, tenants and sequence numbers.

mod chain;
mod checkpoint;
mod feed;
mod record;
mod redact;
pub mod store;
mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use chain::sha256_hex;
pub use checkpoint::{AuditKey, AuditPublicKey, Checkpoint, Witness, WitnessLineError};
pub use feed::{FeedBus, FeedEvent, InProcessBus, Subscription};
pub use record::{
    CallOutcome, CallRef, GENESIS_HASH, NewRecord, Record, RecordKind, StoredRecord,
    canonical_bytes,
};
pub use redact::{REDACTED, Redactor};
pub use store::{Appended, AuditStore, Filter, Head, Page};
pub use verify::{
    ChainChecker, CheckpointSource, Problem, ProblemKind, RowView, TenantSummary, VerifyInputs,
    VerifyReport, verify, verify_tenant_chain,
};
pub use writer::{AuditLog, AuditOptions, IntentReceipt};

/// The largest body a record may carry, as stored JSON.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Errors of the audit log. Cheap to clone: one store failure is reported to every append that
/// shared the failed transaction.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The store refused or failed the operation; nothing was acknowledged. The source is the
    /// driver's error (sqlx, or rusqlite on SQLite's direct paths).
    #[error("the audit store failed: {0}")]
    Store(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The audit log's writer has stopped; nothing can be recorded.
    #[error("the audit log is not running")]
    Closed,
    /// A file (key, witness) could not be read or written.
    #[error("cannot access `{}`: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// An audit key file is not a valid Ed25519 key.
    #[error("invalid audit key `{}`: {message}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A configured redaction pattern is not a valid regex.
    #[error("invalid redaction pattern `{pattern}`: {message}")]
    Redaction {
        /// The pattern.
        pattern: String,
        /// The regex engine's explanation.
        message: String,
    },
    /// A stored record cannot be read back (its kind or body is not what the log writes).
    #[error("record `{id}` is unreadable: {message}")]
    Corrupt {
        /// The record.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// The record was refused before reaching the store.
    #[error("invalid audit record: {0}")]
    Invalid(String),
}

impl AuditError {
    pub(crate) fn store(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        AuditError::Store(Arc::new(err))
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        AuditError::Io {
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }
}

/// Default checkpoint cadence: every this many records per tenant…
pub const DEFAULT_CHECKPOINT_RECORDS: u64 = 1000;
/// …or this often, whichever comes first.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);
