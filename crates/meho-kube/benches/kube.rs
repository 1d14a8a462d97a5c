//! Kubernetes connector figures against a real kube-apiserver on loopback
//! (`cargo bench -p meho-kube --bench kube`):
//!
//! - per-call latency of `k8s_get` through the gateway's pipeline (decide, TokenRequest, the
//!   call, the credential, intent and outcome records on an SQLite store) against `kubectl get
//!   pod X` with a static token to the same apiserver, a fresh process each time as a user runs
//!   it (its discovery cache warm); p50, p99 and the ratio meho/kubectl (target <= 1.0);
//! - the minter's TokenRequest alone (meho's `ClusterRuntime::mint`);
//! - the apiserver helper's cold start and RSS (from the harness).
//!
//! Needs the kube-apiserver test peer (`MEHO_KUBE_APISERVER`) and kubectl (`MEHO_KUBECTL`);
//! `scripts/test` provides both. Prints figures only: timings are never asserted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_debug_implementations
)]

use std::process::Command;
use std::time::{Duration, Instant};

use meho_gateway::Caller;
use meho_kube::ClusterRuntime;
use meho_test_support::kube::{KubeApiserver, kubectl};
use meho_test_support::kube_lab::{KubeLab, cluster_toml};
use serde_json::json;

const WARM_UP: usize = 20;
const RUNS: usize = 200;
const NS: &str = "bench";

const FIXTURE: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: agent, namespace: bench }
rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list"] }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: agent, namespace: bench }
subjects: [{ kind: ServiceAccount, name: agent, namespace: bench }]
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: agent }
---
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: bench }
spec: { nodeName: node-a, containers: [{ name: app, image: registry.invalid/web:1 }] }
"#;

/// p50 and p99 in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: usize| ms(samples[(samples.len() * q / 100).min(samples.len() - 1)]);
    (at(50), at(99))
}

fn line(what: &str, samples: Vec<Duration>) -> (f64, f64) {
    let n = samples.len();
    let (p50, p99) = percentiles(samples);
    println!("{what:<58} p50 {p50:>8.2} ms   p99 {p99:>8.2} ms   (n = {n})");
    (p50, p99)
}

fn main() {
    // `cargo test --all-targets` builds benches and runs them without `--bench`: do nothing then
    // (the tests cover the same paths against the same apiserver).
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let Some(kube) = KubeApiserver::start().await else {
        return;
    };
    let Some(kubectl) = kubectl() else {
        println!("SKIPPED: kube bench needs kubectl (MEHO_KUBECTL; scripts/test fetches it)");
        return;
    };
    let cold_start = kube.cold_start();
    kube.node("node-a").await;
    let dir = tempfile::Builder::new()
        .prefix("meho-kube-bench-")
        .tempdir()
        .unwrap();
    let minter = kube.minter(&[(NS, "agent")]).await;
    kube.apply(FIXTURE).await;
    kube.pod_running(NS, "web").await;
    let toml = cluster_toml(
        "lab",
        &kube,
        &minter,
        "sa_bindings = [{ namespace = \"bench\", service_account = \"agent\" }]\n\
         rules = [{ verbs = [\"get\"], resources = [\"pods\"], namespaces = [\"bench\"], effect = \"allow\" }]\n",
    );
    let lab = KubeLab::new(dir, &toml).await;
    let caller = Caller::agent("bench-agent");
    let args = json!({ "cluster": "lab", "resource": "pods", "namespace": NS, "name": "web" });

    println!(
        "\nmeho-kube against kube-apiserver {} on 127.0.0.1 ({} cores)",
        kube.admin_ok("GET", "/version", None).await["gitVersion"],
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    // meho: the whole pipeline per call.
    let mut meho = Vec::with_capacity(RUNS);
    for i in 0..WARM_UP + RUNS {
        let started = Instant::now();
        let answer = lab
            .gateway
            .call(&caller, "k8s_get", args.clone())
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(answer["rows"][0][0], "web", "{answer}");
        if i >= WARM_UP {
            meho.push(took);
        }
    }

    // kubectl: a fresh process per call, with a static token and a warm discovery cache.
    let token = kube.token(NS, "agent", 3600).await;
    let kubeconfig = kube.kubeconfig(&token);
    let home = tempfile::tempdir().unwrap();
    let mut plain = Vec::with_capacity(RUNS);
    for i in 0..WARM_UP + RUNS {
        let started = Instant::now();
        let out = Command::new(&kubectl)
            .env("HOME", home.path())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "pod", "web", "-n", NS])
            .output()
            .unwrap();
        let took = started.elapsed();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("web"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if i >= WARM_UP {
            plain.push(took);
        }
    }

    // The minter's TokenRequest alone, as a call pays it.
    let cluster = ClusterRuntime::new(lab.config.clusters["lab"].clone()).unwrap();
    let binding = cluster.config.sa_bindings[0].clone();
    let mut mints = Vec::with_capacity(RUNS);
    for i in 0..WARM_UP + RUNS {
        let started = Instant::now();
        let minted = cluster.mint(&binding).await.unwrap();
        let took = started.elapsed();
        assert_eq!(minted.service_account, "bench/agent");
        if i >= WARM_UP {
            mints.push(took);
        }
    }

    println!();
    let (meho50, meho99) = line("k8s_get through the pipeline (meho, SQLite audit)", meho);
    let (kubectl50, kubectl99) = line("kubectl get pod (fresh process, static token)", plain);
    println!(
        "{:<58} p50 {:>8.2}      p99 {:>8.2}      (target <= 1.0)",
        "ratio meho/kubectl",
        meho50 / kubectl50,
        meho99 / kubectl99
    );
    line("TokenRequest (the minter's, ClusterRuntime::mint)", mints);
    println!(
        "{:<58} cold start {:.2} s, RSS {} MiB",
        "kube-apiserver helper (with etcd)",
        cold_start.as_secs_f64(),
        kube.rss_kib() / 1024
    );
}
