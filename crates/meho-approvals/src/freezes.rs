//! Freezes: a kill switch on a principal, an SSH session or a credential serial.
//!
//! A freeze lives in the store, so it holds across restarts and across every instance that
//! shares the store, until it is lifted. Lifting is a timestamp; the row stays.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::db::{Bind, Db, Row};
use crate::freeze_set::SqliteFreezeSet;
use crate::{ApprovalError, Missing, RowKind, now_us};

/// The longest frozen principal or session id, in characters.
pub const MAX_FREEZE_VALUE_CHARS: usize = 256;

/// The most digits a frozen serial may have: every such number fits a `u64` (serials are below
/// 2^53, 16 digits).
pub const MAX_SERIAL_DIGITS: usize = 19;

/// What a freeze stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreezeKind {
    /// Every call of one principal.
    Principal,
    /// One SSH session.
    Session,
    /// One credential (certificate serial), and the session built on it.
    Serial,
}

impl FreezeKind {
    /// Every kind.
    pub const ALL: [FreezeKind; 3] = [
        FreezeKind::Principal,
        FreezeKind::Session,
        FreezeKind::Serial,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FreezeKind::Principal => "principal",
            FreezeKind::Session => "session",
            FreezeKind::Serial => "serial",
        }
    }
}

impl fmt::Display for FreezeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FreezeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "principal" => Ok(FreezeKind::Principal),
            "session" => Ok(FreezeKind::Session),
            "serial" => Ok(FreezeKind::Serial),
            other => Err(format!(
                "unknown freeze kind `{other}` (principal, session, serial)"
            )),
        }
    }
}

/// One freeze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Freeze {
    /// `frz-…`.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// What it stops.
    pub kind: FreezeKind,
    /// The principal, session id or serial (decimal).
    pub value: String,
    /// Why.
    pub reason: String,
    /// Who froze.
    pub created_by: String,
    /// Unix microseconds.
    pub created_at_us: i64,
    /// When it was lifted.
    pub lifted_at_us: Option<i64>,
    /// Who lifted it.
    pub lifted_by: Option<String>,
    /// Why it was lifted.
    pub lift_reason: Option<String>,
}

impl Freeze {
    /// Whether it is in force.
    pub fn is_active(&self) -> bool {
        self.lifted_at_us.is_none()
    }
}

const COLUMNS: &str = "id, tenant, kind, value, reason, created_by, created_at_us, lifted_at_us, lifted_by, lift_reason";

fn read_freeze(row: &dyn Row) -> Result<Freeze, ApprovalError> {
    Ok(Freeze {
        id: row.text("id")?,
        tenant: row.text("tenant")?,
        kind: row.text("kind")?.parse().map_err(ApprovalError::Corrupt)?,
        value: row.text("value")?,
        reason: row.text("reason")?,
        created_by: row.text("created_by")?,
        created_at_us: row.int("created_at_us")?,
        lifted_at_us: row.opt_int("lifted_at_us")?,
        lifted_by: row.opt_text("lifted_by")?,
        lift_reason: row.opt_text("lift_reason")?,
    })
}

/// What a call is, for the freeze check.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    /// The calling principal.
    pub principal: &'a str,
    /// The session the call uses, if any.
    pub session: Option<&'a str>,
    /// The credential serial the call uses, if any.
    pub serial: Option<u64>,
}

/// The value a freeze stores: a principal or session id trimmed, a serial in its canonical
/// decimal form (the form the check compares with). Lengths count what the caller sent, as the
/// API documents them.
fn frozen_value(kind: FreezeKind, value: &str) -> Result<String, ApprovalError> {
    if kind == FreezeKind::Serial {
        let digits = !value.is_empty()
            && value.len() <= MAX_SERIAL_DIGITS
            && value.bytes().all(|b| b.is_ascii_digit());
        return match value.parse::<u64>() {
            Ok(serial) if digits => Ok(serial.to_string()),
            _ => Err(ApprovalError::Invalid(format!(
                "`{value}` is not a certificate serial (1 to {MAX_SERIAL_DIGITS} decimal digits)"
            ))),
        };
    }
    let trimmed = value.trim();
    if trimmed.is_empty() || value.chars().count() > MAX_FREEZE_VALUE_CHARS {
        return Err(ApprovalError::Invalid(format!(
            "the frozen value must be 1 to {MAX_FREEZE_VALUE_CHARS} characters, not all blank"
        )));
    }
    Ok(trimmed.to_owned())
}

/// The freezes of one store.
#[derive(Debug, Clone)]
pub struct Freezes {
    db: Db,
    /// On an SQLite file: the freezes in force in memory, kept current by the store's freeze
    /// generation (see `freeze_set`). `None` asks the store on every check.
    in_force: Option<Arc<SqliteFreezeSet>>,
}

