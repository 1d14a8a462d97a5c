//! The REST API under `/api/v1` (docs/api.md): approvals, grants, freezes, audit, `whoami`, the
//! activity view (its handlers live in [`crate::activity`]), and its OpenAPI document at
//! `/api/v1/openapi.json`.
//!
//! Invariants:
//! - Handlers run behind the same bearer-token check as `/mcp`; the verified [`Principal`] is the
//!   only identity they use, and its tenant scopes every query (another tenant's row is a 404).
//! - Every error is `{"error": code, "message": sentence}` with the status docs/api.md lists,
//!   rejections of the request's path, query and body included (the extractors here).
//! - Every change goes through [`meho_gateway::Governance`], which audits it.
//! - The OpenAPI document states what the handlers accept: every enum, range and length comes
//!   from the constant the handler checks against, so a request the document calls valid is
//!   never refused as malformed, and one it calls invalid is always refused.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use meho_approvals::{
    Freeze, FreezeKind, GrantRow, MAX_FREEZE_VALUE_CHARS, MAX_REASON_CHARS, MAX_SERIAL_DIGITS,
    Status,
};
use meho_audit::{Filter, Page, Record};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::McpState;
use crate::auth::Principal;
use meho_gateway::govern::{Actor, ApprovalView, Origin, rfc3339, view};
use meho_gateway::{ErrorCode, ToolError};

/// `limit` of `GET /api/v1/approvals`: default and range.
const APPROVALS_LIMIT: (u32, RangeInclusive<u32>) = (50, 1..=500);
/// `limit` of `GET /api/v1/grants`.
const GRANTS_LIMIT: (u32, RangeInclusive<u32>) = (100, 1..=500);
/// `limit` of `GET /api/v1/freezes`.
const FREEZES_LIMIT: (u32, RangeInclusive<u32>) = (100, 1..=500);
/// `limit` of `GET /api/v1/audit`.
const AUDIT_LIMIT: (u32, RangeInclusive<u32>) = (100, 1..=1000);
/// Grant lifetimes and approve-and-learn waiver lifetimes, in seconds (what the store accepts).
const TTL_SECONDS: RangeInclusive<u64> =
    meho_approvals::MIN_OVERLAY_TTL.as_secs()..=meho_approvals::MAX_OVERLAY_TTL.as_secs();

/// `{"error", "message"}`: every error of the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `bad_request`, `forbidden`, `four_eyes`, `not_found`, `method_not_allowed`,
    /// `wrong_state`, `grant_needs_allowlist`, `payload_too_large`, `unsupported_media_type`,
    /// `internal`, or a token error (`missing_token`, `invalid_token`, …).
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
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A rejection of the request itself, with the status the rejection carries.
    fn rejected(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError::new(status, error_code(status), message)
    }
}

/// The stable `error` code of a status when nothing more specific applies.
pub(crate) fn error_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "bad_request",
        StatusCode::UNAUTHORIZED => "invalid_token",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::CONFLICT => "wrong_state",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
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

/// The REST mapping of an error code: one match (the MCP mapping is `mcp::error_result`).
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidArguments | ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCode::Forbidden
        | ErrorCode::FourEyes
        | ErrorCode::Denied
        | ErrorCode::Frozen
        | ErrorCode::ForbiddenByCluster => StatusCode::FORBIDDEN,
        ErrorCode::NotFound | ErrorCode::UnknownTarget | ErrorCode::UnknownTool => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::WrongState
        | ErrorCode::GrantNeedsAllowlist
        | ErrorCode::NeedsApproval
        | ErrorCode::ApprovalRefused
        | ErrorCode::ApprovalDenied
        | ErrorCode::ApprovalExpired
        | ErrorCode::ApprovalConsumed
        | ErrorCode::SessionEnded
        | ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::Limit => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unreachable
        | ErrorCode::HostKeyMismatch
        | ErrorCode::AuthRefused
        | ErrorCode::ExecutionFailed => StatusCode::BAD_GATEWAY,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        // A code added later is an internal error until it is mapped here.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ToolError> for ApiError {
    fn from(err: ToolError) -> Self {
        ApiError::new(status_of(err.code), err.code.as_str(), err.message)
    }
}

impl From<meho_approvals::ApprovalError> for ApiError {
    fn from(err: meho_approvals::ApprovalError) -> Self {
        ToolError::from(err).into()
    }
}

