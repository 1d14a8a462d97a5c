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
//!
//! A second test needs only Chromium and the browser peer: against `meho serve --dev`, an
//! approval whose command, requester and target carry ESC, C1, DEL, a newline and bidi controls
//! must show them as visible escapes in the approvals list, the detail view, the audit record and
//! the live feed (screenshot `target/test-artifacts/console-forged-approvals.png`). A third checks
//! that the console's `shown()` escapes every character exactly as `meho_core::display::escape`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::Workdir;
use crate::forged::{
    self, COMMAND_SHOWN, NAME, NAME_SHOWN, REASON_SHOWN, TARGET, TARGET_SHOWN, assert_shown,
};
use crate::peers::{self, Idp, python_client};
use crate::remote_cli::Served;
use crate::support::{Daemon, Sshd, ca_init, free_port, meho_ca_pub, os, require_sshd};

/// The command the host's policy holds for a human.
const COMMAND: &str = "echo approved-by-a-human";
/// Why the approver approved it (it must reach the audit record).
const REASON: &str = "change ticket CHG-1234: console e2e";
/// A server-side dry run of `kubectl apply` diffed against the live object: what the coming
/// Kubernetes connector puts in a held call's preview.
const DRY_RUN_DIFF: &str = "--- apps/v1 Deployment prod/web (live)\n\
                            +++ apps/v1 Deployment prod/web (dry run)\n\
                            @@ -6,11 +6,12 @@\n\
                            \x20spec:\n\
                            -  replicas: 2\n\
                            +  replicas: 4\n\
                            \x20  template:\n\
                            \x20    spec:\n\
                            \x20      containers:\n\
                            \x20      - name: web\n\
                            -        image: registry.example/web:1.41.2\n\
                            +        image: registry.example/web:1.42.0\n\
                            \x20        resources:\n\
                            \x20          limits:\n\
                            +            memory: 512Mi\n\
                            \x20            cpu: 500m\n";

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
    let call = agent_try(url, token, tool, arguments);
    assert_eq!(call["is_error"], false, "{tool} {arguments}: {call}");
    call["structured_content"].clone()
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

/// The approver's side of the forged-text test, run by Node from the browser peer's directory
/// (so `playwright-core` resolves): signs in with the dev token, reads the approval's row and its
/// detail view (with its preview: each line's text, kind and colour), reads the preview of a
/// second, plain approval (a dry-run diff) and screenshots it, freezes the forged principal
/// through the API once the live feed is connected (the feed starts at the newest record), reads
/// the feed event and the freeze's audit record, and takes screenshots. Prints one JSON line.
const FORGED_SCRIPT: &str = r#"
import { chromium } from 'playwright-core';

