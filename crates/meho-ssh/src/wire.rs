//! What travels between the broker and the signer: an intent and a public key in, a certificate
//! (or a refusal) out. These JSON shapes are the `/v1/sign` and `/v1/hosts` contract.

use meho_core::Tier;
use meho_policy::Decided;
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
    /// The target host, by config name (`host` on the wire).
    #[serde(rename = "host")]
    pub target: String,
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
    /// The principal the broker is calling for (`agent` on the wire). An in-process signer
    /// takes it as the caller; a remote signer authorizes the broker's TLS identity and records
    /// this as asserted by the broker.
    #[serde(default, rename = "agent", skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The tenant the call is made in; a host of another tenant does not exist for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The human behind the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_user: Option<String>,
    /// The human's groups, when the frontend knows them (OIDC); `None` applies no group filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_user_groups: Option<Vec<String>>,
    /// The session a session command runs in (its action names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// For an upload: the content's size and sha256 (its action names them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// The highest tier the caller's role may run: the signer refuses a call it rates above it
    /// (`tier_exceeded`) and issues nothing for it. `None` is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tier: Option<Tier>,
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

/// An approved call, as the broker presents it to the signer: the signer rebuilds the action
/// from the intent it is asked to sign, refuses a claim for any other action, and consumes the
/// approval only if its `call_hash` is the hash of exactly this call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalClaim {
    /// The approval id.
    pub id: String,
    /// The action the approval was given for.
    pub action: SshAction,
}

/// An upload's content, as its action binds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// Bytes.
    pub size: u64,
    /// sha256, lowercase hex.
    pub sha256: String,
}

/// What an SSH call does, typed: what the firewall decides, an approval binds to (its JSON, with
/// tenant, requester and host) and the signer constrains the certificate to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SshAction {
    /// One command under a certificate whose force-command is exactly it.
    Exec {
        /// The command line as the agent wrote it.
        command: String,
        /// Under `sudo -n`.
        sudo: bool,
        /// As this user (implies sudo).
        sudo_user: Option<String>,
        /// On a PTY.
        pty: bool,
        /// Requested certificate lifetime.
        ttl_seconds: Option<u32>,
    },
    /// Opening a session.
    SessionOpen {
        /// Exec, shell or pty.
        mode: SessionMode,
        /// Elevated.
        sudo: bool,
        /// Sudo target user.
        sudo_user: Option<String>,
        /// Requested certificate lifetime.
        ttl_seconds: Option<u32>,
    },
    /// One command in an open session.
    SessionExec {
        /// The session.
        session_id: String,
        /// Its mode.
        mode: SessionMode,
        /// The command line.
        command: String,
        /// Whether the session runs elevated.
        sudo: bool,
        /// Its sudo target user.
        sudo_user: Option<String>,
    },
    /// Closing a session.
    SessionClose {
        /// The session.
        session_id: String,
    },
    /// An SFTP upload.
    FilePut {
        /// Absolute remote path.
        path: String,
        /// Bytes.
        size: u64,
        /// sha256 of the content, lowercase hex.
        sha256: String,
    },
    /// An SFTP download.
    FileGet {
        /// Absolute remote path.
        path: String,
    },
    /// A jump host on the way: it may only tunnel.
    BastionHop,
}

impl SshAction {
    /// The intent that asks the signer for exactly this action on `target`.
    pub fn intent(&self, target: &str) -> Intent {
        let base = Intent {
            target: target.to_owned(),
            ..Intent::default()
        };
        match self {
            SshAction::Exec {
                command,
                sudo,
                sudo_user,
                pty,
                ttl_seconds,
            } => Intent {
                command: Some(command.clone()),
                sudo: *sudo,
                sudo_user: sudo_user.clone(),
                pty: *pty,
                ttl_seconds: *ttl_seconds,
                ..base
            },
            SshAction::SessionOpen {
                mode,
                sudo,
                sudo_user,
                ttl_seconds,
            } => Intent {
                purpose: Purpose::Session,
                session_mode: Some(*mode),
                sudo: *sudo,
                sudo_user: sudo_user.clone(),
                pty: *mode == SessionMode::Pty,
                ttl_seconds: *ttl_seconds,
                ..base
            },
            SshAction::SessionExec {
                session_id,
                mode,
                command,
                sudo,
                sudo_user,
            } => Intent {
                purpose: Purpose::Session,
                session_mode: Some(*mode),
                session_id: Some(session_id.clone()),
                command: Some(command.clone()),
                sudo: *sudo,
                sudo_user: sudo_user.clone(),
                pty: *mode == SessionMode::Pty,
                // The session's connection is authenticated; each command is only decided.
                dry_run: true,
                ..base
            },
            SshAction::SessionClose { session_id } => Intent {
                purpose: Purpose::Session,
                session_id: Some(session_id.clone()),
                dry_run: true,
                ..base
            },
            SshAction::FilePut { path, size, sha256 } => Intent {
                purpose: Purpose::File,
                file_op: Some(FileOp::Put),
                path: Some(path.clone()),
                content: Some(Content {
                    size: *size,
                    sha256: sha256.clone(),
                }),
                ..base
            },
            SshAction::FileGet { path } => Intent {
                purpose: Purpose::File,
                file_op: Some(FileOp::Get),
                path: Some(path.clone()),
                ..base
            },
            SshAction::BastionHop => Intent {
                role: Role::Bastion,
                ..base
            },
        }
    }

