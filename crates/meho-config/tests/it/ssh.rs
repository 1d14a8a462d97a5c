//! `[ca_keys]`, `[signer]` and `[ssh]`.

use std::net::IpAddr;
use std::path::PathBuf;

use meho_config::{CaSource, SignerLocation};

use crate::{host, parse_err, parse_ok};

#[test]
fn ssh_sections_default_to_an_in_process_signer_and_documented_limits() {
    let config = parse_ok(&host("web", ""));
    assert!(config.ca_keys.is_empty());
    assert_eq!(
        config.ssh.signer,
        SignerLocation::InProcess {
            caller: "meho".into()
        }
    );
    assert_eq!(config.ssh.output_cap_bytes, 1 << 20);
    assert_eq!(config.ssh.exec_timeout_seconds, 60);
    assert_eq!(config.ssh.connect_timeout_seconds, 10);
    assert_eq!(config.ssh.session_idle_timeout_seconds, 600);
    assert_eq!(config.ssh.session_max_lifetime_seconds, 3600);
    assert_eq!(config.ssh.max_sessions, 64);
    assert_eq!(config.ssh.max_sessions_per_caller, 8);
    assert_eq!(config.ssh.file_transfer_max_bytes, 16 << 20);
    assert!(!config.ssh.recording_strict);
    assert_eq!(
        config.ssh.recording_path(std::path::Path::new("/data")),
        PathBuf::from("/data/recordings")
    );
    assert_eq!(config.signer.listen.to_string(), "127.0.0.1:8443");
    assert!(config.signer.allowed_callers.is_empty());
}

#[test]
fn ca_keys_and_a_remote_signer_load() {
    let text = format!(
        "{}\n[ca_keys._default]\npath = \"/ca/default\"\n[ca_keys.prod]\npath = \"/ca/prod\"\n\
         [ssh]\nsigner_url = \"https://signer:8443/\"\ntls_cert = \"b.pem\"\ntls_key = \"b.key\"\n\
         signer_ca = \"ca.pem\"\nbind_address = \"10.0.0.9\"\n",
        host("web", "groups = [\"prod\"]")
    );
    let config = parse_ok(&text);
    assert_eq!(
        config.ca_keys["_default"],
        CaSource::File(PathBuf::from("/ca/default"))
    );
    assert_eq!(
        config.ca_keys["prod"],
        CaSource::File(PathBuf::from("/ca/prod"))
    );
    assert_eq!(
        config.ssh.signer,
        SignerLocation::Remote {
            url: "https://signer:8443".into(),
            tls_cert: "b.pem".into(),
            tls_key: "b.key".into(),
            signer_ca: "ca.pem".into(),
        }
    );
    assert_eq!(
        config.ssh.bind_address,
        Some("10.0.0.9".parse::<IpAddr>().unwrap())
    );
    assert!(config.warnings.is_empty(), "{:#?}", config.warnings);
}

