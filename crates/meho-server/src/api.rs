//! The REST API under `/api/v1` (docs/api.md): approvals, grants, freezes, audit, `whoami`, and
//! its OpenAPI document at `/api/v1/openapi.json`.
//!
//! Invariants:
//! - Handlers run behind the same bearer-token check as `/mcp`; the verified [`Principal`] is the
//!   only identity they use, and its tenant scopes every query (another tenant's row is a 404).
//! - Every error is `{"error": code, "message": sentence}` with the status docs/api.md lists.
//! - Every change goes through [`crate::hitl::Governance`], which audits it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use meho_approvals::{Freeze, FreezeKind, GrantRow, Status};
use meho_audit::{Filter, Page, StoredRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::McpState;
use crate::auth::Principal;
use crate::hitl::{Actor, ApprovalView, GovError, Origin, rfc3339, view};

/// `{"error", "message"}`: every error of the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `bad_request`, `forbidden`, `four_eyes`, `not_found`, `wrong_state`,
    /// `grant_needs_allowlist`, `payload_too_large`, `internal`, or a token error.
    pub error: String,
    /// A sentence for humans.
    pub message: String,
}

/// An API error: a status, a code and a sentence.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "API request failed");
        }
        (
            self.status,
            Json(ErrorBody {
                error: self.code.to_owned(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

impl From<GovError> for ApiError {
    fn from(err: GovError) -> Self {
        let (status, code) = match &err {
            GovError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            GovError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            GovError::FourEyes(_) => (StatusCode::FORBIDDEN, "four_eyes"),
            GovError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            GovError::WrongState(_) => (StatusCode::CONFLICT, "wrong_state"),
            GovError::NeedsAllowlist(_) => (StatusCode::CONFLICT, "grant_needs_allowlist"),
            GovError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, err.to_string())
    }
}

impl From<meho_approvals::ApprovalError> for ApiError {
    fn from(err: meho_approvals::ApprovalError) -> Self {
        GovError::from(err).into()
    }
}

/// A JSON body whose rejections are API errors (400/413 with our body, not axum's text).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => {
                    ApiError::bad_request("send the body as JSON (Content-Type: application/json)")
                }
                other => ApiError::bad_request(format!("invalid JSON body: {}", other.body_text())),
            }),
        }
    }
}

/// Query parameters whose rejections are API errors.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::bad_request(format!("invalid query: {}", rejection.body_text()))
            })
    }
}

/// The acting principal plus where the request came from.
#[derive(Debug)]
pub struct Acting(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Acting {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let principal = parts.extensions.get::<Principal>().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the request carries no verified identity",
            )
        })?;
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect());
        Ok(Acting(Actor {
            subject: principal.subject.clone(),
            tenant: principal.tenant.clone(),
            role: principal.role,
            origin: Origin { ip, user_agent },
        }))
    }
}

// --- whoami ------------------------------------------------------------------------------------

/// `GET /api/v1/whoami`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// The principal (`sub` or the configured user claim).
    pub subject: String,
    /// The tenant.
    pub tenant: String,
    /// `tenant_admin`, `operator` or `read_only`.
    pub role: String,
    /// Groups, when the token carries them.
    pub groups: Option<Vec<String>>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Where the identity came from: the issuer, or `dev`.
    pub source: String,
}

#[utoipa::path(get, path = "/api/v1/whoami", tag = "identity",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
async fn whoami(Extension(principal): Extension<Principal>) -> Json<WhoAmI> {
    Json(WhoAmI {
        subject: principal.subject.clone(),
        tenant: principal.tenant.clone(),
        role: principal.role.as_str().to_owned(),
        groups: principal.groups.clone(),
        scopes: principal.scopes.clone(),
        source: principal.source.clone(),
    })
}

// --- approvals ---------------------------------------------------------------------------------

/// `GET /api/v1/approvals` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ApprovalQuery {
    /// Only approvals in this state: pending, approved, denied, expired, consumed.
    pub status: Option<String>,
    /// 1–500, default 50.
    pub limit: Option<u32>,
}

