//! The remote operator CLI (`meho approvals|grants|freeze|unfreeze`, `meho audit query|show
//! --server`) against a real `meho serve --dev` on a loopback port: env and flag forms of the
//! server and token, tables and `--format json`, and a precise line with the right exit code for
//! every refusal.

use std::net::TcpListener;
use std::path::PathBuf;

use assert_cmd::Command;
use meho_approvals::{ApprovalPolicy, Approvals, Call, Learnable, NewApproval};
use meho_core::Tier;
use serde_json::{Value, json};

use crate::forged::{
    self, COMMAND, COMMAND_SHOWN, NAME, NAME_SHOWN, REASON, REASON_SHOWN, TARGET, TARGET_SHOWN,
    assert_shown,
};
use crate::support::{Daemon, os};
use crate::{Workdir, host, stderr_of, stdout_of};

/// A `meho serve --dev` with two hosts: `web-allow` (an allowlist baseline, so grants apply) and
/// `web-open` (a denylist, so grants are refused). The console test signs in to it too.
pub(crate) struct Served {
    pub(crate) work: Workdir,
    state: PathBuf,
    store: String,
    pub(crate) url: String,
    pub(crate) token: String,
    daemon: Daemon,
}

impl Served {
    pub(crate) fn start() -> Served {
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
            daemon,
        }
    }

    /// What the server wrote to its log so far.
    pub(crate) fn log_text(&self) -> String {
        self.daemon.log_text()
    }

    /// `meho ARGS` with the server and token in `MEHO_SERVER` and `MEHO_TOKEN`.
    pub(crate) fn meho(&self) -> Command {
        let mut cmd = bare(&self.work);
        cmd.env("MEHO_SERVER", &self.url)
            .env("MEHO_TOKEN", &self.token);
        cmd
    }

    /// Runs `meho ARGS` (env form) and expects success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
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
    pub(crate) fn json(&self, args: &[&str]) -> Value {
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
        self.approval_on(requester, "web-allow", command)
    }

    /// As [`Served::approval`], with the target as the row names it (the store takes any text,
    /// as an agent's call would carry it).
    pub(crate) fn approval_on(&self, requester: &str, target: &str, command: &str) -> String {
        self.approval_with(requester, target, command, None)
    }

    /// As [`Served::approval_on`], with `preview` (what the held call would change) as its
    /// connector computed it.
    pub(crate) fn approval_with(
        &self,
        requester: &str,
        target: &str,
        command: &str,
        preview: Option<&str>,
    ) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = meho_store::Store::open(&self.store).await.unwrap();
            let approvals = Approvals::new(store.pool().clone(), ApprovalPolicy::default());
            let arguments = json!({
                "server": target, "command": command, "sudo": false, "sudo_user": null,
            });
            let call = Call {
                tenant: "default".into(),
                requester: requester.into(),
                target: target.into(),
                tool: "ssh_execute".into(),
                action: json!({
                    "kind": "exec", "command": command, "sudo": false, "sudo_user": null,
                    "pty": false, "ttl_seconds": null,
                }),
            };
            let learnable = Learnable::of_action(&call.action);
            let approval = approvals
                .create_shown(&NewApproval {
                    call: &call,
                    shown: &arguments,
                    request: Some(&arguments),
                    summary: &format!("ssh_execute on {target}: {command}"),
                    rule: "approve:^systemctl restart ",
                    tier: Tier::Write,
                    learnable: learnable.as_ref(),
                    preview,
                })
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

    // A pattern that would allow every command is refused (issue #11): the empty one an unset
    // shell variable gives, one that matches the empty string, one that matches any command.
    for pattern in ["", "x?", ".*", ".+", r"\S"] {
        let broad = served.fails(
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
                "1h",
                "--reason",
                "r",
            ],
            2,
        );
        assert!(broad.contains("400 bad_request"), "`{pattern}`: {broad}");
        assert!(
            broad.contains("every command") || broad.contains("any command"),
            "`{pattern}`: {broad}"
        );
    }
    // An unanchored one is accepted with a warning on stderr (and in the JSON's `warnings`).
    let output = served
        .meho()
        .args([
            "grants",
            "create",
            "--target",
            "web-allow",
            "--pattern",
            "^uptime",
            "--tier",
            "read",
            "--ttl",
            "1h",
            "--reason",
            "loose",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let warned = stderr_of(&output);
    assert!(
        warned.starts_with("warning: ") && warned.contains("`^uptime`"),
        "{warned}"
    );
    let loose = served.json(&[
        "grants",
        "create",
        "--target",
        "web-allow",
        "--pattern",
        "^uptime",
        "--tier",
        "read",
        "--ttl",
        "1h",
        "--reason",
        "loose",
    ]);
    assert!(
        loose["warnings"].as_array().is_some_and(|w| !w.is_empty()),
        "{loose}"
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

/// The value of the `name:` line of `show` output.
#[track_caller]
fn detail<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no `{name}:` line in\n{text}"))
        .trim_start()
}

/// Whether every line of `show` output is `name: value` with one of meho's own names: no value
/// started a line of its own.
fn one_line_per_field(text: &str) -> bool {
    text.lines().all(|line| {
        line.split_once(':').is_some_and(|(name, _)| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == ' ' || c == '-')
        })
    })
}

