//! Runs the POSIX form of fuzzed command lines under real bash and dash, and checks that the
//! programs receive exactly the decoded words (the longer run of the differential test in
//! `crates/meho-policy/tests/it/executors.rs`).
//!
//! Every command's program is replaced by a stand-in, `w` (exits 0) or `f` (exits 1), shell
//! functions that log their name and arguments, so a fuzzed line can never run a real program;
//! its other words, operators and fd dups are kept (dups a run cannot honour are dropped).
#![no_main]

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use meho_policy::shell::{self, CommandLine, Operator};

const STAND_INS: &str = "w() { printf '%s\\0' w \"$#\" \"$@\" >>\"$LOG\"; return 0; }\n\
                         f() { printf '%s\\0' f \"$#\" \"$@\" >>\"$LOG\"; return 1; }\n";

type Invocation = Vec<Vec<u8>>;

/// Lines that reached the shells (the rest were skipped), reported every 1,000 on stderr.
static EXECUTED: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = shell::parse(line) else {
        return;
    };
    let parsed = with_stand_ins(parsed);
    let want = expected(&parsed);
    let script = format!("{STAND_INS}{}\n", parsed.to_posix());
    for shell in ["bash", "dash"] {
        let got = run(shell, &script);
        assert_eq!(got, want, "{shell} ran other words for {line:?}: {script:?}");
    }
    let executed = EXECUTED.fetch_add(1, Ordering::Relaxed) + 1;
    if executed.is_power_of_two() || executed % 10_000 == 0 {
        eprintln!("serialize_exec: {executed} lines run under bash and dash");
    }
});

/// `line` with every command's program replaced by a stand-in (`f` for names starting with `f`,
/// else `w`), its other words kept, so a fuzzed line can only ever run the stand-ins; and with
/// only the fd dups every run can honour (onto 0–2, never onto a fd the command closed, never
/// closing stdout), since a dup onto a closed fd is a runtime error in every shell alike.
fn with_stand_ins(mut line: CommandLine) -> CommandLine {
    for command in &mut line.commands {
        let stand_in = if command.words().next().is_some_and(|w| w.starts_with('f')) {
            "f"
        } else {
            "w"
        };
        let mut text = String::from(stand_in);
        let mut words = vec![0..stand_in.len()];
        for word in command.words().skip(1) {
            text.push(' ');
            let start = text.len();
            text.push_str(word);
            words.push(start..text.len());
        }
        let mut closed = Vec::new();
        command.redirects.retain(|dup| match dup.target {
            Some(target) => target <= 2 && !closed.contains(&target),
            None if dup.fd == 1 => false,
            None => {
                closed.push(dup.fd);
                true
            }
        });
        command.text = text;
        command.words = words;
    }
    line
}

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
