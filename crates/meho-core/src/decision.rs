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

/// What a decision lets the call do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The call may run now.
    Allow,
    /// The call may run once a human approves it.
    RequireApproval,
    /// The call may not run.
    Deny,
}

/// The outcome of deciding one call, with the rule that produced it.
///
/// Like cedar's authorizer response, a decision never comes without its reasons: the `rule` that
/// decided, the `tier` of what would run, and any `warnings` (audit-mode findings). The audit record
/// and `meho policy explain` print exactly this.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
// The JSON is a contract and keeps the two booleans it had before the effect was typed, `allowed`
// (`may_run`) and `require_approval` (`json_require_approval`), in the same place; reading it back
// gives the same decision. (Not a doc comment: this one is the JSON schema's description.)
#[serde(into = "DecisionJson", from = "DecisionJson")]
pub struct Decision {
    /// Whether the call may run now, only once a human approves it, or not at all.
    pub effect: Effect,
    /// Only meaningful with [`Effect::Deny`]: the host's allowlist refused a command that a
    /// `require_approval` rule had matched first. The call is refused all the same, so nothing
    /// may hold it for a human; the JSON reports it as `require_approval: true` next to
    /// `allowed: false`. `false` with any other effect (and then not serialized).
    pub approval_rule_matched: bool,
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
    /// The runtime grant that allowed the call, if one did.
    pub grant_id: Option<String>,
    /// The waiver that lifted the approval requirement, if one did.
    pub waiver_id: Option<String>,
    /// The approval that let this call through, when a human approved it.
    pub approval_id: Option<String>,
}

impl Decision {
    /// A refusal that carries only a rule and a reason; used for invalid requests and denials.
    pub fn refused(reason_code: ReasonCode, rule: impl Into<String>, tier: Tier) -> Self {
        Decision {
            effect: Effect::Deny,
            approval_rule_matched: false,
            rule: rule.into(),
            reason_code,
            tier,
            warnings: Vec::new(),
            would_deny: false,
            would_require_approval: false,
            grant_id: None,
            waiver_id: None,
            approval_id: None,
        }
    }

    /// Refuses a call that may run but is rated above `max`, the highest tier the caller's role
    /// may run (`tier_exceeded`, rule `tier:<tier>-over-<max>`); warnings are kept. Nothing else
    /// changes. Every decider applies it before it issues a credential or consumes an approval.
    pub fn cap_tier(&mut self, max: Tier) {
        if self.may_run() && self.tier > max {
            let warnings = std::mem::take(&mut self.warnings);
            *self = Decision {
                warnings,
                ..Decision::refused(
                    ReasonCode::TierExceeded,
                    format!("tier:{}-over-{max}", self.tier),
                    self.tier,
                )
            };
        }
    }

    /// The call may run now, without a human.
    pub fn allows(&self) -> bool {
        self.effect == Effect::Allow
    }

    /// The call may run only once a human approves it.
    pub fn needs_approval(&self) -> bool {
        self.effect == Effect::RequireApproval
    }

    /// The call may not run.
    pub fn refuses(&self) -> bool {
        self.effect == Effect::Deny
    }

    /// The call may run, now or once a human approves it: the JSON's `allowed`.
    pub fn may_run(&self) -> bool {
        !self.refuses()
    }

    /// The JSON's `require_approval`: the call needs a human's approval, or (with `allowed`
    /// false) the allowlist refused it after an approval rule matched.
    pub fn json_require_approval(&self) -> bool {
        match self.effect {
            Effect::Allow => false,
            Effect::RequireApproval => true,
            Effect::Deny => self.approval_rule_matched,
        }
    }
}

