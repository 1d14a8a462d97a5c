use meho_core::{Decision, DecisionJson, Effect, ReasonCode, Tier};

use crate::elevation::{Elevation, is_valid_sudo_user};
use crate::overlay::Overlay;
use crate::policy::PolicySet;
use crate::shell::{self, CommandLine};

/// Everything the engine knows about one host: its composed firewall and its elevation rules.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// The composed command firewall.
    pub policies: PolicySet,
    /// Whether calls may run under `sudo -n`.
    pub allow_sudo: bool,
    /// Users sudo may target; empty means root only.
    pub allowed_sudo_users: Vec<String>,
}

/// How an allowed command will run on the host: what the engine shaped beside the decision. Only
/// SSH runs commands this way, so [`Decision`] itself does not carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandShape {
    /// The exact force-command a one-shot certificate would carry, rebuilt from the parsed words
    /// (sudo prefix included); `None` when the call is refused.
    pub force_command: Option<String>,
    /// The elevation prefix (`sudo -n` or `sudo -n -u USER`) when elevation was requested and
    /// granted.
    pub elevation_prefix: Option<String>,
}

/// A decision and the command it shaped. Its JSON is the decision's contract
/// ([`DecisionJson`]), with `force_command` and `elevation_prefix` in their places; a
/// [`Decision`] alone reads as one with nothing shaped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "DecisionJson", from = "DecisionJson")]
pub struct Decided {
    /// The outcome, with the rule that produced it.
    pub decision: Decision,
    /// How the command will run, when the decision lets it.
    pub shape: CommandShape,
}

impl From<Decision> for Decided {
    fn from(decision: Decision) -> Self {
        Decided {
            decision,
            shape: CommandShape::default(),
        }
    }
}

impl From<Decided> for DecisionJson {
    fn from(decided: Decided) -> Self {
        DecisionJson::shaped(
            decided.decision,
            decided.shape.force_command,
            decided.shape.elevation_prefix,
        )
    }
}

impl From<DecisionJson> for Decided {
    fn from(json: DecisionJson) -> Self {
        let (decision, force_command, elevation_prefix) = json.into_shaped();
        Decided {
            decision,
            shape: CommandShape {
                force_command,
                elevation_prefix,
            },
        }
    }
}

/// One call to decide.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The command line exactly as the agent sent it.
    pub command: &'a str,
    /// The elevation asked for.
    pub elevation: Elevation,
    /// The agent (MCP client or broker) making the call.
    pub caller: &'a str,
    /// The human behind the agent; empty when unknown.
    pub end_user: &'a str,
    /// Unix seconds, used only to expire grants and waivers.
    pub now: u64,
}

/// One line of a decision trace, as `meho policy explain` prints it.
pub type Step = String;

/// Receives the steps of a decision. The no-op implementation keeps the hot path free of
/// formatting: the closures are never called.
trait Trace {
    fn note(&mut self, step: impl FnOnce() -> String);
}

impl Trace for () {
    #[inline(always)]
    fn note(&mut self, _step: impl FnOnce() -> String) {}
}

impl Trace for Vec<Step> {
    fn note(&mut self, step: impl FnOnce() -> String) {
        self.push(step());
    }
}

/// The outcome for one simple command, or for the whole line.
enum Verdict {
    Allowed {
        rule: String,
        approval: Option<String>,
        tier: Tier,
        grant_id: Option<String>,
    },
    Denied {
        rule: String,
        code: ReasonCode,
        tier: Tier,
        approval: Option<String>,
    },
}

impl HostPolicy {
    /// Decides `request` against this host's policy and the runtime `overlay`.
    pub fn decide(&self, request: &Request<'_>, overlay: Overlay<'_>) -> Decided {
        self.decide_with(request, overlay, &mut ())
    }

    /// Decides like [`HostPolicy::decide`] and also returns every step taken, for `policy explain`.
    pub fn explain(&self, request: &Request<'_>, overlay: Overlay<'_>) -> (Decided, Vec<Step>) {
        let mut steps = Vec::new();
        let decision = self.decide_with(request, overlay, &mut steps);
        (decision, steps)
    }

