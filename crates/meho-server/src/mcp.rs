//! The MCP surface, on rmcp: the same handler serves stdio (`meho mcp`, a fixed principal) and
//! Streamable HTTP (`/mcp`, the principal the bearer token proved, per request).
//!
//! Tools come from the gateway's connectors plus two of meho's own (`approval_status`,
//! `announce`). A tool that fails returns a result with `isError` and a precise message; only
//! protocol faults (unknown tool, no identity) are JSON-RPC errors.

use std::sync::Arc;

use meho_audit::AuditLog;
use meho_core::Tier;
use meho_gateway::{Answer, Caller, ErrorCode, Gateway, ToolError, ToolSpec};
use rmcp::ErrorData as McpError;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, GetTaskResult, Implementation,
    InitializeResult, JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    Tool, ToolAnnotations,
};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, SessionConfig,
};
use rmcp::transport::streamable_http_server::session::{
    ServerSseMessage, SessionId, SessionManager,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Principal, SCOPE_TOOLS};
use meho_gateway::Governance;

/// Longest accepted text field in tool arguments.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// What every MCP session shares.
#[derive(Debug)]
pub struct McpContext {
    /// The call path (with its human in the loop: freezes, approvals, grants).
    pub gateway: Gateway,
    /// Results of approved calls collected through MCP Tasks (`tasks/get`).
    pub tasks: TaskResults,
    /// Every tool with its JSON schema, built once: the gateway's tools do not change.
    pub tools: ToolCatalog,
}

impl McpContext {
    /// The human in the loop behind the gateway.
    pub fn governance(&self) -> &Arc<Governance> {
        self.gateway.governance()
    }

    /// The audit log every call is written to (the gateway's: `announce`, the feed and the
    /// console read the same log the pipeline writes).
    pub fn audit(&self) -> &Arc<AuditLog> {
        self.gateway.governance().audit()
    }
}

/// The MCP tool list, built on first use (`tools/list` filters it per caller).
#[derive(Debug, Default)]
pub struct ToolCatalog(std::sync::OnceLock<Vec<Tool>>);

/// The results of held calls collected through `tasks/get`, so a client that asks again gets the
/// same completed task (the approval itself runs once). Bounded: the oldest are forgotten.
#[derive(Debug, Default)]
pub struct TaskResults(std::sync::Mutex<std::collections::VecDeque<(String, String, JsonObject)>>);

/// How many completed task results are kept.
const TASK_RESULTS: usize = 1024;

impl TaskResults {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::VecDeque<(String, String, JsonObject)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, tenant: &str, id: &str) -> Option<JsonObject> {
        self.lock()
            .iter()
            .find(|(t, i, _)| t == tenant && i == id)
            .map(|(_, _, result)| result.clone())
    }

    fn put(&self, tenant: &str, id: &str, result: JsonObject) {
        let mut results = self.lock();
        if results.len() >= TASK_RESULTS {
            results.pop_front();
        }
        results.push_back((tenant.to_owned(), id.to_owned(), result));
    }
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

fn tool(
    name: &str,
    description: &str,
    input_schema: Arc<JsonObject>,
    hints: meho_gateway::Annotations,
) -> Tool {
    let mut tool = Tool::new(name.to_owned(), description.to_owned(), input_schema);
    let mut annotations = ToolAnnotations::new();
    annotations.read_only_hint = Some(hints.read_only);
    annotations.destructive_hint = Some(hints.destructive);
    annotations.idempotent_hint = Some(hints.idempotent);
    annotations.open_world_hint = Some(hints.open_world);
    tool.annotations = Some(annotations);
    tool
}

