//! Call-bound approvals: the groundwork of issue #6's human in the loop.
//!
//! An approval is bound to one exact call: the sha256 of the canonical JSON (RFC 8785) of
//! `{tenant, requester, target, action}`, where `action` is the connector's typed action (for SSH:
//! the command with its sudo state, the session command, the file path and content hash). Any
//! change is another call and needs another approval.
//!
//! States: `pending → approved | denied | expired`, then `approved → consumed`, exactly once.
//! Every transition is a single conditional `UPDATE`, so two approvers or two collectors racing
//! each other cannot both win. Expiry is evaluated against the clock on every read and write:
//! a pending approval expires `ttl` after it was created, an approved one `ttl` after the decision.
//!
//! Four eyes: the requester cannot approve their own call (unless `allow_self_approval`, which
//! the row records); the approver must hold one of `approver_roles` in the same tenant. A row of
//! another tenant does not exist for the caller.
//!
//! Beside approvals the crate keeps the rest of the human-in-the-loop state: approve-and-learn
//! waivers and runtime grants ([`Grants`]) and freezes ([`Freezes`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use meho_config::Role;
use meho_core::Tier;
use meho_store::Pool;
use serde::{Deserialize, Serialize};

mod db;
mod freeze_set;
mod freezes;
mod grants;

use db::{Bind, Db, Row};
pub use freezes::{
    Freeze, FreezeKind, Freezes, MAX_FREEZE_VALUE_CHARS, MAX_SERIAL_DIGITS, Subject,
};
pub use grants::{GrantRow, Grants, MAX_OVERLAY_TTL, MIN_OVERLAY_TTL, NewGrant, WaiverRow};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Where an approval is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for a human.
    Pending,
    /// Approved; the call may run once.
    Approved,
    /// Denied.
    Denied,
    /// Not decided, or not collected, in time.
    Expired,
    /// Approved and run.
    Consumed,
}

impl Status {
    /// Every state, in life order.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Approved,
        Status::Denied,
        Status::Expired,
        Status::Consumed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Expired => "expired",
            Status::Consumed => "consumed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown approval status `{s}`"))
    }
}

/// The call an approval is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The tenant.
    pub tenant: String,
    /// Who asked (the `sub` that must not approve it).
    pub requester: String,
    /// The target.
    pub target: String,
    /// The tool (shown; the action already says what runs).
    pub tool: String,
    /// The typed action as JSON, exactly as it will run (sudo state included).
    pub action: Value,
}

impl Call {
    /// What an approval binds to: the canonical JSON (RFC 8785) of tenant, requester, target and
    /// action.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(&json!({
            "tenant": self.tenant,
            "requester": self.requester,
            "target": self.target,
            "action": self.action,
        }))
        .unwrap_or_default()
    }

    /// The binding: sha256 (hex) of [`Call::canonical_bytes`].
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_bytes()))
    }
}

/// What an approve-and-learn waiver would cover: one command with its elevation. A call whose
/// action is not a command has none, and its approval cannot learn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learnable {
    /// The command, exactly as the agent sent it.
    pub command: String,
    /// Run under sudo.
    pub sudo: bool,
    /// Sudo target user.
    pub sudo_user: Option<String>,
    /// The human behind the held call as its decider saw it (`""` when the frontend knew none):
    /// the learned waiver must name the same end user the decider compares, or it never
    /// applies. `None` only for approvals stored before it was recorded (the requester was used).
    #[serde(default)]
    pub end_user: Option<String>,
}

