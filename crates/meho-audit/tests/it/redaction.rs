//! Secrets never reach the store, the database files or the feed in the clear.

use std::sync::Arc;

use meho_audit::{AuditError, FeedEvent, NewRecord, RecordKind, Redactor, StoredRecord};
use meho_store::Pool;
use serde_json::json;

use crate::support::{Backend, Fixture, assert_verified, within};

const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAcanaryPEMsecretBODY0123\nq83vEjK29xZcanaryPEMsecondLINE==\n-----END RSA PRIVATE KEY-----";
const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnktand0In0.CanaryJwtSignature_xyz-123";

/// Every secret that must not appear anywhere, as it would appear if it leaked.
const SECRETS: &[&str] = &[
    "canaryPEMsecretBODY0123",
    "canaryPEMsecondLINE",
    "MIIEpAIBAAKCAQEA",
    "CANARYBEARERTOKEN42",
    "CANARYPW",
    "eyJzdWIiOiJjYW5hcnktand0In0",
    "CanaryJwtSignature",
    "CANARY2",
    "CANARY-4815162342",
];
/// Not a secret: proves the checks below look at the right bytes.
const VISIBLE: &str = "visible-marker-7d1f";

fn leaked<'a>(haystack: &[u8]) -> Vec<&'a str> {
    SECRETS
        .iter()
        .filter(|secret| {
            haystack
                .windows(secret.len())
                .any(|window| window == secret.as_bytes())
        })
        .copied()
        .collect()
}

fn records() -> Vec<NewRecord> {
    vec![
        NewRecord {
            target: Some("postgres://user:CANARYPW@db/x".to_owned()),
            action: Some("psql password=CANARY2 --ticket CANARY-4815162342".to_owned()),
            outcome: Some("ok CANARY-4815162342".to_owned()),
            call_id: Some("call-1".to_owned()),
            body: json!({
                "note": VISIBLE,
                "headers": ["Authorization: Bearer CANARYBEARERTOKEN42", "Accept: */*"],
                "key_file": PEM,
                "nested": { "deeper": [{ "session": format!("jwt={JWT}") }] },
                JWT: "a JWT as an object key",
                "cmdline": "deploy --password=CANARY2 --url postgres://user:CANARYPW@db/x",
            }),
            ..NewRecord::new("acme", RecordKind::Intent, "agent-7")
        },
        NewRecord {
            target: Some("CANARY-4815162342".to_owned()),
            action: Some(format!(
                "curl -H 'Authorization: Bearer CANARYBEARERTOKEN42' {JWT}"
            )),
            body: json!({ "stdin": PEM, "ticket": "CANARY-4815162342", "pw": "password=CANARY2" }),
            ..NewRecord::new("acme", RecordKind::Outcome, "agent-7")
        },
    ]
}

fn assert_clean(what: &str, bytes: &[u8]) {
    let found = leaked(bytes);
    assert!(found.is_empty(), "{what} leaks {found:?}");
}

both_backends!(canaries_never_reach_store_disk_or_feed);

/// Canary secrets in body, target, action and outcome are redacted before they are stored,
/// written to disk or published; `[REDACTED` markers stand in their place.
async fn canaries_never_reach_store_disk_or_feed(fx: Fixture) {
    let mut options = fx.options(1000);
    options.redactor = Redactor::new(&["CANARY-[0-9]+"]).unwrap();
    let log = fx.start(options).await;
    let mut live = meho_audit::FeedBus::subscribe(log.bus.as_ref(), "acme");
    let mut subscription = log.subscribe("acme", 0);

    let inputs = records();
    let input_text = serde_json::to_vec(&inputs).unwrap();
    assert_eq!(
        leaked(&input_text).len(),
        SECRETS.len(),
        "every canary is in the input"
    );
    for input in inputs {
        log.append(input).await.unwrap();
    }

    // Rows read back: every column.
    let stored: Vec<StoredRecord> = fx.records("acme").await;
    assert_eq!(stored.len(), 2);
    for row in &stored {
        let columns = format!("{row:?}");
        assert_clean("a stored record", columns.as_bytes());
    }
    let first = &stored[0];
    assert_eq!(
        first.target.as_deref(),
        Some("postgres://user:[REDACTED]@db/x")
    );
    assert!(
        first
            .action
            .as_deref()
            .unwrap()
            .contains("password=[REDACTED]"),
        "{:?}",
        first.action
    );
    assert!(
        first.outcome.as_deref().unwrap().contains("[REDACTED]"),
        "{:?}",
        first.outcome
    );
    assert!(first.body.contains(VISIBLE), "non-secrets are kept");
    for marker in [
        "[REDACTED:private-key]",
        "Bearer [REDACTED]",
        "[REDACTED:jwt]",
        "password=[REDACTED]",
    ] {
        assert!(
            first.body.contains(marker),
            "body lacks `{marker}`: {}",
            first.body
        );
    }
    assert_eq!(stored[1].target.as_deref(), Some("[REDACTED]"));

    // Raw storage.
    match fx.backend {
        Backend::Sqlite => {
            let files = fx.sqlite_file_bytes();
            let all: Vec<u8> = files.iter().flat_map(|(_, bytes)| bytes.clone()).collect();
            assert!(
                all.windows(VISIBLE.len()).any(|w| w == VISIBLE.as_bytes()),
                "the database files hold the records"
            );
            for (path, bytes) in &files {
                assert_clean(&path.display().to_string(), bytes);
            }
        }
        Backend::Postgres => {
            let Pool::Postgres(pool) = fx.store.pool() else {
                unreachable!()
            };
            let rows: Vec<String> = sqlx::query_scalar("SELECT r::text FROM audit_records r")
                .fetch_all(pool)
                .await
                .unwrap();
            assert_eq!(rows.len(), 2);
            assert!(rows[0].contains(VISIBLE), "the raw row holds the record");
            for row in &rows {
                assert_clean("a raw PostgreSQL row", row.as_bytes());
            }
        }
    }

    // The feed: the live bus and a subscription.
    let mut events: Vec<Arc<FeedEvent>> = Vec::new();
    for _ in 0..2 {
        events.push(live.try_recv().unwrap());
        events.push(
            within(30, "subscription event", subscription.next())
                .await
                .unwrap(),
        );
    }
    for event in &events {
        let text = serde_json::to_vec(event.as_ref()).unwrap();
        assert!(
            String::from_utf8_lossy(&text).contains("[REDACTED"),
            "event is redacted"
        );
        assert_clean("a feed event", &text);
    }

    log.shutdown().await.unwrap();
    assert_verified(&fx.verify().await);
    if fx.backend == Backend::Sqlite {
        // Closing checkpoints the WAL into the database file.
        fx.store.close().await;
        for (path, bytes) in fx.sqlite_file_bytes() {
            assert_clean(&format!("{} after close", path.display()), &bytes);
        }
    }
}

/// A redaction pattern that is not a regex is refused up front.
#[test]
fn invalid_redaction_pattern_is_an_error() {
    let err = Redactor::new(&["CANARY-[0-9"]).unwrap_err();
    assert!(
        matches!(err, AuditError::Redaction { ref pattern, .. } if pattern == "CANARY-[0-9"),
        "{err:?}"
    );
}
