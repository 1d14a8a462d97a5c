//! One small query layer over both backends, so each table's code is written once.
//!
//! Statements are constants of this crate written with `$1…` placeholders (SQLite gets `?1…`);
//! every value goes through a bind, so asserting them SQL-safe is sound.

use meho_store::Pool;

/// One bind value; the two backends take the same list.
#[derive(Debug)]
pub(crate) enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
}

/// A row of either backend, read by column name.
pub(crate) trait Row {
    fn text(&self, name: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, name: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, name: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, name: &str) -> Result<Option<i64>, sqlx::Error>;
    fn boolean(&self, name: &str) -> Result<bool, sqlx::Error>;
}

macro_rules! row_impl {
    ($row:ty) => {
        impl Row for $row {
            fn text(&self, name: &str) -> Result<String, sqlx::Error> {
                sqlx::Row::try_get(self, name)
            }
            fn opt_text(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
                sqlx::Row::try_get(self, name)
            }
            fn int(&self, name: &str) -> Result<i64, sqlx::Error> {
                sqlx::Row::try_get(self, name)
            }
            fn opt_int(&self, name: &str) -> Result<Option<i64>, sqlx::Error> {
                sqlx::Row::try_get(self, name)
            }
            fn boolean(&self, name: &str) -> Result<bool, sqlx::Error> {
                sqlx::Row::try_get(self, name)
            }
        }
    };
}

row_impl!(sqlx::sqlite::SqliteRow);
row_impl!(sqlx::postgres::PgRow);

macro_rules! bound {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for bind in $binds {
            query = match bind {
                Bind::Text(v) => query.bind(v),
                Bind::OptText(v) => query.bind(v),
                Bind::Int(v) => query.bind(v),
                Bind::OptInt(v) => query.bind(v),
                Bind::Bool(v) => query.bind(v),
            };
        }
        query
    }};
}

/// The pool, with the two operations every table needs.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pool: Pool,
}

impl Db {
    pub(crate) fn new(pool: Pool) -> Self {
        Db { pool }
    }

    /// Runs a statement; returns the rows affected.
    pub(crate) async fn execute(&self, sql: &str, binds: Vec<Bind>) -> Result<u64, sqlx::Error> {
        Ok(match &self.pool {
            Pool::Sqlite(pool) => bound!(sqlx::query(sqlx::AssertSqlSafe(sqlite_sql(sql))), binds)
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Postgres(pool) => bound!(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), binds)
                .execute(pool)
                .await?
                .rows_affected(),
        })
    }

    /// Runs a query and reads each row with `read`.
    pub(crate) async fn fetch<T, E>(
        &self,
        sql: &str,
        binds: Vec<Bind>,
        read: fn(&dyn Row) -> Result<T, E>,
    ) -> Result<Vec<T>, E>
    where
        E: From<sqlx::Error>,
    {
        let mut out = Vec::new();
        match &self.pool {
            Pool::Sqlite(pool) => {
                for row in bound!(sqlx::query(sqlx::AssertSqlSafe(sqlite_sql(sql))), binds)
                    .fetch_all(pool)
                    .await?
                {
                    out.push(read(&row)?);
                }
            }
            Pool::Postgres(pool) => {
                for row in bound!(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), binds)
                    .fetch_all(pool)
                    .await?
                {
                    out.push(read(&row)?);
                }
            }
        }
        Ok(out)
    }
}

fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}
