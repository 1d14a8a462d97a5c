//! Result reduction (issue #15): the pipeline's reduce stage shows the model a summary and a
//! handle instead of a large result, and `result_query` answers read-only SQL over the rest.
//!
//! - [`shape`]: tool output (JSON, Kubernetes lists, text, JSON lines, tabular command output)
//!   into rows and columns.
//! - [`sql`]: a sandboxed, read-only SQLite over those rows.
//! - [`store`]: the kept rows in meho's store, by tenant, principal and handle, with a TTL and
//!   size caps, so any replica can answer.

pub mod shape;
pub mod sql;
pub mod stage;
pub mod store;
pub mod summary;

use std::time::Duration;

pub use stage::{QueryArgs, Results, Settings};
pub use summary::RESULT_QUERY;

/// Why a reduction, a query or a kept result gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ReduceError {
    /// The sandbox forbids it; the text names what.
    #[error("refused: {0}")]
    Refused(String),
    /// SQLite found the statement invalid (syntax, unknown column, bad function use, …).
    #[error("invalid SQL: {0}")]
    Invalid(String),
    /// The query ran past its deadline (the deadline is given).
    #[error("query aborted past its deadline of {0:?}")]
    Deadline(Duration),
    /// An input or an intermediate value exceeds a size limit.
    #[error("too large: {what} (limit {limit})")]
    TooLarge {
        /// What was too large, with its size where known.
        what: String,
        /// The limit it exceeds (bytes, or a count for columns).
        limit: usize,
    },
    /// No result by that handle for this caller (never kept, expired, swept, or another
    /// principal's or tenant's).
    #[error("no result `{0}` for this caller (it may have expired)")]
    NotFound(String),
    /// The store failed.
    #[error("the result store failed: {0}")]
    Store(String),
    /// Something failed that is not the query's fault.
    #[error("internal error: {0}")]
    Internal(String),
}
