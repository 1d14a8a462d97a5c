//! The pattern lints and the grant pattern check: tables of patterns each lint must flag and must
//! leave alone, the refusal of grants that would allow every command, and no panic on any pattern.

use meho_core::Tier;
use meho_policy::lint::{LintKind, RuleKind, check_grant_pattern, lint_pattern, lint_policy};
use meho_policy::{
    CommandPolicy, Elevation, Grant, HostPolicy, Mode, Overlay, PolicyError, PolicySet, Request,
};
use proptest::prelude::*;

fn kinds(kind: RuleKind, pattern: &str) -> Vec<LintKind> {
    lint_pattern(kind, pattern).iter().map(|l| l.kind).collect()
}

fn has(kind: RuleKind, pattern: &str, lint: LintKind) -> bool {
    kinds(kind, pattern).contains(&lint)
}

// --- grants ------------------------------------------------------------------------------------

#[test]
fn grant_matching_the_empty_string_is_refused() {
    // `""` is what `--pattern "$UNSET"` sends.
    for pattern in [
        "",
        "x?",
        "^",
        "$",
        ".*",
        "^.*$",
        "(a|)",
        "a*",
        "(?m)^",
        r"\S*",
        "[a-z]{0,3}",
    ] {
        assert!(
            matches!(
                check_grant_pattern(pattern),
                Err(PolicyError::GrantMatchesEmpty { .. })
            ),
            "`{pattern}`: {:?}",
            check_grant_pattern(pattern)
        );
    }
}

#[test]
fn grant_matching_any_command_is_refused() {
    for pattern in [
        ".+",
        "^.",
        r"\S",
        "[^x]",
        r"\w",
        "[a-z]",
        "(?i)[A-Z]",
        "r|a|c|s|d|h|i|k",
        r"\b",
        " ",
        r"\s",
        r"^\w+ ",
        "^[a-z]+ .*$",
        r"^\S+( |$)",
        "^[a-z/]",
        "(?s).",
    ] {
        assert!(
            matches!(
                check_grant_pattern(pattern),
                Err(PolicyError::GrantMatchesAnyCommand { .. })
            ),
            "`{pattern}`: {:?}",
            check_grant_pattern(pattern)
        );
    }
}

#[test]
fn grant_refusal_names_the_pattern_and_says_why() {
    let message = check_grant_pattern("x?").unwrap_err().to_string();
    assert!(message.contains("`x?`"), "{message}");
    assert!(message.contains("empty string"), "{message}");
    let message = check_grant_pattern(r"\S").unwrap_err().to_string();
    assert!(message.contains(r"`\S`"), "{message}");
    assert!(message.contains("any command"), "{message}");
    let message = check_grant_pattern("(").unwrap_err().to_string();
    assert!(message.contains("invalid regex `(`"), "{message}");
}