/// A list of approvals.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalList {
    /// Newest first.
    pub approvals: Vec<ApprovalView>,
}

/// `approve` / `deny` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Why (1–1024 characters); recorded in the audit log.
    pub reason: String,
    /// Approve-and-learn: also mint a waiver for this exact command, elevation, caller and end
    /// user, for this many seconds (60–604800). Approve only.
    pub learn_ttl_seconds: Option<u64>,
}

/// A minted waiver, in an approve-and-learn answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaiverRef {
    /// `wvr-…`.
    pub id: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// An approval after a decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecidedApproval {
    /// The approval.
    #[serde(flatten)]
    pub approval: ApprovalView,
    /// The waiver approve-and-learn minted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiver: Option<WaiverRef>,
}

fn limit(value: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match value {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(format!(
            "limit must be between 1 and {max}"
        ))),
    }
}

#[utoipa::path(get, path = "/api/v1/approvals", tag = "approvals", params(ApprovalQuery),
    responses((status = 200, body = ApprovalList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_approvals(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Query(query): Query<ApprovalQuery>,
) -> Result<Json<ApprovalList>, ApiError> {
    let status = query
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let governance = &state.context.governance;
    let rows = governance
        .approvals
        .list(&actor.tenant, status, limit(query.limit, 50, 500)?)
        .await?;
    Ok(Json(ApprovalList {
        approvals: rows
            .iter()
            .map(|a| view(a, &governance.console_url(&a.id)))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/approvals/{id}", tag = "approvals",
    params(("id" = String, Path, description = "approval id")),
    responses((status = 200, body = ApprovalView), (status = 404, body = ErrorBody)))]
async fn get_approval(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
) -> Result<Json<ApprovalView>, ApiError> {
    let governance = &state.context.governance;
    let approval = governance.approvals.get(&actor.tenant, &id).await?;
    Ok(Json(view(&approval, &governance.console_url(&id))))
}

async fn decide(
    state: &McpState,
    actor: &Actor,
    id: &str,
    approve: bool,
    body: DecisionBody,
) -> Result<Json<DecidedApproval>, ApiError> {
    let learn = match body.learn_ttl_seconds {
        None => None,
        Some(secs) if (60..=604_800).contains(&secs) => Some(Duration::from_secs(secs)),
        Some(_) => {
            return Err(ApiError::bad_request(
                "learn_ttl_seconds must be between 60 and 604800",
            ));
        }
    };
    let governance = &state.context.governance;
    let (approval, waiver) = governance
        .decide(actor, id, approve, &body.reason, learn)
        .await?;
    Ok(Json(DecidedApproval {
        approval: view(&approval, &governance.console_url(id)),
        waiver: waiver.map(|w| WaiverRef {
            id: w.id,
            expires_at: rfc3339(w.expires_at_us),
        }),
    }))
}

#[utoipa::path(post, path = "/api/v1/approvals/{id}/approve", tag = "approvals",
    params(("id" = String, Path, description = "approval id")), request_body = DecisionBody,
    responses((status = 200, body = DecidedApproval), (status = 400, body = ErrorBody),
        (status = 403, description = "four-eyes violation (`four_eyes`)", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "no longer pending (`wrong_state`)", body = ErrorBody)))]
async fn approve(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
    Body(body): Body<DecisionBody>,
) -> Result<Json<DecidedApproval>, ApiError> {
    decide(&state, &actor, &id, true, body).await
}

#[utoipa::path(post, path = "/api/v1/approvals/{id}/deny", tag = "approvals",
    params(("id" = String, Path, description = "approval id")), request_body = DecisionBody,
    responses((status = 200, body = DecidedApproval), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn deny(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
    Body(body): Body<DecisionBody>,
) -> Result<Json<DecidedApproval>, ApiError> {
    if body.learn_ttl_seconds.is_some() {
        return Err(ApiError::bad_request(
            "learn_ttl_seconds only goes with approve",
        ));
    }
    decide(&state, &actor, &id, false, body).await
}

// --- grants ------------------------------------------------------------------------------------

/// `POST /api/v1/grants` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrantBody {
    /// The host (its baseline policy must be an allowlist).
    pub target: String,
    /// The allow pattern (a regex, the same rules as policy patterns).
    pub pattern: String,
    /// `read`, `write` or `destructive`.
    #[schema(value_type = String)]
    pub tier: meho_core::Tier,
    /// Lifetime, 60–604800 seconds.
    pub ttl_seconds: u64,
    /// Why.
    pub reason: String,
}

/// A runtime grant.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantView {
    /// `grt-…`.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The host.
    pub target: String,
    /// The allow pattern.
    pub pattern: String,
    /// The tier of what it allows.
    #[schema(value_type = String)]
    pub tier: meho_core::Tier,
    /// Why.
    pub reason: String,
    /// Who created it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// RFC 3339.
    pub revoked_at: Option<String>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
    /// Whether it applies now.
    pub active: bool,
}

fn grant_view(grant: &GrantRow) -> GrantView {
    GrantView {
        id: grant.id.clone(),
        tenant: grant.tenant.clone(),
        target: grant.target.clone(),
        pattern: grant.pattern.clone(),
        tier: grant.tier,
        reason: grant.reason.clone(),
        created_by: grant.created_by.clone(),
        created_at: rfc3339(grant.created_at_us),
        expires_at: rfc3339(grant.expires_at_us),
        revoked_at: grant.revoked_at_us.map(rfc3339),
        revoked_by: grant.revoked_by.clone(),
        active: grant.is_active(meho_approvals::now_us()),
    }
}

/// A list of grants.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantList {
    /// Newest first.
    pub grants: Vec<GrantView>,
}

