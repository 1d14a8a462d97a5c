//! The shell subset: decoding tables, and differential checks of the words against real bash.

use std::io::Write as _;
use std::process::{Command, Stdio};

use meho_policy::shell::{self, ShellError};

use crate::rng::Rng;

fn words(line: &str) -> Vec<Vec<String>> {
    let parsed = shell::parse(line).unwrap_or_else(|e| panic!("`{line}` refused: {e:?}"));
    parsed
        .commands
        .iter()
        .map(|c| c.words().map(str::to_owned).collect())
        .collect()
}

fn reason(line: &str) -> String {
    match shell::parse(line) {
        Ok(parsed) => panic!("`{line}` accepted as {parsed:?}"),
        Err(err) => err.reason(),
    }
}

#[test]
fn decodes_quotes_and_splits_on_operators() {
    let table: &[(&str, &[&[&str]])] = &[
        ("ls -la", &[&["ls", "-la"]]),
        ("  ls\t -la  ", &[&["ls", "-la"]]),
        ("'l''s' -la", &[&["ls", "-la"]]),
        ("echo 'a  b' \"c d\"", &[&["echo", "a  b", "c d"]]),
        ("echo \"a\\$b\\\\c\\\"d\\e\"", &[&["echo", "a$b\\c\"d\\e"]]),
        ("echo $'\\x6cs\\t\\'\\101'", &[&["echo", "ls\t'A"]]),
        ("echo a'b'\"c\"$'d'", &[&["echo", "abcd"]]),
        ("echo ''", &[&["echo", ""]]),
        ("ls | wc -l", &[&["ls"], &["wc", "-l"]]),
        ("a && b || c; d", &[&["a"], &["b"], &["c"], &["d"]]),
        ("a|b|&c", &[&["a"], &["b"], &["c"]]),
        ("ls;", &[&["ls"]]),
        ("ls ; ", &[&["ls"]]),
        ("ls 2>&1 | grep x", &[&["ls"], &["grep", "x"]]),
        ("ls >&2", &[&["ls"]]),
        ("ls 2>&-", &[&["ls"]]),
        ("ls 3<&0", &[&["ls"]]),
        ("echo a#b ls=x", &[&["echo", "a#b", "ls=x"]]),
        ("'FOO=1' ls", &[&["FOO=1", "ls"]]),
        ("'if' x", &[&["if", "x"]]),
        ("echo ]", &[&["echo", "]"]]),
        ("echo é ü", &[&["echo", "é", "ü"]]),
        ("cut -d'\t' -f1", &[&["cut", "-d\t", "-f1"]]),
        ("echo $'\\xc3\\xa9'", &[&["echo", "é"]]),
        ("printf -- -v x", &[&["printf", "--", "-v", "x"]]),
        ("printf '%s' -v", &[&["printf", "%s", "-v"]]),
        ("test -n x", &[&["test", "-n", "x"]]),
    ];
    for (line, expected) in table {
        let expected: Vec<Vec<String>> = expected
            .iter()
            .map(|c| c.iter().map(|w| (*w).to_owned()).collect())
            .collect();
        assert_eq!(words(line), expected, "line `{line}`");
    }
}

