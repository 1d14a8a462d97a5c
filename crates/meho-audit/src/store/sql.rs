//! The SQLite and PostgreSQL backends. Their SQL is the same but for how a write transaction
//! starts and how concurrent writers to one tenant's chain are serialized, so the shared code is
//! written once in `backend!` and instantiated per database.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sqlx::{FromRow, PgPool, Postgres, QueryBuilder, Sqlite, SqlitePool, Transaction};

use super::sqlite_direct::DirectWriter;
use super::{Appended, AuditStore, BoxFuture, Filter, Head, Page, Stamped};
use crate::AuditError;
use crate::chain::link;
use crate::checkpoint::Checkpoint;
use crate::record::{GENESIS_HASH, Record};
use crate::verify::{ChainChecker, check_chain_by_pages};

/// Rows per multi-row INSERT: 15 binds each stays far below SQLite's 32766 limit.
const INSERT_CHUNK: usize = 500;

/// Ids per `IN (…)` list of `linked`, so a read stays far below every backend's bind limit.
const LINKED_CHUNK: usize = 500;

const RECORD_COLUMNS: &str = "row_id, id, tenant, seq, ts, kind, principal, target, action, outcome, \
     session_id, approval_id, call_id, body, prev_hash, hash";

#[derive(Debug, FromRow)]
struct CheckpointRow {
    tenant: String,
    seq: i64,
    head_hash: String,
    time: i64,
    key_id: String,
    signature: String,
}

impl From<CheckpointRow> for Checkpoint {
    fn from(row: CheckpointRow) -> Self {
        Checkpoint {
            tenant: row.tenant,
            seq: row.seq,
            head_hash: row.head_hash,
            time: row.time,
            key_id: row.key_id,
            signature: row.signature,
        }
    }
}

fn store_err(err: sqlx::Error) -> AuditError {
    AuditError::store(err)
}

/// A stamped record linked into its chain, ready to insert.
pub(super) struct Linked<'a> {
    pub(super) stamped: &'a Stamped,
    pub(super) seq: i64,
    pub(super) prev_hash: String,
    pub(super) hash: String,
}

/// What the callers of a committed batch are told.
pub(super) fn appended(linked: Vec<Linked<'_>>) -> Vec<Appended> {
    linked
        .into_iter()
        .map(|l| Appended {
            id: l.stamped.id.clone(),
            tenant: l.stamped.record.tenant.clone(),
            seq: l.seq,
            hash: l.hash,
            ts: l.stamped.ts,
        })
        .collect()
}

/// Assigns sequence numbers and hashes to `batch`, continuing from `heads`.
pub(super) fn link_batch<'a>(
    batch: &'a [Stamped],
    heads: &mut BTreeMap<String, (i64, String)>,
) -> Result<Vec<Linked<'a>>, AuditError> {
    let mut linked = Vec::with_capacity(batch.len());
    for stamped in batch {
        let record = &stamped.record;
        let (head_seq, head_hash) = heads
            .entry(record.tenant.clone())
            .or_insert_with(|| (0, GENESIS_HASH.to_owned()));
        let seq = *head_seq + 1;
        let fields = stamped.fields(seq);
        let hash = link(head_hash, &fields.canonical_bytes()).ok_or_else(|| {
            AuditError::Invalid(format!(
                "the chain head of tenant `{}` is not a sha256: `{head_hash}`",
                record.tenant
            ))
        })?;
        let prev_hash = std::mem::replace(head_hash, hash.clone());
        *head_seq = seq;
        linked.push(Linked {
            stamped,
            seq,
            prev_hash,
            hash,
        });
    }
    Ok(linked)
}

fn push_filter<DB: sqlx::Database>(qb: &mut QueryBuilder<DB>, filter: &Filter)
where
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    qb.push(" WHERE 1 = 1");
    let exact = [
        ("tenant", &filter.tenant),
        ("principal", &filter.principal),
        ("target", &filter.target),
        ("action", &filter.action),
        ("outcome", &filter.outcome),
        ("kind", &filter.kind),
        ("session_id", &filter.session_id),
        ("approval_id", &filter.approval_id),
        ("call_id", &filter.call_id),
    ];
    for (column, value) in exact {
        if let Some(value) = value {
            qb.push(" AND ")
                .push(column)
                .push(" = ")
                .push_bind(value.clone());
        }
    }
    if let Some(since) = filter.since {
        qb.push(" AND ts >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        qb.push(" AND ts < ").push_bind(until);
    }
}

