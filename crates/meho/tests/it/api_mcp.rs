//! The REST/OpenAPI connector end to end: `meho serve` with `[vault]` (OpenBao's JWT auth
//! trusting the test IdP's keys for callers with an OIDC token, and meho's own signing key on a
//! second mount), `[apis.bao]` (OpenBao's own API, its spec fetched from the API, a token sealed
//! in meho's store) and `[apis.prom]` (Prometheus with the spec this repository ships, a bearer
//! token read from Vault KV with the caller's Vault token), driven by the official Python MCP
//! SDK over Streamable HTTP with IdP tokens.
//!
//! It proves, on real peers: search and a large read reduced to a summary that `result_query`
//! answers; a write held for a human, previewed without the stored token, approved by another
//! identity with the CLI, collected once; a destructive call denied by policy that never reaches
//! OpenBao (its own audit log says so); the secret canaries in no MCP answer, server log,
//! audit record or feed event; and Vault logins as the caller: with its own OIDC token over
//! HTTP, with a JWT meho signs (its key pre-created, served at `/.well-known/jwks.json`) for a
//! stdio caller.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meho_store::secrets::SecretKey;
use meho_test_support::openbao::{Bao, JwtAuth, JwtKeys};
use meho_test_support::prometheus::Prometheus;
use meho_vault::JwtIssuer;
use reqwest::Method;
use serde_json::{Value, json};

use crate::mcp::{
    Lab, call_ok, call_refused, py_http, require_curl, require_python, serve_on_a_port,
};
use crate::peers::{Idp, python_client};
use crate::{stderr_of, stdout_of};

/// The token meho stores for OpenBao's API (its id in OpenBao): it must never show anywhere but
/// in the request to OpenBao.
const TOKEN_CANARY: &str = "canary-mcp-stored-token-5d2e";
/// The Vault KV secret's canary (Prometheus's bearer token, read per call with the caller's
/// Vault token).
const KV_CANARY: &str = "kv-canary-mcp-prom-token-8a17";
/// The summary's budget (`[reduction] answer_max_bytes`, default).
const ANSWER_MAX_BYTES: usize = 4096;

/// The policy of the Vault tokens callers get (by OIDC token or meho's JWT).
const CALLER_POLICY: &str = r#"
path "secret/data/*" { capabilities = ["read"] }
path "sys/leases/revoke" { capabilities = ["update"] }
"#;

/// The policy of the token meho stores to call OpenBao's own API as `bao`: enough to read its
/// spec, write KV secrets and delete policies (which meho's rules must stop).
const API_POLICY: &str = r#"
path "sys/internal/specs/openapi" { capabilities = ["read"] }
path "sys/health" { capabilities = ["read"] }
path "secret/data/*" { capabilities = ["create", "update", "read"] }
path "sys/policy/*" { capabilities = ["read", "delete", "update"] }
path "sys/policies/acl/*" { capabilities = ["read", "delete", "update"] }
"#;

/// The Prometheus spec the repository ships.
fn prometheus_spec() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/prometheus/openapi.yaml")
}

