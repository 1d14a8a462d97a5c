//! The SSH connector: the typed stages of every SSH call, run by the gateway's pipeline.
//!
//! - **plan**: validates the arguments, resolves the host and its jump chain against a fresh host
//!   view from the signer, and types the call as an [`SshAction`];
//! - **authorize**: asks the signer to decide the action and sign a certificate per hop (the
//!   signer enforces the caller's maximum tier and redeems an approval against the action);
//! - **execute**: dials the chain with exactly those certificates and runs exactly the decided
//!   words (the certificate's force-command), or the session command.
//!
//! The gateway audits around these stages (a refusal once, the intent before execute, the
//! outcome after); the signer records every certificate it issues or refuses. All of a call's
//! records carry its call id. The broker writes records itself only for what is not a call: a
//! session closed by the reaper, a freeze or a shutdown.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use meho_audit::{AuditLog, CallOutcome, CallRef, IntentReceipt, NewRecord};
use meho_core::{Decision, ReasonCode, Tier};
use meho_gateway::{
    Annotations, Authorized, BoxFuture, CallContext, Caller, Connector, ErrorCode, Failed,
    Learnable, Output, Plan, Refusal, Target, ToolError, ToolSpec,
};
use meho_policy::Decided;
use russh::keys::ssh_key::{Certificate, PrivateKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Error;
use crate::ca::generate_ed25519;
use crate::client::{ConnectOptions, Connection, ExecOutput, Hop, connect};
use crate::recording::{Recorder, Stream};
use crate::session::{Session, SessionInit, SessionLimits, SessionTable, Shell};
use crate::signer_client::{SignerClient, SignerFailure};
use crate::wire::{ApprovalClaim, HostView, Intent, SessionMode, SignResponse, SshAction};

/// Longest jump chain followed; longer is a config loop or a mistake.
pub const MAX_HOPS: usize = 8;

/// How the broker runs calls.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Per-stream output cap.
    pub output_cap_bytes: usize,
    /// How long a command may run.
    pub exec_timeout: Duration,
    /// Dialing options.
    pub connect: ConnectOptions,
    /// Session caps and timeouts.
    pub sessions: SessionLimits,
    /// Where shell and pty sessions are recorded.
    pub recording_dir: PathBuf,
    /// Fail a session whose recording fails.
    pub recording_strict: bool,
    /// File transfer cap.
    pub file_transfer_max_bytes: u64,
}

impl BrokerOptions {
    /// From `[ssh]`, resolving paths against `data_dir`.
    pub fn from_config(ssh: &meho_config::SshConfig, data_dir: &std::path::Path) -> Self {
        BrokerOptions {
            output_cap_bytes: usize::try_from(ssh.output_cap_bytes).unwrap_or(usize::MAX),
            exec_timeout: Duration::from_secs(ssh.exec_timeout_seconds),
            connect: ConnectOptions {
                bind_address: ssh.bind_address,
                connect_timeout: Duration::from_secs(ssh.connect_timeout_seconds),
            },
            sessions: SessionLimits {
                max_sessions: ssh.max_sessions as usize,
                max_per_caller: ssh.max_sessions_per_caller as usize,
                idle_timeout: Duration::from_secs(ssh.session_idle_timeout_seconds),
                max_lifetime: Duration::from_secs(ssh.session_max_lifetime_seconds),
            },
            recording_dir: ssh.recording_path(data_dir),
            recording_strict: ssh.recording_strict,
            file_transfer_max_bytes: ssh.file_transfer_max_bytes,
        }
    }
}

/// `ssh_execute` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ExecuteArgs {
    /// The host, by name (see `list_targets`).
    pub server: String,
    /// The command line.
    pub command: String,
    /// Certificate lifetime; clamped to the host's ceiling.
    pub ttl_seconds: Option<u32>,
    /// Run under `sudo -n`.
    #[serde(default)]
    pub sudo: bool,
    /// Run as this user under sudo (implies sudo).
    pub sudo_user: Option<String>,
    /// Allocate a PTY (stdout and stderr merge).
    #[serde(default)]
    pub pty: bool,
    /// Only decide; issue no certificate and run nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What one command produced, as tools return it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecResult {
    /// Standard output (UTF-8, lossy), at most the cap.
    pub stdout: String,
    /// Standard error, at most the cap.
    pub stderr: String,
    /// The exit status; `null` when the command was cut off or killed by a signal.
    pub exit_code: Option<i64>,
    /// The certificate serial (one-shot) or the session's serial.
    pub serial: u64,
    /// Audit-mode findings and other notes.
    pub warnings: Vec<String>,
    /// Whether stdout was cut at the cap.
    pub stdout_truncated: bool,
    /// Whether stderr was cut at the cap.
    pub stderr_truncated: bool,
    /// Whether the command outran the exec timeout.
    pub timed_out: bool,
}

/// `ssh_session_open` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SessionOpenArgs {
    /// The host.
    pub server: String,
    /// `exec` (default), `shell` or `pty`.
    #[serde(default)]
    pub mode: SessionMode,
    /// Certificate lifetime (the connection outlives it; sessions have their own limits).
    pub ttl_seconds: Option<u32>,
    /// Elevate: exec-mode commands run under `sudo -n`, shell modes run `sudo -n -- /bin/sh`.
    #[serde(default)]
    pub sudo: bool,
    /// Sudo target user.
    pub sudo_user: Option<String>,
}

/// `ssh_session_exec` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionExecArgs {
    /// From `ssh_session_open`.
    pub session_id: String,
    /// The command line.
    pub command: String,
}

/// `ssh_session_close` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionCloseArgs {
    /// From `ssh_session_open`.
    pub session_id: String,
}

/// `ssh_put_file` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutFileArgs {
    /// The host.
    pub server: String,
    /// Absolute remote path.
    pub path: String,
    /// File content as text…
    pub content: Option<String>,
    /// …or as base64, for binary files.
    pub content_base64: Option<String>,
}

/// `ssh_get_file` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetFileArgs {
    /// The host.
    pub server: String,
    /// Absolute remote path.
    pub path: String,
}

/// The SSH broker: sessions, the signer it asks, and how it dials.
#[derive(Debug)]
pub struct SshBroker {
    signer: Arc<dyn SignerClient>,
    audit: Arc<AuditLog>,
    options: BrokerOptions,
    sessions: SessionTable,
}

