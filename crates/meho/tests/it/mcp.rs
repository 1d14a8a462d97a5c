//! MCP end to end with real peers and no fakes: the official Python SDK and the MCP Inspector CLI
//! as clients, `meho mcp` (stdio) and `meho serve` (`/mcp`, Streamable HTTP) as real processes, an
//! OpenID provider (npm `oidc-provider`) issuing the bearer tokens, and a real OpenSSH sshd the
//! `ssh_*` tools run commands on. Audit records are read back with `meho audit query`, and the
//! live feed with `curl -N`.
//!
//! Every test that needs a peer checks for it first ([`peers::require`], [`require_sshd`]): without
//! it the test prints a `SKIPPED:` line, and under `CI=true` it fails.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::peers::{self, Idp, python_client};
use crate::support::{Daemon, Sshd, ca_init, free_port, meho_ca_pub, os, require_sshd};
use crate::{HOST_KEY, Workdir, stderr_of, stdout_of};

/// The tool contract, sorted: what a caller with targets sees.
const CONTRACT_TOOLS: [&str; 10] = [
    "announce",
    "approval_status",
    "list_targets",
    "result_query",
    "ssh_execute",
    "ssh_get_file",
    "ssh_put_file",
    "ssh_session_close",
    "ssh_session_exec",
    "ssh_session_open",
];

/// Hang guard for reading the feed; the test ends the stream itself once it saw what it waits for.
const FEED_LIMIT: Duration = Duration::from_secs(60);

const MEHO: &str = env!("CARGO_BIN_EXE_meho");

pub(crate) fn require_python() -> bool {
    peers::require(
        "the MCP Python SDK peer (tests/peers/python/.venv; scripts/test installs it)",
        peers::python_available(),
    )
}

fn require_inspector() -> bool {
    peers::require(
        "the MCP Inspector CLI peer (tests/peers/inspector; scripts/test installs it)",
        peers::inspector_available(),
    )
}

pub(crate) fn require_curl() -> bool {
    peers::require(
        "curl (scripts/test installs it)",
        Command::new("curl")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    )
}

// --- the lab: a CA, an sshd that trusts it, configs ------------------------------------------

/// A work directory with a CA (`meho ca init`) and, when asked for, a real sshd trusting it.
pub(crate) struct Lab {
    pub(crate) work: Workdir,
    ca: PathBuf,
    sshd: Option<Sshd>,
}

impl Lab {
    /// With an sshd.
    pub(crate) fn with_sshd() -> Lab {
        let work = Workdir::new();
        let (ca, _) = ca_init(&work, "ca_key");
        let sshd = Sshd::start(work.path(), &meho_ca_pub(&ca));
        Lab {
            work,
            ca,
            sshd: Some(sshd),
        }
    }

    /// Without one: hosts point at a closed port (listing needs no connection).
    pub(crate) fn without_sshd() -> Lab {
        let work = Workdir::new();
        let (ca, _) = ca_init(&work, "ca_key");
        Lab {
            work,
            ca,
            sshd: None,
        }
    }

    pub(crate) fn state(&self) -> PathBuf {
        self.work.path().join("state")
    }

    /// `[ca_keys._default]` naming the lab's CA.
    pub(crate) fn ca_section(&self) -> String {
        format!("[ca_keys._default]\npath = \"{}\"\n", self.ca.display())
    }

    /// `[hosts.NAME]` on the lab's sshd (logging in as root), followed by `extra` lines.
    pub(crate) fn host(&self, name: &str, extra: &str) -> String {
        let (addr, key) = match &self.sshd {
            Some(sshd) => (format!("127.0.0.1:{}", sshd.port), sshd.host_key.clone()),
            None => ("127.0.0.1:1".to_owned(), HOST_KEY.to_owned()),
        };
        format!(
            "\n[hosts.{name}]\naddr = \"{addr}\"\nuser = \"root\"\nhost_key = \"{key}\"\n{extra}\n"
        )
    }

    pub(crate) fn sshd_log(&self) -> String {
        self.sshd.as_ref().map(Sshd::log_text).unwrap_or_default()
    }

    /// `meho audit query --format json --limit 1000 --data-dir <state> FILTERS`: the records.
    pub(crate) fn audit(&self, filters: &[&str]) -> Vec<Value> {
        let output = self
            .work
            .meho()
            .args(["audit", "query", "--format", "json", "--limit", "1000"])
            .arg("--data-dir")
            .arg(self.state())
            .args(filters)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr_of(&output));
        let page: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
        page["records"].as_array().unwrap().clone()
    }

    /// `meho audit verify --data-dir <state>` passes.
    pub(crate) fn assert_audit_verifies(&self) {
        let output = self
            .work
            .meho()
            .args(["audit", "verify", "--data-dir"])
            .arg(self.state())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr_of(&output));
    }

    /// The argv of `meho mcp --config CONFIG --data-dir <state>`.
    fn mcp_command(&self, config: &Path) -> Vec<String> {
        vec![
            MEHO.to_owned(),
            "mcp".to_owned(),
            "--config".to_owned(),
            config.display().to_string(),
            "--data-dir".to_owned(),
            self.state().display().to_string(),
        ]
    }
}

/// A running `meho serve`.
pub(crate) struct Served {
    pub(crate) daemon: Daemon,
    /// `http://ADDR`.
    pub(crate) base: String,
    /// `http://ADDR/mcp`.
    pub(crate) url: String,
}

impl Served {
    /// SIGTERM, and the server exits 0.
    pub(crate) fn stop(mut self) {
        let status = self.daemon.terminate();
        assert!(
            status.success(),
            "{status:?}; log:\n{}",
            self.daemon.log_text()
        );
    }
}

