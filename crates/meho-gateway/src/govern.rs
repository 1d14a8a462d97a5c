//! The human in the loop: freezes, call-bound approvals, grants, and the audit trail of each.
//!
//! The pipeline ([`crate::Gateway::call`]) asks [`Governance::check_frozen`] before it plans a
//! call, and [`Governance::hold`]s a call whose decision requires approval: the call becomes a
//! pending approval bound to the sha256 of the plan's canonical call, announced to the webhooks,
//! and the tool answers at once. [`crate::Gateway::approval_status`] lets the requester wait for
//! the decision and, once approved, replays the call through the pipeline under the requester's
//! identity with the approval attached: the connector's decider checks it against the typed
//! action and consumes it as it mints the credential.
//!
//! Invariants:
//! - Every transition (requested, approved, denied, expired, consumed, refused by four eyes) is
//!   an `approval` audit record with the approval id, which also puts it on the live feed.
//! - When the store cannot answer a freeze check or hold a call, the call does not run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meho_approvals::{
    Approval, ApprovalError, Approvals, Approver, Call, Freeze, FreezeKind, Freezes, GrantRow,
    Grants, Learnable, NewApproval, NewGrant, Status, Subject, WaiverRow,
};
use meho_audit::{AuditLog, NewRecord, RecordKind};
use meho_config::{Host, Role};
use meho_core::Decision;
use meho_policy::Elevation;
use serde_json::{Value, json};

use crate::{Caller, ErrorCode, Frozen, Gateway, ToolError};

/// Longest `approval_status` wait.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The most bytes of a held call's preview an approval keeps (and approvers are shown): a longer
/// one is cut at a line break before it and ends with [`PREVIEW_TRUNCATED`].
pub const MAX_PREVIEW_BYTES: usize = 64 * 1024;

/// The last line of a preview cut to [`MAX_PREVIEW_BYTES`].
pub const PREVIEW_TRUNCATED: &str = "… (truncated)";

/// How often a waiting `approval_status` looks at the store (decisions made by this process
/// wake it at once).
const POLL_EVERY: Duration = Duration::from_millis(500);

/// Where a human acted from, for the audit record.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The peer address.
    pub ip: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
}

/// Who is acting on the REST API.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Their principal (the token's `sub`).
    pub principal: String,
    /// Their tenant.
    pub tenant: String,
    /// Their role there.
    pub role: Role,
    /// Where from.
    pub origin: Origin,
}

/// RFC 3339 (UTC, microseconds) of unix microseconds.
pub fn rfc3339(us: i64) -> String {
    let nanos = i128::from(us) * 1000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| us.to_string())
}

/// The human-in-the-loop state of one server.
#[derive(Debug)]
pub struct Governance {
    /// Approvals.
    pub approvals: Approvals,
    /// Grants and waivers.
    pub grants: Grants,
    /// Freezes.
    pub freezes: Freezes,
    audit: Arc<AuditLog>,
    notifier: Option<meho_notify::Notifier>,
    public_url: String,
    hosts: BTreeMap<String, Host>,
    clusters: BTreeMap<String, meho_config::Cluster>,
    /// The configured APIs by name, with their tenant (grant checks: an API's rules are always
    /// an allowlist a grant can widen).
    apis: BTreeMap<String, String>,
    decided: tokio::sync::Notify,
    self_approval_hint: Option<String>,
}

impl Governance {
    /// Governance over `store`'s tables, auditing into `audit`. `public_url` is where the console
    /// lives (links in notifications); `hosts` are the configured targets (grant checks).
    pub fn new(
        store: &meho_store::Store,
        policy: meho_approvals::ApprovalPolicy,
        audit: Arc<AuditLog>,
        public_url: &str,
        hosts: BTreeMap<String, Host>,
    ) -> Self {
        let pool = store.pool().clone();
        Governance {
            approvals: Approvals::new(pool.clone(), policy),
            grants: Grants::new(pool.clone()),
            freezes: Freezes::new(pool),
            audit,
            notifier: None,
            public_url: public_url.trim_end_matches('/').to_owned(),
            hosts,
            clusters: BTreeMap::new(),
            apis: BTreeMap::new(),
            decided: tokio::sync::Notify::new(),
            self_approval_hint: None,
        }
    }

    /// The configured APIs (grant checks): `(name, tenant)`.
    #[must_use]
    pub fn with_apis(mut self, apis: impl IntoIterator<Item = (String, String)>) -> Self {
        self.apis = apis.into_iter().collect();
        self
    }

