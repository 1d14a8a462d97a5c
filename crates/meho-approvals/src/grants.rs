//! Runtime grants and approve-and-learn waivers: the policy engine's overlay, kept in the store.
//!
//! Both are TTL'd and only ever widen (the engine guarantees that; see `meho_policy::Overlay`).
//! Whether a host may take a grant at all (its baseline must be an allowlist) is a question of
//! the host's policy, which the caller checks before [`Grants::create`].

use std::time::Duration;

use meho_core::Tier;
use meho_policy::Elevation;
use serde::Serialize;

use crate::db::{Bind, Db, Row};
use crate::{ApprovalError, now_us};

/// A grant to create.
#[derive(Debug, Clone)]
pub struct NewGrant {
    /// The tenant.
    pub tenant: String,
    /// The host it applies to.
    pub target: String,
    /// The allow pattern (the same regex rules as policy patterns).
    pub pattern: String,
    /// The tier of what it allows.
    pub tier: Tier,
    /// How long it stands.
    pub ttl: Duration,
    /// Why.
    pub reason: String,
    /// Who created it.
    pub created_by: String,
}

/// A stored grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantRow {
    /// `grt-…`.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The host.
    pub target: String,
    /// The allow pattern.
    pub pattern: String,
    /// The tier of what it allows.
    pub tier: Tier,
    /// Why.
    pub reason: String,
    /// Who created it.
    pub created_by: String,
    /// Unix microseconds.
    pub created_at_us: i64,
    /// Unix microseconds.
    pub expires_at_us: i64,
    /// When it was revoked.
    pub revoked_at_us: Option<i64>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

impl GrantRow {
    /// Whether it applies at `now_us`.
    pub fn is_active(&self, now_us: i64) -> bool {
        self.revoked_at_us.is_none() && now_us < self.expires_at_us
    }
}

/// A stored approve-and-learn waiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaiverRow {
    /// `wvr-…`.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The host.
    pub target: String,
    /// The exact command line.
    pub command: String,
    /// Elevation: sudo…
    pub sudo: bool,
    /// …as this user (`None`: root).
    pub sudo_user: Option<String>,
    /// The agent that asked.
    pub caller: String,
    /// The human behind it.
    pub end_user: String,
    /// The approval that taught it.
    pub approval_id: String,
    /// The approver.
    pub created_by: String,
    /// Unix microseconds.
    pub created_at_us: i64,
    /// Unix microseconds.
    pub expires_at_us: i64,
}

const GRANT_COLUMNS: &str = "id, tenant, target, pattern, tier, reason, created_by, created_at_us, expires_at_us, revoked_at_us, revoked_by";
const WAIVER_COLUMNS: &str = "id, tenant, target, command, sudo, sudo_user, caller, end_user, approval_id, created_by, created_at_us, expires_at_us";

fn read_grant(row: &dyn Row) -> Result<GrantRow, ApprovalError> {
    Ok(GrantRow {
        id: row.text("id")?,
        tenant: row.text("tenant")?,
        target: row.text("target")?,
        pattern: row.text("pattern")?,
        tier: row
            .text("tier")?
            .parse()
            .map_err(|e: meho_core::ParseTierError| ApprovalError::Corrupt(e.to_string()))?,
        reason: row.text("reason")?,
        created_by: row.text("created_by")?,
        created_at_us: row.int("created_at_us")?,
        expires_at_us: row.int("expires_at_us")?,
        revoked_at_us: row.opt_int("revoked_at_us")?,
        revoked_by: row.opt_text("revoked_by")?,
    })
}

fn read_waiver(row: &dyn Row) -> Result<WaiverRow, ApprovalError> {
    Ok(WaiverRow {
        id: row.text("id")?,
        tenant: row.text("tenant")?,
        target: row.text("target")?,
        command: row.text("command")?,
        sudo: row.boolean("sudo")?,
        sudo_user: row.opt_text("sudo_user")?,
        caller: row.text("caller")?,
        end_user: row.text("end_user")?,
        approval_id: row.text("approval_id")?,
        created_by: row.text("created_by")?,
        created_at_us: row.int("created_at_us")?,
        expires_at_us: row.int("expires_at_us")?,
    })
}

