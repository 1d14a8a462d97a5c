//! The signer: certificate fields, and `meho signer`'s mutual TLS.

use std::sync::Arc;
use std::time::Duration;

use meho_ssh::ca::generate_ed25519;
use meho_ssh::signer::SignError;
use meho_ssh::signer_client::{RemoteSigner, SignerClient};
use meho_ssh::wire::{Intent, Purpose, Role, SessionMode};
use russh::keys::ssh_key::Certificate;
use russh::keys::ssh_key::certificate::CertType;
use serde_json::json;

use crate::harness::require_sshd;
use crate::pki::{Pki, rogue_client};
use crate::support::{Lab, USER, body, host};

const FAKE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

fn config() -> String {
    format!(
        r#"
[hosts.web]
addr = "127.0.0.1:1"
user = "deploy"
principal = "deploy-principal"
host_key = "{FAKE_KEY}"
groups = ["prod"]
max_ttl_seconds = 120
allow_sudo = true
allow_pty = true
source_address = "10.0.0.0/8"
allowed_callers = ["meho-test", "broker-1"]

[hosts.nopty]
addr = "127.0.0.1:1"
user = "deploy"
host_key = "{FAKE_KEY}"

[hosts.jump]
addr = "127.0.0.1:1"
user = "hop"
host_key = "{FAKE_KEY}"
allow_as_bastion = true
"#
    )
}

async fn lab() -> Lab {
    let (dir, ca_path, _) = Lab::ca();
    Lab::new(dir, ca_path, &config(), |_| {}).await
}

fn intent(host: &str, key: &russh::keys::ssh_key::PrivateKey) -> Intent {
    Intent {
        target: host.into(),
        public_key: Some(key.public_key().to_openssh().unwrap()),
        end_user: Some("alice example".into()),
        ..Intent::default()
    }
}

#[tokio::test]
async fn certificates_carry_exactly_the_policy_constraints() {
    let lab = lab().await;
    let key = generate_ed25519("k").unwrap();
    let before = meho_ssh::signer::unix_now();
    let answer = lab
        .signer
        .sign(
            "meho-test",
            &Intent {
                command: Some("systemctl restart nginx".into()),
                sudo: true,
                ttl_seconds: Some(9999),
                ..intent("web", &key)
            },
        )
        .await
        .unwrap();
    let cert = Certificate::from_openssh(answer.certificate.as_deref().unwrap()).unwrap();
    let serial = answer.serial.unwrap();
    assert_eq!(cert.serial(), serial);
    assert_eq!(cert.cert_type(), CertType::User);
    assert_eq!(cert.valid_principals(), ["deploy-principal".to_owned()]);
    assert_eq!(
        cert.key_id(),
        format!("meho:agent=meho-test user=alice_example host=web serial={serial}")
    );
    assert!(cert.valid_after() + 30 >= before && cert.valid_after() <= before.saturating_sub(29));
    assert!(
        cert.valid_before() - cert.valid_after() <= 120 + 31,
        "TTL clamped to max_ttl_seconds"
    );
    assert_eq!(
        cert.critical_options()
            .get("force-command")
            .map(String::as_str),
        Some("sudo -n -- systemctl restart nginx")
    );
    assert_eq!(
        cert.critical_options()
            .get("source-address")
            .map(String::as_str),
        Some("10.0.0.0/8")
    );
    assert!(
        cert.extensions().is_empty(),
        "no pty, no forwarding unless granted"
    );
    assert_eq!(cert.public_key(), key.public_key().key_data());

    // permit-pty only when asked for and allowed.
    let pty = lab
        .signer
        .sign(
            "meho-test",
            &Intent {
                command: Some("top -b -n1".into()),
                pty: true,
                ..intent("web", &key)
            },
        )
        .await
        .unwrap();
    let pty = Certificate::from_openssh(pty.certificate.as_deref().unwrap()).unwrap();
    assert!(pty.extensions().contains_key("permit-pty"));
    assert!(!pty.extensions().contains_key("permit-port-forwarding"));
    let refused = lab
        .signer
        .sign(
            "meho-test",
            &Intent {
                command: Some("top".into()),
                pty: true,
                ..intent("nopty", &key)
            },
        )
        .await
        .unwrap();
    assert!(refused.certificate.is_none());
    assert_eq!(
        refused.decision.decision.rule,
        "invalid-request:pty-not-allowed"
    );

    // Bastion certificates tunnel and run nothing; only bastions may get them.
    let bastion = lab
        .signer
        .sign(
            "meho-test",
            &Intent {
                role: Role::Bastion,
                ..intent("jump", &key)
            },
        )
        .await
        .unwrap();
    let bastion = Certificate::from_openssh(bastion.certificate.as_deref().unwrap()).unwrap();
    assert!(bastion.extensions().contains_key("permit-port-forwarding"));
    assert_eq!(
        bastion
            .critical_options()
            .get("force-command")
            .map(String::as_str),
        Some("/bin/false")
    );
    let not_bastion = lab
        .signer
        .sign(
            "meho-test",
            &Intent {
                role: Role::Bastion,
                ..intent("nopty", &key)
            },
        )
        .await
        .unwrap();
    assert_eq!(
        not_bastion.decision.decision.rule,
        "invalid-request:not-a-bastion"
    );

    // Sessions carry no force-command but hand back the elevation prefix.
    let session = lab
        .signer
        .sign(
            "meho-test",
            &Intent {
                purpose: Purpose::Session,
                session_mode: Some(SessionMode::Shell),
                sudo_user: Some("root".into()),
                ..intent("web", &key)
            },
        )
        .await
        .unwrap();
    assert_eq!(session.elevation_prefix.as_deref(), Some("sudo -n"));
    let session = Certificate::from_openssh(session.certificate.as_deref().unwrap()).unwrap();
    assert!(!session.critical_options().contains_key("force-command"));

    // Serials are unique.
    let mut serials = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let a = lab
            .signer
            .sign(
                "meho-test",
                &Intent {
                    command: Some("id".into()),
                    ..intent("web", &key)
                },
            )
            .await
            .unwrap();
        assert!(serials.insert(a.serial.unwrap()));
    }
}

