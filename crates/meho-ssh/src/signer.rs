//! The signer: the only holder of the CA keys and of the host policy.
//!
//! It takes an [`Intent`] and a public key, decides, and (when the decision allows) signs a
//! certificate whose constraints come from the policy alone: principal, source address, TTL
//! ceiling, and for one-shot calls the exact `force-command` the decision shaped. Every answer is
//! audited before it is returned; if the audit write fails, no certificate leaves.
//!
//! The same code runs in-process under `meho serve` and behind mutual TLS under `meho signer`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use meho_audit::{AuditLog, NewRecord, RecordKind};
use meho_config::Host;
use meho_core::{Decision, ReasonCode};
use meho_policy::{CommandShape, Decided, Elevation, Overlay, Request};
use meho_vault::IdentityClaims;
use russh::keys::ssh_key::{Algorithm, HashAlg, PublicKey};
use serde_json::json;

use crate::ca::{Ca, CaSet, CertSpec, random_bytes};
use crate::vault_ca::VaultCaError;
use crate::wire::{FileOp, HostView, Intent, Purpose, Role, SessionMode, SignResponse, SshAction};

/// Clock skew allowance: certificates are valid from 30 s before issue.
pub const BACKDATE_SECONDS: u64 = 30;

/// Why the signer refused to answer (as opposed to answering with a refusal).
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The principal may not use this host or this signer.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No such host.
    #[error("unknown host `{0}`")]
    UnknownHost(String),
    /// The intent is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The CA in Vault could not be reached. Nothing was issued.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The signer could not do its job (no CA, audit down, …). Nothing was issued.
    #[error("signer error: {0}")]
    Internal(String),
}

impl SignError {
    /// The stable code of [`crate::wire::ErrorBody`].
    pub fn code(&self) -> &'static str {
        match self {
            SignError::Forbidden(_) => "forbidden",
            SignError::UnknownHost(_) => "unknown_host",
            SignError::BadRequest(_) => "bad_request",
            SignError::Unreachable(_) => "unreachable",
            SignError::Internal(_) => "internal",
        }
    }
}

/// Hosts and CAs: what a reload swaps.
#[derive(Debug, Clone)]
pub struct SignerState {
    /// Hosts by name.
    pub hosts: BTreeMap<String, Host>,
    /// CA keys by group.
    pub cas: CaSet,
}

/// The human-in-the-loop state the signer reads: approvals to redeem, and the grants and
/// waivers that overlay host policies.
#[derive(Debug, Clone)]
pub struct SignerStore {
    /// Approvals, consumed as calls are authorized.
    pub approvals: meho_approvals::Approvals,
    /// Grants and waivers.
    pub grants: meho_approvals::Grants,
}

/// The signer.
#[derive(Debug)]
pub struct Signer {
    state: RwLock<Arc<SignerState>>,
    audit: Arc<AuditLog>,
    tenant: String,
    store: Option<SignerStore>,
}

impl Signer {
    /// A signer over `state` that audits into `audit` under `tenant`.
    pub fn new(state: SignerState, audit: Arc<AuditLog>, tenant: impl Into<String>) -> Self {
        Signer {
            state: RwLock::new(Arc::new(state)),
            audit,
            tenant: tenant.into(),
            store: None,
        }
    }

    /// Reads approvals, grants and waivers from `store`. Without one, no approval can be redeemed
    /// (calls that need one stay refused) and host policies apply without overlay.
    #[must_use]
    pub fn with_store(mut self, store: SignerStore) -> Self {
        self.store = Some(store);
        self
    }

    /// The grants and waivers in force for the target of `intent`. They only ever widen the
    /// baseline, so when the store cannot be read the decision goes on without them (narrower,
    /// never wider) and says so.
    async fn overlay(
        &self,
        intent: &Intent,
    ) -> (
        Vec<meho_policy::Grant>,
        Vec<meho_policy::Waiver>,
        Option<String>,
    ) {
        let Some(store) = &self.store else {
            return (Vec::new(), Vec::new(), None);
        };
        if intent.role != Role::Target {
            return (Vec::new(), Vec::new(), None);
        }
        store
            .grants
            .overlay_or_baseline(self.chain_for(intent), &intent.target)
            .await
    }

