//! The message bodies: one pure function per format.
//!
//! Everything an agent or a requester chose (summary, target, command, …) is user data. In both
//! Slack and Teams, control and bidi characters become visible escapes first
//! (`meho_core::display::escape`: `\x1b`, `\u{202e}`), so a command cannot reorder or hide part
//! of what the approver reads. In Slack mrkdwn it is then escaped (`&`, `<`, `>`), so it cannot
//! open a link, a mention (`<!channel>`) or a user reference; in a Teams card the markdown link
//! syntax `](` is broken with an invisible zero-width space, so a command cannot render as a
//! clickable link to somewhere else. Long values are cut (with `…`) to stay inside Slack's and
//! Teams' size limits; the generic format is JSON for machines and carries everything unchanged.
//!
//! A held call's preview (what it would change, a diff) is several lines by design: each line is
//! escaped on its own (`meho_core::display::escape_lines`) and its first lines are shown, in a
//! Slack code block (Slack-escaped, its fences broken) or in Teams as one plain-text run per line
//! (a `TextRun` takes no markdown, so a `- ` line stays a diff line, not a list item), coloured
//! by its `+`/`-` sign.

use meho_core::display::{escape, escape_lines};
use serde_json::{Value, json};

use crate::{EVENT_PENDING, PendingApproval, WebhookFormat};

/// Most characters of the summary shown in Slack and Teams.
const SUMMARY_MAX: usize = 1000;
/// Most characters of a short field (target, requester, rule, …).
const FIELD_MAX: usize = 300;
/// Most characters of the command (Slack allows 3000 per section, fences included).
const COMMAND_MAX: usize = 2800;
/// Most characters of a preview shown in Slack and Teams (the console shows all of it).
const PREVIEW_MAX: usize = 2800;
/// Most lines of a preview shown in Slack and Teams.
const PREVIEW_LINES: usize = 40;
/// The label of a preview.
const PREVIEW_LABEL: &str = "Preview";
/// What a cut preview says after its label.
const PREVIEW_CUT: &str = "(first lines; the whole preview is in the console)";
/// The title of Slack and Teams messages.
const TITLE: &str = "Approval needed";
/// The label of the link to the console.
const OPEN_LABEL: &str = "Review in console";
/// The Adaptive Card schema.
const CARD_SCHEMA: &str = "http://adaptivecards.io/schemas/adaptive-card.json";
/// The Adaptive Card version Teams renders everywhere.
const CARD_VERSION: &str = "1.4";
/// The content type of an Adaptive Card attachment.
const CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";
/// Breaks markdown syntax without changing what is shown.
const ZERO_WIDTH_SPACE: char = '\u{200B}';

/// The JSON body announcing `approval` in `format`.
pub fn render(format: WebhookFormat, approval: &PendingApproval) -> Value {
    match format {
        WebhookFormat::Generic => generic(approval),
        WebhookFormat::Slack => slack(approval),
        WebhookFormat::Teams => teams(approval),
    }
}

fn generic(approval: &PendingApproval) -> Value {
    // A struct of strings, a `Tier` and a `Value` always serializes.
    let approval = serde_json::to_value(approval).unwrap_or(Value::Null);
    json!({ "type": EVENT_PENDING, "approval": approval })
}