    /// The action an intent asks for: what the signer compares an approval claim with. `None`
    /// when the intent describes no whole action (a session command without its session, an
    /// upload without its content).
    pub fn of_intent(intent: &Intent) -> Option<SshAction> {
        if intent.role == Role::Bastion {
            return Some(SshAction::BastionHop);
        }
        Some(match intent.purpose {
            Purpose::Oneshot => SshAction::Exec {
                command: intent.command.clone()?,
                sudo: intent.sudo,
                sudo_user: intent.sudo_user.clone(),
                pty: intent.pty,
                ttl_seconds: intent.ttl_seconds,
            },
            Purpose::Session => match (&intent.command, &intent.session_id) {
                (None, None) => SshAction::SessionOpen {
                    mode: intent.session_mode.unwrap_or_default(),
                    sudo: intent.sudo,
                    sudo_user: intent.sudo_user.clone(),
                    ttl_seconds: intent.ttl_seconds,
                },
                (Some(command), Some(session_id)) => SshAction::SessionExec {
                    session_id: session_id.clone(),
                    mode: intent.session_mode.unwrap_or_default(),
                    command: command.clone(),
                    sudo: intent.sudo,
                    sudo_user: intent.sudo_user.clone(),
                },
                (None, Some(session_id)) => SshAction::SessionClose {
                    session_id: session_id.clone(),
                },
                (Some(_), None) => return None,
            },
            Purpose::File => match intent.file_op? {
                FileOp::Put => {
                    let content = intent.content.as_ref()?;
                    SshAction::FilePut {
                        path: intent.path.clone()?,
                        size: content.size,
                        sha256: content.sha256.clone(),
                    }
                }
                FileOp::Get => SshAction::FileGet {
                    path: intent.path.clone()?,
                },
            },
        })
    }
}

/// `POST /v1/sign`: the answer. A refusal is an answer (`decision.allowed == false`, no
/// certificate), not an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignResponse {
    /// The decision, with the rule that produced it and the command it shaped (its JSON is the
    /// decision's contract, `force_command` and `elevation_prefix` included).
    pub decision: Decided,
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

#[cfg(test)]
mod tests {
    use super::{SessionMode, SshAction};

    /// The broker asks for an action through its intent; the signer reads the action back from
    /// the intent. Both must be the same action, or no approval could ever match (or a wrong one
    /// could).
    #[test]
    fn every_action_survives_its_intent() {
        let actions = [
            SshAction::Exec {
                command: "ls -la".into(),
                sudo: true,
                sudo_user: Some("postgres".into()),
                pty: true,
                ttl_seconds: Some(30),
            },
            SshAction::SessionOpen {
                mode: SessionMode::Shell,
                sudo: false,
                sudo_user: None,
                ttl_seconds: None,
            },
            SshAction::SessionExec {
                session_id: "s-1".into(),
                mode: SessionMode::Pty,
                command: "id".into(),
                sudo: true,
                sudo_user: None,
            },
            SshAction::SessionClose {
                session_id: "s-1".into(),
            },
            SshAction::FilePut {
                path: "/etc/motd".into(),
                size: 3,
                sha256: "ab".into(),
            },
            SshAction::FileGet {
                path: "/etc/motd".into(),
            },
            SshAction::BastionHop,
        ];
        for action in actions {
            let intent = action.intent("web");
            assert_eq!(intent.target, "web");
            assert_eq!(SshAction::of_intent(&intent).as_ref(), Some(&action));
        }
    }
}
