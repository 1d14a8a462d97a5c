//! The human in the loop against real peers: `meho serve` behind the OpenID provider, a real sshd,
//! the official Python MCP SDK as the agent, and the REST API (curl) as the human.
//!
//! Identities (IdP clients): `tenant-a-agent` (operator, asks), `tenant-a-admin` (tenant_admin,
//! approves), `tenant-a-reader` (read_only), `tenant-b-admin` (another tenant's admin).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::mcp::{
    Lab, Served, call, call_args, call_ok, call_refused, py_http, require_curl, require_python,
    serve_on_a_port,
};
use crate::peers::Idp;
use crate::support::require_sshd;

/// The command the host's policy holds for a human.
const HELD: &str = "^echo held-";

/// `curl` a JSON API: the status and the parsed body (`null` when empty).
fn api(method: &str, url: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    let mut command = Command::new("curl");
    command.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, url]);
    command.args(["-H", &format!("Authorization: Bearer {token}")]);
    command.args(["-H", "User-Agent: meho-hitl-test/1"]);
    if let Some(body) = body {
        command.args(["-H", "Content-Type: application/json", "--data-binary"]);
        command.arg(body.to_string());
    }
    let output = command.output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let value = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()))
    };
    (status.trim().parse().unwrap_or(0), value)
}