/// The JSON contract of a decision, field for field in the contract's order: the effect travels
/// as the two booleans `allowed` and `require_approval`, and the command the decision shaped (an
/// SSH one-shot's force-command and its elevation prefix, which meho-policy's `CommandShape`
/// holds) sits between the audit-mode booleans and the ids. A bare [`Decision`] serializes as
/// this with no command shaped (`force_command: null`) and reads back from it dropping the
/// command; the JSON schema is this type's.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct DecisionJson {
    /// Whether the call may run (possibly only after approval, see `require_approval`).
    allowed: bool,
    /// Whether a human must approve the call before it runs.
    require_approval: bool,
    /// The rule that decided, e.g. `deny:^rm`, `allow:^ls`, `shell-parse:redirect`; empty when none.
    rule: String,
    /// The stable code for the outcome.
    reason_code: ReasonCode,
    /// The tier of what would run.
    tier: Tier,
    /// Audit-mode findings and other notes that did not change the outcome.
    warnings: Vec<String>,
    /// An audit-mode policy would have denied this call.
    would_deny: bool,
    /// An audit-mode policy would have required approval for this call.
    would_require_approval: bool,
    /// The exact force-command a one-shot certificate would carry; `None` when the call is refused.
    force_command: Option<String>,
    /// The elevation prefix (`sudo -n` or `sudo -n -u USER`) when elevation was requested and granted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    elevation_prefix: Option<String>,
    /// The runtime grant that allowed the call, if one did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    grant_id: Option<String>,
    /// The waiver that lifted the approval requirement, if one did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    waiver_id: Option<String>,
    /// The approval that let this call through, when a human approved it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    approval_id: Option<String>,
}

impl DecisionJson {
    /// The contract JSON of `decision` with the command it shaped: the exact `force_command` a
    /// one-shot certificate would carry and the `elevation_prefix` (`sudo -n [-u USER]`).
    pub fn shaped(
        decision: Decision,
        force_command: Option<String>,
        elevation_prefix: Option<String>,
    ) -> Self {
        DecisionJson {
            allowed: decision.may_run(),
            require_approval: decision.json_require_approval(),
            rule: decision.rule,
            reason_code: decision.reason_code,
            tier: decision.tier,
            warnings: decision.warnings,
            would_deny: decision.would_deny,
            would_require_approval: decision.would_require_approval,
            force_command,
            elevation_prefix,
            grant_id: decision.grant_id,
            waiver_id: decision.waiver_id,
            approval_id: decision.approval_id,
        }
    }

    /// The decision, its `force_command` and its `elevation_prefix`: the inverse of
    /// [`DecisionJson::shaped`].
    pub fn into_shaped(self) -> (Decision, Option<String>, Option<String>) {
        let effect = match (self.allowed, self.require_approval) {
            (true, false) => Effect::Allow,
            (true, true) => Effect::RequireApproval,
            (false, _) => Effect::Deny,
        };
        let decision = Decision {
            effect,
            approval_rule_matched: !self.allowed && self.require_approval,
            rule: self.rule,
            reason_code: self.reason_code,
            tier: self.tier,
            warnings: self.warnings,
            would_deny: self.would_deny,
            would_require_approval: self.would_require_approval,
            grant_id: self.grant_id,
            waiver_id: self.waiver_id,
            approval_id: self.approval_id,
        };
        (decision, self.force_command, self.elevation_prefix)
    }
}

impl From<Decision> for DecisionJson {
    fn from(decision: Decision) -> Self {
        DecisionJson::shaped(decision, None, None)
    }
}

impl From<DecisionJson> for Decision {
    fn from(json: DecisionJson) -> Self {
        json.into_shaped().0
    }
}

#[cfg(test)]
mod tests {
    //! The JSON of a decision is a contract (`policy check --format json`, `policy explain`, the
    //! signer's `/v1/sign` answer, the signer's audit records): these strings were captured from
    //! the decision as it serialized when it still held two booleans, `allowed` and
    //! `require_approval`, and must not change by a byte.

    use super::*;

    /// `(allowed, require_approval)` as the JSON carries them.
    fn decision(
        allowed: bool,
        require_approval: bool,
        reason_code: ReasonCode,
        rule: &str,
        tier: Tier,
    ) -> Decision {
        let (effect, approval_rule_matched) = match (allowed, require_approval) {
            (true, false) => (Effect::Allow, false),
            (true, true) => (Effect::RequireApproval, false),
            (false, matched) => (Effect::Deny, matched),
        };
        Decision {
            effect,
            approval_rule_matched,
            ..Decision::refused(reason_code, rule, tier)
        }
    }

