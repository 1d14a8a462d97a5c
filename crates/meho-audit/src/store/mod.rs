//! Where audit records live. One [`AuditStore`] trait, two backends chosen by the store URL:
//! SQLite (the default) and PostgreSQL. Both keep the same tables (see `meho-store`'s
//! migrations), refuse UPDATE and DELETE inside the database, and pass the same test suite.

mod sql;
mod sqlite_direct;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use meho_store::{Pool, Store};
use serde::{Deserialize, Serialize};

use crate::AuditError;
use crate::checkpoint::Checkpoint;
use crate::record::{NewRecord, Record, RecordFields};
use crate::verify::ChainChecker;

/// A boxed future, so the trait stays object-safe (`Arc<dyn AuditStore>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A record about to be appended: already redacted, with its id and time assigned.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamped {
    /// The record id (UUIDv7).
    pub id: String,
    /// Unix microseconds.
    pub ts: i64,
    /// The body as RFC 8785 JSON, exactly as it will be stored and hashed.
    pub body_json: String,
    /// The rest of the record.
    pub record: NewRecord,
}

impl Stamped {
    /// The chained fields of the record once it is at `seq` in its chain.
    pub(crate) fn fields(&self, seq: i64) -> RecordFields<'_> {
        let record = &self.record;
        RecordFields {
            id: &self.id,
            tenant: &record.tenant,
            seq,
            ts: self.ts,
            kind: record.kind.as_str(),
            principal: &record.principal,
            target: record.target.as_deref(),
            action: record.action.as_deref(),
            outcome: record.outcome.as_deref(),
            session_id: record.session_id.as_deref(),
            approval_id: record.approval_id.as_deref(),
            call_id: record.call_id.as_deref(),
            body_json: &self.body_json,
        }
    }
}

/// What an append returns once the record is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// The record id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// Its place in the tenant's chain.
    pub seq: i64,
    /// Its chain hash.
    pub hash: String,
    /// Unix microseconds.
    pub ts: i64,
}

/// The chain head of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The tenant.
    pub tenant: String,
    /// The last sequence number.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// Which records a query returns; every set field must match. The one filter of the audit log:
/// the store runs it, the REST API reads it from the query string (serde: the fields by name,
/// times as RFC 3339, never a tenant), and `meho audit` builds it from its flags and sends it to
/// a server the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct Filter {
    /// Only this tenant. Not part of a query string: a server takes it from the caller's token.
    #[serde(skip)]
    pub tenant: Option<String>,
    /// Only this principal.
    pub principal: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only this record kind (`intent`, `outcome`, `approval`, …).
    #[cfg_attr(feature = "openapi", param(schema_with = openapi::record_kind))]
    pub kind: Option<String>,
    /// Only this session.
    pub session_id: Option<String>,
    /// Only this approval.
    pub approval_id: Option<String>,
    /// Only this call.
    pub call_id: Option<String>,
    /// At or after this time: unix microseconds (RFC 3339 in a query string).
    #[serde(default, with = "query_time", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(schema_with = openapi::date_time))]
    pub since: Option<i64>,
    /// Before this time: unix microseconds (RFC 3339 in a query string).
    #[serde(default, with = "query_time", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(schema_with = openapi::date_time))]
    pub until: Option<i64>,
}

/// A filter's times in a query string: RFC 3339 (any offset) in, UTC with microseconds out.
mod query_time {
    use serde::{Deserialize as _, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub(super) fn serialize<S: Serializer>(
        micros: &Option<i64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let Some(micros) = micros else {
            return serializer.serialize_none();
        };
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(*micros) * 1000)
            .map_err(|_| serde::ser::Error::custom(format!("{micros} µs is not a time")))?;
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.microsecond()
        );
        serializer.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<i64>, D::Error> {
        let Some(text) = Option::<String>::deserialize(deserializer)? else {
            return Ok(None);
        };
        OffsetDateTime::parse(&text, &Rfc3339)
            .map(|at| Some(i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)))
            .map_err(|err| serde::de::Error::custom(format!("`{text}` is not RFC 3339: {err}")))
    }
}

/// The OpenAPI schemas of the filter's typed parameters.
#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};

    use crate::RecordKind;

    pub(super) fn record_kind() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(RecordKind::ALL.map(RecordKind::as_str)))
            .build()
    }

    pub(super) fn date_time() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .build()
    }
}

