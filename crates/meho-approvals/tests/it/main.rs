//! The approval state machine and four-eyes rules, on SQLite and on PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout
)]

use std::io::Write as _;
use std::time::Duration;

use meho_approvals::{
    ApprovalError, ApprovalPolicy, Approvals, Approver, Call, FreezeKind, Freezes, Grants,
    MAX_REASON_CHARS, NewApproval, NewGrant, Status, Subject, now_us,
};
use meho_config::Role;
use meho_core::Tier;
use meho_store::Store;
use serde_json::json;
use sqlx::Connection as _;

fn admin_url() -> String {
    std::env::var("MEHO_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".to_owned())
}

/// Closes the stores and drops the PostgreSQL test databases they used.
async fn cleanup(stores: Vec<(String, Store)>) {
    for (backend, store) in stores {
        let name = store
            .url()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        store.close().await;
        if backend == "postgres" {
            let mut conn = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
}

/// The stores to run every test against: SQLite always, PostgreSQL when reachable (a failure
/// under `CI=true`).
async fn stores(dir: &std::path::Path) -> Vec<(String, Store)> {
    let mut out = vec![(
        "sqlite".to_owned(),
        Store::open(&format!("sqlite://{}", dir.join("a.db").display()))
            .await
            .unwrap(),
    )];
    let admin = admin_url();
    match sqlx::PgConnection::connect(&admin).await {
        Ok(mut conn) => {
            let name = format!("meho_apr_{}", uuid::Uuid::now_v7().simple());
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut conn)
                .await
                .unwrap();
            let (base, _) = admin.rsplit_once('/').unwrap();
            out.push((
                "postgres".to_owned(),
                Store::open(&format!("{base}/{name}")).await.unwrap(),
            ));
        }
        Err(err) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL unreachable under CI=true: {err}"
            );
            let _ = writeln!(
                std::io::stdout(),
                "\nSKIPPED: approvals on PostgreSQL: {err}"
            );
        }
    }
    out
}

fn call(requester: &str, command: &str) -> Call {
    Call {
        tenant: "a".into(),
        requester: requester.into(),
        target: "web".into(),
        tool: "ssh_execute".into(),
        action: json!({"kind": "exec", "command": command, "sudo": false}),
    }
}

fn admin(subject: &str, tenant: &str) -> Approver {
    Approver {
        principal: subject.into(),
        tenant: tenant.into(),
        role: Role::TenantAdmin,
    }
}

