//! `meho audit …`: key generation, offline verification, queries and export, against the store
//! directly (no server needed). `query` and `show` with `--server` (or `MEHO_SERVER`) ask a meho
//! server instead (`GET /api/v1/audit`), for the token's tenant.
//!
//! Records hold what agents sent (principals, targets, commands in bodies), so text output
//! escapes control and bidi characters (`meho_core::display::escape`): the tables go through
//! [`output::table`], the rest through [`output::escape_lines`]. JSON output stays exact.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use meho_audit::{
    AuditKey, AuditPublicKey, AuditStore, Filter, Page, Record, VerifyInputs, Witness,
};
use meho_config::Config;
use meho_core::display::escape;
use meho_store::Store;
use serde_json::json;

use crate::Failure;
use crate::cli::{
    AuditCommand, ExportArgs, FilterArgs, Format, KeygenArgs, QueryArgs, ShowArgs, StoreArgs,
    TailArgs, VerifyArgs,
};
use crate::output;
use crate::remote::{self, Remote};
use crate::runtime::Paths;

pub(crate) fn run(command: AuditCommand) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match command {
        AuditCommand::Keygen(args) => keygen(&args),
        AuditCommand::Verify(args) => runtime.block_on(verify(&args)),
        AuditCommand::Tail(args) => runtime.block_on(tail(&args)),
        AuditCommand::Query(args) if args.remote.wants_remote() => {
            runtime.block_on(remote_query(&args))
        }
        AuditCommand::Show(args) if args.remote.wants_remote() => {
            runtime.block_on(remote_show(&args))
        }
        AuditCommand::Query(args) => runtime.block_on(query(&args)),
        AuditCommand::Show(args) => runtime.block_on(show(&args)),
        AuditCommand::Export(args) => runtime.block_on(export(&args)),
    }
}

/// The config (or defaults), the data directory and the store URL the flags select.
struct Resolved {
    config: Config,
    data_dir: PathBuf,
    url: String,
}

impl StoreArgs {
    fn resolve(&self) -> Result<Resolved, Failure> {
        let config = self.config.load_or_default()?;
        let Paths { data_dir, url } =
            Paths::new(&config, self.data_dir.as_deref(), self.store.as_deref());
        Ok(Resolved {
            config,
            data_dir,
            url,
        })
    }

    /// Opens the existing store read-mostly: a missing SQLite file is an error here, never a
    /// new empty database (an empty log would "verify").
    async fn open(&self) -> Result<(Resolved, Store), Failure> {
        let resolved = self.resolve()?;
        if let Some(file) = resolved
            .url
            .strip_prefix("sqlite://")
            .or_else(|| resolved.url.strip_prefix("sqlite:"))
        {
            let file = file.split('?').next().unwrap_or(file);
            if !Path::new(file).exists() {
                return Err(Failure::Usage(format!(
                    "no audit store at `{file}` (pass --data-dir DIR, --store URL or --config FILE)"
                )));
            }
        }
        let store = Store::open(&resolved.url).await.with_context(|| {
            format!(
                "cannot open the store `{}`",
                meho_store::mask_password(&resolved.url)
            )
        })?;
        Ok((resolved, store))
    }
}

fn keygen(args: &KeygenArgs) -> Result<(), Failure> {
    let resolved = args.store.resolve()?;
    let (private, public) = match &args.out {
        Some(out) => (out.clone(), meho_config::audit_public_key_for(out)),
        None => (
            resolved.config.audit.key_path(&resolved.data_dir),
            resolved.config.audit.public_key_path(&resolved.data_dir),
        ),
    };
    // The public key too: old checkpoints are verified with it even when the private key is gone.
    if let Some(existing) = [&private, &public].into_iter().find(|p| p.exists()) {
        return Err(Failure::Usage(format!(
            "`{}` already exists; refusing to replace an audit key (checkpoints signed with it could no longer be verified)",
            existing.display()
        )));
    }
    let key = AuditKey::generate().context("cannot generate the audit key")?;
    key.save(&private, &public)
        .context("cannot write the audit key")?;
    match args.format {
        Format::Text => {
            outln!(
                "private key: {} (mode 0600; keep it on the server only)",
                private.display()
            )?;
            outln!(
                "public key:  {} (all `meho audit verify` needs)",
                public.display()
            )?;
            outln!("key id:      {}", key.public().key_id())?;
        }
        Format::Json => outln!(
            "{}",
            json!({
                "private_key": private,
                "public_key": public,
                "key_id": key.public().key_id(),
            })
        )?,
    }
    Ok(())
}

