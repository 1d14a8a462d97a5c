//! The kept rows of reduced results, in meho's store (table `results`, migration 0008).
//!
//! When a tool result is too large to show, the model sees a summary and a handle; the full rows
//! stay here, as JSON lines, so `result_query` can run read-only SQL over them later from any
//! replica (the store is shared: SQLite, or PostgreSQL to scale out).
//!
//! Invariants:
//! - A result is readable only by the tenant and principal that kept it, and only until it
//!   expires (expired rows are never returned, swept or not). Anything else is
//!   [`ReduceError::NotFound`] with the same text as a handle that never existed, so a caller
//!   cannot probe for other principals' handles.
//! - Handles are unguessable: `res-` and the 32 hex digits of a v4 UUID.
//! - One result is at most [`Caps::max_result_bytes`]; a principal's live results together at
//!   most [`Caps::max_principal_bytes`]. Making room evicts that principal's oldest results, in
//!   the same transaction as the insert, and never another principal's.

use meho_store::Pool;
use sqlx::Row as _;

use crate::ReduceError;

/// Size limits on kept results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// The most bytes of rows one result may keep.
    pub max_result_bytes: u64,
    /// The most bytes of live rows one principal (in one tenant) may keep in all.
    pub max_principal_bytes: u64,
}

impl Default for Caps {
    /// 64 MiB per result, 256 MiB per principal.
    fn default() -> Self {
        Caps {
            max_result_bytes: 64 * 1024 * 1024,
            max_principal_bytes: 256 * 1024 * 1024,
        }
    }
}

/// A result to keep.
pub struct NewResult<'a> {
    /// The tenant of the call that produced it.
    pub tenant: &'a str,
    /// The principal of that call; only it may read the result.
    pub principal: &'a str,
    /// The tool that produced it.
    pub tool: &'a str,
    /// The governed call's id.
    pub call_id: &'a str,
    /// The detected shape, e.g. `kubernetes_list`.
    pub shape: &'a str,
    /// The column names, in order.
    pub columns: &'a [String],
    /// How many rows `rows` holds.
    pub row_count: u64,
    /// The rows as JSON lines: one compact JSON object per line, each ending in `\n`.
    pub rows: Vec<u8>,
    /// When it was kept, in microseconds since the Unix epoch; also the "now" of the caps.
    pub created_at_us: i64,
    /// When it stops being readable, in microseconds since the Unix epoch.
    pub expires_at_us: i64,
}

impl std::fmt::Debug for NewResult<'_> {
    /// Everything but the rows, which may be tens of megabytes of tool output: only their size.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewResult")
            .field("tenant", &self.tenant)
            .field("principal", &self.principal)
            .field("tool", &self.tool)
            .field("call_id", &self.call_id)
            .field("shape", &self.shape)
            .field("columns", &self.columns)
            .field("row_count", &self.row_count)
            .field("rows_bytes", &self.rows.len())
            .field("created_at_us", &self.created_at_us)
            .field("expires_at_us", &self.expires_at_us)
            .finish()
    }
}

/// What [`ResultStore::put`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The new result's handle.
    pub handle: String,
    /// Handles of this principal's oldest results removed to make room, oldest first.
    pub evicted: Vec<String>,
}

/// What is known about a kept result, without its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The handle.
    pub handle: String,
    /// The tool that produced it.
    pub tool: String,
    /// The governed call's id.
    pub call_id: String,
    /// The detected shape.
    pub shape: String,
    /// The column names, in order.
    pub columns: Vec<String>,
    /// How many rows it holds.
    pub row_count: u64,
    /// The size of its rows in bytes.
    pub bytes: u64,
    /// When it was kept (µs since the Unix epoch).
    pub created_at_us: i64,
    /// When it stops being readable (µs since the Unix epoch).
    pub expires_at_us: i64,
}

/// The kept results in meho's store.
#[derive(Debug, Clone)]
pub struct ResultStore {
    pool: Pool,
    caps: Caps,
}

// Placeholders appear in numeric order: SQLite numbers `$N` parameters by first appearance.
const INSERT: &str = "INSERT INTO results \
     (handle, tenant, principal, tool, call_id, shape, columns, row_count, bytes, rows, \
      created_at_us, expires_at_us) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
const OTHERS_LIVE: &str = "SELECT handle, bytes FROM results \
     WHERE tenant = $1 AND principal = $2 AND expires_at_us > $3 AND handle <> $4 \
     ORDER BY created_at_us, handle";
