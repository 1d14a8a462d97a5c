//! What a target kind implements: typed stages the gateway runs in its one sequence.
//!
//! A connector never audits, holds, freezes or gates tiers itself: it says what a call would do
//! ([`Connector::plan`]), asks its decider for a decision and a credential
//! ([`Connector::authorize`]), and runs exactly the authorized plan ([`Connector::execute`]). The
//! gateway does everything around those stages, in the same order for every connector.

use std::fmt::Debug;

use meho_approvals::Learnable;
use meho_audit::{CallOutcome, IntentReceipt};
use meho_core::Tier;
use meho_policy::Decided;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{BoxFuture, Caller, ToolError, ToolSpec};

/// The call a stage works on: who, and the call's id (on every record of the call, the
/// decider's included).
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    /// Who is calling.
    pub caller: &'a Caller,
    /// The call's id.
    pub call_id: &'a str,
}

/// What a call would do, before anything is decided: the output of [`Connector::plan`].
#[derive(Debug, Clone)]
pub struct Plan<A> {
    /// The tool.
    pub tool: String,
    /// The target by name (host, cluster, API): what the records, the approval and the freeze of
    /// a session name.
    pub target: String,
    /// The typed action: what will run. Its JSON is what an approval binds to, with the tenant,
    /// the requester and the target ([`Plan::binding`]).
    pub action: A,
    /// One line for humans (approvers, webhooks).
    pub summary: String,
    /// The lowest tier the call can be: the gateway's tier gate refuses a caller below it before
    /// anything is decided. The decider rates the call itself and may rate it higher.
    pub min_tier: Tier,
    /// What an approve-and-learn waiver would cover, when the action is a command.
    pub learnable: Option<Learnable>,
    /// The session the call runs in, if any (freezes and records name it).
    pub session_id: Option<String>,
    /// The call as its records show it (the audit log redacts it before storing).
    pub arguments: Value,
    /// The tool arguments as the agent sent them: replayed when a held call is collected.
    pub request: Value,
    /// Decide only: the gateway returns the decision and runs nothing.
    pub preview: bool,
}

impl<A: Serialize> Plan<A> {
    /// The call an approval of this plan binds to, for `caller`.
    pub fn binding(&self, caller: &Caller) -> meho_approvals::Call {
        meho_approvals::Call {
            tenant: caller.tenant.clone(),
            requester: caller.principal.clone(),
            target: self.target.clone(),
            tool: self.tool.clone(),
            action: serde_json::to_value(&self.action).unwrap_or(Value::Null),
        }
    }
}

/// An approval the caller is collecting: its id and the hash of the call it was given for. The
/// connector hands it to its decider with the typed action, which compares both and consumes
/// the approval exactly once as it authorizes the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalClaim {
    /// `apr-…`.
    pub id: String,
    /// sha256 of the canonical call the caller is making now.
    pub call_hash: String,
}

/// A plan the decider allowed, with the credential minted for it.
#[derive(Debug)]
pub struct Authorized<C> {
    /// The decision (it names the approval, grant or waiver that allowed the call), with the
    /// command it shaped when the decider runs commands (SSH); the gateway reads the decision and
    /// passes the shape through to its JSON and back to the connector.
    pub decision: Decided,
    /// The credential, for exactly this call; `None` for actions that need none (a preview, a
    /// session close).
    pub credential: Option<C>,
    /// The credential's serial, for the records.
    pub serial: Option<String>,
    /// What the target will run, spelled as it will run it, when the decider rebuilt it.
    pub runs: Option<String>,
}

/// Why a plan was not authorized.
#[derive(Debug)]
pub enum Refusal {
    /// The decider decided against it (or holds it for a human): the decision says why.
    Decided {
        /// The decision, with the command it shaped.
        decision: Decided,
        /// What the target would run, as the decider rebuilt it (shown to approvers).
        runs: Option<String>,
        /// What the call would change, computed by the connector for approvers: several lines of
        /// text for humans (a unified diff of a server-side dry run against the live object,
        /// say). The pipeline stores it on the approval (redacted, clipped to
        /// [`crate::govern::MAX_PREVIEW_BYTES`]) and records its sha256 in the refusal. It is
        /// informational: the approval binds the typed action, not this text. `None` when the
        /// connector computes none.
        preview: Option<String>,
    },
    /// The decider could not be asked, or refused to answer (unknown target, forbidden, down).
    Error(ToolError),
}

impl From<ToolError> for Refusal {
    fn from(error: ToolError) -> Self {
        Refusal::Error(error)
    }
}

/// What an executed call produced.
#[derive(Debug)]
pub struct Output {
    /// The tool result.
    pub value: Value,
    /// For the outcome record (the gateway fills in the duration).
    pub outcome: CallOutcome,
    /// More fields for the outcome record's body (why a session closed, say).
    pub notes: Map<String, Value>,
}

