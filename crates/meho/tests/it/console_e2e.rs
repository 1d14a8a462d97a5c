//! The web console end to end, with real peers only: a real sshd, `meho serve` behind an OpenID
//! provider (npm `oidc-provider`), the official Python MCP SDK as the agent, and Debian's Chromium
//! driven by Playwright (`tests/peers/browser/e2e.mjs`) as the human approver.
//!
//! 1. The agent (IdP client `tenant-a-agent`, role `operator`) calls `ssh_execute` with a command
//!    the host's policy holds for approval: the answer is `pending_approval`, and nothing ran.
//! 2. In the browser, `tenant-a-admin` signs in to `/console/` (authorization code + PKCE), sees
//!    the approval with the exact command, types a reason and clicks Approve. The screenshot of
//!    the approvals page is kept in `target/test-artifacts/console-approvals.png`.
//! 3. The agent's `approval_status` runs the call and returns the real output.
//! 4. The audit log (through the REST API) links intent, approval and outcome by the approval id.
//!
//! Without Chromium, the browser peer, the Python SDK, the IdP or sshd the test prints a
//! `SKIPPED:` line; under `CI=true` it fails instead (`scripts/test` installs them all).

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::Workdir;
use crate::peers::{self, Idp, python_client};
use crate::support::{Daemon, Sshd, ca_init, meho_ca_pub, os, require_sshd};

/// The command the host's policy holds for a human.
const COMMAND: &str = "echo approved-by-a-human";
/// Why the approver approved it (it must reach the audit record).
const REASON: &str = "change ticket CHG-1234: console e2e";

const MEHO: &str = env!("CARGO_BIN_EXE_meho");

/// The browser: `$MEHO_CHROMIUM`, else Debian's `/usr/bin/chromium`.
fn chromium() -> PathBuf {
    match std::env::var_os("MEHO_CHROMIUM") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from("/usr/bin/chromium"),
    }
}

fn browser_dir() -> PathBuf {
    peers::peers_dir().join("browser")
}

fn require_browser() -> bool {
    let node_runs = Command::new(peers::node())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    peers::require(
        "the browser peer (Debian chromium, node and tests/peers/browser; scripts/test installs them)",
        chromium().is_file()
            && node_runs
            && browser_dir()
                .join("node_modules/playwright-core/package.json")
                .is_file(),
    )
}

fn require_python() -> bool {
    peers::require(
        "the MCP Python SDK peer (tests/peers/python/.venv; scripts/test installs it)",
        peers::python_available(),
    )
}

/// `target/test-artifacts`, next to the `meho` binary's profile directory.
fn artifacts_dir() -> PathBuf {
    let target = Path::new(MEHO)
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf);
    target.join("test-artifacts")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// meho on the IdP, one tenant-a host on the lab's sshd whose policy holds [`COMMAND`].
fn config(ca: &Path, sshd: &Sshd, issuer: &str, resource: &str) -> String {
    format!(
        "[ca_keys._default]\npath = \"{ca}\"\n\n\
         [auth]\nissuer = \"{issuer}\"\naudience = \"{resource}\"\ngroups_claim = \"groups\"\n\n\
         [tenancy]\nenabled = true\n\n\
         [hosts.web-a]\naddr = \"127.0.0.1:{port}\"\nuser = \"root\"\nhost_key = \"{key}\"\n\
         tenant = \"a\"\ngroups = [\"ops\"]\n\
         command_policy = {{ mode = \"denylist\", require_approval = ['^echo approved-by-a-human$'] }}\n",
        ca = ca.display(),
        port = sshd.port,
        key = sshd.host_key,
    )
}

/// The IdP and `meho serve` on one port picked up front: the IdP registers the console's
/// redirect URI `http://127.0.0.1:PORT/console/` (from its default resource) and meho's audience
/// names the port. Picked again if another process took the port in between.
fn start(work: &Workdir, ca: &Path, sshd: &Sshd) -> Option<(Idp, Daemon, String)> {
    let mut last = String::new();
    for _attempt in 0..5 {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let resource = format!("{base}/mcp");
        let idp = Idp::start(&resource)?;
        let file = work.write("meho.toml", &config(ca, sshd, &idp.issuer, &resource));
        let state = work.path().join("state");
        let listen = format!("127.0.0.1:{port}");
        let args = [
            os("serve"),
            os("--config"),
            os(&file),
            os("--data-dir"),
            os(&state),
            os("--listen"),
            os(&listen),
        ];
        match Daemon::try_start(work, &args, "meho listening on ") {
            Ok(daemon) => return Some((idp, daemon, base)),
            Err(why) if why.contains("cannot listen") => last = why,
            Err(why) => panic!("{why}"),
        }
    }
    panic!("no free port after 5 attempts: {last}");
}

