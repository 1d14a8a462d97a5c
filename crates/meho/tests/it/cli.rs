//! Help and version.

use crate::{Workdir, stdout_of};

#[test]
fn help_exits_0_for_the_binary_and_every_subcommand() {
    let work = Workdir::new();
    let commands: &[&[&str]] = &[
        &[],
        &["version"],
        &["config"],
        &["config", "validate"],
        &["config", "schema"],
        &["policy"],
        &["policy", "check"],
        &["policy", "explain"],
        &["serve"],
    ];
    for args in commands {
        let output = work.meho().args(*args).arg("--help").output().unwrap();
        assert!(
            output.status.success(),
            "`meho {} --help` exited {:?}",
            args.join(" "),
            output.status
        );
        let text = stdout_of(&output);
        assert!(text.contains("Usage:"), "`meho {}`: {text}", args.join(" "));
    }
}

#[test]
fn check_help_documents_the_contract_flags() {
    let output = Workdir::new()
        .meho()
        .args(["policy", "check", "--help"])
        .output()
        .unwrap();
    let text = stdout_of(&output);
    for flag in [
        "--config",
        "--host",
        "--command",
        "--sudo",
        "--sudo-user",
        "--format",
    ] {
        assert!(text.contains(flag), "`{flag}` missing from:\n{text}");
    }
}

#[test]
fn version_prints_name_and_version() {
    let output = Workdir::new().meho().arg("version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        stdout_of(&output),
        format!("meho {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn version_flag_matches_version_command() {
    let output = Workdir::new().meho().arg("--version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        stdout_of(&output).trim(),
        format!("meho {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn version_json_parses() {
    let output = Workdir::new()
        .meho()
        .args(["version", "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let value: serde_json::Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(value["name"], "meho");
    assert_eq!(value["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let output = Workdir::new().meho().arg("frobnicate").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn config_schema_prints_the_json_schema() {
    let output = Workdir::new()
        .meho()
        .args(["config", "schema"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let schema: serde_json::Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(schema["title"], "meho.toml");
    assert_eq!(schema["$defs"]["RawHost"]["additionalProperties"], false);
}