fn signer_error(err: SignerFailure) -> ToolError {
    let code = match err.code.as_str() {
        "forbidden" => ErrorCode::Forbidden,
        "unknown_host" => ErrorCode::UnknownTarget,
        "bad_request" => ErrorCode::InvalidArguments,
        "unreachable" => ErrorCode::Unreachable,
        _ => ErrorCode::Internal,
    };
    ToolError::new(code, err.message)
}

fn ssh_error(err: &Error) -> ToolError {
    let code = match err {
        Error::HostKeyMismatch { .. } => ErrorCode::HostKeyMismatch,
        Error::AuthRefused { .. } => ErrorCode::AuthRefused,
        Error::Connect { .. } => ErrorCode::Unreachable,
        Error::Channel { .. } | Error::File { .. } => ErrorCode::ExecutionFailed,
        _ => ErrorCode::Internal,
    };
    ToolError::new(code, err.to_string())
}

/// Another caller's session answers exactly like a missing one.
fn no_session(id: &str) -> ToolError {
    ToolError::new(
        ErrorCode::NotFound,
        format!("no open session `{id}` for this caller"),
    )
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn exec_result(out: &ExecOutput, serial: u64, warnings: Vec<String>) -> ExecResult {
    let mark = |text: &mut String, dropped: u64| {
        if dropped > 0 {
            text.push_str(&format!(
                "\n[meho: output truncated, {dropped} more bytes dropped]"
            ));
        }
    };
    let mut stdout = lossy(&out.stdout);
    mark(&mut stdout, out.stdout_dropped);
    let mut stderr = lossy(&out.stderr);
    mark(&mut stderr, out.stderr_dropped);
    ExecResult {
        stdout,
        stderr,
        exit_code: out.exit_code.map(i64::from),
        serial,
        warnings,
        stdout_truncated: out.stdout_dropped > 0,
        stderr_truncated: out.stderr_dropped > 0,
        timed_out: out.timed_out,
    }
}

/// The outcome record of a command (the gateway sets the duration).
fn outcome_of(out: &ExecOutput, serial: u64) -> CallOutcome {
    CallOutcome {
        exit_status: out.exit_code.map(i64::from),
        error: if out.timed_out {
            Some("exec timeout".to_owned())
        } else {
            out.exit_signal
                .as_ref()
                .map(|s| format!("killed by signal {s}"))
        },
        credential_serial: Some(serial.to_string()),
        output_bytes: (out.stdout.len() + out.stderr.len()) as u64
            + out.stdout_dropped
            + out.stderr_dropped,
        output_sha256: Some(out.sha256()),
        ..CallOutcome::default()
    }
}

/// A failure after the intent: an SSH error, recorded with the credential's serial.
fn failed(err: &Error, serial: Option<String>) -> Failed {
    let mut failed = Failed::new(ssh_error(err), serial);
    failed.outcome.error = Some(err.to_string());
    failed
}

fn json_of<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// A signed hop before it is dialed.
struct Signed {
    view: HostView,
    key: Arc<PrivateKey>,
    certificate: Certificate,
}

/// The certificates of one call: every bastion's and the target's, and how the target runs
/// elevated (sessions).
pub struct Minted {
    hops: Vec<Signed>,
    elevation_prefix: Option<String>,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let serials: Vec<u64> = self.hops.iter().map(|h| h.certificate.serial()).collect();
        f.debug_struct("Minted")
            .field("serials", &serials)
            .field("elevation_prefix", &self.elevation_prefix)
            .finish()
    }
}

impl Minted {
    fn hops(self) -> Vec<Hop> {
        self.hops
            .into_iter()
            .map(|s| Hop {
                view: s.view,
                key: s.key,
                certificate: s.certificate,
            })
            .collect()
    }
}

/// A planned SSH call: its [`SshAction`] (all an approval binds to: it serializes as exactly
/// the action) and what the later stages need of the plan (the resolved chain, the session,
/// the upload).
#[derive(Clone)]
pub struct Planned {
    /// What the call does.
    pub action: SshAction,
    /// The resolved chain, bastions first; empty for calls in an open session.
    chain: Vec<HostView>,
    /// The session a session command runs in, or a close closes.
    session: Option<Arc<Session>>,
    /// An upload's bytes.
    upload: Option<Arc<Vec<u8>>>,
}

impl std::fmt::Debug for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planned")
            .field("action", &self.action)
            .field(
                "chain",
                &self
                    .chain
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Serialize for Planned {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.action.serialize(serializer)
    }
}

/// The command line an approver reads for an action, when it runs one.
fn learnable_of(action: &SshAction) -> Option<Learnable> {
    match action {
        SshAction::Exec {
            command,
            sudo,
            sudo_user,
            ..
        }
        | SshAction::SessionExec {
            command,
            sudo,
            sudo_user,
            ..
        } => Some(Learnable {
            end_user: None,
            command: command.clone(),
            sudo: *sudo,
            sudo_user: sudo_user.clone(),
        }),
        _ => None,
    }
}

/// One line for approvers: the tool, the target, the command (or path) and the elevation.
fn summarize(tool: &str, target: &str, action: &SshAction) -> String {
    let sudo = |sudo: bool, user: &Option<String>| match (sudo, user) {
        (_, Some(user)) => format!(" (sudo -u {user})"),
        (true, None) => " (sudo)".to_owned(),
        (false, None) => String::new(),
    };
    let what = match action {
        SshAction::Exec {
            command,
            sudo: s,
            sudo_user,
            ..
        }
        | SshAction::SessionExec {
            command,
            sudo: s,
            sudo_user,
            ..
        } => format!("{command}{}", sudo(*s, sudo_user)),
        SshAction::SessionOpen {
            mode,
            sudo: s,
            sudo_user,
            ..
        } => format!("{} session{}", mode.as_str(), sudo(*s, sudo_user)),
        SshAction::FilePut { path, .. } | SshAction::FileGet { path } => format!("path {path}"),
        SshAction::SessionClose { session_id } => format!("close {session_id}"),
        SshAction::BastionHop => "hop".to_owned(),
    };
    format!("{tool} on {target}: {what}")
}

