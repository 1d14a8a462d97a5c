//! Kubernetes actions and cluster rules, decided by the same engine as the command firewall.
//!
//! Every call on a cluster reduces to one canonical string, `<verb> <resource[.group]>
//! <namespace>/<name>` (`-` for none), built from fields that were each validated
//! ([`KubeAction::new`]), never parsed out of free text. A cluster's `rules` compile into a
//! [`PolicySet`] over those strings: one member per rule, in order, plus an empty allowlist that
//! makes the default a denial. So deny-wins composition, tiers, runtime grants, approve-and-learn
//! waivers and the `explain` trace are the engine's own; only the words differ.

use std::fmt;

use meho_core::{Decision, Tier};

use crate::PolicyError;
use crate::decide::{Decided, Step};
use crate::overlay::Overlay;
use crate::policy::PolicySet;
use crate::rules::RuleSet;

/// What a call does to a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KubeVerb {
    /// Read one object.
    Get,
    /// Read a collection.
    List,
    /// Read a pod's container log.
    Logs,
    /// Server-side apply (creates or patches).
    Apply,
    /// Delete one object.
    Delete,
}

impl KubeVerb {
    /// Every verb, in the order the docs list them.
    pub const ALL: [KubeVerb; 5] = [
        KubeVerb::Get,
        KubeVerb::List,
        KubeVerb::Logs,
        KubeVerb::Apply,
        KubeVerb::Delete,
    ];

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KubeVerb::Get => "get",
            KubeVerb::List => "list",
            KubeVerb::Logs => "logs",
            KubeVerb::Apply => "apply",
            KubeVerb::Delete => "delete",
        }
    }

    /// The lowest tier a call with this verb can be: reads are READ, apply is WRITE, delete is
    /// DESTRUCTIVE. A rule may rate a call higher, never lower.
    pub fn tier(self) -> Tier {
        match self {
            KubeVerb::Get | KubeVerb::List | KubeVerb::Logs => Tier::Read,
            KubeVerb::Apply => Tier::Write,
            KubeVerb::Delete => Tier::Destructive,
        }
    }

    /// The verb spelled `word`.
    pub fn parse(word: &str) -> Option<KubeVerb> {
        KubeVerb::ALL.into_iter().find(|v| v.as_str() == word)
    }
}

impl fmt::Display for KubeVerb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field of an action that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} `{value}`: {problem}")]
pub struct FieldError {
    /// `verb`, `resource`, `group`, `namespace` or `name`.
    pub field: &'static str,
    /// The value as given (escaped for display by the caller).
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

fn field_error(field: &'static str, value: &str, problem: impl Into<String>) -> FieldError {
    FieldError {
        field,
        value: value.to_owned(),
        problem: problem.into(),
    }
}

/// An RFC 1123 label: 1–63 of `[a-z0-9-]`, starting and ending alphanumeric.
pub fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// An RFC 1123 subdomain: at most 253 characters, dot-separated labels.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Checks one field: `valid` says whether `value` is well formed, `what` what it must be.
fn check_field(
    field: &'static str,
    value: &str,
    valid: fn(&str) -> bool,
    what: &str,
) -> Result<(), FieldError> {
    if valid(value) {
        Ok(())
    } else {
        Err(field_error(field, value, what))
    }
}

/// A resource: the plural, lowercase name the API serves it under.
fn check_resource(value: &str) -> Result<(), FieldError> {
    check_field(
        "resource",
        value,
        is_dns_label,
        "must be a lowercase plural resource name (RFC 1123 label, e.g. `pods`)",
    )
}

fn check_group(value: &str) -> Result<(), FieldError> {
    check_field(
        "group",
        value,
        is_dns_subdomain,
        "must be an API group (RFC 1123 subdomain, e.g. `apps`)",
    )
}

fn check_namespace(value: &str) -> Result<(), FieldError> {
    check_field(
        "namespace",
        value,
        is_dns_label,
        "must be an RFC 1123 label (lowercase letters, digits and `-`, at most 63)",
    )
}

fn check_name(value: &str) -> Result<(), FieldError> {
    check_field(
        "name",
        value,
        is_dns_subdomain,
        "must be an RFC 1123 subdomain (lowercase letters, digits, `-` and `.`, at most 253)",
    )
}

/// `None` for `-` (the canonical string's "none").
fn dash(s: &str) -> Option<&str> {
    (s != "-").then_some(s)
}

/// One action on a cluster, from validated fields. Its [`canonical`](KubeAction::canonical)
/// string is what the rules, the approver and the audit record see.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct KubeAction {
    verb: KubeVerb,
    resource: String,
    group: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
}

