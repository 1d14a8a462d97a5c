//! The SSH broker: the one path every SSH call takes.
//!
//! decide (the signer) → credential (the certificate, per hop) → execute (russh) → audit. The
//! broker records its own intent before anything runs and its outcome after; the signer records
//! every certificate it issues or refuses. The three records share the host and the serial.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meho_audit::{AuditLog, CallOutcome, CallRef, NewRecord, RecordKind};
use meho_core::{Decision, Tier};
use meho_gateway::{BoxFuture, Caller, Connector, ToolError, ToolSpec};
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
use crate::wire::{FileOp, HostView, Intent, Purpose, Role, SessionMode, SignResponse};

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

/// `list_targets` arguments (none).
#[derive(Debug, Clone, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {}

/// The SSH broker.
#[derive(Debug)]
pub struct SshBroker {
    signer: Arc<dyn SignerClient>,
    audit: Arc<AuditLog>,
    options: BrokerOptions,
    sessions: SessionTable,
}

fn signer_error(err: SignerFailure) -> ToolError {
    let code = match err.code.as_str() {
        "forbidden" => "forbidden",
        "unknown_host" => "unknown_target",
        "bad_request" => "invalid_arguments",
        "unreachable" => "unreachable",
        _ => "internal",
    };
    ToolError::new(code, err.message)
}

fn ssh_error(err: &Error) -> ToolError {
    let code = match err {
        Error::HostKeyMismatch { .. } => "host_key_mismatch",
        Error::AuthRefused { .. } => "auth_refused",
        Error::Connect { .. } => "unreachable",
        Error::Channel { .. } | Error::File { .. } => "execution_failed",
        _ => "internal",
    };
    ToolError::new(code, err.to_string())
}

/// A new call's id: one per tool call, on every record of it (the signer's included).
fn new_call_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn refusal(decision: &Decision) -> ToolError {
    let (code, message) = if decision.allowed && decision.require_approval {
        (
            "needs_approval",
            format!(
                "the call needs a human's approval (rule `{}`)",
                decision.rule
            ),
        )
    } else if let Some(problem) = decision.rule.strip_prefix("approval:") {
        (
            "approval_refused",
            format!(
                "the approval `{}` cannot authorize this call: {}",
                decision.approval_id.as_deref().unwrap_or("?"),
                match problem {
                    "different-call" => {
                        "it was given for a different call; any change needs a new approval"
                    }
                    "consumed" => "it was already used",
                    "expired" => "it expired",
                    "denied" => "it was denied",
                    "pending" => "nobody has approved it yet",
                    "not-found" => "no such approval in this tenant",
                    _ => "approvals cannot be checked here",
                }
            ),
        )
    } else {
        (
            "denied",
            format!(
                "denied by policy: {} (rule `{}`)",
                decision.reason_code, decision.rule
            ),
        )
    };
    ToolError::new(code, message).with_detail(json!({ "decision": decision }))
}

/// Refuses a decision the caller's role may not act on.
fn tier_allows(caller: &Caller, decision: &Decision) -> Result<(), ToolError> {
    if !decision.allowed || decision.require_approval {
        return Err(refusal(decision));
    }
    if decision.tier > caller.max_tier {
        return Err(ToolError::new(
            "denied",
            format!(
                "this call is {}-tier; the caller's role may run {}-tier actions only",
                decision.tier, caller.max_tier
            ),
        )
        .with_detail(json!({ "decision": decision })));
    }
    Ok(())
}

/// A `needs_approval` refusal carries the call an approval must be bound to: the tool, the
/// target and the canonical arguments (what the signer checks the approval against later), and
/// the held call's id, which the approval request's record carries so the two are one call in the
/// log (the id is not part of what the approval binds).
fn bind_call(
    error: ToolError,
    tool: &str,
    target: &str,
    arguments: &Value,
    call_id: &str,
) -> ToolError {
    if error.code != "needs_approval" {
        return error;
    }
    let mut detail = error.detail.clone().unwrap_or_else(|| json!({}));
    if let Some(object) = detail.as_object_mut() {
        object.insert(
            "call".into(),
            json!({ "tool": tool, "target": target, "arguments": arguments }),
        );
        object.insert("call_id".into(), json!(call_id));
    }
    ToolError {
        detail: Some(detail),
        ..error
    }
}

