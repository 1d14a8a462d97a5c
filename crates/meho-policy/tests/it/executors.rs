//! What runs on the host, checked against the shells that run it.
//!
//! sshd hands a force-command to the account's login shell (`$SHELL -c '<force-command>'`), and an
//! elevated compound line runs under `/bin/sh -c`. So the tests here execute the force-commands the
//! engine produces under bash, dash and busybox sh, with stand-ins that record the argv they
//! receive, and assert that exactly the decided words ran and nothing else did (no marker file).
//!
//! The shells are real processes. A missing shell is a loud `SKIPPED:` outside CI and a failure
//! under `CI=true` (`scripts/test` installs dash and busybox).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use meho_config::Config;
use meho_policy::shell::{self, CommandLine, Operator};
use meho_policy::{Elevation, HostPolicy, Overlay, Request};

use crate::rng::Rng;

/// A shell that may run a force-command on a host: the program and the arguments before a script
/// file or `-c`.
#[derive(Debug, Clone, Copy)]
struct Shell {
    name: &'static str,
    program: &'static str,
    prefix: &'static [&'static str],
}

const BASH: Shell = Shell {
    name: "bash",
    program: "bash",
    prefix: &["--norc", "--noprofile"],
};
const DASH: Shell = Shell {
    name: "dash",
    program: "dash",
    prefix: &[],
};
const BUSYBOX: Shell = Shell {
    name: "busybox sh",
    program: "busybox",
    prefix: &["sh"],
};
const SHELLS: [Shell; 3] = [BASH, DASH, BUSYBOX];

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Prints `SKIPPED: <why>` past the harness's capture, so `scripts/test` counts it.
fn skipped(why: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\nSKIPPED: {why}");
    let _ = out.flush();
}

/// Whether every program in `programs` is installed; under `CI=true` a missing one fails the test.
fn require(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !on_path(p)).collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{test}: {} not installed (scripts/test installs dash, busybox and sudo)",
        missing.join(", ")
    );
    assert!(!in_ci(), "{why}");
    skipped(&why);
    false
}

/// Whether the tests run as root (needed to run the real `sudo -n` force-commands).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// One stand-in invocation as recorded: the stand-in's name and its arguments.
type Invocation = Vec<Vec<u8>>;

