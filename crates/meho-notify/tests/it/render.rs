//! The message bodies, checked as data: what each receiver needs, escaping and size limits.

use meho_notify::{WebhookFormat, render};
use serde_json::{Value, json};

use crate::support::approval;

/// Every string anywhere in `value`, joined.
fn all_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(all_text).collect::<Vec<_>>().join("\n"),
        Value::Object(map) => map.values().map(all_text).collect::<Vec<_>>().join("\n"),
        other => other.to_string(),
    }
}

fn blocks_of(kind: &str, body: &Value) -> Vec<Value> {
    body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == kind)
        .cloned()
        .collect()
}

#[test]
fn generic_carries_every_field_under_its_event_type() {
    let approval = approval("apr-1");
    let body = render(WebhookFormat::Generic, &approval);
    assert_eq!(body["type"], "approval.pending");
    assert_eq!(
        body["approval"],
        json!({
            "id": "apr-1", "tenant": "acme", "requester": "alice", "target": "web-1",
            "tool": "ssh_execute",
            "summary": "ssh_execute on web-1: systemctl restart nginx (sudo)",
            "rule": "approve:^systemctl restart ", "tier": "write",
            "arguments": approval.arguments, "preview": null,
            "created_at": approval.created_at, "expires_at": approval.expires_at,
            "console_url": "http://127.0.0.1:8080/console/#/approvals/apr-1",
        })
    );
    let back: meho_notify::PendingApproval =
        serde_json::from_value(body["approval"].clone()).unwrap();
    assert_eq!(back, approval);
}

#[test]
fn slack_has_fallback_text_fields_command_and_console_button() {
    let body = render(WebhookFormat::Slack, &approval("apr-1"));
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("systemctl restart nginx"), "{text}");
    assert!(
        text.contains("<http://127.0.0.1:8080/console/#/approvals/apr-1|"),
        "{text}"
    );

    let sections = blocks_of("section", &body);
    let summary = &sections[0];
    assert_eq!(summary["text"]["type"], "mrkdwn");
    assert_eq!(
        summary["text"]["text"],
        "ssh_execute on web-1: systemctl restart nginx (sudo)"
    );
    let fields: Vec<&str> = summary["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["type"], "mrkdwn");
            f["text"].as_str().unwrap()
        })
        .collect();
    for expected in [
        "*Target*\nweb-1",
        "*Requester*\nalice",
        "*Tool*\nssh_execute",
        "*Rule*\n`approve:^systemctl restart `",
        "*Tier*\nwrite",
        "*Expires*\n2026-11-25T17:13:04.123456Z",
        "*Sudo*\nas root",
    ] {
        assert!(fields.contains(&expected), "{expected:?} not in {fields:?}");
    }
    assert!(fields.len() <= 10, "Slack allows 10 fields");
    assert_eq!(sections[1]["text"]["text"], "```systemctl restart nginx```");

    let actions = blocks_of("actions", &body);
    let button = &actions[0]["elements"][0];
    assert_eq!(button["type"], "button");
    assert_eq!(button["text"]["type"], "plain_text");
    assert_eq!(
        button["url"],
        "http://127.0.0.1:8080/console/#/approvals/apr-1"
    );
    assert_eq!(blocks_of("header", &body)[0]["text"]["type"], "plain_text");
}

#[test]
fn slack_escapes_control_characters_in_user_data() {
    let mut approval = approval("apr-1");
    approval.summary = "<!channel> look & <https://evil.example|click>".into();
    approval.requester = "<@U123>".into();
    approval.arguments = json!({ "command": "echo a>b && cat <x ```; ls" });
    let body = render(WebhookFormat::Slack, &approval);
    let text = all_text(&body);
    for raw in ["<!channel>", "<@U123>", "<https://evil", "a>b", "&& ", "<x"] {
        assert!(!text.contains(raw), "{raw:?} unescaped in {text}");
    }
    assert!(text.contains("&lt;!channel&gt; look &amp; &lt;https://evil.example|click&gt;"));
    let command = blocks_of("section", &body)[1]["text"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        command.starts_with("```echo a&gt;b &amp;&amp; cat &lt;x "),
        "{command}"
    );
    assert!(command.ends_with("; ls```"), "{command}");
    // The command's own fence cannot close the code block early.
    assert_eq!(command.matches("```").count(), 2, "{command}");
}