/// `meho serve --config <file> --data-dir <state> --listen 127.0.0.1:PORT EXTRA` with the config
/// `config(resource)` where `resource` is `http://127.0.0.1:PORT/mcp`: the port is picked first so
/// the audience can name it (and picked again if another process took it in between).
pub(crate) fn serve_on_a_port(
    lab: &Lab,
    config: impl Fn(&str) -> String,
    extra: &[&str],
) -> Served {
    let mut last = String::new();
    for _attempt in 0..5 {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let resource = format!("http://{listen}/mcp");
        let file = lab.work.write("meho.toml", &config(&resource));
        let state = lab.state();
        let mut args = vec![
            os("serve"),
            os("--config"),
            os(&file),
            os("--data-dir"),
            os(&state),
            os("--listen"),
            os(&listen),
        ];
        args.extend(extra.iter().map(|a| os(*a)));
        match Daemon::try_start(&lab.work, &args, "meho listening on ") {
            Ok(daemon) => {
                assert_eq!(
                    daemon.lines.last().unwrap(),
                    &format!("meho listening on http://{listen}")
                );
                return Served {
                    daemon,
                    base: format!("http://{listen}"),
                    url: resource,
                };
            }
            Err(why) if why.contains("cannot listen") => last = why,
            Err(why) => panic!("{why}"),
        }
    }
    panic!("no free port after 5 attempts: {last}");
}

// --- clients ---------------------------------------------------------------------------------

/// `mcp_client.py http URL [--token TOKEN] ACTIONS`.
pub(crate) fn py_http(url: &str, token: Option<&str>, actions: &[&str]) -> (i32, Value) {
    let mut args = vec!["http", url];
    if let Some(token) = token {
        args.extend(["--token", token]);
    }
    args.extend(actions);
    python_client(&args)
}

/// `mcp_client.py stdio ACTIONS -- COMMAND...`.
fn py_stdio(command: &[String], actions: &[&str]) -> (i32, Value) {
    let mut args = vec!["stdio"];
    args.extend(actions);
    args.push("--");
    args.extend(command.iter().map(String::as_str));
    python_client(&args)
}

/// `--call TOOL --args JSON` for [`py_http`] / [`py_stdio`].
pub(crate) fn call_args(tool: &str, arguments: &Value) -> [String; 4] {
    [
        "--call".to_owned(),
        tool.to_owned(),
        "--args".to_owned(),
        arguments.to_string(),
    ]
}

/// A successful tool call over HTTP: its structured result.
pub(crate) fn call_ok(url: &str, token: &str, tool: &str, arguments: &Value) -> Value {
    let (code, out) = call(url, token, tool, arguments);
    assert_eq!(code, 0, "{tool} {arguments}: {out}");
    assert_eq!(out["call"]["is_error"], false, "{tool} {arguments}: {out}");
    out["call"]["structured_content"].clone()
}

/// A tool call over HTTP: the client's exit code and answer.
pub(crate) fn call(url: &str, token: &str, tool: &str, arguments: &Value) -> (i32, Value) {
    let actions = call_args(tool, arguments);
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    py_http(url, Some(token), &actions)
}

/// A tool call that came back as a tool error (`isError`): its code and its text.
pub(crate) fn call_refused(
    url: &str,
    token: &str,
    tool: &str,
    arguments: &Value,
) -> (String, String) {
    let (code, out) = call(url, token, tool, arguments);
    assert_eq!(code, 0, "a tool error is a result: {out}");
    assert_eq!(out["call"]["is_error"], true, "{tool} {arguments}: {out}");
    let error = out["call"]["structured_content"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code: {out}"))
        .to_owned();
    (error, out["call"]["text"].as_str().unwrap().to_owned())
}

fn sorted_tools(out: &Value) -> Vec<String> {
    let mut names: Vec<String> = out["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools: {out}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn target_names(result: &Value) -> Vec<String> {
    let mut names: Vec<String> = result["targets"]
        .as_array()
        .unwrap_or_else(|| panic!("no targets: {result}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// `curl -sS -i --max-time 30 ARGS`: the status, the header block (lowercase names) and the body.
fn curl(args: &[&str]) -> (u16, String, String) {
    let output = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "30"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("curl {args:?}: {text} {}", stderr_of(&output)));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    let head = head
        .lines()
        .map(|l| match l.split_once(':') {
            Some((name, value)) => format!("{}:{value}", name.to_ascii_lowercase()),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    (status, head, body.to_owned())
}

/// The value of header `name` (lowercase) in a [`curl`] header block.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
}

/// The MCP `initialize` request as curl arguments for `POST url`, plus `extra` arguments.
fn initialize_request<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "-X",
        "POST",
        url,
        "-H",
        "Content-Type: application/json",
        "-H",
        "Accept: application/json, text/event-stream",
        "--data",
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}"#,
    ];
    args.extend(extra);
    args
}

/// `GET /api/v1/feed` read with `curl -N` as it streams; each `data:` line is one event. Dropping
/// it ends curl (by its PID).
struct Feed {
    curl: Child,
    events: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        if matches!(self.curl.try_wait(), Ok(None)) {
            let _ = self.curl.kill();
        }
        let _ = self.curl.wait();
    }
}

impl Feed {
    /// Opens `<base>/api/v1/feed<query>` with `token`.
    fn open(base: &str, token: &str, query: &str) -> Feed {
        let mut curl = Command::new("curl")
            .args(["-sS", "-N", "--max-time"])
            .arg(FEED_LIMIT.as_secs().to_string())
            .arg("-H")
            .arg(format!("Authorization: Bearer {token}"))
            .arg(format!("{base}/api/v1/feed{query}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = curl.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(data) = line.strip_prefix("data:") {
                    let event = serde_json::from_str(data.trim())
                        .unwrap_or_else(|_| json!({ "unparsed": data }));
                    if tx.send(event).is_err() {
                        return;
                    }
                } else if !line.is_empty()
                    && !line.starts_with(':')
                    && !line.starts_with("id:")
                    && !line.starts_with("event:")
                    && tx.send(json!({ "unexpected": line })).is_err()
                {
                    return;
                }
            }
        });
        Feed {
            curl,
            events,
            seen: Vec::new(),
        }
    }

    /// Reads until an event satisfies `done`; returns every event read so far.
    fn until(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> &[Value] {
        let deadline = Instant::now() + FEED_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    let finished = done(&event);
                    self.seen.push(event);
                    if finished {
                        return &self.seen;
                    }
                }
                Err(err) => panic!("the feed ended ({err}) before {what}; got {:?}", self.seen),
            }
        }
    }
}

fn is_announcement(event: &Value, activity: &str) -> bool {
    event["kind"] == "announce" && event["body"]["activity"] == activity
}

