//! SSH broker figures against a real sshd on loopback (`cargo bench -p meho-ssh --bench ssh`).
//!
//! - `ssh_execute` latency (median, p95) against OpenSSH `ssh -i key -o BatchMode=yes` with a
//!   static key (a key with a long-lived certificate from the same CA, so sshd does the same
//!   work) running the same command on the same sshd;
//! - session exec latency (exec and shell mode) against that fresh `ssh`;
//! - RSS growth per open session.
//!
//! Needs root and `/usr/sbin/sshd` (scripts/test installs openssh-server). Prints figures only:
//! timings are never asserted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_debug_implementations,
    dead_code
)]

use meho_test_support::ssh_lab as support;
use meho_test_support::sshd as harness;

use std::process::Command;
use std::time::{Duration, Instant};

use meho_gateway::Caller;
use meho_ssh::ca::{CaKey, CertSpec, generate_ed25519};
use meho_ssh::wire::SessionMode;
use russh::keys::ssh_key::LineEnding;
use serde_json::json;

use support::USER;
const RUNS: usize = 60;
const COMMAND: &str = "true";

fn stats(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = ms(samples[samples.len() / 2]);
    let p95 = ms(samples[(samples.len() * 95 / 100).min(samples.len() - 1)]);
    (median, p95)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap())
        .unwrap()
}

fn main() {
    // `cargo test --all-targets` builds benches and runs them without `--bench`: do nothing then
    // (the tests cover the same paths against sshd).
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    if !harness::sshd_available() {
        println!("SKIPPED: ssh bench needs /usr/sbin/sshd (scripts/test installs openssh-server)");
        return;
    }
    let (dir, ca_path, ca_line) = support::Lab::ca();
    let ca = CaKey::load(&ca_path).unwrap();
    let sshd = harness::Sshd::start(harness::SshdOptions::new([ca_line]));

    // The static key OpenSSH uses: written once, with a one-hour certificate next to it.
    let static_key = generate_ed25519("static").unwrap();
    let key_path = dir.path().join("static");
    std::fs::write(
        &key_path,
        static_key.to_openssh(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let now = meho_ssh::signer::unix_now();
    let cert = ca
        .sign(&CertSpec {
            public_key: static_key.public_key().clone(),
            principal: USER.into(),
            key_id: "bench-static".into(),
            serial: 1,
            valid_after: now - 60,
            valid_before: now + 3600,
            force_command: None,
            source_address: None,
            permit_pty: false,
            permit_port_forwarding: false,
        })
        .unwrap();
    std::fs::write(
        dir.path().join("static-cert.pub"),
        cert.to_openssh().unwrap(),
    )
    .unwrap();
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, sshd.known_hosts_line() + "\n").unwrap();
    // `kex` pins OpenSSH's key exchange; `None` keeps its default (post-quantum hybrid in recent
    // releases, which costs more than russh's curve25519).
    let ssh_with = |kex: Option<&str>| {
        let started = Instant::now();
        let mut command = Command::new("ssh");
        if let Some(kex) = kex {
            command.arg("-o").arg(format!("KexAlgorithms={kex}"));
        }
        let out = command
            .args(["-i", key_path.to_str().unwrap()])
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args(["-p", &sshd.port().to_string()])
            .arg(format!("{USER}@127.0.0.1"))
            .arg(COMMAND)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        started.elapsed()
    };
    let ssh_once = || ssh_with(None);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let lab = support::Lab::new(
            dir,
            ca_path,
            &(support::host("web", &sshd, "")
                + "[ssh]\nmax_sessions = 1000\nmax_sessions_per_caller = 1000\n"),
            |_| {},
        )
        .await;
        let gateway = &lab.gateway;
        let caller = Caller::agent("bench");
        let execute = json!({ "server": "web", "command": COMMAND });

        // Warm up both paths.
        for _ in 0..5 {
            gateway
                .call(&caller, "ssh_execute", execute.clone())
                .await
                .unwrap();
            ssh_once();
        }
        let mut meho = Vec::new();
        let mut openssh = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            let out = gateway
                .call(&caller, "ssh_execute", execute.clone())
                .await
                .unwrap();
            meho.push(started.elapsed());
            assert_eq!(out["exit_code"], 0);
            openssh.push(tokio::task::block_in_place(ssh_once));
        }
        let mut curve = Vec::new();
        for _ in 0..RUNS {
            curve.push(tokio::task::block_in_place(|| {
                ssh_with(Some("curve25519-sha256"))
            }));
        }
        let (curve_median, curve_p95) = stats(curve);
        let (meho_median, meho_p95) = stats(meho);
        let (ssh_median, ssh_p95) = stats(openssh);
        println!("ssh_execute `{COMMAND}` ({RUNS} runs, in-process signer, SQLite audit):");
        println!("  meho ssh_execute     median {meho_median:7.2} ms   p95 {meho_p95:7.2} ms");
        println!("  openssh ssh -i key   median {ssh_median:7.2} ms   p95 {ssh_p95:7.2} ms");
        println!(
            "  ratio meho/openssh   median {:.2}   p95 {:.2}   (target <= 1.0)",
            meho_median / ssh_median,
            meho_p95 / ssh_p95
        );
        println!(
            "  openssh, KexAlgorithms=curve25519-sha256 (russh's kex): median {curve_median:.2} ms   p95 {curve_p95:.2} ms   ratio {:.2}",
            meho_median / curve_median
        );

        for mode in [SessionMode::Exec, SessionMode::Shell] {
            let open = gateway
                .call(
                    &caller,
                    "ssh_session_open",
                    json!({ "server": "web", "mode": mode }),
                )
                .await
                .unwrap();
            let exec = json!({ "session_id": open["session_id"], "command": COMMAND });
            for _ in 0..5 {
                gateway
                    .call(&caller, "ssh_session_exec", exec.clone())
                    .await
                    .unwrap();
            }
            let mut samples = Vec::new();
            for _ in 0..RUNS {
                let started = Instant::now();
                gateway
                    .call(&caller, "ssh_session_exec", exec.clone())
                    .await
                    .unwrap();
                samples.push(started.elapsed());
            }
            let (median, p95) = stats(samples);
            println!(
                "session exec ({} mode)  median {median:7.2} ms   p95 {p95:7.2} ms   {:.1}x faster than fresh ssh (target >= 5x)",
                mode.as_str(),
                ssh_median / median
            );
        }

        // RSS per open session: open N shell sessions (the heaviest kind: connection, channel,
        // shell, recorder) and divide the growth.
        const SESSIONS: usize = 40;
        let before = rss_kib();
        let mut ids = Vec::new();
        for _ in 0..SESSIONS {
            let open = gateway
                .call(
                    &caller,
                    "ssh_session_open",
                    json!({ "server": "web", "mode": "shell" }),
                )
                .await
                .unwrap();
            ids.push(open["session_id"].as_str().unwrap().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = rss_kib();
        println!(
            "RSS growth per open shell session: {:.1} KiB ({SESSIONS} sessions, {before} -> {after} KiB; target <= 1024 KiB)",
            (after.saturating_sub(before)) as f64 / SESSIONS as f64
        );
        lab.broker.shutdown().await;
    });
}