/// A JSON body whose rejections are API errors: 415 without a JSON content type, 413 over the
/// body limit, 400 for malformed JSON, unknown fields and wrong types.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // PostgreSQL text cannot hold NUL, so a `\u0000` would fail deep in the store as a 500;
        // refuse it here, for every body, on every backend alike.
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, crate::MAX_MCP_BODY_BYTES)
            .await
            .map_err(|err| {
                let too_large = std::error::Error::source(&err)
                    .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
                if too_large {
                    ApiError::rejected(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "request bodies are limited to {} bytes",
                            crate::MAX_MCP_BODY_BYTES
                        ),
                    )
                } else {
                    ApiError::bad_request(format!("cannot read the request body: {err}"))
                }
            })?;
        if json_holds_nul(&bytes) {
            return Err(ApiError::bad_request(
                "strings in the body must not contain NUL (\\u0000)",
            ));
        }
        let request = Request::from_parts(parts, axum::body::Body::from(bytes));
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::rejected(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "send the body as JSON (Content-Type: application/json)",
                ),
                JsonRejection::BytesRejection(bytes) => ApiError::rejected(
                    bytes.status(),
                    format!("cannot read the request body: {}", bytes.body_text()),
                ),
                // The documented contract: malformed JSON and values that do not fit are 400.
                other => ApiError::bad_request(format!("invalid JSON body: {}", other.body_text())),
            }),
        }
    }
}

/// Query parameters whose rejections are API errors (400).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(percent_encodes_nul) {
            return Err(ApiError::bad_request(
                "query parameters must not contain NUL (%00)",
            ));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::bad_request(format!("invalid query: {}", rejection.body_text()))
            })
    }
}

/// Path parameters whose rejections are API errors: a segment that is not UTF-8 after
/// percent-decoding (`%ff%fe`) is a 400 with the JSON body, not axum's text.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if percent_encodes_nul(parts.uri.path()) {
            return Err(ApiError::bad_request(
                "path segments must not contain NUL (%00)",
            ));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection: PathRejection| {
                ApiError::rejected(
                    rejection.status(),
                    format!("invalid path: {}", rejection.body_text()),
                )
            })
    }
}

/// Whether JSON text holds a `\u0000` escape (raw control bytes are not valid JSON, so this is
/// the only way a NUL gets in): a `\u0000` whose backslash is not itself escaped.
fn json_holds_nul(bytes: &[u8]) -> bool {
    let mut backslashes = 0usize;
    for (index, &byte) in bytes.iter().enumerate() {
        if byte == b'\\' {
            backslashes += 1;
            continue;
        }
        if byte == b'u'
            && backslashes % 2 == 1
            && bytes.get(index + 1..index + 5) == Some(&b"0000"[..])
        {
            return true;
        }
        backslashes = 0;
    }
    false
}

/// Whether a raw (still percent-encoded) path or query decodes to a NUL somewhere.
fn percent_encodes_nul(raw: &str) -> bool {
    raw.as_bytes().windows(3).any(|w| w == b"%00")
}

/// The verified principal, as an extractor whose absence is a JSON 401 (authentication puts it
/// there; a route mounted without it fails closed).
fn principal_of(parts: &Parts) -> Result<&Principal, ApiError> {
    parts.extensions.get::<Principal>().ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the request carries no verified identity",
        )
    })
}

/// The caller's verified principal.
#[derive(Debug)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        principal_of(parts).cloned().map(Caller)
    }
}

/// The acting principal plus where the request came from.
#[derive(Debug)]
pub struct Acting(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Acting {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let principal = principal_of(parts)?;
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
            principal: principal.subject.clone(),
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
    responses((status = 200, body = WhoAmI)))]
async fn whoami(Caller(principal): Caller) -> Json<WhoAmI> {
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
    /// Only approvals in this state.
    #[param(schema_with = schema::approval_status)]
    pub status: Option<String>,
    /// How many, newest first: 1–500, default 50.
    #[param(schema_with = schema::approvals_limit)]
    #[serde(default, deserialize_with = "integral::optional")]
    pub limit: Option<u32>,
}

/// A list of approvals.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalList {
    /// Newest first.
    pub approvals: Vec<ApprovalView>,
}

/// `approve` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Why; recorded in the audit log. 1 to 1024 characters, not all blank.
    #[schema(schema_with = schema::reason)]
    pub reason: String,
    /// Approve-and-learn: also mint a waiver for this exact command, elevation, caller and end
    /// user, for this many seconds (60–604800).
    #[schema(schema_with = schema::learn_ttl)]
    #[serde(default, deserialize_with = "integral::optional")]
    pub learn_ttl_seconds: Option<u64>,
}

