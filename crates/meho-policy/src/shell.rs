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
//!
//! The words are decoded as bash decodes them, but the host may run the line with another shell:
//! sshd hands a force-command to the account's login shell (dash is `/bin/sh` on Debian and
//! Ubuntu), and elevated compound lines run under `/bin/sh -c`. dash has no `$'…'`, so the raw line
//! can mean something else there. The firewall therefore never sends the raw line of a line it
//! parsed: [`CommandLine::to_posix`] rebuilds it from the decoded words, each single-quoted where
//! needed, joined by the same operators and fd dups, in a form every POSIX shell reads the same
//! way. Words must be UTF-8 (a certificate option is a string) and free of control and bidi
//! characters (so what the approver reads is what runs); lines that break either rule are refused.

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
    /// A decoded word is not UTF-8 (from `$'\xff'` or an octal escape): it could not be carried
    /// into the force-command byte for byte.
    NonUtf8,
    /// A decoded word holds a control character other than tab (C0, DEL, C1) or a bidi control:
    /// it could redraw or reorder what an approver reads.
    ControlCharacter,
    /// A bash builtin in a form that runs code or assigns a variable named in its arguments
    /// (`printf -v`, `test -v`): array subscripts in a name run `$(…)` even when quoted.
    BuiltinForm {
        /// The builtin as written.
        name: String,
        /// The option that makes it run code or assign.
        option: &'static str,
    },
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
    /// `let`, `read`, `unset`, `compgen`, …: bash builtins that evaluate a quoted argument as code
    /// (array subscripts are arithmetic, which runs `$(…)`) or assign variables.
    Builtin,
}

impl Argv0Class {
    fn as_str(self) -> &'static str {
        match self {
            Argv0Class::Shell => "argv0-shell",
            Argv0Class::Wrapper => "argv0-wrapper",
            Argv0Class::Privilege => "argv0-privilege",
            Argv0Class::Source => "argv0-source",
            Argv0Class::Interpreter => "argv0-interpreter",
            Argv0Class::Builtin => "argv0-builtin",
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
            ShellError::NonUtf8 => "non-utf8",
            ShellError::ControlCharacter => "control-character",
            ShellError::BuiltinForm { name, option } => {
                return format!("builtin-option:{name}{option}");
            }
            ShellError::ReservedWord(word) => return format!("reserved-word:{word}"),
            ShellError::Argv0 { class, name } => return format!("{}:{name}", class.as_str()),
        };
        fixed.to_owned()
    }
}

/// The operator between two simple commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `|`: stdout into the next command's stdin.
    Pipe,
    /// `|&`: stdout and stderr into the next command's stdin (bash only; written `2>&1 |`).
    PipeAll,
    /// `&&`: the next command runs if this one succeeded.
    And,
    /// `||`: the next command runs if this one failed.
    Or,
    /// `;`: the next command runs after this one.
    Sequence,
}

impl Operator {
    /// The operator as every POSIX shell reads it.
    fn posix(self) -> &'static str {
        match self {
            Operator::Pipe => "|",
            Operator::PipeAll => "2>&1 |",
            Operator::And => "&&",
            Operator::Or => "||",
            Operator::Sequence => ";",
        }
    }
}

/// An fd dup or close (`2>&1`, `>&-`, `3<&0`): the only redirects in the subset. Single-digit fds
/// only, because dash reads `10>&1` as the word `10` followed by `>&1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdDup {
    /// The fd being redirected (`2` in `2>&1`; `1` for a bare `>&`, `0` for a bare `<&`).
    pub fd: u8,
    /// `b'>'` or `b'<'`, as written. With an explicit fd both mean `dup2(target, fd)`.
    pub direction: u8,
    /// The fd duplicated, or `None` for `-` (close `fd`).
    pub target: Option<u8>,
}

/// One simple command: its decoded words, joined by single spaces as the regexes see them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimpleCommand {
    /// The decoded words joined by single spaces. Always UTF-8 without control characters: the
    /// parser refuses words that are not.
    pub text: String,
    /// Where each word sits in `text`.
    pub words: Vec<Range<usize>>,
    /// The fd dups and closes, in the order written (which is the order they apply in).
    pub redirects: Vec<FdDup>,
}