const DELETE_ONE: &str = "DELETE FROM results WHERE handle = $1";
const META: &str = "SELECT handle, tool, call_id, shape, columns, row_count, bytes, \
     created_at_us, expires_at_us FROM results \
     WHERE tenant = $1 AND principal = $2 AND handle = $3 AND expires_at_us > $4";
const META_AND_ROWS: &str = "SELECT handle, tool, call_id, shape, columns, row_count, bytes, \
     created_at_us, expires_at_us, rows FROM results \
     WHERE tenant = $1 AND principal = $2 AND handle = $3 AND expires_at_us > $4";
const SWEEP: &str = "DELETE FROM results WHERE expires_at_us <= $1";
// PostgreSQL's SUM(BIGINT) is NUMERIC: cast back.
const PRINCIPAL_BYTES: &str = "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM results \
     WHERE tenant = $1 AND principal = $2 AND expires_at_us > $3";
// Serializes the puts of one principal across replicas, so two cannot both under-evict.
const PG_PRINCIPAL_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

/// The raw columns of a `META` row, before checking.
struct RawMeta {
    handle: String,
    tool: String,
    call_id: String,
    shape: String,
    columns: String,
    row_count: i64,
    bytes: i64,
    created_at_us: i64,
    expires_at_us: i64,
}

/// Reads a `META` row of either backend.
macro_rules! raw_meta {
    ($row:expr) => {{
        let row = $row;
        let read = || -> Result<RawMeta, sqlx::Error> {
            Ok(RawMeta {
                handle: row.try_get("handle")?,
                tool: row.try_get("tool")?,
                call_id: row.try_get("call_id")?,
                shape: row.try_get("shape")?,
                columns: row.try_get("columns")?,
                row_count: row.try_get("row_count")?,
                bytes: row.try_get("bytes")?,
                created_at_us: row.try_get("created_at_us")?,
                expires_at_us: row.try_get("expires_at_us")?,
            })
        };
        read()
    }};
}