/// A webhook receiver on loopback: remembers every request body it gets, answers 200.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/ops", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(value) = lower.strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_ok()
                    && let Ok(value) = serde_json::from_slice(&body)
                {
                    seen.lock().unwrap().push(value);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        Receiver { url, bodies }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// Tenant `a`'s hosts on the lab's sshd: `web-a` holds `echo held-…` for approval; `list-a` is an
/// allowlist (for grants).
fn config(lab: &Lab, issuer: &str, resource: &str, webhook: Option<&str>) -> String {
    let hook = webhook
        .map(|url| {
            format!(
                "\n[[notifications.webhooks]]\nname = \"ops\"\nurl = \"{url}\"\nformat = \"generic\"\nmax_attempts = 2\n"
            )
        })
        .unwrap_or_default();
    format!(
        "{}\n[auth]\nissuer = \"{issuer}\"\naudience = \"{resource}\"\ngroups_claim = \"groups\"\n\n\
         [tenancy]\nenabled = true\n{}{}{}{hook}",
        lab.ca_section(),
        lab.host(
            "web-a",
            &format!(
                "tenant = \"a\"\ngroups = [\"ops\"]\nallow_sudo = true\n\
                 command_policy = {{ mode = \"denylist\", require_approval = ['{HELD}'] }}"
            )
        ),
        lab.host(
            "list-a",
            "tenant = \"a\"\ngroups = [\"ops\"]\n\
             command_policy = { mode = \"allowlist\", allow = ['^echo '], tier = \"read\" }"
        ),
        lab.host("web-b", "tenant = \"b\"\ngroups = [\"ops\"]"),
    )
}

struct World {
    lab: Lab,
    idp: Idp,
    served: Option<Served>,
    agent: String,
    admin: String,
    reader: String,
    other: String,
}

impl World {
    fn start(webhook: Option<&str>) -> Option<World> {
        if !require_python() || !require_curl() || !require_sshd("human-in-the-loop tests") {
            return None;
        }
        let idp = Idp::start("http://127.0.0.1:8080/mcp")?;
        let lab = Lab::with_sshd();
        let served = serve_on_a_port(&lab, |r| config(&lab, &idp.issuer, r, webhook), &[]);
        let token = |client: &str| idp.token(client, &served.url, "mcp:tools");
        Some(World {
            agent: token("tenant-a-agent"),
            admin: token("tenant-a-admin"),
            reader: token("tenant-a-reader"),
            other: token("tenant-b-admin"),
            served: Some(served),
            lab,
            idp,
        })
    }

    fn served(&self) -> &Served {
        self.served.as_ref().unwrap()
    }

    fn base(&self) -> String {
        self.served().base.clone()
    }

    fn mcp(&self) -> String {
        self.served().url.clone()
    }

    /// Stops the server and starts it again on the same state (and a new port).
    fn restart(&mut self) {
        self.served.take().unwrap().stop();
        let served = serve_on_a_port(
            &self.lab,
            |r| config(&self.lab, &self.idp.issuer, r, None),
            &[],
        );
        let token = |client: &str| self.idp.token(client, &served.url, "mcp:tools");
        self.agent = token("tenant-a-agent");
        self.admin = token("tenant-a-admin");
        self.served = Some(served);
    }

    /// The agent's `ssh_execute` of `command` on `web-a`, which the policy holds: the pending
    /// answer.
    fn held(&self, token: &str, command: &str) -> Value {
        let pending = call_ok(
            &self.mcp(),
            token,
            "ssh_execute",
            &json!({ "server": "web-a", "command": command }),
        );
        assert_eq!(pending["status"], "pending_approval", "{pending}");
        assert!(pending["approval_id"].as_str().unwrap().starts_with("apr-"));
        pending
    }

    fn decide(&self, token: &str, id: &str, verb: &str, body: &Value) -> (u16, Value) {
        api(
            "POST",
            &format!("{}/api/v1/approvals/{id}/{verb}", self.base()),
            token,
            Some(body),
        )
    }

    fn audit(&self, query: &str) -> Vec<Value> {
        let (status, page) = api(
            "GET",
            &format!("{}/api/v1/audit?limit=1000&{query}", self.base()),
            &self.admin,
            None,
        );
        assert_eq!(status, 200, "{page}");
        page["records"].as_array().unwrap().clone()
    }

    fn stop(mut self) {
        self.served.take().unwrap().stop();
        self.lab.assert_audit_verifies();
    }
}

/// `approval_status` as the agent: (is_error, structured content, progress notifications).
fn status(world: &World, token: &str, id: &str, wait: u32) -> (bool, Value, Vec<Value>) {
    let (code, out) = call(
        &world.mcp(),
        token,
        "approval_status",
        &json!({ "approval_id": id, "wait_seconds": wait }),
    );
    assert_eq!(code, 0, "{out}");
    let call = &out["call"];
    (
        call["is_error"].as_bool().unwrap(),
        call["structured_content"].clone(),
        call["progress"].as_array().cloned().unwrap_or_default(),
    )
}

#[test]
fn an_approved_call_runs_once_as_the_requester_with_every_step_audited_and_linked() {
    let hook = Receiver::start();
    let Some(world) = World::start(Some(&hook.url)) else {
        return;
    };
    // 1. The call is held, nothing runs, the approvers are told.
    let pending = world.held(&world.agent, "echo held-1");
    let id = pending["approval_id"].as_str().unwrap().to_owned();
    assert_eq!(pending["summary"], "ssh_execute on web-a: echo held-1");
    assert!(pending["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        pending["console_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/console/#/approvals/{id}")),
        "{pending}"
    );
    let (is_error, now, _) = status(&world, &world.agent, &id, 0);
    assert!(!is_error);
    assert_eq!(now["status"], "pending_approval");
    let (code, listed) = api(
        "GET",
        &format!("{}/api/v1/approvals?status=pending", world.base()),
        &world.admin,
        None,
    );
    assert_eq!(code, 200, "{listed}");
    let row = &listed["approvals"][0];
    assert_eq!(row["id"], id.as_str());
    assert_eq!(row["requester"], "tenant-a-agent");
    assert_eq!(row["arguments"]["command"], "echo held-1");
    assert_eq!(row["rule"], "require_approval:^echo held-");
    assert_eq!(row["call_hash"].as_str().unwrap().len(), 64);
    // The webhook got it, with the console link.
    let delivered = (0..50)
        .find_map(|_| {
            let bodies = hook.bodies();
            if bodies.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
                None
            } else {
                Some(bodies)
            }
        })
        .expect("the webhook received nothing");
    assert_eq!(delivered[0]["type"], "approval.pending");
    assert_eq!(delivered[0]["approval"]["id"], id.as_str());
    assert_eq!(delivered[0]["approval"]["console_url"], row["console_url"]);

    // 2. The agent waits (long poll with progress) while a human approves.
    let waiter = {
        let (url, token, id) = (world.mcp(), world.agent.clone(), id.clone());
        std::thread::spawn(move || {
            let actions = call_args(
                "approval_status",
                &json!({ "approval_id": id, "wait_seconds": 30 }),
            );
            let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
            py_http(
                &url,
                Some(&token),
                &[&actions[..], &["--timeout", "60"]].concat(),
            )
        })
    };
    // Long enough for the Python client to start and wait (seconds on a loaded machine), so the
    // wait spans several progress ticks before the decision.
    std::thread::sleep(Duration::from_millis(6000));
    let (code, decided) = world.decide(
        &world.admin,
        &id,
        "approve",
        &json!({ "reason": "CHG-42 restart window" }),
    );
    assert_eq!(code, 200, "{decided}");
    assert_eq!(decided["status"], "approved");
    assert_eq!(decided["decided_by"], "tenant-a-admin");

    // 3. The waiting call returns the real output.
    let (code, out) = waiter.join().unwrap();
    assert_eq!(code, 0, "{out}\nsshd:\n{}", world.lab.sshd_log());
    assert_eq!(out["call"]["is_error"], false, "{out}");
    let result = &out["call"]["structured_content"];
    assert_eq!(result["status"], "executed", "{out}");
    assert_eq!(result["result"]["stdout"], "held-1\n", "{out}");
    assert!(
        !out["call"]["progress"].as_array().unwrap().is_empty(),
        "no progress notifications while waiting: {out}"
    );

    // Double collection is refused; the approval is consumed.
    let (is_error, again, _) = status(&world, &world.agent, &id, 0);
    assert!(is_error);
    assert_eq!(again["error"], "approval_consumed", "{again}");
    let (_, shown) = api(
        "GET",
        &format!("{}/api/v1/approvals/{id}", world.base()),
        &world.admin,
        None,
    );
    assert_eq!(shown["status"], "consumed");

    // 4. The audit links request, approval, credential, intent, outcome and consumption.
    let records = world.audit(&format!("approval_id={id}"));
    let has = |kind: &str, outcome: &str| {
        records
            .iter()
            .any(|r| r["kind"] == kind && r["outcome"] == outcome)
    };
    for (kind, outcome) in [
        ("approval", "pending"),
        ("approval", "approved"),
        ("approval", "consumed"),
        ("approval", "notified"),
        ("credential", "issued"),
        ("intent", "allowed"),
    ] {
        assert!(has(kind, outcome), "no {kind}/{outcome}: {records:#?}");
    }
    let approved = records
        .iter()
        .find(|r| r["kind"] == "approval" && r["outcome"] == "approved")
        .unwrap();
    assert_eq!(approved["principal"], "tenant-a-admin");
    assert_eq!(approved["body"]["reason"], "CHG-42 restart window");
    assert_eq!(approved["body"]["user_agent"], "meho-hitl-test/1");
    assert_eq!(approved["body"]["ip"], "127.0.0.1");
    let intent = records.iter().find(|r| r["kind"] == "intent").unwrap();
    assert_eq!(
        intent["principal"], "tenant-a-agent",
        "runs as the requester"
    );
    let outcome = world.audit(&format!(
        "call_id={}&kind=outcome",
        intent["call_id"].as_str().unwrap()
    ));
    assert_eq!(outcome.len(), 1, "{outcome:?}");
    assert_eq!(outcome[0]["body"]["exit_status"], 0, "{outcome:?}");
    world.stop();
}

#[test]
fn four_eyes_self_role_and_tenant_are_refused_and_audited() {
    let Some(world) = World::start(None) else {
        return;
    };
    // The admin asks, so the admin cannot approve it.
    let own = world.held(&world.admin, "echo held-own");
    let own_id = own["approval_id"].as_str().unwrap();
    let (code, body) = world.decide(&world.admin, own_id, "approve", &json!({ "reason": "me" }));
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["error"], "four_eyes");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("requested this call"),
        "{body}"
    );

    let asked = world.held(&world.agent, "echo held-2");
    let id = asked["approval_id"].as_str().unwrap();
    // A read_only role may not decide.
    let (code, body) = world.decide(&world.reader, id, "approve", &json!({ "reason": "r" }));
    assert_eq!(
        (code, body["error"].as_str()),
        (403, Some("four_eyes")),
        "{body}"
    );
    // An operator (not in approver_roles) may not either: the agent cannot approve its own call.
    let (code, body) = world.decide(&world.agent, id, "approve", &json!({ "reason": "r" }));
    assert_eq!(
        (code, body["error"].as_str()),
        (403, Some("four_eyes")),
        "{body}"
    );
    // Another tenant's admin does not see it at all.
    let (code, body) = world.decide(&world.other, id, "approve", &json!({ "reason": "r" }));
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (code, _) = api(
        "GET",
        &format!("{}/api/v1/approvals/{id}", world.base()),
        &world.other,
        None,
    );
    assert_eq!(code, 404);
    // Still pending after all of that; a missing reason is a 400.
    let (is_error, now, _) = status(&world, &world.agent, id, 0);
    assert!(!is_error);
    assert_eq!(now["status"], "pending_approval");
    let (code, body) = world.decide(&world.admin, id, "approve", &json!({ "reason": " " }));
    assert_eq!((code, body["error"].as_str()), (400, Some("bad_request")));
    let (code, body) = world.decide(&world.admin, id, "approve", &json!({ "why": "x" }));
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );

    // Denied: the agent gets an error with the reason, and nothing ran.
    let (code, body) = world.decide(
        &world.admin,
        id,
        "deny",
        &json!({ "reason": "not during the freeze window" }),
    );
    assert_eq!(code, 200, "{body}");
    let (is_error, denied, _) = status(&world, &world.agent, id, 0);
    assert!(is_error);
    assert_eq!(denied["error"], "approval_denied");
    assert!(
        denied["message"]
            .as_str()
            .unwrap()
            .contains("not during the freeze window")
    );
    // A decided approval cannot be decided again.
    let (code, body) = world.decide(&world.admin, id, "approve", &json!({ "reason": "r" }));
    assert_eq!((code, body["error"].as_str()), (409, Some("wrong_state")));

    // Every refusal is in the audit log.
    let refused = world.audit("kind=approval&outcome=refused_four_eyes");
    assert_eq!(refused.len(), 3, "{refused:#?}");
    assert!(
        world
            .audit(&format!("approval_id={id}&kind=intent"))
            .is_empty(),
        "a denied call must not run"
    );
    world.stop();
}