/// `deny` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DenyBody {
    /// Why; recorded in the audit log. 1 to 1024 characters, not all blank.
    #[schema(schema_with = schema::reason)]
    pub reason: String,
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

pub(crate) fn limit(
    value: Option<u32>,
    (default, range): (u32, RangeInclusive<u32>),
) -> Result<u32, ApiError> {
    match value {
        None => Ok(default),
        Some(n) if range.contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(format!(
            "limit must be between {} and {}",
            range.start(),
            range.end()
        ))),
    }
}

/// The schema of a `limit` parameter: an integer in its range, with its default.
pub(crate) fn limit_schema(limit: (u32, RangeInclusive<u32>)) -> Object {
    schema::limit(limit)
}

/// A reason as the API takes it: the one limit every reason shares.
fn reason<'a>(what: &str, text: &'a str) -> Result<&'a str, ApiError> {
    meho_approvals::check_reason(what, text).map_err(ApiError::from)
}

#[utoipa::path(get, path = "/api/v1/approvals", tag = "approvals", params(ApprovalQuery),
    responses((status = 200, body = ApprovalList)))]
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
    let limit = limit(query.limit, APPROVALS_LIMIT)?;
    let governance = &state.context.governance();
    let rows = governance
        .approvals
        .list(&actor.tenant, status, limit)
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
    responses((status = 200, body = ApprovalView), (status = 404, description = "no such approval in your tenant", body = ErrorBody)))]
async fn get_approval(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
) -> Result<Json<ApprovalView>, ApiError> {
    let governance = &state.context.governance();
    let approval = governance.approvals.get(&actor.tenant, &id).await?;
    Ok(Json(view(&approval, &governance.console_url(&id))))
}

async fn decide(
    state: &McpState,
    actor: &Actor,
    id: &str,
    approve: bool,
    reason_text: &str,
    learn_ttl_seconds: Option<u64>,
) -> Result<Json<DecidedApproval>, ApiError> {
    let reason = reason("a decision", reason_text)?;
    let learn = match learn_ttl_seconds {
        None => None,
        Some(secs) if TTL_SECONDS.contains(&secs) => Some(Duration::from_secs(secs)),
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "learn_ttl_seconds must be between {} and {}",
                TTL_SECONDS.start(),
                TTL_SECONDS.end()
            )));
        }
    };
    let governance = &state.context.governance();
    let (approval, waiver) = governance.decide(actor, id, approve, reason, learn).await?;
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
    responses((status = 200, body = DecidedApproval),
        (status = 403, description = "four-eyes violation (`four_eyes`)", body = ErrorBody),
        (status = 404, description = "no such approval in your tenant", body = ErrorBody),
        (status = 409, description = "no longer pending (`wrong_state`)", body = ErrorBody)))]
async fn approve(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
    Body(body): Body<DecisionBody>,
) -> Result<Json<DecidedApproval>, ApiError> {
    decide(
        &state,
        &actor,
        &id,
        true,
        &body.reason,
        body.learn_ttl_seconds,
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/approvals/{id}/deny", tag = "approvals",
    params(("id" = String, Path, description = "approval id")), request_body = DenyBody,
    responses((status = 200, body = DecidedApproval),
        (status = 403, description = "four-eyes violation (`four_eyes`)", body = ErrorBody),
        (status = 404, description = "no such approval in your tenant", body = ErrorBody),
        (status = 409, description = "no longer pending (`wrong_state`)", body = ErrorBody)))]
async fn deny(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
    Body(body): Body<DenyBody>,
) -> Result<Json<DecidedApproval>, ApiError> {
    decide(&state, &actor, &id, false, &body.reason, None).await
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
    /// The tier of what it allows.
    #[schema(schema_with = schema::tier)]
    pub tier: meho_core::Tier,
    /// Lifetime, 60–604800 seconds.
    #[schema(schema_with = schema::grant_ttl)]
    #[serde(deserialize_with = "integral::required")]
    pub ttl_seconds: u64,
    /// Why; recorded in the audit log. 1 to 1024 characters, not all blank.
    #[schema(schema_with = schema::reason)]
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
    #[schema(schema_with = schema::tier)]
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
    /// On create only: what the pattern check warned about (an unanchored pattern, a path
    /// that can climb out of its directory, a program left free to take a dangerous option).
    /// Absent when there is nothing to say.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
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
        warnings: grant.warnings.clone(),
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
    /// How many, newest first: 1–500, default 100.
    #[param(schema_with = schema::grants_limit)]
    #[serde(default, deserialize_with = "integral::optional")]
    pub limit: Option<u32>,
}

