//! Fuzzes the bash-subset lexer `meho_policy::shell::parse`.
//!
//! Input: arbitrary bytes; anything that is not UTF-8 is skipped (the API takes `&str`).
//! Besides "never panics, always terminates", every `Ok` result must satisfy:
//! - the line has at least one simple command, and no simple command is empty;
//! - every word range lies within `text` (`start <= end <= text.len()`);
//! - `text` is exactly the words joined by single spaces, and the ranges say so: the first word
//!   starts at 0, each next word starts one byte after the previous one ends, the last one ends at
//!   `text.len()`, and the byte between two words is `b' '`;
//! - parsing is deterministic, and `as_static_argv` / `quote` accept whatever parse returned;
//! - `text` is UTF-8 with no control character but tab (the type says so; this checks the parser
//!   refused the rest);
//! - the POSIX form round-trips: `parse(to_posix(line)) == line`, so the rebuilt force-command
//!   decodes to exactly the decided words, operators and fd dups (`serialize_exec` runs it under
//!   real shells).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meho_policy::shell::{self, CommandLine, FdDup, Operator};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = shell::parse(line) else {
        return;
    };

    assert!(!parsed.commands.is_empty(), "Ok with no command: {line:?}");
    for command in &parsed.commands {
        let text = &command.text;
        assert!(!command.words.is_empty(), "empty simple command: {line:?}");

        let mut expected_start = 0;
        for (index, range) in command.words.iter().enumerate() {
            assert!(
                range.start <= range.end && range.end <= text.len(),
                "word {index} range {range:?} outside text of {} bytes: {line:?}",
                text.len()
            );
            if index > 0 {
                assert_eq!(
                    text.as_bytes().get(expected_start - 1),
                    Some(&b' '),
                    "no single space before word {index}: {line:?}"
                );
            }
            assert_eq!(
                range.start, expected_start,
                "word {index} does not start right after the previous one: {line:?}"
            );
            expected_start = range.end + 1;
        }
        assert_eq!(
            expected_start - 1,
            text.len(),
            "text has bytes after the last word: {line:?}"
        );

        let joined = command
            .words
            .iter()
            .map(|range| text.get(range.clone()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(&joined, text, "text != words joined by ' ': {line:?}");
        assert_eq!(command.words().count(), command.words.len());
        assert!(
            !text
                .chars()
                .any(|c| c != '\t' && meho_core::display::is_deceptive(c)),
            "a control character passed: {line:?}"
        );

        let mut quoted = String::new();
        for word in command.words() {
            shell::quote(word, &mut quoted);
        }
    }
    assert_eq!(parsed.operators.len() + 1, parsed.commands.len());
    let _ = parsed.as_static_argv();
    let posix = parsed.to_posix();
    assert_eq!(
        shell::parse(&posix).as_ref(),
        Ok(&posix_shape(&parsed)),
        "the POSIX form decodes differently: {line:?} -> {posix:?}"
    );
    assert_eq!(
        shell::parse(line).as_ref(),
        Ok(&parsed),
        "parse is not deterministic: {line:?}"
    );
});

/// `line` as its POSIX form spells it: bash's `a |& b` is `a 2>&1 | b`.
fn posix_shape(line: &CommandLine) -> CommandLine {
    let mut shaped = line.clone();
    for (index, operator) in shaped.operators.iter_mut().enumerate() {
        if *operator == Operator::PipeAll {
            *operator = Operator::Pipe;
            if let Some(command) = shaped.commands.get_mut(index) {
                command.redirects.push(FdDup {
                    fd: 2,
                    direction: b'>',
                    target: Some(1),
                });
            }
        }
    }
    shaped
}