fn spec_tool(spec: &ToolSpec) -> Tool {
    let schema = spec.input_schema.as_object().cloned().unwrap_or_default();
    let mut tool = tool(
        &spec.name,
        &spec.description,
        Arc::new(schema),
        spec.annotations,
    );
    tool.output_schema = spec
        .output_schema
        .as_ref()
        .and_then(Value::as_object)
        .map(|schema| Arc::new(schema.clone()));
    tool
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

    /// Every tool, before filtering (built once per context).
    pub fn all_tools(&self) -> &[Tool] {
        self.context.tools.0.get_or_init(|| self.build_tools())
    }

    fn build_tools(&self) -> Vec<Tool> {
        let mut tools: Vec<Tool> = self.context.gateway.tools().iter().map(spec_tool).collect();
        tools.push(tool(
            "approval_status",
            "Wait for (up to wait_seconds) and collect a call that went to a human: pending calls answer `pending_approval`; once approved, the call runs under your identity and its result is returned; denied or expired calls are errors with the reason.",
            schema::<ApprovalStatusArgs>(),
            meho_gateway::Annotations {
                read_only: true,
                idempotent: true,
                ..meho_gateway::Annotations::default()
            },
        ));
        tools.push(tool(
            "announce",
            "Post what you are about to do (activity, targets, planned tier) to the live feed before doing it.",
            schema::<AnnounceArgs>(),
            meho_gateway::Annotations::default(),
        ));
        tools
    }

    /// The tools `principal` can use: a role limited below a tool's lowest tier does not see
    /// it, and without any target in its tenant and groups a caller sees no connector tools.
    pub async fn tools_for(&self, principal: &Principal) -> Vec<Tool> {
        let caller = principal.caller();
        // Shaping the list is not a call: nothing is audited or published for it. A connector
        // with no target the caller may reach shows none of its tools.
        let reachable = self.context.gateway.reachable_tools(&caller).await;
        let specs = self.context.gateway.tools();
        self.all_tools()
            .iter()
            .filter(|t| {
                match specs.iter().find(|spec| spec.name == t.name.as_ref()) {
                    Some(spec) => {
                        spec.min_tier <= caller.max_tier
                            && reachable.iter().any(|name| name == &spec.name)
                    }
                    // meho's own tools (approval_status, announce).
                    None => true,
                }
            })
            .cloned()
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
            .map(Answered::into_result)
    }

    /// Runs one tool call for `principal`, reporting progress of long waits to `progress`.
    async fn call_with_progress(
        &self,
        principal: &Principal,
        name: &str,
        arguments: Value,
        progress: Option<Progress>,
    ) -> Result<Answered, McpError> {
        if !principal.has_scope(SCOPE_TOOLS) {
            return Ok(Answered::Done(error_result(&ToolError::new(
                ErrorCode::Forbidden,
                format!("the token lacks the `{SCOPE_TOOLS}` scope"),
            ))));
        }
        if let Err(message) = check_limits(&arguments, "") {
            return Ok(Answered::Done(error_result(&ToolError::invalid(message))));
        }
        let caller = principal.caller();
        let outcome = match name {
            "announce" => {
                // A frozen agent cannot post to the feed either.
                match self
                    .context
                    .governance()
                    .check_frozen(&caller, None, name, &arguments)
                    .await
                {
                    Ok(()) => self.announce(&caller, arguments).await.map(Answer::Done),
                    Err(error) => Err(error),
                }
            }
            "approval_status" => self
                .approval_status(&caller, arguments, progress)
                .await
                .map(Answer::Done),
            _ if self.context.gateway.serves(name) => {
                self.context
                    .gateway
                    .dispatch(&caller, name, arguments)
                    .await
            }
            _ => {
                return Err(McpError::invalid_params(
                    format!("no tool named `{name}`"),
                    None,
                ));
            }
        };
        Ok(match outcome {
            Ok(Answer::Done(value)) => Answered::Done(CallToolResult::structured(value)),
            Ok(Answer::Held { approval_id, value }) => {
                Answered::Held(approval_id, CallToolResult::structured(value))
            }
            Err(error) => Answered::Done(error_result(&error)),
        })
    }

    async fn announce(&self, caller: &Caller, arguments: Value) -> Result<Value, ToolError> {
        let args: AnnounceArgs = serde_json::from_value(arguments)
            .map_err(|e| ToolError::invalid(format!("announce: {e}")))?;
        if args.ttl_seconds == 0 || args.ttl_seconds > 86_400 {
            return Err(ToolError::invalid(
                "ttl_seconds must be between 1 and 86400",
            ));
        }
        if args.targets.len() > 64 {
            return Err(ToolError::invalid("at most 64 targets per announcement"));
        }
        let appended = self
            .context
            .audit()
            .announce(
                &caller.tenant,
                &caller.principal,
                &args.activity,
                &args.targets,
                args.planned_tier,
                args.ttl_seconds,
            )
            .await
            .map_err(|e| ToolError::internal(format!("the feed is unavailable: {e}")))?;
        Ok(json!({ "announced": true, "id": appended.id, "seq": appended.seq }))
    }

    async fn approval_status(
        &self,
        caller: &Caller,
        arguments: Value,
        progress: Option<Progress>,
    ) -> Result<Value, ToolError> {
        let args: ApprovalStatusArgs = serde_json::from_value(arguments)
            .map_err(|e| ToolError::invalid(format!("approval_status: {e}")))?;
        if args.wait_seconds > 60 {
            return Err(ToolError::invalid("wait_seconds must be between 0 and 60"));
        }
        let id = args.approval_id.clone();
        let tick = move |done: std::time::Duration, total: std::time::Duration| {
            if let Some(progress) = &progress {
                progress.send(done, total, format!("waiting for a human to decide {id}"));
            }
        };
        self.context
            .gateway
            .approval_status(
                caller,
                &args.approval_id,
                std::time::Duration::from_secs(u64::from(args.wait_seconds)),
                &tick,
            )
            .await
    }
}