impl SimpleCommand {
    /// The decoded words.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.words
            .iter()
            .map(|range| self.text.get(range.clone()).unwrap_or_default())
    }

    /// Whether the command carries an fd dup or close (`2>&1`). It then cannot be run as plain argv.
    pub fn has_redirect(&self) -> bool {
        !self.redirects.is_empty()
    }

    /// Appends the command in POSIX form: each word quoted (see [`quote`]; the first word also
    /// when a shell would read it as a reserved word or an assignment), then the fd dups.
    pub fn write_posix(&self, out: &mut String) {
        for (index, word) in self.words().enumerate() {
            if index > 0 {
                out.push(' ');
            }
            if index == 0 {
                quote_command_name(word, out);
            } else {
                quote(word, out);
            }
        }
        for dup in &self.redirects {
            out.push(' ');
            out.push(char::from(b'0' + dup.fd));
            out.push(char::from(dup.direction));
            out.push('&');
            match dup.target {
                Some(target) => out.push(char::from(b'0' + target)),
                None => out.push('-'),
            }
        }
    }
}

/// A command line within the verifiable subset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandLine {
    /// The simple commands in order.
    pub commands: Vec<SimpleCommand>,
    /// The operator after each command but the last: `operators[i]` joins `commands[i]` and
    /// `commands[i + 1]`. A trailing `;` is dropped.
    pub operators: Vec<Operator>,
}

impl CommandLine {
    /// One simple command with no operator and no redirect: it can run as argv without a shell.
    pub fn as_static_argv(&self) -> Option<&SimpleCommand> {
        match self.commands.as_slice() {
            [only] if !only.has_redirect() && !only.words.is_empty() => Some(only),
            _ => None,
        }
    }