#[tokio::test]
async fn an_approval_is_bound_to_its_call_and_consumed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let all = stores(dir.path()).await;
    for (backend, store) in all.clone() {
        let approvals = Approvals::new(store.pool().clone(), ApprovalPolicy::default());
        let asked = call("alice", "systemctl restart nginx");
        let pending = approvals
            .create(
                &asked,
                None,
                "restart nginx on web",
                "require_approval:^systemctl",
                Tier::Write,
            )
            .await
            .unwrap();
        assert_eq!(pending.status, Status::Pending, "{backend}");
        assert!(pending.id.starts_with("apr-"));
        assert_eq!(pending.call_hash, asked.hash());
        assert_eq!(
            approvals
                .list("a", Some(Status::Pending), 10)
                .await
                .unwrap()
                .len(),
            1,
            "{backend}"
        );

        // Four eyes: the requester cannot approve; an operator is not an approver; another
        // tenant's admin does not even see it.
        let own = approvals
            .decide(&admin("alice", "a"), &pending.id, true, "mine", None)
            .await
            .unwrap_err();
        assert!(
            matches!(own, ApprovalError::FourEyes(_)),
            "{backend}: {own}"
        );
        let operator = Approver {
            role: Role::Operator,
            ..admin("bob", "a")
        };
        let err = approvals
            .decide(&operator, &pending.id, true, "ok", None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ApprovalError::FourEyes(_)),
            "{backend}: {err}"
        );
        let err = approvals
            .decide(&admin("mallory", "b"), &pending.id, true, "ok", None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ApprovalError::NotFound(_)),
            "{backend}: {err}"
        );

        let approved = approvals
            .decide(
                &admin("bob", "a"),
                &pending.id,
                true,
                "planned change",
                Some(7200),
            )
            .await
            .unwrap();
        assert_eq!(approved.status, Status::Approved);
        assert_eq!(approved.decided_by.as_deref(), Some("bob"));
        assert_eq!(approved.learn_ttl_seconds, Some(7200));
        assert!(!approved.self_approved);
        // Deciding twice is refused.
        let again = approvals
            .decide(&admin("carol", "a"), &pending.id, false, "late", None)
            .await
            .unwrap_err();
        assert!(matches!(
            again,
            ApprovalError::WrongState {
                status: Status::Approved,
                ..
            }
        ));

        // A changed argument (sudo on) is another call.
        let mut changed = asked.clone();
        changed.action["sudo"] = json!(true);
        let err = approvals.consume(&pending.id, &changed).await.unwrap_err();
        assert!(
            matches!(err, ApprovalError::DifferentCall(_)),
            "{backend}: {err}"
        );
        let mut other_requester = asked.clone();
        other_requester.requester = "bob".into();
        assert!(matches!(
            approvals
                .consume(&pending.id, &other_requester)
                .await
                .unwrap_err(),
            ApprovalError::DifferentCall(_)
        ));

        let consumed = approvals.consume(&pending.id, &asked).await.unwrap();
        assert_eq!(consumed.status, Status::Consumed);
        let twice = approvals.consume(&pending.id, &asked).await.unwrap_err();
        assert!(
            matches!(
                twice,
                ApprovalError::WrongState {
                    status: Status::Consumed,
                    ..
                }
            ),
            "{backend}: {twice}"
        );
    }
    cleanup(all).await;
}

#[tokio::test]
async fn a_preview_is_stored_and_read_back_by_every_query_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let all = stores(dir.path()).await;
    // Several lines, a diff; non-ASCII, a control character and a bidi override are stored as
    // they are (what people read escapes them, not the store).
    let preview = "--- deployment/web\n+++ deployment/web (dry run)\n@@ -1 +1 @@\n-  replicas: 2\n+  replicas: 3 \u{1b}[2K\u{202e}é\n";
    for (backend, store) in all.clone() {
        let approvals = Approvals::new(store.pool().clone(), ApprovalPolicy::default());
        let asked = call("alice", "kubectl apply");
        let arguments = json!({ "server": "web" });
        let learnable = meho_approvals::Learnable::of_action(&asked.action);
        let with = approvals
            .create_shown(&NewApproval {
                call: &asked,
                shown: &arguments,
                request: Some(&arguments),
                summary: "apply deployment/web",
                rule: "require_approval:apply",
                tier: Tier::Write,
                learnable: learnable.as_ref(),
                preview: Some(preview),
            })
            .await
            .unwrap();
        assert_eq!(with.preview.as_deref(), Some(preview), "{backend}");
        let without = approvals
            .create(&asked, None, "s", "r", Tier::Write)
            .await
            .unwrap();
        assert_eq!(without.preview, None, "{backend}");
        // The binding is the call's: the preview is not part of it.
        assert_eq!(with.call_hash, without.call_hash, "{backend}");

        // Every read: one, the list, the filtered list, after a decision, and the sweep.
        let got = approvals.get("a", &with.id).await.unwrap();
        assert_eq!(got.preview.as_deref(), Some(preview), "{backend}");
        for status in [None, Some(Status::Pending)] {
            let listed = approvals.list("a", status, 10).await.unwrap();
            let found = listed.iter().find(|a| a.id == with.id).unwrap();
            assert_eq!(found.preview.as_deref(), Some(preview), "{backend}");
            let other = listed.iter().find(|a| a.id == without.id).unwrap();
            assert_eq!(other.preview, None, "{backend}");
        }
        let approved = approvals
            .decide(&admin("bob", "a"), &with.id, true, "ok", None)
            .await
            .unwrap();
        assert_eq!(approved.preview.as_deref(), Some(preview), "{backend}");
        approvals
            .set_expiry_for_tests(&with.id, now_us() - 1)
            .await
            .unwrap();
        let expired = approvals.expire_due().await.unwrap();
        let swept = expired.iter().find(|a| a.id == with.id).unwrap();
        assert_eq!(swept.preview.as_deref(), Some(preview), "{backend}");

        // Its JSON names it `preview`, `null` when there is none, and reads back.
        let json = serde_json::to_value(&got).unwrap();
        assert_eq!(json["preview"], preview, "{backend}");
        assert!(serde_json::to_value(&without).unwrap()["preview"].is_null());
        let back: meho_approvals::Approval = serde_json::from_value(json).unwrap();
        assert_eq!(back.preview, got.preview);
    }
    cleanup(all).await;
}

