//! The one sequence: [`Gateway::call`] for every frontend, [`run`] for every connector.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use meho_audit::{AuditLog, CallRef, NewRecord, RecordKind};
use meho_core::{ReasonCode, Tier};
use meho_policy::Decided;
use serde_json::{Value, json};
use tracing::Instrument as _;

use crate::connector::AnyConnector;
use crate::govern::Held;
use crate::{
    BoxFuture, CallContext, Caller, Connector, ErrorCode, Failed, Frozen, Governance, Output, Plan,
    Refusal, ToolError, ToolSpec,
};

/// What a call answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// It ran (or was previewed): the result.
    Done(Value),
    /// It waits for a human: the approval and the tool's `pending_approval` result.
    Held {
        /// `apr-…`.
        approval_id: String,
        /// The `pending_approval` result.
        value: Value,
    },
}

impl Answer {
    /// The tool result either way.
    pub fn into_value(self) -> Value {
        match self {
            Answer::Done(value) | Answer::Held { value, .. } => value,
        }
    }
}

/// The gateway's own tool: every connector's targets, merged.
pub const LIST_TARGETS: &str = "list_targets";

/// What the pipeline does with a call whose decision requires approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// Hold it: a pending approval, and the tool answers `pending_approval` (MCP, REST).
    Pending,
    /// Refuse it with `needs_approval`, naming the call an approval would bind to (the CLI,
    /// which cannot wait for a human).
    Refuse,
}

/// The argument every reduced tool takes: `raw = true` asks for the whole result (up to the
/// reducer's hard cap). The gateway takes it out of the arguments before the connector plans.
pub const RAW_ARGUMENT: &str = "raw";

/// What the reduce stage made of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Reduced {
    /// What the caller is shown.
    pub value: Value,
    /// What the call's outcome record says about it (`reduction` in the body): the handle and
    /// the size of what was shown, so an auditor can tell what the model saw. `None` when the
    /// result passed unchanged and nothing was asked of the stage.
    pub record: Option<Value>,
}

/// The reduce stage: what the model is shown of a result. It runs after the call, before the
/// outcome record is written (which names what it did). Without one, results pass unchanged.
pub trait Reducer: Send + Sync + std::fmt::Debug {
    /// Whether results of `tool` go through this stage. Such a tool takes the boolean argument
    /// [`RAW_ARGUMENT`] and declares [`Reducer::output_schema`].
    fn reduces(&self, tool: &str) -> bool;

    /// The JSON schema of a reduced tool's result: the tool's own object, or the summary.
    fn output_schema(&self) -> Value;

    /// What the caller gets for `value`, the output of `tool`; `raw` when the caller asked for
    /// the whole result. An error means the result cannot be shown (it could not be kept, say):
    /// the call ran, and its outcome record says so.
    fn reduce<'a>(
        &'a self,
        call: CallContext<'a>,
        tool: &'a str,
        raw: bool,
        value: Value,
    ) -> BoxFuture<'a, Result<Reduced, ToolError>>;
}

#[derive(Debug)]
struct PassThrough;

impl Reducer for PassThrough {
    fn reduces(&self, _tool: &str) -> bool {
        false
    }

    fn output_schema(&self) -> Value {
        Value::Null
    }

    fn reduce<'a>(
        &'a self,
        _call: CallContext<'a>,
        _tool: &'a str,
        _raw: bool,
        value: Value,
    ) -> BoxFuture<'a, Result<Reduced, ToolError>> {
        Box::pin(async move {
            Ok(Reduced {
                value,
                record: None,
            })
        })
    }
}