/// `GET /api/v1/grants` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GrantQuery {
    /// Only this host.
    pub target: Option<String>,
    /// Include revoked and expired grants.
    #[serde(default)]
    pub all: bool,
    /// 1–500, default 100.
    pub limit: Option<u32>,
}

#[utoipa::path(post, path = "/api/v1/grants", tag = "grants", request_body = NewGrantBody,
    responses((status = 201, body = GrantView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "the baseline has no allowlist (`grant_needs_allowlist`)", body = ErrorBody)))]
async fn create_grant(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Body(body): Body<NewGrantBody>,
) -> Result<(StatusCode, Json<GrantView>), ApiError> {
    let grant = state
        .context
        .governance
        .create_grant(
            &actor,
            &body.target,
            &body.pattern,
            body.tier,
            Duration::from_secs(body.ttl_seconds),
            &body.reason,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(grant_view(&grant))))
}

#[utoipa::path(get, path = "/api/v1/grants", tag = "grants", params(GrantQuery),
    responses((status = 200, body = GrantList), (status = 400, body = ErrorBody)))]
async fn list_grants(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Query(query): Query<GrantQuery>,
) -> Result<Json<GrantList>, ApiError> {
    let rows = state
        .context
        .governance
        .grants
        .list(
            &actor.tenant,
            query.target.as_deref(),
            query.all,
            limit(query.limit, 100, 500)?,
        )
        .await?;
    Ok(Json(GrantList {
        grants: rows.iter().map(grant_view).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/grants/{id}", tag = "grants",
    params(("id" = String, Path, description = "grant id")),
    responses((status = 200, body = GrantView), (status = 404, body = ErrorBody)))]
async fn get_grant(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    let grant = state
        .context
        .governance
        .grants
        .get(&actor.tenant, &id)
        .await?;
    Ok(Json(grant_view(&grant)))
}

#[utoipa::path(delete, path = "/api/v1/grants/{id}", tag = "grants",
    params(("id" = String, Path, description = "grant id")),
    responses((status = 200, body = GrantView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn revoke_grant(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    let grant = state.context.governance.revoke_grant(&actor, &id).await?;
    Ok(Json(grant_view(&grant)))
}

// --- freezes -----------------------------------------------------------------------------------

/// `POST /api/v1/freezes` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFreezeBody {
    /// `principal`, `session` or `serial`.
    pub kind: String,
    /// The principal, session id, or certificate serial (decimal).
    pub value: String,
    /// Why.
    pub reason: String,
}

/// A freeze.
#[derive(Debug, Serialize, ToSchema)]
pub struct FreezeView {
    /// `frz-…`.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// `principal`, `session` or `serial`.
    #[schema(value_type = String)]
    pub kind: FreezeKind,
    /// What is frozen.
    pub value: String,
    /// Why.
    pub reason: String,
    /// Who froze.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub lifted_at: Option<String>,
    /// Who lifted it.
    pub lifted_by: Option<String>,
    /// Why it was lifted.
    pub lift_reason: Option<String>,
    /// Whether it is in force.
    pub active: bool,
    /// Sessions the freeze closed (create only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_sessions: Option<usize>,
}

fn freeze_view(freeze: &Freeze, closed: Option<usize>) -> FreezeView {
    FreezeView {
        id: freeze.id.clone(),
        tenant: freeze.tenant.clone(),
        kind: freeze.kind,
        value: freeze.value.clone(),
        reason: freeze.reason.clone(),
        created_by: freeze.created_by.clone(),
        created_at: rfc3339(freeze.created_at_us),
        lifted_at: freeze.lifted_at_us.map(rfc3339),
        lifted_by: freeze.lifted_by.clone(),
        lift_reason: freeze.lift_reason.clone(),
        active: freeze.is_active(),
        closed_sessions: closed,
    }
}

/// A list of freezes.
#[derive(Debug, Serialize, ToSchema)]
pub struct FreezeList {
    /// Newest first.
    pub freezes: Vec<FreezeView>,
}

/// `GET /api/v1/freezes` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FreezeQuery {
    /// Include lifted freezes.
    #[serde(default)]
    pub all: bool,
    /// 1–500, default 100.
    pub limit: Option<u32>,
}

/// `DELETE /api/v1/freezes/{id}` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LiftQuery {
    /// Why it is lifted.
    pub reason: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/freezes", tag = "freezes", request_body = NewFreezeBody,
    responses((status = 201, body = FreezeView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_freeze(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Body(body): Body<NewFreezeBody>,
) -> Result<(StatusCode, Json<FreezeView>), ApiError> {
    let kind: FreezeKind = body.kind.parse().map_err(ApiError::bad_request)?;
    let (freeze, closed) = state
        .context
        .governance
        .freeze(
            &state.context.gateway,
            &actor,
            kind,
            &body.value,
            &body.reason,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(freeze_view(&freeze, Some(closed))),
    ))
}

#[utoipa::path(get, path = "/api/v1/freezes", tag = "freezes", params(FreezeQuery),
    responses((status = 200, body = FreezeList), (status = 400, body = ErrorBody)))]
async fn list_freezes(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Query(query): Query<FreezeQuery>,
) -> Result<Json<FreezeList>, ApiError> {
    let rows = state
        .context
        .governance
        .freezes
        .list(&actor.tenant, query.all, limit(query.limit, 100, 500)?)
        .await?;
    Ok(Json(FreezeList {
        freezes: rows.iter().map(|f| freeze_view(f, None)).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/freezes/{id}", tag = "freezes",
    params(("id" = String, Path, description = "freeze id")),
    responses((status = 200, body = FreezeView), (status = 404, body = ErrorBody)))]
async fn get_freeze(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
) -> Result<Json<FreezeView>, ApiError> {
    let freeze = state
        .context
        .governance
        .freezes
        .get(&actor.tenant, &id)
        .await?;
    Ok(Json(freeze_view(&freeze, None)))
}

#[utoipa::path(delete, path = "/api/v1/freezes/{id}", tag = "freezes",
    params(("id" = String, Path, description = "freeze id"), LiftQuery),
    responses((status = 200, body = FreezeView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn lift_freeze(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
    Query(query): Query<LiftQuery>,
) -> Result<Json<FreezeView>, ApiError> {
    let freeze = state
        .context
        .governance
        .unfreeze(&actor, &id, query.reason.as_deref())
        .await?;
    Ok(Json(freeze_view(&freeze, None)))
}

// --- audit -------------------------------------------------------------------------------------

/// `GET /api/v1/audit` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this principal.
    pub principal: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only this kind: intent, outcome, denial, approval, grant, waiver, config_reload, freeze,
    /// announce, credential.
    pub kind: Option<String>,
    /// Only this session.
    pub session_id: Option<String>,
    /// Only this approval.
    pub approval_id: Option<String>,
    /// Only this call.
    pub call_id: Option<String>,
    /// At or after this time (RFC 3339).
    pub since: Option<String>,
    /// Before this time (RFC 3339).
    pub until: Option<String>,
    /// 1–1000, default 100.
    pub limit: Option<u32>,
    /// The cursor (`next_before` of the previous page).
    pub before: Option<i64>,
}

/// One audit record.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordView {
    /// Record id.
    pub id: String,
    /// Position in the tenant's chain.
    pub seq: i64,
    /// The tenant.
    pub tenant: String,
    /// Unix microseconds.
    pub ts: i64,
    /// RFC 3339.
    pub time: String,
    /// What happened.
    pub kind: String,
    /// Who.
    pub principal: String,
    /// The target.
    pub target: Option<String>,
    /// The action.
    pub action: Option<String>,
    /// The outcome word.
    pub outcome: Option<String>,
    /// The session.
    pub session_id: Option<String>,
    /// The approval.
    pub approval_id: Option<String>,
    /// Links an intent to its outcome.
    pub call_id: Option<String>,
    /// Everything else (redacted before it was stored).
    #[schema(value_type = Object)]
    pub body: Value,
    /// The previous record's hash.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

fn record_view(record: StoredRecord) -> RecordView {
    RecordView {
        body: serde_json::from_str(&record.body).unwrap_or(Value::String(record.body.clone())),
        time: rfc3339(record.ts),
        id: record.id,
        seq: record.seq,
        tenant: record.tenant,
        ts: record.ts,
        kind: record.kind,
        principal: record.principal,
        target: record.target,
        action: record.action,
        outcome: record.outcome,
        session_id: record.session_id,
        approval_id: record.approval_id,
        call_id: record.call_id,
        prev_hash: record.prev_hash,
        hash: record.hash,
    }
}

/// A page of audit records.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordPage {
    /// Newest first.
    pub records: Vec<RecordView>,
    /// Pass as `before` for the next page; `null` at the end.
    pub next_before: Option<i64>,
}

fn parse_time(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|text| {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX))
                .map_err(|e| ApiError::bad_request(format!("`{name}` is not RFC 3339: {e}")))
        })
        .transpose()
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = RecordPage), (status = 400, body = ErrorBody)))]
async fn query_audit(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Query(query): Query<AuditQuery>,
) -> Result<Json<RecordPage>, ApiError> {
    if let Some(kind) = &query.kind
        && !meho_audit::RecordKind::ALL
            .iter()
            .any(|k| k.as_str() == kind)
    {
        return Err(ApiError::bad_request(format!(
            "unknown record kind `{kind}`"
        )));
    }
    let limit = limit(query.limit, 100, 1000)?;
    let filter = Filter {
        tenant: Some(actor.tenant.clone()),
        principal: query.principal,
        target: query.target,
        action: query.action,
        outcome: query.outcome,
        kind: query.kind,
        session_id: query.session_id,
        approval_id: query.approval_id,
        call_id: query.call_id,
        since: parse_time("since", query.since.as_deref())?,
        until: parse_time("until", query.until.as_deref())?,
    };
    let records = state
        .context
        .audit
        .query(
            &filter,
            Page::Newest {
                before: query.before,
                limit,
            },
        )
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let next_before = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.row))
        .flatten();
    Ok(Json(RecordPage {
        records: records.into_iter().map(record_view).collect(),
        next_before,
    }))
}