/// Keyset pagination over the store's insertion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Page {
    /// Newest first: rows strictly before `before` (or from the newest when `None`).
    Newest {
        /// The cursor: the `row` of the last record of the previous page.
        before: Option<i64>,
        /// At most this many records.
        limit: u32,
    },
    /// Oldest first: rows strictly after `after` (`tail -f` follows with this).
    After {
        /// The cursor: the `row` of the last record already seen.
        after: i64,
        /// At most this many records.
        limit: u32,
    },
}

/// Storage of the audit log.
///
/// Appends are all-or-nothing per batch: the batch is linked to each tenant's chain and written
/// in one transaction; when `append_batch` returns `Ok`, every record in it is durable.
pub trait AuditStore: Send + Sync + std::fmt::Debug {
    /// Links `batch` to the chains and writes it in one transaction.
    fn append_batch<'a>(
        &'a self,
        batch: &'a [Stamped],
    ) -> BoxFuture<'a, Result<Vec<Appended>, AuditError>>;

    /// Records of `tenant` with `seq > after_seq`, in sequence order.
    fn scan<'a>(
        &'a self,
        tenant: &'a str,
        after_seq: i64,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Record>, AuditError>>;

    /// Feeds `checker` every record of its tenant in sequence order, until the chain breaks, and
    /// hands it back. Each backend reads its fastest way; the checks live in the checker.
    fn check_chain(&self, checker: ChainChecker)
    -> BoxFuture<'_, Result<ChainChecker, AuditError>>;

    /// Every tenant with at least one record.
    fn tenants(&self) -> BoxFuture<'_, Result<Vec<String>, AuditError>>;

    /// Every tenant's chain head.
    fn heads(&self) -> BoxFuture<'_, Result<Vec<Head>, AuditError>>;

    /// Records matching `filter`, one page.
    fn query<'a>(
        &'a self,
        filter: &'a Filter,
        page: Page,
    ) -> BoxFuture<'a, Result<Vec<Record>, AuditError>>;

    /// One record by id.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Record>, AuditError>>;

    /// The records of `tenant` that carry one of `call_ids` or one of `approval_ids`, oldest
    /// first: everything the log holds about those calls, read through the call and approval
    /// indexes (the activity view folds calls from them). `limit` bounds the work, it is not a
    /// page: when more records match, which ones are left out is unspecified.
    fn linked<'a>(
        &'a self,
        tenant: &'a str,
        call_ids: &'a [String],
        approval_ids: &'a [String],
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Record>, AuditError>>;

    /// Stores a signed checkpoint.
    fn insert_checkpoint<'a>(
        &'a self,
        checkpoint: &'a Checkpoint,
    ) -> BoxFuture<'a, Result<(), AuditError>>;

    /// Every checkpoint of `tenant`, oldest first.
    fn checkpoints<'a>(
        &'a self,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Checkpoint>, AuditError>>;

    /// The latest checkpoint of every tenant.
    fn latest_checkpoints(&self) -> BoxFuture<'_, Result<Vec<Checkpoint>, AuditError>>;
}

/// The audit store of an open `meho-store`, backend chosen by its URL.
pub fn open(store: &Store) -> Arc<dyn AuditStore> {
    match store.pool() {
        Pool::Sqlite(pool) => Arc::new(sql::SqliteAudit::new(pool.clone())),
        Pool::Postgres(pool) => Arc::new(sql::PostgresAudit { pool: pool.clone() }),
    }
}

#[cfg(test)]
mod tests {
    use super::Filter;

    /// In a query string a filter's times are RFC 3339 (any offset in, UTC with microseconds
    /// out), the tenant is never read nor written, and unset fields are left out.
    #[test]
    fn filter_reads_and_writes_times_as_rfc3339_and_never_a_tenant() {
        let filter: Filter = serde_json::from_value(serde_json::json!({
            "principal": "alice",
            "since": "2026-11-25T13:00:00.5+01:00",
        }))
        .unwrap();
        assert_eq!(
            filter,
            Filter {
                principal: Some("alice".into()),
                since: Some(1_795_608_000_500_000),
                ..Filter::default()
            }
        );
        let written = serde_json::to_value(Filter {
            tenant: Some("acme".into()),
            ..filter
        })
        .unwrap();
        assert_eq!(written["since"], "2026-11-25T12:00:00.500000Z");
        assert!(written.get("tenant").is_none() && written.get("until").is_none());
        let bad = serde_json::from_value::<Filter>(serde_json::json!({ "until": "yesterday" }));
        assert!(bad.unwrap_err().to_string().contains("is not RFC 3339"));
    }
}