const env = (name) => process.env[name] || '';
const base = env('MEHO_URL');
const approvalId = env('E2E_APPROVAL_ID');
const diffId = env('E2E_DIFF_APPROVAL_ID');
const token = env('E2E_TOKEN');
const timeout = 30000;
const result = { ok: false };
const problems = [];
let step = 'launch';
let browser;
try {
  browser = await chromium.launch({
    executablePath: env('MEHO_CHROMIUM'),
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout,
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 700 } });
  page.setDefaultTimeout(timeout);
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|Refused to|Uncaught/i.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
  const text = async (selector) => (await page.locator(selector).first().textContent()) || '';

  step = 'sign in with the dev token';
  await page.goto(`${base}/console/`);
  await page.locator('#dev-token-form').waitFor({ state: 'visible' });
  await page.locator('#dev-token').fill(token);
  await page.locator('#dev-token-submit').click();
  await page.locator('#whoami[data-subject]').waitFor({ state: 'attached' });

  step = 'the approvals list';
  await page.locator('#page-activity').waitFor({ state: 'visible' });
  await page.locator('[data-testid="nav-approvals"]').click();
  const row = page.locator(`tr[data-testid="approval-row"][data-approval-id="${approvalId}"]`);
  await row.waitFor({ state: 'visible' });
  result.row = {
    command: await row.locator('[data-testid="approval-command"]').textContent(),
    tool: await row.locator('[data-testid="approval-tool"]').textContent(),
    target: await row.locator('[data-testid="approval-target"]').textContent(),
    requester: await row.locator('[data-testid="approval-requester"]').textContent(),
    preview_link: await row.locator('[data-testid="approval-preview-link"]').textContent(),
  };
  result.list = await text('#approvals-rows');
  await page.screenshot({ path: env('E2E_SCREENSHOT'), fullPage: true });

  step = 'the approval detail';
  await page.evaluate((h) => { window.location.hash = h; }, `#/approvals/${approvalId}`);
  await page.locator('dd[data-field="summary"]').waitFor({ state: 'visible' });
  result.detail = {
    summary: await text('dd[data-field="summary"]'),
    requester: await text('dd[data-field="requester"]'),
    target: await text('dd[data-field="target"]'),
    fields: await text('#approval-fields'),
    arguments: await text('#approval-arguments'),
  };
  const previewLines = async () => {
    await page.locator('#approval-preview-section').waitFor({ state: 'visible' });
    const lines = page.locator('#approval-preview [data-testid="preview-line"]');
    return {
      text: await lines.allTextContents(),
      kind: await lines.evaluateAll((els) => els.map((el) => el.dataset.kind)),
      colour: await lines.evaluateAll((els) => els.map((el) => getComputedStyle(el).color)),
      // What a person copies or reads: the block's rendered text, one line per line.
      rendered: await page.locator('#approval-preview').innerText(),
    };
  };
  result.detail.preview = await previewLines();
  await page.screenshot({ path: env('E2E_DETAIL_SCREENSHOT'), fullPage: true });

  step = 'a plain preview';
  await page.evaluate((h) => { window.location.hash = h; }, `#/approvals/${diffId}`);
  await page.locator('#approval-id').filter({ hasText: diffId }).waitFor({ state: 'visible' });
  await page.locator('dd[data-field="summary"]').waitFor({ state: 'visible' });
  result.diff = await previewLines();
  await page.screenshot({ path: env('E2E_PREVIEW_SCREENSHOT'), fullPage: true });

  step = 'an approval without a preview';
  await page.evaluate((h) => { window.location.hash = h; }, `#/approvals/${env('E2E_PLAIN_APPROVAL_ID')}`);
  await page.locator('#approval-id').filter({ hasText: env('E2E_PLAIN_APPROVAL_ID') }).waitFor({ state: 'visible' });
  await page.locator('dd[data-field="summary"]').waitFor({ state: 'visible' });
  result.plain_preview_hidden = await page.locator('#approval-preview-section').isHidden();

  step = 'the live feed';
  await page.locator('[data-testid="nav-feed"]').click();
  await page.locator('#feed-status[data-state="live"]').waitFor({ state: 'attached' });
  const api = async (method, path, body) => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${await response.text()}`);
    return response.json();
  };
  await api('POST', '/api/v1/freezes', {
    kind: 'principal', value: env('E2E_FREEZE_VALUE'), reason: env('E2E_FREEZE_REASON'),
  });
  const event = page.locator('li[data-testid="feed-event"][data-kind="freeze"]');
  await event.first().waitFor({ state: 'visible' });
  result.feed = await text('#feed-list');

  step = 'the audit record';
  const records = await api('GET', '/api/v1/audit?kind=freeze&limit=1');
  const recordId = records.records[0].id;
  await page.evaluate((h) => { window.location.hash = h; }, `#/audit/${recordId}`);
  await page.locator('#audit-record-fields dd[data-field="kind"]').filter({ hasText: 'freeze' }).waitFor({ state: 'visible' });
  await page.locator('[data-testid="audit-record-raw-toggle"]').click();
  await page.locator('#audit-record').filter({ hasText: recordId }).waitFor({ state: 'visible' });
  result.audit_record = await text('#audit-record');
  result.audit_fields = await text('#audit-record-fields');

  step = 'page health';
  if (problems.length) throw new Error(problems.join('; '));
  result.ok = true;
} catch (error) {
  result.step = step;
  result.error = String(error && error.message ? error.message : error).split('\n')[0];
  result.problems = problems;
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(result.ok ? 0 : 1);
"#;

/// Runs `script` as an ES module on the pinned Node, from the browser peer's directory, with
/// `env`; returns the last JSON line it printed.
fn run_module(script: &str, env: &[(&str, &std::ffi::OsStr)]) -> Value {
    let mut command = Command::new(peers::node());
    command
        .arg("--input-type=module")
        .current_dir(browser_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!(
                "node printed no JSON ({:?})\nstdout: {stdout}\nstderr: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

#[test]
fn the_console_shows_forged_text_as_visible_escapes_in_every_view() {
    if !require_browser() {
        return;
    }
    let served = Served::start();
    let approval_id = served.approval_with(NAME, TARGET, forged::COMMAND, Some(forged::PREVIEW));
    // What a Kubernetes connector's dry run of an apply would show, and a call with none.
    let diff_id = served.approval_with(
        "deploy-agent",
        "prod-cluster",
        "kubectl apply -f deployment/web.yaml",
        Some(DRY_RUN_DIFF),
    );
    let plain_id = served.approval_on("deploy-agent", "web-allow", "systemctl restart nginx");

    let artifacts = artifacts_dir();
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("console-forged-approvals.png");
    let detail_screenshot = artifacts.join("console-forged-approval.png");
    let preview_screenshot = artifacts.join("console-approval-preview.png");
    for file in [&screenshot, &detail_screenshot, &preview_screenshot] {
        let _ = std::fs::remove_file(file);
    }
    let chromium = chromium();
    let report = run_module(
        FORGED_SCRIPT,
        &[
            ("MEHO_URL", served.url.as_ref()),
            ("MEHO_CHROMIUM", chromium.as_os_str()),
            ("E2E_TOKEN", served.token.as_ref()),
            ("E2E_APPROVAL_ID", approval_id.as_ref()),
            ("E2E_DIFF_APPROVAL_ID", diff_id.as_ref()),
            ("E2E_PLAIN_APPROVAL_ID", plain_id.as_ref()),
            ("E2E_FREEZE_VALUE", NAME.as_ref()),
            ("E2E_FREEZE_REASON", forged::REASON.as_ref()),
            ("E2E_SCREENSHOT", screenshot.as_os_str()),
            ("E2E_DETAIL_SCREENSHOT", detail_screenshot.as_os_str()),
            ("E2E_PREVIEW_SCREENSHOT", preview_screenshot.as_os_str()),
        ],
    );
    assert_eq!(report["ok"], true, "the browser run failed: {report:#}");
    for file in [&screenshot, &detail_screenshot, &preview_screenshot] {
        assert!(file.is_file(), "no screenshot at {}", file.display());
        print_line(&format!("console screenshot: {}", file.display()));
    }
    let field = |pointer: &str| {
        report
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no {pointer} in {report:#}"))
            .to_owned()
    };

    // The list: each cell exactly the escaped text.
    assert_eq!(field("/row/command"), COMMAND_SHOWN);
    assert_eq!(field("/row/requester").trim(), NAME_SHOWN);
    assert_eq!(field("/row/target").trim(), TARGET_SHOWN);
    assert_shown("approvals list", &field("/list"), &[COMMAND_SHOWN]);

    // The detail view.
    let summary = format!("ssh_execute on {TARGET_SHOWN}: {COMMAND_SHOWN}");
    assert_eq!(field("/detail/summary").trim(), summary);
    assert_eq!(field("/detail/requester").trim(), NAME_SHOWN);
    assert_eq!(field("/detail/target").trim(), TARGET_SHOWN);
    assert_shown("approval fields", &field("/detail/fields"), &[&summary]);
    // Indented JSON: JSON.stringify escapes ESC and the newline, shown() the C1, DEL and bidi.
    assert_shown(
        "approval arguments",
        &field("/detail/arguments"),
        &[
            r#""command": "touch '/etc/cron.d/x\u001b[2K\u001b[1G\x9b2K\x7f\u{202e}systemctl status nginx'""#,
            r#""server": "web-x\n\u{2066}1""#,
        ],
    );

    // The preview: one block per line, each exactly the escaped line, classed and coloured by
    // its sign; rendered, the lines stay lines and nothing raw reaches the screen.
    let strings = |pointer: &str| -> Vec<String> {
        report
            .pointer(pointer)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("no {pointer} in {report:#}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(strings("/detail/preview/text"), forged::PREVIEW_SHOWN);
    assert_eq!(
        strings("/detail/preview/kind"),
        ["header", "header", "hunk", "removed", "added", "added"]
    );
    let rendered = field("/detail/preview/rendered");
    assert_shown("approval preview", &rendered, &forged::PREVIEW_SHOWN);
    assert_eq!(
        rendered.trim_end().lines().collect::<Vec<_>>(),
        forged::PREVIEW_SHOWN
    );
    // The list points to it, counting the changed lines.
    assert_eq!(
        field("/row/preview_link"),
        "review the preview (+2 −1 lines)"
    );

    // The plain diff: added green, removed red (the console's --ok and --bad), the rest not.
    let diff_lines: Vec<&str> = DRY_RUN_DIFF.lines().collect();
    assert_eq!(strings("/diff/text"), diff_lines);
    let colours = strings("/diff/colour");
    let kinds = strings("/diff/kind");
    for ((line, kind), colour) in diff_lines.iter().zip(&kinds).zip(&colours) {
        let expected = match kind.as_str() {
            "added" => "rgb(23, 102, 58)",
            "removed" => "rgb(164, 22, 26)",
            "hunk" => "rgb(31, 58, 95)",
            _ => "rgb(27, 31, 36)",
        };
        assert_eq!(colour, expected, "{kind} line {line:?}");
    }
    assert_eq!(kinds.iter().filter(|k| *k == "added").count(), 3);
    assert_eq!(kinds.iter().filter(|k| *k == "removed").count(), 2);
    assert_eq!(report["plain_preview_hidden"], true, "{report:#}");

    // The audit record and the feed carry the freeze of the forged principal.
    assert_shown(
        "audit record",
        &field("/audit_record"),
        &[
            r#""value": "agent\u001b[2K\u{202e}7""#,
            r"ticket\x9b31m\x7f\t42",
        ],
    );
    assert_shown("live feed", &field("/feed"), &[REASON_SHOWN]);
    // The record's human view, above its raw JSON.
    assert_shown(
        "audit record fields",
        &field("/audit_fields"),
        &[NAME_SHOWN, REASON_SHOWN],
    );
}

#[test]
fn the_console_escape_matches_the_rust_escape_for_every_character() {
    let node_runs = Command::new(peers::node())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !peers::require("node (scripts/test installs the pinned Node 22)", node_runs) {
        return;
    }
    // The console's own definitions, cut from app.js, so the test runs the shipped code.
    let app = include_str!("../../../meho-server/console/app.js");
    let start = app
        .find("const DECEPTIVE =")
        .expect("app.js defines DECEPTIVE");
    let shown = app[start..]
        .find("function shown(")
        .map(|at| start + at)
        .expect("app.js defines shown()");
    let end = app[shown..]
        .find("\n  }\n")
        .map(|at| shown + at + "\n  }\n".len())
        .expect("shown() ends");
    let definitions = &app[start..end];
    let script = format!(
        "{definitions}\nconst out = [];\n\
         for (let code = 0; code <= 0xffff; code += 1) {{\n\
           if (code >= 0xd800 && code <= 0xdfff) continue;\n\
           out.push(shown(String.fromCharCode(code)));\n\
         }}\n\
         out.push(shown('\\u{{1f389}} a\\u001b[2K\\u202e b'));\n\
         process.stdout.write(`${{JSON.stringify({{ ok: true, out }})}}\\n`);\n"
    );
    let report = run_module(&script, &[]);
    let out = report["out"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"));
    let mut expected: Vec<String> = (0..=0xffff_u32)
        .filter_map(char::from_u32)
        .map(|c| meho_core::display::escape(&c.to_string()).into_owned())
        .collect();
    expected.push(meho_core::display::escape("\u{1f389} a\u{1b}[2K\u{202e} b").into_owned());
    assert_eq!(out.len(), expected.len());
    for (js, rust) in out.iter().zip(&expected) {
        assert_eq!(js.as_str(), Some(rust.as_str()), "console and CLI differ");
    }
}

/// `POST url` with a bearer token and a JSON body: the status and the JSON answer.
fn post_json(url: &str, token: &str, body: &Value) -> (u16, Value) {
    let output = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
        ])
        .args(["-H", "Content-Type: application/json", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg("--data-binary")
        .arg(body.to_string())
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (answer, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let json = serde_json::from_str(answer).unwrap_or(Value::Null);
    (status.trim().parse().unwrap_or(0), json)
}

/// A tool call of the agent over Streamable HTTP: the `call` object (errors included).
fn agent_try(url: &str, token: &str, tool: &str, arguments: &Value) -> Value {
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
    out["call"].clone()
}

/// Every page of the console against `meho serve --dev`, after real agent calls over MCP on a
/// real sshd: the Activity page (counters, the chart by decision and by tier, one timeline row
/// per call, a filter, a live update), a timeline row reached and opened by keyboard, the call
/// detail with its records and chain status, the audit search with its raw toggle, a freeze and
/// a grant created and taken back (and the API's refusals shown), an approval decided, and every
/// page at 800 px without sideways scrolling. A forged command (ESC, C1, DEL, U+202E) shows as
/// visible escapes in the timeline. Screenshots: `target/test-artifacts/console-*.png`.
#[test]
fn the_console_pages_show_each_call_once_update_live_and_work_by_keyboard_and_at_800_px() {
    if !require_python() || !require_browser() || !require_sshd("the console pages") {
        return;
    }
    let work = Workdir::new();
    let (ca, _) = ca_init(&work, "ca_key");
    let sshd = Sshd::start(work.path(), &meho_ca_pub(&ca));
    let config = work.write(
        "meho.toml",
        &format!(
            "[ca_keys._default]\npath = \"{ca}\"\n\n\
             [hosts.web]\naddr = \"127.0.0.1:{port}\"\nuser = \"root\"\nhost_key = \"{key}\"\n\
             command_policy = {{ mode = \"allowlist\", allow = ['^echo [a-z-]+$', '^uptime$', '^false$'], \
             require_approval = ['^echo held-'] }}\n\n\
             [hosts.lab]\naddr = \"127.0.0.1:{port}\"\nuser = \"root\"\nhost_key = \"{key}\"\n\
             command_policy = {{ mode = \"off\" }}\n",
            ca = ca.display(),
            port = sshd.port,
            key = sshd.host_key,
        ),
    );
    let state = work.path().join("state");
    let mut daemon = Daemon::start(
        &work,
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
    let line = |prefix: &str| {
        daemon
            .lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in {:?}", daemon.lines))
            .to_owned()
    };
    let agent = line("MEHO_TOKEN=");
    let approver = line("MEHO_APPROVER_TOKEN=");
    let base = format!("http://{}", line("meho listening on http://"));
    let url = format!("{base}/mcp");
    let exec = |command: &str| {
        agent_try(
            &url,
            &agent,
            "ssh_execute",
            &json!({ "server": "web", "command": command }),
        )
    };

    // The agent's calls: two that run, two refusals (one forged), three held.
    let hello = exec("echo hello");
    assert_eq!(hello["structured_content"]["stdout"], "hello\n", "{hello}");
    let failed = exec("false");
    assert_eq!(failed["structured_content"]["exit_code"], 1, "{failed}");
    assert_eq!(exec("rm -rf /tmp/x")["is_error"], true);
    assert_eq!(exec(forged::COMMAND)["is_error"], true);
    let hold = |command: &str| {
        let held = exec(command);
        assert_eq!(
            held["structured_content"]["status"], "pending_approval",
            "{held}"
        );
        held["structured_content"]["approval_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let approved = hold("echo held-approved");
    let live = hold("echo held-live");
    let ui = hold("echo held-ui");
    // Four eyes: the agent's own token cannot approve; the approver's can.
    let (status, refused) = post_json(
        &format!("{base}/api/v1/approvals/{approved}/approve"),
        &agent,
        &json!({ "reason": "my own call" }),
    );
    assert_eq!(
        (status, &refused["error"]),
        (403, &json!("four_eyes")),
        "{refused}"
    );
    let (status, decided) = post_json(
        &format!("{base}/api/v1/approvals/{approved}/approve"),
        &approver,
        &json!({ "reason": "change CHG-1: console pages" }),
    );
    assert_eq!(status, 200, "{decided}");
    let collected = agent_try(
        &url,
        &agent,
        "approval_status",
        &json!({ "approval_id": approved, "wait_seconds": 30 }),
    );
    assert_eq!(
        collected["structured_content"]["result"]["stdout"], "held-approved\n",
        "{collected}"
    );

    // A shell session, recorded: its closing call's page offers the recording.
    let opened = agent_try(
        &url,
        &agent,
        "ssh_session_open",
        // A shell session needs a host without a restricting policy.
        &json!({ "server": "lab", "mode": "shell" }),
    );
    let session = opened["structured_content"]["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{opened}"))
        .to_owned();
    let ran = agent_try(
        &url,
        &agent,
        "ssh_session_exec",
        &json!({ "session_id": session, "command": "echo recorded" }),
    );
    assert_eq!(ran["is_error"], false, "{ran}");
    let closed = agent_try(
        &url,
        &agent,
        "ssh_session_close",
        &json!({ "session_id": session }),
    );
    let recording_sha = closed["structured_content"]["recording_sha256"]
        .as_str()
        .unwrap_or_else(|| panic!("{closed}"))
        .to_owned();
    let (status, page) = get_json(
        &format!("{base}/api/v1/audit?session_id={session}&action=ssh_session_close"),
        &approver,
    );
    assert_eq!(status, 200, "{page}");
    let recording_call = page["records"][0]["call_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{page}"))
        .to_owned();

    let artifacts = artifacts_dir();
    std::fs::create_dir_all(&artifacts).unwrap();
    let shots = [
        "console-activity.png",
        "console-call.png",
        "console-recording.png",
        "console-audit.png",
        "console-freezes.png",
        "console-grants.png",
        "console-approvals-dev.png",
        "console-activity-800.png",
        "console-call-800.png",
        "console-approvals-800.png",
        "console-freezes-800.png",
        "console-grants-800.png",
        "console-audit-800.png",
        "console-feed-800.png",
    ];
    for name in shots {
        let _ = std::fs::remove_file(artifacts.join(name));
    }
    let output = Command::new(peers::node())
        .arg(browser_dir().join("pages.mjs"))
        .current_dir(browser_dir())
        .env("MEHO_URL", &base)
        .env("MEHO_CHROMIUM", chromium())
        .env("E2E_TOKEN", &approver)
        .env("E2E_ARTIFACTS", &artifacts)
        .env("E2E_LIVE_APPROVAL", &live)
        .env("E2E_UI_APPROVAL", &ui)
        .env("E2E_CALL_ID", &approved)
        .env("E2E_RECORDING_CALL", &recording_call)
        .env("E2E_RECORDING_SHA256", &recording_sha)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("pages.mjs printed no JSON\nstdout: {stdout}\nstderr: {stderr}"));
    assert!(
        output.status.success() && report["ok"] == true,
        "the browser run failed: {report:#}\nstderr: {stderr}\nmeho log:\n{}",
        daemon.log_text()
    );
    for name in shots {
        let file = artifacts.join(name);
        assert!(file.is_file(), "no screenshot at {}", file.display());
        print_line(&format!("console screenshot: {}", file.display()));
    }
    let get = |pointer: &str| {
        report
            .pointer(pointer)
            .cloned()
            .unwrap_or_else(|| panic!("no {pointer} in {report:#}"))
    };
    let text = |pointer: &str| get(pointer).as_str().unwrap_or_default().to_owned();

    // Sign-in: the form says which token approves; the console opens on Activity.
    assert!(
        text("/dev_help").contains("MEHO_APPROVER_TOKEN"),
        "{report:#}"
    );
    assert!(text("/dev_help").contains("four eyes"), "{report:#}");
    assert_eq!(text("/whoami"), "dev-approver");
    assert_eq!(text("/landed"), "#/activity");

    // The session's recording, downloaded from its call page, is the one its record vouches for.
    assert_eq!(text("/recording/sha256"), recording_sha, "{report:#}");
    assert_eq!(text("/recording/name"), format!("{session}.cast"));
    assert!(
        text("/recording/status").contains("sha256 verified"),
        "{report:#}"
    );

    // The timeline: one row per call, each with what it did and what became of it.
    let rows = get("/rows");
    let rows = rows.as_array().unwrap();
    let row = |command: &str| {
        let matching: Vec<&Value> = rows.iter().filter(|r| r["command"] == command).collect();
        assert_eq!(matching.len(), 1, "{command}: {rows:#?}");
        matching[0].clone()
    };
    let hello = row("echo hello");
    assert_eq!(hello["decision"], "allowed");
    assert_eq!(hello["agent"], "dev");
    assert_eq!(hello["rule"], "allow:^echo [a-z-]+$");
    assert!(
        hello["result"].as_str().unwrap().starts_with("exit 0 · "),
        "{hello}"
    );
    assert!(hello["when"].as_str().unwrap().contains(" UTC"), "{hello}");
    assert!(
        row("false")["result"]
            .as_str()
            .unwrap()
            .starts_with("exit 1")
    );
    assert_eq!(row("rm -rf /tmp/x")["decision"], "denied");
    let forged_row = row(COMMAND_SHOWN);
    assert_eq!(forged_row["decision"], "denied");
    assert_shown("activity timeline", &get("/rows").to_string(), &[]);
    assert_shown(
        "activity command",
        forged_row["command"].as_str().unwrap(),
        &[COMMAND_SHOWN],
    );
    let held_approved = row("echo held-approved");
    assert_eq!(held_approved["id"], approved.as_str());
    assert_eq!(held_approved["decision"], "approved");
    assert!(
        held_approved["result"]
            .as_str()
            .unwrap()
            .starts_with("exit 0")
    );
    assert_eq!(row("echo held-live")["decision"], "held");
    assert_eq!(row("echo held-ui")["decision"], "held");
    assert_eq!(text("/counters/pending"), "2");
    assert!(
        text("/counters/denials").parse::<u32>().unwrap() >= 2,
        "{report:#}"
    );
    assert_eq!(text("/counters/freezes"), "0");

    // The chart counts the same calls the timeline shows, by decision and by tier.
    let total = get("/chart/total").as_u64().unwrap();
    assert_eq!(total, rows.len() as u64, "{report:#}");
    assert_eq!(get("/chart/sum").as_u64(), Some(total));
    assert_eq!(get("/chart/tier_sum").as_u64(), Some(total));
    assert!(get("/chart/bars").as_u64().unwrap() >= 3, "{report:#}");
    for key in get("/chart/keys").as_array().unwrap() {
        assert!(
            ["allowed", "denied", "held", "approved"].contains(&key.as_str().unwrap()),
            "{key}"
        );
    }
    for key in get("/chart/tier_keys").as_array().unwrap() {
        assert!(
            ["read", "write", "destructive", "unknown"].contains(&key.as_str().unwrap()),
            "{key}"
        );
    }

    // Filters, and a live update with the page open.
    let denied = get("/denied_rows");
    let denied: Vec<&str> = denied
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["command"].as_str().unwrap())
        .collect();
    assert_eq!(denied, [COMMAND_SHOWN, "rm -rf /tmp/x"]);
    assert_eq!(get("/nobody_rows"), 0);
    assert_eq!(text("/live_before"), "held");
    assert_eq!(text("/live_after"), "approved");
    assert_eq!(text("/pending_after_live"), "1");

    // The keyboard reaches a row and opens its call; the focus is visible.
    assert!(
        text("/keyboard/opened").starts_with("#/calls/"),
        "{report:#}"
    );
    assert_eq!(text("/keyboard/outline"), "solid", "{report:#}");

    // The call detail of the held, approved and run call.
    assert_eq!(text("/call/command"), "echo held-approved");
    assert_eq!(text("/call/decision"), "approved");
    assert_eq!(text("/call/verify/state"), "ok", "{report:#}");
    assert_eq!(text("/call/decided_by"), "dev-approver");
    assert_eq!(text("/call/reason"), "change CHG-1: console pages");
    assert!(text("/call/serial").chars().all(|c| c.is_ascii_digit()));
    assert!(
        text("/call/result").starts_with("exit status 0"),
        "{report:#}"
    );
    assert_eq!(text("/call/output"), "14 bytes");
    assert_eq!(text("/call/output_sha256").len(), 64);
    let records = get("/call/records");
    let records = records.as_array().unwrap();
    let links: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["linked_by"].as_str().unwrap(),
            )
        })
        .collect();
    for wanted in [
        ("denial", "held_call"),
        ("approval", "approval_id"),
        ("credential", "approval_id"),
        ("intent", "approval_id"),
        ("outcome", "approval_id"),
    ] {
        assert!(links.contains(&wanted), "{wanted:?} not in {links:?}");
    }
    // Linked by ids, not guessed: both the broker's refusal of the held call and the signer's
    // decision on it carry the held call's id, which its approval request names.
    let held: Vec<&(&str, &str)> = links.iter().filter(|l| l.1 == "held_call").collect();
    assert_eq!(held.len(), 2, "{links:?}");
    assert!(
        !links
            .iter()
            .any(|l| matches!(l.1, "signer_decision" | "credential_serial")),
        "{links:?}"
    );
    assert!(
        records
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()),
        "chain order: {records:#?}"
    );
    assert_eq!(get("/call/raw_seq"), records[0]["seq"]);

    // The audit search: human rows, times to the second with the zone, JSON behind a toggle.
    assert_eq!(text("/audit/verify"), "ok");
    for shown in get("/audit/when").as_array().unwrap() {
        let shown = shown.as_str().unwrap();
        assert!(is_relative_then_absolute(shown), "{shown:?}");
    }
    assert!(
        get("/audit/what")
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("ssh_execute · echo hello")),
        "{report:#}"
    );
    assert_eq!(get("/audit/raw_visible_before"), false);
    assert!(
        get("/audit/raw/hash")
            .as_str()
            .is_some_and(|h| h.len() == 64)
    );
    assert_eq!(text("/audit/still_on_search"), "#/audit");

    // Freezes and grants, and the API's refusals shown as the API says them.
    assert!(text("/freeze_error").contains("HTTP 400"), "{report:#}");
    assert!(text("/freeze/message").contains("froze principal agent-e2e"));
    assert_eq!(text("/freeze/after/active"), "false");
    assert!(
        text("/freeze/after/state").contains("lifted by dev-approver"),
        "{report:#}"
    );
    assert!(text("/grant_error").contains("HTTP 404"), "{report:#}");
    assert!(text("/grant/message").contains("^uptime -p$"));
    assert!(
        text("/grant/revoked").starts_with("revoked grt-"),
        "{report:#}"
    );

    // Approvals: decided in the console.
    assert_eq!(text("/approval_row/command"), "echo held-ui");
    assert!(text("/approval_row/expires").ends_with(" UTC"));
    assert!(text("/approved").starts_with(&format!("approved {ui}")));

    // 800 px: no page scrolls sideways.
    for (page, overflow) in get("/narrow").as_object().unwrap() {
        assert!(
            overflow["document"].as_i64() <= Some(0) && overflow["body"].as_i64() <= Some(0),
            "{page} overflows at 800 px: {overflow}"
        );
    }
    assert_eq!(get("/narrow").as_object().unwrap().len(), 7);

    // Through the API: the console's decisions are there, one call each.
    let (status, page) = get_json(&format!("{base}/api/v1/activity?limit=200"), &approver);
    assert_eq!(status, 200, "{page}");
    let calls = page["calls"].as_array().unwrap();
    for (id, decision) in [
        (&approved, "approved"),
        (&live, "approved"),
        (&ui, "approved"),
    ] {
        let matching: Vec<&Value> = calls.iter().filter(|c| c["id"] == id.as_str()).collect();
        assert_eq!(matching.len(), 1, "{id}: {calls:#?}");
        assert_eq!(matching[0]["decision"], decision, "{id}");
    }
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}; log:\n{}", daemon.log_text());
}

/// `3 min ago2026-12-07 12:43:06 UTC` or `just now2026-…` (the relative time, then the absolute
/// one to the second with its zone and no fraction), as an audit row's time cell reads.
fn is_relative_then_absolute(text: &str) -> bool {
    let (relative_ok, absolute) = match text.strip_prefix("just now") {
        Some(absolute) => (true, absolute),
        None => match text.split_once(" ago") {
            Some((relative, absolute)) => (
                relative.split_once(' ').is_some_and(|(n, unit)| {
                    n.chars().all(|c| c.is_ascii_digit())
                        && ["s", "min", "h", "days"].contains(&unit)
                }),
                absolute,
            ),
            None => return false,
        },
    };
    let digits =
        |part: &str, len: usize| part.len() == len && part.chars().all(|c| c.is_ascii_digit());
    let absolute_ok = absolute.strip_suffix(" UTC").is_some_and(|stamp| {
        let Some((date, time)) = stamp.split_once(' ') else {
            return false;
        };
        let date: Vec<&str> = date.split('-').collect();
        let time: Vec<&str> = time.split(':').collect();
        date.len() == 3
            && digits(date[0], 4)
            && digits(date[1], 2)
            && digits(date[2], 2)
            && time.len() == 3
            && time.iter().all(|t| digits(t, 2))
    });
    relative_ok && absolute_ok
}