    /// `(force_command, elevation_prefix)`.
    type Shape = (Option<String>, Option<String>);

    /// Every kind of decision with the command it shaped (`force_command`, `elevation_prefix`),
    /// each with the exact JSON it serializes to.
    fn pinned() -> Vec<(&'static str, Decision, Shape, &'static str)> {
        vec![
            (
                "allow",
                decision(true, false, ReasonCode::Allowed, "allow:^ls", Tier::Read),
                (Some("ls -la".into()), None),
                r#"{"allowed":true,"require_approval":false,"rule":"allow:^ls","reason_code":"allowed","tier":"read","warnings":[],"would_deny":false,"would_require_approval":false,"force_command":"ls -la"}"#,
            ),
            (
                "allow with every optional field",
                Decision {
                    warnings: vec!["approved by alice (ap-1)".into()],
                    grant_id: Some("gr-1".into()),
                    waiver_id: Some("wv-1".into()),
                    approval_id: Some("ap-1".into()),
                    ..decision(
                        true,
                        false,
                        ReasonCode::Allowed,
                        "approval-waived:require_approval:^systemctl restart ",
                        Tier::Write,
                    )
                },
                (
                    Some("sudo -n -u www -- systemctl restart nginx".into()),
                    Some("sudo -n -u www".into()),
                ),
                r#"{"allowed":true,"require_approval":false,"rule":"approval-waived:require_approval:^systemctl restart ","reason_code":"allowed","tier":"write","warnings":["approved by alice (ap-1)"],"would_deny":false,"would_require_approval":false,"force_command":"sudo -n -u www -- systemctl restart nginx","elevation_prefix":"sudo -n -u www","grant_id":"gr-1","waiver_id":"wv-1","approval_id":"ap-1"}"#,
            ),
            (
                "allow in audit mode",
                Decision {
                    warnings: vec![
                        "audit: would deny: allowlist:no-match".into(),
                        "audit: would require approval: require_approval:^apt ".into(),
                    ],
                    would_deny: true,
                    would_require_approval: true,
                    ..decision(
                        true,
                        false,
                        ReasonCode::Allowed,
                        "allowlist:no-match",
                        Tier::Write,
                    )
                },
                (Some("apt install x".into()), None),
                r#"{"allowed":true,"require_approval":false,"rule":"allowlist:no-match","reason_code":"allowed","tier":"write","warnings":["audit: would deny: allowlist:no-match","audit: would require approval: require_approval:^apt "],"would_deny":true,"would_require_approval":true,"force_command":"apt install x"}"#,
            ),
            (
                "require approval",
                decision(
                    true,
                    true,
                    ReasonCode::NeedsApproval,
                    "require_approval:^systemctl restart ",
                    Tier::Write,
                ),
                (Some("systemctl restart nginx".into()), None),
                r#"{"allowed":true,"require_approval":true,"rule":"require_approval:^systemctl restart ","reason_code":"needs_approval","tier":"write","warnings":[],"would_deny":false,"would_require_approval":false,"force_command":"systemctl restart nginx"}"#,
            ),
            (
                "require approval with a grant and an elevation",
                Decision {
                    grant_id: Some("gr-2".into()),
                    ..decision(
                        true,
                        true,
                        ReasonCode::NeedsApproval,
                        "require_approval:^apt ",
                        Tier::Destructive,
                    )
                },
                (
                    Some("sudo -n -- apt upgrade".into()),
                    Some("sudo -n".into()),
                ),
                r#"{"allowed":true,"require_approval":true,"rule":"require_approval:^apt ","reason_code":"needs_approval","tier":"destructive","warnings":[],"would_deny":false,"would_require_approval":false,"force_command":"sudo -n -- apt upgrade","elevation_prefix":"sudo -n","grant_id":"gr-2"}"#,
            ),
            (
                "deny",
                Decision::refused(ReasonCode::CommandDenied, "deny:^rm", Tier::Destructive),
                (None, None),
                r#"{"allowed":false,"require_approval":false,"rule":"deny:^rm","reason_code":"command_denied","tier":"destructive","warnings":[],"would_deny":false,"would_require_approval":false,"force_command":null}"#,
            ),
            (
                "deny of an approval the signer could not redeem",
                Decision {
                    warnings: vec!["grants unavailable".into()],
                    approval_id: Some("ap-2".into()),
                    ..Decision::refused(
                        ReasonCode::NeedsApproval,
                        "approval:different-call",
                        Tier::Write,
                    )
                },
                (None, None),
                r#"{"allowed":false,"require_approval":false,"rule":"approval:different-call","reason_code":"needs_approval","tier":"write","warnings":["grants unavailable"],"would_deny":false,"would_require_approval":false,"force_command":null,"approval_id":"ap-2"}"#,
            ),
            (
                "deny by the allowlist after an approval rule matched",
                decision(
                    false,
                    true,
                    ReasonCode::AllowlistNoMatch,
                    "allowlist:no-match",
                    Tier::Write,
                ),
                (None, None),
                r#"{"allowed":false,"require_approval":true,"rule":"allowlist:no-match","reason_code":"allowlist_no_match","tier":"write","warnings":[],"would_deny":false,"would_require_approval":false,"force_command":null}"#,
            ),
        ]
    }