#[test]
fn expiry_fails_closed_for_pending_and_uncollected_approvals() {
    let Some(world) = World::start(None) else {
        return;
    };
    let db = format!("sqlite://{}", world.lab.state().join("meho.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let approvals = runtime.block_on(async {
        let store = meho_store::Store::open(&db).await.unwrap();
        meho_approvals::Approvals::new(store.pool().clone(), Default::default())
    });
    let past = meho_approvals::now_us() - 1;

    // Pending, and the time ran out: nobody can approve it, the agent is told.
    let pending = world.held(&world.agent, "echo held-late");
    let id = pending["approval_id"].as_str().unwrap();
    runtime
        .block_on(approvals.set_expiry_for_tests(id, past))
        .unwrap();
    let (code, body) = world.decide(&world.admin, id, "approve", &json!({ "reason": "late" }));
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("wrong_state")),
        "{body}"
    );
    let (is_error, expired, _) = status(&world, &world.agent, id, 0);
    assert!(is_error);
    assert_eq!(expired["error"], "approval_expired");

    // Approved but never collected in time: collecting fails, nothing runs.
    let pending = world.held(&world.agent, "echo held-uncollected");
    let id = pending["approval_id"].as_str().unwrap();
    let (code, _) = world.decide(&world.admin, id, "approve", &json!({ "reason": "ok" }));
    assert_eq!(code, 200);
    runtime
        .block_on(approvals.set_expiry_for_tests(id, past))
        .unwrap();
    let (is_error, expired, _) = status(&world, &world.agent, id, 0);
    assert!(is_error, "{expired}");
    assert_eq!(expired["error"], "approval_expired");
    assert!(
        world
            .audit(&format!("approval_id={id}&kind=credential"))
            .is_empty(),
        "no credential for an expired approval"
    );
    // The sweeper writes the transition into the audit log (it runs every 5 s).
    let swept = (0..40).any(|_| {
        let found = !world
            .audit(&format!("approval_id={id}&outcome=expired"))
            .is_empty();
        if !found {
            std::thread::sleep(Duration::from_millis(250));
        }
        found
    });
    assert!(swept, "the expiry was not audited");
    world.stop();
}

