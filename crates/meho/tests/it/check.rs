//! `meho policy check`: the binding contract.
//!
//! `meho policy check --config FILE --host NAME --command CMD [--sudo] [--sudo-user U]
//! [--format json|text]` prints, with `--format json`, one JSON object with at least `allowed`,
//! `require_approval`, `rule`, `reason_code`, `tier`, `warnings`, `would_deny`,
//! `would_require_approval` and `force_command`. A denial exits 0; a config error or an unknown
//! host exits 2.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{Workdir, host, position_of, stderr_of, stdout_of};

const REASON_CODES: &[&str] = &[
    "allowed",
    "needs_approval",
    "command_denied",
    "allowlist_no_match",
    "shell_parse_error",
    "invalid_request",
];

const TIERS: &[&str] = &["read", "write", "destructive"];

/// A config with a denylist host (`web`, sudo to root and postgres), an allowlist host without
/// sudo (`locked`) and an audit-only allowlist host (`watched`).
fn config_text() -> String {
    format!(
        r#"{web}
[hosts.web.command_policy]
mode = "denylist"
deny = ["^rm\\s"]
require_approval = ["^systemctl restart "]

{locked}
[hosts.locked.command_policy]
mode = "allowlist"
allow = ["^ls( |$)", "^cat /var/log/"]
tier = "read"

{watched}
[hosts.watched.command_policy]
mode = "allowlist"
enforcement = "audit"
allow = ["^uptime$", "^df( |$)"]
require_approval = ["^df "]
"#,
        web = host(
            "web",
            "allow_sudo = true\nallowed_sudo_users = [\"root\", \"postgres\"]"
        ),
        locked = host("locked", ""),
        watched = host("watched", ""),
    )
}

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
    /// Runs `policy check --format json` with `extra` arguments; asserts exit 0 and the contract
    /// shape, and returns the object.
    fn check(&self, host: &str, command: &str, extra: &[&str]) -> Value {
        let output = self
            .work
            .meho()
            .args(["policy", "check", "--config"])
            .arg(&self.config)
            .args(["--host", host, "--command", command, "--format", "json"])
            .args(extra)
            .output()
            .unwrap();
        let stdout = stdout_of(&output);
        assert_eq!(
            output.status.code(),
            Some(0),
            "policy check exited {:?}; stderr: {}",
            output.status,
            stderr_of(&output)
        );
        assert_eq!(
            stdout.trim_end().lines().count(),
            1,
            "expected exactly one JSON line:\n{stdout}"
        );
        let value: Value = serde_json::from_str(stdout.trim_end())
            .unwrap_or_else(|err| panic!("not JSON ({err}): {stdout}"));
        assert_contract_shape(&value);
        value
    }
}

fn assert_contract_shape(value: &Value) {
    let object = value.as_object().expect("a JSON object");
    for key in [
        "allowed",
        "require_approval",
        "would_deny",
        "would_require_approval",
    ] {
        assert!(
            object.get(key).is_some_and(Value::is_boolean),
            "`{key}` must be a bool: {value}"
        );
    }
    assert!(
        object.get("rule").is_some_and(Value::is_string),
        "`rule` must be a string: {value}"
    );
    let code = object["reason_code"].as_str().expect("reason_code string");
    assert!(REASON_CODES.contains(&code), "unknown reason_code `{code}`");
    let tier = object["tier"].as_str().expect("tier string");
    assert!(TIERS.contains(&tier), "unknown tier `{tier}`");
    let warnings = object["warnings"].as_array().expect("warnings array");
    assert!(warnings.iter().all(Value::is_string), "{value}");
    let force = object.get("force_command").expect("force_command present");
    assert!(force.is_null() || force.is_string(), "{value}");
    // A refused call never carries a force-command; an allowed one always does.
    assert_eq!(
        force.is_string(),
        object["allowed"] == Value::Bool(true),
        "{value}"
    );
}

