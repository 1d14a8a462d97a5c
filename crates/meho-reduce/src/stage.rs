//! The gateway's reduce stage and the `result_query` tool: one [`Results`] serves both, so the
//! rows a reduction keeps and the queries over them share one store and one cache.
//!
//! A reduction: the result's size is measured (stopping early past the threshold); a small
//! result passes unchanged; a large one is redacted with the audit log's redactor, shaped into
//! rows, kept in the store under a fresh handle (tenant and principal bound, with a TTL and size
//! caps), loaded into this replica's cache for the queries that follow, and answered with a
//! summary ([`crate::summary`]). `result_query` is a connector like any other: the gateway
//! freezes, plans, gates, decides (the handle must be the caller's), audits the SQL as the
//! call's intent and records the outcome; it never grows its own path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meho_audit::{CallOutcome, IntentReceipt, Redactor};
use meho_core::{Decision, Effect, ReasonCode, Tier};
use meho_gateway::{
    Annotations, Authorized, BoxFuture, CallContext, Caller, Connector, ErrorCode, Failed, Output,
    Plan, Reduced, Reducer, Refusal, Target, ToolError, ToolSpec,
};
use meho_policy::Decided;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::ReduceError;
use crate::shape::{self, Column, Row, ShapeKind, Source};
use crate::sql::{Limits, ResultTable, column_names};
use crate::store::{Meta, NewResult, ResultStore};
use crate::summary::{self, RESULT_QUERY, Summary};

/// How results are reduced and queried (from `[reduction]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// More rows than this: reduced.
    pub threshold_rows: usize,
    /// More bytes of JSON than this: reduced.
    pub threshold_bytes: usize,
    /// The most a summary may be.
    pub answer_max_bytes: usize,
    /// The largest result `raw = true` returns whole.
    pub raw_max_bytes: usize,
    /// How long kept rows live.
    pub ttl: Duration,
    /// What one `result_query` may use.
    pub query: Limits,
    /// Memory for loaded results on this replica (bytes of JSON).
    pub cache_bytes: usize,
}

