//! Fuzzes `HostPolicy::decide` on hosts built by `meho_config::Config::parse`.
//!
//! Input layout: `[host byte][flags byte][command as UTF-8...]`; inputs shorter than two bytes or
//! whose command is not UTF-8 are skipped.
//! - host byte, modulo the number of hosts, picks one of the hosts in `HOSTS` below;
//! - flags: bit 0 = `sudo`, bits 1-3 = `sudo_user` (see `SUDO_USERS`), bit 4 = a caller the waiver
//!   does not name, bit 5 = a clock past every grant's and waiver's expiry.
//!
//! Each input is decided twice: with an overlay holding one grant and one waiver, and with an empty
//! overlay. The invariants are listed on `check` and in fuzz/README.md.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meho_config::Config;
use meho_core::{Decision, Effect, ReasonCode, Tier};
use meho_policy::{Decided, Elevation, Grant, HostPolicy, Overlay, Request, Waiver, shell};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

/// Hosts that share the `_default` group policy (an enforcing denylist with an approval rule).
fn config_with_default_group() -> String {
    format!(
        r#"
[command_policies.baseline]
mode = "denylist"
deny = ['^rm( |$)', '(^| )(shutdown|reboot|halt)( |$)', '^dd ', '^mkfs']
require_approval = ['^kill ']
tier = "write"

[command_policies.ops-approval]
mode = "denylist"
require_approval = ['^systemctl (restart|stop) ']
tier = "destructive"

[group_command_policies]
_default = ["baseline"]
ops = ["ops-approval"]

# Allowlist with require_approval rules, composed after `_default`'s denylist.
[hosts.web]
addr = "10.0.0.2:22"
user = "deploy"
host_key = "{KEY}"
command_policy = {{ mode = "allowlist", allow = ['^ls( |$)', '^uptime$', '^echo ', '^wc( |$)', '^grep [a-z]+$', '^systemctl (status|restart) [a-z.-]+$', '^kill -HUP [0-9]+$'], require_approval = ['^systemctl restart ', '^echo .*secret'], tier = "read" }}

# Sudo with a list of target users; only the group and `_default` denylists.
[hosts.admin]
addr = "10.0.0.3:22"
user = "ops"
host_key = "{KEY}"
groups = ["ops"]
allow_sudo = true
allowed_sudo_users = ["postgres", "www-data"]

# Sudo to root only, with an allowlist.
[hosts.rootonly]
addr = "10.0.0.4:22"
user = "ops"
host_key = "{KEY}"
allow_sudo = true
command_policy = {{ mode = "allowlist", allow = ['^systemctl ', '^journalctl( |$)', '^cat /etc/[a-z]+$'], tier = "write" }}

# No policy of its own: only `_default` applies.
[hosts.shared]
addr = "10.0.0.5:22"
user = "deploy"
host_key = "{KEY}"
"#
    )
}

/// Hosts that must not get a `_default` policy: one would change their enforcement, parsing, or
/// leave them with a policy at all.
fn config_standalone() -> String {
    format!(
        r#"
# Audit mode: nothing is refused, findings become warnings.
[hosts.audited]
addr = "10.0.1.2:22"
user = "deploy"
host_key = "{KEY}"
command_policy = {{ mode = "allowlist", allow = ['^ls( |$)', '^cat '], require_approval = ['^cat /etc/'], enforcement = "audit", tier = "read" }}

# shell_parse = false: the whole line is matched as one unit.
[hosts.raw]
addr = "10.0.1.3:22"
user = "deploy"
host_key = "{KEY}"
allow_sudo = true
command_policy = {{ mode = "denylist", deny = ['rm -rf', '^shutdown'], require_approval = ['^systemctl '], shell_parse = false }}

# No policy at all.
[hosts.bare]
addr = "10.0.1.4:22"
user = "deploy"
host_key = "{KEY}"
allow_sudo = true
allowed_sudo_users = ["postgres"]
"#
    )
}

const HOSTS: &[&str] = &["web", "admin", "rootonly", "shared", "audited", "raw", "bare"];

const SUDO_USERS: [Option<&str>; 8] = [
    None,
    Some("root"),
    Some("postgres"),
    Some("www-data"),
    Some("mallory"),
    Some("-n"),
    Some(""),
    Some("a b"),
];

const NOW: u64 = 1_700_000_000;
const EXPIRES: u64 = NOW + 3600;
const CALLER: &str = "agent-1";
const END_USER: &str = "alice";
const WAIVED_COMMAND: &str = "systemctl restart nginx";

