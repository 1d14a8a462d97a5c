//! Sealed secrets on both backends: a SQLite file in a tempdir, and a fresh PostgreSQL database
//! (at `MEHO_TEST_DATABASE_URL`, default `postgres://root@127.0.0.1:5432/postgres`) dropped
//! afterwards. Outside CI an unreachable PostgreSQL skips its half loudly; under `CI=true` it
//! fails.
//!
//! The oracle is the database itself: rows are read and tampered with in raw SQL, never through
//! `SealedSecrets`.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use meho_store::secrets::{KEY_ENV, SealedSecrets, SecretKey, SecretsError};
use meho_store::{Pool, Store};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection, Row as _};
use tempfile::TempDir;

const ADMIN_URL_ENV: &str = "MEHO_TEST_DATABASE_URL";
const DEFAULT_ADMIN_URL: &str = "postgres://root@127.0.0.1:5432/postgres";
const HANG_GUARD: Duration = Duration::from_secs(120);

/// Generates `sqlite::name` and `postgres::name` for each `async fn name(fx: Fixture)`.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fixture = super::Fixture::sqlite().await;
                    super::hang_guard(super::$name(fixture)).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(fixture) = super::Fixture::postgres().await {
                        super::hang_guard(super::$name(fixture)).await;
                    }
                }
            )+
        }
    };
}

both_backends!(
    round_trip_put_get_list_delete,
    rows_never_hold_the_plaintext,
    a_value_is_opened_only_with_the_key_that_sealed_it,
    without_a_key_sealing_and_opening_are_no_key_errors,
    a_tampered_ciphertext_is_corrupt,
    a_ciphertext_moved_to_another_name_or_tenant_is_corrupt,
    rotation_reencrypts_every_tenant_and_retires_the_old_key,
    rotation_with_a_row_under_another_key_changes_nothing,
    rotation_with_a_tampered_row_changes_nothing,
    names_tenants_and_sizes_are_checked_before_the_store,
);

async fn hang_guard<F: std::future::Future<Output = ()>>(body: F) {
    if tokio::time::timeout(HANG_GUARD, body).await.is_err() {
        panic!("test did not finish within {HANG_GUARD:?}: hang");
    }
}

// --- fixture ---------------------------------------------------------------------------------

/// A store for one test; for PostgreSQL, the database is dropped when the fixture is.
struct Fixture {
    store: Store,
    /// Holds the SQLite file.
    _dir: TempDir,
    /// Declared last: dropped after the store.
    _pg: Option<PgDatabase>,
}