impl Learnable {
    /// The command an action runs, by the convention every connector's actions follow: an
    /// action that runs a command names it `command`, with its elevation in `sudo` and
    /// `sudo_user`. `None` for any other action.
    pub fn of_action(action: &Value) -> Option<Learnable> {
        Some(Learnable {
            end_user: None,
            command: action.get("command")?.as_str()?.to_owned(),
            sudo: action.get("sudo").and_then(Value::as_bool).unwrap_or(false),
            sudo_user: action
                .get("sudo_user")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// A pending approval to record.
#[derive(Debug, Clone, Copy)]
pub struct NewApproval<'a> {
    /// The call it is bound to.
    pub call: &'a Call,
    /// What approvers are shown: the arguments with secrets redacted.
    pub shown: &'a Value,
    /// The tool arguments as the agent sent them, replayed when the call is collected.
    pub request: Option<&'a Value>,
    /// One line for humans.
    pub summary: &'a str,
    /// The rule that asked.
    pub rule: &'a str,
    /// The call's tier.
    pub tier: Tier,
    /// What an approve-and-learn waiver would cover, when the action is a command.
    pub learnable: Option<&'a Learnable>,
    /// What the held call would change, as the connector computed it for approvers (a unified
    /// diff, say), already redacted and clipped. Informational: `call_hash` does not cover it.
    pub preview: Option<&'a str>,
}

/// One approval as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// `apr-…`.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// Who asked.
    pub requester: String,
    /// The target.
    pub target: String,
    /// The tool.
    pub tool: String,
    /// The call binding.
    pub call_hash: String,
    /// The arguments, for the approver to read (and bound by `call_hash`).
    pub arguments: Value,
    /// The tool arguments exactly as the agent sent them, replayed when the call is collected.
    #[serde(skip)]
    pub request: Option<Value>,
    /// What an approve-and-learn waiver would cover; `None` for calls that run no command.
    #[serde(skip)]
    pub learnable: Option<Learnable>,
    /// One line for humans.
    pub summary: String,
    /// What the held call would change (several lines, a unified diff say), as the connector
    /// computed it and approvers are shown it (redacted, clipped); `None` when the connector
    /// computed none. Informational: `call_hash` binds the call, not this text.
    #[serde(default)]
    pub preview: Option<String>,
    /// The rule that asked for approval.
    pub rule: String,
    /// The tier of the call.
    pub tier: Tier,
    /// The state, with expiry applied.
    pub status: Status,
    /// Unix microseconds.
    pub created_at_us: i64,
    /// When it expires (pending: from creation; approved: from the decision).
    pub expires_at_us: i64,
    /// When it was decided.
    pub decided_at_us: Option<i64>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// Whether the requester approved it (only with `allow_self_approval`).
    pub self_approved: bool,
    /// Approve-and-learn: the waiver lifetime the approver asked for.
    pub learn_ttl_seconds: Option<i64>,
    /// When it was consumed.
    pub consumed_at_us: Option<i64>,
}

/// The human deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// Their principal (the token's `sub`).
    pub principal: String,
    /// Their tenant.
    pub tenant: String,
    /// Their role there.
    pub role: Role,
}

/// `[approvals]` rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// How long a pending approval waits, and an approved one stays collectable.
    pub ttl: Duration,
    /// Roles that may decide. Default `tenant_admin`.
    pub approver_roles: Vec<Role>,
    /// Let requesters approve their own calls (audited as such).
    pub allow_self_approval: bool,
}

impl ApprovalPolicy {
    /// The rules `[approvals]` configures.
    pub fn from_config(config: &meho_config::ApprovalsConfig) -> Self {
        ApprovalPolicy {
            ttl: Duration::from_secs(config.ttl_seconds),
            approver_roles: config.approver_roles.clone(),
            allow_self_approval: config.allow_self_approval,
        }
    }
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy {
            ttl: Duration::from_secs(600),
            approver_roles: vec![Role::TenantAdmin],
            allow_self_approval: false,
        }
    }
}

/// The longest reason, in characters, any decision, grant, freeze or lift may carry. One limit
/// for every reason: each is stored, audited and shown to humans the same way.
pub const MAX_REASON_CHARS: usize = 1024;

/// The characters `str::trim` removes (Unicode `White_Space`), as inclusive ranges.
pub const WHITESPACE: [(char, char); 10] = [
    ('\u{9}', '\u{d}'),
    (' ', ' '),
    ('\u{85}', '\u{85}'),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
];

