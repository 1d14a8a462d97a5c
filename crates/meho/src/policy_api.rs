//! `meho policy check --api` and `meho policy explain --api`: an API's rules, decided offline by
//! the same engine as the connector, on the canonical action `<METHOD> <template> <path>`.
//!
//! Offline means without the API: operation overrides keyed `METHOD /path` apply; overrides keyed
//! by an `operationId` need the spec, so they apply when the spec is a local file and are
//! reported as not applied when it is fetched from the API (`api:`).

use std::fmt::Write as _;

use meho_config::{Api, Config, SpecSource};
use meho_core::Tier;
use meho_policy::http::{ApiPolicy, HttpAction, Method, OperationOverride};
use meho_policy::{Decided, Overlay, Step};

use crate::Failure;
use crate::cli::{Format, RequestArgs};
use crate::policy_cmd::{find_target, now, parsed_action, trace_text};

fn find_api<'c>(config: &'c Config, name: &str) -> Result<&'c Api, Failure> {
    find_target(&config.apis, "api", name)
}

fn action(text: &str) -> Result<HttpAction, Failure> {
    parsed_action(HttpAction::parse(text))
}

/// The API's policy with the overrides that can be resolved offline, and the keys that could
/// not be.
struct Offline {
    policy: ApiPolicy,
    /// `(method, template)` → the override's tier.
    tiers: Vec<(Method, String, Tier)>,
    unresolved: Vec<String>,
}

fn offline(api: &Api) -> Result<Offline, Failure> {
    let spec = match &api.spec {
        SpecSource::File(path) => std::fs::read_to_string(path)
            .ok()
            .and_then(|text| meho_http::Spec::parse(&text).ok()),
        SpecSource::Api(_) => None,
    };
    let mut overrides = Vec::new();
    let mut tiers = Vec::new();
    let mut unresolved = Vec::new();
    for (key, op) in &api.operations {
        let resolved = match &spec {
            Some(spec) => spec.find(key).map(|o| (o.method, o.path.clone())),
            None => key.split_once(' ').and_then(|(method, template)| {
                Method::parse(method).map(|m| (m, template.to_owned()))
            }),
        };
        let Some((method, template)) = resolved else {
            unresolved.push(key.clone());
            continue;
        };
        if let Some(tier) = op.tier {
            tiers.push((method, template.clone(), tier));
        }
        overrides.push(OperationOverride {
            key: key.clone(),
            method,
            template,
            enabled: op.enabled,
            require_approval: op.require_approval,
        });
    }
    let policy = ApiPolicy::compile(&api.name, api.rules.clone(), &overrides)
        .map_err(|err| Failure::Usage(err.to_string()))?;
    Ok(Offline {
        policy,
        tiers,
        unresolved,
    })
}

impl Offline {
    fn floor(&self, action: &HttpAction) -> Tier {
        self.tiers
            .iter()
            .find(|(m, t, _)| *m == action.method() && t == action.template())
            .map_or_else(|| action.method().tier(), |(_, _, tier)| *tier)
    }

    #[expect(clippy::print_stderr, reason = "CLI output")]
    fn warn(&self) {
        for key in &self.unresolved {
            eprintln!(
                "warning: operations.\"{}\" is keyed by an operationId the spec (fetched from the API) would resolve; it is not applied here",
                meho_core::display::escape(key)
            );
        }
    }

    fn decide(
        &self,
        action: &HttpAction,
        request: &RequestArgs,
        trace: bool,
    ) -> (Decided, Vec<Step>) {
        let floor = self.floor(action);
        if trace {
            self.policy.explain(
                action,
                floor,
                &request.caller,
                &request.end_user,
                now(),
                Overlay::default(),
            )
        } else {
            (
                self.policy.decide(
                    action,
                    floor,
                    &request.caller,
                    &request.end_user,
                    now(),
                    Overlay::default(),
                ),
                Vec::new(),
            )
        }
    }
}

/// The decision for `text` on `api`.
pub(crate) fn check(
    config: &Config,
    api: &str,
    text: &str,
    request: &RequestArgs,
) -> Result<Decided, Failure> {
    let api = find_api(config, api)?;
    let action = action(text)?;
    let offline = offline(api)?;
    offline.warn();
    Ok(offline.decide(&action, request, false).0)
}

/// Prints `api`'s rules and, given an action, the step-by-step decision.
pub(crate) fn explain(
    config: &Config,
    api: &str,
    text: Option<&str>,
    request: &RequestArgs,
    format: Format,
) -> Result<(), Failure> {
    let api = find_api(config, api)?;
    let offline = offline(api)?;
    offline.warn();
    let outcome = match text {
        Some(text) => {
            let action = action(text)?;
            Some((action.canonical(), offline.decide(&action, request, true)))
        }
        None => None,
    };
    let (rules, defaults) = match &api.rules {
        Some(rules) => (rules.clone(), false),
        None => (meho_policy::http::default_rules(), true),
    };
    let list = if defaults { "default-rules" } else { "rules" };
    let shown: Vec<serde_json::Value> = rules
        .iter()
        .enumerate()
        .map(|(index, rule)| {
            serde_json::json!({
                "name": format!("{}/{list}[{index}]", api.name),
                "pattern": rule.pattern,
                "effect": rule.effect.as_str(),
                "tier": rule.tier,
            })
        })
        .collect();
    if format == Format::Json {
        let mut body = serde_json::json!({
            "api": api.name,
            "base_url": api.base_url.as_str(),
            "tenant": api.tenant,
            "groups": api.groups,
            "rules": shown,
            "default_rules": defaults,
            "operations": api.operations.iter().map(|(key, op)| serde_json::json!({
                "key": key, "enabled": op.enabled, "tier": op.tier, "require_approval": op.require_approval,
            })).collect::<Vec<_>>(),
            "default": "deny",
        });
        if let (Some((canonical, (decision, steps))), Some(map)) = (&outcome, body.as_object_mut())
        {
            map.insert("action".into(), serde_json::json!(canonical));
            map.insert("steps".into(), serde_json::json!(steps));
            map.insert("decision".into(), serde_json::json!(decision));
        }
        let json = serde_json::to_string(&body)
            .map_err(|err| Failure::Runtime(anyhow::anyhow!("cannot encode: {err}")))?;
        outln!("{json}")?;
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(out, "api {} ({})", api.name, api.base_url);
    let _ = writeln!(out, "  tenant: {}", api.tenant);
    let _ = writeln!(
        out,
        "rules{} (deny wins, then require_approval, then allow; anything else is denied):",
        if defaults {
            " (none configured: the defaults)"
        } else {
            ""
        }
    );
    for (index, rule) in rules.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}/{list}[{index}] {:<16} {}{}",
            api.name,
            rule.effect.as_str(),
            rule.pattern,
            rule.tier.map(|t| format!(" tier={t}")).unwrap_or_default(),
        );
    }
    for (key, op) in &api.operations {
        let _ = writeln!(
            out,
            "  operations[{key}] enabled={} require_approval={}{}",
            op.enabled,
            op.require_approval,
            op.tier.map(|t| format!(" tier={t}")).unwrap_or_default(),
        );
    }
    if let Some((canonical, (decision, steps))) = &outcome {
        trace_text(&mut out, canonical, steps, decision);
    }
    out!("{}", crate::output::escape_lines(&out))?;
    Ok(())
}