/// Another caller's session answers exactly like a missing one.
fn no_session(id: &str) -> ToolError {
    ToolError::new(
        "not_found",
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

fn outcome_of(out: &ExecOutput, started: Instant, serial: u64) -> CallOutcome {
    CallOutcome {
        exit_status: out.exit_code.map(i64::from),
        error: if out.timed_out {
            Some("exec timeout".to_owned())
        } else {
            out.exit_signal
                .as_ref()
                .map(|s| format!("killed by signal {s}"))
        },
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        credential_serial: Some(serial),
        output_bytes: (out.stdout.len() + out.stderr.len()) as u64
            + out.stdout_dropped
            + out.stderr_dropped,
        output_sha256: Some(out.sha256()),
        recording_sha256: None,
    }
}

/// Why a call did not produce a result, and whether its records are already written: a call
/// that failed after its intent was recorded has its outcome record; one refused before has none
/// yet, and [`SshBroker::settle`] writes its denial.
struct Failure {
    error: ToolError,
    audited: bool,
}

impl From<ToolError> for Failure {
    fn from(error: ToolError) -> Self {
        Failure {
            error,
            audited: false,
        }
    }
}

/// A signed hop before it is dialed.
struct Signed {
    view: HostView,
    key: Arc<PrivateKey>,
    certificate: Certificate,
}

impl SshBroker {
    /// A broker that gets certificates from `signer` and audits into `audit`.
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
    pub async fn list_servers(&self, caller: &Caller) -> Result<Vec<HostView>, ToolError> {
        self.signer
            .hosts(
                Some(&caller.principal),
                Some(&caller.tenant),
                caller.groups.as_deref(),
            )
            .await
            .map_err(signer_error)
    }

    /// `list_targets`: the caller's hosts, with the listing audited (what an agent learned is
    /// part of what it did).
    pub async fn list_targets(&self, caller: &Caller) -> Result<Vec<HostView>, ToolError> {
        let hosts = self.list_servers(caller).await?;
        let record = NewRecord {
            action: Some("list_targets".to_owned()),
            outcome: Some("ok".to_owned()),
            body: json!({
                "count": hosts.len(),
                "targets": hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
            }),
            ..NewRecord::new(&caller.tenant, RecordKind::Outcome, &caller.principal)
        };
        self.audit.append(record).await.map_err(|err| {
            ToolError::new(
                "internal",
                format!("the audit log is unavailable, so nothing is listed: {err}"),
            )
        })?;
        Ok(hosts)
    }

    /// Resolves `server` and its jump chain against a fresh host view, bastions first. New
    /// connections never use a stale view: if the signer cannot be asked, the call fails.
    async fn chain(&self, caller: &Caller, server: &str) -> Result<Vec<HostView>, ToolError> {
        let hosts = self.list_servers(caller).await?;
        let find = |name: &str| hosts.iter().find(|h| h.name == name).cloned();
        let mut chain = vec![find(server).ok_or_else(|| {
            ToolError::new(
                "unknown_target",
                format!("no host `{server}` that this caller may use"),
            )
        })?];
        while let Some(jump) = chain.last().and_then(|h| h.jump.clone()) {
            if chain.len() >= MAX_HOPS || chain.iter().any(|h| h.name == jump) {
                return Err(ToolError::new(
                    "internal",
                    format!("the jump chain of `{server}` loops or is longer than {MAX_HOPS} hops"),
                ));
            }
            chain.push(find(&jump).ok_or_else(|| {
                ToolError::new(
                    "forbidden",
                    format!("`{server}` jumps through `{jump}`, which this caller may not use"),
                )
            })?);
        }
        chain.reverse();
        Ok(chain)
    }

    /// What every intent of one call shares: who, where, and the call's id (which the signer's
    /// records carry too, so a call's credential or refusal is linked to it exactly).
    fn base_intent(caller: &Caller, host: &str, call_id: &str) -> Intent {
        Intent {
            host: host.to_owned(),
            call_id: Some(call_id.to_owned()),
            agent: Some(caller.principal.clone()),
            tenant: Some(caller.tenant.clone()),
            end_user: caller.end_user.clone(),
            end_user_groups: caller.groups.clone(),
            ..Intent::default()
        }
    }

    /// The approval the caller is collecting, bound to `tool` and its canonical `arguments`.
    fn claim(caller: &Caller, tool: &str, arguments: &Value) -> Option<crate::wire::ApprovalClaim> {
        caller
            .approval_id
            .as_ref()
            .map(|id| crate::wire::ApprovalClaim {
                id: id.clone(),
                tool: tool.to_owned(),
                arguments: arguments.clone(),
            })
    }

    /// Signs one hop with a fresh ephemeral key.
    async fn sign_hop(
        &self,
        view: &HostView,
        mut intent: Intent,
    ) -> Result<(Signed, SignResponse), ToolError> {
        let key = generate_ed25519("meho-ephemeral").map_err(|e| ssh_error(&e))?;
        intent.public_key = Some(
            key.public_key()
                .to_openssh()
                .map_err(|e| ToolError::new("internal", format!("encode public key: {e}")))?,
        );
        let answer = self.signer.sign(&intent).await.map_err(signer_error)?;
        let Some(line) = answer.certificate.as_deref() else {
            return Err(refusal(&answer.decision));
        };
        let certificate = Certificate::from_openssh(line).map_err(|e| {
            ToolError::new(
                "internal",
                format!("the signer sent an unreadable certificate: {e}"),
            )
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

    /// A caller limited below DESTRUCTIVE (a `read_only` role) may run only what the policy rates
    /// at or below its tier; the decision is asked for first, as a dry run, so nothing is issued
    /// for a call it may not make.
    async fn check_tier(&self, caller: &Caller, intent: &Intent) -> Result<(), ToolError> {
        if caller.max_tier >= Tier::Destructive {
            return Ok(());
        }
        let answer = self
            .signer
            .sign(&Intent {
                dry_run: true,
                public_key: None,
                ..intent.clone()
            })
            .await
            .map_err(signer_error)?;
        tier_allows(caller, &answer.decision)
    }

    /// Signs every bastion of `chain` (all but the last hop).
    async fn sign_bastions(
        &self,
        caller: &Caller,
        chain: &[HostView],
        call_id: &str,
    ) -> Result<Vec<Signed>, ToolError> {
        let mut signed = Vec::new();
        for view in chain.iter().take(chain.len().saturating_sub(1)) {
            let intent = Intent {
                role: Role::Bastion,
                ..Self::base_intent(caller, &view.name, call_id)
            };
            signed.push(self.sign_hop(view, intent).await?.0);
        }
        Ok(signed)
    }

    fn hops(bastions: Vec<Signed>, target: Signed) -> Vec<Hop> {
        bastions
            .into_iter()
            .chain(std::iter::once(target))
            .map(|s| Hop {
                view: s.view,
                key: s.key,
                certificate: s.certificate,
            })
            .collect()
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the refused call's parts, as the intent of an allowed one has them"
    )]
    async fn deny(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        session_id: Option<&str>,
        call_id: &str,
        arguments: Value,
        error: &ToolError,
    ) {
        let decision = error
            .detail
            .as_ref()
            .and_then(|d| d.get("decision"))
            .cloned()
            .unwrap_or(Value::Null);
        let record = NewRecord {
            target: Some(target.to_owned()),
            action: Some(action.to_owned()),
            outcome: Some(error.code.clone()),
            session_id: session_id.map(str::to_owned),
            call_id: Some(call_id.to_owned()),
            body: json!({ "arguments": arguments, "decision": decision, "error": error.message }),
            ..NewRecord::new(&caller.tenant, RecordKind::Denial, &caller.principal)
        };
        if let Err(err) = self.audit.append(record).await {
            tracing::error!(%err, "could not audit a refused SSH call");
        }
    }

    /// `ssh_execute`: one command under a certificate whose `force-command` is exactly it.
    pub async fn execute(&self, caller: &Caller, args: &ExecuteArgs) -> Result<Value, ToolError> {
        let arguments = json!({
            "server": args.server, "command": args.command, "ttl_seconds": args.ttl_seconds,
            "sudo": args.sudo, "sudo_user": args.sudo_user, "pty": args.pty, "dry_run": args.dry_run,
        });
        let call_id = new_call_id();
        let result = self.execute_inner(caller, args, &arguments, &call_id).await;
        self.settle(
            caller,
            "ssh_execute",
            &args.server,
            None,
            &call_id,
            arguments,
            result,
        )
        .await
    }

    /// Writes the denial record of a call refused before its intent, and unwraps the failure.
    #[expect(
        clippy::too_many_arguments,
        reason = "the call's parts, as `deny` records them"
    )]
    async fn settle<T>(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        session_id: Option<&str>,
        call_id: &str,
        arguments: Value,
        result: Result<T, Failure>,
    ) -> Result<T, ToolError> {
        match result {
            Ok(value) => Ok(value),
            Err(failure) => {
                let error = bind_call(failure.error, action, target, &arguments, call_id);
                if !failure.audited {
                    self.deny(
                        caller, action, target, session_id, call_id, arguments, &error,
                    )
                    .await;
                }
                Err(error)
            }
        }
    }

    async fn execute_inner(
        &self,
        caller: &Caller,
        args: &ExecuteArgs,
        arguments: &Value,
        call_id: &str,
    ) -> Result<Value, Failure> {
        let intent = Intent {
            command: Some(args.command.clone()),
            ttl_seconds: args.ttl_seconds,
            sudo: args.sudo,
            sudo_user: args.sudo_user.clone(),
            pty: args.pty,
            approval: Self::claim(caller, "ssh_execute", arguments),
            ..Self::base_intent(caller, &args.server, call_id)
        };
        if args.dry_run {
            // The same host resolution as a real call, so a dry run reveals nothing more.
            self.chain(caller, &args.server).await?;
            let answer = self
                .signer
                .sign(&Intent {
                    dry_run: true,
                    ..intent
                })
                .await
                .map_err(signer_error)?;
            return Ok(json!({ "dry_run": true, "decision": answer.decision }));
        }
        let chain = self.chain(caller, &args.server).await?;
        let target_view = chain
            .last()
            .cloned()
            .ok_or_else(|| ToolError::new("internal", "empty chain"))?;
        self.check_tier(caller, &intent).await?;
        let (target, answer) = self.sign_hop(&target_view, intent).await?;
        let serial = target.certificate.serial();
        let bastions = self.sign_bastions(caller, &chain, call_id).await?;
        self.run_with_intent(
            caller,
            "ssh_execute",
            &args.server,
            None,
            call_id,
            arguments.clone(),
            &answer.decision,
            serial,
            async {
                let conn = connect(Self::hops(bastions, target), &self.options.connect).await?;
                // The certificate forces the command; sending it too keeps sshd's log readable.
                let command = answer
                    .decision
                    .force_command
                    .as_deref()
                    .unwrap_or(&args.command);
                let out = conn
                    .exec(
                        command,
                        args.pty,
                        self.options.output_cap_bytes,
                        self.options.exec_timeout,
                    )
                    .await;
                conn.close().await;
                out
            },
        )
        .await
        .map(|out| {
            serde_json::to_value(exec_result(&out, serial, answer.decision.warnings.clone()))
                .unwrap_or(Value::Null)
        })
    }

    /// Records the intent (fail closed), runs `work`, records the outcome.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site shape per tool; a struct would only rename them"
    )]
    async fn run_with_intent<F>(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        session_id: Option<&str>,
        call_id: &str,
        arguments: Value,
        decision: &Decision,
        serial: u64,
        work: F,
    ) -> Result<ExecOutput, Failure>
    where
        F: std::future::Future<Output = Result<ExecOutput, Error>>,
    {
        let call = CallRef {
            tenant: &caller.tenant,
            principal: &caller.principal,
            target,
            action,
            call_id,
            session_id,
            approval_id: decision.approval_id.as_deref(),
        };
        let receipt = self
            .audit
            .record_intent(&call, arguments, decision)
            .await
            .map_err(|err| {
                ToolError::new(
                    "internal",
                    format!("the audit log is unavailable, so nothing was run: {err}"),
                )
            })?;
        let started = Instant::now();
        match work.await {
            Ok(out) => {
                if let Err(err) = self
                    .audit
                    .record_outcome(receipt, &outcome_of(&out, started, serial))
                    .await
                {
                    tracing::error!(%err, "could not audit an SSH call's outcome");
                }
                Ok(out)
            }
            Err(err) => {
                let outcome = CallOutcome {
                    error: Some(err.to_string()),
                    duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    credential_serial: Some(serial),
                    ..CallOutcome::default()
                };
                if let Err(audit_err) = self.audit.record_outcome(receipt, &outcome).await {
                    tracing::error!(%audit_err, "could not audit an SSH call's failure");
                }
                Err(Failure {
                    error: ssh_error(&err),
                    audited: true,
                })
            }
        }
    }

    /// `ssh_session_open`.
    pub async fn session_open(
        &self,
        caller: &Caller,
        args: &SessionOpenArgs,
    ) -> Result<Value, ToolError> {
        let arguments = json!({
            "server": args.server, "mode": args.mode, "ttl_seconds": args.ttl_seconds,
            "sudo": args.sudo, "sudo_user": args.sudo_user,
        });
        let session_id = format!("s-{}", uuid::Uuid::now_v7().simple());
        let call_id = new_call_id();
        let result = self
            .session_open_inner(caller, args, &session_id, &call_id, &arguments)
            .await;
        if let Err(error) = &result {
            self.deny(
                caller,
                "ssh_session_open",
                &args.server,
                Some(&session_id),
                &call_id,
                arguments,
                error,
            )
            .await;
        }
        result
    }

    async fn session_open_inner(
        &self,
        caller: &Caller,
        args: &SessionOpenArgs,
        session_id: &str,
        call_id: &str,
        arguments: &Value,
    ) -> Result<Value, ToolError> {
        self.sessions
            .check_capacity(&caller.principal)
            .map_err(|m| ToolError::new("limit", m))?;
        if args.mode != SessionMode::Exec && caller.max_tier < Tier::Destructive {
            return Err(ToolError::new(
                "denied",
                format!(
                    "a {} session cannot be rated command by command; callers limited to {}-tier actions may open exec sessions only",
                    args.mode.as_str(),
                    caller.max_tier
                ),
            ));
        }
        let chain = self.chain(caller, &args.server).await?;
        let target_view = chain
            .last()
            .cloned()
            .ok_or_else(|| ToolError::new("internal", "empty chain"))?;
        let intent = Intent {
            purpose: Purpose::Session,
            session_mode: Some(args.mode),
            ttl_seconds: args.ttl_seconds,
            sudo: args.sudo,
            sudo_user: args.sudo_user.clone(),
            pty: args.mode == SessionMode::Pty,
            ..Self::base_intent(caller, &args.server, call_id)
        };
        let (target, answer) = self.sign_hop(&target_view, intent).await?;
        let serial = target.certificate.serial();
        let bastions = self.sign_bastions(caller, &chain, call_id).await?;
        let elevation_prefix = answer.elevation_prefix.clone();

        let call = CallRef {
            tenant: &caller.tenant,
            principal: &caller.principal,
            target: &args.server,
            action: "ssh_session_open",
            call_id,
            session_id: Some(session_id),
            approval_id: None,
        };
        let receipt = self
            .audit
            .record_intent(&call, arguments.clone(), &answer.decision)
            .await
            .map_err(|err| {
                ToolError::new("internal", format!("the audit log is unavailable: {err}"))
            })?;
        let started = Instant::now();
        let opened = self
            .open_connection(
                args,
                session_id,
                bastions,
                target,
                elevation_prefix.as_deref(),
            )
            .await;
        let outcome = CallOutcome {
            error: opened.as_ref().err().map(|e| e.message.clone()),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            credential_serial: Some(serial),
            ..CallOutcome::default()
        };
        if let Err(err) = self.audit.record_outcome(receipt, &outcome).await {
            tracing::error!(%err, "could not audit a session open");
        }
        let (conn, shell, recorder) = opened?;
        let recording = recorder.as_ref().map(|r| r.path().display().to_string());
        let session = Arc::new(Session::new(
            session_id.to_owned(),
            SessionInit {
                caller: caller.principal.clone(),
                end_user: caller.end_user.clone(),
                tenant: caller.tenant.clone(),
                host: args.server.clone(),
                mode: args.mode,
                sudo: args.sudo || args.sudo_user.is_some(),
                sudo_user: args.sudo_user.clone(),
                serial,
                elevation_prefix,
            },
            conn,
            shell,
            recorder,
        ));
        if let Err(session) = self.sessions.insert(session) {
            let _ = session.shutdown().await;
            return Err(ToolError::new(
                "limit",
                "session limit reached while opening",
            ));
        }
        Ok(json!({
            "session_id": session_id,
            "server": args.server,
            "mode": args.mode,
            "serial": serial,
            "recording": recording,
            "idle_timeout_seconds": self.options.sessions.idle_timeout.as_secs(),
            "max_lifetime_seconds": self.options.sessions.max_lifetime.as_secs(),
        }))
    }

    async fn open_connection(
        &self,
        args: &SessionOpenArgs,
        session_id: &str,
        bastions: Vec<Signed>,
        target: Signed,
        elevation_prefix: Option<&str>,
    ) -> Result<(Connection, Option<Shell>, Option<Recorder>), ToolError> {
        let conn = connect(Self::hops(bastions, target), &self.options.connect)
            .await
            .map_err(|e| ssh_error(&e))?;
        if args.mode == SessionMode::Exec {
            return Ok((conn, None, None));
        }
        let recorder = match Recorder::create(
            &self.options.recording_dir,
            session_id,
            &format!("meho session {session_id} on {}", args.server),
            200,
            50,
        ) {
            Ok(recorder) => Some(recorder),
            Err(err) if self.options.recording_strict => {
                conn.close().await;
                return Err(ToolError::new(
                    "execution_failed",
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
            args.mode == SessionMode::Pty,
            self.options.exec_timeout,
        )
        .await;
        match shell {
            Ok(shell) => Ok((conn, Some(shell), recorder)),
            Err(err) => {
                conn.close().await;
                Err(ToolError::new(
                    "execution_failed",
                    format!(
                        "`{}`: could not start the session shell: {err}",
                        args.server
                    ),
                ))
            }
        }
    }

    /// `ssh_session_exec`: re-decides the command against the current policy and rechecks the
    /// host before sending it.
    pub async fn session_exec(
        &self,
        caller: &Caller,
        args: &SessionExecArgs,
    ) -> Result<Value, ToolError> {
        let Some(session) = self.sessions.get(&args.session_id, &caller.principal) else {
            return Err(no_session(&args.session_id));
        };
        // The session's host and sudo state are part of the call an approval is bound to.
        let arguments = json!({
            "session_id": args.session_id, "command": args.command, "server": session.host,
            "mode": session.mode, "sudo": session.sudo, "sudo_user": session.sudo_user,
        });
        let call_id = new_call_id();
        let result = self
            .session_exec_inner(caller, &session, args, &arguments, &call_id)
            .await;
        self.settle(
            caller,
            "ssh_session_exec",
            &session.host,
            Some(&session.id),
            &call_id,
            arguments,
            result,
        )
        .await
    }

    async fn session_exec_inner(
        &self,
        caller: &Caller,
        session: &Arc<Session>,
        args: &SessionExecArgs,
        arguments: &Value,
        call_id: &str,
    ) -> Result<Value, Failure> {
        session.touch();
        // 1. The host must still be what the session dialed.
        let chain = match self.chain(caller, &session.host).await {
            Ok(chain) => chain,
            Err(err) if err.code == "unreachable" => return Err(err.into()),
            Err(err) => {
                self.end_session(session, "host_removed").await;
                return Err(ToolError::new(
                    "session_ended",
                    format!("the session was closed: {}", err.message),
                )
                .into());
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
                "session_ended",
                format!(
                    "`{}` changed (address, user, host key or jump) since the session opened; the session was closed, open a new one",
                    session.host
                ),
            )
            .into());
        }
        // 2. The command, decided against the current policy.
        let intent = Intent {
            purpose: Purpose::Session,
            session_mode: Some(session.mode),
            command: Some(args.command.clone()),
            sudo: session.sudo,
            sudo_user: session.sudo_user.clone(),
            pty: session.mode == SessionMode::Pty,
            dry_run: true,
            approval: Self::claim(caller, "ssh_session_exec", arguments),
            ..Self::base_intent(caller, &session.host, call_id)
        };
        let answer = self.signer.sign(&intent).await.map_err(signer_error)?;
        tier_allows(caller, &answer.decision)?;
        if args.command.contains(['\n', '\r']) {
            // The engine refuses these already; the shell protocol depends on it, so check again.
            return Err(ToolError::new(
                "invalid_arguments",
                "newlines are not allowed in commands",
            )
            .into());
        }
        // 3. Run, recorded.
        let _ = session.record(Stream::Input, format!("{}\n", args.command).as_bytes());
        let out = self
            .run_with_intent(
                caller,
                "ssh_session_exec",
                &session.host,
                Some(&session.id),
                call_id,
                arguments.clone(),
                &answer.decision,
                session.serial,
                async {
                    match session.mode {
                        SessionMode::Exec => {
                            // Elevation is part of the decided force-command shape.
                            let command = answer
                                .decision
                                .force_command
                                .as_deref()
                                .unwrap_or(&args.command);
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
                                host: session.host.clone(),
                                message: "the session's shell is gone".into(),
                            })?;
                            shell
                                .run(
                                    &args.command,
                                    self.options.output_cap_bytes,
                                    self.options.exec_timeout,
                                )
                                .await
                        }
                    }
                },
            )
            .await;
        let out = match out {
            Ok(out) => out,
            Err(err) => {
                if session.mode != SessionMode::Exec {
                    // A shell that failed mid-command is in an unknown state.
                    self.end_session(session, "shell_failed").await;
                }
                return Err(err);
            }
        };
        let recorded = session
            .record(Stream::Output, &out.stdout)
            .and_then(|()| session.record(Stream::Error, &out.stderr));
        if let Err(err) = recorded
            && self.options.recording_strict
        {
            self.end_session(session, "recording_failed").await;
            return Err(Failure {
                error: ToolError::new(
                    "execution_failed",
                    format!("recording is strict and failed ({err}); the session was closed"),
                ),
                audited: true,
            });
        }
        if out.timed_out && session.mode != SessionMode::Exec {
            self.end_session(session, "exec_timeout").await;
        }
        session.touch();
        Ok(serde_json::to_value(exec_result(
            &out,
            session.serial,
            answer.decision.warnings.clone(),
        ))
        .unwrap_or(Value::Null))
    }

    /// `ssh_session_close`.
    pub async fn session_close(
        &self,
        caller: &Caller,
        args: &SessionCloseArgs,
    ) -> Result<Value, ToolError> {
        let Some(session) = self.sessions.remove(&args.session_id, &caller.principal) else {
            return Err(no_session(&args.session_id));
        };
        let recording = self.finish_session(&session, "closed").await;
        Ok(json!({ "session_id": session.id, "closed": true, "recording_sha256": recording }))
    }

    async fn end_session(&self, session: &Arc<Session>, reason: &str) {
        if self.sessions.remove(&session.id, &session.caller).is_some() {
            self.finish_session(session, reason).await;
        }
    }

    /// Shuts a removed session down and writes its closing record with the recording's sha256.
    async fn finish_session(&self, session: &Session, reason: &str) -> Option<String> {
        let recording = session.shutdown().await;
        let (sha, error) = match recording {
            Some(Ok(sha)) => (Some(sha), None),
            Some(Err(err)) => (None, Some(format!("recording: {err}"))),
            None => (None, None),
        };
        let call_id = new_call_id();
        let call = CallRef {
            tenant: &session.tenant,
            principal: &session.caller,
            target: &session.host,
            action: "ssh_session_close",
            call_id: &call_id,
            session_id: Some(&session.id),
            approval_id: None,
        };
        let mut record = NewRecord::outcome(
            &call,
            &CallOutcome {
                error: error.clone(),
                credential_serial: Some(session.serial),
                recording_sha256: sha.clone(),
                ..CallOutcome::default()
            },
        );
        if let Some(body) = record.body.as_object_mut() {
            body.insert("reason".into(), json!(reason));
            body.insert(
                "recording_failed".into(),
                json!(
                    session
                        .recording_failed
                        .load(std::sync::atomic::Ordering::SeqCst)
                ),
            );
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
                    Frozen::Principal(p) => s.caller == p,
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

    /// `ssh_put_file`.
    pub async fn put_file(&self, caller: &Caller, args: &PutFileArgs) -> Result<Value, ToolError> {
        let data = match (&args.content, &args.content_base64) {
            (Some(text), None) => text.clone().into_bytes(),
            (None, Some(b64)) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| {
                        ToolError::new("invalid_arguments", format!("content_base64: {e}"))
                    })?
            }
            _ => {
                return Err(ToolError::new(
                    "invalid_arguments",
                    "give exactly one of `content` and `content_base64`",
                ));
            }
        };
        let sha = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&data))
        };
        let arguments = json!({
            "server": args.server, "path": args.path, "size": data.len(), "sha256": sha,
        });
        let result = self
            .transfer(
                caller,
                FileOp::Put,
                &args.server,
                &args.path,
                &arguments,
                async |conn: Connection| {
                    let out = conn.put_file(&args.path, &data).await;
                    conn.close().await;
                    out.map(|sha| (Vec::new(), sha))
                },
                Some(data.len() as u64),
            )
            .await;
        result.map(|(serial, _, sha)| {
            json!({ "server": args.server, "path": args.path, "size": data.len(), "sha256": sha, "serial": serial })
        })
    }

    /// `ssh_get_file`.
    pub async fn get_file(&self, caller: &Caller, args: &GetFileArgs) -> Result<Value, ToolError> {
        let arguments = json!({ "server": args.server, "path": args.path });
        let cap = self.options.file_transfer_max_bytes;
        let result = self
            .transfer(
                caller,
                FileOp::Get,
                &args.server,
                &args.path,
                &arguments,
                async |conn: Connection| {
                    let out = conn.get_file(&args.path, cap).await;
                    conn.close().await;
                    out.map(|data| {
                        use sha2::Digest;
                        let sha = hex::encode(sha2::Sha256::digest(&data));
                        (data, sha)
                    })
                },
                None,
            )
            .await;
        result.map(|(serial, data, sha)| {
            use base64::Engine;
            let text = String::from_utf8(data.clone()).ok();
            json!({
                "server": args.server,
                "path": args.path,
                "size": data.len(),
                "sha256": sha,
                "serial": serial,
                "content": text,
                "content_base64": if text.is_none() {
                    Some(base64::engine::general_purpose::STANDARD.encode(&data))
                } else {
                    None
                },
            })
        })
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "put and get share this; the closure differs"
    )]
    async fn transfer<F>(
        &self,
        caller: &Caller,
        op: FileOp,
        server: &str,
        path: &str,
        arguments: &Value,
        work: F,
        upload_size: Option<u64>,
    ) -> Result<(u64, Vec<u8>, String), ToolError>
    where
        F: AsyncFnOnce(Connection) -> Result<(Vec<u8>, String), Error>,
    {
        let action = match op {
            FileOp::Put => "ssh_put_file",
            FileOp::Get => "ssh_get_file",
        };
        let call_id = &new_call_id();
        let inner = async {
            if let Some(size) = upload_size
                && size > self.options.file_transfer_max_bytes
            {
                return Err(Failure::from(ToolError::new(
                    "limit",
                    format!(
                        "the file is {size} bytes, over the {}-byte transfer cap",
                        self.options.file_transfer_max_bytes
                    ),
                )));
            }
            let chain = self.chain(caller, server).await?;
            let target_view = chain
                .last()
                .cloned()
                .ok_or_else(|| ToolError::new("internal", "empty chain"))?;
            let intent = Intent {
                purpose: Purpose::File,
                file_op: Some(op),
                path: Some(path.to_owned()),
                approval: Self::claim(caller, action, arguments),
                ..Self::base_intent(caller, server, call_id)
            };
            self.check_tier(caller, &intent).await?;
            let (target, answer) = self.sign_hop(&target_view, intent).await?;
            let serial = target.certificate.serial();
            let bastions = self.sign_bastions(caller, &chain, call_id).await?;
            let mut payload = None;
            let out = self
                .run_with_intent(
                    caller,
                    action,
                    server,
                    None,
                    call_id,
                    arguments.clone(),
                    &answer.decision,
                    serial,
                    async {
                        let conn =
                            connect(Self::hops(bastions, target), &self.options.connect).await?;
                        let (data, sha) = work(conn).await?;
                        let out = ExecOutput {
                            exit_code: Some(0),
                            stdout: Vec::new(),
                            ..ExecOutput::default()
                        };
                        payload = Some((data, sha));
                        Ok(out)
                    },
                )
                .await?;
            drop(out);
            let (data, sha) = payload.unwrap_or_default();
            Ok((serial, data, sha))
        };
        let result = inner.await;
        self.settle(
            caller,
            action,
            server,
            None,
            call_id,
            arguments.clone(),
            result,
        )
        .await
    }
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