#[test]
fn approve_and_learn_lets_exactly_that_command_through_until_the_waiver_expires() {
    let Some(world) = World::start(None) else {
        return;
    };
    let pending = world.held(&world.agent, "echo held-learned");
    let id = pending["approval_id"].as_str().unwrap();
    let (code, decided) = world.decide(
        &world.admin,
        id,
        "approve",
        &json!({ "reason": "routine", "learn_ttl_seconds": 3600 }),
    );
    assert_eq!(code, 200, "{decided}");
    assert!(
        decided["waiver"]["id"]
            .as_str()
            .unwrap()
            .starts_with("wvr-")
    );
    let (is_error, ran, _) = status(&world, &world.agent, id, 0);
    assert!(!is_error, "{ran}");
    assert_eq!(ran["status"], "executed", "{ran}");
    assert_eq!(ran["result"]["stdout"], "held-learned\n", "{ran}");
    // The waiver does not make the approval reusable: it is consumed by the run that collected
    // it, which carries its id, and a second collection runs nothing.
    let (is_error, again, _) = status(&world, &world.agent, id, 0);
    assert!(is_error, "collected twice: {again}");
    assert_eq!(again["error"], "approval_consumed", "{again}");
    let (_, shown) = api(
        "GET",
        &format!("{}/api/v1/approvals/{id}", world.base()),
        &world.admin,
        None,
    );
    assert_eq!(shown["status"], "consumed", "{shown}");
    let linked = world.audit(&format!("approval_id={id}"));
    let count = |kind: &str, outcome: &str| {
        linked
            .iter()
            .filter(|r| r["kind"] == kind && r["outcome"] == outcome)
            .count()
    };
    assert_eq!(count("credential", "issued"), 1, "{linked:#?}");
    assert_eq!(count("intent", "allowed"), 1, "{linked:#?}");
    assert_eq!(count("approval", "consumed"), 1, "{linked:#?}");
    // The same command now runs at once, under the waiver.
    let direct = call_ok(
        &world.mcp(),
        &world.agent,
        "ssh_execute",
        &json!({ "server": "web-a", "command": "echo held-learned" }),
    );
    assert_eq!(direct["stdout"], "held-learned\n", "{direct}");
    // Anything else, elevation included, is still held.
    world.held(&world.agent, "echo held-learned-2");
    let sudo = call_ok(
        &world.mcp(),
        &world.agent,
        "ssh_execute",
        &json!({ "server": "web-a", "command": "echo held-learned", "sudo": true }),
    );
    assert_eq!(sudo["status"], "pending_approval", "{sudo}");
    // …and so is the admin (another caller and end user).
    world.held(&world.admin, "echo held-learned");
    let minted = world.audit("kind=waiver");
    assert_eq!(minted.len(), 1, "{minted:?}");
    assert_eq!(minted[0]["body"]["command"], "echo held-learned");
    world.stop();
}