#[utoipa::path(get, path = "/api/v1/audit/{id}", tag = "audit",
    params(("id" = String, Path, description = "record id")),
    responses((status = 200, body = RecordView), (status = 404, body = ErrorBody)))]
async fn get_record(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
) -> Result<Json<RecordView>, ApiError> {
    let record = state
        .context
        .audit
        .get(&id)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .filter(|r| r.tenant == actor.tenant)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no audit record `{id}` in your tenant"),
            )
        })?;
    Ok(Json(record_view(record)))
}

/// The caller's tenant chain, re-verified.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyStatus {
    /// Whether the chain and its checkpoints are intact.
    pub ok: bool,
    /// The tenant.
    pub tenant: String,
    /// Records checked.
    pub records: u64,
    /// The last intact sequence number.
    pub head_seq: i64,
    /// Its hash.
    pub head_hash: String,
    /// Signed checkpoints checked (database + witness).
    pub checkpoints: u64,
    /// The highest seq a valid signed checkpoint vouches for.
    pub checkpointed_seq: i64,
    /// What is wrong, if anything.
    #[schema(value_type = Vec<Object>)]
    pub problems: Vec<Value>,
}

#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = VerifyStatus), (status = 500, body = ErrorBody)))]
async fn verify_audit(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
) -> Result<Json<VerifyStatus>, ApiError> {
    let internal = |e: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e);
    let (witness, witness_errors) = match &state.verify.witness {
        Some(path) => meho_audit::Witness::new(path)
            .read()
            .map_err(|e| internal(e.to_string()))?,
        None => (Vec::new(), Vec::new()),
    };
    let report = meho_audit::verify_tenant_chain(
        state.context.audit.store().as_ref(),
        &actor.tenant,
        meho_audit::VerifyInputs {
            key: state.verify.public_key.as_ref(),
            witness: &witness,
            witness_errors: &witness_errors,
        },
    )
    .await
    .map_err(|e| internal(e.to_string()))?;
    let summary = report.tenants.first().cloned().unwrap_or_default();
    Ok(Json(VerifyStatus {
        ok: report.is_ok(),
        tenant: actor.tenant,
        records: summary.records,
        head_seq: summary.head_seq,
        head_hash: summary.head_hash,
        checkpoints: summary.database_checkpoints + summary.witness_checkpoints,
        checkpointed_seq: summary.checkpointed_seq,
        problems: report
            .problems
            .iter()
            .map(|p| json!({ "kind": p.kind, "seq": p.seq, "message": p.message }))
            .collect(),
    }))
}

