//! HTTP API actions and their rules, decided by the same engine as the command firewall.
//!
//! Every call on an API reduces to one canonical string, `<METHOD> <path template> <resolved
//! path>` (e.g. `DELETE /sys/policy/{name} /sys/policy/ops`), built from the operation the spec
//! names and the path the request is sent to, never parsed out of free text. An API's `rules`
//! (regexes over that string, each `allow`, `deny` or `require_approval`) compile into a
//! [`PolicySet`] the way a cluster's do: one member per rule, in order, plus an empty allowlist
//! that makes the default a denial. Deny-wins composition, tiers, runtime grants,
//! approve-and-learn waivers and the `explain` trace are the engine's own.
//!
//! The tier of a call is at least its operation's tier: the method's ([`Method::tier`]) unless
//! the operation's override sets another (it may raise or lower it). A rule's `tier` raises it.

use std::fmt;

use meho_core::Tier;

use crate::PolicyError;
use crate::decide::{Decided, Step};
use crate::kube::RuleEffect;
use crate::overlay::Overlay;
use crate::policy::{CommandPolicy, Mode, PolicySet};
use crate::rules::RuleSet;

/// An HTTP method an API operation is called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// `OPTIONS`.
    Options,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
    /// `TRACE`.
    Trace,
}

impl Method {
    /// Every method, in the order a path item's operations are read.
    pub const ALL: [Method; 8] = [
        Method::Get,
        Method::Head,
        Method::Options,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Trace,
    ];

    /// The method as sent (`GET`).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Trace => "TRACE",
        }
    }

    /// The method spelled `word`, in any case.
    pub fn parse(word: &str) -> Option<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(word))
    }

    /// The tier of a call with this method unless its operation says otherwise: reads
    /// (`GET`, `HEAD`, `OPTIONS`, `TRACE`) are READ, `POST`/`PUT`/`PATCH` WRITE, `DELETE`
    /// DESTRUCTIVE.
    pub fn tier(self) -> Tier {
        match self {
            Method::Get | Method::Head | Method::Options | Method::Trace => Tier::Read,
            Method::Post | Method::Put | Method::Patch => Tier::Write,
            Method::Delete => Tier::Destructive,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = String::deserialize(deserializer)?;
        Method::parse(&word)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown HTTP method `{word}`")))
    }
}

/// Why an action's field is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} `{value}` {problem}")]
pub struct ActionError {
    /// The field.
    pub field: &'static str,
    /// Its value (escaped for display).
    pub value: String,
    /// What is wrong.
    pub problem: String,
}

fn action_error(field: &'static str, value: &str, problem: &str) -> ActionError {
    ActionError {
        field,
        value: meho_core::display::escape(value).into_owned(),
        problem: problem.to_owned(),
    }
}

/// A path as the canonical string may hold it: starts with `/`, visible ASCII only (a resolved
/// path is percent-encoded, so a space or a control character never reaches it).
fn check_path(field: &'static str, path: &str) -> Result<(), ActionError> {
    if !path.starts_with('/') {
        return Err(action_error(field, path, "must start with `/`"));
    }
    if let Some(c) = path.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(action_error(
            field,
            path,
            &format!("holds {c:?}: only visible ASCII (percent-encode the rest)"),
        ));
    }
    Ok(())
}

/// One call on an API: the operation (method and path template) and the path it is sent to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct HttpAction {
    method: Method,
    template: String,
    path: String,
}

impl HttpAction {
    /// An action from its fields, each checked: both paths start with `/` and hold visible
    /// ASCII only.
    pub fn new(method: Method, template: &str, path: &str) -> Result<HttpAction, ActionError> {
        check_path("template", template)?;
        check_path("path", path)?;
        Ok(HttpAction {
            method,
            template: template.to_owned(),
            path: path.to_owned(),
        })
    }

    /// Reads a canonical string back (what `meho policy check --action` accepts): exactly three
    /// words separated by single spaces.
    pub fn parse(text: &str) -> Result<HttpAction, ActionError> {
        let mut words = text.split(' ');
        let (Some(method), Some(template), Some(path), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(action_error(
                "action",
                text,
                "must be `<METHOD> <path template> <path>` (single spaces)",
            ));
        };
        let method = Method::parse(method)
            .ok_or_else(|| action_error("method", method, "is not an HTTP method"))?;
        HttpAction::new(method, template, path)
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The operation's path template, e.g. `/sys/policy/{name}`.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The resolved path, e.g. `/sys/policy/ops`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `<METHOD> <path template> <path>`.
    pub fn canonical(&self) -> String {
        format!("{} {} {}", self.method, self.template, self.path)
    }
}

impl fmt::Display for HttpAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// One rule of an API, as configured: a regex over canonical strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRule {
    /// The regex (unanchored unless it anchors itself, as command rules).
    pub pattern: String,
    /// What the rule does.
    pub effect: RuleEffect,
    /// Raises the tier of the actions it allows (never below the operation's tier).
    pub tier: Option<Tier>,
}