struct Fixture {
    hosts: Vec<(&'static str, HostPolicy)>,
    grants: Vec<Grant>,
    waivers: Vec<Waiver>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let parse = |text: String| match Config::parse(&text, None) {
            Ok(config) => config,
            Err(err) => panic!("fuzz fixture config is invalid: {err}"),
        };
        let a = parse(config_with_default_group());
        let b = parse(config_standalone());
        let hosts = HOSTS
            .iter()
            .map(|&name| {
                let host = a
                    .hosts
                    .get(name)
                    .or_else(|| b.hosts.get(name))
                    .unwrap_or_else(|| panic!("fuzz fixture has no host {name}"));
                (name, host.policy.clone())
            })
            .collect::<Vec<_>>();
        // Sanity-check the fixture is what the comments say it is.
        let policy = |name: &str| &hosts.iter().find(|(n, _)| *n == name).unwrap().1;
        assert!(policy("web").policies.has_allowlist() && policy("web").policies.enforces());
        assert!(policy("audited").policies.is_restricting() && !policy("audited").policies.enforces());
        assert!(!policy("raw").policies.shell_parse());
        assert!(!policy("bare").policies.is_restricting());
        assert!(policy("shared").policies.is_restricting());
        assert!(policy("web").check_grantable("web").is_ok());

        let grant = Grant::new("grant-1", r"^cat /var/log/[a-z]+$", Tier::Read, EXPIRES)
            .unwrap_or_else(|err| panic!("grant: {err}"));
        let waiver = Waiver {
            id: "waiver-1".to_owned(),
            command: WAIVED_COMMAND.to_owned(),
            elevation: Elevation::None,
            caller: CALLER.to_owned(),
            end_user: END_USER.to_owned(),
            expires_at: EXPIRES,
        };
        Fixture {
            hosts,
            grants: vec![grant],
            waivers: vec![waiver],
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let [host_byte, flags, rest @ ..] = data else {
        return;
    };
    let Ok(command) = std::str::from_utf8(rest) else {
        return;
    };
    let fixture = fixture();
    let (host, policy) = &fixture.hosts[usize::from(*host_byte) % fixture.hosts.len()];
    let sudo = flags & 1 != 0;
    let sudo_user = SUDO_USERS[usize::from((flags >> 1) & 0b111)];
    let elevation = Elevation::from_request(sudo, sudo_user);
    let request = Request {
        command,
        elevation: elevation.clone(),
        caller: if flags & 0x10 != 0 { "agent-2" } else { CALLER },
        end_user: END_USER,
        now: if flags & 0x20 != 0 { EXPIRES + 1 } else { NOW },
    };
    let overlay = Overlay {
        grants: &fixture.grants,
        waivers: &fixture.waivers,
    };

    let with = policy.decide(&request, overlay);
    let without = policy.decide(&request, Overlay::default());
    let parses = policy.policies.shell_parse();
    check(host, command, &elevation, parses, &with);
    check(host, command, &elevation, parses, &without);

    // The traced path must decide exactly as the hot path does.
    let (explained, steps) = policy.explain(&request, overlay);
    assert_eq!(explained, with, "explain differs from decide on {host}: {command:?}");
    assert!(!steps.is_empty());

    // Grants and waivers only ever widen.
    if without.decision.may_run() {
        assert!(
            with.decision.may_run(),
            "{host}: allowed with an empty overlay but not with a grant: {command:?}\n{with:?}"
        );
    }
    if without.decision.allows() {
        assert!(
            with.decision.allows(),
            "{host}: the overlay added an approval requirement: {command:?}\n{with:?}"
        );
    }
});

/// Invariants every decision must satisfy on its own.
fn check(host: &str, command: &str, elevation: &Elevation, parses: bool, decided: &Decided) {
    let d: &Decision = &decided.decision;
    let ctx = || format!("host {host}, elevation {elevation}, command {command:?}\n{decided:#?}");
    if d.approval_rule_matched {
        // A refusal reports an approval rule only for an allowlist miss (the seed's semantics).
        assert!(
            d.refuses() && d.reason_code == ReasonCode::AllowlistNoMatch,
            "approval_rule_matched on a decision that is no allowlist miss: {}",
            ctx()
        );
    }
    if d.may_run() {
        let Some(force) = &decided.shape.force_command else {
            panic!("allowed without a force_command: {}", ctx());
        };
        match elevation.prefix() {
            None => {
                // A parsed line runs as its POSIX rebuild, never raw; an unparsed one as written.
                let parsed = if parses { shell::parse(command).ok() } else { None };
                let want = parsed.map_or_else(|| command.to_owned(), |line| line.to_posix());
                assert_eq!(force, &want, "force_command is not the decided line: {}", ctx());
            }
            Some(prefix) => {
                assert!(
                    force.starts_with(&format!("{prefix} -- ")),
                    "force_command lacks the sudo prefix: {}",
                    ctx()
                );
                assert_eq!(
                    decided.shape.elevation_prefix.as_deref(),
                    Some(prefix.as_str()),
                    "{}",
                    ctx()
                );
            }
        }
    } else {
        assert!(decided.shape.force_command.is_none(), "refused with a force_command: {}", ctx());
        assert!(!d.rule.is_empty(), "refused with an empty rule: {}", ctx());
        assert!(d.grant_id.is_none() && d.waiver_id.is_none(), "{}", ctx());
    }
    let code_ok = match d.effect {
        Effect::Allow => d.reason_code == ReasonCode::Allowed,
        Effect::RequireApproval => d.reason_code == ReasonCode::NeedsApproval,
        Effect::Deny => matches!(
            d.reason_code,
            ReasonCode::CommandDenied
                | ReasonCode::AllowlistNoMatch
                | ReasonCode::ShellParseError
                | ReasonCode::InvalidRequest
        ),
    };
    assert!(code_ok, "reason_code inconsistent with the effect: {}", ctx());
    if d.waiver_id.is_some() {
        assert!(d.allows(), "{}", ctx());
    }
    if d.would_deny {
        assert!(d.may_run(), "would_deny on a refused call: {}", ctx());
    }
    if command.contains(['\n', '\r', '\0']) {
        assert!(d.refuses(), "a line with a newline, CR or NUL was allowed: {}", ctx());
    }
}