    /// The configured clusters (grant checks), beside the hosts.
    #[must_use]
    pub fn with_clusters(mut self, clusters: BTreeMap<String, meho_config::Cluster>) -> Self {
        self.clusters = clusters;
        self
    }

    /// Announces new pending approvals through `notifier`.
    #[must_use]
    pub fn with_notifier(mut self, notifier: meho_notify::Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Adds `hint` to the refusal of a self-approval: how to approve as someone else here
    /// (`meho serve --dev` names its approver token).
    #[must_use]
    pub fn with_self_approval_hint(mut self, hint: String) -> Self {
        self.self_approval_hint = Some(hint);
        self
    }

    /// The audit log every governed call and decision is written to.
    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.audit
    }

    /// The notifier, if webhooks are configured.
    pub fn notifier(&self) -> Option<&meho_notify::Notifier> {
        self.notifier.as_ref()
    }

    /// The console link of an approval.
    pub fn console_url(&self, id: &str) -> String {
        format!("{}/console/#/approvals/{id}", self.public_url)
    }

    /// A held call's preview as approvers are shown it and the approval keeps it: through the
    /// audit redactor (like the summary), NUL (which PostgreSQL text cannot hold) as U+FFFD, cut
    /// to [`MAX_PREVIEW_BYTES`]. The same text for the same preview, so the refusal's
    /// `preview_sha256` is the hash of what the approval shows.
    pub fn shown_preview(&self, preview: &str) -> String {
        let redacted = self.audit.redactor().redact_str(preview);
        clip_preview(redacted.replace('\0', "\u{fffd}"))
    }

    async fn append(&self, record: NewRecord) -> Result<(), ToolError> {
        self.audit.append(record).await.map(drop).map_err(|e| {
            ToolError::new(
                ErrorCode::Internal,
                format!("the audit log is unavailable: {e}"),
            )
        })
    }

    // --- the tool path --------------------------------------------------------------------------

    /// Refuses (and audits) a call from a frozen principal or session. The session is the one
    /// the call names in its `session_id` argument: a freeze is checked before the call is
    /// planned, so nothing of a frozen caller's call is looked at beyond that.
    pub async fn check_frozen(
        &self,
        caller: &Caller,
        call_id: Option<&str>,
        tool: &str,
        arguments: &Value,
    ) -> Result<(), ToolError> {
        let session = arguments.get("session_id").and_then(Value::as_str);
        let found = self
            .freezes
            .check(
                &caller.tenant,
                Subject {
                    principal: &caller.principal,
                    session,
                    serial: None,
                },
            )
            .await
            .map_err(|e| {
                ToolError::internal(format!(
                    "freezes cannot be checked, so nothing runs (fail closed): {e}"
                ))
            })?;
        let Some(freeze) = found else { return Ok(()) };
        let error = ToolError::new(
            ErrorCode::Frozen,
            format!(
                "{} `{}` is frozen ({}: {}); nothing runs until an operator lifts it",
                freeze.kind, freeze.value, freeze.id, freeze.reason
            ),
        )
        .with_detail(json!({ "freeze_id": freeze.id, "kind": freeze.kind }));
        let record = NewRecord {
            action: Some(tool.to_owned()),
            outcome: Some("frozen".to_owned()),
            session_id: session.map(str::to_owned),
            approval_id: caller.approval_id.clone(),
            call_id: call_id.map(str::to_owned),
            body: json!({ "freeze_id": freeze.id, "kind": freeze.kind, "value": freeze.value, "error": error.message }),
            ..NewRecord::new(&caller.tenant, RecordKind::Denial, &caller.principal)
        };
        if let Err(err) = self.audit.append(record).await {
            tracing::error!(%err, "could not audit a frozen call");
        }
        Err(error)
    }