    /// Redeems the approval the intent carries, consuming it at the moment of authorization (the
    /// issue of a certificate, or a session command's preflight); a pure dry run (the tier check
    /// before a real sign) only verifies it. A `require_approval` decision becomes an allowed one.
    ///
    /// An approval is consumed exactly once whether or not it is still needed: when a waiver
    /// (approve-and-learn) or a grant already allows the call, the call that collects the
    /// approval still consumes it and carries its id, and a second collection is refused; the
    /// waiver governs only calls made without the approval. A refused call (deny wins) leaves
    /// the approval untouched.
    async fn redeem(
        &self,
        principal: &str,
        intent: &Intent,
        decided: Decided,
    ) -> Result<Decided, SignError> {
        let Some(claim) = intent.approval.as_ref() else {
            return Ok(decided);
        };
        if decided.decision.refuses() {
            return Ok(decided);
        }
        use meho_gateway::redeem::{Redeem, redeem, refused_claim};
        let Some(store) = &self.store else {
            return Ok(refused_claim(&claim.id, "approval:unavailable", &decided));
        };
        let action = match claim_matches(intent, claim) {
            Ok(action) => action,
            Err(why) => {
                tracing::info!(approval = %claim.id, %why, "approval presented for another call");
                return Ok(refused_claim(
                    &claim.id,
                    "approval:different-call",
                    &decided,
                ));
            }
        };
        // The approval is bound to the hash of exactly this call: tenant, requester, host and
        // the action (the gateway hashed the same four when it held the call).
        let call = meho_approvals::Call {
            tenant: self.chain_for(intent).to_owned(),
            requester: intent
                .principal
                .clone()
                .unwrap_or_else(|| principal.to_owned()),
            target: intent.target.clone(),
            tool: String::new(),
            action: serde_json::to_value(&action)
                .map_err(|e| SignError::Internal(format!("encode the action: {e}")))?,
        };
        let consume =
            !intent.dry_run || (intent.purpose == Purpose::Session && intent.command.is_some());
        let mode = if consume {
            Redeem::Consume
        } else {
            Redeem::Check
        };
        redeem(&store.approvals, &claim.id, &call, decided, mode)
            .await
            .map_err(|err| {
                SignError::Internal(format!(
                    "approvals unavailable, nothing issued (fail closed): {err}"
                ))
            })
    }

    /// Swaps hosts and CAs atomically; calls in flight finish on the old state.
    pub fn reload(&self, state: SignerState) {
        let mut guard = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = Arc::new(state);
    }

    fn state(&self) -> Arc<SignerState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The hosts `principal` (in `tenant`, when given, and a human in `end_user_groups`, when known)
    /// may use.
    pub fn hosts(
        &self,
        principal: &str,
        tenant: Option<&str>,
        end_user_groups: Option<&[String]>,
    ) -> Vec<HostView> {
        self.state()
            .hosts
            .values()
            .filter(|h| tenant.is_none_or(|t| h.tenant == t))
            .filter(|h| access(h, principal, end_user_groups).is_ok())
            .map(view)
            .collect()
    }

