//! Pattern lints reach `config validate` as warnings located at the pattern, never as errors;
//! the shipped example has none.

use std::path::Path;

use meho_config::{Config, Diagnostic};

use crate::{host, parse_ok, position_of};

/// The warnings whose message contains every one of `words`.
fn warnings_with<'c>(config: &'c Config, words: &[&str]) -> Vec<&'c Diagnostic> {
    config
        .warnings
        .iter()
        .filter(|w| words.iter().all(|word| w.message.contains(word)))
        .collect()
}

/// Asserts exactly one warning mentions `words`, at `needle`'s position in `text`.
fn assert_warning_at(config: &Config, text: &str, needle: &str, words: &[&str]) {
    let found = warnings_with(config, words);
    assert_eq!(
        found.len(),
        1,
        "one warning with {words:?} expected: {:#?}",
        config.warnings
    );
    let (line, column) = position_of(text, needle);
    assert_eq!(
        (found[0].line, found[0].column),
        (line, column),
        "`{}` should point at `{needle}`",
        found[0]
    );
}

#[test]
fn allow_rule_lints_point_at_the_pattern_in_a_named_policy() {
    let text = format!(
        r#"{}groups = ["web"]

[command_policies.logs]
mode = "allowlist"
allow = ['^uptime$', '^cat /var/log/[a-z./]+$', '^journalctl\s', 'df -h$']

[group_command_policies]
web = ["logs"]
"#,
        host("web", "")
    );
    let config = parse_ok(&text);
    assert_warning_at(
        &config,
        &text,
        r"'^cat /var/log/[a-z./]+$'",
        &["policy `logs`", "climb out", "`..`"],
    );
    assert_warning_at(
        &config,
        &text,
        r"'^journalctl\s'",
        &["policy `logs`", "no `$` end anchor"],
    );
    assert_warning_at(
        &config,
        &text,
        r"'^journalctl\s'",
        &["`journalctl`", "--vacuum"],
    );
    assert_warning_at(&config, &text, "'df -h$'", &["no `^` start anchor"]);
    assert!(
        warnings_with(&config, &["`^uptime$`"]).is_empty(),
        "an anchored plain rule is clean: {:#?}",
        config.warnings
    );
}

#[test]
fn deny_and_approval_lints_point_at_the_pattern_in_an_inline_policy() {
    let text = format!(
        r#"{}
[hosts.web.command_policy]
mode = "denylist"
deny = ['^rm -rf /$', '^(\S*/)?dd( |$)']
require_approval = ['^systemctl restart ']
"#,
        host("web", "")
    );
    let config = parse_ok(&text);
    assert_warning_at(
        &config,
        &text,
        "'^rm -rf /$'",
        &["policy `web/inline`", "deny rule", "`/bin/rm -rf /`"],
    );
    assert_warning_at(&config, &text, "'^rm -rf /$'", &["deny rule", "`rm -fr /`"]);
    assert_warning_at(
        &config,
        &text,
        "'^systemctl restart '",
        &["require_approval rule", "`/bin/systemctl restart`"],
    );
    assert!(
        warnings_with(&config, &[r"`^(\S*/)?dd( |$)`"]).is_empty(),
        "a rule that matches the program by any path is clean: {:#?}",
        config.warnings
    );
}

#[test]
fn allow_rule_matching_everything_is_a_warning_not_an_error() {
    let text = format!(
        "{}\n[hosts.web.command_policy]\nmode = \"allowlist\"\nallow = ['.+']\n",
        host("web", "")
    );
    let config = parse_ok(&text);
    assert_warning_at(
        &config,
        &text,
        "'.+'",
        &["allow rule `.+`", "allows every command"],
    );
}

#[test]
fn rules_a_policy_never_consults_are_not_linted() {
    // Deny rules of an `off` policy are ignored: the off warning covers them, no lint repeats it.
    let text = format!(
        "{}\n[hosts.web.command_policy]\nmode = \"off\"\ndeny = [\"^rm\"]\n",
        host("web", "")
    );
    let config = parse_ok(&text);
    assert_eq!(config.warnings.len(), 1, "{:#?}", config.warnings);
    assert!(config.warnings[0].message.contains("mode = \"off\""));
}

#[test]
fn off_policy_warns_only_about_allow_and_deny_and_says_approval_still_applies() {
    let text = format!(
        "{}\n[hosts.web.command_policy]\nmode = \"off\"\nallow = [\"^ls$\"]\nrequire_approval = ['^(\\S*/)?reboot( |$)']\n",
        host("web", "")
    );
    let config = parse_ok(&text);
    let (line, column) = position_of(&text, "\"off\"");
    let warning = &config.warnings[0];
    assert_eq!(config.warnings.len(), 1, "{:#?}", config.warnings);
    assert_eq!((warning.line, warning.column), (line, column));
    assert_eq!(
        warning.message,
        "policy `web/inline` has mode = \"off\", so its `allow` and `deny` rules are ignored (its `require_approval` rules still apply)"
    );

    // Approval rules alone on an `off` policy are in use: nothing to warn about.
    let text = format!(
        "{}\n[hosts.web.command_policy]\nmode = \"off\"\nrequire_approval = ['^(\\S*/)?reboot( |$)']\n",
        host("web", "")
    );
    let config = parse_ok(&text);
    assert!(config.warnings.is_empty(), "{:#?}", config.warnings);
}

#[test]
fn approval_rules_of_an_off_policy_are_still_linted() {
    let text = format!(
        "{}\n[hosts.web.command_policy]\nmode = \"off\"\nrequire_approval = ['^reboot']\n",
        host("web", "")
    );
    let config = parse_ok(&text);
    assert_warning_at(
        &config,
        &text,
        "'^reboot'",
        &["require_approval rule", "`/bin/reboot`"],
    );
}

#[test]
fn the_shipped_example_has_no_warnings() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/meho.toml");
    let config = Config::load(&path).unwrap_or_else(|err| panic!("{err}"));
    assert!(config.warnings.is_empty(), "{:#?}", config.warnings);
}
