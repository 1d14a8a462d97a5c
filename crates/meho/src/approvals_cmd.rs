//! `meho approvals list|show|approve|deny`: call-bound approvals on a meho server
//! (`/api/v1/approvals`).

use meho_core::display::{escape, escape_lines};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Failure;
use crate::cli::{
    ApprovalApproveArgs, ApprovalDenyArgs, ApprovalListArgs, ApprovalShowArgs, ApprovalsCommand,
    Format,
};
use crate::output::{self, or_dash, time};
use crate::remote::{self, Answer, Remote, id_segment};

pub(crate) fn run(command: ApprovalsCommand) -> Result<(), Failure> {
    remote::block_on(async move {
        match command {
            ApprovalsCommand::List(args) => list(&args).await,
            ApprovalsCommand::Show(args) => show(&args).await,
            ApprovalsCommand::Approve(args) => approve(&args).await,
            ApprovalsCommand::Deny(args) => deny(&args).await,
        }
    })
}

/// An approval as the API describes it (the fields this command prints).
#[derive(Debug, Deserialize)]
struct Approval {
    id: String,
    requester: String,
    target: String,
    tool: String,
    #[serde(default)]
    arguments: Value,
    summary: String,
    #[serde(default)]
    preview: Option<String>,
    rule: String,
    tier: String,
    status: String,
    created_at: Option<String>,
    expires_at: Option<String>,
    decided_at: Option<String>,
    decided_by: Option<String>,
    reason: Option<String>,
    #[serde(default)]
    self_approved: bool,
    learn_ttl_seconds: Option<u64>,
    consumed_at: Option<String>,
    console_url: Option<String>,
    waiver: Option<Waiver>,
}

/// The waiver approve-and-learn minted.
#[derive(Debug, Deserialize)]
struct Waiver {
    id: String,
    expires_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ApprovalList {
    approvals: Vec<Approval>,
}

async fn list(args: &ApprovalListArgs) -> Result<(), Failure> {
    let remote = Remote::new(&args.remote, args.format)?;
    let mut query = Vec::new();
    if let Some(status) = args.status {
        query.push(("status", status.as_str().to_owned()));
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    let answer = remote.get(&["api", "v1", "approvals"], &query).await?;
    if args.format == Format::Json {
        return answer.print();
    }
    let list: ApprovalList = answer.parse()?;
    if list.approvals.is_empty() {
        return output::print_text(&match args.status {
            Some(status) => format!("no {} approvals", status.as_str()),
            None => "no approvals".to_owned(),
        });
    }
    let rows = list
        .approvals
        .iter()
        .map(|a| {
            [
                a.id.clone(),
                a.status.clone(),
                a.requester.clone(),
                a.target.clone(),
                a.tier.clone(),
                a.summary.clone(),
                time(a.expires_at.as_deref()),
            ]
        })
        .collect();
    output::print_text(&output::table(
        [
            "id",
            "status",
            "requester",
            "target",
            "tier",
            "summary",
            "expires",
        ],
        rows,
    ))
}

async fn show(args: &ApprovalShowArgs) -> Result<(), Failure> {
    let remote = Remote::new(&args.remote, args.format)?;
    let id = id_segment("approval", &args.id)?;
    let answer = remote.get(&["api", "v1", "approvals", id], &[]).await?;
    print_approval(&answer, args.format, None)
}

async fn approve(args: &ApprovalApproveArgs) -> Result<(), Failure> {
    let remote = Remote::new(&args.remote, args.format)?;
    let id = id_segment("approval", &args.id)?;
    // clap makes --learn and --ttl go together.
    let learn_ttl = args.ttl.filter(|_| args.learn).map(|ttl| ttl.as_secs());
    let body = match learn_ttl {
        Some(seconds) => json!({ "reason": args.reason, "learn_ttl_seconds": seconds }),
        None => json!({ "reason": args.reason }),
    };
    let answer = remote
        .post(&["api", "v1", "approvals", id, "approve"], &body)
        .await?;
    print_approval(&answer, args.format, Some("approved"))
}

async fn deny(args: &ApprovalDenyArgs) -> Result<(), Failure> {
    let remote = Remote::new(&args.remote, args.format)?;
    let id = id_segment("approval", &args.id)?;
    let answer = remote
        .post(
            &["api", "v1", "approvals", id, "deny"],
            &json!({ "reason": args.reason }),
        )
        .await?;
    print_approval(&answer, args.format, Some("denied"))
}

/// One approval: the server's JSON, or a headline (after a decision) and the details.
fn print_approval(answer: &Answer, format: Format, done: Option<&str>) -> Result<(), Failure> {
    if format == Format::Json {
        return answer.print();
    }
    let a: Approval = answer.parse()?;
    let mut text = String::new();
    if let Some(done) = done {
        // The summary is the agent's command: escaped, or it could redraw this line.
        text.push_str(&format!(
            "{done} {}: {}\n",
            escape(&a.id),
            escape(&a.summary)
        ));
        if let Some(waiver) = &a.waiver {
            text.push_str(&format!(
                "waiver {} lets the same call run without approval until {}\n",
                escape(&waiver.id),
                escape(&time(waiver.expires_at.as_deref()))
            ));
        }
        text.push('\n');
    }
    let mut rows = vec![
        ("id", a.id.clone()),
        ("status", a.status.clone()),
        ("summary", a.summary.clone()),
        ("requester", a.requester.clone()),
        ("target", a.target.clone()),
        ("tool", a.tool.clone()),
        ("arguments", a.arguments.to_string()),
        ("rule", a.rule.clone()),
        ("tier", a.tier.clone()),
        ("created", time(a.created_at.as_deref())),
        ("expires", time(a.expires_at.as_deref())),
        ("decided", time(a.decided_at.as_deref())),
        ("decided by", or_dash(a.decided_by.as_deref())),
        ("reason", or_dash(a.reason.as_deref())),
    ];
    if a.self_approved {
        rows.push(("self-approved", "yes".to_owned()));
    }
    if let Some(seconds) = a.learn_ttl_seconds {
        rows.push((
            "learn ttl",
            humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string(),
        ));
    }
    rows.push(("consumed", time(a.consumed_at.as_deref())));
    if let Some(url) = &a.console_url {
        rows.push(("console", url.clone()));
    }
    text.push_str(&output::details(rows));
    if let Some(preview) = &a.preview {
        text.push_str("\n\n");
        text.push_str(&preview_text(preview));
    }
    output::print_text(&text)
}

/// The preview of a held call (several lines by design, a diff say) under a `preview:` heading,
/// each line indented and escaped on its own: a line of it cannot pose as a field, nor redraw or
/// reorder another.
fn preview_text(preview: &str) -> String {
    let shown = escape_lines(preview.strip_suffix('\n').unwrap_or(preview));
    let mut text = String::from("preview:");
    for line in shown.split('\n') {
        text.push('\n');
        if !line.is_empty() {
            text.push_str("  ");
            text.push_str(line);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_is_indented_under_its_heading_with_every_line_escaped() {
        let preview = "--- a\n+b\u{1b}[2K\n-c\u{202e}d\r\n\n";
        assert_eq!(
            preview_text(preview),
            "preview:\n  --- a\n  +b\\x1b[2K\n  -c\\u{202e}d\\x0d\n"
        );
        assert_eq!(preview_text("one"), "preview:\n  one");
    }
}