#[utoipa::path(post, path = "/api/v1/grants", tag = "grants", request_body = NewGrantBody,
    responses((status = 201, body = GrantView),
        (status = 403, description = "the role may not create grants (`forbidden`)", body = ErrorBody),
        (status = 404, description = "no such target in your tenant", body = ErrorBody),
        (status = 409, description = "the baseline has no allowlist (`grant_needs_allowlist`)", body = ErrorBody)))]
async fn create_grant(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Body(body): Body<NewGrantBody>,
) -> Result<(StatusCode, Json<GrantView>), ApiError> {
    // What the document constrains is checked before the target is looked up, so a request it
    // calls valid is never refused as malformed and an invalid one never passes as a 404.
    reason("a grant", &body.reason)?;
    if !TTL_SECONDS.contains(&body.ttl_seconds) {
        return Err(ApiError::bad_request(format!(
            "ttl_seconds must be between {} and {}",
            TTL_SECONDS.start(),
            TTL_SECONDS.end()
        )));
    }
    let grant = state
        .context
        .governance()
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
    responses((status = 200, body = GrantList)))]
async fn list_grants(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Query(query): Query<GrantQuery>,
) -> Result<Json<GrantList>, ApiError> {
    let rows = state
        .context
        .governance()
        .grants
        .list(
            &actor.tenant,
            query.target.as_deref(),
            query.all,
            limit(query.limit, GRANTS_LIMIT)?,
        )
        .await?;
    Ok(Json(GrantList {
        grants: rows.iter().map(grant_view).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/grants/{id}", tag = "grants",
    params(("id" = String, Path, description = "grant id")),
    responses((status = 200, body = GrantView), (status = 404, description = "no such grant in your tenant", body = ErrorBody)))]
async fn get_grant(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    let grant = state
        .context
        .governance()
        .grants
        .get(&actor.tenant, &id)
        .await?;
    Ok(Json(grant_view(&grant)))
}

#[utoipa::path(delete, path = "/api/v1/grants/{id}", tag = "grants",
    params(("id" = String, Path, description = "grant id")),
    responses((status = 200, description = "the grant, revoked (it stays readable)", body = GrantView),
        (status = 403, description = "the role may not revoke grants (`forbidden`)", body = ErrorBody),
        (status = 404, description = "no such grant in your tenant", body = ErrorBody),
        (status = 409, description = "already revoked (`wrong_state`)", body = ErrorBody)))]
async fn revoke_grant(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    let grant = state.context.governance().revoke_grant(&actor, &id).await?;
    Ok(Json(grant_view(&grant)))
}

// --- freezes -----------------------------------------------------------------------------------

/// `POST /api/v1/freezes` body. Its schema is written out ([`schema::new_freeze`]): what `value`
/// may be depends on `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFreezeBody {
    /// `principal`, `session` or `serial`.
    pub kind: String,
    /// The principal, session id, or certificate serial (decimal).
    pub value: String,
    /// Why.
    pub reason: String,
}

impl utoipa::PartialSchema for NewFreezeBody {
    fn schema() -> RefOr<Schema> {
        schema::new_freeze()
    }
}

impl ToSchema for NewFreezeBody {}

/// The body of `POST /api/v1/freezes/{id}/lift`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiftBody {
    /// Why it is lifted; recorded in the audit log. At most 1024 characters; blank or absent is
    /// no reason.
    #[schema(schema_with = schema::optional_reason)]
    pub reason: Option<String>,
}

/// A freeze.
#[derive(Debug, Serialize, ToSchema)]
pub struct FreezeView {
    /// `frz-…`.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// What is frozen.
    #[schema(schema_with = schema::freeze_kind)]
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
    /// How many, newest first: 1–500, default 100.
    #[param(schema_with = schema::freezes_limit)]
    #[serde(default, deserialize_with = "integral::optional")]
    pub limit: Option<u32>,
}

/// `DELETE /api/v1/freezes/{id}` query (deprecated: the reason goes in the body of
/// `POST /api/v1/freezes/{id}/lift`).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LiftQuery {
    /// Why it is lifted; the same limit as every reason.
    #[param(schema_with = schema::optional_reason)]
    pub reason: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/freezes", tag = "freezes", request_body = NewFreezeBody,
    responses((status = 201, body = FreezeView),
        (status = 403, description = "the role may not freeze (`forbidden`)", body = ErrorBody)))]
