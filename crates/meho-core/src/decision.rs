use std::fmt;

use crate::Tier;

/// Why a decision came out the way it did, as one stable machine-readable code.
///
/// These strings are a contract: `meho policy check --format json` prints them and external tests
/// match on them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// The call may run now.
    Allowed,
    /// The call may run once a human approves it.
    NeedsApproval,
    /// A deny rule matched.
    CommandDenied,
    /// The host has an allowlist and no member of it matched.
    AllowlistNoMatch,
    /// The command left the shell subset the firewall can verify.
    ShellParseError,
    /// The request itself is malformed or asks for something the host never permits.
    InvalidRequest,
    /// The call is rated above the highest tier the caller's role may run (a `read_only` role
    /// and a WRITE command, say). The decider enforces it; `policy check` never prints it.
    TierExceeded,
}

impl ReasonCode {
    /// The snake_case code printed in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::Allowed => "allowed",
            ReasonCode::NeedsApproval => "needs_approval",
            ReasonCode::CommandDenied => "command_denied",
            ReasonCode::AllowlistNoMatch => "allowlist_no_match",
            ReasonCode::ShellParseError => "shell_parse_error",
            ReasonCode::InvalidRequest => "invalid_request",
            ReasonCode::TierExceeded => "tier_exceeded",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of deciding one call, with the rule that produced it.
///
/// Like cedar's authorizer response, a decision never comes without its reasons: the `rule` that
/// decided, the `tier` of what would run, and any `warnings` (audit-mode findings). The audit record
/// and `meho policy explain` print exactly this.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Decision {
    /// Whether the call may run (possibly only after approval, see `require_approval`).
    pub allowed: bool,
    /// Whether a human must approve the call before it runs.
    pub require_approval: bool,
    /// The rule that decided, e.g. `deny:^rm`, `allow:^ls`, `shell-parse:redirect`; empty when none.
    pub rule: String,
    /// The stable code for the outcome.
    pub reason_code: ReasonCode,
    /// The tier of what would run.
    pub tier: Tier,
    /// Audit-mode findings and other notes that did not change the outcome.
    pub warnings: Vec<String>,
    /// An audit-mode policy would have denied this call.
    pub would_deny: bool,
    /// An audit-mode policy would have required approval for this call.
    pub would_require_approval: bool,
    /// The exact force-command a one-shot certificate would carry; `None` when the call is refused.
    pub force_command: Option<String>,
    /// The elevation prefix (`sudo -n` or `sudo -n -u USER`) when elevation was requested and granted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub elevation_prefix: Option<String>,
    /// The runtime grant that allowed the call, if one did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub grant_id: Option<String>,
    /// The waiver that lifted the approval requirement, if one did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub waiver_id: Option<String>,
    /// The approval that let this call through, when a human approved it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub approval_id: Option<String>,
}

impl Decision {
    /// A refusal that carries only a rule and a reason; used for invalid requests and denials.
    pub fn refused(reason_code: ReasonCode, rule: impl Into<String>, tier: Tier) -> Self {
        Decision {
            allowed: false,
            require_approval: false,
            rule: rule.into(),
            reason_code,
            tier,
            warnings: Vec::new(),
            would_deny: false,
            would_require_approval: false,
            force_command: None,
            elevation_prefix: None,
            grant_id: None,
            waiver_id: None,
            approval_id: None,
        }
    }
}
