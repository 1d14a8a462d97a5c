//! Property tests of the engine's invariants, over generated policies, overlays and commands.

use meho_core::{ReasonCode, Tier};
use meho_policy::{
    CommandPolicy, Elevation, Enforcement, Grant, HostPolicy, Mode, Overlay, PolicySet, Request,
    Waiver,
};
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000;

const PATTERNS: &[&str] = &[
    "^ls( |$)",
    "^cat ",
    "^systemctl (status|restart) ",
    "^rm ",
    "-rf",
    "^df",
    "^uptime$",
    "passwd",
    "^journalctl",
    "nginx",
    "^echo ",
    "^ps",
];

const COMMANDS: &[&str] = &[
    "ls -la",
    "ls",
    "cat /etc/passwd",
    "systemctl restart nginx",
    "systemctl status nginx",
    "rm -rf /tmp/x",
    "df -h",
    "uptime",
    "journalctl -u nginx | tail -n 5",
    "echo hi && ls",
    "ps aux; uptime",
    "ls $(id)",
    "echo 'a b' | cat -n",
    "ls 2>&1",
    "sh -c id",
    "ls > /tmp/x",
];

fn patterns() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop::sample::select(PATTERNS), 0..4)
        .prop_map(|v| v.into_iter().map(str::to_owned).collect())
}

fn policy(name: &'static str) -> impl Strategy<Value = CommandPolicy> {
    (
        prop_oneof![Just(Mode::Off), Just(Mode::Allowlist), Just(Mode::Denylist)],
        patterns(),
        patterns(),
        any::<bool>(),
        prop_oneof![Just(Enforcement::Enforce), Just(Enforcement::Audit)],
        prop_oneof![Just(Tier::Read), Just(Tier::Write), Just(Tier::Destructive)],
    )
        .prop_map(
            move |(mode, rules, approval, shell_parse, enforcement, tier)| {
                let mut p = CommandPolicy::new(name);
                p.mode = mode;
                match mode {
                    Mode::Allowlist => p.allow = rules,
                    Mode::Denylist => p.deny = rules,
                    Mode::Off => {}
                }
                p.require_approval = approval;
                p.shell_parse = shell_parse;
                p.enforcement = enforcement;
                p.tier = tier;
                p
            },
        )
}

fn host(members: Vec<CommandPolicy>) -> HostPolicy {
    HostPolicy {
        policies: PolicySet::compile(members).unwrap(),
        allow_sudo: true,
        allowed_sudo_users: vec![],
    }
}

fn request(command: &str) -> Request<'_> {
    Request {
        command,
        elevation: Elevation::None,
        caller: "agent",
        end_user: "alice",
        now: NOW,
    }
}

