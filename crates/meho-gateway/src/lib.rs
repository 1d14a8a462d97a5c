//! The gateway: the one governed sequence every call takes, from every frontend (MCP over stdio
//! and HTTP, the CLI, the approval replay).
//!
//! freeze check → **plan** → tier gate → **authorize** (decide + credential) → hold (approval) or
//! refuse → durable intent record → **execute** → outcome record → reduce → feed.
//!
//! A target kind (SSH hosts, later Kubernetes clusters and REST APIs) plugs in as a
//! [`Connector`]: typed stages (plan, authorize, execute, targets) and nothing else. The gateway
//! owns the rest: it audits every refusal once, holds calls for a human ([`govern`]), writes the
//! intent before anything runs and the outcome after, and merges every connector's targets into
//! `list_targets`. Frontends hold only a [`Gateway`], so none of them can skip a step.
//!
//! Invariants:
//! - Tool names are unique across connectors and `list_targets` is the gateway's own;
//!   [`Gateway::new`] refuses duplicates.
//! - A connector's `execute` runs only with a receipt of its call's durable intent record.
//! - Every call that reached a connector ends in exactly one of: a denial record, a held approval
//!   (with its denial record), or an intent and an outcome record. All carry the call's id.
//! - A freeze is checked before anything of the call is planned; when it cannot be checked,
//!   nothing runs.

use std::future::Future;
use std::pin::Pin;

pub use meho_core::Tier;
use serde::Serialize;
use serde_json::Value;

mod connector;
mod error;
pub mod govern;
mod pipeline;
pub mod redeem;

pub use connector::{
    ApprovalClaim, Authorized, CallContext, Connector, Failed, Output, Plan, Refusal, Target,
};
pub use error::{ErrorCode, ToolError};
pub use govern::Governance;
pub use meho_approvals::Learnable;
pub use pipeline::{
    Answer, Gateway, GatewayBuilder, Holds, LIST_TARGETS, RAW_ARGUMENT, Reduced, Reducer, tier_gate,
};

/// A boxed, sendable future; connectors are used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who is calling: the authenticated principal and, when known, the human behind it.
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
    /// The approval this call is collecting, when it replays an approved call. The connector's
    /// decider checks it against the call and consumes it exactly once as it mints the
    /// credential.
    pub approval_id: Option<String>,
    /// The identity provider's token the caller authenticated with, when it has one (HTTP
    /// callers with an OIDC access token): presented to Vault for the caller's own credentials.
    /// `None` for stdio and dev-token callers, for whom meho signs its own JWT.
    pub identity_token: Option<IdentityToken>,
}

/// A bearer token from the identity provider. It never prints: `Debug` shows only that it is
/// there, and nothing serializes it.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityToken(std::sync::Arc<str>);

impl IdentityToken {
    /// Wraps `token`.
    pub fn new(token: &str) -> Self {
        IdentityToken(token.into())
    }

    /// The token itself, for the one request that presents it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for IdentityToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityToken([redacted])")
    }
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
            identity_token: None,
        }
    }
}

/// Whether `caller` may use target `name` (a `kind`: `cluster`, `api`): its `allowed_callers`
/// (empty: any) and, for a caller whose groups are known, a shared group.
pub fn check_access(
    kind: &str,
    name: &str,
    allowed_callers: &[String],
    groups: &[String],
    caller: &Caller,
) -> Result<(), ToolError> {
    if !allowed_callers.is_empty() && !allowed_callers.contains(&caller.principal) {
        return Err(ToolError::new(
            ErrorCode::Forbidden,
            format!(
                "principal `{}` is not in allowed_callers of {kind} `{name}`",
                caller.principal
            ),
        ));
    }
    if let Some(mine) = &caller.groups
        && !groups.iter().any(|g| mine.contains(g))
    {
        return Err(ToolError::new(
            ErrorCode::Forbidden,
            format!("none of the user's groups may use {kind} `{name}`"),
        ));
    }
    Ok(())
}

/// MCP tool annotations: hints for the client, never a security boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Annotations {
    /// The tool changes nothing.
    pub read_only: bool,
    /// It may destroy or overwrite.
    pub destructive: bool,
    /// Calling it twice with the same arguments has no further effect.
    pub idempotent: bool,
    /// It reaches systems outside meho.
    pub open_world: bool,
}

impl Annotations {
    /// `(read_only, destructive, idempotent, open_world)`.
    pub fn hints(read_only: bool, destructive: bool, idempotent: bool, open_world: bool) -> Self {
        Annotations {
            read_only,
            destructive,
            idempotent,
            open_world,
        }
    }
}

/// Reads a tool's arguments as `T`: a malformed call is `invalid_arguments` naming the tool and
/// what is wrong, never a panic.
pub fn parse_arguments<T: serde::de::DeserializeOwned>(
    tool: &str,
    arguments: &Value,
) -> Result<T, ToolError> {
    T::deserialize(arguments).map_err(|err| ToolError::invalid(format!("{tool}: {err}")))
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
    /// Hints for MCP clients.
    pub annotations: Annotations,
    /// The lowest tier any call of the tool can be: a caller limited below it does not see the
    /// tool, and the tier gate refuses its calls.
    pub min_tier: Tier,
    /// JSON schema of the result, when the tool declares one (MCP `outputSchema`). The gateway
    /// sets it for the tools its reduce stage covers.
    pub output_schema: Option<Value>,
    /// Calls of this tool are never held for a human, so every answer is the tool's own result
    /// (an MCP client that gets held calls back as tasks can rely on its `outputSchema`).
    pub never_held: bool,
}

impl ToolSpec {
    /// A tool whose arguments are `T` (its JSON schema is the input schema).
    pub fn of<T: schemars::JsonSchema>(
        name: &str,
        description: &str,
        min_tier: Tier,
        annotations: Annotations,
    ) -> Self {
        ToolSpec {
            name: name.to_owned(),
            description: description.to_owned(),
            input_schema: serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null),
            annotations,
            min_tier,
            output_schema: None,
            never_held: false,
        }
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
