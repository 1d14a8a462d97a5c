//! Keeps README.md and docs/*.md honest, read the way a user pastes from them:
//!
//! 1. every `meho …` and `cargo run -p meho -- …` command, in code blocks and in inline code,
//!    names subcommands and options that `meho SUBCOMMAND --help` lists;
//! 2. every ```toml block is a valid meho config (`meho config validate`), with the placeholder
//!    host key `"ssh-ed25519 AAAA…"` replaced by a real one; a block that is deliberately not one is
//!    preceded by `<!-- readme-test: skip -->`;
//! 3. the Quick start's walk-through (the blocks after `<!-- readme-test: walkthrough -->`) runs
//!    line by line, as written, against real peers: `meho serve --dev`, the sshd of
//!    `scripts/dev-sshd`, and the MCP Inspector CLI; and the `serve --dev` output the README shows
//!    (the block after `<!-- readme-test: serve-dev-output -->`) is what the server prints.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::peers;
use crate::support::{Daemon, free_port, os, ssh_keygen_available};
use crate::{HOST_KEY, MEHO_ENV, Workdir, stderr_of, stdout_of};

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// --- reading the documents ---------------------------------------------------------------------

/// A document: its path from the repository root and its text.
struct Doc {
    name: String,
    text: String,
}

/// README.md, then docs/*.md in name order.
fn docs() -> Vec<Doc> {
    let mut names = vec!["README.md".to_owned()];
    let mut more: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    more.sort();
    names.extend(more);
    names
        .into_iter()
        .map(|name| Doc {
            text: std::fs::read_to_string(root().join(&name)).unwrap(),
            name,
        })
        .collect()
}

/// What the line before a fenced block may ask of this test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// Not a config on purpose (a fragment): the TOML check leaves it alone.
    Skip,
    /// A step of the Quick start's walk-through: run as written.
    Walkthrough,
    /// What `meho serve --dev` prints.
    ServeDevOutput,
}

/// A fenced code block.
struct Block<'a> {
    doc: &'a str,
    /// The info string (`sh`, `toml`, …; empty when none).
    lang: String,
    marker: Option<Marker>,
    /// The lines inside the fences with their 1-based line numbers.
    lines: Vec<(usize, String)>,
}

/// An inline code span in prose.
struct Span {
    line: usize,
    text: String,
}

/// The fenced blocks and the inline code spans of `doc`.
fn parse(doc: &Doc) -> (Vec<Block<'_>>, Vec<Span>) {
    let mut blocks = Vec::new();
    let mut spans = Vec::new();
    let mut open: Option<Block<'_>> = None;
    let mut paragraph: Vec<(usize, &str)> = Vec::new();
    let mut previous = "";
    for (index, line) in doc.text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if let Some(block) = &mut open {
            if trimmed.starts_with("```") {
                blocks.push(open.take().unwrap());
            } else {
                block.lines.push((number, line.to_owned()));
            }
            continue;
        }
        if let Some(lang) = trimmed.strip_prefix("```") {
            spans.extend(inline_spans(&paragraph));
            paragraph.clear();
            open = Some(Block {
                doc: &doc.name,
                lang: lang.trim().to_owned(),
                marker: marker(&doc.name, number, previous),
                lines: Vec::new(),
            });
        } else if trimmed.is_empty() {
            spans.extend(inline_spans(&paragraph));
            paragraph.clear();
        } else {
            paragraph.push((number, line));
        }
        if !trimmed.is_empty() {
            previous = trimmed;
        }
    }
    assert!(open.is_none(), "{}: a code block is never closed", doc.name);
    spans.extend(inline_spans(&paragraph));
    (blocks, spans)
}

/// The marker `previous` (the last non-blank line before a fence) sets, if it is one.
fn marker(doc: &str, line: usize, previous: &str) -> Option<Marker> {
    let what = previous
        .strip_prefix("<!-- readme-test:")?
        .strip_suffix("-->")?
        .trim();
    Some(match what {
        "skip" => Marker::Skip,
        "walkthrough" => Marker::Walkthrough,
        "serve-dev-output" => Marker::ServeDevOutput,
        _ => panic!(
            "{doc}:{}: unknown marker `{previous}` (skip, walkthrough, serve-dev-output)",
            line - 1
        ),
    })
}

