//! `meho grants create|list|show|revoke`: runtime grants on a meho server (`/api/v1/grants`).

use meho_core::display::escape;
use serde::Deserialize;
use serde_json::json;

use crate::Failure;
use crate::cli::{Format, GrantCreateArgs, GrantIdArgs, GrantListArgs, GrantsCommand};
use crate::output::{self, or_dash, time};
use crate::remote::{self, Answer, Remote, id_segment};

pub(crate) fn run(command: GrantsCommand) -> Result<(), Failure> {
    remote::block_on(async move {
        match command {
            GrantsCommand::Create(args) => create(&args).await,
            GrantsCommand::List(args) => list(&args).await,
            GrantsCommand::Show(args) => show(&args).await,
            GrantsCommand::Revoke(args) => revoke(&args).await,
        }
    })
}

/// A grant as the API describes it.
#[derive(Debug, Deserialize)]
struct Grant {
    id: String,
    target: String,
    pattern: String,
    tier: String,
    reason: Option<String>,
    created_by: Option<String>,
    created_at: Option<String>,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    revoked_by: Option<String>,
    active: bool,
    /// What the server's pattern check warned about (on create only).
    #[serde(default)]
    warnings: Vec<String>,
}

impl Grant {
    fn state(&self) -> &'static str {
        if self.active {
            "active"
        } else if self.revoked_at.is_some() {
            "revoked"
        } else {
            "expired"
        }
    }
}

#[derive(Debug, Deserialize)]
struct GrantList {
    grants: Vec<Grant>,
}

async fn create(args: &GrantCreateArgs) -> Result<(), Failure> {
    let remote = Remote::new(&args.remote, args.format)?;
    let body = json!({
        "target": args.target,
        "pattern": args.pattern,
        "tier": args.tier.as_str(),
        "ttl_seconds": args.ttl.as_secs(),
        "reason": args.reason,
    });
    let answer = remote.post(&["api", "v1", "grants"], &body).await?;
    print_grant(&answer, args.format, Some("granted"))
}

async fn list(args: &GrantListArgs) -> Result<(), Failure> {
    let remote = Remote::new(&args.remote, args.format)?;
    let mut query = Vec::new();
    if let Some(target) = &args.target {
        query.push(("target", target.clone()));
    }
    if args.all {
        query.push(("all", "true".to_owned()));
    }
    let answer = remote.get(&["api", "v1", "grants"], &query).await?;
    if args.format == Format::Json {
        return answer.print();
    }
    let list: GrantList = answer.parse()?;
    if list.grants.is_empty() {
        return output::print_text(if args.all {
            "no grants"
        } else {
            "no grants in force"
        });
    }
    let rows = list
        .grants
        .iter()
        .map(|g| {
            [
                g.id.clone(),
                g.state().to_owned(),
                g.target.clone(),
                g.pattern.clone(),
                g.tier.clone(),
                time(g.expires_at.as_deref()),
                or_dash(g.created_by.as_deref()),
                or_dash(g.reason.as_deref()),
            ]
        })
        .collect();
    output::print_text(&output::table(
        [
            "id", "state", "target", "pattern", "tier", "expires", "by", "reason",
        ],
        rows,
    ))
}

async fn show(args: &GrantIdArgs) -> Result<(), Failure> {
    let remote = Remote::new(&args.remote, args.format)?;
    let id = id_segment("grant", &args.id)?;
    let answer = remote.get(&["api", "v1", "grants", id], &[]).await?;
    print_grant(&answer, args.format, None)
}

async fn revoke(args: &GrantIdArgs) -> Result<(), Failure> {
    let remote = Remote::new(&args.remote, args.format)?;
    let id = id_segment("grant", &args.id)?;
    let answer = remote.delete(&["api", "v1", "grants", id], &[]).await?;
    print_grant(&answer, args.format, Some("revoked"))
}

/// One grant: the server's JSON, or a headline (after a change) and the details.
fn print_grant(answer: &Answer, format: Format, done: Option<&str>) -> Result<(), Failure> {
    if format == Format::Json {
        return answer.print();
    }
    let g: Grant = answer.parse()?;
    warn_all(&g.warnings);
    let mut text = String::new();
    if let Some(done) = done {
        text.push_str(&format!(
            "{done} {} on {}: `{}` ({})\n\n",
            escape(&g.id),
            escape(&g.target),
            escape(&g.pattern),
            escape(&g.tier)
        ));
    }
    text.push_str(&output::details(vec![
        ("id", g.id.clone()),
        ("state", g.state().to_owned()),
        ("target", g.target.clone()),
        ("pattern", g.pattern.clone()),
        ("tier", g.tier.clone()),
        ("reason", or_dash(g.reason.as_deref())),
        ("created", time(g.created_at.as_deref())),
        ("created by", or_dash(g.created_by.as_deref())),
        ("expires", time(g.expires_at.as_deref())),
        ("revoked", time(g.revoked_at.as_deref())),
        ("revoked by", or_dash(g.revoked_by.as_deref())),
    ]));
    output::print_text(&text)
}

/// The pattern check's warnings, one `warning:` line each on stderr, where the CLI's other
/// warnings go (the JSON form carries them in `warnings`).
#[expect(clippy::print_stderr, reason = "CLI warnings go to stderr by design")]
fn warn_all(warnings: &[String]) {
    for warning in warnings {
        eprintln!("warning: {}", escape(warning));
    }
}
