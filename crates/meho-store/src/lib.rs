//! meho's persistent store: embedded SQLite by default, PostgreSQL to scale out, chosen by URL
//! scheme. Each backend has its own versioned migrations (`migrations/sqlite`,
//! `migrations/postgres`) with the same version numbers and the same tables.
//!
//! Invariants:
//! - Opening a store always runs pending migrations before returning, so every `Store` has the
//!   schema this build expects. A database from a newer build is refused, not silently used.
//! - SQLite runs in WAL mode with `synchronous = FULL`: an acknowledged write survives power loss.
//! - A store URL never reaches a log or an error with its password.
//!
//! [`secrets`] keeps the credentials meho itself must hold, sealed with a key that never comes
//! from the database.

pub mod secrets;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};

/// Errors opening or using the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not a store URL this build understands.
    #[error("unsupported store url `{0}`: expected `sqlite://PATH` or `postgres://…`")]
    UnsupportedUrl(String),
    /// The directory for the database file could not be created.
    #[error("cannot create store directory `{}`", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error("cannot open store `{url}`")]
    Open {
        /// The URL, password masked.
        url: String,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// Migrating the schema failed, or the database is from a newer meho.
    #[error("cannot migrate store `{url}`")]
    Migrate {
        /// The URL, password masked.
        url: String,
        /// The migration error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("store query failed")]
    Query(#[source] sqlx::Error),
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The connection pool of whichever backend the URL chose.
#[derive(Debug, Clone)]
pub enum Pool {
    /// `sqlite://PATH`.
    Sqlite(SqlitePool),
    /// `postgres://…` or `postgresql://…`.
    Postgres(PgPool),
}

/// An open, migrated store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    url: String,
}

impl Store {
    /// Opens (creating if needed) the store at `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let shown = mask_password(url);
        let open_err = |source| StoreError::Open {
            url: shown.clone(),
            source,
        };
        let migrate_err = |source| StoreError::Migrate {
            url: shown.clone(),
            source,
        };
        let pool = if let Some(file) = sqlite_path(url) {
            if file.is_empty() {
                return Err(StoreError::UnsupportedUrl(shown));
            }
            if file != ":memory:"
                && let Some(dir) = Path::new(file).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            let options = SqliteConnectOptions::from_str(url)
                .map_err(open_err)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                // 64 MiB of page cache per connection: the audit indexes stay hot.
                .pragma("cache_size", "-65536")
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(open_err)?;
            SQLITE_MIGRATOR.run(&pool).await.map_err(migrate_err)?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(open_err)?;
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(open_err)?;
            POSTGRES_MIGRATOR.run(&pool).await.map_err(migrate_err)?;
            Pool::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(shown));
        };
        let store = Store { pool, url: shown };
        store.ensure_instance().await?;
        Ok(store)
    }

    /// The URL the store was opened with, password masked.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The backend's pool, for crates that keep their own tables here.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Checks that the database answers a query; `/ready` calls this.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let result = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()),
            Pool::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()),
        };
        result.map_err(StoreError::Query)
    }

    /// The id of this installation, created on first run.
    pub async fn instance_id(&self) -> Result<String, StoreError> {
        const SQL: &str = "SELECT id FROM instance LIMIT 1";
        let id = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query(SQL)
                .fetch_one(pool)
                .await
                .and_then(|row| row.try_get::<String, _>("id")),
            Pool::Postgres(pool) => sqlx::query(SQL)
                .fetch_one(pool)
                .await
                .and_then(|row| row.try_get::<String, _>("id")),
        };
        id.map_err(StoreError::Query)
    }

    /// The versions of the migrations applied to this database, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        const SQL: &str = "SELECT version FROM _sqlx_migrations ORDER BY version";
        let versions = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query_scalar::<_, i64>(SQL).fetch_all(pool).await,
            Pool::Postgres(pool) => sqlx::query_scalar::<_, i64>(SQL).fetch_all(pool).await,
        };
        versions.map_err(StoreError::Query)
    }

    /// Closes every connection; pending writes are already durable.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    async fn ensure_instance(&self) -> Result<(), StoreError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Not a secret: an installation label, unique enough from time and process id.
        let id = format!("meho-{now:x}-{:x}", std::process::id());
        let created = i64::try_from(now).unwrap_or(i64::MAX);
        let result = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query(
                "INSERT INTO instance (id, created_at) SELECT ?1, ?2 WHERE NOT EXISTS (SELECT 1 FROM instance)",
            )
            .bind(id)
            .bind(created)
            .execute(pool)
            .await
            .map(|_| ()),
            Pool::Postgres(pool) => sqlx::query(
                "INSERT INTO instance (id, created_at) SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM instance) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(created)
            .execute(pool)
            .await
            .map(|_| ()),
        };
        result.map_err(StoreError::Query)
    }
}

/// The file part of a `sqlite:` URL, without query parameters.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split('?').next().unwrap_or(rest))
}

/// `url` with any password replaced by `***`, for logs and errors.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}