/// What the host will run, when the decider spelled it differently from what the agent wrote
/// (the force-command rebuilt from the decoded words): approvers are shown both.
fn runs_differently(action: &SshAction, decided: &Decided) -> Option<String> {
    let (command, elevated) = match action {
        SshAction::Exec {
            command,
            sudo,
            sudo_user,
            ..
        }
        | SshAction::SessionExec {
            command,
            sudo,
            sudo_user,
            ..
        } => (command, *sudo || sudo_user.is_some()),
        _ => return None,
    };
    let runs = decided.shape.force_command.as_deref()?;
    // An elevated force-command starts with its sudo prefix, which the summary already says.
    let unprefixed = if elevated {
        runs.split_once(" -- ").map(|(_, rest)| rest)
    } else {
        Some(runs)
    };
    (unprefixed != Some(command.as_str())).then(|| runs.to_owned())
}

impl SshBroker {
    /// A broker that gets certificates from `signer` and records session housekeeping into
    /// `audit`.
    pub fn new(
        signer: Arc<dyn SignerClient>,
        audit: Arc<AuditLog>,
        options: BrokerOptions,
    ) -> Self {
        SshBroker {
            sessions: SessionTable::new(options.sessions),
            signer,
            audit,
            options,
        }
    }

    /// The hosts the caller may use, fresh from the signer.
    pub async fn target_views(&self, caller: &Caller) -> Result<Vec<HostView>, ToolError> {
        self.signer
            .hosts(
                Some(&caller.principal),
                Some(&caller.tenant),
                caller.groups.as_deref(),
            )
            .await
            .map_err(signer_error)
    }

    /// Resolves `server` and its jump chain against a fresh host view, bastions first. New
    /// connections never use a stale view: if the signer cannot be asked, the call fails.
    async fn chain(&self, caller: &Caller, server: &str) -> Result<Vec<HostView>, ToolError> {
        let hosts = self.target_views(caller).await?;
        let find = |name: &str| hosts.iter().find(|h| h.name == name).cloned();
        let mut chain = vec![find(server).ok_or_else(|| {
            ToolError::new(
                ErrorCode::UnknownTarget,
                format!("no host `{server}` that this caller may use"),
            )
        })?];
        while let Some(jump) = chain.last().and_then(|h| h.jump.clone()) {
            if chain.len() >= MAX_HOPS || chain.iter().any(|h| h.name == jump) {
                return Err(ToolError::internal(format!(
                    "the jump chain of `{server}` loops or is longer than {MAX_HOPS} hops"
                )));
            }
            chain.push(find(&jump).ok_or_else(|| {
                ToolError::new(
                    ErrorCode::Forbidden,
                    format!("`{server}` jumps through `{jump}`, which this caller may not use"),
                )
            })?);
        }
        chain.reverse();
        Ok(chain)
    }

    /// The intent for `action` on `host` within `call`: who, where, the call's id (the
    /// signer's records carry it), the caller's maximum tier, and the approval collected.
    fn intent(
        call: CallContext<'_>,
        host: &str,
        action: &SshAction,
        approval: Option<&meho_gateway::ApprovalClaim>,
    ) -> Intent {
        let caller = call.caller;
        Intent {
            call_id: Some(call.call_id.to_owned()),
            principal: Some(caller.principal.clone()),
            tenant: Some(caller.tenant.clone()),
            end_user: caller.end_user.clone(),
            end_user_groups: caller.groups.clone(),
            max_tier: (caller.max_tier < Tier::Destructive).then_some(caller.max_tier),
            approval: approval.map(|claim| ApprovalClaim {
                id: claim.id.clone(),
                action: action.clone(),
            }),
            ..action.intent(host)
        }
    }

    /// Signs one hop with a fresh ephemeral key; a refusal is the signer's decision.
    async fn sign_hop(
        &self,
        view: &HostView,
        mut intent: Intent,
    ) -> Result<(Signed, SignResponse), Refusal> {
        let key = generate_ed25519("meho-ephemeral").map_err(|e| ssh_error(&e))?;
        intent.public_key = Some(
            key.public_key()
                .to_openssh()
                .map_err(|e| ToolError::internal(format!("encode public key: {e}")))?,
        );
        let answer = self.signer.sign(&intent).await.map_err(signer_error)?;
        let Some(line) = answer.certificate.as_deref() else {
            return Err(Refusal::Decided {
                decision: answer.decision,
                runs: None,
                preview: None,
            });
        };
        let certificate = Certificate::from_openssh(line).map_err(|e| {
            ToolError::internal(format!("the signer sent an unreadable certificate: {e}"))
        })?;
        Ok((
            Signed {
                view: view.clone(),
                key: Arc::new(key),
                certificate,
            },
            answer,
        ))
    }

    /// Decides and signs a new connection's chain: the target first (its decision is the
    /// call's), then every bastion, each with a certificate that may only tunnel.
    async fn mint(
        &self,
        call: CallContext<'_>,
        planned: &Planned,
        approval: Option<&meho_gateway::ApprovalClaim>,
    ) -> Result<Authorized<Minted>, Refusal> {
        let (target_view, bastions) = planned
            .chain
            .split_last()
            .ok_or_else(|| ToolError::internal("empty chain"))?;
        let intent = Self::intent(call, &target_view.name, &planned.action, approval);
        let (target, answer) = match self.sign_hop(target_view, intent).await {
            Err(Refusal::Decided { decision, .. }) => {
                let runs = runs_differently(&planned.action, &decision);
                // The command is the whole change an SSH call makes: no preview to compute.
                return Err(Refusal::Decided {
                    decision,
                    runs,
                    preview: None,
                });
            }
            other => other?,
        };
        let serial = target.certificate.serial();
        let mut hops = Vec::with_capacity(planned.chain.len());
        for view in bastions {
            let intent = Self::intent(call, &view.name, &SshAction::BastionHop, None);
            hops.push(self.sign_hop(view, intent).await?.0);
        }
        hops.push(target);
        Ok(Authorized {
            runs: runs_differently(&planned.action, &answer.decision),
            decision: answer.decision,
            credential: Some(Minted {
                hops,
                elevation_prefix: answer.elevation_prefix,
            }),
            serial: Some(serial.to_string()),
        })
    }

