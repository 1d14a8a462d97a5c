//! `[ca_keys._default] vault_ssh_mount/vault_ssh_role`: a real OpenBao's SSH secrets engine
//! signs the signer's certificates, and a real sshd that trusts only that CA runs the calls.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use meho_ssh::ca::generate_ed25519;
use meho_ssh::client::{ConnectOptions, Hop, connect};
use meho_ssh::wire::{HostView, Intent};
use meho_test_support::openbao::{Bao, JwtAuth};
use meho_vault::JwtIssuer;
use reqwest::Method;
use russh::keys::ssh_key::Certificate;
use serde_json::{Value, json};

use crate::harness::{Sshd, ensure_user, require_sshd};
use crate::support::{Lab, USER, body, host};

const MOUNT: &str = "ssh";
const ROLE: &str = "meho";
const SIGN_PATH: &str = "ssh/sign/meho";

/// The Vault role docs/ssh.md describes: user certificates for the lab user, caller-chosen key
/// ids, the two critical options meho sets, and no defaults meho did not ask for.
fn role(default_extensions: Value) -> Value {
    json!({
        "key_type": "ca",
        "allow_user_certificates": true,
        "allow_user_key_ids": true,
        "allowed_users": USER,
        "allowed_critical_options": "force-command,source-address",
        "allowed_extensions": "permit-pty,permit-port-forwarding",
        "default_extensions": default_extensions,
        "ttl": "5m",
        "max_ttl": "10m",
        "not_before_duration": "30s",
    })
}

/// A Bao whose SSH engine is the CA, with meho's JWT issuer trusted for role `meho`, an sshd
/// trusting only that CA, and a lab whose `[ca_keys._default]` is the Vault role. `hosts` gets
/// the sshd for its `[hosts.*]` blocks.
async fn vault_lab(hosts: impl FnOnce(&Sshd) -> String) -> Option<(Bao, Sshd, Lab)> {
    if !require_sshd() {
        return None;
    }
    let bao = Bao::start().await?;
    bao.enable_audit_file().await;
    bao.api(
        Method::POST,
        &format!("sys/mounts/{MOUNT}"),
        Some(json!({ "type": "ssh" })),
    )
    .await;
    let ca = bao
        .api(
            Method::POST,
            &format!("{MOUNT}/config/ca"),
            Some(json!({ "generate_signing_key": true, "key_type": "ed25519" })),
        )
        .await;
    let ca_line = ca["data"]["public_key"].as_str().unwrap().trim().to_owned();
    bao.api(
        Method::POST,
        &format!("{MOUNT}/roles/{ROLE}"),
        Some(role(json!({}))),
    )
    .await;
    bao.policy_write(
        "meho-ssh",
        &format!("path \"{SIGN_PATH}\" {{ capabilities = [\"update\"] }}"),
    )
    .await;

    ensure_user(USER);
    let dir = tempfile::Builder::new()
        .prefix("meho-vault-lab-")
        .tempdir()
        .unwrap();
    let key_file = dir.path().join("vault-jwt.pem");
    let issuer = JwtIssuer::load_or_create(&key_file, "meho").unwrap();
    bao.enable_jwt(&JwtAuth::pubkeys(
        "jwt",
        &[issuer.public_key_pem()],
        "meho",
        "vault",
        &["meho-ssh"],
    ))
    .await;

    let sshd = Lab::sshd(&ca_line);
    let text = format!(
        "{}\n[vault]\naddress = \"{}\"\nauth_mount = \"jwt\"\nrole = \"meho\"\n\
         signing_key = \"{}\"\ntimeout_seconds = 3\n\n\
         [ca_keys._default]\nvault_ssh_mount = \"{MOUNT}\"\nvault_ssh_role = \"{ROLE}\"\n",
        hosts(&sshd),
        bao.url(),
        key_file.display()
    );
    let lab = Lab::with_config(dir, PathBuf::new(), &text, |_| {}).await;
    Some((bao, sshd, lab))
}

fn signs(bao: &Bao) -> usize {
    bao.audit_request_paths()
        .iter()
        .filter(|p| p.as_str() == SIGN_PATH)
        .count()
}