    #[test]
    fn serializes_every_kind_of_decision_exactly_as_the_contract_says() {
        for (name, decision, (force_command, elevation_prefix), json) in pinned() {
            let unshaped = force_command.is_none() && elevation_prefix.is_none();
            if unshaped {
                assert_eq!(serde_json::to_string(&decision).unwrap(), json, "{name}");
            }
            let shaped = DecisionJson::shaped(decision, force_command, elevation_prefix);
            assert_eq!(serde_json::to_string(&shaped).unwrap(), json, "{name}");
        }
    }

    #[test]
    fn reads_back_every_kind_of_decision_from_its_contract_json() {
        for (name, decision, (force_command, elevation_prefix), json) in pinned() {
            let read: DecisionJson = serde_json::from_str(json).unwrap();
            assert_eq!(
                read.into_shaped(),
                (decision.clone(), force_command, elevation_prefix),
                "{name}"
            );
            let bare: Decision = serde_json::from_str(json).unwrap();
            assert_eq!(bare, decision, "{name}");
        }
    }

    #[test]
    fn each_effect_answers_exactly_one_question() {
        let allow = decision(true, false, ReasonCode::Allowed, "allow:^ls", Tier::Read);
        let held = decision(true, true, ReasonCode::NeedsApproval, "r", Tier::Write);
        let deny = decision(
            false,
            false,
            ReasonCode::CommandDenied,
            "deny:^rm",
            Tier::Write,
        );
        let missed = decision(false, true, ReasonCode::AllowlistNoMatch, "a", Tier::Write);
        let answers = |d: &Decision| {
            (
                d.allows(),
                d.needs_approval(),
                d.refuses(),
                d.may_run(),
                d.json_require_approval(),
            )
        };
        assert_eq!(answers(&allow), (true, false, false, true, false));
        assert_eq!(answers(&held), (false, true, false, true, true));
        assert_eq!(answers(&deny), (false, false, true, false, false));
        assert_eq!(answers(&missed), (false, false, true, false, true));
        assert_eq!(missed.effect, Effect::Deny);
        assert!(missed.approval_rule_matched);
        assert_eq!(
            serde_json::to_string(&[Effect::Allow, Effect::RequireApproval, Effect::Deny]).unwrap(),
            r#"["allow","require_approval","deny"]"#
        );
    }

    #[test]
    fn the_json_schema_of_a_decision_is_unchanged() {
        let schema = serde_json::to_value(schemars::schema_for!(Decision)).unwrap();
        let pinned: serde_json::Value =
            serde_json::from_str(include_str!("decision.schema.json")).unwrap();
        assert_eq!(schema, pinned);
    }
}
