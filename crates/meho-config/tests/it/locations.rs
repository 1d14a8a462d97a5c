//! Every error names the file, line and column it refers to.

use crate::{HOST_KEY, host, parse, parse_err, position_of};

/// Asserts there is exactly one finding, at `needle`'s position, whose message contains `words`.
fn assert_single_error_at(text: &str, needle: &str, words: &[&str]) {
    let diagnostics = parse_err(text);
    assert_eq!(
        diagnostics.len(),
        1,
        "expected one finding, got: {diagnostics:#?}"
    );
    let diagnostic = &diagnostics[0];
    let (line, column) = position_of(text, needle);
    assert_eq!(
        (diagnostic.line, diagnostic.column),
        (line, column),
        "finding `{diagnostic}` should point at `{needle}`"
    );
    assert_eq!(diagnostic.file, "meho.toml");
    let shown = diagnostic.to_string();
    assert!(
        shown.starts_with(&format!("meho.toml:{line}:{column}: ")),
        "`{shown}` should start with meho.toml:{line}:{column}:"
    );
    for word in words {
        assert!(
            diagnostic.message.contains(word),
            "message `{}` should mention `{word}`",
            diagnostic.message
        );
    }
}

#[test]
fn rejects_unknown_key_in_host_with_line_and_column() {
    let text = format!("# comment\n\n{}colour = \"blue\"\n", host("web", ""));
    assert_single_error_at(&text, "colour", &["`colour`"]);
    // The error as a whole (what the CLI prints) carries the same location.
    let err = parse(&text).err().unwrap();
    let (line, column) = position_of(&text, "colour");
    assert!(
        err.to_string()
            .starts_with(&format!("meho.toml:{line}:{column}: ")),
        "{err}"
    );
}

#[test]
fn rejects_unknown_top_level_section_with_its_location() {
    let text = format!("{}\n[serverz]\nlisten = \"127.0.0.1:1\"\n", host("web", ""));
    let diagnostics = parse_err(&text);
    let (line, _) = position_of(&text, "serverz");
    assert_eq!(diagnostics[0].line, line, "{diagnostics:#?}");
    assert!(diagnostics[0].message.contains("`serverz`"));
}

#[test]
fn locates_toml_syntax_error() {
    let text = format!("{}groups = [\"a\" \"b\"]\n", host("web", ""));
    let diagnostics = parse_err(&text);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    let (line, _) = position_of(&text, "groups = ");
    assert_eq!(diagnostics[0].line, line, "{diagnostics:#?}");
    let line_len = text.lines().nth(line - 1).unwrap().chars().count();
    assert!(
        (1..=line_len + 1).contains(&diagnostics[0].column),
        "column {} outside the line",
        diagnostics[0].column
    );
}

#[test]
fn locates_unclosed_table_header() {
    let text = "[server]\nlisten = \"127.0.0.1:1\"\n\n[hosts.web\naddr = \"x:22\"\n";
    let diagnostics = parse_err(text);
    assert_eq!(diagnostics[0].line, 4, "{diagnostics:#?}");
    assert!(diagnostics[0].column > 0);
}

#[test]
fn invalid_regex_in_named_policy_deny_list_points_at_that_regex() {
    let text = format!(
        "{}\n[command_policies.base]\nmode = \"denylist\"\ndeny = [\n  \"^rm \",\n  \"^shutdown\",\n  \"(unclosed\",\n]\n",
        host("web", "")
    );
    assert_single_error_at(&text, "\"(unclosed\"", &["`base`", "`(unclosed`", "deny"]);
}

#[test]
fn invalid_regex_in_inline_require_approval_points_at_that_regex() {
    let text = format!(
        "{}\n[hosts.web.command_policy]\nmode = \"denylist\"\nrequire_approval = [\"^ok\", \"[z-a]\"]\n",
        host("web", "")
    );
    assert_single_error_at(&text, "\"[z-a]\"", &["`web/inline`", "require_approval"]);
}

#[test]
fn unknown_policy_name_in_group_command_policies_points_at_that_entry() {
    let text = format!(
        "{}groups = [\"web\"]\n\n[command_policies.base]\nmode = \"denylist\"\ndeny = [\"^rm\"]\n\n[group_command_policies]\n_default = [\"base\"]\nweb = [\"base\", \"missing\"]\n",
        host("web", "")
    );
    assert_single_error_at(&text, "\"missing\"", &["`missing`", "`web`"]);
}

#[test]
fn rejects_max_ttl_above_ceiling_at_its_value() {
    let text = host("web", "max_ttl_seconds = 901\n");
    assert_single_error_at(&text, "901", &["max_ttl_seconds", "901", "900"]);
}

#[test]
fn accepts_max_ttl_at_ceiling() {
    let config = crate::parse_ok(&host("web", "max_ttl_seconds = 900\n"));
    assert_eq!(config.hosts["web"].max_ttl_seconds, 900);
}

#[test]
fn rejects_zero_max_ttl() {
    let text = host("web", "max_ttl_seconds = 0\n");
    assert_single_error_at(&text, "0\n", &["max_ttl_seconds"]);
}

