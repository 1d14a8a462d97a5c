//! Runs the POSIX form of fuzzed command lines under real bash and dash, and checks that the
//! programs receive exactly the decoded words (the longer run of the differential test in
//! `crates/meho-policy/tests/it/executors.rs`).
//!
//! Only lines whose every command is one of the stand-ins `w` (exits 0) or `f` (exits 1), however
//! quoted, are executed: the stand-ins are shell functions that log their name and arguments, so
//! a fuzzed line can never run a real program. Everything else is skipped.
#![no_main]

use std::process::{Command, Stdio};

use libfuzzer_sys::fuzz_target;
use meho_policy::shell::{self, CommandLine, Operator};

const STAND_INS: &str = "w() { printf '%s\\0' w \"$#\" \"$@\" >>\"$LOG\"; return 0; }\n\
                         f() { printf '%s\\0' f \"$#\" \"$@\" >>\"$LOG\"; return 1; }\n";

type Invocation = Vec<Vec<u8>>;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = shell::parse(line) else {
        return;
    };
    if !parsed
        .commands
        .iter()
        .all(|c| matches!(c.words().next(), Some("w" | "f")))
    {
        return;
    }
    // Redirects may only dup onto fds every run has open (a closed target is a runtime error
    // in every shell alike, not a parse question).
    if parsed.commands.iter().any(|c| {
        let mut closed = Vec::new();
        c.redirects.iter().any(|dup| {
            let bad = dup.target.is_some_and(|t| t > 2 || closed.contains(&t))
                || (dup.target.is_none() && dup.fd == 1);
            if dup.target.is_none() {
                closed.push(dup.fd);
            }
            bad
        })
    }) {
        return;
    }
    let want = expected(&parsed);
    let script = format!("{STAND_INS}{}\n", parsed.to_posix());
    for shell in ["bash", "dash"] {
        let got = run(shell, &script);
        assert_eq!(
            got, want,
            "{shell} ran other words for {line:?}: {script:?}"
        );
    }
});

fn run(shell: &str, script: &str) -> Vec<Invocation> {
    let dir = std::env::temp_dir().join(format!("meho-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let log = dir.join("log");
    let _ = std::fs::remove_file(&log);
    let file = dir.join("script.sh");
    std::fs::write(&file, script).expect("write the script");
    let status = Command::new(shell)
        .arg(&file)
        .current_dir(&dir)
        .env("LOG", &log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run the shell");
    let _ = status;
    let bytes = std::fs::read(&log).unwrap_or_default();
    let mut fields = bytes.split(|&b| b == 0);
    let mut out = Vec::new();
    while let Some(name) = fields.next() {
        if name.is_empty() {
            break;
        }
        let argc: usize = std::str::from_utf8(fields.next().unwrap_or_default())
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or_default();
        let mut invocation = vec![name.to_vec()];
        for _ in 0..argc {
            invocation.push(fields.next().unwrap_or_default().to_vec());
        }
        out.push(invocation);
    }
    out.sort();
    out
}

/// The invocations POSIX and-or lists run when `w` exits 0 and `f` exits 1.
fn expected(line: &CommandLine) -> Vec<Invocation> {
    let mut status = 0;
    let mut out = Vec::new();
    let mut start = 0;
    let mut connector: Option<Operator> = None;
    for end in 0..line.commands.len() {
        let next = line.operators.get(end).copied();
        if matches!(next, Some(Operator::Pipe | Operator::PipeAll)) {
            continue;
        }
        let runs = match connector {
            Some(Operator::And) => status == 0,
            Some(Operator::Or) => status != 0,
            _ => true,
        };
        if runs {
            for command in &line.commands[start..=end] {
                out.push(command.words().map(|w| w.as_bytes().to_vec()).collect());
            }
            status = i32::from(line.commands[end].words().next() == Some("f"));
        }
        connector = next;
        start = end + 1;
    }
    out.sort();
    out
}
