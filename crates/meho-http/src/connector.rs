//! The REST connector: `api_search_operations` and `api_call` as typed stages of the gateway's
//! pipeline.
//!
//! A call names an operation of an API's OpenAPI document and its parameters. Planning
//! validates them against the spec and builds the exact request ([`Request`]); the canonical
//! action `<METHOD> <path template> <path>` is decided by the API's rules in the shared engine;
//! a held call carries the resolved request as its preview (credentials are added only when the
//! call runs); the approval binds method, path, query, headers and the body's sha256, so what
//! runs is what was approved. The credential is fetched per call ([`crate::credential`]) and
//! released right after it.
//!
//! Invariants:
//! - The request sent is the planned [`Request`]: nothing of it is rebuilt from the agent's
//!   words after the decision.
//! - No redirect is followed (a redirect could take the credential elsewhere, or reach a path
//!   that was never decided).
//! - A response larger than `max_response_bytes` is refused, never passed on cut.
//! - `Set-Cookie`, authentication headers and any echo of the call's secret never reach the
//!   model; the body is redacted with the audit log's redactor.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use meho_approvals::{Grants, Learnable};
use meho_audit::{AuditLog, CallOutcome, IntentReceipt, NewRecord, RecordKind};
use meho_core::{Decision, Effect, ReasonCode, Tier};
use meho_gateway::redeem::consume_claim;
use meho_gateway::{
    Annotations, ApprovalClaim, Authorized, BoxFuture, CallContext, Caller, Connector, ErrorCode,
    Failed, Output, Plan, Refusal, Target, ToolError, ToolSpec, parse_arguments,
};
use meho_policy::http::{ApiPolicy, HttpAction, OperationOverride};
use meho_policy::{Decided, Overlay};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::credential::{CallCredential, Sources};
use crate::params::{Request, build};
use crate::search::search;
use crate::spec::{Operation, Spec};

/// The search tool.
pub const SEARCH: &str = "api_search_operations";
/// The call tool.
pub const CALL: &str = "api_call";
/// Operations a search returns unless it asks for another number.
pub const DEFAULT_SEARCH_LIMIT: u32 = 10;
/// The most a search returns.
pub const MAX_SEARCH_LIMIT: u32 = 50;
/// The largest spec meho reads.
pub const MAX_SPEC_BYTES: u64 = 64 * 1024 * 1024;

/// `api_search_operations`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    /// The API to search (see `list_targets`); every API you may use when unset.
    pub api: Option<String>,
    /// Words to look for in operation ids, paths, summaries and tags (e.g. `health`, `list
    /// policies`). Empty: the first operations.
    pub query: String,
    /// How many operations to return, 1–50. Default 10.
    pub limit: Option<u32>,
}

/// `api_call`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallArgs {
    /// The API (see `list_targets`).
    pub api: String,
    /// The operation: its `operationId`, or `METHOD /path/template` (as `api_search_operations`
    /// shows it).
    pub operation: String,
    /// The operation's parameters by name (path, query and header parameters), and the request
    /// body under `body`, as `api_search_operations` lists them.
    #[serde(default)]
    pub params: Option<Map<String, Value>>,
}

/// What a call does: the action an approval binds to.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ApiAction {
    /// Search operations.
    Search {
        /// The API searched, or every API the caller may use.
        api: Option<String>,
        /// The query.
        query: String,
        /// How many.
        limit: u32,
    },
    /// Call one operation.
    Call(Box<ApiCall>),
}

/// One planned operation call: exactly the request that will be sent (the body by its hash).
#[derive(Debug, Clone, Serialize)]
pub struct ApiCall {
    /// The API.
    pub api: String,
    /// The operation's key, `METHOD /path/template`.
    pub operation: String,
    /// `<METHOD> <path template> <path>`, what the rules decide.
    pub action: String,
    /// The query, in order.
    pub query: Vec<(String, String)>,
    /// The headers from parameters.
    pub headers: Vec<(String, String)>,
    /// The body's media type.
    pub content_type: Option<String>,
    /// sha256 of the body as sent.
    pub body_sha256: Option<String>,
    /// The request itself.
    #[serde(skip)]
    pub request: Request,
    /// The body as sent.
    #[serde(skip)]
    body: Option<Vec<u8>>,
    /// The decided action.
    #[serde(skip)]
    http: HttpAction,
    /// The operation's tier.
    #[serde(skip)]
    tier: Tier,
}