impl Settings {
    /// The settings of `[reduction]`.
    pub fn from_config(config: &meho_config::ReductionConfig) -> Self {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Settings {
            threshold_rows: size(config.threshold_rows),
            threshold_bytes: size(config.threshold_bytes),
            answer_max_bytes: size(config.answer_max_bytes),
            raw_max_bytes: size(config.raw_max_bytes),
            ttl: config.ttl,
            query: Limits {
                deadline: config.query_timeout,
                max_rows: size(config.query_max_rows),
                max_bytes: size(config.query_max_bytes),
                ..Limits::default()
            },
            cache_bytes: size(config.cache_bytes),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_config(&meho_config::ReductionConfig::default())
    }
}

/// The reduce stage and the `result_query` connector, over one store and one cache.
#[derive(Debug, Clone)]
pub struct Results {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: ResultStore,
    settings: Settings,
    redactor: Redactor,
    cache: Mutex<Cache>,
    last_sweep: Mutex<Option<Instant>>,
}

/// How often a reduction also sweeps expired results from the store.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Results {
    /// Results kept in `store`, redacted with `redactor` (the audit log's) before they are kept.
    pub fn new(store: ResultStore, settings: Settings, redactor: Redactor) -> Self {
        Results {
            inner: Arc::new(Inner {
                store,
                settings,
                redactor,
                cache: Mutex::new(Cache::default()),
                last_sweep: Mutex::new(None),
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The store of kept rows.
    pub fn store(&self) -> &ResultStore {
        &self.inner.store
    }

    /// Forgets every result loaded on this replica (as a fresh replica would start).
    pub fn clear_cache(&self) {
        if let Ok(mut cache) = self.inner.cache.lock() {
            *cache = Cache::default();
        }
    }

    /// Deletes expired results from the store now; how many.
    pub async fn sweep(&self) -> Result<u64, ReduceError> {
        self.inner.store.sweep(now_us()).await
    }

    /// Sweeps in the background when the last sweep is older than [`SWEEP_EVERY`].
    fn maybe_sweep(&self) {
        let due = self.inner.last_sweep.lock().is_ok_and(|mut last| {
            let due = last.is_none_or(|at| at.elapsed() >= SWEEP_EVERY);
            if due {
                *last = Some(Instant::now());
            }
            due
        });
        if due {
            let results = self.clone();
            tokio::spawn(async move {
                match results.sweep().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(swept = n, "expired results deleted"),
                    Err(err) => tracing::warn!(%err, "could not sweep expired results"),
                }
            });
        }
    }

    /// Reduces `value` (the output of `tool`) for `call`. See [`Reducer::reduce`].
    pub async fn reduce_value(
        &self,
        call: CallContext<'_>,
        tool: &str,
        raw: bool,
        value: Value,
    ) -> Result<Reduced, ToolError> {
        let settings = self.inner.settings;
        let mut raw_refused = None;
        if raw {
            let size = bounded_size(&value, settings.raw_max_bytes);
            if size <= settings.raw_max_bytes {
                return Ok(Reduced {
                    value,
                    record: Some(json!({ "raw": true, "shown_bytes": size })),
                });
            }
            raw_refused = Some(format!(
                "`raw` was asked for, but the result is larger than the raw cap of {} bytes, so it was reduced",
                settings.raw_max_bytes
            ));
        } else if let size = bounded_size(&value, settings.threshold_bytes)
            && size <= settings.threshold_bytes
            && small_in_rows(&value, size, settings.threshold_rows)
        {
            return Ok(Reduced {
                value,
                record: None,
            });
        }
        self.maybe_sweep();
        let redactor = self.inner.redactor.clone();
        let max_kept =
            usize::try_from(self.inner.store.caps().max_result_bytes).unwrap_or(usize::MAX);
        let prepared = tokio::task::spawn_blocking(move || prepare(value, &redactor, max_kept))
            .await
            .map_err(|err| ToolError::internal(format!("the reduction failed: {err}")))?;
        let created_at_us = now_us();
        let ttl_us = i64::try_from(settings.ttl.as_micros()).unwrap_or(i64::MAX);
        let expires_at_us = created_at_us.saturating_add(ttl_us);
        let kept = self
            .inner
            .store
            .put(NewResult {
                tenant: &call.caller.tenant,
                principal: &call.caller.principal,
                tool,
                call_id: call.call_id,
                shape: summary::shape_name(prepared.kind),
                columns: &prepared.fields,
                row_count: prepared.kept_rows as u64,
                rows: prepared.blob.clone(),
                created_at_us,
                expires_at_us,
            })
            .await
            .map_err(|err| {
                ToolError::internal(format!(
                    "the result ({} bytes) could not be kept for querying, so it is not shown: {err}",
                    prepared.source_bytes
                ))
            })?;
        let expires_at = meho_gateway::govern::rfc3339(expires_at_us);
        let note = match (&prepared.note, &raw_refused) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (Some(a), None) => Some(a.clone()),
            (None, Some(b)) => Some(b.clone()),
            (None, None) => None,
        };
        let answer = summary::answer(
            &Summary {
                handle: &kept.handle,
                expires_at: &expires_at,
                shape: prepared.kind,
                note: note.as_deref(),
                columns: &prepared.columns,
                rows: &prepared.rows,
                kept_rows: prepared.kept_rows,
                source_bytes: prepared.source_bytes as u64,
                context: &prepared.context,
            },
            summary::budget(prepared.source_bytes, settings.answer_max_bytes),
        );
        let shown_bytes = summary::size_of(&answer);
        let mut record = json!({
            "handle": kept.handle,
            "rows": prepared.rows.len(),
            "kept_rows": prepared.kept_rows,
            "shape": summary::shape_name(prepared.kind),
            "source_bytes": prepared.source_bytes,
            "shown_bytes": shown_bytes,
            "expires_at": expires_at,
        });
        if let Some(fields) = record.as_object_mut() {
            if raw {
                fields.insert("raw".into(), json!(true));
            }
            if !kept.evicted.is_empty() {
                fields.insert("evicted".into(), json!(kept.evicted));
            }
        }
        // Load the rows for the queries that follow, off the answer's path (the rows themselves
        // are dropped here: the load reads the kept blob).
        let Prepared {
            blob,
            fields,
            kept_bytes,
            rows,
            ..
        } = prepared;
        // Freeing a large result (millions of small allocations) takes as long as shaping it:
        // not on the answer's path.
        if rows.len() > settings.threshold_rows {
            tokio::task::spawn_blocking(move || drop(rows));
        }
        self.prime(
            call.caller,
            &kept.handle,
            expires_at_us,
            fields,
            blob,
            kept_bytes,
        );
        Ok(Reduced {
            value: answer,
            record: Some(record),
        })
    }

    /// Loads `prepared`'s kept rows into this replica's cache in the background. A query that
    /// comes meanwhile waits for this load rather than loading the rows a second time.
    fn prime(
        &self,
        caller: &Caller,
        handle: &str,
        expires_at_us: i64,
        fields: Vec<String>,
        blob: Vec<u8>,
        json_bytes: usize,
    ) {
        let key = CacheKey {
            tenant: caller.tenant.clone(),
            principal: caller.principal.clone(),
            handle: handle.to_owned(),
        };
        let Some(slot) = self.slot(key, expires_at_us, json_bytes) else {
            return;
        };
        tokio::spawn(async move {
            let loaded = slot
                .get_or_try_init(|| async move {
                    tokio::task::spawn_blocking(move || {
                        ResultTable::load_lines(&fields, &decode_rows(&blob)?)
                    })
                    .await
                    .map_err(|err| ReduceError::Internal(err.to_string()))?
                    .map(|table| Arc::new(Mutex::new(table)))
                })
                .await;
            if let Err(err) = loaded {
                tracing::debug!(%err, "a kept result could not be loaded");
            }
        });
    }

    /// The cache's slot for `key` (a new, empty one when there is none), or `None` when the
    /// rows would not fit the cache at all.
    fn slot(&self, key: CacheKey, expires_at_us: i64, json_bytes: usize) -> Option<Slot> {
        let budget = self.inner.settings.cache_bytes;
        let mut cache = self.inner.cache.lock().ok()?;
        cache.slot(key, expires_at_us, json_bytes, budget, now_us())
    }

    /// The loaded table of the kept result `meta` (the caller's, as the store said): from this
    /// replica's cache (waiting for a load under way), else from the store.
    async fn table(
        &self,
        caller: &Caller,
        meta: &Meta,
    ) -> Result<Arc<Mutex<ResultTable>>, ReduceError> {
        let now = now_us();
        let handle = meta.handle.as_str();
        let key = CacheKey {
            tenant: caller.tenant.clone(),
            principal: caller.principal.clone(),
            handle: handle.to_owned(),
        };
        let bytes = usize::try_from(meta.bytes).unwrap_or(usize::MAX);
        let load = || async {
            let (meta, blob) = self
                .inner
                .store
                .rows(&caller.tenant, &caller.principal, handle, now)
                .await?;
            tokio::task::spawn_blocking(move || {
                ResultTable::load_lines(&meta.columns, &decode_rows(&blob)?)
            })
            .await
            .map_err(|err| ReduceError::Internal(err.to_string()))?
            .map(|table| Arc::new(Mutex::new(table)))
        };
        match self.slot(key, meta.expires_at_us, bytes) {
            Some(slot) => slot.get_or_try_init(load).await.cloned(),
            None => load().await,
        }
    }

    /// Runs `sql` over `handle`'s rows for `caller`, at most `limit` rows.
    pub async fn query(
        &self,
        caller: &Caller,
        handle: &str,
        sql: String,
        limit: Option<usize>,
    ) -> Result<crate::sql::Answer, ReduceError> {
        let meta = self
            .inner
            .store
            .meta(&caller.tenant, &caller.principal, handle, now_us())
            .await?;
        self.query_kept(caller, &meta, sql, limit).await
    }

    /// [`Results::query`] over the kept result `meta`, already looked up for `caller`.
    async fn query_kept(
        &self,
        caller: &Caller,
        meta: &Meta,
        sql: String,
        limit: Option<usize>,
    ) -> Result<crate::sql::Answer, ReduceError> {
        let table = self.table(caller, meta).await?;
        let mut limits = self.inner.settings.query;
        if let Some(limit) = limit {
            limits.max_rows = limits.max_rows.min(limit.max(1));
        }
        tokio::task::spawn_blocking(move || {
            let table = table
                .lock()
                .map_err(|_| ReduceError::Internal("a query panicked on this result".to_owned()))?;
            table.query(&sql, &limits)
        })
        .await
        .map_err(|err| ReduceError::Internal(err.to_string()))?
    }
}

/// The compact JSON size of `value`, counting no further than just past `limit`.
fn bounded_size(value: &Value, limit: usize) -> usize {
    struct Bounded {
        bytes: usize,
        limit: usize,
    }
    impl std::io::Write for Bounded {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.bytes = self.bytes.saturating_add(buf.len());
            if self.bytes > self.limit {
                // Stops the serializer: the size is known to be over the limit.
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Bounded { bytes: 0, limit };
    let _ = serde_json::to_writer(&mut counter, value);
    counter.bytes
}

/// Whether a small `value` (of `size` bytes of JSON) makes at most `threshold` rows.
fn small_in_rows(value: &Value, size: usize, threshold: usize) -> bool {
    let shaped = match pick(value.clone(), size).0 {
        Picked::Json(json) => shape::shape(Source::Json(json)),
        Picked::Text(text) => shape::shape(Source::Text(text.as_bytes())),
    };
    shaped.rows.len() <= threshold
}

/// What of a result becomes rows.
enum Picked {
    Json(Value),
    Text(String),
}

/// The part of `value` to shape, and the fields beside it (abbreviated). A result object whose
/// largest string field holds at least half of its `total` bytes of JSON (`stdout`, a log) is
/// that text; anything else is shaped whole as JSON, its top-level scalars kept as context.
fn pick(value: Value, total: usize) -> (Picked, Map<String, Value>) {
    let mut context = Map::new();
    let Value::Object(mut object) = value else {
        return match value {
            Value::String(text) => (Picked::Text(text), context),
            other => (Picked::Json(other), context),
        };
    };
    let text_field = object
        .iter()
        .filter_map(|(key, value)| value.as_str().map(|text| (key, text.len())))
        .max_by_key(|(_, len)| *len)
        .filter(|(_, len)| len.saturating_mul(2) >= total)
        .map(|(key, _)| key.clone());
    if let Some(key) = text_field
        && let Some(Value::String(text)) = object.remove(&key)
    {
        for (field, value) in &object {
            context.insert(field.clone(), summary::abbreviate(value));
        }
        context.insert(
            "rows_from".to_owned(),
            Value::String(format!("the text of `{key}`")),
        );
        return (Picked::Text(text), context);
    }
    for (field, value) in &object {
        if !value.is_array() && !value.is_object() {
            context.insert(field.clone(), summary::abbreviate(value));
        }
    }
    (Picked::Json(Value::Object(object)), context)
}

/// A result made ready to keep and to summarize.
struct Prepared {
    kind: ShapeKind,
    note: Option<String>,
    /// The rows' fields, in order (what the table is loaded from).
    fields: Vec<String>,
    /// The columns, named as SQL names them.
    columns: Vec<Column>,
    rows: Vec<Row>,
    kept_rows: usize,
    kept_bytes: usize,
    blob: Vec<u8>,
    source_bytes: usize,
    context: Map<String, Value>,
}

/// Redacts, shapes and serializes `value`: the rows as compressed JSON lines, as many as fit
/// `max_kept` bytes of JSON. The column summaries are computed on a second thread while the
/// rows are written.
fn prepare(mut value: Value, redactor: &Redactor, max_kept: usize) -> Prepared {
    let source_bytes = redact(redactor, &mut value);
    let (picked, context) = pick(value, source_bytes);
    let shaped = match picked {
        Picked::Json(json) => shape::shape(Source::Json(json)),
        Picked::Text(text) => shape::shape(Source::Text(text.as_bytes())),
    };
    let ((mut columns, fields), (blob, kept_rows, kept_bytes)) = std::thread::scope(|scope| {
        let summaries = scope.spawn(|| {
            let columns = shape::ordered_columns(&shaped);
            let fields: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
            (columns, fields)
        });
        let kept = encode_rows(&shaped.rows, max_kept);
        let summaries = summaries.join().unwrap_or_else(|_| {
            let columns = shape::ordered_columns(&shaped);
            let fields = columns.iter().map(|c| c.name.clone()).collect();
            (columns, fields)
        });
        (summaries, kept)
    });
    for (column, name) in columns.iter_mut().zip(column_names(&fields)) {
        column.name = name;
    }
    let mut note = shaped.note;
    if kept_rows < shaped.rows.len() {
        let cut = format!(
            "only the first {kept_rows} of {} rows were kept ({max_kept} bytes per result)",
            shaped.rows.len()
        );
        note = Some(note.map_or(cut.clone(), |n| format!("{n}; {cut}")));
    }
    Prepared {
        kind: shaped.kind,
        note,
        fields,
        columns,
        rows: shaped.rows,
        kept_rows,
        kept_bytes,
        blob,
        source_bytes,
        context,
    }
}

/// Arrays this long are redacted on two threads.
const PARALLEL_ITEMS: usize = 2048;

/// Redacts every string of `value` (keys included), as [`Redactor::redact_value`] does, and
/// returns the size of `value`'s compact JSON as it was. A large collection (the value, or one
/// of its fields) is measured and redacted in two halves on two threads.
fn redact(redactor: &Redactor, value: &mut Value) -> usize {
    /// Measures, then redacts, `items` on two threads; the sum of the items' sizes.
    fn halves(redactor: &Redactor, items: &mut [Value]) -> usize {
        let (first, second) = items.split_at_mut(items.len() / 2);
        let work = |part: &mut [Value]| {
            let mut size = 0;
            for item in part {
                size += summary::size_of(item);
                redactor.redact_value(item);
            }
            size
        };
        std::thread::scope(|scope| {
            let one = scope.spawn(|| work(first));
            let two = work(second);
            one.join().unwrap_or(0) + two
        })
    }
    /// `[`, `]` and the commas between `n` items.
    fn array_overhead(n: usize) -> usize {
        2 + n.saturating_sub(1)
    }
    match value {
        Value::Array(items) if items.len() >= PARALLEL_ITEMS => {
            array_overhead(items.len()) + halves(redactor, items)
        }
        Value::Object(fields) => {
            let large = fields
                .iter()
                .find(|(_, v)| v.as_array().is_some_and(|a| a.len() >= PARALLEL_ITEMS))
                .map(|(key, _)| key.clone());
            let Some(key) = large else {
                let size = summary::size_of(value);
                redactor.redact_value(value);
                return size;
            };
            let mut items = fields.remove(&key).unwrap_or(Value::Null);
            let others = fields.len();
            // The rest of the object, then `"key":` and a comma when there is a rest.
            let mut size = summary::size_of(value)
                + summary::size_of(&Value::String(key.clone()))
                + 1
                + usize::from(others > 0);
            redactor.redact_value(value);
            if let Value::Array(list) = &mut items {
                size += array_overhead(list.len()) + halves(redactor, list);
            }
            if let Value::Object(fields) = value {
                fields.insert(redactor.redact_str(&key).into_owned(), items);
            }
            size
        }
        _ => {
            let size = summary::size_of(value);
            redactor.redact_value(value);
            size
        }
    }
}

/// `rows` as JSON lines, zlib-compressed (fast level: JSON shrinks about tenfold, and the
/// store writes a tenth of it), stopping before the JSON would pass `max_kept` bytes. Returns
/// the blob, the rows kept and their JSON bytes.
fn encode_rows(rows: &[Row], max_kept: usize) -> (Vec<u8>, usize, usize) {
    use std::io::Write as _;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut line = Vec::new();
    let mut json_bytes = 0usize;
    let mut kept = 0usize;
    for row in rows {
        line.clear();
        if serde_json::to_writer(&mut line, row).is_err() {
            break;
        }
        line.push(b'\n');
        if json_bytes + line.len() > max_kept || encoder.write_all(&line).is_err() {
            break;
        }
        json_bytes += line.len();
        kept += 1;
    }
    // Writing into a Vec cannot fail.
    let blob = encoder.finish().unwrap_or_default();
    (blob, kept, json_bytes)
}

/// The JSON lines a kept blob holds.
pub fn decode_rows(blob: &[u8]) -> Result<Vec<u8>, ReduceError> {
    use std::io::Read as _;
    let mut lines = Vec::with_capacity(blob.len().saturating_mul(8));
    flate2::read::ZlibDecoder::new(blob)
        .read_to_end(&mut lines)
        .map_err(|err| {
            ReduceError::Internal(format!("a kept result does not decompress: {err}"))
        })?;
    Ok(lines)
}

/// Microseconds since the epoch.
fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    tenant: String,
    principal: String,
    handle: String,
}

/// A cache slot: the table once loaded; loads of one result share it.
type Slot = Arc<tokio::sync::OnceCell<Arc<Mutex<ResultTable>>>>;

/// What a loaded table costs in memory, per byte of its rows' JSON: each row is held twice
/// (its columns, and `doc`), as JSONB, plus SQLite's pages (measured about 2.2 on pod lists).
const MEMORY_PER_JSON_BYTE: usize = 2;

#[derive(Debug)]
struct Cached {
    slot: Slot,
    expires_at_us: i64,
    bytes: usize,
    used: u64,
}

/// Loaded results on this replica, least recently used out first, within a byte budget.
#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<CacheKey, Cached>,
    bytes: usize,
    clock: u64,
}

impl Cache {
    /// The slot of `key`, made (evicting the least recently used) when there is none or it
    /// expired; `None` when a table of `json_bytes` could never fit `budget`.
    fn slot(
        &mut self,
        key: CacheKey,
        expires_at_us: i64,
        json_bytes: usize,
        budget: usize,
        now_us: i64,
    ) -> Option<Slot> {
        self.clock += 1;
        let clock = self.clock;
        if let Some(entry) = self.entries.get_mut(&key) {
            if entry.expires_at_us > now_us {
                entry.used = clock;
                return Some(Arc::clone(&entry.slot));
            }
            if let Some(gone) = self.entries.remove(&key) {
                self.bytes -= gone.bytes;
            }
        }
        let bytes = json_bytes.saturating_mul(MEMORY_PER_JSON_BYTE);
        if bytes > budget {
            return None;
        }
        while self.bytes + bytes > budget {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(key, _)| key.clone())?;
            if let Some(gone) = self.entries.remove(&oldest) {
                self.bytes -= gone.bytes;
            }
        }
        let slot = Slot::default();
        self.bytes += bytes;
        self.entries.insert(
            key,
            Cached {
                slot: Arc::clone(&slot),
                expires_at_us,
                bytes,
                used: clock,
            },
        );
        Some(slot)
    }
}

impl Reducer for Results {
    fn reduces(&self, tool: &str) -> bool {
        tool != RESULT_QUERY
    }

