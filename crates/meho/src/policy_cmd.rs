use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use meho_config::{Config, DEFAULT_GROUP, Diagnostic, Host};
use meho_core::Effect;
use meho_policy::lint::PolicyLint;
use meho_policy::{Decided, Elevation, Overlay, PolicySet, Request};

use crate::Failure;
use crate::cli::{CheckArgs, ExplainArgs, Format, RequestArgs};

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn find_host<'c>(config: &'c Config, name: &str) -> Result<&'c Host, Failure> {
    find_target(&config.hosts, "host", name)
}

/// The target `name` of a `kind` (`host`, `cluster`, `api`): unknown is a usage error listing the
/// configured ones.
pub(crate) fn find_target<'c, T>(
    targets: &'c std::collections::BTreeMap<String, T>,
    kind: &str,
    name: &str,
) -> Result<&'c T, Failure> {
    targets.get(name).ok_or_else(|| {
        let known: Vec<&str> = targets.keys().map(String::as_str).collect();
        Failure::Usage(format!(
            "unknown {kind} `{}`; configured {kind}s: {}",
            meho_core::display::escape(name),
            if known.is_empty() {
                "(none)".to_owned()
            } else {
                known.join(", ")
            }
        ))
    })
}

/// An `--action` as its parser read it: a malformed one is a usage error, never decided.
pub(crate) fn parsed_action<A, E: std::fmt::Display>(parsed: Result<A, E>) -> Result<A, Failure> {
    parsed.map_err(|err| {
        Failure::Usage(format!(
            "invalid --action: {}",
            meho_core::display::escape(&err.to_string())
        ))
    })
}

fn request<'a>(args: &'a RequestArgs, command: &'a str) -> Request<'a> {
    Request {
        command,
        elevation: Elevation::from_request(args.sudo, args.sudo_user.as_deref()),
        caller: &args.caller,
        end_user: &args.end_user,
        now: now(),
    }
}

pub(crate) fn check(args: &CheckArgs) -> Result<(), Failure> {
    let config = args.config.load_required()?;
    if let Some(cluster) = &args.request.cluster {
        let action = args.action.as_deref().unwrap_or_default();
        let decision = crate::policy_cluster::check(&config, cluster, action, &args.request)?;
        return print_decision(&decision, args.format);
    }
    if let Some(api) = &args.request.api {
        let action = args.action.as_deref().unwrap_or_default();
        let decision = crate::policy_api::check(&config, api, action, &args.request)?;
        return print_decision(&decision, args.format);
    }
    let host = find_host(&config, args.request.host.as_deref().unwrap_or_default())?;
    let command = args.command.as_deref().unwrap_or_default();
    let decision = host
        .policy
        .decide(&request(&args.request, command), Overlay::default());
    print_decision(&decision, args.format)
}

/// Prints a decision as `policy check` does.
pub(crate) fn print_decision(decision: &Decided, format: Format) -> Result<(), Failure> {
    match format {
        Format::Json => outln!("{}", decision_json(decision)?)?,
        // The command and the rule may hold control or bidi characters: escaped for the screen.
        Format::Text => out!("{}", crate::output::escape_lines(&decision_text(decision)))?,
    }
    Ok(())
}

fn decision_json(decided: &Decided) -> Result<String, Failure> {
    serde_json::to_string(decided)
        .map_err(|err| Failure::Runtime(anyhow::anyhow!("cannot encode decision: {err}")))
}

pub(crate) fn decision_text(decided: &Decided) -> String {
    let decision = &decided.decision;
    let mut out = String::new();
    // A refusal may report that an approval rule matched too; it is still a denial.
    let verdict = match decision.effect {
        Effect::RequireApproval => "NEEDS APPROVAL",
        Effect::Allow => "ALLOWED",
        Effect::Deny => "DENIED",
    };
    let _ = writeln!(out, "decision:      {verdict} ({})", decision.reason_code);
    let rule = if decision.rule.is_empty() {
        "(none)"
    } else {
        decision.rule.as_str()
    };
    let _ = writeln!(out, "rule:          {rule}");
    let _ = writeln!(out, "tier:          {}", decision.tier);
    if let Some(force_command) = &decided.shape.force_command {
        let _ = writeln!(out, "force-command: {force_command}");
    }
    for warning in &decision.warnings {
        let _ = writeln!(out, "warning:       {warning}");
    }
    out
}

/// The step-by-step decision for `what` (a command or an action), as `policy explain` prints it.
pub(crate) fn trace_text(out: &mut String, what: &str, steps: &[String], decision: &Decided) {
    let _ = writeln!(out, "decision for `{what}`:");
    for (index, step) in steps.iter().enumerate() {
        let _ = writeln!(out, "  {}. {step}", index + 1);
    }
    for line in decision_text(decision).lines() {
        let _ = writeln!(out, "  {line}");
    }
}

/// Where a member of the composed set came from: the groups that attach it, or the host itself.
fn origin(config: &Config, host: &Host, member: &str) -> String {
    if member == format!("{}/inline", host.name) {
        return "inline command_policy".to_owned();
    }
    let groups: Vec<&str> = std::iter::once(DEFAULT_GROUP)
        .chain(host.groups.iter().map(String::as_str))
        .filter(|group| {
            config
                .group_command_policies
                .get(*group)
                .is_some_and(|names| names.iter().any(|n| n == member))
        })
        .collect();
    format!("group {}", groups.join(", "))
}

