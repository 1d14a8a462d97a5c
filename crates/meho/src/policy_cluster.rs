//! `meho policy check --cluster` and `meho policy explain --cluster`: a cluster's rules, decided
//! by the same engine as a host's firewall, on the canonical action string.

use std::fmt::Write as _;

use meho_config::{Cluster, Config};
use meho_policy::kube::KubeAction;
use meho_policy::{Decided, Overlay};

use crate::Failure;
use crate::cli::{Format, RequestArgs};
use crate::policy_cmd::{find_target, now, parsed_action, trace_text};

fn find_cluster<'c>(config: &'c Config, name: &str) -> Result<&'c Cluster, Failure> {
    find_target(&config.clusters, "cluster", name)
}

/// The action `text`, validated field by field: a malformed one is a usage error, never decided.
fn action(text: &str) -> Result<KubeAction, Failure> {
    parsed_action(KubeAction::parse(text))
}

/// The decision for `text` on `cluster`.
pub(crate) fn check(
    config: &Config,
    cluster: &str,
    text: &str,
    request: &RequestArgs,
) -> Result<Decided, Failure> {
    let cluster = find_cluster(config, cluster)?;
    let action = action(text)?;
    Ok(cluster.policy.decide(
        &action,
        &request.caller,
        &request.end_user,
        now(),
        Overlay::default(),
    ))
}

/// Prints `cluster`'s rules and, given an action, the step-by-step decision.
pub(crate) fn explain(
    config: &Config,
    cluster: &str,
    text: Option<&str>,
    request: &RequestArgs,
    format: Format,
) -> Result<(), Failure> {
    let cluster = find_cluster(config, cluster)?;
    let outcome = match text {
        Some(text) => {
            let action = action(text)?;
            Some((
                action.canonical(),
                cluster.policy.explain(
                    &action,
                    &request.caller,
                    &request.end_user,
                    now(),
                    Overlay::default(),
                ),
            ))
        }
        None => None,
    };
    let rules: Vec<serde_json::Value> = cluster
        .policy
        .rules()
        .iter()
        .enumerate()
        .map(|(index, rule)| {
            serde_json::json!({
                "name": format!("{}/rules[{index}]", cluster.name),
                "verbs": rule.verbs,
                "resources": rule.resources,
                "namespaces": rule.namespaces,
                "names": rule.names,
                "effect": rule.effect.as_str(),
                "tier": rule.tier,
                "reveal": rule.reveal,
            })
        })
        .collect();
    let bindings: Vec<serde_json::Value> = cluster
        .sa_bindings
        .iter()
        .map(|b| {
            serde_json::json!({
                "groups": b.groups,
                "service_account": format!("{}/{}", b.namespace, b.service_account),
            })
        })
        .collect();
    if format == Format::Json {
        let mut body = serde_json::json!({
            "cluster": cluster.name,
            "api_server": cluster.api_server,
            "tenant": cluster.tenant,
            "groups": cluster.groups,
            "token_ttl_seconds": cluster.token_ttl_seconds,
            "sa_bindings": bindings,
            "rules": rules,
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
    let _ = writeln!(out, "cluster {} ({})", cluster.name, cluster.api_server);
    let _ = writeln!(out, "  tenant: {}", cluster.tenant);
    let _ = writeln!(
        out,
        "  groups: {}",
        if cluster.groups.is_empty() {
            "(none)".to_owned()
        } else {
            cluster.groups.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "  tokens: TokenRequest, {} s, one per call",
        cluster.token_ttl_seconds
    );
    let _ = writeln!(out, "service account bindings (first match wins):");
    for binding in &cluster.sa_bindings {
        let groups = if binding.groups.is_empty() {
            "(default)".to_owned()
        } else {
            binding.groups.join(", ")
        };
        let _ = writeln!(
            out,
            "  {groups:<24} → {}/{}",
            binding.namespace, binding.service_account
        );
    }
    let _ = writeln!(
        out,
        "rules (deny wins, then require_approval, then allow; anything else is denied):"
    );
    if cluster.policy.rules().is_empty() {
        let _ = writeln!(out, "  (none: every action is denied)");
    }
    for (index, rule) in cluster.policy.rules().iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}/rules[{index}] {:<16} verbs={} resources={} namespaces={} names={}{}{}",
            cluster.name,
            rule.effect.as_str(),
            rule.verbs.join(","),
            rule.resources.join(","),
            rule.namespaces.join(","),
            rule.names.join(","),
            rule.tier.map(|t| format!(" tier={t}")).unwrap_or_default(),
            if rule.reveal { " reveal" } else { "" },
        );
    }
    if let Some((canonical, (decision, steps))) = &outcome {
        trace_text(&mut out, canonical, steps, decision);
    }
    out!("{}", crate::output::escape_lines(&out))?;
    Ok(())
}