    /// Holds a call whose decision requires approval: a pending approval bound to `held.call`,
    /// its audit record (joined to the held call by its id) and the webhooks. Answers the tool's
    /// `pending_approval` result.
    pub async fn hold(&self, caller: &Caller, held: &Held<'_>) -> Result<crate::Answer, ToolError> {
        // Approvers, webhooks and the feed see the arguments through the audit redactor; the
        // binding (call hash) is over the real action, and the request is kept to replay.
        let redactor = self.audit.redactor();
        let mut shown = held.arguments.clone();
        redactor.redact_value(&mut shown);
        let mut summary = redactor.redact_str(held.summary).into_owned();
        if let Some(runs) = held.runs {
            // What the target will run, as the decider rebuilt it from the decoded words: an
            // approver reads that, not only what the agent wrote (`$'…'` and friends).
            summary.push_str(" → runs: ");
            summary.push_str(&redactor.redact_str(runs));
        }
        let summary = clip(summary, 300);
        let preview = held.preview.map(|preview| self.shown_preview(preview));
        let tier = held.decision.tier;
        let rule = held.decision.rule.as_str();
        let approval = self
            .approvals
            .create_shown(&NewApproval {
                call: held.call,
                shown: &shown,
                request: Some(held.request),
                summary: &summary,
                rule,
                tier,
                learnable: held.learnable,
                preview: preview.as_deref(),
            })
            .await
            .map_err(|e| {
                ToolError::internal(format!(
                    "the call needs approval, but approvals are unavailable: {e}"
                ))
            })?;
        let expires_at = rfc3339(approval.expires_at_us);
        let mut body = json!({
            "tool": held.call.tool, "arguments": shown, "summary": summary, "rule": rule,
            "tier": tier, "call_hash": approval.call_hash, "expires_at": expires_at,
            "requester": caller.principal,
        });
        if let (Some(preview), Some(fields)) = (&approval.preview, body.as_object_mut()) {
            // The hash of what approvers are shown, not the text: the log ties the approval's
            // preview to the held call without holding a second copy of it.
            fields.insert("preview_sha256".to_owned(), preview_sha256(preview).into());
        }
        let record = NewRecord {
            target: Some(held.call.target.clone()),
            action: Some("request".to_owned()),
            outcome: Some("pending".to_owned()),
            approval_id: Some(approval.id.clone()),
            // The held call's records (its refusal, the decider's) carry this id: the request
            // joins them into one call in the log.
            call_id: Some(held.call_id.to_owned()),
            body,
            ..NewRecord::new(&caller.tenant, RecordKind::Approval, &caller.principal)
        };
        self.audit.append(record).await.map_err(|e| {
            ToolError::internal(format!(
                "the audit log is unavailable, so the call was not held: {e}"
            ))
        })?;
        if let Some(notifier) = &self.notifier {
            notifier.notify_pending(&meho_notify::PendingApproval {
                id: approval.id.clone(),
                tenant: approval.tenant.clone(),
                requester: approval.requester.clone(),
                target: approval.target.clone(),
                tool: approval.tool.clone(),
                summary: approval.summary.clone(),
                rule: approval.rule.clone(),
                tier: approval.tier,
                arguments: approval.arguments.clone(),
                preview: approval.preview.clone(),
                created_at: rfc3339(approval.created_at_us),
                expires_at: expires_at.clone(),
                console_url: self.console_url(&approval.id),
            });
        }
        Ok(crate::Answer::Held {
            value: pending(&approval, &self.console_url(&approval.id)),
            approval_id: approval.id,
        })
    }

    /// Records that the collecting run consumed `approval` (the decider consumes it as it
    /// authorizes the call; this is the transition's record).
    async fn record_consumed(&self, caller: &Caller, approval: &Approval, ok: bool) {
        if let Ok(after) = self.approvals.get(&caller.tenant, &approval.id).await
            && after.status == Status::Consumed
        {
            let record = NewRecord {
                target: Some(approval.target.clone()),
                action: Some("consume".to_owned()),
                outcome: Some("consumed".to_owned()),
                approval_id: Some(approval.id.clone()),
                body: json!({ "tool": approval.tool, "ok": ok, "call_hash": approval.call_hash }),
                ..NewRecord::new(&caller.tenant, RecordKind::Approval, &caller.principal)
            };
            if let Err(err) = self.audit.append(record).await {
                tracing::error!(%err, "could not audit an approval's consumption");
            }
        }
    }
}

/// A call the pipeline holds for a human.
#[derive(Debug, Clone, Copy)]
pub struct Held<'a> {
    /// The held call's id.
    pub call_id: &'a str,
    /// What the approval binds to.
    pub call: &'a Call,
    /// The decision that asked for approval.
    pub decision: &'a Decision,
    /// The call as its records show it.
    pub arguments: &'a Value,
    /// The tool arguments as sent, replayed when collected.
    pub request: &'a Value,
    /// One line for approvers.
    pub summary: &'a str,
    /// What the target will run, when spelled differently from the request.
    pub runs: Option<&'a str>,
    /// What an approve-and-learn waiver would cover.
    pub learnable: Option<&'a Learnable>,
    /// What the call would change, as the connector computed it (redacted and clipped here,
    /// before it is stored: [`Governance::shown_preview`]).
    pub preview: Option<&'a str>,
}