async fn create_freeze(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Body(body): Body<NewFreezeBody>,
) -> Result<(StatusCode, Json<FreezeView>), ApiError> {
    let kind: FreezeKind = body.kind.parse().map_err(ApiError::bad_request)?;
    reason("a freeze", &body.reason)?;
    let (freeze, closed) = state
        .context
        .governance()
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
    responses((status = 200, body = FreezeList)))]
async fn list_freezes(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Query(query): Query<FreezeQuery>,
) -> Result<Json<FreezeList>, ApiError> {
    let rows = state
        .context
        .governance()
        .freezes
        .list(&actor.tenant, query.all, limit(query.limit, FREEZES_LIMIT)?)
        .await?;
    Ok(Json(FreezeList {
        freezes: rows.iter().map(|f| freeze_view(f, None)).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/freezes/{id}", tag = "freezes",
    params(("id" = String, Path, description = "freeze id")),
    responses((status = 200, body = FreezeView), (status = 404, description = "no such freeze in your tenant", body = ErrorBody)))]
async fn get_freeze(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
) -> Result<Json<FreezeView>, ApiError> {
    let freeze = state
        .context
        .governance()
        .freezes
        .get(&actor.tenant, &id)
        .await?;
    Ok(Json(freeze_view(&freeze, None)))
}

#[utoipa::path(post, path = "/api/v1/freezes/{id}/lift", tag = "freezes",
    params(("id" = String, Path, description = "freeze id")), request_body = LiftBody,
    responses((status = 200, description = "the freeze, lifted (it stays readable)", body = FreezeView),
        (status = 403, description = "the role may not lift freezes (`forbidden`)", body = ErrorBody),
        (status = 404, description = "no such freeze in your tenant", body = ErrorBody),
        (status = 409, description = "already lifted (`wrong_state`)", body = ErrorBody)))]
async fn lift_freeze(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
    Body(body): Body<LiftBody>,
) -> Result<Json<FreezeView>, ApiError> {
    lift(&state, &actor, &id, body.reason.as_deref()).await
}

/// The lift before the reason moved into the body; kept for older clients. Reasons in a query
/// string end up in access logs and hit header limits, hence the body form.
#[utoipa::path(delete, path = "/api/v1/freezes/{id}", tag = "freezes",
    params(("id" = String, Path, description = "freeze id"), LiftQuery),
    responses((status = 200, description = "the freeze, lifted (it stays readable)", body = FreezeView),
        (status = 403, description = "the role may not lift freezes (`forbidden`)", body = ErrorBody),
        (status = 404, description = "no such freeze in your tenant", body = ErrorBody),
        (status = 409, description = "already lifted (`wrong_state`)", body = ErrorBody)))]
async fn lift_freeze_by_delete(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
    Query(query): Query<LiftQuery>,
) -> Result<Json<FreezeView>, ApiError> {
    lift(&state, &actor, &id, query.reason.as_deref()).await
}

async fn lift(
    state: &McpState,
    actor: &Actor,
    id: &str,
    reason: Option<&str>,
) -> Result<Json<FreezeView>, ApiError> {
    let reason = meho_approvals::check_optional_reason("lifting a freeze", reason)?;
    let freeze = state
        .context
        .governance()
        .unfreeze(actor, id, reason)
        .await?;
    Ok(Json(freeze_view(&freeze, None)))
}

// --- audit -------------------------------------------------------------------------------------

/// `GET /api/v1/audit` query: the audit log's [`Filter`] (the tenant comes from the token) and
/// the page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Which records.
    #[serde(flatten)]
    pub filter: Filter,
    /// Which page of them.
    #[serde(flatten)]
    pub page: AuditPage,
}

/// The filter's parameters, then the page's (utoipa's `IntoParams` cannot flatten).
impl IntoParams for AuditQuery {
    fn into_params(
        parameter_in_provider: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        let mut parameters = Filter::into_params(&parameter_in_provider);
        parameters.extend(AuditPage::into_params(parameter_in_provider));
        parameters
    }
}

/// The page of `GET /api/v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditPage {
    /// How many, newest first: 1–1000, default 100.
    #[param(schema_with = schema::audit_limit)]
    #[serde(default, deserialize_with = "integral::optional")]
    pub limit: Option<u32>,
    /// The cursor (`next_before` of the previous page).
    #[serde(default, deserialize_with = "integral::optional")]
    pub before: Option<i64>,
}

/// One audit record: the stored record with its time in RFC 3339.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordView {
    /// The record.
    #[serde(flatten)]
    pub record: Record,
    /// RFC 3339.
    pub time: String,
}

