//! The broker against real OpenSSH sshd processes on loopback.

use std::sync::Arc;
use std::time::Duration;

use meho_ssh::ca::{CaKey, CertSpec, generate_ed25519};
use meho_ssh::client::{ConnectOptions, Hop, connect};
use meho_ssh::wire::{HostView, Intent};
use russh::keys::ssh_key::{Certificate, PublicKey};
use serde_json::json;

use crate::harness::{Sshd, SshdOptions, ensure_sudoers, require_sshd};
use crate::support::{Lab, USER, body, caller, host};

fn view(name: &str, sshd: &Sshd) -> HostView {
    HostView {
        name: name.to_owned(),
        addr: sshd.addr_string(),
        user: USER.to_owned(),
        host_key: sshd.host_key_line(),
        jump: None,
        allow_sudo: false,
        allow_pty: false,
        allow_file_transfer: false,
        groups: vec![],
        tenant: "default".to_owned(),
    }
}

fn options() -> ConnectOptions {
    ConnectOptions {
        bind_address: None,
        connect_timeout: Duration::from_secs(10),
    }
}

/// Connects to `sshd` directly with a certificate made from `spec` by `ca`.
async fn connect_with(
    ca: &CaKey,
    sshd: &Sshd,
    spec: impl FnOnce(PublicKey) -> CertSpec,
) -> Result<meho_ssh::client::Connection, meho_ssh::Error> {
    let key = generate_ed25519("test").unwrap();
    let cert = ca.sign(&spec(key.public_key().clone())).unwrap();
    connect(
        vec![Hop {
            view: view("target", sshd),
            key: Arc::new(key),
            certificate: cert,
        }],
        &options(),
    )
    .await
}

fn now() -> u64 {
    meho_ssh::signer::unix_now()
}