/// Splits a log of NUL-separated fields into cases (`C<n>` markers) of recorded invocations
/// (`<name> <argc> <args…>`), each case's invocations sorted (members of one pipeline run
/// concurrently, so their order is not fixed).
fn parse_log(log: &[u8], cases: usize) -> Vec<Vec<Invocation>> {
    let mut out = vec![Vec::new(); cases];
    let mut fields = log.split(|&b| b == 0).peekable();
    let mut case: Option<usize> = None;
    while let Some(field) = fields.next() {
        if field.is_empty() && fields.peek().is_none() {
            break;
        }
        if let Some(number) = field.strip_prefix(b"C") {
            case = Some(std::str::from_utf8(number).unwrap().parse().unwrap());
            continue;
        }
        let name = field.to_vec();
        let argc: usize = std::str::from_utf8(fields.next().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        let mut invocation = vec![name];
        for _ in 0..argc {
            invocation.push(fields.next().unwrap().to_vec());
        }
        out[case.expect("an invocation before any case marker")].push(invocation);
    }
    for case in &mut out {
        case.sort();
    }
    out
}

/// What must run for `line` when the stand-in `w` exits 0 and `f` exits 1: POSIX and-or lists,
/// left to right; a skipped pipeline leaves the status as it was; a pipeline's status is its last
/// command's.
fn expected_invocations(line: &CommandLine) -> Vec<Invocation> {
    let mut pipelines: Vec<(Option<Operator>, Vec<usize>)> = vec![(None, vec![0])];
    for (index, operator) in line.operators.iter().enumerate() {
        match operator {
            Operator::Pipe | Operator::PipeAll => pipelines.last_mut().unwrap().1.push(index + 1),
            other => pipelines.push((Some(*other), vec![index + 1])),
        }
    }
    let mut status = 0;
    let mut ran = Vec::new();
    for (operator, members) in pipelines {
        let runs = match operator {
            None | Some(Operator::Sequence) => true,
            Some(Operator::And) => status == 0,
            Some(Operator::Or) => status != 0,
            Some(Operator::Pipe | Operator::PipeAll) => unreachable!(),
        };
        if !runs {
            continue;
        }
        for &member in &members {
            let command = &line.commands[member];
            ran.push(command.words().map(|w| w.as_bytes().to_vec()).collect());
        }
        let last = &line.commands[*members.last().unwrap()];
        status = i32::from(last.words().next() == Some("f"));
    }
    ran.sort();
    ran
}

/// Runs `script` with `shell` (from a file, so nothing in it reads the script as its stdin) and
/// returns what the stand-ins logged.
fn run_script(shell: Shell, dir: &Path, script: &str) -> Vec<u8> {
    let file = dir.join(format!("script-{}.sh", shell.program));
    let log = dir.join(format!("log-{}", shell.program));
    std::fs::write(&file, script).unwrap();
    let _ = std::fs::remove_file(&log);
    let output = Command::new(shell.program)
        .args(shell.prefix)
        .arg(&file)
        .current_dir(dir)
        .env("LOG", &log)
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{} failed on the script: {}",
        shell.name,
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read(&log).unwrap_or_default()
}

/// Stand-ins as shell functions: each records its name and arguments; `w` succeeds, `f` fails.
const STAND_INS: &str = "w() { printf '%s\\0' w \"$#\" \"$@\" >>\"$LOG\"; return 0; }\n\
                         f() { printf '%s\\0' f \"$#\" \"$@\" >>\"$LOG\"; return 1; }\n";

/// Fragments of words: every quoting form, the bytes each shell treats specially, and the
/// characters the review used to break out of `$'…'`.
const WORD_FRAGMENTS: &[&str] = &[
    "a",
    "Z9",
    "-v",
    "--out=x",
    "=",
    "=a",
    "%",
    "@",
    ":",
    ",",
    ".",
    "/",
    "+",
    "^",
    "]",
    "#",
    "!",
    "é",
    "中",
    "'q s'",
    "\"d q\"",
    "\"a'b\"",
    "'a\"b'",
    "$'\\x41'",
    "$'\\t'",
    "$'\\\\'",
    "$'\\''",
    "$'a\\' ; w PWN #\\''",
    "$'\\101'",
    "$'\\x4'",
    "$'\\8'",
    "$'\\xg'",
    "\"\\$\"",
    "\"\\\"\"",
    "\"\\a\"",
    "\"\\\\\"",
    "''",
    "\"\"",
    "'*'",
    "'?'",
    "'[x]'",
    "'{a,b}'",
    "'~'",
    "'$HOME'",
    "'`id`'",
    "'$(id)'",
    "'a;b'",
    "'a|b'",
    "'a&b'",
    "'a>b'",
    "'(x)'",
    "\"x y\"",
    "'\t'",
    "\"中\\\"\"",
    "'if'",
    "'then'",
    "'A=1'",
    "\"\\\\'\"",
    "$'\\'\\''",
];

const NAMES: &[&str] = &["w", "w", "w", "f", "'w'", "\"f\"", "$'w'", "w''"];
const OPERATORS: &[&str] = &[
    " | ", " |& ", " && ", " || ", " ; ", "|", "&&", ";", " ;", "||",
];

/// A random command line of stand-ins: 1–4 simple commands joined by operators, each with 0–5
/// words of 1–3 fragments and up to two fd dups.
fn random_line(rng: &mut Rng) -> String {
    let mut line = String::new();
    let commands = 1 + rng.below(4);
    for index in 0..commands {
        if index > 0 {
            line.push_str(rng.pick(OPERATORS));
        }
        line.push_str(rng.pick(NAMES));
        for _ in 0..rng.below(6) {
            line.push(' ');
            for _ in 0..(1 + rng.below(3)) {
                line.push_str(rng.pick(WORD_FRAGMENTS));
            }
        }
        // fd dups: targets 0–2 (open in every case), fds 0 and 2–9 may be closed; a target is
        // never a fd this command closed before (that is a runtime error, not a parse question).
        let mut closed: Vec<u8> = Vec::new();
        for _ in 0..rng.below(3) {
            let fd = [0u8, 1, 2, 3, 5, 9][rng.below(6)];
            let direction = if rng.below(2) == 0 { '>' } else { '<' };
            let close = fd != 1 && rng.below(4) == 0;
            let explicit =
                !(fd == 1 && direction == '>' || fd == 0 && direction == '<') || rng.below(2) == 0;
            if close {
                closed.push(fd);
            }
            let target = if close {
                "-".to_owned()
            } else {
                let candidates: Vec<u8> = [0u8, 1, 2]
                    .into_iter()
                    .filter(|t| !closed.contains(t))
                    .collect();
                if candidates.is_empty() {
                    continue;
                }
                candidates[rng.below(candidates.len())].to_string()
            };
            line.push(' ');
            if explicit {
                line.push_str(&fd.to_string());
            }
            line.push(direction);
            line.push('&');
            if rng.below(5) == 0 {
                line.push(' ');
            }
            line.push_str(&target);
        }
    }
    if rng.below(8) == 0 {
        line.push(';');
    }
    line
}

#[test]
fn serialized_lines_run_the_decoded_words_under_every_shell() {
    if !require("serializer differential", &["bash", "dash", "busybox"]) {
        return;
    }
    const CASES: usize = 10_000;
    let mut rng = Rng(0x5eed_0fda_5e7c_0ded);
    let mut lines = Vec::new();
    let mut parsed = Vec::new();
    let mut generated = 0;
    while lines.len() < CASES {
        generated += 1;
        assert!(
            generated < 50 * CASES,
            "the generator produced too few accepted lines"
        );
        let line = random_line(&mut rng);
        let Ok(command_line) = shell::parse(&line) else {
            continue;
        };
        lines.push(line);
        parsed.push(command_line);
    }
    let expected: Vec<Vec<Invocation>> = parsed.iter().map(expected_invocations).collect();
    let mut serialized_script = String::from(STAND_INS);
    let mut raw_script = String::from(STAND_INS);
    for (index, (line, command_line)) in lines.iter().zip(&parsed).enumerate() {
        let marker = format!("printf 'C%s\\0' {index} >>\"$LOG\"\n");
        serialized_script.push_str(&marker);
        serialized_script.push_str(&command_line.to_posix());
        serialized_script.push('\n');
        raw_script.push_str(&marker);
        raw_script.push_str(line);
        raw_script.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for shell in SHELLS {
        runs.push((
            shell.name,
            "serialized",
            run_script(shell, dir.path(), &serialized_script),
        ));
    }
    // bash on the raw line is the ground truth the parser decodes by.
    runs.push(("bash", "raw", run_script(BASH, dir.path(), &raw_script)));
    let mut executions = 0;
    for (shell, form, log) in runs {
        let got = parse_log(&log, CASES);
        for (index, (want, got)) in expected.iter().zip(&got).enumerate() {
            assert_eq!(
                want,
                got,
                "{shell} ({form}) ran other words for `{}`, serialized as `{}`",
                lines[index].escape_debug(),
                parsed[index].to_posix().escape_debug()
            );
        }
        executions += CASES;
    }
    assert!(
        !dir.path().join("PWN").exists(),
        "a stand-in ran as injected code"
    );
    println!(
        "serializer differential: {CASES} accepted lines (of {generated} generated), {executions} \
         executions under bash, dash and busybox sh"
    );
}

/// `line` as its POSIX form spells it: bash's `a |& b` is `a 2>&1 | b`.
fn posix_shape(line: &CommandLine) -> CommandLine {
    let mut shaped = line.clone();
    for (index, operator) in shaped.operators.iter_mut().enumerate() {
        if *operator == Operator::PipeAll {
            *operator = Operator::Pipe;
            shaped.commands[index].redirects.push(shell::FdDup {
                fd: 2,
                direction: b'>',
                target: Some(1),
            });
        }
    }
    shaped
}

/// The in-process half of the differential: the POSIX form decodes, by the same parser, to the
/// same words, operators and fd dups (100,000 lines; the real shells run 10,000 above).
#[test]
fn posix_form_decodes_to_the_same_line() {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let mut checked = 0;
    let mut generated = 0;
    while checked < 100_000 {
        generated += 1;
        assert!(
            generated < 5_000_000,
            "the generator produced too few accepted lines"
        );
        let line = random_line(&mut rng);
        let Ok(parsed) = shell::parse(&line) else {
            continue;
        };
        let posix = parsed.to_posix();
        assert_eq!(
            shell::parse(&posix),
            Ok(posix_shape(&parsed)),
            "`{}` rebuilt as `{}` decodes differently",
            line.escape_debug(),
            posix.escape_debug()
        );
        // Rebuilding is idempotent: the POSIX form of the POSIX form is itself.
        assert_eq!(shell::parse(&posix).unwrap().to_posix(), posix);
        checked += 1;
    }
}

#[test]
fn quoted_words_round_trip_through_every_shell() {
    if !require("quote round trip", &["bash", "dash", "busybox"]) {
        return;
    }
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let alphabet: &[&str] = &[
        "a", "Z", "0", " ", "'", "\"", "\\", "$", "`", "!", "*", "?", "[", "~", "#", "&", ";", "|",
        "(", ")", "<", ">", "{", "}", "é", "中", "\t", "-", "=", "%", "^", ",", ".", "/", ":", "@",
    ];
    let mut cases: Vec<Vec<String>> = Vec::new();
    let mut script = String::from(STAND_INS);
    for index in 0..2000 {
        let words: Vec<String> = (0..(1 + rng.below(4)))
            .map(|_| (0..rng.below(6)).map(|_| rng.pick(alphabet)).collect())
            .collect();
        let mut line = String::from("w");
        for word in &words {
            line.push(' ');
            shell::quote(word, &mut line);
        }
        script.push_str(&format!("printf 'C%s\\0' {index} >>\"$LOG\"\n{line}\n"));
        cases.push(words);
    }
    let dir = tempfile::tempdir().unwrap();
    for shell in SHELLS {
        let got = parse_log(&run_script(shell, dir.path(), &script), cases.len());
        for (words, got) in cases.iter().zip(&got) {
            let mut want = vec![b"w".to_vec()];
            want.extend(words.iter().map(|w| w.as_bytes().to_vec()));
            assert_eq!(
                got,
                &vec![want],
                "{} unquoted {words:?} differently",
                shell.name
            );
        }
    }
}

/// A directory of stand-in programs that log `<name> <argc> <args…>` to `log` (a fixed path, since
/// sudo resets the environment), and a marker path that only injected code would create.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new(programs: &[&str]) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let lab = Lab { dir };
        for program in programs {
            let path = lab.bin().join(program);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\nprintf '%s\\0' '{program}' \"$#\" \"$@\" >>'{}'\n",
                    lab.log().display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        lab
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("argv.log")
    }

    fn marker(&self) -> PathBuf {
        self.dir.path().join("PWN")
    }

    /// Runs `force_command` as sshd does, `<login shell> -c <force-command>`, and returns the
    /// invocations the stand-ins logged.
    fn run(&self, shell: Shell, force_command: &str, locale: &str) -> Vec<Invocation> {
        let _ = std::fs::remove_file(self.log());
        let path = format!(
            "{}:{}",
            self.bin().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output = Command::new(shell.program)
            .args(shell.prefix)
            .arg("-c")
            .arg(force_command)
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env("LC_ALL", locale)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let log = std::fs::read(self.log()).unwrap_or_default();
        let mut marked = Vec::from(&b"C0\0"[..]);
        marked.extend(log);
        let got = parse_log(&marked, 1).remove(0);
        assert!(
            !self.marker().exists(),
            "{} ran injected code from `{force_command}` (stderr: {})",
            shell.name,
            String::from_utf8_lossy(&output.stderr)
        );
        got
    }
}

fn invocation(words: &[&str]) -> Invocation {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

/// The review's host: an allowlist of read-only programs with sudo, as in the report.
fn review_policy(lab: &Lab) -> HostPolicy {
    let bin = lab.bin().display().to_string();
    let toml = format!(
        r#"
[hosts.h]
addr = "10.0.0.2:22"
user = "deploy"
host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
allow_sudo = true
command_policy = {{ mode = "allowlist", allow = ['^({bin}/)?git log', '^({bin}/)?journalctl( |$)', '^({bin}/)?docker ps( |$)', '^({bin}/)?grep ', '^({bin}/)?p ', '^({bin}/)?(if|A=1) ', '^({bin}/)?x( |$)'] }}
"#
    );
    Config::parse(&toml, Some(Path::new("review.toml")))
        .unwrap()
        .hosts
        .remove("h")
        .unwrap()
        .policy
}

fn decide(policy: &HostPolicy, command: &str, sudo: bool) -> String {
    let decision = policy.decide(
        &Request {
            command,
            elevation: Elevation::from_request(sudo, None),
            caller: "agent",
            end_user: "",
            now: 0,
        },
        Overlay::default(),
    );
    assert!(
        decision.decision.may_run(),
        "`{command}` was refused: {}",
        decision.decision.rule
    );
    decision.shape.force_command.unwrap()
}

#[test]
fn review_examples_run_only_the_decided_words_under_login_shells() {
    if !require("review examples", &["bash", "dash", "busybox"]) {
        return;
    }
    let lab = Lab::new(&["git", "journalctl", "docker", "grep", "p", "if", "A=1", "x"]);
    let policy = review_policy(&lab);
    let pwn = lab.marker().display().to_string();
    // (command, the invocations that must run)
    let cases: Vec<(String, Vec<Invocation>)> = vec![
        (
            format!("git log $'a\\' ; touch {pwn} #\\'' 2>&1"),
            vec![invocation(&["git", "log", &format!("a' ; touch {pwn} #'")])],
        ),
        (
            format!("journalctl -u $'x\\' ; touch {pwn} #\\''"),
            vec![invocation(&[
                "journalctl",
                "-u",
                &format!("x' ; touch {pwn} #'"),
            ])],
        ),
        (
            format!("docker ps -a $'\\' | touch {pwn} | \\'' | grep $'\\'; touch {pwn};\\''"),
            vec![
                invocation(&["docker", "ps", "-a", &format!("' | touch {pwn} | '")]),
                invocation(&["grep", &format!("'; touch {pwn};'")]),
            ],
        ),
        (
            format!("p \"中\\\" ; touch {pwn} ; #\""),
            vec![invocation(&["p", &format!("中\" ; touch {pwn} ; #")])],
        ),
        (
            format!("p $'\\x27'\" ; touch {pwn}\""),
            vec![invocation(&["p", &format!("' ; touch {pwn}")])],
        ),
        // Words a shell would read as a reserved word or an assignment if they went unquoted.
        ("'if' then".to_owned(), vec![invocation(&["if", "then"])]),
        ("'A=1' x".to_owned(), vec![invocation(&["A=1", "x"])]),
        (
            "x |& grep y".to_owned(),
            vec![invocation(&["grep", "y"]), invocation(&["x"])],
        ),
    ];
    for (command, want) in &cases {
        let force_command = decide(&policy, command, false);
        for shell in SHELLS {
            assert_eq!(
                &lab.run(shell, &force_command, "C.UTF-8"),
                want,
                "{} as the login shell ran other words for `{command}` (force-command `{force_command}`)",
                shell.name
            );
        }
    }
}

#[test]
fn elevated_force_commands_run_only_the_decided_words() {
    if !require(
        "elevated force-commands",
        &["bash", "dash", "busybox", "sudo"],
    ) {
        return;
    }
    if !is_root() {
        let why = "elevated force-commands: the tests must run as root to run `sudo -n`";
        assert!(!in_ci(), "{why}");
        skipped(why);
        return;
    }
    let lab = Lab::new(&["git", "journalctl", "docker", "grep", "p"]);
    let policy = review_policy(&lab);
    let bin = lab.bin().display().to_string();
    let pwn = lab.marker().display().to_string();
    // sudo resets PATH, so the stand-ins are named by absolute path, as an allow rule may.
    let cases: Vec<(String, Vec<Invocation>)> = vec![
        (
            format!("{bin}/git log $'a\\' ; touch {pwn} #\\'' 2>&1"),
            vec![invocation(&["git", "log", &format!("a' ; touch {pwn} #'")])],
        ),
        (
            format!("{bin}/git log $'a\\' ; touch {pwn} #\\''"),
            vec![invocation(&["git", "log", &format!("a' ; touch {pwn} #'")])],
        ),
        (
            format!(
                "{bin}/docker ps $'\\'; touch {pwn}; \\'' | {bin}/grep $'\\\\' && {bin}/journalctl"
            ),
            vec![
                invocation(&["docker", "ps", &format!("'; touch {pwn}; '")]),
                invocation(&["grep", "\\"]),
                invocation(&["journalctl"]),
            ],
        ),
        (
            format!("{bin}/p \"中\\\" ; touch {pwn} ; #\" 2>&1"),
            vec![invocation(&["p", &format!("中\" ; touch {pwn} ; #")])],
        ),
    ];
    for (command, want) in &cases {
        let force_command = decide(&policy, command, true);
        assert!(force_command.starts_with("sudo -n -- "), "{force_command}");
        for shell in SHELLS {
            let mut got = lab.run(shell, &force_command, "C.UTF-8");
            got.sort();
            assert_eq!(
                &got, want,
                "{} ran other words under sudo for `{command}` (force-command `{force_command}`)",
                shell.name
            );
        }
    }
}

/// Locales whose multibyte characters can end in a `\` byte (0x5c): a byte-wise parser and a
/// locale-aware shell can split the same bytes differently.
const MULTIBYTE_LOCALES: &[&str] = &["zh_CN.GBK", "zh_TW.BIG5", "ja_JP.SJIS"];

fn installed_locales() -> Vec<String> {
    let Ok(output) = Command::new("locale").arg("-a").output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.to_ascii_lowercase().replace('-', ""))
        .collect()
}

#[test]
fn multibyte_locales_run_the_decided_words() {
    if !require("multibyte locales", &["bash", "dash", "busybox", "locale"]) {
        return;
    }
    let have = installed_locales();
    let locales: Vec<&str> = MULTIBYTE_LOCALES
        .iter()
        .copied()
        .filter(|l| have.contains(&l.to_ascii_lowercase().replace('-', "")))
        .collect();
    if locales.len() < MULTIBYTE_LOCALES.len() {
        let why = format!(
            "multibyte locales: only {locales:?} of {MULTIBYTE_LOCALES:?} are installed \
             (scripts/test generates them with localedef)"
        );
        assert!(!in_ci(), "{why}");
        skipped(&why);
        if locales.is_empty() {
            return;
        }
    }
    let lab = Lab::new(&["p"]);
    let policy = review_policy(&lab);
    let pwn = lab.marker().display().to_string();
    // 中 is e4 b8 ad in UTF-8; in GBK `ad 5c` is one character, which swallows a backslash.
    let cases = |p: &str| -> Vec<(String, Vec<Invocation>)> {
        vec![
            (
                format!("{p} \"中\\\" ; touch {pwn} ; #\""),
                vec![invocation(&["p", &format!("中\" ; touch {pwn} ; #")])],
            ),
            (
                format!("{p} \"表\\\\\" \"; touch {pwn}\""),
                vec![invocation(&["p", "表\\", &format!("; touch {pwn}")])],
            ),
            (
                format!("{p} $'\\xe8\\xa1\\xa8\\'' \"; touch {pwn}\""),
                vec![invocation(&["p", "表'", &format!("; touch {pwn}")])],
            ),
            (
                format!("{p} 'ソ\\' \"'; touch {pwn}'\""),
                vec![invocation(&["p", "ソ\\", &format!("'; touch {pwn}'")])],
            ),
        ]
    };
    let elevated = on_path("sudo") && is_root();
    let mut runs = 0;
    for locale in &locales {
        for sudo in [false, true] {
            if sudo && !elevated {
                continue;
            }
            // Under sudo PATH is reset, so the stand-in is named by its path.
            let p = if sudo {
                format!("{}/p", lab.bin().display())
            } else {
                "p".to_owned()
            };
            for (command, want) in cases(&p) {
                let force_command = decide(&policy, &command, sudo);
                for shell in SHELLS {
                    assert_eq!(
                        lab.run(shell, &force_command, locale),
                        want,
                        "{} under {locale} ran other words for `{command}` (`{force_command}`)",
                        shell.name
                    );
                    runs += 1;
                }
            }
        }
    }
    assert!(runs > 0);
}

/// The builtins of bash and busybox sh, in every option form the review and our own search used,
/// with arguments that hide code: each line the parser accepts is run under bash, dash and
/// busybox sh (with input on stdin, for `mapfile -C`), and no line may run the hidden `touch`.
#[test]
fn no_accepted_builtin_line_runs_hidden_code() {
    if !require("builtin sweep", &["bash", "dash", "busybox"]) {
        return;
    }
    let bash = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", "compgen -b"])
        .output()
        .unwrap();
    let mut builtins: Vec<String> = String::from_utf8_lossy(&bash.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        builtins.len() > 50,
        "bash listed too few builtins: {builtins:?}"
    );
    // busybox sh lists its builtins after a header line of dashes.
    let busybox = Command::new("busybox")
        .args(["sh", "-c", "help"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&busybox.stdout).into_owned()
        + &String::from_utf8_lossy(&busybox.stderr);
    let ash: Vec<&str> = listed
        .split_once("---")
        .map(|(_, names)| {
            names
                .split_whitespace()
                .filter(|n| !n.starts_with('-'))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        ash.len() > 30,
        "busybox sh listed too few builtins: {listed}"
    );
    for name in ash {
        if !builtins.iter().any(|b| b == name) {
            builtins.push(name.to_owned());
        }
    }
    let templates: &[&str] = &[
        "X",
        "-v X",
        "-p X",
        "-a X",
        "-C X",
        "-C X -c 1",
        "-c 1 -C X",
        "-F X",
        "-W X",
        "-n X",
        "-t X",
        "-d X",
        "-A X",
        "-R X",
        "-u 0 X",
        "-x X",
        "-e X",
        "-s X",
        "-o X",
        "-l X",
        "-X X",
        "-G X",
        "-P X",
        "-S X",
        "X X",
        "-- X",
        "a X",
        "X ']'",
        "-v X ']'",
        "-v X fmt",
        "%d X",
        "-x w X",
        "X -eq 1",
        "1 -lt X",
        "-N 1 X",
        "-i X",
        "-E X",
        "-I X",
        "-D X",
        "-T X",
    ];
    let payloads: &[&str] = &[
        "'a[$(touch M)]'",
        "'GROUPS[$(touch M)]'",
        "'PIPESTATUS[$(touch M)]'",
        "'BASH_ALIASES[$(touch M)]'",
        "'touch M'",
        "'`touch M`'",
        "'$(touch M)'",
        "\"x[\\$(touch M)]\"",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut accepted: BTreeMap<String, usize> = BTreeMap::new();
    let mut refused = 0;
    let mut script = String::new();
    for builtin in &builtins {
        // Quoted as a word, since `[`, `.` and `:` are builtins too.
        let mut name = String::new();
        shell::quote(builtin, &mut name);
        for template in templates {
            for payload in payloads {
                let line = format!("{name} {}", template.replace('X', payload));
                if shell::parse(&line).is_err() {
                    refused += 1;
                    continue;
                }
                *accepted.entry(builtin.clone()).or_default() += 1;
                // One subshell per line, fed two lines of input, bounded in time by the test.
                script.push_str(&format!(
                    "rm -f M; printf 'x\\ny\\n' | ( {line} ) >/dev/null 2>&1; \
                     [ -e M ] && printf 'HIT %s\\n' {}\n",
                    single_quoted(&line)
                ));
            }
        }
    }
    // The shells run side by side, each in a directory of its own (the marker is `./M`).
    let outputs: Vec<(Shell, std::process::Output)> = std::thread::scope(|scope| {
        let runs: Vec<_> = SHELLS
            .iter()
            .map(|&shell| {
                let own = dir.path().join(shell.program);
                let script = &script;
                scope.spawn(move || {
                    std::fs::create_dir_all(&own).unwrap();
                    let file = own.join("sweep.sh");
                    std::fs::write(&file, script).unwrap();
                    let output = Command::new("timeout")
                        .args(["-k", "5", "120", shell.program])
                        .args(shell.prefix)
                        .arg(&file)
                        .current_dir(&own)
                        .stdin(Stdio::null())
                        .output()
                        .unwrap();
                    (shell, output)
                })
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    for (shell, output) in outputs {
        let hits = String::from_utf8_lossy(&output.stdout);
        assert!(
            !hits.contains("HIT"),
            "{} ran hidden code from accepted lines:\n{hits}",
            shell.name
        );
        assert!(
            output.status.code().is_some(),
            "{} did not finish the sweep",
            shell.name
        );
    }
    let lines: usize = accepted.values().sum();
    println!(
        "builtin sweep: {} builtins, {lines} accepted lines run under bash, dash and busybox sh, {refused} refused",
        builtins.len()
    );
    // Every name in the refused class must be refused in every form.
    for name in [
        "let",
        "read",
        "mapfile",
        "readarray",
        "unset",
        "getopts",
        "wait",
        "compgen",
        "complete",
        "compopt",
        "fc",
        "history",
        "bind",
        "jobs",
        "eval",
        "trap",
        "command",
        "builtin",
        "exec",
        "source",
        ".",
        "declare",
        "typeset",
        "local",
        "export",
        "readonly",
        "alias",
        "enable",
        "hash",
        "[[",
    ] {
        assert_eq!(accepted.get(name), None, "`{name}` was accepted");
    }
}

fn single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The shipped `examples/meho.toml`, against the review's breakouts: every one is refused, or runs
/// only its decoded words under each login shell.
#[test]
fn the_shipped_example_refuses_or_runs_only_the_decided_words() {
    if !require("shipped example", &["bash", "dash", "busybox"]) {
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/meho.toml");
    let config = Config::load(&path).unwrap();
    let lab = Lab::new(&[
        "git",
        "journalctl",
        "docker",
        "grep",
        "systemctl",
        "nginx",
        "uptime",
    ]);
    let pwn = lab.marker().display().to_string();
    let breakouts = [
        format!("git log $'a\\' ; touch {pwn} #\\'' 2>&1"),
        format!("journalctl -u $'x\\' ; touch {pwn} #\\''"),
        format!("journalctl $'\\' ; touch {pwn} #\\'' --no-pager"),
        format!("grep -c $'a\\' ; touch {pwn} #\\'' /var/log/syslog"),
        format!("systemctl status $'nginx\\' ; touch {pwn} #\\''"),
        format!("systemctl status nginx $'\\' ; touch {pwn} #\\''"),
        format!("docker ps $'\\' | touch {pwn} | \\'' | grep x"),
        format!("uptime \"中\\\" ; touch {pwn} ; #\""),
        "systemctl status nginx".to_owned(),
        "nginx -t 2>&1".to_owned(),
    ];
    let mut ran = 0;
    for (name, host) in &config.hosts {
        // A host without a restricting policy promises nothing about what runs (the agent could
        // send `touch` itself); the bastion is one.
        if !host.policy.policies.is_restricting() {
            continue;
        }
        for command in &breakouts {
            let decision = host.policy.decide(
                &Request {
                    command,
                    elevation: Elevation::None,
                    caller: "agent",
                    end_user: "",
                    now: 0,
                },
                Overlay::default(),
            );
            if decision.decision.refuses() {
                continue;
            }
            let force_command = decision.shape.force_command.unwrap();
            let want = expected_invocations(&shell::parse(command).unwrap());
            for shell in SHELLS {
                assert_eq!(
                    lab.run(shell, &force_command, "C.UTF-8"),
                    want,
                    "{} on {name} ran other words for `{command}` (`{force_command}`)",
                    shell.name
                );
            }
            ran += 1;
        }
    }
    assert!(
        ran >= 2,
        "the example should allow its own read-only commands"
    );
}
