//! Result reduction figures (`cargo bench -p meho-reduce --bench reduce`):
//!
//! 1. Token savings: a fixed set of tasks, each a generated tool result in the shape meho's tools
//!    answer it (`k8s_list` full and compact, `k8s_logs`, `ssh_execute`, a REST envelope) and one
//!    SQL query that answers the task. What the model reads with reduction (the summary, the
//!    `result_query` call's arguments and its answer) against the raw result. Every answer is
//!    checked against what the generator knows to be true: a wrong answer aborts the bench.
//! 2. Figures over a 10,000-pod full list (~60 MB of JSON): the time from the bytes to the
//!    summary, a follow-up `result_query`'s p50 and p99 (and a cold one), and peak RSS; then
//!    reduce_value's steps one by one (time and RSS growth), measured in a fresh child process
//!    (this binary again, with `MEHO_REDUCE_BENCH_BREAKDOWN` set).
//!
//! Everything runs in-process on an SQLite store in a temporary directory. Prints figures only:
//! timings are never asserted (answers are).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss,
    clippy::too_many_lines,
    missing_debug_implementations
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use meho_gateway::{CallContext, Caller};
use meho_reduce::Results;
use meho_reduce::shape::{self, Source};
use meho_reduce::sql::{Answer, ResultTable};
use meho_reduce::store::{Caps, NewResult, ResultStore};
use serde_json::{Value, json};

/// `[ssh] output_cap_bytes` as the tasks over multi-megabyte stdout assume it raised
/// (the default is 1 MiB).
const RAISED_SSH_CAP: usize = 8 << 20;
/// `ssh_execute`'s default stdout cap.
const SSH_CAP: usize = 1 << 20;
/// `k8s_logs`' cap (meho-kube's `LOG_CAP_BYTES`).
const LOG_CAP: usize = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// A small deterministic generator.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn hex(&mut self, n: usize) -> String {
        let mut out = String::with_capacity(n);
        while out.len() < n {
            let _ = write!(out, "{:016x}", self.next());
        }
        out.truncate(n);
        out
    }
    fn alnum(&mut self, n: usize) -> String {
        const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..n)
            .map(|_| char::from(*self.pick(CHARS)))
            .collect::<String>()
    }
    fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-4{}-a{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        )
    }
}