/// The inline code spans of one paragraph (a span may run over a line break).
fn inline_spans(paragraph: &[(usize, &str)]) -> Vec<Span> {
    let Some(&(first, _)) = paragraph.first() else {
        return Vec::new();
    };
    let text: Vec<char> = paragraph
        .iter()
        .map(|(_, line)| *line)
        .collect::<Vec<_>>()
        .join("\n")
        .chars()
        .collect();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i] != '`' {
            i += 1;
            continue;
        }
        let run = text[i..].iter().take_while(|c| **c == '`').count();
        let start = i + run;
        // The closing run has exactly as many backticks.
        let mut j = start;
        let mut end = None;
        while j < text.len() {
            if text[j] == '`' {
                let closing = text[j..].iter().take_while(|c| **c == '`').count();
                if closing == run {
                    end = Some(j);
                    break;
                }
                j += closing;
            } else {
                j += 1;
            }
        }
        let Some(end) = end else {
            i = start;
            continue;
        };
        let line = first + text[..start].iter().filter(|c| **c == '\n').count();
        let inner: String = text[start..end].iter().collect();
        spans.push(Span {
            line,
            text: inner.replace('\n', " ").trim().to_owned(),
        });
        i = end + run;
    }
    spans
}

/// A block's logical lines: `\`-continued lines joined, with the number of the first.
fn logical_lines(block: &Block<'_>) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (number, line) in &block.lines {
        let (start, mut text) = pending.take().unwrap_or((*number, String::new()));
        let trimmed = line.trim_end();
        if let Some(head) = trimmed.strip_suffix('\\') {
            text.push_str(head);
            text.push(' ');
            pending = Some((start, text));
        } else {
            text.push_str(trimmed);
            out.push((start, text));
        }
    }
    out.extend(pending);
    out
}

// --- shell words -------------------------------------------------------------------------------

/// A shell token: a word (quotes removed) or an operator that ends a simple command.
#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Operator,
}

/// Splits `line` roughly as a shell would: quotes and backslashes, operators (`|`, `;`, `&`,
/// parentheses, `$(`, backticks, redirections) and a comment starting at an unquoted `#` that
/// begins a word.
fn tokens(line: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let finish = |word: &mut String, in_word: &mut bool, out: &mut Vec<Token>| {
        if *in_word {
            out.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => {
                            if let Some(&n) = chars.peek()
                                && matches!(n, '"' | '\\' | '$' | '`')
                            {
                                word.push(n);
                                chars.next();
                            } else {
                                word.push('\\');
                            }
                        }
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            '#' if !in_word => break,
            '$' if chars.peek() == Some(&'(') => {
                finish(&mut word, &mut in_word, &mut out);
                chars.next();
                out.push(Token::Operator);
            }
            '|' | ';' | '&' | '(' | ')' | '`' | '<' | '>' => {
                finish(&mut word, &mut in_word, &mut out);
                out.push(Token::Operator);
            }
            c if c.is_whitespace() => finish(&mut word, &mut in_word, &mut out),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    finish(&mut word, &mut in_word, &mut out);
    out
}

/// The arguments of every `meho` command in `line`: `meho` at the start of a simple command
/// (after operators, `--` and `VAR=value` words), or `cargo run -p meho -- …`. Lines meho prints
/// (`meho listening on …`) are not commands.
fn meho_invocations(line: &str) -> Vec<Vec<String>> {
    const PRINTED: [&str; 4] = [
        "meho listening on ",
        "meho signer listening on ",
        "meho dev CA ",
        "meho console: ",
    ];
    if PRINTED.iter().any(|p| line.trim_start().starts_with(p)) {
        return Vec::new();
    }
    let tokens = tokens(line);
    let mut out = Vec::new();
    let mut at_start = true;
    let mut i = 0;
    while i < tokens.len() {
        let Token::Word(word) = &tokens[i] else {
            at_start = true;
            i += 1;
            continue;
        };
        let is_env = word.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        });
        let words_from = |from: usize| -> Vec<&str> {
            tokens[from..]
                .iter()
                .map_while(|t| match t {
                    Token::Word(w) => Some(w.as_str()),
                    Token::Operator => None,
                })
                .collect()
        };
        let cargo_run = words_from(i).starts_with(&["cargo", "run", "-p", "meho", "--"]);
        if at_start && (word == "meho" || cargo_run) {
            let skip = if cargo_run { 5 } else { 1 };
            let args: Vec<String> = words_from(i + skip)
                .into_iter()
                .map(str::to_owned)
                .collect();
            i += skip + args.len();
            // `… -- meho mcp` (a client starting meho) may follow.
            if let Some(dash) = args.iter().position(|a| a == "--") {
                out.extend(meho_invocations(&shell_join(&args[dash + 1..])));
            }
            out.push(args);
            at_start = false;
            continue;
        }
        at_start = (at_start && is_env) || word == "--";
        i += 1;
    }
    out
}