fn slack(approval: &PendingApproval) -> Value {
    let field = |label: &str, value: &str| json!({ "type": "mrkdwn", "text": format!("*{label}*\n{}", slack_text(value, FIELD_MAX)) });
    let mut fields = vec![
        field("Target", &approval.target),
        field("Requester", &approval.requester),
        field("Tool", &approval.tool),
        json!({
            "type": "mrkdwn",
            "text": format!("*Rule*\n`{}`", slack_text(&approval.rule, FIELD_MAX)),
        }),
        field("Tier", approval.tier.as_str()),
        field("Expires", &approval.expires_at),
    ];
    if let Some(user) = elevation(approval) {
        fields.push(field("Sudo", &format!("as {user}")));
    }
    let command = slack_text(&command_text(approval), COMMAND_MAX).replace("```", "`\u{200B}``");
    let fallback = format!(
        "{TITLE}: {} (on {}, requested by {}) <{}|{OPEN_LABEL}>",
        slack_text(&approval.summary, SUMMARY_MAX),
        slack_text(&approval.target, FIELD_MAX),
        slack_text(&approval.requester, FIELD_MAX),
        slack_link_url(&approval.console_url),
    );
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": TITLE } }),
        json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": slack_text(&approval.summary, SUMMARY_MAX) },
            "fields": fields,
        }),
        json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": format!("```{command}```") },
        }),
    ];
    if let Some(preview) = &approval.preview {
        let (head, cut) = preview_head(preview);
        let shown = escape_lines(&head);
        let cut = cut || escaped_width(&shown) > PREVIEW_MAX;
        let code = slack_escaped(&shown, PREVIEW_MAX).replace("```", "`\u{200B}``");
        let label = if cut {
            format!("*{PREVIEW_LABEL}* {PREVIEW_CUT}")
        } else {
            format!("*{PREVIEW_LABEL}*")
        };
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": format!("{label}\n```{code}```") },
        }));
    }
    blocks.push(json!({
        "type": "actions",
        "elements": [{
            "type": "button",
            "action_id": "meho_open_approval",
            "style": "primary",
            "text": { "type": "plain_text", "text": OPEN_LABEL },
            "url": approval.console_url,
        }],
    }));
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": format!(
                "approval `{}` · tenant `{}` · created {}",
                slack_text(&approval.id, FIELD_MAX),
                slack_text(&approval.tenant, FIELD_MAX),
                slack_text(&approval.created_at, FIELD_MAX),
            ),
        }],
    }));
    json!({ "text": fallback, "blocks": blocks })
}

fn teams(approval: &PendingApproval) -> Value {
    let fact =
        |title: &str, value: &str| json!({ "title": title, "value": teams_text(value, FIELD_MAX) });
    let mut facts = vec![
        fact("Target", &approval.target),
        fact("Requester", &approval.requester),
        fact("Tool", &approval.tool),
        fact("Rule", &approval.rule),
        fact("Tier", approval.tier.as_str()),
        fact("Expires", &approval.expires_at),
    ];
    if let Some(user) = elevation(approval) {
        facts.push(fact("Sudo", &format!("as {user}")));
    }
    let mut body = vec![
        json!({ "type": "TextBlock", "text": TITLE, "weight": "Bolder", "size": "Medium", "wrap": true }),
        json!({ "type": "TextBlock", "text": teams_text(&approval.summary, SUMMARY_MAX), "wrap": true }),
        json!({ "type": "FactSet", "facts": facts }),
        json!({
            "type": "TextBlock",
            "text": teams_text(&command_text(approval), COMMAND_MAX),
            "fontType": "Monospace",
            "wrap": true,
        }),
    ];
    if let Some(preview) = &approval.preview {
        body.extend(teams_preview(preview));
    }
    body.push(json!({
        "type": "TextBlock",
        "text": format!(
            "approval {} · tenant {} · created {}",
            teams_text(&approval.id, FIELD_MAX),
            teams_text(&approval.tenant, FIELD_MAX),
            teams_text(&approval.created_at, FIELD_MAX),
        ),
        "isSubtle": true,
        "size": "Small",
        "wrap": true,
    }));
    let card = json!({
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": { "width": "Full" },
        "body": body,
        "actions": [
            { "type": "Action.OpenUrl", "title": OPEN_LABEL, "url": approval.console_url },
        ],
    });
    json!({
        "type": "message",
        "attachments": [{ "contentType": CARD_CONTENT_TYPE, "contentUrl": null, "content": card }],
    })
}

