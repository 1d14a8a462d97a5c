//! Fixtures shared by every test: a fresh store per test (a SQLite file in a tempdir, or a fresh
//! PostgreSQL database that is dropped afterwards), an audit key on disk, a witness file, raw SQL
//! for tampering, and `both_backends!`, which runs one test body on both backends.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use meho_audit::{
    AuditKey, AuditLog, AuditOptions, AuditPublicKey, AuditStore, InProcessBus, NewRecord, Problem,
    RecordKind, Redactor, StoredRecord, VerifyInputs, VerifyReport, Witness,
};
use meho_store::{Pool, Store};
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tempfile::TempDir;

/// The admin URL of the test PostgreSQL server.
pub const ADMIN_URL_ENV: &str = "MEHO_TEST_DATABASE_URL";
const DEFAULT_ADMIN_URL: &str = "postgres://root@127.0.0.1:5432/postgres";
/// Each test body runs under this hang guard.
pub const HANG_GUARD: Duration = Duration::from_secs(300);

/// Runs async test bodies on both backends. Each `async fn name(fx: Fixture)` in the module is
/// written once; `both_backends!(name, …)` generates the tests `sqlite::name` (a tempdir file)
/// and `postgres::name` (a fresh database, skipped loudly outside CI when unreachable).
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fixture = $crate::support::Fixture::sqlite().await;
                    $crate::support::hang_guard(super::$name(fixture)).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(fixture) = $crate::support::Fixture::postgres().await {
                        $crate::support::hang_guard(super::$name(fixture)).await;
                    }
                }
            )+
        }
    };
}

/// Fails a test that runs longer than [`HANG_GUARD`] instead of letting it hang the suite.
pub async fn hang_guard<F: std::future::Future<Output = ()>>(body: F) {
    if tokio::time::timeout(HANG_GUARD, body).await.is_err() {
        panic!("test did not finish within {HANG_GUARD:?}: hang");
    }
}

