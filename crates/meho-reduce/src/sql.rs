//! A sandboxed, read-only SQLite over result rows.
//!
//! [`ResultTable::load`] puts rows into an in-memory SQLite table `result` (one column per
//! top-level field, plus `doc`, the row's full JSON text), then locks the connection down before
//! any query can run:
//!
//! - an authorizer that allows only `SELECT`, column reads, function calls (not
//!   `load_extension`) and recursive CTEs; everything else (ATTACH/DETACH, PRAGMA, writes,
//!   schema changes, transactions, savepoints, ANALYZE, REINDEX, VACUUM, …) is refused, naming it;
//! - `sqlite3_limit`s on SQL length, value length, expression depth, compound selects, LIKE
//!   pattern length, function arguments, column count and attached databases (0);
//! - `SQLITE_DBCONFIG_DEFENSIVE`, no triggers, no views, an untrusted schema; extension loading is
//!   never enabled;
//! - per query, a progress handler that aborts past [`Limits::deadline`], exactly one statement,
//!   and at most [`Limits::max_rows`] rows / [`Limits::max_bytes`] of JSON in the answer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, ErrorCode};
use serde_json::{Map, Value};

use crate::ReduceError;

/// The name of the table [`ResultTable::load`] creates.
pub const TABLE: &str = "result";
/// The column holding each row's full JSON text.
pub const DOC_COLUMN: &str = "doc";

/// The most columns a table may have (SQLite's default column limit is 2000; one is `doc`).
const MAX_COLUMNS: usize = 1000;
/// The longest string or blob a query may build (the longest loaded value is always allowed).
const MIN_VALUE_LENGTH: usize = 4 * 1024 * 1024;
/// SQLite virtual-machine instructions between deadline checks.
const PROGRESS_OPS: i32 = 1000;

/// What one query may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time for preparing, running and collecting the answer.
    pub deadline: Duration,
    /// Rows in the answer; more set [`Answer::truncated`].
    pub max_rows: usize,
    /// Bytes of the answer's rows as compact JSON; more set [`Answer::truncated`].
    pub max_bytes: usize,
    /// Bytes of SQL text; more is [`ReduceError::TooLarge`].
    pub max_sql_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(2),
            max_rows: 500,
            max_bytes: 16 * 1024,
            max_sql_bytes: 64 * 1024,
        }
    }
}

/// The answer to one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The result columns' names, in order.
    pub columns: Vec<String>,
    /// The rows, each with one value per column. Blobs are given as lowercase hex text.
    pub rows: Vec<Vec<Value>>,
    /// Whether rows were left out because of `max_rows` or `max_bytes`.
    pub truncated: bool,
    /// The time the query took.
    pub elapsed: Duration,
}

/// An in-memory SQLite database holding result rows in table [`TABLE`], locked down for
/// read-only queries.
#[derive(Debug)]
pub struct ResultTable {
    conn: Connection,
    columns: Vec<String>,
    /// What the authorizer last refused, for naming it in [`ReduceError::Refused`].
    denied: Arc<Mutex<Option<String>>>,
    /// The longest string or blob a query may build, in bytes.
    value_limit: usize,
}

impl ResultTable {
    /// An in-memory SQLite holding `rows` in table `result`: one column per top-level field
    /// (given in order), plus `doc` (the row's full JSON text). Column values: JSON scalars as
    /// SQLite values (integers, reals, text, NULL, booleans as 0/1), objects/arrays as JSON
    /// text; a field a row lacks is NULL. Field names that collide (case-insensitively, or with
    /// `doc`) get a deterministic suffix `_2`, `_3`, …; see [`ResultTable::columns`].
    pub fn load(columns: &[String], rows: &[Map<String, Value>]) -> Result<Self, ReduceError> {
        let (mut conn, names) = Self::create(columns)?;
        let mut longest = 0usize;
        let tx = conn.transaction().map_err(internal)?;
        {
            // Objects and arrays (and `doc`) are stored as SQLite JSONB: `->>`, `json_extract`
            // and friends read it without parsing JSON text again on every query. Parameters:
            // the values `?1..?n`, the row `?n+1`, then one flag per value, set for an object or
            // array.
            let n = columns.len();
            let mut placeholders: Vec<String> = (1..=n)
                .map(|i| format!("CASE WHEN ?{} THEN jsonb(?{i}) ELSE ?{i} END", n + 1 + i))
                .collect();
            placeholders.push(format!("jsonb(?{})", n + 1));
            let mut insert = tx
                .prepare(&format!(
                    "INSERT INTO {} VALUES ({})",
                    quote_ident(TABLE),
                    placeholders.join(", ")
                ))
                .map_err(internal)?;
            for row in rows {
                for (i, field) in columns.iter().enumerate() {
                    let nested = row
                        .get(field)
                        .is_some_and(|value| value.is_object() || value.is_array());
                    insert
                        .raw_bind_parameter(n + 2 + i, nested)
                        .map_err(internal)?;
                    let value = row.get(field).map_or(SqlValue::Null, to_sql_value);
                    if let SqlValue::Text(t) = &value {
                        longest = longest.max(t.len());
                    }
                    insert.raw_bind_parameter(i + 1, value).map_err(internal)?;
                }
                let doc = serde_json::to_string(row).map_err(internal)?;
                longest = longest.max(doc.len());
                insert
                    .raw_bind_parameter(columns.len() + 1, doc)
                    .map_err(internal)?;
                insert.raw_execute().map_err(internal)?;
            }
        }
        tx.commit().map_err(internal)?;
        Self::locked(conn, names, longest)
    }

