//! meho-vault against a real OpenBao dev server (and the local PostgreSQL for dynamic
//! credentials); no mocks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

use meho_test_support::openbao::{self, Bao, JwtAuth, JwtKeys, PG_URL_FOR_BAO};
use meho_vault::{IdentityClaims, JwtIssuer, SshSignRequest, VaultClient, VaultError, VaultToken};
use reqwest::Method;
use serde_json::json;
use url::Url;

const AUDIENCE: &str = "vault";
const ISSUER: &str = "https://meho.test";
const CANARY: &str = "canary-7d1f0c2e-secret-value";

fn client(bao: &Bao) -> VaultClient {
    VaultClient::new(
        &Url::parse(&bao.url()).unwrap(),
        None,
        Duration::from_secs(10),
    )
    .unwrap()
}

fn alice() -> IdentityClaims {
    IdentityClaims {
        sub: "alice".to_owned(),
        tenant: "acme".to_owned(),
        groups: vec!["ops".to_owned()],
        role: "operator".to_owned(),
    }
}

/// A dev server with JWT auth at `jwt/` (role `meho`) trusting `issuer`, tokens with `policies`.
async fn with_jwt(issuer: &JwtIssuer, policies: &[&str]) -> Option<(Bao, String)> {
    let bao = Bao::start().await?;
    let accessor = bao
        .enable_jwt(&JwtAuth::pubkeys(
            "jwt",
            &[issuer.public_key_pem()],
            "meho",
            AUDIENCE,
            policies,
        ))
        .await;
    Some((bao, accessor))
}

async fn login(bao: &Bao, issuer: &JwtIssuer, claims: &IdentityClaims) -> VaultToken {
    let jwt = issuer
        .issue(claims, AUDIENCE, Duration::from_secs(60))
        .unwrap();
    client(bao).login_jwt("jwt", "meho", &jwt).await.unwrap()
}

#[tokio::test]
async fn jwt_login_reads_kv_and_revoke_self_ends_the_token() {
    let issuer = JwtIssuer::generate(ISSUER).unwrap();
    let Some((bao, _)) = with_jwt(&issuer, &["app-read"]).await else {
        return;
    };
    bao.policy_write(
        "app-read",
        r#"path "secret/data/app" { capabilities = ["read"] }"#,
    )
    .await;
    bao.kv_put("secret", "app", json!({ "password": CANARY }))
        .await;
    bao.kv_put("secret", "other", json!({ "password": "nope" }))
        .await;

    let vault = client(&bao);
    let token = login(&bao, &issuer, &alice()).await;
    assert!(token.policies.contains(&"app-read".to_owned()), "{token:?}");
    assert!(token.ttl_seconds > 0 && token.ttl_seconds <= 300);
    assert!(!token.accessor.is_empty());
    let data = vault.kv2_read(&token, "secret", "app").await.unwrap();
    assert_eq!(data["password"], CANARY);

    let denied = vault.kv2_read(&token, "secret", "other").await.unwrap_err();
    assert!(matches!(denied, VaultError::Denied { .. }), "{denied}");
    let missing = vault
        .kv2_read(&token, "secret", "app-missing")
        .await
        .unwrap_err();
    // The policy grants nothing there, so Vault denies before it looks.
    assert!(matches!(missing, VaultError::Denied { .. }), "{missing}");

    let root = VaultToken::from_secret(bao.root_token().to_owned(), String::new(), 0);
    let missing = vault
        .kv2_read(&root, "secret", "app-missing")
        .await
        .unwrap_err();
    assert!(matches!(missing, VaultError::NotFound { .. }), "{missing}");

    let secret = token.expose().to_owned();
    assert!(bao.token_lookup(&secret).await);
    vault.revoke_self(token).await.unwrap();
    assert!(!bao.token_lookup(&secret).await);
    let gone = VaultToken::from_secret(secret, String::new(), 0);
    let err = vault.kv2_read(&gone, "secret", "app").await.unwrap_err();
    assert!(matches!(err, VaultError::Denied { .. }), "{err}");
}