/// `GET url` with a bearer token: the status and the JSON body.
fn get_json(url: &str, token: &str) -> (u16, Value) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or_else(|| {
        panic!(
            "curl {url}: {text} {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let status = status.trim().parse().unwrap_or(0);
    let json =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {url}: {status} {body}: {e}"));
    (status, json)
}

/// A tool call of the agent over Streamable HTTP: the structured result of a non-error answer.
fn agent_call(url: &str, token: &str, tool: &str, arguments: &Value) -> Value {
    let arguments = arguments.to_string();
    let (code, out) = python_client(&[
        "http",
        url,
        "--token",
        token,
        "--timeout",
        "90",
        "--call",
        tool,
        "--args",
        &arguments,
    ]);
    assert_eq!(code, 0, "{tool} {arguments}: {out}");
    assert_eq!(out["call"]["is_error"], false, "{tool} {arguments}: {out}");
    out["call"]["structured_content"].clone()
}

fn print_line(line: &str) {
    // Past the test harness's capture, like the SKIPPED lines: the artifact's path is for people.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[test]
fn an_approver_approves_a_held_call_in_the_console_and_the_agent_collects_its_output() {
    if !require_python() || !require_browser() || !require_sshd("the console end to end") {
        return;
    }
    let work = Workdir::new();
    let (ca, _) = ca_init(&work, "ca_key");
    let sshd = Sshd::start(work.path(), &meho_ca_pub(&ca));
    let Some((idp, mut daemon, base)) = start(&work, &ca, &sshd) else {
        return;
    };
    let url = format!("{base}/mcp");
    let diagnostics = |what: &str| {
        format!(
            "{what}\nmeho log:\n{}\nidp log:\n{}\nsshd log:\n{}",
            daemon.log_text(),
            idp.log(),
            sshd.log_text()
        )
    };

    // 1. The agent's call is held for a human; nothing reaches the host.
    let agent = idp.token("tenant-a-agent", &url, "mcp:tools");
    let held = agent_call(
        &url,
        &agent,
        "ssh_execute",
        &json!({ "server": "web-a", "command": COMMAND }),
    );
    assert_eq!(held["status"], "pending_approval", "{held}");
    let approval_id = held["approval_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no approval id: {held}"))
        .to_owned();
    assert!(held["expires_at"].is_string(), "{held}");
    assert!(
        held["summary"]
            .as_str()
            .is_some_and(|s| s.contains(COMMAND)),
        "{held}"
    );
    assert!(
        !sshd.log_text().contains("Accepted "),
        "a held call reached the host:\n{}",
        sshd.log_text()
    );

    // 2. The approver, in the browser.
    let artifacts = artifacts_dir();
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("console-approvals.png");
    let _ = std::fs::remove_file(&screenshot);
    let output = Command::new(peers::node())
        .arg(browser_dir().join("e2e.mjs"))
        .current_dir(browser_dir())
        .env("MEHO_URL", &base)
        .env("MEHO_CHROMIUM", chromium())
        .env("E2E_APPROVAL_ID", &approval_id)
        .env("E2E_COMMAND", COMMAND)
        .env("E2E_REASON", REASON)
        .env("E2E_LOGIN", "tenant-a-admin")
        .env("E2E_SCREENSHOT", &screenshot)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!(
                "{}",
                diagnostics(&format!(
                    "e2e.mjs printed no JSON ({:?})\nstdout: {stdout}\nstderr: {stderr}",
                    output.status
                ))
            )
        });
    assert!(
        output.status.success() && report["ok"] == true,
        "{}",
        diagnostics(&format!(
            "the browser run failed: {report:#}\nstderr: {stderr}"
        ))
    );
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );
    print_line(&format!("console screenshot: {}", screenshot.display()));
    assert_eq!(report["whoami"]["subject"], "tenant-a-admin", "{report}");
    assert_eq!(report["whoami"]["tenant"], "a", "{report}");
    assert_eq!(report["whoami"]["role"], "tenant_admin", "{report}");
    assert_eq!(report["row"]["command"], COMMAND, "{report}");
    assert_eq!(report["row"]["target"], "web-a", "{report}");
    assert_eq!(report["row"]["requester"], "tenant-a-agent", "{report}");
    assert!(
        report["row"]["rule"]
            .as_str()
            .is_some_and(|r| r.contains("approve")),
        "{report}"
    );
    assert_eq!(report["detail_reason"], REASON, "{report}");

    // 3. The agent collects: the call runs now, under its identity, and returns the real output.
    let collected = agent_call(
        &url,
        &agent,
        "approval_status",
        &json!({ "approval_id": approval_id, "wait_seconds": 30 }),
    );
    let stdout_of_call = collected["stdout"]
        .as_str()
        .or_else(|| collected["result"]["stdout"].as_str())
        .unwrap_or_else(|| panic!("{}", diagnostics(&format!("no stdout: {collected}"))));
    assert_eq!(stdout_of_call, "approved-by-a-human\n", "{collected}");
    // sshd names the certificate's key id: the call ran as the agent, not as the approver.
    let login = sshd
        .log_text()
        .lines()
        .find(|l| l.contains("Accepted ") && l.contains("ID meho:"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{}", diagnostics("the approved call never reached sshd")));
    assert!(login.contains("agent=tenant-a-agent"), "{login}");
    assert!(!login.contains("tenant-a-admin"), "{login}");

    // 4. The audit trail, as the approver reads it through the REST API.
    let admin = idp.token("tenant-a-admin", &url, "mcp:tools");
    let (status, approval) = get_json(&format!("{base}/api/v1/approvals/{approval_id}"), &admin);
    assert_eq!(status, 200, "{approval}");
    assert_eq!(approval["status"], "consumed", "{approval}");
    assert_eq!(approval["decided_by"], "tenant-a-admin", "{approval}");
    assert_eq!(approval["reason"], REASON, "{approval}");
    let (status, page) = get_json(
        &format!("{base}/api/v1/audit?approval_id={approval_id}&limit=1000"),
        &admin,
    );
    assert_eq!(status, 200, "{page}");
    let records = page["records"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"));
    assert!(
        records
            .iter()
            .all(|r| r["approval_id"] == approval_id.as_str()),
        "{records:#?}"
    );
    let of = |kind: &str| {
        records
            .iter()
            .filter(|r| r["kind"] == kind)
            .collect::<Vec<_>>()
    };
    let intents = of("intent");
    let outcomes = of("outcome");
    let approvals = of("approval");
    assert_eq!(intents.len(), 1, "{records:#?}");
    assert_eq!(outcomes.len(), 1, "{records:#?}");
    let (intent, outcome) = (intents[0], outcomes[0]);
    assert_eq!(
        intent["principal"], "tenant-a-agent",
        "runs as the requester"
    );
    assert_eq!(intent["target"], "web-a");
    assert_eq!(outcome["principal"], "tenant-a-agent");
    if !intent["call_id"].is_null() {
        assert_eq!(intent["call_id"], outcome["call_id"], "{records:#?}");
    }
    assert!(
        approvals
            .iter()
            .any(|r| r["principal"] == "tenant-a-admin" && r.to_string().contains(REASON)),
        "no approval record by the approver with the reason: {records:#?}"
    );
    assert!(
        approvals.iter().any(|r| r["principal"] == "tenant-a-agent"),
        "no record of the request: {records:#?}"
    );
    let seq = |r: &Value| r["seq"].as_i64().unwrap();
    let decided = approvals
        .iter()
        .filter(|r| r["principal"] == "tenant-a-admin")
        .map(|r| seq(r))
        .min()
        .unwrap();
    assert!(
        decided < seq(intent) && seq(intent) < seq(outcome),
        "approval, intent, outcome out of order: {records:#?}"
    );
    let (status, verify) = get_json(&format!("{base}/api/v1/audit/verify"), &admin);
    assert_eq!(status, 200, "{verify}");
    assert_eq!(verify["ok"], true, "{verify}");

    let status = daemon.terminate();
    assert!(status.success(), "{status:?}; log:\n{}", daemon.log_text());
}