    /// As [`ResultTable::load`], from the rows as JSON lines (one compact JSON object per
    /// line): each line is parsed once, by SQLite, into the JSONB of `doc`, and every column is
    /// extracted from it (`jsonb_extract`: scalars as SQL values, objects and arrays as JSONB).
    /// Nothing is parsed or serialized on the Rust side. Fields whose names a JSON path cannot
    /// spell (a `"`, a control character, empty) load through [`ResultTable::load`] instead.
    pub fn load_lines(columns: &[String], lines: &[u8]) -> Result<Self, ReduceError> {
        let spellable = |field: &String| {
            !field.is_empty() && !field.chars().any(|c| c == '"' || c.is_control())
        };
        if !columns.iter().all(spellable) {
            let rows = lines
                .split(|b| *b == b'\n')
                .filter(|line| !line.is_empty())
                .map(|line| {
                    serde_json::from_slice::<Map<String, Value>>(line).map_err(|err| {
                        ReduceError::Internal(format!("a kept row does not parse: {err}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Self::load(columns, &rows);
        }
        let (mut conn, names) = Self::create(columns)?;
        let mut longest = 0usize;
        let tx = conn.transaction().map_err(internal)?;
        {
            let mut extracts: Vec<String> = columns
                .iter()
                .map(|field| format!("jsonb_extract(d, '$.\"{}\"')", field.replace('\'', "''")))
                .collect();
            extracts.push("d".to_owned());
            let mut insert = tx
                .prepare(&format!(
                    "INSERT INTO {} SELECT {} FROM (SELECT jsonb(?1) AS d)",
                    quote_ident(TABLE),
                    extracts.join(", ")
                ))
                .map_err(internal)?;
            for line in lines.split(|b| *b == b'\n').filter(|line| !line.is_empty()) {
                let text = std::str::from_utf8(line).map_err(internal)?;
                longest = longest.max(text.len());
                insert.raw_bind_parameter(1, text).map_err(internal)?;
                insert.raw_execute().map_err(internal)?;
            }
        }
        tx.commit().map_err(internal)?;
        Self::locked(conn, names, longest)
    }

    /// An in-memory database with the empty table `result` for `columns`, and the columns' SQL
    /// names.
    fn create(columns: &[String]) -> Result<(Connection, Vec<String>), ReduceError> {
        if columns.len() > MAX_COLUMNS {
            return Err(ReduceError::TooLarge {
                what: format!("{} columns", columns.len()),
                limit: MAX_COLUMNS,
            });
        }
        let names = column_names(columns);
        let conn = Connection::open_in_memory().map_err(internal)?;
        // Large pages: a row of nested objects (a whole Pod is kilobytes, held as its columns
        // and as `doc`) fits one page instead of a chain of overflow pages read on every query.
        conn.execute_batch("PRAGMA page_size = 65536")
            .map_err(internal)?;
        let mut defs: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
        defs.push(quote_ident(DOC_COLUMN));
        conn.execute_batch(&format!(
            "CREATE TABLE {} ({})",
            quote_ident(TABLE),
            defs.join(", ")
        ))
        .map_err(internal)?;
        Ok((conn, names))
    }

    /// The loaded table, locked down for reads (`longest`: the longest value loaded).
    fn locked(conn: Connection, names: Vec<String>, longest: usize) -> Result<Self, ReduceError> {
        let denied = Arc::new(Mutex::new(None));
        let value_limit = lock_down(&conn, names.len() + 1, longest, Arc::clone(&denied))?;
        Ok(Self {
            conn,
            columns: names,
            denied,
            value_limit,
        })
    }

    /// The SQL column names of table `result`, one per field given to [`ResultTable::load`]
    /// (in order, deduplicated), without `doc`.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Runs one read-only statement (a single SELECT / WITH … SELECT / VALUES), answering at
    /// most `limits.max_rows` rows and `limits.max_bytes` of JSON (`truncated` beyond).
    pub fn query(&self, sql: &str, limits: &Limits) -> Result<Answer, ReduceError> {
        let start = Instant::now();
        if sql.len() > limits.max_sql_bytes {
            return Err(ReduceError::TooLarge {
                what: format!("SQL text of {} bytes", sql.len()),
                limit: limits.max_sql_bytes,
            });
        }
        if sql.contains('\0') {
            return Err(ReduceError::Invalid(
                "SQL text contains a NUL character".to_owned(),
            ));
        }
        let sql_limit = i32::try_from(limits.max_sql_bytes.max(1)).unwrap_or(i32::MAX);
        self.conn
            .set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, sql_limit)
            .map_err(internal)?;
        if let Ok(mut d) = self.denied.lock() {
            *d = None;
        }
        // A deadline too far to represent is no deadline.
        let deadline = start.checked_add(limits.deadline);
        self.conn
            .progress_handler(
                PROGRESS_OPS,
                Some(move || deadline.is_some_and(|d| Instant::now() >= d)),
            )
            .map_err(internal)?;
        let result = self.run(sql, limits, start, deadline);
        // Never leave a stale handler behind; a failure here changes nothing for the answer.
        let _ = self
            .conn
            .progress_handler(PROGRESS_OPS, None::<fn() -> bool>);
        result
    }

    fn run(
        &self,
        sql: &str,
        limits: &Limits,
        start: Instant,
        deadline: Option<Instant>,
    ) -> Result<Answer, ReduceError> {
        let mut stmt = self
            .conn
            .prepare(sql)
            .map_err(|e| self.classify(e, limits))?;
        if !stmt.readonly() {
            return Err(ReduceError::Refused("a statement that writes".to_owned()));
        }
        let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
        if columns.is_empty() {
            return Err(ReduceError::Refused(
                "a statement that answers no columns".to_owned(),
            ));
        }
        let mut rows_out = Vec::new();
        let mut bytes = 0usize;
        let mut truncated = false;
        // Blobs in an answer are the JSONB of objects and arrays: shown as the JSON they hold.
        // The caller's statement is prepared (with no parameters: the limit is 0); this one
        // statement of ours takes one, and the limit goes back to 0 after it is prepared.
        self.conn
            .set_limit(Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 1)
            .map_err(internal)?;
        let as_json = self.conn.prepare("SELECT json(?1)");
        self.conn
            .set_limit(Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 0)
            .map_err(internal)?;
        let mut as_json = as_json.map_err(internal)?;
        let mut rows = stmt.raw_query();
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => return Err(self.classify(e, limits)),
            };
            if rows_out.len() >= limits.max_rows {
                truncated = true;
                break;
            }
            let mut out = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                let v = row.get_ref(i).map_err(internal)?;
                out.push(match v {
                    ValueRef::Blob(blob) => from_jsonb(&mut as_json, blob),
                    other => to_json(other),
                });
            }
            let size = serde_json::to_string(&out).map_err(internal)?.len();
            if bytes.saturating_add(size) > limits.max_bytes {
                truncated = true;
                break;
            }
            bytes += size;
            rows_out.push(out);
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(ReduceError::Deadline(limits.deadline));
            }
        }
        Ok(Answer {
            columns,
            rows: rows_out,
            truncated,
            elapsed: start.elapsed(),
        })
    }

    /// Maps a SQLite error to what it means here.
    fn classify(&self, e: rusqlite::Error, limits: &Limits) -> ReduceError {
        let denied = self.denied.lock().ok().and_then(|mut d| d.take());
        if let Some(what) = denied {
            return ReduceError::Refused(what);
        }
        match e {
            rusqlite::Error::MultipleStatement => {
                ReduceError::Refused("more than one statement".to_owned())
            }
            rusqlite::Error::SqliteFailure(_, _) | rusqlite::Error::SqlInputError { .. } => {
                let (code, msg) = match e {
                    rusqlite::Error::SqliteFailure(f, msg) => {
                        (f.code, msg.unwrap_or_else(|| f.to_string()))
                    }
                    rusqlite::Error::SqlInputError {
                        error, msg, offset, ..
                    } => (error.code, format!("{msg} (at byte {offset})")),
                    other => return ReduceError::Internal(other.to_string()),
                };
                match code {
                    ErrorCode::OperationInterrupted => ReduceError::Deadline(limits.deadline),
                    ErrorCode::AuthorizationForStatementDenied => ReduceError::Refused(msg),
                    ErrorCode::TooBig => ReduceError::TooLarge {
                        what: format!("a value or the SQL text ({msg})"),
                        limit: self.value_limit,
                    },
                    ErrorCode::OutOfMemory => {
                        ReduceError::Internal(format!("out of memory ({msg})"))
                    }
                    _ => ReduceError::Invalid(msg),
                }
            }
            rusqlite::Error::InvalidQuery => ReduceError::Invalid("not a query".to_owned()),
            rusqlite::Error::NulError(_) => {
                ReduceError::Invalid("SQL text contains a NUL character".to_owned())
            }
            other => ReduceError::Internal(other.to_string()),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ReduceError {
    ReduceError::Internal(e.to_string())
}

/// Installs the sandbox; after this the connection only answers reads.
fn lock_down(
    conn: &Connection,
    column_count: usize,
    longest_value: usize,
    denied: Arc<Mutex<Option<String>>>,
) -> Result<usize, ReduceError> {
    let value_limit = harden(conn, column_count, longest_value)?;
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        match refusal(&ctx.action) {
            None => Authorization::Allow,
            Some(what) => {
                if let Ok(mut d) = denied.lock() {
                    d.get_or_insert(what);
                }
                Authorization::Deny
            }
        }
    }))
    .map_err(internal)?;
    Ok(value_limit)
}

/// The configuration and limits under the authorizer: each holds even if the authorizer let
/// something through. Extension loading is never enabled (neither the C API switch nor
/// `SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION`), so `load_extension()` fails here too.
/// Answers the longest string or blob a query may build.
fn harden(
    conn: &Connection,
    column_count: usize,
    longest_value: usize,
) -> Result<usize, ReduceError> {
    for (config, on) in [
        (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
        (DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false),
        (DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW, false),
        (DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false),
        (DbConfig::SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, false),
    ] {
        conn.set_db_config(config, on).map_err(internal)?;
    }
    let length = longest_value
        .saturating_mul(2)
        .max(MIN_VALUE_LENGTH)
        .min(i32::MAX as usize);
    let columns = (column_count + 1).max(64);
    for (limit, value) in [
        (Limit::SQLITE_LIMIT_LENGTH, length),
        (Limit::SQLITE_LIMIT_SQL_LENGTH, 64 * 1024),
        (Limit::SQLITE_LIMIT_COLUMN, columns),
        (Limit::SQLITE_LIMIT_EXPR_DEPTH, 100),
        (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 50),
        (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000),
        (Limit::SQLITE_LIMIT_FUNCTION_ARG, 100),
        (Limit::SQLITE_LIMIT_ATTACHED, 0),
        (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 0),
        (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 0),
    ] {
        let value = i32::try_from(value).unwrap_or(i32::MAX);
        conn.set_limit(limit, value).map_err(internal)?;
    }
    Ok(length)
}

/// `None` if the sandbox allows the action, else what it refuses.
fn refusal(action: &AuthAction<'_>) -> Option<String> {
    match action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => None,
        AuthAction::Function { function_name } => {
            if function_name.eq_ignore_ascii_case("load_extension") {
                Some("the function load_extension".to_owned())
            } else {
                None
            }
        }
        AuthAction::Attach { .. } => Some("ATTACH".to_owned()),
        AuthAction::Detach { .. } => Some("DETACH".to_owned()),
        AuthAction::Pragma { pragma_name, .. } => Some(format!("PRAGMA {pragma_name}")),
        // SQLite checks the write to its schema table before the CREATE/DROP/ALTER/ANALYZE itself.
        AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Delete { table_name }
            if table_name.starts_with("sqlite_") =>
        {
            Some("a schema change (CREATE, DROP, ALTER, ANALYZE)".to_owned())
        }
        AuthAction::Insert { .. } => Some("INSERT".to_owned()),
        AuthAction::Update { .. } => Some("UPDATE".to_owned()),
        AuthAction::Delete { .. } => Some("DELETE".to_owned()),
        AuthAction::Transaction { operation } => Some(format!("transaction ({operation:?})")),
        AuthAction::Savepoint { .. } => Some("SAVEPOINT".to_owned()),
        AuthAction::AlterTable { .. } => Some("ALTER TABLE".to_owned()),
        AuthAction::Analyze { .. } => Some("ANALYZE".to_owned()),
        AuthAction::Reindex { .. } => Some("REINDEX".to_owned()),
        AuthAction::CreateIndex { .. }
        | AuthAction::CreateTable { .. }
        | AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. }
        | AuthAction::CreateTrigger { .. }
        | AuthAction::CreateView { .. }
        | AuthAction::CreateVtable { .. } => Some("CREATE".to_owned()),
        AuthAction::DropIndex { .. }
        | AuthAction::DropTable { .. }
        | AuthAction::DropTempIndex { .. }
        | AuthAction::DropTempTable { .. }
        | AuthAction::DropTempTrigger { .. }
        | AuthAction::DropTempView { .. }
        | AuthAction::DropTrigger { .. }
        | AuthAction::DropView { .. }
        | AuthAction::DropVtable { .. } => Some("DROP".to_owned()),
        // VACUUM and anything newer or unknown.
        _ => Some("a statement other than a read-only query".to_owned()),
    }
}