/// A time `seconds` before "now", 2026-12-07T19:00:00 (the clocks of the generated outputs), as `YYYY-MM-DDTHH:MM:SS` (the generated days are 6 and 7
/// December 2026 only).
fn before_now(seconds: u64) -> String {
    let now = 7 * 86_400 + 19 * 3600;
    let t = now - seconds.min(now - 86_400);
    let (day, rest) = (t / 86_400, t % 86_400);
    format!(
        "2026-12-{day:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

// ---------------------------------------------------------------------------------------------
// Kubernetes pods.

const NAMESPACES: &[&str] = &[
    "payments",
    "checkout",
    "catalog",
    "search",
    "identity",
    "notifications",
    "analytics",
    "ingress-nginx",
    "monitoring",
    "logging",
    "kube-system",
    "data-platform",
];
const APPS: &[&str] = &[
    "api",
    "worker",
    "frontend",
    "consumer",
    "scheduler",
    "gateway",
    "indexer",
    "cache",
    "exporter",
    "sync",
];

struct PodTruth {
    /// Not-Running pods (by phase) per node, `(unscheduled)` for those on none.
    not_running_by_node: BTreeMap<String, i64>,
    /// Pods whose kubectl STATUS is not `Running`, per (namespace, status).
    not_running_by_ns_status: BTreeMap<(String, String), i64>,
    /// (node, phase) -> pods.
    by_node_phase: BTreeMap<(String, String), i64>,
}

struct Pod {
    full: Value,
    compact: Value,
}

fn node_name(i: u64) -> String {
    format!(
        "ip-10-0-{}-{}.eu-west-1.compute.internal",
        16 + i / 7,
        10 + i * 3
    )
}

fn pod(rng: &mut Rng, index: usize, truth: &mut PodTruth) -> Pod {
    let namespace = *rng.pick(NAMESPACES);
    let app = *rng.pick(APPS);
    let rs_hash = rng.alnum(10);
    let name = format!("{app}-{rs_hash}-{}", rng.alnum(5));
    let roll = rng.below(1000);
    let (phase, status_word) = match roll {
        0..=869 => ("Running", "Running"),
        870..=889 => ("Running", "CrashLoopBackOff"),
        890..=909 => ("Pending", "Pending"),
        910..=929 => ("Pending", "ContainerCreating"),
        930..=949 => ("Pending", "ImagePullBackOff"),
        950..=969 => ("Succeeded", "Completed"),
        970..=984 => ("Failed", "Error"),
        985..=994 => ("Failed", "Evicted"),
        _ => ("Unknown", "Unknown"),
    };
    let unscheduled = status_word == "Pending";
    let node = (!unscheduled).then(|| node_name(rng.below(40)));
    let node_key = node.clone().unwrap_or_else(|| "(unscheduled)".to_owned());
    if phase != "Running" {
        *truth
            .not_running_by_node
            .entry(node_key.clone())
            .or_default() += 1;
    }
    if status_word != "Running" {
        *truth
            .not_running_by_ns_status
            .entry((namespace.to_owned(), status_word.to_owned()))
            .or_default() += 1;
    }
    *truth
        .by_node_phase
        .entry((node_key, phase.to_owned()))
        .or_default() += 1;
    let created = before_now(3600 + rng.below(80_000));
    let started = created.clone();
    let restarts = if status_word == "CrashLoopBackOff" {
        rng.range(3, 40)
    } else if rng.chance(0.05) {
        rng.range(1, 3)
    } else {
        0
    };
    let image_tag = format!("1.{}.{}", rng.below(30), rng.below(10));
    let image = format!("registry.example.com/{namespace}/{app}:{image_tag}");
    let pod_ip = format!("10.42.{}.{}", rng.below(250), rng.range(2, 254));
    let host_ip = format!("10.0.{}.{}", 16 + rng.below(8), rng.range(2, 254));
    let uid = rng.uuid();
    let rs_uid = rng.uuid();
    let ready = phase == "Running" && status_word == "Running";
    let env: Vec<Value> = [
        ("APP_ENV", "production".to_owned()),
        ("LOG_LEVEL", "info".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("HTTP_PORT", "8080".to_owned()),
        ("METRICS_PORT", "9090".to_owned()),
        (
            "DATABASE_HOST",
            format!("{namespace}-db.{namespace}.svc.cluster.local"),
        ),
        ("DATABASE_NAME", namespace.replace('-', "_")),
        (
            "CACHE_URL",
            format!("redis://{namespace}-redis.{namespace}.svc:6379/0"),
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://otel-collector.monitoring.svc:4317".to_owned(),
        ),
        ("OTEL_SERVICE_NAME", format!("{namespace}-{app}")),
        ("GOMAXPROCS", "2".to_owned()),
        ("FEATURE_FLAGS", "new-checkout,fast-search,beta-ui".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| json!({"name": name, "value": value}))
    .chain([
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}),
        json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}),
    ])
    .collect();
    let probe = |path: &str, delay: u64| json!({"httpGet": {"path": path, "port": 8080, "scheme": "HTTP"}, "initialDelaySeconds": delay, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3});
    let container_status = |name: &str, image: &str, rng: &mut Rng| {
        let state = match status_word {
            "Running" | "Completed" | "Error" | "Evicted" | "Unknown" if phase == "Running" => {
                json!({"running": {"startedAt": format!("{started}Z")}})
            }
            "CrashLoopBackOff" => {
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 5m0s restarting failed container={name} pod={name}")}})
            }
            "Completed" => {
                json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": format!("{started}Z"), "finishedAt": format!("{started}Z")}})
            }
            "Error" | "Evicted" => {
                json!({"terminated": {"exitCode": 137, "reason": "Error", "startedAt": format!("{started}Z"), "finishedAt": format!("{started}Z")}})
            }
            other => json!({"waiting": {"reason": other}}),
        };
        json!({
            "name": name,
            "state": state,
            "lastState": {},
            "ready": ready,
            "restartCount": restarts,
            "image": image,
            "imageID": format!("{}@sha256:{}", image.split(':').next().unwrap_or(image), rng.hex(64)),
            "containerID": format!("containerd://{}", rng.hex(64)),
            "started": ready,
        })
    };
    let app_status = container_status(app, &image, rng);
    let sidecar_image = "registry.example.com/platform/envoy:1.31.2";
    let sidecar_status = container_status("envoy", sidecar_image, rng);
    let condition = |kind: &str, ok: bool| json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": format!("{started}Z")});
    let mut spec = json!({
        "volumes": [
            {"name": "config", "configMap": {"name": format!("{app}-config"), "defaultMode": 420}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
            {"name": format!("kube-api-access-{}", rng.alnum(5)), "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ], "defaultMode": 420}}
        ],
        "containers": [
            {
                "name": app,
                "image": image,
                "args": ["--config=/etc/app/config.yaml", "--listen=:8080", "--metrics=:9090"],
                "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
                ],
                "env": env,
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "250m", "memory": "512Mi"}},
                "volumeMounts": [
                    {"name": "config", "readOnly": true, "mountPath": "/etc/app"},
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": "kube-api-access", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
                ],
                "livenessProbe": probe("/healthz", 10),
                "readinessProbe": probe("/readyz", 5),
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {"capabilities": {"drop": ["ALL"]}, "runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false}
            },
            {
                "name": "envoy",
                "image": sidecar_image,
                "args": ["--config-path", "/etc/envoy/envoy.yaml", "--log-level", "warn"],
                "ports": [{"name": "envoy-admin", "containerPort": 15000, "protocol": "TCP"}],
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}},
                "volumeMounts": [{"name": "kube-api-access", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"
            }
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": app,
        "serviceAccount": app,
        "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ],
        "priority": 0,
        "enableServiceLinks": true,
        "preemptionPolicy": "PreemptLowerPriority"
    });
    if let Some(node) = &node {
        spec["nodeName"] = json!(node);
    }
    let mut status = json!({
        "phase": phase,
        "conditions": [
            condition("PodReadyToStartContainers", !unscheduled),
            condition("Initialized", !unscheduled),
            condition("Ready", ready),
            condition("ContainersReady", ready),
            condition("PodScheduled", !unscheduled),
        ],
        "qosClass": "Burstable",
    });
    if !unscheduled {
        status["hostIP"] = json!(host_ip);
        status["hostIPs"] = json!([{"ip": host_ip}]);
        status["podIP"] = json!(pod_ip);
        status["podIPs"] = json!([{"ip": pod_ip}]);
        status["startTime"] = json!(format!("{started}Z"));
        status["containerStatuses"] = json!([app_status, sidecar_status]);
    }
    if status_word == "Evicted" {
        status["reason"] = json!("Evicted");
        status["message"] = json!(
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 92Mi."
        );
    }
    let full = json!({
        "metadata": {
            "name": name,
            "generateName": format!("{app}-{rs_hash}-"),
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": (4_000_000 + index * 7).to_string(),
            "creationTimestamp": format!("{created}Z"),
            "labels": {
                "app.kubernetes.io/name": app,
                "app.kubernetes.io/instance": format!("{namespace}-{app}"),
                "app.kubernetes.io/version": image_tag,
                "app.kubernetes.io/part-of": namespace,
                "pod-template-hash": rs_hash,
                "team": format!("team-{namespace}"),
            },
            "annotations": {
                "kubectl.kubernetes.io/restartedAt": format!("{created}Z"),
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9090",
                "prometheus.io/path": "/metrics",
                "cluster-autoscaler.kubernetes.io/safe-to-evict": "true",
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": format!("{app}-{rs_hash}"),
                "uid": rs_uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
        "status": status,
    });
    let ready_count = if ready { 2 } else { 0 };
    let restarts_cell = if restarts == 0 {
        json!(0)
    } else {
        json!(format!("{restarts} ({}m ago)", rng.range(1, 59)))
    };
    let age = format!("{}h{}m", rng.range(1, 22), rng.below(60));
    let compact = json!([
        namespace,
        name,
        format!("{ready_count}/2"),
        status_word,
        restarts_cell,
        age
    ]);
    Pod { full, compact }
}

fn pods(n: usize, seed: u64) -> (Vec<Pod>, PodTruth) {
    let mut rng = Rng::new(seed);
    let mut truth = PodTruth {
        not_running_by_node: BTreeMap::new(),
        not_running_by_ns_status: BTreeMap::new(),
        by_node_phase: BTreeMap::new(),
    };
    let pods = (0..n).map(|i| pod(&mut rng, i, &mut truth)).collect();
    (pods, truth)
}

fn full_list(pods: Vec<Value>) -> Value {
    // What `k8s_list` answers with `output: full` (render::full_list): the items, managedFields
    // removed, and the paging fields.
    json!({ "items": pods })
}

// ---------------------------------------------------------------------------------------------
// Tool results.

fn ssh_execute(stdout: String, cap: usize) -> Value {
    // meho-ssh's ExecResult.
    let mut stdout = stdout;
    let mut truncated = false;
    if stdout.len() > cap {
        let dropped = stdout.len() - cap;
        let mut cut = cap;
        while !stdout.is_char_boundary(cut) {
            cut -= 1;
        }
        stdout.truncate(cut);
        stdout.push_str(&format!(
            "\n[meho: output truncated, {dropped} more bytes dropped]"
        ));
        truncated = true;
    }
    json!({
        "stdout": stdout,
        "stderr": "",
        "exit_code": 0,
        "serial": 48_213,
        "warnings": [],
        "stdout_truncated": truncated,
        "stderr_truncated": false,
        "timed_out": false,
    })
}

/// Columns padded as Go's tabwriter (docker) does: each as wide as its widest cell plus `pad`.
fn tabwrite(rows: &[Vec<String>], pad: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}", w = widths[c] + pad);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

struct Task {
    name: &'static str,
    tool: &'static str,
    /// A cap that applies, or what was assumed.
    note: String,
    value: Value,
    sql: String,
    expected: Vec<Vec<Value>>,
}

fn task_pods_full() -> Task {
    let (pods, truth) = pods(5000, 1);
    let value = full_list(pods.into_iter().map(|p| p.full).collect());
    Task {
        name: "pods not Running by node (full list, 5,000 pods)",
        tool: "k8s_list",
        note: "output: full".into(),
        value,
        sql: "SELECT coalesce(spec->>'$.nodeName', '(unscheduled)') AS node, count(*) AS n \
              FROM result WHERE status->>'$.phase' <> 'Running' GROUP BY node ORDER BY node"
            .into(),
        expected: truth
            .not_running_by_node
            .into_iter()
            .map(|(node, n)| vec![json!(node), json!(n)])
            .collect(),
    }
}

fn task_pods_compact() -> Task {
    let (pods, truth) = pods(5000, 2);
    let value = json!({
        "columns": ["Namespace", "Name", "Ready", "Status", "Restarts", "Age"],
        "rows": pods.into_iter().map(|p| p.compact).collect::<Vec<_>>(),
    });
    Task {
        name: "pods not Running by namespace, status (compact, 5,000)",
        tool: "k8s_list",
        note: "compact has no Node column".into(),
        value,
        sql: "SELECT Namespace, Status, count(*) AS n FROM result WHERE Status <> 'Running' \
              GROUP BY Namespace, Status ORDER BY Namespace, Status"
            .into(),
        expected: truth
            .not_running_by_ns_status
            .into_iter()
            .map(|((ns, status), n)| vec![json!(ns), json!(status), json!(n)])
            .collect(),
    }
}

fn task_ps_aux() -> Task {
    let mut rng = Rng::new(3);
    let total_kb: u64 = 64 * 1024 * 1024;
    let programs: &[(&str, &str, u64, u64)] = &[
        ("root", "/usr/lib/systemd/systemd-journald", 20_000, 90_000),
        (
            "root",
            "/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id",
            8_000,
            16_000,
        ),
        ("root", "/pause", 300, 1_000),
        ("www-data", "nginx: worker process", 8_000, 60_000),
        (
            "postgres",
            "postgres: checkout checkout 10.42.3.17(51234) idle",
            10_000,
            400_000,
        ),
        (
            "app",
            "/usr/local/bin/node /srv/app/dist/server.js --port 3000",
            90_000,
            900_000,
        ),
        (
            "app",
            "java -Xms512m -Xmx4g -XX:+UseG1GC -jar /srv/catalog/catalog-service.jar",
            400_000,
            4_200_000,
        ),
        (
            "app",
            "/usr/local/bin/python3 -m gunicorn app.wsgi:application --workers 4",
            60_000,
            700_000,
        ),
        ("root", "[kworker/u16:2-events_unbound]", 0, 0),
        (
            "root",
            "/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml --container-runtime-endpoint=unix:///run/containerd/containerd.sock",
            120_000,
            200_000,
        ),
        ("redis", "redis-server *:6379", 20_000, 2_500_000),
        (
            "root",
            "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
            6_000,
            9_000,
        ),
        ("systemd+", "/lib/systemd/systemd-resolved", 9_000, 14_000),
    ];
    let mut procs: Vec<(u64, u64, String, String)> = Vec::new(); // (rss, pid, user, command)
    let mut out = format!(
        "{:<10} {:>7} {:>4} {:>4} {:>9} {:>8} {:<8} {:<4} {:<5} {:>7} {}\n",
        "USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME", "COMMAND"
    );
    for i in 0..2000u64 {
        let (user, command, lo, hi) = *rng.pick(programs);
        // Distinct sizes, so the top five are one answer.
        let rss = if hi == 0 {
            0
        } else {
            rng.range(lo, hi) * 16 + i % 16
        };
        let pid = 1000 + i * 17 + rng.below(17);
        let command = if command.ends_with("-id") {
            format!("{command} {}", rng.hex(64))
        } else {
            command.to_owned()
        };
        let mem = rss as f64 * 100.0 / total_kb as f64;
        let _ = writeln!(
            out,
            "{:<10} {:>7} {:>4.1} {:>4.1} {:>9} {:>8} {:<8} {:<4} {:<5} {:>7} {}",
            user,
            pid,
            rng.below(300) as f64 / 10.0,
            mem,
            rss + rng.range(10_000, 500_000),
            rss,
            "?",
            rng.pick(&["Ss", "S", "Sl", "Ssl", "R", "I<"]),
            rng.pick(&["Nov30", "Dec01", "10:02", "18:44"]),
            format!("{}:{:02}", rng.below(600), rng.below(60)),
            command
        );
        procs.push((rss, pid, user.to_owned(), command));
    }
    procs.sort_by_key(|p| std::cmp::Reverse(p.0));
    let expected = procs
        .iter()
        .take(5)
        .map(|(rss, pid, user, command)| {
            vec![
                json!(pid.to_string()),
                json!(user),
                json!(rss.to_string()),
                json!(command),
            ]
        })
        .collect();
    let value = ssh_execute(out, SSH_CAP);
    Task {
        name: "top 5 processes by memory (ps aux, 2,000)",
        tool: "ssh_execute",
        note: String::new(),
        value,
        sql:
            "SELECT PID, USER, RSS, COMMAND FROM result ORDER BY CAST(RSS AS INTEGER) DESC LIMIT 5"
                .into(),
        expected,
    }
}

const UNITS: &[&str] = &[
    "nginx",
    "sshd",
    "kubelet",
    "containerd",
    "postgres",
    "app-api",
    "systemd",
    "CRON",
];

fn task_journal() -> Task {
    let mut rng = Rng::new(4);
    let lines = 50_000u64;
    let span = 86_000u64;
    let mut out = String::new();
    let mut errors: BTreeMap<String, i64> = BTreeMap::new();
    let last_hour = before_now(3600);
    for i in 0..lines {
        // Oldest first, as journalctl prints.
        let ts = before_now(span - span * i / lines);
        let unit = *rng.pick(UNITS);
        let pid = 300 + rng.below(9000);
        let error = rng.chance(0.03);
        let message = if error {
            if ts.as_str() >= last_hour.as_str() {
                *errors.entry(unit.to_owned()).or_default() += 1;
            }
            match unit {
                "nginx" => format!(
                    "[error] {pid}#0: *{} upstream timed out (110: Connection timed out) while reading response header from upstream, client: 10.0.4.{}",
                    rng.below(99_999),
                    rng.below(255)
                ),
                "kubelet" => format!(
                    "E1207 pod_workers.go:1301] \"Error syncing pod, skipping\" err=\"failed to StartContainer\" pod=\"payments/api-{}\"",
                    rng.alnum(5)
                ),
                "postgres" => {
                    "ERROR:  duplicate key value violates unique constraint \"orders_pkey\""
                        .to_owned()
                }
                _ => format!(
                    "error: request {} failed: connection reset by peer",
                    rng.hex(8)
                ),
            }
        } else {
            match unit {
                "nginx" => format!(
                    "10.0.4.{} - - \"GET /api/v1/orders/{} HTTP/1.1\" 200 {} \"-\" \"okhttp/4.12.0\"",
                    rng.below(255),
                    rng.below(100_000),
                    rng.range(200, 9000)
                ),
                "sshd" => format!(
                    "Accepted publickey for deploy from 10.0.8.{} port {} ssh2: ED25519 SHA256:{}",
                    rng.below(255),
                    rng.range(30_000, 60_000),
                    rng.hex(20)
                ),
                "CRON" => "(root) CMD (/usr/local/bin/rotate-logs --keep 7)".to_owned(),
                "systemd" => "Started session-4211.scope - Session 4211 of User deploy.".to_owned(),
                _ => format!(
                    "level=info msg=\"handled request\" duration={}ms status=200 route=/v1/items",
                    rng.range(1, 900)
                ),
            }
        };
        let _ = writeln!(out, "{ts}+0000 web-01 {unit}[{pid}]: {message}");
    }
    assert!(out.len() <= RAISED_SSH_CAP, "the log fits the raised cap");
    let value = ssh_execute(out, RAISED_SSH_CAP);
    Task {
        name: "error lines in the last hour by unit (journalctl, 50k lines)",
        tool: "ssh_execute",
        note: "[ssh] output_cap_bytes raised to 8 MiB (default 1 MiB)".into(),
        value,
        sql: format!(
            "SELECT substr(line, 33, instr(substr(line, 33), '[') - 1) AS unit, count(*) AS n \
             FROM result WHERE substr(line, 1, 19) >= '{last_hour}' AND line LIKE '%error%' \
             GROUP BY unit ORDER BY unit"
        ),
        expected: errors
            .into_iter()
            .map(|(unit, n)| vec![json!(unit), json!(n)])
            .collect(),
    }
}

fn task_k8s_logs() -> Task {
    let mut rng = Rng::new(5);
    let mut log = String::new();
    let mut i = 0u64;
    while log.len() <= LOG_CAP {
        let ts = before_now(3600 - i / 10);
        let level = match rng.below(100) {
            0..=3 => "ERROR",
            4..=11 => "WARN",
            12..=31 => "DEBUG",
            _ => "INFO",
        };
        let message = match level {
            "ERROR" => format!(
                "[payments] charge {} failed: card_declined (gateway=stripe, attempt={})",
                rng.hex(12),
                rng.range(1, 3)
            ),
            "WARN" => format!(
                "[http] slow request GET /api/v1/checkout/{} took {}ms",
                rng.hex(8),
                rng.range(1000, 9000)
            ),
            _ => format!(
                "[http] GET /api/v1/cart/{} 200 {}ms",
                rng.hex(8),
                rng.range(1, 400)
            ),
        };
        let _ = writeln!(log, "{ts}.{:03}Z {level:<5} {message}", rng.below(1000));
        i += 1;
    }
    // The connector reads at most the cap and marks the log truncated.
    log.truncate(LOG_CAP);
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for line in log.lines() {
        for level in ["ERROR", "WARN "] {
            if line.contains(&format!("Z {level} ")) {
                *counts.entry(level.trim_end()).or_default() += 1;
            }
        }
    }
    let bytes = log.len();
    let value = json!({ "log": log, "truncated": true, "bytes": bytes });
    Task {
        name: "ERROR and WARN lines (app log, cut at the cap)",
        tool: "k8s_logs",
        note: "256 KiB cap applies (truncated)".into(),
        value,
        sql: "SELECT CASE WHEN line LIKE '% ERROR %' THEN 'ERROR' ELSE 'WARN' END AS level, \
              count(*) AS n FROM result WHERE line LIKE '% ERROR %' OR line LIKE '% WARN %' \
              GROUP BY level ORDER BY level"
            .into(),
        expected: counts
            .into_iter()
            .map(|(level, n)| vec![json!(level), json!(n)])
            .collect(),
    }
}

/// Gigabytes as `df -h` prints sizes: at most three digits and a unit (`0`, `105M`, `7.8G`,
/// `468G`, `1.9T`).
fn human(gigabytes: f64) -> String {
    let mut value = gigabytes * 1024.0 * 1024.0; // KiB
    if value < 1.0 {
        return "0".to_owned();
    }
    let mut unit = 0;
    while value >= 999.5 && unit < 4 {
        value /= 1024.0;
        unit += 1;
    }
    let suffix = ["K", "M", "G", "T", "P"][unit];
    if value < 9.95 {
        format!("{value:.1}{suffix}")
    } else {
        format!("{value:.0}{suffix}")
    }
}

fn task_df() -> Task {
    let mut rng = Rng::new(6);
    let mut mounts: Vec<(String, String, String, String, u64, String)> = Vec::new();
    let mut add = |fs: String, size: &str, pct: u64, mount: String| {
        let size_g: f64 = size.trim_end_matches('G').parse().unwrap_or(1.0);
        let used = size_g * pct as f64 / 100.0;
        mounts.push((
            fs,
            human(size_g),
            human(used),
            human(size_g - used),
            pct,
            mount,
        ));
    };
    for (fs, size, pct, mount) in [
        ("udev", "32G", 0, "/dev"),
        ("tmpfs", "6.3G", 1, "/run"),
        ("/dev/nvme0n1p1", "194G", 62, "/"),
        ("tmpfs", "32G", 0, "/dev/shm"),
        ("/dev/nvme0n1p15", "0.1G", 6, "/boot/efi"),
        ("/dev/nvme1n1", "500G", 71, "/var/lib/containerd"),
    ] {
        add(fs.into(), size, pct, mount.into());
    }
    for _ in 0..120 {
        add(
            "overlay".into(),
            "194G",
            62,
            format!(
                "/run/containerd/io.containerd.runtime.v2.task/k8s.io/{}/rootfs",
                rng.hex(64)
            ),
        );
    }
    for _ in 0..100 {
        add(
            "tmpfs".into(),
            "1.0G",
            1,
            format!(
                "/var/lib/kubelet/pods/{}/volumes/kubernetes.io~projected/kube-api-access-{}",
                rng.uuid(),
                rng.alnum(5)
            ),
        );
    }
    for n in 0..60 {
        let pct = rng.range(5, 99);
        add(
            format!("/dev/nvme{}n1", n + 2),
            "1000G",
            pct,
            format!("/mnt/disks/ssd{n}"),
        );
    }
    for n in 0..14 {
        let pct = rng.range(5, 99);
        add(
            format!("10.0.3.4:/exports/team{n}"),
            "2000G",
            pct,
            format!("/mnt/nfs/team{n}"),
        );
    }
    let width = mounts.iter().map(|m| m.0.len()).max().unwrap_or(10).max(10);
    let mut out = format!(
        "{:<width$} {:>5} {:>5} {:>5} {:>4} {}\n",
        "Filesystem", "Size", "Used", "Avail", "Use%", "Mounted on"
    );
    for (fs, size, used, avail, pct, mount) in &mounts {
        let _ = writeln!(
            out,
            "{fs:<width$} {size:>5} {used:>5} {avail:>5} {:>4} {mount}",
            format!("{pct}%")
        );
    }
    let mut over: Vec<&(String, String, String, String, u64, String)> =
        mounts.iter().filter(|m| m.4 > 80).collect();
    over.sort_by(|a, b| b.4.cmp(&a.4).then_with(|| a.5.cmp(&b.5)));
    let expected = over
        .iter()
        .map(|m| {
            vec![
                json!(m.0),
                json!(m.1),
                json!(format!("{}%", m.4)),
                json!(m.5),
            ]
        })
        .collect();
    Task {
        name: "filesystems over 80% (df -h, 300 mounts)",
        tool: "ssh_execute",
        note: String::new(),
        value: ssh_execute(out, SSH_CAP),
        sql: "SELECT Filesystem, Size, \"Use%\", \"Mounted on\" FROM result \
              WHERE CAST(rtrim(\"Use%\", '%') AS INTEGER) > 80 \
              ORDER BY CAST(rtrim(\"Use%\", '%') AS INTEGER) DESC, \"Mounted on\""
            .into(),
        expected,
    }
}

fn task_ss() -> Task {
    let mut rng = Rng::new(7);
    let listeners: &[(&str, &[u16])] = &[
        ("sshd", &[22]),
        ("nginx", &[80, 443]),
        ("postgres", &[5432]),
        ("redis-server", &[6379]),
        ("node", &[3000, 3001]),
        ("java", &[8080, 8443, 9404]),
        ("kubelet", &[10250, 10248]),
        ("containerd", &[35_721]),
        ("node_exporter", &[9100]),
        ("envoy", &[15_000, 15_001, 15_006, 15_090]),
    ];
    let mut listen: BTreeMap<String, i64> = BTreeMap::new();
    let mut lines = vec![];
    let format_line = |netid: &str,
                       state: &str,
                       recv: &str,
                       send: &str,
                       local: (&str, &str),
                       peer: (&str, &str),
                       process: &str| {
        format!(
            "{netid:<6}{state:<10}{recv:<7}{send:<7}{:>26}:{:<9}{:>26}:{:<9}{process}",
            local.0, local.1, peer.0, peer.1
        )
    };
    lines.push(format_line(
        "Netid",
        "State",
        "Recv-Q",
        "Send-Q",
        ("Local Address", "Port"),
        ("Peer Address", "Port"),
        "Process",
    ));
    for i in 0..1000u64 {
        let roll = rng.below(100);
        let (name, ports) = *rng.pick(listeners);
        let pid = 400 + rng.below(40_000);
        let port = rng.pick(ports).to_string();
        let users = format!("users:((\"{name}\",pid={pid},fd={}))", 3 + rng.below(60));
        let backlog = *rng.pick(&["128", "511", "4096"]);
        let send_q = *rng.pick(&["0", "36", "517"]);
        let line = if roll < 14 {
            *listen.entry(name.to_owned()).or_default() += 1;
            let addr = *rng.pick(&["0.0.0.0", "127.0.0.1", "[::]", "10.0.16.23"]);
            format_line(
                "tcp",
                "LISTEN",
                "0",
                backlog,
                (addr, &port),
                (if addr == "[::]" { "[::]" } else { "0.0.0.0" }, "*"),
                &users,
            )
        } else if roll < 18 {
            format_line(
                "udp",
                "UNCONN",
                "0",
                "0",
                ("127.0.0.53%lo", "53"),
                ("0.0.0.0", "*"),
                &format!("users:((\"systemd-resolve\",pid=612,fd={}))", 13 + i % 3),
            )
        } else if roll < 30 {
            format_line(
                "tcp",
                "TIME-WAIT",
                "0",
                "0",
                ("10.0.16.23", &port),
                (
                    &format!("10.42.{}.{}", rng.below(250), rng.below(250)),
                    &rng.range(30_000, 60_999).to_string(),
                ),
                "",
            )
        } else {
            format_line(
                "tcp",
                "ESTAB",
                "0",
                send_q,
                ("10.0.16.23", &port),
                (
                    &format!("10.42.{}.{}", rng.below(250), rng.below(250)),
                    &rng.range(30_000, 60_999).to_string(),
                ),
                &users,
            )
        };
        lines.push(line.trim_end().to_owned());
    }
    let out = lines.join("\n") + "\n";
    Task {
        name: "listening sockets by process (ss -tunap, 1,000)",
        tool: "ssh_execute",
        note: String::new(),
        value: ssh_execute(out, SSH_CAP),
        sql: "SELECT substr(Process, 10, instr(substr(Process, 10), '\"') - 1) AS name, \
              count(*) AS n FROM result WHERE State = 'LISTEN' GROUP BY name ORDER BY name"
            .into(),
        expected: listen
            .into_iter()
            .map(|(name, n)| vec![json!(name), json!(n)])
            .collect(),
    }
}

fn task_docker() -> Task {
    let mut rng = Rng::new(8);
    let images: &[(&str, &str, &str)] = &[
        (
            "nginx:1.25",
            "\"/docker-entrypoint.…\"",
            "0.0.0.0:8080->80/tcp, :::8080->80/tcp",
        ),
        ("redis:7", "\"docker-entrypoint.s…\"", "6379/tcp"),
        ("postgres:16", "\"docker-entrypoint.s…\"", "5432/tcp"),
        (
            "registry.example.com/app/api:2.14.1",
            "\"/usr/local/bin/api …\"",
            "8080/tcp",
        ),
        (
            "registry.example.com/app/worker:2.14.1",
            "\"/usr/local/bin/work…\"",
            "",
        ),
        ("busybox", "\"sleep infinity\"", ""),
        ("grafana/grafana:11.2.0", "\"/run.sh\"", "3000/tcp"),
        (
            "prom/prometheus:v2.54.1",
            "\"/bin/prometheus --c…\"",
            "9090/tcp",
        ),
    ];
    let mut rows = vec![vec![
        "CONTAINER ID".to_owned(),
        "IMAGE".to_owned(),
        "COMMAND".to_owned(),
        "CREATED".to_owned(),
        "STATUS".to_owned(),
        "PORTS".to_owned(),
        "NAMES".to_owned(),
    ]];
    let mut exited: Vec<(String, String)> = Vec::new();
    for i in 0..500 {
        let (image, command, ports) = *rng.pick(images);
        let base = image
            .rsplit('/')
            .next()
            .unwrap_or(image)
            .split(':')
            .next()
            .unwrap_or(image);
        let name = format!("{base}-{i}");
        let created = format!("{} days ago", rng.range(2, 60));
        let (status, ports) = if rng.chance(0.1) {
            let code = *rng.pick(&[0, 1, 137, 143]);
            let status = format!("Exited ({code}) {} hours ago", rng.range(2, 40));
            exited.push((name.clone(), status.clone()));
            (status, String::new())
        } else {
            let healthy = if rng.chance(0.5) { " (healthy)" } else { "" };
            (
                format!("Up {} days{healthy}", rng.range(1, 30)),
                ports.to_owned(),
            )
        };
        rows.push(vec![
            rng.hex(12),
            image.to_owned(),
            command.to_owned(),
            created,
            status,
            ports,
            name,
        ]);
    }
    exited.sort();
    Task {
        name: "exited containers (docker ps -a, 500)",
        tool: "ssh_execute",
        note: String::new(),
        value: ssh_execute(tabwrite(&rows, 3), SSH_CAP),
        sql: "SELECT NAMES, STATUS FROM result WHERE STATUS LIKE 'Exited%' ORDER BY NAMES".into(),
        expected: exited
            .into_iter()
            .map(|(name, status)| vec![json!(name), json!(status)])
            .collect(),
    }
}

fn task_json_lines() -> Task {
    let mut rng = Rng::new(9);
    let mut out = String::new();
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for i in 0..20_000u64 {
        let level = match rng.below(100) {
            0..=4 => "error",
            5..=14 => "warn",
            15..=34 => "debug",
            _ => "info",
        };
        *counts.entry(level).or_default() += 1;
        let line = json!({
            "ts": format!("{}.{:03}Z", before_now(20_000 - i), rng.below(1000)),
            "level": level,
            "logger": rng.pick(&["http", "db", "queue", "auth"]),
            "msg": if level == "error" { "request failed" } else { "request completed" },
            "method": rng.pick(&["GET", "POST", "PUT"]),
            "path": format!("/api/v2/orders/{}", rng.below(1_000_000)),
            "status": if level == "error" { 500 } else { 200 },
            "duration_ms": rng.below(100_000) as f64 / 100.0,
            "trace_id": rng.hex(32),
            "span_id": rng.hex(16),
            "host": format!("api-{}", rng.alnum(5)),
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    assert!(out.len() > SSH_CAP && out.len() <= RAISED_SSH_CAP);
    Task {
        name: "app log lines by level (JSON lines, 20k)",
        tool: "ssh_execute",
        note: "[ssh] output_cap_bytes raised to 8 MiB (default 1 MiB)".into(),
        value: ssh_execute(out, RAISED_SSH_CAP),
        sql: "SELECT level, count(*) AS n FROM result GROUP BY level ORDER BY level".into(),
        expected: counts
            .into_iter()
            .map(|(level, n)| vec![json!(level), json!(n)])
            .collect(),
    }
}

fn task_users() -> Task {
    let mut rng = Rng::new(10);
    let departments: &[(&str, u64)] = &[
        ("Engineering", 30),
        ("Sales", 20),
        ("Support", 15),
        ("Marketing", 10),
        ("Finance", 8),
        ("Operations", 8),
        ("People", 5),
        ("Legal", 2),
        ("Security", 2),
    ];
    let given = [
        "Ava", "Ben", "Chloe", "Daniel", "Emma", "Felix", "Grace", "Hugo", "Isla", "Jonas", "Kira",
        "Liam", "Mia", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Sam", "Tara",
    ];
    let surnames = [
        "Andersen", "Becker", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito",
        "Jensen", "Kowalski", "Lopez", "Müller", "Nowak", "Olsen", "Petrov", "Rossi", "Schmidt",
    ];
    let mut legal: Vec<(String, String, String)> = Vec::new();
    let users: Vec<Value> = (0..3000)
        .map(|i| {
            let mut roll = rng.below(100);
            let mut department = "Engineering";
            for (name, weight) in departments {
                if roll < *weight {
                    department = name;
                    break;
                }
                roll -= weight;
            }
            let first = *rng.pick(&given);
            let last = *rng.pick(&surnames);
            let display = format!("{first} {last}");
            let upn = format!(
                "{}.{}{i}@contoso.com",
                first.to_lowercase(),
                last.to_lowercase()
            );
            let title = format!(
                "{} {}",
                rng.pick(&["Senior", "Staff", "Lead", "Associate", "Principal"]),
                rng.pick(&["Analyst", "Engineer", "Manager", "Specialist", "Counsel"])
            );
            if department == "Legal" {
                legal.push((display.clone(), upn.clone(), title.clone()));
            }
            json!({
                "id": rng.uuid(),
                "businessPhones": [format!("+49 30 {} {}", rng.range(1000, 9999), rng.range(100, 999))],
                "displayName": display,
                "givenName": first,
                "surname": last,
                "jobTitle": title,
                "mail": upn,
                "mobilePhone": null,
                "officeLocation": rng.pick(&["Berlin", "Munich", "Dublin", "Remote"]),
                "preferredLanguage": "en-US",
                "userPrincipalName": upn,
                "department": department,
                "accountEnabled": !rng.chance(0.03),
                "employeeId": format!("E{:06}", 100_000 + i),
                "companyName": "Contoso Ltd",
                "createdDateTime": format!("{}Z", before_now(rng.below(80_000))),
                "usageLocation": "DE",
            })
        })
        .collect();
    legal.sort();
    let value = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
        "value": users,
        "@odata.nextLink": format!("https://graph.microsoft.com/v1.0/users?$top=3000&$skiptoken=RFNwdAIAAQAAAD8{}", rng.hex(48)),
    });
    Task {
        name: "users in a department (REST envelope, 3,000)",
        tool: "(REST API tool)",
        note: "no meho connector answers this shape yet".into(),
        value,
        sql: "SELECT displayName, mail, jobTitle FROM result WHERE department = 'Legal' \
              ORDER BY displayName, mail, jobTitle"
            .into(),
        expected: legal
            .into_iter()
            .map(|(d, m, t)| vec![json!(d), json!(m), json!(t)])
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Running.

/// The JSON size of `value`, compact.
fn size_of(value: &Value) -> usize {
    meho_reduce::summary::size_of(value)
}

/// `result_query`'s answer as the connector gives it (meho_reduce::stage).
fn answer_value(answer: &Answer) -> Value {
    json!({
        "columns": answer.columns,
        "row_count": answer.rows.len(),
        "rows": answer.rows,
        "truncated": answer.truncated,
        "elapsed_ms": answer.elapsed.as_secs_f64() * 1000.0,
    })
}

fn proc_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

fn mib(kb: u64) -> String {
    format!("{:.0} MiB", kb as f64 / 1024.0)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        f64::midpoint(values[n / 2 - 1], values[n / 2])
    }
}

async fn results(dir: &std::path::Path) -> Results {
    let url = format!("sqlite://{}", dir.join("meho.db").display());
    let store = meho_store::Store::open(&url).await.expect("store");
    Results::new(
        ResultStore::new(
            store.pool().clone(),
            Caps {
                max_result_bytes: 64 << 20,
                max_principal_bytes: 256 << 20,
            },
        ),
        meho_reduce::Settings::default(),
        meho_audit::Redactor::new::<&str>(&[]).expect("redactor"),
    )
}

async fn savings(results: &Results, caller: &Caller) {
    let tasks: Vec<fn() -> Task> = vec![
        task_pods_full,
        task_pods_compact,
        task_ps_aux,
        task_journal,
        task_k8s_logs,
        task_df,
        task_ss,
        task_docker,
        task_json_lines,
        task_users,
    ];
    println!("\n## 1. Token savings (bytes of JSON the model reads)\n");
    println!(
        "| # | task | tool | raw | summary | query args | answer | reduced | savings | answer rows | note |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut all = Vec::new();
    let mut missed = Vec::new();
    for (index, make) in tasks.into_iter().enumerate() {
        let task = make();
        let raw = size_of(&task.value);
        let call_id = format!("savings-{index}");
        let reduced = results
            .reduce_value(
                CallContext {
                    caller,
                    call_id: &call_id,
                },
                task.tool,
                false,
                task.value,
            )
            .await
            .unwrap_or_else(|err| panic!("{}: the reduction failed: {err:?}", task.name));
        let summary = reduced.value;
        assert_eq!(summary["reduced"], true, "{}: not reduced", task.name);
        let handle = summary["handle"].as_str().expect("a handle").to_owned();
        let args = json!({"handle": handle, "sql": task.sql});
        let answer = results
            .query(caller, &handle, task.sql.clone(), None)
            .await
            .unwrap_or_else(|err| panic!("{}: the query failed: {err}", task.name));
        assert!(!answer.truncated, "{}: the answer was truncated", task.name);
        assert!(!task.expected.is_empty(), "{}: no expected rows", task.name);
        if answer.rows != task.expected {
            eprintln!(
                "{}: WRONG ANSWER\nSQL: {}\ngot:      {:?}\nexpected: {:?}\nsummary: {}",
                task.name,
                task.sql,
                answer.rows,
                task.expected,
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
            panic!("{}: the SQL answer is not the generator's truth", task.name);
        }
        let summary_bytes = size_of(&summary);
        let args_bytes = size_of(&args);
        let answer_bytes = size_of(&answer_value(&answer));
        let total = summary_bytes + args_bytes + answer_bytes;
        let saved = 100.0 * (1.0 - total as f64 / raw as f64);
        all.push(saved);
        if saved < 95.0 {
            missed.push(task.name);
        }
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1}% | {} | {} |",
            index + 1,
            task.name,
            task.tool,
            raw,
            summary_bytes,
            args_bytes,
            answer_bytes,
            total,
            saved,
            answer.rows.len(),
            task.note
        );
    }
    let min = all.iter().copied().fold(f64::INFINITY, f64::min);
    let med = median(&mut all);
    println!(
        "\nAll {} answers match the generators' truth. Savings: min {min:.1}%, median {med:.1}% (targets: >= 95% each, >= 98% median).",
        all.len()
    );
    if !missed.is_empty() {
        println!("Below 95%: {}", missed.join("; "));
    }
}

/// A full list of 10,000 pods as bytes, written pod by pod (as `full_list` would serialize it),
/// so that the generator's own values are not what the RSS baseline holds.
fn list_bytes(seed: u64) -> (Vec<u8>, PodTruth) {
    let mut rng = Rng::new(seed);
    let mut truth = PodTruth {
        not_running_by_node: BTreeMap::new(),
        not_running_by_ns_status: BTreeMap::new(),
        by_node_phase: BTreeMap::new(),
    };
    let mut bytes = b"{\"items\":[".to_vec();
    for i in 0..10_000 {
        if i > 0 {
            bytes.push(b',');
        }
        serde_json::to_writer(&mut bytes, &pod(&mut rng, i, &mut truth).full).expect("serializes");
    }
    bytes.extend_from_slice(b"]}");
    bytes.shrink_to_fit();
    (bytes, truth)
}

/// Set in the environment of the process that measures reduce_value's steps.
const BREAKDOWN: &str = "MEHO_REDUCE_BENCH_BREAKDOWN";

/// reduce_value's steps over the 10,000-pod list, one run, through the crate's public API.
async fn breakdown(results: &Results, caller: &Caller) -> String {
    let mut out = String::new();
    let (bytes, _) = list_bytes(11);
    // Where reduce_value's time goes: its steps, one run, through the crate's public API.
    // Each step's peak above the RSS it started from (the peak is reset before each).
    let mark = || {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        proc_status("VmRSS:")
    };
    let grew = |from: u64| proc_status("VmHWM:").saturating_sub(from);
    let from = mark();
    let t = Instant::now();
    let mut value: Value = serde_json::from_slice(&bytes).expect("parses");
    let parse_t = t.elapsed();
    let parse_mem = grew(from);
    let redactor = meho_audit::Redactor::new::<&str>(&[]).expect("redactor");
    let t = Instant::now();
    let source_bytes = size_of(&value);
    let size_t = t.elapsed();
    let from = mark();
    let t = Instant::now();
    redactor.redact_value(&mut value);
    let redact_t = t.elapsed();
    let redact_mem = grew(from);
    let from = mark();
    let t = Instant::now();
    let shaped = shape::shape(Source::Json(value));
    let shape_t = t.elapsed();
    let shape_mem = grew(from);
    let from = mark();
    let t = Instant::now();
    let columns = shape::columns(&shaped.rows);
    let columns_t = t.elapsed();
    let columns_mem = grew(from);
    let fields: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let from = mark();
    let t = Instant::now();
    let mut blob = Vec::with_capacity(source_bytes);
    for row in &shaped.rows {
        serde_json::to_writer(&mut blob, row).expect("serializes");
        blob.push(b'\n');
    }
    let blob_t = t.elapsed();
    let blob_mem = grew(from);
    let from = mark();
    let t = Instant::now();
    results
        .store()
        .put(NewResult {
            tenant: &caller.tenant,
            principal: &caller.principal,
            tool: "k8s_list",
            call_id: "breakdown",
            shape: "collection",
            columns: &fields,
            row_count: shaped.rows.len() as u64,
            rows: blob,
            created_at_us: 1_000,
            expires_at_us: i64::MAX,
        })
        .await
        .expect("kept");
    let put_t = t.elapsed();
    let put_mem = grew(from);
    let from = mark();
    let t = Instant::now();
    let table = ResultTable::load(&fields, &shaped.rows).expect("loads");
    let load_t = t.elapsed();
    let load_mem = grew(from);
    drop(table);
    drop(shaped);
    let _ = writeln!(
        out,
        "\nreduce_value's steps over the same list, one run (time; peak RSS above where the step started): parsing the bytes (before reduce_value) {} ({}); measuring its size {}; redacting {} ({}); shaping {} ({}); column summaries {} ({}); rows as JSON lines {} ({}); keeping them in the store (SQLite) {} ({}); then, off the answer's path, loading them into the query cache (SQLite in memory) {} ({}).",
        ms(parse_t),
        mib(parse_mem),
        ms(size_t),
        ms(redact_t),
        mib(redact_mem),
        ms(shape_t),
        mib(shape_mem),
        ms(columns_t),
        mib(columns_mem),
        ms(blob_t),
        mib(blob_mem),
        ms(put_t),
        mib(put_mem),
        ms(load_t),
        mib(load_mem)
    );
    out
}

async fn figures(results: &Results, caller: &Caller) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n## 2. Figures: a 10,000-pod full list\n");
    let (bytes, truth) = list_bytes(11);
    // Measure from here: the input bytes are held; the peak is reset.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let baseline_rss = proc_status("VmRSS:");
    let mut parse_times = Vec::new();
    let mut reduce_times = Vec::new();
    let mut total_times = Vec::new();
    let mut shown = 0;
    let mut handle = String::new();
    let mut peak_first = 0;
    let mut peak_first_query = 0;
    let mut first_query = Duration::ZERO;
    for run in 0..5 {
        let start = Instant::now();
        let value: Value = serde_json::from_slice(&bytes).expect("parses");
        let parsed = start.elapsed();
        let call_id = format!("figures-{run}");
        let reduced = results
            .reduce_value(
                CallContext {
                    caller,
                    call_id: &call_id,
                },
                "k8s_list",
                false,
                value,
            )
            .await
            .expect("reduces");
        let total = start.elapsed();
        parse_times.push(parsed);
        reduce_times.push(total - parsed);
        total_times.push(total);
        shown = size_of(&reduced.value);
        handle = reduced.value["handle"]
            .as_str()
            .expect("a handle")
            .to_owned();
        if run == 0 {
            // Let the background priming (the rows loaded into SQLite, under a second here) finish
            // before reading the peak and before querying: a query that raced it would load a
            // second copy from the store.
            tokio::time::sleep(Duration::from_secs(5)).await;
            peak_first = proc_status("VmHWM:");
            let q = "SELECT count(*) FROM result";
            let start = Instant::now();
            let answer = results
                .query(caller, &handle, q.into(), None)
                .await
                .expect("query");
            first_query = start.elapsed();
            assert_eq!(answer.rows, vec![vec![json!(10_000)]]);
            peak_first_query = proc_status("VmHWM:");
        } else {
            // The next run starts once this run's background load into the query cache is done
            // (a query waits for it): each run is timed on its own, not against the previous
            // run's load.
            results
                .query(caller, &handle, "SELECT 1".into(), None)
                .await
                .expect("query");
            // And once the previous run's rows are freed (in the background, off the answer's
            // path): the parse of the next run is not timed against it.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    parse_times.sort();
    reduce_times.sort();
    total_times.sort();
    let sql = "SELECT coalesce(spec->>'$.nodeName', '(unscheduled)') AS node, \
               status->>'$.phase' AS phase, count(*) AS n FROM result \
               GROUP BY node, phase ORDER BY node, phase";
    let expected: Vec<Vec<Value>> = truth
        .by_node_phase
        .iter()
        .map(|((node, phase), n)| vec![json!(node), json!(phase), json!(n)])
        .collect();
    // Cold: a fresh replica loads the rows from the store.
    results.clear_cache();
    let start = Instant::now();
    let answer = results
        .query(caller, &handle, sql.into(), Some(500))
        .await
        .expect("query");
    let cold = start.elapsed();
    assert_eq!(answer.rows, expected, "the GROUP BY over 10k pods is wrong");
    assert!(!answer.truncated);
    for _ in 0..5 {
        results
            .query(caller, &handle, sql.into(), Some(500))
            .await
            .expect("query");
    }
    let mut times = Vec::with_capacity(200);
    for _ in 0..200 {
        let start = Instant::now();
        let answer = results
            .query(caller, &handle, sql.into(), Some(500))
            .await
            .expect("query");
        times.push(start.elapsed());
        assert_eq!(answer.rows.len(), expected.len());
    }
    times.sort();
    let peak_all = proc_status("VmHWM:");

    // Where reduce_value's time and memory go: its steps, in a fresh process (this one's heap
    // holds what the runs above freed, which would hide each step's growth).
    let child = std::process::Command::new(std::env::current_exe().expect("the bench binary"))
        .env(BREAKDOWN, "1")
        .output()
        .expect("the breakdown process");
    assert!(
        child.status.success(),
        "the breakdown failed: {}",
        String::from_utf8_lossy(&child.stderr)
    );
    let breakdown = String::from_utf8_lossy(&child.stdout).into_owned();

    // The same GROUP BY over plain columns: the compact list of 10,000 pods.
    let (compact, _) = pods(10_000, 12);
    let compact = json!({
        "columns": ["Namespace", "Name", "Ready", "Status", "Restarts", "Age"],
        "rows": compact.into_iter().map(|p| p.compact).collect::<Vec<_>>(),
    });
    let reduced = results
        .reduce_value(
            CallContext {
                caller,
                call_id: "compact-10k",
            },
            "k8s_list",
            false,
            compact,
        )
        .await
        .expect("reduces");
    let compact_handle = reduced.value["handle"]
        .as_str()
        .expect("a handle")
        .to_owned();
    let plain_sql = "SELECT Namespace, Status, count(*) AS n FROM result GROUP BY Namespace, Status ORDER BY Namespace, Status";
    for _ in 0..5 {
        results
            .query(caller, &compact_handle, plain_sql.into(), Some(500))
            .await
            .expect("query");
    }
    let mut plain = Vec::with_capacity(200);
    for _ in 0..200 {
        let start = Instant::now();
        results
            .query(caller, &compact_handle, plain_sql.into(), Some(500))
            .await
            .expect("query");
        plain.push(start.elapsed());
    }
    plain.sort();
    let source = bytes.len();
    let _ = writeln!(out, "| figure | value | target |");
    let _ = writeln!(out, "|---|---:|---|");
    let _ = writeln!(
        out,
        "| input: 10,000 pods, full list (compact JSON) | {:.1} MB | |",
        source as f64 / 1e6
    );
    let _ = writeln!(out, "| summary shown | {shown} bytes | <= 4096 |");
    let _ = writeln!(
        out,
        "| parse JSON bytes -> Value, median of 5 (min / max) | {} ({} / {}) | |",
        ms(parse_times[2]),
        ms(parse_times[0]),
        ms(parse_times[4])
    );
    let _ = writeln!(
        out,
        "| reduce_value (redact, shape, keep in store, summary), median of 5 (min / max); each run after the previous run's background work | {} ({} / {}) | |",
        ms(reduce_times[2]),
        ms(reduce_times[0]),
        ms(reduce_times[4])
    );
    let _ = writeln!(
        out,
        "| bytes -> summary end to end, median of 5 (min / max) | {} ({} / {}) | <= 1 s |",
        ms(total_times[2]),
        ms(total_times[0]),
        ms(total_times[4])
    );
    let _ = writeln!(
        out,
        "| result_query GROUP BY node, phase ({} rows): cold, cache cleared (loads from the store) | {} | |",
        expected.len(),
        ms(cold)
    );
    let _ = writeln!(
        out,
        "| result_query, warm, p50 over 200 | {} | <= 50 ms |",
        ms(percentile(&times, 0.5))
    );
    let _ = writeln!(
        out,
        "| result_query, warm, p99 over 200 | {} | |",
        ms(percentile(&times, 0.99))
    );
    let _ = writeln!(
        out,
        "| for comparison: GROUP BY Namespace, Status over the compact list of 10,000 pods (plain columns), p50 / p99 over 200 | {} / {} | |",
        ms(percentile(&plain, 0.5)),
        ms(percentile(&plain, 0.99))
    );
    let _ = writeln!(
        out,
        "| RSS before the reduction (VmRSS, the {:.0} MB input bytes held) | {} | |",
        source as f64 / 1e6,
        mib(baseline_rss)
    );
    let _ = writeln!(
        out,
        "| peak RSS after the first reduction and its cache priming (VmHWM, 5 s later) | {} | |",
        mib(peak_first)
    );
    let _ = writeln!(
        out,
        "| peak RSS after the first query over it (`SELECT count(*)`, {}) | {} | |",
        ms(first_query),
        mib(peak_first_query)
    );
    let _ = writeln!(
        out,
        "| peak RSS after all 5 reductions and 207 queries, one of them cold (VmHWM) | {} | |",
        mib(peak_all)
    );
    out.push_str(&breakdown);
    out
}

fn main() {
    // `cargo test --all-targets` builds benches and runs them without `--bench`: do nothing then
    // (the figures need an optimized build and minutes).
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let results = results(dir.path()).await;
        let caller = Caller::agent("bench-agent");
        if std::env::var_os(BREAKDOWN).is_some() {
            print!("{}", breakdown(&results, &caller).await);
            return;
        }
        println!("# meho-reduce: result reduction");
        // The figures first (printed last), so their RSS is not the token tasks' leftovers.
        let figures = figures(&results, &caller).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let results = self::results(dir.path()).await;
        savings(&results, &caller).await;
        print!("{figures}");
    });
}
