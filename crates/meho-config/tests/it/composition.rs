//! A host's policy is composed as `policy explain` shows it: `_default`'s policies first, then each
//! of the host's groups in the order the host lists them, then the host's inline policy; a policy
//! named twice is kept once, at its first place.

use crate::{host, parse_ok};

fn member_names(config: &meho_config::Config, host: &str) -> Vec<String> {
    config.hosts[host]
        .policy
        .policies
        .members()
        .iter()
        .map(|m| m.policy.name.clone())
        .collect()
}

const POLICIES: &str = r#"
[command_policies.base]
mode = "denylist"
deny = ["^shutdown"]

[command_policies.shared]
mode = "denylist"
deny = ["^reboot"]

[command_policies.zeta_only]
mode = "denylist"
deny = ["^zeta"]

[command_policies.alpha_only]
mode = "denylist"
require_approval = ["^alpha"]

[group_command_policies]
_default = ["base", "shared"]
zeta = ["zeta_only", "base"]
alpha = ["shared", "alpha_only", "zeta_only"]
"#;

#[test]
fn composes_default_then_groups_in_host_order_then_inline_dropping_duplicates() {
    let text = format!(
        "{}groups = [\"zeta\", \"alpha\"]\n\n[hosts.web.command_policy]\nmode = \"denylist\"\ndeny = [\"^rm\"]\n{POLICIES}",
        host("web", "")
    );
    let config = parse_ok(&text);
    assert_eq!(
        member_names(&config, "web"),
        ["base", "shared", "zeta_only", "alpha_only", "web/inline"]
    );
}

#[test]
fn group_order_follows_the_host_not_the_alphabet() {
    let text = format!(
        "{}groups = [\"alpha\", \"zeta\"]\n{POLICIES}",
        host("web", "")
    );
    let config = parse_ok(&text);
    assert_eq!(
        member_names(&config, "web"),
        ["base", "shared", "alpha_only", "zeta_only"]
    );
}

#[test]
fn host_without_groups_gets_only_default_and_inline() {
    let text = format!(
        "{}\n[hosts.web.command_policy]\nmode = \"off\"\n{POLICIES}",
        host("web", "")
    );
    let config = parse_ok(&text);
    assert_eq!(
        member_names(&config, "web"),
        ["base", "shared", "web/inline"]
    );
    let members = config.hosts["web"].policy.policies.members();
    assert!(members[0].restricting);
    assert!(!members[2].restricting, "an `off` policy is inert");
}

#[test]
fn group_without_policies_adds_nothing() {
    let text = format!(
        "{}groups = [\"other\", \"zeta\"]\n{POLICIES}",
        host("web", "")
    );
    let config = parse_ok(&text);
    assert_eq!(
        member_names(&config, "web"),
        ["base", "shared", "zeta_only"]
    );
}

#[test]
fn composed_deny_rules_of_every_member_apply() {
    use meho_policy::{Elevation, Overlay, Request};
    let text = format!("{}groups = [\"zeta\"]\n{POLICIES}", host("web", ""));
    let config = parse_ok(&text);
    let policy = &config.hosts["web"].policy;
    let decide = |command: &str| {
        policy.decide(
            &Request {
                command,
                elevation: Elevation::None,
                caller: "test",
                end_user: "",
                now: 0,
            },
            Overlay::default(),
        )
    };
    assert_eq!(decide("shutdown -h now").decision.rule, "deny:^shutdown");
    assert_eq!(decide("zeta").decision.rule, "deny:^zeta");
    assert!(decide("ls").decision.may_run());
}