impl Gateway {
    /// `approval_status`: the state of an approval, waiting up to `wait` for a decision. Once
    /// approved, the requester's call runs (exactly once) and its result is returned. `tick` is
    /// called about once a second while waiting (MCP progress notifications).
    pub async fn approval_status(
        &self,
        caller: &Caller,
        id: &str,
        wait: Duration,
        tick: &(dyn Fn(Duration, Duration) + Send + Sync),
    ) -> Result<Value, ToolError> {
        let wait = wait.min(MAX_WAIT);
        let started = Instant::now();
        let mut last_tick = Instant::now();
        loop {
            let governance = self.governance();
            let approval =
                governance
                    .approvals
                    .get(&caller.tenant, id)
                    .await
                    .map_err(|e| match e {
                        ApprovalError::NotFound(_) => {
                            ToolError::new(ErrorCode::NotFound, e.to_string())
                        }
                        other => ToolError::internal(other.to_string()),
                    })?;
            match approval.status {
                Status::Pending => {
                    let waited = started.elapsed();
                    if waited >= wait {
                        return Ok(pending(&approval, &governance.console_url(id)));
                    }
                    if last_tick.elapsed() >= Duration::from_secs(1) {
                        tick(waited, wait);
                        last_tick = Instant::now();
                    }
                    let nap = POLL_EVERY.min(wait.saturating_sub(waited));
                    let _ = tokio::time::timeout(nap, governance.decided.notified()).await;
                }
                Status::Approved if approval.requester != caller.principal => {
                    return Ok(json!({
                        "approval_id": id,
                        "status": "approved",
                        "message": format!("approved; only the requester `{}` can run it", approval.requester),
                    }));
                }
                Status::Approved => return self.collect(caller, &approval).await,
                Status::Denied => {
                    return Err(ToolError::new(
                        ErrorCode::ApprovalDenied,
                        format!(
                            "`{}` denied the call: {}",
                            approval.decided_by.as_deref().unwrap_or("?"),
                            approval.reason.as_deref().unwrap_or("no reason given")
                        ),
                    )
                    .with_detail(view_json(&approval, &governance.console_url(id))));
                }
                Status::Expired => {
                    return Err(ToolError::new(
                        ErrorCode::ApprovalExpired,
                        if approval.decided_at_us.is_some() {
                            "the call was approved but not collected in time; ask again"
                        } else {
                            "nobody decided in time; the call did not run; ask again"
                        },
                    )
                    .with_detail(view_json(&approval, &governance.console_url(id))));
                }
                Status::Consumed => {
                    return Err(ToolError::new(
                        ErrorCode::ApprovalConsumed,
                        "the approved call already ran; an approval runs its call once",
                    )
                    .with_detail(view_json(&approval, &governance.console_url(id))));
                }
            }
        }
    }

    /// Runs an approved call as its requester through the pipeline, with the approval attached
    /// for the decider.
    async fn collect(&self, caller: &Caller, approval: &Approval) -> Result<Value, ToolError> {
        let as_approved = Caller {
            approval_id: Some(approval.id.clone()),
            ..caller.clone()
        };
        let request = approval
            .request
            .clone()
            .unwrap_or_else(|| approval.arguments.clone());
        let outcome = self.call(&as_approved, &approval.tool, request).await;
        self.governance()
            .record_consumed(caller, approval, outcome.is_ok())
            .await;
        let result = outcome?;
        Ok(json!({
            "approval_id": approval.id,
            "status": "executed",
            "result": result,
        }))
    }
}

impl Governance {
    // --- decisions ------------------------------------------------------------------------------

