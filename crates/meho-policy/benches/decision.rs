//! The decision-engine figures issue #2 asks for:
//! - median time of one decision against a 50-rule composed policy (3 members, shell parsing on)
//!   over a mix of 20 realistic commands (target: under 2 µs);
//! - compile time of that policy set, and load time of the whole config file it comes from.
//!
//! Run: `cargo bench -p meho-policy --bench decision`. The summary lines are printed first; the
//! criterion groups follow for regression tracking.

// A bench binary, like a test: a broken setup should stop it loudly.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::unwrap_used
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use meho_config::Config;
use meho_policy::{Elevation, HostPolicy, Overlay, PolicySet, Request};

/// `_default` (denylist: 15 deny + 5 require_approval), group `web` (allowlist: 15 allow) and the
/// host's inline allowlist (15 allow): 50 rules in 3 members.
const CONFIG: &str = r#"
[command_policies.guardrails]
mode = "denylist"
deny = [
  '^rm\s+-[a-z]*r[a-z]*f', '^mkfs', '^dd\s', '^shutdown', '^reboot', '^halt', '^poweroff',
  '^iptables\s+-F', '^userdel', '^passwd', '^chmod\s+777', '^chown\s+-R\s+root', ':\(\)\{',
  '^crontab\s+-r', '^kill\s+-9\s+1$',
]
require_approval = [
  '^systemctl\s+(restart|stop)\s', '^apt(-get)?\s+(install|remove|purge)', '^docker\s+rm',
  '^kubectl\s+delete', '^truncate\s',
]
tier = "destructive"

[command_policies.web_ops]
mode = "allowlist"
allow = [
  '^systemctl\s+(status|restart|stop)\s+nginx$', '^journalctl\s', '^tail\s', '^head\s', '^grep\s',
  '^wc\s', '^sort', '^uniq', '^awk_never$', '^curl\s+-s\s+http://127\.0\.0\.1', '^nginx\s+-t$',
  '^cat\s+/var/log/nginx/', '^ls\s+/var/www', '^du\s+-sh\s', '^find\s+/var/log\s+-name',
]
tier = "write"

[group_command_policies]
_default = ["guardrails"]
web = ["web_ops"]

[hosts.web1]
addr = "10.0.0.5:22"
user = "deploy"
host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
groups = ["web"]
allow_sudo = true
command_policy = { mode = "allowlist", tier = "read", allow = [
  '^ls(\s|$)', '^uptime$', '^df\s+-h$', '^free\s+-m$', '^ps\s+aux$', '^id$', '^whoami$',
  '^hostname$', '^uname\s+-a$', '^cat\s+/etc/os-release$', '^ss\s+-tlnp$', '^ip\s+a$',
  '^date$', '^w$', '^last\s+-n\s+\d+$',
] }
"#;

/// Twenty commands an agent really sends: reads, pipelines, approvals, denials and bypass attempts.
const COMMANDS: [&str; 20] = [
    "uptime",
    "df -h",
    "ls -la /var/www",
    "ps aux | grep nginx | wc -l",
    "journalctl -u nginx --since '1 hour ago' | tail -n 50",
    "cat /var/log/nginx/error.log | grep -i 'upstream timed out' | sort | uniq -c",
    "systemctl status nginx",
    "systemctl restart nginx",
    "free -m && df -h && uptime",
    "ss -tlnp",
    "rm -rf /var/www/html",
    "curl -s http://127.0.0.1:8080/healthz",
    "cat /etc/shadow",
    "ls $(cat /tmp/x)",
    "echo hi > /etc/motd",
    "bash -c 'id'",
    "nginx -t 2>&1",
    "find /var/log -name '*.gz'",
    "du -sh /var/log",
    "last -n 20",
];

fn host() -> HostPolicy {
    let config = Config::parse(CONFIG, None).expect("bench config is valid");
    let host = config.hosts.get("web1").expect("web1 is configured");
    let rules: usize = host
        .policy
        .policies
        .members()
        .iter()
        .map(|m| m.policy.allow.len() + m.policy.deny.len() + m.policy.require_approval.len())
        .sum();
    assert_eq!(rules, 50, "the bench policy must have 50 rules");
    assert_eq!(host.policy.policies.members().len(), 3);
    assert!(host.policy.policies.shell_parse());
    host.policy.clone()
}

fn request(command: &str) -> Request<'_> {
    Request {
        command,
        elevation: Elevation::None,
        caller: "bench",
        end_user: "alice",
        now: 1_800_000_000,
    }
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Times `work` in batches and returns the median per-call time in nanoseconds.
fn median_ns(calls_per_batch: usize, batches: usize, mut work: impl FnMut()) -> f64 {
    let warm_until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < warm_until {
        work();
    }
    let samples = (0..batches)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed().as_nanos() as f64 / calls_per_batch as f64
        })
        .collect();
    median(samples)
}

fn summary(policy: &HostPolicy) {
    let per_decision = median_ns(COMMANDS.len() * 100, 300, || {
        for _ in 0..100 {
            for command in COMMANDS {
                black_box(policy.decide(&request(black_box(command)), Overlay::default()));
            }
        }
    });
    let per_command: Vec<(f64, &str)> = COMMANDS
        .iter()
        .map(|command| {
            let ns = median_ns(1000, 100, || {
                for _ in 0..1000 {
                    black_box(policy.decide(&request(black_box(command)), Overlay::default()));
                }
            });
            (ns, *command)
        })
        .collect();
    let members: Vec<_> = policy
        .policies
        .members()
        .iter()
        .map(|m| m.policy.clone())
        .collect();
    let compile = median_ns(1, 200, || {
        black_box(PolicySet::compile(black_box(members.clone())).expect("compiles"));
    });
    let load = median_ns(1, 200, || {
        black_box(Config::parse(black_box(CONFIG), None).expect("loads"));
    });
    println!("policy: 50 rules in 3 members, shell parsing on, 20 commands");
    println!(
        "decision median over the 20-command mix: {:.0} ns per decision",
        per_decision
    );
    let mut sorted = per_command.clone();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!(
        "per-command medians: fastest {:.0} ns (`{}`), median {:.0} ns, slowest {:.0} ns (`{}`)",
        sorted[0].0,
        sorted[0].1,
        sorted[sorted.len() / 2].0,
        sorted[sorted.len() - 1].0,
        sorted[sorted.len() - 1].1
    );
    println!(
        "policy set compile (3 members, 50 rules): {:.1} µs",
        compile / 1000.0
    );
    println!(
        "config load (parse + validate + compile): {:.1} µs",
        load / 1000.0
    );
}

fn main() {
    let policy = host();
    // `cargo test --all-targets` runs benches once as a smoke test, without `--bench`: skip the
    // timed summary there.
    if std::env::args().any(|arg| arg == "--bench") {
        summary(&policy);
    }

    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let mut group = c.benchmark_group("decision");
    group.throughput(Throughput::Elements(COMMANDS.len() as u64));
    group.bench_function("mix_of_20_commands", |b| {
        b.iter(|| {
            for command in COMMANDS {
                black_box(policy.decide(&request(black_box(command)), Overlay::default()));
            }
        })
    });
    group.finish();
    let members: Vec<_> = policy
        .policies
        .members()
        .iter()
        .map(|m| m.policy.clone())
        .collect();
    c.bench_function("compile_policy_set_50_rules", |b| {
        b.iter(|| PolicySet::compile(black_box(members.clone())))
    });
    c.bench_function("load_config", |b| {
        b.iter(|| Config::parse(black_box(CONFIG), None))
    });
    c.final_summary();
}