fn push_page<DB: sqlx::Database>(qb: &mut QueryBuilder<DB>, page: Page)
where
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    match page {
        Page::Newest { before, limit } => {
            if let Some(before) = before {
                qb.push(" AND row_id < ").push_bind(before);
            }
            qb.push(" ORDER BY row_id DESC LIMIT ")
                .push_bind(i64::from(limit));
        }
        Page::After { after, limit } => {
            qb.push(" AND row_id > ")
                .push_bind(after)
                .push(" ORDER BY row_id ASC LIMIT ")
                .push_bind(i64::from(limit));
        }
    }
}

/// `SELECT … WHERE (tenant || '') = ? AND <column> IN (ids) LIMIT ?`: seeks in the partial index on
/// `column` (`audit_records_call`, `audit_records_approval`). No `ORDER BY`: sorting by `row_id`
/// in SQL would tempt the planner into walking the tenant's whole `(tenant, row_id)` index; the
/// caller orders the few rows it gets.
fn push_linked<DB: sqlx::Database>(
    qb: &mut QueryBuilder<DB>,
    tenant: &str,
    column: &str,
    ids: &[String],
    limit: u32,
) where
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    // `tenant || ''` is no indexed column, so SQLite seeks the id index instead of walking the
    // tenant's `(tenant, ts)` index (it picks that one without statistics); the tenant is still
    // checked on every row. PostgreSQL's planner reads the same query by its statistics.
    qb.push(format!(
        "SELECT {RECORD_COLUMNS} FROM audit_records WHERE (tenant || '') = "
    ))
    .push_bind(tenant.to_owned())
    .push(" AND ")
    .push(column)
    .push(" IN (");
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(id.clone());
    }
    qb.push(") LIMIT ").push_bind(i64::from(limit));
}