impl Freezes {
    /// Freezes in `pool`'s database.
    pub fn new(pool: meho_store::Pool) -> Self {
        let in_force = match &pool {
            meho_store::Pool::Sqlite(sqlite) => {
                let options = sqlite.connect_options();
                let path = options.get_filename();
                // An in-memory database is this pool's alone: nothing else can open it.
                (!path.as_os_str().is_empty() && path.as_os_str() != ":memory:")
                    .then(|| Arc::new(SqliteFreezeSet::new(path)))
            }
            meho_store::Pool::Postgres(_) => None,
        };
        Freezes {
            db: Db::new(pool),
            in_force,
        }
    }

    /// Freezes `value` of `kind` in `tenant`.
    pub async fn create(
        &self,
        tenant: &str,
        kind: FreezeKind,
        value: &str,
        reason: &str,
        by: &str,
    ) -> Result<Freeze, ApprovalError> {
        let value = frozen_value(kind, value)?;
        let value = value.as_str();
        let reason = crate::check_reason("a freeze", reason)?;
        let id = format!("frz-{}", uuid::Uuid::now_v7().simple());
        self.db
            .execute(
                &format!(
                    "INSERT INTO freezes ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, NULL)"
                ),
                vec![
                    Bind::Text(id.clone()),
                    Bind::Text(tenant.to_owned()),
                    Bind::Text(kind.as_str().to_owned()),
                    Bind::Text(value.to_owned()),
                    Bind::Text(reason.to_owned()),
                    Bind::Text(by.to_owned()),
                    Bind::Int(now_us()),
                ],
            )
            .await?;
        self.get(tenant, &id).await
    }

    /// The freeze `id` of `tenant`.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<Freeze, ApprovalError> {
        self.db
            .fetch(
                &format!("SELECT {COLUMNS} FROM freezes WHERE id = $1 AND tenant = $2"),
                vec![Bind::Text(id.to_owned()), Bind::Text(tenant.to_owned())],
                read_freeze,
            )
            .await?
            .pop()
            .ok_or_else(|| Missing::error(RowKind::Freeze, id))
    }

    /// `tenant`'s freezes, newest first: active ones only unless `all`.
    pub async fn list(
        &self,
        tenant: &str,
        all: bool,
        limit: u32,
    ) -> Result<Vec<Freeze>, ApprovalError> {
        let active = if all { "" } else { "AND lifted_at_us IS NULL" };
        self.db
            .fetch(
                &format!(
                    "SELECT {COLUMNS} FROM freezes WHERE tenant = $1 {active} ORDER BY created_at_us DESC LIMIT $2"
                ),
                vec![Bind::Text(tenant.to_owned()), Bind::Int(i64::from(limit))],
                read_freeze,
            )
            .await
    }

    /// Lifts a freeze; lifting one that is already lifted is a conflict.
    pub async fn lift(
        &self,
        tenant: &str,
        id: &str,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Freeze, ApprovalError> {
        let reason = crate::check_optional_reason("lifting a freeze", reason)?;
        self.get(tenant, id).await?;
        let changed = self
            .db
            .execute(
                "UPDATE freezes SET lifted_at_us = $1, lifted_by = $2, lift_reason = $3 WHERE id = $4 AND tenant = $5 AND lifted_at_us IS NULL",
                vec![
                    Bind::Int(now_us()),
                    Bind::Text(by.to_owned()),
                    Bind::OptText(reason.map(str::to_owned)),
                    Bind::Text(id.to_owned()),
                    Bind::Text(tenant.to_owned()),
                ],
            )
            .await?;
        if changed == 0 {
            return Err(ApprovalError::Conflict(format!(
                "freeze `{id}` is already lifted"
            )));
        }
        self.get(tenant, id).await
    }

    /// The freeze in force that stops a call of `subject` in `tenant`, if any. A freeze committed
    /// by any process before the check began is seen; an error is never "not frozen".
    pub async fn check(
        &self,
        tenant: &str,
        subject: Subject<'_>,
    ) -> Result<Option<Freeze>, ApprovalError> {
        if let Some(in_force) = &self.in_force {
            return Ok(in_force.current()?.check(tenant, subject));
        }
        self.check_in_store(tenant, subject).await
    }

    /// [`Freezes::check`] as one query.
    async fn check_in_store(
        &self,
        tenant: &str,
        subject: Subject<'_>,
    ) -> Result<Option<Freeze>, ApprovalError> {
        let serial = subject.serial.map(|s| s.to_string());
        let mut found = self
            .db
            .fetch(
                &format!(
                    "SELECT {COLUMNS} FROM freezes WHERE tenant = $1 AND lifted_at_us IS NULL AND \
                     ((kind = 'principal' AND value = $2) OR (kind = 'session' AND value = $3) OR (kind = 'serial' AND value = $4)) \
                     ORDER BY created_at_us LIMIT 1"
                ),
                vec![
                    Bind::Text(tenant.to_owned()),
                    Bind::Text(subject.principal.to_owned()),
                    // Empty matches no row (values are never empty) when the call has no session or serial.
                    Bind::Text(subject.session.unwrap_or("").to_owned()),
                    Bind::Text(serial.unwrap_or_default()),
                ],
                read_freeze,
            )
            .await?;
        Ok(found.pop())
    }
}
