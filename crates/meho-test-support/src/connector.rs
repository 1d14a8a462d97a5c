//! An in-process connector whose answers a test scripts: it implements the gateway's typed
//! stages without a target behind them, and records what each stage saw. Tests of the pipeline
//! and of the frontends (MCP, REST, the console) use it where no real target is the point.

use std::sync::{Arc, Mutex};

use meho_audit::{CallOutcome, IntentReceipt};
use meho_core::{Decision, Effect, ReasonCode, Tier};
use meho_gateway::{
    Annotations, ApprovalClaim, Authorized, BoxFuture, CallContext, Caller, Connector, Failed,
    Output, Plan, Refusal, Target, ToolError, ToolSpec,
};
use serde::Serialize;
use serde_json::{Value, json};

/// What the script says about one call, decided at `authorize`.
#[derive(Debug, Clone)]
pub enum Script {
    /// Allowed: `execute` returns this value.
    Run(Value),
    /// Policy asks for a human: the rule and the tier (the call runs once an approval is
    /// presented, and then returns `ran`), with the preview the connector computed for
    /// approvers, if any (`Refusal::Decided::preview`: what a Kubernetes connector's dry-run
    /// diff would be).
    Hold {
        /// The rule.
        rule: String,
        /// The tier.
        tier: Tier,
        /// What the approved call returns.
        ran: Value,
        /// What the held call would change, shown to approvers.
        preview: Option<String>,
    },
    /// Policy denies it: the rule.
    Deny(String),
    /// The decider could not be asked, or refused to answer.
    Fail(ToolError),
    /// Allowed, but `execute` fails with this error (after the intent).
    Break(ToolError),
    /// `plan` refuses the call (malformed arguments, an unknown target).
    Unplannable(ToolError),
}

/// The script: a tool's answer for a caller and the arguments.
pub type ScriptFn = dyn Fn(&Caller, &str, &Value) -> Script + Send + Sync;

/// One stage a [`Scripted`] connector ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// `plan`, `authorize`, `execute` or `targets`.
    pub stage: &'static str,
    /// The caller.
    pub caller: Caller,
    /// The tool (`list_targets` for `targets`).
    pub tool: String,
    /// The call's arguments.
    pub arguments: Value,
    /// The approval presented at `authorize`.
    pub approval: Option<ApprovalClaim>,
    /// At `execute`: the id of the durable intent record the receipt names.
    pub intent_id: Option<String>,
}

/// The action of a scripted plan: the tool and its arguments (what an approval binds), and the
/// script's answer, decided when the call was planned.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptedAction {
    /// The tool.
    pub tool: String,
    /// The arguments.
    pub arguments: Value,
    /// The script's answer.
    #[serde(skip)]
    pub script: Option<Script>,
}

/// A connector that answers by script.
pub struct Scripted {
    tools: Vec<ToolSpec>,
    targets: Vec<String>,
    script: Box<ScriptFn>,
    seen: Mutex<Vec<Seen>>,
    /// Tenants that may reach no target.
    lonely: Vec<String>,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripted")
            .field("tools", &self.tools.len())
            .finish_non_exhaustive()
    }
}

/// A tool spec for a scripted tool.
pub fn tool(name: &str, min_tier: Tier, input_schema: Value) -> ToolSpec {
    ToolSpec {
        name: name.to_owned(),
        description: format!("{name} (scripted)"),
        input_schema,
        annotations: Annotations::default(),
        min_tier,
        output_schema: None,
        never_held: false,
    }
}

impl Scripted {
    /// A connector serving `tools`, with one target per name in `targets`, answering by
    /// `script`.
    pub fn new(
        tools: Vec<ToolSpec>,
        targets: &[&str],
        script: impl Fn(&Caller, &str, &Value) -> Script + Send + Sync + 'static,
    ) -> Arc<Self> {
        Self::with_lonely(tools, targets, &[], script)
    }

    /// As [`Scripted::new`], where `lonely` tenants reach no target.
    pub fn with_lonely(
        tools: Vec<ToolSpec>,
        targets: &[&str],
        lonely: &[&str],
        script: impl Fn(&Caller, &str, &Value) -> Script + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Scripted {
            tools,
            targets: targets.iter().map(|t| (*t).to_owned()).collect(),
            script: Box::new(script),
            seen: Mutex::new(Vec::new()),
            lonely: lonely.iter().map(|t| (*t).to_owned()).collect(),
        })
    }

    /// Every stage run so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The stages named `stage`.
    pub fn seen_at(&self, stage: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.stage == stage)
            .collect()
    }

    fn record(
        &self,
        stage: &'static str,
        caller: &Caller,
        tool: &str,
        arguments: &Value,
        approval: Option<&ApprovalClaim>,
    ) {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Seen {
                stage,
                caller: caller.clone(),
                tool: tool.to_owned(),
                arguments: arguments.clone(),
                approval: approval.cloned(),
                intent_id: None,
            });
    }

    fn reaches(&self, caller: &Caller) -> bool {
        !self.lonely.contains(&caller.tenant)
    }
}

fn decision(effect: Effect, rule: &str, tier: Tier) -> Decision {
    let code = match effect {
        Effect::Allow => ReasonCode::Allowed,
        Effect::RequireApproval => ReasonCode::NeedsApproval,
        Effect::Deny => ReasonCode::CommandDenied,
    };
    Decision {
        effect,
        ..Decision::refused(code, rule, tier)
    }
}