/// An `announce` over HTTP; the sequence number of its record in the caller's tenant.
fn announce(url: &str, token: &str, activity: &str, targets: &[&str]) -> i64 {
    let result = call_ok(
        url,
        token,
        "announce",
        &json!({ "activity": activity, "targets": targets, "planned_tier": "read", "ttl_seconds": 60 }),
    );
    assert_eq!(result["announced"], true, "{result}");
    result["seq"]
        .as_i64()
        .unwrap_or_else(|| panic!("no seq: {result}"))
}

// --- 1. the Python SDK over stdio ------------------------------------------------------------

/// What `serve --dev` sets up, `meho mcp` on the same data directory finds: with no `[ca_keys]`,
/// the stdio server signs with the dev CA that sshd was told to trust (and creates none itself).
#[test]
fn stdio_mcp_signs_with_the_dev_ca_that_serve_dev_created() {
    if !require_python() || !require_sshd("meho mcp (stdio) with the dev CA") {
        return;
    }
    let lab = Lab::without_sshd();
    let state = lab.state();
    // `meho mcp` on a data directory without the dev CA creates none.
    let bare = lab.work.write("bare.toml", "");
    let (code, out) = py_stdio(&lab.mcp_command(&bare), &["--list-tools"]);
    assert_eq!(code, 0, "{out}");
    assert!(!state.join("ca").exists(), "meho mcp created a CA");
    let mut daemon = Daemon::start(
        &lab.work,
        &[
            os("serve"),
            os("--dev"),
            os("--config"),
            os(&bare),
            os("--data-dir"),
            os(&state),
            os("--listen"),
            os("127.0.0.1:0"),
        ],
        "meho listening on ",
    );
    assert!(daemon.terminate().success());
    let sshd_dir = lab.work.path().join("dev-sshd");
    std::fs::create_dir_all(&sshd_dir).unwrap();
    let sshd = Sshd::start(&sshd_dir, &state.join("ca").join("ssh_ca_ed25519.pub"));
    let config = lab.work.write(
        "meho.toml",
        &format!(
            "[hosts.dev]\naddr = \"127.0.0.1:{}\"\nuser = \"root\"\nhost_key = \"{}\"\n",
            sshd.port, sshd.host_key
        ),
    );
    let execute = call_args(
        "ssh_execute",
        &json!({ "server": "dev", "command": "echo signed-by-the-dev-ca" }),
    );
    let execute: Vec<&str> = execute.iter().map(String::as_str).collect();
    let (code, out) = py_stdio(&lab.mcp_command(&config), &execute);
    assert_eq!(code, 0, "{out}\nsshd:\n{}", sshd.log_text());
    let call = &out["call"];
    assert_eq!(call["is_error"], false, "{out}\nsshd:\n{}", sshd.log_text());
    assert_eq!(
        call["structured_content"]["stdout"],
        "signed-by-the-dev-ca\n"
    );
}