#[test]
fn forged_text_shows_as_escapes_in_approvals_tables_and_details_and_exactly_in_json() {
    let served = Served::start();
    let id = served.approval_on(NAME, TARGET, COMMAND);
    let summary = format!("ssh_execute on {TARGET}: {COMMAND}");
    let summary_shown = format!("ssh_execute on {TARGET_SHOWN}: {COMMAND_SHOWN}");

    // The table: one row, the command and names as escapes.
    let table = served.ok(&["approvals", "list"]);
    assert_shown(
        "approvals list",
        &table,
        &[&summary_shown, NAME_SHOWN, TARGET_SHOWN, &id],
    );
    let row = table.lines().filter(|l| l.contains(&id)).count();
    assert_eq!(row, 1, "{table}");
    // JSON: exactly what the agent sent.
    let listed = served.json(&["approvals", "list"]);
    let approval = &listed["approvals"][0];
    assert_eq!(approval["summary"], summary.as_str());
    assert_eq!(approval["arguments"]["command"], COMMAND);
    assert_eq!(approval["requester"], NAME);
    assert_eq!(approval["target"], TARGET);

    let text = served.ok(&["approvals", "show", &id]);
    assert_shown("approvals show", &text, &[]);
    assert_eq!(detail(&text, "summary"), summary_shown);
    assert_eq!(detail(&text, "requester"), NAME_SHOWN);
    assert_eq!(detail(&text, "target"), TARGET_SHOWN);
    // The arguments are compact JSON: JSON escapes ESC and the newline itself, the CLI what
    // JSON leaves raw (C1, DEL, bidi).
    assert_eq!(
        detail(&text, "arguments"),
        r#"{"command":"touch '/etc/cron.d/x\u001b[2K\u001b[1G\x9b2K\x7f\u{202e}systemctl status nginx'","server":"web-x\n\u{2066}1","sudo":false,"sudo_user":null}"#
    );
    assert!(one_line_per_field(&text), "{text}");
    let shown = served.json(&["approvals", "show", &id]);
    assert_eq!(shown["summary"], summary.as_str());
    assert_eq!(shown["arguments"]["command"], COMMAND);
    assert!(shown["preview"].is_null(), "{shown}");
    assert!(!text.contains("preview:"), "{text}");

    // A preview (a diff, several lines by design): under its heading, one escaped line per line,
    // indented; the fields above it are still one per line. JSON carries it exactly.
    let previewed = served.approval_with(NAME, TARGET, COMMAND, Some(forged::PREVIEW));
    let text = served.ok(&["approvals", "show", &previewed]);
    assert_shown("approvals show (preview)", &text, &forged::PREVIEW_SHOWN);
    let (fields, section) = text
        .split_once("\n\npreview:\n")
        .unwrap_or_else(|| panic!("no preview heading in\n{text}"));
    assert!(one_line_per_field(fields), "{fields}");
    assert_eq!(detail(fields, "summary"), summary_shown);
    let lines: Vec<&str> = section
        .lines()
        .map(|line| {
            line.strip_prefix("  ")
                .unwrap_or_else(|| panic!("not indented: {line:?}"))
        })
        .collect();
    assert_eq!(lines, forged::PREVIEW_SHOWN);
    let shown = served.json(&["approvals", "show", &previewed]);
    assert_eq!(shown["preview"], forged::PREVIEW);
    let listed = served.json(&["approvals", "list"]);
    let row = listed["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == previewed.as_str())
        .unwrap_or_else(|| panic!("{listed}"))
        .clone();
    assert_eq!(row["preview"], forged::PREVIEW);
    // Deciding prints the same details and preview.
    let denied = served.ok(&["approvals", "deny", &previewed, "--reason", "not this one"]);
    assert_shown("approvals deny (preview)", &denied, &forged::PREVIEW_SHOWN);

    // A decision's headline and details, and the reason the approver typed.
    let approved = served.ok(&["approvals", "approve", &id, "--reason", REASON]);
    let headline = approved.lines().next().unwrap_or_default();
    assert_eq!(headline, format!("approved {id}: {summary_shown}"));
    assert_shown("approvals approve", &approved, &[]);
    assert_eq!(detail(&approved, "reason"), REASON_SHOWN);
    let other = served.approval_on(NAME, TARGET, COMMAND);
    let denied = served.json(&["approvals", "deny", &other, "--reason", REASON]);
    assert_eq!(denied["reason"], REASON);
    assert_eq!(denied["summary"], summary.as_str());
    let table = served.ok(&["approvals", "list", "--status", "denied"]);
    assert_shown("approvals list --status denied", &table, &[&summary_shown]);

    // The audit log of those decisions, from the server: the target is the agent's.
    let table = served.ok(&["audit", "query", "--kind", "approval"]);
    assert_shown("audit query --server", &table, &[TARGET_SHOWN]);
    let page = served.json(&["audit", "query", "--kind", "approval"]);
    let record = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["approval_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{page}"))
        .clone();
    assert_eq!(record["target"], TARGET);
    let record_id = record["id"].as_str().unwrap();
    let text = served.ok(&["audit", "show", record_id]);
    // Pretty JSON: JSON escapes the newline and the tab, the CLI the C1, DEL and bidi controls.
    assert_shown(
        "audit show --server",
        &text,
        &[r#""target": "web-x\n\u{2066}1""#, r"ticket\x9b31m\x7f\t42"],
    );
    let shown = served.json(&["audit", "show", record_id]);
    assert_eq!(shown["target"], TARGET);
    assert_eq!(shown["body"]["reason"], REASON);
    // The same store read locally: the same escapes.
    let output = bare(&served.work)
        .args(["audit", "query", "--kind", "approval", "--data-dir"])
        .arg(&served.state)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_shown("audit query", &stdout_of(&output), &[TARGET_SHOWN]);
}

#[test]
fn forged_text_shows_as_escapes_in_grants_and_freezes_and_exactly_in_json() {
    let served = Served::start();
    let pattern = "^printf x\u{7f}\u{202e}$";
    let pattern_shown = r"^printf x\x7f\u{202e}$";
    let created = served.ok(&[
        "grants",
        "create",
        "--target",
        "web-allow",
        "--pattern",
        pattern,
        "--tier",
        "read",
        "--ttl",
        "1h",
        "--reason",
        REASON,
    ]);
    let headline = created.lines().next().unwrap_or_default();
    assert!(
        headline.starts_with("granted grt-")
            && headline.ends_with(&format!(" on web-allow: `{pattern_shown}` (read)")),
        "{created}"
    );
    assert_shown("grants create", &created, &[REASON_SHOWN]);
    assert!(
        one_line_per_field(created.split_once("\n\n").unwrap().1),
        "{created}"
    );
    let table = served.ok(&["grants", "list"]);
    assert_shown("grants list", &table, &[pattern_shown, REASON_SHOWN]);
    let listed = served.json(&["grants", "list"]);
    let grant = &listed["grants"][0];
    assert_eq!(grant["pattern"], pattern);
    assert_eq!(grant["reason"], REASON);
    let grant_id = grant["id"].as_str().unwrap();
    let text = served.ok(&["grants", "show", grant_id]);
    assert_shown("grants show", &text, &[pattern_shown, REASON_SHOWN]);
    assert!(one_line_per_field(&text), "{text}");
    let revoked = served.ok(&["grants", "revoke", grant_id]);
    assert_shown("grants revoke", &revoked, &[pattern_shown]);

    let froze = served.ok(&["freeze", "--principal", NAME, "--reason", REASON]);
    assert!(
        froze.starts_with(&format!("froze principal `{NAME_SHOWN}` (frz-")),
        "{froze}"
    );
    assert_shown("freeze", &froze, &[REASON_SHOWN]);
    let table = served.ok(&["freeze", "--list"]);
    assert_shown("freeze --list", &table, &[NAME_SHOWN, REASON_SHOWN]);
    let listed = served.json(&["freeze", "--list"]);
    let freeze = &listed["freezes"][0];
    assert_eq!(freeze["value"], NAME);
    assert_eq!(freeze["reason"], REASON);
    let freeze_id = freeze["id"].as_str().unwrap();
    let lifted = served.ok(&["unfreeze", freeze_id]);
    assert!(
        lifted.starts_with(&format!("lifted principal `{NAME_SHOWN}` ({freeze_id})")),
        "{lifted}"
    );
    assert_shown("unfreeze", &lifted, &[]);

    // The freeze's audit record, locally and from the server.
    let page = served.json(&["audit", "query", "--kind", "freeze"]);
    let record_id = page["records"][0]["id"].as_str().unwrap().to_owned();
    let shown = served.json(&["audit", "show", &record_id]);
    assert!(
        [
            shown["body"]["value"].clone(),
            shown["body"]["reason"].clone()
        ]
        .iter()
        .any(|v| v == NAME || v == REASON),
        "{shown}"
    );
    let text = served.ok(&["audit", "show", &record_id]);
    assert_shown("audit show --server", &text, &[r"\u{202e}"]);
    let output = bare(&served.work)
        .args(["audit", "show", &record_id, "--data-dir"])
        .arg(&served.state)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_shown("audit show", &stdout_of(&output), &[r"\u{202e}"]);
}

#[test]
fn refusals_quoting_forged_text_are_one_escaped_line_and_json_keeps_it() {
    let served = Served::start();
    // The server's message quotes the target it does not know.
    let refused = served.fails(
        &[
            "grants",
            "create",
            "--target",
            NAME,
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
    assert!(
        refused.starts_with("error: the meho server at "),
        "{refused}"
    );
    assert!(refused.contains("404 not_found"), "{refused}");
    assert_shown("grants create refusal", &refused, &[NAME_SHOWN]);
    assert_eq!(refused.lines().count(), 1, "{refused}");

    // A regex error quotes the pattern, newline and all.
    let refused = served.fails(
        &[
            "grants",
            "create",
            "--target",
            "web-allow",
            "--pattern",
            "(\u{1b}[2K\n\u{202e}",
            "--tier",
            "read",
            "--ttl",
            "1h",
            "--reason",
            "r",
        ],
        2,
    );
    assert!(refused.contains("400 bad_request"), "{refused}");
    assert_shown("grants create 400", &refused, &[r"\x1b[2K"]);
    assert_eq!(refused.lines().count(), 1, "{refused}");

    let id = format!("apr-{NAME}");
    let refused = served.fails(&["approvals", "show", &id], 1);
    assert_shown("approvals show refusal", &refused, &[NAME_SHOWN]);
    assert_eq!(refused.lines().count(), 1, "{refused}");
    // Scripts get the server's error document exactly.
    let output = served
        .meho()
        .args(["approvals", "show", &id, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let error: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains(NAME)),
        "{error}"
    );
    assert!(forged::raw_deceptive(&stderr_of(&output)).is_empty());
}
