//! SQLite's hot paths: the group-commit writer and the verification reader.
//!
//! Why a second SQLite binding next to sqlx: sqlx's async API boxes every bound value, copies every
//! column of every row into an owned value and crosses a thread per statement. Measured here, a
//! 64-record group commit took 2.5 ms through sqlx and 1.2 ms through SQLite's C API with the same
//! schema and fsync, and a chain scan was capped near 150k records/s. rusqlite calls the C API
//! directly on one blocking thread (a cached prepared INSERT; rows read in place, borrowing their
//! text), and shares sqlx's `libsqlite3-sys`, so the same bundled SQLite runs both. Everything
//! else (migrations, queries, checkpoints) stays on sqlx.

use std::path::Path;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, TransactionBehavior, params};

use super::sql::{appended, link_batch};
use super::{Appended, Stamped};
use crate::AuditError;
use crate::record::{GENESIS_HASH, RecordFields};
use crate::verify::{ChainChecker, RowView};

const INSERT: &str = "INSERT INTO audit_records (id, tenant, seq, ts, kind, principal, target, \
     action, outcome, session_id, approval_id, call_id, body, prev_hash, hash) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";

const HEAD: &str =
    "SELECT seq, hash FROM audit_records WHERE tenant = ?1 ORDER BY seq DESC LIMIT 1";

/// The writer's own connection. Durability is set per connection, so it is set here again:
/// WAL with `synchronous = FULL`, a commit is on disk before it returns.
#[derive(Debug)]
pub(crate) struct DirectWriter {
    connection: Connection,
}

impl DirectWriter {
    pub(crate) fn open(path: &Path) -> Result<Self, AuditError> {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(AuditError::store)?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(AuditError::store)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(AuditError::store)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(AuditError::store)?;
        connection
            .pragma_update(None, "cache_size", -65536)
            .map_err(AuditError::store)?;
        Ok(DirectWriter { connection })
    }

    /// Links `batch` to the chains and commits it in one `BEGIN IMMEDIATE` transaction.
    pub(crate) fn append(&mut self, batch: &[Stamped]) -> Result<Vec<Appended>, AuditError> {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(AuditError::store)?;
        let tenants: BTreeSet<&str> = batch.iter().map(|s| s.record.tenant.as_str()).collect();
        let mut heads = BTreeMap::new();
        for tenant in tenants {
            // Cached: compiling the statement on every commit was a measurable share of it.
            let head: Option<(i64, String)> = tx
                .prepare_cached(HEAD)
                .map_err(AuditError::store)?
                .query_row([tenant], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
                .map_err(AuditError::store)?;
            heads.insert(
                tenant.to_owned(),
                head.unwrap_or_else(|| (0, GENESIS_HASH.to_owned())),
            );
        }
        let linked = link_batch(batch, &mut heads)?;
        {
            let mut insert = tx.prepare_cached(INSERT).map_err(AuditError::store)?;
            for l in &linked {
                let r = &l.stamped.record;
                insert
                    .execute(params![
                        l.stamped.id,
                        r.tenant,
                        l.seq,
                        l.stamped.ts,
                        r.kind.as_str(),
                        r.principal,
                        r.target,
                        r.action,
                        r.outcome,
                        r.session_id,
                        r.approval_id,
                        r.call_id,
                        l.stamped.body_json,
                        l.prev_hash,
                        l.hash,
                    ])
                    .map_err(AuditError::store)?;
            }
        }
        tx.commit().map_err(AuditError::store)?;
        Ok(appended(linked))
    }
}

const CHAIN_QUERY: &str = "SELECT seq, id, tenant, ts, kind, principal, target, action, outcome, \
     session_id, approval_id, call_id, body, prev_hash, hash FROM audit_records \
     WHERE tenant = ?1 ORDER BY seq";

/// Feeds `checker` every record of its tenant, in sequence order, from the file at `path`.
pub(crate) fn check_chain(
    path: &Path,
    mut checker: ChainChecker,
) -> Result<ChainChecker, AuditError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(AuditError::store)?;
    let mut statement = connection.prepare(CHAIN_QUERY).map_err(AuditError::store)?;
    let tenant = checker.tenant().to_owned();
    let mut rows = statement.query([&tenant]).map_err(AuditError::store)?;
    while let Some(row) = rows.next().map_err(AuditError::store)? {
        let int = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_i64().ok());
        let text = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_str().ok());
        let optional = |i: usize| match row.get_ref(i) {
            Ok(ValueRef::Null) => Some(None),
            Ok(value) => value.as_str().ok().map(Some),
            Err(_) => None,
        };
        let view = (|| {
            Some(RowView {
                fields: RecordFields {
                    seq: int(0)?,
                    id: text(1)?,
                    tenant: text(2)?,
                    ts: int(3)?,
                    kind: text(4)?,
                    principal: text(5)?,
                    target: optional(6)?,
                    action: optional(7)?,
                    outcome: optional(8)?,
                    session_id: optional(9)?,
                    approval_id: optional(10)?,
                    call_id: optional(11)?,
                    body_json: text(12)?,
                },
                prev_hash: text(13)?,
                hash: text(14)?,
            })
        })();
        let intact = match view {
            Some(view) => checker.check(view),
            None => {
                checker.unreadable(
                    int(0).unwrap_or(0),
                    text(1).unwrap_or_default(),
                    "a column holds a value of the wrong type (the row was edited)".to_owned(),
                );
                false
            }
        };
        if !intact {
            break;
        }
    }
    Ok(checker)
}
