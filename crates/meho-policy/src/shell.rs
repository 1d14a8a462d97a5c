//! The shell subset the command firewall can verify.
//!
//! A one-shot command reaches the host as a string that the account's shell parses. A regex over
//! that raw string can be fooled (`ls && rm -rf /` matches `^ls`), so with `shell_parse` on the
//! firewall splits the line the way bash would, and refuses every construct whose effect cannot be
//! read off the words: expansions, substitutions, file redirects, globs, assignments, compound
//! commands and wrappers that run another program.
//!
//! Why this is hand-written rather than a bash parser crate: a general parser accepts the whole
//! language and hands back an AST whose every node kind we would then have to classify, so any node
//! kind added upstream would be accepted until someone noticed. Here the accepted language is an
//! explicit allowlist (words, three quote forms, `|`, `|&`, `&&`, `||`, `;`, fd dups); any byte
//! with shell meaning outside it is refused by construction. It also keeps a decision well under the
//! 2 µs budget, which a general parser cannot. The differential tests in `tests/it/shell.rs` check
//! the words against real bash.

use std::ops::Range;

/// Why a command line left the verifiable subset. [`ShellError::reason`] is the suffix of the
/// decision rule `shell-parse:<reason>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellError {
    /// An opening `'`, `"` or `$'` has no closing quote.
    UnterminatedQuote,
    /// The operators do not form a command list (`ls &&`, `| ls`, `;;`).
    Syntax,
    /// A `$'…'` escape whose bytes depend on the host (`\u`, `\U`, `\c`: locale and bash version)
    /// or that yields NUL, which bash silently truncates at.
    AnsiCEscape,
    /// `$(…)` or backticks, quoted or not.
    CommandSubstitution,
    /// `<(…)` or `>(…)`.
    ProcessSubstitution,
    /// `$((…))` or `((…))`.
    Arithmetic,
    /// A redirect other than a dup or close to a numeric fd.
    Redirect,
    /// A `NAME=value` prefix, or `export`/`declare`/… as the command.
    Assignment,
    /// Any `$` expansion other than `$'…'` quoting.
    Expansion,
    /// An unquoted `*`, `?` or `[`.
    Glob,
    /// An unquoted `{` or `}`.
    Brace,
    /// An unquoted `~`.
    Tilde,
    /// An unquoted backslash.
    Backslash,
    /// An unquoted `(` or `)`.
    Subshell,
    /// A lone `&`.
    Background,
    /// A bash reserved word in command position.
    ReservedWord(String),
    /// A word that starts with an unquoted `#`.
    Comment,
    /// The command is a shell, a wrapper, a privilege tool, `source` or an interpreter.
    Argv0 {
        /// Which class of program it is.
        class: Argv0Class,
        /// The basename as written.
        name: String,
    },
}

/// The classes of programs refused as argv0: each one runs code that the firewall never sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Argv0Class {
    /// `sh`, `bash`, …: runs its arguments as a new command line.
    Shell,
    /// `env`, `xargs`, `timeout`, …: runs another program named in its arguments.
    Wrapper,
    /// `sudo`, `su`, …: elevation is decided by policy, never by the command line.
    Privilege,
    /// `.` and `source`: run a file as shell code.
    Source,
    /// `python`, `perl`, `awk`, …: run inline code.
    Interpreter,
}

impl Argv0Class {
    fn as_str(self) -> &'static str {
        match self {
            Argv0Class::Shell => "argv0-shell",
            Argv0Class::Wrapper => "argv0-wrapper",
            Argv0Class::Privilege => "argv0-privilege",
            Argv0Class::Source => "argv0-source",
            Argv0Class::Interpreter => "argv0-interpreter",
        }
    }
}

impl ShellError {
    /// The reason as it appears in the rule `shell-parse:<reason>`.
    pub fn reason(&self) -> String {
        let fixed = match self {
            ShellError::UnterminatedQuote => "unterminated-quote",
            ShellError::Syntax => "syntax",
            ShellError::AnsiCEscape => "ansi-c-escape",
            ShellError::CommandSubstitution => "command-substitution",
            ShellError::ProcessSubstitution => "process-substitution",
            ShellError::Arithmetic => "arithmetic",
            ShellError::Redirect => "redirect",
            ShellError::Assignment => "assignment",
            ShellError::Expansion => "expansion",
            ShellError::Glob => "glob",
            ShellError::Brace => "brace",
            ShellError::Tilde => "tilde",
            ShellError::Backslash => "backslash",
            ShellError::Subshell => "subshell",
            ShellError::Background => "background",
            ShellError::Comment => "comment",
            ShellError::ReservedWord(word) => return format!("reserved-word:{word}"),
            ShellError::Argv0 { class, name } => return format!("{}:{name}", class.as_str()),
        };
        fixed.to_owned()
    }
}

