//! The remote operator CLI (`meho approvals|grants|freeze|unfreeze`, `meho audit query|show
//! --server`) against a real `meho serve --dev` on a loopback port: env and flag forms of the
//! server and token, tables and `--format json`, and a precise line with the right exit code for
//! every refusal.

use std::net::TcpListener;
use std::path::PathBuf;

use assert_cmd::Command;
use meho_approvals::{ApprovalPolicy, Approvals, Call};
use meho_core::Tier;
use serde_json::{Value, json};

use crate::support::{Daemon, os};
use crate::{Workdir, host, stderr_of, stdout_of};

/// A `meho serve --dev` with two hosts: `web-allow` (an allowlist baseline, so grants apply) and
/// `web-open` (a denylist, so grants are refused).
struct Served {
    work: Workdir,
    state: PathBuf,
    store: String,
    url: String,
    token: String,
    _daemon: Daemon,
}

impl Served {
    fn start() -> Served {
        let work = Workdir::new();
        let config = work.write(
            "meho.toml",
            &format!(
                "{}{}",
                host(
                    "web-allow",
                    "command_policy = { mode = \"allowlist\", allow = ['^uptime$'], require_approval = ['^systemctl restart '] }"
                ),
                host(
                    "web-open",
                    "command_policy = { mode = \"denylist\", deny = ['^rm '] }"
                ),
            ),
        );
        let state = work.path().join("state");
        let store = format!("sqlite://{}", state.join("meho.db").display());
        let daemon = Daemon::start(
            &work,
            &[
                os("serve"),
                os("--dev"),
                os("--config"),
                os(&config),
                os("--data-dir"),
                os(&state),
                os("--store"),
                os(&store),
                os("--listen"),
                os("127.0.0.1:0"),
            ],
            "meho listening on ",
        );
        let token = daemon
            .lines
            .iter()
            .find_map(|l| l.strip_prefix("MEHO_TOKEN="))
            .unwrap_or_else(|| panic!("{:?}", daemon.lines))
            .to_owned();
        let addr = daemon
            .lines
            .last()
            .and_then(|l| l.strip_prefix("meho listening on http://"))
            .unwrap_or_else(|| panic!("{:?}", daemon.lines))
            .to_owned();
        Served {
            work,
            state,
            store,
            url: format!("http://{addr}"),
            token,
            _daemon: daemon,
        }
    }

    /// `meho ARGS` with the server and token in `MEHO_SERVER` and `MEHO_TOKEN`.
    fn meho(&self) -> Command {
        let mut cmd = bare(&self.work);
        cmd.env("MEHO_SERVER", &self.url)
            .env("MEHO_TOKEN", &self.token);
        cmd
    }

    /// Runs `meho ARGS` (env form) and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.meho().args(args).output().unwrap();
        assert!(
            output.status.success(),
            "meho {args:?}: {:?}\nstdout: {}\nstderr: {}",
            output.status,
            stdout_of(&output),
            stderr_of(&output)
        );
        self.assert_no_token(&output);
        stdout_of(&output)
    }

    /// As [`Served::ok`] with `--format json`, parsed; stdout must be exactly one document.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let stdout = self.ok(&all);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    /// Runs `meho ARGS` and expects exit `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let output = self.meho().args(args).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(code),
            "meho {args:?}\nstdout: {}\nstderr: {}",
            stdout_of(&output),
            stderr_of(&output)
        );
        self.assert_no_token(&output);
        stderr_of(&output)
    }

    fn assert_no_token(&self, output: &std::process::Output) {
        for text in [stdout_of(output), stderr_of(output)] {
            assert!(!text.contains(&self.token), "the token was printed: {text}");
        }
    }

    /// A pending approval of `ssh_execute` of `command` on `web-allow`, requested by
    /// `requester`, written straight into the server's store.
    fn approval(&self, requester: &str, command: &str) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = meho_store::Store::open(&self.store).await.unwrap();
            let approvals = Approvals::new(store.pool().clone(), ApprovalPolicy::default());
            let arguments = json!({
                "server": "web-allow", "command": command, "sudo": false, "sudo_user": null,
            });
            let call = Call {
                tenant: "default".into(),
                requester: requester.into(),
                target: "web-allow".into(),
                tool: "ssh_execute".into(),
                arguments: arguments.clone(),
            };
            let approval = approvals
                .create(
                    &call,
                    Some(&arguments),
                    &format!("ssh_execute on web-allow: {command}"),
                    "approve:^systemctl restart ",
                    Tier::Write,
                )
                .await
                .unwrap();
            store.close().await;
            approval.id
        })
    }
}