/// The config: `[auth]` on the IdP, tenancy, the secrets key, `[vault]` with the IdP mount
/// `jwt` (role `agents`) for OIDC callers and `meho-jwt` (role `meho`) for meho's own JWTs, and
/// the two APIs of tenant `a` (group `ops`).
fn config(
    lab: &Lab,
    idp: &Idp,
    bao: &Bao,
    prom: &Prometheus,
    key_file: &Path,
    signing_key: &Path,
    resource: &str,
) -> String {
    format!(
        r#"{ca}
[auth]
issuer = "{issuer}"
audience = "{resource}"
groups_claim = "groups"

[tenancy]
enabled = true

[mcp.stdio]
principal = "local-agent"
tenant = "a"
groups = ["ops"]

[secrets]
key_file = "{key_file}"

[vault]
address = "{bao}"
auth_mount = "jwt"
role = "agents"
own_jwt_mount = "meho-jwt"
own_jwt_role = "meho"
audience = "vault"
signing_key = "{signing_key}"
timeout_seconds = 5

[apis.bao]
base_url = "{bao}/v1"
spec = "api:/v1/sys/internal/specs/openapi"
tenant = "a"
groups = ["ops"]
auth = {{ kind = "header", header = "X-Vault-Token", secret = "stored:bao-token" }}
rules = [
  {{ pattern = "^(GET|HEAD) ", effect = "allow" }},
  {{ pattern = "^DELETE /sys/policy/", effect = "deny" }},
  {{ pattern = "^(POST|PUT|PATCH|DELETE) ", effect = "require_approval" }},
]

[apis.prom]
base_url = "{prom}"
spec = "{spec}"
tenant = "a"
groups = ["ops"]
auth = {{ kind = "bearer", secret = "vault:secret/prom#token" }}
"#,
        ca = lab.ca_section(),
        issuer = idp.issuer,
        key_file = key_file.display(),
        bao = bao.url(),
        signing_key = signing_key.display(),
        prom = prom.url(),
        spec = prometheus_spec().display(),
    )
}

/// `curl` a JSON endpoint of meho with a bearer token: the status and the raw body.
fn get(url: &str, token: &str) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("curl {url}: {text} {}", stderr_of(&output)));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// `GET /api/v1/feed?after=0` read with `curl -N` into a file while the test runs; dropping it
/// ends that curl (by its PID).
struct FeedCapture {
    curl: Child,
    file: std::path::PathBuf,
}

impl Drop for FeedCapture {
    fn drop(&mut self) {
        if matches!(self.curl.try_wait(), Ok(None)) {
            let _ = self.curl.kill();
        }
        let _ = self.curl.wait();
    }
}

