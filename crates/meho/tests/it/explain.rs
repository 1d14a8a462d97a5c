//! `meho policy explain`: the composed policy in evaluation order and the steps of a decision.

use std::path::PathBuf;

use serde_json::Value;

use crate::{Workdir, host, position_of, stderr_of, stdout_of};

/// `web` is in groups `zeta` then `alpha`, so its policies compose as `base` (from `_default`),
/// `zeta_only`, `alpha_only` (`base` again from `zeta` is dropped), then `web/inline`.
fn config_text() -> String {
    format!(
        r#"{web}
[hosts.web.command_policy]
mode = "denylist"
deny = ["^rm\\s"]
require_approval = ["^systemctl restart "]

[command_policies.base]
mode = "denylist"
deny = ["^shutdown"]

[command_policies.zeta_only]
mode = "denylist"
deny = ["^mkfs"]

[command_policies.alpha_only]
mode = "denylist"
require_approval = ["^apt "]

[group_command_policies]
_default = ["base"]
alpha = ["alpha_only"]
zeta = ["zeta_only", "base"]
"#,
        web = host("web", "groups = [\"zeta\", \"alpha\"]"),
    )
}

const ORDER: &[&str] = &["base", "zeta_only", "alpha_only", "web/inline"];
const RULES: &[(&str, &str)] = &[
    ("deny", "^shutdown"),
    ("deny", "^mkfs"),
    ("require_approval", "^apt "),
    ("deny", "^rm\\s"),
    ("require_approval", "^systemctl restart "),
];

struct Fixture {
    work: Workdir,
    config: PathBuf,
}

fn fixture() -> Fixture {
    let work = Workdir::new();
    let config = work.write("meho.toml", &config_text());
    Fixture { work, config }
}

impl Fixture {
    fn explain(&self, extra: &[&str]) -> String {
        let output = self
            .work
            .meho()
            .args(["policy", "explain", "--config"])
            .arg(&self.config)
            .args(["--host", "web"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "stderr: {}",
            stderr_of(&output)
        );
        stdout_of(&output)
    }
}

#[test]
fn prints_every_member_in_composition_order_with_its_patterns() {
    let text = fixture().explain(&[]);
    let mut last = 0;
    for name in ORDER {
        let at = text
            .find(&format!(" {name} ("))
            .unwrap_or_else(|| panic!("member `{name}` missing:\n{text}"));
        assert!(at > last, "`{name}` out of order:\n{text}");
        last = at;
    }
    assert_eq!(
        text.matches(" base (").count(),
        1,
        "a duplicate member is listed once:\n{text}"
    );
    // Each rule is listed as `LABEL PATTERN`, the pattern exactly as written (trailing space kept).
    let mut last = 0;
    for (label, pattern) in RULES {
        let at = text
            .lines()
            .position(|l| {
                l.trim_start()
                    .strip_prefix(label)
                    .is_some_and(|rest| rest.trim_start() == *pattern)
            })
            .unwrap_or_else(|| panic!("rule `{label} {pattern}` missing:\n{text}"));
        assert!(at > last, "`{pattern}` out of order:\n{text}");
        last = at;
    }
    assert!(!text.contains("decision for"), "no command, no decision");
}

#[test]
fn with_a_command_prints_numbered_steps_and_the_decision() {
    let text = fixture().explain(&["--command", "mkfs.ext4 /dev/sda"]);
    let (_, decision) = text
        .split_once("decision for `mkfs.ext4 /dev/sda`:")
        .unwrap_or_else(|| panic!("no decision section:\n{text}"));
    let steps: Vec<&str> = decision
        .lines()
        .map(str::trim_start)
        .filter(|l| {
            l.split_once(". ")
                .is_some_and(|(n, _)| n.parse::<usize>().is_ok())
        })
        .collect();
    assert!(steps.len() >= 2, "numbered steps expected:\n{text}");
    for (index, step) in steps.iter().enumerate() {
        assert!(
            step.starts_with(&format!("{}. ", index + 1)),
            "steps are numbered from 1 in order:\n{text}"
        );
    }
    assert!(
        steps
            .iter()
            .any(|s| s.contains("^mkfs") && s.contains("zeta_only")),
        "the deciding rule and its member appear in the steps:\n{text}"
    );
    assert!(decision.contains("DENIED"), "{text}");
    assert!(decision.contains("deny:^mkfs"), "{text}");
}

#[test]
fn json_has_members_in_order_and_steps() {
    let text = fixture().explain(&["--command", "apt install x", "--format", "json"]);
    let body: Value = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ORDER);
    let steps = body["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    assert!(steps.iter().all(Value::is_string));
    assert_eq!(body["decision"]["reason_code"], "needs_approval");
    assert_eq!(body["decision"]["rule"], "require_approval:^apt ");
    assert_eq!(body["members"][0]["origin"], "group _default, zeta");
    assert_eq!(body["members"][3]["origin"], "inline command_policy");
}

#[test]
fn json_without_command_has_members_only() {
    let text = fixture().explain(&["--format", "json"]);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["members"].as_array().unwrap().len(), ORDER.len());
    assert!(body.get("steps").is_none());
}