/// An operation the config singles out (`[apis.<name>.operations."<key>"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationOverride {
    /// How the config names it (an operationId or `METHOD /path/template`), for rule names.
    pub key: String,
    /// The operation's method.
    pub method: Method,
    /// The operation's path template.
    pub template: String,
    /// `false`: every call of it is denied.
    pub enabled: bool,
    /// `true`: every call of it needs a human's approval.
    pub require_approval: bool,
}

impl OperationOverride {
    /// The anchored regex matching every call of this operation.
    fn pattern(&self) -> String {
        format!("^{} {} [^ ]*$", self.method, regex::escape(&self.template))
    }
}

/// The rules an API gets when its config names none: reads run, everything else waits for a
/// human.
pub fn default_rules() -> Vec<ApiRule> {
    vec![
        ApiRule {
            pattern: "^(GET|HEAD|OPTIONS) ".to_owned(),
            effect: RuleEffect::Allow,
            tier: None,
        },
        ApiRule {
            pattern: "^(POST|PUT|PATCH|DELETE) ".to_owned(),
            effect: RuleEffect::RequireApproval,
            tier: None,
        },
    ]
}

/// An API's compiled rules.
#[derive(Debug, Clone)]
pub struct ApiPolicy {
    rules: RuleSet,
}

fn rule_error(label: &str, message: impl Into<String>) -> PolicyError {
    PolicyError::InvalidRegex {
        policy: label.to_owned(),
        list: "rules",
        pattern: String::new(),
        message: message.into(),
    }
}