/// A regular expression (the same in ECMA 262, Python and Rust) that matches a text with at least
/// one character that is not [`WHITESPACE`]: what "not blank" means for a reason or a frozen
/// value. The OpenAPI document publishes it as their `pattern`.
pub fn not_blank_pattern() -> String {
    let mut class = String::from("[^");
    for (first, last) in WHITESPACE {
        class.push_str(&format!("\\u{:04x}", u32::from(first)));
        if last != first {
            class.push_str(&format!("-\\u{:04x}", u32::from(last)));
        }
    }
    class.push(']');
    class
}

/// `reason` trimmed, if it is not blank and at most [`MAX_REASON_CHARS`] characters as sent;
/// `what` names it in the error.
pub fn check_reason<'a>(what: &str, reason: &'a str) -> Result<&'a str, ApprovalError> {
    let trimmed = reason.trim();
    if trimmed.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApprovalError::Invalid(format!(
            "{what} needs a reason of 1 to {MAX_REASON_CHARS} characters, not all blank"
        )));
    }
    Ok(trimmed)
}

/// An optional reason (lifting a freeze): blank is none, and a given one obeys the same limit.
pub fn check_optional_reason<'a>(
    what: &str,
    reason: Option<&'a str>,
) -> Result<Option<&'a str>, ApprovalError> {
    match reason {
        Some(text) if !text.trim().is_empty() || text.chars().count() > MAX_REASON_CHARS => {
            check_reason(what, text).map(Some)
        }
        _ => Ok(None),
    }
}

/// What kind of row an id names, for "no such …" errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// An approval.
    Approval,
    /// A runtime grant.
    Grant,
    /// An approve-and-learn waiver.
    Waiver,
    /// A freeze.
    Freeze,
}

impl RowKind {
    /// The word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            RowKind::Approval => "approval",
            RowKind::Grant => "grant",
            RowKind::Waiver => "waiver",
            RowKind::Freeze => "freeze",
        }
    }
}

impl fmt::Display for RowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was looked for and not found. The kind comes from the table that was asked, never
/// from the id, which is the caller's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// What was looked for.
    pub kind: RowKind,
    /// The id asked for.
    pub id: String,
}