impl FeedCapture {
    fn open(base: &str, token: &str, file: std::path::PathBuf) -> FeedCapture {
        let curl = Command::new("curl")
            .args(["-sS", "-N", "--max-time", "600"])
            .arg("-H")
            .arg(format!("Authorization: Bearer {token}"))
            .arg(format!("{base}/api/v1/feed?after=0"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&file).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        FeedCapture { curl, file }
    }

    /// Everything streamed so far.
    fn text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.file) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Waits (up to 30 s) until the stream holds `needle`; the text so far.
    fn until(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "the feed never carried `{needle}`: {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Panics when `text` holds either canary.
fn no_canary(what: &str, text: &str) {
    for canary in [TOKEN_CANARY, KV_CANARY] {
        assert!(
            !text.contains(canary),
            "{what} holds a secret ({canary}): {text}"
        );
    }
}

/// Seals `value` as `stored:<name>` of `tenant` in the store `meho serve` will open in `state`,
/// as an operator does: `meho secrets set`, the value on stdin, the key from `key_file`.
fn store_secret(state: &Path, key_file: &Path, tenant: &str, name: &str, value: &str) {
    use std::io::Write as _;
    std::fs::create_dir_all(state).unwrap();
    let config = state.join("secrets-only.toml");
    std::fs::write(
        &config,
        format!("[secrets]\nkey_file = \"{}\"\n", key_file.display()),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_meho"))
        .args(["secrets", "set", name, "--tenant", tenant, "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(state)
        .env_remove("MEHO_SECRETS_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{value}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "meho secrets set: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(value));
}

#[test]
fn python_sdk_searches_reads_reduced_holds_a_write_and_never_sees_a_secret_on_real_openbao_and_prometheus()
 {
    if !require_python() || !require_curl() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(bao) = runtime.block_on(Bao::start()) else {
        return;
    };
    let Some(prom) = runtime.block_on(Prometheus::start()) else {
        return;
    };
    let Some(idp) = Idp::start("http://127.0.0.1:8080/mcp") else {
        return;
    };
    let lab = Lab::without_sshd();
    // meho's own JWT signing key, created before meho starts so OpenBao can trust its public key.
    let signing_key = lab.work.path().join("vault-jwt.pem");
    let issuer = JwtIssuer::load_or_create(&signing_key, "meho").unwrap();
    let jwks_uri = idp.discovery()["jwks_uri"].as_str().unwrap().to_owned();
    // The IdP mount's role is rewritten once meho's port (its tokens' audience) is known.
    let idp_auth = |audience: &str| JwtAuth {
        keys: JwtKeys::JwksUrl(jwks_uri.clone()),
        ..JwtAuth::pubkeys("jwt", &[], "agents", audience, &["meho-caller"])
    };
    runtime.block_on(async {
        bao.enable_audit_file().await;
        bao.policy_write("meho-caller", CALLER_POLICY).await;
        bao.policy_write("meho-api", API_POLICY).await;
        bao.enable_jwt(&JwtAuth::pubkeys(
            "meho-jwt",
            &[issuer.public_key_pem()],
            "meho",
            "vault",
            &["meho-caller"],
        ))
        .await;
        bao.enable_jwt(&idp_auth("http://127.0.0.1:1/mcp")).await;
        bao.kv_put("secret", "prom", json!({ "token": KV_CANARY }))
            .await;
        // The API token, with a fixed id: the canary.
        bao.api(
            Method::POST,
            "auth/token/create",
            Some(json!({ "id": TOKEN_CANARY, "policies": ["meho-api"], "ttl": "1h" })),
        )
        .await;
        bao.policy_write("doomed", r#"path "x/*" { capabilities = ["read"] }"#)
            .await;
        prom.wait_for_scrape().await;
    });
    // The stored API token, sealed under a key in a 0600 file.
    let key = SecretKey::generate().unwrap();
    let key_file = lab.work.write("secrets.key", &key.to_base64());
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    store_secret(&lab.state(), &key_file, "a", "bao-token", TOKEN_CANARY);

    let served = serve_on_a_port(
        &lab,
        |resource| config(&lab, &idp, &bao, &prom, &key_file, &signing_key, resource),
        &[],
    );
    let url = served.url.as_str();
    runtime.block_on(bao.jwt_role(&idp_auth(url)));
    let agent = idp.token("tenant-a-agent", url, "mcp:tools");
    let admin = idp.token("tenant-a-admin", url, "mcp:tools");
    let feed = FeedCapture::open(&served.base, &admin, lab.work.path().join("feed.txt"));
    // Every MCP answer, for the canary scan at the end.
    let mut answers: Vec<String> = Vec::new();

    // meho serves the public half of the key OpenBao trusts for its own JWTs.
    let (status, jwks) = get(&format!("{}/.well-known/jwks.json", served.base), &admin);
    assert_eq!(status, 200, "{jwks}");
    assert_eq!(
        serde_json::from_str::<Value>(&jwks).unwrap(),
        issuer.jwks(),
        "{jwks}"
    );

    // The tools.
    let (code, out) = py_http(url, Some(&agent), &["--list-tools"]);
    assert_eq!(code, 0, "{out}\nserve:\n{}", served.daemon.log_text());
    let tool = |name: &str| {
        out["tools_full"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {out}"))
            .clone()
    };
    let search_tool = tool("api_search_operations");
    assert_eq!(
        search_tool["annotations"]["readOnlyHint"], true,
        "{search_tool}"
    );
    let call_tool = tool("api_call");
    assert!(call_tool["outputSchema"].is_object(), "{call_tool}");
    tool("result_query");
    tool("approval_status");

    // 1. Search, then a large read: a summary with a handle, which result_query answers.
    let found = call_ok(
        url,
        &agent,
        "api_search_operations",
        &json!({ "api": "prom", "query": "label values", "limit": 3 }),
    );
    answers.push(found.to_string());
    let operation = found["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operation"] == "listLabelValues")
        .unwrap_or_else(|| panic!("no listLabelValues: {found}"));
    assert_eq!(operation["tier"], "read", "{found}");
    assert_eq!(operation["needs_approval"], false, "{found}");
    assert_eq!(operation["denied"], false, "{found}");
    let found_bao = call_ok(
        url,
        &agent,
        "api_search_operations",
        &json!({ "api": "bao", "query": "health", "limit": 3 }),
    );
    answers.push(found_bao.to_string());
    assert_eq!(
        found_bao["operations"][0]["path"], "/sys/health",
        "{found_bao}"
    );
    let names = runtime.block_on(prom.query("count({__name__=~\".+\"}) by (__name__)"));
    let metric_names = names.as_array().unwrap().len();
    // `call_ok` asserts exit 0: the SDK validated the structuredContent against the tool's
    // outputSchema (a mismatch is a client-side failure, exit 3).
    let summary = call_ok(
        url,
        &agent,
        "api_call",
        &json!({ "api": "prom", "operation": "listLabelValues", "params": { "label_name": "__name__" } }),
    );
    answers.push(summary.to_string());
    assert_eq!(summary["reduced"], true, "{summary}");
    let rows = summary["rows"].as_u64().unwrap();
    assert!(
        rows as usize >= metric_names && rows > 50,
        "{rows} rows, {metric_names} names: {summary}"
    );
    let size = serde_json::to_vec(&summary).unwrap().len();
    assert!(size <= ANSWER_MAX_BYTES, "{size} bytes: {summary}");
    let handle = summary["handle"].as_str().unwrap().to_owned();
    assert!(handle.starts_with("res-"), "{summary}");
    assert_eq!(summary["how_to_query"]["tool"], "result_query", "{summary}");
    let column = summary["columns"][0]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no columns: {summary}"))
        .to_owned();
    let answer = call_ok(
        url,
        &agent,
        "result_query",
        &json!({
            "handle": handle,
            "sql": format!("SELECT count(*), sum({column} = 'up') FROM result"),
        }),
    );
    answers.push(answer.to_string());
    assert_eq!(answer["rows"], json!([[rows, 1]]), "{answer}");
    let answer = call_ok(
        url,
        &agent,
        "result_query",
        &json!({
            "handle": handle,
            "sql": format!("SELECT {column} FROM result WHERE {column} LIKE 'prometheus_build_info%'"),
        }),
    );
    answers.push(answer.to_string());
    assert_eq!(
        answer["rows"],
        json!([["prometheus_build_info"]]),
        "{answer}"
    );
    // The read logged in to OpenBao with the caller's own OIDC token, and that token was revoked.
    let credentials = lab.audit(&["--tenant", "a", "--kind", "credential"]);
    let credential = credentials
        .iter()
        .find(|r| r["target"] == "prom")
        .unwrap_or_else(|| panic!("no credential record for prom: {credentials:?}"));
    assert_eq!(
        credential["body"]["credential"]["identity"], "oidc",
        "{credential}"
    );
    assert_eq!(credential["principal"], "tenant-a-agent", "{credential}");
    let accessor = credential["body"]["credential"]["accessor"]
        .as_str()
        .unwrap()
        .to_owned();
    // OpenBao agrees: the login was on the IdP's mount, never with a JWT meho signed.
    let paths = bao.audit_request_paths();
    assert!(
        paths.contains(&"auth/jwt/login".to_owned()),
        "no login on the IdP's mount: {paths:?}"
    );
    assert!(
        !paths.contains(&"auth/meho-jwt/login".to_owned()),
        "{paths:?}"
    );
    let (alive, _) = runtime.block_on(bao.api_status(
        Method::POST,
        "auth/token/lookup-accessor",
        Some(json!({ "accessor": accessor })),
    ));
    assert_ne!(
        alive, 200,
        "the call's Vault token {accessor} was not revoked"
    );

    // 2. A write is held; its preview shows the resolved request without the stored token.
    let write = json!({
        "api": "bao",
        "operation": "POST /secret/data/{path}",
        "params": { "path": "app", "body": { "data": { "colour": "green" } } },
    });
    let pending = call_ok(url, &agent, "api_call", &write);
    answers.push(pending.to_string());
    assert_eq!(pending["status"], "pending_approval", "{pending}");
    let id = pending["approval_id"].as_str().unwrap().to_owned();
    assert!(
        pending["preview"]
            .as_str()
            .is_some_and(|p| p.contains("/v1/secret/data/app")),
        "{pending}"
    );
    assert!(id.starts_with("apr-"), "{pending}");
    assert!(
        !bao.audit_request_paths()
            .contains(&"secret/data/app".to_owned()),
        "a held write reached OpenBao"
    );
    let (status, shown) = get(&format!("{}/api/v1/approvals/{id}", served.base), &admin);
    assert_eq!(status, 200, "{shown}");
    no_canary("the approval", &shown);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["status"], "pending", "{shown}");
    assert_eq!(shown["requester"], "tenant-a-agent", "{shown}");
    assert_eq!(shown["target"], "bao", "{shown}");
    let preview = shown["preview"].as_str().unwrap_or_default();
    assert!(
        preview.starts_with(&format!("POST {}/v1/secret/data/app", bao.url())),
        "{shown}"
    );
    assert!(preview.contains("\"colour\": \"green\""), "{preview}");
    assert!(
        preview.contains("X-Vault-Token") && preview.contains("stored:bao-token"),
        "{preview}"
    );
    // The requester cannot approve its own call; another identity does, with the CLI.
    let cli = |token: &str, args: &[&str]| {
        lab.work
            .meho()
            .env("MEHO_SERVER", &served.base)
            .env("MEHO_TOKEN", token)
            .args(args)
            .output()
            .unwrap()
    };
    let own = cli(&agent, &["approvals", "approve", &id, "--reason", "mine"]);
    assert!(!own.status.success(), "{}", stdout_of(&own));
    assert!(stderr_of(&own).contains("403"), "{}", stderr_of(&own));
    let shown_cli = cli(&admin, &["approvals", "show", &id]);
    assert!(shown_cli.status.success(), "{}", stderr_of(&shown_cli));
    let text = stdout_of(&shown_cli);
    assert!(text.contains("secret/data/app"), "{text}");
    no_canary("meho approvals show", &text);
    let approved = cli(
        &admin,
        &[
            "approvals",
            "approve",
            &id,
            "--reason",
            "CHG-7 app colour",
            "--format",
            "json",
        ],
    );
    assert!(approved.status.success(), "{}", stderr_of(&approved));
    let approved: Value = serde_json::from_str(&stdout_of(&approved)).unwrap();
    assert_eq!(approved["status"], "approved", "{approved}");
    assert_eq!(approved["decided_by"], "tenant-a-admin", "{approved}");
    // The agent collects it: it runs once.
    let ran = call_ok(
        url,
        &agent,
        "approval_status",
        &json!({ "approval_id": id, "wait_seconds": 10 }),
    );
    answers.push(ran.to_string());
    assert_eq!(ran["status"], "executed", "{ran}");
    assert_eq!(ran["result"]["status"], 200, "{ran}");
    let (code, text) = call_refused(
        url,
        &agent,
        "approval_status",
        &json!({ "approval_id": id, "wait_seconds": 0 }),
    );
    answers.push(text.clone());
    assert_eq!(code, "approval_consumed", "{text}");
    let writes = bao
        .audit_request_paths()
        .iter()
        .filter(|p| *p == "secret/data/app")
        .count();
    assert_eq!(
        writes, 1,
        "the approved write reached OpenBao {writes} times"
    );
    let live = runtime.block_on(bao.api(Method::GET, "secret/data/app", None));
    assert_eq!(live["data"]["data"]["colour"], "green", "{live}");

    // 3. A destructive call is denied by policy and never reaches OpenBao.
    let before = bao.audit_request_paths().len();
    let (code, text) = call_refused(
        url,
        &agent,
        "api_call",
        &json!({ "api": "bao", "operation": "DELETE /sys/policy/{name}", "params": { "name": "doomed" } }),
    );
    answers.push(text.clone());
    assert_eq!(code, "denied", "{text}");
    let after = bao.audit_request_paths();
    assert!(
        !after.iter().any(|p| p.contains("sys/policy/doomed")),
        "a denied call reached OpenBao: {:?}",
        &after[before..]
    );
    let policy = runtime.block_on(bao.api(Method::GET, "sys/policy/doomed", None));
    assert_eq!(policy["name"], "doomed", "{policy}");
    let denials = lab.audit(&["--tenant", "a", "--kind", "denial"]);
    assert!(
        denials
            .iter()
            .any(|r| r["target"] == "bao" && r.to_string().contains("deny:bao/rules[1]")),
        "{denials:?}"
    );

    // 4. The canaries: in no MCP answer, server log, audit record or feed event.
    for answer in &answers {
        no_canary("an MCP answer", answer);
    }
    // The feed carried this run's records (up to the denial) before it is read.
    let streamed = feed.until("deny:bao/rules[1]");
    no_canary("the live feed", &streamed);
    assert!(streamed.contains("api_call"), "{streamed}");
    drop(feed);
    let (status, records) = get(&format!("{}/api/v1/audit?limit=1000", served.base), &admin);
    assert_eq!(status, 200, "{records}");
    assert!(records.contains("api_call"), "{records}");
    no_canary("the REST audit endpoint", &records);
    let export = lab
        .work
        .meho()
        .args(["audit", "export", "--data-dir"])
        .arg(lab.state())
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", stderr_of(&export));
    let exported = stdout_of(&export);
    assert!(exported.contains("api_call"), "{exported}");
    assert!(
        exported.contains("/secret/data/"),
        "the export has the write: {exported}"
    );
    no_canary("meho audit export", &exported);
    assert!(
        !exported.contains("green"),
        "the write's body reached the audit log: {exported}"
    );
    let log = format!(
        "{}\n{}",
        served.daemon.lines.join("\n"),
        served.daemon.log_text()
    );
    served.stop();
    no_canary("the server's output", &log);

    // 5. A caller without an identity provider's token (`meho mcp` on stdio) logs in to OpenBao
    // with a JWT meho signs with its own key, on the mount that trusts only that key.
    let config_file = lab.work.path().join("meho.toml");
    let state = lab.state();
    let arguments = json!({ "api": "prom", "operation": "getBuildInfo" }).to_string();
    let (code, out) = python_client(&[
        "stdio",
        "--call",
        "api_call",
        "--args",
        &arguments,
        "--",
        env!("CARGO_BIN_EXE_meho"),
        "mcp",
        "--config",
        config_file.to_str().unwrap(),
        "--data-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["call"]["is_error"], false, "{out}");
    let built = &out["call"]["structured_content"];
    assert_eq!(built["status"], 200, "{out}");
    assert_eq!(built["body"]["status"], "success", "{out}");
    no_canary("a stdio MCP answer", &out.to_string());
    let credentials = lab.audit(&[
        "--tenant",
        "a",
        "--kind",
        "credential",
        "--principal",
        "local-agent",
    ]);
    assert_eq!(credentials.len(), 1, "{credentials:?}");
    assert_eq!(
        credentials[0]["body"]["credential"]["identity"], "meho_jwt",
        "{credentials:?}"
    );
    assert!(
        bao.audit_request_paths()
            .contains(&"auth/meho-jwt/login".to_owned()),
        "no login on meho's own mount: {:?}",
        bao.audit_request_paths()
    );
    let export = lab
        .work
        .meho()
        .args(["audit", "export", "--data-dir"])
        .arg(lab.state())
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", stderr_of(&export));
    no_canary("meho audit export", &stdout_of(&export));
    lab.assert_audit_verifies();
}
