//! Human output of the CLI: tables, `name: value` details, text, times. Everything an agent or a
//! user could have chosen reaches the terminal through [`escape`], which turns control and bidi
//! characters into visible escapes (a raw ESC could redraw a row, U+202E reorder it); JSON output
//! goes through [`print_raw`] exactly as the server or the store gave it.

use std::io::Write as _;

use anyhow::Context as _;
use comfy_table::{Table, presets::UTF8_HORIZONTAL_ONLY};
use meho_core::display::escape;

use crate::Failure;

/// `text` with every control and bidi character escaped except the line breaks between its
/// lines: for output that is several lines by design (a table, details, pretty JSON) and whose
/// parts, where they came from data, were escaped already (a newline inside a value shows as
/// `\x0a`). Escaping is idempotent on escaped text, so this is a safety net, not a second pass
/// that changes anything.
pub(crate) fn escape_lines(text: &str) -> String {
    meho_core::display::escape_lines(text).into_owned()
}

/// Human output: `text` and a newline (unless it ends with one) on stdout, every control and
/// bidi character escaped but the line breaks ([`escape_lines`]).
pub(crate) fn print_text(text: &str) -> Result<(), Failure> {
    print_raw(&escape_lines(text))
}

/// `println!` that returns the write error instead of panicking: a closed pipe ends the command
/// quietly ([`closed_pipe`]). The only way the CLI prints to stdout (`clippy::print_stdout`).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that returns the write error instead of panicking (see [`outln!`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(&format!($($arg)*))
    };
}

/// Writes `text` exactly to stdout and flushes it.
pub(crate) fn write_stdout(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
    Ok(())
}

/// Whether `err` is a write to a reader that went away (EPIPE).
pub(crate) fn closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `text` exactly, and a newline (unless it ends with one), on stdout: for JSON only.
pub(crate) fn print_raw(text: &str) -> Result<(), Failure> {
    if text.ends_with('\n') {
        write_stdout(text)
    } else {
        write_stdout(&format!("{text}\n"))
    }
}

/// A table in the style of `meho audit query`. Every cell is escaped: a newline or tab in a
/// value would break its row, and an ESC could redraw it.
pub(crate) fn table<const N: usize>(header: [&str; N], rows: Vec<[String; N]>) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_HORIZONTAL_ONLY).set_header(header);
    for row in rows {
        table.add_row(row.map(|cell| escape(&cell).into_owned()));
    }
    table.to_string()
}

/// `name:  value` lines, aligned, for one object (`show`). Values are escaped, so each stays on
/// its own line and shows what it holds.
pub(crate) fn details(rows: Vec<(&str, String)>) -> String {
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0) + 1;
    rows.into_iter()
        .map(|(name, value)| format!("{:<width$}  {}", format!("{name}:"), escape(&value)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An RFC 3339 UTC time from the API to the second (any other text as it came), `-` for none.
pub(crate) fn time(value: Option<&str>) -> String {
    match value {
        None => "-".to_owned(),
        Some(text) => humantime::parse_rfc3339(text).map_or_else(
            |_| text.to_owned(),
            |at| humantime::format_rfc3339_seconds(at).to_string(),
        ),
    }
}

/// An optional text, `-` for none.
pub(crate) fn or_dash(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_owned(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_details_escape_every_value_and_print_text_every_line() {
        let table = table(
            ["a", "b"],
            vec![["x\u{1b}[2K".into(), "y\nz\u{202e}".into()]],
        );
        assert!(table.contains(r"x\x1b[2K"), "{table}");
        assert!(table.contains(r"y\x0az\u{202e}"), "{table}");
        let details = details(vec![("summary", "a\nfake: line\u{9b}".into())]);
        assert_eq!(details, r"summary:  a\x0afake: line\x9b");
        assert_eq!(
            escape_lines("one\u{1b}\ntwo\u{202e}\r\n"),
            "one\\x1b\ntwo\\u{202e}\\x0d\n"
        );
    }

    #[test]
    fn times_are_shown_to_the_second() {
        assert_eq!(
            time(Some("2026-11-25T17:03:04.123456Z")),
            "2026-11-25T17:03:04Z"
        );
        assert_eq!(time(None), "-");
        assert_eq!(time(Some("soon")), "soon");
    }
}