/// Awaits `future` or panics after `secs` seconds, naming `what`.
pub async fn within<T>(secs: u64, what: &str, future: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), future).await {
        Ok(value) => value,
        Err(_) => panic!("hang guard: {what} did not finish within {secs} s"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store for one test, plus the key, the witness and everything needed to tamper with it.
pub struct Fixture {
    pub backend: Backend,
    pub dir: TempDir,
    /// The store URL (for PostgreSQL: the test's own database).
    pub url: String,
    pub store: Store,
    /// The PKCS#8 private key file; [`Fixture::key`] loads a fresh `AuditKey` from it.
    pub key_path: PathBuf,
    pub public: AuditPublicKey,
    pub witness: Witness,
    /// PostgreSQL databases and roles this test created; dropped last.
    pg: Option<PgCleanup>,
}

impl Fixture {
    /// A fresh SQLite store in a tempdir.
    pub async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("meho.db").display());
        let store = Store::open(&url).await.unwrap();
        Self::with_store(Backend::Sqlite, dir, url, store, None)
    }

    /// A fresh PostgreSQL database, or `None` (after a loud SKIPPED line) when the server cannot
    /// be reached outside CI. In CI (`CI=true`) an unreachable server fails the test.
    pub async fn postgres() -> Option<Fixture> {
        let admin_url = admin_url();
        let mut admin = pg_admin(&admin_url).await?;
        let name = format!("meho_t_{}", random_hex(8));
        exec_pg(&mut admin, &format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        admin.close().await.unwrap();
        let cleanup = PgCleanup {
            admin_url: admin_url.clone(),
            databases: vec![name.clone()],
            roles: Vec::new(),
        };
        let url = pg_url(&admin_url, &name, None);
        let store = Store::open(&url).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        Some(Self::with_store(
            Backend::Postgres,
            dir,
            url,
            store,
            Some(cleanup),
        ))
    }

    fn with_store(
        backend: Backend,
        dir: TempDir,
        url: String,
        store: Store,
        pg: Option<PgCleanup>,
    ) -> Fixture {
        let key = AuditKey::generate().unwrap();
        let key_path = dir.path().join("audit.key");
        key.save(&key_path, &dir.path().join("audit.pub")).unwrap();
        let witness = Witness::new(dir.path().join("witness.jsonl"));
        Fixture {
            backend,
            public: key.public().clone(),
            dir,
            url,
            store,
            key_path,
            witness,
            pg,
        }
    }

    /// The audit store over the fixture's current store.
    pub fn audit(&self) -> Arc<dyn AuditStore> {
        meho_audit::store::open(&self.store)
    }

    /// The fixture's audit key (loaded afresh: `AuditKey` is not `Clone`).
    pub fn key(&self) -> AuditKey {
        AuditKey::load(&self.key_path).unwrap()
    }

    /// Options with the key, the witness, the given record cadence and no time-based checkpoints.
    pub fn options(&self, every_records: u64) -> AuditOptions {
        AuditOptions {
            key: Some(self.key()),
            witness: Some(self.witness.clone()),
            checkpoint_every_records: every_records,
            checkpoint_interval: Duration::from_secs(3600),
            redactor: Redactor::new::<&str>(&[]).unwrap(),
        }
    }

    /// Starts an audit log over the fixture's store.
    pub async fn start(&self, options: AuditOptions) -> TestLog {
        let bus = Arc::new(InProcessBus::new());
        let log = AuditLog::start(self.audit(), bus.clone(), options)
            .await
            .unwrap();
        TestLog { log, bus }
    }

    /// Starts an audit log with the key and witness, checkpointing every `every_records`.
    pub async fn start_log(&self, every_records: u64) -> TestLog {
        self.start(self.options(every_records)).await
    }

    /// Verifies the fixture's store with its public key and witness.
    pub async fn verify(&self) -> VerifyReport {
        verify_with(self.audit().as_ref(), Some(&self.public), &self.witness).await
    }

    /// Runs raw SQL (one or more statements) on the fixture's store as the test's superuser.
    pub async fn exec(&self, sql: &str) -> Result<u64, sqlx::Error> {
        exec_pool(self.store.pool(), sql).await
    }

    /// What an attacker with database access does first: remove the append-only triggers.
    pub async fn disable_append_only(&self) {
        let sql = match self.backend {
            Backend::Sqlite => {
                "DROP TRIGGER audit_records_no_update; DROP TRIGGER audit_records_no_delete; \
                 DROP TRIGGER audit_checkpoints_no_update; DROP TRIGGER audit_checkpoints_no_delete;"
            }
            Backend::Postgres => {
                "ALTER TABLE audit_records DISABLE TRIGGER USER; \
                 ALTER TABLE audit_checkpoints DISABLE TRIGGER USER;"
            }
        };
        self.exec(sql).await.unwrap();
    }

    /// Copies the database as it is now (the store must not be in use by a running log) and
    /// returns the URL of the copy; the fixture's store is reopened afterwards.
    pub async fn snapshot(&mut self, label: &str) -> String {
        self.store.close().await;
        let url = match self.backend {
            Backend::Sqlite => {
                let from = self.dir.path().join("meho.db");
                let to = self.dir.path().join(format!("{label}.db"));
                for suffix in ["", "-wal", "-shm"] {
                    let source = PathBuf::from(format!("{}{suffix}", from.display()));
                    if source.exists() {
                        std::fs::copy(&source, format!("{}{suffix}", to.display())).unwrap();
                    }
                }
                format!("sqlite://{}", to.display())
            }
            Backend::Postgres => {
                let pg = self.pg.as_mut().unwrap();
                let current = pg.databases.first().unwrap().clone();
                let name = format!("{current}_{label}");
                let mut admin = PgConnection::connect(&pg.admin_url).await.unwrap();
                exec_pg(
                    &mut admin,
                    &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{current}\""),
                )
                .await
                .unwrap();
                admin.close().await.unwrap();
                pg.databases.push(name.clone());
                pg_url(&pg.admin_url, &name, None)
            }
        };
        self.store = Store::open(&self.url).await.unwrap();
        url
    }

    /// PostgreSQL only: creates a login role that is dropped after the test, and returns the URL
    /// of the fixture's database as that role.
    pub async fn create_pg_role(&mut self, suffix: &str) -> (String, String) {
        let pg = self.pg.as_mut().unwrap();
        let database = pg.databases.first().unwrap().clone();
        let role = format!("{database}_{suffix}");
        pg.roles.push(role.clone());
        let url = pg_url(&pg.admin_url, &database, Some(&role));
        self.exec(&format!("CREATE ROLE \"{role}\" LOGIN"))
            .await
            .unwrap();
        (role, url)
    }

    /// Every record of `tenant`, in sequence order.
    pub async fn records(&self, tenant: &str) -> Vec<StoredRecord> {
        self.audit().scan(tenant, 0, 1_000_000).await.unwrap()
    }

    /// The SQLite database file and its WAL, as they are on disk now.
    pub fn sqlite_file_bytes(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let db = self.dir.path().join("meho.db");
        ["", "-wal"]
            .iter()
            .map(|suffix| PathBuf::from(format!("{}{suffix}", db.display())))
            .filter(|path| path.exists())
            .map(|path| {
                let bytes = std::fs::read(&path).unwrap();
                (path, bytes)
            })
            .collect()
    }
}

