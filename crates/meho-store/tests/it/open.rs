use std::path::Path;

use meho_store::{Store, StoreError};

fn url_for(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

#[tokio::test]
async fn first_open_creates_the_file_and_applies_migration_1() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meho.db");
    assert!(!db.exists());

    let store = Store::open(&url_for(&db)).await.unwrap();
    assert!(db.is_file(), "the database file is created on first open");
    assert_eq!(
        store.applied_migrations().await.unwrap(),
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9]
    );
    let id = store.instance_id().await.unwrap();
    assert!(id.starts_with("meho-"), "instance id `{id}`");
    assert_eq!(store.url(), url_for(&db));
    store.ping().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn first_open_creates_missing_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a").join("b").join("meho.db");
    let store = Store::open(&url_for(&db)).await.unwrap();
    assert!(db.is_file());
    store.close().await;
}

#[tokio::test]
async fn reopening_is_idempotent_and_keeps_the_instance_id() {
    let dir = tempfile::tempdir().unwrap();
    let url = url_for(&dir.path().join("meho.db"));

    let first = Store::open(&url).await.unwrap();
    let id = first.instance_id().await.unwrap();
    first.close().await;

    for _ in 0..2 {
        let again = Store::open(&url).await.unwrap();
        assert_eq!(again.instance_id().await.unwrap(), id);
        assert_eq!(
            again.applied_migrations().await.unwrap(),
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9]
        );
        again.close().await;
    }
}

#[tokio::test]
async fn two_stores_on_one_file_share_the_instance() {
    let dir = tempfile::tempdir().unwrap();
    let url = url_for(&dir.path().join("meho.db"));
    let a = Store::open(&url).await.unwrap();
    let b = Store::open(&url).await.unwrap();
    assert_eq!(
        a.instance_id().await.unwrap(),
        b.instance_id().await.unwrap()
    );
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn short_sqlite_url_form_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meho.db");
    let store = Store::open(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    assert!(db.is_file());
    store.close().await;
}

#[tokio::test]
async fn unsupported_url_is_a_clear_error() {
    let err = Store::open("mysql://x").await.err().unwrap();
    assert!(
        matches!(err, StoreError::UnsupportedUrl(ref url) if url == "mysql://x"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("`mysql://x`"), "{message}");
    assert!(message.contains("sqlite://"), "{message}");
    assert!(message.contains("postgres://"), "{message}");
}

#[tokio::test]
async fn unreachable_postgres_is_an_open_error_with_the_password_masked() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let err = Store::open("postgres://meho:hunter2@127.0.0.1:1/meho")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("meho:***@127.0.0.1:1"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn mask_password_hides_only_the_password() {
    assert_eq!(
        meho_store::mask_password("postgres://u:p%40ss@db:5432/x?sslmode=require"),
        "postgres://u:***@db:5432/x?sslmode=require"
    );
    assert_eq!(
        meho_store::mask_password("postgres://u@db/x"),
        "postgres://u@db/x"
    );
    assert_eq!(
        meho_store::mask_password("sqlite:///tmp/a.db"),
        "sqlite:///tmp/a.db"
    );
}

#[tokio::test]
async fn sqlite_url_without_a_path_is_refused() {
    let err = Store::open("sqlite://").await.err().unwrap();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{err:?}");
}

#[tokio::test]
async fn directory_under_a_regular_file_is_a_create_dir_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let db = file.join("sub").join("meho.db");

    let err = Store::open(&url_for(&db)).await.err().unwrap();
    match &err {
        StoreError::CreateDir { path, .. } => assert_eq!(path, &file.join("sub")),
        other => panic!("expected CreateDir, got {other:?}"),
    }
    assert!(err.to_string().contains("not-a-dir"), "{err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the OS error is kept"
    );
}

#[tokio::test]
async fn database_path_that_is_a_directory_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(&url_for(dir.path())).await.err().unwrap();
    assert!(
        matches!(err, StoreError::Open { .. } | StoreError::Migrate { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn ping_fails_after_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&url_for(&dir.path().join("meho.db")))
        .await
        .unwrap();
    store.ping().await.unwrap();
    store.close().await;
    assert!(matches!(store.ping().await, Err(StoreError::Query(_))));
}

#[tokio::test]
async fn database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = url_for(&dir.path().join("meho.db"));
    let store = Store::open(&url).await.unwrap();
    store.close().await;

    // Record a migration this build does not know, as a newer meho would have.
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', 1, X'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let err = Store::open(&url).await.err().unwrap();
    assert!(matches!(err, StoreError::Migrate { .. }), "{err:?}");
}