/// SQL column names for `fields`: NULs replaced, empty names as `_`, collisions (compared
/// case-insensitively, including with `doc`) suffixed `_2`, `_3`, … in order.
/// The SQL column names [`ResultTable::load`] gives `fields` (deduplicated, `doc` avoided).
pub fn column_names(fields: &[String]) -> Vec<String> {
    let mut taken = std::collections::HashSet::new();
    taken.insert(DOC_COLUMN.to_owned());
    let mut out = Vec::with_capacity(fields.len());
    for field in fields {
        let mut base = field.replace('\0', "\u{fffd}");
        if base.is_empty() {
            base = "_".to_owned();
        }
        let mut name = base.clone();
        let mut n = 2u32;
        while taken.contains(&name.to_lowercase()) {
            name = format!("{base}_{n}");
            n = n.saturating_add(1);
        }
        taken.insert(name.to_lowercase());
        out.push(name);
    }
    out
}

/// `name` as a quoted SQL identifier.
/// `name` as an SQL identifier (double-quoted, inner quotes doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn to_sql_value(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => SqlValue::Integer(i),
            (None, Some(f)) => SqlValue::Real(f),
            (None, None) => SqlValue::Text(n.to_string()),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Array(_) | Value::Object(_) => SqlValue::Text(v.to_string()),
    }
}

