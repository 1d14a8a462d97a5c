//! The SSH commands end to end through the binary: `meho ca init|show`, `meho signer` (config
//! checks, a real mutual-TLS signer a broker reaches, SIGHUP reloads), `meho ssh exec|hosts` (dry
//! runs need no sshd), `meho serve --dev`, and, when OpenSSH's sshd is installed and the tests run
//! as root, real calls whose exit status and output the CLI passes through.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    Daemon, EXIT_LIMIT, Sshd, ca_init, meho_ca_pub, os, require_sshd, ssh_keygen_available,
};
use crate::{Workdir, stderr_of, stdout_of};

/// A config with a `_default` CA and one host `web` whose inline policy allows only `uptime` and
/// `ls`.
fn allowlist_config(work: &Workdir, ca: &Path, host_key: &str) -> PathBuf {
    work.write(
        "meho.toml",
        &format!(
            r#"[ca_keys._default]
path = "{}"

[hosts.web]
addr = "127.0.0.1:1"
user = "deploy"
host_key = "{host_key}"
command_policy = {{ mode = "allowlist", allow = ['^uptime$', '^ls( |$)'] }}
"#,
            ca.display()
        ),
    )
}

/// `meho ssh ARGS --config CONFIG --data-dir <work>/state`.
fn ssh(work: &Workdir, config: &Path, args: &[&str]) -> std::process::Output {
    work.meho()
        .arg("ssh")
        .arg(args.first().copied().unwrap_or("exec"))
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(work.path().join("state"))
        .args(args.get(1..).unwrap_or_default())
        .output()
        .unwrap()
}

#[test]
fn help_documents_the_ssh_commands_and_their_contract_flags() {
    let work = Workdir::new();
    let commands: &[(&[&str], &[&str])] = &[
        (&["ca"], &["init", "show"]),
        (&["ca", "init"], &["--out"]),
        (&["ca", "show"], &["--config", "--format"]),
        (
            &["signer"],
            &["--config", "--listen", "--data-dir", "--store"],
        ),
        (&["serve"], &["--dev"]),
        (&["ssh"], &["exec", "hosts", "put", "get"]),
        (
            &["ssh", "exec"],
            &[
                "--config",
                "--data-dir",
                "--store",
                "--sudo",
                "--sudo-user",
                "--pty",
                "--ttl",
                "--dry-run",
                "--caller",
                "--format",
                "<HOST> [--] <COMMAND>...",
            ],
        ),
        (&["ssh", "hosts"], &["--caller", "--format"]),
        (
            &["ssh", "put"],
            &["<HOST>", "<LOCAL_FILE>", "<REMOTE_PATH>"],
        ),
        (
            &["ssh", "get"],
            &["<HOST>", "<REMOTE_PATH>", "[LOCAL_FILE]"],
        ),
    ];
    for (args, needles) in commands {
        let output = work.meho().args(*args).arg("--help").output().unwrap();
        assert!(output.status.success(), "`meho {} --help`", args.join(" "));
        let text = stdout_of(&output);
        for needle in *needles {
            assert!(
                text.contains(needle),
                "`{needle}` missing from `meho {} --help`:\n{text}",
                args.join(" ")
            );
        }
    }
}

// --- meho ca ---------------------------------------------------------------------------------

