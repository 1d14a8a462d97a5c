//! What meho's integration tests and benches share, so each does not build it again: an SQLite
//! store in a directory, an audit log on a store with the in-process feed bus and only the
//! built-in redaction, a real OpenSSH `sshd` ([`sshd`]), a real kube-apiserver ([`kube`]), a
//! real OpenBao ([`openbao`]) and a real Prometheus ([`prometheus`]). A dev-dependency only:
//! nothing here ships.
//!
//! The store and audit helpers return their failures (the caller, a test, unwraps with its own
//! context); the sshd harness panics with sshd's output when it cannot do what a test needs, as
//! an assertion would.

#[allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a test harness: a sshd that cannot start must stop the test with its output"
)]
pub mod sshd;

#[allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a test harness: a kube-apiserver that cannot start must stop the test with its output"
)]
pub mod kube;

pub mod connector;

#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test issuer: a key that cannot be made must stop the test"
)]
pub mod idp;

#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    missing_debug_implementations,
    reason = "a test lab: a lab that cannot be built must stop the test with its error"
)]
pub mod ssh_lab;

#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test lab: a lab that cannot be built must stop the test with its error"
)]
pub mod kube_lab;

#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "a test lab: a lab that cannot be built must stop the test with its error"
)]
pub mod api_lab;

#[allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a test harness: an OpenBao that cannot start must stop the test with its output"
)]
pub mod openbao;

#[allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a test harness: a Prometheus that cannot start must stop the test with its output"
)]
pub mod prometheus;

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

/// Every record of `audit` (up to 10,000), oldest first: what a test reads back to check what
/// was recorded, in order.
pub async fn records(audit: &AuditLog) -> Result<Vec<meho_audit::StoredRecord>, AuditError> {
    let mut all = audit
        .query(
            &meho_audit::Filter::default(),
            meho_audit::Page::Newest {
                before: None,
                limit: 10_000,
            },
        )
        .await?;
    all.reverse();
    Ok(all)
}