async fn verify(args: &VerifyArgs) -> Result<(), Failure> {
    let (resolved, store) = args.store.open().await?;
    let public_path = args
        .public_key
        .clone()
        .unwrap_or_else(|| resolved.config.audit.public_key_path(&resolved.data_dir));
    if !public_path.exists() {
        return Err(Failure::Usage(format!(
            "no audit public key at `{}`, where {} (pass --public-key FILE); without it checkpoints cannot be checked",
            public_path.display(),
            if args.public_key.is_some() {
                "--public-key points"
            } else {
                "`[audit] public_key_file`, or the name next to `[audit] key_file` (`KEY.pem` → `KEY.pub.pem`, as `meho audit keygen --out KEY.pem` writes it), points"
            }
        )));
    }
    let key = AuditPublicKey::load(&public_path).context("cannot read the public key")?;
    let witness_path = args
        .witness
        .clone()
        .unwrap_or_else(|| resolved.config.audit.witness_path(&resolved.data_dir));
    let (witness, witness_errors) = Witness::new(&witness_path)
        .read()
        .context("cannot read the witness")?;
    let audit_store = meho_audit::store::open(&store);
    let started = std::time::Instant::now();
    let report = meho_audit::verify(
        audit_store.as_ref(),
        VerifyInputs {
            key: Some(&key),
            witness: &witness,
            witness_errors: &witness_errors,
        },
    )
    .await
    .context("verification could not read the store")?;
    let elapsed = started.elapsed();
    store.close().await;
    match args.format {
        Format::Json => outln!(
            "{}",
            json!({
                "ok": report.is_ok(),
                "records": report.records(),
                "tenants": report.tenants,
                "problems": report.problems,
                "witness": witness_path,
                "witness_checkpoints": witness.len(),
                "key_id": key.key_id(),
            })
        )?,
        Format::Text => {
            outln!(
                "store {} · witness {} ({} checkpoints) · key {}",
                store.url(),
                witness_path.display(),
                witness.len(),
                key.key_id()
            )?;
            for tenant in &report.tenants {
                outln!(
                    "tenant {}: {} records, head seq {}, signed checkpoints: {} in database, {} in witness, covering seq {}",
                    escape(&tenant.tenant),
                    tenant.records,
                    tenant.head_seq,
                    tenant.database_checkpoints,
                    tenant.witness_checkpoints,
                    tenant.checkpointed_seq
                )?;
            }
            for problem in &report.problems {
                // A problem may quote a damaged record.
                outln!("FAIL {}", escape(&problem.to_string()))?;
            }
            if report.is_ok() {
                outln!(
                    "OK: {} records verified in {:.2}s",
                    report.records(),
                    elapsed.as_secs_f64()
                )?;
            }
        }
    }
    if report.is_ok() {
        Ok(())
    } else {
        Err(Failure::Silent(1))
    }
}

/// Unix microseconds of an RFC 3339 time (any offset) or of `now` minus an age (`15m`, `7d`).
fn parse_time(text: &str, now: SystemTime) -> Result<i64, Failure> {
    if let Ok(at) =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return Ok(i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX));
    }
    if let Ok(age) = humantime::parse_duration(text) {
        let at = now.checked_sub(age).unwrap_or(UNIX_EPOCH);
        return Ok(at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)));
    }
    Err(Failure::Usage(format!(
        "invalid time `{text}`: expected RFC 3339 with an offset (`2026-11-25T12:00:00Z`, `2026-11-25T13:00:00+01:00`) or an age (`15m`, `2h`, `7d`)"
    )))
}

impl FilterArgs {
    fn to_filter(&self) -> Result<Filter, Failure> {
        let now = SystemTime::now();
        Ok(Filter {
            tenant: self.tenant.clone(),
            principal: self.principal.clone(),
            target: self.target.clone(),
            action: self.action.clone(),
            outcome: self.outcome.clone(),
            kind: self.kind.clone(),
            session_id: self.session.clone(),
            approval_id: self.approval.clone(),
            call_id: self.call.clone(),
            since: self
                .since
                .as_deref()
                .map(|t| parse_time(t, now))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|t| parse_time(t, now))
                .transpose()?,
        })
    }
}