#[tokio::test]
async fn denials_and_expiry_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let all = stores(dir.path()).await;
    for (backend, store) in all.clone() {
        let approvals = Approvals::new(store.pool().clone(), ApprovalPolicy::default());
        let asked = call("alice", "rm -rf /srv/cache");
        let denied = approvals
            .create(&asked, None, "s", "r", Tier::Destructive)
            .await
            .unwrap();
        let after = approvals
            .decide(&admin("bob", "a"), &denied.id, false, "not today", None)
            .await
            .unwrap();
        assert_eq!(after.status, Status::Denied, "{backend}");
        assert_eq!(after.reason.as_deref(), Some("not today"));
        assert!(approvals.consume(&denied.id, &asked).await.is_err());

        // A pending approval past its time cannot be approved…
        let late = approvals
            .create(&asked, None, "s", "r", Tier::Write)
            .await
            .unwrap();
        approvals
            .set_expiry_for_tests(&late.id, now_us() - 1)
            .await
            .unwrap();
        assert_eq!(
            approvals.get("a", &late.id).await.unwrap().status,
            Status::Expired
        );
        let err = approvals
            .decide(&admin("bob", "a"), &late.id, true, "ok", None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ApprovalError::WrongState {
                    status: Status::Expired,
                    ..
                }
            ),
            "{backend}"
        );
        // …and an approved one not collected in time cannot be consumed.
        let uncollected = approvals
            .create(&asked, None, "s", "r", Tier::Write)
            .await
            .unwrap();
        approvals
            .decide(&admin("bob", "a"), &uncollected.id, true, "ok", None)
            .await
            .unwrap();
        approvals
            .set_expiry_for_tests(&uncollected.id, now_us() - 1)
            .await
            .unwrap();
        let err = approvals
            .consume(&uncollected.id, &asked)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ApprovalError::WrongState {
                    status: Status::Expired,
                    ..
                }
            ),
            "{backend}"
        );
        assert!(
            approvals.expire_due().await.unwrap().len() >= 2,
            "{backend}"
        );
    }
    cleanup(all).await;
}

#[tokio::test]
async fn self_approval_only_when_policy_allows_and_it_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = stores(dir.path()).await;
    let (_, store) = all.remove(0);
    cleanup(all).await;
    let approvals = Approvals::new(
        store.pool().clone(),
        ApprovalPolicy {
            allow_self_approval: true,
            approver_roles: vec![Role::TenantAdmin, Role::Operator],
            ttl: Duration::from_secs(60),
        },
    );
    let asked = call("alice", "systemctl reload nginx");
    let pending = approvals
        .create(&asked, None, "s", "r", Tier::Write)
        .await
        .unwrap();
    assert!(pending.expires_at_us - pending.created_at_us <= 60_000_000);
    let approved = approvals
        .decide(
            &Approver {
                role: Role::Operator,
                ..admin("alice", "a")
            },
            &pending.id,
            true,
            "my own",
            None,
        )
        .await
        .unwrap();
    assert!(approved.self_approved);
    // Read-only is never an approver unless listed.
    let other = approvals
        .create(&asked, None, "s", "r", Tier::Write)
        .await
        .unwrap();
    let err = approvals
        .decide(
            &Approver {
                role: Role::ReadOnly,
                ..admin("bob", "a")
            },
            &other.id,
            true,
            "ok",
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ApprovalError::FourEyes(_)));
}