/// Words back into one line, each single-quoted.
fn shell_join(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

// --- 1. commands and options -----------------------------------------------------------------

/// What `meho PATH --help` lists.
struct Help {
    subcommands: Vec<String>,
    options: BTreeSet<String>,
}

/// `meho … --help`, asked once per subcommand path.
#[derive(Default)]
struct Cli {
    helps: BTreeMap<Vec<String>, Option<Help>>,
}

impl Cli {
    /// The help of `meho PATH`, or `None` when meho does not know it.
    fn help(&mut self, path: &[String]) -> Option<&Help> {
        self.helps
            .entry(path.to_vec())
            .or_insert_with(|| {
                let output = Command::new(env!("CARGO_BIN_EXE_meho"))
                    .args(path)
                    .arg("--help")
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                output
                    .status
                    .success()
                    .then(|| parse_help(&stdout_of(&output)))
            })
            .as_ref()
    }

    /// Checks one invocation's arguments; the complaint names the problem and what exists.
    fn check(&mut self, args: &[String]) -> Result<(), String> {
        let mut path: Vec<String> = Vec::new();
        for arg in args {
            if arg == "--" {
                break;
            }
            let shown = if path.is_empty() {
                "meho".to_owned()
            } else {
                format!("meho {}", path.join(" "))
            };
            let help = self
                .help(&path)
                .ok_or_else(|| format!("`{shown} --help` fails"))?;
            if let Some(flag) = flag_of(arg) {
                if !help.options.contains(flag) {
                    return Err(format!(
                        "`{shown}` has no option `{flag}`; `{shown} --help` lists {}",
                        help.options.iter().cloned().collect::<Vec<_>>().join(" ")
                    ));
                }
                continue;
            }
            if help.subcommands.is_empty() {
                continue; // a positional argument or an option's value
            }
            if help.subcommands.contains(arg) {
                path.push(arg.clone());
                continue;
            }
            if is_placeholder(arg) {
                return Ok(()); // `meho <cmd> --help`, `meho audit …`
            }
            return Err(format!(
                "`{shown}` has no subcommand `{arg}`; it has {}",
                help.subcommands.join(" ")
            ));
        }
        Ok(())
    }
}

/// The subcommands and options of a clap `--help` text.
fn parse_help(text: &str) -> Help {
    let mut subcommands = Vec::new();
    let mut options = BTreeSet::new();
    let mut section = "";
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if !line.starts_with(' ') {
            section = line.trim_end();
            continue;
        }
        // Commands are indented by two spaces and options by two or six (`-c, --config`,
        // `    --listen`); descriptions by more.
        let entry = line.trim_start();
        let indent = line.len() - entry.len();
        match section {
            "Commands:" if indent == 2 => {
                if let Some(name) = entry.split_whitespace().next() {
                    subcommands.push(name.to_owned());
                }
            }
            "Options:" if indent <= 6 && entry.starts_with('-') => {
                for part in entry.split([',', ' ']).take_while(|p| !p.starts_with('<')) {
                    if part.starts_with('-') && part.len() > 1 {
                        options.insert(part.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    Help {
        subcommands,
        options,
    }
}

/// `--name` or `-x` when `word` is an option (brackets of a usage line stripped, `=value` cut).
fn flag_of(word: &str) -> Option<&str> {
    let word = word
        .trim_start_matches(['[', '('])
        .trim_end_matches([']', ')', ',', '.', ':']);
    if let Some(long) = word.strip_prefix("--") {
        let name = long.split('=').next().unwrap_or_default();
        let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        return ok.then(|| &word[..2 + name.len()]);
    }
    let mut chars = word.chars();
    (chars.next() == Some('-')
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.next().is_none())
    .then_some(word)
}

/// A stand-in for a subcommand in prose: `<cmd>`, `…`, `CMD`.
fn is_placeholder(word: &str) -> bool {
    word.contains(['…', '<', '{'])
        || word.contains("...")
        || word.chars().all(|c| c.is_ascii_uppercase() || c == '_')
}

#[test]
fn every_meho_command_in_the_docs_names_real_subcommands_and_options() {
    let docs = docs();
    let mut cli = Cli::default();
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in &docs {
        let (blocks, spans) = parse(doc);
        let mut lines: Vec<(usize, String)> = spans
            .iter()
            // In a table, `\|` is a `|` inside a cell, e.g. `--tier read\|write`.
            .map(|span| (span.line, span.text.replace(r"\|", " ")))
            .collect();
        for block in blocks
            .iter()
            .filter(|b| matches!(b.lang.as_str(), "sh" | "bash" | "shell" | "console" | ""))
        {
            lines.extend(logical_lines(block));
        }
        for (line, text) in lines {
            for args in meho_invocations(&text) {
                checked += 1;
                if let Err(why) = cli.check(&args) {
                    problems.push(format!("{}:{line}: `{}`: {why}", doc.name, text.trim()));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the docs name meho commands or options that do not exist:\n{}",
        problems.join("\n")
    );
    // The parser found the commands (a broken one would pass by finding none).
    assert!(checked > 100, "only {checked} meho commands found");
}

#[test]
fn a_renamed_option_in_the_docs_is_named_with_its_line() {
    let doc = Doc {
        name: "TEST.md".to_owned(),
        text: "Prose: `meho audit\nquery --approval-id ID` shows it.\n\n```sh\n\
               export A=1\nB=2 meho approvals approve apr-1 --reason x --learn --ttl 2h\n\
               npx inspector --cli -- meho mcp --nope\nmeho sssh hosts\n\
               meho ssh exec web1 -- rm --recursive /   # after `--`: the remote command\n```\n"
            .to_owned(),
    };
    let (blocks, spans) = parse(&doc);
    let mut cli = Cli::default();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].line, 1);
    let args = &meho_invocations(&spans[0].text)[0];
    let why = cli.check(args).unwrap_err();
    assert!(
        why.contains("`meho audit query` has no option `--approval-id`")
            && why.contains("--approval "),
        "{why}"
    );
    let lines = logical_lines(&blocks[0]);
    let results: Vec<(usize, Vec<Result<(), String>>)> = lines
        .iter()
        .map(|(line, text)| {
            let checks = meho_invocations(text)
                .iter()
                .map(|a| cli.check(a))
                .collect();
            (*line, checks)
        })
        .collect();
    assert_eq!(results[0], (5, vec![]));
    assert_eq!(results[1], (6, vec![Ok(())]));
    assert_eq!(results[2].0, 7);
    assert!(
        matches!(&results[2].1[..], [Err(why)] if why.contains("`meho mcp` has no option `--nope`")),
        "{results:?}"
    );
    assert!(
        matches!(&results[3].1[..], [Err(why)] if why.contains("`meho` has no subcommand `sssh`")),
        "{results:?}"
    );
    assert_eq!(results[4].1, vec![Ok(())]);
}

// --- 2. TOML blocks ----------------------------------------------------------------------------

/// `text` with each `"/etc/…"` path pointing into `work` instead, where the file now exists: a
/// CA key (`meho ca init`) for a `path` key, an empty file otherwise. Validation checks that the
/// files a config names exist; the examples name files on a real machine.
fn with_files(work: &Workdir, text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_owned();
        let path = line
            .split_once("\"/etc/")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(path, _)| format!("/etc/{path}"));
        if let Some(path) = path {
            let local = work.path().join(path.trim_start_matches('/'));
            if !local.exists() {
                std::fs::create_dir_all(local.parent().unwrap()).unwrap();
                if line.trim_start().starts_with("path ") {
                    let output = work
                        .meho()
                        .args(["ca", "init", "--out"])
                        .arg(&local)
                        .output()
                        .unwrap();
                    assert!(output.status.success(), "{}", stderr_of(&output));
                } else {
                    std::fs::write(&local, "").unwrap();
                }
            }
            line = line.replacen(&path, &local.display().to_string(), 1);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn every_toml_block_in_the_docs_is_a_valid_config() {
    let docs = docs();
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in &docs {
        let (blocks, _) = parse(doc);
        for block in blocks.iter().filter(|b| b.lang == "toml") {
            let first = block.lines.first().map_or(0, |(n, _)| *n);
            if block.marker == Some(Marker::Skip) {
                continue;
            }
            let text: String = block
                .lines
                .iter()
                .map(|(_, line)| format!("{line}\n"))
                .collect();
            let text = text.replace("\"ssh-ed25519 AAAA…\"", &format!("\"{HOST_KEY}\""));
            let work = Workdir::new();
            let text = with_files(&work, &text);
            work.write("meho.toml", &text);
            let output = work
                .meho()
                .args(["config", "validate", "--config", "meho.toml"])
                .output()
                .unwrap();
            checked += 1;
            if !output.status.success() {
                problems.push(format!(
                    "{}:{first}: this ```toml block is not a valid meho config (its line 1 is \
                     line {first}; a deliberate fragment gets `<!-- readme-test: skip -->` before \
                     it):\n{}",
                    block.doc,
                    stderr_of(&output).trim_end()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked > 5, "only {checked} toml blocks found");
}

// --- 3. the walk-through -----------------------------------------------------------------------

/// What one walk-through line is expected to do.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// (Re)start `meho serve --dev`; its output is the README's.
    Serve,
    /// Start the throw-away sshd, whose snippet becomes meho.toml.
    DevSshd,
    /// A definition (`export`, a shell function) later lines rely on.
    Define,
    /// An `ssh_execute` that runs.
    Runs,
    /// An `ssh_execute` the firewall refuses.
    Denied,
    /// An `ssh_execute` held for a human: its id is `apr-…` from here on.
    Held,
    /// `approvals list` shows the held call.
    ListsPending,
    /// The agent approving its own call: 403 four_eyes.
    SelfApprovalRefused,
    /// The approver approving it.
    Approved,
    /// `approval_status` collects the result: the call runs now.
    Collected,
    /// `approval_status` again: it ran already.
    AlreadyRan,
    /// `audit query --approval` links the records.
    Audited,
    /// `scripts/dev-sshd stop`.
    SshdStopped,
}

/// The walk-through's command lines, in order, as the README has them (comments and continuation
/// lines aside), with what each must do.
const WALKTHROUGH: &[(&str, Step)] = &[
    ("meho serve --dev", Step::Serve),
    ("scripts/dev-sshd > meho.toml", Step::DevSshd),
    ("meho serve --dev", Step::Serve),
    (
        "export MEHO_SERVER=http://127.0.0.1:8080 MEHO_TOKEN=$(cat .meho/dev-token) \
         MEHO_APPROVER_TOKEN=$(cat .meho/dev-approver-token)",
        Step::Define,
    ),
    (
        "mcp_call() { npx @modelcontextprotocol/inspector --cli \"$MEHO_SERVER/mcp\" \
         --header \"Authorization: Bearer $MEHO_TOKEN\" --method tools/call --tool-name \"$@\"; }",
        Step::Define,
    ),
    (
        "mcp_call ssh_execute --tool-arg server=dev command=uptime",
        Step::Runs,
    ),
    (
        "mcp_call ssh_execute --tool-arg server=dev 'command=rm -rf /tmp/meho-demo'",
        Step::Denied,
    ),
    (
        "mcp_call ssh_execute --tool-arg server=dev 'command=touch /tmp/meho-demo'",
        Step::Held,
    ),
    ("meho approvals list --status pending", Step::ListsPending),
    (
        "meho approvals approve apr-… --reason \"my own call\"",
        Step::SelfApprovalRefused,
    ),
    (
        "MEHO_TOKEN=$MEHO_APPROVER_TOKEN meho approvals approve apr-… --reason \"trying meho\"",
        Step::Approved,
    ),
    (
        "mcp_call approval_status --tool-arg approval_id=apr-…",
        Step::Collected,
    ),
    (
        "mcp_call approval_status --tool-arg approval_id=apr-…",
        Step::AlreadyRan,
    ),
    ("meho audit query --approval apr-…", Step::Audited),
    ("scripts/dev-sshd stop", Step::SshdStopped),
];

/// The part of a shell line before its comment, with runs of blanks made one space.
fn command_part(line: &str) -> String {
    let mut out = String::new();
    let mut quote = None;
    let mut previous = ' ';
    for c in line.chars() {
        match (quote, c) {
            (None, '#') if previous.is_whitespace() => break,
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        out.push(c);
        previous = c;
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The README's walk-through lines (line number, command part), and the lines of its
/// `serve --dev` output block.
fn readme_walkthrough() -> (Vec<(usize, String)>, Vec<String>) {
    let docs = docs();
    let readme = &docs[0];
    let (blocks, _) = parse(readme);
    let steps = blocks
        .iter()
        .filter(|b| b.marker == Some(Marker::Walkthrough))
        .flat_map(logical_lines)
        .map(|(n, line)| (n, command_part(&line)))
        .filter(|(_, line)| !line.is_empty())
        .collect();
    let output = blocks
        .iter()
        .find(|b| b.marker == Some(Marker::ServeDevOutput))
        .expect("README.md has no `<!-- readme-test: serve-dev-output -->` block")
        .lines
        .iter()
        .map(|(_, l)| l.trim().to_owned())
        .collect();
    (steps, output)
}

#[test]
fn the_walkthrough_is_the_one_the_test_runs() {
    let (steps, _) = readme_walkthrough();
    for (i, (line, text)) in steps.iter().enumerate() {
        let expected = WALKTHROUGH.get(i).map(|(e, _)| *e);
        assert_eq!(
            Some(text.as_str()),
            expected,
            "README.md:{line}: walk-through line {} differs from what readme.rs runs; change \
             WALKTHROUGH with it",
            i + 1
        );
    }
    assert_eq!(
        steps.len(),
        WALKTHROUGH.len(),
        "README.md's walk-through ends before {:?}",
        WALKTHROUGH.get(steps.len())
    );
}

/// Whether `actual` is the README's `pattern` line, where `…` stands for anything.
fn matches_line(pattern: &str, actual: &str) -> bool {
    let mut pieces = pattern.split('…');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    for (i, piece) in pieces.iter().enumerate() {
        if i + 1 == pieces.len() {
            return rest.ends_with(piece);
        }
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Where the walk-through's `127.0.0.1:8080` really is, and the server behind it.
struct Served {
    daemon: Daemon,
    addr: String,
}

/// The throw-away sshd `scripts/dev-sshd` started in a work directory; killed by its pid if the
/// walk-through did not stop it.
struct DevSshd {
    pid_file: PathBuf,
}

impl DevSshd {
    fn pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        // Ours only: the process names this work directory's config.
        let config = self.pid_file.with_file_name("sshd_config");
        String::from_utf8_lossy(&cmdline)
            .contains(&*config.to_string_lossy())
            .then_some(pid)
    }
}

impl Drop for DevSshd {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

/// A walk-through in a fresh directory: the README's lines run there as a user would run them.
struct Walk {
    // Fields drop in order: the processes before the directory that names them.
    served: Option<Served>,
    sshd: Option<DevSshd>,
    work: Workdir,
    sshd_port: u16,
    definitions: Vec<String>,
    approval: Option<String>,
    /// The first start's output, which a restart repeats.
    first_lines: Option<Vec<String>>,
}

/// Runs before every line: `npx @modelcontextprotocol/inspector` is the pinned Inspector in
/// tests/peers (npx would download one).
const PREAMBLE: &str = r#"npx() {
    if [ "$1" != @modelcontextprotocol/inspector ]; then echo "readme test: npx $1 is not the Inspector" >&2; return 127; fi
    shift; "$MEHO_TEST_NODE" "$MEHO_TEST_INSPECTOR" "$@"
}"#;

impl Walk {
    fn new() -> Walk {
        let work = Workdir::new();
        std::os::unix::fs::symlink(root().join("scripts"), work.path().join("scripts")).unwrap();
        std::fs::create_dir(work.path().join("home")).unwrap();
        Walk {
            work,
            served: None,
            sshd: None,
            sshd_port: free_port(),
            definitions: Vec::new(),
            approval: None,
            first_lines: None,
        }
    }

    /// `line` with the README's placeholders made real: the server's address, the approval id.
    fn real(&self, line: &str) -> String {
        let mut line = line.to_owned();
        if let Some(served) = &self.served {
            line = line.replace("127.0.0.1:8080", &served.addr);
        }
        if let Some(id) = &self.approval {
            line = line.replace("apr-…", id);
        }
        line
    }

    /// Runs `line` with bash in the work directory, after the preamble and the definitions so far.
    fn shell(&self, line: &str) -> Output {
        let definitions: Vec<String> = self.definitions.iter().map(|d| self.real(d)).collect();
        let script = format!(
            "{PREAMBLE}\n{}\n{}",
            definitions.join("\n"),
            self.real(line)
        );
        let node = peers::node();
        let mut path = vec![
            Path::new(env!("CARGO_BIN_EXE_meho"))
                .parent()
                .unwrap()
                .to_path_buf(),
        ];
        if let Some(bin) = node.parent().filter(|p| !p.as_os_str().is_empty()) {
            path.push(bin.to_path_buf());
        }
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let mut command = Command::new("timeout");
        command
            .args(["120", "bash", "-c", &script])
            .current_dir(self.work.path())
            .env("PATH", std::env::join_paths(path).unwrap())
            .env("HOME", self.work.path().join("home"))
            .env("NO_COLOR", "1")
            .env("MEHO_TEST_NODE", &node)
            .env(
                "MEHO_TEST_INSPECTOR",
                peers::peers_dir().join("inspector/node_modules/.bin/mcp-inspector"),
            )
            .env("MEHO_DEV_SSHD_PORT", self.sshd_port.to_string())
            .env_remove("MEHO_APPROVER_TOKEN")
            .stdin(Stdio::null());
        for var in MEHO_ENV {
            command.env_remove(var);
        }
        command.output().unwrap()
    }

    /// Starts `meho serve --dev` (stopping the running one first), on a free port.
    fn serve(&mut self, readme_output: &[String]) {
        if let Some(mut old) = self.served.take() {
            let status = old.daemon.terminate();
            assert!(
                status.success(),
                "{status:?}; log:\n{}",
                old.daemon.log_text()
            );
        }
        // Read up to the line the README shows last (the part before its URL).
        let last = readme_output.last().expect("README.md shows no output");
        let last = last.split("http://").next().unwrap_or(last);
        let daemon = Daemon::start(
            &self.work,
            &[os("serve"), os("--dev"), os("--listen"), os("127.0.0.1:0")],
            last,
        );
        let lines = daemon.lines.clone();
        let addr = lines
            .iter()
            .find_map(|l| l.strip_prefix("meho listening on http://"))
            .unwrap_or_else(|| panic!("no listen line: {lines:?}"))
            .to_owned();
        let printed: Vec<String> = lines
            .iter()
            .map(|l| l.replace(&addr, "127.0.0.1:8080"))
            .collect();
        assert_eq!(
            printed.len(),
            readme_output.len(),
            "`meho serve --dev` printed {lines:?}; README.md shows {readme_output:?}"
        );
        for (shown, actual) in readme_output.iter().zip(&printed) {
            assert!(
                matches_line(shown, actual),
                "`meho serve --dev` printed `{actual}` where README.md shows `{shown}`"
            );
        }
        let state = self.work.path().join(".meho");
        for (prefix, file) in [
            ("MEHO_TOKEN=", "dev-token"),
            ("MEHO_APPROVER_TOKEN=", "dev-approver-token"),
        ] {
            let token = lines
                .iter()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in {lines:?}"));
            let path = state.join(file);
            assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), token);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
        }
        match &self.first_lines {
            // A restart keeps the CA and both tokens.
            Some(first) => assert_eq!(&printed, first),
            None => self.first_lines = Some(printed),
        }
        // `GET /` leads a browser to the console.
        let (status, head) = http_get(&addr, "/");
        assert!(
            (300..400).contains(&status),
            "GET / answered {status}: {head}"
        );
        assert!(
            head.lines().any(|l| {
                let l = l.to_ascii_lowercase();
                l.starts_with("location:") && l.trim_end().ends_with("/console/")
            }),
            "GET / does not redirect to /console/: {head}"
        );
        let (status, head) = http_get(&addr, "/console/");
        assert_eq!(status, 200, "{head}");
        self.served = Some(Served { daemon, addr });
    }

    /// `scripts/dev-sshd > meho.toml`, on another free port when the one picked was taken.
    fn dev_sshd(&mut self, line: &str) {
        let mut output = self.shell(line);
        for _retry in 0..4 {
            if output.status.success() || !stderr_of(&output).contains("Address already in use") {
                break;
            }
            self.sshd_port = free_port();
            output = self.shell(line);
        }
        // The script names its files by their real path (`cd DIR && pwd`).
        let real = std::fs::canonicalize(self.work.path()).unwrap();
        let sshd = DevSshd {
            pid_file: real.join(".meho/dev-sshd/sshd.pid"),
        };
        assert!(output.status.success(), "{line}: {}", stderr_of(&output));
        let pid = sshd.pid().expect("scripts/dev-sshd left no running sshd");
        self.sshd = Some(sshd);
        let config = std::fs::read_to_string(self.work.path().join("meho.toml")).unwrap();
        assert!(
            config.contains("[hosts.dev]")
                && config.contains(&format!("addr = \"127.0.0.1:{}\"", self.sshd_port)),
            "{config}"
        );
        let validated = self
            .work
            .meho()
            .args(["config", "validate", "--config", "meho.toml"])
            .output()
            .unwrap();
        assert!(validated.status.success(), "{}", stderr_of(&validated));
        // Running it again changes nothing.
        let again = self.shell(line);
        assert!(again.status.success(), "{}", stderr_of(&again));
        assert_eq!(
            std::fs::read_to_string(self.work.path().join("meho.toml")).unwrap(),
            config
        );
        assert_eq!(self.sshd.as_ref().unwrap().pid(), Some(pid));
    }

    fn run(&mut self, number: usize, line: &str, step: Step, readme_output: &[String]) {
        let at = format!("README.md:{number}: `{line}`");
        match step {
            Step::Serve => return self.serve(readme_output),
            Step::DevSshd => return self.dev_sshd(line),
            _ => {}
        }
        let output = self.shell(line);
        let (code, out, err) = (output.status.code(), stdout_of(&output), stderr_of(&output));
        let said = format!("{at}: exit {code:?}\nstdout: {out}\nstderr: {err}");
        let result = || -> Value {
            serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{said}\nnot JSON: {e}"))
        };
        match step {
            Step::Serve | Step::DevSshd => unreachable!(),
            Step::Define => {
                assert_eq!(code, Some(0), "{said}");
                self.definitions.push(line.to_owned());
            }
            Step::Runs => {
                assert_eq!(code, Some(0), "{said}");
                let result = result();
                assert_eq!(result["isError"], false, "{said}");
                assert_eq!(result["structuredContent"]["exit_code"], 0, "{said}");
                assert!(
                    result["structuredContent"]["stdout"]
                        .as_str()
                        .is_some_and(|s| s.contains(" up ")),
                    "{said}"
                );
            }
            Step::Denied => {
                assert_eq!(code, Some(5), "a tool error: {said}");
                let result = result();
                assert_eq!(result["isError"], true, "{said}");
                assert!(
                    result["content"][0]["text"].as_str().is_some_and(|t| t
                        .starts_with("denied: ")
                        && t.contains("allowlist_no_match")),
                    "{said}"
                );
            }
            Step::Held => {
                assert_eq!(code, Some(0), "{said}");
                let result = result();
                // The Inspector takes part in MCP Tasks: the held call is a task named by the
                // approval id; other clients get `pending_approval` with `approval_id`.
                let id = result["taskId"]
                    .as_str()
                    .or_else(|| result["structuredContent"]["approval_id"].as_str())
                    .filter(|id| id.starts_with("apr-"))
                    .unwrap_or_else(|| panic!("no approval id: {said}"));
                assert_eq!(result["status"], "working", "{said}");
                self.approval = Some(id.to_owned());
            }
            Step::ListsPending => {
                assert_eq!(code, Some(0), "{said}");
                let id = self.approval.as_deref().unwrap();
                assert!(
                    out.contains(id) && out.contains("touch /tmp/meho-demo"),
                    "{said}"
                );
            }
            Step::SelfApprovalRefused => {
                assert_eq!(code, Some(1), "{said}");
                for needle in ["403", "four_eyes", "MEHO_APPROVER_TOKEN"] {
                    assert!(err.contains(needle), "no `{needle}`: {said}");
                }
            }
            Step::Approved => {
                assert_eq!(code, Some(0), "{said}");
                assert!(
                    out.contains("approved") && out.contains("dev-approver"),
                    "{said}"
                );
            }
            Step::Collected => {
                assert_eq!(code, Some(0), "{said}");
                let result = result();
                let content = &result["structuredContent"];
                assert_eq!(content["status"], "executed", "{said}");
                assert_eq!(content["result"]["exit_code"], 0, "{said}");
            }
            Step::AlreadyRan => {
                assert_eq!(code, Some(5), "a tool error: {said}");
                assert_eq!(
                    result()["structuredContent"]["error"],
                    "approval_consumed",
                    "{said}"
                );
            }
            Step::Audited => {
                assert_eq!(code, Some(0), "{said}");
                // The request, both decisions, the certificate, the run and its consumption.
                for needle in [
                    "pending",
                    "refused_four_eyes",
                    "dev-approver",
                    "approved",
                    "issued",
                    "ssh_execute",
                    "consumed",
                ] {
                    assert!(out.contains(needle), "no `{needle}`: {said}");
                }
            }
            Step::SshdStopped => {
                assert_eq!(code, Some(0), "{said}");
                let sshd = self.sshd.as_ref().unwrap();
                let deadline = Instant::now() + Duration::from_secs(10);
                while sshd.pid().is_some() {
                    assert!(Instant::now() < deadline, "sshd still runs: {said}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

/// `GET path` on `addr`: the status and the response head.
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let head = response
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head)
}

#[test]
fn the_quick_start_walkthrough_runs_as_written() {
    let sshd_ok = Path::new("/usr/sbin/sshd").is_file() && ssh_keygen_available();
    if !peers::require(
        "the README walk-through: /usr/sbin/sshd and ssh-keygen (openssh-server; scripts/test installs it)",
        sshd_ok,
    ) || !peers::require(
        "the README walk-through: the MCP Inspector CLI peer (tests/peers/inspector; scripts/test installs it)",
        peers::inspector_available(),
    ) {
        return;
    }
    let (steps, readme_output) = readme_walkthrough();
    let mut walk = Walk::new();
    for (i, (number, line)) in steps.iter().enumerate() {
        let (expected, step) = WALKTHROUGH.get(i).copied().unwrap_or_else(|| {
            panic!("README.md:{number}: `{line}` is not a step readme.rs knows")
        });
        assert_eq!(
            line, expected,
            "README.md:{number}: see the_walkthrough_is_the_one_the_test_runs"
        );
        walk.run(*number, line, step, &readme_output);
    }
    let mut served = walk.served.take().unwrap();
    let status = served.daemon.terminate();
    assert!(
        status.success(),
        "{status:?}; log:\n{}",
        served.daemon.log_text()
    );
    // What the approved call created on this machine.
    let _ = std::fs::remove_file("/tmp/meho-demo");
}