/// A running audit log and its bus.
pub struct TestLog {
    pub log: AuditLog,
    pub bus: Arc<InProcessBus>,
}

impl std::ops::Deref for TestLog {
    type Target = AuditLog;
    fn deref(&self) -> &AuditLog {
        &self.log
    }
}

/// Verifies `store` against `witness` (read from disk now) with `key`.
pub async fn verify_with(
    store: &dyn AuditStore,
    key: Option<&AuditPublicKey>,
    witness: &Witness,
) -> VerifyReport {
    let (checkpoints, errors) = witness.read().unwrap();
    meho_audit::verify(
        store,
        VerifyInputs {
            key,
            witness: &checkpoints,
            witness_errors: &errors,
        },
    )
    .await
    .unwrap()
}

/// The problems of `tenant`, after checking that no other tenant has any.
pub fn problems_of<'a>(report: &'a VerifyReport, tenant: &str) -> Vec<&'a Problem> {
    let others: Vec<&Problem> = report
        .problems
        .iter()
        .filter(|p| p.tenant != tenant)
        .collect();
    assert!(
        others.is_empty(),
        "only tenant `{tenant}` was tampered with, but others have problems: {others:#?}"
    );
    let mine: Vec<&Problem> = report
        .problems
        .iter()
        .filter(|p| p.tenant == tenant)
        .collect();
    assert!(
        !mine.is_empty(),
        "verify found nothing wrong with tenant `{tenant}`: {report:#?}"
    );
    mine
}

/// Panics with the full report unless verification passed.
pub fn assert_verified(report: &VerifyReport) {
    assert!(
        report.is_ok(),
        "verify must pass, problems: {:#?}",
        report.problems
    );
}

/// A plain record with enough content to be worth tampering with.
pub fn record(tenant: &str, principal: &str, i: usize) -> NewRecord {
    NewRecord {
        target: Some(format!("host-{}", i % 5)),
        action: Some("ssh_execute".to_owned()),
        outcome: Some("allowed".to_owned()),
        call_id: Some(format!("call-{tenant}-{i}")),
        body: json!({ "i": i, "command": format!("systemctl restart app-{i}") }),
        ..NewRecord::new(tenant, RecordKind::Intent, principal)
    }
}

/// The chain hash of `record` after `prev_hash`, from the documented formula:
/// `sha256(prev_hash as 32 raw bytes || canonical_bytes(record))`.
pub fn chain_hash(prev_hash: &str, record: &StoredRecord) -> String {
    let mut input = hex::decode(prev_hash).unwrap();
    assert_eq!(input.len(), 32, "prev_hash is a sha256");
    // The body canonicalized afresh, not the stored text the log hashed.
    let body: serde_json::Value = serde_json::from_str(&record.body).unwrap();
    let record = StoredRecord {
        body: String::from_utf8(meho_audit::canonical_bytes(&body)).unwrap(),
        ..record.clone()
    };
    input.extend_from_slice(&record.canonical_bytes());
    meho_audit::sha256_hex(&input)
}