#[test]
fn the_call_hash_covers_every_field() {
    let base = call("alice", "id");
    let hashes: std::collections::BTreeSet<String> = [
        base.clone(),
        Call {
            tenant: "b".into(),
            ..base.clone()
        },
        Call {
            requester: "bob".into(),
            ..base.clone()
        },
        Call {
            target: "db".into(),
            ..base.clone()
        },
        // The same command as another kind of action (in a session) is another call.
        Call {
            action: json!({"kind": "session_exec", "command": "id", "sudo": false}),
            ..base.clone()
        },
        Call {
            action: json!({"kind": "exec", "command": "id", "sudo": true}),
            ..base.clone()
        },
    ]
    .iter()
    .map(Call::hash)
    .collect();
    assert_eq!(hashes.len(), 6);
    // Key order does not matter: the hash is over canonical JSON.
    let reordered = Call {
        action: json!({"sudo": false, "command": "id", "kind": "exec"}),
        ..base.clone()
    };
    assert_eq!(reordered.hash(), base.hash());
}

#[test]
fn the_policy_comes_from_approvals_config() {
    let config = meho_config::Config::parse(
        "[approvals]\nttl_seconds = 90\napprover_roles = [\"operator\"]\n",
        None,
    )
    .unwrap();
    let policy = ApprovalPolicy::from_config(&config.approvals);
    assert_eq!(policy.ttl, Duration::from_secs(90));
    assert_eq!(policy.approver_roles, [Role::Operator]);
    assert!(!policy.allow_self_approval);
    let defaults =
        ApprovalPolicy::from_config(&meho_config::Config::default_config().unwrap().approvals);
    assert_eq!(defaults, ApprovalPolicy::default());
}

