//! Delivery against a real HTTP receiver on a loopback port: formats, retries, backoff,
//! `Retry-After`, timeouts, redirects, and the audit record of every delivery, which never
//! holds the URL.

use std::time::{Duration, Instant};

use meho_audit::StoredRecord;
use meho_notify::{Notifier, NotifyError, WebhookFormat};
use serde_json::Value;

use crate::support::{
    Audit, CANARY, Receiver, Reply, TENANT, approval, capture_logs, closed_port_url, drained, logs,
    notifier, webhook,
};

fn body(record: &StoredRecord) -> Value {
    serde_json::from_str(&record.body).unwrap()
}

/// The one `notify` record for `webhook`.
fn record_for<'a>(records: &'a [StoredRecord], webhook: &str) -> &'a StoredRecord {
    let matching: Vec<&StoredRecord> = records
        .iter()
        .filter(|r| body(r)["webhook"] == webhook)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one record for `{webhook}`: {records:#?}"
    );
    matching[0]
}

fn assert_notify_record(record: &StoredRecord, approval_id: &str, outcome: &str) {
    assert_eq!(record.kind, "approval");
    assert_eq!(record.tenant, TENANT);
    assert_eq!(record.principal, "meho-notify");
    assert_eq!(record.action.as_deref(), Some("notify"));
    assert_eq!(record.outcome.as_deref(), Some(outcome));
    assert_eq!(record.approval_id.as_deref(), Some(approval_id));
    assert_eq!(record.target.as_deref(), Some("web-1"));
}