    /// The line rebuilt from its structure, for any POSIX shell (bash, dash, busybox sh, ksh,
    /// zsh): every decoded word quoted, the operators and fd dups in POSIX spelling. Whichever of
    /// these shells parses it hands each program exactly the words the firewall matched; the raw
    /// line is never sent, because shells disagree on it (`$'…'` is not POSIX).
    pub fn to_posix(&self) -> String {
        let mut out = String::with_capacity(
            self.commands
                .iter()
                .map(|c| c.text.len() + 8)
                .sum::<usize>(),
        );
        for (index, command) in self.commands.iter().enumerate() {
            if index > 0 {
                let operator = self
                    .operators
                    .get(index - 1)
                    .copied()
                    .unwrap_or(Operator::Sequence);
                out.push(' ');
                out.push_str(operator.posix());
                out.push(' ');
            }
            command.write_posix(&mut out);
        }
        out
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
    /// The simple command being built. Bytes until it is closed, because a `$'\xNN'` escape can
    /// produce any byte; [`Lexer::end_command`] checks that the result is clean UTF-8.
    current: Vec<u8>,
    words: Vec<Range<usize>>,
    redirects: Vec<FdDup>,
    /// The word being built: start offset in `current`, whether any part was quoted, and
    /// whether it is so far only unquoted ASCII digits (a candidate fd number for `2>&1`).
    word: Option<WordState>,
    /// The operator that closed the last command, to record once another command follows.
    pending: Option<Operator>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Terminator {
    /// `|`, `|&`, `&&`, `||`, `;`.
    Operator(Operator),
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
            current: Vec::new(),
            words: Vec::new(),
            redirects: Vec::new(),
            word: None,
            pending: None,
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
                    let (operator, len) = match self.peek(1) {
                        Some(b'|') => (Operator::Or, 2),
                        Some(b'&') => (Operator::PipeAll, 2),
                        _ => (Operator::Pipe, 1),
                    };
                    self.end_command(Terminator::Operator(operator))?;
                    self.pos += len;
                }
                b'&' => match self.peek(1) {
                    Some(b'&') => {
                        self.finish_word()?;
                        self.end_command(Terminator::Operator(Operator::And))?;
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
                    self.end_command(Terminator::Operator(Operator::Sequence))?;
                    self.pos += 1;
                }
                b'<' | b'>' => self.redirect(byte)?,
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
        let has_words = !self.words.is_empty();
        let word = self.word.get_or_insert_with(|| {
            if has_words {
                current.push(b' ');
            }
            WordState {
                start: current.len(),
                quoted_from: None,
                digits_only: true,
            }
        });
        if quoted {
            word.quoted_from.get_or_insert(current.len());
            word.digits_only = false;
        }
        word
    }

    fn push_unquoted(&mut self, byte: u8) {
        let word = self.begin_word(false);
        word.digits_only &= byte.is_ascii_digit();
        self.current.push(byte);
    }

    fn finish_word(&mut self) -> Result<(), ShellError> {
        let Some(word) = self.word.take() else {
            return Ok(());
        };
        let range = word.start..self.current.len();
        let first = self.words.is_empty();
        self.words.push(range.clone());
        if first {
            let text = self.current.get(range).unwrap_or_default();
            let unquoted_prefix = word.quoted_from.map_or(text.len(), |at| at - word.start);
            check_argv0(text, unquoted_prefix)?;
        }
        Ok(())
    }

    /// Closes the simple command at an operator or at the end of the line.
    fn end_command(&mut self, terminator: Terminator) -> Result<(), ShellError> {
        let text = std::mem::take(&mut self.current);
        let words = std::mem::take(&mut self.words);
        let redirects = std::mem::take(&mut self.redirects);
        if words.is_empty() {
            // `ls;` is the only empty command bash accepts: after a `;`, at the end of the line.
            let trailing_semicolon = terminator == Terminator::End
                && self.pending == Some(Operator::Sequence)
                && !self.line.commands.is_empty();
            if !redirects.is_empty() || !trailing_semicolon {
                return Err(ShellError::Syntax);
            }
            return Ok(());
        }
        let text = String::from_utf8(text).map_err(|_| ShellError::NonUtf8)?;
        if has_control_character(&text) {
            return Err(ShellError::ControlCharacter);
        }
        let command = SimpleCommand {
            text,
            words,
            redirects,
        };
        check_builtin_form(&command)?;
        if let Some(operator) = self.pending.take() {
            self.line.operators.push(operator);
        }
        self.line.commands.push(command);
        if let Terminator::Operator(operator) = terminator {
            self.pending = Some(operator);
        }
        Ok(())
    }

    /// `<`, `>` and their forms. Only `[n]>&m`, `[n]<&m` and `[n]>&-` pass, with one-digit fds.
    fn redirect(&mut self, direction: u8) -> Result<(), ShellError> {
        if self.peek(1) == Some(b'(') {
            return Err(ShellError::ProcessSubstitution);
        }
        // A word of bare digits right before the operator is the fd number, not an argument.
        let mut fd = None;
        if let Some(word) = self.word {
            if word.digits_only {
                self.word = None;
                let digits = self.current.get(word.start..).unwrap_or_default();
                fd = Some(single_digit(digits).ok_or(ShellError::Redirect)?);
                self.current.truncate(word.start);
                if !self.words.is_empty() {
                    self.current.pop();
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
        let target = if target == b"-" {
            None
        } else {
            Some(single_digit(target).ok_or(ShellError::Redirect)?)
        };
        self.redirects.push(FdDup {
            fd: fd.unwrap_or(if direction == b'<' { 0 } else { 1 }),
            direction,
            target,
        });
        Ok(())
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
                        self.current.push(escaped);
                        self.pos += 2;
                    }
                    _ => {
                        self.current.push(b'\\');
                        self.pos += 1;
                    }
                },
                other => {
                    self.current.push(other);
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
                other => self.current.push(other),
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
            self.current.push(byte);
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
                self.current.push(byte);
            }
            b'x' => match self.hex_digits(2) {
                Some(0) => return Err(ShellError::AnsiCEscape),
                Some(value) => self.current.push((value & 0xff) as u8),
                None => self.current.extend_from_slice(b"\\x"),
            },
            b'u' | b'U' | b'c' => return Err(ShellError::AnsiCEscape),
            other => {
                self.current.push(b'\\');
                self.current.push(other);
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

const SOURCE: &[&str] = &[".", "source"];

/// The class of a program refused as argv0, by name (a `match`, so the hot path compares a few
/// bytes rather than scanning lists). Shells come first (`busybox` is one), then privilege tools,
/// wrappers, interpreters, and the code-running builtins:
///
/// Bash builtins that run code named in their arguments or assign variables. Every name a bash
/// builtin takes may carry an array subscript, and subscripts are arithmetic, which expands
/// `$(…)` even inside single quotes: `read 'a[$(id)]'`, `unset 'GROUPS[$(id)]'`, `let`,
/// `mapfile -C`, `compgen -C`/`-W` all run code the firewall never sees (each is checked against
/// real bash in the tests). `getopts` and `wait -p` assign; `jobs -x` and `fc` run commands; `bind`
/// and `complete` register code. None of them is of use in a one-shot line, so they are refused as
/// a class rather than option by option. `[[` is one too when quoted (busybox sh has it as a
/// builtin; bash reads it as a reserved word only unquoted). `printf -v` and `test -v` are
/// refused by form, see [`check_builtin_form`].
fn program_class(name: &str) -> Option<Argv0Class> {
    match name {
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "pdksh" | "csh" | "tcsh" | "fish"
        | "ash" | "rbash" | "yash" | "busybox" | "toybox" => Some(Argv0Class::Shell),
        "sudo" | "su" | "doas" | "pkexec" | "runuser" | "sg" | "newgrp" | "setpriv" | "capsh"
        | "sudoedit" => Some(Argv0Class::Privilege),
        "env" | "xargs" | "timeout" | "nohup" | "time" | "watch" | "nice" | "ionice" | "stdbuf"
        | "setsid" | "strace" | "ltrace" | "chroot" | "unshare" | "nsenter" | "flock" | "chrt"
        | "taskset" | "script" | "expect" | "exec" | "eval" | "command" | "builtin" | "trap"
        | "parallel" | "hash" | "enable" | "alias" | "systemd-run" | "run-parts" | "fakeroot"
        | "firejail" | "bwrap" | "valgrind" | "catchsegv" => Some(Argv0Class::Wrapper),
        "python" | "perl" | "ruby" | "awk" | "gawk" | "mawk" | "nawk" | "node" | "nodejs"
        | "php" | "lua" | "luajit" | "tclsh" | "wish" | "deno" | "bun" | "irb" | "jshell"
        | "pwsh" | "powershell" | "Rscript" | "R" | "julia" | "groovy" | "scala" | "guile"
        | "racket" | "sbcl" | "clisp" | "escript" | "elixir" | "iex" | "erl" | "ghci" | "ocaml"
        | "gdb" | "jrunscript" => Some(Argv0Class::Interpreter),
        "let" | "read" | "mapfile" | "readarray" | "unset" | "getopts" | "wait" | "compgen"
        | "complete" | "compopt" | "fc" | "history" | "bind" | "jobs" | "[[" => {
            Some(Argv0Class::Builtin)
        }
        _ => None,
    }
}

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
    let class = program_class(name).or_else(|| {
        (!base.is_empty() && base.len() < name.len())
            .then(|| program_class(base))
            .flatten()
    });
    match class {
        Some(class) => Err(argv0(class, name)),
        None => Ok(()),
    }
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

/// Refuses builtin forms that run code or assign: `printf -v NAME` (as the first argument, the only
/// place bash takes an option) and `test`/`[` with the `-v`/`-R` operators, which take a variable
/// name. Checked on every command, whatever path names it (`/usr/bin/printf` has no `-v`, but a
/// name that bash resolves to its builtin must not slip through, and refusing both costs nothing).
fn check_builtin_form(command: &SimpleCommand) -> Result<(), ShellError> {
    let mut words = command.words();
    let Some(first) = words.next() else {
        return Ok(());
    };
    let name = first.rsplit('/').next().unwrap_or(first);
    let refused = |option| {
        Err(ShellError::BuiltinForm {
            name: name.to_owned(),
            option,
        })
    };
    match name {
        "printf" if words.next().is_some_and(|arg| arg.starts_with("-v")) => refused("-v"),
        "test" | "[" => match words.find(|arg| matches!(*arg, "-v" | "-R")) {
            Some("-v") => refused("-v"),
            Some(_) => refused("-R"),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Whether `text` holds a character that could redraw or reorder what a human reads: a control
/// character other than tab, or a bidi control (see [`meho_core::display::is_deceptive`]).
fn has_control_character(text: &str) -> bool {
    // One pass over the bytes on the hot path (ASCII); characters only past a non-ASCII byte,
    // where C1 and bidi controls live.
    for (index, &byte) in text.as_bytes().iter().enumerate() {
        if byte >= 0x80 {
            return text
                .get(index..)
                .unwrap_or_default()
                .chars()
                .any(|c| c != '\t' && meho_core::display::is_deceptive(c));
        }
        if (byte < 0x20 && byte != b'\t') || byte == 0x7f {
            return true;
        }
    }
    false
}

/// A one-digit fd number: dash reads only `0`–`9` as an fd.
fn single_digit(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [digit @ b'0'..=b'9'] => Some(digit - b'0'),
        _ => None,
    }
}

/// Bytes a word may hold and still go unquoted: none has a meaning to any POSIX shell (or zsh)
/// inside a word.
fn is_safe_byte(b: u8) -> bool {
    SAFE_BYTES.get(usize::from(b)).copied().unwrap_or(false)
}

/// [`is_safe_byte`] as a table: the force-command is rebuilt on every allowed decision.
#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: an index out of range fails the build, never a call"
)]
const SAFE_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'_' | b'@' | b'%' | b'+' | b'=' | b':' | b',' | b'.' | b'/' | b'-'
            );
        b += 1;
    }
    table
};

/// Quotes `word` for a POSIX shell: bare when it holds only safe bytes (and does not start with
/// `=`, which zsh expands), single-quoted otherwise, with `'` written as `'"'"'` (close, a
/// double-quoted `'`, reopen). No backslash is ever produced: inside single quotes no byte but
/// `'` has a meaning, inside `"'"` nothing does, and neither `'` nor `"` is ever the second byte
/// of a multibyte character in any locale (GBK, Big5, Shift JIS, GB18030 included), so the
/// quoting holds whatever the host's locale. The form is also inside the subset this parser
/// verifies, so a rebuilt line decodes to the same words here as in every shell.
pub fn quote(word: &str, out: &mut String) {
    quote_unless_bare(word, true, out);
}

fn quote_unless_bare(word: &str, may_be_bare: bool, out: &mut String) {
    let bytes = word.as_bytes();
    let bare = may_be_bare
        && !bytes.is_empty()
        && bytes.first() != Some(&b'=')
        && bytes.iter().copied().all(is_safe_byte);
    if bare {
        out.push_str(word);
        return;
    }
    out.push('\'');
    for (index, part) in word.split('\'').enumerate() {
        if index > 0 {
            out.push_str("'\"'\"'");
        }
        out.push_str(part);
    }
    out.push('\'');
}

/// Whether some POSIX shell (or bash, ksh, zsh) reads `word` as reserved in command position.
fn is_reserved_anywhere(word: &str) -> bool {
    matches!(
        word,
        "case"
            | "do"
            | "done"
            | "elif"
            | "else"
            | "esac"
            | "fi"
            | "for"
            | "if"
            | "in"
            | "then"
            | "until"
            | "while"
            | "function"
            | "select"
            | "time"
            | "coproc"
            | "repeat"
            | "foreach"
            | "end"
            | "nocorrect"
            | "noglob"
    )
}

/// Quotes a command name: as [`quote`], and also when a shell would read the bare word as a
/// reserved word (`'if' x` decodes to the program `if`) or as an assignment (`'A=1' ls` runs the
/// program `A=1`).
fn quote_command_name(word: &str, out: &mut String) {
    let special = is_reserved_anywhere(word) || word.contains('=');
    quote_unless_bare(word, !special, out);
}