impl KubeAction {
    /// An action from its fields, each validated: `resource` a lowercase plural name, `group` an
    /// API group (`None` or empty for the core group), `namespace` an RFC 1123 label, `name` an
    /// RFC 1123 subdomain. `get`, `logs` and `delete` need a name; `list` takes none; `logs` is
    /// on `pods` only.
    pub fn new(
        verb: KubeVerb,
        resource: &str,
        group: Option<&str>,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Result<KubeAction, FieldError> {
        check_resource(resource)?;
        let group = group.filter(|g| !g.is_empty());
        if let Some(group) = group {
            check_group(group)?;
        }
        if let Some(namespace) = namespace {
            check_namespace(namespace)?;
        }
        if let Some(name) = name {
            check_name(name)?;
        }
        match (verb, name) {
            (KubeVerb::List, Some(name)) => {
                return Err(field_error("name", name, "`list` takes no name"));
            }
            (KubeVerb::Get | KubeVerb::Logs | KubeVerb::Delete | KubeVerb::Apply, None) => {
                return Err(field_error("name", "-", format!("`{verb}` needs a name")));
            }
            _ => {}
        }
        if verb == KubeVerb::Logs && (resource != "pods" || group.is_some()) {
            return Err(field_error(
                "resource",
                resource,
                "`logs` is on `pods` only",
            ));
        }
        Ok(KubeAction {
            verb,
            resource: resource.to_owned(),
            group: group.map(str::to_owned),
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
        })
    }

    /// Reads a canonical string back, field by field, each validated as [`KubeAction::new`]
    /// does (what `meho policy check --action` accepts). Anything else is refused: exactly
    /// three words separated by single spaces, `<namespace>/<name>` with `-` for none.
    pub fn parse(text: &str) -> Result<KubeAction, FieldError> {
        let mut words = text.split(' ');
        let (Some(verb), Some(resource), Some(scope), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(field_error(
                "action",
                text,
                "must be `<verb> <resource[.group]> <namespace>/<name>` (single spaces, `-` for none)",
            ));
        };
        let verb = KubeVerb::parse(verb).ok_or_else(|| {
            field_error(
                "verb",
                verb,
                "must be one of get, list, logs, apply, delete",
            )
        })?;
        let (resource, group) = match resource.split_once('.') {
            Some((resource, group)) => (resource, Some(group)),
            None => (resource, None),
        };
        let Some((namespace, name)) = scope.split_once('/') else {
            return Err(field_error(
                "scope",
                scope,
                "must be `<namespace>/<name>`, with `-` for none",
            ));
        };
        KubeAction::new(verb, resource, group, dash(namespace), dash(name))
    }

    /// The verb.
    pub fn verb(&self) -> KubeVerb {
        self.verb
    }

    /// The plural resource name.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The API group; `None` for the core group.
    pub fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// The namespace; `None` for cluster-scoped objects and lists across every namespace.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The object's name; `None` for lists.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// `<resource>` or `<resource>.<group>`.
    pub fn qualified_resource(&self) -> String {
        match &self.group {
            Some(group) => format!("{}.{group}", self.resource),
            None => self.resource.clone(),
        }
    }

    /// `<verb> <resource[.group]> <namespace>/<name>`, `-` for none.
    pub fn canonical(&self) -> String {
        format!(
            "{} {} {}/{}",
            self.verb,
            self.qualified_resource(),
            self.namespace.as_deref().unwrap_or("-"),
            self.name.as_deref().unwrap_or("-")
        )
    }
}

impl fmt::Display for KubeAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// What a cluster rule does to the actions it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleEffect {
    /// The action may run.
    Allow,
    /// The action never runs (wins over every allow and approval).
    Deny,
    /// The action runs once a human approves it.
    RequireApproval,
}

impl RuleEffect {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleEffect::Allow => "allow",
            RuleEffect::Deny => "deny",
            RuleEffect::RequireApproval => "require_approval",
        }
    }
}

/// One rule of a cluster, as configured. Each list holds exact values or globs where `*`
/// stands for any run of characters valid in that field; `*` alone matches everything,
/// `-` (none) included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRule {
    /// Verbs (`get`, `list`, `logs`, `apply`, `delete`) or `*`.
    pub verbs: Vec<String>,
    /// Resources as `<plural>` (core group) or `<plural>.<group>`.
    pub resources: Vec<String>,
    /// Namespaces; `-` names cluster-scoped objects and lists across all namespaces.
    pub namespaces: Vec<String>,
    /// Object names; `-` names lists.
    pub names: Vec<String>,
    /// What the rule does.
    pub effect: RuleEffect,
    /// Raises the tier of the actions it allows (never below the verb's tier).
    pub tier: Option<Tier>,
    /// On an `allow` rule for `get`/`list` of `secrets`: show the values of Secrets instead of
    /// their sizes.
    pub reveal: bool,
}