fn format_ts(micros: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

/// A record as `show`, `query`, `tail` and `export` print it: the record's JSON plus its `row`
/// (the cursor) and `time`, keys in name order.
#[derive(serde::Serialize)]
struct Printed<'a> {
    row: i64,
    time: String,
    #[serde(flatten)]
    record: &'a Record,
}

fn record_json(record: &Record) -> Result<serde_json::Value, Failure> {
    let mut value = serde_json::to_value(Printed {
        row: record.row,
        time: format_ts(record.ts),
        record,
    })
    .context("cannot format the record")?;
    // A body that is not JSON (an edited row) prints as null here.
    if serde_json::from_str::<serde_json::Value>(&record.body).is_err()
        && let Some(fields) = value.as_object_mut()
    {
        fields.insert("body".to_owned(), serde_json::Value::Null);
    }
    Ok(value)
}

fn table(records: &[Record]) -> String {
    records_table(records.iter().map(row))
}

/// The table columns of one record, local or remote.
fn row(r: &Record) -> [String; 9] {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    [
        format_ts(r.ts),
        r.tenant.clone(),
        r.seq.to_string(),
        r.kind.clone(),
        r.principal.clone(),
        dash(&r.target),
        dash(&r.action),
        dash(&r.outcome),
        r.id.clone(),
    ]
}

/// The records as a table; [`output::table`] escapes every cell.
fn records_table(rows: impl Iterator<Item = [String; 9]>) -> String {
    output::table(
        [
            "time",
            "tenant",
            "seq",
            "kind",
            "principal",
            "target",
            "action",
            "outcome",
            "id",
        ],
        rows.collect(),
    )
}

fn print_records(records: &[Record], format: Format, header: bool) -> Result<(), Failure> {
    match format {
        Format::Json => {
            for record in records {
                outln!("{}", record_json(record)?)?;
            }
        }
        Format::Text if records.is_empty() => {}
        Format::Text if header => outln!("{}", table(records))?,
        Format::Text => {
            // Following: one line per record, no table borders to redraw. Each field escaped
            // on its own, so a newline in one cannot start a fake record line.
            for r in records {
                outln!(
                    "{}  {}#{}  {}  {}  {}  {}  {}",
                    format_ts(r.ts),
                    escape(&r.tenant),
                    r.seq,
                    escape(&r.kind),
                    escape(&r.principal),
                    escape(r.target.as_deref().unwrap_or("-")),
                    escape(r.action.as_deref().unwrap_or("-")),
                    escape(r.outcome.as_deref().unwrap_or("-"))
                )?;
            }
        }
    }
    Ok(())
}

async fn tail(args: &TailArgs) -> Result<(), Failure> {
    let (_, store) = args.store.open().await?;
    let audit = meho_audit::store::open(&store);
    let filter = args.filter.to_filter()?;
    let mut latest = audit
        .query(
            &filter,
            Page::Newest {
                before: None,
                limit: args.lines,
            },
        )
        .await
        .context("cannot query the audit log")?;
    latest.reverse();
    print_records(&latest, args.format, true)?;
    if !args.follow {
        return Ok(());
    }
    let mut after = match latest.last() {
        Some(record) => record.row,
        None => newest_row(audit.as_ref(), &filter).await?,
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let fresh = audit
            .query(&filter, Page::After { after, limit: 1000 })
            .await
            .context("cannot query the audit log")?;
        if let Some(last) = fresh.last() {
            after = last.row;
        }
        print_records(&fresh, args.format, false)?;
    }
}

async fn newest_row(audit: &dyn AuditStore, filter: &Filter) -> Result<i64, Failure> {
    let newest = audit
        .query(
            filter,
            Page::Newest {
                before: None,
                limit: 1,
            },
        )
        .await
        .context("cannot query the audit log")?;
    Ok(newest.first().map_or(0, |r| r.row))
}