#[tokio::test]
async fn login_with_a_foreign_key_or_an_expired_jwt_is_denied() {
    let issuer = JwtIssuer::generate(ISSUER).unwrap();
    let Some((bao, _)) = with_jwt(&issuer, &["default"]).await else {
        return;
    };
    let vault = client(&bao);

    let foreign = JwtIssuer::generate(ISSUER).unwrap();
    let jwt = foreign
        .issue(&alice(), AUDIENCE, Duration::from_secs(60))
        .unwrap();
    let err = vault.login_jwt("jwt", "meho", &jwt).await.unwrap_err();
    assert!(matches!(err, VaultError::Denied { .. }), "{err}");

    let wrong_audience = issuer
        .issue(&alice(), "elsewhere", Duration::from_secs(60))
        .unwrap();
    let err = vault
        .login_jwt("jwt", "meho", &wrong_audience)
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::Denied { .. }), "{err}");

    let err = vault
        .login_jwt(
            "jwt",
            "no-such-role",
            &issuer
                .issue(&alice(), AUDIENCE, Duration::from_secs(60))
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::Denied { .. }), "{err}");

    // Without leeway, a token one second past its expiry is refused.
    let mut strict = JwtAuth::pubkeys(
        "jwt",
        &[issuer.public_key_pem()],
        "meho",
        AUDIENCE,
        &["default"],
    );
    strict.leeway_seconds = Some(-1);
    bao.jwt_role(&strict).await;
    let short = issuer
        .issue(&alice(), AUDIENCE, Duration::from_secs(1))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let err = vault.login_jwt("jwt", "meho", &short).await.unwrap_err();
    assert!(matches!(err, VaultError::Denied { .. }), "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
}

#[tokio::test]
async fn claims_reach_vault_as_metadata_and_policy_templates() {
    let issuer = JwtIssuer::generate(ISSUER).unwrap();
    let Some((bao, accessor)) = with_jwt(&issuer, &["tenant-read"]).await else {
        return;
    };
    bao.policy_write(
        "tenant-read",
        &format!(
            r#"path "secret/data/tenants/{{{{identity.entity.aliases.{accessor}.metadata.tenant}}}}/*" {{ capabilities = ["read"] }}"#
        ),
    )
    .await;
    bao.kv_put("secret", "tenants/acme/db", json!({ "user": "acme" }))
        .await;
    bao.kv_put("secret", "tenants/globex/db", json!({ "user": "globex" }))
        .await;

    // `groups` maps to external identity groups: `ops` carries a policy of its own.
    bao.policy_write(
        "ops-read",
        r#"path "secret/data/ops" { capabilities = ["read"] }"#,
    )
    .await;
    bao.kv_put("secret", "ops", json!({ "runbook": "restart" }))
        .await;
    let group = bao
        .api(
            Method::POST,
            "identity/group",
            Some(json!({ "name": "ops", "type": "external", "policies": ["ops-read"] })),
        )
        .await;
    bao.api(
        Method::POST,
        "identity/group-alias",
        Some(json!({
            "name": "ops",
            "mount_accessor": accessor,
            "canonical_id": group["data"]["id"],
        })),
    )
    .await;

    let vault = client(&bao);
    let token = login(&bao, &issuer, &alice()).await;
    let ops = vault.kv2_read(&token, "secret", "ops").await.unwrap();
    assert_eq!(ops["runbook"], "restart");
    let outsider = IdentityClaims {
        sub: "bob".to_owned(),
        groups: vec!["dev".to_owned()],
        ..alice()
    };
    let bobs = login(&bao, &issuer, &outsider).await;
    let err = vault.kv2_read(&bobs, "secret", "ops").await.unwrap_err();
    assert!(matches!(err, VaultError::Denied { .. }), "{err}");

    let me = vault.lookup_self(&token).await.unwrap();
    assert_eq!(me["meta"]["tenant"], "acme", "{me}");
    assert_eq!(me["meta"]["meho_role"], "operator", "{me}");
    assert_eq!(me["display_name"], "jwt-alice", "{me}");

    let ours = vault
        .kv2_read(&token, "secret", "tenants/acme/db")
        .await
        .unwrap();
    assert_eq!(ours["user"], "acme");
    let theirs = vault
        .kv2_read(&token, "secret", "tenants/globex/db")
        .await
        .unwrap_err();
    assert!(matches!(theirs, VaultError::Denied { .. }), "{theirs}");
}

