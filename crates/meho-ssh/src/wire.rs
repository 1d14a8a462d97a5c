//! What travels between the broker and the signer: an intent and a public key in, a certificate
//! (or a refusal) out. These JSON shapes are the `/v1/sign` and `/v1/hosts` contract.

use meho_core::Decision;
use serde::{Deserialize, Serialize};

/// Which hop a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The host the call is about.
    #[default]
    Target,
    /// A jump host on the way: the certificate may only tunnel.
    Bastion,
}

/// What the certificate will be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// One command; the certificate carries it as `force-command`.
    #[default]
    Oneshot,
    /// A session: the certificate authenticates a connection that runs many commands, each
    /// re-decided (`dry_run`) before it is sent.
    Session,
    /// An SFTP transfer; the certificate is pinned to `internal-sftp`.
    File,
}

/// How a session runs commands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, Hash, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    /// A fresh exec channel per command; no state between commands.
    #[default]
    Exec,
    /// One `/bin/sh` kept open: state persists; stdout and stderr stay apart.
    Shell,
    /// Like shell, on a PTY: stdout and stderr merge.
    Pty,
}

impl SessionMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMode::Exec => "exec",
            SessionMode::Shell => "shell",
            SessionMode::Pty => "pty",
        }
    }
}

/// A direction of file transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOp {
    /// Upload.
    Put,
    /// Download.
    Get,
}

/// `POST /v1/sign`: what the broker asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// The host (by config name).
    pub host: String,
    /// Target or bastion.
    #[serde(default)]
    pub role: Role,
    /// One-shot, session or file.
    #[serde(default)]
    pub purpose: Purpose,
    /// The command (one-shot, or a session exec being preflighted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// For sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_mode: Option<SessionMode>,
    /// For file transfers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_op: Option<FileOp>,
    /// For file transfers: the remote path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The broker's ephemeral public key, an OpenSSH line. Absent for dry runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Requested lifetime; clamped to the host's `max_ttl_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u32>,
    /// Run under sudo.
    #[serde(default)]
    pub sudo: bool,
    /// Sudo target user (implies sudo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo_user: Option<String>,
    /// Ask for `permit-pty`.
    #[serde(default)]
    pub pty: bool,
    /// The agent (authenticated principal) the broker is calling for. An in-process signer
    /// takes it as the caller; a remote signer authorizes the broker's TLS identity and records
    /// this as asserted by the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The tenant the call is made in; a host of another tenant does not exist for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The human behind the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_user: Option<String>,
    /// The human's groups, when the frontend knows them (OIDC); `None` applies no group filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_user_groups: Option<Vec<String>>,
    /// The broker's id of the call this intent is part of; the signer's records carry it, so
    /// a credential or refusal is linked to the call's other records (asserted by the broker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Decide only; issue nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// The approval this call collects, when policy requires one: the signer checks that the
    /// approval is for exactly this call and consumes it once, as it authorizes the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalClaim>,
}

/// An approved call, as the broker presents it to the signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalClaim {
    /// The approval id.
    pub id: String,
    /// The tool the approval was for.
    pub tool: String,
    /// The canonical call arguments the approval is bound to (its `call_hash`).
    pub arguments: serde_json::Value,
}

/// `POST /v1/sign`: the answer. A refusal is an answer (`decision.allowed == false`, no
/// certificate), not an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignResponse {
    /// The decision, with the rule that produced it.
    pub decision: Decision,
    /// The OpenSSH certificate line, when one was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Its serial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<u64>,
    /// `sudo -n [-u USER]`, for sessions that run elevated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevation_prefix: Option<String>,
    /// Unix seconds the certificate expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_before: Option<u64>,
}

/// `GET /v1/hosts`: what a broker may know about a host. The policy (principal, source address,
/// allowed callers, sudo users, TTL ceiling, command policy) never leaves the signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostView {
    /// Config name.
    pub name: String,
    /// `host:port`.
    pub addr: String,
    /// Login user.
    pub user: String,
    /// Pinned host key line.
    pub host_key: String,
    /// The jump host, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump: Option<String>,
    /// Whether sudo may be asked for.
    pub allow_sudo: bool,
    /// Whether a PTY may be asked for.
    pub allow_pty: bool,
    /// Whether files may be transferred.
    pub allow_file_transfer: bool,
    /// Groups, for the broker's listing filter.
    pub groups: Vec<String>,
    /// The owning tenant.
    #[serde(default = "default_tenant")]
    pub tenant: String,
}

fn default_tenant() -> String {
    meho_config::DEFAULT_TENANT.to_owned()
}

/// `GET /v1/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsResponse {
    /// Hosts the caller may use.
    pub hosts: Vec<HostView>,
}

/// Any non-2xx answer of the signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable code: `forbidden`, `unknown_host`, `bad_request`, `internal`.
    pub code: String,
    /// A sentence for humans.
    pub error: String,
}
