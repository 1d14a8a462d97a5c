use std::fmt;

use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use meho_core::Tier;

use crate::PolicyError;

/// How a policy treats commands none of its rules name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The policy allows and denies nothing (its `allow` and `deny` rules are ignored), but its
    /// `require_approval` rules and `shell_parse` still apply: approval is orthogonal to allow and
    /// deny, so it can sit on an otherwise unrestricted host.
    #[default]
    Off,
    /// Only commands matching an `allow` rule may run.
    Allowlist,
    /// Everything may run except commands matching a `deny` rule.
    Denylist,
}

impl Mode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Allowlist => "allowlist",
            Mode::Denylist => "denylist",
        }
    }
}

/// Whether a policy's findings block the call or are only reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Enforcement {
    /// Denials deny and approvals gate.
    #[default]
    Enforce,
    /// Would-deny and would-require-approval become warnings; the call runs.
    Audit,
}

impl Enforcement {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Enforce => "enforce",
            Enforcement::Audit => "audit",
        }
    }
}

/// A command policy as configured, inline on a host or named under `[command_policies]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPolicy {
    /// The policy's name; inline policies are named `<host>/inline`.
    pub name: String,
    /// How unmatched commands are treated.
    pub mode: Mode,
    /// Patterns of commands that may run (allowlist mode only).
    pub allow: Vec<String>,
    /// Patterns of commands that never run (denylist mode only).
    pub deny: Vec<String>,
    /// Patterns of commands that need a human's approval.
    pub require_approval: Vec<String>,
    /// Whether to split the line as bash and refuse what cannot be verified.
    pub shell_parse: bool,
    /// Whether findings block or only warn.
    pub enforcement: Enforcement,
    /// The tier of the commands this policy allows.
    pub tier: Tier,
}

impl CommandPolicy {
    /// A policy with the defaults of an empty config table: off, parsing, enforcing, WRITE.
    pub fn new(name: impl Into<String>) -> Self {
        CommandPolicy {
            name: name.into(),
            mode: Mode::Off,
            allow: Vec::new(),
            deny: Vec::new(),
            require_approval: Vec::new(),
            shell_parse: true,
            enforcement: Enforcement::Enforce,
            tier: Tier::Write,
        }
    }

    /// Whether the policy can refuse or gate anything. An `off` policy takes part only through
    /// its `require_approval` rules (and then its `shell_parse` applies too).
    pub fn is_restricting(&self) -> bool {
        match self.mode {
            Mode::Off => !self.require_approval.is_empty(),
            Mode::Allowlist => true,
            Mode::Denylist => !self.deny.is_empty() || !self.require_approval.is_empty(),
        }
    }

    /// Checks the shape rules and every regex of this policy on its own.
    pub fn validate(&self) -> Result<(), PolicyError> {
        match self.mode {
            Mode::Allowlist if !self.deny.is_empty() => {
                return Err(PolicyError::DenyOnAllowlist {
                    policy: self.name.clone(),
                });
            }
            Mode::Denylist if !self.allow.is_empty() => {
                return Err(PolicyError::AllowOnDenylist {
                    policy: self.name.clone(),
                });
            }
            _ => {}
        }
        for (list, patterns) in [
            ("allow", &self.allow),
            ("deny", &self.deny),
            ("require_approval", &self.require_approval),
        ] {
            for pattern in patterns {
                if let Err(message) = compile_pattern(pattern) {
                    return Err(PolicyError::InvalidRegex {
                        policy: self.name.clone(),
                        list,
                        pattern: pattern.clone(),
                        message,
                    });
                }
            }
        }
        Ok(())
    }
}

/// One member of a composed set, kept for `policy explain`.
#[derive(Debug, Clone)]
pub struct Member {
    /// The policy as configured.
    pub policy: CommandPolicy,
    /// Whether it takes part in decisions (see [`CommandPolicy::is_restricting`]).
    pub restricting: bool,
}

/// A pattern in a composed rule list, with the member it came from.
#[derive(Debug, Clone)]
pub(crate) struct RuleRef {
    pub(crate) pattern: String,
    pub(crate) member: usize,
}

/// All patterns of one kind across the set, in composition order, matched in one pass.
#[derive(Debug, Clone)]
pub(crate) struct RuleList {
    set: RegexSet,
    pub(crate) rules: Vec<RuleRef>,
}

impl RuleList {
    fn build(rules: Vec<RuleRef>) -> Result<Self, String> {
        let mut builder = RegexSetBuilder::new(rules.iter().map(|rule| rule.pattern.as_str()));
        builder.unicode(false);
        let set = builder
            .build()
            .map_err(|err| meho_core::display::regex_error(&err.to_string()))?;
        Ok(RuleList { set, rules })
    }

    /// The first rule, in composition order, that matches `text`.
    pub(crate) fn first_match(&self, text: &[u8]) -> Option<&RuleRef> {
        // `is_match` stops at the first hit; most commands match no deny rule, so this is the fast path.
        if !self.set.is_match(text) {
            return None;
        }
        let index = self.set.matches(text).iter().next()?;
        self.rules.get(index)
    }
}