/// A raw Streamable HTTP MCP session over curl, for what the Python SDK does not speak: the
/// tasks extension (SEP-2663).
struct RawMcp {
    url: String,
    token: String,
    session: String,
    next_id: u64,
}

impl RawMcp {
    const TASKS: &str = "io.modelcontextprotocol/tasks";

    /// POSTs one JSON-RPC message; the response headers and body.
    fn post(url: &str, token: &str, session: Option<&str>, body: &Value) -> (String, String) {
        let mut command = Command::new("curl");
        command.args(["-s", "-D", "-", "-X", "POST", url]);
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
        command.args(["-H", "Content-Type: application/json"]);
        command.args(["-H", "Accept: application/json, text/event-stream"]);
        if let Some(session) = session {
            command.args(["-H", &format!("Mcp-Session-Id: {session}")]);
            command.args(["-H", "Mcp-Protocol-Version: 2025-06-18"]);
        }
        command.args(["--data-binary", &body.to_string()]);
        let output = command.output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (head.to_owned(), body.to_owned())
    }

    /// The JSON-RPC answer to request `id` in a JSON or SSE body.
    fn answer(body: &str, id: u64) -> Value {
        let parse = |text: &str| serde_json::from_str::<Value>(text).ok();
        std::iter::once(parse(body))
            .chain(
                body.lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| parse(d.trim())),
            )
            .flatten()
            .find(|m| m["id"] == json!(id))
            .unwrap_or_else(|| panic!("no answer to request {id} in {body}"))
    }

    /// An initialized session declaring the tasks extension.
    fn connect(url: &str, token: &str) -> RawMcp {
        let initialize = json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": { "extensions": { Self::TASKS: {} } },
                "clientInfo": { "name": "meho-hitl-tasks", "version": "0" },
            },
        });
        let (head, body) = Self::post(url, token, None, &initialize);
        let session = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("mcp-session-id")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no session id: {head}\n{body}"));
        assert_eq!(
            Self::answer(&body, 1)["result"]["serverInfo"]["name"],
            "meho"
        );
        let mcp = RawMcp {
            url: url.to_owned(),
            token: token.to_owned(),
            session,
            next_id: 2,
        };
        Self::post(
            url,
            token,
            Some(&mcp.session),
            &json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
        );
        mcp
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let (_, body) = Self::post(&self.url, &self.token, Some(&self.session), &message);
        Self::answer(&body, id)
    }
}