pub(crate) fn record_view(record: Record) -> RecordView {
    RecordView {
        time: rfc3339(record.ts),
        record,
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

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = RecordPage)))]
async fn query_audit(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Query(query): Query<AuditQuery>,
) -> Result<Json<RecordPage>, ApiError> {
    let AuditQuery { mut filter, page } = query;
    if let Some(kind) = &filter.kind
        && !meho_audit::RecordKind::ALL
            .iter()
            .any(|k| k.as_str() == kind)
    {
        return Err(ApiError::bad_request(format!(
            "unknown record kind `{kind}`"
        )));
    }
    let limit = limit(page.limit, AUDIT_LIMIT)?;
    filter.tenant = Some(actor.tenant.clone());
    let records = state
        .context
        .audit()
        .query(
            &filter,
            Page::Newest {
                before: page.before,
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
    responses((status = 200, body = RecordView), (status = 404, description = "no such record in your tenant", body = ErrorBody)))]
async fn get_record(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
) -> Result<Json<RecordView>, ApiError> {
    let record = state
        .context
        .audit()
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
    responses((status = 200, body = VerifyStatus)))]
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
        state.context.audit().store().as_ref(),
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
    info(title = "meho API", description = "meho's REST API: approvals, grants, freezes, the audit log and the activity folded from it. See docs/api.md."),
    paths(
        whoami, list_approvals, get_approval, approve, deny, create_grant, list_grants, get_grant,
        revoke_grant, create_freeze, list_freezes, get_freeze, lift_freeze, lift_freeze_by_delete,
        query_audit, get_record, verify_audit, crate::activity::list_activity,
        crate::activity::activity_summary, crate::activity::get_call,
        crate::recordings::get_recording
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth, &Contract),
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

/// What every operation shares, added in one place so no operation can miss it: the errors any
/// request can meet (a malformed path or query, a missing or bad token, an unreachable issuer, a
/// failing store), the body errors of operations that take one, the enums of views declared
/// outside this module, the deprecation of the query-string lift, and that no string a request
/// sends may hold NUL (the extractors refuse it: PostgreSQL text cannot hold it).
struct Contract;

impl utoipa::Modify for Contract {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::Deprecated;
        let mut bodies = std::collections::BTreeSet::new();
        for (path, item) in &mut openapi.paths.paths {
            let deprecated_delete = path == "/api/v1/freezes/{id}";
            let operations = [
                (&mut item.get, false),
                (&mut item.post, false),
                (&mut item.delete, deprecated_delete),
            ];
            for (operation, deprecated) in operations {
                let Some(operation) = operation.as_mut() else {
                    continue;
                };
                if deprecated {
                    operation.deprecated = Some(Deprecated::True);
                }
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let Some(RefOr::T(schema)) = parameter.schema.as_mut() {
                        schema::forbid_nul(schema);
                    }
                }
                for content in operation
                    .request_body
                    .iter()
                    .flat_map(|body| body.content.values())
                {
                    if let Some(RefOr::Ref(reference)) = &content.schema
                        && let Some(name) = reference.ref_location.rsplit('/').next()
                    {
                        bodies.insert(name.to_owned());
                    }
                }
                let responses = &mut operation.responses.responses;
                // The one 401 the resource server gives, whatever an annotation said.
                responses.insert("401".to_owned(), RefOr::T(unauthorized_response()));
                let mut add = |status: &str, response: utoipa::openapi::Response| {
                    responses
                        .entry(status.to_owned())
                        .or_insert(RefOr::T(response));
                };
                add(
                    "400",
                    error_response(
                        "malformed path, query or body, or a value out of range (`bad_request`)",
                    ),
                );
                add(
                    "500",
                    error_response(
                        "the store or the audit log failed; nothing was changed (`internal`)",
                    ),
                );
                add(
                    "503",
                    error_response(
                        "the token issuer cannot be reached to check the token (`temporarily_unavailable`)",
                    ),
                );
                if operation.request_body.is_some() {
                    add(
                        "413",
                        error_response("the body is over 1 MiB (`payload_too_large`)"),
                    );
                    add(
                        "415",
                        error_response(
                            "the body is not sent as `application/json` (`unsupported_media_type`)",
                        ),
                    );
                }
            }
        }
        if let Some(components) = openapi.components.as_mut() {
            for name in &bodies {
                if let Some(RefOr::T(body)) = components.schemas.get_mut(name) {
                    schema::forbid_nul(body);
                }
            }
        }
        if let Some(components) = openapi.components.as_mut()
            && let Some(RefOr::T(Schema::Object(approval))) =
                components.schemas.get_mut("ApprovalView")
        {
            approval
                .properties
                .insert("status".to_owned(), schema::approval_status().into());
            approval
                .properties
                .insert("tier".to_owned(), schema::tier().into());
        }
    }
}