/// One simple command: its decoded words, joined by single spaces as the regexes see them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimpleCommand {
    /// The decoded words joined by single spaces. Bytes, because `$'\xff'` need not be UTF-8.
    pub text: Vec<u8>,
    /// Where each word sits in `text`.
    pub words: Vec<Range<usize>>,
    /// Whether the command carries an fd dup or close (`2>&1`). It then cannot be run as plain argv.
    pub has_redirect: bool,
}

impl SimpleCommand {
    /// The decoded words.
    pub fn words(&self) -> impl Iterator<Item = &[u8]> {
        self.words
            .iter()
            .map(|range| self.text.get(range.clone()).unwrap_or_default())
    }
}

/// A command line within the verifiable subset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandLine {
    /// The simple commands in order, whatever operators join them.
    pub commands: Vec<SimpleCommand>,
}

impl CommandLine {
    /// One simple command with no operator and no redirect: it can run as argv without a shell.
    pub fn as_static_argv(&self) -> Option<&SimpleCommand> {
        match self.commands.as_slice() {
            [only] if !only.has_redirect && !only.words.is_empty() => Some(only),
            _ => None,
        }
    }
}

/// Parses `line` as bash and checks that it stays within the verifiable subset.
///
/// The caller rejects `\n` and `\r` before this is reached; here they are a syntax error.
pub fn parse(line: &str) -> Result<CommandLine, ShellError> {
    Lexer::new(line).run()
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: CommandLine,
    current: SimpleCommand,
    /// The word being built: start offset in `current.text`, whether any part was quoted, and
    /// whether it is so far only unquoted ASCII digits (a candidate fd number for `2>&1`).
    word: Option<WordState>,
    /// The last command was closed by `;`, so an empty command at the end is fine.
    after_semicolon: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Terminator {
    /// `|`, `|&`, `&&`, `||`: another command must follow.
    Joined,
    /// `;`: another command may follow.
    Semicolon,
    /// The end of the line.
    End,
}

#[derive(Clone, Copy)]
struct WordState {
    start: usize,
    /// Offset in `text` where the first quoted part of the word begins, if any.
    quoted_from: Option<usize>,
    digits_only: bool,
}

/// Bytes that end an unquoted word.
fn is_meta(byte: u8) -> bool {
    matches!(
        byte,
        b' ' | b'\t' | b'|' | b'&' | b';' | b'<' | b'>' | b'(' | b')'
    )
}

impl<'a> Lexer<'a> {
    fn new(line: &'a str) -> Self {
        Lexer {
            src: line.as_bytes(),
            pos: 0,
            line: CommandLine::default(),
            current: SimpleCommand::default(),
            word: None,
            after_semicolon: false,
        }
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.pos + ahead).copied()
    }

    fn run(mut self) -> Result<CommandLine, ShellError> {
        while let Some(byte) = self.peek(0) {
            match byte {
                b' ' | b'\t' => {
                    self.finish_word()?;
                    self.pos += 1;
                }
                b'|' => {
                    self.finish_word()?;
                    let len = match self.peek(1) {
                        Some(b'|') | Some(b'&') => 2,
                        _ => 1,
                    };
                    self.end_command(Terminator::Joined)?;
                    self.pos += len;
                }
                b'&' => match self.peek(1) {
                    Some(b'&') => {
                        self.finish_word()?;
                        self.end_command(Terminator::Joined)?;
                        self.pos += 2;
                    }
                    Some(b'>') => return Err(ShellError::Redirect),
                    _ => return Err(ShellError::Background),
                },
                b';' => {
                    self.finish_word()?;
                    if self.peek(1) == Some(b';') {
                        return Err(ShellError::Syntax);
                    }
                    self.end_command(Terminator::Semicolon)?;
                    self.pos += 1;
                }
                b'<' | b'>' => self.redirect()?,
                b'(' if self.peek(1) == Some(b'(') => return Err(ShellError::Arithmetic),
                b'(' | b')' => return Err(ShellError::Subshell),
                b'`' => return Err(ShellError::CommandSubstitution),
                b'$' => self.dollar()?,
                b'\'' => self.single_quoted()?,
                b'"' => self.double_quoted()?,
                b'\\' => return Err(ShellError::Backslash),
                b'*' | b'?' | b'[' => return Err(ShellError::Glob),
                b'{' | b'}' => return Err(ShellError::Brace),
                b'~' => return Err(ShellError::Tilde),
                b'#' if self.word.is_none() => return Err(ShellError::Comment),
                b'\n' | b'\r' | 0 => return Err(ShellError::Syntax),
                _ => {
                    self.push_unquoted(byte);
                    self.pos += 1;
                }
            }
        }
        self.finish_word()?;
        self.end_command(Terminator::End)?;
        Ok(self.line)
    }

    fn begin_word(&mut self, quoted: bool) -> &mut WordState {
        let current = &mut self.current;
        let word = self.word.get_or_insert_with(|| {
            if !current.words.is_empty() {
                current.text.push(b' ');
            }
            WordState {
                start: current.text.len(),
                quoted_from: None,
                digits_only: true,
            }
        });
        if quoted {
            word.quoted_from.get_or_insert(current.text.len());
            word.digits_only = false;
        }
        word
    }

    fn push_unquoted(&mut self, byte: u8) {
        let word = self.begin_word(false);
        word.digits_only &= byte.is_ascii_digit();
        self.current.text.push(byte);
    }

    fn finish_word(&mut self) -> Result<(), ShellError> {
        let Some(word) = self.word.take() else {
            return Ok(());
        };
        let range = word.start..self.current.text.len();
        let first = self.current.words.is_empty();
        self.current.words.push(range.clone());
        if first {
            let text = self.current.text.get(range).unwrap_or_default();
            let unquoted_prefix = word.quoted_from.map_or(text.len(), |at| at - word.start);
            check_argv0(text, unquoted_prefix)?;
        }
        Ok(())
    }

    /// Closes the simple command at an operator or at the end of the line.
    fn end_command(&mut self, terminator: Terminator) -> Result<(), ShellError> {
        let command = std::mem::take(&mut self.current);
        if command.words.is_empty() {
            // `ls;` is the only empty command bash accepts: after a `;`, at the end of the line.
            let trailing_semicolon = terminator == Terminator::End
                && self.after_semicolon
                && !self.line.commands.is_empty();
            if command.has_redirect || !trailing_semicolon {
                return Err(ShellError::Syntax);
            }
            return Ok(());
        }
        self.line.commands.push(command);
        self.after_semicolon = terminator == Terminator::Semicolon;
        Ok(())
    }

    /// `<`, `>` and their forms. Only `[n]>&m`, `[n]<&m` and `[n]>&-` pass.
    fn redirect(&mut self) -> Result<(), ShellError> {
        if self.peek(1) == Some(b'(') {
            return Err(ShellError::ProcessSubstitution);
        }
        // A word of bare digits right before the operator is the fd number, not an argument.
        if let Some(word) = self.word {
            if word.digits_only {
                self.word = None;
                self.current.text.truncate(word.start);
                if !self.current.words.is_empty() {
                    self.current.text.pop();
                }
            } else {
                self.finish_word()?;
            }
        }
        if self.peek(1) != Some(b'&') {
            return Err(ShellError::Redirect);
        }
        self.pos += 2;
        while matches!(self.peek(0), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        let start = self.pos;
        while self.peek(0).is_some_and(|b| !is_meta(b)) {
            self.pos += 1;
        }
        let target = self.src.get(start..self.pos).unwrap_or_default();
        if target.is_empty() {
            return Err(ShellError::Syntax);
        }
        if target == b"-" || target.iter().all(u8::is_ascii_digit) {
            self.current.has_redirect = true;
            return Ok(());
        }
        Err(ShellError::Redirect)
    }

    fn dollar(&mut self) -> Result<(), ShellError> {
        match self.peek(1) {
            Some(b'(') if self.peek(2) == Some(b'(') => Err(ShellError::Arithmetic),
            Some(b'(') => Err(ShellError::CommandSubstitution),
            Some(b'\'') => self.ansi_c_quoted(),
            _ => Err(ShellError::Expansion),
        }
    }

    fn single_quoted(&mut self) -> Result<(), ShellError> {
        let body_start = self.pos + 1;
        let rest = self.src.get(body_start..).unwrap_or_default();
        let Some(len) = rest.iter().position(|&b| b == b'\'') else {
            return Err(ShellError::UnterminatedQuote);
        };
        self.begin_word(true);
        self.current
            .text
            .extend_from_slice(rest.get(..len).unwrap_or_default());
        self.pos = body_start + len + 1;
        Ok(())
    }

    fn double_quoted(&mut self) -> Result<(), ShellError> {
        self.begin_word(true);
        self.pos += 1;
        loop {
            let Some(byte) = self.peek(0) else {
                return Err(ShellError::UnterminatedQuote);
            };
            match byte {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'$' => {
                    return Err(match (self.peek(1), self.peek(2)) {
                        (Some(b'('), Some(b'(')) => ShellError::Arithmetic,
                        (Some(b'('), _) => ShellError::CommandSubstitution,
                        _ => ShellError::Expansion,
                    });
                }
                b'`' => return Err(ShellError::CommandSubstitution),
                b'\\' => match self.peek(1) {
                    Some(escaped @ (b'$' | b'`' | b'"' | b'\\')) => {
                        self.current.text.push(escaped);
                        self.pos += 2;
                    }
                    _ => {
                        self.current.text.push(b'\\');
                        self.pos += 1;
                    }
                },
                other => {
                    self.current.text.push(other);
                    self.pos += 1;
                }
            }
        }
    }

    /// `$'…'`: decoded as bash decodes it, so the regexes see the bytes the program receives.
    fn ansi_c_quoted(&mut self) -> Result<(), ShellError> {
        self.begin_word(true);
        self.pos += 2;
        loop {
            let Some(byte) = self.peek(0) else {
                return Err(ShellError::UnterminatedQuote);
            };
            self.pos += 1;
            match byte {
                b'\'' => return Ok(()),
                b'\\' => {
                    let Some(escape) = self.peek(0) else {
                        return Err(ShellError::UnterminatedQuote);
                    };
                    self.pos += 1;
                    self.ansi_c_escape(escape)?;
                }
                other => self.current.text.push(other),
            }
        }
    }

    fn ansi_c_escape(&mut self, escape: u8) -> Result<(), ShellError> {
        let simple = match escape {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'e' | b'E' => Some(0x1b),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' | b'\'' | b'"' | b'?' => Some(escape),
            _ => None,
        };
        if let Some(byte) = simple {
            self.current.text.push(byte);
            return Ok(());
        }
        match escape {
            b'0'..=b'7' => {
                let mut value = u32::from(escape - b'0');
                for _ in 0..2 {
                    match self.peek(0) {
                        Some(digit @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(digit - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                // bash keeps the low eight bits of an octal escape.
                let byte = (value & 0xff) as u8;
                if byte == 0 {
                    return Err(ShellError::AnsiCEscape);
                }
                self.current.text.push(byte);
            }
            b'x' => match self.hex_digits(2) {
                Some(0) => return Err(ShellError::AnsiCEscape),
                Some(value) => self.current.text.push((value & 0xff) as u8),
                None => self.current.text.extend_from_slice(b"\\x"),
            },
            b'u' | b'U' | b'c' => return Err(ShellError::AnsiCEscape),
            other => {
                self.current.text.push(b'\\');
                self.current.text.push(other);
            }
        }
        Ok(())
    }

    fn hex_digits(&mut self, max: usize) -> Option<u32> {
        let mut value: u32 = 0;
        let mut count = 0;
        while count < max {
            let digit = self.peek(0).and_then(|b| (b as char).to_digit(16))?;
            value = value.wrapping_mul(16).wrapping_add(digit);
            self.pos += 1;
            count += 1;
            if self
                .peek(0)
                .and_then(|b| (b as char).to_digit(16))
                .is_none()
            {
                break;
            }
        }
        (count > 0).then_some(value)
    }
}

/// Bash reserved words, less `time`: the issue classes it as a wrapper, and either way it is refused.
const RESERVED_WORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do",
    "done", "in", "function", "[[", "]]", "!", "coproc",
];

const ASSIGNMENT_BUILTINS: &[&str] = &["export", "declare", "typeset", "local", "readonly"];

const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "pdksh", "csh", "tcsh", "fish", "ash", "rbash",
    "yash", "busybox", "toybox",
];

const WRAPPERS: &[&str] = &[
    "env",
    "xargs",
    "timeout",
    "nohup",
    "time",
    "watch",
    "nice",
    "ionice",
    "stdbuf",
    "setsid",
    "strace",
    "ltrace",
    "chroot",
    "unshare",
    "nsenter",
    "flock",
    "chrt",
    "taskset",
    "script",
    "expect",
    "exec",
    "eval",
    "command",
    "builtin",
    "trap",
    "parallel",
    "hash",
    "enable",
    "alias",
    "systemd-run",
    "run-parts",
    "fakeroot",
    "firejail",
    "bwrap",
    "valgrind",
    "catchsegv",
];

const PRIVILEGE_TOOLS: &[&str] = &[
    "sudo", "su", "doas", "pkexec", "runuser", "sg", "newgrp", "setpriv", "capsh", "sudoedit",
];

const SOURCE: &[&str] = &[".", "source"];

const INTERPRETERS: &[&str] = &[
    "python",
    "perl",
    "ruby",
    "awk",
    "gawk",
    "mawk",
    "nawk",
    "busybox",
    "node",
    "nodejs",
    "php",
    "lua",
    "luajit",
    "tclsh",
    "wish",
    "deno",
    "bun",
    "irb",
    "jshell",
    "pwsh",
    "powershell",
    "Rscript",
    "R",
    "julia",
    "groovy",
    "scala",
    "guile",
    "racket",
    "sbcl",
    "clisp",
    "escript",
    "elixir",
    "iex",
    "erl",
    "ghci",
    "ocaml",
    "gdb",
    "jrunscript",
];

/// Checks the first word of a simple command: assignments, reserved words, and programs that run
/// code the firewall cannot see. `unquoted_prefix` is how many leading bytes were not quoted: bash
/// sees an assignment only when the name and `=` are unquoted, a reserved word only when all is.
fn check_argv0(word: &[u8], unquoted_prefix: usize) -> Result<(), ShellError> {
    let Ok(word) = std::str::from_utf8(word) else {
        return Ok(());
    };
    if word.find('=').is_some_and(|eq| eq < unquoted_prefix) && is_assignment(word) {
        return Err(ShellError::Assignment);
    }
    if unquoted_prefix == word.len() && RESERVED_WORDS.contains(&word) {
        return Err(ShellError::ReservedWord(word.to_owned()));
    }
    let name = word.rsplit('/').next().unwrap_or(word);
    if ASSIGNMENT_BUILTINS.contains(&name) {
        return Err(ShellError::Assignment);
    }
    if SOURCE.contains(&name) {
        return Err(argv0(Argv0Class::Source, name));
    }
    // Versioned forms (`python3.11`, `perl5.36`, `bash5`) are the same program.
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    let classes = [
        (SHELLS, Argv0Class::Shell),
        (PRIVILEGE_TOOLS, Argv0Class::Privilege),
        (WRAPPERS, Argv0Class::Wrapper),
        (INTERPRETERS, Argv0Class::Interpreter),
    ];
    for (names, class) in classes {
        if names.contains(&name) || (!base.is_empty() && names.contains(&base)) {
            return Err(argv0(class, name));
        }
    }
    Ok(())
}

fn argv0(class: Argv0Class, name: &str) -> ShellError {
    ShellError::Argv0 {
        class,
        name: name.to_owned(),
    }
}

/// `NAME=…` or `NAME+=…`, as bash recognises an assignment word.
fn is_assignment(word: &str) -> bool {
    let Some(eq) = word.find('=') else {
        return false;
    };
    let name = word.get(..eq).unwrap_or_default();
    let name = name.strip_suffix('+').unwrap_or(name);
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Quotes `word` for a POSIX shell: bare when it holds only safe bytes, single-quoted otherwise.
pub fn quote(word: &[u8], out: &mut String) {
    let safe = !word.is_empty()
        && word.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'@' | b'%' | b'+' | b'=' | b':' | b',' | b'.' | b'/' | b'-'
                )
        });
    let text = String::from_utf8_lossy(word);
    if safe {
        out.push_str(&text);
        return;
    }
    out.push('\'');
    out.push_str(&text.replace('\'', "'\\''"));
    out.push('\'');
}