/// Longest grant or waiver lifetime: one week.
pub const MAX_OVERLAY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Shortest: one minute.
pub const MIN_OVERLAY_TTL: Duration = Duration::from_secs(60);

fn ttl_us(ttl: Duration) -> Result<i64, ApprovalError> {
    if ttl < MIN_OVERLAY_TTL || ttl > MAX_OVERLAY_TTL {
        return Err(ApprovalError::Invalid(format!(
            "ttl must be between {} and {} seconds",
            MIN_OVERLAY_TTL.as_secs(),
            MAX_OVERLAY_TTL.as_secs()
        )));
    }
    Ok(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX))
}

fn us_to_secs(us: i64) -> u64 {
    u64::try_from(us / 1_000_000).unwrap_or(0)
}

/// Grants and waivers of one store.
#[derive(Debug, Clone)]
pub struct Grants {
    db: Db,
}

impl Grants {
    /// Grants and waivers in `pool`'s database.
    pub fn new(pool: meho_store::Pool) -> Self {
        Grants { db: Db::new(pool) }
    }

    /// Stores a grant. The pattern must compile under the policy rules; whether the target may
    /// take a grant is the caller's check (`HostPolicy::check_grantable`).
    pub async fn create(&self, grant: &NewGrant) -> Result<GrantRow, ApprovalError> {
        let id = format!("grt-{}", uuid::Uuid::now_v7().simple());
        let ttl = ttl_us(grant.ttl)?;
        if grant.reason.trim().is_empty() {
            return Err(ApprovalError::Invalid("a grant needs a reason".into()));
        }
        meho_policy::Grant::new(&id, &grant.pattern, grant.tier, 0)
            .map_err(|e| ApprovalError::Invalid(e.to_string()))?;
        let now = now_us();
        self.db
            .execute(
                &format!(
                    "INSERT INTO grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL)"
                ),
                vec![
                    Bind::Text(id.clone()),
                    Bind::Text(grant.tenant.clone()),
                    Bind::Text(grant.target.clone()),
                    Bind::Text(grant.pattern.clone()),
                    Bind::Text(grant.tier.as_str().to_owned()),
                    Bind::Text(grant.reason.clone()),
                    Bind::Text(grant.created_by.clone()),
                    Bind::Int(now),
                    Bind::Int(now.saturating_add(ttl)),
                ],
            )
            .await?;
        self.get(&grant.tenant, &id).await
    }