/// The tasks path: a held call becomes a task that the approval completes, run once by the
/// signer's redemption; asking for the task again replays its result, and collecting the
/// approval again with `approval_status` runs nothing.
#[test]
fn a_task_collects_its_approval_exactly_once() {
    let Some(world) = World::start(None) else {
        return;
    };
    let mut mcp = RawMcp::connect(&world.mcp(), &world.agent);
    let created = mcp.request(
        "tools/call",
        json!({ "name": "ssh_execute", "arguments": { "server": "web-a", "command": "echo held-task" } }),
    );
    let task = &created["result"];
    assert_eq!(task["resultType"], "task", "{created}");
    let id = task["taskId"].as_str().unwrap().to_owned();
    let (code, decided) = world.decide(&world.admin, &id, "approve", &json!({ "reason": "task" }));
    assert_eq!(code, 200, "{decided}");
    let completed = (0..100)
        .find_map(|_| {
            let polled = mcp.request("tasks/get", json!({ "taskId": id }));
            if polled["result"]["status"] == "completed" {
                Some(polled)
            } else {
                std::thread::sleep(Duration::from_millis(100));
                None
            }
        })
        .expect("the task never completed");
    let result = &completed["result"]["result"];
    assert_eq!(result["isError"], false, "{completed}");
    assert_eq!(
        result["structuredContent"]["result"]["stdout"], "held-task\n",
        "{completed}"
    );
    let again = mcp.request("tasks/get", json!({ "taskId": id }));
    assert_eq!(again["result"]["result"], *result, "{again}");
    let (is_error, collected, _) = status(&world, &world.agent, &id, 0);
    assert!(is_error, "collected twice: {collected}");
    assert_eq!(collected["error"], "approval_consumed", "{collected}");
    let linked = world.audit(&format!("approval_id={id}"));
    let count = |kind: &str, outcome: &str| {
        linked
            .iter()
            .filter(|r| r["kind"] == kind && r["outcome"] == outcome)
            .count()
    };
    assert_eq!(count("credential", "issued"), 1, "{linked:#?}");
    assert_eq!(count("intent", "allowed"), 1, "{linked:#?}");
    world.stop();
}

