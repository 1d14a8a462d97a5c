//! What meho's integration tests and benches share, so each does not build it again: an SQLite
//! store in a directory, and an audit log on a store with the in-process feed bus and only the
//! built-in redaction. A dev-dependency only: nothing here ships.
//!
//! Failures are returned, not panicked on: the workspace lints hold for this crate too, and the
//! caller (a test) unwraps with its own context.

use std::path::Path;
use std::sync::Arc;

use meho_audit::{AuditError, AuditLog, AuditOptions, InProcessBus, Redactor};
use meho_store::Store;

/// An SQLite store at `<dir>/meho.db`, created and migrated.
pub async fn sqlite_store(dir: &Path) -> Result<Store, meho_store::StoreError> {
    Store::open(&format!("sqlite://{}", dir.join("meho.db").display())).await
}

/// An audit log on `store`: the in-process feed bus, the built-in redaction only, no checkpoint
/// key (what a test of something other than the audit log itself needs).
pub async fn audit_log(store: &Store) -> Result<Arc<AuditLog>, AuditError> {
    let log = AuditLog::start(
        meho_audit::store::open(store),
        Arc::new(InProcessBus::new()),
        AuditOptions::new(Redactor::new::<&str>(&[])?),
    )
    .await?;
    Ok(Arc::new(log))
}
