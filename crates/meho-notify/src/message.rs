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

use meho_core::display::escape;
use serde_json::{Value, json};

use crate::{EVENT_PENDING, PendingApproval, WebhookFormat};

/// Most characters of the summary shown in Slack and Teams.
const SUMMARY_MAX: usize = 1000;
/// Most characters of a short field (target, requester, rule, …).
const FIELD_MAX: usize = 300;
/// Most characters of the command (Slack allows 3000 per section, fences included).
const COMMAND_MAX: usize = 2800;
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
    json!({
        "text": fallback,
        "blocks": [
            { "type": "header", "text": { "type": "plain_text", "text": TITLE } },
            {
                "type": "section",
                "text": { "type": "mrkdwn", "text": slack_text(&approval.summary, SUMMARY_MAX) },
                "fields": fields,
            },
            {
                "type": "section",
                "text": { "type": "mrkdwn", "text": format!("```{command}```") },
            },
            {
                "type": "actions",
                "elements": [{
                    "type": "button",
                    "action_id": "meho_open_approval",
                    "style": "primary",
                    "text": { "type": "plain_text", "text": OPEN_LABEL },
                    "url": approval.console_url,
                }],
            },
            {
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
            },
        ],
    })
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
    let card = json!({
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": { "width": "Full" },
        "body": [
            { "type": "TextBlock", "text": TITLE, "weight": "Bolder", "size": "Medium", "wrap": true },
            { "type": "TextBlock", "text": teams_text(&approval.summary, SUMMARY_MAX), "wrap": true },
            { "type": "FactSet", "facts": facts },
            {
                "type": "TextBlock",
                "text": teams_text(&command_text(approval), COMMAND_MAX),
                "fontType": "Monospace",
                "wrap": true,
            },
            {
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
            },
        ],
        "actions": [
            { "type": "Action.OpenUrl", "title": OPEN_LABEL, "url": approval.console_url },
        ],
    });
    json!({
        "type": "message",
        "attachments": [{ "contentType": CARD_CONTENT_TYPE, "contentUrl": null, "content": card }],
    })
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
    let text = escape(text);
    let text = text.as_ref();
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