    /// Decides `intent` for `principal` and, when allowed and not a dry run, signs its public key.
    pub async fn sign(&self, principal: &str, intent: &Intent) -> Result<SignResponse, SignError> {
        let state = self.state();
        // Another tenant's host does not exist for this call.
        let Some(host) = state
            .hosts
            .get(&intent.target)
            .filter(|h| intent.tenant.as_deref().is_none_or(|t| h.tenant == t))
        else {
            self.audit_refusal(principal, intent, "unknown_host", "unknown host")
                .await?;
            return Err(SignError::UnknownHost(intent.target.clone()));
        };
        if let Err(why) = access(host, principal, intent.end_user_groups.as_deref()) {
            self.audit_refusal(principal, intent, "forbidden", &why)
                .await?;
            return Err(SignError::Forbidden(why));
        }
        let now = unix_now();
        let elevation = Elevation::from_request(intent.sudo, intent.sudo_user.as_deref());
        let mut decided = decide(host, principal, intent, &elevation, now, Overlay::default());
        if !decided.decision.allows() {
            // Grants and waivers only widen: they can change nothing the baseline allows
            // outright, so the store is asked only when the baseline refuses or holds the call.
            let (grants, waivers, overlay_warning) = self.overlay(intent).await;
            decided = decide(
                host,
                principal,
                intent,
                &elevation,
                now,
                Overlay {
                    grants: &grants,
                    waivers: &waivers,
                },
            );
            decided.decision.warnings.extend(overlay_warning);
        }
        // The principal's role caps the tier it may run: nothing is issued (and no approval is
        // consumed) for a call rated above it.
        if let Some(max) = intent.max_tier {
            decided.decision.cap_tier(max);
            if decided.decision.refuses() {
                decided.shape = meho_policy::CommandShape::default();
            }
        }
        let decided = self.redeem(principal, intent, decided).await?;
        if !decided.decision.allows() {
            self.audit_decision(RecordKind::Denial, principal, intent, &decided, json!({}))
                .await?;
            return Ok(SignResponse {
                decision: decided,
                certificate: None,
                serial: None,
                elevation_prefix: None,
                valid_before: None,
            });
        }
        if intent.dry_run {
            self.audit_decision(
                RecordKind::Credential,
                principal,
                intent,
                &decided,
                json!({ "dry_run": true }),
            )
            .await?;
            return Ok(SignResponse {
                elevation_prefix: decided.shape.elevation_prefix.clone(),
                decision: decided,
                certificate: None,
                serial: None,
                valid_before: None,
            });
        }

        let public_key = parse_public_key(intent.public_key.as_deref())?;
        let Some(ca) = state.cas.for_groups(&host.groups) else {
            return Err(SignError::Internal(format!(
                "no CA key serves host `{}` (configure [ca_keys._default] or one of its groups)",
                host.name
            )));
        };
        let ttl = u64::from(
            intent
                .ttl_seconds
                .unwrap_or(host.max_ttl_seconds)
                .clamp(1, host.max_ttl_seconds),
        );
        let serial = new_serial()?;
        let end_user = intent.end_user.as_deref().unwrap_or("-");
        // Vault picks the serial of a certificate it signs, so its key id cannot name it (sshd
        // logs the serial beside the key id either way).
        let key_id_serial = match ca.as_ref() {
            Ca::Key(_) => Some(serial),
            Ca::Vault(_) => None,
        };
        let spec = CertSpec {
            public_key,
            principal: host.principal.clone(),
            key_id: key_id(principal, end_user, &host.name, key_id_serial),
            serial,
            valid_after: now.saturating_sub(BACKDATE_SECONDS),
            valid_before: now + ttl,
            force_command: match (intent.role, intent.purpose) {
                // A bastion certificate can only tunnel: sshd still opens direct-tcpip channels
                // under a forced command, but no shell or command ever runs.
                (Role::Bastion, _) => Some("/bin/false".to_owned()),
                (Role::Target, Purpose::Oneshot) => decided.shape.force_command.clone(),
                (Role::Target, Purpose::File) => Some("internal-sftp".to_owned()),
                (Role::Target, Purpose::Session) => None,
            },
            source_address: host.source_address.clone(),
            permit_pty: intent.role == Role::Target
                && host.allow_pty
                && (intent.pty || intent.session_mode == Some(SessionMode::Pty)),
            permit_port_forwarding: intent.role == Role::Bastion,
        };
        // The decision and the spec are the signer's; only the signing differs by CA.
        let (certificate, vault) = match ca.as_ref() {
            Ca::Key(key) => (
                key.sign(&spec)
                    .map_err(|err| SignError::Internal(err.to_string()))?,
                None,
            ),
            Ca::Vault(vault) => {
                let claims = vault_claims(principal, self.chain_for(intent), intent);
                match vault.sign(&spec, &claims, now).await {
                    Ok(signed) => {
                        let facts = json!({
                            "address": vault.address(),
                            "mount": vault.mount(),
                            "role": vault.role(),
                            "token_accessor": signed.token_accessor,
                            "token_revoked": signed.token_revoked,
                        });
                        (signed.certificate, Some(facts))
                    }
                    Err(err) => {
                        self.audit_refusal(principal, intent, err.outcome(), &err.to_string())
                            .await?;
                        return Err(match err {
                            VaultCaError::Unreachable(why) => SignError::Unreachable(why),
                            VaultCaError::Denied(why) => SignError::Forbidden(why),
                            VaultCaError::Mismatch(why) | VaultCaError::Other(why) => {
                                SignError::Internal(why)
                            }
                        });
                    }
                }
            }
        };
        let line = certificate
            .to_openssh()
            .map_err(|err| SignError::Internal(format!("encode certificate: {err}")))?;
        // What the certificate says (for a Vault CA: checked equal to the spec, but for the
        // serial Vault picked and the validity by Vault's clock).
        let serial = certificate.serial();
        let ca_fingerprint = match ca.as_ref() {
            Ca::Key(key) => key.fingerprint().to_owned(),
            Ca::Vault(_) => certificate
                .signature_key()
                .fingerprint(HashAlg::Sha256)
                .to_string(),
        };
        let mut record = json!({
            "serial": serial.to_string(),
            "key_id": certificate.key_id(),
            "principal": spec.principal,
            "valid_after": certificate.valid_after(),
            "valid_before": certificate.valid_before(),
            "force_command": spec.force_command,
            "source_address": spec.source_address,
            "permit_pty": spec.permit_pty,
            "permit_port_forwarding": spec.permit_port_forwarding,
            "ca_fingerprint": ca_fingerprint,
            "public_key_fingerprint": spec.public_key.fingerprint(Default::default()).to_string(),
        });
        if let (Some(vault), Some(object)) = (vault, record.as_object_mut()) {
            object.insert("vault".to_owned(), vault);
        }
        self.audit_decision(RecordKind::Credential, principal, intent, &decided, record)
            .await?;
        Ok(SignResponse {
            elevation_prefix: decided.shape.elevation_prefix.clone(),
            decision: decided,
            certificate: Some(line),
            serial: Some(serial),
            valid_before: Some(certificate.valid_before()),
        })
    }

