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
use crate::{ApprovalError, Missing, RowKind, now_us};

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
    /// What the pattern check warned about when this grant was created (unanchored, path
    /// traversal, open options). Computed at creation for the creator to see, not stored: empty
    /// on a grant read back from the store.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
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
        warnings: Vec::new(),
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

    /// Stores a grant. The pattern goes through `meho_policy::lint::check_grant_pattern`: one
    /// that would allow every command is refused, and the returned row carries the check's
    /// warnings. Whether the target may take a grant is the caller's check
    /// (`HostPolicy::check_grantable`).
    pub async fn create(&self, grant: &NewGrant) -> Result<GrantRow, ApprovalError> {
        let id = format!("grt-{}", uuid::Uuid::now_v7().simple());
        let ttl = ttl_us(grant.ttl)?;
        let reason = crate::check_reason("a grant", &grant.reason)?;
        let warnings = meho_policy::lint::check_grant_pattern(&grant.pattern)
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
                    Bind::Text(reason.to_owned()),
                    Bind::Text(grant.created_by.clone()),
                    Bind::Int(now),
                    Bind::Int(now.saturating_add(ttl)),
                ],
            )
            .await?;
        let mut row = self.get(&grant.tenant, &id).await?;
        row.warnings = warnings.iter().map(ToString::to_string).collect();
        Ok(row)
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
            .ok_or_else(|| Missing::error(RowKind::Grant, id))
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
            .ok_or_else(|| Missing::error(RowKind::Waiver, id))
    }

    /// The grants and waivers in force for `target` in `tenant` for a decider. They only ever
    /// widen the baseline, so when the store cannot be read the decision goes on without them
    /// (narrower, never wider): the third value is then the warning the decision carries.
    pub async fn overlay_or_baseline(
        &self,
        tenant: &str,
        target: &str,
    ) -> (
        Vec<meho_policy::Grant>,
        Vec<meho_policy::Waiver>,
        Option<String>,
    ) {
        match self.overlay(tenant, target).await {
            Ok((grants, waivers)) => (grants, waivers, None),
            Err(err) => {
                tracing::warn!(%err, "grants and waivers unavailable; deciding on the baseline");
                (
                    Vec::new(),
                    Vec::new(),
                    Some(format!(
                        "runtime grants and waivers could not be read ({err}); decided on the baseline policy"
                    )),
                )
            }
        }
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
        // A stored grant the engine no longer accepts (a pattern that does not compile, or one
        // from before the pattern check that would allow every command) is left out rather than
        // failing the whole overlay: a grant only widens, so leaving one out narrows to the
        // baseline, and this host's other grants and waivers stay in force.
        let grants = grants
            .into_iter()
            .filter_map(|g| {
                meho_policy::Grant::new(g.id, g.pattern, g.tier, us_to_secs(g.expires_at_us)).ok()
            })
            .collect();
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

#[cfg(test)]
mod tests {
    //! The grant pattern check on the store path every grant is created through (the REST API and
    //! the CLI both reach it via `Governance::create_grant`), on SQLite.

    use super::*;

    async fn store() -> (tempfile::TempDir, meho_store::Store, Grants) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            meho_store::Store::open(&format!("sqlite://{}", dir.path().join("g.db").display()))
                .await
                .unwrap();
        let grants = Grants::new(store.pool().clone());
        (dir, store, grants)
    }

    fn grant(pattern: &str) -> NewGrant {
        NewGrant {
            tenant: "acme".into(),
            target: "web".into(),
            pattern: pattern.into(),
            tier: Tier::Read,
            ttl: Duration::from_secs(3600),
            reason: "incident 42".into(),
            created_by: "op".into(),
        }
    }

    #[tokio::test]
    async fn create_refuses_a_pattern_that_would_allow_every_command() {
        let (_dir, store, grants) = store().await;
        // `""` is what `meho grants create --pattern "$UNSET"` sends.
        for pattern in ["", "x?", ".+", r"\S", "[^x]", " "] {
            let err = grants.create(&grant(pattern)).await.unwrap_err();
            let ApprovalError::Invalid(message) = &err else {
                panic!("`{pattern}`: {err:?}");
            };
            assert!(message.contains(&format!("`{pattern}`")), "{message}");
        }
        assert!(
            grants
                .list("acme", None, true, 100)
                .await
                .unwrap()
                .is_empty(),
            "nothing refused was stored"
        );
        store.close().await;
    }

    #[tokio::test]
    async fn create_answers_with_the_pattern_checks_warnings() {
        let (_dir, store, grants) = store().await;
        let row = grants.create(&grant("^uptime")).await.unwrap();
        assert_eq!(row.warnings.len(), 1, "{:?}", row.warnings);
        assert!(
            row.warnings[0].starts_with("grant pattern `^uptime` has no `$` end anchor"),
            "{:?}",
            row.warnings
        );
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["warnings"].as_array().unwrap().len(), 1);

        // Read back, the grant carries no warnings (they are not stored) and no `warnings` key.
        let again = grants.get("acme", &row.id).await.unwrap();
        assert!(again.warnings.is_empty());
        assert!(
            serde_json::to_value(&again)
                .unwrap()
                .get("warnings")
                .is_none()
        );

        let clean = grants.create(&grant("^uptime -p$")).await.unwrap();
        assert!(clean.warnings.is_empty(), "{:?}", clean.warnings);
        store.close().await;
    }

    #[tokio::test]
    async fn overlay_leaves_out_a_stored_grant_the_engine_refuses() {
        let (_dir, store, grants) = store().await;
        let good = grants.create(&grant("^uptime -p$")).await.unwrap();
        // A row from before the pattern check (or written around it): an empty pattern.
        let now = now_us();
        grants
            .db
            .execute(
                &format!(
                    "INSERT INTO grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL)"
                ),
                vec![
                    Bind::Text("grt-legacy".into()),
                    Bind::Text("acme".into()),
                    Bind::Text("web".into()),
                    Bind::Text(String::new()),
                    Bind::Text("read".into()),
                    Bind::Text("old".into()),
                    Bind::Text("op".into()),
                    Bind::Int(now),
                    Bind::Int(now + 3_600_000_000),
                ],
            )
            .await
            .unwrap();
        let (in_force, _) = grants.overlay("acme", "web").await.unwrap();
        let ids: Vec<&str> = in_force.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(
            ids,
            [good.id.as_str()],
            "the empty grant is left out, the good one kept"
        );
        store.close().await;
    }
}