/// The insert and the evictions of one put, on either backend's transaction.
macro_rules! put_in {
    ($pool:expr, $lock:expr, $new:expr, $handle:expr, $columns:expr, $row_count:expr, $bytes:expr, $cap:expr) => {
        async {
            let mut tx = $pool.begin().await?;
            if let Some(key) = $lock {
                sqlx::query(PG_PRINCIPAL_LOCK)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
            // The insert first: on SQLite it takes the write lock before anything is read, so the
            // transaction never has to upgrade a read lock (which fails rather than waits).
            sqlx::query(INSERT)
                .bind($handle)
                .bind($new.tenant)
                .bind($new.principal)
                .bind($new.tool)
                .bind($new.call_id)
                .bind($new.shape)
                .bind($columns)
                .bind($row_count)
                .bind($bytes)
                .bind($new.rows)
                .bind($new.created_at_us)
                .bind($new.expires_at_us)
                .execute(&mut *tx)
                .await?;
            let others = sqlx::query(OTHERS_LIVE)
                .bind($new.tenant)
                .bind($new.principal)
                .bind($new.created_at_us)
                .bind($handle)
                .fetch_all(&mut *tx)
                .await?;
            let mut sizes = Vec::with_capacity(others.len());
            for row in &others {
                sizes.push((
                    row.try_get::<String, _>("handle")?,
                    row.try_get::<i64, _>("bytes")?,
                ));
            }
            let evicted = oldest_to_evict(sizes, $bytes, $cap);
            for handle in &evicted {
                sqlx::query(DELETE_ONE)
                    .bind(handle)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<Vec<String>, sqlx::Error>(evicted)
        }
        .await
    };
}

impl ResultStore {
    /// Results kept in `pool`'s database (migrated by [`meho_store::Store::open`]), within `caps`.
    pub fn new(pool: Pool, caps: Caps) -> Self {
        ResultStore { pool, caps }
    }

    /// The size limits.
    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// A fresh, unguessable handle: `res-` and 32 lowercase hex digits of a v4 UUID.
    pub fn new_handle() -> String {
        format!("res-{}", uuid::Uuid::new_v4().simple())
    }

    /// Keeps a result under a fresh handle.
    ///
    /// Rows larger than [`Caps::max_result_bytes`] (or than [`Caps::max_principal_bytes`]) are
    /// [`ReduceError::TooLarge`] and nothing is kept. When the principal's live results plus this
    /// one exceed [`Caps::max_principal_bytes`], that principal's (same tenant's) oldest results
    /// are deleted until it fits, in the same transaction as the insert, and reported in
    /// [`Kept::evicted`].
    pub async fn put(&self, new: NewResult<'_>) -> Result<Kept, ReduceError> {
        let size = u64::try_from(new.rows.len()).unwrap_or(u64::MAX);
        for (what, cap) in [
            ("a result's", self.caps.max_result_bytes),
            ("a principal's", self.caps.max_principal_bytes),
        ] {
            if size > cap {
                return Err(ReduceError::TooLarge {
                    what: format!("result rows of {size} bytes, over {what} cap of {cap} bytes"),
                    limit: usize::try_from(cap).unwrap_or(usize::MAX),
                });
            }
        }
        let bytes = to_i64(size, "result bytes")?;
        let cap = to_i64(self.caps.max_principal_bytes, "principal cap")?;
        let row_count = to_i64(new.row_count, "row count")?;
        let columns = serde_json::to_string(new.columns)
            .map_err(|e| ReduceError::Internal(format!("encoding the column names: {e}")))?;
        let handle = Self::new_handle();
        let evicted = match &self.pool {
            Pool::Sqlite(pool) => {
                let lock: Option<String> = None;
                put_in!(pool, lock, new, &handle, &columns, row_count, bytes, cap)
            }
            Pool::Postgres(pool) => {
                let lock = Some(principal_key(new.tenant, new.principal));
                put_in!(pool, lock, new, &handle, &columns, row_count, bytes, cap)
            }
        }
        .map_err(|e| store_error("keeping a result", &e))?;
        if !evicted.is_empty() {
            tracing::debug!(
                handle = %handle,
                evicted = evicted.len(),
                "evicted the principal's oldest results to stay under its cap"
            );
        }
        Ok(Kept { handle, evicted })
    }

    /// The metadata of `handle` when it belongs to exactly this tenant and principal and expires
    /// after `now_us`; otherwise [`ReduceError::NotFound`], the same for "absent", "expired" and
    /// "not yours".
    pub async fn meta(
        &self,
        tenant: &str,
        principal: &str,
        handle: &str,
        now_us: i64,
    ) -> Result<Meta, ReduceError> {
        let raw = match &self.pool {
            Pool::Sqlite(pool) => match lookup(META, tenant, principal, handle, now_us)
                .fetch_optional(pool)
                .await
            {
                Ok(Some(row)) => raw_meta!(&row).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            },
            Pool::Postgres(pool) => match lookup(META, tenant, principal, handle, now_us)
                .fetch_optional(pool)
                .await
            {
                Ok(Some(row)) => raw_meta!(&row).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            },
        }
        .map_err(|e| store_error("reading a result", &e))?;
        match raw {
            Some(raw) => checked(raw),
            None => Err(ReduceError::NotFound(handle.to_owned())),
        }
    }

    /// The metadata and the rows (JSON lines) of `handle`, by the same rules as
    /// [`ResultStore::meta`].
    pub async fn rows(
        &self,
        tenant: &str,
        principal: &str,
        handle: &str,
        now_us: i64,
    ) -> Result<(Meta, Vec<u8>), ReduceError> {
        let found = match &self.pool {
            Pool::Sqlite(pool) => match lookup(META_AND_ROWS, tenant, principal, handle, now_us)
                .fetch_optional(pool)
                .await
            {
                Ok(Some(row)) => raw_meta!(&row)
                    .and_then(|raw| Ok(Some((raw, row.try_get::<Vec<u8>, _>("rows")?)))),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            },
            Pool::Postgres(pool) => match lookup(META_AND_ROWS, tenant, principal, handle, now_us)
                .fetch_optional(pool)
                .await
            {
                Ok(Some(row)) => raw_meta!(&row)
                    .and_then(|raw| Ok(Some((raw, row.try_get::<Vec<u8>, _>("rows")?)))),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            },
        }
        .map_err(|e| store_error("reading a result", &e))?;
        match found {
            Some((raw, rows)) => Ok((checked(raw)?, rows)),
            None => Err(ReduceError::NotFound(handle.to_owned())),
        }
    }

    /// Deletes every result (of every tenant) that expired at or before `now_us`; returns how
    /// many.
    pub async fn sweep(&self, now_us: i64) -> Result<u64, ReduceError> {
        let done = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query(SWEEP)
                .bind(now_us)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
            Pool::Postgres(pool) => sqlx::query(SWEEP)
                .bind(now_us)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
        };
        done.map_err(|e| store_error("sweeping expired results", &e))
    }

    /// The bytes of rows `principal` of `tenant` keeps in results live at `now_us`.
    pub async fn principal_bytes(
        &self,
        tenant: &str,
        principal: &str,
        now_us: i64,
    ) -> Result<u64, ReduceError> {
        let sum = match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query_scalar::<_, i64>(PRINCIPAL_BYTES)
                    .bind(tenant)
                    .bind(principal)
                    .bind(now_us)
                    .fetch_one(pool)
                    .await
            }
            Pool::Postgres(pool) => {
                sqlx::query_scalar::<_, i64>(PRINCIPAL_BYTES)
                    .bind(tenant)
                    .bind(principal)
                    .bind(now_us)
                    .fetch_one(pool)
                    .await
            }
        }
        .map_err(|e| store_error("summing a principal's results", &e))?;
        from_i64(sum, "bytes")
    }
}