    /// The audit chain a record about `intent` joins: its tenant's, so a tenant's feed shows its
    /// own certificates and nobody else's; the signer's own chain when the intent names none.
    fn chain_for<'a>(&'a self, intent: &'a Intent) -> &'a str {
        intent
            .tenant
            .as_deref()
            .filter(|t| meho_config::is_valid_tenant(t))
            .unwrap_or(&self.tenant)
    }

    async fn audit_decision(
        &self,
        kind: RecordKind,
        principal: &str,
        intent: &Intent,
        decided: &Decided,
        extra: serde_json::Value,
    ) -> Result<(), SignError> {
        let decision = &decided.decision;
        let outcome = match kind {
            RecordKind::Credential if intent.dry_run => "dry_run",
            RecordKind::Credential => "issued",
            _ => decision.reason_code.as_str(),
        };
        let record = NewRecord {
            target: Some(intent.target.clone()),
            action: Some("sign".to_owned()),
            outcome: Some(outcome.to_owned()),
            body: json!({
                "intent": intent_summary(intent),
                "decision": decided,
                "certificate": extra,
            }),
            approval_id: decision.approval_id.clone(),
            call_id: intent.call_id.clone(),
            ..NewRecord::new(self.chain_for(intent), kind, principal)
        };
        self.append(record).await
    }

    /// Records that a TLS client whose CN is not an allowed principal asked for `what`.
    pub async fn audit_caller_refused(
        &self,
        cn: &str,
        what: &str,
        why: &str,
    ) -> Result<(), SignError> {
        let record = NewRecord {
            action: Some(what.to_owned()),
            outcome: Some("forbidden".to_owned()),
            body: json!({ "error": why }),
            ..NewRecord::new(&self.tenant, RecordKind::Denial, cn)
        };
        self.append(record).await
    }

    /// Appends `record`; when the audit log cannot take it, the signer answers nothing.
    async fn append(&self, record: NewRecord) -> Result<(), SignError> {
        self.audit.append(record).await.map(drop).map_err(|err| {
            SignError::Internal(format!(
                "audit log unavailable, nothing issued (fail closed): {err}"
            ))
        })
    }

    async fn audit_refusal(
        &self,
        principal: &str,
        intent: &Intent,
        code: &str,
        why: &str,
    ) -> Result<(), SignError> {
        let record = NewRecord {
            target: Some(intent.target.clone()),
            action: Some("sign".to_owned()),
            outcome: Some(code.to_owned()),
            body: json!({ "intent": intent_summary(intent), "error": why }),
            call_id: intent.call_id.clone(),
            ..NewRecord::new(self.chain_for(intent), RecordKind::Denial, principal)
        };
        self.append(record).await
    }
}