#[tokio::test]
async fn database_credentials_exist_until_their_lease_is_revoked() {
    if !openbao::require_postgres() {
        return;
    }
    let issuer = JwtIssuer::generate(ISSUER).unwrap();
    let Some((bao, _)) = with_jwt(&issuer, &["db"]).await else {
        return;
    };
    bao.policy_write(
        "db",
        r#"
path "database/creds/readonly" { capabilities = ["read"] }
path "sys/leases/revoke" { capabilities = ["update"] }
"#,
    )
    .await;
    bao.enable_database_postgres(
        PG_URL_FOR_BAO,
        "readonly",
        &[r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#],
        Duration::from_secs(300),
    )
    .await;

    let vault = client(&bao);
    let token = login(&bao, &issuer, &alice()).await;
    let lease = vault.read(&token, "database/creds/readonly").await.unwrap();
    let username = lease.data["username"].as_str().unwrap().to_owned();
    let password = lease.data["password"].as_str().unwrap().to_owned();
    assert!(!password.is_empty());
    assert!(!format!("{lease:?}").contains(&password), "{lease:?}");
    assert!(format!("{lease:?}").contains("password"));
    let lease_id = lease.lease_id.clone().unwrap();
    assert!(lease_id.starts_with("database/creds/readonly/"));
    assert_eq!(lease.lease_duration_seconds, 300);
    assert!(openbao::pg_role_exists(&username));

    vault.revoke_lease(&token, &lease_id).await.unwrap();
    assert!(!openbao::pg_role_exists(&username));

    // Revoking the token revokes the leases it still holds.
    let second = vault.read(&token, "database/creds/readonly").await.unwrap();
    let second_user = second.data["username"].as_str().unwrap().to_owned();
    assert!(openbao::pg_role_exists(&second_user));
    vault.revoke_self(token).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while openbao::pg_role_exists(&second_user) {
        assert!(
            Instant::now() < deadline,
            "{second_user} outlived its token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn ssh_sign_returns_a_certificate_with_the_critical_options() {
    let issuer = JwtIssuer::generate(ISSUER).unwrap();
    let Some((bao, _)) = with_jwt(&issuer, &["ssh"]).await else {
        return;
    };
    bao.policy_write(
        "ssh",
        r#"path "ssh-client/sign/ops" { capabilities = ["update"] }"#,
    )
    .await;
    let ca = bao
        .enable_ssh_ca(
            "ssh-client",
            "ops",
            "alice,deploy",
            Duration::from_secs(600),
        )
        .await;
    assert!(ca.starts_with("ssh-ed25519 "), "{ca}");

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let public_key = std::fs::read_to_string(key.with_extension("pub")).unwrap();

    let vault = client(&bao);
    let token = login(&bao, &issuer, &alice()).await;
    let request = SshSignRequest {
        public_key: public_key.trim().to_owned(),
        valid_principals: "deploy".to_owned(),
        ttl_seconds: 120,
        critical_options: BTreeMap::from([
            ("force-command".to_owned(), "/usr/bin/uptime".to_owned()),
            ("source-address".to_owned(), "127.0.0.1/32".to_owned()),
        ]),
        extensions: BTreeMap::from([("permit-pty".to_owned(), String::new())]),
        key_id: Some("call-42".to_owned()),
        cert_type: "user",
    };
    let cert = vault
        .ssh_sign(&token, "ssh-client", "ops", &request)
        .await
        .unwrap();
    assert!(
        cert.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{cert}"
    );
    let cert_path = dir.path().join("id-cert.pub");
    std::fs::write(&cert_path, format!("{cert}\n")).unwrap();
    let shown = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(&cert_path)
        .output()
        .unwrap();
    assert!(shown.status.success(), "{shown:?}");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("force-command /usr/bin/uptime"), "{text}");
    assert!(text.contains("source-address 127.0.0.1/32"), "{text}");
    assert!(text.contains("Key ID: \"call-42\""), "{text}");
    assert!(text.contains("deploy"), "{text}");
    assert!(text.contains("permit-pty"), "{text}");

    // A principal the role does not allow is refused.
    let wrong = SshSignRequest {
        valid_principals: "root".to_owned(),
        ..request
    };
    let err = vault
        .ssh_sign(&token, "ssh-client", "ops", &wrong)
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::Invalid { .. }), "{err}");
}

#[tokio::test]
async fn an_unreachable_vault_fails_fast_and_closed() {
    // Nothing listens: refused at once.
    let port = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.local_addr().unwrap().port()
    };
    let address = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let vault = VaultClient::new(&address, None, Duration::from_millis(500)).unwrap();
    let token = VaultToken::from_secret(CANARY.to_owned(), String::new(), 0);
    let began = Instant::now();
    let err = vault.kv2_read(&token, "secret", "app").await.unwrap_err();
    assert!(began.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, VaultError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "vault at `http://127.0.0.1:{port}/` is unreachable"
        )),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains(CANARY));

    // Something accepts connections but never answers: the timeout ends the call.
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let address = Url::parse(&format!("http://{}", silent.local_addr().unwrap())).unwrap();
    let vault = VaultClient::new(&address, None, Duration::from_millis(300)).unwrap();
    let began = Instant::now();
    let err = vault.lookup_self(&token).await.unwrap_err();
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(matches!(err, VaultError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("no answer within 300 ms"), "{err}");
    drop(silent);
}

