//! `meho freeze` and `meho unfreeze`: the kill switch on a meho server (`/api/v1/freezes`).

use meho_core::display::escape;
use serde::Deserialize;
use serde_json::json;

use crate::Failure;
use crate::cli::{Format, FreezeArgs, UnfreezeArgs};
use crate::output::{self, or_dash, time};
use crate::remote::{self, Answer, Remote, id_segment};

/// A freeze as the API describes it.
#[derive(Debug, Deserialize)]
struct Freeze {
    id: String,
    kind: String,
    value: String,
    reason: Option<String>,
    created_by: Option<String>,
    created_at: Option<String>,
    lifted_at: Option<String>,
    lifted_by: Option<String>,
    lift_reason: Option<String>,
    active: bool,
    /// Only in the create answer.
    closed_sessions: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct FreezeList {
    freezes: Vec<Freeze>,
}

/// `meho freeze --principal|--session|--serial … --reason …`, or `meho freeze --list`.
pub(crate) fn freeze(args: &FreezeArgs) -> Result<(), Failure> {
    remote::block_on(async move {
        if args.list {
            list(args).await
        } else {
            create(args).await
        }
    })
}

/// `meho unfreeze ID [--reason …]`.
pub(crate) fn unfreeze(args: &UnfreezeArgs) -> Result<(), Failure> {
    remote::block_on(async move {
        let remote = Remote::new(&args.remote, args.format)?;
        let id = id_segment("freeze", &args.id)?;
        // The reason travels in the body: in a query string it would reach access logs and
        // run into header limits.
        let answer = remote
            .post(
                &["api", "v1", "freezes", id, "lift"],
                &json!({ "reason": args.reason }),
            )
            .await?;
        print_freeze(&answer, args.format, "lifted")
    })
}

async fn create(args: &FreezeArgs) -> Result<(), Failure> {
    let (kind, value) = match (&args.principal, &args.session, args.serial) {
        (Some(principal), _, _) => ("principal", principal.clone()),
        (_, Some(session), _) => ("session", session.clone()),
        (_, _, Some(serial)) => ("serial", serial.to_string()),
        // clap requires exactly one of them (or --list).
        _ => {
            return Err(Failure::Usage(
                "name what to freeze: --principal, --session or --serial".into(),
            ));
        }
    };
    let reason = args.reason.as_deref().ok_or_else(|| {
        Failure::Usage("--reason is required to freeze (it goes into the audit log)".into())
    })?;
    let remote = Remote::new(&args.remote, args.format)?;
    let answer = remote
        .post(
            &["api", "v1", "freezes"],
            &json!({ "kind": kind, "value": value, "reason": reason }),
        )
        .await?;
    print_freeze(&answer, args.format, "froze")
}

async fn list(args: &FreezeArgs) -> Result<(), Failure> {
    let remote = Remote::new(&args.remote, args.format)?;
    let query = if args.all {
        vec![("all", "true".to_owned())]
    } else {
        Vec::new()
    };
    let answer = remote.get(&["api", "v1", "freezes"], &query).await?;
    if args.format == Format::Json {
        return answer.print();
    }
    let list: FreezeList = answer.parse()?;
    if list.freezes.is_empty() {
        return output::print_text(if args.all {
            "no freezes"
        } else {
            "no freezes in force"
        });
    }
    let rows = list
        .freezes
        .iter()
        .map(|f| {
            [
                f.id.clone(),
                state(f).to_owned(),
                f.kind.clone(),
                f.value.clone(),
                time(f.created_at.as_deref()),
                or_dash(f.created_by.as_deref()),
                or_dash(f.reason.as_deref()),
            ]
        })
        .collect();
    output::print_text(&output::table(
        ["id", "state", "kind", "value", "since", "by", "reason"],
        rows,
    ))
}

fn state(freeze: &Freeze) -> &'static str {
    if freeze.active { "active" } else { "lifted" }
}

/// One freeze: the server's JSON, or a headline and the details.
fn print_freeze(answer: &Answer, format: Format, done: &str) -> Result<(), Failure> {
    if format == Format::Json {
        return answer.print();
    }
    let f: Freeze = answer.parse()?;
    // The value is whatever the operator (or a copied agent name) held: escaped like the rest.
    let mut text = format!(
        "{done} {} `{}` ({})\n",
        escape(&f.kind),
        escape(&f.value),
        escape(&f.id)
    );
    if let Some(closed) = f.closed_sessions {
        text.push_str(&format!(
            "closed {closed} open session{}\n",
            if closed == 1 { "" } else { "s" }
        ));
    }
    text.push('\n');
    let mut rows = vec![
        ("id", f.id.clone()),
        ("state", state(&f).to_owned()),
        ("kind", f.kind.clone()),
        ("value", f.value.clone()),
        ("reason", or_dash(f.reason.as_deref())),
        ("created", time(f.created_at.as_deref())),
        ("created by", or_dash(f.created_by.as_deref())),
    ];
    if !f.active {
        rows.push(("lifted", time(f.lifted_at.as_deref())));
        rows.push(("lifted by", or_dash(f.lifted_by.as_deref())));
        rows.push(("lift reason", or_dash(f.lift_reason.as_deref())));
    }
    text.push_str(&output::details(rows));
    output::print_text(&text)
}