#[test]
fn rejects_bastion_with_restricting_inline_policy_at_allow_as_bastion() {
    let text = format!(
        "{}\n[hosts.web.command_policy]\nmode = \"allowlist\"\nallow = [\"^ls\"]\n",
        host("web", "allow_as_bastion = true\n")
    );
    assert_single_error_at(&text, "true", &["allow_as_bastion", "web/inline"]);
}

#[test]
fn accepts_bastion_with_inert_policy() {
    let text = format!(
        "{}\n[hosts.web.command_policy]\nmode = \"off\"\n",
        host("web", "allow_as_bastion = true\n")
    );
    assert!(crate::parse_ok(&text).hosts["web"].allow_as_bastion);
}

#[test]
fn rejects_jump_target_with_restricting_group_policy_and_still_locates_it() {
    // The bastion has no `command_policy` key of its own: the error must still point into the
    // file (at the bastion's table), not at line 0.
    let text = format!(
        "{}\n{}jump = \"bastion\"\n\n[command_policies.strict]\nmode = \"allowlist\"\nallow = [\"^ls\"]\n\n[group_command_policies]\n_default = [\"strict\"]\n",
        host("bastion", ""),
        host("web", "")
    );
    let diagnostics = parse_err(&text);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    let (line, _) = position_of(&text, "[hosts.bastion]");
    assert_eq!(diagnostics[0].line, line, "{diagnostics:#?}");
    assert!(diagnostics[0].message.contains("`bastion`"));
    assert!(diagnostics[0].message.contains("strict"));
}

#[test]
fn defaulted_principal_error_is_located_at_the_host() {
    // `principal` defaults to `user`; when that default is invalid there is no `principal` key to
    // point at, so the finding falls back to the host's table.
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:1\"\n\n[hosts.web]\naddr = \"web:22\"\nuser = \"a,b\"\nhost_key = \"{HOST_KEY}\"\n"
    );
    let diagnostics = parse_err(&text);
    let (line, _) = position_of(&text, "[hosts.web]");
    assert_eq!(diagnostics[0].line, line, "{diagnostics:#?}");
    assert!(diagnostics[0].message.contains("principal"));
}

#[test]
fn rejects_deny_on_allowlist_at_the_deny_list() {
    let text = format!(
        "{}\n[hosts.web.command_policy]\nmode = \"allowlist\"\nallow = [\"^ls\"]\ndeny = [\"^rm\"]\n",
        host("web", "")
    );
    assert_single_error_at(&text, "[\"^rm\"]", &["`deny`", "allowlist"]);
}

#[test]
fn rejects_allow_on_denylist_at_the_allow_list() {
    let text = format!(
        "\n[command_policies.p]\nmode = \"denylist\"\nallow = [\"^ls\"]\n\n{}",
        host("web", "")
    );
    assert_single_error_at(&text, "[\"^ls\"]", &["`allow`", "denylist"]);
}

#[test]
fn rejects_unknown_mode_value_at_the_value() {
    let text = format!(
        "{}\n[hosts.web.command_policy]\nmode = \"strict\"\n",
        host("web", "")
    );
    assert_single_error_at(&text, "\"strict\"", &["`strict`", "allowlist"]);
}

#[test]
fn rejects_jump_to_unknown_host_at_the_jump() {
    let text = host("web", "jump = \"nowhere\"\n");
    assert_single_error_at(&text, "\"nowhere\"", &["`web`", "`nowhere`"]);
}

#[test]
fn rejects_jump_to_itself() {
    let text = host("web", "jump = \"web\"\n");
    assert_single_error_at(&text, "\"web\"\n", &["`web`", "itself"]);
}

#[test]
fn rejects_jump_cycle_at_each_jump() {
    let text = format!(
        "{}\n{}\n{}",
        host("a", "jump = \"b\"\n"),
        host("b", "jump = \"c\"\n"),
        host("c", "jump = \"a\"\n")
    );
    let diagnostics = parse_err(&text);
    for (name, target) in [("a", "b"), ("b", "c"), ("c", "a")] {
        let needle = format!("jump = \"{target}\"");
        let (line, column) = position_of(&text, &needle);
        let found = diagnostics
            .iter()
            .find(|d| d.message.contains(&format!("host `{name}`")) && d.message.contains("loops"));
        let found =
            found.unwrap_or_else(|| panic!("no cycle error for `{name}`: {diagnostics:#?}"));
        assert_eq!(
            (found.line, found.column),
            (line, column + "jump = ".len()),
            "{found}"
        );
    }
}

#[test]
fn rejects_cycle_reached_from_outside_it() {
    // `entry` is not on the cycle but its chain never ends.
    let text = format!(
        "{}\n{}\n{}",
        host("entry", "jump = \"x\"\n"),
        host("x", "jump = \"y\"\n"),
        host("y", "jump = \"x\"\n")
    );
    let diagnostics = parse_err(&text);
    assert!(
        diagnostics
            .iter()
            .any(|d| d.message.contains("host `entry`") && d.message.contains("loops")),
        "{diagnostics:#?}"
    );
}