#[tokio::test]
async fn a_vault_that_goes_down_fails_calls_closed() {
    let issuer = JwtIssuer::generate(ISSUER).unwrap();
    let Some((mut bao, _)) = with_jwt(&issuer, &["default"]).await else {
        return;
    };
    let vault = VaultClient::new(
        &Url::parse(&bao.url()).unwrap(),
        None,
        Duration::from_secs(1),
    )
    .unwrap();
    let token = login(&bao, &issuer, &alice()).await;
    vault.lookup_self(&token).await.unwrap();
    bao.stop();
    let err = vault.lookup_self(&token).await.unwrap_err();
    assert!(matches!(err, VaultError::Unreachable { .. }), "{err}");
}

#[tokio::test]
async fn secrets_never_show_in_debug_or_errors_and_refused_paths_never_reach_vault() {
    let issuer = JwtIssuer::generate(ISSUER).unwrap();
    let Some((bao, _)) = with_jwt(&issuer, &["app-read"]).await else {
        return;
    };
    bao.enable_audit_file().await;
    bao.policy_write(
        "app-read",
        r#"path "secret/data/app" { capabilities = ["read"] }"#,
    )
    .await;
    bao.kv_put("secret", "app", json!({ "password": CANARY }))
        .await;
    let vault = client(&bao);
    let token = login(&bao, &issuer, &alice()).await;
    let shown_token = format!("{token:?}");
    assert!(!shown_token.contains(token.expose()), "{shown_token}");

    // A KV v2 secret read as a plain path: the lease's Debug names the keys only.
    let lease = vault.read(&token, "secret/data/app").await.unwrap();
    assert_eq!(lease.data["data"]["password"], CANARY);
    assert!(!format!("{lease:?}").contains(CANARY), "{lease:?}");

    // Errors carry neither the token nor what was sent.
    let errors = [
        vault.login_jwt("jwt", "meho", CANARY).await.unwrap_err(),
        vault
            .ssh_sign(
                &token,
                "secret",
                "nope",
                &SshSignRequest {
                    public_key: CANARY.to_owned(),
                    valid_principals: CANARY.to_owned(),
                    ttl_seconds: 60,
                    critical_options: BTreeMap::new(),
                    extensions: BTreeMap::new(),
                    key_id: None,
                    cert_type: "user",
                },
            )
            .await
            .unwrap_err(),
        vault
            .revoke_lease(&token, "no/such/lease")
            .await
            .unwrap_err(),
        vault
            .kv2_read(&token, "secret", "forbidden")
            .await
            .unwrap_err(),
    ];
    for err in &errors {
        let text = format!("{err} {err:?}");
        assert!(!text.contains(CANARY), "{text}");
        assert!(!text.contains(token.expose()), "{text}");
    }

    // A path with `..` is refused before any request: the audit log never sees it.
    let refused = vault
        .read(&token, "secret/../sys/policies/acl/root")
        .await
        .unwrap_err();
    assert!(matches!(refused, VaultError::Invalid { .. }), "{refused}");
    assert!(bao.audit_log_contains("secret/data/app"));
    assert!(!bao.audit_log_contains("policies/acl/root"));
    assert!(!bao.audit_request_paths().is_empty());
}

#[tokio::test]
async fn login_works_with_any_of_several_trusted_keys_and_with_a_jwks_url() {
    let meho = JwtIssuer::generate(ISSUER).unwrap();
    let idp = JwtIssuer::generate("https://idp.test").unwrap();
    let Some(bao) = Bao::start().await else {
        return;
    };
    bao.enable_jwt(&JwtAuth::pubkeys(
        "jwt",
        &[idp.public_key_pem(), meho.public_key_pem()],
        "meho",
        AUDIENCE,
        &["default"],
    ))
    .await;
    let vault = client(&bao);
    for issuer in [&meho, &idp] {
        let token = login(&bao, issuer, &alice()).await;
        vault.lookup_self(&token).await.unwrap();
    }

    // The same issuer trusted through its JWKS, served over HTTP.
    let served =
        meho_test_support::idp::Issuer::start_with(vec![meho.jwks()["keys"][0].clone()]).await;
    let mut by_jwks = JwtAuth::pubkeys("jwks", &[], "meho", AUDIENCE, &["default"]);
    by_jwks.keys = JwtKeys::JwksUrl(format!("{}/jwks", served.url));
    bao.enable_jwt(&by_jwks).await;
    let jwt = meho
        .issue(&alice(), AUDIENCE, Duration::from_secs(60))
        .unwrap();
    let token = vault.login_jwt("jwks", "meho", &jwt).await.unwrap();
    assert_eq!(
        vault.lookup_self(&token).await.unwrap()["meta"]["tenant"],
        "acme"
    );
    let foreign = idp
        .issue(&alice(), AUDIENCE, Duration::from_secs(60))
        .unwrap();
    let err = vault.login_jwt("jwks", "meho", &foreign).await.unwrap_err();
    assert!(matches!(err, VaultError::Denied { .. }), "{err}");
}