    /// The grant `id` of `tenant`.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<GrantRow, ApprovalError> {
        self.db
            .fetch(
                &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1 AND tenant = $2"),
                vec![Bind::Text(id.to_owned()), Bind::Text(tenant.to_owned())],
                read_grant,
            )
            .await?
            .pop()
            .ok_or_else(|| ApprovalError::NotFound(id.to_owned()))
    }

    /// `tenant`'s grants, newest first: active ones only unless `all`.
    pub async fn list(
        &self,
        tenant: &str,
        target: Option<&str>,
        all: bool,
        limit: u32,
    ) -> Result<Vec<GrantRow>, ApprovalError> {
        let mut sql = format!("SELECT {GRANT_COLUMNS} FROM grants WHERE tenant = $1");
        let mut binds = vec![Bind::Text(tenant.to_owned())];
        if let Some(target) = target {
            binds.push(Bind::Text(target.to_owned()));
            sql.push_str(&format!(" AND target = ${}", binds.len()));
        }
        if !all {
            binds.push(Bind::Int(now_us()));
            sql.push_str(&format!(
                " AND revoked_at_us IS NULL AND expires_at_us > ${}",
                binds.len()
            ));
        }
        binds.push(Bind::Int(i64::from(limit)));
        sql.push_str(&format!(
            " ORDER BY created_at_us DESC LIMIT ${}",
            binds.len()
        ));
        self.db.fetch(&sql, binds, read_grant).await
    }

    /// Revokes a grant; revoking one that is already revoked is a conflict.
    pub async fn revoke(
        &self,
        tenant: &str,
        id: &str,
        by: &str,
    ) -> Result<GrantRow, ApprovalError> {
        self.get(tenant, id).await?;
        let changed = self
            .db
            .execute(
                "UPDATE grants SET revoked_at_us = $1, revoked_by = $2 WHERE id = $3 AND tenant = $4 AND revoked_at_us IS NULL",
                vec![
                    Bind::Int(now_us()),
                    Bind::Text(by.to_owned()),
                    Bind::Text(id.to_owned()),
                    Bind::Text(tenant.to_owned()),
                ],
            )
            .await?;
        if changed == 0 {
            return Err(ApprovalError::Conflict(format!(
                "grant `{id}` is already revoked"
            )));
        }
        self.get(tenant, id).await
    }

    /// Mints an approve-and-learn waiver for one exact call.
    #[expect(
        clippy::too_many_arguments,
        reason = "the waiver's identity is exactly these fields"
    )]
    pub async fn learn(
        &self,
        tenant: &str,
        target: &str,
        command: &str,
        elevation: &Elevation,
        caller: &str,
        end_user: &str,
        approval_id: &str,
        created_by: &str,
        ttl: Duration,
    ) -> Result<WaiverRow, ApprovalError> {
        let id = format!("wvr-{}", uuid::Uuid::now_v7().simple());
        let ttl = ttl_us(ttl)?;
        let now = now_us();
        let (sudo, sudo_user) = match elevation {
            Elevation::None => (false, None),
            Elevation::Sudo { user } => (true, user.clone()),
        };
        self.db
            .execute(
                &format!(
                    "INSERT INTO waivers ({WAIVER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                ),
                vec![
                    Bind::Text(id.clone()),
                    Bind::Text(tenant.to_owned()),
                    Bind::Text(target.to_owned()),
                    Bind::Text(command.to_owned()),
                    Bind::Bool(sudo),
                    Bind::OptText(sudo_user),
                    Bind::Text(caller.to_owned()),
                    Bind::Text(end_user.to_owned()),
                    Bind::Text(approval_id.to_owned()),
                    Bind::Text(created_by.to_owned()),
                    Bind::Int(now),
                    Bind::Int(now.saturating_add(ttl)),
                ],
            )
            .await?;
        self.db
            .fetch(
                &format!("SELECT {WAIVER_COLUMNS} FROM waivers WHERE id = $1"),
                vec![Bind::Text(id.clone())],
                read_waiver,
            )
            .await?
            .pop()
            .ok_or(ApprovalError::NotFound(id))
    }

    /// The grants and waivers in force for `target` in `tenant`, as the policy engine takes them.
    pub async fn overlay(
        &self,
        tenant: &str,
        target: &str,
    ) -> Result<(Vec<meho_policy::Grant>, Vec<meho_policy::Waiver>), ApprovalError> {
        let now = now_us();
        let grants = self
            .db
            .fetch(
                &format!(
                    "SELECT {GRANT_COLUMNS} FROM grants WHERE tenant = $1 AND target = $2 AND revoked_at_us IS NULL AND expires_at_us > $3"
                ),
                vec![
                    Bind::Text(tenant.to_owned()),
                    Bind::Text(target.to_owned()),
                    Bind::Int(now),
                ],
                read_grant,
            )
            .await?;
        let waivers = self
            .db
            .fetch(
                &format!(
                    "SELECT {WAIVER_COLUMNS} FROM waivers WHERE tenant = $1 AND target = $2 AND revoked_at_us IS NULL AND expires_at_us > $3"
                ),
                vec![
                    Bind::Text(tenant.to_owned()),
                    Bind::Text(target.to_owned()),
                    Bind::Int(now),
                ],
                read_waiver,
            )
            .await?;
        let grants = grants
            .into_iter()
            .map(|g| {
                meho_policy::Grant::new(g.id, g.pattern, g.tier, us_to_secs(g.expires_at_us))
                    .map_err(|e| ApprovalError::Corrupt(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let waivers = waivers
            .into_iter()
            .map(|w| meho_policy::Waiver {
                elevation: Elevation::from_request(w.sudo, w.sudo_user.as_deref()),
                id: w.id,
                command: w.command,
                caller: w.caller,
                end_user: w.end_user,
                expires_at: us_to_secs(w.expires_at_us),
            })
            .collect();
        Ok((grants, waivers))
    }
}
