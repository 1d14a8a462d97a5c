//! What the action policies (clusters, APIs) share: rules compiled into the command engine over
//! canonical strings, decided with a tier floor, and decisions that name the rule a human wrote.

use meho_core::{Decision, Tier};

use crate::PolicyError;
use crate::decide::{Decided, HostPolicy, Request, Step};
use crate::elevation::Elevation;
use crate::kube::RuleEffect;
use crate::overlay::Overlay;
use crate::policy::{CommandPolicy, Enforcement, Mode, PolicySet};

/// The engine member of one rule: `pattern` with `effect`, labelled `label`.
pub(crate) fn member(
    label: &str,
    pattern: &str,
    effect: RuleEffect,
    tier: Option<Tier>,
) -> CommandPolicy {
    let mut member = CommandPolicy::new(label);
    member.shell_parse = false;
    member.enforcement = Enforcement::Enforce;
    member.tier = tier.unwrap_or(Tier::Read);
    match effect {
        RuleEffect::Allow => {
            member.mode = Mode::Allowlist;
            member.allow.push(pattern.to_owned());
        }
        RuleEffect::Deny => {
            member.mode = Mode::Denylist;
            member.deny.push(pattern.to_owned());
        }
        RuleEffect::RequireApproval => {
            // Approval is orthogonal to allow in the engine: the rule both allows and holds
            // what it matches.
            member.mode = Mode::Allowlist;
            member.allow.push(pattern.to_owned());
            member.require_approval.push(pattern.to_owned());
        }
    }
    member
}

/// A target's rules over canonical action strings.
#[derive(Debug, Clone)]
pub(crate) struct RuleSet {
    /// The target's name.
    pub(crate) name: String,
    /// The compiled members, ending in an empty allowlist (the default denial).
    pub(crate) engine: HostPolicy,
    /// `(pattern, label)` of every member, to name the rule a decision cites.
    pub(crate) labels: Vec<(String, String)>,
}

impl RuleSet {
    /// The rule set of target `name`: `members` in order (each labelled in `labels` by its
    /// pattern), then the default, an allowlist that lists nothing, so an action no rule allows
    /// is denied.
    pub(crate) fn compile(
        name: &str,
        mut members: Vec<CommandPolicy>,
        labels: Vec<(String, String)>,
    ) -> Result<RuleSet, PolicyError> {
        let mut default = CommandPolicy::new(format!("{name}/default-deny"));
        default.mode = Mode::Allowlist;
        default.shell_parse = false;
        default.tier = Tier::Read;
        members.push(default);
        Ok(RuleSet {
            name: name.to_owned(),
            engine: HostPolicy {
                policies: PolicySet::compile(members)?,
                allow_sudo: false,
                allowed_sudo_users: Vec::new(),
            },
            labels,
        })
    }

    /// Decides `canonical` for `caller` (and `end_user`) at `now` with `overlay`; the tier is at
    /// least `floor`. With `trace`, also the steps taken (the shell-only ones left out).
    #[allow(
        clippy::too_many_arguments,
        reason = "each policy's public decide names these inputs"
    )]
    pub(crate) fn decide(
        &self,
        canonical: &str,
        floor: Tier,
        caller: &str,
        end_user: &str,
        now: u64,
        overlay: Overlay<'_>,
        trace: bool,
    ) -> (Decided, Vec<Step>) {
        let request = Request {
            command: canonical,
            elevation: Elevation::None,
            caller,
            end_user,
            now,
        };
        let (decided, steps) = if trace {
            self.engine.explain(&request, overlay)
        } else {
            (self.engine.decide(&request, overlay), Vec::new())
        };
        // Nothing of an action is a shell command: no force-command, no elevation.
        let mut decision: Decision = decided.decision;
        decision.tier = decision.tier.max(floor);
        decision.rule = self.rule_name(&decision.rule);
        let steps = steps
            .into_iter()
            .filter(|s| {
                !s.starts_with("force-command:")
                    && !s.starts_with("elevation:")
                    && !s.starts_with("shell parse:")
            })
            .map(|s| s.replacen("command 1 ", "action ", 1))
            .collect();
        (Decided::from(decision), steps)
    }

    /// `allow:<regex>` → `allow:<label>`: the rule a human wrote, not its regex; the engine's
    /// `allowlist:no-match` is the target's default, `default-deny:<name>`.
    fn rule_name(&self, rule: &str) -> String {
        if rule == "allowlist:no-match" {
            return format!("default-deny:{}", self.name);
        }
        for prefix in ["allow:", "deny:", "require_approval:"] {
            let Some(rest) = rule.strip_prefix(prefix) else {
                continue;
            };
            if let Some((_, label)) = self.labels.iter().find(|(p, _)| p == rest) {
                return format!("{prefix}{label}");
            }
        }
        if let Some(rest) = rule.strip_prefix("approval-waived:") {
            return format!("approval-waived:{}", self.rule_name(rest));
        }
        rule.to_owned()
    }
}