/// Built-in resources outside the core group, by plural: a rule that names one without its
/// group would never match (the canonical string always carries the group), so it is refused.
const GROUPED: &[(&str, &str)] = &[
    ("deployments", "apps"),
    ("statefulsets", "apps"),
    ("daemonsets", "apps"),
    ("replicasets", "apps"),
    ("controllerrevisions", "apps"),
    ("jobs", "batch"),
    ("cronjobs", "batch"),
    ("ingresses", "networking.k8s.io"),
    ("networkpolicies", "networking.k8s.io"),
    ("ingressclasses", "networking.k8s.io"),
    ("roles", "rbac.authorization.k8s.io"),
    ("rolebindings", "rbac.authorization.k8s.io"),
    ("clusterroles", "rbac.authorization.k8s.io"),
    ("clusterrolebindings", "rbac.authorization.k8s.io"),
    ("horizontalpodautoscalers", "autoscaling"),
    ("poddisruptionbudgets", "policy"),
    ("customresourcedefinitions", "apiextensions.k8s.io"),
    ("storageclasses", "storage.k8s.io"),
    ("leases", "coordination.k8s.io"),
    ("priorityclasses", "scheduling.k8s.io"),
    ("endpointslices", "discovery.k8s.io"),
];

/// Why a rule did not compile: which rule, which field, what is wrong.
fn rule_error(cluster: &str, index: usize, message: impl Into<String>) -> PolicyError {
    PolicyError::InvalidRegex {
        policy: format!("{cluster}/rules[{index}]"),
        list: "rules",
        pattern: String::new(),
        message: message.into(),
    }
}

/// A glob of one field as a regex: `*` is any run of characters a field may hold (never a
/// space or `/`, which separate the fields).
fn glob_regex(glob: &str) -> String {
    if glob == "*" {
        return "[^ /]*".to_owned();
    }
    glob.split('*')
        .map(regex::escape)
        .collect::<Vec<_>>()
        .join("[^ /]*")
}

/// Validates a glob: `*`, or a valid value once each `*` stands for one character.
fn check_glob(
    field: &'static str,
    glob: &str,
    check: impl Fn(&str) -> Result<(), FieldError>,
) -> Result<(), FieldError> {
    if glob == "*" || (glob == "-" && matches!(field, "namespace" | "name")) {
        return Ok(());
    }
    check(&glob.replace('*', "a"))
}

fn alternation(
    field: &'static str,
    globs: &[String],
    check: impl Fn(&str) -> Result<(), FieldError>,
) -> Result<String, FieldError> {
    if globs.is_empty() {
        return Err(field_error(
            field,
            "",
            "the list is empty (use `*` for any)",
        ));
    }
    let mut parts = Vec::new();
    for glob in globs {
        check_glob(field, glob, &check)?;
        parts.push(glob_regex(glob));
    }
    Ok(format!("(?:{})", parts.join("|")))
}

fn check_resource_glob(value: &str) -> Result<(), FieldError> {
    let (resource, group) = match value.split_once('.') {
        Some((resource, group)) => (resource, Some(group)),
        None => (value, None),
    };
    check_resource(resource)?;
    if let Some(group) = group {
        check_group(group)?;
    } else if let Some((_, group)) = GROUPED.iter().find(|(plural, _)| *plural == resource) {
        return Err(field_error(
            "resource",
            value,
            format!("is served by API group `{group}`: write `{resource}.{group}`"),
        ));
    }
    Ok(())
}

impl ClusterRule {
    /// The anchored regex over canonical strings this rule matches.
    fn pattern(&self) -> Result<String, FieldError> {
        let verbs = alternation("verb", &self.verbs, |v| {
            KubeVerb::parse(v).map(|_| ()).ok_or_else(|| {
                field_error("verb", v, "must be one of get, list, logs, apply, delete")
            })
        })?;
        let resources = alternation("resource", &self.resources, check_resource_glob)?;
        let namespaces = alternation("namespace", &self.namespaces, check_namespace)?;
        let names = alternation("name", &self.names, check_name)?;
        Ok(format!("^{verbs} {resources} {namespaces}/{names}$"))
    }
}

