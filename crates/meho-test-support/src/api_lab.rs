//! The REST lab the meho-http tests and bench share: a real OpenBao (the API under test, and the Vault meho federates with), a real
//! Prometheus (a second API, with the spec this repository ships), and per test a store, an
//! audit log, the human in the loop and the gateway's pipeline over the REST connector.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::openbao::{Bao, JwtAuth};
use crate::prometheus::Prometheus;
use meho_audit::{AuditLog, StoredRecord};
use meho_config::Config;
use meho_gateway::govern::{Actor, Origin};
use meho_gateway::{Answer, Caller, Gateway, Governance, Holds, ToolError};
use meho_http::{Federation, HttpConnector, Sources};
use meho_store::secrets::{SealedSecrets, SecretKey};
use meho_vault::JwtIssuer;
use reqwest::Method;
use serde_json::{Value, json};

/// The stored API token's canary: it must never show anywhere but in the request to OpenBao.
pub const TOKEN_CANARY: &str = "canary-stored-token-0c4f";
/// The Vault KV secret's canary (Prometheus's bearer token).
pub const KV_CANARY: &str = "kv-canary-prom-token-91d2";

/// The Prometheus spec the repository ships.
pub fn prometheus_spec() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/prometheus/openapi.yaml")
}

/// The policy of the Vault tokens meho gets for callers.
const CALLER_POLICY: &str = r#"
path "secret/data/*" { capabilities = ["read"] }
path "database/creds/*" { capabilities = ["read"] }
path "sys/leases/revoke" { capabilities = ["update"] }
"#;

/// The policy of the token meho stores to call OpenBao's own API as `bao`.
const API_POLICY: &str = r#"
path "sys/health" { capabilities = ["read"] }
path "secret/data/*" { capabilities = ["create", "update", "read"] }
path "sys/policy/*" { capabilities = ["read", "delete", "update"] }
path "sys/policies/acl/*" { capabilities = ["read", "delete", "update"] }
"#;

/// The peers of one test.
#[derive(Debug)]
pub struct Peers {
    pub bao: Bao,
    pub prometheus: Prometheus,
    /// The API token meho stores for `bao` (the real token; [`TOKEN_CANARY`] is its id).
    pub api_token: String,
}

impl Peers {
    /// OpenBao with: a file audit device, KV v2 secrets, the JWT auth method trusting `issuer`,
    /// the database engine on the local PostgreSQL; a token for its own API; Prometheus.
    /// `None` when a peer is missing outside CI (the harness said so).
    pub async fn start(issuer: &JwtIssuer) -> Option<Peers> {
        let bao = Bao::start().await?;
        let prometheus = Prometheus::start().await?;
        bao.enable_audit_file().await;
        bao.policy_write("meho-caller", CALLER_POLICY).await;
        bao.policy_write("meho-api", API_POLICY).await;
        bao.enable_jwt(&JwtAuth::pubkeys(
            "jwt",
            &[issuer.public_key_pem()],
            "meho",
            "vault",
            &["meho-caller"],
        ))
        .await;
        bao.kv_put("secret", "prom", json!({ "token": KV_CANARY }))
            .await;
        // A token for OpenBao's own API, with a fixed id: the canary.
        bao.api(
            Method::POST,
            "auth/token/create",
            Some(json!({ "id": TOKEN_CANARY, "policies": ["meho-api"], "ttl": "1h" })),
        )
        .await;
        if crate::openbao::require_postgres() {
            bao.enable_database_postgres(
                "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
                "ro",
                &[
                    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
                ],
                Duration::from_secs(300),
            )
            .await;
        }
        Some(Peers {
            bao,
            prometheus,
            api_token: TOKEN_CANARY.to_owned(),
        })
    }
}

/// The config of a lab: `bao` (OpenBao's API with its own spec, a stored token), `prom`
/// (Prometheus with the shipped spec, a bearer token from Vault KV), `promdb` (Prometheus with
/// a dynamic database credential), and `[vault]`; `extra` is appended.
pub fn config_toml(peers: &Peers, dir: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
[vault]
address = "{bao}"
auth_mount = "jwt"
role = "meho"
audience = "vault"
signing_key = "{key}"
timeout_seconds = 5

[apis.bao]
base_url = "{bao}/v1"
spec = "api:/v1/sys/internal/specs/openapi"
auth = {{ kind = "header", header = "X-Vault-Token", secret = "stored:bao-token" }}
rules = [
  {{ pattern = "^(GET|HEAD) ", effect = "allow" }},
  {{ pattern = "^DELETE /sys/policy/", effect = "deny" }},
  {{ pattern = "^(POST|PUT|PATCH|DELETE) ", effect = "require_approval" }},
]

[apis.prom]
base_url = "{prom}"
spec = "{spec}"
auth = {{ kind = "bearer", secret = "vault:secret/prom#token" }}

[apis.promdb]
base_url = "{prom}"
spec = "{spec}"
auth = {{ kind = "vault_dynamic", path = "database/creds/ro" }}
{extra}
"#,
        bao = peers.bao.url(),
        prom = peers.prometheus.url(),
        spec = prometheus_spec().display(),
        key = dir.join("vault-jwt.pem").display(),
    )
}