/// `meho` in `work` with neither `MEHO_SERVER` nor `MEHO_TOKEN` from the developer's shell.
fn bare(work: &Workdir) -> Command {
    let mut cmd = work.meho();
    cmd.env_remove("MEHO_SERVER").env_remove("MEHO_TOKEN");
    cmd
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no `{key}` array: {list}"))
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn approvals_list_show_approve_and_deny_with_four_eyes() {
    let served = Served::start();
    let nginx = served.approval("alice", "systemctl restart nginx");
    let redis = served.approval("alice", "systemctl restart redis");
    let own = served.approval("dev", "systemctl restart cron");

    // Newest first; the table names requester, target and the exact command.
    let listed = served.json(&["approvals", "list"]);
    assert_eq!(
        ids(&listed, "approvals"),
        [own.as_str(), redis.as_str(), nginx.as_str()]
    );
    let table = served.ok(&["approvals", "list"]);
    for needle in [
        "requester",
        nginx.as_str(),
        redis.as_str(),
        own.as_str(),
        "alice",
        "systemctl restart nginx",
    ] {
        assert!(table.contains(needle), "{needle} missing:\n{table}");
    }
    let one = served.json(&["approvals", "list", "--limit", "1"]);
    assert_eq!(ids(&one, "approvals"), [own.as_str()]);

    let shown = served.json(&["approvals", "show", &nginx]);
    assert_eq!(shown["id"], nginx.as_str());
    assert_eq!(shown["status"], "pending");
    assert_eq!(shown["requester"], "alice");
    assert_eq!(shown["arguments"]["command"], "systemctl restart nginx");
    let text = served.ok(&["approvals", "show", &nginx]);
    assert!(
        text.contains("status:") && text.contains("pending"),
        "{text}"
    );
    assert!(text.contains("approve:^systemctl restart "), "{text}");

    // Approve and learn: --ttl 2h is learn_ttl_seconds 7200, and a waiver comes back.
    let approved = served.json(&[
        "approvals",
        "approve",
        &nginx,
        "--reason",
        "planned restart",
        "--learn",
        "--ttl",
        "2h",
    ]);
    assert_eq!(approved["status"], "approved", "{approved}");
    assert_eq!(approved["learn_ttl_seconds"], 7200, "{approved}");
    assert_eq!(approved["decided_by"], "dev", "{approved}");
    assert_eq!(approved["reason"], "planned restart", "{approved}");
    assert!(
        approved["waiver"]["id"].as_str().is_some(),
        "no waiver: {approved}"
    );

    let denied = served.ok(&["approvals", "deny", &redis, "--reason", "not now"]);
    assert!(denied.starts_with(&format!("denied {redis}: ")), "{denied}");
    assert!(denied.contains("not now"), "{denied}");

    // Four eyes: `dev` asked for this one and cannot decide it.
    let refused = served.fails(&["approvals", "approve", &own, "--reason", "mine"], 1);
    assert!(refused.contains("403 four_eyes"), "{refused}");
    assert!(refused.contains("four eyes"), "{refused}");
    assert!(refused.contains(&served.url), "{refused}");
    assert_eq!(refused.lines().count(), 1, "{refused}");
    assert!(refused.starts_with("error: "), "{refused}");

    // Decided is decided.
    let again = served.fails(&["approvals", "approve", &redis, "--reason", "again"], 1);
    assert!(again.contains("409 wrong_state"), "{again}");

    let pending = served.json(&["approvals", "list", "--status", "pending"]);
    assert_eq!(ids(&pending, "approvals"), [own.as_str()]);
    let denied_list = served.ok(&["approvals", "list", "--status", "denied"]);
    assert!(
        denied_list.contains(&redis) && !denied_list.contains(&nginx),
        "{denied_list}"
    );
    assert_eq!(
        served
            .ok(&["approvals", "list", "--status", "consumed"])
            .trim(),
        "no consumed approvals"
    );

    let missing = served.fails(&["approvals", "show", "apr-nope"], 1);
    assert!(missing.contains("404 not_found"), "{missing}");
    // With --format json, scripts get the API's error document on stdout.
    let output = served
        .meho()
        .args(["approvals", "show", "apr-nope", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let error: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(error["error"], "not_found");

    // Usage: --ttl only with --learn, --learn only with --ttl, durations parse.
    for args in [
        &["approvals", "approve", &own, "--reason", "r", "--ttl", "2h"][..],
        &["approvals", "approve", &own, "--reason", "r", "--learn"][..],
        &[
            "approvals",
            "approve",
            &own,
            "--reason",
            "r",
            "--learn",
            "--ttl",
            "soon",
        ][..],
        &["approvals", "approve", &own][..],
        &["approvals", "list", "--status", "maybe"][..],
    ] {
        served.fails(args, 2);
    }
    // Out of range for the server (learn_ttl_seconds 60..=604800): a 400, so exit 2.
    let bad = served.fails(
        &[
            "approvals",
            "approve",
            &own,
            "--reason",
            "r",
            "--learn",
            "--ttl",
            "30d",
        ],
        2,
    );
    assert!(bad.contains("400"), "{bad}");
}

#[test]
fn the_flag_form_of_server_and_token_works_and_a_bad_token_is_a_precise_401() {
    let served = Served::start();
    let output = bare(&served.work)
        .args([
            "approvals",
            "list",
            "--server",
            &served.url,
            "--token",
            &served.token,
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let list: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(list, json!({ "approvals": [] }));
    // A flag beats the environment.
    let output = served
        .meho()
        .env("MEHO_SERVER", "http://127.0.0.1:1")
        .args(["grants", "list", "--server", &served.url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));

    let wrong = "meho_dev_not-the-token-0123456789abcdef";
    let output = served
        .meho()
        .env("MEHO_TOKEN", wrong)
        .args(["approvals", "list"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(
        stderr.starts_with(&format!(
            "error: the meho server at {} answered 401 ",
            served.url
        )),
        "{stderr}"
    );
    assert!(stderr.contains("invalid_token"), "{stderr}");
    assert!(stderr.contains("check --token or MEHO_TOKEN"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains(wrong) && !stdout_of(&output).contains(wrong));

    // --help never shows the token from the environment.
    let help = served.ok(&["approvals", "list", "--help"]);
    assert!(help.contains("MEHO_TOKEN"), "{help}");
}

#[test]
fn grants_create_list_show_revoke_and_refuse_a_host_without_an_allowlist() {
    let served = Served::start();
    let created = served.json(&[
        "grants",
        "create",
        "--target",
        "web-allow",
        "--pattern",
        "^journalctl -u nginx$",
        "--tier",
        "read",
        "--ttl",
        "1h",
        "--reason",
        "incident 42",
    ]);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["target"], "web-allow");
    assert_eq!(created["pattern"], "^journalctl -u nginx$");
    assert_eq!(created["tier"], "read");
    assert_eq!(created["active"], true);
    assert_eq!(created["created_by"], "dev");

    let text = served.ok(&[
        "grants",
        "create",
        "--target",
        "web-allow",
        "--pattern",
        "^uptime -p$",
        "--tier",
        "write",
        "--ttl",
        "90m",
        "--reason",
        "second",
    ]);
    assert!(text.starts_with("granted grt-"), "{text}");
    assert!(
        text.contains("on web-allow: `^uptime -p$` (write)"),
        "{text}"
    );

    let table = served.ok(&["grants", "list"]);
    assert!(
        table.contains(&id) && table.contains("^journalctl -u nginx$"),
        "{table}"
    );
    let listed = served.json(&["grants", "list", "--target", "web-allow"]);
    assert_eq!(ids(&listed, "grants").len(), 2, "{listed}");
    assert_eq!(
        served
            .ok(&["grants", "list", "--target", "web-open"])
            .trim(),
        "no grants in force"
    );
    let shown = served.json(&["grants", "show", &id]);
    assert_eq!(shown["id"], id.as_str());

    // The baseline of web-open is a denylist: a grant could not only widen it.
    let refused = served.fails(
        &[
            "grants",
            "create",
            "--target",
            "web-open",
            "--pattern",
            "^uptime$",
            "--tier",
            "read",
            "--ttl",
            "1h",
            "--reason",
            "r",
        ],
        1,
    );
    assert!(refused.contains("409 grant_needs_allowlist"), "{refused}");
    assert!(refused.contains(&served.url), "{refused}");
    let unknown = served.fails(
        &[
            "grants",
            "create",
            "--target",
            "nowhere",
            "--pattern",
            "^x$",
            "--tier",
            "read",
            "--ttl",
            "1h",
            "--reason",
            "r",
        ],
        1,
    );
    assert!(unknown.contains("404"), "{unknown}");
    // Malformed for the server (a bad regex, a TTL under a minute): 400, exit 2.
    for (pattern, ttl) in [("(", "1h"), ("^x$", "10s")] {
        let bad = served.fails(
            &[
                "grants",
                "create",
                "--target",
                "web-allow",
                "--pattern",
                pattern,
                "--tier",
                "read",
                "--ttl",
                ttl,
                "--reason",
                "r",
            ],
            2,
        );
        assert!(bad.contains("400 bad_request"), "{bad}");
    }
    served.fails(
        &[
            "grants",
            "create",
            "--target",
            "web-allow",
            "--pattern",
            "^x$",
            "--tier",
            "root",
            "--ttl",
            "1h",
            "--reason",
            "r",
        ],
        2,
    );

    let revoked = served.ok(&["grants", "revoke", &id]);
    assert!(
        revoked.starts_with(&format!("revoked {id} on web-allow")),
        "{revoked}"
    );
    let twice = served.fails(&["grants", "revoke", &id], 1);
    assert!(twice.contains("409 wrong_state"), "{twice}");
    let active = served.json(&["grants", "list"]);
    assert!(!ids(&active, "grants").contains(&id), "{active}");
    let all = served.json(&["grants", "list", "--all"]);
    let gone = all["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{all}"));
    assert_eq!(gone["active"], false);
    assert_eq!(gone["revoked_by"], "dev");
    let table = served.ok(&["grants", "list", "--all"]);
    assert!(table.contains("revoked"), "{table}");
}

#[test]
fn freeze_unfreeze_and_list_freezes() {
    let served = Served::start();
    let principal = served.json(&[
        "freeze",
        "--principal",
        "agent-7",
        "--reason",
        "runaway loop",
    ]);
    let id = principal["id"].as_str().unwrap().to_owned();
    assert_eq!(principal["kind"], "principal");
    assert_eq!(principal["value"], "agent-7");
    assert_eq!(principal["active"], true);
    assert_eq!(principal["closed_sessions"], 0);

    let serial = served.ok(&["freeze", "--serial", "42", "--reason", "leaked cert"]);
    assert!(serial.starts_with("froze serial `42` (frz-"), "{serial}");
    let session = served.json(&["freeze", "--session", "s-1", "--reason", "stuck"]);
    assert_eq!(session["kind"], "session");

    let table = served.ok(&["freeze", "--list"]);
    for needle in ["agent-7", "42", "s-1", "runaway loop", id.as_str()] {
        assert!(table.contains(needle), "{needle} missing:\n{table}");
    }

    let lifted = served.ok(&["unfreeze", &id, "--reason", "fixed"]);
    assert!(
        lifted.starts_with(&format!("lifted principal `agent-7` ({id})")),
        "{lifted}"
    );
    assert!(lifted.contains("fixed"), "{lifted}");
    let twice = served.fails(&["unfreeze", &id], 1);
    assert!(twice.contains("409 wrong_state"), "{twice}");
    let serial_id = served.json(&["freeze", "--list"])["freezes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "serial")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Lifting without a reason is fine.
    served.ok(&["unfreeze", &serial_id]);

    let active = served.json(&["freeze", "--list"]);
    assert_eq!(ids(&active, "freezes").len(), 1, "{active}");
    let all = served.json(&["freeze", "--list", "--all"]);
    assert_eq!(ids(&all, "freezes").len(), 3, "{all}");
    assert!(served.ok(&["freeze", "--list", "--all"]).contains("lifted"));

    // Usage: exactly one subject, and a reason to freeze.
    for args in [
        &["freeze", "--principal", "p"][..],
        &["freeze", "--reason", "r"][..],
        &[
            "freeze",
            "--principal",
            "p",
            "--serial",
            "1",
            "--reason",
            "r",
        ][..],
        &["freeze", "--list", "--reason", "r"][..],
        &["freeze", "--serial", "not-a-number", "--reason", "r"][..],
        &["freeze", "--principal", "p", "--all", "--reason", "r"][..],
    ] {
        served.fails(args, 2);
    }
    let missing = served.fails(&["unfreeze", "frz-nope"], 1);
    assert!(missing.contains("404 not_found"), "{missing}");
}

#[test]
fn audit_query_and_show_go_to_the_server_with_server_and_read_the_store_without() {
    let served = Served::start();
    served.ok(&["freeze", "--principal", "agent-9", "--reason", "audit me"]);
    served.ok(&[
        "freeze",
        "--principal",
        "agent-10",
        "--reason",
        "audit me too",
    ]);

    let remote = served.json(&["audit", "query", "--principal", "dev"]);
    let remote_ids = ids(&remote, "records");
    assert!(!remote_ids.is_empty(), "{remote}");
    assert!(remote.get("next_before").is_some(), "{remote}");
    // The same filters, read locally from the same store, give the same records.
    let output = bare(&served.work)
        .args([
            "audit",
            "query",
            "--principal",
            "dev",
            "--format",
            "json",
            "--data-dir",
        ])
        .arg(&served.state)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let local: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(ids(&local, "records"), remote_ids);

    let kind = served.json(&["audit", "query", "--kind", "freeze", "--since", "1h"]);
    let records = kind["records"].as_array().unwrap();
    assert!(!records.is_empty(), "{kind}");
    assert!(records.iter().all(|r| r["kind"] == "freeze"), "{kind}");
    let none = served.ok(&["audit", "query", "--principal", "nobody"]);
    assert_eq!(none.trim(), "no matching records");

    let page = served.ok(&["audit", "query", "--limit", "1"]);
    assert!(page.contains("more: --cursor "), "{page}");
    let cursor = page
        .lines()
        .find_map(|l| l.strip_prefix("more: --cursor "))
        .unwrap();
    let next = served.json(&["audit", "query", "--limit", "1", "--cursor", cursor]);
    let newest = ids(&served.json(&["audit", "query"]), "records");
    assert_eq!(ids(&next, "records"), newest[1..2], "{next}");

    let id = remote_ids[0].clone();
    let shown = served.json(&["audit", "show", &id]);
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["principal"], "dev");
    let text = served.ok(&["audit", "show", &id]);
    assert!(text.contains(&format!("\"id\": \"{id}\"")), "{text}");

    let missing = served.fails(&["audit", "show", "no-such-record"], 1);
    assert!(missing.contains("404 not_found"), "{missing}");
    let tenant = served.fails(&["audit", "query", "--tenant", "other"], 2);
    assert!(tenant.contains("--tenant"), "{tenant}");
}

#[test]
fn without_a_usable_server_remote_commands_fail_with_one_precise_line() {
    let work = Workdir::new();
    // No server: a usage error naming the flag and the variable.
    let output = bare(&work).args(["approvals", "list"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("--server") && stderr.contains("MEHO_SERVER"),
        "{stderr}"
    );
    // No token.
    let output = bare(&work)
        .args(["grants", "list", "--server", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("MEHO_TOKEN"),
        "{}",
        stderr_of(&output)
    );
    // Not http(s).
    for server in ["ftp://meho.example", "127.0.0.1:8080", "file:///etc/passwd"] {
        let output = bare(&work)
            .args(["freeze", "--list", "--server", server, "--token", "t"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{server}");
        assert!(
            stderr_of(&output).contains("http"),
            "{server}: {}",
            stderr_of(&output)
        );
    }
    // A credential in the URL is refused and not echoed.
    let output = bare(&work)
        .args([
            "approvals",
            "list",
            "--server",
            "https://op:hunter2@meho.example",
            "--token",
            "t",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        !stderr_of(&output).contains("hunter2"),
        "{}",
        stderr_of(&output)
    );

    // Nothing listening: exit 1, naming the server.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("http://127.0.0.1:{port}");
    let output = bare(&work)
        .env("MEHO_SERVER", &server)
        .env("MEHO_TOKEN", "secret-token-value")
        .args(["approvals", "list"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(
        stderr.starts_with(&format!(
            "error: cannot connect to the meho server at {server}: "
        )),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("secret-token-value"), "{stderr}");
    // Remote audit too, while without --server it stays local.
    let output = bare(&work)
        .args(["audit", "show", "x", "--server", &server, "--token", "t"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains("cannot connect to the meho server"),
        "{}",
        stderr_of(&output)
    );
    let output = bare(&work)
        .args(["audit", "query", "--data-dir", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("no audit store"),
        "{}",
        stderr_of(&output)
    );

    // Plain http to a host that is not this machine: a warning first.
    let output = bare(&work)
        .args([
            "grants",
            "list",
            "--server",
            "http://meho.invalid",
            "--token",
            "t",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(
        stderr.starts_with("warning: http://meho.invalid is plain http on a non-loopback host"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: cannot connect to the meho server at http://meho.invalid: "),
        "{stderr}"
    );
}