#[test]
fn python_sdk_over_stdio_lists_the_tools_and_runs_ssh_execute_on_sshd() {
    if !require_python() || !require_sshd("meho mcp (stdio)") {
        return;
    }
    let lab = Lab::with_sshd();
    let config = lab.work.write(
        "meho.toml",
        &format!(
            "{}\n[mcp.stdio]\nprincipal = \"stdio-tester\"\n{}{}",
            lab.ca_section(),
            lab.host("local", ""),
            lab.host(
                "locked",
                "command_policy = { mode = \"allowlist\", allow = ['^uptime$'] }"
            ),
        ),
    );
    let meho = lab.mcp_command(&config);

    let execute = call_args(
        "ssh_execute",
        &json!({ "server": "local", "command": "echo hello-mcp" }),
    );
    let mut actions = vec!["--list-tools"];
    actions.extend(execute.iter().map(String::as_str));
    let (code, out) = py_stdio(&meho, &actions);
    assert_eq!(code, 0, "{out}\nsshd:\n{}", lab.sshd_log());
    assert_eq!(out["server_name"], "meho");
    assert_eq!(sorted_tools(&out), CONTRACT_TOOLS, "{out}");
    let hints = |name: &str| {
        out["tools_full"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()["annotations"]
            .clone()
    };
    assert_eq!(hints("list_targets")["readOnlyHint"], true);
    assert_eq!(hints("ssh_execute")["destructiveHint"], true);
    let call = &out["call"];
    assert_eq!(call["is_error"], false, "{out}\nsshd:\n{}", lab.sshd_log());
    let result = &call["structured_content"];
    assert_eq!(result["stdout"], "hello-mcp\n", "{out}");
    assert_eq!(result["stderr"], "");
    assert_eq!(result["exit_code"], 0);
    assert!(result["serial"].as_u64().unwrap() > 0, "{result}");

    // A command the host's allowlist does not have: a tool error naming the rule, not a failure.
    let denied = call_args(
        "ssh_execute",
        &json!({ "server": "locked", "command": "echo hello-mcp" }),
    );
    let denied: Vec<&str> = denied.iter().map(String::as_str).collect();
    let (code, out) = py_stdio(&meho, &denied);
    assert_eq!(code, 0, "{out}");
    let call = &out["call"];
    assert_eq!(call["is_error"], true, "{out}");
    let text = call["text"].as_str().unwrap();
    assert!(text.starts_with("denied: "), "{text}");
    assert!(text.contains("allowlist_no_match"), "{text}");
    assert!(text.contains("`allowlist:no-match`"), "the rule: {text}");
    assert_eq!(call["structured_content"]["error"], "denied");
    assert_eq!(
        call["structured_content"]["detail"]["decision"]["reason_code"],
        "allowlist_no_match"
    );

    // The audit log names the [mcp.stdio] principal for both calls.
    let records = lab.audit(&["--principal", "stdio-tester", "--action", "ssh_execute"]);
    let on = |target: &str, kind: &str| {
        records
            .iter()
            .filter(|r| r["target"] == target && r["kind"] == kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(on("local", "intent").len(), 1, "{records:?}");
    let outcome = on("local", "outcome");
    assert_eq!(outcome.len(), 1, "{records:?}");
    assert_eq!(outcome[0]["tenant"], "default");
    let denial = on("locked", "denial");
    assert_eq!(denial.len(), 1, "{records:?}");
    assert_eq!(denial[0]["outcome"], "denied");
    assert!(
        on("locked", "intent").is_empty(),
        "a denied call has no intent"
    );

    // Without [mcp.stdio] principal, the principal is the OS user the client started meho as.
    let config = lab.work.write(
        "os-user.toml",
        &format!("{}{}", lab.ca_section(), lab.host("local", "")),
    );
    let mut as_user = vec![
        "/usr/bin/env".to_owned(),
        "USER=mcp-os-user".to_owned(),
        "LOGNAME=mcp-os-user".to_owned(),
    ];
    as_user.extend(lab.mcp_command(&config));
    let announce = call_args(
        "announce",
        &json!({ "activity": "as the OS user", "targets": ["local"], "planned_tier": "read", "ttl_seconds": 60 }),
    );
    let announce: Vec<&str> = announce.iter().map(String::as_str).collect();
    let (code, out) = py_stdio(&as_user, &announce);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["call"]["is_error"], false, "{out}");
    let records = lab.audit(&["--principal", "mcp-os-user", "--action", "announce"]);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["body"]["activity"], "as the OS user");
    lab.assert_audit_verifies();
}

#[test]
fn python_sdk_over_stdio_without_targets_sees_no_ssh_tools() {
    if !require_python() {
        return;
    }
    let lab = Lab::without_sshd();
    let config = lab.work.write("meho.toml", &lab.ca_section());
    let (code, out) = py_stdio(&lab.mcp_command(&config), &["--list-tools"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        sorted_tools(&out),
        [
            "announce",
            "approval_status",
            "list_targets",
            "result_query"
        ]
    );
}

// --- 2. the Python SDK over Streamable HTTP --------------------------------------------------

/// The multi-tenant config: `[auth]` on the IdP, tenancy on, two tenant-a hosts (`web-a` with
/// the default WRITE tier, `readonly-a` whose policy allows `echo` at READ tier) and one
/// tenant-b host, all in group `ops`.
fn tenant_config(lab: &Lab, issuer: &str, resource: &str) -> String {
    format!(
        "{}\n[auth]\nissuer = \"{issuer}\"\naudience = \"{resource}\"\ngroups_claim = \"groups\"\n\n\
         [tenancy]\nenabled = true\n{}{}{}",
        lab.ca_section(),
        lab.host("web-a", "tenant = \"a\"\ngroups = [\"ops\"]"),
        lab.host(
            "readonly-a",
            "tenant = \"a\"\ngroups = [\"ops\"]\n\
             command_policy = { mode = \"allowlist\", allow = ['^echo '], tier = \"read\" }"
        ),
        lab.host("web-b", "tenant = \"b\"\ngroups = [\"ops\"]"),
    )
}

#[test]
fn python_sdk_over_http_with_an_idp_token_runs_ssh_execute_and_audits_the_claims() {
    if !require_python() || !require_sshd("meho serve /mcp") {
        return;
    }
    let Some(idp) = Idp::start("http://127.0.0.1:8080/mcp") else {
        return;
    };
    let lab = Lab::with_sshd();
    let served = serve_on_a_port(&lab, |r| tenant_config(&lab, &idp.issuer, r), &[]);
    let token = idp.token("tenant-a-admin", &served.url, "mcp:tools");

    let execute = call_args(
        "ssh_execute",
        &json!({ "server": "web-a", "command": "echo hello-mcp-http" }),
    );
    let mut actions = vec!["--list-tools"];
    actions.extend(execute.iter().map(String::as_str));
    let (code, out) = py_http(&served.url, Some(&token), &actions);
    assert_eq!(
        code,
        0,
        "{out}\nserve:\n{}\nsshd:\n{}",
        served.daemon.log_text(),
        lab.sshd_log()
    );
    assert_eq!(out["server_name"], "meho");
    assert_eq!(sorted_tools(&out), CONTRACT_TOOLS, "{out}");
    let call = &out["call"];
    assert_eq!(call["is_error"], false, "{out}\nsshd:\n{}", lab.sshd_log());
    assert_eq!(call["structured_content"]["stdout"], "hello-mcp-http\n");
    assert_eq!(call["structured_content"]["exit_code"], 0);

    // The token's claims are who the audit log says acted: principal, tenant.
    let records = lab.audit(&["--tenant", "a", "--action", "ssh_execute"]);
    let intent = records
        .iter()
        .find(|r| r["kind"] == "intent" && r["target"] == "web-a")
        .unwrap_or_else(|| panic!("no intent: {records:?}"));
    assert_eq!(intent["principal"], "tenant-a-admin");
    assert_eq!(intent["tenant"], "a");
    let outcome = records
        .iter()
        .find(|r| r["kind"] == "outcome" && r["call_id"] == intent["call_id"])
        .unwrap_or_else(|| panic!("no outcome: {records:?}"));
    assert_eq!(outcome["principal"], "tenant-a-admin");
    // The signer's record of the certificate names the same agent, end user and tenant.
    let signed = lab.audit(&[
        "--action",
        "sign",
        "--target",
        "web-a",
        "--outcome",
        "issued",
    ]);
    assert_eq!(signed.len(), 1, "{signed:?}");
    let intent = &signed[0]["body"]["intent"];
    assert_eq!(intent["agent"], "tenant-a-admin", "{intent}");
    assert_eq!(intent["end_user"], "tenant-a-admin", "{intent}");
    assert_eq!(intent["tenant"], "a", "{intent}");
    assert_eq!(intent["command"], "echo hello-mcp-http", "{intent}");

    // Tokens signed with the IdP's other key types are accepted too.
    for client in ["tenant-a-es256", "tenant-a-eddsa"] {
        let token = idp.token(client, &served.url, "mcp:tools");
        let result = call_ok(&served.url, &token, "list_targets", &json!({}));
        assert_eq!(target_names(&result), ["readonly-a", "web-a"], "{client}");
    }
    served.stop();
    lab.assert_audit_verifies();
}

#[test]
fn serve_dev_prints_a_token_that_connects_and_stays_on_loopback() {
    if !require_python() || !require_curl() {
        return;
    }
    let lab = Lab::without_sshd();
    // No [ca_keys]: --dev makes its CA too. `[mcp] allowed_hosts` admits one more Host.
    let config = lab.work.write(
        "meho.toml",
        &format!(
            "[mcp]\nallowed_hosts = [\"meho.example\"]\n{}",
            lab.host(
                "dev-host",
                "command_policy = { mode = \"denylist\", require_approval = ['^echo held'] }"
            )
        ),
    );
    let state = lab.state();
    let args = [
        os("serve"),
        os("--dev"),
        os("--config"),
        os(&config),
        os("--data-dir"),
        os(&state),
        os("--listen"),
        os("127.0.0.1:0"),
    ];
    let mut daemon = Daemon::start(&lab.work, &args, "meho console: ");
    let lines = daemon.lines.clone();
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert!(
        lines[0].starts_with("meho dev CA (add to sshd TrustedUserCAKeys): ssh-ed25519 "),
        "{lines:?}"
    );
    let token = lines[1]
        .strip_prefix("MEHO_TOKEN=")
        .unwrap_or_else(|| panic!("{lines:?}"))
        .to_owned();
    assert!(
        token.starts_with("meho_dev_") && token.len() > 40,
        "{token}"
    );
    let approver = lines[2]
        .strip_prefix("MEHO_APPROVER_TOKEN=")
        .unwrap_or_else(|| panic!("{lines:?}"))
        .to_owned();
    assert!(
        approver.starts_with("meho_dev_") && approver.len() > 40 && approver != token,
        "{approver}"
    );
    let addr = lines[5].strip_prefix("meho listening on http://").unwrap();
    let base = format!("http://{addr}");
    assert_eq!(lines[6], format!("meho console: {base}/console/"));
    let url = format!("{base}/mcp");
    assert_eq!(
        lines[3],
        format!(
            "claude mcp add --transport http meho {url} --header \"Authorization: Bearer {token}\""
        )
    );
    let cursor: Value = serde_json::from_str(
        lines[4]
            .strip_prefix("cursor ~/.cursor/mcp.json: ")
            .unwrap_or_else(|| panic!("{lines:?}")),
    )
    .unwrap();
    assert_eq!(
        cursor,
        json!({ "mcpServers": { "meho": {
            "url": url,
            "headers": { "Authorization": format!("Bearer {token}") },
        }}})
    );

    // The token files are private and hold the printed tokens.
    for (name, printed) in [("dev-token", &token), ("dev-approver-token", &approver)] {
        let file = state.join(name);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}: {mode:o}");
        assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), *printed);
    }
    // A browser pointed at the server lands on the console.
    let (status, head, _) = curl(&[&format!("{base}/")]);
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("location: /console/"), "{head}");

    // Two identities, so that four eyes can be kept on: the agent cannot approve its own held
    // call (and is told how to approve as someone else); the approver can.
    let held = call_ok(
        &url,
        &token,
        "ssh_execute",
        &json!({ "server": "dev-host", "command": "echo held-dev" }),
    );
    assert_eq!(held["status"], "pending_approval", "{held}");
    let id = held["approval_id"].as_str().unwrap();
    let decide = |bearer: &str| {
        curl(&[
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {bearer}"),
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"reason":"dev walk-through"}"#,
            &format!("{base}/api/v1/approvals/{id}/approve"),
        ])
    };
    let (status, _, body) = decide(&token);
    assert_eq!(status, 403, "{body}");
    let refusal: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refusal["error"], "four_eyes", "{refusal}");
    let message = refusal["message"].as_str().unwrap();
    assert!(
        message.contains("MEHO_APPROVER_TOKEN") && message.contains("dev-approver-token"),
        "{message}"
    );
    let (status, _, body) = decide(&approver);
    assert_eq!(status, 200, "{body}");
    let approved: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(approved["decided_by"], "dev-approver", "{approved}");

    // A real client connects with it; the dev principal is `dev` in tenant `default`.
    let result = call_ok(&url, &token, "list_targets", &json!({}));
    assert_eq!(target_names(&result), ["dev-host"]);
    announce(&url, &token, "dev mode", &["dev-host"]);
    let records = lab.audit(&["--principal", "dev", "--action", "announce"]);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["tenant"], "default");

    // DNS-rebinding protection: a Host outside loopback and [mcp] allowed_hosts is refused.
    let bearer = format!("Authorization: Bearer {token}");
    let (status, _, body) = curl(&initialize_request(
        &url,
        &["-H", &bearer, "-H", "Host: meho.example"],
    ));
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = curl(&initialize_request(
        &url,
        &["-H", &bearer, "-H", "Host: evil.example"],
    ));
    assert_eq!(status, 403, "{body}");
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
    // rmcp's per-request INFO lines (sessions created, initialized, cancelled) are debug output
    // for meho's operator: none at the default level, after all that MCP traffic.
    // (Its warnings stay: the refused Host above is one.)
    let log = daemon.log_text();
    assert!(
        !log.lines()
            .any(|l| l.contains(" INFO ") && l.contains("rmcp")),
        "{log}"
    );
    assert!(
        log.contains("WARN rmcp"),
        "rmcp's warnings were silenced too: {log}"
    );
    assert!(
        !log.contains('\x1b'),
        "ANSI colour in a log that is not a terminal: {log}"
    );

    // A restart reuses the token.
    let mut again = Daemon::start(&lab.work, &args, "meho listening on ");
    assert_eq!(again.lines[1], format!("MEHO_TOKEN={token}"));
    assert_eq!(again.lines[2], format!("MEHO_APPROVER_TOKEN={approver}"));
    assert!(again.terminate().success());

    // --dev serves a well-known token, so it refuses to listen beyond loopback.
    let output = lab
        .work
        .meho()
        .args(["serve", "--dev", "--listen", "0.0.0.0:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("loopback"),
        "{}",
        stderr_of(&output)
    );
    assert!(
        !stdout_of(&output).contains("MEHO_TOKEN"),
        "{}",
        stdout_of(&output)
    );
}

