//! The MCP surface, on rmcp: the same handler serves stdio (`meho mcp`, a fixed principal) and
//! Streamable HTTP (`/mcp`, the principal the bearer token proved, per request).
//!
//! Tools come from the gateway's connectors plus two of meho's own (`approval_status`,
//! `announce`). A tool that fails returns a result with `isError` and a precise message; only
//! protocol faults (unknown tool, no identity) are JSON-RPC errors.

use std::sync::Arc;

use meho_audit::AuditLog;
use meho_core::Tier;
use meho_gateway::{Caller, Gateway, ToolError, ToolSpec};
use rmcp::ErrorData as McpError;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, InitializeResult,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, Tool, ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Principal, SCOPE_TOOLS};
use crate::hitl::Governance;

/// Longest accepted text field in tool arguments.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// What every MCP session shares.
#[derive(Debug)]
pub struct McpContext {
    /// The call path.
    pub gateway: Gateway,
    /// For `announce`.
    pub audit: Arc<AuditLog>,
    /// Freezes and approvals: every tool call passes through it.
    pub governance: Arc<Governance>,
}

/// The MCP handler. For stdio it carries its principal; over HTTP each request brings one.
#[derive(Debug, Clone)]
pub struct MehoMcp {
    context: Arc<McpContext>,
    fixed: Option<Principal>,
}

/// `announce` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnounceArgs {
    /// What the agent is about to do, in a sentence.
    pub activity: String,
    /// The targets it will touch (names from `list_targets`).
    pub targets: Vec<String>,
    /// The highest tier it expects to need: `read`, `write` or `destructive`.
    pub planned_tier: Tier,
    /// How long the announcement stands, in seconds (at most 86400).
    pub ttl_seconds: u32,
}

/// `approval_status` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalStatusArgs {
    /// The approval id a `pending_approval` result named.
    pub approval_id: String,
    /// How long to wait for a decision, 0 to 60 seconds (default 0: answer at once). Progress
    /// notifications are sent while waiting.
    #[serde(default)]
    pub wait_seconds: u32,
}

/// Sends MCP progress notifications for one request.
#[derive(Debug, Clone)]
pub struct Progress {
    peer: rmcp::Peer<RoleServer>,
    token: rmcp::model::ProgressToken,
}

impl Progress {
    fn send(&self, done: std::time::Duration, total: std::time::Duration, message: String) {
        let param = rmcp::model::ProgressNotificationParam::new(
            self.token.clone(),
            done.as_secs_f64().floor(),
        )
        .with_total(total.as_secs_f64().floor())
        .with_message(message);
        let peer = self.peer.clone();
        tokio::spawn(async move {
            if let Err(err) = peer.notify_progress(param).await {
                tracing::debug!(%err, "progress notification not delivered");
            }
        });
    }
}

fn schema<T: JsonSchema>() -> Arc<JsonObject> {
    let value = serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null);
    Arc::new(value.as_object().cloned().unwrap_or_default())
}

/// `(read_only, destructive, idempotent, open_world)` per tool.
fn hints(name: &str) -> (bool, bool, bool, bool) {
    match name {
        "list_targets" | "approval_status" => (true, false, true, false),
        "ssh_get_file" => (true, false, true, true),
        "ssh_execute" | "ssh_session_exec" => (false, true, false, true),
        "ssh_put_file" => (false, true, true, true),
        "ssh_session_open" => (false, false, false, true),
        "ssh_session_close" => (false, false, true, true),
        // announce, and anything a connector adds later: conservative.
        _ => (false, false, false, false),
    }
}

fn tool(name: &str, description: &str, input_schema: Arc<JsonObject>) -> Tool {
    let (read_only, destructive, idempotent, open_world) = hints(name);
    let mut tool = Tool::new(name.to_owned(), description.to_owned(), input_schema);
    let mut annotations = ToolAnnotations::new();
    annotations.read_only_hint = Some(read_only);
    annotations.destructive_hint = Some(destructive);
    annotations.idempotent_hint = Some(idempotent);
    annotations.open_world_hint = Some(open_world);
    tool.annotations = Some(annotations);
    tool
}

