//! `GET /api/v1/recordings/{session_id}`: a closed SSH session's recording (asciicast v2), for
//! the console's call page and operators.
//!
//! Invariants:
//! - The session must be the caller's tenant's: its closing record (`ssh_session_close`) is looked
//!   up in the token's tenant, and a session of another tenant answers like a missing one (404).
//! - What is served is exactly what the audit log vouches for: the file is read once, its sha256
//!   compared with the `recording_sha256` of the closing record, and only a match is served
//!   (409 `recording_mismatch` otherwise, fail closed). A session still open has no hash yet
//!   (409 `recording_incomplete`).
//! - A recording holds a terminal's whole output, so reading it takes the `operator` or
//!   `tenant_admin` role, like grants and freezes.
//! - The session id is a path segment of the recording directory: only `[A-Za-z0-9-]` (the
//!   broker's UUIDs) is accepted, so no id can name another file.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use meho_audit::{Filter, Page};
use meho_config::Role;
use serde_json::Value;

use crate::McpState;
use crate::api::{Acting, ApiError, ErrorBody, Path};

/// Largest recording served; a longer one is read from `[ssh] recording_dir` on the host.
pub const MAX_RECORDING_BYTES: u64 = 64 * 1024 * 1024;

fn valid_session_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn conflict(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

/// The recording of a closed session of the caller's tenant.
#[utoipa::path(get, path = "/api/v1/recordings/{session_id}", tag = "audit",
    params(("session_id" = String, Path, description = "the session id (`ssh_session_open`'s `session_id`)",
        pattern = "^[A-Za-z0-9-]{1,64}$")),
    responses(
        (status = 200, description = "the asciicast v2 file, exactly as its closing record's `recording_sha256` says", content_type = "application/x-asciicast", body = String),
        (status = 400, description = "not a session id", body = ErrorBody),
        (status = 403, description = "the role may not read recordings (`forbidden`)", body = ErrorBody),
        (status = 404, description = "no such session, or no recording, in your tenant", body = ErrorBody),
        (status = 409, description = "the session is still open (`recording_incomplete`), or the file is not the recorded one (`recording_mismatch`)", body = ErrorBody),
        (status = 413, description = "larger than the API serves (`recording_too_large`)", body = ErrorBody)))]
pub(crate) async fn get_recording(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(session_id): Path<String>,
) -> Result<Response, ApiError> {
    if !valid_session_id(&session_id) {
        return Err(ApiError::bad_request(format!(
            "`{}` is not a session id",
            meho_core::display::escape(&session_id)
        )));
    }
    if actor.role == Role::ReadOnly {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "role `read_only` may not read session recordings; it takes operator or tenant_admin",
        ));
    }
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no recorded session `{session_id}` in your tenant"),
        )
    };
    let Some(directory) = state.recordings.clone() else {
        return Err(missing());
    };
    let records = state
        .context
        .audit()
        .query(
            &Filter {
                tenant: Some(actor.tenant.clone()),
                session_id: Some(session_id.clone()),
                ..Filter::default()
            },
            Page::Newest {
                before: None,
                limit: 1000,
            },
        )
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    if records.is_empty() {
        return Err(missing());
    }
    let closed = records
        .iter()
        .find(|r| r.kind == "outcome" && r.action.as_deref() == Some("ssh_session_close"));
    let Some(closed) = closed else {
        return Err(conflict(
            "recording_incomplete",
            format!("session `{session_id}` is still open; its recording is served once it closes"),
        ));
    };
    let body: Value = serde_json::from_str(&closed.body).unwrap_or(Value::Null);
    let Some(expected) = body
        .get("recording_sha256")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(missing());
    };
    let path: PathBuf = directory.join(format!("{session_id}.cast"));
    let shown = path.display().to_string();
    let read = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        use std::io::Read as _;
        let file = std::fs::File::open(&path).map_err(|err| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("the recording of session `{session_id}` cannot be read: {err}"),
            )
        })?;
        let mut bytes = Vec::new();
        file.take(MAX_RECORDING_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?;
        Ok(bytes)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    if read.len() as u64 > MAX_RECORDING_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "recording_too_large",
            format!(
                "the recording is over {MAX_RECORDING_BYTES} bytes; read it on the server: {shown}"
            ),
        ));
    }
    let actual = meho_audit::sha256_hex(&read);
    if actual != expected {
        tracing::error!(file = %shown, %expected, %actual, "a session recording does not match its audit record");
        return Err(conflict(
            "recording_mismatch",
            format!(
                "the recording file's sha256 is {actual}, not the {expected} its closing record holds; it was changed after the session closed"
            ),
        ));
    }
    let mut response = (StatusCode::OK, Body::from(read)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-asciicast"),
    );
    if let Ok(disposition) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}.cast\"",
        closed_id(closed)
    )) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    if let Ok(hash) = HeaderValue::from_str(&expected) {
        headers.insert("x-meho-recording-sha256", hash);
    }
    Ok(response)
}

/// The file name offered for download: the session id (already checked to be `[A-Za-z0-9-]`).
fn closed_id(record: &meho_audit::Record) -> &str {
    record.session_id.as_deref().unwrap_or("recording")
}