#[tokio::test]
async fn the_signer_refuses_bad_intents_and_audits_every_answer() {
    let lab = lab().await;
    let key = generate_ed25519("k").unwrap();
    let unknown = lab
        .signer
        .sign(
            "meho-test",
            &Intent {
                command: Some("id".into()),
                ..intent("nope", &key)
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(unknown, SignError::UnknownHost(_)));
    let forbidden = lab
        .signer
        .sign(
            "stranger",
            &Intent {
                command: Some("id".into()),
                ..intent("web", &key)
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(forbidden, SignError::Forbidden(_)), "{forbidden}");
    let groups = lab
        .signer
        .sign(
            "meho-test",
            &Intent {
                command: Some("id".into()),
                end_user_groups: Some(vec!["dev".into()]),
                ..intent("web", &key)
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(groups, SignError::Forbidden(_)));
    let rsa_like = lab
        .signer
        .sign(
            "meho-test",
            &Intent {
                command: Some("id".into()),
                public_key: Some("ssh-rsa AAAA".into()),
                ..intent("web", &key)
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(rsa_like, SignError::BadRequest(_)));
    let newline = lab
        .signer
        .sign(
            "meho-test",
            &Intent {
                command: Some("id\nrm -rf /".into()),
                ..intent("web", &key)
            },
        )
        .await
        .unwrap();
    assert!(newline.certificate.is_none());
    assert!(newline.decision.decision.refuses());

    let records = lab.records().await;
    let denials = records.iter().filter(|r| r.kind == "denial").count();
    assert_eq!(denials, 4, "unknown host, caller, groups, newline");
    assert!(
        records
            .iter()
            .any(|r| r.principal == "stranger" && r.outcome.as_deref() == Some("forbidden"))
    );
    // The host list never reveals the policy.
    let hosts = serde_json::to_string(&lab.signer.hosts("meho-test", None, None)).unwrap();
    for secret in [
        "deploy-principal",
        "10.0.0.0/8",
        "allowed_callers",
        "max_ttl",
    ] {
        assert!(!hosts.contains(secret), "{secret} leaked into /v1/hosts");
    }
    assert!(
        lab.signer
            .hosts("stranger", None, None)
            .iter()
            .all(|h| h.name != "web")
    );
}

struct Remote {
    lab: Lab,
    pki: Pki,
    url: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn remote(config: &str) -> Remote {
    let (dir, ca_path, _) = Lab::ca();
    let lab = Lab::new(dir, ca_path, config, |_| {}).await;
    let pki = Pki::new();
    let tls = meho_ssh::tls::server_config(&pki.server_cert, &pki.server_key, &pki.ca_pem).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(meho_ssh::signer_http::serve(
        listener,
        tls,
        lab.signer.clone(),
        vec!["broker-1".into()],
        async {
            let _ = rx.await;
        },
    ));
    Remote {
        lab,
        pki,
        url,
        _shutdown: tx,
    }
}

#[tokio::test]
async fn mutual_tls_admits_only_allowed_client_certificates() {
    let r = remote(&config()).await;
    let (cert, key) = r.pki.client("broker-1");
    let good = RemoteSigner::new(&r.url, &cert, &key, &r.pki.ca_pem).unwrap();
    let hosts = good.hosts(None, None, None).await.unwrap();
    assert!(hosts.iter().any(|h| h.name == "web"));
    let ephemeral = generate_ed25519("k").unwrap();
    let answer = good
        .sign(&Intent {
            command: Some("uptime".into()),
            ..intent("web", &ephemeral)
        })
        .await
        .unwrap();
    assert!(answer.certificate.is_some());
    // The signer saw the TLS identity, not anything the broker claimed.
    assert!(
        Certificate::from_openssh(answer.certificate.as_deref().unwrap())
            .unwrap()
            .key_id()
            .starts_with("meho:agent=broker-1 ")
    );

    // A certificate from another CA: the handshake fails and nothing comes back.
    let rogue_dir = tempfile::tempdir().unwrap();
    let (rcert, rkey) = rogue_client("broker-1", rogue_dir.path());
    let rogue = RemoteSigner::new(&r.url, &rcert, &rkey, &r.pki.ca_pem).unwrap();
    let err = rogue
        .sign(&Intent {
            command: Some("uptime".into()),
            ..intent("web", &ephemeral)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, "unreachable", "{err}");

    // No client certificate at all.
    let bare = reqwest::Client::builder()
        .use_preconfigured_tls(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates({
                let mut roots = rustls::RootCertStore::empty();
                use rustls_pki_types::pem::PemObject;
                for c in rustls_pki_types::CertificateDer::pem_file_iter(&r.pki.ca_pem).unwrap() {
                    roots.add(c.unwrap()).unwrap();
                }
                roots
            })
            .with_no_client_auth(),
        )
        .build()
        .unwrap();
    let response = bare
        .post(format!("{}/v1/sign", r.url))
        .json(&json!({"host": "web", "command": "uptime"}))
        .send()
        .await;
    assert!(
        response.is_err(),
        "a client without a certificate got an answer"
    );

    // A valid certificate whose CN is not allowed: 403, audited.
    let (icert, ikey) = r.pki.client("intruder");
    let intruder = RemoteSigner::new(&r.url, &icert, &ikey, &r.pki.ca_pem).unwrap();
    let err = intruder.hosts(None, None, None).await.unwrap_err();
    assert_eq!(err.code, "forbidden");
    assert!(err.message.contains("intruder"), "{err}");
    let issued_before = r
        .lab
        .records()
        .await
        .iter()
        .filter(|r| r.kind == "credential")
        .count();
    let err = intruder
        .sign(&Intent {
            command: Some("uptime".into()),
            ..intent("web", &ephemeral)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, "forbidden");
    let records = r.lab.records().await;
    assert_eq!(
        records.iter().filter(|r| r.kind == "credential").count(),
        issued_before
    );
    assert!(
        records
            .iter()
            .any(|rec| rec.principal == "intruder" && rec.kind == "denial")
    );

    // Malformed and oversize bodies get precise errors.
    let raw = reqwest::Client::builder()
        .use_preconfigured_tls(meho_ssh::tls::client_config(&cert, &key, &r.pki.ca_pem).unwrap())
        .build()
        .unwrap();
    let bad = raw
        .post(format!("{}/v1/sign", r.url))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(bad["code"], "bad_request");
    let unknown_field = raw
        .post(format!("{}/v1/sign", r.url))
        .json(&json!({"host": "web", "force_command": "id"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_field.status(), 400);
    let huge = raw
        .post(format!("{}/v1/sign", r.url))
        .body(vec![b' '; 200_000])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_with_a_remote_signer_runs_commands_on_sshd() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let cfg = host("web", &sshd, "allowed_callers = [\"broker-1\"]");
    let lab = Lab::new(dir, ca_path, &cfg, |_| {}).await;
    let pki = Pki::new();
    let tls = meho_ssh::tls::server_config(&pki.server_cert, &pki.server_key, &pki.ca_pem).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(meho_ssh::signer_http::serve(
        listener,
        tls,
        lab.signer.clone(),
        vec!["broker-1".into()],
        std::future::pending(),
    ));
    let (cert, key) = pki.client("broker-1");
    let remote = Arc::new(RemoteSigner::new(&url, &cert, &key, &pki.ca_pem).unwrap());
    let mut options = meho_ssh::broker::BrokerOptions::from_config(&lab.config.ssh, lab.dir.path());
    options.connect.connect_timeout = Duration::from_secs(10);
    let broker = meho_ssh::broker::SshBroker::new(remote, lab.audit.clone(), options);
    let gateway = Lab::gateway_over(&lab.governance, Arc::new(broker));
    let out = gateway
        .call(
            &crate::support::caller(),
            "ssh_execute",
            serde_json::json!({ "server": "web", "command": "id -un" }),
        )
        .await
        .unwrap();
    assert_eq!(out["stdout"], format!("{USER}\n"));
    let credential = lab
        .records()
        .await
        .into_iter()
        .find(|r| r.kind == "credential")
        .unwrap();
    assert_eq!(credential.principal, "broker-1");
    assert_eq!(body(&credential)["certificate"]["force_command"], "id -un");
}

#[test]
fn ca_keys_load_from_ssh_keygen_and_bad_keys_get_clear_errors() {
    if std::process::Command::new("ssh-keygen")
        .arg("-?")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ssh-keygen missing under CI"
        );
        println!("\nSKIPPED: ssh-keygen missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keygen = |name: &str, args: &[&str]| {
        let path = dir.path().join(name);
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-C", "test", "-f"])
            .arg(&path)
            .args(args)
            .status()
            .unwrap();
        assert!(status.success());
        path
    };
    let plain = keygen("plain", &["-t", "ed25519", "-N", ""]);
    let ca = meho_ssh::ca::CaKey::load(&plain).unwrap();
    let public = std::fs::read_to_string(dir.path().join("plain.pub")).unwrap();
    assert_eq!(
        ca.public_line().split_whitespace().nth(1),
        public.split_whitespace().nth(1),
        "the public line is ssh-keygen's"
    );
    let encrypted = keygen("encrypted", &["-t", "ed25519", "-N", "secret"]);
    let err = meho_ssh::ca::CaKey::load(&encrypted)
        .unwrap_err()
        .to_string();
    assert!(err.contains("passphrase-protected"), "{err}");
    let ecdsa = keygen("ecdsa", &["-t", "ecdsa", "-N", ""]);
    let err = meho_ssh::ca::CaKey::load(&ecdsa).unwrap_err().to_string();
    assert!(err.contains("not Ed25519"), "{err}");
    std::fs::write(dir.path().join("garbage"), "hello").unwrap();
    let err = meho_ssh::ca::CaKey::load(&dir.path().join("garbage"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an OpenSSH private key"), "{err}");
    let err = meho_ssh::ca::CaKey::load(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot read it"), "{err}");
    // `init` never replaces a key.
    let err = meho_ssh::ca::CaKey::init(&plain).unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        meho_ssh::ca::CaKey::load(&plain).unwrap().fingerprint(),
        ca.fingerprint()
    );
}