/// A lookup by tenant, principal, handle and liveness, on either backend.
fn lookup<'q, DB>(
    sql: &'static str,
    tenant: &'q str,
    principal: &'q str,
    handle: &'q str,
    now_us: i64,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(sql)
        .bind(tenant)
        .bind(principal)
        .bind(handle)
        .bind(now_us)
}

/// The handles to evict, oldest first, so that `others` (oldest first) plus `incoming` bytes fit
/// in `cap`.
fn oldest_to_evict(others: Vec<(String, i64)>, incoming: i64, cap: i64) -> Vec<String> {
    let mut total = others
        .iter()
        .fold(incoming, |sum, (_, bytes)| sum.saturating_add(*bytes));
    let mut evicted = Vec::new();
    for (handle, bytes) in others {
        if total <= cap {
            break;
        }
        total = total.saturating_sub(bytes);
        evicted.push(handle);
    }
    evicted
}

/// The lock key of one principal of one tenant; the length prefix keeps `("a:b", "c")` and
/// `("a", "b:c")` apart.
fn principal_key(tenant: &str, principal: &str) -> String {
    format!("results:{}:{tenant}:{principal}", tenant.len())
}

fn checked(raw: RawMeta) -> Result<Meta, ReduceError> {
    let columns: Vec<String> = serde_json::from_str(&raw.columns).map_err(|e| {
        ReduceError::Store(format!(
            "result `{}` has unreadable column names: {e}",
            raw.handle
        ))
    })?;
    Ok(Meta {
        row_count: from_i64(raw.row_count, "row count")?,
        bytes: from_i64(raw.bytes, "bytes")?,
        handle: raw.handle,
        tool: raw.tool,
        call_id: raw.call_id,
        shape: raw.shape,
        columns,
        created_at_us: raw.created_at_us,
        expires_at_us: raw.expires_at_us,
    })
}

fn to_i64(value: u64, what: &str) -> Result<i64, ReduceError> {
    i64::try_from(value).map_err(|_| ReduceError::TooLarge {
        what: format!("{what} of {value}"),
        limit: usize::try_from(i64::MAX).unwrap_or(usize::MAX),
    })
}

fn from_i64(value: i64, what: &str) -> Result<u64, ReduceError> {
    u64::try_from(value)
        .map_err(|_| ReduceError::Store(format!("a stored result has a negative {what}: {value}")))
}

fn store_error(doing: &str, error: &sqlx::Error) -> ReduceError {
    tracing::warn!(error = %error, "{doing} failed");
    ReduceError::Store(format!("{doing}: {error}"))
}

#[cfg(test)]
mod tests {
    //! Every test runs on SQLite (a tempdir file) and on PostgreSQL (a fresh database on the
    //! server at `MEHO_TEST_DATABASE_URL`, dropped afterwards).

    use std::collections::HashSet;
    use std::io::Write as _;

    use sqlx::Connection as _;

    use super::*;

    const NOW: i64 = 1_800_000_000_000_000;
    const HOUR: i64 = 3_600_000_000;
    const ADMIN_URL_ENV: &str = "MEHO_TEST_DATABASE_URL";

    /// One backend's store for one test.
    struct Backend {
        name: &'static str,
        results: ResultStore,
        _dir: tempfile::TempDir,
        /// Declared last: dropped after the pools.
        _pg: Option<PgDatabase>,
    }

    /// A PostgreSQL database of one test, dropped (even when the test panics).
    struct PgDatabase {
        admin_url: String,
        name: String,
    }