    /// A decision without a certificate: a preview, or a command in an open session (whose
    /// connection is authenticated already).
    async fn decide_only(
        &self,
        call: CallContext<'_>,
        planned: &Planned,
        host: &str,
        approval: Option<&meho_gateway::ApprovalClaim>,
    ) -> Result<Authorized<Minted>, Refusal> {
        let intent = Intent {
            dry_run: true,
            ..Self::intent(call, host, &planned.action, approval)
        };
        let answer = self.signer.sign(&intent).await.map_err(signer_error)?;
        let runs = runs_differently(&planned.action, &answer.decision);
        if !answer.decision.decision.allows() {
            return Err(Refusal::Decided {
                decision: answer.decision,
                runs,
                preview: None,
            });
        }
        Ok(Authorized {
            decision: answer.decision,
            credential: None,
            serial: planned.session.as_ref().map(|s| s.serial.to_string()),
            runs,
        })
    }

    // --- plan ------------------------------------------------------------------------------------

    async fn plan(
        &self,
        call: CallContext<'_>,
        tool: &str,
        arguments: &Value,
    ) -> Result<Plan<Planned>, ToolError> {
        let caller = call.caller;
        let new_plan = |target: &str, action: SshAction, shown: Value, min_tier: Tier| Plan {
            tool: tool.to_owned(),
            target: target.to_owned(),
            summary: summarize(tool, target, &action),
            learnable: learnable_of(&action),
            min_tier,
            session_id: None,
            arguments: shown,
            request: arguments.clone(),
            preview: false,
            action: Planned {
                action,
                chain: Vec::new(),
                session: None,
                upload: None,
            },
        };
        match tool {
            "ssh_execute" => {
                let args: ExecuteArgs = parse(tool, arguments)?;
                let shown = json!({
                    "server": args.server, "command": args.command, "ttl_seconds": args.ttl_seconds,
                    "sudo": args.sudo, "sudo_user": args.sudo_user, "pty": args.pty, "dry_run": args.dry_run,
                });
                // A dry run resolves the host as a real call does, so it reveals nothing more.
                let chain = self.chain(caller, &args.server).await?;
                let action = SshAction::Exec {
                    command: args.command,
                    sudo: args.sudo,
                    sudo_user: args.sudo_user,
                    pty: args.pty,
                    ttl_seconds: args.ttl_seconds,
                };
                let mut plan = new_plan(&args.server, action, shown, Tier::Read);
                plan.action.chain = chain;
                plan.preview = args.dry_run;
                Ok(plan)
            }
            "ssh_session_open" => {
                let args: SessionOpenArgs = parse(tool, arguments)?;
                self.sessions
                    .check_capacity(&caller.principal)
                    .map_err(|m| ToolError::new(ErrorCode::Limit, m))?;
                let shown = json!({
                    "server": args.server, "mode": args.mode, "ttl_seconds": args.ttl_seconds,
                    "sudo": args.sudo, "sudo_user": args.sudo_user,
                });
                let chain = self.chain(caller, &args.server).await?;
                // A shell's command stream cannot be rated command by command: only a caller
                // who may run anything may open one.
                let min_tier = if args.mode == SessionMode::Exec {
                    Tier::Read
                } else {
                    Tier::Destructive
                };
                let action = SshAction::SessionOpen {
                    mode: args.mode,
                    sudo: args.sudo,
                    sudo_user: args.sudo_user,
                    ttl_seconds: args.ttl_seconds,
                };
                let mut plan = new_plan(&args.server, action, shown, min_tier);
                plan.action.chain = chain;
                plan.session_id = Some(format!("s-{}", uuid::Uuid::now_v7().simple()));
                Ok(plan)
            }
            "ssh_session_exec" => {
                let args: SessionExecArgs = parse(tool, arguments)?;
                let session = self
                    .sessions
                    .get(&args.session_id, &caller.principal)
                    .ok_or_else(|| no_session(&args.session_id))?;
                session.touch();
                self.recheck_host(caller, &session).await?;
                // The session's host and sudo state are part of the call an approval binds.
                let shown = json!({
                    "session_id": args.session_id, "command": args.command, "server": session.target,
                    "mode": session.mode, "sudo": session.sudo, "sudo_user": session.sudo_user,
                });
                let action = SshAction::SessionExec {
                    session_id: session.id.clone(),
                    mode: session.mode,
                    command: args.command,
                    sudo: session.sudo,
                    sudo_user: session.sudo_user.clone(),
                };
                let mut plan = new_plan(&session.target, action, shown, Tier::Read);
                plan.session_id = Some(session.id.clone());
                plan.action.session = Some(session);
                Ok(plan)
            }
            "ssh_session_close" => {
                let args: SessionCloseArgs = parse(tool, arguments)?;
                let session = self
                    .sessions
                    .get(&args.session_id, &caller.principal)
                    .ok_or_else(|| no_session(&args.session_id))?;
                let shown = json!({ "session_id": args.session_id });
                let action = SshAction::SessionClose {
                    session_id: session.id.clone(),
                };
                let mut plan = new_plan(&session.target, action, shown, Tier::Read);
                plan.session_id = Some(session.id.clone());
                plan.action.session = Some(session);
                Ok(plan)
            }
            "ssh_put_file" => {
                let args: PutFileArgs = parse(tool, arguments)?;
                let data = match (&args.content, &args.content_base64) {
                    (Some(text), None) => text.clone().into_bytes(),
                    (None, Some(b64)) => {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .map_err(|e| ToolError::invalid(format!("content_base64: {e}")))?
                    }
                    _ => {
                        return Err(ToolError::invalid(
                            "give exactly one of `content` and `content_base64`",
                        ));
                    }
                };
                let size = data.len() as u64;
                if size > self.options.file_transfer_max_bytes {
                    return Err(ToolError::new(
                        ErrorCode::Limit,
                        format!(
                            "the file is {size} bytes, over the {}-byte transfer cap",
                            self.options.file_transfer_max_bytes
                        ),
                    ));
                }
                let sha = {
                    use sha2::Digest;
                    hex::encode(sha2::Sha256::digest(&data))
                };
                let shown = json!({
                    "server": args.server, "path": args.path, "size": size, "sha256": sha,
                });
                let chain = self.chain(caller, &args.server).await?;
                let action = SshAction::FilePut {
                    path: args.path,
                    size,
                    sha256: sha,
                };
                let mut plan = new_plan(&args.server, action, shown, Tier::Write);
                // The request replayed after an approval is the bound content, not a copy of it
                // in the records: those show its size and hash.
                plan.action.chain = chain;
                plan.action.upload = Some(Arc::new(data));
                Ok(plan)
            }
            "ssh_get_file" => {
                let args: GetFileArgs = parse(tool, arguments)?;
                let shown = json!({ "server": args.server, "path": args.path });
                let chain = self.chain(caller, &args.server).await?;
                let action = SshAction::FileGet { path: args.path };
                let mut plan = new_plan(&args.server, action, shown, Tier::Read);
                plan.action.chain = chain;
                Ok(plan)
            }
            other => Err(ToolError::new(
                ErrorCode::UnknownTool,
                format!("no tool named `{other}`"),
            )),
        }
    }