// --- 3. the MCP Inspector CLI ----------------------------------------------------------------

/// `inspector ARGS` that must succeed: its `result`.
fn inspect(args: &[&str]) -> Value {
    let output = peers::inspector(args);
    assert!(
        output.status.success(),
        "inspector {args:?}: {}\n{}",
        stdout_of(&output),
        stderr_of(&output)
    );
    let answer: Value = serde_json::from_str(stdout_of(&output).trim()).unwrap_or_else(|e| {
        panic!("inspector {args:?}: {e}: {}", stdout_of(&output));
    });
    answer["result"].clone()
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn inspector_tool_names(result: &Value) -> Vec<String> {
    let mut names: Vec<String> = result["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{result}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn inspector_cli_over_stdio_lists_and_calls_tools() {
    if !require_inspector() || !require_sshd("the Inspector on meho mcp") {
        return;
    }
    let lab = Lab::with_sshd();
    let config = lab.work.write(
        "meho.toml",
        &format!(
            "{}\n[mcp.stdio]\nprincipal = \"inspector\"\n{}{}",
            lab.ca_section(),
            lab.host("local", ""),
            lab.host(
                "locked",
                "command_policy = { mode = \"allowlist\", allow = ['^uptime$'] }"
            ),
        ),
    );
    let meho = lab.mcp_command(&config);
    let with_server = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.push("--".to_owned());
        all.extend(meho.iter().cloned());
        all
    };

    let listed = inspect(&refs(&with_server(&[
        "--method",
        "tools/list",
        "--format",
        "json",
    ])));
    assert_eq!(inspector_tool_names(&listed), CONTRACT_TOOLS);
    // Listing the tools is not a call: nothing says the agent listed targets.
    let listings = |lab: &Lab| lab.audit(&["--action", "list_targets"]).len();
    assert_eq!(listings(&lab), 0, "tools/list was audited as a call");

    let targets = inspect(&refs(&with_server(&[
        "--method",
        "tools/call",
        "--tool-name",
        "list_targets",
        "--format",
        "json",
    ])));
    assert_eq!(targets["isError"], false, "{targets}");
    assert_eq!(listings(&lab), 1, "the agent's own list_targets is audited");
    assert_eq!(
        target_names(&targets["structuredContent"]),
        ["local", "locked"]
    );

    let ran = inspect(&refs(&with_server(&[
        "--method",
        "tools/call",
        "--tool-name",
        "ssh_execute",
        "--tool-arg",
        "server=local",
        "command=echo hello-inspector",
        "--format",
        "json",
    ])));
    assert_eq!(ran["isError"], false, "{ran}\nsshd:\n{}", lab.sshd_log());
    assert_eq!(ran["structuredContent"]["stdout"], "hello-inspector\n");

    // A denied call is a tool error: exit 5, the result (naming the rule) still on stdout.
    let output = peers::inspector(&refs(&with_server(&[
        "--method",
        "tools/call",
        "--tool-name",
        "ssh_execute",
        "--tool-arg",
        "server=locked",
        "command=echo hello-inspector",
        "--format",
        "json",
    ])));
    assert_eq!(output.status.code(), Some(5), "{output:?}");
    let result = &serde_json::from_str::<Value>(stdout_of(&output).trim()).unwrap()["result"];
    assert_eq!(result["isError"], true, "{result}");
    assert!(
        result["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("allowlist_no_match"),
        "{result}"
    );

    let records = lab.audit(&["--principal", "inspector", "--action", "ssh_execute"]);
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "outcome" && r["target"] == "local"),
        "{records:?}"
    );
}