impl Missing {
    pub(crate) fn error(kind: RowKind, id: impl Into<String>) -> ApprovalError {
        ApprovalError::NotFound(Missing {
            kind,
            id: id.into(),
        })
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`", self.kind, self.id)
    }
}

/// Why an approval operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No such approval, grant, waiver or freeze in the caller's tenant.
    #[error("no {0} in your tenant")]
    NotFound(Missing),
    /// A four-eyes rule refused the approver (HTTP 403).
    #[error("four eyes: {0}")]
    FourEyes(String),
    /// The approval is not in the state the operation needs.
    #[error("approval `{id}` is {status}")]
    WrongState {
        /// The approval.
        id: String,
        /// Its state.
        status: Status,
    },
    /// The call presented is not the call that was approved.
    #[error("approval `{0}` is for a different call; any change needs a new approval")]
    DifferentCall(String),
    /// The store failed.
    #[error("approvals store: {0}")]
    Store(#[from] sqlx::Error),
    /// The request is not acceptable (a bad pattern, an out-of-range TTL, …).
    #[error("{0}")]
    Invalid(String),
    /// The row is not in a state the operation can change (revoked, lifted).
    #[error("{0}")]
    Conflict(String),
    /// A row could not be read back.
    #[error("approvals store: unreadable row: {0}")]
    Corrupt(String),
}

/// The approvals of one store.
#[derive(Debug, Clone)]
pub struct Approvals {
    db: Db,
    policy: ApprovalPolicy,
}

/// Unix microseconds now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

const COLUMNS: &str = "id, tenant, requester, target, tool, call_hash, arguments, summary, rule, tier, status, created_at_us, expires_at_us, decided_at_us, decided_by, reason, self_approved, learn_ttl_seconds, consumed_at_us, request, learnable, preview";

fn read_approval(row: &dyn Row) -> Result<Approval, ApprovalError> {
    let arguments = row.text("arguments")?;
    let request = row.opt_text("request")?;
    let learnable = row.opt_text("learnable")?;
    Ok(Approval {
        id: row.text("id")?,
        tenant: row.text("tenant")?,
        requester: row.text("requester")?,
        target: row.text("target")?,
        tool: row.text("tool")?,
        call_hash: row.text("call_hash")?,
        arguments: serde_json::from_str(&arguments)
            .map_err(|e| ApprovalError::Corrupt(e.to_string()))?,
        request: request
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| ApprovalError::Corrupt(e.to_string()))?,
        learnable: learnable
            .map(|l| serde_json::from_str(&l))
            .transpose()
            .map_err(|e| ApprovalError::Corrupt(e.to_string()))?,
        summary: row.text("summary")?,
        preview: row.opt_text("preview")?,
        rule: row.text("rule")?,
        tier: row
            .text("tier")?
            .parse()
            .map_err(|e: meho_core::ParseTierError| ApprovalError::Corrupt(e.to_string()))?,
        status: row
            .text("status")?
            .parse()
            .map_err(ApprovalError::Corrupt)?,
        created_at_us: row.int("created_at_us")?,
        expires_at_us: row.int("expires_at_us")?,
        decided_at_us: row.opt_int("decided_at_us")?,
        decided_by: row.opt_text("decided_by")?,
        reason: row.opt_text("reason")?,
        self_approved: row.boolean("self_approved")?,
        learn_ttl_seconds: row.opt_int("learn_ttl_seconds")?,
        consumed_at_us: row.opt_int("consumed_at_us")?,
    })
}

impl Approvals {
    /// Approvals in `store`'s database, under `policy`.
    pub fn new(pool: Pool, policy: ApprovalPolicy) -> Self {
        Approvals {
            db: Db::new(pool),
            policy,
        }
    }

    /// The rules in force.
    pub fn policy(&self) -> &ApprovalPolicy {
        &self.policy
    }

    async fn execute(&self, sql: &str, binds: Vec<Bind>) -> Result<u64, ApprovalError> {
        Ok(self.db.execute(sql, binds).await?)
    }

    async fn fetch(&self, sql: &str, binds: Vec<Bind>) -> Result<Vec<Approval>, ApprovalError> {
        let mut out = self.db.fetch(sql, binds, read_approval).await?;
        let now = now_us();
        for approval in &mut out {
            // Expiry is a matter of the clock; the row catches up on its next write.
            if matches!(approval.status, Status::Pending | Status::Approved)
                && approval.expires_at_us <= now
            {
                approval.status = Status::Expired;
            }
        }
        Ok(out)
    }

    /// Records a new pending approval for `call`; approvers are shown the request (or the
    /// action, without one), and an action that runs a command can learn it
    /// ([`Learnable::of_action`]).
    pub async fn create(
        &self,
        call: &Call,
        request: Option<&Value>,
        summary: &str,
        rule: &str,
        tier: Tier,
    ) -> Result<Approval, ApprovalError> {
        let learnable = Learnable::of_action(&call.action);
        self.create_shown(&NewApproval {
            call,
            shown: request.unwrap_or(&call.action),
            request,
            summary,
            rule,
            tier,
            learnable: learnable.as_ref(),
            preview: None,
        })
        .await
    }

    /// Records a new pending approval bound to `new.call` (its hash), showing approvers
    /// `new.shown` and keeping `new.request` (what the agent sent) to replay.
    pub async fn create_shown(&self, new: &NewApproval<'_>) -> Result<Approval, ApprovalError> {
        let NewApproval {
            call,
            shown,
            request,
            summary,
            rule,
            tier,
            learnable,
            preview,
        } = *new;
        let id = format!("apr-{}", uuid::Uuid::now_v7().simple());
        let now = now_us();
        let ttl = i64::try_from(self.policy.ttl.as_micros()).unwrap_or(i64::MAX);
        let sql = format!(
            "INSERT INTO approvals ({COLUMNS}, ttl_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, NULL, NULL, $14, NULL, NULL, $16, $17, $18, $15)"
        );
        self.execute(
            &sql,
            vec![
                Bind::Text(id.clone()),
                Bind::Text(call.tenant.clone()),
                Bind::Text(call.requester.clone()),
                Bind::Text(call.target.clone()),
                Bind::Text(call.tool.clone()),
                Bind::Text(call.hash()),
                Bind::Text(shown.to_string()),
                Bind::Text(summary.to_owned()),
                Bind::Text(rule.to_owned()),
                Bind::Text(tier.as_str().to_owned()),
                Bind::Text(Status::Pending.as_str().to_owned()),
                Bind::Int(now),
                Bind::Int(now.saturating_add(ttl)),
                Bind::Bool(false),
                Bind::Int(ttl),
                Bind::OptText(request.map(Value::to_string)),
                Bind::OptText(
                    learnable
                        .map(serde_json::to_string)
                        .transpose()
                        .map_err(|e| ApprovalError::Corrupt(e.to_string()))?,
                ),
                Bind::OptText(preview.map(str::to_owned)),
            ],
        )
        .await?;
        self.get(&call.tenant, &id).await
    }

    /// The approval `id` of `tenant`.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<Approval, ApprovalError> {
        let sql = format!("SELECT {COLUMNS} FROM approvals WHERE id = $1 AND tenant = $2");
        self.fetch(
            &sql,
            vec![Bind::Text(id.to_owned()), Bind::Text(tenant.to_owned())],
        )
        .await?
        .pop()
        .ok_or_else(|| Missing::error(RowKind::Approval, id))
    }

    /// `tenant`'s approvals, newest first, optionally only those in `status`.
    pub async fn list(
        &self,
        tenant: &str,
        status: Option<Status>,
        limit: u32,
    ) -> Result<Vec<Approval>, ApprovalError> {
        // The status is filtered in SQL, before the limit, with expiry judged by the clock as
        // everywhere else; `$3` is now.
        let condition = match status {
            None => "",
            Some(Status::Pending) => "AND status = 'pending' AND expires_at_us > $3",
            Some(Status::Approved) => "AND status = 'approved' AND expires_at_us > $3",
            Some(Status::Expired) => {
                "AND (status = 'expired' OR (status IN ('pending', 'approved') AND expires_at_us <= $3))"
            }
            Some(Status::Denied) => "AND status = 'denied'",
            Some(Status::Consumed) => "AND status = 'consumed'",
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM approvals WHERE tenant = $1 {condition} ORDER BY created_at_us DESC LIMIT $2"
        );
        let mut binds = vec![Bind::Text(tenant.to_owned()), Bind::Int(i64::from(limit))];
        if condition.contains("$3") {
            binds.push(Bind::Int(now_us()));
        }
        self.fetch(&sql, binds).await
    }

    /// Approves or denies `id` as `approver`, under the four-eyes rules.
    pub async fn decide(
        &self,
        approver: &Approver,
        id: &str,
        approve: bool,
        reason: &str,
        learn_ttl_seconds: Option<i64>,
    ) -> Result<Approval, ApprovalError> {
        let reason = check_reason("a decision", reason)?;
        let current = self.get(&approver.tenant, id).await?;
        let roles = || {
            self.policy
                .approver_roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.policy.approver_roles.contains(&approver.role) {
            return Err(ApprovalError::FourEyes(format!(
                "role `{}` may not decide approvals (approver_roles: {})",
                approver.role.as_str(),
                roles()
            )));
        }
        let self_approval = current.requester == approver.principal;
        if self_approval && !self.policy.allow_self_approval {
            return Err(ApprovalError::FourEyes(format!(
                "`{}` requested this call and cannot decide it; another identity with an approver role ({}) must",
                approver.principal,
                roles()
            )));
        }
        if current.status != Status::Pending {
            return Err(ApprovalError::WrongState {
                id: id.to_owned(),
                status: current.status,
            });
        }
        let now = now_us();
        let (status, expires) = if approve {
            // Collectable for one TTL after the decision.
            (
                Status::Approved,
                now.saturating_add(i64::try_from(self.policy.ttl.as_micros()).unwrap_or(i64::MAX)),
            )
        } else {
            (Status::Denied, current.expires_at_us)
        };
        let changed = self
            .execute(
                "UPDATE approvals SET status = $1, decided_at_us = $2, decided_by = $3, reason = $4, \
                 self_approved = $5, learn_ttl_seconds = $6, expires_at_us = $7 \
                 WHERE id = $8 AND tenant = $9 AND status = 'pending' AND expires_at_us > $10",
                vec![
                    Bind::Text(status.as_str().to_owned()),
                    Bind::Int(now),
                    Bind::Text(approver.principal.clone()),
                    Bind::Text(reason.to_owned()),
                    Bind::Bool(self_approval),
                    Bind::OptInt(if approve { learn_ttl_seconds } else { None }),
                    Bind::Int(expires),
                    Bind::Text(id.to_owned()),
                    Bind::Text(approver.tenant.clone()),
                    Bind::Int(now),
                ],
            )
            .await?;
        // Zero rows: someone else decided first, or it expired in between.
        self.settled(changed, &approver.tenant, id).await
    }

    /// The row after a conditional transition: the new state when the `UPDATE` changed it, the
    /// state that stopped it otherwise.
    async fn settled(
        &self,
        changed: u64,
        tenant: &str,
        id: &str,
    ) -> Result<Approval, ApprovalError> {
        let after = self.get(tenant, id).await?;
        if changed == 1 {
            Ok(after)
        } else {
            Err(ApprovalError::WrongState {
                id: id.to_owned(),
                status: after.status,
            })
        }
    }

    /// Collects an approved call exactly once. `call` must be the call that was approved.
    pub async fn consume(&self, id: &str, call: &Call) -> Result<Approval, ApprovalError> {
        let current = self.get(&call.tenant, id).await?;
        if current.call_hash != call.hash() {
            return Err(ApprovalError::DifferentCall(id.to_owned()));
        }
        let now = now_us();
        let changed = self
            .execute(
                "UPDATE approvals SET status = 'consumed', consumed_at_us = $1 \
                 WHERE id = $2 AND tenant = $3 AND call_hash = $4 AND status = 'approved' AND expires_at_us > $5",
                vec![
                    Bind::Int(now),
                    Bind::Text(id.to_owned()),
                    Bind::Text(call.tenant.clone()),
                    Bind::Text(call.hash()),
                    Bind::Int(now),
                ],
            )
            .await?;
        self.settled(changed, &call.tenant, id).await
    }

    /// Writes `expired` into rows whose time ran out; returns the approvals this call expired
    /// (each exactly once, even with several sweepers racing).
    pub async fn expire_due(&self) -> Result<Vec<Approval>, ApprovalError> {
        let now = now_us();
        let due = self
            .fetch(
                &format!(
                    "SELECT {COLUMNS} FROM approvals WHERE status IN ('pending', 'approved') AND expires_at_us <= $1 ORDER BY created_at_us LIMIT 500"
                ),
                vec![Bind::Int(now)],
            )
            .await?;
        let mut expired = Vec::new();
        for approval in due {
            let changed = self
                .execute(
                    "UPDATE approvals SET status = 'expired' WHERE id = $1 AND status IN ('pending', 'approved') AND expires_at_us <= $2",
                    vec![Bind::Text(approval.id.clone()), Bind::Int(now)],
                )
                .await?;
            if changed == 1 {
                expired.push(approval);
            }
        }
        Ok(expired)
    }

    #[doc(hidden)]
    /// Test support: sets `id`'s expiry (unix microseconds).
    pub async fn set_expiry_for_tests(&self, id: &str, at_us: i64) -> Result<(), ApprovalError> {
        self.execute(
            "UPDATE approvals SET expires_at_us = $1 WHERE id = $2",
            vec![Bind::Int(at_us), Bind::Text(id.to_owned())],
        )
        .await
        .map(drop)
    }
}