#[test]
fn explain_agrees_with_check() {
    let f = fixture();
    let explained: Value =
        serde_json::from_str(&f.explain(&["--command", "ls | rm -r x", "--format", "json"]))
            .unwrap();
    let output = f
        .work
        .meho()
        .args(["policy", "check", "--config"])
        .arg(&f.config)
        .args([
            "--host",
            "web",
            "--command",
            "ls | rm -r x",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let checked: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(explained["decision"], checked);
}

#[test]
fn host_without_policy_says_so() {
    let work = Workdir::new();
    let config = work.write("meho.toml", &host("bare", ""));
    let output = work
        .meho()
        .args(["policy", "explain", "--config"])
        .arg(&config)
        .args(["--host", "bare"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout_of(&output).contains("(no command policy)"));
}

#[test]
fn unknown_host_exits_2() {
    let f = fixture();
    let output = f
        .work
        .meho()
        .args(["policy", "explain", "--config"])
        .arg(&f.config)
        .args(["--host", "nosuch"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

// Every rule of the fixture names a bare command (`^shutdown`, not `^(\S*/)?shutdown`), so each is
// a `bare-command-name` lint.

#[test]
fn text_lists_lint_warnings_with_their_place_in_the_file() {
    let f = fixture();
    let text = f.explain(&[]);
    let (_, lints) = text
        .split_once("lint warnings")
        .unwrap_or_else(|| panic!("no lint section:\n{text}"));
    let (line, column) = position_of(&config_text(), "\"^shutdown\"");
    let expected = format!(
        "{}:{line}:{column}: policy `base`: deny rule `^shutdown` names the bare command",
        f.config.display()
    );
    assert!(lints.contains(&expected), "{expected}\nin:\n{text}");
    for (_, pattern) in RULES {
        assert!(
            lints.contains(&format!("`{pattern}`")),
            "`{pattern}`:\n{text}"
        );
    }
}

#[test]
fn json_has_a_lints_array_and_keeps_its_other_fields() {
    let f = fixture();
    let body: Value = serde_json::from_str(&f.explain(&["--format", "json"])).unwrap();
    for key in [
        "host",
        "shell_parse",
        "enforces",
        "has_allowlist",
        "allow_sudo",
        "allowed_sudo_users",
        "members",
    ] {
        assert!(body.get(key).is_some(), "`{key}` missing: {body}");
    }
    let lints = body["lints"].as_array().expect("a lints array");
    assert_eq!(lints.len(), RULES.len(), "{body}");
    let first = &lints[0];
    assert_eq!(first["policy"], "base");
    assert_eq!(first["list"], "deny");
    assert_eq!(first["index"], 0);
    assert_eq!(first["pattern"], "^shutdown");
    assert_eq!(first["lint"], "bare-command-name");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .starts_with("policy `base`: deny rule `^shutdown`"),
        "{first}"
    );
    let (line, column) = position_of(&config_text(), "\"^shutdown\"");
    assert_eq!(first["line"], line);
    assert_eq!(first["column"], column);
    assert_eq!(first["file"], f.config.display().to_string());
    // The same with a command: the decision is unchanged and the lints are still there.
    let body: Value =
        serde_json::from_str(&f.explain(&["--command", "ls", "--format", "json"])).unwrap();
    assert_eq!(body["lints"].as_array().unwrap().len(), RULES.len());
    assert_eq!(body["decision"]["reason_code"], "allowed");
}

#[test]
fn clean_policy_has_no_lint_section_and_an_empty_lints_array() {
    let work = Workdir::new();
    let config = work.write(
        "meho.toml",
        &format!(
            "{}\n[hosts.web.command_policy]\nmode = \"allowlist\"\nallow = ['^uptime$']\n",
            host("web", "")
        ),
    );
    let run = |extra: &[&str]| {
        let output = work
            .meho()
            .args(["policy", "explain", "--config"])
            .arg(&config)
            .args(["--host", "web"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        stdout_of(&output)
    };
    let text = run(&[]);
    assert!(!text.contains("lint warnings"), "{text}");
    let body: Value = serde_json::from_str(&run(&["--format", "json"])).unwrap();
    assert_eq!(body["lints"], Value::Array(vec![]));
}