#[test]
fn inspector_cli_over_http_with_the_dev_token_lists_and_calls_tools() {
    if !require_inspector() || !require_sshd("the Inspector on meho serve /mcp") {
        return;
    }
    let lab = Lab::with_sshd();
    let config = lab.work.write(
        "meho.toml",
        &format!("{}{}", lab.ca_section(), lab.host("local", "")),
    );
    let state = lab.state();
    let mut daemon = Daemon::start(
        &lab.work,
        &[
            os("serve"),
            os("--dev"),
            os("--config"),
            os(&config),
            os("--data-dir"),
            os(&state),
            os("--listen"),
            os("127.0.0.1:0"),
        ],
        "meho listening on ",
    );
    // With [ca_keys] configured there is no dev CA line.
    let token = daemon.lines[0]
        .strip_prefix("MEHO_TOKEN=")
        .unwrap_or_else(|| panic!("{:?}", daemon.lines))
        .to_owned();
    let addr = daemon
        .lines
        .last()
        .unwrap()
        .strip_prefix("meho listening on http://")
        .unwrap();
    let url = format!("http://{addr}/mcp");
    let bearer = format!("Authorization: Bearer {token}");

    let listed = inspect(&[
        &url,
        "--header",
        &bearer,
        "--method",
        "tools/list",
        "--format",
        "json",
    ]);
    assert_eq!(inspector_tool_names(&listed), CONTRACT_TOOLS);

    let targets = inspect(&[
        &url,
        "--header",
        &bearer,
        "--method",
        "tools/call",
        "--tool-name",
        "list_targets",
        "--format",
        "json",
    ]);
    assert_eq!(target_names(&targets["structuredContent"]), ["local"]);

    let ran = inspect(&[
        &url,
        "--header",
        &bearer,
        "--method",
        "tools/call",
        "--tool-name",
        "ssh_execute",
        "--tool-arg",
        "server=local",
        "command=echo hello-inspector-http",
        "--format",
        "json",
    ]);
    assert_eq!(ran["isError"], false, "{ran}\nsshd:\n{}", lab.sshd_log());
    assert_eq!(ran["structuredContent"]["stdout"], "hello-inspector-http\n");

    // Without the token: 401, which the Inspector reports as auth_required (exit 3).
    let output = peers::inspector(&[
        &url,
        "--method",
        "tools/list",
        "--format",
        "json",
        "--stored-auth-only",
    ]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");

    let status = daemon.terminate();
    assert!(status.success(), "{status:?}; log:\n{}", daemon.log_text());
    let records = lab.audit(&["--principal", "dev", "--action", "ssh_execute"]);
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "outcome" && r["target"] == "local"),
        "{records:?}"
    );
}

// --- 4. tenant isolation and roles -----------------------------------------------------------