fn spec(public_key: PublicKey, valid_after: u64, valid_before: u64) -> CertSpec {
    CertSpec {
        public_key,
        principal: USER.to_owned(),
        key_id: "meho:test".to_owned(),
        serial: 42,
        valid_after,
        valid_before,
        force_command: None,
        source_address: None,
        permit_pty: false,
        permit_port_forwarding: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_for_uptime_cannot_run_id() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let lab = Lab::new(dir, ca_path, &host("web", &sshd, ""), |_| {}).await;

    // The signer issues a one-shot certificate for `uptime`…
    let key = generate_ed25519("t").unwrap();
    let answer = lab
        .signer
        .sign(
            "meho-test",
            &Intent {
                target: "web".into(),
                command: Some("uptime".into()),
                public_key: Some(key.public_key().to_openssh().unwrap()),
                ..Intent::default()
            },
        )
        .await
        .unwrap();
    let cert = Certificate::from_openssh(answer.certificate.as_deref().unwrap()).unwrap();
    assert_eq!(
        cert.critical_options()
            .get("force-command")
            .map(String::as_str),
        Some("uptime")
    );
    // …and a client that asks for `id` with it still gets `uptime`: sshd enforces it.
    let conn = connect(
        vec![Hop {
            view: view("web", &sshd),
            key: Arc::new(key),
            certificate: cert,
        }],
        &options(),
    )
    .await
    .unwrap();
    let out = conn
        .exec("id", false, 1 << 20, Duration::from_secs(10))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("load average"), "{stdout}");
    assert!(!stdout.contains("uid="), "{stdout}");
    assert_eq!(out.exit_code, Some(0));
    assert!(
        sshd.wait_for_log(
            &format!(
                "Accepted certificate ID \"meho:agent=meho-test user=- host=web serial={}\"",
                answer.serial.unwrap()
            ),
            Duration::from_secs(5)
        ),
        "{}",
        sshd.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_execute_runs_and_is_audited_with_the_serial() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let lab = Lab::new(dir, ca_path, &host("web", &sshd, ""), |_| {}).await;
    let result = lab
        .call(
            "ssh_execute",
            json!({"server": "web", "command": "echo out; echo err >&2; exit 3"}),
        )
        .await
        .unwrap();
    assert_eq!(result["stdout"], "out\n");
    assert_eq!(result["stderr"], "err\n");
    assert_eq!(result["exit_code"], 3);
    assert_eq!(result["warnings"], json!([]));
    let serial = result["serial"].as_u64().unwrap();
    assert!(
        serial > 0 && serial < (1 << 53),
        "serial {serial} must be JSON-safe"
    );

    // Signer's credential record, broker's intent and outcome: all carry the serial.
    let credential = lab
        .records()
        .await
        .into_iter()
        .find(|r| r.kind == "credential")
        .unwrap();
    assert_eq!(
        body(&credential)["certificate"]["serial"],
        serial.to_string()
    );
    assert_eq!(
        body(&credential)["certificate"]["key_id"],
        format!("meho:agent=agent-1 user=- host=web serial={serial}")
    );
    let intent = lab.records_of("ssh_execute").await;
    assert_eq!(intent.len(), 2, "intent + outcome");
    assert_eq!(intent[0].kind, "intent");
    assert_eq!(intent[1].kind, "outcome");
    assert_eq!(intent[1].outcome.as_deref(), Some("nonzero_exit"));
    assert_eq!(body(&intent[1])["credential_serial"], serial.to_string());
    assert_eq!(body(&intent[1])["exit_status"], 3);
    assert!(sshd.wait_for_log(&format!("serial {serial}"), Duration::from_secs(5)));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_certificate_is_refused() {
    if !require_sshd() {
        return;
    }
    let (_dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let ca = CaKey::load(&ca_path).unwrap();
    let t = now();
    let err = connect_with(&ca, &sshd, |k| spec(k, t - 600, t - 300))
        .await
        .unwrap_err();
    assert!(matches!(err, meho_ssh::Error::AuthRefused { .. }), "{err}");
    // Control: the same CA with a valid window is accepted.
    connect_with(&ca, &sshd, |k| spec(k, t - 30, t + 60))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_from_the_wrong_ca_is_refused() {
    if !require_sshd() {
        return;
    }
    let (dir, _ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let rogue = CaKey::init(&dir.path().join("rogue")).unwrap();
    let t = now();
    let err = connect_with(&rogue, &sshd, |k| spec(k, t - 30, t + 60))
        .await
        .unwrap_err();
    assert!(matches!(err, meho_ssh::Error::AuthRefused { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_address_mismatch_is_refused() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let lab = Lab::new(
        dir,
        ca_path,
        &(host("pinned", &sshd, "source_address = \"10.9.9.9/32\"")
            + &host("loopback", &sshd, "source_address = \"127.0.0.0/8\"")),
        |_| {},
    )
    .await;
    let err = lab
        .call(
            "ssh_execute",
            json!({"server": "pinned", "command": "true"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "auth_refused", "{err}");
    // The outcome record says why the call failed.
    let outcome = lab
        .records_of("ssh_execute")
        .await
        .into_iter()
        .find(|r| r.kind == "outcome")
        .unwrap();
    assert_eq!(outcome.outcome.as_deref(), Some("error"));
    // Control: a matching source-address works.
    let ok = lab
        .call(
            "ssh_execute",
            json!({"server": "loopback", "command": "echo ok"}),
        )
        .await
        .unwrap();
    assert_eq!(ok["stdout"], "ok\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_key_mismatch_is_refused_and_audited() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let other = generate_ed25519("other").unwrap();
    let config = format!(
        "[hosts.web]\naddr = \"{}\"\nuser = \"{USER}\"\nhost_key = \"{}\"\n",
        sshd.addr_string(),
        other.public_key().to_openssh().unwrap()
    );
    let lab = Lab::new(dir, ca_path, &config, |_| {}).await;
    let err = lab
        .call("ssh_execute", json!({"server": "web", "command": "true"}))
        .await
        .unwrap_err();
    assert_eq!(err.code, "host_key_mismatch");
    assert!(
        err.message.contains("host key mismatch for `web`"),
        "{}",
        err.message
    );
    let expected = other
        .public_key()
        .fingerprint(Default::default())
        .to_string();
    assert!(err.message.contains(&expected), "{}", err.message);
    let outcome = lab
        .records_of("ssh_execute")
        .await
        .into_iter()
        .find(|r| r.kind == "outcome")
        .unwrap();
    let error = body(&outcome)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("host key mismatch"), "{error}");
    // No certificate was ever presented: sshd logged no accepted login.
    assert!(!sshd.log().contains("Accepted certificate"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bastion_chains_tunnel_and_pin_the_source_address() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let bastion1 = Lab::sshd(&ca_line);
    let bastion2 = Lab::sshd(&ca_line);
    let target = Lab::sshd(&ca_line);
    // The broker dials from 127.0.0.3; the last bastion reaches the target from 127.0.0.1, its
    // egress address, which the target's certificate is pinned to.
    let config = host("bastion1", &bastion1, "allow_as_bastion = true")
        + &host("bastion2", &bastion2, "jump = \"bastion1\"")
        + &host(
            "db",
            &target,
            "jump = \"bastion2\"\nsource_address = \"127.0.0.1/32\"",
        )
        + &host("db-direct", &target, "source_address = \"127.0.0.1/32\"")
        + "[ssh]\nbind_address = \"127.0.0.3\"\n";
    let lab = Lab::new(dir, ca_path, &config, |_| {}).await;

    let through = lab
        .call(
            "ssh_execute",
            json!({"server": "db", "command": "echo via-bastions"}),
        )
        .await
        .unwrap();
    assert_eq!(through["stdout"], "via-bastions\n");

    let direct = lab
        .call(
            "ssh_execute",
            json!({"server": "db-direct", "command": "echo direct"}),
        )
        .await
        .unwrap_err();
    assert_eq!(direct.code, "auth_refused", "{direct}");

    // Each hop got its own certificate: bastions tunnel-only, the target with the command.
    let issued: Vec<_> = lab
        .records()
        .await
        .into_iter()
        .filter(|r| r.kind == "credential")
        .map(|r| (r.target.clone().unwrap(), body(&r)))
        .collect();
    let for_host = |name: &str| {
        issued
            .iter()
            .find(|(t, _)| t == name)
            .map(|(_, b)| b.clone())
            .unwrap()
    };
    for bastion in ["bastion1", "bastion2"] {
        let cert = &for_host(bastion)["certificate"];
        assert_eq!(cert["permit_port_forwarding"], true);
        assert_eq!(cert["force_command"], "/bin/false");
    }
    let db = &for_host("db")["certificate"];
    assert_eq!(db["permit_port_forwarding"], false);
    assert_eq!(db["force_command"], "echo via-bastions");
    assert_eq!(db["source_address"], "127.0.0.1/32");
    assert!(bastion1.log().contains("Accepted certificate"));
    assert!(bastion2.log().contains("Accepted certificate"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sudo_elevation_runs_as_root_through_a_real_sudoers_entry() {
    if !require_sshd() {
        return;
    }
    ensure_sudoers(USER, "ALL=(root) NOPASSWD: ALL");
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let config = host("web", &sshd, "allow_sudo = true") + &host("nosudo", &sshd, "");
    let lab = Lab::new(dir, ca_path, &config, |_| {}).await;

    let plain = lab
        .call("ssh_execute", json!({"server": "web", "command": "id -un"}))
        .await
        .unwrap();
    assert_eq!(plain["stdout"], format!("{USER}\n"));
    let root = lab
        .call(
            "ssh_execute",
            json!({"server": "web", "command": "id -un", "sudo": true}),
        )
        .await
        .unwrap();
    assert_eq!(root["stdout"], "root\n", "{root}");

    // An elevated shell session runs the whole shell under sudo.
    let open = lab
        .call(
            "ssh_session_open",
            json!({"server": "web", "mode": "shell", "sudo": true}),
        )
        .await
        .unwrap();
    let id = open["session_id"].as_str().unwrap();
    let who = lab
        .call(
            "ssh_session_exec",
            json!({"session_id": id, "command": "id -un"}),
        )
        .await
        .unwrap();
    assert_eq!(who["stdout"], "root\n");
    lab.call("ssh_session_close", json!({"session_id": id}))
        .await
        .unwrap();

    // A host without allow_sudo refuses, before any certificate.
    let refused = lab
        .call(
            "ssh_execute",
            json!({"server": "nosudo", "command": "id", "sudo": true}),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code, "denied");
    assert!(
        refused.message.contains("sudo-not-allowed"),
        "{}",
        refused.message
    );
}

/// Issue #11's review, end to end: the account's login shell is `/bin/sh` (dash on Debian), which
/// has no `$'…'`. The force-command is rebuilt from the decoded words, so the quoted `; touch …`
/// stays one argument for the one-shot, the elevated one-shot (argv and `/bin/sh -c`) and an exec
/// session, and nothing else runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_dash_breakout_stays_one_argument_on_a_real_host() {
    if !require_sshd() {
        return;
    }
    ensure_sudoers(USER, "ALL=(root) NOPASSWD: ALL");
    let (dir, ca_path, ca_line) = Lab::ca();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let login_shell = passwd
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{USER}:")))
        .and_then(|l| l.rsplit(':').next())
        .unwrap()
        .to_owned();
    let resolved = std::fs::canonicalize(&login_shell).unwrap();
    assert!(
        resolved.ends_with("dash"),
        "the test account's login shell {login_shell} is {}, not dash: this test proves nothing",
        resolved.display()
    );
    let sshd = Lab::sshd(&ca_line);
    let marker = dir.path().join("PWN");
    let pwn = marker.display().to_string();
    let config = host(
        "web",
        &sshd,
        "allow_sudo = true\n[hosts.web.command_policy]\nmode = \"allowlist\"\nallow = ['^printf \\[%s\\]( |$)']\n",
    ) + &host(
        "gated",
        &sshd,
        "[hosts.gated.command_policy]\nmode = \"off\"\nrequire_approval = ['^touch ']\n",
    );
    let lab = Lab::new(dir, ca_path, &config, |_| {}).await;
    let breakout = format!("printf '[%s]' $'a\\' ; touch {pwn} #\\''");
    let want = format!("[a' ; touch {pwn} #']");
    let cases = [
        (json!({"server": "web", "command": breakout}), "login shell"),
        (
            json!({"server": "web", "command": format!("{breakout} 2>&1")}),
            "login shell, fd dup",
        ),
        (
            json!({"server": "web", "command": breakout, "sudo": true}),
            "sudo argv",
        ),
        (
            json!({"server": "web", "command": format!("{breakout} 2>&1"), "sudo": true}),
            "sudo /bin/sh -c",
        ),
    ];
    for (args, how) in cases {
        let out = lab.call("ssh_execute", args).await.unwrap();
        assert_eq!(out["stdout"], want, "{how}: {out}");
        assert!(!marker.exists(), "{how}: the injected touch ran");
    }
    let open = lab
        .call("ssh_session_open", json!({"server": "web"}))
        .await
        .unwrap();
    let id = open["session_id"].as_str().unwrap().to_owned();
    let out = lab
        .call(
            "ssh_session_exec",
            json!({"session_id": id, "command": format!("{breakout} 2>&1")}),
        )
        .await
        .unwrap();
    assert_eq!(out["stdout"], want, "exec session: {out}");
    assert!(!marker.exists(), "exec session: the injected touch ran");

    // An `off` policy's require_approval holds the call (issue #11, finding 3): nothing runs.
    let held = lab
        .call(
            "ssh_execute",
            json!({"server": "gated", "command": format!("touch {pwn}")}),
        )
        .await
        .unwrap_err();
    assert_eq!(held.code, "needs_approval", "{held}");
    assert!(!marker.exists(), "a held call ran");
    // and its shell parsing is on: a substitution is refused, not run.
    let parsed = lab
        .call(
            "ssh_execute",
            json!({"server": "gated", "command": format!("echo $(touch {pwn})")}),
        )
        .await
        .unwrap_err();
    assert!(
        parsed.message.contains("shell-parse:command-substitution"),
        "{parsed}"
    );
    assert!(!marker.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_and_pty_sessions_keep_state_and_exit_codes() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let lab = Lab::new(
        dir,
        ca_path,
        &host("web", &sshd, "allow_pty = true"),
        |_| {},
    )
    .await;
    for mode in ["shell", "pty"] {
        let open = lab
            .call("ssh_session_open", json!({"server": "web", "mode": mode}))
            .await
            .unwrap();
        let id = open["session_id"].as_str().unwrap().to_owned();
        let exec = |command: &str| {
            lab.call(
                "ssh_session_exec",
                json!({"session_id": id, "command": command}),
            )
        };
        exec("cd /tmp && export MEHO_X=kept").await.unwrap();
        let pwd = exec("pwd; echo $MEHO_X").await.unwrap();
        assert_eq!(pwd["stdout"], "/tmp\nkept\n", "{mode}: {pwd}");
        let failed = exec("false").await.unwrap();
        assert_eq!(failed["exit_code"], 1, "{mode}");
        let syntax = exec("if then").await.unwrap();
        assert_ne!(syntax["exit_code"], 0, "{mode}: {syntax}");
        let stderr = exec("echo to-err >&2; echo to-out").await.unwrap();
        if mode == "shell" {
            assert_eq!(stderr["stdout"], "to-out\n");
            assert_eq!(stderr["stderr"], "to-err\n");
        } else {
            // A PTY merges the streams.
            assert_eq!(stderr["stdout"], "to-err\nto-out\n");
        }
        let faked = exec("printf '\\n__MEHO_0000_1__ 0\\n'; echo after")
            .await
            .unwrap();
        assert!(
            faked["stdout"].as_str().unwrap().ends_with("after\n"),
            "{faked}"
        );
        // State survived all of it.
        let still = exec("pwd").await.unwrap();
        assert_eq!(still["stdout"], "/tmp\n", "{mode}");
        lab.call("ssh_session_close", json!({"session_id": id}))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_sessions_reuse_one_connection_and_apply_policy_changes_on_the_next_exec() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let policy = |allow: &str| {
        host(
            "web",
            &sshd,
            &format!("[hosts.web.command_policy]\nmode = \"allowlist\"\nallow = [{allow}]\n"),
        )
    };
    let lab = Lab::new(dir, ca_path, &policy("'^uptime$', '^id -un$'"), |_| {}).await;

    // A command-policy host allows only exec sessions.
    let shell = lab
        .call(
            "ssh_session_open",
            json!({"server": "web", "mode": "shell"}),
        )
        .await
        .unwrap_err();
    assert_eq!(shell.code, "denied");
    assert!(shell.message.contains("session-mode-needs-exec"), "{shell}");

    let open = lab
        .call("ssh_session_open", json!({"server": "web"}))
        .await
        .unwrap();
    let id = open["session_id"].as_str().unwrap().to_owned();
    let logins_before = sshd.log().matches("Accepted certificate").count();
    let first = lab
        .call(
            "ssh_session_exec",
            json!({"session_id": id, "command": "id -un"}),
        )
        .await
        .unwrap();
    assert_eq!(first["stdout"], format!("{USER}\n"));
    let denied = lab
        .call(
            "ssh_session_exec",
            json!({"session_id": id, "command": "cat /etc/passwd"}),
        )
        .await
        .unwrap_err();
    assert_eq!(denied.code, "denied");

    lab.reload(&policy("'^uptime$'"));
    let after = lab
        .call(
            "ssh_session_exec",
            json!({"session_id": id, "command": "id -un"}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        after.code, "denied",
        "the reloaded policy applies to the open session"
    );
    let still = lab
        .call(
            "ssh_session_exec",
            json!({"session_id": id, "command": "uptime"}),
        )
        .await
        .unwrap();
    assert!(still["stdout"].as_str().unwrap().contains("load average"));
    // All of that ran over the one connection the session opened.
    assert_eq!(
        sshd.log().matches("Accepted certificate").count(),
        logins_before
    );

    // Denials are audited against the session.
    let denials: Vec<_> = lab
        .records()
        .await
        .into_iter()
        .filter(|r| r.kind == "denial" && r.action.as_deref() == Some("ssh_session_exec"))
        .collect();
    assert_eq!(denials.len(), 2);
    assert!(
        denials
            .iter()
            .all(|r| r.session_id.as_deref() == Some(id.as_str()))
    );

    // Re-keying the host ends the session.
    lab.reload(&format!(
        "[hosts.web]\naddr = \"{}\"\nuser = \"{USER}\"\nhost_key = \"{}\"\n",
        sshd.addr_string(),
        generate_ed25519("new")
            .unwrap()
            .public_key()
            .to_openssh()
            .unwrap()
    ));
    let ended = lab
        .call(
            "ssh_session_exec",
            json!({"session_id": id, "command": "uptime"}),
        )
        .await
        .unwrap_err();
    assert_eq!(ended.code, "session_ended", "{ended}");
    let gone = lab
        .call(
            "ssh_session_exec",
            json!({"session_id": id, "command": "uptime"}),
        )
        .await
        .unwrap_err();
    assert_eq!(gone.code, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_have_caps_owners_and_timeouts() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let lab = Lab::new(dir, ca_path, &host("web", &sshd, ""), |o| {
        o.sessions.max_per_caller = 1;
        o.sessions.max_sessions = 2;
        o.sessions.idle_timeout = Duration::from_secs(2);
    })
    .await;
    let first = lab
        .call("ssh_session_open", json!({"server": "web"}))
        .await
        .unwrap();
    let id = first["session_id"].as_str().unwrap().to_owned();
    let second = lab
        .call("ssh_session_open", json!({"server": "web"}))
        .await
        .unwrap_err();
    assert_eq!(second.code, "limit");
    // Another caller cannot see or use the session.
    let other = meho_gateway::Caller::agent("agent-2");
    let stolen = lab
        .call_as(
            &other,
            "ssh_session_exec",
            json!({"session_id": id, "command": "id"}),
        )
        .await
        .unwrap_err();
    assert_eq!(stolen.code, "not_found");
    lab.call_as(&other, "ssh_session_open", json!({"server": "web"}))
        .await
        .unwrap();
    let third = lab
        .call_as(
            &meho_gateway::Caller::agent("agent-3"),
            "ssh_session_open",
            json!({"server": "web"}),
        )
        .await
        .unwrap_err();
    assert_eq!(third.code, "limit", "global cap");

    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(lab.broker.reap().await, 2);
    assert_eq!(lab.broker.open_sessions(), 0);
    let closed: Vec<_> = lab.records_of("ssh_session_close").await;
    assert_eq!(closed.len(), 2);
    assert!(closed.iter().all(|r| body(r)["reason"] == "idle_timeout"));
    let _ = caller();
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_sessions_are_recorded_as_asciicast_that_replays() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let lab = Lab::new(dir, ca_path, &host("web", &sshd, ""), |_| {}).await;
    let open = lab
        .call(
            "ssh_session_open",
            json!({"server": "web", "mode": "shell"}),
        )
        .await
        .unwrap();
    let id = open["session_id"].as_str().unwrap().to_owned();
    let path = std::path::PathBuf::from(open["recording"].as_str().unwrap());
    let commands = ["echo hello-cast", "printf 'a\\nb\\n'", "echo oops >&2"];
    let mut expected_out = String::new();
    for command in commands {
        let out = lab
            .call(
                "ssh_session_exec",
                json!({"session_id": id, "command": command}),
            )
            .await
            .unwrap();
        expected_out.push_str(out["stdout"].as_str().unwrap());
    }
    let closed = lab
        .call("ssh_session_close", json!({"session_id": id}))
        .await
        .unwrap();

    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert!(header["width"].as_u64().unwrap() > 0);
    let (mut input, mut output, mut errors) = (String::new(), String::new(), String::new());
    let mut last_time = 0.0;
    for line in lines {
        let event: (f64, String, String) = serde_json::from_str(line).unwrap();
        assert!(event.0 >= last_time, "event times never go backwards");
        last_time = event.0;
        match event.1.as_str() {
            "i" => input.push_str(&event.2),
            "o" => output.push_str(&event.2),
            "e" => errors.push_str(&event.2),
            other => panic!("unknown event code {other}"),
        }
    }
    assert_eq!(input, commands.map(|c| format!("{c}\n")).concat());
    assert_eq!(output, expected_out);
    assert_eq!(output, "hello-cast\na\nb\n");
    assert_eq!(errors, "oops\n");

    // The closing record carries the file's sha256.
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    };
    assert_eq!(closed["recording_sha256"], sha);
    let close = lab.records_of("ssh_session_close").await;
    let closing = close.iter().find(|r| r.kind == "outcome").unwrap();
    assert_eq!(body(closing)["recording_sha256"], sha);
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_recording_fails_the_session_when_the_directory_is_unwritable() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"file").unwrap();
    let lab = Lab::new(dir, ca_path, &host("web", &sshd, ""), |o| {
        o.recording_dir = blocker.join("recordings");
        o.recording_strict = true;
    })
    .await;
    let err = lab
        .call(
            "ssh_session_open",
            json!({"server": "web", "mode": "shell"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "execution_failed");
    assert!(err.message.contains("recording is strict"), "{err}");
    assert_eq!(lab.broker.open_sessions(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn output_is_capped_and_commands_time_out() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let lab = Lab::new(dir, ca_path, &host("web", &sshd, ""), |o| {
        o.output_cap_bytes = 100;
        o.exec_timeout = Duration::from_secs(2);
    })
    .await;
    let big = lab
        .call(
            "ssh_execute",
            json!({"server": "web", "command": "seq 1 10000"}),
        )
        .await
        .unwrap();
    assert_eq!(big["stdout_truncated"], true);
    assert_eq!(big["stderr_truncated"], false);
    let stdout = big["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("1\n2\n3\n"));
    assert!(stdout.contains("[meho: output truncated,"), "{stdout}");
    assert_eq!(big["exit_code"], 0);

    let slow = lab
        .call(
            "ssh_execute",
            json!({"server": "web", "command": "sleep 30"}),
        )
        .await
        .unwrap();
    assert_eq!(slow["timed_out"], true);
    assert_eq!(slow["exit_code"], serde_json::Value::Null);
    let outcome = lab
        .records_of("ssh_execute")
        .await
        .into_iter()
        .rev()
        .find(|r| r.kind == "outcome")
        .unwrap();
    assert_eq!(body(&outcome)["error"], "exec timeout");
}

#[tokio::test(flavor = "multi_thread")]
async fn files_move_over_sftp_with_hashes_caps_and_gates() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let config = host("files", &sshd, "allow_file_transfer = true")
        + &host("nofiles", &sshd, "")
        + &host(
            "guarded",
            &sshd,
            "allow_file_transfer = true\n[hosts.guarded.command_policy]\nmode = \"denylist\"\ndeny = ['^put /etc/']\n",
        );
    let lab = Lab::new(dir, ca_path, &config, |o| o.file_transfer_max_bytes = 4096).await;
    let remote = format!("/tmp/meho-sftp-{}.bin", std::process::id());
    let content: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&content)
    };
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&content))
    };
    let put = lab
        .call(
            "ssh_put_file",
            json!({"server": "files", "path": remote, "content_base64": b64}),
        )
        .await
        .unwrap();
    assert_eq!(put["sha256"], sha);
    assert_eq!(std::fs::read(&remote).unwrap(), content, "the bytes landed");
    let got = lab
        .call("ssh_get_file", json!({"server": "files", "path": remote}))
        .await
        .unwrap();
    assert_eq!(got["sha256"], sha);
    assert_eq!(got["content_base64"], b64);

    let too_big = "x".repeat(5000);
    let err = lab
        .call(
            "ssh_put_file",
            json!({"server": "files", "path": "/tmp/big", "content": too_big}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "limit");
    std::fs::write(&remote, vec![b'y'; 5000]).unwrap();
    let err = lab
        .call("ssh_get_file", json!({"server": "files", "path": remote}))
        .await
        .unwrap_err();
    assert!(err.message.contains("transfer cap"), "{err}");
    let _ = std::fs::remove_file(&remote);

    let gated = lab
        .call(
            "ssh_get_file",
            json!({"server": "nofiles", "path": "/etc/hostname"}),
        )
        .await
        .unwrap_err();
    assert!(
        gated.message.contains("file-transfer-not-allowed"),
        "{gated}"
    );
    let denied = lab
        .call(
            "ssh_put_file",
            json!({"server": "guarded", "path": "/etc/meho-evil", "content": "x"}),
        )
        .await
        .unwrap_err();
    assert_eq!(denied.code, "denied");
    assert!(denied.message.contains("deny:^put /etc/"), "{denied}");
    // File certificates are pinned to SFTP: the credential says so.
    let issued = lab
        .records()
        .await
        .into_iter()
        .find(|r| r.kind == "credential")
        .unwrap();
    assert_eq!(
        body(&issued)["certificate"]["force_command"],
        "internal-sftp"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_runs_issue_nothing_and_secrets_stay_out_of_the_audit_log() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let lab = Lab::new(
        dir,
        ca_path,
        &host(
            "web",
            &sshd,
            "[hosts.web.command_policy]\nmode = \"denylist\"\ndeny = ['^rm ']\n",
        ),
        |_| {},
    )
    .await;
    let dry = lab
        .call(
            "ssh_execute",
            json!({"server": "web", "command": "rm -rf /tmp/x", "dry_run": true}),
        )
        .await
        .unwrap();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["decision"]["allowed"], false);
    assert_eq!(dry["decision"]["rule"], "deny:^rm ");
    assert!(!sshd.log().contains("Accepted"), "a dry run never connects");

    let canary = "meho-canary-5f1e9a";
    lab.call(
        "ssh_execute",
        json!({"server": "web", "command": format!("echo password={canary}")}),
    )
    .await
    .unwrap();
    for record in lab.records().await {
        assert!(
            !record.body.contains(canary),
            "canary leaked: {}",
            record.body
        );
        assert!(
            !record.body.contains("PRIVATE KEY"),
            "key material in the audit log"
        );
    }
}

#[test]
fn the_harness_kills_its_sshd_by_pid() {
    if !require_sshd() {
        return;
    }
    let (_dir, _ca_path, ca_line) = Lab::ca();
    let sshd = Sshd::start(SshdOptions::new([ca_line]));
    let pid = sshd.pid();
    assert!(crate::harness::pid_alive(pid));
    drop(sshd);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while crate::harness::pid_alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !crate::harness::pid_alive(pid),
        "sshd {pid} survived its harness"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_callers_name_agents_and_other_agents_see_no_host() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let lab = Lab::new(
        dir,
        ca_path,
        &host("web", &sshd, "allowed_callers = [\"agent-1\"]"),
        |_| {},
    )
    .await;
    let listed = lab.call("list_targets", json!({})).await.unwrap();
    assert_eq!(listed["targets"][0]["name"], "web");
    let ok = lab
        .call(
            "ssh_execute",
            json!({"server": "web", "command": "echo hi"}),
        )
        .await
        .unwrap();
    assert_eq!(ok["stdout"], "hi\n");

    let other = meho_gateway::Caller::agent("agent-2");
    let listed = lab
        .call_as(&other, "list_targets", json!({}))
        .await
        .unwrap();
    assert_eq!(listed["targets"], json!([]));
    let err = lab
        .call_as(
            &other,
            "ssh_execute",
            json!({"server": "web", "command": "echo hi"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "unknown_target");
    let denial = lab
        .records()
        .await
        .into_iter()
        .find(|r| r.kind == "denial" && r.principal == "agent-2")
        .unwrap();
    assert_eq!(denial.outcome.as_deref(), Some("unknown_target"));

    // Malformed calls are precise, audited nowhere near a host, and never panic.
    let err = lab
        .call("ssh_execute", json!({"server": "web"}))
        .await
        .unwrap_err();
    assert_eq!(err.code, "invalid_arguments");
    assert!(err.message.contains("command"), "{err}");
    let err = lab
        .call(
            "ssh_execute",
            json!({"server": "web", "command": "id", "force": true}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "invalid_arguments");
    let err = lab.call("ssh_nope", json!({})).await.unwrap_err();
    assert_eq!(err.code, "unknown_tool");
}

#[tokio::test(flavor = "multi_thread")]
async fn pty_one_shots_and_elevated_exec_sessions() {
    if !require_sshd() {
        return;
    }
    ensure_sudoers(USER, "ALL=(root) NOPASSWD: ALL");
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let lab = Lab::new(
        dir,
        ca_path,
        &host("web", &sshd, "allow_pty = true\nallow_sudo = true"),
        |o| o.sessions.max_lifetime = Duration::from_secs(2),
    )
    .await;
    let tty = lab
        .call(
            "ssh_execute",
            json!({"server": "web", "command": "tty; echo e >&2", "pty": true}),
        )
        .await
        .unwrap();
    let stdout = tty["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("/dev/pts/"), "{stdout}");
    assert!(stdout.contains('e'), "a PTY merges stderr: {tty}");
    let no_tty = lab
        .call("ssh_execute", json!({"server": "web", "command": "tty"}))
        .await
        .unwrap();
    assert_eq!(no_tty["stdout"], "not a tty\n");

    let open = lab
        .call("ssh_session_open", json!({"server": "web", "sudo": true}))
        .await
        .unwrap();
    let id = open["session_id"].as_str().unwrap().to_owned();
    let who = lab
        .call(
            "ssh_session_exec",
            json!({"session_id": id, "command": "id -un"}),
        )
        .await
        .unwrap();
    assert_eq!(who["stdout"], "root\n");
    // The lifetime cap closes even a busy session.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(lab.broker.reap().await, 1);
    let closed = lab.records_of("ssh_session_close").await;
    assert_eq!(body(&closed[0])["reason"], "max_lifetime");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_never_see_each_others_hosts_and_read_only_runs_reads_only() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let config = host(
        "reads",
        &sshd,
        "tenant = \"a\"\n[hosts.reads.command_policy]\nmode = \"allowlist\"\nallow = ['^uptime$']\ntier = \"read\"\n",
    ) + &host("writes", &sshd, "tenant = \"a\"")
        + &host("other", &sshd, "tenant = \"b\"");
    let lab = Lab::new(dir, ca_path, &config, |_| {}).await;
    let a = meho_gateway::Caller {
        tenant: "a".into(),
        ..meho_gateway::Caller::agent("alice")
    };
    let listed = lab.call_as(&a, "list_targets", json!({})).await.unwrap();
    let names: Vec<&str> = listed["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["reads", "writes"]);
    assert!(
        listed["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["kind"] == "ssh" && t["tenant"] == "a")
    );
    let err = lab
        .call_as(
            &a,
            "ssh_execute",
            json!({"server": "other", "command": "id"}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.code, "unknown_target",
        "another tenant's host does not exist"
    );
    // The signer refuses it too, whatever the broker does.
    let key = generate_ed25519("k").unwrap();
    let refused = lab
        .signer
        .sign(
            "alice",
            &Intent {
                target: "other".into(),
                tenant: Some("a".into()),
                command: Some("id".into()),
                public_key: Some(key.public_key().to_openssh().unwrap()),
                ..Intent::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        meho_ssh::signer::SignError::UnknownHost(_)
    ));

    let reader = meho_gateway::Caller {
        max_tier: meho_gateway::Tier::Read,
        ..a.clone()
    };
    let up = lab
        .call_as(
            &reader,
            "ssh_execute",
            json!({"server": "reads", "command": "uptime"}),
        )
        .await
        .unwrap();
    assert!(up["stdout"].as_str().unwrap().contains("load average"));
    let issued_before = lab
        .records()
        .await
        .iter()
        .filter(|r| r.kind == "credential" && body(r)["certificate"]["serial"].is_string())
        .count();
    let write = lab
        .call_as(
            &reader,
            "ssh_execute",
            json!({"server": "writes", "command": "touch /tmp/x"}),
        )
        .await
        .unwrap_err();
    assert_eq!(write.code, "denied");
    assert!(write.message.contains("write-tier"), "{write}");
    let issued_after = lab
        .records()
        .await
        .iter()
        .filter(|r| r.kind == "credential" && body(r)["certificate"]["serial"].is_string())
        .count();
    assert_eq!(
        issued_before, issued_after,
        "no certificate for a call the role may not make"
    );
    let shell = lab
        .call_as(
            &reader,
            "ssh_session_open",
            json!({"server": "writes", "mode": "shell"}),
        )
        .await
        .unwrap_err();
    assert_eq!(shell.code, "denied");
    let put = lab
        .call_as(
            &reader,
            "ssh_put_file",
            json!({"server": "writes", "path": "/tmp/x", "content": "x"}),
        )
        .await
        .unwrap_err();
    assert_eq!(put.code, "denied");
}