impl Connector for Scripted {
    type Action = ScriptedAction;
    type Credential = Value;

    fn tools(&self) -> Vec<ToolSpec> {
        self.tools.clone()
    }

    fn plan<'a>(
        &'a self,
        call: CallContext<'a>,
        tool: &'a str,
        arguments: &'a Value,
    ) -> BoxFuture<'a, Result<Plan<ScriptedAction>, ToolError>> {
        Box::pin(async move {
            self.record("plan", call.caller, tool, arguments, None);
            let script = (self.script)(call.caller, tool, arguments);
            if let Script::Unplannable(error) = script {
                return Err(error);
            }
            let target = arguments
                .get("server")
                .and_then(Value::as_str)
                .unwrap_or("x")
                .to_owned();
            let min_tier = self
                .tools
                .iter()
                .find(|t| t.name == tool)
                .map_or(Tier::Read, |t| t.min_tier);
            Ok(Plan {
                tool: tool.to_owned(),
                summary: format!("{tool} on {target}"),
                learnable: meho_gateway::Learnable::of_action(arguments),
                target,
                min_tier,
                session_id: arguments
                    .get("session_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                arguments: arguments.clone(),
                request: arguments.clone(),
                preview: arguments.get("dry_run").and_then(Value::as_bool) == Some(true),
                action: ScriptedAction {
                    tool: tool.to_owned(),
                    arguments: arguments.clone(),
                    script: Some(script),
                },
            })
        })
    }

    fn authorize<'a>(
        &'a self,
        call: CallContext<'a>,
        plan: &'a Plan<ScriptedAction>,
        approval: Option<&'a ApprovalClaim>,
    ) -> BoxFuture<'a, Result<Authorized<Value>, Refusal>> {
        Box::pin(async move {
            self.record(
                "authorize",
                call.caller,
                &plan.tool,
                &plan.request,
                approval,
            );
            let allowed =
                |value: Value, rule: &str, tier: Tier, approval_id: Option<String>| Authorized {
                    decision: Decision {
                        approval_id,
                        ..decision(Effect::Allow, rule, tier)
                    }
                    .into(),
                    credential: Some(value),
                    serial: Some("7".to_owned()),
                    runs: None,
                };
            let script = plan
                .action
                .script
                .clone()
                .unwrap_or(Script::Fail(ToolError::internal("an unplanned call")));
            match script {
                Script::Run(value) => Ok(allowed(value, "allow:scripted", Tier::Read, None)),
                Script::Hold {
                    rule,
                    tier,
                    ran,
                    preview,
                } => match approval {
                    Some(claim) => Ok(allowed(ran, &rule, tier, Some(claim.id.clone()))),
                    None => Err(Refusal::Decided {
                        decision: decision(Effect::RequireApproval, &rule, tier).into(),
                        runs: None,
                        preview,
                    }),
                },
                Script::Deny(rule) => Err(Refusal::Decided {
                    decision: decision(Effect::Deny, &rule, Tier::Write).into(),
                    runs: None,
                    preview: None,
                }),
                Script::Fail(error) | Script::Unplannable(error) => Err(Refusal::Error(error)),
                Script::Break(error) => Ok(Authorized {
                    decision: decision(Effect::Allow, "allow:scripted", Tier::Read).into(),
                    credential: Some(json!({ "break": error.message, "code": error.code })),
                    serial: Some("7".to_owned()),
                    runs: None,
                }),
            }
        })
    }

    fn execute<'a>(
        &'a self,
        call: CallContext<'a>,
        plan: &'a Plan<ScriptedAction>,
        authorized: Authorized<Value>,
        receipt: &'a IntentReceipt,
    ) -> BoxFuture<'a, Result<Output, Failed>> {
        Box::pin(async move {
            self.record("execute", call.caller, &plan.tool, &plan.request, None);
            if let Some(last) = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .last_mut()
            {
                last.intent_id = Some(receipt.intent().id.clone());
            }
            let value = authorized.credential.unwrap_or(Value::Null);
            if let Some(message) = value.get("break").and_then(Value::as_str) {
                let code =
                    serde_json::from_value(value.get("code").cloned().unwrap_or(Value::Null))
                        .unwrap_or(meho_gateway::ErrorCode::ExecutionFailed);
                return Err(Failed::new(
                    ToolError::new(code, message),
                    authorized.serial,
                ));
            }
            Ok(Output {
                value,
                outcome: CallOutcome {
                    exit_status: Some(0),
                    credential_serial: authorized.serial,
                    ..CallOutcome::default()
                },
                notes: serde_json::Map::new(),
            })
        })
    }

    fn targets<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, Result<Vec<Target>, ToolError>> {
        Box::pin(async move {
            self.record("targets", caller, "list_targets", &json!({}), None);
            if !self.reaches(caller) {
                return Ok(Vec::new());
            }
            Ok(self
                .targets
                .iter()
                .map(|name| Target {
                    name: name.clone(),
                    kind: "scripted",
                    detail: serde_json::Map::new(),
                })
                .collect())
        })
    }

    fn has_targets<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, bool> {
        Box::pin(async move { self.reaches(caller) && !self.targets.is_empty() })
    }
}