/// What a tool call answered, as MCP sends it: a held call keeps its approval id, so a client
/// that speaks the tasks extension gets a task.
enum Answered {
    Done(CallToolResult),
    Held(String, CallToolResult),
}

impl Answered {
    fn into_result(self) -> CallToolResult {
        match self {
            Answered::Done(result) | Answered::Held(_, result) => result,
        }
    }
}

/// The MCP task of a held call: its id is the approval id.
fn task_of(approval: &meho_approvals::Approval) -> rmcp::model::Task {
    use meho_gateway::govern::rfc3339;
    let status = match approval.status {
        meho_approvals::Status::Pending | meho_approvals::Status::Approved => {
            rmcp::model::TaskStatus::Working
        }
        _ => rmcp::model::TaskStatus::Completed,
    };
    let updated = approval
        .consumed_at_us
        .or(approval.decided_at_us)
        .unwrap_or(approval.created_at_us);
    rmcp::model::Task::new(
        approval.id.clone(),
        status,
        rfc3339(approval.created_at_us),
        rfc3339(updated),
    )
    .with_status_message(format!("{}: {}", approval.status, approval.summary))
    .with_ttl_ms(
        u64::try_from(
            approval
                .expires_at_us
                .saturating_sub(approval.created_at_us)
                / 1000,
        )
        .unwrap_or(0),
    )
    .with_poll_interval_ms(2000)
}

fn as_object(result: &CallToolResult) -> JsonObject {
    serde_json::to_value(result)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

impl MehoMcp {
    /// `tasks/get`: a held call is `working` until a human decides; then the requester's
    /// `tasks/get` runs it (exactly as `approval_status` does) and the task completes with the
    /// tool's result, or with the `isError` result of a denial or expiry.
    async fn task(&self, principal: &Principal, id: &str) -> Result<GetTaskResult, McpError> {
        use rmcp::model::{DetailedTask, TaskPayload};
        let caller = principal.caller();
        let governance = &self.context.governance();
        let approval = governance
            .approvals
            .get(&caller.tenant, id)
            .await
            .map_err(|e| match e {
                meho_approvals::ApprovalError::NotFound(_) => {
                    McpError::invalid_params(format!("no task `{id}`"), None)
                }
                other => McpError::internal_error(other.to_string(), None),
            })?;
        let task = task_of(&approval);
        if approval.requester != caller.principal {
            return Ok(GetTaskResult::new(DetailedTask::new(
                task,
                TaskPayload::Working,
            )));
        }
        if let Some(result) = self.context.tasks.get(&caller.tenant, id) {
            return Ok(GetTaskResult::new(DetailedTask::new(
                task,
                TaskPayload::Completed { result },
            )));
        }
        let outcome = self
            .context
            .gateway
            .approval_status(&caller, id, std::time::Duration::ZERO, &|_, _| {})
            .await;
        let result = match outcome {
            Ok(value) if value.get("status").and_then(Value::as_str) != Some("executed") => {
                return Ok(GetTaskResult::new(DetailedTask::new(
                    task,
                    TaskPayload::Working,
                )));
            }
            Ok(value) => CallToolResult::structured(value),
            Err(error) => error_result(&error),
        };
        let result = as_object(&result);
        self.context.tasks.put(&caller.tenant, id, result.clone());
        let after = governance
            .approvals
            .get(&caller.tenant, id)
            .await
            .map(|a| task_of(&a))
            .unwrap_or(task);
        Ok(GetTaskResult::new(DetailedTask::new(
            after,
            TaskPayload::Completed { result },
        )))
    }
}

impl ServerHandler for MehoMcp {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tasks()
                .build(),
        )
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
        let mut tools = self.tools_for(&principal).await;
        // A client that speaks tasks gets a held call back as a task, which carries no
        // structured content: it must not be told that every answer matches an output schema.
        // Tools that are never held keep theirs.
        if context
            .client_capabilities()
            .is_some_and(|caps| caps.supports_tasks())
        {
            let specs = self.context.gateway.tools();
            for tool in &mut tools {
                let never_held = specs
                    .iter()
                    .any(|spec| spec.name == tool.name.as_ref() && spec.never_held);
                if !never_held {
                    tool.output_schema = None;
                }
            }
        }
        Ok(ListToolsResult::with_all_items(tools))
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
        let tasks = context
            .client_capabilities()
            .is_some_and(|caps| caps.supports_tasks());
        let result = self
            .call_with_progress(&principal, &request.name, arguments, progress)
            .await?;
        // A held call is a task for clients that speak the tasks extension: `tasks/get` waits
        // for the human and collects it.
        let result = match result {
            Answered::Held(id, result) if tasks => {
                let caller = principal.caller();
                match self
                    .context
                    .governance()
                    .approvals
                    .get(&caller.tenant, &id)
                    .await
                {
                    Ok(approval) => {
                        return Ok(CallToolResponse::Task(rmcp::model::CreateTaskResult::new(
                            task_of(&approval),
                        )));
                    }
                    Err(_) => result,
                }
            }
            other => other.into_result(),
        };
        Ok(CallToolResponse::from(result))
    }

    async fn get_task(
        &self,
        request: rmcp::model::GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        let principal = self.principal(&context)?;
        self.task(&principal, &request.task_id).await
    }
}