    /// A session command's host must still be what the session dialed: a host that is gone or
    /// changed (address, user, host key, jump) ends the session.
    async fn recheck_host(&self, caller: &Caller, session: &Arc<Session>) -> Result<(), ToolError> {
        let chain = match self.chain(caller, &session.target).await {
            Ok(chain) => chain,
            Err(err) if err.code == ErrorCode::Unreachable => return Err(err),
            Err(err) => {
                self.end_session(session, "host_removed").await;
                return Err(ToolError::new(
                    ErrorCode::SessionEnded,
                    format!("the session was closed: {}", err.message),
                ));
            }
        };
        let same = chain.len() == session.conn.chain().len()
            && chain.iter().zip(session.conn.chain()).all(|(now, then)| {
                now.addr == then.addr
                    && now.user == then.user
                    && now.host_key == then.host_key
                    && now.jump == then.jump
            });
        if !same {
            self.end_session(session, "host_changed").await;
            return Err(ToolError::new(
                ErrorCode::SessionEnded,
                format!(
                    "`{}` changed (address, user, host key or jump) since the session opened; the session was closed, open a new one",
                    session.target
                ),
            ));
        }
        Ok(())
    }

    // --- authorize -------------------------------------------------------------------------------

    async fn authorize(
        &self,
        call: CallContext<'_>,
        plan: &Plan<Planned>,
        approval: Option<&meho_gateway::ApprovalClaim>,
    ) -> Result<Authorized<Minted>, Refusal> {
        let planned = &plan.action;
        match &planned.action {
            SshAction::Exec { .. } if plan.preview => {
                self.decide_only(call, planned, &plan.target, approval)
                    .await
            }
            SshAction::SessionExec { .. } => {
                self.decide_only(call, planned, &plan.target, approval)
                    .await
            }
            SshAction::SessionClose { .. } => Ok(Authorized {
                // Ending one's own session is always allowed; a freeze was checked before.
                decision: Decision {
                    effect: meho_core::Effect::Allow,
                    reason_code: ReasonCode::Allowed,
                    ..Decision::refused(ReasonCode::Allowed, "session:close", Tier::Read)
                }
                .into(),
                credential: None,
                serial: planned.session.as_ref().map(|s| s.serial.to_string()),
                runs: None,
            }),
            SshAction::BastionHop => Err(ToolError::internal("a hop is not a call").into()),
            SshAction::Exec { .. }
            | SshAction::SessionOpen { .. }
            | SshAction::FilePut { .. }
            | SshAction::FileGet { .. } => self.mint(call, planned, approval).await,
        }
    }

    // --- execute ---------------------------------------------------------------------------------

    async fn execute(
        &self,
        call: CallContext<'_>,
        plan: &Plan<Planned>,
        authorized: Authorized<Minted>,
    ) -> Result<Output, Failed> {
        let serial = authorized.serial;
        let planned = &plan.action;
        match (&planned.action, authorized.credential) {
            (SshAction::SessionExec { command, .. }, _) => {
                let session = planned
                    .session
                    .as_ref()
                    .ok_or_else(|| Failed::new(ToolError::internal("no session"), serial))?;
                self.session_exec(session, command, &authorized.decision)
                    .await
            }
            (SshAction::SessionClose { .. }, _) => {
                let session = planned
                    .session
                    .as_ref()
                    .ok_or_else(|| Failed::new(ToolError::internal("no session"), serial))?;
                self.session_close(call.caller, session).await
            }
            (action, Some(minted)) => {
                let serial = minted
                    .hops
                    .last()
                    .map(|h| h.certificate.serial())
                    .unwrap_or_default();
                match action {
                    SshAction::Exec { command, pty, .. } => {
                        self.exec(minted, command, *pty, serial, &authorized.decision)
                            .await
                    }
                    SshAction::SessionOpen { .. } => {
                        self.session_open(call.caller, plan, minted, serial).await
                    }
                    SshAction::FilePut { path, .. } => {
                        let data = planned.upload.clone().unwrap_or_default();
                        self.put(minted, path, &data, &plan.target, serial).await
                    }
                    SshAction::FileGet { path } => {
                        self.get(minted, path, &plan.target, serial).await
                    }
                    _ => Err(Failed::new(
                        ToolError::internal("no credential for this action"),
                        Some(serial.to_string()),
                    )),
                }
            }
            (_, None) => Err(Failed::new(
                ToolError::internal("the call was authorized without a certificate"),
                serial,
            )),
        }
    }

    /// `ssh_execute`: one command under a certificate whose `force-command` is exactly it.
    async fn exec(
        &self,
        minted: Minted,
        command: &str,
        pty: bool,
        serial: u64,
        decided: &Decided,
    ) -> Result<Output, Failed> {
        let run = async {
            let conn = connect(minted.hops(), &self.options.connect).await?;
            // The certificate forces the command; sending it too keeps sshd's log readable.
            let command = decided.shape.force_command.as_deref().unwrap_or(command);
            let out = conn
                .exec(
                    command,
                    pty,
                    self.options.output_cap_bytes,
                    self.options.exec_timeout,
                )
                .await;
            conn.close().await;
            out
        };
        match run.await {
            Ok(out) => Ok(Output {
                value: json_of(&exec_result(
                    &out,
                    serial,
                    decided.decision.warnings.clone(),
                )),
                outcome: outcome_of(&out, serial),
                notes: serde_json::Map::new(),
            }),
            Err(err) => Err(failed(&err, Some(serial.to_string()))),
        }
    }