/// `tool`'s input schema with [`RAW_ARGUMENT`] among its properties.
fn with_raw_argument(mut schema: Value) -> Value {
    if let Some(properties) = schema
        .as_object_mut()
        .map(|object| object.entry("properties").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    {
        properties.insert(
            RAW_ARGUMENT.to_owned(),
            json!({
                "type": "boolean",
                "default": false,
                "description": "Return the whole result even when it is large (up to a hard cap). \
                    By default a large result is kept server-side and you get a summary and a \
                    handle to query with `result_query`.",
            }),
        );
    }
    schema
}

/// Takes [`RAW_ARGUMENT`] out of `arguments`: whether it was `true`.
fn take_raw(arguments: &mut Value) -> Result<bool, ToolError> {
    match arguments
        .as_object_mut()
        .and_then(|object| object.remove(RAW_ARGUMENT))
    {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(raw)) => Ok(raw),
        Some(other) => Err(ToolError::invalid(format!(
            "`{RAW_ARGUMENT}` must be a boolean, not {other}"
        ))),
    }
}

/// What every stage around the connector's needs: the human in the loop, the audit log, and how
/// holds and results are handled.
#[derive(Debug, Clone)]
pub(crate) struct Pipeline {
    governance: Arc<Governance>,
    audit: Arc<AuditLog>,
    holds: Holds,
    reducer: Arc<dyn Reducer>,
}

/// The one call path: connectors behind the governed sequence.
#[derive(Debug, Clone)]
pub struct Gateway {
    by_tool: Arc<BTreeMap<String, usize>>,
    connectors: Arc<Vec<Arc<dyn AnyConnector>>>,
    tools: Arc<Vec<ToolSpec>>,
    pipeline: Pipeline,
}

/// Builds a [`Gateway`].
#[derive(Debug)]
pub struct GatewayBuilder {
    governance: Arc<Governance>,
    connectors: Vec<Arc<dyn AnyConnector>>,
    holds: Holds,
    reducer: Arc<dyn Reducer>,
}

impl GatewayBuilder {
    /// Adds a connector.
    #[must_use]
    pub fn connector<C: Connector>(mut self, connector: Arc<C>) -> Self {
        self.connectors.push(connector);
        self
    }

    /// Sets what happens to calls that need approval (default: [`Holds::Pending`]).
    #[must_use]
    pub fn holds(mut self, holds: Holds) -> Self {
        self.holds = holds;
        self
    }

    /// Plugs in the reduce stage.
    #[must_use]
    pub fn reducer(mut self, reducer: Arc<dyn Reducer>) -> Self {
        self.reducer = reducer;
        self
    }

    /// The gateway. Fails when two connectors claim one tool name, or one claims
    /// `list_targets`.
    pub fn build(self) -> Result<Gateway, String> {
        let mut by_tool = BTreeMap::new();
        let mut tools = vec![list_targets_spec()];
        for (index, connector) in self.connectors.iter().enumerate() {
            for mut tool in connector.tools() {
                if tool.name == LIST_TARGETS || by_tool.insert(tool.name.clone(), index).is_some() {
                    return Err(format!("tool `{}` is served twice", tool.name));
                }
                if self.reducer.reduces(&tool.name) {
                    tool.input_schema = with_raw_argument(tool.input_schema);
                    tool.output_schema = Some(self.reducer.output_schema());
                }
                tools.push(tool);
            }
        }
        let audit = self.governance.audit().clone();
        Ok(Gateway {
            by_tool: Arc::new(by_tool),
            connectors: Arc::new(self.connectors),
            tools: Arc::new(tools),
            pipeline: Pipeline {
                governance: self.governance,
                audit,
                holds: self.holds,
                reducer: self.reducer,
            },
        })
    }
}

fn list_targets_spec() -> ToolSpec {
    ToolSpec {
        name: LIST_TARGETS.to_owned(),
        description:
            "List the targets (SSH hosts, …) you may use in your tenant, with what each allows."
                .to_owned(),
        input_schema: json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "ListArgs",
            "description": "`list_targets` arguments (none).",
            "type": "object",
            "additionalProperties": false,
        }),
        annotations: crate::Annotations {
            read_only: true,
            destructive: false,
            idempotent: true,
            open_world: false,
        },
        min_tier: Tier::Read,
        output_schema: None,
        never_held: true,
    }
}

