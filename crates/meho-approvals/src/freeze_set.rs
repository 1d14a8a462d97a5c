//! The freezes in force, held in memory and re-read only when the store says they changed.
//!
//! Why: every governed call asks whether it is frozen, and asking the store through the pool
//! costs a query (and on SQLite a hop to sqlx's connection thread) per call, for an answer that
//! changes a few times a day. Why it cannot fail open: a freeze may be written by any process
//! sharing the store (another `meho serve`, a tool writing the SQLite file), so nothing this
//! process hears about by itself is trusted. Migration 0006 keeps `freeze_generation`, one row
//! that a trigger bumps in the same transaction as every insert, update or delete on `freezes`.
//! Each check reads that row on a connection of its own (SQLite's C API, on the calling thread:
//! a WAL read of one row, microseconds, that never waits for a writer) and answers from memory
//! only when the generation is the one the set in memory was read at; otherwise it reads the set
//! again, with the generation, in one read transaction. Any error reading the generation or the
//! set is an error of the check (the caller runs nothing), never "not frozen".
//!
//! PostgreSQL has no connection of the caller's own to read on without a network round trip, so
//! there the check stays one indexed query per call (see [`crate::Freezes::check`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::ApprovalError;
use crate::freezes::{Freeze, FreezeKind, Subject};

const GENERATION: &str = "SELECT generation FROM freeze_generation WHERE id = 1";

/// Every active freeze with a kind the check knows; others can match no call.
const ACTIVE: &str = "SELECT id, tenant, kind, value, reason, created_by, created_at_us, \
     lifted_at_us, lifted_by, lift_reason FROM freezes WHERE lifted_at_us IS NULL \
     AND kind IN ('principal', 'session', 'serial')";

/// The active freezes of every tenant, by what they stop.
#[derive(Debug, Default)]
pub(crate) struct FreezeSet {
    by_tenant: HashMap<String, TenantFreezes>,
}

#[derive(Debug, Default)]
struct TenantFreezes {
    principal: HashMap<String, Freeze>,
    session: HashMap<String, Freeze>,
    serial: HashMap<String, Freeze>,
}

impl FreezeSet {
    fn insert(&mut self, freeze: Freeze) {
        let tenant = self.by_tenant.entry(freeze.tenant.clone()).or_default();
        let map = match freeze.kind {
            FreezeKind::Principal => &mut tenant.principal,
            FreezeKind::Session => &mut tenant.session,
            FreezeKind::Serial => &mut tenant.serial,
        };
        // The store's answer is the oldest matching freeze: keep the oldest per value.
        match map.get(&freeze.value) {
            Some(kept) if kept.created_at_us <= freeze.created_at_us => {}
            _ => {
                map.insert(freeze.value.clone(), freeze);
            }
        }
    }

    /// The oldest freeze in force that stops `subject` in `tenant`: the same answer as the
    /// store's query, including its treatment of a call without a session or serial (the empty
    /// value, which no freeze has).
    pub(crate) fn check(&self, tenant: &str, subject: Subject<'_>) -> Option<Freeze> {
        let freezes = self.by_tenant.get(tenant)?;
        let serial = subject.serial.map(|s| s.to_string()).unwrap_or_default();
        [
            freezes.principal.get(subject.principal),
            freezes.session.get(subject.session.unwrap_or("")),
            freezes.serial.get(serial.as_str()),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|f| f.created_at_us)
        .cloned()
    }
}

/// The dedicated connection and the set read at a generation.
#[derive(Debug)]
struct Watched {
    connection: Option<Connection>,
    current: Option<(i64, Arc<FreezeSet>)>,
}

/// The freezes of one SQLite file, kept current by its generation row.
#[derive(Debug)]
pub(crate) struct SqliteFreezeSet {
    path: PathBuf,
    state: Mutex<Watched>,
}

fn store_error(what: &str, err: impl std::fmt::Display) -> ApprovalError {
    ApprovalError::Store(sqlx::Error::Io(std::io::Error::other(format!(
        "{what}: {err}"
    ))))
}

impl SqliteFreezeSet {
    /// The set of the database file at `path` (opened on first use).
    pub(crate) fn new(path: &Path) -> Self {
        SqliteFreezeSet {
            path: path.to_path_buf(),
            state: Mutex::new(Watched {
                connection: None,
                current: None,
            }),
        }
    }

    /// The freezes in force now: those in memory when the generation has not moved, else read
    /// again.
    pub(crate) fn current(&self) -> Result<Arc<FreezeSet>, ApprovalError> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = Self::refresh(&self.path, &mut state);
        if result.is_err() {
            // Whatever went wrong, the next check starts from a new connection and reads the set
            // again rather than trusting anything read before.
            *state = Watched {
                connection: None,
                current: None,
            };
        }
        result
    }

    fn refresh(path: &Path, state: &mut Watched) -> Result<Arc<FreezeSet>, ApprovalError> {
        let connection = match &mut state.connection {
            Some(connection) => connection,
            slot @ None => slot.insert(open(path)?),
        };
        let generation: i64 = connection
            .prepare_cached(GENERATION)
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .map_err(|err| store_error("cannot read the freeze generation", err))?;
        if let Some((seen, set)) = &state.current
            && *seen == generation
        {
            return Ok(set.clone());
        }
        let (generation, set) = read_set(connection)?;
        let set = Arc::new(set);
        state.current = Some((generation, set.clone()));
        Ok(set)
    }
}

fn open(path: &Path) -> Result<Connection, ApprovalError> {
    let connection = Connection::open_with_flags(
        path,
        // Never writes; read-write only so WAL's shared memory works as for every other
        // connection. No CREATE: a missing file is an error, not a new empty database.
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| store_error("cannot open the freeze watch", err))?;
    connection
        .busy_timeout(Duration::from_secs(5))
        .map_err(|err| store_error("cannot open the freeze watch", err))?;
    Ok(connection)
}

/// The generation and the set, read in one transaction so the set is the one at that generation.
fn read_set(connection: &mut Connection) -> Result<(i64, FreezeSet), ApprovalError> {
    let read = |err| store_error("cannot read the freezes in force", err);
    let tx = connection.transaction().map_err(read)?;
    let generation: i64 = tx
        .query_row(GENERATION, [], |row| row.get(0))
        .map_err(read)?;
    let mut set = FreezeSet::default();
    {
        let mut statement = tx.prepare_cached(ACTIVE).map_err(read)?;
        let mut rows = statement.query([]).map_err(read)?;
        while let Some(row) = rows.next().map_err(read)? {
            let kind: String = row.get(2).map_err(read)?;
            set.insert(Freeze {
                id: row.get(0).map_err(read)?,
                tenant: row.get(1).map_err(read)?,
                kind: kind.parse().map_err(ApprovalError::Corrupt)?,
                value: row.get(3).map_err(read)?,
                reason: row.get(4).map_err(read)?,
                created_by: row.get(5).map_err(read)?,
                created_at_us: row.get(6).map_err(read)?,
                lifted_at_us: row.get(7).map_err(read)?,
                lifted_by: row.get(8).map_err(read)?,
                lift_reason: row.get(9).map_err(read)?,
            });
        }
    }
    tx.commit().map_err(read)?;
    Ok((generation, set))
}