#[tokio::test]
async fn delivers_all_three_formats_with_a_console_link() {
    let audit = Audit::start().await;
    let receiver = Receiver::always(200).await;
    let notifier = notifier(
        vec![
            webhook(
                "ops-json",
                &receiver.url("/generic"),
                WebhookFormat::Generic,
                3,
            ),
            webhook(
                "ops-slack",
                &receiver.url("/slack"),
                WebhookFormat::Slack,
                3,
            ),
            webhook(
                "ops-teams",
                &receiver.url("/teams"),
                WebhookFormat::Teams,
                3,
            ),
        ],
        &audit,
    );
    let approval = approval("apr-formats");
    notifier.notify_pending(&approval);
    drained(&notifier).await;

    let received = receiver.received();
    assert_eq!(received.len(), 3, "{received:#?}");
    let by_path = |path: &str| received.iter().find(|r| r.path == path).unwrap();
    for request in &received {
        assert_eq!(request.header("content-type"), "application/json");
        assert_eq!(request.header("x-meho-event"), "approval.pending");
        assert!(request.header("user-agent").starts_with("meho/"));
        assert!(!request.header("x-meho-delivery").is_empty());
        let text = String::from_utf8(request.body.to_vec()).unwrap();
        assert!(
            text.contains(&approval.console_url),
            "{}: no console link in {text}",
            request.path
        );
    }

    let generic = by_path("/generic").json();
    assert_eq!(generic["type"], "approval.pending");
    assert_eq!(generic["approval"]["id"], "apr-formats");
    assert_eq!(generic["approval"]["tier"], "write");
    assert_eq!(
        generic["approval"]["console_url"],
        approval.console_url.as_str()
    );
    assert_eq!(generic["approval"]["arguments"], approval.arguments);

    let slack = by_path("/slack").json();
    assert!(slack["text"].as_str().unwrap().contains("Approval needed"));
    let blocks = slack["blocks"].as_array().unwrap();
    let kinds: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert!(
        kinds.contains(&"section") && kinds.contains(&"actions"),
        "{kinds:?}"
    );
    let button = blocks.iter().find(|b| b["type"] == "actions").unwrap()["elements"][0].clone();
    assert_eq!(button["url"], approval.console_url.as_str());
    assert!(
        blocks
            .iter()
            .any(|b| b["text"]["text"] == "```systemctl restart nginx```"),
        "the command in a code block: {blocks:#?}"
    );

    let teams = by_path("/teams").json();
    let attachment = &teams["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(attachment["content"]["type"], "AdaptiveCard");
    assert_eq!(attachment["content"]["version"], "1.4");
    assert_eq!(
        attachment["content"]["actions"][0]["type"],
        "Action.OpenUrl"
    );
    assert_eq!(
        attachment["content"]["actions"][0]["url"],
        approval.console_url.as_str()
    );

    let records = audit.notify_records().await;
    assert_eq!(records.len(), 3);
    for (name, format) in [
        ("ops-json", "generic"),
        ("ops-slack", "slack"),
        ("ops-teams", "teams"),
    ] {
        let record = record_for(&records, name);
        assert_notify_record(record, "apr-formats", "notified");
        let body = body(record);
        assert_eq!(body["format"], format);
        assert_eq!(body["attempts"], 1);
        assert_eq!(body["status"], 200);
        assert!(body.get("error").is_none(), "{body}");
    }
}

#[tokio::test]
async fn retries_two_503s_and_delivers_on_the_third_attempt() {
    let audit = Audit::start().await;
    let receiver = Receiver::start(
        vec![Reply::status(503), Reply::status(503)],
        Reply::status(200),
    )
    .await;
    let notifier = notifier(
        vec![webhook(
            "flaky",
            &receiver.url("/hook"),
            WebhookFormat::Generic,
            5,
        )],
        &audit,
    );
    notifier.notify_pending(&approval("apr-flaky"));
    drained(&notifier).await;

    let received = receiver.received();
    assert_eq!(received.len(), 3);
    let delivery = received[0].header("x-meho-delivery").to_owned();
    assert!(
        received
            .iter()
            .all(|r| r.header("x-meho-delivery") == delivery),
        "every attempt carries the same delivery id"
    );
    assert!(received.iter().all(|r| r.body == received[0].body));

    let records = audit.notify_records().await;
    assert_eq!(records.len(), 1);
    assert_notify_record(&records[0], "apr-flaky", "notified");
    let body = body(&records[0]);
    assert_eq!(body["attempts"], 3);
    assert_eq!(body["status"], 200);
}

#[tokio::test]
async fn gives_up_after_max_attempts_and_never_records_or_logs_the_url() {
    capture_logs();
    let audit = Audit::start().await;
    let failing = Receiver::start(Vec::new(), Reply::status(500).echo_path()).await;
    let failing_url = failing.url(&format!("/hook/{CANARY}"));
    let closed_url = closed_port_url(&format!("/hook/{CANARY}"));
    let notifier = notifier(
        vec![
            webhook("always-500", &failing_url, WebhookFormat::Slack, 3),
            webhook("nobody-home", &closed_url, WebhookFormat::Teams, 3),
        ],
        &audit,
    );
    assert!(!format!("{notifier:?}").contains(CANARY));
    notifier.notify_pending(&approval("apr-down"));
    drained(&notifier).await;

    assert_eq!(
        failing.received().len(),
        3,
        "max_attempts requests, no more"
    );
    let records = audit.notify_records().await;
    assert_eq!(records.len(), 2);

    let served = record_for(&records, "always-500");
    assert_notify_record(served, "apr-down", "notify_failed");
    let served_body = body(served);
    assert_eq!(served_body["attempts"], 3);
    assert_eq!(served_body["status"], 500);
    assert_eq!(served_body["format"], "slack");
    let error = served_body["error"].as_str().unwrap();
    assert!(error.starts_with("HTTP 500"), "{error}");
    // The receiver echoed the path; the echo was scrubbed.
    assert!(error.contains("<redacted>"), "{error}");

    let unreachable = record_for(&records, "nobody-home");
    assert_notify_record(unreachable, "apr-down", "notify_failed");
    let unreachable_body = body(unreachable);
    assert_eq!(unreachable_body["attempts"], 3);
    assert!(
        unreachable_body.get("status").is_none(),
        "{unreachable_body}"
    );
    let error = unreachable_body["error"].as_str().unwrap();
    assert!(error.starts_with("cannot connect: "), "{error}");
    assert!(!error.contains("127.0.0.1"), "{error}");

    for record in audit.records(TENANT).await {
        let everything = format!("{record:?}");
        assert!(
            !everything.contains(CANARY),
            "URL in audit record: {everything}"
        );
        assert!(!everything.contains(&failing_url) && !everything.contains(&closed_url));
    }

    let logs = logs();
    assert!(
        logs.contains("webhook notification failed") && logs.contains("always-500"),
        "failures are logged by name"
    );
    assert!(logs.contains("nobody-home"));
    assert!(!logs.contains(CANARY), "URL in the logs:\n{logs}");
}

#[tokio::test]
async fn does_not_retry_a_400() {
    let audit = Audit::start().await;
    let receiver = Receiver::start(Vec::new(), Reply::status(400)).await;
    let notifier = notifier(
        vec![webhook(
            "bad-payload",
            &receiver.url("/hook"),
            WebhookFormat::Slack,
            5,
        )],
        &audit,
    );
    notifier.notify_pending(&approval("apr-400"));
    drained(&notifier).await;

    assert_eq!(receiver.received().len(), 1);
    let records = audit.notify_records().await;
    assert_eq!(records.len(), 1);
    assert_notify_record(&records[0], "apr-400", "notify_failed");
    let body = body(&records[0]);
    assert_eq!(body["attempts"], 1);
    assert_eq!(body["status"], 400);
    assert_eq!(body["error"], "HTTP 400");
}

#[tokio::test]
async fn does_not_follow_redirects() {
    let audit = Audit::start().await;
    let receiver = Receiver::start(
        Vec::new(),
        Reply::status(307).header("location", "/elsewhere"),
    )
    .await;
    let notifier = notifier(
        vec![webhook(
            "moved",
            &receiver.url("/hook"),
            WebhookFormat::Generic,
            5,
        )],
        &audit,
    );
    notifier.notify_pending(&approval("apr-redirect"));
    drained(&notifier).await;

    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0].path, "/hook");
    let records = audit.notify_records().await;
    assert_notify_record(&records[0], "apr-redirect", "notify_failed");
    assert_eq!(body(&records[0])["status"], 307);
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let audit = Audit::start().await;
    let receiver = Receiver::start(
        vec![Reply::status(429).header("retry-after", "1")],
        Reply::status(204),
    )
    .await;
    let notifier = notifier(
        vec![webhook(
            "throttled",
            &receiver.url("/hook"),
            WebhookFormat::Generic,
            3,
        )],
        &audit,
    );
    let started = Instant::now();
    notifier.notify_pending(&approval("apr-429"));
    drained(&notifier).await;

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}, not the 1 s Retry-After asked for",
        started.elapsed()
    );
    let records = audit.notify_records().await;
    assert_notify_record(&records[0], "apr-429", "notified");
    let body = body(&records[0]);
    assert_eq!(body["attempts"], 2);
    assert_eq!(body["status"], 204);
}