impl Fixture {
    async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("meho.db").display());
        let store = Store::open(&url).await.unwrap();
        Fixture {
            store,
            _dir: dir,
            _pg: None,
        }
    }

    /// A fresh PostgreSQL database, or `None` after a loud SKIPPED line when the server cannot be
    /// reached outside CI. Under `CI=true` an unreachable server fails the test.
    async fn postgres() -> Option<Fixture> {
        let admin_url = admin_url();
        let mut admin = pg_admin(&admin_url).await?;
        let name = format!("meho_sec_{}", random_hex(8));
        exec_pg(&mut admin, &format!("CREATE DATABASE \"{name}\"")).await;
        admin.close().await.unwrap();
        let pg = PgDatabase {
            admin_url: admin_url.clone(),
            name: name.clone(),
        };
        let store = Store::open(&pg_url(&admin_url, &name)).await.unwrap();
        Some(Fixture {
            store,
            _dir: tempfile::tempdir().unwrap(),
            _pg: Some(pg),
        })
    }

    fn secrets(&self, key: &SecretKey) -> SealedSecrets {
        SealedSecrets::new(&self.store, Some(copy(key)))
    }

    /// The raw row of `tenant`/`name`: key id, nonce, ciphertext.
    async fn raw_row(&self, tenant: &str, name: &str) -> (String, Vec<u8>, Vec<u8>) {
        const SQL: &str =
            "SELECT key_id, nonce, ciphertext FROM secrets WHERE tenant = $1 AND name = $2";
        macro_rules! read {
            ($pool:expr) => {{
                let row = sqlx::query(SQL)
                    .bind(tenant)
                    .bind(name)
                    .fetch_one($pool)
                    .await
                    .unwrap();
                (row.get("key_id"), row.get("nonce"), row.get("ciphertext"))
            }};
        }
        match self.store.pool() {
            Pool::Sqlite(pool) => read!(pool),
            Pool::Postgres(pool) => read!(pool),
        }
    }

    /// Every column of every row, as bytes: what someone with a copy of the database has.
    async fn all_row_bytes(&self) -> Vec<Vec<u8>> {
        const SQL: &str = "SELECT tenant, name, key_id, algorithm, nonce, ciphertext, \
                           created_at_us, updated_at_us FROM secrets";
        macro_rules! read {
            ($pool:expr) => {{
                let rows = sqlx::query(SQL).fetch_all($pool).await.unwrap();
                let mut out = Vec::new();
                for row in rows {
                    for column in ["tenant", "name", "key_id", "algorithm"] {
                        out.push(row.get::<String, _>(column).into_bytes());
                    }
                    for column in ["nonce", "ciphertext"] {
                        out.push(row.get::<Vec<u8>, _>(column));
                    }
                    for column in ["created_at_us", "updated_at_us"] {
                        out.push(row.get::<i64, _>(column).to_string().into_bytes());
                    }
                }
                out
            }};
        }
        match self.store.pool() {
            Pool::Sqlite(pool) => read!(pool),
            Pool::Postgres(pool) => read!(pool),
        }
    }

    /// Runs one statement with text and blob binds, as someone with write access to the database.
    async fn exec(&self, sql: &str, text: &[&str], blob: Option<Vec<u8>>) -> u64 {
        macro_rules! run {
            ($pool:expr) => {{
                let mut query = sqlx::query(AssertSqlSafe(sql.to_owned()));
                if let Some(blob) = blob {
                    query = query.bind(blob);
                }
                for value in text {
                    query = query.bind(value.to_string());
                }
                query.execute($pool).await.unwrap().rows_affected()
            }};
        }
        match self.store.pool() {
            Pool::Sqlite(pool) => run!(pool),
            Pool::Postgres(pool) => run!(pool),
        }
    }
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
                sqlx::raw_sql(AssertSqlSafe(sql))
                    .execute(&mut admin)
                    .await
                    .map_err(|e| e.to_string())?;
                admin.close().await.map_err(|e| e.to_string())
            })
        })
        .join();
        if !matches!(outcome, Ok(Ok(()))) {
            let _ = writeln!(
                std::io::stderr(),
                "warning: dropping test database {} failed",
                self.name
            );
        }
    }
}