#[test]
fn teams_sends_an_adaptive_card_with_facts_command_and_open_url() {
    let body = render(WebhookFormat::Teams, &approval("apr-1"));
    assert_eq!(body["type"], "message");
    let attachments = body["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1);
    assert_eq!(
        attachments[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachments[0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    let items = card["body"].as_array().unwrap();
    assert_eq!(items[0]["type"], "TextBlock");
    assert_eq!(items[0]["weight"], "Bolder");
    let facts: Vec<(String, String)> =
        items.iter().find(|i| i["type"] == "FactSet").unwrap()["facts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["title"].as_str().unwrap().to_owned(),
                    f["value"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
    for (title, value) in [
        ("Target", "web-1"),
        ("Requester", "alice"),
        ("Tool", "ssh_execute"),
        ("Rule", "approve:^systemctl restart "),
        ("Tier", "write"),
        ("Expires", "2026-11-25T17:13:04.123456Z"),
        ("Sudo", "as root"),
    ] {
        assert!(
            facts.contains(&(title.to_owned(), value.to_owned())),
            "{title}: {value} not in {facts:?}"
        );
    }
    let command = items.iter().find(|i| i["fontType"] == "Monospace").unwrap();
    assert_eq!(command["type"], "TextBlock");
    assert_eq!(command["text"], "systemctl restart nginx");
    let action = &card["actions"][0];
    assert_eq!(action["type"], "Action.OpenUrl");
    assert_eq!(
        action["url"],
        "http://127.0.0.1:8080/console/#/approvals/apr-1"
    );
}

#[test]
fn teams_breaks_markdown_links_in_user_data() {
    let mut approval = approval("apr-1");
    approval.summary = "[Approve now](https://evil.example)".into();
    approval.arguments = json!({ "command": "echo [x](https://evil.example)" });
    let body = render(WebhookFormat::Teams, &approval);
    let text = all_text(&body["attachments"][0]["content"]["body"]);
    assert!(!text.contains("]("), "{text}");
    assert!(text.contains("Approve now"));
}

#[test]
fn long_values_are_cut_to_receiver_limits() {
    let mut approval = approval("apr-1");
    approval.summary = "s".repeat(10_000);
    approval.target = "t".repeat(10_000);
    approval.arguments = json!({ "command": "<".repeat(10_000) });
    let slack = render(WebhookFormat::Slack, &approval);
    for block in slack["blocks"].as_array().unwrap() {
        if let Some(text) = block["text"]["text"].as_str() {
            assert!(text.chars().count() <= 3000, "section text over 3000");
        }
        for field in block["fields"].as_array().into_iter().flatten() {
            assert!(field["text"].as_str().unwrap().chars().count() <= 2000);
        }
    }
    let command = blocks_of("section", &slack)[1]["text"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(command.contains('…'));
    assert!(
        !command.contains("&l…") && !command.contains("&lt…"),
        "escape cut in half"
    );
    assert!(slack.to_string().len() < 40_000);

    let teams = render(WebhookFormat::Teams, &approval);
    assert!(teams.to_string().len() < 28_000, "Teams accepts 28 KB");

    // The generic format keeps everything.
    let generic = render(WebhookFormat::Generic, &approval);
    assert_eq!(
        generic["approval"]["summary"].as_str().unwrap().len(),
        10_000
    );
}

#[test]
fn tools_without_a_command_show_their_arguments() {
    let mut approval = approval("apr-1");
    approval.tool = "ssh_put_file".into();
    approval.arguments = json!({ "server": "web-1", "path": "/etc/motd" });
    let slack = render(WebhookFormat::Slack, &approval);
    let code = blocks_of("section", &slack)[1]["text"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(code.contains("/etc/motd"), "{code}");
    let teams = render(WebhookFormat::Teams, &approval);
    let text = all_text(&teams);
    assert!(text.contains("/etc/motd"));
    assert!(!text.contains("Sudo"), "no sudo fact without sudo");
}

#[test]
fn odd_arguments_never_panic() {
    for arguments in [
        Value::Null,
        json!([1, 2, 3]),
        json!("text"),
        json!({ "command": 42, "sudo": "yes", "sudo_user": 7 }),
        json!({ "command": "", "sudo": true, "sudo_user": "" }),
    ] {
        let mut approval = approval("");
        approval.arguments = arguments;
        approval.console_url = String::new();
        for format in [
            WebhookFormat::Generic,
            WebhookFormat::Slack,
            WebhookFormat::Teams,
        ] {
            let body = render(format, &approval);
            assert!(body.is_object());
        }
    }
}

/// A command that, printed raw, erases its own line and draws a harmless one in its place
/// (ESC, CSI as one C1 byte, DEL) and reverses what follows it (U+202E).
const FORGED: &str =
    "touch '/etc/cron.d/x\u{1b}[2K\u{1b}[1G\u{9b}2K\u{7f}\u{202e}systemctl status nginx'";
/// [`FORGED`] as an approver must see it.
const FORGED_SHOWN: &str =
    r"touch '/etc/cron.d/x\x1b[2K\x1b[1G\x9b2K\x7f\u{202e}systemctl status nginx'";

fn forged_approval() -> meho_notify::PendingApproval {
    let mut approval = approval("apr-1");
    approval.summary = format!("ssh_execute on web-1: {FORGED}");
    approval.requester = "agent\u{1b}[31m\u{2066}".into();
    approval.target = "web-1\u{202e}".into();
    approval.rule = "approve:^touch \u{9b}".into();
    approval.arguments = json!({ "server": "web-1", "command": FORGED, "sudo": false });
    approval
}

/// Whether `text` holds a character that can forge its own display, other than the line breaks
/// the message layout itself uses.
fn deceptive_except_newline(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| c != '\n' && meho_core::display::is_deceptive(c))
        .collect()
}

#[test]
fn slack_shows_control_and_bidi_characters_as_visible_escapes() {
    let body = render(WebhookFormat::Slack, &forged_approval());
    let text = all_text(&body);
    assert_eq!(deceptive_except_newline(&text), [] as [char; 0], "{text:?}");
    let sections = blocks_of("section", &body);
    assert_eq!(
        sections[1]["text"]["text"],
        format!("```{FORGED_SHOWN}```"),
        "the command block"
    );
    assert_eq!(
        sections[0]["text"]["text"],
        format!("ssh_execute on web-1: {FORGED_SHOWN}")
    );
    let fields = all_text(&sections[0]["fields"]);
    for shown in [
        concat!("*Requester*\n", r"agent\x1b[31m\u{2066}"),
        concat!("*Target*\n", r"web-1\u{202e}"),
        r"`approve:^touch \x9b`",
    ] {
        assert!(fields.contains(shown), "{shown:?} not in {fields:?}");
    }
    assert!(
        body["text"].as_str().unwrap().contains(FORGED_SHOWN),
        "fallback text: {}",
        body["text"]
    );
}

#[test]
fn teams_shows_control_and_bidi_characters_as_visible_escapes() {
    let body = render(WebhookFormat::Teams, &forged_approval());
    let card = &body["attachments"][0]["content"];
    let text = all_text(card);
    assert_eq!(deceptive_except_newline(&text), [] as [char; 0], "{text:?}");
    let items = card["body"].as_array().unwrap();
    let command = items.iter().find(|i| i["fontType"] == "Monospace").unwrap();
    assert_eq!(command["text"], FORGED_SHOWN);
    assert_eq!(
        items[1]["text"],
        format!("ssh_execute on web-1: {FORGED_SHOWN}")
    );
    let facts = all_text(&items.iter().find(|i| i["type"] == "FactSet").unwrap()["facts"]);
    for shown in [
        r"agent\x1b[31m\u{2066}",
        r"web-1\u{202e}",
        r"approve:^touch \x9b",
    ] {
        assert!(facts.contains(shown), "{shown:?} not in {facts:?}");
    }
}

#[test]
fn generic_json_keeps_control_and_bidi_characters_exactly() {
    let approval = forged_approval();
    let body = render(WebhookFormat::Generic, &approval);
    assert_eq!(body["approval"]["arguments"]["command"], FORGED);
    assert_eq!(
        body["approval"]["summary"],
        format!("ssh_execute on web-1: {FORGED}")
    );
    assert_eq!(body["approval"]["requester"], "agent\u{1b}[31m\u{2066}");
    let back: meho_notify::PendingApproval =
        serde_json::from_value(body["approval"].clone()).unwrap();
    assert_eq!(back, approval);
}

// --- previews --------------------------------------------------------------------------------

/// A dry-run diff whose lines carry Slack's special characters, a code fence, markdown link
/// syntax, a list marker, and characters that would forge the display.
const PREVIEW: &str = "--- configmap/app (live)\n+++ configmap/app (dry run)\n@@ -1,3 +1,3 @@\n\
                       -  url: <https://old|x> & co\n+  url: [click](https://evil.example)\n\
                       \x20 fence: ```\n+  note: \u{1b}[2K\u{202e}reversed\n";

fn with_preview(preview: &str) -> meho_notify::PendingApproval {
    let mut approval = approval("apr-1");
    approval.tool = "k8s_apply".into();
    approval.arguments = json!({ "server": "prod", "manifest": "configmap/app" });
    approval.preview = Some(preview.to_owned());
    approval
}

#[test]
fn generic_carries_the_preview_exactly() {
    let approval = with_preview(PREVIEW);
    let body = render(WebhookFormat::Generic, &approval);
    assert_eq!(body["approval"]["preview"], PREVIEW);
    let back: meho_notify::PendingApproval =
        serde_json::from_value(body["approval"].clone()).unwrap();
    assert_eq!(back, approval);
}

#[test]
fn slack_shows_the_preview_as_a_code_block_of_escaped_lines() {
    let body = render(WebhookFormat::Slack, &with_preview(PREVIEW));
    let sections = blocks_of("section", &body);
    assert_eq!(sections.len(), 3, "summary, command, preview: {body:#}");
    assert_eq!(
        sections[2]["text"]["text"],
        "*Preview*\n```--- configmap/app (live)\n+++ configmap/app (dry run)\n@@ -1,3 +1,3 @@\n\
         -  url: &lt;https://old|x&gt; &amp; co\n+  url: [click](https://evil.example)\n\
         \x20 fence: `\u{200B}``\n+  note: \\x1b[2K\\u{202e}reversed```"
    );
    assert_eq!(
        deceptive_except_newline(&all_text(&body)),
        [] as [char; 0],
        "{body:#}"
    );
    // The console button still follows it.
    let kinds: Vec<&str> = body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "header", "section", "section", "section", "actions", "context"
        ]
    );
}

#[test]
fn teams_shows_the_preview_as_plain_runs_coloured_by_sign() {
    let body = render(WebhookFormat::Teams, &with_preview(PREVIEW));
    let card = &body["attachments"][0]["content"];
    let items = card["body"].as_array().unwrap();
    let label = items
        .iter()
        .position(|i| i["text"] == "Preview")
        .unwrap_or_else(|| panic!("no preview label: {card:#}"));
    let container = &items[label + 1];
    assert_eq!(container["type"], "Container");
    let runs: Vec<(&str, &str, &str)> = container["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|block| {
            assert_eq!(block["type"], "RichTextBlock");
            let inlines = block["inlines"].as_array().unwrap();
            assert_eq!(inlines.len(), 1);
            let run = &inlines[0];
            assert_eq!(run["type"], "TextRun");
            assert_eq!(run["fontType"], "Monospace");
            (
                run["text"].as_str().unwrap(),
                run["color"].as_str().unwrap(),
                block["spacing"].as_str().unwrap(),
            )
        })
        .collect();
    let texts: Vec<&str> = runs.iter().map(|r| r.0).collect();
    assert_eq!(
        texts,
        [
            "--- configmap/app (live)",
            "+++ configmap/app (dry run)",
            "@@ -1,3 +1,3 @@",
            "-  url: <https://old|x> & co",
            "+  url: [click]\u{200B}(https://evil.example)",
            "  fence: ```",
            r"+  note: \x1b[2K\u{202e}reversed",
        ]
    );
    let colours: Vec<&str> = runs.iter().map(|r| r.1).collect();
    assert_eq!(
        colours,
        [
            "Default",
            "Default",
            "Accent",
            "Attention",
            "Good",
            "Default",
            "Good"
        ]
    );
    assert!(runs.iter().all(|r| r.2 == "None"));
    assert_eq!(
        deceptive_except_newline(&all_text(card)),
        [] as [char; 0],
        "{card:#}"
    );
}

#[test]
fn a_long_preview_shows_its_first_lines_and_says_the_rest_is_in_the_console() {
    let many_lines: String = (0..500).map(|n| format!("+line {n}\n")).collect();
    let one_long_line = format!("+{}\n", "<".repeat(10_000));
    for preview in [many_lines, one_long_line] {
        let approval = with_preview(&preview);
        let slack = render(WebhookFormat::Slack, &approval);
        let text = blocks_of("section", &slack)[2]["text"]["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(text.chars().count() <= 3000, "{}", text.chars().count());
        assert!(
            text.starts_with("*Preview* (first lines; the whole preview is in the console)\n```+"),
            "{text}"
        );
        assert!(text.lines().count() <= 41, "{}", text.lines().count());
        assert!(
            !text.contains("&l…") && !text.contains("&lt…"),
            "escape cut in half"
        );

        let teams = render(WebhookFormat::Teams, &approval);
        assert!(teams.to_string().len() < 28_000, "Teams accepts 28 KB");
        let card = &teams["attachments"][0]["content"];
        let items = card["body"].as_array().unwrap();
        assert!(
            items
                .iter()
                .any(|i| i["text"] == "Preview (first lines; the whole preview is in the console)"),
            "{card:#}"
        );
        let lines = items.iter().find(|i| i["type"] == "Container").unwrap()["items"]
            .as_array()
            .unwrap()
            .len();
        assert!((1..=40).contains(&lines), "{lines}");

        let generic = render(WebhookFormat::Generic, &approval);
        assert_eq!(generic["approval"]["preview"], preview.as_str());
    }
}

#[test]
fn without_a_preview_no_preview_is_shown() {
    let approval = approval("apr-1");
    let slack = render(WebhookFormat::Slack, &approval);
    assert_eq!(blocks_of("section", &slack).len(), 2);
    assert!(!all_text(&slack).contains("Preview"));
    let teams = render(WebhookFormat::Teams, &approval);
    assert!(!all_text(&teams).contains("Preview"));
    assert!(
        !teams.to_string().contains("Container"),
        "no empty preview container"
    );
}