/// One API, ready for calls.
#[derive(Debug)]
pub struct ApiRuntime {
    config: meho_config::Api,
    spec: Spec,
    policy: ApiPolicy,
    /// Operation key → its override (resolved against the spec).
    overrides: BTreeMap<String, meho_config::ApiOperation>,
    client: reqwest::Client,
}

impl ApiRuntime {
    /// The API's config.
    pub fn config(&self) -> &meho_config::Api {
        &self.config
    }

    /// The parsed spec.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    fn override_of(&self, operation: &Operation) -> Option<&meho_config::ApiOperation> {
        self.overrides.get(&operation.key())
    }

    fn enabled(&self, operation: &Operation) -> bool {
        self.override_of(operation).is_none_or(|o| o.enabled)
    }

    fn tier_of(&self, operation: &Operation) -> Tier {
        self.override_of(operation)
            .and_then(|o| o.tier)
            .unwrap_or_else(|| operation.method.tier())
    }

    fn url(&self, request: &Request) -> Result<reqwest::Url, ToolError> {
        let base = self.config.base_url.as_str().trim_end_matches('/');
        let text = format!("{base}{}", request.path_and_query());
        reqwest::Url::parse(&text).map_err(|err| {
            ToolError::invalid(format!(
                "api `{}`: the request URL is not valid: {err}",
                self.config.name
            ))
        })
    }
}