#[tokio::test]
async fn every_reason_obeys_one_limit_and_a_missing_row_names_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let all = stores(dir.path()).await;
    let longest = "r".repeat(MAX_REASON_CHARS);
    let too_long = "r".repeat(MAX_REASON_CHARS + 1);
    // Counted as sent: trimming does not stretch the limit.
    let padded = format!(" {longest}");
    for (backend, store) in all.clone() {
        let approvals = Approvals::new(store.pool().clone(), ApprovalPolicy::default());
        let grants = Grants::new(store.pool().clone());
        let freezes = Freezes::new(store.pool().clone());
        let pending = approvals
            .create(&call("alice", "x"), None, "s", "r", Tier::Write)
            .await
            .unwrap();
        let grant = |reason: &str| NewGrant {
            tenant: "a".into(),
            target: "web".into(),
            pattern: "^uptime$".into(),
            tier: Tier::Read,
            ttl: Duration::from_secs(600),
            reason: reason.into(),
            created_by: "bob".into(),
        };
        for reason in [too_long.as_str(), padded.as_str(), " \t\u{3000}"] {
            let refusals = [
                approvals
                    .decide(&admin("bob", "a"), &pending.id, true, reason, None)
                    .await
                    .unwrap_err(),
                grants.create(&grant(reason)).await.unwrap_err(),
                freezes
                    .create("a", FreezeKind::Principal, "p", reason, "bob")
                    .await
                    .unwrap_err(),
            ];
            for err in refusals {
                assert!(
                    matches!(&err, ApprovalError::Invalid(m) if m.contains(&format!("1 to {MAX_REASON_CHARS} characters"))),
                    "{backend}: {err}"
                );
            }
        }
        let frozen = freezes
            .create("a", FreezeKind::Principal, "p", &longest, "bob")
            .await
            .unwrap();
        let err = freezes
            .lift("a", &frozen.id, "bob", Some(&too_long))
            .await
            .unwrap_err();
        assert!(matches!(err, ApprovalError::Invalid(_)), "{backend}: {err}");
        // A blank lift reason is none.
        let lifted = freezes
            .lift("a", &frozen.id, "bob", Some("  "))
            .await
            .unwrap();
        assert_eq!(lifted.lift_reason, None, "{backend}");
        let granted = grants.create(&grant(&longest)).await.unwrap();
        assert_eq!(granted.reason.chars().count(), MAX_REASON_CHARS);

        // The table asked decides the word, whatever the id looks like.
        for (err, said) in [
            (
                approvals.get("a", "grt-1").await.unwrap_err(),
                "no approval `grt-1`",
            ),
            (
                grants.get("a", "apr-1").await.unwrap_err(),
                "no grant `apr-1`",
            ),
            (
                grants.get("a", "frz-1").await.unwrap_err(),
                "no grant `frz-1`",
            ),
            (
                freezes.get("a", "apr-1").await.unwrap_err(),
                "no freeze `apr-1`",
            ),
            (
                freezes.get("a", "wvr-1").await.unwrap_err(),
                "no freeze `wvr-1`",
            ),
        ] {
            assert!(
                matches!(err, ApprovalError::NotFound(_)) && err.to_string().contains(said),
                "{backend}: {err}"
            );
        }
    }
    cleanup(all).await;
}

#[test]
fn the_not_blank_pattern_is_exactly_what_trim_leaves_something_of() {
    // The OpenAPI document publishes this pattern; clients (and schemathesis) judge reasons by
    // it, the store by `str::trim`. They must agree on every character.
    let pattern = regex::Regex::new(&meho_approvals::not_blank_pattern()).unwrap();
    for c in (0..=0x10_ffff_u32).filter_map(char::from_u32) {
        let text = c.to_string();
        assert_eq!(
            pattern.is_match(&text),
            !text.trim().is_empty(),
            "U+{:04X}",
            u32::from(c)
        );
    }
}

fn principal(name: &str) -> Subject<'_> {
    Subject {
        principal: name,
        session: None,
        serial: None,
    }
}