    async fn session_open(
        &self,
        caller: &Caller,
        plan: &Plan<Planned>,
        minted: Minted,
        serial: u64,
    ) -> Result<Output, Failed> {
        let SshAction::SessionOpen {
            mode,
            sudo,
            sudo_user,
            ..
        } = &plan.action.action
        else {
            return Err(Failed::new(
                ToolError::internal("not a session open"),
                Some(serial.to_string()),
            ));
        };
        let session_id = plan.session_id.clone().unwrap_or_default();
        let elevation_prefix = minted.elevation_prefix.clone();
        let (conn, shell, recorder) = self
            .open_connection(&plan.target, *mode, &session_id, minted)
            .await
            .map_err(|error| Failed::new(error, Some(serial.to_string())))?;
        let recording = recorder.as_ref().map(|r| r.path().display().to_string());
        let session = Arc::new(Session::new(
            session_id.clone(),
            SessionInit {
                principal: caller.principal.clone(),
                end_user: caller.end_user.clone(),
                tenant: caller.tenant.clone(),
                target: plan.target.clone(),
                mode: *mode,
                sudo: *sudo || sudo_user.is_some(),
                sudo_user: sudo_user.clone(),
                serial,
                elevation_prefix,
            },
            conn,
            shell,
            recorder,
        ));
        if let Err(session) = self.sessions.insert(session) {
            let _ = session.shutdown().await;
            return Err(Failed::new(
                ToolError::new(ErrorCode::Limit, "session limit reached while opening"),
                Some(serial.to_string()),
            ));
        }
        Ok(Output {
            value: json!({
                "session_id": session_id,
                "server": plan.target,
                "mode": mode,
                "serial": serial,
                "recording": recording,
                "idle_timeout_seconds": self.options.sessions.idle_timeout.as_secs(),
                "max_lifetime_seconds": self.options.sessions.max_lifetime.as_secs(),
            }),
            outcome: CallOutcome {
                credential_serial: Some(serial.to_string()),
                ..CallOutcome::default()
            },
            notes: serde_json::Map::new(),
        })
    }

    async fn open_connection(
        &self,
        server: &str,
        mode: SessionMode,
        session_id: &str,
        minted: Minted,
    ) -> Result<(Connection, Option<Shell>, Option<Recorder>), ToolError> {
        let elevation_prefix = minted.elevation_prefix.clone();
        let conn = connect(minted.hops(), &self.options.connect)
            .await
            .map_err(|e| ssh_error(&e))?;
        if mode == SessionMode::Exec {
            return Ok((conn, None, None));
        }
        let recorder = match Recorder::create(
            &self.options.recording_dir,
            session_id,
            &format!("meho session {session_id} on {server}"),
            200,
            50,
        ) {
            Ok(recorder) => Some(recorder),
            Err(err) if self.options.recording_strict => {
                conn.close().await;
                return Err(ToolError::new(
                    ErrorCode::ExecutionFailed,
                    format!(
                        "recording is strict and {} cannot be written: {err}",
                        self.options.recording_dir.display()
                    ),
                ));
            }
            Err(err) => {
                tracing::warn!(%err, "session recording unavailable; continuing (not strict)");
                None
            }
        };
        let shell_command = match elevation_prefix {
            Some(prefix) => format!("{prefix} -- /bin/sh"),
            None => "/bin/sh".to_owned(),
        };
        let shell = Shell::start(
            &conn,
            &shell_command,
            mode == SessionMode::Pty,
            self.options.exec_timeout,
        )
        .await;
        match shell {
            Ok(shell) => Ok((conn, Some(shell), recorder)),
            Err(err) => {
                conn.close().await;
                Err(ToolError::new(
                    ErrorCode::ExecutionFailed,
                    format!("`{server}`: could not start the session shell: {err}"),
                ))
            }
        }
    }

    /// `ssh_session_exec`: the decided command in the session, recorded.
    async fn session_exec(
        &self,
        session: &Arc<Session>,
        command: &str,
        decided: &Decided,
    ) -> Result<Output, Failed> {
        let serial = Some(session.serial.to_string());
        if command.contains(['\n', '\r']) {
            // The engine refuses these already; the shell protocol depends on it, so check again.
            return Err(Failed::new(
                ToolError::invalid("newlines are not allowed in commands"),
                serial,
            ));
        }
        let _ = session.record(Stream::Input, format!("{command}\n").as_bytes());
        let run = async {
            match session.mode {
                SessionMode::Exec => {
                    // Elevation is part of the decided force-command shape.
                    let command = decided.shape.force_command.as_deref().unwrap_or(command);
                    session
                        .conn
                        .exec(
                            command,
                            false,
                            self.options.output_cap_bytes,
                            self.options.exec_timeout,
                        )
                        .await
                }
                SessionMode::Shell | SessionMode::Pty => {
                    let mut guard = session.shell.lock().await;
                    let shell = guard.as_mut().ok_or_else(|| Error::Channel {
                        target: session.target.clone(),
                        message: "the session's shell is gone".into(),
                    })?;
                    shell
                        .run(
                            command,
                            self.options.output_cap_bytes,
                            self.options.exec_timeout,
                        )
                        .await
                }
            }
        };
        let out = match run.await {
            Ok(out) => out,
            Err(err) => {
                if session.mode != SessionMode::Exec {
                    // A shell that failed mid-command is in an unknown state.
                    self.end_session(session, "shell_failed").await;
                }
                return Err(failed(&err, serial));
            }
        };
        let recorded = session
            .record(Stream::Output, &out.stdout)
            .and_then(|()| session.record(Stream::Error, &out.stderr));
        if let Err(err) = recorded
            && self.options.recording_strict
        {
            self.end_session(session, "recording_failed").await;
            let error = ToolError::new(
                ErrorCode::ExecutionFailed,
                format!("recording is strict and failed ({err}); the session was closed"),
            );
            let mut outcome = outcome_of(&out, session.serial);
            outcome.error = Some(error.message.clone());
            return Err(Failed { error, outcome });
        }
        if out.timed_out && session.mode != SessionMode::Exec {
            self.end_session(session, "exec_timeout").await;
        }
        session.touch();
        Ok(Output {
            value: json_of(&exec_result(
                &out,
                session.serial,
                decided.decision.warnings.clone(),
            )),
            outcome: outcome_of(&out, session.serial),
            notes: serde_json::Map::new(),
        })
    }

