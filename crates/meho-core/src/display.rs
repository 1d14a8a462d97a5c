//! Text shown to humans: escaping of the characters that let a string forge its own display.
//!
//! An agent controls command lines, paths and reasons, and those reach terminals (the operator
//! CLI), the console and chat webhooks. A raw ESC can erase or rewrite a table row, C1 controls
//! are terminal escapes too, and a bidi override reorders what follows it, so a held
//! `touch /etc/cron.d/x` can be drawn as a harmless `systemctl status`. Every human-facing
//! output passes agent text through [`escape`]; JSON output stays exact (machines read it).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a human's screen as itself: C0 controls (tab and newline
/// included, since they break a table row or fake a new line), DEL, C1 controls, the bidi
/// embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), the bidi marks
/// (U+200E, U+200F, U+061C) and the line and paragraph separators (U+2028, U+2029).
pub fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{061c}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// `text` with every [deceptive](is_deceptive) character replaced by a visible escape:
/// `\xHH` below U+0100 (`\x1b`, `\x7f`, `\x9b`), `\u{HHHH}` above (`\u{202e}`). Borrowed when
/// nothing needed escaping, which is the common case.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_deceptive) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_deceptive(c) {
            out.push(c);
        } else if u32::from(c) < 0x100 {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        }
    }
    Cow::Owned(out)
}

/// `text` of several lines by design (a diff, a preview): every line through [`escape`], the
/// line breaks (`\n`) between them kept. A carriage return is not a line break here (`\r\n`
/// shows its `\x0d`): a bare one would send the terminal back to the start of the line.
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && is_deceptive(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.split('\n').map(escape).collect::<Vec<_>>().join("\n"))
}

/// Like [`escape`], for bytes that may not be UTF-8: invalid sequences become `\xHH` per byte.
pub fn escape_bytes(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => escape(text),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                out.push_str(&escape(chunk.valid()));
                for byte in chunk.invalid() {
                    let _ = write!(out, "\\x{byte:02x}");
                }
            }
            Cow::Owned(out)
        }
    }
}

/// A `regex` crate error as one line. Its syntax errors are drawn over several lines (the
/// pattern, a caret under the place, then `error: …`), which a CLI that prefixes each line with
/// `error: ` turns into `error: error: …`. This keeps the message and names the place:
/// `unclosed group (at character 2)`. Anything else is joined with `; `.
pub fn regex_error(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let message = lines.iter().rev().find_map(|l| l.strip_prefix("error: "));
    let Some(message) = message else {
        return lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
    };
    // The drawing indents the pattern by four spaces; the first caret line marks the place.
    let place = lines
        .iter()
        .find(|l| !l.trim().is_empty() && l.trim().chars().all(|c| c == '^'))
        .and_then(|l| l.find('^'))
        .map(|column| column.saturating_sub(4) + 1);
    match place {
        Some(at) => format!("{message} (at character {at})"),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "systemctl status nginx — é 中";
        assert!(matches!(escape(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn controls_and_bidi_become_visible_escapes() {
        assert_eq!(escape("a\u{1b}[2Kb"), "a\\x1b[2Kb");
        assert_eq!(escape("tab\there\nnl\r"), "tab\\x09here\\x0anl\\x0d");
        assert_eq!(escape("del\u{7f} c1\u{9b}31m"), "del\\x7f c1\\x9b31m");
        assert_eq!(escape("x\u{202e}gnp.exe"), "x\\u{202e}gnp.exe");
        assert_eq!(
            escape("\u{2066}\u{2069}\u{200e}\u{200f}\u{61c}\u{2028}\u{2029}"),
            "\\u{2066}\\u{2069}\\u{200e}\\u{200f}\\u{061c}\\u{2028}\\u{2029}"
        );
        assert_eq!(escape("nul\0"), "nul\\x00");
    }

    #[test]
    fn every_deceptive_character_is_escaped_and_nothing_else_is() {
        for code in 0..=0x2fff_u32 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let shown = escape(&c.to_string()).into_owned();
            if is_deceptive(c) {
                assert!(shown.starts_with('\\'), "{code:#x} not escaped");
                assert!(!shown.chars().any(is_deceptive), "{code:#x}");
            } else {
                assert_eq!(shown, c.to_string(), "{code:#x} changed");
            }
        }
    }

    #[test]
    fn escape_lines_keeps_line_breaks_and_escapes_everything_else() {
        let text = "--- a\n+b\u{1b}[2K\n-c\u{202e}d\r\n";
        assert_eq!(escape_lines(text), "--- a\n+b\\x1b[2K\n-c\\u{202e}d\\x0d\n");
        assert!(matches!(escape_lines("a\nb\n"), Cow::Borrowed("a\nb\n")));
        assert_eq!(escape_lines(""), "");
    }

    #[test]
    fn invalid_utf8_bytes_are_shown_as_hex() {
        assert_eq!(escape_bytes(b"p \xff\x1b ok"), "p \\xff\\x1b ok");
        assert_eq!(escape_bytes("é".as_bytes()), "é");
    }

    #[test]
    fn regex_errors_become_one_line_naming_the_place() {
        // Built at run time: clippy rejects invalid regex literals.
        let unclosed = String::from("^(") + "rm";
        let err = regex::Regex::new(&unclosed).unwrap_err().to_string();
        assert!(err.contains('\n'), "{err}");
        assert_eq!(super::regex_error(&err), "unclosed group (at character 2)");
        let err = regex::Regex::new("a{99999999}").unwrap_err().to_string();
        let one = super::regex_error(&err);
        assert!(!one.contains('\n') && !one.starts_with("error"), "{one}");
        assert_eq!(super::regex_error("plain"), "plain");
    }
}