#[test]
fn grant_naming_one_program_is_accepted() {
    for pattern in [
        "^journalctl -u nginx$",
        r"^(\S*/)?(halt|reboot)$",
        "^df( |$)",
        "^uptime -p$",
        "^id -u$",
    ] {
        let warnings =
            check_grant_pattern(pattern).unwrap_or_else(|err| panic!("`{pattern}` refused: {err}"));
        assert!(
            warnings
                .iter()
                .all(|w| w.kind != LintKind::MatchesEverything),
            "`{pattern}`: {warnings:?}"
        );
    }
    assert!(
        check_grant_pattern("^journalctl -u nginx$")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn unanchored_grant_is_accepted_with_a_warning() {
    let warnings: Vec<LintKind> = check_grant_pattern("^uptime")
        .unwrap()
        .iter()
        .map(|w| w.kind)
        .collect();
    assert_eq!(warnings, [LintKind::UnanchoredEnd]);
    let warnings: Vec<LintKind> = check_grant_pattern("passwd")
        .unwrap()
        .iter()
        .map(|w| w.kind)
        .collect();
    assert_eq!(
        warnings,
        [LintKind::UnanchoredStart, LintKind::UnanchoredEnd]
    );
    let warning = &check_grant_pattern("^uptime").unwrap()[0];
    assert!(
        warning.message.starts_with("grant pattern `^uptime`"),
        "{warning}"
    );
}

#[test]
fn grant_new_applies_the_same_refusal_so_no_grant_takes_effect_without_it() {
    for pattern in ["", "x?", r"\S", ".+"] {
        let err = Grant::new("g1", pattern, Tier::Read, u64::MAX).unwrap_err();
        assert!(
            matches!(
                err,
                PolicyError::GrantMatchesEmpty { .. } | PolicyError::GrantMatchesAnyCommand { .. }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&format!("`{pattern}`")), "{message}");
        assert!(
            message.contains("every command") || message.contains("any command"),
            "{message}"
        );
    }
    assert!(Grant::new("g1", "^df( |$)", Tier::Read, u64::MAX).is_ok());
}

#[test]
fn an_empty_grant_cannot_open_an_allowlist_host() {
    // The review's finding: after a grant with an empty pattern, `rm -rf /` ran at READ tier.
    let mut allowlist = CommandPolicy::new("web/inline");
    allowlist.mode = Mode::Allowlist;
    allowlist.allow = vec!["^uptime$".to_owned()];
    let host = HostPolicy {
        policies: PolicySet::compile([allowlist]).unwrap(),
        allow_sudo: false,
        allowed_sudo_users: Vec::new(),
    };
    let grants: Vec<Grant> = ["", "^uptime -p$"]
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Grant::new(format!("g{i}"), *p, Tier::Read, u64::MAX).ok())
        .collect();
    assert_eq!(grants.len(), 1, "only the real grant compiles");
    let decide = |command: &str| {
        host.decide(
            &Request {
                command,
                elevation: Elevation::None,
                caller: "agent",
                end_user: "alice",
                now: 1,
            },
            Overlay {
                grants: &grants,
                waivers: &[],
            },
        )
    };
    assert!(decide("rm -rf /").decision.refuses());
    assert!(decide("uptime -p").decision.may_run());
}

// --- allow rules -------------------------------------------------------------------------------

#[test]
fn allow_rule_without_anchors_is_flagged() {
    assert!(has(RuleKind::Allow, "^uptime", LintKind::UnanchoredEnd));
    assert!(has(
        RuleKind::Allow,
        r"^journalctl\s",
        LintKind::UnanchoredEnd
    ));
    assert!(has(
        RuleKind::Allow,
        "^uptime$|^df",
        LintKind::UnanchoredEnd
    ));
    assert!(has(RuleKind::Allow, "uptime$", LintKind::UnanchoredStart));
    assert!(has(
        RuleKind::Allow,
        "(^| )uptime$",
        LintKind::UnanchoredStart
    ));
    for anchored in [
        "^uptime$",
        "^(uptime|df -h)$",
        "^uptime$|^df$",
        r"(?m)^uptime$",
        r"^uptime\z",
    ] {
        assert_eq!(kinds(RuleKind::Allow, anchored), [], "`{anchored}`");
    }
}

#[test]
fn allow_rule_matching_everything_is_flagged_alone() {
    assert_eq!(kinds(RuleKind::Allow, ".*"), [LintKind::MatchesEverything]);
    assert_eq!(kinds(RuleKind::Allow, r"\S"), [LintKind::MatchesEverything]);
}

#[test]
fn allow_rule_that_lets_a_path_climb_out_is_flagged() {
    for pattern in [
        // A class written for paths that admits both `.` and `/`.
        r"^cat /var/log/[a-z./]+$",
        r"^cat /var/log/[-a-z0-9./_]*$",
        r"^ls [a-z./]+$",
        r"^cat (\.|/|[a-z])+$",
        r"^cat /var/log/[[:alnum:]./_-]+$",
        // Wildcards inside a path.
        r"^cat /var/log/.*$",
        r"^tail -f /var/log/.+\.log$",
        r"^cat /var/log/\S+$",
        r"^cat /var/log/[^ ]+$",
        r"^cat /var/log/[^;|&]+$",
        r"^cat\s+/var/log/\S+$",
        r"^less /srv/(.*)$",
        r"^cat /var/log/(nginx|apache)/.*$",
        r"^cat /var/log/[a-z]+.*$",
        r"^cat /var/log/.*/access\.log$",
        // A segment that can be `..` followed by more path.
        r"^cat /var/log/[a-z.]+/[a-z]+\.log$",
        r"^cat /var/log(/[a-z.]+)+$",
        r"^cat /var/log/[^/]+/x$",
    ] {
        assert!(
            has(RuleKind::Allow, pattern, LintKind::PathTraversal),
            "`{pattern}` not flagged: {:?}",
            lint_pattern(RuleKind::Allow, pattern)
        );
    }
}

#[test]
fn allow_rule_with_safe_path_segments_is_not_flagged_for_traversal() {
    for pattern in [
        r"^cat /var/log/[a-z]+\.log$",
        r"^cat /var/log(/[a-zA-Z0-9_][a-zA-Z0-9_.-]*)+$",
        r"^cat /var/log/[a-z0-9_-]+(\.[a-z0-9_-]+)*$",
        r"^cat /var/log/[^/]+$",
        // Wildcards that are not in a path.
        r"^echo .*$",
        r"^grep -r .+ /var/log$",
        r"^git log [a-f0-9]+\.\.[a-f0-9]+$",
    ] {
        assert!(
            !has(RuleKind::Allow, pattern, LintKind::PathTraversal),
            "`{pattern}` flagged: {:?}",
            lint_pattern(RuleKind::Allow, pattern)
        );
    }
}

#[test]
fn allow_rule_that_leaves_a_dangerous_option_open_is_flagged() {
    for (pattern, program) in [
        (r"^(tail|head|grep|wc|sort|uniq)(\s|$)", "sort"),
        (r"^sort( .*)?$", "sort"),
        (r"^sort [^ ]+$", "sort"),
        (r"^sort( -[a-z]+)* /var/log/[a-z.]+$", "sort"),
        (r"^uniq( -c)?( /var/log/[a-z]+)+$", "uniq"),
        (r"^git log( .*)?$", "git"),
        (r"^git (log|show)\b", "git"),
        (r"^kubectl get [a-z]+( .*)?$", "kubectl"),
        (r"^kubectl get pods( -n [a-z0-9-]+)?( \S+)*$", "kubectl"),
        (r"^find /var/log( .*)?$", "find"),
        (r"^find /var/log -name \S+( -\S+)*$", "find"),
        (r"^tee ", "tee"),
        (r"^curl -s http://localhost:8080/.*$", "curl"),
        (r"^wget( .*)?$", "wget"),
        (r"^journalctl\s", "journalctl"),
        (r"^journalctl( -\S+)*$", "journalctl"),
        (r"^(/usr/bin/)?tar -tf \S+( .*)?$", "tar"),
        (r"^sed .*$", "sed"),
        (r"^tcpdump( .*)?$", "tcpdump"),
        (r"^systemctl status( \S+)*$", "systemctl"),
    ] {
        let lints = lint_pattern(RuleKind::Allow, pattern);
        let open = lints
            .iter()
            .find(|l| l.kind == LintKind::OpenOptions)
            .unwrap_or_else(|| panic!("`{pattern}` not flagged: {lints:?}"));
        assert!(
            open.message.contains(&format!("lets `{program}` take")),
            "{open}"
        );
        assert!(open.message.contains("(e.g. `"), "an example: {open}");
    }
}

#[test]
fn allow_rule_that_spells_out_its_options_is_not_flagged_for_options() {
    for pattern in [
        r"^sort( -[nru]+)?( /var/log(/[a-zA-Z0-9_][a-zA-Z0-9_.-]*)+)*$",
        r"^uniq( -c)?( /var/log(/[a-zA-Z0-9_][a-zA-Z0-9_.-]*)+)?$",
        r"^git log --oneline( -n [0-9]+)?$",
        r"^git log [a-f0-9]{7,40}$",
        r"^kubectl get pods -n [a-z0-9][a-z0-9-]*$",
        r"^find /var/log -name [a-z.]+$",
        r"^tee -a /var/log/app\.log$",
        r"^curl -s http://localhost:8080/health$",
        r"^journalctl( -u [a-zA-Z0-9@_][a-zA-Z0-9@._-]*| -n [0-9]+| -p [0-7]| -b| --no-pager)*$",
        r"^systemctl\s+(status|restart)\s+nginx$",
        r"^nginx -t$",
        // Not a program with dangerous options.
        r"^echo .*$",
    ] {
        assert!(
            !has(RuleKind::Allow, pattern, LintKind::OpenOptions),
            "`{pattern}` flagged: {:?}",
            lint_pattern(RuleKind::Allow, pattern)
        );
    }
}

#[test]
fn a_value_that_may_start_with_a_dash_is_taken_for_an_option() {
    // Whether `-n` consumes the next word depends on the program; a value that cannot start with
    // `-` is safe either way, so the lint asks for one.
    assert!(has(
        RuleKind::Allow,
        r"^kubectl get pods -n [a-z0-9-]+$",
        LintKind::OpenOptions
    ));
    assert!(!has(
        RuleKind::Allow,
        r"^kubectl get pods -n [a-z0-9][a-z0-9-]*$",
        LintKind::OpenOptions
    ));
}

// --- deny and approval rules -------------------------------------------------------------------

#[test]
fn deny_rule_on_the_bare_command_name_is_flagged() {
    for (pattern, missed) in [
        ("^rm", "/bin/rm"),
        (r"^rm\s", "/bin/rm"),
        (r"^rm\s+-[a-z]*r[a-z]*f\s+/($|\s)", "/bin/rm -rf /"),
        ("^mkfs", "/bin/mkfs"),
        ("^(shutdown|reboot|halt|poweroff)", "/bin/shutdown"),
        (r"^(/usr)?(/s?bin/)?rm( |$)", "//bin/rm"),
    ] {
        let lints = lint_pattern(RuleKind::Deny, pattern);
        let bare = lints
            .iter()
            .find(|l| l.kind == LintKind::BareCommandName)
            .unwrap_or_else(|| panic!("`{pattern}` not flagged: {lints:?}"));
        assert!(bare.message.contains(&format!("`{missed}")), "{bare}");
        assert!(bare.message.starts_with("deny rule"), "{bare}");
    }
    assert!(has(
        RuleKind::RequireApproval,
        r"^systemctl\s+(restart|stop)\s",
        LintKind::BareCommandName
    ));
}

#[test]
fn deny_rule_that_matches_any_path_is_not_flagged() {
    for pattern in [
        r"^(\S*/)?rm( |$)",
        r"(^|/)rm( |$)",
        "rm -rf",
        r"\brm\b",
        r"^(\S*/)?(shutdown|reboot|halt|poweroff)( |$)",
    ] {
        assert!(
            !has(RuleKind::Deny, pattern, LintKind::BareCommandName),
            "`{pattern}` flagged: {:?}",
            lint_pattern(RuleKind::Deny, pattern)
        );
    }
}

#[test]
fn deny_rule_that_depends_on_option_spelling_is_flagged() {
    for pattern in [
        r"^(\S*/)?rm -rf /$",
        "rm -rf",
        r"^(\S*/)?rm\s+-[a-z]*r[a-z]*f\s+/",
    ] {
        assert!(
            has(RuleKind::Deny, pattern, LintKind::OptionSpelling),
            "`{pattern}` not flagged: {:?}",
            lint_pattern(RuleKind::Deny, pattern)
        );
    }
    assert!(!has(
        RuleKind::Deny,
        r"^(\S*/)?rm( \S+)* (-[a-zA-Z]*[rR][a-zA-Z]*|--r[a-z]*)( \S+)* /+([^/ ]+/*)?( |$)",
        LintKind::OptionSpelling
    ));
}

#[test]
fn deny_lints_do_not_apply_to_allow_rules_and_back() {
    // An allow rule on the bare name is the safe direction; a deny rule without `$` is normal.
    assert!(!has(
        RuleKind::Allow,
        "^rm -rf /tmp/x$",
        LintKind::BareCommandName
    ));
    assert!(!has(
        RuleKind::Allow,
        "^rm -rf /tmp/x$",
        LintKind::OptionSpelling
    ));
    assert_eq!(kinds(RuleKind::Deny, r"^(\S*/)?dd( |$)"), []);
    assert!(!has(
        RuleKind::Deny,
        "^cat /var/log/.*",
        LintKind::PathTraversal
    ));
}

// --- the Pitfalls section of docs/command-firewall.md ---------------------------------------

#[test]
fn each_pitfall_in_the_docs_is_flagged_and_its_fix_is_not() {
    use LintKind::*;
    use RuleKind::*;
    let pairs: &[(RuleKind, LintKind, &str, &str)] = &[
        (Allow, MatchesEverything, r"\S", "^journalctl -u nginx$"),
        (Allow, UnanchoredEnd, "^uptime", "^uptime$"),
        (Allow, UnanchoredStart, "uptime$", "^uptime$"),
        (Allow, UnanchoredEnd, "^uptime$|^df -h", "^(uptime|df -h)$"),
        (
            Allow,
            PathTraversal,
            "^cat /var/log/[a-z./]+$",
            "^cat /var/log(/[a-zA-Z0-9_][a-zA-Z0-9_.-]*)+$",
        ),
        (
            Allow,
            PathTraversal,
            r"^cat /var/log/[a-z.]+/[a-z]+\.log$",
            r"^cat /var/log/[a-z][a-z.]*/[a-z]+\.log$",
        ),
        (
            Allow,
            OpenOptions,
            r"^(tail|head|grep|wc|sort|uniq)(\s|$)",
            r"^(grep( -[cinvw]+)* [a-zA-Z0-9_][a-zA-Z0-9_.:-]*|wc( -[lwc])?|sort( -[nru]+)?|head( -n [0-9]+)?|tail( -n [0-9]+)?)( /var/log(/[a-zA-Z0-9_][a-zA-Z0-9_.-]*)+)*$",
        ),
        (
            Allow,
            OpenOptions,
            "^git log( .*)?$",
            "^git log --oneline( -n [0-9]+)?$",
        ),
        (
            Allow,
            OpenOptions,
            "^kubectl get [a-z]+( .*)?$",
            "^kubectl get pods -n [a-z0-9][a-z0-9-]*$",
        ),
        (
            Allow,
            OpenOptions,
            "^find /var/log( .*)?$",
            "^find /var/log -name [a-z][a-z.]*$",
        ),
        (Deny, BareCommandName, r"^rm\s", r"^(\S*/)?rm( |$)"),
        (
            RequireApproval,
            BareCommandName,
            r"^systemctl\s+(restart|stop)\s",
            r"^(\S*/)?systemctl( \S+)* (restart|stop)( |$)",
        ),
        (
            Deny,
            OptionSpelling,
            r"^(\S*/)?rm -rf /",
            r"^(\S*/)?rm( \S+)* (-[a-zA-Z]*[rR][a-zA-Z]*|--r[a-z]*)( \S+)* /+([^/ ]+/*)?( |$)",
        ),
    ];
    for (kind, lint, bad, fixed) in pairs {
        assert!(has(*kind, bad, *lint), "`{bad}` should be flagged {lint:?}");
        assert!(
            lint_pattern(*kind, fixed).is_empty(),
            "`{fixed}` should be clean: {:?}",
            lint_pattern(*kind, fixed)
        );
    }
}

// --- policies ----------------------------------------------------------------------------------

#[test]
fn lint_policy_lints_the_lists_the_policy_consults() {
    let mut policy = CommandPolicy::new("p");
    policy.allow = vec!["^uptime".to_owned()];
    policy.deny = vec!["^rm".to_owned()];
    policy.require_approval = vec!["^reboot".to_owned()];

    // Off: allow and deny are ignored; approval rules still apply, so they are linted.
    let lists: Vec<(&str, usize)> = lint_policy(&policy)
        .iter()
        .map(|l| (l.list, l.index))
        .collect();
    assert_eq!(lists, [("require_approval", 0)]);

    policy.mode = Mode::Denylist;
    let lists: Vec<&str> = lint_policy(&policy).iter().map(|l| l.list).collect();
    assert_eq!(lists, ["deny", "require_approval"]);

    policy.mode = Mode::Allowlist;
    let lints = lint_policy(&policy);
    let lists: Vec<&str> = lints.iter().map(|l| l.list).collect();
    assert_eq!(lists, ["require_approval", "allow"]);
    let shown = lints[1].to_string();
    assert!(
        shown.starts_with("policy `p`: allow rule `^uptime` has no `$` end anchor"),
        "{shown}"
    );
    assert_eq!(lints[1].pattern, "^uptime");
}

#[test]
fn lint_messages_name_the_pattern_in_backticks() {
    for (kind, pattern) in [
        (RuleKind::Allow, r"^cat /var/log/.*"),
        (RuleKind::Allow, r"^sort\s"),
        (RuleKind::Deny, r"^rm -rf /$"),
        (RuleKind::RequireApproval, "^reboot"),
    ] {
        let lints = lint_pattern(kind, pattern);
        assert!(!lints.is_empty(), "`{pattern}`");
        for lint in lints {
            assert!(lint.message.contains(&format!("`{pattern}`")), "{lint}");
            assert!(
                lint.message.chars().next().is_some_and(char::is_lowercase),
                "{lint}"
            );
        }
    }
}

#[test]
fn odd_patterns_lint_without_trouble() {
    for pattern in [
        r"(?u)\w+",
        r"(?-u:\xff)+",
        r"a{1000}",
        r"(a{100}){100}",
        r"((a|b|c|d){3}){3}",
        r"^(a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p)(a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p)(a|b|c|d|e|f|g|h)$",
        r"[^\x00-\xff]",
        r"\B",
        "(",
        "",
    ] {
        for kind in [
            RuleKind::Allow,
            RuleKind::Deny,
            RuleKind::RequireApproval,
            RuleKind::Grant,
        ] {
            let _ = lint_pattern(kind, pattern);
        }
        let _ = check_grant_pattern(pattern);
    }
}

proptest! {
    /// No pattern, however odd, makes the lints or the grant check panic.
    #[test]
    fn lints_never_panic(pattern in r"[\^$.*+?()\[\]{}|\\a-z0-9 /:=-]{0,24}") {
        for kind in [RuleKind::Allow, RuleKind::Deny, RuleKind::RequireApproval, RuleKind::Grant] {
            let _ = lint_pattern(kind, &pattern);
        }
        let _ = check_grant_pattern(&pattern);
    }
}