#[tokio::test]
async fn retries_an_attempt_that_timed_out() {
    let audit = Audit::start().await;
    let receiver = Receiver::start(
        vec![Reply::status(200).delay(Duration::from_secs(5))],
        Reply::status(200),
    )
    .await;
    let mut hook = webhook("slow", &receiver.url("/hook"), WebhookFormat::Generic, 3);
    hook.timeout_seconds = 1;
    let notifier = notifier(vec![hook], &audit);
    notifier.notify_pending(&approval("apr-slow"));
    drained(&notifier).await;

    assert_eq!(receiver.received().len(), 2);
    let records = audit.notify_records().await;
    assert_notify_record(&records[0], "apr-slow", "notified");
    assert_eq!(body(&records[0])["attempts"], 2);
}

#[tokio::test]
async fn every_approval_gets_its_own_delivery_and_record() {
    let audit = Audit::start().await;
    let receiver = Receiver::always(200).await;
    let notifier = notifier(
        vec![
            webhook("a", &receiver.url("/a"), WebhookFormat::Generic, 2),
            webhook("b", &receiver.url("/b"), WebhookFormat::Slack, 2),
        ],
        &audit,
    );
    let clone = notifier.clone();
    for i in 0..10 {
        clone.notify_pending(&approval(&format!("apr-{i}")));
    }
    drained(&notifier).await;
    assert_eq!(receiver.received().len(), 20);
    let records = audit.notify_records().await;
    assert_eq!(records.len(), 20);
    assert!(
        records
            .iter()
            .all(|r| r.outcome.as_deref() == Some("notified"))
    );
    for i in 0..10 {
        let id = format!("apr-{i}");
        assert_eq!(
            records
                .iter()
                .filter(|r| r.approval_id.as_deref() == Some(id.as_str()))
                .count(),
            2
        );
    }
}