/// The lints of every member of the set, each with its place in the file: `config validate`
/// reported it as a warning with the same message, so the warning gives the location.
fn member_lints<'c>(
    config: &'c Config,
    set: &PolicySet,
) -> Vec<(PolicyLint, Option<&'c Diagnostic>)> {
    set.members()
        .iter()
        .flat_map(|member| meho_policy::lint::lint_policy(&member.policy))
        .map(|lint| {
            let message = lint.to_string();
            let at = config.warnings.iter().find(|d| d.message == message);
            (lint, at)
        })
        .collect()
}

pub(crate) fn explain(args: &ExplainArgs) -> Result<(), Failure> {
    let config = args.config.load_required()?;
    if let Some(api) = &args.request.api {
        return crate::policy_api::explain(
            &config,
            api,
            args.action.as_deref(),
            &args.request,
            args.format,
        );
    }
    if let Some(cluster) = &args.request.cluster {
        return crate::policy_cluster::explain(
            &config,
            cluster,
            args.action.as_deref(),
            &args.request,
            args.format,
        );
    }
    let host = find_host(&config, args.request.host.as_deref().unwrap_or_default())?;
    let set = &host.policy.policies;
    let outcome = args.command.as_deref().map(|command| {
        host.policy
            .explain(&request(&args.request, command), Overlay::default())
    });
    let lints = member_lints(&config, set);

    if args.format == Format::Json {
        let members: Vec<serde_json::Value> = set
            .members()
            .iter()
            .map(|m| {
                let p = &m.policy;
                serde_json::json!({
                    "name": p.name,
                    "origin": origin(&config, host, &p.name),
                    "mode": p.mode.as_str(),
                    "enforcement": p.enforcement.as_str(),
                    "shell_parse": p.shell_parse,
                    "tier": p.tier,
                    "restricting": m.restricting,
                    "allow": p.allow,
                    "deny": p.deny,
                    "require_approval": p.require_approval,
                })
            })
            .collect();
        let mut body = serde_json::json!({
            "host": host.name,
            "shell_parse": set.shell_parse(),
            "enforces": set.enforces(),
            "has_allowlist": set.has_allowlist(),
            "allow_sudo": host.policy.allow_sudo,
            "allowed_sudo_users": host.policy.allowed_sudo_users,
            "members": members,
            "lints": lints.iter().map(|(lint, at)| serde_json::json!({
                "policy": lint.policy,
                "list": lint.list,
                "index": lint.index,
                "pattern": lint.pattern,
                "lint": lint.lint.kind.code(),
                "message": lint.to_string(),
                "file": at.map(|d| d.file.as_str()),
                "line": at.map(|d| d.line),
                "column": at.map(|d| d.column),
            })).collect::<Vec<_>>(),
        });
        if let (Some((decision, steps)), Some(map)) = (&outcome, body.as_object_mut()) {
            map.insert("steps".into(), serde_json::json!(steps));
            map.insert("decision".into(), serde_json::json!(decision));
        }
        outln!("{body}")?;
        return Ok(());
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "host {} ({}@{}{})",
        host.name,
        host.user,
        host.addr,
        host.jump
            .as_deref()
            .map(|j| format!(" via {j}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "  groups: {}",
        if host.groups.is_empty() {
            "(none)".to_owned()
        } else {
            host.groups.join(", ")
        }
    );
    let sudo = if !host.policy.allow_sudo {
        "not allowed".to_owned()
    } else if host.policy.allowed_sudo_users.is_empty() {
        "root only".to_owned()
    } else {
        host.policy.allowed_sudo_users.join(", ")
    };
    let _ = writeln!(out, "  sudo: {sudo}");
    let _ = writeln!(
        out,
        "  firewall: shell parsing {}, {}, {}, default tier {}",
        if set.shell_parse() { "on" } else { "off" },
        if !set.is_restricting() {
            "no restricting policy (everything well-formed is allowed)"
        } else if set.enforces() {
            "enforcing"
        } else {
            "audit only"
        },
        if set.has_allowlist() {
            "allowlist active"
        } else {
            "no allowlist"
        },
        set.default_tier()
    );
    let _ = writeln!(out, "composed policy (in evaluation order):");
    if set.members().is_empty() {
        let _ = writeln!(out, "  (no command policy)");
    }
    for (index, member) in set.members().iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}. {member} [{}]",
            index + 1,
            origin(&config, host, &member.policy.name)
        );
        let p = &member.policy;
        for (label, patterns) in [
            ("deny", &p.deny),
            ("require_approval", &p.require_approval),
            ("allow", &p.allow),
        ] {
            for pattern in patterns {
                let _ = writeln!(out, "       {label:<16} {pattern}");
            }
        }
    }
    if !lints.is_empty() {
        let _ = writeln!(
            out,
            "lint warnings (see Pitfalls in docs/command-firewall.md):"
        );
        for (lint, at) in &lints {
            match at {
                Some(at) => {
                    let _ = writeln!(out, "  {at}");
                }
                None => {
                    let _ = writeln!(out, "  {lint}");
                }
            }
        }
    }
    if let Some((decision, steps)) = &outcome {
        trace_text(
            &mut out,
            args.command.as_deref().unwrap_or_default(),
            steps,
            decision,
        );
    }
    out!("{}", crate::output::escape_lines(&out))?;
    Ok(())
}