#[test]
fn allowed_command() {
    let d = fixture().check("web", "ls -la /tmp", &[]);
    assert_eq!(d["allowed"], true);
    assert_eq!(d["require_approval"], false);
    assert_eq!(d["reason_code"], "allowed");
    assert_eq!(d["rule"], "", "no rule decided: the empty string");
    assert_eq!(d["force_command"], "ls -la /tmp");
    assert_eq!(d["warnings"], Value::Array(vec![]));
    assert_eq!(d["would_deny"], false);
    assert_eq!(d["would_require_approval"], false);
}

#[test]
fn allowlist_match_reports_rule_and_tier() {
    let d = fixture().check("locked", "cat /var/log/syslog", &[]);
    assert_eq!(d["allowed"], true);
    assert_eq!(d["reason_code"], "allowed");
    assert_eq!(d["rule"], "allow:^cat /var/log/");
    assert_eq!(d["tier"], "read");
}

#[test]
fn needs_approval() {
    let d = fixture().check("web", "systemctl restart nginx", &[]);
    assert_eq!(d["allowed"], true);
    assert_eq!(d["require_approval"], true);
    assert_eq!(d["reason_code"], "needs_approval");
    assert_eq!(d["rule"], "require_approval:^systemctl restart ");
    assert_eq!(d["force_command"], "systemctl restart nginx");
}

#[test]
fn command_denied_exits_0() {
    let d = fixture().check("web", "rm -rf /", &[]);
    assert_eq!(d["allowed"], false);
    assert_eq!(d["require_approval"], false);
    assert_eq!(d["reason_code"], "command_denied");
    assert_eq!(d["rule"], "deny:^rm\\s");
    assert_eq!(d["force_command"], Value::Null);
}

#[test]
fn denied_in_a_later_simple_command() {
    let d = fixture().check("web", "ls && rm -rf /tmp/x", &[]);
    assert_eq!(d["reason_code"], "command_denied");
}

#[test]
fn allowlist_no_match() {
    let d = fixture().check("locked", "cat /etc/shadow", &[]);
    assert_eq!(d["allowed"], false);
    assert_eq!(d["reason_code"], "allowlist_no_match");
    assert_eq!(d["rule"], "allowlist:no-match");
    assert_eq!(d["force_command"], Value::Null);
}

#[test]
fn shell_parse_error_on_command_substitution() {
    let d = fixture().check("web", "ls $(id)", &[]);
    assert_eq!(d["allowed"], false);
    assert_eq!(d["reason_code"], "shell_parse_error");
    let rule = d["rule"].as_str().unwrap();
    assert!(rule.starts_with("shell-parse:"), "rule `{rule}`");
}

#[test]
fn newline_is_an_invalid_request() {
    let d = fixture().check("web", "ls\nrm -rf /", &[]);
    assert_eq!(d["allowed"], false);
    assert_eq!(d["reason_code"], "invalid_request");
    assert_eq!(d["rule"], "invalid-request:newline");
}

#[test]
fn sudo_on_a_host_without_allow_sudo_is_an_invalid_request() {
    let d = fixture().check("locked", "ls", &["--sudo"]);
    assert_eq!(d["allowed"], false);
    assert_eq!(d["reason_code"], "invalid_request");
    assert_eq!(d["rule"], "invalid-request:sudo-not-allowed");
}

#[test]
fn sudo_user_not_listed_is_an_invalid_request() {
    let d = fixture().check("web", "ls", &["--sudo-user", "mysql"]);
    assert_eq!(d["reason_code"], "invalid_request");
    assert_eq!(d["rule"], "invalid-request:sudo-user-not-allowed");
}

#[test]
fn sudo_force_command_runs_a_static_command_as_argv() {
    let d = fixture().check("web", "systemctl restart nginx", &["--sudo"]);
    assert_eq!(d["reason_code"], "needs_approval");
    assert_eq!(d["force_command"], "sudo -n -- systemctl restart nginx");
}