/// A cluster's compiled rules.
#[derive(Debug, Clone)]
pub struct ClusterPolicy {
    set: RuleSet,
    rules: Vec<ClusterRule>,
    /// The patterns of `allow` rules with `reveal`.
    reveal: Vec<regex::bytes::Regex>,
}

impl ClusterPolicy {
    /// Compiles `rules` of cluster `name`, in order; the default is a denial.
    pub fn compile(name: &str, rules: Vec<ClusterRule>) -> Result<ClusterPolicy, PolicyError> {
        let mut members = Vec::new();
        let mut labels = Vec::new();
        let mut reveal = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            let pattern = rule
                .pattern()
                .map_err(|e| rule_error(name, index, e.to_string()))?;
            if rule.reveal {
                if rule.effect != RuleEffect::Allow {
                    return Err(rule_error(
                        name,
                        index,
                        "`reveal` is only meaningful on an `allow` rule",
                    ));
                }
                let regex = crate::policy::compile_pattern(&pattern)
                    .map_err(|e| rule_error(name, index, e))?;
                reveal.push(regex);
            }
            let label = format!("{name}/rules[{index}]");
            members.push(crate::rules::member(
                &label,
                &pattern,
                rule.effect,
                rule.tier,
            ));
            labels.push((pattern, label));
        }
        Ok(ClusterPolicy {
            set: RuleSet::compile(name, members, labels)?,
            rules,
            reveal,
        })
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.set.name
    }

    /// The rules as configured.
    pub fn rules(&self) -> &[ClusterRule] {
        &self.rules
    }

    /// The composed set (for `policy explain`).
    pub fn policies(&self) -> &PolicySet {
        &self.set.engine.policies
    }

    /// Whether runtime grants may widen this cluster (always: its baseline is an allowlist).
    pub fn check_grantable(&self) -> Result<(), PolicyError> {
        self.set.engine.check_grantable(&self.set.name)
    }

    /// Decides `action` for `caller` (and the human `end_user`, empty when unknown) at `now`,
    /// with the runtime `overlay`. The tier is at least the verb's.
    pub fn decide(
        &self,
        action: &KubeAction,
        caller: &str,
        end_user: &str,
        now: u64,
        overlay: Overlay<'_>,
    ) -> Decided {
        self.decide_traced(action, caller, end_user, now, overlay, false)
            .0
    }

    /// Decides like [`ClusterPolicy::decide`] and returns the steps taken.
    pub fn explain(
        &self,
        action: &KubeAction,
        caller: &str,
        end_user: &str,
        now: u64,
        overlay: Overlay<'_>,
    ) -> (Decided, Vec<Step>) {
        self.decide_traced(action, caller, end_user, now, overlay, true)
    }

    fn decide_traced(
        &self,
        action: &KubeAction,
        caller: &str,
        end_user: &str,
        now: u64,
        overlay: Overlay<'_>,
        trace: bool,
    ) -> (Decided, Vec<Step>) {
        self.set.decide(
            &action.canonical(),
            action.verb().tier(),
            caller,
            end_user,
            now,
            overlay,
            trace,
        )
    }

    /// Whether an allowed `action` may show Secret values: a `reveal` rule matches it.
    pub fn reveals(&self, action: &KubeAction, decision: &Decision) -> bool {
        decision.allows()
            && decision.grant_id.is_none()
            && self
                .reveal
                .iter()
                .any(|r| r.is_match(action.canonical().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use meho_core::{Effect, ReasonCode};

    fn rule(
        verbs: &[&str],
        resources: &[&str],
        ns: &[&str],
        names: &[&str],
        effect: RuleEffect,
    ) -> ClusterRule {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect();
        ClusterRule {
            verbs: v(verbs),
            resources: v(resources),
            namespaces: v(ns),
            names: v(names),
            effect,
            tier: None,
            reveal: false,
        }
    }

    fn decide(policy: &ClusterPolicy, action: &str) -> Decision {
        policy
            .decide(
                &KubeAction::parse(action).unwrap(),
                "agent",
                "",
                0,
                Overlay::default(),
            )
            .decision
    }

    #[test]
    fn canonical_round_trips() {
        for text in [
            "delete pods prod/web-1",
            "list deployments.apps -/-",
            "get customresourcedefinitions.apiextensions.k8s.io -/widgets.example.com",
            "logs pods kube-system/etcd-0",
        ] {
            assert_eq!(KubeAction::parse(text).unwrap().canonical(), text);
        }
    }

    #[test]
    fn malformed_actions_are_refused_field_by_field() {
        for (text, field) in [
            ("delete pods prod/Web", "name"),
            ("delete  pods prod/web", "action"),
            ("delete pods prod/web extra", "action"),
            ("exec pods prod/web", "verb"),
            ("delete Pods prod/web", "resource"),
            ("delete pods.Apps prod/web", "group"),
            ("delete pods pr_od/web", "namespace"),
            ("delete pods prod", "scope"),
            ("list pods prod/web", "name"),
            ("get pods prod/-", "name"),
            ("logs deployments.apps prod/web", "resource"),
            ("get pods prod/web\n", "name"),
            ("get pods prod/we*b", "name"),
        ] {
            let err = KubeAction::parse(text).unwrap_err();
            assert_eq!(err.field, field, "{text}: {err}");
        }
    }

    #[test]
    fn deny_wins_approval_holds_default_denies() {
        let policy = ClusterPolicy::compile(
            "prod",
            vec![
                rule(
                    &["get", "list", "logs"],
                    &["*"],
                    &["*"],
                    &["*"],
                    RuleEffect::Allow,
                ),
                rule(
                    &["delete"],
                    &["pods"],
                    &["prod"],
                    &["web-*"],
                    RuleEffect::RequireApproval,
                ),
                rule(&["*"], &["secrets"], &["*"], &["*"], RuleEffect::Deny),
            ],
        )
        .unwrap();
        let d = decide(&policy, "get pods prod/web-1");
        assert_eq!((d.effect, d.tier), (Effect::Allow, Tier::Read));
        assert_eq!(d.rule, "allow:prod/rules[0]");
        let d = decide(&policy, "delete pods prod/web-1");
        assert_eq!(d.effect, Effect::RequireApproval);
        assert_eq!(d.tier, Tier::Destructive);
        assert_eq!(d.rule, "require_approval:prod/rules[1]");
        let d = decide(&policy, "get secrets prod/db");
        assert_eq!(d.effect, Effect::Deny);
        assert_eq!(d.rule, "deny:prod/rules[2]");
        let d = decide(&policy, "delete pods prod/api-1");
        assert_eq!(d.effect, Effect::Deny);
        assert_eq!(d.reason_code, ReasonCode::AllowlistNoMatch);
        assert_eq!(d.rule, "default-deny:prod");
        let d = decide(&policy, "apply deployments.apps prod/web");
        assert_eq!(d.effect, Effect::Deny);
    }

    #[test]
    fn an_empty_policy_denies_everything() {
        let policy = ClusterPolicy::compile("c", Vec::new()).unwrap();
        assert_eq!(decide(&policy, "get pods a/b").effect, Effect::Deny);
    }

    #[test]
    fn rules_naming_a_grouped_resource_without_its_group_are_refused() {
        let err = ClusterPolicy::compile(
            "c",
            vec![rule(
                &["get"],
                &["deployments"],
                &["*"],
                &["*"],
                RuleEffect::Allow,
            )],
        )
        .unwrap_err();
        assert!(err.to_string().contains("deployments.apps"), "{err}");
        let err = ClusterPolicy::compile(
            "c",
            vec![rule(
                &["exec"],
                &["pods"],
                &["*"],
                &["*"],
                RuleEffect::Allow,
            )],
        )
        .unwrap_err();
        assert!(err.to_string().contains("verb"), "{err}");
    }

    #[test]
    fn a_glob_never_crosses_a_field() {
        let policy = ClusterPolicy::compile(
            "c",
            vec![rule(
                &["get"],
                &["pods"],
                &["prod*"],
                &["*"],
                RuleEffect::Allow,
            )],
        )
        .unwrap();
        assert!(decide(&policy, "get pods prod-eu/x").allows());
        assert!(!decide(&policy, "get pods staging/x").allows());
    }

    #[test]
    fn grants_widen_a_cluster() {
        let policy = ClusterPolicy::compile("c", Vec::new()).unwrap();
        policy.check_grantable().unwrap();
        let grant = crate::Grant::new("g1", "^get pods prod/web-1$", Tier::Read, 100).unwrap();
        let action = KubeAction::parse("get pods prod/web-1").unwrap();
        let decided = policy.decide(
            &action,
            "agent",
            "",
            1,
            Overlay {
                grants: std::slice::from_ref(&grant),
                waivers: &[],
            },
        );
        assert!(decided.decision.allows());
        assert_eq!(decided.decision.grant_id.as_deref(), Some("g1"));
        assert!(decided.shape.force_command.is_none());
    }
}