#[test]
fn refuses_every_construct_outside_the_subset() {
    let table: &[(&str, &str)] = &[
        ("echo 'a", "unterminated-quote"),
        ("echo \"a", "unterminated-quote"),
        ("echo $'a", "unterminated-quote"),
        ("ls &&", "syntax"),
        ("| ls", "syntax"),
        ("ls ;; ls", "syntax"),
        ("; ls", "syntax"),
        ("ls | | wc", "syntax"),
        ("ls $(id)", "command-substitution"),
        ("ls `id`", "command-substitution"),
        ("ls \"`id`\"", "command-substitution"),
        ("ls \"$(id)\"", "command-substitution"),
        ("diff <(ls) x", "process-substitution"),
        ("tee >(cat)", "process-substitution"),
        ("echo $((1+2))", "arithmetic"),
        ("((x=1))", "arithmetic"),
        ("ls > /tmp/x", "redirect"),
        ("ls >> /tmp/x", "redirect"),
        ("ls 2>/dev/null", "redirect"),
        ("cat < /etc/passwd", "redirect"),
        ("cat <<EOF", "redirect"),
        ("cat <<< x", "redirect"),
        ("ls &> x", "redirect"),
        ("ls >&file", "redirect"),
        ("ls >| x", "redirect"),
        ("ls <> x", "redirect"),
        ("FOO=1 ls", "assignment"),
        ("FOO+=1 ls", "assignment"),
        ("FOO=\"a b\" ls", "assignment"),
        ("export FOO=1", "assignment"),
        ("declare -x A", "assignment"),
        ("echo $HOME", "expansion"),
        ("echo ${x}", "expansion"),
        ("echo \"$HOME\"", "expansion"),
        ("echo $1", "expansion"),
        ("echo $\"x\"", "expansion"),
        ("echo $", "expansion"),
        ("ls *.log", "glob"),
        ("ls a?", "glob"),
        ("ls [ab]", "glob"),
        ("echo {a,b}", "brace"),
        ("{ ls; }", "brace"),
        ("echo ~root", "tilde"),
        ("echo a=~/x", "tilde"),
        ("ls\\ -la", "backslash"),
        ("echo \\$HOME", "backslash"),
        ("(ls)", "subshell"),
        ("sleep 1 &", "background"),
        ("sleep 1 & ls", "background"),
        ("for x in a; do ls; done", "reserved-word:for"),
        ("if true", "reserved-word:if"),
        ("! ls", "reserved-word:!"),
        ("ls; #x", "comment"),
        ("# x", "comment"),
        ("sh -c id", "argv0-shell:sh"),
        ("/bin/bash -c id", "argv0-shell:bash"),
        ("\"bash\" -c id", "argv0-shell:bash"),
        ("bash5 x", "argv0-shell:bash5"),
        ("ls | sh", "argv0-shell:sh"),
        ("env FOO=1 ls", "argv0-wrapper:env"),
        ("/usr/bin/env ls", "argv0-wrapper:env"),
        ("xargs rm", "argv0-wrapper:xargs"),
        ("time ls", "argv0-wrapper:time"),
        ("timeout 5 ls", "argv0-wrapper:timeout"),
        ("exec ls", "argv0-wrapper:exec"),
        ("eval ls", "argv0-wrapper:eval"),
        ("ls; sudo id", "argv0-privilege:sudo"),
        ("su -", "argv0-privilege:su"),
        (". ./x", "argv0-source:."),
        ("source x", "argv0-source:source"),
        ("python3 -c x", "argv0-interpreter:python3"),
        ("/usr/bin/python3.11 -c x", "argv0-interpreter:python3.11"),
        ("perl5.36 -e x", "argv0-interpreter:perl5.36"),
        ("awk 1", "argv0-interpreter:awk"),
        ("node -e x", "argv0-interpreter:node"),
        ("echo $'a\\x00b'", "ansi-c-escape"),
        ("echo $'a\\0b'", "ansi-c-escape"),
        ("echo $'a\\400'", "ansi-c-escape"),
        ("echo $'\\u0041'", "ansi-c-escape"),
        ("echo $'\\U0041'", "ansi-c-escape"),
        ("echo $'\\cA'", "ansi-c-escape"),
        // Bytes that are not UTF-8 cannot be carried into the force-command byte for byte.
        ("p $'\\xff'", "non-utf8"),
        ("p $'\\377'", "non-utf8"),
        ("p $'\\xc3'", "non-utf8"),
        // Control and bidi characters could redraw what an approver reads.
        ("echo $'\\e[2K'", "control-character"),
        ("echo $'a\\nb'", "control-character"),
        ("echo $'\\x7f'", "control-character"),
        ("echo $'\\xc2\\x9b'", "control-character"),
        ("echo '\u{1b}[1G'", "control-character"),
        ("touch 'x\u{202e}txt.sh'", "control-character"),
        ("echo \"\u{2066}\"", "control-character"),
        ("echo \u{9b}31m", "control-character"),
        // Builtins that run a quoted `$(…)` (array subscripts are arithmetic) or assign.
        ("let 'a[$(touch X)]=1'", "argv0-builtin:let"),
        ("read 'a[$(touch X)]'", "argv0-builtin:read"),
        ("ls | read x", "argv0-builtin:read"),
        ("mapfile -C 'touch X' -c 1", "argv0-builtin:mapfile"),
        ("readarray a", "argv0-builtin:readarray"),
        ("unset 'GROUPS[$(touch X)]'", "argv0-builtin:unset"),
        ("getopts a x", "argv0-builtin:getopts"),
        ("wait -p x", "argv0-builtin:wait"),
        ("compgen -W '$(touch X)'", "argv0-builtin:compgen"),
        ("complete -C 'touch X' ls", "argv0-builtin:complete"),
        ("fc -e 'touch X'", "argv0-builtin:fc"),
        ("jobs -x touch X", "argv0-builtin:jobs"),
        ("bind -x x", "argv0-builtin:bind"),
        ("printf -v 'a[$(touch X)]' x", "builtin-option:printf-v"),
        ("printf -vPATH /tmp", "builtin-option:printf-v"),
        ("/usr/bin/printf -v x y", "builtin-option:printf-v"),
        ("test -v 'a[$(touch X)]'", "builtin-option:test-v"),
        ("'[' -v 'a[$(touch X)]' ']'", "builtin-option:[-v"),
        ("/usr/bin/'[' -v x ']'", "builtin-option:[-v"),
        ("\"[\" x = y -o -v 'a[$(id)]' ']'", "builtin-option:[-v"),
        ("test -R x", "builtin-option:test-R"),
        // dash reads only one-digit fds: `10>&1` is the word `10` and `>&1` there.
        ("ls 10>&1", "redirect"),
        ("ls 2>&10", "redirect"),
    ];
    for (line, expected) in table {
        assert_eq!(reason(line), *expected, "line `{line}`");
    }
}

