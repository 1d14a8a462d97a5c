//! The SQLite verification reader.
//!
//! Why a second SQLite binding next to sqlx: `audit verify` must keep up with hashing (the issue
//! asks for a million records a second), and sqlx's async rows copy every column into an owned
//! value and cross a channel per row, which caps a chain scan near 150k records/s here. rusqlite
//! reads each row in place on one blocking thread, borrowing the column text, and shares sqlx's
//! `libsqlite3-sys`, so the same bundled SQLite runs both. It is used only for this read-only scan.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::AuditError;
use crate::record::RecordFields;
use crate::verify::{ChainChecker, RowView};

const CHAIN_QUERY: &str = "SELECT seq, id, tenant, ts, kind, principal, target, action, outcome, \
     session_id, approval_id, call_id, body, prev_hash, hash FROM audit_records \
     WHERE tenant = ?1 ORDER BY seq";

fn read_err(err: rusqlite::Error) -> AuditError {
    AuditError::Read(err.to_string())
}

/// Feeds `checker` every record of its tenant, in sequence order, from the file at `path`.
pub(crate) fn check_chain(
    path: &Path,
    mut checker: ChainChecker,
) -> Result<ChainChecker, AuditError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(read_err)?;
    let mut statement = connection.prepare(CHAIN_QUERY).map_err(read_err)?;
    let tenant = checker.tenant().to_owned();
    let mut rows = statement.query([&tenant]).map_err(read_err)?;
    while let Some(row) = rows.next().map_err(read_err)? {
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