/// An error answer with the `{error, message}` body.
fn error_response(description: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, ResponseBuilder, schema::Ref};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// 401, with the challenge header every refusal of the resource server carries.
fn unauthorized_response() -> utoipa::openapi::Response {
    use utoipa::openapi::header::HeaderBuilder;
    let mut response = error_response(
        "no bearer token, or one that is not valid for this server (`missing_token`, `invalid_token`, …)",
    );
    response.headers.insert(
        "WWW-Authenticate".to_owned(),
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::String))
            .description(Some("`Bearer resource_metadata=\"…\"`, with `error` and `error_description` when a token was sent"))
            .build(),
    );
    response
}

/// Integers as JSON Schema counts them: `600.0` is the integer 600, so a field the document
/// calls an integer takes any number without a fractional part (and, in a query string, its
/// text), within the field's range.
pub(crate) mod integral {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{Deserializer, Error, Visitor};

    struct Integral<T>(PhantomData<T>);

    impl<T: TryFrom<i128>> Visitor<'_> for Integral<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer")
        }

        fn visit_i128<E: Error>(self, v: i128) -> Result<T, E> {
            T::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<T, E> {
            self.visit_i128(i128::from(v))
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<T, E> {
            self.visit_i128(i128::from(v))
        }

        fn visit_f64<E: Error>(self, v: f64) -> Result<T, E> {
            // Beyond 2^100 nothing fits any field; the bound keeps the cast exact.
            if v.is_finite() && v.fract() == 0.0 && v.abs() < 1.0e30 {
                self.visit_i128(v as i128)
            } else {
                Err(E::custom(format!("{v} is not an integer")))
            }
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<T, E> {
            if let Ok(n) = v.parse::<i128>() {
                return self.visit_i128(n);
            }
            match v.parse::<f64>() {
                Ok(f) if !v.trim().is_empty() => self.visit_f64(f),
                _ => Err(E::custom(format!("`{v}` is not an integer"))),
            }
        }
    }

    struct Optional<T>(PhantomData<T>);

    impl<'de, T: TryFrom<i128>> Visitor<'de> for Optional<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer or null")
        }

        fn visit_none<E: Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_unit<E: Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            required(d).map(Some)
        }
    }

    pub(crate) fn required<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
        d: D,
    ) -> Result<T, D::Error> {
        d.deserialize_any(Integral(PhantomData))
    }

    pub(crate) fn optional<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        d.deserialize_option(Optional(PhantomData))
    }
}

/// The schemas of constrained values, built from the constants the handlers check against.
mod schema {
    use meho_approvals::{FreezeKind, Status};
    use meho_core::Tier;
    use utoipa::openapi::schema::{AdditionalProperties, OneOfBuilder, SchemaType};

    use super::*;