    /// `ssh_session_close`: the session's closing record is the call's outcome record, with the
    /// recording's sha256.
    async fn session_close(
        &self,
        caller: &Caller,
        session: &Arc<Session>,
    ) -> Result<Output, Failed> {
        let serial = Some(session.serial.to_string());
        if self
            .sessions
            .remove(&session.id, &caller.principal)
            .is_none()
        {
            return Err(Failed::new(no_session(&session.id), serial));
        }
        let (sha, error, notes) = self.shut(session, "closed").await;
        Ok(Output {
            value: json!({ "session_id": session.id, "closed": true, "recording_sha256": sha }),
            outcome: CallOutcome {
                error,
                credential_serial: serial,
                recording_sha256: sha,
                ..CallOutcome::default()
            },
            notes,
        })
    }

    async fn end_session(&self, session: &Arc<Session>, reason: &str) {
        if self
            .sessions
            .remove(&session.id, &session.principal)
            .is_some()
        {
            self.finish_session(session, reason).await;
        }
    }

    /// Shuts a removed session down: the recording's sha256 (or why it failed), and the notes
    /// its closing record carries.
    async fn shut(
        &self,
        session: &Session,
        reason: &str,
    ) -> (
        Option<String>,
        Option<String>,
        serde_json::Map<String, Value>,
    ) {
        let (sha, error) = match session.shutdown().await {
            Some(Ok(sha)) => (Some(sha), None),
            Some(Err(err)) => (None, Some(format!("recording: {err}"))),
            None => (None, None),
        };
        let mut notes = serde_json::Map::new();
        notes.insert("reason".into(), json!(reason));
        notes.insert(
            "recording_failed".into(),
            json!(
                session
                    .recording_failed
                    .load(std::sync::atomic::Ordering::SeqCst)
            ),
        );
        (sha, error, notes)
    }

    /// Closes a session that no call closed (reaped, frozen, host gone, shutdown) and writes its
    /// closing record: housekeeping, not a call, so the broker records it itself.
    async fn finish_session(&self, session: &Session, reason: &str) -> Option<String> {
        let (sha, error, notes) = self.shut(session, reason).await;
        let call_id = uuid::Uuid::now_v7().to_string();
        let call = CallRef {
            tenant: &session.tenant,
            principal: &session.principal,
            target: &session.target,
            action: "ssh_session_close",
            call_id: &call_id,
            session_id: Some(&session.id),
            approval_id: None,
        };
        let mut record = NewRecord::outcome(
            &call,
            &CallOutcome {
                error,
                credential_serial: Some(session.serial.to_string()),
                recording_sha256: sha.clone(),
                ..CallOutcome::default()
            },
        );
        if let Some(body) = record.body.as_object_mut() {
            body.extend(notes);
        }
        if let Err(err) = self.audit.append(record).await {
            tracing::error!(%err, "could not audit a session close");
        }
        sha
    }

    /// Closes sessions past their idle or lifetime limits. Run it periodically
    /// ([`SshBroker::spawn_reaper`]).
    pub async fn reap(&self) -> usize {
        let expired = self.sessions.take_expired();
        let count = expired.len();
        for (session, reason) in expired {
            self.finish_session(&session, reason).await;
        }
        count
    }

    /// Reaps every `every` until the broker is dropped.
    pub fn spawn_reaper(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(broker) = weak.upgrade() else { return };
                broker.reap().await;
            }
        })
    }

    /// Closes every session (server shutdown), recording why.
    pub async fn shutdown(&self) {
        for session in self.sessions.drain() {
            self.finish_session(&session, "shutdown").await;
        }
    }

    /// Closes the sessions a freeze names in `tenant`; returns how many.
    pub async fn freeze(&self, tenant: &str, frozen: meho_gateway::Frozen<'_>) -> usize {
        use meho_gateway::Frozen;
        let ended = self.sessions.take_matching(|s| {
            s.tenant == tenant
                && match frozen {
                    Frozen::Principal(p) => s.principal == p,
                    Frozen::Session(id) => s.id == id,
                    Frozen::Serial(serial) => s.serial == serial,
                }
        });
        let count = ended.len();
        for session in ended {
            self.finish_session(&session, "frozen").await;
        }
        count
    }

    /// How many sessions are open.
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// `ssh_put_file`: the bound content, over SFTP under a certificate pinned to
    /// `internal-sftp`.
    async fn put(
        &self,
        minted: Minted,
        path: &str,
        data: &[u8],
        server: &str,
        serial: u64,
    ) -> Result<Output, Failed> {
        let run = async {
            let conn = connect(minted.hops(), &self.options.connect).await?;
            let out = conn.put_file(path, data).await;
            conn.close().await;
            out
        };
        match run.await {
            Ok(written) => Ok(Output {
                value: json!({
                    "server": server, "path": path, "size": data.len(),
                    "sha256": written,
                    "serial": serial,
                }),
                outcome: transfer_outcome(serial),
                notes: serde_json::Map::new(),
            }),
            Err(err) => Err(failed(&err, Some(serial.to_string()))),
        }
    }

    /// `ssh_get_file`.
    async fn get(
        &self,
        minted: Minted,
        path: &str,
        server: &str,
        serial: u64,
    ) -> Result<Output, Failed> {
        let cap = self.options.file_transfer_max_bytes;
        let run = async {
            let conn = connect(minted.hops(), &self.options.connect).await?;
            let out = conn.get_file(path, cap).await;
            conn.close().await;
            out
        };
        match run.await {
            Ok(data) => {
                use base64::Engine;
                use sha2::Digest;
                let sha = hex::encode(sha2::Sha256::digest(&data));
                let text = String::from_utf8(data.clone()).ok();
                Ok(Output {
                    value: json!({
                        "server": server,
                        "path": path,
                        "size": data.len(),
                        "sha256": sha,
                        "serial": serial,
                        "content": text,
                        "content_base64": if text.is_none() {
                            Some(base64::engine::general_purpose::STANDARD.encode(&data))
                        } else {
                            None
                        },
                    }),
                    outcome: transfer_outcome(serial),
                    notes: serde_json::Map::new(),
                })
            }
            Err(err) => Err(failed(&err, Some(serial.to_string()))),
        }
    }
}