    /// Approves or denies as `actor`, under the four-eyes rules; a refusal is audited too. With
    /// `learn_ttl`, an approval also mints a waiver for exactly that command.
    pub async fn decide(
        &self,
        actor: &Actor,
        id: &str,
        approve: bool,
        reason: &str,
        learn_ttl: Option<Duration>,
    ) -> Result<(Approval, Option<WaiverRow>), ToolError> {
        // The one limit every reason shares (grants, freezes, lifts); trimmed for the records.
        let reason = meho_approvals::check_reason("a decision", reason)?;
        if learn_ttl.is_some() {
            if !approve {
                return Err(ToolError::new(
                    ErrorCode::BadRequest,
                    "`learn_ttl_seconds` only goes with approve",
                ));
            }
            // Refuse before deciding: a learn request that cannot be honoured must not leave an
            // approval behind.
            let current = self.approvals.get(&actor.tenant, id).await?;
            learnable(&current)?;
        }
        let approver = Approver {
            principal: actor.principal.clone(),
            tenant: actor.tenant.clone(),
            role: actor.role,
        };
        let action = if approve { "approve" } else { "deny" };
        let learn_secs = learn_ttl.map(|t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX));
        let decided = self
            .approvals
            .decide(&approver, id, approve, reason, learn_secs)
            .await;
        let approval = match decided {
            Ok(approval) => approval,
            Err(err) => {
                if matches!(
                    err,
                    ApprovalError::FourEyes(_) | ApprovalError::WrongState { .. }
                ) {
                    let outcome = if matches!(err, ApprovalError::FourEyes(_)) {
                        "refused_four_eyes"
                    } else {
                        "refused_wrong_state"
                    };
                    let record = NewRecord {
                        action: Some(action.to_owned()),
                        outcome: Some(outcome.to_owned()),
                        approval_id: Some(id.to_owned()),
                        body: json!({
                            "error": err.to_string(), "reason": reason, "role": actor.role.as_str(),
                            "ip": actor.origin.ip, "user_agent": actor.origin.user_agent,
                        }),
                        ..NewRecord::new(&actor.tenant, RecordKind::Approval, &actor.principal)
                    };
                    self.append(record).await?;
                }
                if let (ApprovalError::FourEyes(message), Some(hint)) =
                    (&err, &self.self_approval_hint)
                    && self
                        .approvals
                        .get(&actor.tenant, id)
                        .await
                        .is_ok_and(|a| a.requester == actor.principal)
                {
                    return Err(ToolError::new(
                        ErrorCode::FourEyes,
                        format!("four eyes: {message}; {hint}"),
                    ));
                }
                return Err(err.into());
            }
        };
        let waiver = match learn_ttl {
            Some(ttl) if approve => Some(self.learn(actor, &approval, ttl).await?),
            _ => None,
        };
        let record = NewRecord {
            target: Some(approval.target.clone()),
            action: Some(action.to_owned()),
            outcome: Some(approval.status.as_str().to_owned()),
            approval_id: Some(approval.id.clone()),
            body: json!({
                "reason": reason, "requester": approval.requester, "tool": approval.tool,
                "call_hash": approval.call_hash, "self_approved": approval.self_approved,
                "learn_ttl_seconds": approval.learn_ttl_seconds,
                "waiver_id": waiver.as_ref().map(|w| &w.id),
                "role": actor.role.as_str(), "ip": actor.origin.ip,
                "user_agent": actor.origin.user_agent,
            }),
            ..NewRecord::new(&actor.tenant, RecordKind::Approval, &actor.principal)
        };
        self.append(record).await?;
        self.decided.notify_waiters();
        Ok((approval, waiver))
    }

    async fn learn(
        &self,
        actor: &Actor,
        approval: &Approval,
        ttl: Duration,
    ) -> Result<WaiverRow, ToolError> {
        let learnable = learnable(approval)?;
        let command = learnable.command.as_str();
        let elevation = Elevation::from_request(learnable.sudo, learnable.sudo_user.as_deref());
        let waiver = self
            .grants
            .learn(
                &approval.tenant,
                &approval.target,
                command,
                &elevation,
                &approval.requester,
                learnable.end_user.as_deref().unwrap_or(&approval.requester),
                &approval.id,
                &actor.principal,
                ttl,
            )
            .await?;
        let record = NewRecord {
            target: Some(approval.target.clone()),
            action: Some("learn".to_owned()),
            outcome: Some("minted".to_owned()),
            approval_id: Some(approval.id.clone()),
            body: json!({
                "waiver_id": waiver.id, "command": waiver.command, "elevation": elevation.to_string(),
                "caller": waiver.caller, "end_user": waiver.end_user,
                "expires_at": rfc3339(waiver.expires_at_us),
                "ip": actor.origin.ip, "user_agent": actor.origin.user_agent,
            }),
            ..NewRecord::new(&actor.tenant, RecordKind::Waiver, &actor.principal)
        };
        self.append(record).await?;
        Ok(waiver)
    }

    /// Marks timed-out approvals expired and audits each; run it periodically.
    pub async fn sweep(&self) -> Result<usize, ToolError> {
        let expired = self.approvals.expire_due().await?;
        for approval in &expired {
            let record = NewRecord {
                target: Some(approval.target.clone()),
                action: Some("expire".to_owned()),
                outcome: Some("expired".to_owned()),
                approval_id: Some(approval.id.clone()),
                body: json!({ "was": approval.status, "expires_at": rfc3339(approval.expires_at_us) }),
                ..NewRecord::new(&approval.tenant, RecordKind::Approval, "meho")
            };
            self.append(record).await?;
        }
        if !expired.is_empty() {
            self.decided.notify_waiters();
        }
        Ok(expired.len())
    }

    // --- grants ---------------------------------------------------------------------------------

    /// Creates a runtime grant (operators only; widen-only; audited).
    pub async fn create_grant(
        &self,
        actor: &Actor,
        target: &str,
        pattern: &str,
        tier: meho_core::Tier,
        ttl: Duration,
        reason: &str,
    ) -> Result<GrantRow, ToolError> {
        require_operator(actor, "create grants")?;
        let unknown = || {
            ToolError::new(
                ErrorCode::NotFound,
                format!("no target `{target}` in your tenant"),
            )
        };
        let grantable = match (self.hosts.get(target), self.clusters.get(target)) {
            (Some(host), _) if host.tenant == actor.tenant => host.policy.check_grantable(target),
            (None, Some(cluster)) if cluster.tenant == actor.tenant => {
                cluster.policy.check_grantable()
            }
            (None, None) if self.apis.get(target) == Some(&actor.tenant) => Ok(()),
            _ => return Err(unknown()),
        };
        grantable.map_err(|e| ToolError::new(ErrorCode::GrantNeedsAllowlist, e.to_string()))?;
        let grant = self
            .grants
            .create(&NewGrant {
                tenant: actor.tenant.clone(),
                target: target.to_owned(),
                pattern: pattern.to_owned(),
                tier,
                ttl,
                reason: reason.trim().to_owned(),
                created_by: actor.principal.clone(),
            })
            .await?;
        self.audit_grant(actor, &grant, "create", "created").await?;
        Ok(grant)
    }

    /// Revokes a grant (operators only; audited).
    pub async fn revoke_grant(&self, actor: &Actor, id: &str) -> Result<GrantRow, ToolError> {
        require_operator(actor, "revoke grants")?;
        let grant = self
            .grants
            .revoke(&actor.tenant, id, &actor.principal)
            .await?;
        self.audit_grant(actor, &grant, "revoke", "revoked").await?;
        Ok(grant)
    }

    async fn audit_grant(
        &self,
        actor: &Actor,
        grant: &GrantRow,
        action: &str,
        outcome: &str,
    ) -> Result<(), ToolError> {
        let record = NewRecord {
            target: Some(grant.target.clone()),
            action: Some(action.to_owned()),
            outcome: Some(outcome.to_owned()),
            body: json!({
                "grant_id": grant.id, "pattern": grant.pattern, "tier": grant.tier,
                "reason": grant.reason, "expires_at": rfc3339(grant.expires_at_us),
                "ip": actor.origin.ip, "user_agent": actor.origin.user_agent,
            }),
            ..NewRecord::new(&actor.tenant, RecordKind::Grant, &actor.principal)
        };
        self.append(record).await
    }

    // --- freezes --------------------------------------------------------------------------------

    /// Freezes a principal, session or serial: later calls are refused, open sessions close.
    /// Returns the freeze and how many sessions it closed.
    pub async fn freeze(
        &self,
        gateway: &Gateway,
        actor: &Actor,
        kind: FreezeKind,
        value: &str,
        reason: &str,
    ) -> Result<(Freeze, usize), ToolError> {
        require_operator(actor, "freeze")?;
        let freeze = self
            .freezes
            .create(&actor.tenant, kind, value, reason.trim(), &actor.principal)
            .await?;
        let closed = match kind {
            FreezeKind::Principal => {
                gateway
                    .freeze(&actor.tenant, Frozen::Principal(&freeze.value))
                    .await
            }
            FreezeKind::Session => {
                gateway
                    .freeze(&actor.tenant, Frozen::Session(&freeze.value))
                    .await
            }
            FreezeKind::Serial => match freeze.value.parse() {
                Ok(serial) => gateway.freeze(&actor.tenant, Frozen::Serial(serial)).await,
                Err(_) => 0,
            },
        };
        let record = NewRecord {
            action: Some("freeze".to_owned()),
            outcome: Some("frozen".to_owned()),
            session_id: (kind == FreezeKind::Session).then(|| freeze.value.clone()),
            body: json!({
                "freeze_id": freeze.id, "kind": kind, "value": freeze.value,
                "reason": freeze.reason, "closed_sessions": closed,
                "ip": actor.origin.ip, "user_agent": actor.origin.user_agent,
            }),
            ..NewRecord::new(&actor.tenant, RecordKind::Freeze, &actor.principal)
        };
        self.append(record).await?;
        Ok((freeze, closed))
    }

    /// Lifts a freeze (operators only; audited).
    pub async fn unfreeze(
        &self,
        actor: &Actor,
        id: &str,
        reason: Option<&str>,
    ) -> Result<Freeze, ToolError> {
        require_operator(actor, "lift freezes")?;
        let freeze = self
            .freezes
            .lift(&actor.tenant, id, &actor.principal, reason)
            .await?;
        let record = NewRecord {
            action: Some("unfreeze".to_owned()),
            outcome: Some("lifted".to_owned()),
            body: json!({
                "freeze_id": freeze.id, "kind": freeze.kind, "value": freeze.value,
                "reason": reason, "ip": actor.origin.ip, "user_agent": actor.origin.user_agent,
            }),
            ..NewRecord::new(&actor.tenant, RecordKind::Freeze, &actor.principal)
        };
        self.append(record).await?;
        Ok(freeze)
    }
}