/// Builds an API's HTTP client: its CA, its deadline, no redirects, no cookies.
fn client_for(api: &meho_config::Api) -> Result<reqwest::Client, String> {
    // reqwest is built without a default crypto provider (the workspace uses ring); without one
    // installed it would panic building the client. Installing is idempotent.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .timeout(api.timeout)
        .connect_timeout(api.timeout.min(std::time::Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("meho/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &api.ca_cert {
        let pem =
            std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|err| format!("{}: {err}", path.display()))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|err| format!("cannot build the HTTP client: {err}"))
}

/// The REST connector: APIs by name.
#[derive(Debug)]
pub struct HttpConnector {
    /// Each API's runtime; a reload swaps in a new one (calls in flight keep theirs).
    apis: BTreeMap<String, RwLock<Arc<ApiRuntime>>>,
    sources: Sources,
    grants: Option<Grants>,
    approvals: Option<meho_approvals::Approvals>,
    audit: Arc<AuditLog>,
}

impl HttpConnector {
    /// Loads every API's spec (a file, or fetched from the API with its credential as principal
    /// `meho`), resolves its operation overrides and compiles its rules. Any failure names the
    /// API and stops the start: an API meho cannot describe is not served half.
    pub async fn start(
        apis: impl IntoIterator<Item = meho_config::Api>,
        sources: Sources,
        audit: Arc<AuditLog>,
    ) -> Result<Self, String> {
        let mut runtimes = BTreeMap::new();
        for api in apis {
            let name = api.name.clone();
            let runtime = load(api, &sources)
                .await
                .map_err(|err| format!("api `{name}`: {err}"))?;
            for warning in runtime.spec.warnings() {
                tracing::warn!(api = %name, "{}", meho_core::display::escape(warning));
            }
            runtimes.insert(name, RwLock::new(Arc::new(runtime)));
        }
        Ok(HttpConnector {
            apis: runtimes,
            sources,
            grants: None,
            approvals: None,
            audit,
        })
    }

    /// Reads grants and waivers and redeems approvals from the store (the server's governance).
    #[must_use]
    pub fn with_store(mut self, approvals: meho_approvals::Approvals, grants: Grants) -> Self {
        self.approvals = Some(approvals);
        self.grants = Some(grants);
        self
    }

    /// The APIs.
    pub fn apis(&self) -> Vec<Arc<ApiRuntime>> {
        self.apis.values().map(current).collect()
    }

    /// Reloads every API's spec (files re-read, `api:` specs fetched again), resolving its
    /// overrides and compiling its rules anew; each API that loads is swapped in, one that fails
    /// keeps its current spec. Returns `(api, error)` for each failure.
    pub async fn reload(&self) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        for (name, slot) in &self.apis {
            let config = current(slot).config.clone();
            match load(config, &self.sources).await {
                Ok(runtime) => {
                    let operations = runtime.spec.operations().len();
                    *slot.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(runtime);
                    tracing::info!(api = %name, operations, "api spec reloaded");
                }
                Err(err) => {
                    tracing::warn!(api = %name, error = %err, "api spec not reloaded; the current one stays");
                    failed.push((name.clone(), err));
                }
            }
        }
        failed
    }

    /// The API `name` as `caller` may use it: another tenant's API does not exist for it;
    /// `allowed_callers` and groups apply as for hosts.
    fn api(&self, caller: &Caller, name: &str) -> Result<Arc<ApiRuntime>, ToolError> {
        let api = self
            .apis
            .get(name)
            .map(current)
            .filter(|a| a.config.tenant == caller.tenant)
            .ok_or_else(|| {
                ToolError::new(
                    ErrorCode::UnknownTarget,
                    format!(
                        "no api `{}` (see list_targets)",
                        meho_core::display::escape(name)
                    ),
                )
            })?;
        access(&api.config, caller)?;
        Ok(api)
    }

    async fn decide(&self, caller: &Caller, api: &ApiRuntime, call: &ApiCall) -> Decided {
        let end_user = caller.end_user.as_deref().unwrap_or("");
        let now = unix_now();
        let mut decided = api.policy.decide(
            &call.http,
            call.tier,
            &caller.principal,
            end_user,
            now,
            Overlay::default(),
        );
        if !decided.decision.allows()
            && let Some(grants) = &self.grants
        {
            let (grants, waivers, warning) = grants
                .overlay_or_baseline(&caller.tenant, &api.config.name)
                .await;
            decided = api.policy.decide(
                &call.http,
                call.tier,
                &caller.principal,
                end_user,
                now,
                Overlay {
                    grants: &grants,
                    waivers: &waivers,
                },
            );
            decided.decision.warnings.extend(warning);
        }
        decided.decision.cap_tier(caller.max_tier);
        decided
    }

    async fn plan_call(
        &self,
        call: CallContext<'_>,
        tool: &str,
        arguments: &Value,
    ) -> Result<Plan<ApiAction>, ToolError> {
        let caller = call.caller;
        match tool {
            SEARCH => {
                let args: SearchArgs = parse_arguments(tool, arguments)?;
                let limit = args.limit.unwrap_or(DEFAULT_SEARCH_LIMIT);
                if !(1..=MAX_SEARCH_LIMIT).contains(&limit) {
                    return Err(ToolError::invalid(format!(
                        "{tool}: limit must be 1..={MAX_SEARCH_LIMIT}"
                    )));
                }
                if args.query.len() > 1024 || args.query.chars().any(char::is_control) {
                    return Err(ToolError::invalid(format!(
                        "{tool}: the query is at most 1024 bytes of printable text"
                    )));
                }
                let target = match &args.api {
                    Some(name) => {
                        self.api(caller, name)?;
                        name.clone()
                    }
                    None => "apis".to_owned(),
                };
                Ok(Plan {
                    tool: tool.to_owned(),
                    target: target.clone(),
                    summary: format!("{tool} on {target}: {}", args.query),
                    action: ApiAction::Search {
                        api: args.api,
                        query: args.query,
                        limit,
                    },
                    min_tier: Tier::Read,
                    learnable: None,
                    session_id: None,
                    arguments: arguments.clone(),
                    request: arguments.clone(),
                    preview: false,
                })
            }
            CALL => {
                let args: CallArgs = parse_arguments(tool, arguments)?;
                let api = self.api(caller, &args.api)?;
                let operation = api.spec.find(&args.operation).ok_or_else(|| {
                    ToolError::new(
                        ErrorCode::NotFound,
                        format!(
                            "api `{}` has no operation `{}` (find it with {SEARCH})",
                            args.api,
                            meho_core::display::escape(&args.operation)
                        ),
                    )
                })?;
                let params = Value::Object(args.params.unwrap_or_default());
                let request = build(operation, &params).map_err(|err| {
                    ToolError::invalid(format!(
                        "{tool} {}: {}",
                        operation.key(),
                        meho_core::display::escape(&err.to_string())
                    ))
                })?;
                let http = HttpAction::new(operation.method, &operation.path, &request.path)
                    .map_err(|err| {
                        ToolError::invalid(format!(
                            "{tool} {}: {}",
                            operation.key(),
                            meho_core::display::escape(&err.to_string())
                        ))
                    })?;
                let body = request
                    .body
                    .as_ref()
                    .map(serde_json::to_vec)
                    .transpose()
                    .map_err(|err| ToolError::invalid(format!("{tool}: the body: {err}")))?;
                let body_sha256 = body.as_ref().map(|b| hex::encode(Sha256::digest(b)));
                let tier = api.tier_of(operation);
                let canonical = http.canonical();
                let shown = json!({
                    "api": args.api,
                    "operation": operation.key(),
                    "action": canonical,
                    "query": request.query,
                    "headers": request.headers,
                    "content_type": request.content_type,
                    "body_sha256": body_sha256,
                    "body_bytes": body.as_ref().map(Vec::len),
                });
                let planned = ApiCall {
                    api: args.api.clone(),
                    operation: operation.key(),
                    action: canonical.clone(),
                    query: request.query.clone(),
                    headers: request.headers.clone(),
                    content_type: request.content_type.clone(),
                    body_sha256,
                    request,
                    body,
                    http,
                    tier,
                };
                Ok(Plan {
                    tool: tool.to_owned(),
                    target: args.api.clone(),
                    summary: format!("{tool} on {}: {canonical}", args.api),
                    action: ApiAction::Call(Box::new(planned)),
                    min_tier: tier,
                    learnable: (tier > Tier::Read).then_some(Learnable {
                        end_user: None,
                        command: canonical,
                        sudo: false,
                        sudo_user: None,
                    }),
                    session_id: None,
                    arguments: shown,
                    request: arguments.clone(),
                    preview: false,
                })
            }
            other => Err(ToolError::new(
                ErrorCode::UnknownTool,
                format!("no tool named `{other}`"),
            )),
        }
    }

    async fn authorize_call(
        &self,
        call: CallContext<'_>,
        plan: &Plan<ApiAction>,
        approval: Option<&ApprovalClaim>,
    ) -> Result<Authorized<CallCredential>, Refusal> {
        let caller = call.caller;
        let planned = match &plan.action {
            ApiAction::Search { api, .. } => {
                if let Some(api) = api {
                    self.api(caller, api)?;
                }
                let mut decision =
                    Decision::refused(ReasonCode::Allowed, format!("view:{SEARCH}"), Tier::Read);
                decision.effect = Effect::Allow;
                decision.cap_tier(caller.max_tier);
                return Ok(Authorized {
                    decision: Decided::from(decision),
                    credential: None,
                    serial: None,
                    runs: None,
                });
            }
            ApiAction::Call(planned) => planned,
        };
        let api = self.api(caller, &planned.api)?;
        let decided = self.decide(caller, &api, planned).await;
        let decided = consume_claim(
            self.approvals.as_ref(),
            approval,
            &plan.binding(caller),
            decided,
        )
        .await?;
        if decided.decision.refuses() {
            return Err(Refusal::Decided {
                decision: decided,
                runs: None,
                preview: None,
            });
        }
        if decided.decision.needs_approval() {
            let preview = preview(&api, planned, self.audit.redactor())?;
            // The summary already names the canonical action: nothing else would run.
            return Err(Refusal::Decided {
                decision: decided,
                runs: None,
                preview: Some(preview),
            });
        }
        let credential = self
            .sources
            .fetch(
                caller,
                &api.config.name,
                &api.config.tenant,
                &api.config.auth,
            )
            .await?;
        if credential.serial.is_some() {
            self.audit_credential(call, plan, &decided, &credential)
                .await?;
        }
        Ok(Authorized {
            decision: decided,
            serial: credential.serial.clone(),
            credential: Some(credential),
            runs: None,
        })
    }

    /// The one record that says a credential was fetched for the call (its accessor or
    /// reference, never its value).
    async fn audit_credential(
        &self,
        call: CallContext<'_>,
        plan: &Plan<ApiAction>,
        decided: &Decided,
        credential: &CallCredential,
    ) -> Result<(), ToolError> {
        let record = NewRecord {
            target: Some(plan.target.clone()),
            action: Some(plan.tool.clone()),
            outcome: Some("issued".to_owned()),
            approval_id: decided.decision.approval_id.clone(),
            call_id: Some(call.call_id.to_owned()),
            body: json!({
                "decision": decided,
                "credential": credential.record,
            }),
            ..NewRecord::new(
                &call.caller.tenant,
                RecordKind::Credential,
                &call.caller.principal,
            )
        };
        self.audit.append(record).await.map(|_| ()).map_err(|err| {
            ToolError::internal(format!(
                "the audit log is unavailable, so no credential was used: {err}"
            ))
        })
    }

    fn run_search(&self, caller: &Caller, api: Option<&str>, query: &str, limit: u32) -> Value {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut hits = Vec::new();
        let runtimes = self.apis();
        for runtime in &runtimes {
            if api.is_some_and(|name| name != runtime.config.name)
                || runtime.config.tenant != caller.tenant
                || access(&runtime.config, caller).is_err()
            {
                continue;
            }
            // Each API's hits come best first: only its first `limit` enabled ones can be in
            // the answer.
            hits.extend(
                search(&runtime.spec, query, usize::MAX)
                    .into_iter()
                    .filter(|hit| runtime.enabled(hit.operation))
                    .take(limit)
                    .map(|hit| (runtime, hit)),
            );
        }
        hits.sort_by(|a, b| {
            b.1.score
                .total_cmp(&a.1.score)
                .then_with(|| a.0.config.name.cmp(&b.0.config.name))
                .then_with(|| a.1.operation.key().cmp(&b.1.operation.key()))
        });
        hits.truncate(limit);
        let operations: Vec<Value> = hits
            .into_iter()
            .map(|(runtime, hit)| {
                let op = hit.operation;
                let tier = runtime.tier_of(op);
                // How the rules treat the operation on its template path (grants aside): what
                // a call would most likely meet.
                let decision = HttpAction::new(op.method, &op.path, &op.path)
                    .map(|action| {
                        runtime
                            .policy
                            .decide(
                                &action,
                                tier,
                                &caller.principal,
                                caller.end_user.as_deref().unwrap_or(""),
                                unix_now(),
                                Overlay::default(),
                            )
                            .decision
                    })
                    .ok();
                json!({
                    "api": runtime.config.name,
                    "operation": op.id.clone().unwrap_or_else(|| op.key()),
                    "method": op.method,
                    "path": op.path,
                    "summary": op.summary,
                    "tier": tier,
                    "needs_approval": decision.as_ref().is_some_and(Decision::needs_approval),
                    "denied": decision.as_ref().is_none_or(Decision::refuses),
                    "params": op.compact_params(),
                })
            })
            .collect();
        json!({ "operations": operations })
    }

    async fn execute_call(
        &self,
        call: CallContext<'_>,
        plan: &Plan<ApiAction>,
        authorized: Authorized<CallCredential>,
    ) -> Result<Output, Failed> {
        let planned = match &plan.action {
            ApiAction::Search { api, query, limit } => {
                let value = self.run_search(call.caller, api.as_deref(), query, *limit);
                return Ok(Output {
                    value,
                    outcome: CallOutcome::default(),
                    notes: Map::new(),
                });
            }
            ApiAction::Call(planned) => planned,
        };
        let serial = authorized.serial.clone();
        let credential = authorized.credential.unwrap_or_else(CallCredential::none);
        let api = match self.api(call.caller, &planned.api) {
            Ok(api) => api,
            Err(error) => {
                credential.release().await;
                return Err(Failed::new(error, serial));
            }
        };
        let sent = send(&api, planned, &credential).await;
        let secrets: Vec<String> = credential.secrets();
        let released = credential.release().await;
        let mut notes = Map::new();
        if !released.is_empty() {
            notes.insert("credential".into(), Value::Object(released));
        }
        let answer = match sent {
            Ok(answer) => answer,
            Err(error) => {
                let mut failed = Failed::new(error, serial);
                failed.outcome.error = failed.outcome.error.map(|e| scrub(&e, &secrets));
                return Err(failed);
            }
        };
        let output_sha256 = hex::encode(Sha256::digest(&answer.bytes));
        let output_bytes = u64::try_from(answer.bytes.len()).unwrap_or(u64::MAX);
        let status = answer.status;
        let value = self.answer_value(&api, answer, &secrets);
        notes.insert("status".into(), json!(status));
        let outcome = CallOutcome {
            exit_status: Some(i64::from(status)),
            credential_serial: serial.clone(),
            output_bytes,
            output_sha256: Some(output_sha256),
            ..CallOutcome::default()
        };
        if status >= 400 {
            let error = status_error(&api.config.name, status, &value);
            return Err(Failed {
                outcome: CallOutcome {
                    error: Some(error.message.clone()),
                    ..outcome
                },
                error,
            });
        }
        Ok(Output {
            value,
            outcome,
            notes,
        })
    }

    /// What the model gets: status, the headers it may see, the body (JSON when it is), each
    /// with secrets redacted.
    fn answer_value(&self, api: &ApiRuntime, answer: Answer, secrets: &[String]) -> Value {
        let mut headers = Map::new();
        for (name, value) in &answer.headers {
            if shows_header(name.as_str())
                && let Ok(text) = value.to_str()
            {
                headers.insert(name.as_str().to_owned(), json!(text));
            }
        }
        let mut body = if answer.bytes.is_empty() {
            Value::Null
        } else {
            // JSON when it parses, whatever the Content-Type says; text otherwise.
            serde_json::from_slice::<Value>(&answer.bytes)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&answer.bytes).into_owned()))
        };
        scrub_value(&mut body, secrets);
        self.audit.redactor().redact_value(&mut body);
        let mut headers = Value::Object(headers);
        scrub_value(&mut headers, secrets);
        self.audit.redactor().redact_value(&mut headers);
        json!({
            "api": api.config.name,
            "status": answer.status,
            "headers": headers,
            "body": body,
        })
    }
}