async fn query(args: &QueryArgs) -> Result<(), Failure> {
    let (_, store) = args.store.open().await?;
    let audit = meho_audit::store::open(&store);
    let filter = args.filter.to_filter()?;
    let limit = args.limit.clamp(1, 10_000);
    let records = audit
        .query(
            &filter,
            Page::Newest {
                before: args.cursor,
                limit,
            },
        )
        .await
        .context("cannot query the audit log")?;
    let next_cursor = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.row))
        .flatten();
    match args.format {
        Format::Json => outln!(
            "{}",
            json!({
                "records": records.iter().map(record_json).collect::<Result<Vec<_>, _>>()?,
                "next_cursor": next_cursor,
            })
        )?,
        Format::Text => {
            if records.is_empty() {
                outln!("no matching records")?;
            } else {
                outln!("{}", table(&records))?;
            }
            if let Some(cursor) = next_cursor {
                outln!("more: --cursor {cursor}")?;
            }
        }
    }
    Ok(())
}

async fn show(args: &ShowArgs) -> Result<(), Failure> {
    let (_, store) = args.store.open().await?;
    let audit = meho_audit::store::open(&store);
    let record = audit
        .get(&args.id)
        .await
        .context("cannot query the audit log")?
        .ok_or_else(|| Failure::Usage(format!("no audit record `{}`", args.id)))?;
    let value = record_json(&record)?;
    match args.format {
        Format::Json => outln!("{value}")?,
        Format::Text => {
            // JSON escapes C0 controls in strings but not DEL, C1 or bidi controls.
            let text = serde_json::to_string_pretty(&value).context("cannot format the record")?;
            outln!("{}", output::escape_lines(&text))?;
        }
    }
    Ok(())
}

async fn export(args: &ExportArgs) -> Result<(), Failure> {
    use std::io::Write as _;
    let (_, store) = args.store.open().await?;
    let audit = meho_audit::store::open(&store);
    let tenants = match &args.tenant {
        Some(tenant) => vec![tenant.clone()],
        None => audit.tenants().await.context("cannot list tenants")?,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for tenant in tenants {
        let mut after = 0;
        loop {
            let rows = audit
                .scan(&tenant, after, 5000)
                .await
                .context("cannot read the audit log")?;
            let Some(last) = rows.last() else { break };
            after = last.seq;
            for row in &rows {
                writeln!(out, "{}", record_json(row)?).context("cannot write the export")?;
            }
        }
    }
    out.flush().context("cannot write the export")?;
    Ok(())
}

#[derive(Debug, serde::Deserialize)]
struct RemotePage {
    records: Vec<Record>,
    next_before: Option<i64>,
}

/// The query string of `GET /api/v1/audit`: the filter (times in RFC 3339) and the page.
#[derive(serde::Serialize)]
struct AuditQuery {
    #[serde(flatten)]
    filter: Filter,
    limit: u32,
    before: Option<i64>,
}

/// `meho audit query --server`: the same filter as the local query, sent as
/// `GET /api/v1/audit`; ages in `--since`/`--until` become RFC 3339 times here.
async fn remote_query(args: &QueryArgs) -> Result<(), Failure> {
    let remote = Remote::new(&args.remote, args.format)?;
    let filter = &args.filter;
    if filter.tenant.is_some() {
        return Err(Failure::Usage(
            "--tenant does not go with --server: the server answers for the token's tenant".into(),
        ));
    }
    let query = AuditQuery {
        filter: filter.to_filter()?,
        limit: args.limit.clamp(1, 1000),
        before: args.cursor,
    };
    let answer = remote.get_with(&["api", "v1", "audit"], &query).await?;
    if args.format == Format::Json {
        return answer.print();
    }
    let page: RemotePage = answer.parse()?;
    let mut text = if page.records.is_empty() {
        "no matching records".to_owned()
    } else {
        records_table(page.records.iter().map(row))
    };
    if let Some(before) = page.next_before {
        text.push_str(&format!("\nmore: --cursor {before}"));
    }
    output::print_text(&text)
}

/// `meho audit show --server`: `GET /api/v1/audit/{id}`.
async fn remote_show(args: &ShowArgs) -> Result<(), Failure> {
    let remote = Remote::new(&args.remote, args.format)?;
    let id = remote::id_segment("audit record", &args.id)?;
    let answer = remote.get(&["api", "v1", "audit", id], &[]).await?;
    match args.format {
        Format::Json => answer.print(),
        Format::Text => {
            // `print_text` escapes what JSON leaves raw (DEL, C1, bidi controls).
            let text =
                serde_json::to_string_pretty(answer.value()).context("cannot format the record")?;
            output::print_text(&text)
        }
    }
}