#[test]
fn a_tenant_a_token_cannot_list_call_or_stream_tenant_b() {
    if !require_python() || !require_curl() || !require_sshd("tenant isolation over /mcp") {
        return;
    }
    let Some(idp) = Idp::start("http://127.0.0.1:8080/mcp") else {
        return;
    };
    let lab = Lab::with_sshd();
    let served = serve_on_a_port(&lab, |r| tenant_config(&lab, &idp.issuer, r), &[]);
    let url = served.url.as_str();
    let a = idp.token("tenant-a-admin", url, "mcp:tools");
    let b = idp.token("tenant-b-admin", url, "mcp:tools");

    // Listing: each tenant sees its own hosts only.
    let listed = call_ok(url, &a, "list_targets", &json!({}));
    assert_eq!(target_names(&listed), ["readonly-a", "web-a"]);
    let listed = call_ok(url, &b, "list_targets", &json!({}));
    assert_eq!(target_names(&listed), ["web-b"]);

    // Calling: tenant b's host does not exist for tenant a, and runs for tenant b.
    let (code, text) = call_refused(
        url,
        &a,
        "ssh_execute",
        &json!({ "server": "web-b", "command": "echo from-a" }),
    );
    assert_eq!(code, "unknown_target", "{text}");
    assert!(text.contains("web-b"), "{text}");
    let ran = call_ok(
        url,
        &b,
        "ssh_execute",
        &json!({ "server": "web-b", "command": "echo hello-b" }),
    );
    assert_eq!(ran["stdout"], "hello-b\n", "sshd:\n{}", lab.sshd_log());

    // Reading the audit through MCP: approval_status only ever looks in the caller's tenant.
    let (code, text) = call_refused(
        url,
        &a,
        "approval_status",
        &json!({ "approval_id": "appr-1" }),
    );
    assert_eq!(code, "not_found", "{text}");
    assert!(text.contains("in your tenant"), "{text}");

    // The feed: tenant a's stream, open while tenant b acts, carries tenant a's events only. It
    // starts after a known record, so nothing depends on when curl connects; seeing the first
    // announcement means the stream is live.
    let before = announce(url, &a, "a-before-the-stream", &["web-a"]);
    let mut feed = Feed::open(&served.base, &a, &format!("?after={before}"));
    announce(url, &a, "a-stream-open", &["web-a"]);
    feed.until("tenant a's first announcement", |e| {
        is_announcement(e, "a-stream-open")
    });
    announce(url, &b, "b-secret-plan", &["web-b"]);
    let ran = call_ok(
        url,
        &b,
        "ssh_execute",
        &json!({ "server": "web-b", "command": "echo b-secret-output" }),
    );
    assert_eq!(ran["stdout"], "b-secret-output\n");
    announce(url, &a, "a-stream-done", &["web-a"]);
    let events = feed.until("tenant a's last announcement", |e| {
        is_announcement(e, "a-stream-done")
    });
    for event in events {
        assert_eq!(event["tenant"], "a", "{event}");
        assert_eq!(event["principal"], "tenant-a-admin", "{event}");
        assert!(
            !event.to_string().contains("b-secret"),
            "tenant b leaked: {event}"
        );
    }
    let activities: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "announce")
        .map(|e| &e["body"]["activity"])
        .collect();
    assert_eq!(activities, ["a-stream-open", "a-stream-done"]);
    drop(feed);

    // Replaying from the start does not reach into tenant b either, whatever the query says…
    let mut replay = Feed::open(&served.base, &a, "?after=0");
    let events = replay.until("tenant a's last announcement", |e| {
        is_announcement(e, "a-stream-done")
    });
    assert!(events.iter().all(|e| e["tenant"] == "a"), "{events:?}");
    assert!(
        !events.iter().any(|e| e.to_string().contains("b-secret")),
        "{events:?}"
    );
    drop(replay);
    let (status, _, body) = curl(&[
        "-H",
        &format!("Authorization: Bearer {a}"),
        &format!("{}/api/v1/feed?tenant=b", served.base),
    ]);
    assert_eq!(status, 400, "the tenant is not a query parameter: {body}");

    // …while tenant b's own feed has what tenant b did.
    let mut theirs = Feed::open(&served.base, &b, "?after=0");
    let events = theirs.until("tenant b's announcement", |e| {
        is_announcement(e, "b-secret-plan")
    });
    assert!(events.iter().all(|e| e["tenant"] == "b"), "{events:?}");
    drop(theirs);

    served.stop();
    lab.assert_audit_verifies();
}

#[test]
fn a_read_only_role_runs_read_tier_commands_only() {
    if !require_python() || !require_sshd("read_only role over /mcp") {
        return;
    }
    let Some(idp) = Idp::start("http://127.0.0.1:8080/mcp") else {
        return;
    };
    let lab = Lab::with_sshd();
    let served = serve_on_a_port(&lab, |r| tenant_config(&lab, &idp.issuer, r), &[]);
    let url = served.url.as_str();
    let reader = idp.token("tenant-a-reader", url, "mcp:tools");

    // No write-only tools in its list.
    let (code, out) = py_http(url, Some(&reader), &["--list-tools"]);
    assert_eq!(code, 0, "{out}");
    let tools = sorted_tools(&out);
    assert!(!tools.iter().any(|t| t == "ssh_put_file"), "{tools:?}");
    assert!(tools.iter().any(|t| t == "ssh_execute"), "{tools:?}");

    // `web-a` has no policy, so its commands are WRITE tier: refused for a read_only role.
    let (code, text) = call_refused(
        url,
        &reader,
        "ssh_execute",
        &json!({ "server": "web-a", "command": "echo hello-reader" }),
    );
    assert_eq!(code, "denied", "{text}");
    assert!(
        text.contains("write-tier") && text.contains("read-tier"),
        "{text}"
    );

    // `readonly-a` rates `echo` READ tier: it runs.
    let ran = call_ok(
        url,
        &reader,
        "ssh_execute",
        &json!({ "server": "readonly-a", "command": "echo hello-reader" }),
    );
    assert_eq!(ran["stdout"], "hello-reader\n", "sshd:\n{}", lab.sshd_log());

    let records = lab.audit(&["--principal", "tenant-a-reader", "--action", "ssh_execute"]);
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "denial" && r["target"] == "web-a" && r["outcome"] == "denied"),
        "{records:?}"
    );
    assert!(
        !records
            .iter()
            .any(|r| r["kind"] == "intent" && r["target"] == "web-a"),
        "nothing ran on web-a: {records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "outcome" && r["target"] == "readonly-a"),
        "{records:?}"
    );
    served.stop();
}