// --- the document ------------------------------------------------------------------------------

#[derive(OpenApi)]
#[openapi(
    info(title = "meho API", description = "meho's REST API: approvals, grants, freezes and the audit log. See docs/api.md."),
    paths(
        whoami, list_approvals, get_approval, approve, deny, create_grant, list_grants, get_grant,
        revoke_grant, create_freeze, list_freezes, get_freeze, lift_freeze, query_audit, get_record,
        verify_audit
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from [auth] issuer for meho's resource, or the dev token.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

async fn openapi_json() -> Response {
    match openapi().to_json() {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            .into_response(),
    }
}

/// The routes that need a verified principal.
pub(crate) fn guarded() -> Router<Arc<McpState>> {
    Router::new()
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/approvals", get(list_approvals))
        .route("/api/v1/approvals/{id}", get(get_approval))
        .route("/api/v1/approvals/{id}/approve", post(approve))
        .route("/api/v1/approvals/{id}/deny", post(deny))
        .route("/api/v1/grants", post(create_grant).get(list_grants))
        .route("/api/v1/grants/{id}", get(get_grant).delete(revoke_grant))
        .route("/api/v1/freezes", post(create_freeze).get(list_freezes))
        .route("/api/v1/freezes/{id}", get(get_freeze).delete(lift_freeze))
        .route("/api/v1/audit", get(query_audit))
        .route("/api/v1/audit/verify", get(verify_audit))
        .route("/api/v1/audit/{id}", get(get_record))
}

/// The routes anyone may read.
pub(crate) fn public() -> Router<Arc<McpState>> {
    Router::new().route("/api/v1/openapi.json", get(openapi_json))
}