#[test]
fn ca_init_writes_a_0600_key_and_its_pub_and_prints_the_public_line() {
    let work = Workdir::new();
    let path = work.path().join("ca").join("ssh_ca");
    let output = work
        .meho()
        .args(["ca", "init", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stdout = stdout_of(&output);
    assert_eq!(stdout.lines().count(), 1, "exactly one line: {stdout:?}");
    let line = stdout.trim_end();
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words.len(), 3, "{line}");
    assert_eq!(words[0], "ssh-ed25519");
    assert!(words[1].starts_with("AAAAC3NzaC1lZDI1NTE5"), "{line}");
    assert_eq!(words[2], "meho-ca");
    assert!(
        stderr_of(&output).contains("TrustedUserCAKeys"),
        "{}",
        stderr_of(&output)
    );

    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the CA key is private: {mode:o}");
    let key = std::fs::read_to_string(&path).unwrap();
    assert!(
        key.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"),
        "{key}"
    );
    let public = std::fs::read_to_string(work.path().join("ca").join("ssh_ca.pub")).unwrap();
    assert_eq!(public.trim_end(), line);
}

#[test]
fn ca_init_never_replaces_an_existing_key() {
    let work = Workdir::new();
    let (path, _) = ca_init(&work, "ca_key");
    let before = std::fs::read(&path).unwrap();
    let output = work
        .meho()
        .args(["ca", "init", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert!(stderr.contains("ca_key"), "names the file: {stderr}");
    assert!(stdout_of(&output).is_empty());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the key is untouched"
    );
}

#[test]
fn ssh_keygen_reads_the_ca_key() {
    if !ssh_keygen_available() {
        eprintln!("ssh-keygen is not installed; nothing to compare with");
        return;
    }
    let work = Workdir::new();
    let (path, line) = ca_init(&work, "ca_key");
    let listed = Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", stderr_of(&listed));
    let listing = stdout_of(&listed);
    assert!(listing.contains("(ED25519)"), "{listing}");

    // The public half ssh-keygen derives from the private file is the line meho printed.
    let derived = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(derived.status.success(), "{}", stderr_of(&derived));
    let derived = stdout_of(&derived);
    let key_of = |l: &str| l.split(' ').take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(key_of(derived.trim_end()), key_of(&line));

    // `ca show` names the same key, with the fingerprint ssh-keygen computes.
    let config = allowlist_config(&work, &path, &line);
    let shown = work
        .meho()
        .args(["ca", "show", "--format", "json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", stderr_of(&shown));
    let shown: Value = serde_json::from_str(&stdout_of(&shown)).unwrap();
    let ca = &shown["cas"][0];
    assert_eq!(ca["group"], "_default");
    assert_eq!(ca["public_key"], line.as_str());
    let fingerprint = ca["fingerprint"].as_str().unwrap();
    assert!(listing.contains(fingerprint), "{listing} vs {fingerprint}");
}

#[test]
fn ca_show_and_config_validate_name_a_ca_in_vault_without_reaching_it() {
    let work = Workdir::new();
    let (key, line) = ca_init(&work, "prod_ca");
    let config = work.write(
        "vault-ca.toml",
        &format!(
            "[hosts.web]\naddr = \"127.0.0.1:22\"\nuser = \"deploy\"\nhost_key = \"{line}\"\ngroups = [\"prod\"]\n\n\
             [vault]\naddress = \"http://127.0.0.1:1\"\nauth_mount = \"jwt\"\nrole = \"meho\"\n\n\
             [ca_keys._default]\nvault_ssh_mount = \"ssh\"\nvault_ssh_role = \"meho\"\n\n\
             [ca_keys.prod]\npath = \"{}\"\n",
            key.display()
        ),
    );
    let validated = work
        .meho()
        .args(["config", "validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(validated.status.success(), "{}", stderr_of(&validated));

    let shown = work
        .meho()
        .args(["ca", "show", "--format", "json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", stderr_of(&shown));
    let shown: Value = serde_json::from_str(&stdout_of(&shown)).unwrap();
    let vault = &shown["cas"][0];
    assert_eq!(vault["group"], "_default");
    assert_eq!(vault["fingerprint"], Value::Null);
    assert_eq!(vault["vault"]["mount"], "ssh");
    assert_eq!(vault["vault"]["role"], "meho");
    assert_eq!(
        vault["vault"]["public_key_url"],
        "http://127.0.0.1:1/v1/ssh/public_key"
    );
    assert_eq!(shown["cas"][1]["group"], "prod");
    assert!(shown["cas"][1]["fingerprint"].is_string());

    let text = work
        .meho()
        .args(["ca", "show", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = stdout_of(&text);
    assert!(
        text.contains("_default  vault:http://127.0.0.1:1 ssh/sign/meho"),
        "{text}"
    );
}

// --- meho signer: config checks --------------------------------------------------------------

#[test]
fn signer_without_its_tls_settings_exits_2_naming_the_missing_key() {
    let work = Workdir::new();
    let (ca, line) = ca_init(&work, "ca_key");
    let base = allowlist_config(&work, &ca, &line);
    let base = std::fs::read_to_string(base).unwrap();
    let cases = [
        ("", "[signer] tls_cert"),
        ("tls_cert = \"cert.pem\"\n", "[signer] tls_key"),
        (
            "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n",
            "[signer] client_ca",
        ),
        (
            "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\nclient_ca = \"ca.pem\"\n",
            "[signer] allowed_callers",
        ),
    ];
    for (signer, missing) in cases {
        let config = work.write(
            "signer.toml",
            &format!("{base}\n[signer]\nlisten = \"127.0.0.1:0\"\n{signer}"),
        );
        let output = work
            .meho()
            .args(["signer", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(work.path().join("state"))
            .output()
            .unwrap();
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{missing}: {stderr}");
        assert!(stderr.contains(missing), "expected `{missing}` in {stderr}");
        assert!(
            !work.path().join("state").exists(),
            "nothing is created before the config is complete"
        );
    }
}

#[test]
fn signer_without_a_ca_exits_2() {
    let work = Workdir::new();
    let config = work.write(
        "signer.toml",
        "[signer]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nclient_ca = \"ca.pem\"\nallowed_callers = [\"broker\"]\n",
    );
    let output = work
        .meho()
        .args(["signer", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(work.path().join("state"))
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("[ca_keys._default]"), "{stderr}");
}

// --- meho ssh: dry runs and refusals ---------------------------------------------------------

#[test]
fn dry_run_prints_the_decision_for_an_allowed_and_a_denied_command() {
    let work = Workdir::new();
    let (ca, line) = ca_init(&work, "ca_key");
    let config = allowlist_config(&work, &ca, &line);

    let output = ssh(
        &work,
        &config,
        &["exec", "--dry-run", "web", "--", "uptime"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let text = stdout_of(&output);
    assert!(text.contains("ALLOWED (allowed)"), "{text}");
    assert!(text.contains("rule:          allow:^uptime$"), "{text}");
    assert!(text.contains("force-command: uptime"), "{text}");

    // The words after `--` are joined with spaces, hyphens and all.
    let output = ssh(
        &work,
        &config,
        &["exec", "--dry-run", "web", "--", "ls", "-la", "/tmp"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("force-command: ls -la /tmp"),
        "{}",
        stdout_of(&output)
    );

    // A denial is an answer: exit 0, the reason named, no force-command.
    let output = ssh(
        &work,
        &config,
        &["exec", "--dry-run", "web", "--", "rm", "-rf", "/"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let text = stdout_of(&output);
    assert!(text.contains("DENIED (allowlist_no_match)"), "{text}");
    assert!(text.contains("rule:"), "{text}");
    assert!(!text.contains("force-command"), "{text}");

    let output = ssh(
        &work,
        &config,
        &[
            "exec",
            "--dry-run",
            "--format",
            "json",
            "web",
            "--",
            "rm",
            "-rf",
            "/",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let result: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(result["dry_run"], true);
    assert_eq!(result["decision"]["allowed"], false);
    assert_eq!(result["decision"]["reason_code"], "allowlist_no_match");

    // Every answer is in the audit log, under the signer's view of the broker.
    let output = work
        .meho()
        .args(["audit", "query", "--format", "json", "--target", "web"])
        .arg("--data-dir")
        .arg(work.path().join("state"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let page: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    let outcomes: Vec<&str> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    assert!(outcomes.contains(&"dry_run"), "{outcomes:?}");
    assert!(outcomes.contains(&"allowlist_no_match"), "{outcomes:?}");
}

#[test]
fn exec_on_an_unknown_host_exits_1_with_unknown_target() {
    let work = Workdir::new();
    let (ca, line) = ca_init(&work, "ca_key");
    let config = allowlist_config(&work, &ca, &line);
    for dry_run in [false, true] {
        let mut args = vec!["exec"];
        if dry_run {
            args.push("--dry-run");
        }
        args.extend(["--caller", "tester", "nowhere", "--", "uptime"]);
        let output = ssh(&work, &config, &args);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "dry run {dry_run}: {stderr}");
        assert!(
            stderr.starts_with("error: unknown_target: "),
            "dry run {dry_run}: {stderr}"
        );
        assert!(stderr.contains("nowhere"), "{stderr}");
    }

    // The refusal is audited under the caller's name.
    let output = work
        .meho()
        .args([
            "audit",
            "query",
            "--format",
            "json",
            "--principal",
            "tester",
        ])
        .arg("--data-dir")
        .arg(work.path().join("state"))
        .output()
        .unwrap();
    let page: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    let records = page["records"].as_array().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["outcome"] == "unknown_target" && r["action"] == "ssh_execute"),
        "{page}"
    );
}

#[test]
fn exec_needs_a_command_and_json_errors_are_json() {
    let work = Workdir::new();
    let (ca, line) = ca_init(&work, "ca_key");
    let config = allowlist_config(&work, &ca, &line);
    let output = ssh(&work, &config, &["exec", "web"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));

    let output = ssh(
        &work,
        &config,
        &["exec", "--format", "json", "nowhere", "--", "uptime"],
    );
    assert_eq!(output.status.code(), Some(1));
    let error: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(error["error"]["code"], "unknown_target");
}

#[test]
fn hosts_lists_the_configured_hosts() {
    let work = Workdir::new();
    let (ca, line) = ca_init(&work, "ca_key");
    let config = allowlist_config(&work, &ca, &line);
    let output = ssh(&work, &config, &["hosts", "--format", "json"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let hosts: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    let servers = hosts["targets"].as_array().unwrap();
    assert_eq!(servers.len(), 1, "{hosts}");
    assert_eq!(servers[0]["name"], "web");
    assert_eq!(servers[0]["addr"], "127.0.0.1:1");

    let output = ssh(&work, &config, &["hosts"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let table = stdout_of(&output);
    assert!(
        table.contains("web") && table.contains("127.0.0.1:1"),
        "{table}"
    );
}

// --- long-running processes ------------------------------------------------------------------

#[test]
fn serve_dev_prints_the_dev_ca_before_the_listen_line_and_reuses_it() {
    let work = Workdir::new();
    let config = work.write("meho.toml", "[server]\nlisten = \"127.0.0.1:0\"\n");
    let data_dir = work.path().join("state");
    let args = [
        os("serve"),
        os("--dev"),
        os("--config"),
        os(&config),
        os("--data-dir"),
        os(&data_dir),
    ];
    let prefix = "meho dev CA (add to sshd TrustedUserCAKeys): ";
    let mut first_line = String::new();
    for round in 0..2 {
        let mut daemon = Daemon::start(&work, &args, "meho listening on ");
        // The dev CA line comes first, then the dev token and its connect lines (checked in
        // mcp.rs), then the listen line.
        assert_eq!(daemon.lines.len(), 6, "round {round}: {:?}", daemon.lines);
        assert!(
            daemon.lines[1].starts_with("MEHO_TOKEN="),
            "{:?}",
            daemon.lines
        );
        let line = daemon.lines[0]
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("round {round}: {:?}", daemon.lines))
            .to_owned();
        assert!(line.starts_with("ssh-ed25519 AAAA"), "{line}");
        assert!(daemon.lines[5].starts_with("meho listening on http://"));
        let key = data_dir.join("ca").join("ssh_ca_ed25519");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        if round == 0 {
            first_line = line;
        } else {
            assert_eq!(line, first_line, "a restart reuses the dev CA");
        }
        let status = daemon.terminate();
        assert!(status.success(), "{status:?}; log:\n{}", daemon.log_text());
    }

    // Without --dev no CA is made or printed.
    let other = work.path().join("other");
    let mut daemon = Daemon::start(
        &work,
        &[
            os("serve"),
            os("--config"),
            os(&config),
            os("--data-dir"),
            os(&other),
        ],
        "meho listening on ",
    );
    assert_eq!(daemon.lines.len(), 1, "{:?}", daemon.lines);
    assert!(!other.join("ca").exists());
    assert!(daemon.terminate().success());
}

/// A throw-away mutual-TLS PKI: a CA, the signer's certificate (`localhost`, `127.0.0.1`) and a
/// broker client certificate with CN `broker1`.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "meho cli test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |stem: &str, cn: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).unwrap();
        let cert_path = dir.join(format!("{stem}.pem"));
        let key_path = dir.join(format!("{stem}-key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    };
    let (server_cert, server_key) = leaf(
        "signer",
        "localhost",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = leaf(
        "broker",
        "broker1",
        &["broker1"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    Pki {
        ca,
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

/// Polls `meho ssh hosts --format json` through the broker until `want` holds.
fn wait_for_hosts(work: &Workdir, config: &Path, want: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + EXIT_LIMIT;
    loop {
        let output = ssh(work, config, &["hosts", "--format", "json"]);
        assert!(output.status.success(), "{}", stderr_of(&output));
        let hosts: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
        let names: Vec<String> = hosts["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["name"].as_str().unwrap().to_owned())
            .collect();
        if want(&names) || Instant::now() > deadline {
            return names;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_broker_reaches_meho_signer_over_mutual_tls_and_sighup_reloads_its_hosts() {
    let work = Workdir::new();
    let (ca, line) = ca_init(&work, "ca_key");
    let pki = pki(work.path());
    let signer_text = |host: &str| {
        format!(
            r#"[ca_keys._default]
path = "{}"

[signer]
listen = "127.0.0.1:0"
tls_cert = "{}"
tls_key = "{}"
client_ca = "{}"
allowed_callers = ["broker1"]

[hosts.{host}]
addr = "127.0.0.1:1"
user = "deploy"
host_key = "{line}"
command_policy = {{ mode = "allowlist", allow = ['^uptime$'] }}
"#,
            ca.display(),
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca.display(),
        )
    };
    let signer_config = work.write("signer.toml", &signer_text("web"));
    let signer_state = work.path().join("signer-state");
    let mut signer = Daemon::start(
        &work,
        &[
            os("signer"),
            os("--config"),
            os(&signer_config),
            os("--data-dir"),
            os(&signer_state),
        ],
        "meho signer listening on ",
    );
    assert_eq!(signer.lines.len(), 1, "{:?}", signer.lines);
    let addr = signer.lines[0]
        .strip_prefix("meho signer listening on https://")
        .unwrap()
        .to_owned();
    let port = addr.rsplit(':').next().unwrap();

    // The broker side holds no CA: only its client certificate and the signer's URL.
    let broker_config = work.write(
        "broker.toml",
        &format!(
            "[ssh]\nsigner_url = \"https://localhost:{port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\nsigner_ca = \"{}\"\n",
            pki.client_cert.display(),
            pki.client_key.display(),
            pki.ca.display()
        ),
    );
    let output = ssh(
        &work,
        &broker_config,
        &["exec", "--dry-run", "web", "--", "uptime"],
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("ALLOWED (allowed)"),
        "{}",
        stdout_of(&output)
    );
    let output = ssh(
        &work,
        &broker_config,
        &["exec", "--dry-run", "web", "--", "id"],
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains("DENIED (allowlist_no_match)"),
        "{}",
        stdout_of(&output)
    );
    assert_eq!(wait_for_hosts(&work, &broker_config, |_| true), ["web"]);

    // SIGHUP: the signer answers from the new config…
    work.write("signer.toml", &signer_text("db"));
    signer.signal("HUP");
    let names = wait_for_hosts(&work, &broker_config, |n| n == ["db"]);
    assert_eq!(names, ["db"], "log:\n{}", signer.log_text());

    // …and keeps the running one when the new one is invalid.
    work.write("signer.toml", "[hosts.broken\n");
    signer.signal("HUP");
    let deadline = Instant::now() + EXIT_LIMIT;
    while !signer.log_text().contains("config reload failed") {
        assert!(Instant::now() < deadline, "log:\n{}", signer.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(wait_for_hosts(&work, &broker_config, |_| true), ["db"]);

    let status = signer.terminate();
    assert!(status.success(), "{status:?}; log:\n{}", signer.log_text());

    // The signer's own log: started, reloaded, refused the bad reload, and it verifies.
    let output = work
        .meho()
        .args([
            "audit",
            "query",
            "--format",
            "json",
            "--kind",
            "config_reload",
        ])
        .arg("--data-dir")
        .arg(&signer_state)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let page: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    let outcomes: Vec<&str> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "signer")
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    for outcome in ["loaded", "reloaded", "reload_failed"] {
        assert!(outcomes.contains(&outcome), "{outcome}: {outcomes:?}");
    }
    let output = work
        .meho()
        .args(["audit", "verify", "--data-dir"])
        .arg(&signer_state)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
}

// --- against a real sshd ---------------------------------------------------------------------

#[test]
fn exec_put_and_get_against_sshd_pass_output_and_exit_status_through() {
    if !require_sshd("meho ssh CLI") {
        return;
    }
    let work = Workdir::new();
    let (ca, _) = ca_init(&work, "ca_key");
    let sshd = Sshd::start(work.path(), &meho_ca_pub(&ca));
    let config = work.write(
        "meho.toml",
        &format!(
            "[ca_keys._default]\npath = \"{}\"\n\n[hosts.local]\naddr = \"127.0.0.1:{}\"\nuser = \"root\"\nhost_key = \"{}\"\nallow_file_transfer = true\n",
            ca.display(),
            sshd.port,
            sshd.host_key
        ),
    );
    let sshd_log = || sshd.log_text();

    let output = ssh(
        &work,
        &config,
        &["exec", "local", "--", "echo out; echo err >&2; exit 7"],
    );
    assert_eq!(
        output.status.code(),
        Some(7),
        "{}; sshd:\n{}",
        stderr_of(&output),
        sshd_log()
    );
    assert_eq!(stdout_of(&output), "out\n");
    assert_eq!(stderr_of(&output), "err\n");

    let output = ssh(
        &work,
        &config,
        &["exec", "--format", "json", "local", "--", "echo", "hi"],
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    let result: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(result["stdout"], "hi\n");
    assert_eq!(result["exit_code"], 0);
    assert!(result["serial"].as_u64().unwrap() > 0);

    // Binary content survives the round trip.
    let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let local = work.path().join("up.bin");
    std::fs::write(&local, &data).unwrap();
    let remote = work.path().join("remote.bin");
    let output = ssh(
        &work,
        &config,
        &[
            "put",
            "local",
            local.to_str().unwrap(),
            remote.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(std::fs::read(&remote).unwrap(), data);
    let back = work.path().join("back.bin");
    let output = ssh(
        &work,
        &config,
        &[
            "get",
            "local",
            remote.to_str().unwrap(),
            back.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(std::fs::read(&back).unwrap(), data);
    let output = ssh(
        &work,
        &config,
        &["get", "local", remote.to_str().unwrap(), "-"],
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(output.stdout, data);

    // Every call left its records, and the log verifies.
    let output = work
        .meho()
        .args(["audit", "verify", "--data-dir"])
        .arg(work.path().join("state"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
}