#[tokio::test]
async fn no_webhooks_means_nothing_to_do() {
    let audit = Audit::start().await;
    let notifier = notifier(Vec::new(), &audit);
    notifier.notify_pending(&approval("apr-none"));
    assert!(notifier.drain(Duration::from_millis(10)).await);
    assert!(audit.notify_records().await.is_empty());
}

#[tokio::test]
async fn drain_reports_a_delivery_still_running() {
    let audit = Audit::start().await;
    let receiver =
        Receiver::start(Vec::new(), Reply::status(200).delay(Duration::from_secs(2))).await;
    let notifier = notifier(
        vec![webhook(
            "slow",
            &receiver.url("/hook"),
            WebhookFormat::Generic,
            1,
        )],
        &audit,
    );
    notifier.notify_pending(&approval("apr-drain"));
    assert!(!notifier.drain(Duration::from_millis(100)).await);
    drained(&notifier).await;
    assert_eq!(audit.notify_records().await.len(), 1);
}

#[tokio::test]
async fn refuses_unusable_webhooks_without_echoing_the_url() {
    let audit = Audit::start().await;
    let secret = format!("https://hooks.example.com/{CANARY}");
    let cases = [
        (webhook("", &secret, WebhookFormat::Slack, 3), "name"),
        (
            webhook("zero", &secret, WebhookFormat::Slack, 0),
            "max_attempts",
        ),
        (
            webhook("many", &secret, WebhookFormat::Slack, 21),
            "max_attempts",
        ),
        (
            webhook(
                "ftp",
                &format!("ftp://example.com/{CANARY}"),
                WebhookFormat::Slack,
                3,
            ),
            "url",
        ),
        (
            webhook(
                "relative",
                &format!("/hook/{CANARY}"),
                WebhookFormat::Slack,
                3,
            ),
            "url",
        ),
        (
            {
                let mut hook = webhook("timeout", &secret, WebhookFormat::Slack, 3);
                hook.timeout_seconds = 0;
                hook
            },
            "timeout_seconds",
        ),
    ];
    for (hook, word) in cases {
        let err = Notifier::new(vec![hook], audit.log.clone()).unwrap_err();
        assert!(matches!(err, NotifyError::InvalidWebhook { .. }), "{err:?}");
        let text = format!("{err} {err:?}");
        assert!(text.contains(word), "{text}");
        assert!(!text.contains(CANARY), "{text}");
    }
    let twice = vec![
        webhook("same", &secret, WebhookFormat::Slack, 3),
        webhook("same", &secret, WebhookFormat::Teams, 3),
    ];
    let err = Notifier::new(twice, audit.log.clone()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "webhook `same`: the name is used by another webhook"
    );
}

#[test]
fn notifying_outside_a_runtime_sends_nothing_and_does_not_panic() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (audit, receiver) =
        runtime.block_on(async { (Audit::start().await, Receiver::always(200).await) });
    let notifier = notifier(
        vec![webhook(
            "x",
            &receiver.url("/hook"),
            WebhookFormat::Generic,
            1,
        )],
        &audit,
    );
    let sender = notifier.clone();
    std::thread::spawn(move || sender.notify_pending(&approval("apr-no-runtime")))
        .join()
        .expect("notify_pending outside a runtime must not panic");
    runtime.block_on(async {
        assert!(notifier.drain(Duration::from_secs(1)).await);
        assert!(receiver.received().is_empty());
        assert!(audit.notify_records().await.is_empty());
    });
}