/// The composed firewall of one host: every member's rules merged in composition order.
///
/// Composition is additive: deny wins across members, allow is the union of the allowlist members,
/// require_approval is a union, shell parsing is on if any member parses, and the set enforces if
/// any member enforces.
#[derive(Debug, Clone)]
pub struct PolicySet {
    members: Vec<Member>,
    pub(crate) deny: RuleList,
    pub(crate) approval: RuleList,
    pub(crate) allow: RuleList,
    has_allowlist: bool,
    enforces: bool,
    shell_parse: bool,
    max_tier: Tier,
    allowlist_max_tier: Tier,
}

impl PolicySet {
    /// Composes `members` in the order given, dropping later duplicates by name.
    pub fn compile(members: impl IntoIterator<Item = CommandPolicy>) -> Result<Self, PolicyError> {
        let mut kept: Vec<Member> = Vec::new();
        for policy in members {
            if kept.iter().any(|m| m.policy.name == policy.name) {
                continue;
            }
            policy.validate()?;
            kept.push(Member {
                restricting: policy.is_restricting(),
                policy,
            });
        }
        let active = || {
            kept.iter()
                .enumerate()
                .filter(|(_, m)| m.restricting)
                .map(|(i, m)| (i, &m.policy))
        };
        let collect = |pick: fn(&CommandPolicy) -> &[String]| {
            active()
                .flat_map(|(member, policy)| {
                    pick(policy).iter().map(move |pattern| RuleRef {
                        pattern: pattern.clone(),
                        member,
                    })
                })
                .collect::<Vec<_>>()
        };
        let deny = collect(|p| {
            if p.mode == Mode::Denylist {
                &p.deny
            } else {
                &[]
            }
        });
        let approval = collect(|p| &p.require_approval);
        let allow = collect(|p| {
            if p.mode == Mode::Allowlist {
                &p.allow
            } else {
                &[]
            }
        });
        let build = |rules: Vec<RuleRef>| {
            RuleList::build(rules).map_err(|message| PolicyError::InvalidRegex {
                policy: kept
                    .iter()
                    .map(|m| m.policy.name.as_str())
                    .collect::<Vec<_>>()
                    .join("+"),
                list: "composed",
                pattern: String::new(),
                message,
            })
        };
        let deny = build(deny)?;
        let approval = build(approval)?;
        let allow = build(allow)?;
        let has_allowlist = active().any(|(_, p)| p.mode == Mode::Allowlist);
        let enforces = active().any(|(_, p)| p.enforcement == Enforcement::Enforce);
        let shell_parse = active().any(|(_, p)| p.shell_parse);
        // An `off` member allows nothing, so its tier says nothing about what runs; it applies
        // only to the commands its approval rules match (`member_tier`).
        let max_tier = active()
            .filter(|(_, p)| p.mode != Mode::Off)
            .map(|(_, p)| p.tier)
            .max()
            .unwrap_or_default();
        let allowlist_max_tier = active()
            .filter(|(_, p)| p.mode == Mode::Allowlist)
            .map(|(_, p)| p.tier)
            .max()
            .unwrap_or(max_tier);
        Ok(PolicySet {
            members: kept,
            deny,
            approval,
            allow,
            has_allowlist,
            enforces,
            shell_parse,
            max_tier,
            allowlist_max_tier,
        })
    }

    /// The members in composition order, duplicates dropped, inert ones included.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Whether any member can refuse or gate a command.
    pub fn is_restricting(&self) -> bool {
        self.members.iter().any(|m| m.restricting)
    }

    /// Whether some restricting member is an allowlist (so unmatched commands are denied).
    pub fn has_allowlist(&self) -> bool {
        self.has_allowlist
    }

    /// Whether findings block. False only when every restricting member is in audit mode.
    pub fn enforces(&self) -> bool {
        self.enforces
    }

    /// Whether the line is split as bash before matching.
    pub fn shell_parse(&self) -> bool {
        self.shell_parse
    }

    /// The tier of a command allowed without an allow rule: the highest among restricting members.
    pub fn default_tier(&self) -> Tier {
        self.max_tier
    }

    /// The tier reported for `allowlist:no-match`.
    pub(crate) fn allowlist_tier(&self) -> Tier {
        self.allowlist_max_tier
    }

    /// The tier of the member at `index`.
    pub(crate) fn member_tier(&self, index: usize) -> Tier {
        self.members
            .get(index)
            .map_or(self.max_tier, |m| m.policy.tier)
    }

    /// The name of the member at `index`.
    pub(crate) fn member_name(&self, index: usize) -> &str {
        self.members
            .get(index)
            .map_or("?", |m| m.policy.name.as_str())
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.policy;
        write!(
            f,
            "{} (mode={}, enforcement={}, shell_parse={}, tier={}{})",
            p.name,
            p.mode.as_str(),
            p.enforcement.as_str(),
            p.shell_parse,
            p.tier,
            if self.restricting { "" } else { ", inert" }
        )
    }
}

/// Regexes match decoded command words, which are bytes. Unicode is off so `\s`, `\d`, `\w` and
/// `(?i)` are ASCII-only, as in RE2, which the policy files of the systems we learn from assume.
pub(crate) fn regex_builder_settings(builder: &mut RegexBuilder) {
    builder.unicode(false);
}

/// One pattern compiled as every policy, grant and lint compiles it.
pub(crate) fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    let mut builder = RegexBuilder::new(pattern);
    regex_builder_settings(&mut builder);
    builder
        .build()
        .map_err(|err| meho_core::display::regex_error(&err.to_string()))
}