/// The backend-independent half of `AuditStore`, for one sqlx database type.
macro_rules! backend {
    ($name:ident, $pool:ty, $db:ty) => {
        impl AuditStore for $name {
            fn check_chain(
                &self,
                checker: ChainChecker,
            ) -> BoxFuture<'_, Result<ChainChecker, AuditError>> {
                Box::pin(self.feed_chain(checker))
            }

            fn append_batch<'a>(
                &'a self,
                batch: &'a [Stamped],
            ) -> BoxFuture<'a, Result<Vec<Appended>, AuditError>> {
                Box::pin(self.append(batch))
            }

            fn scan<'a>(
                &'a self,
                tenant: &'a str,
                after_seq: i64,
                limit: u32,
            ) -> BoxFuture<'a, Result<Vec<Record>, AuditError>> {
                Box::pin(async move {
                    let mut qb = QueryBuilder::<$db>::new(format!(
                        "SELECT {RECORD_COLUMNS} FROM audit_records WHERE tenant = "
                    ));
                    qb.push_bind(tenant.to_owned())
                        .push(" AND seq > ")
                        .push_bind(after_seq)
                        .push(" ORDER BY seq LIMIT ")
                        .push_bind(i64::from(limit));
                    let rows: Vec<Record> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(store_err)?;
                    Ok(rows)
                })
            }

            fn tenants(&self) -> BoxFuture<'_, Result<Vec<String>, AuditError>> {
                Box::pin(async move {
                    sqlx::query_scalar::<$db, String>(
                        "SELECT DISTINCT tenant FROM audit_records ORDER BY tenant",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .map_err(store_err)
                })
            }

            fn heads(&self) -> BoxFuture<'_, Result<Vec<Head>, AuditError>> {
                Box::pin(async move {
                    let rows: Vec<(String, i64, String)> = sqlx::query_as::<$db, _>(
                        "SELECT r.tenant, r.seq, r.hash FROM audit_records r \
                         JOIN (SELECT tenant, MAX(seq) AS seq FROM audit_records GROUP BY tenant) h \
                         ON r.tenant = h.tenant AND r.seq = h.seq ORDER BY r.tenant",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .map_err(store_err)?;
                    Ok(rows
                        .into_iter()
                        .map(|(tenant, seq, hash)| Head { tenant, seq, hash })
                        .collect())
                })
            }

            fn query<'a>(
                &'a self,
                filter: &'a Filter,
                page: Page,
            ) -> BoxFuture<'a, Result<Vec<Record>, AuditError>> {
                Box::pin(async move {
                    let mut qb = QueryBuilder::<$db>::new(format!(
                        "SELECT {RECORD_COLUMNS} FROM audit_records"
                    ));
                    push_filter(&mut qb, filter);
                    push_page(&mut qb, page);
                    let rows: Vec<Record> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(store_err)?;
                    Ok(rows)
                })
            }

            fn get<'a>(
                &'a self,
                id: &'a str,
            ) -> BoxFuture<'a, Result<Option<Record>, AuditError>> {
                Box::pin(async move {
                    let mut qb = QueryBuilder::<$db>::new(format!(
                        "SELECT {RECORD_COLUMNS} FROM audit_records WHERE id = "
                    ));
                    qb.push_bind(id.to_owned());
                    let row: Option<Record> = qb
                        .build_query_as()
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(store_err)?;
                    Ok(row)
                })
            }

            fn linked<'a>(
                &'a self,
                tenant: &'a str,
                call_ids: &'a [String],
                approval_ids: &'a [String],
                limit: u32,
            ) -> BoxFuture<'a, Result<Vec<Record>, AuditError>> {
                Box::pin(async move {
                    // One record can carry both ids: collect by row, once.
                    let mut found: BTreeMap<i64, Record> = BTreeMap::new();
                    let lists = [("call_id", call_ids), ("approval_id", approval_ids)];
                    for (column, ids) in lists {
                        for chunk in ids.chunks(LINKED_CHUNK) {
                            let mut qb = QueryBuilder::<$db>::new("");
                            push_linked(&mut qb, tenant, column, chunk, limit);
                            let rows: Vec<Record> = qb
                                .build_query_as()
                                .fetch_all(&self.pool)
                                .await
                                .map_err(store_err)?;
                            for row in rows {
                                found.entry(row.row).or_insert(row);
                            }
                        }
                    }
                    Ok(found
                        .into_values()
                        .take(usize::try_from(limit).unwrap_or(usize::MAX))
                        .collect())
                })
            }

            fn insert_checkpoint<'a>(
                &'a self,
                checkpoint: &'a Checkpoint,
            ) -> BoxFuture<'a, Result<(), AuditError>> {
                Box::pin(async move {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO audit_checkpoints (tenant, seq, head_hash, time, key_id, signature) ",
                    );
                    qb.push_values(std::iter::once(checkpoint), |mut row, c| {
                        row.push_bind(c.tenant.clone())
                            .push_bind(c.seq)
                            .push_bind(c.head_hash.clone())
                            .push_bind(c.time)
                            .push_bind(c.key_id.clone())
                            .push_bind(c.signature.clone());
                    });
                    qb.build()
                        .execute(&self.pool)
                        .await
                        .map(|_| ())
                        .map_err(store_err)
                })
            }

            fn checkpoints<'a>(
                &'a self,
                tenant: &'a str,
            ) -> BoxFuture<'a, Result<Vec<Checkpoint>, AuditError>> {
                Box::pin(async move {
                    let mut qb = QueryBuilder::<$db>::new(
                        "SELECT tenant, seq, head_hash, time, key_id, signature FROM audit_checkpoints WHERE tenant = ",
                    );
                    qb.push_bind(tenant.to_owned()).push(" ORDER BY row_id");
                    let rows: Vec<CheckpointRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(store_err)?;
                    Ok(rows.into_iter().map(Checkpoint::from).collect())
                })
            }

            fn latest_checkpoints(&self) -> BoxFuture<'_, Result<Vec<Checkpoint>, AuditError>> {
                Box::pin(async move {
                    let rows: Vec<CheckpointRow> = sqlx::query_as::<$db, CheckpointRow>(
                        "SELECT c.tenant, c.seq, c.head_hash, c.time, c.key_id, c.signature \
                         FROM audit_checkpoints c JOIN (SELECT MAX(row_id) AS row_id \
                         FROM audit_checkpoints GROUP BY tenant) l ON c.row_id = l.row_id \
                         ORDER BY c.tenant",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .map_err(store_err)?;
                    Ok(rows.into_iter().map(Checkpoint::from).collect())
                })
            }
        }

        impl $name {
            /// Appends through sqlx: the PostgreSQL path, and SQLite's when it has no file.
            async fn append_with_sqlx(&self, batch: &[Stamped]) -> Result<Vec<Appended>, AuditError> {
                let mut tx = self.begin().await.map_err(store_err)?;
                let tenants: BTreeSet<&str> =
                    batch.iter().map(|s| s.record.tenant.as_str()).collect();
                let mut heads = BTreeMap::new();
                // Sorted order, so two writers never wait on each other's tenants crosswise.
                for tenant in tenants {
                    Self::lock_tenant(&mut tx, tenant)
                        .await
                        .map_err(store_err)?;
                    let head: Option<(i64, String)> = QueryBuilder::<$db>::new(
                        "SELECT seq, hash FROM audit_records WHERE tenant = ",
                    )
                    .push_bind(tenant.to_owned())
                    .push(" ORDER BY seq DESC LIMIT 1")
                    .build_query_as()
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(store_err)?;
                    heads.insert(
                        tenant.to_owned(),
                        head.unwrap_or_else(|| (0, GENESIS_HASH.to_owned())),
                    );
                }
                let linked = link_batch(batch, &mut heads)?;
                for chunk in linked.chunks(INSERT_CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO audit_records (id, tenant, seq, ts, kind, principal, target, \
                         action, outcome, session_id, approval_id, call_id, body, prev_hash, hash) ",
                    );
                    qb.push_values(chunk, |mut row, l| {
                        let r = &l.stamped.record;
                        row.push_bind(l.stamped.id.clone())
                            .push_bind(r.tenant.clone())
                            .push_bind(l.seq)
                            .push_bind(l.stamped.ts)
                            .push_bind(r.kind.as_str().to_owned())
                            .push_bind(r.principal.clone())
                            .push_bind(r.target.clone())
                            .push_bind(r.action.clone())
                            .push_bind(r.outcome.clone())
                            .push_bind(r.session_id.clone())
                            .push_bind(r.approval_id.clone())
                            .push_bind(r.call_id.clone())
                            .push_bind(l.stamped.body_json.clone())
                            .push_bind(l.prev_hash.clone())
                            .push_bind(l.hash.clone());
                    });
                    qb.build().execute(&mut *tx).await.map_err(store_err)?;
                }
                tx.commit().await.map_err(store_err)?;
                Ok(appended(linked))
            }
        }
    };
}