/// The in-process signer audits every certificate it issues, with the command, the host and the
/// caller's tenant in the record. Those records must stay out of every other tenant's view, also
/// out of tenant `default`'s (the dev token's, and any IdP user's whose tenant is `default`).
#[test]
fn the_default_tenants_feed_carries_no_other_tenants_records() {
    if !require_python() || !require_curl() || !require_sshd("the default tenant's feed") {
        return;
    }
    let Some(idp) = Idp::start("http://127.0.0.1:8080/mcp") else {
        return;
    };
    let lab = Lab::with_sshd();
    // --dev next to [auth]: the dev token (tenant `default`) and the IdP's tokens both work.
    let served = serve_on_a_port(&lab, |r| tenant_config(&lab, &idp.issuer, r), &["--dev"]);
    let url = served.url.as_str();
    let dev = served
        .daemon
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("MEHO_TOKEN="))
        .unwrap_or_else(|| panic!("{:?}", served.daemon.lines))
        .to_owned();
    let b = idp.token("tenant-b-admin", url, "mcp:tools");
    let ran = call_ok(
        url,
        &b,
        "ssh_execute",
        &json!({ "server": "web-b", "command": "echo b-secret-output" }),
    );
    assert_eq!(
        ran["stdout"],
        "b-secret-output\n",
        "sshd:\n{}",
        lab.sshd_log()
    );
    announce(url, &dev, "default-tenant-done", &[]);

    let mut feed = Feed::open(&served.base, &dev, "?after=0");
    let events = feed.until("the default tenant's announcement", |e| {
        is_announcement(e, "default-tenant-done")
    });
    let leaked: Vec<&Value> = events
        .iter()
        .filter(|e| e.to_string().contains("b-secret") || e.to_string().contains("web-b"))
        .collect();
    assert!(
        leaked.is_empty(),
        "tenant b's call is in tenant default's feed: {leaked:?}"
    );
    drop(feed);
    served.stop();
}

// --- 5. no token, bad tokens -----------------------------------------------------------------

#[test]
fn no_token_or_a_bad_token_gets_401_with_the_resource_metadata_challenge() {
    if !require_python() || !require_curl() {
        return;
    }
    let Some(idp) = Idp::start("http://127.0.0.1:8080/mcp") else {
        return;
    };
    let lab = Lab::without_sshd();
    let served = serve_on_a_port(&lab, |r| tenant_config(&lab, &idp.issuer, r), &[]);
    let url = served.url.as_str();
    let metadata = format!("{}/.well-known/oauth-protected-resource", served.base);
    let challenge = format!("Bearer resource_metadata=\"{metadata}\"");

    // No token: 401 and where to find out how to get one.
    let (status, head, body) = curl(&initialize_request(url, &[]));
    assert_eq!(status, 401, "{head}\n{body}");
    assert_eq!(header(&head, "www-authenticate"), Some(challenge.as_str()));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "unauthorized"
    );
    let (status, _, body) = curl(&[&metadata]);
    assert_eq!(status, 200, "{body}");
    let document: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["resource"], url);
    assert_eq!(document["authorization_servers"], json!([idp.issuer]));
    assert!(
        document["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("mcp:tools")),
        "{document}"
    );
    let (code, out) = py_http(url, None, &["--list-tools"]);
    assert_eq!(code, 3, "{out}");
    assert_eq!(out["status"], 401, "{out}");
    assert_eq!(out["www_authenticate"], challenge.as_str(), "{out}");

    // Not a JWT at all.
    let (code, out) = py_http(url, Some("not-a-token"), &["--list-tools"]);
    assert_eq!(code, 3, "{out}");
    assert_eq!(out["status"], 401, "{out}");
    let www = out["www_authenticate"].as_str().unwrap();
    assert!(www.starts_with(&challenge), "{www}");
    assert!(www.contains("error=\"invalid_token\""), "{www}");

    // A genuine token from the right issuer, for another resource.
    let elsewhere = idp.token("tenant-b-admin", "http://example.invalid/mcp", "mcp:tools");
    assert_eq!(
        peers::jwt_parts(&elsewhere).1["aud"],
        "http://example.invalid/mcp"
    );
    let (code, out) = py_http(url, Some(&elsewhere), &["--list-tools"]);
    assert_eq!(code, 3, "{out}");
    assert_eq!(out["status"], 401, "{out}");
    let www = out["www_authenticate"].as_str().unwrap();
    assert!(www.starts_with(&challenge), "{www}");
    assert!(
        www.contains("error=\"invalid_token\"") && www.contains("audience"),
        "{www}"
    );
    let (status, head, _) = curl(&[
        "-H",
        &format!("Authorization: Bearer {elsewhere}"),
        &format!("{}/api/v1/feed", served.base),
    ]);
    assert_eq!(status, 401, "the feed too: {head}");

    // Tenancy is on: a token without the tenant claim is refused.
    let untenanted = idp.token("no-tenant", url, "mcp:tools");
    let (status, head, body) = curl(&initialize_request(
        url,
        &["-H", &format!("Authorization: Bearer {untenanted}")],
    ));
    assert_eq!(status, 401, "{head}\n{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "missing_tenant_claim"
    );
    assert!(
        header(&head, "www-authenticate").is_some_and(|w| w.starts_with(&challenge)),
        "{head}"
    );

    // No refused principal left a trace of having acted.
    for principal in ["tenant-b-admin", "no-tenant"] {
        let records = lab.audit(&["--principal", principal]);
        assert!(records.is_empty(), "{principal}: {records:?}");
    }
    served.stop();
}

/// A valid token that lacks `mcp:tools` is refused with `error="insufficient_scope"` and the scope
/// to ask for. The issue's attack list sets the status: 401 (RFC 6750 §3.1 would say 403; the
/// challenge is the same either way, so clients re-authorize with the named scope).
#[test]
fn a_token_without_the_tools_scope_gets_401_insufficient_scope() {
    if !require_curl() {
        return;
    }
    let Some(idp) = Idp::start("http://127.0.0.1:8080/mcp") else {
        return;
    };
    let lab = Lab::without_sshd();
    let served = serve_on_a_port(&lab, |r| tenant_config(&lab, &idp.issuer, r), &[]);
    let url = served.url.as_str();
    let token = idp.token("no-scope", url, "openid mcp:tools");
    assert_eq!(peers::jwt_parts(&token).1["scope"], "openid");
    let (status, head, body) = curl(&initialize_request(
        url,
        &["-H", &format!("Authorization: Bearer {token}")],
    ));
    let www = header(&head, "www-authenticate").unwrap_or_default();
    assert!(www.contains("error=\"insufficient_scope\""), "{head}");
    assert!(www.contains("scope=\"mcp:tools\""), "{head}");
    assert!(www.contains("resource_metadata=\""), "{head}");
    assert_eq!(
        status, 401,
        "the issue lists a missing scope among the 401s: {head}\n{body}"
    );
    served.stop();
}