/// The pipeline over the REST connector for one test.
#[derive(Debug)]
pub struct ApiLab {
    pub dir: tempfile::TempDir,
    pub audit: Arc<AuditLog>,
    pub governance: Arc<Governance>,
    pub gateway: Gateway,
    pub connector: Arc<HttpConnector>,
    pub config: Config,
}

impl ApiLab {
    /// A lab over `toml` in `dir`, with the stored API token sealed under a fresh key.
    pub async fn new(dir: tempfile::TempDir, toml: &str, api_token: &str) -> ApiLab {
        let config = Config::parse(toml, None).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let store = crate::sqlite_store(dir.path()).await.unwrap();
        let audit = crate::audit_log(&store).await.unwrap();
        let sealed = SealedSecrets::new(&store, Some(SecretKey::generate().unwrap()));
        sealed
            .put("default", "bao-token", api_token.as_bytes())
            .await
            .unwrap();
        let federation = config.vault.as_ref().map(|vault| {
            let issuer =
                JwtIssuer::load_or_create(&vault.signing_key_file(dir.path()), &vault.issuer)
                    .unwrap();
            Arc::new(Federation::new(vault.clone(), issuer).unwrap())
        });
        let governance = Arc::new(
            Governance::new(
                &store,
                meho_approvals::ApprovalPolicy::default(),
                audit.clone(),
                "http://127.0.0.1",
                config.hosts.clone(),
            )
            .with_apis(
                config
                    .apis
                    .values()
                    .map(|a| (a.name.clone(), a.tenant.clone())),
            ),
        );
        let connector = Arc::new(
            HttpConnector::start(
                config.apis.values().cloned(),
                Sources {
                    federation,
                    sealed: Some(Arc::new(sealed)),
                },
                audit.clone(),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .with_store(governance.approvals.clone(), governance.grants.clone()),
        );
        let gateway = Gateway::builder(governance.clone())
            .connector(connector.clone())
            .holds(Holds::Pending)
            .build()
            .unwrap();
        ApiLab {
            dir,
            audit,
            governance,
            gateway,
            connector,
            config,
        }
    }

    /// A call as `who`.
    pub async fn call(&self, who: &Caller, tool: &str, args: Value) -> Result<Value, ToolError> {
        self.gateway.call(who, tool, args).await
    }

    /// A call that may be held.
    pub async fn dispatch(
        &self,
        who: &Caller,
        tool: &str,
        args: Value,
    ) -> Result<Answer, ToolError> {
        self.gateway.dispatch(who, tool, args).await
    }

    /// Every record, oldest first.
    pub async fn records(&self) -> Vec<StoredRecord> {
        crate::records(&self.audit).await.unwrap()
    }

    /// Every record's JSON, for canary scans.
    pub async fn all_records_text(&self) -> String {
        self.records()
            .await
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The credential records, oldest first.
    pub async fn credential_records(&self) -> Vec<Value> {
        self.records()
            .await
            .iter()
            .filter(|r| r.kind.as_str() == "credential")
            .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
            .collect()
    }

    /// Approves `id` as a tenant admin other than the requester.
    pub async fn approve(&self, id: &str) {
        self.governance
            .decide(&boss(), id, true, "looks right", None)
            .await
            .unwrap();
    }
}

/// The agent every test calls as (no identity provider token: meho signs its JWT).
pub fn agent() -> Caller {
    Caller::agent("agent-1")
}

/// Someone who may approve.
pub fn boss() -> Actor {
    Actor {
        principal: "boss".into(),
        tenant: "default".into(),
        role: meho_config::Role::TenantAdmin,
        origin: Origin::default(),
    }
}

/// The JWT issuer the lab's meho will load from its signing key file: created first, so
/// OpenBao can trust its public key before meho starts.
pub fn issuer_in(dir: &std::path::Path) -> JwtIssuer {
    JwtIssuer::load_or_create(&dir.join("vault-jwt.pem"), "meho").unwrap()
}

/// Whether OpenBao knows a token by its accessor.
pub async fn accessor_alive(bao: &Bao, accessor: &str) -> bool {
    let (status, _) = bao
        .api_status(
            Method::POST,
            "auth/token/lookup-accessor",
            Some(json!({ "accessor": accessor })),
        )
        .await;
    status == 200
}