/// The intent without its public key (which says nothing) for the audit body.
fn intent_summary(intent: &Intent) -> serde_json::Value {
    json!({
        "role": intent.role,
        "purpose": intent.purpose,
        "command": intent.command,
        "session_mode": intent.session_mode,
        "file_op": intent.file_op,
        "path": intent.path,
        "ttl_seconds": intent.ttl_seconds,
        "sudo": intent.sudo,
        "sudo_user": intent.sudo_user,
        "pty": intent.pty,
        "agent": intent.principal,
        "tenant": intent.tenant,
        "end_user": intent.end_user,
        "dry_run": intent.dry_run,
        "session_id": intent.session_id,
        "content": intent.content,
        "max_tier": intent.max_tier,
        "approval_id": intent.approval.as_ref().map(|a| &a.id),
    })
}

/// Whether the claimed action is exactly the one `intent` asks for: the signer reads the
/// action back from the intent it signs and compares the typed values, never tool names or JSON
/// keys. A bastion hop is never approved.
fn claim_matches(intent: &Intent, claim: &crate::wire::ApprovalClaim) -> Result<SshAction, String> {
    match SshAction::of_intent(intent) {
        Some(SshAction::BastionHop) => Err("a bastion hop is not an approvable call".to_owned()),
        Some(action) if action == claim.action => Ok(action),
        Some(_) => Err("the action differs from the approved call".to_owned()),
        None => Err("the intent does not describe a whole action".to_owned()),
    }
}

/// Whether `principal` (and the human's groups, when known) may use `host`.
fn access(host: &Host, principal: &str, end_user_groups: Option<&[String]>) -> Result<(), String> {
    if !host.allowed_callers.is_empty() && !host.allowed_callers.iter().any(|c| c == principal) {
        return Err(format!(
            "principal `{principal}` is not in allowed_callers of host `{}`",
            host.name
        ));
    }
    if let Some(groups) = end_user_groups
        && !host.groups.iter().any(|g| groups.contains(g))
    {
        return Err(format!(
            "none of the user's groups may use host `{}`",
            host.name
        ));
    }
    Ok(())
}

fn view(host: &Host) -> HostView {
    HostView {
        name: host.name.clone(),
        addr: host.addr.clone(),
        user: host.user.clone(),
        host_key: host.host_key.clone(),
        jump: host.jump.clone(),
        allow_sudo: host.policy.allow_sudo,
        allow_pty: host.allow_pty,
        allow_file_transfer: host.allow_file_transfer,
        groups: host.groups.clone(),
        tenant: host.tenant.clone(),
    }
}