/// A decision that lets a call run.
pub fn allowed_decision() -> meho_core::Decision {
    meho_core::Decision {
        effect: meho_core::Effect::Allow,
        approval_rule_matched: false,
        rule: "allow:^uptime".to_owned(),
        reason_code: meho_core::ReasonCode::Allowed,
        tier: meho_core::Tier::Read,
        warnings: Vec::new(),
        would_deny: false,
        would_require_approval: false,
        grant_id: None,
        waiver_id: None,
        approval_id: None,
    }
}

/// A governed call of `tenant` identified by `call_id`.
pub fn call<'a>(tenant: &'a str, call_id: &'a str) -> meho_audit::CallRef<'a> {
    meho_audit::CallRef {
        tenant,
        principal: "agent-7",
        target: "db-1",
        action: "ssh_execute",
        call_id,
        session_id: Some("session-1"),
        approval_id: None,
    }
}

/// Raw SQL on a store pool.
pub async fn exec_pool(pool: &Pool, sql: &str) -> Result<u64, sqlx::Error> {
    let sql = AssertSqlSafe(sql.to_owned());
    match pool {
        Pool::Sqlite(pool) => sqlx::raw_sql(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        Pool::Postgres(pool) => sqlx::raw_sql(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
    }
}

async fn exec_pg(conn: &mut PgConnection, sql: &str) -> Result<u64, sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
}

/// Lowercase hex of `bytes` random bytes.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).unwrap();
    hex::encode(buf)
}

/// A random number in `low..=high`.
pub fn random_between(low: u64, high: u64) -> u64 {
    low + getrandom::u64().unwrap() % (high - low + 1)
}

fn admin_url() -> String {
    std::env::var(ADMIN_URL_ENV)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

/// Connects to the admin database, or decides what an unreachable server means.
async fn pg_admin(admin_url: &str) -> Option<PgConnection> {
    let attempt = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(admin_url));
    let why = match attempt.await {
        Ok(Ok(conn)) => return Some(conn),
        Ok(Err(err)) => err.to_string(),
        Err(_) => "no answer within 10 s".to_owned(),
    };
    let shown = meho_store::mask_password(admin_url);
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "PostgreSQL unreachable at {shown} ({why}) and CI=true: the PostgreSQL tests must run"
        );
    }
    // Straight to the process's stderr, past the test harness's output capture, so the skip is
    // seen even when the test passes.
    let _ = writeln!(
        std::io::stderr(),
        "\nSKIPPED: PostgreSQL unreachable at {shown} ({why}); \
         set {ADMIN_URL_ENV} to an admin URL to run the PostgreSQL half of this test\n"
    );
    None
}

/// `admin_url` pointed at `database`, as `user` when given.
fn pg_url(admin_url: &str, database: &str, user: Option<&str>) -> String {
    let (scheme, rest) = admin_url.split_once("://").unwrap();
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let authority = rest.split('/').next().unwrap();
    let host = match (authority.rsplit_once('@'), user) {
        (Some((_, host)), Some(user)) => format!("{user}@{host}"),
        (None, Some(user)) => format!("{user}@{authority}"),
        (_, None) => authority.to_owned(),
    };
    let mut url = format!("{scheme}://{host}/{database}");
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// Drops a test's PostgreSQL databases and roles, even when the test panicked.
struct PgCleanup {
    admin_url: String,
    databases: Vec<String>,
    roles: Vec<String>,
}

impl Drop for PgCleanup {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let mut statements: Vec<String> = self
            .databases
            .iter()
            .map(|db| format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
            .collect();
        statements.extend(
            self.roles
                .iter()
                .map(|role| format!("DROP ROLE IF EXISTS \"{role}\"")),
        );
        // A fresh thread and runtime: this may run inside (or while unwinding out of) the test's
        // runtime, which cannot be blocked on from within.
        let outcome = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                for statement in &statements {
                    exec_pg(&mut admin, statement)
                        .await
                        .map_err(|e| format!("{statement}: {e}"))?;
                }
                admin.close().await.map_err(|e| e.to_string())
            })
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("warning: PostgreSQL test cleanup failed: {err}"),
            Err(_) => eprintln!("warning: PostgreSQL test cleanup panicked"),
        }
    }
}

/// The path of the witness file, for tests that edit it.
pub fn witness_path(fixture: &Fixture) -> &Path {
    fixture.witness.path()
}