#[test]
fn accepts_a_jump_chain_without_cycle() {
    let text = format!(
        "{}\n{}\n{}",
        host("edge", ""),
        host("mid", "jump = \"edge\"\n"),
        host("inner", "jump = \"mid\"\n")
    );
    let config = crate::parse_ok(&text);
    assert!(config.hosts["edge"].allow_as_bastion);
    assert!(config.hosts["mid"].allow_as_bastion);
    assert!(!config.hosts["inner"].allow_as_bastion);
}

#[test]
fn rejects_bad_server_listen_at_its_value() {
    let text = format!("[server]\nlisten = \"localhost\"\n\n{}", host("web", ""));
    assert_single_error_at(&text, "\"localhost\"", &["`localhost`", "ip:port"]);
}

#[test]
fn rejects_unknown_store_url_scheme_at_its_value() {
    let text = format!("{}\n[store]\nurl = \"mysql://x\"\n", host("web", ""));
    assert_single_error_at(&text, "\"mysql://x\"", &["`mysql`", "sqlite", "postgres"]);
}

#[test]
fn accepts_postgres_store_url() {
    let config = crate::parse_ok(&format!(
        "[store]\nurl = \"postgres://meho@127.0.0.1/meho\"\n\n{}",
        host("web", "")
    ));
    assert_eq!(
        config.store.url.as_deref(),
        Some("postgres://meho@127.0.0.1/meho")
    );
}

#[test]
fn rejects_invalid_audit_redaction_regex_and_zero_cadence() {
    let text = format!(
        "[audit]\ncheckpoint_every_records = 0\nredact = [\"ok\", \"(unclosed\"]\n\n{}",
        host("web", "")
    );
    let err =
        meho_config::Config::parse(&text, Some(std::path::Path::new("meho.toml"))).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("meho.toml:2:"), "{message}");
    assert!(message.contains("checkpoint_every_records"), "{message}");
    assert!(message.contains("meho.toml:3:"), "{message}");
    assert!(message.contains("`(unclosed`"), "{message}");
}

#[test]
fn rejects_bad_log_level_at_its_value() {
    let text = format!("[log]\nlevel = \"meho=loud,info\"\n\n{}", host("web", ""));
    assert_single_error_at(&text, "\"meho=loud,info\"", &["`meho=loud`"]);
}

#[test]
fn accepts_target_log_directives() {
    let config = crate::parse_ok(&format!(
        "[log]\nlevel = \"meho=debug,info\"\n\n{}",
        host("web", "")
    ));
    assert_eq!(config.log.level, "meho=debug,info");
}

#[test]
fn reports_every_independent_finding() {
    let text = format!(
        "[server]\nlisten = \"nope\"\n\n[store]\nurl = \"mysql://db\"\n\n{}",
        host("web", "max_ttl_seconds = 1000\n")
    );
    let diagnostics = parse_err(&text);
    for needle in ["\"nope\"", "\"mysql://db\"", "1000"] {
        let (line, _) = position_of(&text, needle);
        assert!(
            diagnostics.iter().any(|d| d.line == line),
            "no finding on line {line} ({needle}): {diagnostics:#?}"
        );
    }
}

#[test]
fn off_policy_with_rules_is_a_located_warning() {
    let text = format!(
        "{}\n[hosts.web.command_policy]\nmode = \"off\"\ndeny = [\"^rm\"]\n",
        host("web", "")
    );
    let config = crate::parse_ok(&text);
    let (line, column) = position_of(&text, "\"off\"");
    let warning = config
        .warnings
        .iter()
        .find(|w| w.message.contains("off"))
        .unwrap_or_else(|| panic!("no warning: {:#?}", config.warnings));
    assert_eq!((warning.line, warning.column), (line, column));
    assert!(
        warning
            .message
            .contains("its `allow` and `deny` rules are ignored"),
        "{warning}"
    );
}

#[test]
fn string_config_errors_name_the_placeholder_file() {
    let err = meho_config::Config::parse("[bogus]\n", None).err().unwrap();
    assert!(err.to_string().starts_with("<config>:1:"), "{err}");
}

#[test]
fn missing_file_is_a_read_error_without_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let err = meho_config::Config::load(&path).err().unwrap();
    assert!(
        matches!(err, meho_config::ConfigError::Read { .. }),
        "{err:?}"
    );
    assert!(err.diagnostics().is_empty());
    assert!(err.to_string().contains("absent.toml"), "{err}");
}

#[test]
fn load_names_the_file_it_read_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = host("web", "max_ttl_seconds = 901\n");
    std::fs::write(&path, &text).unwrap();
    let err = meho_config::Config::load(&path).err().unwrap();
    let (line, column) = position_of(&text, "901");
    assert!(
        err.to_string()
            .starts_with(&format!("{}:{line}:{column}: ", path.display())),
        "{err}"
    );
}