/// The SQLite backend. `BEGIN IMMEDIATE` takes the database's write lock up front, so the chain
/// heads read inside the transaction cannot move under it, even with several processes.
#[derive(Debug, Clone)]
pub(crate) struct SqliteAudit {
    pub(crate) pool: SqlitePool,
    /// The rusqlite connection appends go through, opened on first use (see `sqlite_direct`).
    pub(crate) direct: Arc<Mutex<Option<DirectWriter>>>,
}

impl SqliteAudit {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        SqliteAudit {
            pool,
            direct: Arc::new(Mutex::new(None)),
        }
    }

    /// The database file, or `None` for an in-memory database only this pool can see.
    fn file(&self) -> Option<PathBuf> {
        let options = self.pool.connect_options();
        let path = options.get_filename();
        (!path.as_os_str().is_empty() && path.as_os_str() != ":memory:").then(|| path.to_path_buf())
    }

    /// Appends through the direct rusqlite writer on a blocking thread; through sqlx when the
    /// database has no file of its own.
    async fn append(&self, batch: &[Stamped]) -> Result<Vec<Appended>, AuditError> {
        let Some(path) = self.file() else {
            return self.append_with_sqlx(batch).await;
        };
        let direct = self.direct.clone();
        let batch = batch.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut guard = direct
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let writer = match guard.as_mut() {
                Some(writer) => writer,
                None => guard.insert(DirectWriter::open(&path)?),
            };
            let result = writer.append(&batch);
            if result.is_err() {
                // A failed connection is reopened on the next batch rather than reused.
                *guard = None;
            }
            result
        })
        .await
        .map_err(AuditError::store)?
    }
    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Reads the chain through its own read-only rusqlite connection (see `sqlite_direct`), or
    /// by pages when the database has no file of its own (`:memory:`).
    async fn feed_chain(&self, checker: ChainChecker) -> Result<ChainChecker, AuditError> {
        let Some(path) = self.file() else {
            return check_chain_by_pages(self, checker).await;
        };
        tokio::task::spawn_blocking(move || super::sqlite_direct::check_chain(&path, checker))
            .await
            .map_err(AuditError::store)?
    }

    async fn lock_tenant(
        _tx: &mut Transaction<'static, Sqlite>,
        _tenant: &str,
    ) -> Result<(), sqlx::Error> {
        // The whole database is already locked by BEGIN IMMEDIATE.
        Ok(())
    }
}

backend!(SqliteAudit, SqlitePool, Sqlite);

/// The PostgreSQL backend. A transaction-scoped advisory lock per tenant serializes appends to
/// one chain across every meho instance sharing the database; other tenants proceed in parallel.
#[derive(Debug, Clone)]
pub(crate) struct PostgresAudit {
    pub(crate) pool: PgPool,
}

impl PostgresAudit {
    async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    async fn feed_chain(&self, checker: ChainChecker) -> Result<ChainChecker, AuditError> {
        check_chain_by_pages(self, checker).await
    }

    async fn append(&self, batch: &[Stamped]) -> Result<Vec<Appended>, AuditError> {
        self.append_with_sqlx(batch).await
    }

    async fn lock_tenant(
        tx: &mut Transaction<'static, Postgres>,
        tenant: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(tenant)
            .execute(&mut **tx)
            .await
            .map(|_| ())
    }
}