/// A preview in a Teams card: its label, then one `RichTextBlock` per line in a container, each
/// a monospace `TextRun` (no markdown) coloured by the line's sign, at most [`PREVIEW_LINES`]
/// lines and [`PREVIEW_MAX`] characters in all.
fn teams_preview(preview: &str) -> [Value; 2] {
    let (head, mut cut) = preview_head(preview);
    let mut budget = PREVIEW_MAX;
    let mut lines = Vec::new();
    for line in head.split('\n') {
        let width = escape(line).chars().count();
        if budget == 0 || width > budget {
            cut = true;
        }
        if budget == 0 {
            break;
        }
        let text = teams_text(line, budget);
        budget = budget.saturating_sub(text.chars().count().max(1));
        let color = match DiffLine::of(line) {
            DiffLine::Added => "Good",
            DiffLine::Removed => "Attention",
            DiffLine::Hunk => "Accent",
            DiffLine::Other => "Default",
        };
        lines.push(json!({
            "type": "RichTextBlock",
            "spacing": "None",
            "inlines": [{
                "type": "TextRun",
                // An empty run may be dropped by a renderer, and the line with it.
                "text": if text.is_empty() { " ".to_owned() } else { text },
                "fontType": "Monospace",
                "color": color,
            }],
        }));
    }
    let label = if cut {
        format!("{PREVIEW_LABEL} {PREVIEW_CUT}")
    } else {
        PREVIEW_LABEL.to_owned()
    };
    [
        json!({ "type": "TextBlock", "text": label, "weight": "Bolder", "wrap": true }),
        json!({ "type": "Container", "style": "emphasis", "items": lines }),
    ]
}

/// What a line of a unified diff is, by its first characters (file headers are neither added
/// nor removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiffLine {
    /// `+…`, not `+++ `.
    Added,
    /// `-…`, not `--- `.
    Removed,
    /// `@@ … @@`.
    Hunk,
    /// Context, file headers, anything else.
    Other,
}

impl DiffLine {
    pub(crate) fn of(line: &str) -> DiffLine {
        if line.starts_with("+++ ") || line.starts_with("--- ") {
            DiffLine::Other
        } else if line.starts_with('+') {
            DiffLine::Added
        } else if line.starts_with('-') {
            DiffLine::Removed
        } else if line.starts_with("@@") {
            DiffLine::Hunk
        } else {
            DiffLine::Other
        }
    }
}

/// The first [`PREVIEW_LINES`] lines of `preview` (without a final line break), and whether
/// lines were left out. Each format cuts the characters to its own limit.
fn preview_head(preview: &str) -> (String, bool) {
    let body = preview.strip_suffix('\n').unwrap_or(preview);
    let lines: Vec<&str> = body.split('\n').collect();
    let head = lines
        .iter()
        .take(PREVIEW_LINES)
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    (head, lines.len() > PREVIEW_LINES)
}

/// What the call runs: the command of a command tool, else the arguments as compact JSON.
pub(crate) fn command_text(approval: &PendingApproval) -> String {
    match approval.arguments.get("command").and_then(Value::as_str) {
        Some(command) => command.to_owned(),
        None => approval.arguments.to_string(),
    }
}

/// The sudo user when the call runs elevated.
fn elevation(approval: &PendingApproval) -> Option<String> {
    if approval.arguments.get("sudo").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    Some(
        approval
            .arguments
            .get("sudo_user")
            .and_then(Value::as_str)
            .filter(|user| !user.is_empty())
            .unwrap_or("root")
            .to_owned(),
    )
}

/// `text` with control and bidi characters shown as escapes, then escaped for Slack mrkdwn (`&`,
/// `<`, `>`), at most `max` characters after escaping, never cutting an mrkdwn escape in half.
pub(crate) fn slack_text(text: &str, max: usize) -> String {
    slack_escaped(&escape(text), max)
}