#[test]
fn grants_widen_allowlists_only_and_need_an_operator() {
    let Some(world) = World::start(None) else {
        return;
    };
    let base = world.base();
    let id_call = json!({ "server": "list-a", "command": "id -u" });
    let (code, _) = call_refused(&world.mcp(), &world.agent, "ssh_execute", &id_call);
    assert_eq!(code, "denied");

    let grant = json!({
        "target": "list-a", "pattern": "^id -u$", "tier": "read", "ttl_seconds": 600,
        "reason": "debugging INC-7",
    });
    let (code, body) = api(
        "POST",
        &format!("{base}/api/v1/grants"),
        &world.reader,
        Some(&grant),
    );
    assert_eq!(
        (code, body["error"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let on_default_allow = json!({ "target": "web-a", "pattern": "^id$", "tier": "read", "ttl_seconds": 600, "reason": "x" });
    let (code, body) = api(
        "POST",
        &format!("{base}/api/v1/grants"),
        &world.agent,
        Some(&on_default_allow),
    );
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("grant_needs_allowlist")),
        "{body}"
    );
    let bad = json!({ "target": "list-a", "pattern": "(", "tier": "read", "ttl_seconds": 600, "reason": "x" });
    let (code, _) = api(
        "POST",
        &format!("{base}/api/v1/grants"),
        &world.agent,
        Some(&bad),
    );
    assert_eq!(code, 400);
    let (code, created) = api(
        "POST",
        &format!("{base}/api/v1/grants"),
        &world.agent,
        Some(&grant),
    );
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["active"], true);
    let gid = created["id"].as_str().unwrap();

    let ran = call_ok(&world.mcp(), &world.agent, "ssh_execute", &id_call);
    assert_eq!(ran["stdout"], "0\n", "{ran}");
    let (_, listed) = api("GET", &format!("{base}/api/v1/grants"), &world.reader, None);
    assert_eq!(listed["grants"][0]["id"], gid);

    let (code, revoked) = api(
        "DELETE",
        &format!("{base}/api/v1/grants/{gid}"),
        &world.admin,
        None,
    );
    assert_eq!(code, 200, "{revoked}");
    assert_eq!(revoked["active"], false);
    let (code, _) = api(
        "DELETE",
        &format!("{base}/api/v1/grants/{gid}"),
        &world.admin,
        None,
    );
    assert_eq!(code, 409);
    let (code, _) = call_refused(&world.mcp(), &world.agent, "ssh_execute", &id_call);
    assert_eq!(code, "denied");
    let audited = world.audit("kind=grant");
    assert_eq!(audited.len(), 2, "{audited:?}");
    world.stop();
}

#[test]
fn a_frozen_principal_is_refused_at_once_its_session_closed_and_the_freeze_survives_a_restart() {
    let Some(mut world) = World::start(None) else {
        return;
    };
    let opened = call_ok(
        &world.mcp(),
        &world.agent,
        "ssh_session_open",
        &json!({ "server": "web-a" }),
    );
    let session = opened["session_id"].as_str().unwrap().to_owned();
    let ran = call_ok(
        &world.mcp(),
        &world.agent,
        "ssh_session_exec",
        &json!({ "session_id": session, "command": "echo before" }),
    );
    assert_eq!(ran["stdout"], "before\n");

    let freeze =
        json!({ "kind": "principal", "value": "tenant-a-agent", "reason": "INC-9 runaway agent" });
    let (code, body) = api(
        "POST",
        &format!("{}/api/v1/freezes", world.base()),
        &world.reader,
        Some(&freeze),
    );
    assert_eq!(code, 403, "{body}");
    let (code, frozen) = api(
        "POST",
        &format!("{}/api/v1/freezes", world.base()),
        &world.admin,
        Some(&freeze),
    );
    assert_eq!(code, 201, "{frozen}");
    assert_eq!(frozen["closed_sessions"], 1, "{frozen}");
    let fid = frozen["id"].as_str().unwrap().to_owned();

    let (code, text) = call_refused(
        &world.mcp(),
        &world.agent,
        "ssh_session_exec",
        &json!({ "session_id": session, "command": "echo after" }),
    );
    assert_eq!(code, "frozen", "{text}");
    let (code, _) = call_refused(
        &world.mcp(),
        &world.agent,
        "ssh_execute",
        &json!({ "server": "web-a", "command": "echo after" }),
    );
    assert_eq!(code, "frozen");
    let (code, _) = call_refused(
        &world.mcp(),
        &world.agent,
        "announce",
        &json!({ "activity": "x", "targets": ["web-a"], "planned_tier": "read", "ttl_seconds": 60 }),
    );
    assert_eq!(code, "frozen", "a frozen agent cannot announce either");
    let closed = world.audit(&format!("session_id={session}&action=ssh_session_close"));
    assert_eq!(closed[0]["body"]["reason"], "frozen", "{closed:?}");

    // The freeze lives in the store: a restart does not lift it.
    world.restart();
    let (code, _) = call_refused(
        &world.mcp(),
        &world.agent,
        "ssh_execute",
        &json!({ "server": "web-a", "command": "echo after-restart" }),
    );
    assert_eq!(code, "frozen");
    let (code, lifted) = api(
        "DELETE",
        &format!("{}/api/v1/freezes/{fid}?reason=resolved", world.base()),
        &world.admin,
        None,
    );
    assert_eq!(code, 200, "{lifted}");
    assert_eq!(lifted["active"], false);
    let ok = call_ok(
        &world.mcp(),
        &world.agent,
        "ssh_execute",
        &json!({ "server": "web-a", "command": "echo thawed" }),
    );
    assert_eq!(ok["stdout"], "thawed\n");
    let records = world.audit("kind=freeze");
    assert_eq!(records.len(), 2, "{records:?}");
    let denials = world.audit("kind=denial&outcome=frozen");
    assert_eq!(denials.len(), 4, "{denials:?}");
    world.stop();
}

