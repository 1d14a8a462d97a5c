//! Result reduction (issue #15): what the pipeline's reduce stage will use to show the model a
//! summary and a handle instead of a large result, and to answer read-only SQL over the rest.
//!
//! - [`shape`]: tool output (JSON, Kubernetes lists, text, JSON lines, tabular command output)
//!   into rows and columns.
//! - [`sql`]: a sandboxed, read-only SQLite over those rows.
//!
//! Not wired into the pipeline yet: the store of kept rows, the handle, `result_query` and the
//! `[reduction]` config come next.

pub mod shape;
pub mod sql;