#[test]
fn refusals_are_values_not_panics_on_every_prefix() {
    // Every prefix of a tricky line is a value (accepted or refused), never a panic.
    let line = "echo $'\\x4' \"a\\\"b\" 'c' 2>&1 | grep -v x && ls; echo é";
    for end in (0..=line.len()).filter(|i| line.is_char_boundary(*i)) {
        let _ = shell::parse(&line[..end]);
    }
    assert!(matches!(shell::parse(""), Err(ShellError::Syntax)));
}

const FRAGMENTS: &[&str] = &[
    "a", "b", "-x", "--y=z", "=", ":", "%", "@", ",", ".", "/", "+", "^", "]", "!", "#", "é", " ",
    "  ", "\t", "'q s'", "\"d q\"", "\"a'b\"", "'a\"b'", "$'\\x41'", "$'\\t'", "$'\\\\'", "$'\\''",
    "$'\\101'", "$'\\x4'", "$'\\e'", "$'\\n'", "$'\\8'", "$'\\xg'", "\"\\$\"", "\"\\\"\"",
    "\"\\a\"", "\"\\\\\"", "''", "\"\"", "'", "\"", "\\", "x=1",
];

/// Runs `set -- LINE` in bash for each line and returns the positional parameters bash produced.
fn bash_words(lines: &[String]) -> Vec<Vec<Vec<u8>>> {
    let mut script = String::new();
    for line in lines {
        script.push_str(&format!("set -- {line}\nprintf '%s\\0' \"$#\" \"$@\"\n"));
    }
    let mut child = Command::new("bash")
        .arg("--norc")
        .arg("--noprofile")
        .arg("-s")
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("bash is required for the differential test");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "bash failed on the script");
    let mut fields = output.stdout.split(|&b| b == 0);
    let mut result = Vec::new();
    for _ in lines {
        let count: usize = std::str::from_utf8(fields.next().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        result.push(
            (0..count)
                .map(|_| fields.next().unwrap().to_vec())
                .collect(),
        );
    }
    result
}

#[test]
fn accepted_words_match_real_bash() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut lines = Vec::new();
    let mut ours = Vec::new();
    let mut generated = 0;
    while lines.len() < 1500 && generated < 200_000 {
        generated += 1;
        let mut line = String::from("w ");
        for _ in 0..(1 + rng.below(8)) {
            line.push_str(rng.pick(FRAGMENTS));
        }
        let Ok(parsed) = shell::parse(&line) else {
            continue;
        };
        let Some(command) = parsed.as_static_argv() else {
            continue;
        };
        ours.push(
            command
                .words()
                .map(|w| w.as_bytes().to_vec())
                .collect::<Vec<_>>(),
        );
        lines.push(line);
    }
    assert!(
        lines.len() >= 1000,
        "generator produced too few accepted lines"
    );
    let theirs = bash_words(&lines);
    for ((line, ours), theirs) in lines.iter().zip(&ours).zip(&theirs) {
        assert_eq!(
            ours,
            theirs,
            "words differ from bash for `{}`",
            line.escape_debug()
        );
    }
}