fn parse<T: serde::de::DeserializeOwned>(tool: &str, arguments: Value) -> Result<T, ToolError> {
    serde_json::from_value(arguments)
        .map_err(|err| ToolError::new("invalid_arguments", format!("{tool}: {err}")))
}

fn spec<T: JsonSchema>(name: &str, description: &str) -> ToolSpec {
    ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        input_schema: serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null),
    }
}

impl Connector for SshConnector {
    fn tools(&self) -> Vec<ToolSpec> {
        vec![
            spec::<ListArgs>(
                "list_targets",
                "List the targets (SSH hosts) you may use in your tenant, with what each allows.",
            ),
            spec::<ExecuteArgs>(
                "ssh_execute",
                "Run one command on a host under a per-call certificate that permits only that command. Returns stdout, stderr, exit_code, serial and warnings.",
            ),
            spec::<SessionOpenArgs>(
                "ssh_session_open",
                "Open a session on a host (exec, shell or pty) for several commands over one connection.",
            ),
            spec::<SessionExecArgs>(
                "ssh_session_exec",
                "Run a command in an open session; it is decided against the current policy first.",
            ),
            spec::<SessionCloseArgs>("ssh_session_close", "Close a session."),
            spec::<PutFileArgs>("ssh_put_file", "Upload a file over SFTP."),
            spec::<GetFileArgs>("ssh_get_file", "Download a file over SFTP."),
        ]
    }