/// The tier gate: a caller limited below `tier` may not make a call of it. The one place the
/// gateway compares tiers; the decider enforces the caller's maximum on the tier it rates.
pub fn tier_gate(caller: &Caller, tier: Tier, tool: &str) -> Result<(), ToolError> {
    if tier <= caller.max_tier {
        return Ok(());
    }
    let role = if caller.max_tier == Tier::Read {
        " (a read_only role)"
    } else {
        ""
    };
    Err(ToolError::new(
        ErrorCode::Denied,
        format!(
            "`{tool}` is {tier}-tier at least; the caller's role may run {}-tier actions only{role}",
            caller.max_tier
        ),
    ))
}

impl Gateway {
    /// A gateway whose calls are governed by `governance` (its approvals, freezes and audit log).
    pub fn builder(governance: Arc<Governance>) -> GatewayBuilder {
        GatewayBuilder {
            governance,
            connectors: Vec::new(),
            holds: Holds::Pending,
            reducer: Arc::new(PassThrough),
        }
    }

    /// Every tool, `list_targets` first, then in connector order.
    pub fn tools(&self) -> &[ToolSpec] {
        &self.tools
    }

    /// Whether the gateway serves `tool`.
    pub fn serves(&self, tool: &str) -> bool {
        tool == LIST_TARGETS || self.by_tool.contains_key(tool)
    }

    /// The human in the loop behind the pipeline.
    pub fn governance(&self) -> &Arc<Governance> {
        &self.pipeline.governance
    }

    /// Ends what `frozen` names on every connector; returns how many sessions ended.
    pub async fn freeze(&self, tenant: &str, frozen: Frozen<'_>) -> usize {
        let mut ended = 0;
        for connector in self.connectors.iter() {
            ended += connector.freeze(tenant, frozen).await;
        }
        ended
    }

    /// The names of the tools whose connector has a target `caller` may reach (unaudited; see
    /// [`Connector::has_targets`]), `list_targets` always.
    pub async fn reachable_tools(&self, caller: &Caller) -> Vec<String> {
        let mut reachable = vec![LIST_TARGETS.to_owned()];
        for (index, connector) in self.connectors.iter().enumerate() {
            if connector.has_targets(caller).await {
                reachable.extend(
                    self.by_tool
                        .iter()
                        .filter(|(_, i)| **i == index)
                        .map(|(name, _)| name.clone()),
                );
            }
        }
        reachable
    }

    /// Runs one tool call through the pipeline; a held call answers its `pending_approval`
    /// result. See [`Gateway::dispatch`].
    pub async fn call(
        &self,
        caller: &Caller,
        tool: &str,
        arguments: Value,
    ) -> Result<Value, ToolError> {
        self.dispatch(caller, tool, arguments)
            .await
            .map(Answer::into_value)
    }

    /// Runs one tool call through the pipeline. One span per call carries its id, the tenant,
    /// the principal, the tool and (once planned) the target; every stage is a child span.
    pub async fn dispatch(
        &self,
        caller: &Caller,
        tool: &str,
        arguments: Value,
    ) -> Result<Answer, ToolError> {
        let call_id = uuid::Uuid::now_v7().to_string();
        let span = tracing::info_span!(
            "call",
            call_id = %call_id,
            tenant = %caller.tenant,
            principal = %caller.principal,
            tool = %tool,
            target = tracing::field::Empty,
        );
        let call = CallContext {
            caller,
            call_id: &call_id,
        };
        async move {
            if tool == LIST_TARGETS {
                return self.list_targets(call, &arguments).await.map(Answer::Done);
            }
            let Some(connector) = self
                .by_tool
                .get(tool)
                .and_then(|index| self.connectors.get(*index))
            else {
                return Err(ToolError::new(
                    ErrorCode::UnknownTool,
                    format!("no tool named `{tool}`"),
                ));
            };
            connector.run(&self.pipeline, call, tool, arguments).await
        }
        .instrument(span)
        .await
    }