/// A freeze written through another handle on the same store (another process, as far as the
/// first one can tell: nothing is shared but the database) stops the very next check, and lifting
/// it there lets the next check through: the freezes a process remembers are never stale.
#[tokio::test]
async fn a_freeze_written_by_another_process_is_seen_by_the_very_next_check() {
    let dir = tempfile::tempdir().unwrap();
    let all = stores(dir.path()).await;
    for (backend, store) in all.clone() {
        let here = Freezes::new(store.pool().clone());
        // The other process opens the database on its own.
        let other_store = Store::open(&store_url(&backend, &store, dir.path()))
            .await
            .unwrap();
        let there = Freezes::new(other_store.pool().clone());
        for _ in 0..3 {
            assert_eq!(here.check("a", principal("mallory")).await.unwrap(), None);
        }
        let frozen = there
            .create("a", FreezeKind::Principal, "mallory", "stop", "bob")
            .await
            .unwrap();
        let found = here.check("a", principal("mallory")).await.unwrap();
        assert_eq!(
            found.as_ref().map(|f| f.id.as_str()),
            Some(frozen.id.as_str()),
            "{backend}"
        );
        // Other principals and tenants are not stopped by it.
        assert_eq!(
            here.check("a", principal("alice")).await.unwrap(),
            None,
            "{backend}"
        );
        assert_eq!(
            here.check("b", principal("mallory")).await.unwrap(),
            None,
            "{backend}"
        );
        // A session and a serial freeze, the oldest matching one answers.
        let session = there
            .create("a", FreezeKind::Session, "s-1", "stop", "bob")
            .await
            .unwrap();
        let serial = there
            .create("a", FreezeKind::Serial, "42", "stop", "bob")
            .await
            .unwrap();
        let call = |session, serial| Subject {
            principal: "alice",
            session,
            serial,
        };
        assert_eq!(
            here.check("a", call(Some("s-1"), None))
                .await
                .unwrap()
                .map(|f| f.id),
            Some(session.id.clone()),
            "{backend}"
        );
        assert_eq!(
            here.check("a", call(None, Some(42)))
                .await
                .unwrap()
                .map(|f| f.id),
            Some(serial.id.clone()),
            "{backend}"
        );
        assert_eq!(
            here.check(
                "a",
                Subject {
                    principal: "mallory",
                    session: Some("s-1"),
                    serial: Some(42)
                }
            )
            .await
            .unwrap()
            .map(|f| f.id),
            Some(frozen.id.clone()),
            "{backend}"
        );
        // Lifted over there: the next check here lets the call through.
        there
            .lift("a", &frozen.id, "bob", Some("done"))
            .await
            .unwrap();
        assert_eq!(
            here.check("a", principal("mallory")).await.unwrap(),
            None,
            "{backend}"
        );
        assert_eq!(
            here.check("a", call(Some("s-1"), None))
                .await
                .unwrap()
                .map(|f| f.id),
            Some(session.id),
            "{backend}"
        );
        other_store.close().await;
    }
    cleanup(all).await;
}

/// A direct write to the table (a tool, a script, an operator at the SQL prompt) moves the same
/// generation: the check does not depend on meho's own code having written the freeze.
#[tokio::test]
async fn a_freeze_inserted_with_plain_sql_is_seen_by_the_next_check() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let store = Store::open(&url).await.unwrap();
    let freezes = Freezes::new(store.pool().clone());
    assert_eq!(
        freezes.check("a", principal("mallory")).await.unwrap(),
        None
    );
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO freezes (id, tenant, kind, value, reason, created_by, created_at_us) \
         VALUES ('frz-sql', 'a', 'principal', 'mallory', 'by hand', 'dba', 1)",
    )
    .execute(&mut other)
    .await
    .unwrap();
    let found = freezes.check("a", principal("mallory")).await.unwrap();
    assert_eq!(found.map(|f| f.id), Some("frz-sql".to_owned()));
    sqlx::query("DELETE FROM freezes WHERE id = 'frz-sql'")
        .execute(&mut other)
        .await
        .unwrap();
    assert_eq!(
        freezes.check("a", principal("mallory")).await.unwrap(),
        None
    );
    store.close().await;
}

/// When the generation cannot be read, the check fails: it never answers "not frozen" from
/// memory it can no longer vouch for.
#[tokio::test]
async fn a_freeze_check_that_cannot_read_the_generation_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let store = Store::open(&url).await.unwrap();
    let freezes = Freezes::new(store.pool().clone());
    assert_eq!(
        freezes.check("a", principal("mallory")).await.unwrap(),
        None
    );
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("DROP TABLE freeze_generation")
        .execute(&mut other)
        .await
        .unwrap();
    for _ in 0..2 {
        let err = freezes.check("a", principal("mallory")).await.unwrap_err();
        assert!(matches!(err, ApprovalError::Store(_)), "{err}");
        assert!(err.to_string().contains("freeze generation"), "{err}");
    }
    store.close().await;
}

/// The URL another process would open `store` with (the PostgreSQL test URLs carry no password,
/// so the masked URL is the real one).
fn store_url(backend: &str, store: &Store, dir: &std::path::Path) -> String {
    match backend {
        "sqlite" => format!("sqlite://{}", dir.join("a.db").display()),
        _ => store.url().to_owned(),
    }
}