#[test]
fn bad_ssh_settings_are_located_errors() {
    let cases = [
        (
            "[ssh]\nsigner_url = \"http://signer:8443\"\ntls_cert = \"a\"\ntls_key = \"b\"\nsigner_ca = \"c\"\n",
            "signer_url",
            "https://",
        ),
        (
            "[ssh]\nsigner_url = \"https://signer:8443\"\ntls_cert = \"a\"\ntls_key = \"b\"\n",
            "signer_url",
            "ssh.signer_ca",
        ),
        (
            "[ssh]\nbind_address = \"not-an-ip\"\n",
            "bind_address",
            "not an IP",
        ),
        (
            "[ssh]\noutput_cap_bytes = 0\n",
            "output_cap_bytes",
            "at least 1",
        ),
        ("[ssh]\nmax_sessions = 0\n", "max_sessions", "at least 1"),
        (
            "[ca_keys._default]\npath = \"\"\n",
            "path",
            "must not be empty",
        ),
        (
            "[signer]\nlisten = \"nowhere\"\n",
            "listen",
            "socket address",
        ),
        (
            "[signer]\nallowed_callers = [\"\"]\n",
            "\"\"",
            "must not be empty",
        ),
        ("[ssh]\nsigner = \"x\"\n", "signer", "unknown field"),
        (
            "[ca_keys._default]\npath = \"/ca\"\nvault_ssh_mount = \"ssh\"\nvault_ssh_role = \"meho\"\n",
            "path",
            "not both",
        ),
        (
            "[ca_keys._default]\nvault_ssh_mount = \"ssh\"\n",
            "vault_ssh_mount",
            "needs vault_ssh_role",
        ),
        (
            "[ca_keys._default]\nvault_ssh_role = \"meho\"\n",
            "vault_ssh_role",
            "needs vault_ssh_mount",
        ),
        (
            "[ca_keys._default]\nvault_ssh_mount = \"ssh\"\nvault_ssh_role = \"meho\"\n",
            "vault_ssh_mount",
            "needs a [vault] section",
        ),
        (
            "[ca_keys._default]\n",
            "[ca_keys._default]",
            "set path (a key file) or vault_ssh_mount and vault_ssh_role",
        ),
    ];
    for (section, needle, words) in cases {
        let text = format!("{}\n{section}", host("web", ""));
        let diagnostics = parse_err(&text);
        assert_eq!(diagnostics.len(), 1, "{section}: {diagnostics:#?}");
        let at = text.find(section).unwrap() + section.find(needle).unwrap();
        let expected_line = text[..at].matches('\n').count() + 1;
        assert_eq!(
            diagnostics[0].line, expected_line,
            "{section}: {}",
            diagnostics[0]
        );
        assert!(
            diagnostics[0].message.contains(words),
            "{section}: `{}` should mention `{words}`",
            diagnostics[0].message
        );
    }
}

#[test]
fn a_ca_for_a_group_no_host_has_is_a_warning() {
    let config = parse_ok(&format!(
        "{}\n[ca_keys.staging]\npath = \"/ca/staging\"\n",
        host("web", "groups = [\"prod\"]")
    ));
    assert_eq!(config.warnings.len(), 1);
    assert!(config.warnings[0].message.contains("staging"));
}

const VAULT: &str =
    "[vault]\naddress = \"http://127.0.0.1:8200\"\nauth_mount = \"jwt\"\nrole = \"meho\"\n";

#[test]
fn a_ca_in_vaults_ssh_engine_loads_beside_a_key_file() {
    let text = format!(
        "{}\n{VAULT}\n[ca_keys._default]\nvault_ssh_mount = \"ssh\"\nvault_ssh_role = \"meho\"\n\
         [ca_keys.prod]\npath = \"/ca/prod\"\n",
        host("web", "groups = [\"prod\"]")
    );
    let config = parse_ok(&text);
    let vault = CaSource::Vault {
        mount: "ssh".into(),
        role: "meho".into(),
    };
    assert_eq!(config.ca_keys["_default"], vault);
    assert_eq!(vault.to_string(), "vault:ssh/sign/meho");
    assert_eq!(vault.path(), None);
    assert_eq!(
        config.ca_keys["prod"].path(),
        Some(std::path::Path::new("/ca/prod"))
    );
    // Only the key file is a file to check.
    let files: Vec<&str> = config.files.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(files, ["ca_keys.prod.path"]);
}

#[test]
fn a_vault_ca_with_a_bad_mount_name_is_a_located_error() {
    let section =
        "[ca_keys._default]\nvault_ssh_mount = \"ssh/../sys\"\nvault_ssh_role = \"meho\"\n";
    let text = format!("{}\n{VAULT}\n{section}", host("web", ""));
    let diagnostics = parse_err(&text);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert!(
        diagnostics[0]
            .message
            .contains("vault_ssh_mount `ssh/../sys`")
    );
    let at = text.find("vault_ssh_mount").unwrap();
    assert_eq!(diagnostics[0].line, text[..at].matches('\n').count() + 1);
}