    /// `list_targets`: freeze check, every connector's targets, one audit record (what an agent
    /// learned is part of what it did).
    async fn list_targets(
        &self,
        call: CallContext<'_>,
        arguments: &Value,
    ) -> Result<Value, ToolError> {
        self.pipeline
            .governance
            .check_frozen(call.caller, Some(call.call_id), LIST_TARGETS, arguments)
            .instrument(tracing::info_span!("freeze"))
            .await?;
        if let Some(field) = arguments.as_object().and_then(|o| o.keys().next()) {
            return Err(ToolError::invalid(format!(
                "{LIST_TARGETS}: unknown field `{field}`, there are no fields"
            )));
        }
        let mut targets = Vec::new();
        for connector in self.connectors.iter() {
            targets.extend(connector.targets(call.caller).await?);
        }
        let record = NewRecord {
            action: Some(LIST_TARGETS.to_owned()),
            outcome: Some("ok".to_owned()),
            call_id: Some(call.call_id.to_owned()),
            body: json!({
                "count": targets.len(),
                "targets": targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            }),
            ..NewRecord::new(
                &call.caller.tenant,
                RecordKind::Outcome,
                &call.caller.principal,
            )
        };
        self.pipeline.audit.append(record).await.map_err(|err| {
            ToolError::internal(format!(
                "the audit log is unavailable, so nothing is listed: {err}"
            ))
        })?;
        Ok(json!({ "targets": targets }))
    }
}

/// The sequence for one call of `connector`.
pub(crate) async fn run<C: Connector>(
    pipeline: &Pipeline,
    connector: &C,
    call: CallContext<'_>,
    tool: &str,
    mut arguments: Value,
) -> Result<Answer, ToolError> {
    let caller = call.caller;
    // 1. A frozen principal or session: nothing of the call is looked at.
    pipeline
        .governance
        .check_frozen(caller, Some(call.call_id), tool, &arguments)
        .instrument(tracing::info_span!("freeze"))
        .await?;
    // 2. What the call would do (`raw` is the reduce stage's, not the connector's).
    let raw = if pipeline.reducer.reduces(tool) {
        take_raw(&mut arguments)
    } else {
        Ok(false)
    };
    let (raw, planned) = match raw {
        Ok(raw) => (
            raw,
            connector
                .plan(call, tool, &arguments)
                .instrument(tracing::info_span!("plan"))
                .await,
        ),
        Err(error) => (false, Err(error)),
    };
    let plan = match planned {
        Ok(plan) => plan,
        Err(error) => {
            let session = arguments.get("session_id").and_then(Value::as_str);
            let unplanned = Refused {
                target: None,
                session_id: session,
                arguments: &arguments,
                decision: None,
                preview_sha256: None,
            };
            pipeline.deny(call, tool, &unplanned, &error).await;
            return Err(error);
        }
    };
    drop(arguments);
    tracing::Span::current().record("target", plan.target.as_str());
    // 3. The tier gate, once.
    if let Err(error) = tier_gate(caller, plan.min_tier, tool) {
        pipeline
            .deny(call, tool, &Refused::of(&plan, None), &error)
            .await;
        return Err(error);
    }
    // 4. Decision and credential.
    let claim = caller.approval_id.as_ref().map(|id| crate::ApprovalClaim {
        id: id.clone(),
        call_hash: plan.binding(caller).hash(),
    });
    let authorized = match connector
        .authorize(call, &plan, claim.as_ref())
        .instrument(tracing::info_span!("authorize"))
        .await
    {
        Ok(authorized) => authorized,
        Err(Refusal::Decided { decision, .. }) if plan.preview => {
            return Ok(Answer::Done(preview(&decision)));
        }
        Err(Refusal::Decided {
            decision,
            runs,
            preview,
        }) => {
            return pipeline
                .refuse(call, &plan, &decision, runs.as_deref(), preview.as_deref())
                .instrument(tracing::info_span!("hold"))
                .await;
        }
        Err(Refusal::Error(error)) => {
            pipeline
                .deny(call, tool, &Refused::of(&plan, None), &error)
                .await;
            return Err(error);
        }
    };
    if plan.preview {
        return Ok(Answer::Done(preview(&authorized.decision)));
    }
    // 5. The intent, durable before anything runs (fail closed).
    let intent = CallRef {
        tenant: &caller.tenant,
        principal: &caller.principal,
        target: &plan.target,
        action: tool,
        call_id: call.call_id,
        session_id: plan.session_id.as_deref(),
        approval_id: authorized.decision.decision.approval_id.as_deref(),
    };
    let receipt = pipeline
        .audit
        .record_intent(
            &intent,
            plan.arguments.clone(),
            &authorized.decision.decision,
        )
        .instrument(tracing::info_span!("intent"))
        .await
        .map_err(|err| {
            ToolError::internal(format!(
                "the audit log is unavailable, so nothing was run: {err}"
            ))
        })?;
    // 6. Exactly the authorized plan.
    let started = Instant::now();
    let executed = connector
        .execute(call, &plan, authorized, &receipt)
        .instrument(tracing::info_span!("execute"))
        .await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (result, mut outcome, mut notes) = match executed {
        Ok(Output {
            value,
            outcome,
            notes,
        }) => (Ok(value), outcome, notes),
        Err(Failed { error, outcome }) => (Err(error), outcome, serde_json::Map::new()),
    };
    outcome.duration_ms = duration_ms;
    // 8. What the model is shown, decided before the outcome record so that it names it.
    let result = match result {
        Ok(value) if !pipeline.reducer.reduces(tool) => Ok(value),
        Ok(value) => {
            let reduced = pipeline
                .reducer
                .reduce(call, tool, raw, value)
                .instrument(tracing::info_span!("reduce"))
                .await;
            match reduced {
                Ok(Reduced { value, record }) => {
                    if let Some(record) = record {
                        notes.insert("reduction".to_owned(), record);
                    }
                    Ok(value)
                }
                Err(error) => {
                    notes.insert(
                        "reduction".to_owned(),
                        json!({ "error": error.message.clone() }),
                    );
                    Err(error)
                }
            }
        }
        Err(error) => Err(error),
    };
    // 7. The outcome. 9. Its append publishes it on the tenant's live feed.
    if let Err(err) = pipeline
        .audit
        .record_outcome_with(receipt, &outcome, notes)
        .instrument(tracing::info_span!("outcome"))
        .await
    {
        tracing::error!(%err, "could not audit a call's outcome");
    }
    Ok(Answer::Done(result?))
}