    fn enumeration<'a>(names: impl IntoIterator<Item = &'a str>) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names.into_iter().collect::<Vec<_>>()))
    }

    pub(super) fn approval_status() -> Object {
        enumeration(Status::ALL.map(Status::as_str)).build()
    }

    pub(super) fn tier() -> Object {
        enumeration([Tier::Read, Tier::Write, Tier::Destructive].map(Tier::as_str)).build()
    }

    pub(super) fn freeze_kind() -> Object {
        enumeration(FreezeKind::ALL.map(FreezeKind::as_str)).build()
    }

    pub(super) fn limit((default, range): (u32, RangeInclusive<u32>)) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(*range.start()))
            .maximum(Some(*range.end()))
            .default(Some(json!(default)))
            .build()
    }

    pub(super) fn approvals_limit() -> Object {
        limit(APPROVALS_LIMIT)
    }

    pub(super) fn grants_limit() -> Object {
        limit(GRANTS_LIMIT)
    }

    pub(super) fn freezes_limit() -> Object {
        limit(FREEZES_LIMIT)
    }

    pub(super) fn audit_limit() -> Object {
        limit(AUDIT_LIMIT)
    }

    fn seconds(nullable: bool) -> Object {
        let kind = if nullable {
            SchemaType::from_iter([Type::Integer, Type::Null])
        } else {
            SchemaType::from(Type::Integer)
        };
        ObjectBuilder::new()
            .schema_type(kind)
            .minimum(Some(*TTL_SECONDS.start()))
            .maximum(Some(*TTL_SECONDS.end()))
            .build()
    }

    pub(super) fn grant_ttl() -> Object {
        seconds(false)
    }

    pub(super) fn learn_ttl() -> Object {
        seconds(true)
    }

    /// A string with no NUL in it: what every string of a request must be.
    pub(super) const NO_NUL: &str = "^[^\\u0000]*$";

    /// Required text: 1 to `max` characters as sent, not all blank (what the store trims), no
    /// NUL.
    fn text(max: usize) -> ObjectBuilder {
        // The not-blank class (`[^<blanks>]`) with NUL added to what it excludes.
        let not_blank = meho_approvals::not_blank_pattern();
        let not_blank_nor_nul = not_blank
            .strip_prefix("[^")
            .map_or_else(|| not_blank.clone(), |rest| format!("[^\\u0000{rest}"));
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(max))
            .pattern(Some(format!("^[^\\u0000]*{not_blank_nor_nul}[^\\u0000]*$")))
    }

    /// Adds [`NO_NUL`] to every string of `schema` (properties and variants included) that names
    /// no values and no pattern of its own (the patterns here exclude NUL already).
    pub(super) fn forbid_nul(schema: &mut Schema) {
        let is_string = |kind: &SchemaType| match kind {
            SchemaType::Type(Type::String) => true,
            SchemaType::Array(kinds) => kinds.contains(&Type::String),
            _ => false,
        };
        match schema {
            Schema::Object(object) => {
                if is_string(&object.schema_type)
                    && object.enum_values.is_none()
                    && object.pattern.is_none()
                {
                    object.pattern = Some(NO_NUL.to_owned());
                }
                for property in object.properties.values_mut() {
                    if let RefOr::T(property) = property {
                        forbid_nul(property);
                    }
                }
            }
            Schema::OneOf(utoipa::openapi::schema::OneOf { items, .. })
            | Schema::AllOf(utoipa::openapi::schema::AllOf { items, .. })
            | Schema::AnyOf(utoipa::openapi::schema::AnyOf { items, .. }) => {
                for item in items {
                    if let RefOr::T(item) = item {
                        forbid_nul(item);
                    }
                }
            }
            Schema::Array(array) => {
                if let utoipa::openapi::schema::ArrayItems::RefOrSchema(item) = &mut array.items
                    && let RefOr::T(item) = item.as_mut()
                {
                    forbid_nul(item);
                }
            }
            _ => {}
        }
    }

    pub(super) fn reason() -> Object {
        text(MAX_REASON_CHARS).build()
    }

    /// An optional reason: blank or absent is none, and a given one obeys the same limit.
    pub(super) fn optional_reason() -> Object {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .max_length(Some(MAX_REASON_CHARS))
            .build()
    }

    /// `POST /api/v1/freezes`: one variant per kind, since a serial is a number and the others
    /// are names.
    pub(super) fn new_freeze() -> RefOr<Schema> {
        let variant = |kind: FreezeKind, value: Object, about: &str| {
            ObjectBuilder::new()
                .description(Some(about))
                .property("kind", enumeration([kind.as_str()]))
                .required("kind")
                .property("value", value)
                .required("value")
                .property("reason", reason())
                .required("reason")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
                .build()
        };
        let name = || text(MAX_FREEZE_VALUE_CHARS).build();
        let serial = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!("^[0-9]{{1,{MAX_SERIAL_DIGITS}}}$")))
            .build();
        OneOfBuilder::new()
            .item(variant(
                FreezeKind::Principal,
                name(),
                "every call of one principal",
            ))
            .item(variant(FreezeKind::Session, name(), "one SSH session"))
            .item(variant(
                FreezeKind::Serial,
                serial,
                "one credential, by its certificate serial (decimal)",
            ))
            .into()
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
        .route(
            "/api/v1/freezes/{id}",
            get(get_freeze).delete(lift_freeze_by_delete),
        )
        .route("/api/v1/freezes/{id}/lift", post(lift_freeze))
        .route("/api/v1/audit", get(query_audit))
        .route("/api/v1/audit/verify", get(verify_audit))
        .route("/api/v1/audit/{id}", get(get_record))
        .route("/api/v1/activity", get(crate::activity::list_activity))
        .route(
            "/api/v1/activity/summary",
            get(crate::activity::activity_summary),
        )
        .route("/api/v1/calls/{id}", get(crate::activity::get_call))
        .route(
            "/api/v1/recordings/{session_id}",
            get(crate::recordings::get_recording),
        )
}

/// The routes anyone may read.
pub(crate) fn public() -> Router<Arc<McpState>> {
    Router::new().route("/api/v1/openapi.json", get(openapi_json))
}