/// What an API answered.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
}

/// Sends the planned request with the credential; reads at most `max_response_bytes`.
async fn send(
    api: &ApiRuntime,
    planned: &ApiCall,
    credential: &CallCredential,
) -> Result<Answer, ToolError> {
    let name = &api.config.name;
    let url = api.url(&planned.request)?;
    let method = reqwest::Method::from_bytes(planned.request.method.as_str().as_bytes())
        .map_err(|_| ToolError::internal("an HTTP method reqwest does not know"))?;
    let mut request = api.client.request(method, url);
    for (header, value) in &planned.request.headers {
        request = request.header(header.as_str(), value.as_str());
    }
    for (header, value) in credential.headers() {
        request = request.header(header.clone(), value.clone());
    }
    request = request.header(reqwest::header::ACCEPT, "application/json, */*;q=0.5");
    if let Some(body) = &planned.body {
        request = request
            .header(
                reqwest::header::CONTENT_TYPE,
                planned
                    .content_type
                    .as_deref()
                    .unwrap_or("application/json"),
            )
            .body(body.clone());
    }
    let unreachable = |err: reqwest::Error| {
        let what = if err.is_timeout() {
            format!(
                "api `{name}` did not answer within {} s; the request may or may not have been applied",
                api.config.timeout.as_secs()
            )
        } else {
            format!(
                "cannot reach api `{name}`: {}",
                meho_core::display::escape(&error_chain(&err))
            )
        };
        ToolError::new(ErrorCode::Unreachable, what)
    };
    let mut response = request.send().await.map_err(unreachable)?;
    let cap = api.config.max_response_bytes;
    let too_large = |size: String| {
        ToolError::new(
            ErrorCode::Limit,
            format!(
                "api `{name}` answered {size}, over max_response_bytes = {cap}: ask for less (a filter, a page, a narrower query)"
            ),
        )
    };
    if let Some(length) = response.content_length()
        && length > cap
    {
        return Err(too_large(format!("{length} bytes")));
    }
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if u64::try_from(bytes.len() + chunk.len()).unwrap_or(u64::MAX) > cap {
            return Err(too_large(format!("more than {cap} bytes")));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        headers,
        bytes,
    })
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// The caller's error for an answer with status >= 400: the API's words, clipped.
fn status_error(api: &str, status: u16, value: &Value) -> ToolError {
    let body = value.get("body").cloned().unwrap_or(Value::Null);
    let mut excerpt = match &body {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if excerpt.len() > 500 {
        let mut end = 500;
        while !excerpt.is_char_boundary(end) {
            end -= 1;
        }
        excerpt.truncate(end);
        excerpt.push('…');
    }
    let code = match status {
        400 | 422 => ErrorCode::InvalidArguments,
        401 => ErrorCode::AuthRefused,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        409 | 412 => ErrorCode::Conflict,
        429 => ErrorCode::Limit,
        _ => ErrorCode::ExecutionFailed,
    };
    ToolError::new(
        code,
        format!(
            "api `{api}` answered {status}: {}",
            meho_core::display::escape(&excerpt)
        ),
    )
    .with_detail(json!({ "status": status, "body": body }))
}

/// Response headers the model may see: none that set or carry a credential.
fn shows_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    !(matches!(
        name.as_str(),
        "set-cookie"
            | "set-cookie2"
            | "cookie"
            | "authorization"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "www-authenticate"
            | "x-vault-token"
    ) || [
        "token", "secret", "auth", "session", "api-key", "apikey", "password",
    ]
    .iter()
    .any(|word| name.contains(word)))
}