fn logins(bao: &Bao) -> usize {
    bao.audit_request_paths()
        .iter()
        .filter(|p| p.as_str() == "auth/jwt/login")
        .count()
}

/// Whether Vault still knows the token with `accessor` (asked with the root token).
async fn accessor_alive(bao: &Bao, accessor: &str) -> bool {
    let (status, _) = bao
        .api_status(
            Method::POST,
            "auth/token/lookup-accessor",
            Some(json!({ "accessor": accessor })),
        )
        .await;
    status == 200
}

fn view(name: &str, sshd: &Sshd) -> HostView {
    HostView {
        name: name.to_owned(),
        addr: sshd.addr_string(),
        user: USER.to_owned(),
        host_key: sshd.host_key_line(),
        jump: None,
        allow_sudo: false,
        allow_pty: false,
        allow_file_transfer: false,
        groups: vec![],
        tenant: "default".to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_execute_runs_under_a_certificate_vault_signed_as_the_signer_decided() {
    let Some((bao, sshd, lab)) = vault_lab(|sshd| {
        host(
            "web",
            sshd,
            "max_ttl_seconds = 120\nsource_address = \"127.0.0.1/32\"",
        ) + &host("pinned", sshd, "source_address = \"10.9.9.9/32\"")
    })
    .await
    else {
        return;
    };

    // An ssh_execute through the pipeline runs on the real sshd.
    let result = lab
        .call(
            "ssh_execute",
            json!({"server": "web", "command": "echo vault-signed; exit 4"}),
        )
        .await
        .unwrap();
    assert_eq!(result["stdout"], "vault-signed\n");
    assert_eq!(result["exit_code"], 4);
    let serial = result["serial"].as_u64().unwrap();
    assert_eq!(signs(&bao), 1, "{:?}", bao.audit_request_paths());

    // The signer's credential record names Vault's serial, the constraints it decided, and the
    // Vault token it signed under, which is revoked.
    let credential = lab
        .records()
        .await
        .into_iter()
        .find(|r| r.kind == "credential")
        .unwrap();
    let cert = &body(&credential)["certificate"];
    assert_eq!(cert["serial"], serial.to_string());
    assert_eq!(cert["key_id"], "meho:agent=agent-1 user=- host=web");
    assert_eq!(cert["principal"], USER);
    assert_eq!(cert["force_command"], "echo vault-signed; exit 4");
    assert_eq!(cert["source_address"], "127.0.0.1/32");
    assert_eq!(cert["vault"]["mount"], MOUNT);
    assert_eq!(cert["vault"]["role"], ROLE);
    assert_eq!(cert["vault"]["token_revoked"], true);
    // TTL as configured (120 s), from 30 s before issue, by Vault's clock.
    let lifetime = cert["valid_before"].as_u64().unwrap() - cert["valid_after"].as_u64().unwrap();
    assert!((148..=152).contains(&lifetime), "lifetime {lifetime}");
    let accessor = cert["vault"]["token_accessor"].as_str().unwrap();
    assert!(!accessor.is_empty());
    assert!(
        !accessor_alive(&bao, accessor).await,
        "the token a certificate was signed under must be revoked"
    );
    // The broker's outcome record and sshd's log name the same serial.
    let outcome = lab
        .records_of("ssh_execute")
        .await
        .into_iter()
        .find(|r| r.kind == "outcome")
        .unwrap();
    assert_eq!(body(&outcome)["credential_serial"], serial.to_string());
    assert!(
        sshd.wait_for_log(
            "Accepted certificate ID \"meho:agent=agent-1 user=- host=web\"",
            Duration::from_secs(5)
        ),
        "{}",
        sshd.log()
    );
    assert!(
        sshd.wait_for_log(&format!("serial {serial}"), Duration::from_secs(5)),
        "{}",
        sshd.log()
    );

    // The certificate forces the decided command: a client asking for `id` with it still gets
    // `uptime` (sshd enforces it).
    let key = generate_ed25519("t").unwrap();
    let answer = lab
        .signer
        .sign(
            "meho-test",
            &Intent {
                target: "web".into(),
                command: Some("uptime".into()),
                public_key: Some(key.public_key().to_openssh().unwrap()),
                ..Intent::default()
            },
        )
        .await
        .unwrap();
    let certificate = Certificate::from_openssh(answer.certificate.as_deref().unwrap()).unwrap();
    assert_eq!(answer.serial, Some(certificate.serial()));
    let options = certificate.critical_options();
    assert_eq!(
        options.get("force-command").map(String::as_str),
        Some("uptime")
    );
    assert_eq!(
        options.get("source-address").map(String::as_str),
        Some("127.0.0.1/32")
    );
    assert!(certificate.extensions().is_empty());
    let conn = connect(
        vec![Hop {
            view: view("web", &sshd),
            key: Arc::new(key),
            certificate,
        }],
        &ConnectOptions {
            bind_address: None,
            connect_timeout: Duration::from_secs(10),
        },
    )
    .await
    .unwrap();
    let out = conn
        .exec("id", false, 1 << 20, Duration::from_secs(10))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("load average"), "{stdout}");
    assert!(!stdout.contains("uid="), "{stdout}");

    // The source-address goes into the certificate Vault signs, and sshd honours it.
    let err = lab
        .call(
            "ssh_execute",
            json!({"server": "pinned", "command": "true"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "auth_refused", "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_command_never_reaches_vault_and_vault_down_fails_closed() {
    let Some((mut bao, sshd, lab)) = vault_lab(|sshd| {
        host(
            "web",
            sshd,
            "[hosts.web.command_policy]\nmode = \"denylist\"\ndeny = ['^rm ']\n",
        )
    })
    .await
    else {
        return;
    };

    // Denied by the signer's decision: no login, no sign request in Vault's own audit log.
    let denied = lab
        .call(
            "ssh_execute",
            json!({"server": "web", "command": "rm -rf /tmp/x"}),
        )
        .await
        .unwrap_err();
    assert!(denied.message.contains("deny:^rm "), "{denied}");
    assert_eq!(signs(&bao), 0, "{:?}", bao.audit_request_paths());
    assert_eq!(logins(&bao), 0, "{:?}", bao.audit_request_paths());

    // Vault down: the call fails closed as `unreachable`, and nothing runs.
    bao.stop();
    let marker = "/tmp/meho-vault-down-must-not-exist";
    let _ = std::fs::remove_file(marker);
    let err = lab
        .call(
            "ssh_execute",
            json!({"server": "web", "command": format!("touch {marker}")}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "unreachable", "{err}");
    assert!(err.message.contains("vault"), "{err}");
    assert!(err.message.contains("unreachable"), "{err}");
    assert!(!std::path::Path::new(marker).exists());
    assert!(!sshd.log().contains("Accepted"), "{}", sshd.log());
    let records = lab.records().await;
    assert!(records.iter().all(|r| r.kind != "credential"));
    let refusal = records
        .iter()
        .find(|r| r.kind == "denial" && r.outcome.as_deref() == Some("unreachable"))
        .expect("the signer records that Vault could not be reached");
    assert!(
        body(refusal)["error"]
            .as_str()
            .unwrap()
            .contains("unreachable")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_other_than_the_one_asked_for_is_never_used() {
    let Some((bao, sshd, lab)) = vault_lab(|sshd| host("web", sshd, "")).await else {
        return;
    };
    // A role that adds `permit-pty` to every certificate that asks for no extension.
    bao.api(
        Method::POST,
        &format!("{MOUNT}/roles/{ROLE}"),
        Some(role(json!({ "permit-pty": "" }))),
    )
    .await;
    let err = lab
        .call("ssh_execute", json!({"server": "web", "command": "true"}))
        .await
        .unwrap_err();
    assert_eq!(err.code, "internal", "{err}");
    assert!(err.message.contains("other than the one asked"), "{err}");
    assert!(err.message.contains("permit-pty"), "{err}");
    assert_eq!(signs(&bao), 1);
    assert!(!sshd.log().contains("Accepted"), "{}", sshd.log());
    let records = lab.records().await;
    assert!(records.iter().all(|r| r.kind != "credential"));
    assert!(
        records
            .iter()
            .any(|r| r.kind == "denial" && r.outcome.as_deref() == Some("certificate_mismatch"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_decides_on_the_caller_the_signer_logs_in_as() {
    let Some((bao, sshd, lab)) = vault_lab(|sshd| host("web", sshd, "")).await else {
        return;
    };
    // Only agent-2 may log in: Vault sees the caller the signer decides for in `sub`.
    bao.api(
        Method::POST,
        "auth/jwt/role/meho",
        Some(json!({
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": ["vault"],
            "bound_claims": { "sub": "agent-2", "tenant": "default" },
            "claim_mappings": { "tenant": "tenant", "role": "meho_role" },
            "token_policies": ["meho-ssh"],
            "token_ttl": 60,
        })),
    )
    .await;
    let err = lab
        .call("ssh_execute", json!({"server": "web", "command": "true"}))
        .await
        .unwrap_err();
    assert_eq!(err.code, "forbidden", "{err}");
    assert!(err.message.contains("cannot log in"), "{err}");
    assert_eq!(signs(&bao), 0);
    assert!(!sshd.log().contains("Accepted"), "{}", sshd.log());
    assert!(
        lab.records()
            .await
            .iter()
            .any(|r| r.kind == "denial" && r.outcome.as_deref() == Some("vault_denied"))
    );

    let ok = lab
        .call_as(
            &meho_gateway::Caller::agent("agent-2"),
            "ssh_execute",
            json!({"server": "web", "command": "echo as-agent-2"}),
        )
        .await
        .unwrap();
    assert_eq!(ok["stdout"], "as-agent-2\n");
    assert_eq!(signs(&bao), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bastion_hops_and_file_transfers_get_vault_signed_certificates_too() {
    let Some((bao, _sshd, lab)) = vault_lab(|sshd| {
        host("jumpbox", sshd, "allow_as_bastion = true")
            + &host("inner", sshd, "jump = \"jumpbox\"")
            + &host("files", sshd, "allow_file_transfer = true")
    })
    .await
    else {
        return;
    };
    let through = lab
        .call(
            "ssh_execute",
            json!({"server": "inner", "command": "echo via-bastion"}),
        )
        .await
        .unwrap();
    assert_eq!(through["stdout"], "via-bastion\n");

    let remote = format!("/tmp/meho-vault-sftp-{}.txt", std::process::id());
    let put = lab
        .call(
            "ssh_put_file",
            json!({"server": "files", "path": remote, "content": "vault-ca\n"}),
        )
        .await
        .unwrap();
    assert_eq!(put["size"], 9, "{put}");
    assert_eq!(std::fs::read_to_string(&remote).unwrap(), "vault-ca\n");
    let _ = std::fs::remove_file(&remote);

    // Every hop's certificate came from Vault, each with its own token, all revoked.
    let issued: Vec<(String, Value)> = lab
        .records()
        .await
        .into_iter()
        .filter(|r| r.kind == "credential")
        .map(|r| (r.target.clone().unwrap(), body(&r)["certificate"].clone()))
        .collect();
    assert_eq!(issued.len(), 3, "{issued:#?}");
    assert_eq!(signs(&bao), 3);
    let of = |name: &str| {
        issued
            .iter()
            .find(|(t, _)| t == name)
            .map(|(_, c)| c.clone())
            .unwrap()
    };
    assert_eq!(of("jumpbox")["force_command"], "/bin/false");
    assert_eq!(of("jumpbox")["permit_port_forwarding"], true);
    assert_eq!(of("inner")["force_command"], "echo via-bastion");
    assert_eq!(of("files")["force_command"], "internal-sftp");
    for (_, cert) in &issued {
        assert_eq!(cert["vault"]["token_revoked"], true);
        let accessor = cert["vault"]["token_accessor"].as_str().unwrap();
        assert!(!accessor_alive(&bao, accessor).await);
    }
}