#[test]
fn sudo_user_force_command_wraps_a_pipeline_in_sh() {
    let d = fixture().check("web", "psql | head", &["--sudo-user", "postgres"]);
    assert_eq!(d["allowed"], true);
    assert_eq!(d["reason_code"], "allowed");
    assert_eq!(
        d["force_command"],
        "sudo -n -u postgres -- /bin/sh -c 'psql | head'"
    );
}

#[test]
fn empty_sudo_user_is_an_invalid_request_not_an_unelevated_run() {
    let d = fixture().check("web", "id", &["--sudo-user", ""]);
    assert_eq!(d["allowed"], false, "{d}");
    assert_eq!(d["reason_code"], "invalid_request");
    assert_eq!(d["rule"], "invalid-request:sudo-user-invalid");
}

#[test]
fn sudo_user_root_is_plain_sudo() {
    let d = fixture().check("web", "id", &["--sudo-user", "root"]);
    assert_eq!(d["force_command"], "sudo -n -- id");
}

#[test]
fn audit_mode_allows_with_would_deny_warning() {
    let d = fixture().check("watched", "cat /etc/shadow", &[]);
    assert_eq!(d["allowed"], true);
    assert_eq!(d["reason_code"], "allowed");
    assert_eq!(d["would_deny"], true);
    assert_eq!(d["would_require_approval"], false);
    assert_eq!(d["force_command"], "cat /etc/shadow");
    let warnings = d["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("would deny")),
        "{warnings:?}"
    );
}

#[test]
fn audit_mode_turns_approval_into_a_warning() {
    let d = fixture().check("watched", "df -h", &[]);
    assert_eq!(d["allowed"], true);
    assert_eq!(d["require_approval"], false);
    assert_eq!(d["reason_code"], "allowed");
    assert_eq!(d["would_deny"], false);
    assert_eq!(d["would_require_approval"], true);
    let warnings = d["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("would require approval")),
        "{warnings:?}"
    );
}

#[test]
fn audit_mode_clean_command_has_no_warnings() {
    let d = fixture().check("watched", "uptime", &[]);
    assert_eq!(d["allowed"], true);
    assert_eq!(d["warnings"], Value::Array(vec![]));
    assert_eq!(d["would_deny"], false);
}

#[test]
fn command_starting_with_a_dash_is_taken_as_the_value() {
    let f = fixture();
    let d = f.check("web", "-rf /", &[]);
    assert_eq!(d["force_command"], "-rf /");
    let d = f.check("web", "--help", &[]);
    assert_eq!(d["force_command"], "--help");
}