backend!(PostgresAudit, PgPool, Postgres);

#[cfg(test)]
mod plans {
    //! The queries behind `meho audit query` must stay index range scans: a full table scan or a
    //! sort of the whole table would be unusable at 10M rows. SQLite's planner is asked directly.

    use sqlx::{QueryBuilder, Sqlite};

    use super::{RECORD_COLUMNS, push_filter, push_linked, push_page};
    use crate::store::{Filter, Page};

    async fn plan(store: &meho_store::Store, filter: &Filter, page: Page) -> String {
        let meho_store::Pool::Sqlite(pool) = store.pool() else {
            panic!("sqlite store expected");
        };
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "EXPLAIN QUERY PLAN SELECT {RECORD_COLUMNS} FROM audit_records"
        ));
        push_filter(&mut qb, filter);
        push_page(&mut qb, page);
        let rows: Vec<(i64, i64, i64, String)> =
            qb.build_query_as().fetch_all(pool).await.expect("plan");
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; ")
    }

    #[tokio::test]
    async fn every_filter_is_an_index_range_scan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/plan.db", dir.path().display());
        let store = meho_store::Store::open(&url).await.expect("store");
        let some = |v: &str| Some(v.to_owned());
        let tenant = || Filter {
            tenant: some("default"),
            ..Filter::default()
        };
        let cases = [
            ("tenant", tenant()),
            (
                "principal",
                Filter {
                    principal: some("alice"),
                    ..tenant()
                },
            ),
            (
                "principal, any tenant",
                Filter {
                    principal: some("alice"),
                    ..Filter::default()
                },
            ),
            (
                "target",
                Filter {
                    target: some("web1"),
                    ..tenant()
                },
            ),
            (
                "target, any tenant",
                Filter {
                    target: some("web1"),
                    ..Filter::default()
                },
            ),
            (
                "action",
                Filter {
                    action: some("ssh_execute"),
                    ..tenant()
                },
            ),
            (
                "outcome",
                Filter {
                    outcome: some("error"),
                    ..tenant()
                },
            ),
            (
                "session",
                Filter {
                    session_id: some("s1"),
                    ..Filter::default()
                },
            ),
            (
                "approval",
                Filter {
                    approval_id: some("a1"),
                    ..Filter::default()
                },
            ),
            (
                "call",
                Filter {
                    call_id: some("c1"),
                    ..Filter::default()
                },
            ),
        ];
        for (name, filter) in cases {
            for page in [
                Page::Newest {
                    before: None,
                    limit: 50,
                },
                Page::Newest {
                    before: Some(1000),
                    limit: 50,
                },
                Page::After {
                    after: 1000,
                    limit: 50,
                },
            ] {
                let plan = plan(&store, &filter, page).await;
                assert!(
                    plan.contains("USING INDEX") || plan.contains("USING INTEGER PRIMARY KEY"),
                    "{name} {page:?}: {plan}"
                );
                assert!(
                    !plan.contains("TEMP B-TREE"),
                    "{name} {page:?} sorts: {plan}"
                );
            }
        }
        // A time range is an index range on (tenant, ts); only the rows in range are sorted.
        let range = Filter {
            since: Some(1),
            until: Some(2),
            ..tenant()
        };
        let plan = plan(
            &store,
            &range,
            Page::Newest {
                before: None,
                limit: 50,
            },
        )
        .await;
        assert!(plan.contains("audit_records_ts"), "{plan}");
        store.close().await;
    }

    /// `linked` (the activity view's fold) seeks the call and approval indexes; it never walks a
    /// tenant's records.
    #[tokio::test]
    async fn linked_reads_seek_the_call_and_approval_indexes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/plan.db", dir.path().display());
        let store = meho_store::Store::open(&url).await.expect("store");
        let meho_store::Pool::Sqlite(pool) = store.pool() else {
            panic!("sqlite store expected");
        };
        let ids: Vec<String> = (0..40).map(|i| format!("id-{i}")).collect();
        for (column, index) in [
            ("call_id", "audit_records_call"),
            ("approval_id", "audit_records_approval"),
        ] {
            let mut qb = QueryBuilder::<Sqlite>::new("EXPLAIN QUERY PLAN ");
            push_linked(&mut qb, "default", column, &ids, 1000);
            let rows: Vec<(i64, i64, i64, String)> =
                qb.build_query_as().fetch_all(pool).await.expect("plan");
            let plan = rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; ");
            assert!(plan.contains(index), "{column}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{column} sorts: {plan}");
        }
        store.close().await;
    }
}