#[test]
fn the_openapi_document_describes_the_contract_paths() {
    let Some(world) = World::start(None) else {
        return;
    };
    let (code, doc) = api(
        "GET",
        &format!("{}/api/v1/openapi.json", world.base()),
        "none",
        None,
    );
    assert_eq!(code, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/approvals",
        "/api/v1/approvals/{id}",
        "/api/v1/approvals/{id}/approve",
        "/api/v1/approvals/{id}/deny",
        "/api/v1/grants",
        "/api/v1/grants/{id}",
        "/api/v1/freezes",
        "/api/v1/freezes/{id}",
        "/api/v1/audit",
        "/api/v1/audit/{id}",
        "/api/v1/audit/verify",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let approve = &doc["paths"]["/api/v1/approvals/{id}/approve"]["post"];
    assert!(approve["responses"]["403"].is_object());
    let body = &doc["components"]["schemas"]["DecisionBody"]["properties"];
    assert!(body["reason"].is_object() && body["learn_ttl_seconds"].is_object());
    // The verify status of the caller's chain is intact.
    let (code, verify) = api(
        "GET",
        &format!("{}/api/v1/audit/verify", world.base()),
        &world.admin,
        None,
    );
    assert_eq!(code, 200, "{verify}");
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["tenant"], "a");
    // Without a token the API is closed.
    let (code, _) = api(
        "GET",
        &format!("{}/api/v1/approvals", world.base()),
        "bad",
        None,
    );
    assert_eq!(code, 401);
    world.stop();
}

#[test]
fn a_secret_in_a_held_command_reaches_no_approver_webhook_feed_or_audit_record() {
    let hook = Receiver::start();
    let Some(world) = World::start(Some(&hook.url)) else {
        return;
    };
    const CANARY: &str = "CANARY-7f3a9c-secret";
    let command = format!("echo held-deploy token={CANARY}");
    let pending = world.held(&world.agent, &command);
    let id = pending["approval_id"].as_str().unwrap();
    assert!(!pending.to_string().contains(CANARY), "{pending}");
    let (_, shown) = api(
        "GET",
        &format!("{}/api/v1/approvals/{id}", world.base()),
        &world.admin,
        None,
    );
    assert!(!shown.to_string().contains(CANARY), "{shown}");
    assert_eq!(
        shown["arguments"]["command"],
        "echo held-deploy token=[REDACTED]"
    );
    // The approved call still runs the real command (the binding is over it).
    let (code, _) = world.decide(&world.admin, id, "approve", &json!({ "reason": "ok" }));
    assert_eq!(code, 200);
    let (is_error, ran, _) = status(&world, &world.agent, id, 5);
    assert!(!is_error, "{ran}");
    assert_eq!(ran["result"]["exit_code"], 0, "{ran}");
    let delivered = (0..50)
        .find_map(|_| {
            let bodies = hook.bodies();
            (!bodies.is_empty()).then_some(bodies).or_else(|| {
                std::thread::sleep(Duration::from_millis(100));
                None
            })
        })
        .expect("the webhook received nothing");
    assert!(!serde_json::to_string(&delivered).unwrap().contains(CANARY));
    let records = world.audit("");
    assert!(!records.is_empty());
    assert!(
        !serde_json::to_string(&records).unwrap().contains(CANARY),
        "the canary reached the audit log"
    );
    assert!(!world.served().daemon.log_text().contains(CANARY));
    world.stop();
}
