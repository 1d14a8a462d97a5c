//! The gateway: one call path for every frontend (MCP, the CLI, tests).
//!
//! A target kind (SSH hosts, later Kubernetes clusters and REST APIs) plugs in as a [`Connector`]:
//! it lists its tools and runs a call as decide, then credential, then execute, then audit. The
//! [`Gateway`] routes a tool call to the connector that owns the tool. Frontends never talk to a
//! connector directly, so none of them can skip a step.
//!
//! Invariants:
//! - Tool names are unique across connectors; [`Gateway::new`] refuses duplicates.
//! - A call's arguments arrive as JSON and are validated by the connector, which answers a
//!   malformed call with [`ToolError`] code `invalid_arguments`, never a panic.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use meho_core::Tier;
use serde::Serialize;
use serde_json::Value;

/// A boxed, sendable future; connectors are used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who is calling: the authenticated agent and, when known, the human behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant whose audit chain and policies apply.
    pub tenant: String,
    /// The authenticated principal (agent, or user through an agent).
    pub principal: String,
    /// The human behind the agent, when the frontend knows one.
    pub end_user: Option<String>,
    /// The human's groups, when an identity provider supplied them. `None` applies no group
    /// filter; `Some(empty)` can reach nothing.
    pub groups: Option<Vec<String>>,
    /// The highest tier this caller may run (`read` for a `read_only` role).
    pub max_tier: Tier,
    /// The approval this call is collecting, when it replays an approved call. The signer
    /// checks it against the call and consumes it exactly once as it mints the credential.
    pub approval_id: Option<String>,
}

impl Caller {
    /// A caller with no human attached, in the `default` tenant.
    pub fn agent(principal: impl Into<String>) -> Self {
        Caller {
            tenant: "default".to_owned(),
            principal: principal.into(),
            end_user: None,
            groups: None,
            max_tier: Tier::Destructive,
            approval_id: None,
        }
    }
}

/// A tool a connector offers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSpec {
    /// The tool name, e.g. `ssh_execute`.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON schema of the arguments.
    pub input_schema: Value,
}

/// A call that did not produce a result. `code` is stable and machine-readable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{code}: {message}")]
pub struct ToolError {
    /// `invalid_arguments`, `unknown_tool`, `denied`, `needs_approval`, `forbidden`,
    /// `unknown_target`, `host_key_mismatch`, `unreachable`, `limit`, `not_found`, `internal`.
    pub code: String,
    /// A sentence for the human or model.
    pub message: String,
    /// Extra structured detail (the decision of a denial, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

impl ToolError {
    /// An error with no detail.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ToolError {
            code: code.to_owned(),
            message: message.into(),
            detail: None,
        }
    }

    /// Attaches structured detail.
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// What a freeze stops, as connectors see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frozen<'a> {
    /// Every call and session of this principal.
    Principal(&'a str),
    /// This session.
    Session(&'a str),
    /// The credential with this serial, and any session built on it.
    Serial(u64),
}

/// A target kind: its tools and how a call runs.
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// The tools this connector serves.
    fn tools(&self) -> Vec<ToolSpec>;

    /// Runs `tool` with `arguments` for `caller`: decide, credential, execute, audit.
    fn call<'a>(
        &'a self,
        caller: &'a Caller,
        tool: &'a str,
        arguments: Value,
    ) -> BoxFuture<'a, Result<Value, ToolError>>;

    /// Whether `caller` may reach any target of this connector. A view that shapes the tool
    /// list, not a call: it is not audited (an agent that never called `list_targets` must not
    /// appear to have). When it cannot be told, the answer is `false` (fail closed: fewer tools).
    fn has_targets<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, bool>;

    /// Ends whatever `frozen` names in `tenant` (open sessions, say); returns how many ended.
    /// Connectors without long-lived state have nothing to end.
    fn freeze<'a>(&'a self, tenant: &'a str, frozen: Frozen<'a>) -> BoxFuture<'a, usize> {
        let _ = (tenant, frozen);
        Box::pin(async { 0 })
    }
}

/// Routes tool calls to connectors.
#[derive(Debug, Clone)]
pub struct Gateway {
    by_tool: BTreeMap<String, Arc<dyn Connector>>,
    tools: Vec<ToolSpec>,
}

impl Gateway {
    /// A gateway over `connectors`. Fails when two connectors claim one tool name.
    pub fn new(connectors: Vec<Arc<dyn Connector>>) -> Result<Self, String> {
        let mut by_tool = BTreeMap::new();
        let mut tools = Vec::new();
        for connector in connectors {
            for tool in connector.tools() {
                if by_tool
                    .insert(tool.name.clone(), connector.clone())
                    .is_some()
                {
                    return Err(format!("tool `{}` is served by two connectors", tool.name));
                }
                tools.push(tool);
            }
        }
        Ok(Gateway { by_tool, tools })
    }

    /// Every tool, in connector order.
    pub fn tools(&self) -> &[ToolSpec] {
        &self.tools
    }

    /// Each connector once.
    fn connectors(&self) -> Vec<&Arc<dyn Connector>> {
        let mut connectors: Vec<&Arc<dyn Connector>> = Vec::new();
        for connector in self.by_tool.values() {
            if !connectors.iter().any(|c| Arc::ptr_eq(c, connector)) {
                connectors.push(connector);
            }
        }
        connectors
    }

    /// Ends what `frozen` names on every connector; returns how many sessions ended.
    pub async fn freeze(&self, tenant: &str, frozen: Frozen<'_>) -> usize {
        let mut ended = 0;
        for connector in self.connectors() {
            ended += connector.freeze(tenant, frozen).await;
        }
        ended
    }

    /// Whether `caller` may reach any target at all (unaudited; see
    /// [`Connector::has_targets`]).
    pub async fn has_targets(&self, caller: &Caller) -> bool {
        for connector in self.connectors() {
            if connector.has_targets(caller).await {
                return true;
            }
        }
        false
    }

    /// Runs one tool call.
    pub async fn call(
        &self,
        caller: &Caller,
        tool: &str,
        arguments: Value,
    ) -> Result<Value, ToolError> {
        let connector = self
            .by_tool
            .get(tool)
            .ok_or_else(|| ToolError::new("unknown_tool", format!("no tool named `{tool}`")))?;
        connector.call(caller, tool, arguments).await
    }
}