impl ApiPolicy {
    /// Compiles the rules of API `name` (`None`: [`default_rules`]) and its operation
    /// overrides; the default is a denial. Rules are named `<api>/rules[i]` (or
    /// `<api>/default-rules[i]`), overrides `<api>/operations[<key>]`.
    pub fn compile(
        name: &str,
        rules: Option<Vec<ApiRule>>,
        overrides: &[OperationOverride],
    ) -> Result<ApiPolicy, PolicyError> {
        let (rules, list) = match rules {
            Some(rules) => (rules, "rules"),
            None => (default_rules(), "default-rules"),
        };
        let mut members = Vec::new();
        let mut labels = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            let label = format!("{name}/{list}[{index}]");
            crate::policy::compile_pattern(&rule.pattern).map_err(|e| rule_error(&label, e))?;
            members.push(crate::rules::member(
                &label,
                &rule.pattern,
                rule.effect,
                rule.tier,
            ));
            labels.push((rule.pattern.clone(), label));
        }
        for op in overrides {
            let label = format!("{name}/operations[{}]", op.key);
            let pattern = op.pattern();
            let mut member = CommandPolicy::new(label.clone());
            member.shell_parse = false;
            member.tier = Tier::Read;
            if !op.enabled {
                member.mode = Mode::Denylist;
                member.deny.push(pattern.clone());
            } else if op.require_approval {
                // An `off` member takes part through its approval rules only.
                member.mode = Mode::Off;
                member.require_approval.push(pattern.clone());
            } else {
                continue;
            }
            labels.push((pattern, label));
            members.push(member);
        }
        Ok(ApiPolicy {
            rules: RuleSet::compile(name, members, labels)?,
        })
    }

    /// The API's name.
    pub fn name(&self) -> &str {
        &self.rules.name
    }

    /// The composed set (for `policy explain`).
    pub fn policies(&self) -> &PolicySet {
        &self.rules.engine.policies
    }

    /// Whether runtime grants may widen this API (always: its baseline is an allowlist).
    pub fn check_grantable(&self) -> Result<(), PolicyError> {
        self.rules.engine.check_grantable(&self.rules.name)
    }

    /// Decides `action` for `caller` (and the human `end_user`, empty when unknown) at `now`,
    /// with the runtime `overlay`. `floor` is the operation's tier: the decision's tier is at
    /// least that.
    pub fn decide(
        &self,
        action: &HttpAction,
        floor: Tier,
        caller: &str,
        end_user: &str,
        now: u64,
        overlay: Overlay<'_>,
    ) -> Decided {
        self.decide_traced(action, floor, caller, end_user, now, overlay, false)
            .0
    }

    /// Decides like [`ApiPolicy::decide`] and returns the steps taken.
    pub fn explain(
        &self,
        action: &HttpAction,
        floor: Tier,
        caller: &str,
        end_user: &str,
        now: u64,
        overlay: Overlay<'_>,
    ) -> (Decided, Vec<Step>) {
        self.decide_traced(action, floor, caller, end_user, now, overlay, true)
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "the public pair above names each input"
    )]
    fn decide_traced(
        &self,
        action: &HttpAction,
        floor: Tier,
        caller: &str,
        end_user: &str,
        now: u64,
        overlay: Overlay<'_>,
        trace: bool,
    ) -> (Decided, Vec<Step>) {
        self.rules.decide(
            &action.canonical(),
            floor,
            caller,
            end_user,
            now,
            overlay,
            trace,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use meho_core::{Decision, Effect};

    fn action(text: &str) -> HttpAction {
        HttpAction::parse(text).unwrap()
    }

    fn decide(policy: &ApiPolicy, text: &str) -> Decision {
        let action = action(text);
        let floor = action.method().tier();
        policy
            .decide(&action, floor, "agent", "", 0, Overlay::default())
            .decision
    }

    fn rule(pattern: &str, effect: RuleEffect) -> ApiRule {
        ApiRule {
            pattern: pattern.to_owned(),
            effect,
            tier: None,
        }
    }

    #[test]
    fn default_rules_run_reads_and_hold_everything_else() {
        let policy = ApiPolicy::compile("bao", None, &[]).unwrap();
        let read = decide(&policy, "GET /sys/health /sys/health");
        assert_eq!(read.effect, Effect::Allow);
        assert_eq!(read.rule, "allow:bao/default-rules[0]");
        assert_eq!(read.tier, Tier::Read);
        let write = decide(&policy, "POST /secret/data/{path} /secret/data/x");
        assert_eq!(write.effect, Effect::RequireApproval);
        assert_eq!(write.tier, Tier::Write);
        let delete = decide(&policy, "DELETE /sys/policy/{name} /sys/policy/ops");
        assert_eq!(delete.effect, Effect::RequireApproval);
        assert_eq!(delete.tier, Tier::Destructive);
        assert_eq!(
            decide(&policy, "TRACE / /").effect,
            Effect::Deny,
            "a method no default rule names is denied"
        );
    }

    #[test]
    fn deny_wins_and_unmatched_is_denied() {
        let policy = ApiPolicy::compile(
            "bao",
            Some(vec![
                rule("^GET ", RuleEffect::Allow),
                rule("^DELETE /sys/policy/", RuleEffect::Deny),
                rule("^DELETE ", RuleEffect::Allow),
            ]),
            &[],
        )
        .unwrap();
        let denied = decide(&policy, "DELETE /sys/policy/{name} /sys/policy/ops");
        assert_eq!(denied.effect, Effect::Deny);
        assert_eq!(denied.rule, "deny:bao/rules[1]");
        assert_eq!(
            decide(&policy, "DELETE /sys/mounts/{path} /sys/mounts/x").effect,
            Effect::Allow
        );
        let none = decide(&policy, "POST /sys/mounts/{path} /sys/mounts/x");
        assert_eq!(none.effect, Effect::Deny);
        assert_eq!(none.rule, "default-deny:bao");
    }

    #[test]
    fn overrides_disable_and_hold_operations_and_the_floor_sets_the_tier() {
        let overrides = [
            OperationOverride {
                key: "sys-health".to_owned(),
                method: Method::Get,
                template: "/sys/health".to_owned(),
                enabled: false,
                require_approval: false,
            },
            OperationOverride {
                key: "GET /sys/policy/{name}".to_owned(),
                method: Method::Get,
                template: "/sys/policy/{name}".to_owned(),
                enabled: true,
                require_approval: true,
            },
        ];
        let policy = ApiPolicy::compile("bao", None, &overrides).unwrap();
        let off = decide(&policy, "GET /sys/health /sys/health");
        assert_eq!(off.effect, Effect::Deny);
        assert_eq!(off.rule, "deny:bao/operations[sys-health]");
        let held = decide(&policy, "GET /sys/policy/{name} /sys/policy/x");
        assert_eq!(held.effect, Effect::RequireApproval);
        // A template holding regex characters matches only itself.
        assert_eq!(
            decide(&policy, "GET /sys/policyX{name} /sys/policyXx").effect,
            Effect::Allow
        );
        // An override lowering a POST to READ: the floor is what the connector passes.
        let search = action("POST /search /search");
        let decided = policy.decide(&search, Tier::Read, "agent", "", 0, Overlay::default());
        assert_eq!(decided.decision.tier, Tier::Read);
    }

    #[test]
    fn rule_tier_raises_the_floor() {
        let policy = ApiPolicy::compile(
            "p",
            Some(vec![ApiRule {
                pattern: "^GET /api/v1/status/".to_owned(),
                effect: RuleEffect::Allow,
                tier: Some(Tier::Write),
            }]),
            &[],
        )
        .unwrap();
        assert_eq!(
            decide(&policy, "GET /api/v1/status/config /api/v1/status/config").tier,
            Tier::Write
        );
    }

    #[test]
    fn actions_are_three_checked_words() {
        assert!(HttpAction::parse("GET /a /a").is_ok());
        for bad in [
            "GET /a",
            "GET /a /a /a",
            "GET  /a /a",
            "FETCH /a /a",
            "GET a /a",
            "GET /a /a\u{7}",
            "GET /a /\u{202e}a",
        ] {
            assert!(HttpAction::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(Method::parse("delete"), Some(Method::Delete));
        let err = HttpAction::new(Method::Get, "/a", "/a b").unwrap_err();
        assert!(err.to_string().contains("visible ASCII"), "{err}");
    }

    #[test]
    fn an_invalid_rule_names_itself() {
        let err = ApiPolicy::compile("bao", Some(vec![rule("(", RuleEffect::Allow)]), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bao/rules[0]"), "{err}");
    }
}