/// A finished transfer's outcome record: exit 0, nothing on stdout or stderr.
fn transfer_outcome(serial: u64) -> CallOutcome {
    outcome_of(
        &ExecOutput {
            exit_code: Some(0),
            ..ExecOutput::default()
        },
        serial,
    )
}

/// The broker as a gateway connector: the SSH tools.
#[derive(Debug, Clone)]
pub struct SshConnector {
    broker: Arc<SshBroker>,
}

impl SshConnector {
    /// Serves `broker`'s tools.
    pub fn new(broker: Arc<SshBroker>) -> Self {
        SshConnector { broker }
    }

    /// The broker behind it.
    pub fn broker(&self) -> &Arc<SshBroker> {
        &self.broker
    }
}

use meho_gateway::parse_arguments as parse;

impl Connector for SshConnector {
    type Action = Planned;
    type Credential = Minted;

    fn tools(&self) -> Vec<ToolSpec> {
        vec![
            ToolSpec::of::<ExecuteArgs>(
                "ssh_execute",
                "Run one command on a host under a per-call certificate that permits only that command. Returns stdout, stderr, exit_code, serial and warnings.",
                Tier::Read,
                Annotations::hints(false, true, false, true),
            ),
            ToolSpec::of::<SessionOpenArgs>(
                "ssh_session_open",
                "Open a session on a host (exec, shell or pty) for several commands over one connection.",
                Tier::Read,
                Annotations::hints(false, false, false, true),
            ),
            ToolSpec::of::<SessionExecArgs>(
                "ssh_session_exec",
                "Run a command in an open session; it is decided against the current policy first.",
                Tier::Read,
                Annotations::hints(false, true, false, true),
            ),
            ToolSpec::of::<SessionCloseArgs>(
                "ssh_session_close",
                "Close a session.",
                Tier::Read,
                Annotations::hints(false, false, true, true),
            ),
            ToolSpec::of::<PutFileArgs>(
                "ssh_put_file",
                "Upload a file over SFTP.",
                Tier::Write,
                Annotations::hints(false, true, true, true),
            ),
            ToolSpec::of::<GetFileArgs>(
                "ssh_get_file",
                "Download a file over SFTP.",
                Tier::Read,
                Annotations::hints(true, false, true, true),
            ),
        ]
    }

    fn plan<'a>(
        &'a self,
        call: CallContext<'a>,
        tool: &'a str,
        arguments: &'a Value,
    ) -> BoxFuture<'a, Result<Plan<Planned>, ToolError>> {
        Box::pin(self.broker.plan(call, tool, arguments))
    }

    fn authorize<'a>(
        &'a self,
        call: CallContext<'a>,
        plan: &'a Plan<Planned>,
        approval: Option<&'a meho_gateway::ApprovalClaim>,
    ) -> BoxFuture<'a, Result<Authorized<Minted>, Refusal>> {
        Box::pin(self.broker.authorize(call, plan, approval))
    }

    fn execute<'a>(
        &'a self,
        call: CallContext<'a>,
        plan: &'a Plan<Planned>,
        authorized: Authorized<Minted>,
        _receipt: &'a IntentReceipt,
    ) -> BoxFuture<'a, Result<Output, Failed>> {
        Box::pin(self.broker.execute(call, plan, authorized))
    }

    fn targets<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, Result<Vec<Target>, ToolError>> {
        Box::pin(async move {
            let hosts = self.broker.target_views(caller).await?;
            Ok(hosts
                .into_iter()
                .map(|host| {
                    let name = host.name.clone();
                    let mut detail = match json_of(&host) {
                        Value::Object(map) => map,
                        _ => serde_json::Map::new(),
                    };
                    detail.remove("name");
                    Target {
                        name,
                        kind: "ssh",
                        detail,
                    }
                })
                .collect())
        })
    }

    fn has_targets<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            self.broker
                .target_views(caller)
                .await
                .is_ok_and(|hosts| !hosts.is_empty())
        })
    }

    fn freeze<'a>(
        &'a self,
        tenant: &'a str,
        frozen: meho_gateway::Frozen<'a>,
    ) -> BoxFuture<'a, usize> {
        Box::pin(self.broker.freeze(tenant, frozen))
    }
}

#[cfg(test)]
mod tests {
    use meho_core::{Decision, ReasonCode, Tier};
    use meho_policy::{CommandShape, Decided};

    use super::{SshAction, runs_differently, summarize};

    fn exec(command: &str, sudo: bool) -> SshAction {
        SshAction::Exec {
            command: command.into(),
            sudo,
            sudo_user: None,
            pty: false,
            ttl_seconds: None,
        }
    }

    fn forcing(command: &str) -> Decided {
        Decided {
            decision: Decision::refused(ReasonCode::NeedsApproval, "r", Tier::Write),
            shape: CommandShape {
                force_command: Some(command.into()),
                elevation_prefix: None,
            },
        }
    }

    #[test]
    fn the_summary_says_what_runs_when_it_is_spelled_differently() {
        let plain = exec("ls -la", false);
        assert_eq!(
            summarize("ssh_execute", "web", &plain),
            "ssh_execute on web: ls -la"
        );
        assert_eq!(runs_differently(&plain, &forcing("ls -la")), None);
        let decoded = exec("git log $'a\\' ; touch /tmp/x #\\''", false);
        let runs = "git log 'a'\"'\"' ; touch /tmp/x #'\"'\"''";
        assert_eq!(
            runs_differently(&decoded, &forcing(runs)).as_deref(),
            Some(runs)
        );
        let sudo = exec("ls /root", true);
        assert_eq!(
            summarize("ssh_execute", "web", &sudo),
            "ssh_execute on web: ls /root (sudo)"
        );
        assert_eq!(
            runs_differently(&sudo, &forcing("sudo -n -- ls /root")),
            None
        );
        let file = SshAction::FilePut {
            path: "/etc/motd".into(),
            size: 1,
            sha256: "x".into(),
        };
        assert_eq!(
            summarize("ssh_put_file", "web", &file),
            "ssh_put_file on web: path /etc/motd"
        );
        assert_eq!(runs_differently(&file, &forcing("internal-sftp")), None);
    }
}
