//! `meho config validate`.

use crate::{Workdir, host, position_of, stderr_of, stdout_of};

#[test]
fn valid_config_exits_0_with_ok() {
    let work = Workdir::new();
    let config = work.write("meho.toml", &format!("{}{}", host("a", ""), host("b", "")));
    let output = work
        .meho()
        .args(["config", "validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stdout = stdout_of(&output);
    assert!(stdout.starts_with("ok:"), "{stdout}");
    assert!(stdout.contains("2 host(s)"), "{stdout}");
}

#[test]
fn warnings_go_to_stderr_and_still_exit_0() {
    let work = Workdir::new();
    let text = format!(
        "{}[hosts.a.command_policy]\nmode = \"off\"\ndeny = [\"^rm\"]\n",
        host("a", "")
    );
    let config = work.write("meho.toml", &text);
    let output = work
        .meho()
        .args(["config", "validate", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let (line, column) = position_of(&text, "\"off\"");
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains(&format!("warning: {}:{line}:{column}:", config.display())),
        "{stderr}"
    );
}

#[test]
fn invalid_config_exits_2_with_file_line_column() {
    let work = Workdir::new();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:1\"\n\n{}",
        host("a", "max_ttl_seconds = 901")
    );
    let config = work.write("meho.toml", &text);
    let output = work
        .meho()
        .args(["config", "validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(!stdout_of(&output).contains("ok:"));
    let (line, column) = position_of(&text, "901");
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains(&format!("{}:{line}:{column}:", config.display())),
        "{stderr}"
    );
    assert!(stderr.contains("max_ttl_seconds"), "{stderr}");
}

#[test]
fn every_finding_is_printed() {
    let work = Workdir::new();
    let text = format!(
        "[server]\nlisten = \"nope\"\n\n[log]\nlevel = \"loud\"\n\n{}",
        host("a", "jump = \"ghost\"")
    );
    let config = work.write("meho.toml", &text);
    let output = work
        .meho()
        .args(["config", "validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    for needle in ["\"nope\"", "\"loud\"", "\"ghost\""] {
        let (line, column) = position_of(&text, needle);
        assert!(
            stderr.contains(&format!("meho.toml:{line}:{column}:")),
            "no finding at {needle}: {stderr}"
        );
    }
}

#[test]
fn missing_file_exits_2_with_a_clear_message() {
    let work = Workdir::new();
    let output = work
        .meho()
        .args(["config", "validate", "--config", "does-not-exist.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("does-not-exist.toml"), "{stderr}");
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn no_config_anywhere_exits_2() {
    let work = Workdir::new();
    let output = work.meho().args(["config", "validate"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("no config file"), "{stderr}");
    assert!(stderr.contains("MEHO_CONFIG"), "{stderr}");
}

#[test]
fn local_meho_toml_is_found_without_flag() {
    let work = Workdir::new();
    work.write("meho.toml", &host("a", ""));
    let output = work.meho().args(["config", "validate"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(stdout_of(&output).starts_with("ok: meho.toml:"));
}

#[test]
fn meho_config_env_selects_the_file() {
    let work = Workdir::new();
    let config = work.write("custom.toml", &host("a", "max_ttl_seconds = 0"));
    let elsewhere = Workdir::new();
    let output = elsewhere
        .meho()
        .env("MEHO_CONFIG", &config)
        .args(["config", "validate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("custom.toml:"));
}

#[test]
fn lint_warnings_point_at_the_pattern_and_still_exit_0() {
    let work = Workdir::new();
    let text = format!(
        "{}[hosts.a.command_policy]\nmode = \"allowlist\"\nallow = ['^uptime$', '^cat /var/log/[a-z./]+$']\n",
        host("a", "")
    );
    let config = work.write("meho.toml", &text);
    let output = work
        .meho()
        .args(["config", "validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(stdout_of(&output).starts_with("ok:"));
    let (line, column) = position_of(&text, "'^cat");
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains(&format!(
            "warning: {}:{line}:{column}: policy `a/inline`: allow rule `^cat /var/log/[a-z./]+$` lets a path climb out",
            config.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "only the one rule: {stderr}");
}

#[test]
fn the_shipped_example_validates_without_warnings() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/meho.toml");
    let work = Workdir::new();
    let output = work
        .meho()
        .args(["config", "validate", "--config"])
        .arg(&example)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(stderr_of(&output), "", "no warnings, lints included");
    assert!(stdout_of(&output).contains("2 host(s), 2 command policies"));
}