/// The answer of a decide-only call.
fn preview(decision: &Decided) -> Value {
    json!({ "dry_run": true, "decision": decision })
}

/// What a refusal record names of a call.
struct Refused<'a> {
    target: Option<&'a str>,
    session_id: Option<&'a str>,
    arguments: &'a Value,
    decision: Option<&'a Decided>,
    /// sha256 of the preview the connector computed, as approvers are shown it.
    preview_sha256: Option<&'a str>,
}

impl<'a> Refused<'a> {
    fn of<A>(plan: &'a Plan<A>, decision: Option<&'a Decided>) -> Self {
        Refused {
            target: Some(&plan.target),
            session_id: plan.session_id.as_deref(),
            arguments: &plan.arguments,
            decision,
            preview_sha256: None,
        }
    }
}

/// The error for a decision that does not let the call run.
pub(crate) fn refusal_error(decided: &Decided, caller: &Caller) -> ToolError {
    let decision = &decided.decision;
    let (code, message) = if decision.needs_approval() {
        (
            ErrorCode::NeedsApproval,
            format!(
                "the call needs a human's approval (rule `{}`)",
                decision.rule
            ),
        )
    } else if decision.reason_code == ReasonCode::TierExceeded {
        (
            ErrorCode::Denied,
            format!(
                "this call is {}-tier; the caller's role may run {}-tier actions only",
                decision.tier, caller.max_tier
            ),
        )
    } else if let Some(problem) = decision.rule.strip_prefix("approval:") {
        (
            ErrorCode::ApprovalRefused,
            format!(
                "the approval `{}` cannot authorize this call: {}",
                decision.approval_id.as_deref().unwrap_or("?"),
                match problem {
                    "different-call" => {
                        "it was given for a different call; any change needs a new approval"
                    }
                    "consumed" => "it was already used",
                    "expired" => "it expired",
                    "denied" => "it was denied",
                    "pending" => "nobody has approved it yet",
                    "not-found" => "no such approval in this tenant",
                    _ => "approvals cannot be checked here",
                }
            ),
        )
    } else {
        (
            ErrorCode::Denied,
            format!(
                "denied by policy: {} (rule `{}`)",
                decision.reason_code, decision.rule
            ),
        )
    };
    ToolError::new(code, message).with_detail(json!({ "decision": decided }))
}