/// `text` with every secret value replaced.
fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), meho_audit::REDACTED);
        }
    }
    out
}

fn scrub_value(value: &mut Value, secrets: &[String]) {
    if secrets.is_empty() {
        return;
    }
    match value {
        Value::String(text) => {
            if secrets
                .iter()
                .any(|s| s.len() >= 4 && text.contains(s.as_str()))
            {
                *text = scrub(text, secrets);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_value(v, secrets)),
        Value::Object(map) => map.values_mut().for_each(|v| scrub_value(v, secrets)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// What the approver sees: the request exactly as it will be sent, the credential named but not
/// shown, the body pretty-printed with secrets redacted.
fn preview(
    api: &ApiRuntime,
    planned: &ApiCall,
    redactor: &meho_audit::Redactor,
) -> Result<String, ToolError> {
    let url = api.url(&planned.request)?;
    let mut lines = vec![format!("{} {url}", planned.request.method)];
    for (name, value) in &planned.request.headers {
        lines.push(format!("{name}: {}", redactor.redact_str(value)));
    }
    if let Some(content_type) = &planned.content_type {
        lines.push(format!("Content-Type: {content_type}"));
    }
    // Said in words no redaction pattern takes for a secret (`Name: value` would be): the
    // approver sees which credential will be added, never a value.
    let credential = match &api.config.auth {
        meho_config::ApiAuth::None => None,
        meho_config::ApiAuth::Header { name, secret } => {
            Some(format!("header {name} with the value of {secret}"))
        }
        meho_config::ApiAuth::Bearer { secret } => Some(format!(
            "header Authorization with the bearer value of {secret}"
        )),
        meho_config::ApiAuth::Basic { secret, .. } => Some(format!(
            "header Authorization with basic credentials from {secret}"
        )),
        meho_config::ApiAuth::VaultDynamic { path, .. } => Some(format!(
            "header Authorization from a dynamic Vault secret at {path}, revoked after the call"
        )),
    };
    if let Some(credential) = credential {
        lines.push(format!("(meho adds the {credential} when the call runs)"));
    }
    if let Some(body) = &planned.request.body {
        let mut shown = body.clone();
        redactor.redact_value(&mut shown);
        lines.push(String::new());
        lines.push(serde_json::to_string_pretty(&shown).unwrap_or_default());
        lines.push(String::new());
        lines.push(format!(
            "body sha256: {}",
            planned.body_sha256.as_deref().unwrap_or("-")
        ));
    }
    Ok(lines.join("\n"))
}

/// Loads one API: its spec, overrides and rules.
async fn load(api: meho_config::Api, sources: &Sources) -> Result<ApiRuntime, String> {
    let client = client_for(&api)?;
    let text = match &api.spec {
        meho_config::SpecSource::File(path) => {
            let size = std::fs::metadata(path)
                .map_err(|err| format!("cannot read spec {}: {err}", path.display()))?
                .len();
            if size > MAX_SPEC_BYTES {
                return Err(format!(
                    "spec {} is {size} bytes, over {MAX_SPEC_BYTES}",
                    path.display()
                ));
            }
            std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read spec {}: {err}", path.display()))?
        }
        meho_config::SpecSource::Api(path) => fetch_spec(&api, &client, path, sources).await?,
    };
    let spec = Spec::parse(&text).map_err(|err| format!("the spec cannot be used: {err}"))?;
    let mut overrides = BTreeMap::new();
    let mut policy_overrides = Vec::new();
    for (key, op) in &api.operations {
        let operation = spec.find(key).ok_or_else(|| {
            format!(
                "operations.\"{key}\": the spec has no operation `{key}` (name it by operationId or `METHOD /path/template`)"
            )
        })?;
        overrides.insert(operation.key(), *op);
        policy_overrides.push(OperationOverride {
            key: key.clone(),
            method: operation.method,
            template: operation.path.clone(),
            enabled: op.enabled,
            require_approval: op.require_approval,
        });
    }
    let policy = ApiPolicy::compile(&api.name, api.rules.clone(), &policy_overrides)
        .map_err(|err| err.to_string())?;
    Ok(ApiRuntime {
        config: api,
        spec,
        policy,
        overrides,
        client,
    })
}

/// Fetches the spec from a path on the API, with the API's credential as principal `meho`.
async fn fetch_spec(
    api: &meho_config::Api,
    client: &reqwest::Client,
    path: &str,
    sources: &Sources,
) -> Result<String, String> {
    let mut url = api.base_url.clone();
    url.set_path(path);
    let system = Caller {
        tenant: api.tenant.clone(),
        ..Caller::agent("meho")
    };
    let credential = sources
        .fetch(&system, &api.name, &api.tenant, &api.auth)
        .await
        .map_err(|err| format!("cannot fetch the spec: {}", err.message))?;
    let mut request = client.get(url.clone());
    for (name, value) in credential.headers() {
        request = request.header(name.clone(), value.clone());
    }
    let result = async {
        let response = request
            .send()
            .await
            .map_err(|err| format!("cannot fetch the spec from {url}: {}", error_chain(&err)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("fetching the spec from {url} answered {status}"));
        }
        if response
            .content_length()
            .is_some_and(|l| l > MAX_SPEC_BYTES)
        {
            return Err(format!("the spec at {url} is over {MAX_SPEC_BYTES} bytes"));
        }
        response
            .text()
            .await
            .map_err(|err| format!("cannot read the spec from {url}: {err}"))
    }
    .await;
    credential.release().await;
    result
}

/// The runtime a slot holds now.
fn current(slot: &RwLock<Arc<ApiRuntime>>) -> Arc<ApiRuntime> {
    slot.read().unwrap_or_else(PoisonError::into_inner).clone()
}

fn access(api: &meho_config::Api, caller: &Caller) -> Result<(), ToolError> {
    meho_gateway::check_access("api", &api.name, &api.allowed_callers, &api.groups, caller)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Connector for HttpConnector {
    type Action = ApiAction;
    type Credential = CallCredential;

    fn tools(&self) -> Vec<ToolSpec> {
        if self.apis.is_empty() {
            return Vec::new();
        }
        vec![
            ToolSpec::of::<SearchArgs>(
                SEARCH,
                "Find operations of the REST APIs you may use (see list_targets): ranked by a text match over operation ids, paths, summaries and tags. Each hit names the operation, its method and path, its tier, whether a call needs a human's approval, and its parameters. Call one with api_call.",
                Tier::Read,
                Annotations::hints(true, false, true, false),
            ),
            ToolSpec::of::<CallArgs>(
                CALL,
                "Call one operation of a REST API, by its operationId or `METHOD /path/template` (find it with api_search_operations). `params` holds the path, query and header parameters by name and the request body under `body`; they are checked against the API's spec before anything is sent. GET/HEAD are READ, POST/PUT/PATCH WRITE, DELETE DESTRUCTIVE; a call policy holds waits for a human's approval. meho adds the credential; you never send one.",
                Tier::Read,
                Annotations::hints(false, true, false, true),
            ),
        ]
    }

    fn plan<'a>(
        &'a self,
        call: CallContext<'a>,
        tool: &'a str,
        arguments: &'a Value,
    ) -> BoxFuture<'a, Result<Plan<ApiAction>, ToolError>> {
        Box::pin(self.plan_call(call, tool, arguments))
    }

    fn authorize<'a>(
        &'a self,
        call: CallContext<'a>,
        plan: &'a Plan<ApiAction>,
        approval: Option<&'a ApprovalClaim>,
    ) -> BoxFuture<'a, Result<Authorized<CallCredential>, Refusal>> {
        Box::pin(self.authorize_call(call, plan, approval))
    }

    fn execute<'a>(
        &'a self,
        call: CallContext<'a>,
        plan: &'a Plan<ApiAction>,
        authorized: Authorized<CallCredential>,
        _receipt: &'a IntentReceipt,
    ) -> BoxFuture<'a, Result<Output, Failed>> {
        Box::pin(self.execute_call(call, plan, authorized))
    }

    fn targets<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, Result<Vec<Target>, ToolError>> {
        Box::pin(async move {
            Ok(self
                .apis()
                .iter()
                .filter(|a| a.config.tenant == caller.tenant && access(&a.config, caller).is_ok())
                .map(|a| {
                    let mut detail = Map::new();
                    detail.insert("base_url".into(), json!(a.config.base_url.as_str()));
                    detail.insert("title".into(), json!(a.spec.title()));
                    detail.insert("version".into(), json!(a.spec.version()));
                    detail.insert(
                        "operations".into(),
                        json!(a.spec.operations().iter().filter(|o| a.enabled(o)).count()),
                    );
                    Target {
                        name: a.config.name.clone(),
                        kind: "api",
                        detail,
                    }
                })
                .collect())
        })
    }
}