    fn call<'a>(
        &'a self,
        caller: &'a Caller,
        tool: &'a str,
        arguments: Value,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let broker = &self.broker;
            match tool {
                "list_targets" => {
                    let _: ListArgs = parse(tool, arguments)?;
                    let hosts = broker.list_targets(caller).await?;
                    let targets: Vec<Value> = hosts
                        .into_iter()
                        .map(|h| {
                            let mut target = serde_json::to_value(h).unwrap_or(Value::Null);
                            if let Some(object) = target.as_object_mut() {
                                object.insert("kind".into(), json!("ssh"));
                            }
                            target
                        })
                        .collect();
                    Ok(json!({ "targets": targets }))
                }
                "ssh_execute" => broker.execute(caller, &parse(tool, arguments)?).await,
                "ssh_session_open" => broker.session_open(caller, &parse(tool, arguments)?).await,
                "ssh_session_exec" => broker.session_exec(caller, &parse(tool, arguments)?).await,
                "ssh_session_close" => broker.session_close(caller, &parse(tool, arguments)?).await,
                "ssh_put_file" => broker.put_file(caller, &parse(tool, arguments)?).await,
                "ssh_get_file" => broker.get_file(caller, &parse(tool, arguments)?).await,
                other => Err(ToolError::new(
                    "unknown_tool",
                    format!("no tool named `{other}`"),
                )),
            }
        })
    }

    fn has_targets<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            self.broker
                .list_servers(caller)
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