// --- sessions over HTTP --------------------------------------------------------------------------

/// Caps on open MCP sessions over HTTP (`[mcp] max_sessions`, `max_sessions_per_principal`), so
/// no caller can grow the server's memory by opening sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Open sessions in total.
    pub max_sessions: usize,
    /// Open sessions of one principal (tenant and subject).
    pub max_per_principal: usize,
    /// A session nobody used for this long ends and frees its slot.
    pub idle_timeout: std::time::Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_sessions: usize_of(meho_config::DEFAULT_MAX_MCP_SESSIONS),
            max_per_principal: usize_of(meho_config::DEFAULT_MAX_MCP_SESSIONS_PER_PRINCIPAL),
            idle_timeout: SessionConfig::DEFAULT_KEEP_ALIVE,
        }
    }
}

impl From<&meho_config::McpConfig> for SessionLimits {
    fn from(config: &meho_config::McpConfig) -> Self {
        SessionLimits {
            max_sessions: usize_of(config.max_sessions),
            max_per_principal: usize_of(config.max_sessions_per_principal),
            ..SessionLimits::default()
        }
    }
}

fn usize_of(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Who opened a session: the tenant and subject of the token. A session id only works with a
/// token of its owner (the MCP spec's binding of sessions to users).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Owner {
    pub(crate) tenant: String,
    pub(crate) subject: String,
}

impl Owner {
    pub(crate) fn of(principal: &Principal) -> Self {
        Owner {
            tenant: principal.tenant.clone(),
            subject: principal.subject.clone(),
        }
    }
}

/// Why a new session was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefusal {
    /// The principal holds its share already.
    #[error(
        "`{subject}` already holds {limit} open MCP sessions, the most one principal may ([mcp] max_sessions_per_principal); close one (DELETE /mcp with its Mcp-Session-Id) or let an idle one expire"
    )]
    PerPrincipal {
        /// Who.
        subject: String,
        /// The cap.
        limit: usize,
    },
    /// The server holds as many as it allows.
    #[error(
        "the server holds {limit} open MCP sessions, the most it allows ([mcp] max_sessions); try again when one closes"
    )]
    Total {
        /// The cap.
        limit: usize,
    },
}

/// The open sessions and their owners. An entry is made as rmcp creates the session and removed
/// as rmcp closes it (a client's DELETE, idle expiry, shutdown): the binding lives exactly as
/// long as the session.
#[derive(Debug)]
pub(crate) struct SessionTable {
    limits: SessionLimits,
    open: std::sync::Mutex<OpenSessions>,
}

#[derive(Debug, Default)]
struct OpenSessions {
    owners: std::collections::HashMap<SessionId, Owner>,
    /// Sessions (and creations under way) per owner.
    held: std::collections::HashMap<Owner, usize>,
    /// Sessions (and creations under way) in total.
    total: usize,
}