/// What a waiver of `approval` would cover: the command the held call runs, as the connector
/// planned it. Calls that run no command cannot learn.
fn learnable(approval: &Approval) -> Result<&Learnable, ToolError> {
    approval.learnable.as_ref().ok_or_else(|| {
        ToolError::new(
            ErrorCode::BadRequest,
            format!(
                "approve-and-learn applies to commands; `{}` calls have none",
                approval.tool
            ),
        )
    })
}

fn require_operator(actor: &Actor, what: &str) -> Result<(), ToolError> {
    match actor.role {
        Role::Operator | Role::TenantAdmin => Ok(()),
        Role::ReadOnly => Err(ToolError::new(
            ErrorCode::Forbidden,
            format!(
                "role `{}` may not {what}; it takes operator or tenant_admin",
                actor.role.as_str()
            ),
        )),
    }
}

/// `line` cut to at most `max` bytes (on a character boundary), marked with `...`.
fn clip(mut line: String, max: usize) -> String {
    if line.len() > max {
        let mut cut = max.saturating_sub(3);
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str("...");
    }
    line
}

/// `text` cut to at most [`MAX_PREVIEW_BYTES`]: at the last line break that leaves room for the
/// [`PREVIEW_TRUNCATED`] line (on a character boundary when one line alone is too long).
fn clip_preview(mut text: String) -> String {
    if text.len() <= MAX_PREVIEW_BYTES {
        return text;
    }
    let mut cut = MAX_PREVIEW_BYTES.saturating_sub(PREVIEW_TRUNCATED.len() + 1);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let kept = text
        .get(..cut)
        .and_then(|head| head.rfind('\n'))
        .map_or(cut, |newline| newline + 1);
    text.truncate(kept);
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(PREVIEW_TRUNCATED);
    text
}