    fn output_schema(&self) -> Value {
        summary::output_schema()
    }

    fn reduce<'a>(
        &'a self,
        call: CallContext<'a>,
        tool: &'a str,
        raw: bool,
        value: Value,
    ) -> BoxFuture<'a, Result<Reduced, ToolError>> {
        Box::pin(self.reduce_value(call, tool, raw, value))
    }
}

/// `result_query` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryArgs {
    /// The handle of a reduced result (`res-…`), from its summary.
    pub handle: String,
    /// One read-only SQLite statement over table `result` (one column per summary column, plus
    /// `doc`, the row as JSON; JSON1 works: `->>`, `json_extract`, `json_each`).
    pub sql: String,
    /// The most rows to answer (at most 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
}

/// The rule a `result_query` decision names: only the principal a result was kept for, in its
/// tenant, may query it.
const OWNER_RULE: &str = "results:owner";

fn to_tool_error(error: ReduceError) -> ToolError {
    let code = match &error {
        ReduceError::Invalid(_) => ErrorCode::InvalidArguments,
        ReduceError::Refused(_) => ErrorCode::Denied,
        ReduceError::Deadline(_) | ReduceError::TooLarge { .. } => ErrorCode::Limit,
        ReduceError::NotFound(_) => ErrorCode::NotFound,
        ReduceError::Store(_) | ReduceError::Internal(_) => ErrorCode::Internal,
    };
    ToolError::new(code, format!("{RESULT_QUERY}: {error}"))
}