impl SessionTable {
    pub(crate) fn new(limits: SessionLimits) -> Self {
        SessionTable {
            limits,
            open: std::sync::Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OpenSessions> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Who opened session `id`, while it is open.
    pub(crate) fn owner_of(&self, id: &str) -> Option<Owner> {
        self.lock().owners.get(id).cloned()
    }

    /// Holds a slot for `owner` while its session is created; the slot is freed when the
    /// reservation is dropped unless the session came to be.
    fn reserve(self: &Arc<Self>, owner: &Owner) -> Result<Reservation, SessionRefusal> {
        let mut open = self.lock();
        let held = open.held.get(owner).copied().unwrap_or(0);
        if held >= self.limits.max_per_principal {
            return Err(SessionRefusal::PerPrincipal {
                subject: owner.subject.clone(),
                limit: self.limits.max_per_principal,
            });
        }
        if open.total >= self.limits.max_sessions {
            return Err(SessionRefusal::Total {
                limit: self.limits.max_sessions,
            });
        }
        open.held.insert(owner.clone(), held + 1);
        open.total += 1;
        Ok(Reservation {
            table: self.clone(),
            owner: Some(owner.clone()),
        })
    }

    fn release(&self, owner: &Owner) {
        let mut open = self.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(held) = open.held.get_mut(owner) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                open.held.remove(owner);
            }
        }
    }

    /// Forgets session `id` (rmcp closed it); freeing its slot.
    fn close(&self, id: &str) {
        let owner = self.lock().owners.remove(id);
        if let Some(owner) = owner {
            self.release(&owner);
        }
    }
}

/// A slot held while a session is created.
#[derive(Debug)]
struct Reservation {
    table: Arc<SessionTable>,
    /// `None` once the session exists and the slot is its own.
    owner: Option<Owner>,
}

impl Reservation {
    fn bind(mut self, id: &SessionId) {
        if let Some(owner) = self.owner.take() {
            self.table.lock().owners.insert(id.clone(), owner);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            self.table.release(&owner);
        }
    }
}

/// The principal opening a session in the current request, and whether a cap refused it. The
/// HTTP layer sets it around rmcp, which creates sessions without seeing the request.
#[derive(Debug)]
pub(crate) struct Opener {
    owner: Owner,
    refused: std::sync::Mutex<Option<SessionRefusal>>,
}

impl Opener {
    pub(crate) fn new(owner: Owner) -> Self {
        Opener {
            owner,
            refused: std::sync::Mutex::new(None),
        }
    }

    /// The cap that refused a session in this request, if one did.
    pub(crate) fn refusal(&self) -> Option<SessionRefusal> {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

tokio::task_local! {
    static OPENER: Arc<Opener>;
}

/// Runs `request` (rmcp's handling of one HTTP request) with `opener` as the principal any
/// session it creates belongs to.
pub(crate) async fn opened_by<F: std::future::Future>(
    opener: Arc<Opener>,
    request: F,
) -> F::Output {
    OPENER.scope(opener, request).await
}

/// rmcp's in-memory session manager with the session table beside it: creating a session
/// claims a slot for the principal opening it, closing it (by the client, idle expiry or
/// shutdown, which all end in `close_session`) frees the slot and the binding.
#[derive(Debug)]
pub(crate) struct Sessions {
    inner: LocalSessionManager,
    table: Arc<SessionTable>,
}

impl Sessions {
    pub(crate) fn new(table: Arc<SessionTable>) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(table.limits.idle_timeout);
        Sessions { inner, table }
    }
}

/// Why the session manager failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// rmcp's session manager failed.
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
    /// A cap refused a new session.
    #[error("{0}")]
    Refused(SessionRefusal),
    /// A session was asked for outside an authenticated request (fail closed).
    #[error("no verified principal is opening this session")]
    NoOwner,
}

impl SessionManager for Sessions {
    type Error = SessionError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let opener = OPENER
            .try_with(Arc::clone)
            .map_err(|_| SessionError::NoOwner)?;
        let reservation = self.table.reserve(&opener.owner).map_err(|refusal| {
            *opener
                .refused
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(refusal.clone());
            SessionError::Refused(refusal)
        })?;
        let (id, transport) = self.inner.create_session().await?;
        reservation.bind(&id);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let closed = self.inner.close_session(id).await;
        // rmcp removed the session from its map whatever closing its worker answered: nothing
        // can reach it any more, so its binding and slot go with it.
        self.table.close(id);
        Ok(closed?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<
        impl futures_util::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
        Self::Error,
    > {
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<
        impl futures_util::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
        Self::Error,
    > {
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<
        impl futures_util::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
        Self::Error,
    > {
        Ok(self.inner.resume(id, last_event_id).await?)
    }

    // `restore_session` keeps the trait's answer (not supported): a session restored from an
    // external store would exist without an owner in the table.
}