#[test]
fn text_format_prints_decision_and_rule() {
    let f = fixture();
    let output = f
        .work
        .meho()
        .args(["policy", "check", "--config"])
        .arg(&f.config)
        .args(["--host", "web", "--command", "rm -rf /"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = stdout_of(&output);
    assert!(text.contains("DENIED"), "{text}");
    assert!(text.contains("command_denied"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("rule:") && l.contains("deny:^rm\\s")),
        "{text}"
    );
}

#[test]
fn text_format_prints_force_command_when_allowed() {
    let f = fixture();
    let output = f
        .work
        .meho()
        .args(["policy", "check", "--format", "text", "--config"])
        .arg(&f.config)
        .args(["--host", "web", "--command", "uptime", "--sudo"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = stdout_of(&output);
    assert!(text.contains("ALLOWED"), "{text}");
    assert!(text.contains("sudo -n -- uptime"), "{text}");
}

#[test]
fn config_error_exits_2_naming_file_line_and_column() {
    let work = Workdir::new();
    let text = format!("{}colour = \"blue\"\n", host("web", ""));
    let config = work.write("broken.toml", &text);
    let output = work
        .meho()
        .args(["policy", "check", "--config"])
        .arg(&config)
        .args(["--host", "web", "--command", "ls", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout_of(&output).is_empty(), "no decision on a bad config");
    let (line, column) = position_of(&text, "colour");
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains(&format!("{}:{line}:{column}:", config.display())),
        "{stderr}"
    );
    assert!(stderr.contains("`colour`"), "{stderr}");
}

#[test]
fn unknown_host_exits_2() {
    let f = fixture();
    let output = f
        .work
        .meho()
        .args(["policy", "check", "--config"])
        .arg(&f.config)
        .args(["--host", "nosuch", "--command", "ls", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout_of(&output).is_empty());
    assert!(
        stderr_of(&output).contains("`nosuch`"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn missing_command_is_a_usage_error() {
    let f = fixture();
    let output = f
        .work
        .meho()
        .args(["policy", "check", "--config"])
        .arg(&f.config)
        .args(["--host", "web"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn meho_config_env_selects_the_file() {
    let f = fixture();
    let elsewhere = Workdir::new();
    let output = elsewhere
        .meho()
        .env("MEHO_CONFIG", &f.config)
        .args(["policy", "check", "--host", "web", "--command", "rm -rf /"])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let d: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(d["reason_code"], "command_denied");
}

#[test]
fn config_flag_wins_over_meho_config_env() {
    let f = fixture();
    let other = f.work.write("other.toml", &host("other", ""));
    let output = f
        .work
        .meho()
        .env("MEHO_CONFIG", &other)
        .args(["policy", "check", "--config"])
        .arg(&f.config)
        .args(["--host", "web", "--command", "ls", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
}

#[test]
fn local_meho_toml_is_used_without_flag_or_env() {
    let f = fixture();
    let output = f
        .work
        .meho()
        .args(["policy", "check", "--host", "locked", "--command", "ls"])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let d: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(d["rule"], "allow:^ls( |$)");
}

// --- the shipped example ----------------------------------------------------------------------

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/meho.toml")
}

/// `examples/meho.toml` exactly as shipped.
fn example() -> Fixture {
    Fixture {
        work: Workdir::new(),
        config: example_path(),
    }
}

/// The example plus `db1`, a host in group `linux` only: there the guardrails are the only line,
/// so what they refuse is not hidden behind the read-only allowlist of `web1`.
fn example_with_guardrails_only_host() -> Fixture {
    let work = Workdir::new();
    let text = std::fs::read_to_string(example_path()).unwrap();
    let config = work.write(
        "meho.toml",
        &format!(
            "{text}
{}",
            host("db1", "groups = [\"linux\"]")
        ),
    );
    Fixture { work, config }
}

#[test]
fn example_refuses_the_commands_the_review_found_open() {
    let f = example();
    for (command, reason) in [
        ("sort -o /etc/passwd x", "allowlist_no_match"),
        ("/bin/rm -rf /", "command_denied"),
        ("rm -fr /", "command_denied"),
        ("systemctl reboot", "command_denied"),
        ("systemctl --no-block restart nginx", "allowlist_no_match"),
    ] {
        let d = f.check("web1", command, &[]);
        assert_eq!(d["allowed"], false, "`{command}`: {d}");
        assert_eq!(d["reason_code"], reason, "`{command}`: {d}");
    }
}

#[test]
fn example_guardrails_refuse_respellings_on_their_own() {
    let f = example_with_guardrails_only_host();
    for command in [
        "/bin/rm -rf /",
        "/usr/bin/rm -Rf /",
        "rm -fr /",
        "rm -r -f /",
        "rm --recursive --force /",
        "rm --rec -f /",
        "rm -rf //",
        "rm -rf -- /",
        "rm / -rf",
        "rm -vRf /etc",
        "'rm' -rf '/'",
        "rm --no-preserve-root -r /",
        "systemctl reboot",
        "/bin/systemctl reboot",
        "systemctl --no-block reboot",
        "systemctl -i poweroff",
        "systemctl start reboot.target",
        "reboot",
        "/sbin/shutdown -h now",
        "mkfs.ext4 /dev/sda1",
        "dd if=/dev/zero of=/dev/sda",
        "ls && rm -fr /",
    ] {
        let d = f.check("db1", command, &[]);
        assert_eq!(d["reason_code"], "command_denied", "`{command}`: {d}");
        assert!(
            d["rule"].as_str().unwrap().starts_with("deny:"),
            "`{command}`: {d}"
        );
    }
    for command in [
        "systemctl --no-block restart nginx",
        "systemctl restart nginx",
        "/usr/bin/systemctl -q stop nginx",
        "systemctl daemon-reload",
    ] {
        let d = f.check("db1", command, &[]);
        assert_eq!(d["reason_code"], "needs_approval", "`{command}`: {d}");
    }
    // What the guardrails leave alone: deeper paths, other programs, read-only systemctl.
    for command in [
        "rm -rf /tmp/build",
        "rm -f /var/tmp/x.log",
        "ls /",
        "systemctl status nginx",
        "df -h",
    ] {
        let d = f.check("db1", command, &[]);
        assert_eq!(d["reason_code"], "allowed", "`{command}`: {d}");
    }
}

#[test]
fn example_still_allows_its_read_only_commands() {
    let f = example();
    for command in [
        "uptime",
        "df -h",
        "free -m",
        "ps aux",
        "journalctl -u nginx -n 100 --no-pager",
        "journalctl -b -p 3",
        "tail -n 100 /var/log/nginx/error.log",
        "head /var/log/syslog",
        "grep -i error /var/log/nginx/access.log",
        "wc -l /var/log/syslog /var/log/kern.log",
        "sort -n /var/log/app.log",
        "uniq -c /var/log/app.log",
        "grep -c error /var/log/syslog | sort | uniq -c",
    ] {
        let d = f.check("web1", command, &[]);
        assert_eq!(d["reason_code"], "allowed", "`{command}`: {d}");
        assert_eq!(d["tier"], "read", "`{command}`: {d}");
    }
    let d = f.check("web1", "systemctl status nginx", &[]);
    assert_eq!(d["reason_code"], "allowed", "{d}");
    let d = f.check("web1", "systemctl restart nginx", &[]);
    assert_eq!(d["reason_code"], "needs_approval", "{d}");
}

#[test]
fn example_read_only_set_refuses_what_writes_or_leaves_var_log() {
    let f = example();
    for command in [
        "sort --output=/etc/passwd /var/log/app.log",
        "sort -o/var/log/app.log",
        "uniq /var/log/a /var/log/b",
        "tail /var/log/../../etc/shadow",
        "head /var/log/./../../etc/shadow",
        "cat /etc/shadow",
        "grep -r root /etc",
        "grep -f /etc/shadow /var/log/syslog",
        "journalctl --vacuum-time=1s",
        "journalctl -u nginx --rotate",
        "journalctl -u --rotate",
        "tail -f /var/log/syslog",
    ] {
        let d = f.check("web1", command, &[]);
        assert_eq!(d["allowed"], false, "`{command}`: {d}");
    }
}

// --- clusters: `--cluster NAME --action ACTION` ----------------------------------------------

const CLUSTER_CONFIG: &str = r#"
[clusters.prod]
api_server = "https://127.0.0.1:6443"
ca_cert = "ca.pem"
minter_token_file = "minter.token"
sa_bindings = [{ namespace = "meho", service_account = "agent" }]
rules = [
  { verbs = ["get", "list", "logs"], resources = ["*"], effect = "allow" },
  { verbs = ["delete"], resources = ["pods"], namespaces = ["prod"], names = ["web-*"], effect = "require_approval" },
  { verbs = ["apply"], resources = ["deployments.apps"], namespaces = ["prod"], effect = "allow", tier = "destructive" },
  { verbs = ["*"], resources = ["secrets"], effect = "deny" },
]
"#;

fn cluster_check(
    work: &Workdir,
    config: &Path,
    action: &str,
    format: &str,
) -> std::process::Output {
    work.meho()
        .args(["policy", "check", "--config"])
        .arg(config)
        .args(["--cluster", "prod", "--action", action, "--format", format])
        .output()
        .unwrap()
}

#[test]
fn a_cluster_action_is_decided_by_its_rules_with_the_decision_contract() {
    let work = Workdir::new();
    let config = work.write("meho.toml", CLUSTER_CONFIG);
    let decide = |action: &str| {
        let output = cluster_check(&work, &config, action, "json");
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        let value: Value = serde_json::from_str(stdout_of(&output).trim_end()).unwrap();
        value
    };
    let held = decide("delete pods prod/web-1");
    assert_eq!(held["allowed"], true);
    assert_eq!(held["require_approval"], true);
    assert_eq!(held["reason_code"], "needs_approval");
    assert_eq!(held["rule"], "require_approval:prod/rules[1]");
    assert_eq!(held["tier"], "destructive");
    // Nothing of a cluster call is a shell command.
    assert_eq!(held["force_command"], Value::Null);
    let read = decide("list pods prod/-");
    assert_eq!(
        (read["allowed"].clone(), read["tier"].clone()),
        (json!(true), json!("read"))
    );
    let raised = decide("apply deployments.apps prod/web");
    assert_eq!(
        raised["tier"], "destructive",
        "a rule raises the verb's tier"
    );
    let denied = decide("get secrets prod/db");
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["rule"], "deny:prod/rules[3]");
    let unlisted = decide("delete pods prod/api-1");
    assert_eq!(unlisted["reason_code"], "allowlist_no_match");
    // Text output names the rule.
    let text = stdout_of(&cluster_check(
        &work,
        &config,
        "delete pods prod/web-1",
        "text",
    ));
    assert!(
        text.contains("NEEDS APPROVAL") && text.contains("prod/rules[1]"),
        "{text}"
    );
}

#[test]
fn a_malformed_cluster_action_is_refused_never_decided() {
    let work = Workdir::new();
    let config = work.write("meho.toml", CLUSTER_CONFIG);
    for (action, field) in [
        ("delete pods prod/Web-1", "name `Web-1`"),
        ("delete  pods prod/web-1", "action"),
        ("drain nodes -/n1", "verb `drain`"),
        ("get pods prod", "scope"),
        ("get pods.Apps prod/x", "group"),
        ("get pods prod/x\u{202e}", "\\u{202e}"),
    ] {
        let output = cluster_check(&work, &config, action, "json");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{action}: {}",
            stdout_of(&output)
        );
        assert!(stdout_of(&output).is_empty(), "{action}: decided anyway");
        let stderr = stderr_of(&output);
        assert!(stderr.contains(field), "{action}: {stderr}");
        assert!(
            !stderr.contains('\u{202e}'),
            "the bidi control reached the screen"
        );
    }
    let unknown = work
        .meho()
        .args(["policy", "check", "--config"])
        .arg(&config)
        .args(["--cluster", "staging", "--action", "get pods a/b"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr_of(&unknown).contains("configured clusters: prod"));
    let mixed = work
        .meho()
        .args(["policy", "check", "--config"])
        .arg(&config)
        .args(["--cluster", "prod", "--command", "ls"])
        .output()
        .unwrap();
    assert_eq!(mixed.status.code(), Some(2));
}

#[test]
fn explain_a_cluster_lists_its_rules_and_traces_an_action() {
    let work = Workdir::new();
    let config = work.write("meho.toml", CLUSTER_CONFIG);
    let output = work
        .meho()
        .args(["policy", "explain", "--config"])
        .arg(&config)
        .args([
            "--cluster",
            "prod",
            "--action",
            "get secrets prod/db",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let value: Value = serde_json::from_str(stdout_of(&output).trim_end()).unwrap();
    assert_eq!(value["cluster"], "prod");
    assert_eq!(value["rules"].as_array().unwrap().len(), 4);
    assert_eq!(value["sa_bindings"][0]["service_account"], "meho/agent");
    assert_eq!(value["decision"]["rule"], "deny:prod/rules[3]");
    let steps = value["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s.as_str().unwrap().contains("prod/rules[3]")),
        "{steps:?}"
    );
    let text = work
        .meho()
        .args(["policy", "explain", "--config"])
        .arg(&config)
        .args(["--cluster", "prod"])
        .output()
        .unwrap();
    let text = stdout_of(&text);
    assert!(text.contains("prod/rules[1] require_approval"), "{text}");
    assert!(text.contains("meho/agent"), "{text}");
}

// --- apis: `--api NAME --action "METHOD /template /path"` -------------------------------------

#[test]
fn an_api_action_is_decided_offline_by_its_rules_and_overrides() {
    let work = Workdir::new();
    let spec = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/prometheus/openapi.yaml"),
    )
    .unwrap();
    work.write("prom.yaml", &spec);
    let config = work.write(
        "meho.toml",
        r#"
[apis.prom]
base_url = "http://127.0.0.1:9090"
spec = "prom.yaml"
rules = [
  { pattern = "^GET ", effect = "allow" },
  { pattern = "^POST /api/v1/admin/", effect = "require_approval" },
  { pattern = "^DELETE ", effect = "deny" },
]
[apis.prom.operations.cleanTombstones]
tier = "destructive"
[apis.prom.operations."GET /api/v1/status/config"]
enabled = false

[apis.bao]
base_url = "http://127.0.0.1:8200/v1"
spec = "api:/v1/sys/internal/specs/openapi"
[apis.bao.operations.sys-health]
enabled = false
"#,
    );
    let decide = |api: &str, action: &str| {
        let output = work
            .meho()
            .args(["policy", "check", "--config"])
            .arg(&config)
            .args(["--api", api, "--action", action, "--format", "json"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        let value: Value = serde_json::from_str(stdout_of(&output).trim_end()).unwrap();
        (value, stderr_of(&output))
    };
    let (held, _) = decide(
        "prom",
        "POST /api/v1/admin/tsdb/clean_tombstones /api/v1/admin/tsdb/clean_tombstones",
    );
    assert_eq!(held["require_approval"], true, "{held}");
    assert_eq!(held["rule"], "require_approval:prom/rules[1]");
    assert_eq!(
        held["tier"], "destructive",
        "the operationId override, resolved in the spec file"
    );
    let (read, _) = decide("prom", "GET /api/v1/labels /api/v1/labels");
    assert_eq!(
        (read["allowed"].clone(), read["tier"].clone()),
        (json!(true), json!("read"))
    );
    let (off, _) = decide("prom", "GET /api/v1/status/config /api/v1/status/config");
    assert_eq!(off["allowed"], false);
    assert_eq!(
        off["rule"],
        "deny:prom/operations[GET /api/v1/status/config]"
    );
    let (deleted, _) = decide(
        "prom",
        "DELETE /api/v1/admin/tsdb/delete_series /api/v1/admin/tsdb/delete_series",
    );
    assert_eq!(deleted["rule"], "deny:prom/rules[2]");
    // An api: spec cannot be fetched offline: an operationId override says it is not applied.
    let (health, warning) = decide("bao", "GET /sys/health /sys/health");
    assert_eq!(health["rule"], "allow:bao/default-rules[0]");
    assert!(warning.contains("operations.\"sys-health\""), "{warning}");
    // A malformed action is refused, never decided; --api and --cluster exclude each other.
    for args in [
        vec!["--api", "prom", "--action", "GET labels /x"],
        vec!["--api", "nope", "--action", "GET /a /a"],
        vec!["--api", "prom", "--cluster", "c", "--action", "GET /a /a"],
        vec!["--api", "prom", "--command", "ls"],
    ] {
        let output = work
            .meho()
            .args(["policy", "check", "--config"])
            .arg(&config)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr_of(&output)
        );
    }
    let explained = work
        .meho()
        .args(["policy", "explain", "--config"])
        .arg(&config)
        .args([
            "--api",
            "prom",
            "--action",
            "GET /api/v1/labels /api/v1/labels",
        ])
        .output()
        .unwrap();
    assert_eq!(
        explained.status.code(),
        Some(0),
        "{}",
        stderr_of(&explained)
    );
    let text = stdout_of(&explained);
    assert!(text.contains("prom/rules[2] deny"), "{text}");
    assert!(
        text.contains("allow rule `^GET ` of `prom/rules[0]` matched"),
        "{text}"
    );
}