    fn decide_with(
        &self,
        request: &Request<'_>,
        overlay: Overlay<'_>,
        trace: &mut impl Trace,
    ) -> Decided {
        let set = &self.policies;
        let command = request.command;
        if let Some(rule) = malformed(command) {
            trace.note(|| format!("request refused before any policy: {rule}"));
            return Decision::refused(ReasonCode::InvalidRequest, rule, set.default_tier()).into();
        }
        if let Err(rule) = self.check_elevation(&request.elevation) {
            trace.note(|| format!("elevation {} refused: {rule}", request.elevation));
            return Decision::refused(ReasonCode::InvalidRequest, rule, set.default_tier()).into();
        }
        trace.note(|| format!("elevation: {}", request.elevation));

        let parsed = set.shell_parse().then(|| shell::parse(command));
        let verdict = match &parsed {
            Some(Err(err)) => {
                trace.note(|| format!("shell parse: refused ({})", err.reason()));
                Verdict::Denied {
                    rule: format!("shell-parse:{}", err.reason()),
                    code: ReasonCode::ShellParseError,
                    tier: set.default_tier(),
                    approval: None,
                }
            }
            Some(Ok(line)) => {
                trace.note(|| {
                    format!(
                        "shell parse: {} simple command(s): {}",
                        line.commands.len(),
                        line.commands
                            .iter()
                            .map(|c| format!("`{}`", c.text))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
                self.evaluate_line(
                    line.commands.iter().map(|c| c.text.as_bytes()),
                    overlay,
                    request.now,
                    trace,
                )
            }
            None => {
                trace.note(|| "shell parse: off, the whole line is matched as one unit".to_owned());
                self.evaluate_line(
                    std::iter::once(command.as_bytes()),
                    overlay,
                    request.now,
                    trace,
                )
            }
        };

        let mut decision = self.apply_enforcement(verdict, trace);
        if decision.needs_approval() {
            self.apply_waiver(&mut decision, request, overlay, trace);
        }
        let mut shape = CommandShape::default();
        if decision.may_run() {
            let force_command = match &parsed {
                Some(Ok(line)) => parsed_force_command(line, &request.elevation),
                Some(Err(_)) => raw_force_command(command, &request.elevation, None),
                None => raw_force_command(command, &request.elevation, shell::parse(command).ok()),
            };
            trace.note(|| format!("force-command: {force_command}"));
            shape = CommandShape {
                force_command: Some(force_command),
                elevation_prefix: request.elevation.prefix(),
            };
        }
        Decided { decision, shape }
    }

    /// Checks `elevation` against the host's sudo rules alone, for calls that carry no command
    /// (session opens, file transfers). Returns the `invalid-request:…` rule on refusal.
    pub fn check_elevation(&self, elevation: &Elevation) -> Result<(), &'static str> {
        let Some(user) = elevation.sudo_user() else {
            return Ok(());
        };
        if !self.allow_sudo {
            return Err("invalid-request:sudo-not-allowed");
        }
        if !is_valid_sudo_user(user) {
            return Err("invalid-request:sudo-user-invalid");
        }
        let permitted = if self.allowed_sudo_users.is_empty() {
            user == "root"
        } else {
            self.allowed_sudo_users.iter().any(|u| u == user)
        };
        if permitted {
            Ok(())
        } else {
            Err("invalid-request:sudo-user-not-allowed")
        }
    }

    /// Evaluates each simple command in order. The first denial stops; approval is sticky and the
    /// first approval rule wins; otherwise the first command's rule is reported. The tier is the
    /// highest of the commands evaluated.
    fn evaluate_line<'t>(
        &self,
        units: impl Iterator<Item = &'t [u8]>,
        overlay: Overlay<'_>,
        now: u64,
        trace: &mut impl Trace,
    ) -> Verdict {
        let mut first_rule: Option<String> = None;
        let mut approval: Option<String> = None;
        let mut grant: Option<String> = None;
        let mut tier = Tier::Read;
        for (index, text) in units.enumerate() {
            match self.evaluate_unit(index, text, overlay, now, trace) {
                Verdict::Denied {
                    rule,
                    code,
                    tier: unit_tier,
                    approval: unit_approval,
                } => {
                    return Verdict::Denied {
                        rule,
                        code,
                        tier: unit_tier,
                        approval: approval.or(unit_approval),
                    };
                }
                Verdict::Allowed {
                    rule,
                    approval: unit_approval,
                    tier: unit_tier,
                    grant_id,
                } => {
                    first_rule.get_or_insert(rule);
                    if approval.is_none() {
                        approval = unit_approval;
                    }
                    if grant.is_none() {
                        grant = grant_id;
                    }
                    tier = tier.max(unit_tier);
                }
            }
        }
        Verdict::Allowed {
            rule: approval.clone().or(first_rule).unwrap_or_default(),
            approval,
            tier,
            grant_id: grant,
        }
    }

    fn evaluate_unit(
        &self,
        index: usize,
        text: &[u8],
        overlay: Overlay<'_>,
        now: u64,
        trace: &mut impl Trace,
    ) -> Verdict {
        let set = &self.policies;
        let shown = || String::from_utf8_lossy(text).into_owned();
        if let Some(rule) = set.deny.first_match(text) {
            trace.note(|| {
                format!(
                    "command {} `{}`: deny rule `{}` of `{}` matched",
                    index + 1,
                    shown(),
                    rule.pattern,
                    set.member_name(rule.member)
                )
            });
            return Verdict::Denied {
                rule: format!("deny:{}", rule.pattern),
                code: ReasonCode::CommandDenied,
                tier: set.member_tier(rule.member),
                approval: None,
            };
        }
        let approval = set.approval.first_match(text);
        if let Some(rule) = approval {
            trace.note(|| {
                format!(
                    "command {} `{}`: require_approval rule `{}` of `{}` matched",
                    index + 1,
                    shown(),
                    rule.pattern,
                    set.member_name(rule.member)
                )
            });
        }
        let approval_rule = approval.map(|rule| format!("require_approval:{}", rule.pattern));
        let approval_tier = approval.map_or(Tier::Read, |rule| set.member_tier(rule.member));

        let (rule, tier, grant_id) = if set.has_allowlist() {
            if let Some(rule) = set.allow.first_match(text) {
                trace.note(|| {
                    format!(
                        "command {} `{}`: allow rule `{}` of `{}` matched",
                        index + 1,
                        shown(),
                        rule.pattern,
                        set.member_name(rule.member)
                    )
                });
                (
                    format!("allow:{}", rule.pattern),
                    set.member_tier(rule.member),
                    None,
                )
            } else if let Some(grant) = overlay
                .grants
                .iter()
                .find(|g| g.is_active(now) && g.matches(text))
            {
                trace.note(|| {
                    format!(
                        "command {} `{}`: runtime grant `{}` (`{}`) matched",
                        index + 1,
                        shown(),
                        grant.id,
                        grant.pattern
                    )
                });
                (
                    format!("allow:{}", grant.pattern),
                    grant.tier,
                    Some(grant.id.clone()),
                )
            } else {
                trace
                    .note(|| format!("command {} `{}`: no allow rule matched", index + 1, shown()));
                return Verdict::Denied {
                    rule: "allowlist:no-match".to_owned(),
                    code: ReasonCode::AllowlistNoMatch,
                    tier: set.allowlist_tier(),
                    approval: approval_rule,
                };
            }
        } else {
            trace.note(|| {
                format!(
                    "command {} `{}`: allowed (no allowlist member)",
                    index + 1,
                    shown()
                )
            });
            (String::new(), set.default_tier(), None)
        };
        Verdict::Allowed {
            rule: approval_rule.clone().unwrap_or(rule),
            tier: tier.max(if approval_rule.is_some() {
                approval_tier
            } else {
                Tier::Read
            }),
            approval: approval_rule,
            grant_id,
        }
    }

    /// Turns the line's verdict into a decision: in enforce mode as it is, in audit mode into an
    /// allowed call carrying warnings.
    fn apply_enforcement(&self, verdict: Verdict, trace: &mut impl Trace) -> Decision {
        let enforce = self.policies.enforces() || !self.policies.is_restricting();
        trace.note(|| format!("enforcement: {}", if enforce { "enforce" } else { "audit" }));
        match verdict {
            Verdict::Denied {
                rule,
                code,
                tier,
                approval,
            } => {
                if enforce {
                    // As the seed's engine does: an approval rule that matched before the
                    // allowlist refused is reported with the denial (a deny rule wins outright).
                    // The call is still refused (its effect is `Deny`), so nothing may hold it
                    // for a human.
                    let mut decision = Decision::refused(code, rule, tier);
                    decision.approval_rule_matched =
                        approval.is_some() && code == ReasonCode::AllowlistNoMatch;
                    return decision;
                }
                let mut decision = Decision::refused(ReasonCode::Allowed, rule, tier);
                decision.effect = Effect::Allow;
                decision.would_deny = true;
                decision
                    .warnings
                    .push(format!("audit: would deny: {}", decision.rule));
                if let Some(approval) = approval {
                    decision.would_require_approval = true;
                    decision
                        .warnings
                        .push(format!("audit: would require approval: {approval}"));
                }
                decision
            }
            Verdict::Allowed {
                rule,
                approval,
                tier,
                grant_id,
            } => {
                let mut decision = Decision::refused(ReasonCode::Allowed, rule, tier);
                decision.effect = Effect::Allow;
                decision.grant_id = grant_id;
                if let Some(approval) = approval {
                    if enforce {
                        decision.effect = Effect::RequireApproval;
                        decision.reason_code = ReasonCode::NeedsApproval;
                    } else {
                        decision.would_require_approval = true;
                        decision
                            .warnings
                            .push(format!("audit: would require approval: {approval}"));
                    }
                }
                decision
            }
        }
    }

    fn apply_waiver(
        &self,
        decision: &mut Decision,
        request: &Request<'_>,
        overlay: Overlay<'_>,
        trace: &mut impl Trace,
    ) {
        let waiver = overlay.waivers.iter().find(|w| {
            w.covers(
                request.command,
                &request.elevation,
                request.caller,
                request.end_user,
                request.now,
            )
        });
        match waiver {
            Some(waiver) => {
                trace.note(|| format!("waiver `{}` lifts the approval requirement", waiver.id));
                decision.effect = Effect::Allow;
                decision.reason_code = ReasonCode::Allowed;
                decision.rule = format!("approval-waived:{}", decision.rule);
                decision.waiver_id = Some(waiver.id.clone());
            }
            None => trace.note(|| "no waiver covers this exact call".to_owned()),
        }
    }
}

/// Refuses lines no host may run: blank ones, and any with a newline, carriage return or NUL,
/// which would smuggle a second line past the regexes.
fn malformed(command: &str) -> Option<&'static str> {
    if command.contains(['\n', '\r']) {
        Some("invalid-request:newline")
    } else if command.contains('\0') {
        Some("invalid-request:nul-byte")
    } else if command.trim().is_empty() {
        Some("invalid-request:blank-command")
    } else {
        None
    }
}