fn spec_tool(spec: &ToolSpec) -> Tool {
    let schema = spec.input_schema.as_object().cloned().unwrap_or_default();
    tool(&spec.name, &spec.description, Arc::new(schema))
}

/// Tools a caller limited to READ cannot use at all.
fn needs_more_than_read(name: &str) -> bool {
    matches!(name, "ssh_put_file")
}

/// Refuses text over [`MAX_TEXT_BYTES`] or containing NUL, anywhere in the arguments.
fn check_limits(value: &Value, path: &str) -> Result<(), String> {
    match value {
        Value::String(text) => {
            if text.len() > MAX_TEXT_BYTES {
                return Err(format!(
                    "`{path}` is {} bytes; text fields are limited to {MAX_TEXT_BYTES} bytes",
                    text.len()
                ));
            }
            if text.contains('\0') {
                return Err(format!("`{path}` contains a NUL character"));
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_limits(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            let at = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            check_limits(v, &at)
        }),
        _ => Ok(()),
    }
}

fn error_result(error: &ToolError) -> CallToolResult {
    let mut body = json!({ "error": error.code, "message": error.message });
    if let (Some(detail), Some(object)) = (&error.detail, body.as_object_mut()) {
        object.insert("detail".into(), detail.clone());
    }
    let mut result = CallToolResult::structured_error(body);
    // The text a model reads first: the code and the sentence, which names the rule.
    result.content = vec![rmcp::model::ContentBlock::text(format!(
        "{}: {}",
        error.code, error.message
    ))];
    result
}

impl MehoMcp {
    /// A handler whose principal comes from each HTTP request.
    pub fn http(context: Arc<McpContext>) -> Self {
        MehoMcp {
            context,
            fixed: None,
        }
    }

    /// A handler acting as `principal` (stdio).
    pub fn fixed(context: Arc<McpContext>, principal: Principal) -> Self {
        MehoMcp {
            context,
            fixed: Some(principal),
        }
    }

    fn principal(&self, context: &RequestContext<RoleServer>) -> Result<Principal, McpError> {
        if let Some(principal) = &self.fixed {
            return Ok(principal.clone());
        }
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>())
            .cloned()
            .ok_or_else(|| {
                McpError::invalid_request("the request carries no verified identity", None)
            })
    }

    /// Every tool, before filtering.
    pub fn all_tools(&self) -> Vec<Tool> {
        let mut tools: Vec<Tool> = self.context.gateway.tools().iter().map(spec_tool).collect();
        tools.push(tool(
            "approval_status",
            "Wait for (up to wait_seconds) and collect a call that went to a human: pending calls answer `pending_approval`; once approved, the call runs under your identity and its result is returned; denied or expired calls are errors with the reason.",
            schema::<ApprovalStatusArgs>(),
        ));
        tools.push(tool(
            "announce",
            "Post what you are about to do (activity, targets, planned tier) to the live feed before doing it.",
            schema::<AnnounceArgs>(),
        ));
        tools
    }

    /// The tools `principal` can use: a read-only role sees no write-only tools, and without any
    /// target in its tenant and groups a caller sees no target tools.
    pub async fn tools_for(&self, principal: &Principal) -> Vec<Tool> {
        let caller = principal.caller();
        let has_targets = self
            .context
            .gateway
            .call(&caller, "list_targets", json!({}))
            .await
            .ok()
            .and_then(|v| {
                v.get("targets")
                    .and_then(Value::as_array)
                    .map(|t| !t.is_empty())
            })
            .unwrap_or(false);
        self.all_tools()
            .into_iter()
            .filter(|t| !(caller.max_tier < Tier::Write && needs_more_than_read(&t.name)))
            .filter(|t| has_targets || !t.name.starts_with("ssh_"))
            .collect()
    }

    /// Runs one tool call for `principal`.
    pub async fn call(
        &self,
        principal: &Principal,
        name: &str,
        arguments: Value,
    ) -> Result<CallToolResult, McpError> {
        self.call_with_progress(principal, name, arguments, None)
            .await
    }

    /// Runs one tool call for `principal`, reporting progress of long waits to `progress`.
    pub async fn call_with_progress(
        &self,
        principal: &Principal,
        name: &str,
        arguments: Value,
        progress: Option<Progress>,
    ) -> Result<CallToolResult, McpError> {
        if !principal.has_scope(SCOPE_TOOLS) {
            return Ok(error_result(&ToolError::new(
                "forbidden",
                format!("the token lacks the `{SCOPE_TOOLS}` scope"),
            )));
        }
        if let Err(message) = check_limits(&arguments, "") {
            return Ok(error_result(&ToolError::new("invalid_arguments", message)));
        }
        let caller = principal.caller();
        let outcome = match name {
            "announce" => self.announce(&caller, arguments).await,
            "approval_status" => self.approval_status(&caller, arguments, progress).await,
            _ if self.context.gateway.tools().iter().any(|t| t.name == name) => {
                if caller.max_tier < Tier::Write && needs_more_than_read(name) {
                    Err(ToolError::new(
                        "denied",
                        format!("`{name}` changes the target; a read_only role cannot use it"),
                    ))
                } else {
                    self.context
                        .governance
                        .call(&self.context.gateway, &caller, name, arguments)
                        .await
                }
            }
            _ => {
                return Err(McpError::invalid_params(
                    format!("no tool named `{name}`"),
                    None,
                ));
            }
        };
        Ok(match outcome {
            Ok(value) => CallToolResult::structured(value),
            Err(error) => error_result(&error),
        })
    }

    async fn announce(&self, caller: &Caller, arguments: Value) -> Result<Value, ToolError> {
        let args: AnnounceArgs = serde_json::from_value(arguments)
            .map_err(|e| ToolError::new("invalid_arguments", format!("announce: {e}")))?;
        if args.ttl_seconds == 0 || args.ttl_seconds > 86_400 {
            return Err(ToolError::new(
                "invalid_arguments",
                "ttl_seconds must be between 1 and 86400",
            ));
        }
        if args.targets.len() > 64 {
            return Err(ToolError::new(
                "invalid_arguments",
                "at most 64 targets per announcement",
            ));
        }
        let appended = self
            .context
            .audit
            .announce(
                &caller.tenant,
                &caller.principal,
                &args.activity,
                &args.targets,
                args.planned_tier,
                args.ttl_seconds,
            )
            .await
            .map_err(|e| ToolError::new("internal", format!("the feed is unavailable: {e}")))?;
        Ok(json!({ "announced": true, "id": appended.id, "seq": appended.seq }))
    }

    async fn approval_status(
        &self,
        caller: &Caller,
        arguments: Value,
        progress: Option<Progress>,
    ) -> Result<Value, ToolError> {
        let args: ApprovalStatusArgs = serde_json::from_value(arguments)
            .map_err(|e| ToolError::new("invalid_arguments", format!("approval_status: {e}")))?;
        if args.wait_seconds > 60 {
            return Err(ToolError::new(
                "invalid_arguments",
                "wait_seconds must be between 0 and 60",
            ));
        }
        let id = args.approval_id.clone();
        let tick = move |done: std::time::Duration, total: std::time::Duration| {
            if let Some(progress) = &progress {
                progress.send(done, total, format!("waiting for a human to decide {id}"));
            }
        };
        self.context
            .governance
            .status(
                &self.context.gateway,
                caller,
                &args.approval_id,
                std::time::Duration::from_secs(u64::from(args.wait_seconds)),
                &tick,
            )
            .await
    }
}

impl ServerHandler for MehoMcp {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("meho", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "meho governs infrastructure calls: list_targets shows what you may reach; every call is decided by policy, runs under a per-call credential and is audited. Announce larger plans with `announce` first.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let principal = self.principal(&context)?;
        Ok(ListToolsResult::with_all_items(
            self.tools_for(&principal).await,
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let principal = self.principal(&context)?;
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let progress = context.meta.get_progress_token().map(|token| Progress {
            peer: context.peer.clone(),
            token,
        });
        self.call_with_progress(&principal, &request.name, arguments, progress)
            .await
            .map(CallToolResponse::from)
    }
}
