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

/// Every file the config names is checked by `config validate`, with the key and its place;
/// `serve` refuses the same config before it creates anything.
#[test]
fn a_missing_ca_key_or_tls_file_fails_validate_and_serve_creates_nothing() {
    let work = Workdir::new();
    let missing = work.path().join("nope").join("ssh_ca");
    let text = format!(
        "{}\n[ca_keys._default]\npath = \"{}\"\n\n[signer]\ntls_cert = \"{}\"\n",
        host("a", ""),
        missing.display(),
        work.path().join("no-cert.pem").display()
    );
    let config = work.write("meho.toml", &text);
    let output = work
        .meho()
        .args(["config", "validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stdout_of(&output));
    let stderr = stderr_of(&output);
    let (line, column) = position_of(&text, &format!("\"{}\"", missing.display()));
    assert!(
        stderr.contains(&format!(
            "{}:{line}:{column}: ca_keys._default.path: `{}` does not exist",
            config.display(),
            missing.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("signer.tls_cert: "), "{stderr}");

    let state = work.path().join("state");
    let output = work
        .meho()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("ca_keys._default.path"),
        "{}",
        stderr_of(&output)
    );
    assert!(!state.exists(), "serve created its data directory first");
}

/// A missing required key names its table (which host), wherever the table starts.
#[test]
fn a_missing_host_key_names_the_host() {
    let work = Workdir::new();
    for text in [
        "[hosts.web1]\naddr = \"10.0.0.5:22\"\nuser = \"deploy\"\n",
        "[server]\nlisten = \"127.0.0.1:1\"\n\n[hosts]\nweb1 = { addr = \"10.0.0.5:22\", user = \"deploy\" }\n",
    ] {
        let config = work.write("meho.toml", text);
        let output = work
            .meho()
            .args(["config", "validate", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = stderr_of(&output);
        let (line, _) = position_of(text, "web1");
        assert!(
            stderr.contains(&format!(":{line}:"))
                && stderr.contains("`hosts.web1`: missing field `host_key`"),
            "{stderr}"
        );
    }
}

/// A regex error is one line naming the place, never `error: error:`.
#[test]
fn an_invalid_regex_is_one_error_line() {
    let work = Workdir::new();
    for (text, needle) in [
        (
            host(
                "a",
                "command_policy = { mode = \"denylist\", deny = ['^(rm'] }",
            ),
            "unclosed group (at character 2)",
        ),
        (
            "[audit]\nredact = ['(x']\n".to_owned(),
            "unclosed group (at character 1)",
        ),
    ] {
        let config = work.write("meho.toml", &text);
        let output = work
            .meho()
            .args(["config", "validate", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = stderr_of(&output);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(!stderr.contains("error: error"), "{stderr}");
    }
}

#[test]
fn a_cluster_is_counted_and_its_files_are_checked() {
    let work = Workdir::new();
    let text = "[clusters.prod]\napi_server = \"https://127.0.0.1:6443\"\nca_cert = \"ca.pem\"\n\
                minter_token_file = \"minter.token\"\n\
                sa_bindings = [{ namespace = \"meho\", service_account = \"agent\" }]\n\
                rules = [{ verbs = [\"get\"], resources = [\"pods\"], effect = \"allow\" }]\n";
    let config = work.write("meho.toml", text);
    let validate = || {
        work.meho()
            .current_dir(work.path())
            .args(["config", "validate", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    // Missing files are named with their key and place.
    let output = validate();
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("clusters.prod.ca_cert"), "{stderr}");
    assert!(
        stderr.contains("clusters.prod.minter_token_file"),
        "{stderr}"
    );
    work.write("ca.pem", "");
    work.write("minter.token", "");
    let output = validate();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("1 cluster(s)"),
        "{}",
        stdout_of(&output)
    );
}