/// The decision for one intent. Pure: no IO, no clock (the principal passes `now`).
pub fn decide(
    host: &Host,
    principal: &str,
    intent: &Intent,
    elevation: &Elevation,
    now: u64,
    overlay: Overlay<'_>,
) -> Decided {
    let tier = host.policy.policies.default_tier();
    let refuse =
        |rule: &str| Decided::from(Decision::refused(ReasonCode::InvalidRequest, rule, tier));
    if intent.pty && !host.allow_pty {
        return refuse("invalid-request:pty-not-allowed");
    }
    let decide_command = |command: &str, elevation: &Elevation| {
        host.policy.decide(
            &Request {
                command,
                elevation: elevation.clone(),
                caller: principal,
                end_user: intent.end_user.as_deref().unwrap_or(""),
                now,
            },
            overlay,
        )
    };
    match (intent.role, intent.purpose) {
        (Role::Bastion, _) => {
            if !host.allow_as_bastion {
                return refuse("invalid-request:not-a-bastion");
            }
            if *elevation != Elevation::None || intent.pty || intent.command.is_some() {
                return refuse("invalid-request:bastion-runs-nothing");
            }
            allowed("bastion", tier).into()
        }
        (Role::Target, Purpose::Oneshot) => match intent.command.as_deref() {
            Some(command) => decide_command(command, elevation),
            None => refuse("invalid-request:command-missing"),
        },
        (Role::Target, Purpose::Session) => {
            let mode = intent.session_mode.unwrap_or_default();
            if mode != SessionMode::Exec && host.policy.policies.is_restricting() {
                // A stateful command stream cannot be verified command by command.
                return refuse("invalid-request:session-mode-needs-exec");
            }
            if mode == SessionMode::Pty && !host.allow_pty {
                return refuse("invalid-request:pty-not-allowed");
            }
            match intent.command.as_deref() {
                Some(command) => decide_command(command, elevation),
                None => match host.policy.check_elevation(elevation) {
                    Ok(()) => Decided {
                        decision: allowed("session", tier),
                        shape: CommandShape {
                            force_command: None,
                            elevation_prefix: elevation.prefix(),
                        },
                    },
                    Err(rule) => refuse(rule),
                },
            }
        }
        (Role::Target, Purpose::File) => {
            if !host.allow_file_transfer {
                return refuse("invalid-request:file-transfer-not-allowed");
            }
            if *elevation != Elevation::None {
                return refuse("invalid-request:file-transfer-runs-unelevated");
            }
            let (Some(op), Some(path)) = (intent.file_op, intent.path.as_deref()) else {
                return refuse("invalid-request:file-op-missing");
            };
            if !path.starts_with('/') || path.contains(['\0', '\n', '\r']) {
                return refuse("invalid-request:file-path-invalid");
            }
            let mut action = String::from(match op {
                FileOp::Put => "put ",
                FileOp::Get => "get ",
            });
            meho_policy::shell::quote(path, &mut action);
            let mut decided = decide_command(&action, &Elevation::None);
            // The certificate carries `internal-sftp`, not the action string.
            decided.shape.force_command = decided
                .decision
                .may_run()
                .then(|| "internal-sftp".to_owned());
            decided
        }
    }
}

fn allowed(rule: &str, tier: meho_core::Tier) -> Decision {
    Decision {
        effect: meho_core::Effect::Allow,
        reason_code: ReasonCode::Allowed,
        ..Decision::refused(ReasonCode::Allowed, rule, tier)
    }
}

fn parse_public_key(line: Option<&str>) -> Result<PublicKey, SignError> {
    let line = line.ok_or_else(|| SignError::BadRequest("public_key is required".into()))?;
    let key = PublicKey::from_openssh(line.trim())
        .map_err(|err| SignError::BadRequest(format!("public_key is not an OpenSSH key: {err}")))?;
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(SignError::BadRequest(format!(
            "public_key must be an ephemeral Ed25519 key, not {}",
            key.algorithm()
        )));
    }
    Ok(key)
}

/// A random serial below 2^53: unique in practice, and exact in every JSON number (JavaScript
/// clients included) and SQL integer type.
fn new_serial() -> Result<u64, SignError> {
    loop {
        let bytes = random_bytes::<8>().map_err(|err| SignError::Internal(err.to_string()))?;
        let serial = u64::from_le_bytes(bytes) >> 11;
        if serial != 0 {
            return Ok(serial);
        }
    }
}

/// `meho:agent=… user=… host=… serial=…` (no `serial=` when Vault picks the serial).
fn key_id(principal: &str, end_user: &str, host: &str, serial: Option<u64>) -> String {
    let mut id = format!(
        "meho:agent={} user={} host={host}",
        key_id_word(principal),
        key_id_word(end_user)
    );
    if let Some(serial) = serial {
        id.push_str(&format!(" serial={serial}"));
    }
    id
}

/// Who a Vault CA signs for: the caller the signer decides for, in the chain's tenant, with the
/// human's groups when known and the role its tier cap implies (as the REST connector's Vault
/// logins name it).
fn vault_claims(principal: &str, tenant: &str, intent: &Intent) -> IdentityClaims {
    IdentityClaims {
        sub: principal.to_owned(),
        tenant: tenant.to_owned(),
        groups: intent.end_user_groups.clone().unwrap_or_default(),
        role: match intent.max_tier {
            Some(meho_core::Tier::Read) => "read_only",
            _ => "operator",
        }
        .to_owned(),
    }
}

/// Caller and user names go into the key id, which sshd logs as one string: keep them one word
/// so a name cannot forge a `host=` field.
fn key_id_word(text: &str) -> String {
    let word: String = text
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() || c == '"' {
                '_'
            } else {
                c
            }
        })
        .collect();
    if word.is_empty() {
        "-".to_owned()
    } else {
        word
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