fn command() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(COMMANDS).prop_map(str::to_owned),
        1 => "[ -~]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A grant only ever widens: what was allowed stays allowed, what needed approval still does,
    /// and the only thing a grant can turn from refused into allowed is an allowlist miss.
    #[test]
    fn grant_never_narrows(
        members in prop::collection::vec(prop_oneof![policy("a"), policy("b"), policy("c")], 0..4),
        grant_patterns in prop::collection::vec(prop::sample::select(PATTERNS), 1..3),
        command in command(),
    ) {
        let host = host(members);
        let grants: Vec<Grant> = grant_patterns
            .iter()
            .enumerate()
            .map(|(i, p)| Grant::new(format!("g{i}"), *p, Tier::Write, NOW + 60).unwrap())
            .collect();
        let request = request(&command);
        let without = host.decide(&request, Overlay::default());
        let with = host.decide(&request, Overlay { grants: &grants, waivers: &[] });
        if without.decision.may_run() {
            prop_assert!(with.decision.may_run(), "grant narrowed: {without:?} -> {with:?}");
        }
        if without.decision.json_require_approval() {
            prop_assert!(with.decision.json_require_approval(), "grant dropped an approval: {with:?}");
        }
        if with.decision.may_run() && without.decision.refuses() {
            prop_assert_eq!(without.decision.reason_code, ReasonCode::AllowlistNoMatch);
        }
        if !host.policies.has_allowlist() {
            prop_assert_eq!(&with, &without, "a grant changed a host with no allowlist");
        }
    }

    /// A waiver only lifts approval for the exact call: it never changes whether the call may
    /// run, and never applies to another caller.
    #[test]
    fn waiver_only_lifts_approval_for_the_exact_call(
        members in prop::collection::vec(prop_oneof![policy("a"), policy("b")], 0..3),
        command in command(),
    ) {
        let host = host(members);
        let waiver = Waiver {
            id: "w".into(),
            command: command.clone(),
            elevation: Elevation::None,
            caller: "agent".into(),
            end_user: "alice".into(),
            expires_at: NOW + 60,
        };
        let overlay = Overlay { grants: &[], waivers: std::slice::from_ref(&waiver) };
        let request = request(&command);
        let without = host.decide(&request, Overlay::default());
        let with = host.decide(&request, overlay);
        prop_assert_eq!(with.decision.may_run(), without.decision.may_run());
        if without.decision.needs_approval() {
            prop_assert!(with.decision.allows());
            prop_assert_eq!(with.decision.rule, format!("approval-waived:{}", without.decision.rule));
        } else {
            prop_assert_eq!(&with, &without);
        }
        let other = Request { caller: "other-agent", ..request };
        prop_assert_eq!(host.decide(&other, overlay), host.decide(&other, Overlay::default()));
    }

    /// Adding a member that is not an allowlist never widens what the set allows. (Allowlist
    /// members are a union by design: a group's allowlist may widen a host's.)
    #[test]
    fn adding_a_member_never_widens(
        base in prop::collection::vec(prop_oneof![policy("a"), policy("b")], 0..3),
        extra in policy("z").prop_map(|mut p| {
            p.enforcement = Enforcement::Enforce;
            if p.mode == Mode::Allowlist {
                p.mode = Mode::Denylist;
                p.deny = std::mem::take(&mut p.allow);
            }
            p
        }),
        command in command(),
    ) {
        let narrow = {
            let mut members = base.clone();
            members.push(extra);
            host(members)
        };
        let wide = host(base);
        let request = request(&command);
        let composed = narrow.decide(&request, Overlay::default());
        let alone = wide.decide(&request, Overlay::default());
        // Audit-only bases become enforcing once an enforcing member joins, so compare only
        // where the base already enforced (or had nothing to enforce).
        let base_enforced = wide.policies.enforces() || !wide.policies.is_restricting();
        if base_enforced && composed.decision.allows() {
            prop_assert!(alone.decision.allows(),
                "composition widened: alone={alone:?} composed={composed:?}");
        }
    }

    /// Every decision is internally consistent, whatever the input.
    #[test]
    fn decisions_are_consistent(
        members in prop::collection::vec(prop_oneof![policy("a"), policy("b")], 0..3),
        command in command(),
        sudo in any::<bool>(),
    ) {
        let host = host(members);
        let request = Request {
            elevation: Elevation::from_request(sudo, None),
            ..request(&command)
        };
        let d = host.decide(&request, Overlay::default());
        // A refusal reports that an approval rule matched only for an allowlist miss (the seed's
        // semantics); it never makes the call runnable.
        prop_assert!(
            !d.decision.approval_rule_matched
                || (d.decision.refuses() && d.decision.reason_code == ReasonCode::AllowlistNoMatch)
        );
        prop_assert_eq!(d.decision.may_run(), d.shape.force_command.is_some());
        if d.decision.refuses() {
            prop_assert!(!d.decision.rule.is_empty());
            prop_assert!(matches!(
                d.decision.reason_code,
                ReasonCode::CommandDenied
                    | ReasonCode::AllowlistNoMatch
                    | ReasonCode::ShellParseError
                    | ReasonCode::InvalidRequest
            ));
        } else if d.decision.needs_approval() {
            prop_assert_eq!(d.decision.reason_code, ReasonCode::NeedsApproval);
        } else {
            prop_assert_eq!(d.decision.reason_code, ReasonCode::Allowed);
        }
        if sudo && d.decision.may_run() {
            prop_assert!(d.shape.force_command.as_deref().unwrap().starts_with("sudo -n -- "));
        }
        // Audit-only sets never refuse a well-formed command.
        if host.policies.is_restricting() && !host.policies.enforces()
            && d.decision.reason_code != ReasonCode::InvalidRequest
        {
            prop_assert!(d.decision.allows());
        }
    }

    /// No line with a newline or carriage return is ever allowed, on any host.
    #[test]
    fn newlines_are_always_refused(
        members in prop::collection::vec(prop_oneof![policy("a"), policy("b")], 0..3),
        before in "[ -~]{0,10}",
        after in "[ -~]{0,10}",
        separator in prop_oneof![Just("\n"), Just("\r")],
    ) {
        let host = host(members);
        let line = format!("{before}{separator}{after}");
        let d = host.decide(&request(&line), Overlay::default());
        prop_assert!(d.decision.refuses());
        prop_assert_eq!(d.decision.rule, "invalid-request:newline");
    }
}
