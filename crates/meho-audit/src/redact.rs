//! Secrets never reach the audit log in the clear: every string a record carries passes through a
//! [`Redactor`] before it is hashed and stored.

use std::borrow::Cow;

use regex::{Regex, RegexSet};
use serde_json::Value;

use crate::AuditError;
use crate::record::NewRecord;

/// The replacement for a configured pattern's match.
pub const REDACTED: &str = "[REDACTED]";

/// Built-in patterns: `(pattern, replacement)`. Replacements may use capture groups.
const BUILTIN: &[(&str, &str)] = &[
    // PEM and OpenSSH private keys, whole blocks (also a block cut off before its END line).
    (
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)",
        "[REDACTED:private-key]",
    ),
    // HTTP bearer tokens.
    (r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*", "$1 [REDACTED]"),
    // JWTs anywhere (three base64url parts, the first two JSON objects).
    (
        r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
        "[REDACTED:jwt]",
    ),
    // Passwords in URLs: scheme://user:password@host.
    (
        r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#\s@]*:)[^@/\s]+@",
        "${1}[REDACTED]@",
    ),
    // key=value / key: value secrets in command lines and configs.
    (
        r#"(?i)\b((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret)\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&"']+)"#,
        "${1}[REDACTED]",
    ),
    // AWS access key ids.
    (r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", "[REDACTED:aws-key-id]"),
];

/// Applies the built-in and configured redaction patterns.
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: Vec<(Regex, String)>,
    /// Every pattern in one automaton: a text none matches is scanned once, not once per rule
    /// (most strings of a large result hold no secret).
    any: RegexSet,
    /// The shortest text any pattern can match, in bytes: shorter texts are left alone unscanned.
    shortest: usize,
}

impl Redactor {
    /// The built-ins plus `extra` patterns, each of whose matches becomes `[REDACTED]`.
    pub fn new<S: AsRef<str>>(extra: &[S]) -> Result<Self, AuditError> {
        let mut rules = Vec::with_capacity(BUILTIN.len() + extra.len());
        for (pattern, replacement) in BUILTIN {
            let regex = Regex::new(pattern).map_err(|err| AuditError::Redaction {
                pattern: (*pattern).to_owned(),
                message: meho_core::display::regex_error(&err.to_string()),
            })?;
            rules.push((regex, (*replacement).to_owned()));
        }
        for pattern in extra {
            let pattern = pattern.as_ref();
            let regex = Regex::new(pattern).map_err(|err| AuditError::Redaction {
                pattern: pattern.to_owned(),
                message: meho_core::display::regex_error(&err.to_string()),
            })?;
            rules.push((regex, REDACTED.to_owned()));
        }
        let patterns: Vec<&str> = rules.iter().map(|(regex, _)| regex.as_str()).collect();
        let any = RegexSet::new(&patterns).map_err(|err| AuditError::Redaction {
            pattern: patterns.join(" | "),
            message: meho_core::display::regex_error(&err.to_string()),
        })?;
        // A pattern whose shortest match cannot be told (or is empty) makes every text a
        // candidate.
        let shortest = patterns
            .iter()
            .map(|pattern| {
                regex_syntax::parse(pattern)
                    .ok()
                    .and_then(|hir| hir.properties().minimum_len())
                    .unwrap_or(0)
            })
            .min()
            .unwrap_or(0);
        Ok(Redactor {
            rules,
            any,
            shortest,
        })
    }

    /// `text` with every secret replaced.
    pub fn redact_str<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if text.len() < self.shortest || !self.any.is_match(text) {
            return Cow::Borrowed(text);
        }
        let mut out = Cow::Borrowed(text);
        for (regex, replacement) in &self.rules {
            if let Cow::Owned(replaced) = regex.replace_all(&out, replacement.as_str()) {
                out = Cow::Owned(replaced);
            }
        }
        out
    }

    /// Redacts every string inside `value`, object keys included.
    pub fn redact_value(&self, value: &mut Value) {
        match value {
            Value::String(text) => {
                if let Cow::Owned(replaced) = self.redact_str(text) {
                    *text = replaced;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            Value::Object(map) => {
                // In place: the map is rebuilt only around a key that holds a secret (rare),
                // not for every object of a large result.
                let mut renamed = Vec::new();
                for (key, item) in map.iter_mut() {
                    self.redact_value(item);
                    if let Cow::Owned(replaced) = self.redact_str(key) {
                        renamed.push((key.clone(), replaced));
                    }
                }
                for (key, replaced) in renamed {
                    if let Some(item) = map.remove(&key) {
                        map.insert(replaced, item);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// Redacts every free-text field of a record: target, action, outcome and body.
    pub fn redact_record(&self, record: &mut NewRecord) {
        for field in [&mut record.target, &mut record.action, &mut record.outcome] {
            if let Some(text) = field
                && let Cow::Owned(replaced) = self.redact_str(text)
            {
                *text = replaced;
            }
        }
        self.redact_value(&mut record.body);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    /// The fast paths (the pattern set, the shortest match, keys renamed in place) change
    /// nothing: every text is redacted exactly as applying each rule in turn would.
    #[test]
    fn fast_paths_redact_exactly_what_the_rules_do() {
        let redactor = Redactor::new(&["tok-[0-9]+", "x"]).unwrap();
        let slow = |text: &str| {
            let mut out = text.to_owned();
            for (regex, replacement) in &redactor.rules {
                out = regex.replace_all(&out, replacement.as_str()).into_owned();
            }
            out
        };
        let texts = [
            "",
            "x",
            "ok",
            "password=hunter2",
            "tok-1",
            "Bearer abc.def",
            "clean text",
            "postgres://u:pw@h/db",
            "AKIAABCDEFGHIJKLMNOP",
            "a tok-22 b",
        ];
        for text in texts {
            assert_eq!(redactor.redact_str(text), slow(text), "{text:?}");
        }
        // Repeated texts, clean and not, in values and keys.
        let mut value = json!({
            "a": ["ok", "password=hunter2", "ok", "password=hunter2", "tok-1"],
            "password=k": {"password=k": "ok"},
            "ok": "ok",
        });
        redactor.redact_value(&mut value);
        assert_eq!(
            value,
            json!({
                "a": ["ok", "password=[REDACTED]", "ok", "password=[REDACTED]", "[REDACTED]"],
                "password=[REDACTED]": {"password=[REDACTED]": "ok"},
                "ok": "ok",
            })
        );
    }
}