/// An executed call that failed on the way: the error and what its outcome record says.
#[derive(Debug)]
pub struct Failed {
    /// The error the caller gets.
    pub error: ToolError,
    /// For the outcome record.
    pub outcome: CallOutcome,
}

impl Failed {
    /// A failure with nothing more to record than its message.
    pub fn new(error: ToolError, credential_serial: Option<String>) -> Self {
        let outcome = CallOutcome {
            error: Some(error.message.clone()),
            credential_serial,
            ..CallOutcome::default()
        };
        Failed { error, outcome }
    }
}

/// One target the caller may use, as `list_targets` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    /// Its name.
    pub name: String,
    /// `ssh`, …
    pub kind: &'static str,
    /// What the connector shows about it.
    #[serde(flatten)]
    pub detail: Map<String, Value>,
}

/// A target kind: its tools and the typed stages of a call.
pub trait Connector: Send + Sync + Debug + 'static {
    /// The typed action of a plan.
    type Action: Serialize + Debug + Send + Sync + 'static;
    /// The per-call credential [`Connector::authorize`] mints and [`Connector::execute`] uses.
    type Credential: Send + Sync + 'static;

    /// The tools this connector serves.
    fn tools(&self) -> Vec<ToolSpec>;

    /// What `tool` with `arguments` would do for the caller. Validates the arguments (a
    /// malformed call is `invalid_arguments`, never a panic) and resolves the target.
    fn plan<'a>(
        &'a self,
        call: CallContext<'a>,
        tool: &'a str,
        arguments: &'a Value,
    ) -> BoxFuture<'a, Result<Plan<Self::Action>, ToolError>>;

    /// Decides `plan` and, when allowed, mints its credential. `approval` is the approval the
    /// caller collects: the decider checks it against the typed action and consumes it once.
    /// The decider also enforces the caller's maximum tier on the tier it rates the call.
    fn authorize<'a>(
        &'a self,
        call: CallContext<'a>,
        plan: &'a Plan<Self::Action>,
        approval: Option<&'a ApprovalClaim>,
    ) -> BoxFuture<'a, Result<Authorized<Self::Credential>, Refusal>>;

    /// Runs exactly the authorized plan. Called only with a receipt of its durable intent record.
    fn execute<'a>(
        &'a self,
        call: CallContext<'a>,
        plan: &'a Plan<Self::Action>,
        authorized: Authorized<Self::Credential>,
        receipt: &'a IntentReceipt,
    ) -> BoxFuture<'a, Result<Output, Failed>>;

    /// The targets the caller may use. A view, not a call: the gateway audits `list_targets`.
    fn targets<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, Result<Vec<Target>, ToolError>>;

    /// Whether `caller` may reach any target of this connector. A view that shapes the tool
    /// list: not audited. When it cannot be told, the answer is `false` (fewer tools).
    fn has_targets<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            self.targets(caller)
                .await
                .is_ok_and(|targets| !targets.is_empty())
        })
    }

    /// Ends whatever `frozen` names in `tenant` (open sessions, say); returns how many ended.
    fn freeze<'a>(&'a self, tenant: &'a str, frozen: crate::Frozen<'a>) -> BoxFuture<'a, usize> {
        let _ = (tenant, frozen);
        Box::pin(async { 0 })
    }
}

/// A [`Connector`] with its types erased, so the gateway can hold connectors of every kind. A
/// call runs through [`crate::pipeline::run`], monomorphized per connector: the stages see their
/// typed plan, and nothing is cloned or downcast on the way.
pub(crate) trait AnyConnector: Send + Sync + Debug {
    fn tools(&self) -> Vec<ToolSpec>;
    fn run<'a>(
        &'a self,
        pipeline: &'a crate::pipeline::Pipeline,
        call: CallContext<'a>,
        tool: &'a str,
        arguments: Value,
    ) -> BoxFuture<'a, Result<crate::Answer, ToolError>>;
    fn targets<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, Result<Vec<Target>, ToolError>>;
    fn has_targets<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, bool>;
    fn freeze<'a>(&'a self, tenant: &'a str, frozen: crate::Frozen<'a>) -> BoxFuture<'a, usize>;
}

impl<C: Connector> AnyConnector for C {
    fn tools(&self) -> Vec<ToolSpec> {
        Connector::tools(self)
    }

    fn run<'a>(
        &'a self,
        pipeline: &'a crate::pipeline::Pipeline,
        call: CallContext<'a>,
        tool: &'a str,
        arguments: Value,
    ) -> BoxFuture<'a, Result<crate::Answer, ToolError>> {
        Box::pin(crate::pipeline::run(pipeline, self, call, tool, arguments))
    }

    fn targets<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, Result<Vec<Target>, ToolError>> {
        Connector::targets(self, caller)
    }

    fn has_targets<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, bool> {
        Connector::has_targets(self, caller)
    }

    fn freeze<'a>(&'a self, tenant: &'a str, frozen: crate::Frozen<'a>) -> BoxFuture<'a, usize> {
        Connector::freeze(self, tenant, frozen)
    }
}