impl Pipeline {
    /// Audits a refusal: the one denial record of a call that did not run.
    async fn deny(
        &self,
        call: CallContext<'_>,
        tool: &str,
        refused: &Refused<'_>,
        error: &ToolError,
    ) {
        let mut body = json!({
            "arguments": refused.arguments,
            "decision": refused.decision,
            "error": error.message,
        });
        if let (Some(hash), Some(fields)) = (refused.preview_sha256, body.as_object_mut()) {
            fields.insert("preview_sha256".to_owned(), hash.into());
        }
        let record = NewRecord {
            target: refused.target.map(str::to_owned),
            action: Some(tool.to_owned()),
            outcome: Some(error.code.as_str().to_owned()),
            session_id: refused.session_id.map(str::to_owned),
            call_id: Some(call.call_id.to_owned()),
            approval_id: call.caller.approval_id.clone(),
            body,
            ..NewRecord::new(
                &call.caller.tenant,
                RecordKind::Denial,
                &call.caller.principal,
            )
        };
        if let Err(err) = self.audit.append(record).await {
            tracing::error!(%err, "could not audit a refused call");
        }
    }

    /// A decision that does not let the call run: audited, then held for a human when it asks
    /// for one (and this frontend holds), else refused. The refusal record carries the sha256 of
    /// the connector's preview as approvers are shown it, never the text.
    async fn refuse<A: serde::Serialize>(
        &self,
        call: CallContext<'_>,
        plan: &Plan<A>,
        decision: &Decided,
        runs: Option<&str>,
        preview: Option<&str>,
    ) -> Result<Answer, ToolError> {
        let caller = call.caller;
        let error = refusal_error(decision, caller);
        let preview_sha256 =
            preview.map(|text| crate::govern::preview_sha256(&self.governance.shown_preview(text)));
        let refused = Refused {
            preview_sha256: preview_sha256.as_deref(),
            ..Refused::of(plan, Some(decision))
        };
        self.deny(call, &plan.tool, &refused, &error).await;
        if error.code != ErrorCode::NeedsApproval {
            return Err(error);
        }
        let binding = plan.binding(caller);
        if caller.approval_id.is_none() && self.holds == Holds::Pending {
            // A learned waiver names the end user the decider will compare for this caller.
            let learnable = plan.learnable.clone().map(|l| meho_approvals::Learnable {
                end_user: Some(caller.end_user.clone().unwrap_or_default()),
                ..l
            });
            return self
                .governance
                .hold(
                    caller,
                    &Held {
                        call_id: call.call_id,
                        call: &binding,
                        decision: &decision.decision,
                        arguments: &plan.arguments,
                        request: &plan.request,
                        summary: &plan.summary,
                        runs,
                        learnable: learnable.as_ref(),
                        preview,
                    },
                )
                .await;
        }
        // The call an approval must be bound to, for a frontend that asks for one itself.
        let call_hash = binding.hash();
        Err(error.with_detail(json!({
            "decision": decision,
            "call": {
                "tool": plan.tool,
                "target": plan.target,
                "arguments": plan.arguments,
                "action": binding.action,
            },
            "call_id": call.call_id,
            "call_hash": call_hash,
        })))
    }
}