/// sha256 (hex) of a preview as the approval shows it: what the held call's refusal and the
/// approval's request record carry instead of the text.
pub fn preview_sha256(shown: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(shown.as_bytes()))
}

/// The tool answer for a held call.
fn pending(approval: &Approval, console_url: &str) -> Value {
    let mut answer = json!({
        "status": "pending_approval",
        "approval_id": approval.id,
        "expires_at": rfc3339(approval.expires_at_us),
        "summary": approval.summary,
        "console_url": console_url,
    });
    // The agent sees what its approver sees of the change (redacted as stored).
    if let (Some(preview), Some(object)) = (&approval.preview, answer.as_object_mut()) {
        object.insert("preview".into(), json!(preview));
    }
    answer
}

/// The REST view of an approval (docs/api.md).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ApprovalView {
    /// `apr-…`.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// Who asked (cannot approve it, unless `allow_self_approval`).
    pub requester: String,
    /// The target.
    pub target: String,
    /// The tool.
    pub tool: String,
    /// sha256 of the canonical call the approval is bound to.
    pub call_hash: String,
    /// The call's arguments, exactly as they will run.
    #[schema(value_type = Object)]
    pub arguments: Value,
    /// One line for humans.
    pub summary: String,
    /// What the held call would change, as its connector computed it for approvers: several
    /// lines of text (a unified diff of a dry run against the live object, say), redacted and
    /// cut to 64 KiB (then ending `… (truncated)`); `null` when the connector computed none.
    /// Informational: `call_hash` binds the call, not this text.
    pub preview: Option<String>,
    /// The policy rule that asked for approval.
    pub rule: String,
    /// `read`, `write` or `destructive`.
    #[schema(value_type = String)]
    pub tier: meho_core::Tier,
    /// `pending`, `approved`, `denied`, `expired` or `consumed`.
    #[schema(value_type = String)]
    pub status: Status,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339: pending ones expire a TTL after creation, approved ones a TTL after the decision.
    pub expires_at: String,
    /// RFC 3339.
    pub decided_at: Option<String>,
    /// The approver.
    pub decided_by: Option<String>,
    /// The approver's reason.
    pub reason: Option<String>,
    /// Whether the requester approved their own call (only with `allow_self_approval`).
    pub self_approved: bool,
    /// Approve-and-learn waiver lifetime, when one was asked for.
    pub learn_ttl_seconds: Option<i64>,
    /// RFC 3339.
    pub consumed_at: Option<String>,
    /// The approval in the console.
    pub console_url: String,
}

