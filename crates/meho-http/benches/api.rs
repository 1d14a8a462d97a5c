//! What meho adds to one REST call: `api_call` through the whole pipeline (freeze check, plan
//! against the spec, decision, intent and outcome records in SQLite with fsync, the credential)
//! against Prometheus on loopback, measured against the same request made directly.
//!
//! - `vault`: the credential from Vault per call (JWT signed by meho, login, KV v2 read, the
//!   call, token revocation), the issue's figure;
//! - `stored`: the credential sealed in meho's store (no Vault round trips);
//! - baselines: `curl` with a static token as a fresh process (what an agent with a static token
//!   would run), and the same request from a reqwest client in this process.
//!
//! Run with `cargo bench -p meho-http --bench api`; it prints p50 and p99 of each and the
//! ratios. It needs OpenBao and Prometheus (as the tests do: `MEHO_BAO`, `MEHO_PROMETHEUS`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing,
    missing_docs
)]

use std::time::{Duration, Instant};

use meho_test_support::api_lab::{ApiLab, Peers, agent, config_toml, issuer_in};
use serde_json::json;

const CALLS: usize = 300;
const WARMUP: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let p50 = percentile(&samples, 0.50);
    let p99 = percentile(&samples, 0.99);
    println!(
        "{name:<44} p50 {:>8.2} ms   p99 {:>8.2} ms   (n={})",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        samples.len()
    );
    (p50, p99)
}

async fn time_calls(lab: &ApiLab, api: &str) -> Vec<Duration> {
    let args = json!({ "api": api, "operation": "getBuildInfo" });
    for _ in 0..WARMUP {
        lab.call(&agent(), "api_call", args.clone()).await.unwrap();
    }
    let mut samples = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let started = Instant::now();
        let answer = lab.call(&agent(), "api_call", args.clone()).await.unwrap();
        samples.push(started.elapsed());
        assert_eq!(answer["status"], 200);
    }
    samples
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let issuer = issuer_in(dir.path());
        let Some(peers) = Peers::start(&issuer).await else {
            println!("SKIPPED: OpenBao or Prometheus is missing");
            return;
        };
        let static_token = peers.api_token.clone();
        let extra = format!(
            r#"
[apis.promstatic]
base_url = "{}"
spec = "{}"
auth = {{ kind = "bearer", secret = "stored:bao-token" }}
"#,
            peers.prometheus.url(),
            meho_test_support::api_lab::prometheus_spec().display()
        );
        let toml = config_toml(&peers, dir.path(), &extra);
        let lab = ApiLab::new(dir, &toml, &static_token).await;
        let url = format!("{}/api/v1/status/buildinfo", peers.prometheus.url());

        println!("api_call getBuildInfo on Prometheus (loopback), {CALLS} sequential calls each");
        let (vault_p50, vault_p99) = report(
            "meho, Vault per call (login+read+call+revoke)",
            time_calls(&lab, "prom").await,
        );
        let (stored_p50, stored_p99) = report(
            "meho, sealed stored token",
            time_calls(&lab, "promstatic").await,
        );

        // The same request from this process, a client reused (what meho's send costs alone).
        let client = reqwest::Client::new();
        let mut direct = Vec::with_capacity(CALLS);
        for i in 0..CALLS + WARMUP {
            let started = Instant::now();
            let response = client
                .get(&url)
                .bearer_auth(&static_token)
                .send()
                .await
                .unwrap();
            let _ = response.bytes().await.unwrap();
            if i >= WARMUP {
                direct.push(started.elapsed());
            }
        }
        let (direct_p50, _) = report("reqwest in-process, static token", direct);

        // `curl` as a fresh process with a static token: what an agent would run itself.
        let mut curl = Vec::with_capacity(CALLS);
        for i in 0..CALLS + WARMUP {
            let started = Instant::now();
            let out = std::process::Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
                .arg(format!("Authorization: Bearer {static_token}"))
                .arg(&url)
                .output()
                .unwrap();
            if i >= WARMUP {
                curl.push(started.elapsed());
            }
            assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
        }
        let (curl_p50, curl_p99) = report("curl (fresh process), static token", curl);

        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        println!();
        println!(
            "meho+Vault vs curl:        p50 {:.2}x   p99 {:.2}x   (overhead p50 {:+.2} ms)",
            ratio(vault_p50, curl_p50),
            ratio(vault_p99, curl_p99),
            (vault_p50.as_secs_f64() - curl_p50.as_secs_f64()) * 1e3
        );
        println!(
            "meho+stored vs curl:       p50 {:.2}x   p99 {:.2}x",
            ratio(stored_p50, curl_p50),
            ratio(stored_p99, curl_p99)
        );
        println!(
            "Vault's share of a call:   p50 {:+.2} ms (vault minus stored)",
            (vault_p50.as_secs_f64() - stored_p50.as_secs_f64()) * 1e3
        );
        println!(
            "meho+stored vs reqwest:    p50 {:.2}x (the pipeline and its two durable records)",
            ratio(stored_p50, direct_p50)
        );
    });
}