/// The JSON a JSONB blob holds, as a value; a blob that is not JSONB as lowercase hex text.
fn from_jsonb(as_json: &mut rusqlite::Statement<'_>, blob: &[u8]) -> Value {
    as_json
        .query_row([blob], |row| row.get::<_, String>(0))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| to_json(ValueRef::Blob(blob)))
}

fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => {
            let mut hex = String::with_capacity(b.len() * 2);
            for byte in b {
                hex.push_str(&format!("{byte:02x}"));
            }
            Value::String(hex)
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn pods() -> ResultTable {
        let columns: Vec<String> = ["name", "ns", "restarts", "ready", "labels", "cpu"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let rows: Vec<_> = (0..30)
            .map(|i| {
                obj(json!({
                    "name": format!("pod-{i}"),
                    "ns": if i % 3 == 0 { "kube-system" } else { "default" },
                    "restarts": i % 4,
                    "ready": i % 2 == 0,
                    "labels": {"app": format!("app{}", i % 5)},
                    "cpu": f64::from(i) / 10.0,
                }))
            })
            .collect();
        ResultTable::load(&columns, &rows).unwrap()
    }

    fn q(t: &ResultTable, sql: &str) -> Result<Answer, ReduceError> {
        t.query(sql, &Limits::default())
    }

    fn still_works(t: &ResultTable) {
        let a = q(t, "SELECT count(*) FROM result").unwrap();
        assert_eq!(a.rows, vec![vec![json!(30)]]);
    }

    #[test]
    fn loading_json_lines_gives_the_same_table_as_loading_rows() {
        let columns: Vec<String> = [
            "name", "n", "big", "ok", "obj", "arr", "f", "it's", "We ird", "null", "absent",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let rows: Vec<_> = (0..40)
            .map(|i| {
                obj(json!({
                    "name": format!("r-{i} é \\ \"q\""),
                    "n": i,
                    "big": u64::MAX - i,
                    "ok": i % 2 == 0,
                    "obj": {"a": {"b": i}},
                    "arr": [i, "x", null],
                    "f": 1.5 * f64::from(i as u8),
                    "it's": "quote",
                    "We ird": "space",
                    "null": null,
                }))
            })
            .collect();
        let mut lines = Vec::new();
        for row in &rows {
            serde_json::to_writer(&mut lines, row).unwrap();
            lines.push(b'\n');
        }
        let from_rows = ResultTable::load(&columns, &rows).unwrap();
        let from_lines = ResultTable::load_lines(&columns, &lines).unwrap();
        assert_eq!(from_rows.columns(), from_lines.columns());
        let every = format!(
            "SELECT {}, doc->>'$.name', obj->>'$.a.b' FROM result ORDER BY n",
            columns
                .iter()
                .map(|c| format!("typeof({0}), {0}", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let limits = Limits {
            max_bytes: 1 << 20,
            ..Limits::default()
        };
        let a = from_rows.query(&every, &limits).unwrap();
        let b = from_lines.query(&every, &limits).unwrap();
        assert_eq!(a.rows.len(), 40);
        assert_eq!(
            a,
            Answer {
                elapsed: a.elapsed,
                ..b
            }
        );
        // A field a JSON path cannot spell loads through the rows.
        let odd = vec!["a\"b".to_owned()];
        let t = ResultTable::load_lines(&odd, b"{\"a\\\"b\": 1}\n").unwrap();
        assert_eq!(
            q(&t, "SELECT \"a\"\"b\" FROM result").unwrap().rows,
            vec![vec![json!(1)]]
        );
    }

    #[test]
    fn loads_scalars_objects_and_doc() {
        let t = pods();
        let a = q(
            &t,
            "SELECT name, restarts, ready, labels, cpu FROM result WHERE name = 'pod-2'",
        )
        .unwrap();
        assert_eq!(a.columns, ["name", "restarts", "ready", "labels", "cpu"]);
        assert_eq!(
            a.rows,
            vec![vec![
                json!("pod-2"),
                json!(2),
                json!(1),
                // Stored as JSONB, answered as the object it is.
                json!({"app": "app2"}),
                json!(0.2)
            ]]
        );
        assert!(!a.truncated);
        let a = q(
            &t,
            "SELECT typeof(labels), labels->>'$.app', json(labels), doc->>'$.name' FROM result WHERE name = 'pod-2'",
        )
        .unwrap();
        assert_eq!(
            a.rows,
            vec![vec![
                json!("blob"),
                json!("app2"),
                json!("{\"app\":\"app2\"}"),
                json!("pod-2")
            ]]
        );
        // A blob that is not JSONB stays hex.
        let a = q(&t, "SELECT x'00ff'").unwrap();
        assert_eq!(a.rows, vec![vec![json!("00ff")]]);
        let a = q(
            &t,
            "SELECT typeof(name), typeof(restarts), typeof(cpu) FROM result LIMIT 1",
        )
        .unwrap();
        assert_eq!(
            a.rows,
            vec![vec![json!("text"), json!("integer"), json!("real")]]
        );
    }

    #[test]
    fn missing_fields_big_numbers_and_too_many_columns() {
        let columns = vec!["a".to_owned(), "b".to_owned()];
        let rows = [
            obj(json!({"a": u64::MAX, "b": null})),
            obj(json!({"a": -5, "extra": [1, 2]})),
        ];
        let t = ResultTable::load(&columns, &rows).unwrap();
        let a = q(&t, "SELECT typeof(a), b, doc ->> '$.extra[1]' FROM result").unwrap();
        assert_eq!(
            a.rows,
            vec![
                vec![json!("real"), Value::Null, Value::Null],
                vec![json!("integer"), Value::Null, json!(2)],
            ]
        );
        let many: Vec<String> = (0..=MAX_COLUMNS).map(|i| format!("c{i}")).collect();
        let r = ResultTable::load(&many, &[]);
        assert!(matches!(r, Err(ReduceError::TooLarge { .. })), "{r:?}");
        let empty = ResultTable::load(&[], &[]).unwrap();
        let a = q(&empty, "SELECT count(*) FROM result").unwrap();
        assert_eq!(a.rows, vec![vec![json!(0)]]);
    }

    #[test]
    fn json1_over_doc() {
        let t = pods();
        let a = q(
            &t,
            "SELECT doc ->> '$.labels.app' FROM result WHERE name = 'pod-7'",
        )
        .unwrap();
        assert_eq!(a.rows, vec![vec![json!("app2")]]);
        let a = q(
            &t,
            "SELECT json_extract(doc, '$.ns') FROM result WHERE name = 'pod-3'",
        )
        .unwrap();
        assert_eq!(a.rows, vec![vec![json!("kube-system")]]);
        let a = q(
            &t,
            "SELECT j.key, j.value FROM result, json_each(result.doc, '$.labels') AS j \
             WHERE name = 'pod-4'",
        )
        .unwrap();
        assert_eq!(a.rows, vec![vec![json!("app"), json!("app4")]]);
    }

    #[test]
    fn group_by_counts() {
        let t = pods();
        let a = q(
            &t,
            "SELECT ns, count(*) AS n FROM result GROUP BY ns ORDER BY ns",
        )
        .unwrap();
        assert_eq!(a.columns, ["ns", "n"]);
        assert_eq!(
            a.rows,
            vec![
                vec![json!("default"), json!(20)],
                vec![json!("kube-system"), json!(10)]
            ]
        );
        let a = q(
            &t,
            "WITH x AS (SELECT restarts FROM result) SELECT max(restarts) FROM x",
        )
        .unwrap();
        assert_eq!(a.rows, vec![vec![json!(3)]]);
        let a = q(&t, "VALUES (1, 'a'), (2, 'b')").unwrap();
        assert_eq!(a.rows.len(), 2);
    }

    #[test]
    fn awkward_and_colliding_names() {
        let columns: Vec<String> = ["a\"b", "select", "Name", "name", "doc", "", "we ird;--"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let row = obj(
            json!({"a\"b": 1, "select": 2, "Name": 3, "name": 4, "doc": 5, "": 6, "we ird;--": 7}),
        );
        let t = ResultTable::load(&columns, &[row]).unwrap();
        assert_eq!(
            t.columns(),
            [
                "a\"b",
                "select",
                "Name",
                "name_2",
                "doc_2",
                "_",
                "we ird;--"
            ]
        );
        let a = q(
            &t,
            "SELECT \"a\"\"b\", \"select\", Name, name_2, doc_2, _, \"we ird;--\" FROM result",
        )
        .unwrap();
        assert_eq!(a.rows, vec![(1..=7).map(|i| json!(i)).collect::<Vec<_>>()]);
        let a = q(&t, "SELECT doc ->> '$.doc' FROM result").unwrap();
        assert_eq!(a.rows, vec![vec![json!(5)]]);
    }

    #[test]
    fn refuses_writes_and_admin() {
        let t = pods();
        for (sql, named) in [
            ("ATTACH DATABASE ':memory:' AS other", "ATTACH"),
            ("ATTACH DATABASE '/tmp/x.db' AS other", "ATTACH"),
            ("DETACH DATABASE main", "DETACH"),
            ("PRAGMA table_info(result)", "PRAGMA"),
            ("PRAGMA writable_schema = ON", "PRAGMA"),
            ("SELECT * FROM pragma_table_info('result')", "PRAGMA"),
            ("INSERT INTO result (name) VALUES ('x')", "INSERT"),
            ("UPDATE result SET name = 'x'", "UPDATE"),
            ("DELETE FROM result", "DELETE"),
            ("CREATE TABLE t (a)", "CREATE"),
            ("CREATE TEMP TABLE t (a)", "CREATE"),
            ("CREATE VIEW v AS SELECT 1", "CREATE"),
            ("CREATE INDEX i ON result (name)", "CREATE"),
            ("DROP TABLE result", "DROP"),
            ("ALTER TABLE result ADD COLUMN z", "ALTER"),
            ("BEGIN", "transaction"),
            ("COMMIT", "transaction"),
            ("SAVEPOINT s", "SAVEPOINT"),
            ("ANALYZE", "ANALYZE"),
            ("REINDEX", ""),
            ("VACUUM", ""),
            ("SELECT load_extension('x')", "load_extension"),
            ("SELECT name FROM result; DELETE FROM result", "DELETE"),
            ("SELECT 1; SELECT 2", "more than one statement"),
        ] {
            match q(&t, sql) {
                Err(ReduceError::Refused(what)) => {
                    assert!(!what.is_empty() && what.contains(named), "{sql}: {what}");
                }
                other => panic!("{sql}: {other:?}"),
            }
            still_works(&t);
        }
    }

    #[test]
    fn load_extension_is_impossible() {
        let t = pods();
        for sql in [
            "SELECT load_extension('x')",
            "SELECT LOAD_EXTENSION('/lib/x.so', 'init')",
        ] {
            assert!(matches!(q(&t, sql), Err(ReduceError::Refused(_))), "{sql}");
        }
        still_works(&t);
    }

    #[test]
    fn without_the_authorizer_extensions_and_attach_still_fail() {
        let conn = Connection::open_in_memory().unwrap();
        harden(&conn, 3, 10).unwrap();
        let r: rusqlite::Result<i64> =
            conn.query_row("SELECT load_extension('x')", [], |r| r.get(0));
        assert!(r.is_err(), "{r:?}");
        let r = conn.execute_batch("ATTACH DATABASE ':memory:' AS other");
        assert!(r.is_err(), "{r:?}");
        let r: rusqlite::Result<i64> =
            conn.query_row("SELECT length(zeroblob(100000000))", [], |r| r.get(0));
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn runaway_recursive_cte_hits_the_deadline() {
        let t = pods();
        let limits = Limits {
            deadline: Duration::from_millis(200),
            ..Limits::default()
        };
        let r = t.query(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
             SELECT count(*) FROM c",
            &limits,
        );
        assert!(matches!(r, Err(ReduceError::Deadline(_))), "{r:?}");
        still_works(&t);
    }

    #[test]
    fn cartesian_blow_up_is_bounded() {
        let t = pods();
        let limits = Limits {
            deadline: Duration::from_millis(300),
            ..Limits::default()
        };
        for sql in [
            "SELECT * FROM result a, result b, result c, result d, result e",
            "SELECT a.doc, b.doc FROM result a, result b, result c, result d, result e \
             ORDER BY random()",
        ] {
            match t.query(sql, &limits) {
                Ok(a) => assert!(a.truncated, "{sql}"),
                Err(ReduceError::Deadline(_)) => {}
                other => panic!("{sql}: {other:?}"),
            }
            still_works(&t);
        }
    }

    #[test]
    fn huge_sql_is_refused() {
        let t = pods();
        let sql = format!("SELECT '{}'", "x".repeat(1024 * 1024));
        assert!(matches!(q(&t, &sql), Err(ReduceError::TooLarge { .. })));
        still_works(&t);
    }

    #[test]
    fn huge_values_are_too_large() {
        let t = pods();
        let r = q(&t, "SELECT length(zeroblob(1000000000))");
        assert!(matches!(r, Err(ReduceError::TooLarge { .. })), "{r:?}");
        still_works(&t);
    }

    #[test]
    fn truncates_at_max_rows_and_max_bytes() {
        let t = pods();
        let limits = Limits {
            max_rows: 10,
            ..Limits::default()
        };
        let a = t.query("SELECT name FROM result", &limits).unwrap();
        assert_eq!(a.rows.len(), 10);
        assert!(a.truncated);
        let a = t
            .query("SELECT name FROM result LIMIT 10", &limits)
            .unwrap();
        assert_eq!(a.rows.len(), 10);
        assert!(!a.truncated);

        let limits = Limits {
            max_bytes: 200,
            ..Limits::default()
        };
        let a = t.query("SELECT doc FROM result", &limits).unwrap();
        assert!(a.truncated);
        assert!(a.rows.len() < 30);
        let size: usize = a
            .rows
            .iter()
            .map(|r| serde_json::to_string(r).unwrap().len())
            .sum();
        assert!(size <= 200);
    }

    #[test]
    fn invalid_sql_is_invalid() {
        let t = pods();
        for sql in [
            "SELEC 1",
            "SELECT nope FROM result",
            "SELECT * FROM nowhere",
            "",
        ] {
            let r = q(&t, sql);
            assert!(
                matches!(r, Err(ReduceError::Invalid(_) | ReduceError::Refused(_))),
                "{sql}: {r:?}"
            );
        }
        still_works(&t);
    }

    #[test]
    fn random_short_sql_never_panics() {
        let t = pods();
        let pieces = [
            "SELECT",
            "*",
            "FROM",
            "result",
            "WHERE",
            "name",
            "=",
            "'pod-1'",
            ";",
            "(",
            ")",
            ",",
            "doc",
            "->>",
            "'$.labels'",
            "json_each",
            "GROUP BY",
            "ORDER BY",
            "LIMIT",
            "1",
            "-1",
            "NULL",
            "count(*)",
            "UNION",
            "WITH",
            "RECURSIVE",
            "AS",
            "x",
            "\"",
            "'",
            "--",
            "/*",
            "PRAGMA",
            "ATTACH",
            "DELETE",
            "VALUES",
            "load_extension",
            "zeroblob(99999999)",
            "randomblob(5)",
            "||",
            "LIKE",
            "'%a%'",
            "ESCAPE",
            "CAST",
            "0x7fffffffffffffff",
            "é",
        ];
        let limits = Limits {
            deadline: Duration::from_millis(100),
            ..Limits::default()
        };
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..400 {
            let mut sql = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = 1 + (seed % 9) as usize;
            for _ in 0..n {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                sql.push_str(pieces[(seed % pieces.len() as u64) as usize]);
                sql.push(' ');
            }
            let _ = t.query(&sql, &limits);
        }
        still_works(&t);
    }

    #[test]
    fn loads_many_rows() {
        let columns: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
        let rows: Vec<_> = (0..10_000)
            .map(|r| {
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        (
                            c.clone(),
                            if i % 2 == 0 {
                                json!(r * i)
                            } else {
                                json!(format!("v{r}-{i}"))
                            },
                        )
                    })
                    .collect::<Map<_, _>>()
            })
            .collect();
        let t = ResultTable::load(&columns, &rows).unwrap();
        let a = q(&t, "SELECT count(*), sum(f2) FROM result").unwrap();
        assert_eq!(a.rows[0][0], json!(10_000));
    }
}