/// `text`, whose control and bidi characters are escapes already, escaped for Slack mrkdwn (`&`,
/// `<`, `>`) and cut to at most `max` characters after escaping, never in an escape.
fn slack_escaped(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max.saturating_mul(4)));
    if escaped_width(text) <= max {
        push_slack_escaped(&mut out, text);
        return out;
    }
    // Leave room for the ellipsis.
    let budget = max.saturating_sub(1);
    let mut used = 0;
    for c in text.chars() {
        let width = char_width(c);
        if used + width > budget {
            break;
        }
        push_slack_char(&mut out, c);
        used += width;
    }
    if max > 0 {
        out.push('…');
    }
    out
}

fn char_width(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        _ => 1,
    }
}

fn escaped_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

fn push_slack_char(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        _ => out.push(c),
    }
}

fn push_slack_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        push_slack_char(out, c);
    }
}

/// A URL inside a Slack `<url|label>` link: escaped, and `|` (which would end the URL) encoded.
fn slack_link_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    push_slack_escaped(&mut out, &url.replace('|', "%7C"));
    out
}

/// `text` for a Teams card: control and bidi characters shown as escapes, markdown links broken,
/// at most `max` characters.
pub(crate) fn teams_text(text: &str, max: usize) -> String {
    let cut = truncate(&escape(text), max);
    let mut out = String::with_capacity(cut.len());
    let mut previous = None;
    for c in cut.chars() {
        if previous == Some(']') && c == '(' {
            out.push(ZERO_WIDTH_SPACE);
        }
        out.push(c);
        previous = Some(c);
    }
    out
}

/// At most `max` characters of `text`, the last one `…` when something was cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_text_escapes_control_characters() {
        assert_eq!(slack_text("a & <b> c", 100), "a &amp; &lt;b&gt; c");
        assert_eq!(slack_text("<!channel>", 100), "&lt;!channel&gt;");
    }

    #[test]
    fn slack_text_cuts_without_splitting_an_escape() {
        let cut = slack_text("ab<<<<<<<<", 8);
        assert!(cut.chars().count() <= 8, "{cut}");
        assert!(cut.ends_with('…'), "{cut}");
        assert!(!cut.contains("&l…") && !cut.ends_with("&…"), "{cut}");
        assert_eq!(cut, "ab&lt;…");
    }

    #[test]
    fn slack_text_keeps_text_that_fits_exactly() {
        assert_eq!(slack_text("abcd", 4), "abcd");
        assert_eq!(slack_text("a>", 5), "a&gt;");
        assert_eq!(slack_text("abcde", 4), "abc…");
        assert_eq!(slack_text("", 0), "");
    }

    #[test]
    fn slack_link_url_cannot_end_the_link() {
        assert_eq!(
            slack_link_url("https://x/a|b>c&d"),
            "https://x/a%7Cb&gt;c&amp;d"
        );
    }

    #[test]
    fn teams_text_breaks_markdown_links() {
        let text = teams_text("[approve me](https://evil.example)", 100);
        assert!(!text.contains("]("));
        assert_eq!(
            text.replace(ZERO_WIDTH_SPACE, ""),
            "[approve me](https://evil.example)"
        );
    }

    #[test]
    fn slack_and_teams_text_show_control_and_bidi_characters_as_escapes() {
        let hostile = "a\u{1b}[2K\u{9b}31m\u{7f}\u{202e}b\tc\nd";
        let shown = "a\\x1b[2K\\x9b31m\\x7f\\u{202e}b\\x09c\\x0ad";
        assert_eq!(slack_text(hostile, 100), shown);
        assert_eq!(teams_text(hostile, 100), shown);
        // Slack's own escaping still applies after ours, and the cut counts the escapes.
        assert_eq!(slack_text("<\u{1b}>", 100), "&lt;\\x1b&gt;");
        assert_eq!(slack_text("\u{1b}\u{1b}\u{1b}", 5), "\\x1b…");
        assert_eq!(teams_text("\u{1b}\u{1b}", 5), "\\x1b…");
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("ééééé", 3), "éé…");
        assert_eq!(truncate("ééé", 3), "ééé");
        assert_eq!(truncate("abc", 0), "");
        assert_eq!(truncate("abc", 1), "…");
    }
}