/// The REST view of an approval.
pub fn view(approval: &Approval, console_url: &str) -> ApprovalView {
    ApprovalView {
        id: approval.id.clone(),
        tenant: approval.tenant.clone(),
        requester: approval.requester.clone(),
        target: approval.target.clone(),
        tool: approval.tool.clone(),
        call_hash: approval.call_hash.clone(),
        arguments: approval.arguments.clone(),
        summary: approval.summary.clone(),
        preview: approval.preview.clone(),
        rule: approval.rule.clone(),
        tier: approval.tier,
        status: approval.status,
        created_at: rfc3339(approval.created_at_us),
        expires_at: rfc3339(approval.expires_at_us),
        decided_at: approval.decided_at_us.map(rfc3339),
        decided_by: approval.decided_by.clone(),
        reason: approval.reason.clone(),
        self_approved: approval.self_approved,
        learn_ttl_seconds: approval.learn_ttl_seconds,
        consumed_at: approval.consumed_at_us.map(rfc3339),
        console_url: console_url.to_owned(),
    }
}

fn view_json(approval: &Approval, console_url: &str) -> Value {
    serde_json::to_value(view(approval, console_url)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_within_the_limit_is_kept_whole() {
        let exact = "x".repeat(MAX_PREVIEW_BYTES);
        assert_eq!(clip_preview(exact.clone()), exact);
        assert_eq!(clip_preview("a\nb\n".to_owned()), "a\nb\n");
    }

    #[test]
    fn a_long_preview_is_cut_after_its_last_whole_line() {
        let line = "+0123456789abcdef\n";
        let long = line.repeat(MAX_PREVIEW_BYTES / line.len() + 10);
        let cut = clip_preview(long);
        assert!(cut.len() <= MAX_PREVIEW_BYTES, "{}", cut.len());
        let kept = cut
            .strip_suffix(PREVIEW_TRUNCATED)
            .expect("the truncation line");
        assert!(kept.ends_with('\n'));
        assert!(
            kept.split_terminator('\n')
                .all(|l| format!("{l}\n") == line)
        );
        assert!(kept.len() + line.len() > MAX_PREVIEW_BYTES - PREVIEW_TRUNCATED.len() - 1);
    }

    #[test]
    fn one_overlong_line_is_cut_on_a_character_boundary() {
        let cut = clip_preview("é".repeat(MAX_PREVIEW_BYTES));
        assert!(cut.len() <= MAX_PREVIEW_BYTES, "{}", cut.len());
        let kept = cut
            .strip_suffix(&format!("\n{PREVIEW_TRUNCATED}"))
            .expect("the truncation line");
        assert!(kept.chars().all(|c| c == 'é'));
        assert!(kept.len() >= MAX_PREVIEW_BYTES - PREVIEW_TRUNCATED.len() - 2);
    }

    #[test]
    fn the_preview_hash_is_sha256_hex() {
        assert_eq!(
            preview_sha256(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