/// The force-command of a line the firewall parsed: rebuilt from the decoded words
/// ([`CommandLine::to_posix`]), never the raw line, so every POSIX login shell and `/bin/sh` run
/// exactly the words the rules matched. Under sudo, one plain command runs as argv
/// (`sudo -n -- prog 'arg'`), anything else as `sudo -n -- /bin/sh -c '<posix form>'`.
fn parsed_force_command(line: &CommandLine, elevation: &Elevation) -> String {
    let Some(prefix) = elevation.prefix() else {
        return line.to_posix();
    };
    elevated(prefix, Some(line), || line.to_posix())
}

/// The force-command of a line matched as a whole (shell parsing off) or allowed unparsed by an
/// audit-mode policy: the raw line, which is what the rules saw. Under sudo a line that happens to
/// be one plain command runs as argv; anything else runs as `/bin/sh -c '<raw line>'`.
fn raw_force_command(command: &str, elevation: &Elevation, line: Option<CommandLine>) -> String {
    let Some(prefix) = elevation.prefix() else {
        return command.to_owned();
    };
    elevated(prefix, line.as_ref(), || command.to_owned())
}

/// `prefix -- argv…` for one plain command, else `prefix -- /bin/sh -c '<shell_text()>'`.
fn elevated(
    prefix: String,
    line: Option<&CommandLine>,
    shell_text: impl FnOnce() -> String,
) -> String {
    let mut out = prefix;
    out.push_str(" --");
    match line.and_then(CommandLine::as_static_argv) {
        Some(argv) => {
            for word in argv.words() {
                out.push(' ');
                shell::quote(word, &mut out);
            }
        }
        None => {
            out.push_str(" /bin/sh -c ");
            shell::quote(&shell_text(), &mut out);
        }
    }
    out
}