#[tokio::test]
async fn tls_trusts_only_the_given_ca() {
    let Some(bao) = Bao::start_tls().await else {
        return;
    };
    let address = Url::parse(&bao.url()).unwrap();
    assert_eq!(address.scheme(), "https");
    let ca = bao.ca_pem().unwrap();
    let root = VaultToken::from_secret(bao.root_token().to_owned(), String::new(), 0);
    let vault = VaultClient::new(&address, Some(ca.as_bytes()), Duration::from_secs(10)).unwrap();
    assert_eq!(vault.lookup_self(&root).await.unwrap()["id"], "root");

    // Another CA (or none: the platform's roots) does not vouch for this server.
    let stranger = stranger_ca();
    let vault =
        VaultClient::new(&address, Some(stranger.as_bytes()), Duration::from_secs(10)).unwrap();
    let err = vault.lookup_self(&root).await.unwrap_err();
    assert!(matches!(err, VaultError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");

    let err = VaultClient::new(&address, Some(b"not pem"), Duration::from_secs(10)).unwrap_err();
    assert!(matches!(err, VaultError::Invalid { .. }), "{err}");
}

/// A throw-away self-signed CA certificate (PEM).
fn stranger_ca() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

#[tokio::test]
async fn a_real_sshd_accepts_the_certificate_and_enforces_its_options() {
    use meho_test_support::sshd::{Sshd, SshdOptions, ensure_user, require_sshd};
    if !require_sshd() {
        return;
    }
    let Some(bao) = Bao::start().await else {
        return;
    };
    let ca = bao
        .enable_ssh_ca("ssh", "ops", "mehotest", Duration::from_secs(300))
        .await;
    ensure_user("mehotest");
    let sshd = Sshd::start(SshdOptions::new([ca]));
    let root = VaultToken::from_secret(bao.root_token().to_owned(), String::new(), 0);
    let vault = client(&bao);
    let dir = tempfile::tempdir().unwrap();

    let ssh = |source: &str, name: &str| {
        let key = dir.path().join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let request = SshSignRequest {
            public_key: std::fs::read_to_string(key.with_extension("pub"))
                .unwrap()
                .trim()
                .to_owned(),
            valid_principals: "mehotest".to_owned(),
            ttl_seconds: 60,
            critical_options: BTreeMap::from([
                (
                    "force-command".to_owned(),
                    "echo forced-by-vault".to_owned(),
                ),
                ("source-address".to_owned(), source.to_owned()),
            ]),
            extensions: BTreeMap::new(),
            key_id: Some(name.to_owned()),
            cert_type: "user",
        };
        (key, request)
    };

    for (source, name, allowed) in [
        ("127.0.0.1/32", "near", true),
        ("192.0.2.1/32", "far", false),
    ] {
        let (key, request) = ssh(source, name);
        let cert = vault.ssh_sign(&root, "ssh", "ops", &request).await.unwrap();
        let cert_path = dir.path().join(format!("{name}-cert.pub"));
        std::fs::write(&cert_path, format!("{cert}\n")).unwrap();
        let out = Command::new("ssh")
            .args(["-F", "none", "-i"])
            .arg(&key)
            .arg("-o")
            .arg(format!("CertificateFile={}", cert_path.display()))
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=10",
                "-p",
            ])
            .arg(sshd.port().to_string())
            .arg(format!("mehotest@{}", sshd.addr().ip()))
            .arg("id")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if allowed {
            assert!(out.status.success(), "{out:?}\n{}", sshd.log());
            assert_eq!(stdout.trim(), "forced-by-vault");
        } else {
            assert!(!out.status.success(), "{out:?}");
            assert!(!stdout.contains("forced-by-vault"));
        }
    }
}
