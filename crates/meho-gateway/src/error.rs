//! Why a call produced no result: one code per kind of failure, documented in one place.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The stable, machine-readable code of a [`ToolError`], for a tool call and for a human's
/// governance request alike. Its snake_case name is a contract: MCP clients read it as
/// `structuredContent.error`, the REST API as `error`, the CLI prints it; `docs/pipeline.md` lists
/// every code.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The arguments do not fit the tool's schema, or a value is malformed. Nothing was decided.
    InvalidArguments,
    /// No tool by that name.
    UnknownTool,
    /// Policy refused the call (or the caller's role may not act at its tier).
    Denied,
    /// Policy requires a human's approval and this frontend cannot hold the call.
    NeedsApproval,
    /// An approval was presented that cannot authorize this call (another call's, used, …).
    ApprovalRefused,
    /// The held call was denied by a human.
    ApprovalDenied,
    /// The held call was not decided, or not collected, in time.
    ApprovalExpired,
    /// The approved call already ran once.
    ApprovalConsumed,
    /// The caller may not use the target (allowed callers, groups, tenant).
    Forbidden,
    /// The principal or session is frozen.
    Frozen,
    /// No target by that name for this caller.
    UnknownTarget,
    /// The target presented a key other than the pinned one.
    HostKeyMismatch,
    /// The target refused the minted credential.
    AuthRefused,
    /// The target (or the signer) could not be reached.
    Unreachable,
    /// The call was authorized and started, but failed on the target.
    ExecutionFailed,
    /// The session this call ran in was closed (its host changed, its shell failed, …).
    SessionEnded,
    /// A cap was hit (sessions, transfer size).
    Limit,
    /// The object named (a session, an approval) does not exist for this caller.
    NotFound,
    /// meho itself failed (the audit log, the store, the signer). Nothing unaudited ran.
    Internal,
    /// A human's request (REST) is malformed: a blank reason, a learn request for a call that runs
    /// no command, …
    BadRequest,
    /// Four eyes: the requester may not decide their own call, or the role may not approve.
    FourEyes,
    /// The object is not in a state that allows it (an approval already decided, say).
    WrongState,
    /// A grant asked for on a target whose policy has no allowlist to widen.
    GrantNeedsAllowlist,
    /// meho's policy allowed the call, but the target's own authorization refused it (a
    /// Kubernetes ServiceAccount's RBAC): the message names the account and the target's reason.
    ForbiddenByCluster,
    /// The target refused the change because it conflicts with its current state (a field
    /// another manager owns, an object that changed meanwhile).
    Conflict,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 25] = [
        ErrorCode::InvalidArguments,
        ErrorCode::UnknownTool,
        ErrorCode::Denied,
        ErrorCode::NeedsApproval,
        ErrorCode::ApprovalRefused,
        ErrorCode::ApprovalDenied,
        ErrorCode::ApprovalExpired,
        ErrorCode::ApprovalConsumed,
        ErrorCode::Forbidden,
        ErrorCode::Frozen,
        ErrorCode::UnknownTarget,
        ErrorCode::HostKeyMismatch,
        ErrorCode::AuthRefused,
        ErrorCode::Unreachable,
        ErrorCode::ExecutionFailed,
        ErrorCode::SessionEnded,
        ErrorCode::Limit,
        ErrorCode::NotFound,
        ErrorCode::Internal,
        ErrorCode::BadRequest,
        ErrorCode::FourEyes,
        ErrorCode::WrongState,
        ErrorCode::GrantNeedsAllowlist,
        ErrorCode::ForbiddenByCluster,
        ErrorCode::Conflict,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArguments => "invalid_arguments",
            ErrorCode::UnknownTool => "unknown_tool",
            ErrorCode::Denied => "denied",
            ErrorCode::NeedsApproval => "needs_approval",
            ErrorCode::ApprovalRefused => "approval_refused",
            ErrorCode::ApprovalDenied => "approval_denied",
            ErrorCode::ApprovalExpired => "approval_expired",
            ErrorCode::ApprovalConsumed => "approval_consumed",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Frozen => "frozen",
            ErrorCode::UnknownTarget => "unknown_target",
            ErrorCode::HostKeyMismatch => "host_key_mismatch",
            ErrorCode::AuthRefused => "auth_refused",
            ErrorCode::Unreachable => "unreachable",
            ErrorCode::ExecutionFailed => "execution_failed",
            ErrorCode::SessionEnded => "session_ended",
            ErrorCode::Limit => "limit",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Internal => "internal",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::FourEyes => "four_eyes",
            ErrorCode::WrongState => "wrong_state",
            ErrorCode::GrantNeedsAllowlist => "grant_needs_allowlist",
            ErrorCode::ForbiddenByCluster => "forbidden_by_cluster",
            ErrorCode::Conflict => "conflict",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// A call (or a governance request) that did not produce a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[error("{code}: {message}")]
pub struct ToolError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// A sentence for the human or model.
    pub message: String,
    /// Extra structured detail (the decision of a denial, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

impl ToolError {
    /// An error with no detail.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ToolError {
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// Attaches structured detail.
    #[must_use]
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// `internal`: meho could not do its part.
    pub fn internal(message: impl Into<String>) -> Self {
        ToolError::new(ErrorCode::Internal, message)
    }

    /// `invalid_arguments`.
    pub fn invalid(message: impl Into<String>) -> Self {
        ToolError::new(ErrorCode::InvalidArguments, message)
    }
}

impl From<meho_approvals::ApprovalError> for ToolError {
    fn from(err: meho_approvals::ApprovalError) -> Self {
        use meho_approvals::ApprovalError as E;
        let code = match &err {
            E::NotFound(_) => ErrorCode::NotFound,
            E::FourEyes(_) => ErrorCode::FourEyes,
            E::WrongState { .. } | E::Conflict(_) => ErrorCode::WrongState,
            E::Invalid(_) | E::DifferentCall(_) => ErrorCode::BadRequest,
            E::Store(_) | E::Corrupt(_) => ErrorCode::Internal,
        };
        ToolError::new(code, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn every_code_serializes_as_its_wire_name_and_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::json!(code.as_str()))
            );
            assert!(seen.insert(code.as_str()), "{code} listed twice");
        }
    }
}