impl Connector for Results {
    type Action = QueryArgs;
    /// The kept result the decision found the caller's: `execute` queries exactly it, without
    /// looking it up again.
    type Credential = Meta;

    fn tools(&self) -> Vec<ToolSpec> {
        let mut spec = ToolSpec::of::<QueryArgs>(
            RESULT_QUERY,
            "Run one read-only SQLite query over a large result that was reduced to a summary (its `handle`). The table is `result`: one column per column of the summary, plus `doc` (the row as JSON). Answers at most 500 rows and 16 KiB (`truncated` beyond).",
            Tier::Read,
            Annotations {
                read_only: true,
                destructive: false,
                idempotent: true,
                open_world: false,
            },
        );
        // Only the owner rule decides a query: nothing to hold.
        spec.never_held = true;
        spec.output_schema = Some(json!({
            "type": "object",
            "required": ["columns", "rows", "row_count", "truncated"],
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "rows": {"type": "array", "items": {"type": "array"}},
                "row_count": {"type": "integer", "minimum": 0},
                "truncated": {"type": "boolean"},
                "elapsed_ms": {"type": "number"},
            },
        }));
        vec![spec]
    }

    fn plan<'a>(
        &'a self,
        _call: CallContext<'a>,
        tool: &'a str,
        arguments: &'a Value,
    ) -> BoxFuture<'a, Result<Plan<QueryArgs>, ToolError>> {
        Box::pin(async move {
            let args: QueryArgs = meho_gateway::parse_arguments(tool, arguments)?;
            if args.limit == Some(0) {
                return Err(ToolError::invalid(format!(
                    "{RESULT_QUERY}: `limit` must be at least 1"
                )));
            }
            Ok(Plan {
                tool: tool.to_owned(),
                target: args.handle.clone(),
                summary: format!("query result {}", args.handle),
                min_tier: Tier::Read,
                learnable: None,
                session_id: None,
                arguments: serde_json::to_value(&args).unwrap_or(Value::Null),
                request: arguments.clone(),
                preview: false,
                action: args,
            })
        })
    }

    fn authorize<'a>(
        &'a self,
        call: CallContext<'a>,
        plan: &'a Plan<QueryArgs>,
        _approval: Option<&'a meho_gateway::ApprovalClaim>,
    ) -> BoxFuture<'a, Result<Authorized<Meta>, Refusal>> {
        Box::pin(async move {
            let caller = call.caller;
            let meta = self
                .inner
                .store
                .meta(
                    &caller.tenant,
                    &caller.principal,
                    &plan.action.handle,
                    now_us(),
                )
                .await
                .map_err(|err| Refusal::Error(to_tool_error(err)))?;
            let mut decision = Decision::refused(ReasonCode::Allowed, OWNER_RULE, Tier::Read);
            decision.effect = Effect::Allow;
            decision.cap_tier(caller.max_tier);
            Ok(Authorized {
                decision: Decided::from(decision),
                credential: Some(meta),
                serial: None,
                runs: None,
            })
        })
    }

    fn execute<'a>(
        &'a self,
        call: CallContext<'a>,
        plan: &'a Plan<QueryArgs>,
        authorized: Authorized<Meta>,
        _receipt: &'a IntentReceipt,
    ) -> BoxFuture<'a, Result<Output, Failed>> {
        Box::pin(async move {
            let args = &plan.action;
            let Some(meta) = authorized.credential else {
                let error = ToolError::internal("result_query: authorized without its result");
                return Err(Failed::new(error, None));
            };
            let answer = self
                .query_kept(
                    call.caller,
                    &meta,
                    args.sql.clone(),
                    args.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
                )
                .await
                .map_err(|err| Failed::new(to_tool_error(err), None))?;
            let value = json!({
                "columns": answer.columns,
                "row_count": answer.rows.len(),
                "rows": answer.rows,
                "truncated": answer.truncated,
                "elapsed_ms": answer.elapsed.as_secs_f64() * 1000.0,
            });
            let output_bytes = summary::size_of(&value) as u64;
            let mut notes = Map::new();
            notes.insert("rows".to_owned(), json!(answer.rows.len()));
            notes.insert("truncated".to_owned(), json!(answer.truncated));
            Ok(Output {
                value,
                outcome: CallOutcome {
                    output_bytes,
                    ..CallOutcome::default()
                },
                notes,
            })
        })
    }

    fn targets<'a>(&'a self, _caller: &'a Caller) -> BoxFuture<'a, Result<Vec<Target>, ToolError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn has_targets<'a>(&'a self, _caller: &'a Caller) -> BoxFuture<'a, bool> {
        // Every caller may query what it was given.
        Box::pin(async { true })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use serde_json::json;

    use super::*;

    /// Rows from JSON lines.
    fn parse_lines(blob: &[u8]) -> Result<Vec<Row>, ReduceError> {
        blob.split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| {
                serde_json::from_slice::<Row>(line).map_err(|err| {
                    ReduceError::Internal(format!("a kept row does not parse: {err}"))
                })
            })
            .collect()
    }

    #[test]
    fn parallel_redaction_is_the_same_as_redact_value() {
        let redactor = Redactor::new(&["tok-[0-9]+"]).unwrap();
        let items: Vec<Value> = (0..5000)
            .map(|i| json!({"n": i, "line": format!("password={i} tok-{i} ok"), format!("tok-{i}"): "k"}))
            .collect();
        for original in [
            Value::Array(items.clone()),
            json!({"items": items, "tok-1": "password=x", "small": ["tok-2"]}),
            json!({"few": ["tok-3"], "s": "bearer abc.def"}),
            json!({"only": (0..3000).collect::<Vec<_>>()}),
            json!({"a": "x", "list": (0..3000).map(|i| json!({"s": format!("é\\\"{i}")})).collect::<Vec<_>>()}),
        ] {
            let mut expected = original.clone();
            redactor.redact_value(&mut expected);
            let size = summary::size_of(&original);
            let mut got = original;
            assert_eq!(redact(&redactor, &mut got), size);
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn kept_rows_round_trip_and_stop_at_the_cap() {
        let rows: Vec<Row> = (0..100)
            .map(|i| json!({"n": i}).as_object().unwrap().clone())
            .collect();
        let (blob, kept, bytes) = encode_rows(&rows, usize::MAX);
        assert_eq!(kept, 100);
        let lines = decode_rows(&blob).unwrap();
        assert_eq!(lines.len(), bytes);
        assert_eq!(parse_lines(&lines).unwrap(), rows);
        // `{"n":0}\n` is 8 bytes: 10 rows within 85 bytes.
        let (blob, kept, bytes) = encode_rows(&rows, 85);
        assert_eq!((kept, bytes), (10, 80));
        assert_eq!(parse_lines(&decode_rows(&blob).unwrap()).unwrap().len(), 10);
        assert!(decode_rows(b"not zlib").is_err());
    }
}