fn admin_url() -> String {
    std::env::var(ADMIN_URL_ENV)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

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

/// `admin_url` pointed at `database`, keeping its user, host and query.
fn pg_url(admin_url: &str, database: &str) -> String {
    let (scheme, rest) = admin_url.split_once("://").unwrap();
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let authority = rest.split('/').next().unwrap();
    let mut url = format!("{scheme}://{authority}/{database}");
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

async fn exec_pg(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .unwrap();
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).unwrap();
    hex::encode(buf)
}

/// A second handle on the same key (`SecretKey` is deliberately not `Clone`).
fn copy(key: &SecretKey) -> SecretKey {
    SecretKey::from_base64(&key.to_base64()).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// --- tests -----------------------------------------------------------------------------------

async fn round_trip_put_get_list_delete(fx: Fixture) {
    let key = SecretKey::generate().unwrap();
    let secrets = fx.secrets(&key);
    secrets
        .put("acme", "github.token", b"ghp_first")
        .await
        .unwrap();
    secrets.put("acme", "a_token", b"second").await.unwrap();
    secrets
        .put("other", "github.token", b"theirs")
        .await
        .unwrap();
    assert_eq!(
        secrets.get("acme", "github.token").await.unwrap().expose(),
        b"ghp_first"
    );
    assert_eq!(
        secrets
            .get("other", "github.token")
            .await
            .unwrap()
            .expose_str()
            .unwrap(),
        "theirs"
    );
    let first = secrets.list("acme").await.unwrap();
    assert_eq!(
        first.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["a_token", "github.token"]
    );
    assert!(first.iter().all(|m| m.key_id == key.id()));
    assert!(first.iter().all(|m| m.created_at == m.updated_at));

    // Upsert: the value and its update time change, its creation time stays.
    tokio::time::sleep(Duration::from_millis(5)).await;
    secrets
        .put("acme", "github.token", b"ghp_second")
        .await
        .unwrap();
    assert_eq!(
        secrets.get("acme", "github.token").await.unwrap().expose(),
        b"ghp_second"
    );
    let again = secrets.list("acme").await.unwrap();
    let (before, after) = (&first[1], &again[1]);
    assert_eq!(before.created_at, after.created_at);
    assert!(after.updated_at > before.updated_at);

    assert!(secrets.delete("acme", "github.token").await.unwrap());
    assert!(!secrets.delete("acme", "github.token").await.unwrap());
    let err = secrets.get("acme", "github.token").await.unwrap_err();
    assert!(
        matches!(&err, SecretsError::NotFound { tenant, name } if tenant == "acme" && name == "github.token"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "no secret `github.token` in tenant `acme`");
    // The other tenant's secret of the same name is untouched.
    assert_eq!(
        secrets.get("other", "github.token").await.unwrap().expose(),
        b"theirs"
    );

    // Binary values round-trip; text access says what is wrong without showing the value.
    secrets
        .put("acme", "bin", &[0xff, 0x00, 0xfe])
        .await
        .unwrap();
    let value = secrets.get("acme", "bin").await.unwrap();
    assert_eq!(value.expose(), [0xff, 0x00, 0xfe]);
    assert!(matches!(
        value.expose_str(),
        Err(SecretsError::NotUtf8 { .. })
    ));
    assert_eq!(format!("{value:?}"), "[secret]");
    let debug = format!("{secrets:?}");
    assert!(!debug.contains(&key.to_base64()), "{debug}");
    fx.store.close().await;
}

async fn rows_never_hold_the_plaintext(fx: Fixture) {
    let key = SecretKey::generate().unwrap();
    let secrets = fx.secrets(&key);
    let canary = format!("CANARY-{}", random_hex(16));
    secrets
        .put("acme", "canary", canary.as_bytes())
        .await
        .unwrap();
    assert_eq!(
        secrets.get("acme", "canary").await.unwrap().expose(),
        canary.as_bytes()
    );
    let hex_canary = hex::encode(&canary);
    let key_bytes = key.to_base64();
    for column in fx.all_row_bytes().await {
        for needle in [
            canary.as_bytes(),
            hex_canary.as_bytes(),
            key_bytes.as_bytes(),
        ] {
            assert!(!contains(&column, needle), "a column holds the secret");
        }
    }
    // SQLite: not in any page of the database file or its WAL either.
    if let Pool::Sqlite(pool) = fx.store.pool() {
        sqlx::query("PRAGMA wal_checkpoint(FULL)")
            .execute(pool)
            .await
            .unwrap();
        for entry in std::fs::read_dir(fx._dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!contains(&bytes, canary.as_bytes()), "the file holds it");
        }
    }
    fx.store.close().await;
}

async fn a_value_is_opened_only_with_the_key_that_sealed_it(fx: Fixture) {
    let sealing = SecretKey::generate().unwrap();
    let other = SecretKey::generate().unwrap();
    fx.secrets(&sealing)
        .put("acme", "token", b"v")
        .await
        .unwrap();
    let err = fx.secrets(&other).get("acme", "token").await.unwrap_err();
    match &err {
        SecretsError::WrongKey {
            name,
            stored_key_id,
            key_id,
        } => {
            assert_eq!(name, "token");
            assert_eq!(stored_key_id, &sealing.id());
            assert_eq!(key_id, &other.id());
        }
        other => panic!("expected WrongKey, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "secret `token` was sealed with key {}; the configured key is {}",
            sealing.id(),
            other.id()
        )
    );
    // A key id copied onto the row does not help: the ciphertext still does not open.
    fx.exec(
        "UPDATE secrets SET key_id = $1 WHERE name = $2",
        &[&other.id(), "token"],
        None,
    )
    .await;
    let err = fx.secrets(&other).get("acme", "token").await.unwrap_err();
    assert!(matches!(err, SecretsError::Corrupt { .. }), "{err:?}");
    fx.store.close().await;
}

async fn without_a_key_sealing_and_opening_are_no_key_errors(fx: Fixture) {
    let key = SecretKey::generate().unwrap();
    fx.secrets(&key).put("acme", "token", b"v").await.unwrap();
    let keyless = SealedSecrets::new(&fx.store, None);
    assert_eq!(keyless.key_id(), None);
    for err in [
        keyless.get("acme", "token").await.unwrap_err(),
        keyless.put("acme", "token", b"w").await.unwrap_err(),
    ] {
        assert!(matches!(err, SecretsError::NoKey), "{err:?}");
        assert_eq!(
            err.to_string(),
            "no secrets key: set MEHO_SECRETS_KEY or [secrets] key_file"
        );
    }
    // Listing and deleting need no key.
    assert_eq!(keyless.list("acme").await.unwrap().len(), 1);
    assert!(keyless.delete("acme", "token").await.unwrap());
    fx.store.close().await;
}

async fn a_tampered_ciphertext_is_corrupt(fx: Fixture) {
    let key = SecretKey::generate().unwrap();
    let secrets = fx.secrets(&key);
    secrets.put("acme", "token", b"value").await.unwrap();
    let (_, nonce, mut ciphertext) = fx.raw_row("acme", "token").await;
    ciphertext[0] ^= 1;
    fx.exec(
        "UPDATE secrets SET ciphertext = $1 WHERE tenant = $2 AND name = $3",
        &["acme", "token"],
        Some(ciphertext),
    )
    .await;
    let err = secrets.get("acme", "token").await.unwrap_err();
    assert!(
        matches!(&err, SecretsError::Corrupt { name } if name == "token"),
        "{err:?}"
    );
    assert!(err.to_string().contains("tampered"), "{err}");

    // A changed nonce, and a truncated one, too.
    secrets.put("acme", "token", b"value").await.unwrap();
    let mut bad_nonce = nonce.clone();
    bad_nonce[3] ^= 0x80;
    for nonce in [bad_nonce, nonce[..5].to_vec()] {
        fx.exec(
            "UPDATE secrets SET nonce = $1 WHERE tenant = $2 AND name = $3",
            &["acme", "token"],
            Some(nonce),
        )
        .await;
        let err = secrets.get("acme", "token").await.unwrap_err();
        assert!(matches!(err, SecretsError::Corrupt { .. }), "{err:?}");
    }
    fx.store.close().await;
}

async fn a_ciphertext_moved_to_another_name_or_tenant_is_corrupt(fx: Fixture) {
    let key = SecretKey::generate().unwrap();
    let secrets = fx.secrets(&key);
    secrets
        .put("acme", "prod.token", b"prod-value")
        .await
        .unwrap();
    secrets
        .put("acme", "dev.token", b"dev-value")
        .await
        .unwrap();
    secrets
        .put("evil", "prod.token", b"evil-value")
        .await
        .unwrap();
    // Someone with write access to the database copies prod's ciphertext over dev's row, and
    // over the same name in another tenant.
    for (tenant, name) in [("acme", "dev.token"), ("evil", "prod.token")] {
        let (_, nonce, ciphertext) = fx.raw_row("acme", "prod.token").await;
        fx.exec(
            "UPDATE secrets SET ciphertext = $1 WHERE tenant = $2 AND name = $3",
            &[tenant, name],
            Some(ciphertext),
        )
        .await;
        fx.exec(
            "UPDATE secrets SET nonce = $1 WHERE tenant = $2 AND name = $3",
            &[tenant, name],
            Some(nonce),
        )
        .await;
        let err = secrets.get(tenant, name).await.unwrap_err();
        assert!(
            matches!(&err, SecretsError::Corrupt { name: n } if n == name),
            "{tenant}/{name}: {err:?}"
        );
    }
    // A whole row copied under a new name does not open either.
    fx.exec(
        "INSERT INTO secrets (tenant, name, key_id, algorithm, nonce, ciphertext, created_at_us, \
         updated_at_us) SELECT tenant, $1, key_id, algorithm, nonce, ciphertext, created_at_us, \
         updated_at_us FROM secrets WHERE tenant = $2 AND name = $3",
        &["copy.token", "acme", "prod.token"],
        None,
    )
    .await;
    let err = secrets.get("acme", "copy.token").await.unwrap_err();
    assert!(matches!(err, SecretsError::Corrupt { .. }), "{err:?}");
    // The original still opens.
    assert_eq!(
        secrets.get("acme", "prod.token").await.unwrap().expose(),
        b"prod-value"
    );
    fx.store.close().await;
}

async fn rotation_reencrypts_every_tenant_and_retires_the_old_key(fx: Fixture) {
    let old = SecretKey::generate().unwrap();
    let new = SecretKey::generate().unwrap();
    let before = fx.secrets(&old);
    let values = [
        ("acme", "a", "value-a"),
        ("acme", "b", "value-b"),
        ("zeta", "a", "value-za"),
    ];
    for (tenant, name, value) in values {
        before.put(tenant, name, value.as_bytes()).await.unwrap();
    }
    let (_, old_nonce, old_ciphertext) = fx.raw_row("acme", "a").await;

    let keyless = SealedSecrets::new(&fx.store, None);
    assert_eq!(keyless.rotate(&old, &new).await.unwrap(), 3);

    let (key_id, nonce, ciphertext) = fx.raw_row("acme", "a").await;
    assert_eq!(key_id, new.id());
    assert_ne!(nonce, old_nonce);
    assert_ne!(ciphertext, old_ciphertext);
    let after = fx.secrets(&new);
    for (tenant, name, value) in values {
        assert_eq!(
            after.get(tenant, name).await.unwrap().expose(),
            value.as_bytes()
        );
        let err = before.get(tenant, name).await.unwrap_err();
        assert!(matches!(err, SecretsError::WrongKey { .. }), "{err:?}");
        assert!(
            after
                .list(tenant)
                .await
                .unwrap()
                .iter()
                .all(|m| m.key_id == new.id())
        );
    }
    // Run again: the rows are under the new key already, nothing to do.
    assert_eq!(keyless.rotate(&old, &new).await.unwrap(), 0);
    // The same key twice is refused.
    let err = keyless.rotate(&new, &copy(&new)).await.unwrap_err();
    assert!(matches!(err, SecretsError::Key(_)), "{err:?}");
    fx.store.close().await;
}

async fn rotation_with_a_row_under_another_key_changes_nothing(fx: Fixture) {
    let old = SecretKey::generate().unwrap();
    let new = SecretKey::generate().unwrap();
    let stranger = SecretKey::generate().unwrap();
    fx.secrets(&old).put("acme", "a", b"mine").await.unwrap();
    fx.secrets(&stranger)
        .put("acme", "z", b"theirs")
        .await
        .unwrap();
    let before = fx.raw_row("acme", "a").await;

    let err = fx.secrets(&old).rotate(&old, &new).await.unwrap_err();
    match &err {
        SecretsError::WrongKey {
            name,
            stored_key_id,
            key_id,
        } => {
            assert_eq!(name, "z");
            assert_eq!(stored_key_id, &stranger.id());
            assert_eq!(key_id, &old.id());
        }
        other => panic!("expected WrongKey, got {other:?}"),
    }
    // `a` came first and was re-sealed inside the transaction; the rollback undid it.
    assert_eq!(fx.raw_row("acme", "a").await, before);
    assert_eq!(
        fx.secrets(&old).get("acme", "a").await.unwrap().expose(),
        b"mine"
    );
    fx.store.close().await;
}

async fn rotation_with_a_tampered_row_changes_nothing(fx: Fixture) {
    let old = SecretKey::generate().unwrap();
    let new = SecretKey::generate().unwrap();
    let secrets = fx.secrets(&old);
    secrets.put("acme", "a", b"fine").await.unwrap();
    secrets.put("acme", "b", b"tampered").await.unwrap();
    let (_, _, mut ciphertext) = fx.raw_row("acme", "b").await;
    let last = ciphertext.len() - 1;
    ciphertext[last] ^= 1;
    fx.exec(
        "UPDATE secrets SET ciphertext = $1 WHERE tenant = $2 AND name = $3",
        &["acme", "b"],
        Some(ciphertext),
    )
    .await;
    let before = fx.raw_row("acme", "a").await;
    let err = secrets.rotate(&old, &new).await.unwrap_err();
    assert!(
        matches!(&err, SecretsError::Corrupt { name } if name == "b"),
        "{err:?}"
    );
    assert_eq!(fx.raw_row("acme", "a").await, before);
    assert_eq!(secrets.get("acme", "a").await.unwrap().expose(), b"fine");
    fx.store.close().await;
}

async fn names_tenants_and_sizes_are_checked_before_the_store(fx: Fixture) {
    let secrets = fx.secrets(&SecretKey::generate().unwrap());
    for name in ["", "a b", "../x", "stored:x", &"n".repeat(129)] {
        let err = secrets.put("acme", name, b"v").await.unwrap_err();
        assert!(matches!(err, SecretsError::InvalidName { .. }), "{err:?}");
        let err = secrets.get("acme", name).await.unwrap_err();
        assert!(matches!(err, SecretsError::InvalidName { .. }), "{err:?}");
    }
    for tenant in ["", "a\nb"] {
        let err = secrets.put(tenant, "n", b"v").await.unwrap_err();
        assert!(matches!(err, SecretsError::InvalidTenant { .. }), "{err:?}");
    }
    for size in [0, meho_store::secrets::MAX_VALUE_BYTES + 1] {
        let err = secrets
            .put("acme", "n", &vec![b'x'; size])
            .await
            .unwrap_err();
        assert!(matches!(err, SecretsError::ValueSize { .. }), "{err:?}");
    }
    secrets
        .put(
            "acme",
            "n",
            &vec![b'x'; meho_store::secrets::MAX_VALUE_BYTES],
        )
        .await
        .unwrap();
    assert!(fx.all_row_bytes().await.len() == 8, "exactly one row");
    fx.store.close().await;
}

// --- key loading (no store) ------------------------------------------------------------------

/// `SecretKey::load` reads the environment first; these tests are about the file, so they only
/// run where the variable is unset (the CLI tests cover the variable).
fn env_is_clear() -> bool {
    let clear = std::env::var_os(KEY_ENV).is_none_or(|v| v.is_empty());
    if !clear {
        let _ = writeln!(
            std::io::stderr(),
            "\nSKIPPED: {KEY_ENV} is set in the test environment; key-file tests need it unset\n"
        );
    }
    clear
}

#[test]
fn key_file_with_mode_0600_loads_and_0644_is_refused() {
    if !env_is_clear() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::generate().unwrap();
    let path = dir.path().join("secrets.key");
    std::fs::write(&path, format!("{}\n", key.to_base64())).unwrap();

    for mode in [0o600, 0o400] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let loaded = SecretKey::load(Some(&path)).unwrap().unwrap();
        assert_eq!(loaded.id(), key.id());
    }
    for mode in [0o644, 0o640, 0o604, 0o620] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = SecretKey::load(Some(&path)).unwrap_err();
        assert!(matches!(err, SecretsError::KeyFile { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(&format!("{mode:04o}")), "{message}");
        assert!(message.contains("chmod 600"), "{message}");
        assert!(!message.contains(&key.to_base64()), "{message}");
    }
}

#[test]
fn missing_or_malformed_key_files_are_clear_errors_and_no_file_is_no_key() {
    if !env_is_clear() {
        return;
    }
    assert!(SecretKey::load(None).unwrap().is_none());
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.key");
    let err = SecretKey::load(Some(&missing)).unwrap_err();
    assert!(
        matches!(
            &err,
            SecretsError::KeyFile {
                source: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("nope.key"), "{err}");

    let short = dir.path().join("short.key");
    std::fs::write(&short, "c2hvcnQ=\n").unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = SecretKey::load(Some(&short)).unwrap_err();
    assert!(err.to_string().contains("32 bytes"), "{err}");

    let err = SecretKey::load(Some(dir.path())).unwrap_err();
    assert!(matches!(err, SecretsError::KeyFile { .. }), "{err:?}");
}
