//! meho's persistent store. Today: the embedded SQLite database, created on first run and brought
//! to the current schema by versioned migrations. PostgreSQL joins with the audit log.
//!
//! Invariants:
//! - Opening a store always runs pending migrations before returning, so every `Store` has the
//!   schema this build expects. A database from a newer build is refused, not silently used.
//! - SQLite runs in WAL mode with `synchronous = FULL`: an acknowledged write survives power loss.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

/// Errors opening or using the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not a store URL this build understands.
    #[error("unsupported store url `{0}`: expected `sqlite://PATH`")]
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
        /// The URL, which never holds a secret for SQLite.
        url: String,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// Migrating the schema failed, or the database is from a newer meho.
    #[error("cannot migrate store `{url}`")]
    Migrate {
        /// The URL.
        url: String,
        /// The migration error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("store query failed")]
    Query(#[source] sqlx::Error),
}

/// The migrations compiled into this build.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// An open, migrated store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    url: String,
}

impl Store {
    /// Opens (creating if needed) the store at `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let Some(file) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let file = file.split('?').next().unwrap_or(file);
        if file.is_empty() {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
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
            .map_err(|source| StoreError::Open {
                url: url.to_owned(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                url: url.to_owned(),
                source,
            })?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                url: url.to_owned(),
                source,
            })?;
        let store = Store {
            pool,
            url: url.to_owned(),
        };
        store.ensure_instance().await?;
        Ok(store)
    }

    /// The URL the store was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Checks that the database answers a query; `/ready` calls this.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::Query)
    }

    /// The id of this installation, created on first run.
    pub async fn instance_id(&self) -> Result<String, StoreError> {
        let row = sqlx::query("SELECT id FROM instance LIMIT 1")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::Query)?;
        row.try_get::<String, _>("id").map_err(StoreError::Query)
    }

    /// The versions of the migrations applied to this database, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Query)?;
        rows.iter()
            .map(|row| row.try_get::<i64, _>("version"))
            .collect::<Result<_, _>>()
            .map_err(StoreError::Query)
    }

    /// Closes every connection; pending writes are already durable.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn ensure_instance(&self) -> Result<(), StoreError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Not a secret: an installation label, unique enough from time and process id.
        let id = format!("meho-{now:x}-{:x}", std::process::id());
        sqlx::query(
            "INSERT INTO instance (id, created_at) SELECT ?1, ?2 WHERE NOT EXISTS (SELECT 1 FROM instance)",
        )
        .bind(id)
        .bind(i64::try_from(now).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(StoreError::Query)
    }
}