    impl Drop for PgDatabase {
        fn drop(&mut self) {
            let admin_url = self.admin_url.clone();
            let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
            // A fresh runtime on its own thread: this may run inside the test's runtime.
            let outcome = std::thread::spawn(move || -> Result<(), String> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(async move {
                    let mut admin = sqlx::PgConnection::connect(&admin_url)
                        .await
                        .map_err(|e| e.to_string())?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut admin)
                        .await
                        .map_err(|e| e.to_string())?;
                    admin.close().await.map_err(|e| e.to_string())
                })
            })
            .join();
            if !matches!(outcome, Ok(Ok(()))) {
                eprintln!("warning: dropping test database {} failed", self.name);
            }
        }
    }

    /// The backends to run a test on: SQLite always; PostgreSQL when `MEHO_TEST_DATABASE_URL`
    /// is set (skipped loudly when it is not, and a failure under `CI=true`).
    async fn backends(caps: Caps) -> Vec<Backend> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("meho.db").display());
        let store = meho_store::Store::open(&url).await.unwrap();
        let mut out = vec![Backend {
            name: "sqlite",
            results: ResultStore::new(store.pool().clone(), caps),
            _dir: dir,
            _pg: None,
        }];
        match std::env::var(ADMIN_URL_ENV).ok().filter(|u| !u.is_empty()) {
            Some(admin_url) => {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
                let name = format!("meho_res_{}", uuid::Uuid::new_v4().simple());
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                admin.close().await.unwrap();
                let pg = PgDatabase {
                    admin_url: admin_url.clone(),
                    name: name.clone(),
                };
                let (base, _) = admin_url
                    .split('?')
                    .next()
                    .unwrap()
                    .rsplit_once('/')
                    .unwrap();
                let store = meho_store::Store::open(&format!("{base}/{name}"))
                    .await
                    .unwrap();
                out.push(Backend {
                    name: "postgres",
                    results: ResultStore::new(store.pool().clone(), caps),
                    _dir: tempfile::tempdir().unwrap(),
                    _pg: Some(pg),
                });
            }
            None => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{ADMIN_URL_ENV} is unset and CI=true: the PostgreSQL half of the result \
                     store tests must run"
                );
                let _ = writeln!(
                    std::io::stderr(),
                    "\nSKIPPED: result store tests on PostgreSQL: set {ADMIN_URL_ENV} \
                     (e.g. postgres://root@127.0.0.1:5432/postgres) to run them\n"
                );
            }
        }
        out
    }

    /// JSON lines of exactly `len` bytes (at least 16).
    fn lines_of(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut i = 0;
        while len - out.len() >= 64 {
            let line = format!("{{\"i\":{i},\"name\":\"pod-{i}\",\"ns\":\"default\"}}\n");
            if len - out.len() - line.len() < 16 {
                break;
            }
            out.extend_from_slice(line.as_bytes());
            i += 1;
        }
        let pad = len - out.len() - "{\"p\":\"\"}\n".len();
        out.extend_from_slice(format!("{{\"p\":\"{}\"}}\n", "x".repeat(pad)).as_bytes());
        assert_eq!(out.len(), len);
        out
    }

    fn new_result<'a>(
        tenant: &'a str,
        principal: &'a str,
        columns: &'a [String],
        rows: Vec<u8>,
        created_at_us: i64,
        expires_at_us: i64,
    ) -> NewResult<'a> {
        NewResult {
            tenant,
            principal,
            tool: "kubernetes_list",
            call_id: "call-1",
            shape: "kubernetes_list",
            columns,
            row_count: 3,
            rows,
            created_at_us,
            expires_at_us,
        }
    }

    fn columns() -> Vec<String> {
        vec!["name".to_owned(), "ns".to_owned(), "restarts".to_owned()]
    }

    fn is_well_formed(handle: &str) -> bool {
        handle.len() == 36
            && handle.starts_with("res-")
            && handle
                .bytes()
                .skip(4)
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    #[tokio::test]
    async fn put_then_rows_round_trips_bytes_and_metadata() {
        for b in backends(Caps::default()).await {
            let columns = columns();
            let rows = b"{\"name\":\"a\",\"ns\":\"x\",\"restarts\":0}\n{\"name\":\"b\",\"ns\":\"y\",\"restarts\":2}\n{\"name\":\"c\",\"ns\":null,\"restarts\":1}\n".to_vec();
            let kept = b
                .results
                .put(NewResult {
                    tenant: "a",
                    principal: "p",
                    tool: "k8s_get",
                    call_id: "call-42",
                    shape: "kubernetes_list",
                    columns: &columns,
                    row_count: 3,
                    rows: rows.clone(),
                    created_at_us: NOW,
                    expires_at_us: NOW + HOUR,
                })
                .await
                .unwrap();
            assert!(is_well_formed(&kept.handle), "{}: {}", b.name, kept.handle);
            assert!(kept.evicted.is_empty(), "{}", b.name);
            let expected = Meta {
                handle: kept.handle.clone(),
                tool: "k8s_get".to_owned(),
                call_id: "call-42".to_owned(),
                shape: "kubernetes_list".to_owned(),
                columns: columns.clone(),
                row_count: 3,
                bytes: rows.len() as u64,
                created_at_us: NOW,
                expires_at_us: NOW + HOUR,
            };
            let meta = b.results.meta("a", "p", &kept.handle, NOW).await.unwrap();
            assert_eq!(meta, expected, "{}", b.name);
            let (meta, got) = b.results.rows("a", "p", &kept.handle, NOW).await.unwrap();
            assert_eq!(meta, expected, "{}", b.name);
            assert_eq!(got, rows, "{}", b.name);
            assert_eq!(
                b.results.principal_bytes("a", "p", NOW).await.unwrap(),
                rows.len() as u64,
                "{}",
                b.name
            );
        }
    }

    #[tokio::test]
    async fn another_tenant_or_principal_gets_the_same_not_found_as_an_absent_handle() {
        for b in backends(Caps::default()).await {
            let columns = columns();
            let kept = b
                .results
                .put(new_result(
                    "a",
                    "p",
                    &columns,
                    lines_of(100),
                    NOW,
                    NOW + HOUR,
                ))
                .await
                .unwrap();
            let handle = kept.handle.as_str();
            let absent = ResultStore::new_handle();
            let absent_text = ReduceError::NotFound(absent.clone()).to_string();
            let absent_err = b.results.meta("a", "p", &absent, NOW).await.unwrap_err();
            assert_eq!(absent_err.to_string(), absent_text, "{}", b.name);
            let absent_err = b.results.rows("a", "p", &absent, NOW).await.unwrap_err();
            assert_eq!(absent_err.to_string(), absent_text, "{}", b.name);

            // The same text, the handle aside, for every caller it is not.
            let foreign_text = absent_text.replace(&absent, handle);
            for (tenant, principal) in [("b", "p"), ("a", "q"), ("b", "q"), ("A", "p"), ("", "")] {
                let err = b
                    .results
                    .meta(tenant, principal, handle, NOW)
                    .await
                    .unwrap_err();
                assert!(
                    matches!(&err, ReduceError::NotFound(h) if h == handle),
                    "{}",
                    b.name
                );
                assert_eq!(err.to_string(), foreign_text, "{}", b.name);
                let err = b
                    .results
                    .rows(tenant, principal, handle, NOW)
                    .await
                    .unwrap_err();
                assert!(
                    matches!(&err, ReduceError::NotFound(h) if h == handle),
                    "{}",
                    b.name
                );
                assert_eq!(err.to_string(), foreign_text, "{}", b.name);
                assert_eq!(
                    b.results
                        .principal_bytes(tenant, principal, NOW)
                        .await
                        .unwrap(),
                    0,
                    "{}",
                    b.name
                );
            }
            // The owner still reads it.
            b.results.rows("a", "p", handle, NOW).await.unwrap();
        }
    }

    #[tokio::test]
    async fn expired_results_are_not_found_before_the_sweep_which_deletes_exactly_them() {
        for b in backends(Caps::default()).await {
            let columns = columns();
            let mut expired = Vec::new();
            let mut live = Vec::new();
            for (tenant, principal) in [("a", "p"), ("b", "q")] {
                for (expires, is_live) in [(NOW - HOUR, false), (NOW, false), (NOW + 1, true)] {
                    let kept = b
                        .results
                        .put(new_result(
                            tenant,
                            principal,
                            &columns,
                            lines_of(50),
                            NOW - 2 * HOUR,
                            expires,
                        ))
                        .await
                        .unwrap();
                    let entry = (tenant, principal, kept.handle);
                    if is_live {
                        live.push(entry);
                    } else {
                        expired.push(entry);
                    }
                }
            }
            for (tenant, principal, handle) in &expired {
                let err = b
                    .results
                    .meta(tenant, principal, handle, NOW)
                    .await
                    .unwrap_err();
                assert!(matches!(err, ReduceError::NotFound(_)), "{}: {err}", b.name);
                let err = b
                    .results
                    .rows(tenant, principal, handle, NOW)
                    .await
                    .unwrap_err();
                assert!(matches!(err, ReduceError::NotFound(_)), "{}: {err}", b.name);
                // Still there, but never returned: it was readable before it expired.
                b.results
                    .meta(tenant, principal, handle, NOW - 2 * HOUR)
                    .await
                    .unwrap();
            }
            for (tenant, principal, handle) in &live {
                b.results
                    .rows(tenant, principal, handle, NOW)
                    .await
                    .unwrap();
            }
            assert_eq!(b.results.principal_bytes("a", "p", NOW).await.unwrap(), 50);

            assert_eq!(b.results.sweep(NOW).await.unwrap(), 4, "{}", b.name);
            for (tenant, principal, handle) in &expired {
                let err = b
                    .results
                    .meta(tenant, principal, handle, NOW - 2 * HOUR)
                    .await
                    .unwrap_err();
                assert!(matches!(err, ReduceError::NotFound(_)), "{}: {err}", b.name);
            }
            for (tenant, principal, handle) in &live {
                b.results
                    .rows(tenant, principal, handle, NOW)
                    .await
                    .unwrap();
            }
            assert_eq!(b.results.sweep(NOW).await.unwrap(), 0, "{}", b.name);
            assert_eq!(b.results.sweep(NOW + 1).await.unwrap(), 2, "{}", b.name);
        }
    }

    #[tokio::test]
    async fn a_result_exactly_at_the_cap_is_kept_and_one_byte_over_is_too_large() {
        let caps = Caps {
            max_result_bytes: 1000,
            max_principal_bytes: 10_000,
        };
        for b in backends(caps).await {
            assert_eq!(b.results.caps(), caps);
            let columns = columns();
            let kept = b
                .results
                .put(new_result(
                    "a",
                    "p",
                    &columns,
                    lines_of(1000),
                    NOW,
                    NOW + HOUR,
                ))
                .await
                .unwrap();
            assert_eq!(
                b.results.rows("a", "p", &kept.handle, NOW).await.unwrap().1,
                lines_of(1000)
            );
            let err = b
                .results
                .put(new_result(
                    "a",
                    "p",
                    &columns,
                    lines_of(1001),
                    NOW,
                    NOW + HOUR,
                ))
                .await
                .unwrap_err();
            assert!(
                matches!(err, ReduceError::TooLarge { limit: 1000, .. }),
                "{}: {err}",
                b.name
            );
            let text = err.to_string();
            assert!(text.contains("1001") && text.contains("1000"), "{text}");
            assert_eq!(
                b.results.principal_bytes("a", "p", NOW).await.unwrap(),
                1000
            );
            // Only the first was stored.
            assert_eq!(b.results.sweep(i64::MAX).await.unwrap(), 1, "{}", b.name);
        }
    }

    #[tokio::test]
    async fn the_principal_cap_evicts_that_principals_oldest_results_only() {
        let caps = Caps {
            max_result_bytes: 1000,
            max_principal_bytes: 3000,
        };
        for b in backends(caps).await {
            let columns = columns();
            let put = |tenant: &'static str, principal: &'static str, len: usize, at: i64| {
                let results = b.results.clone();
                let columns = columns.clone();
                async move {
                    results
                        .put(new_result(
                            tenant,
                            principal,
                            &columns,
                            lines_of(len),
                            at,
                            NOW + HOUR,
                        ))
                        .await
                        .unwrap()
                }
            };
            // Expired by the time of the puts below, so it does not count against the cap.
            let expired = b
                .results
                .put(new_result("a", "p", &columns, lines_of(900), NOW - 20, NOW))
                .await
                .unwrap();
            assert!(expired.evicted.is_empty(), "{}", b.name);
            // Kept out of creation order: the oldest is the second one put.
            let middle = put("a", "p", 1000, NOW + 2).await;
            let oldest = put("a", "p", 1000, NOW + 1).await;
            let newest = put("a", "p", 1000, NOW + 3).await;
            // Exactly at the cap: nothing evicted.
            assert!(newest.evicted.is_empty(), "{}", b.name);
            assert_eq!(
                b.results.principal_bytes("a", "p", NOW).await.unwrap(),
                3000
            );

            // Older results of another principal and of another tenant.
            let other_principal = put("a", "q", 1000, NOW - 10).await;
            let other_tenant = put("b", "p", 1000, NOW - 10).await;

            // Each 1000 more needs 1000 freed: the oldest goes (by creation, not by put order).
            let big = put("a", "p", 1000, NOW + 4).await;
            assert_eq!(big.evicted, vec![oldest.handle.clone()], "{}", b.name);
            let bigger = put("a", "p", 1000, NOW + 5).await;
            assert_eq!(bigger.evicted, vec![middle.handle.clone()], "{}", b.name);
            // 2000 more needs 2000 freed: the two oldest go, oldest first.
            let caps_two = Caps {
                max_result_bytes: 2000,
                max_principal_bytes: 3000,
            };
            let wide = ResultStore::new(b.results.pool.clone(), caps_two)
                .put(new_result(
                    "a",
                    "p",
                    &columns,
                    lines_of(2000),
                    NOW + 6,
                    NOW + HOUR,
                ))
                .await
                .unwrap();
            assert_eq!(
                wide.evicted,
                vec![newest.handle.clone(), big.handle.clone()],
                "{}",
                b.name
            );

            for gone in [&oldest, &middle, &newest, &big] {
                let err = b
                    .results
                    .meta("a", "p", &gone.handle, NOW)
                    .await
                    .unwrap_err();
                assert!(matches!(err, ReduceError::NotFound(_)), "{}: {err}", b.name);
            }
            for kept in [&bigger, &wide] {
                b.results.rows("a", "p", &kept.handle, NOW).await.unwrap();
            }
            b.results
                .rows("a", "q", &other_principal.handle, NOW)
                .await
                .unwrap();
            b.results
                .rows("b", "p", &other_tenant.handle, NOW)
                .await
                .unwrap();
            assert_eq!(
                b.results.principal_bytes("a", "p", NOW).await.unwrap(),
                3000
            );
            assert_eq!(
                b.results.principal_bytes("a", "q", NOW).await.unwrap(),
                1000
            );
            assert_eq!(
                b.results.principal_bytes("b", "p", NOW).await.unwrap(),
                1000
            );
            // The expired one was left to the sweep, not reported as evicted.
            assert_eq!(b.results.sweep(NOW).await.unwrap(), 1, "{}", b.name);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_puts_of_one_principal_keep_it_under_its_cap() {
        let caps = Caps {
            max_result_bytes: 1000,
            max_principal_bytes: 3000,
        };
        for b in backends(caps).await {
            let mut tasks = Vec::new();
            for i in 0..12 {
                let results = b.results.clone();
                tasks.push(tokio::spawn(async move {
                    let columns = columns();
                    results
                        .put(new_result(
                            "a",
                            "p",
                            &columns,
                            lines_of(1000),
                            NOW + i,
                            NOW + HOUR,
                        ))
                        .await
                        .unwrap()
                }));
            }
            let mut kept = HashSet::new();
            let mut evicted = HashSet::new();
            for task in tasks {
                let put = task.await.unwrap();
                assert!(kept.insert(put.handle), "{}", b.name);
                for handle in put.evicted {
                    assert!(evicted.insert(handle), "{}: evicted twice", b.name);
                }
            }
            assert!(evicted.is_subset(&kept), "{}", b.name);
            assert_eq!(evicted.len(), 9, "{}", b.name);
            assert_eq!(
                b.results.principal_bytes("a", "p", NOW).await.unwrap(),
                3000
            );
            for handle in kept.difference(&evicted) {
                b.results.rows("a", "p", handle, NOW).await.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn handles_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let handle = ResultStore::new_handle();
            assert!(is_well_formed(&handle), "{handle}");
            assert!(seen.insert(handle));
        }
        for b in backends(Caps::default()).await {
            let columns = columns();
            let mut kept = HashSet::new();
            for i in 0..20 {
                let handle = b
                    .results
                    .put(new_result(
                        "a",
                        "p",
                        &columns,
                        lines_of(100),
                        NOW + i,
                        NOW + HOUR,
                    ))
                    .await
                    .unwrap()
                    .handle;
                assert!(is_well_formed(&handle), "{}: {handle}", b.name);
                assert!(kept.insert(handle), "{}", b.name);
            }
        }
    }

    #[tokio::test]
    async fn an_eight_mib_result_round_trips() {
        for b in backends(Caps::default()).await {
            let columns = columns();
            let rows = lines_of(8 * 1024 * 1024);
            let kept = b
                .results
                .put(new_result(
                    "a",
                    "p",
                    &columns,
                    rows.clone(),
                    NOW,
                    NOW + HOUR,
                ))
                .await
                .unwrap();
            let (meta, got) = b.results.rows("a", "p", &kept.handle, NOW).await.unwrap();
            assert_eq!(meta.bytes, 8 * 1024 * 1024, "{}", b.name);
            assert!(got == rows, "{}: the 8 MiB rows differ", b.name);
        }
    }

    #[test]
    fn eviction_stops_as_soon_as_the_new_result_fits() {
        let others = vec![
            ("r1".to_owned(), 10),
            ("r2".to_owned(), 10),
            ("r3".to_owned(), 10),
        ];
        assert!(oldest_to_evict(others.clone(), 10, 40).is_empty());
        assert_eq!(oldest_to_evict(others.clone(), 11, 40), ["r1"]);
        assert_eq!(oldest_to_evict(others.clone(), 30, 40), ["r1", "r2"]);
        assert_eq!(oldest_to_evict(others, 40, 40), ["r1", "r2", "r3"]);
    }
}
