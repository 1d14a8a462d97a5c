//! The live feed: gap-free, duplicate-free subscriptions that resume after a sequence number,
//! survive falling behind the bus, and only ever see their own tenant.

use std::sync::Arc;

use meho_audit::{AuditLog, FeedEvent, Subscription};
use meho_core::Tier;

use crate::support::{Fixture, record, within};

/// The next event, under a hang guard.
async fn next(subscription: &mut Subscription) -> Arc<FeedEvent> {
    within(60, "the next feed event", subscription.next())
        .await
        .unwrap()
}

/// The event must be exactly the stored record it announces.
async fn assert_matches_store(log: &AuditLog, event: &FeedEvent) {
    let stored = log.get(&event.id).await.unwrap().unwrap();
    assert_eq!(event, &FeedEvent::from_stored(stored).unwrap());
}

both_backends!(
    subscription_resumes_after_seq_then_follows_live,
    lagging_subscriber_misses_nothing,
    announce_publishes_an_announce_event,
    tenants_only_see_their_own_events
);

/// Subscribing after seq 4 of 10 yields 5..10 from the store, then 11..16 as they are
/// appended: in order, nothing twice, each event equal to its stored record.
async fn subscription_resumes_after_seq_then_follows_live(fx: Fixture) {
    let log = Arc::new(fx.start_log(1000).await);
    for i in 0..10 {
        log.append(record("acme", "alice", i)).await.unwrap();
    }
    let mut subscription = log.subscribe("acme", 4);
    assert_eq!(subscription.last_seq(), 4);
    for seq in 5..=10 {
        let event = next(&mut subscription).await;
        assert_eq!(event.seq, seq);
        assert_matches_store(&log, &event).await;
    }
    // Appended while the subscription is open: these reach it through the bus and the
    // store both, and must come out once each.
    let appender = log.clone();
    let handle = tokio::spawn(async move {
        for i in 10..15 {
            appender.append(record("acme", "alice", i)).await.unwrap();
        }
    });
    for seq in 11..=15 {
        let event = next(&mut subscription).await;
        assert_eq!(event.seq, seq, "in order, no gap, no duplicate");
        assert_matches_store(&log, &event).await;
    }
    handle.await.unwrap();
    let appended = log.append(record("acme", "alice", 15)).await.unwrap();
    let event = next(&mut subscription).await;
    assert_eq!(
        (event.seq, event.id.as_str()),
        (16, appended.id.as_str()),
        "no duplicate of 11..15 follows"
    );
    assert_eq!(subscription.last_seq(), 16);
    log.shutdown().await.unwrap();
}

/// A subscriber that reads nothing while 3000 records are appended (the bus keeps 1024)
/// still receives every seq exactly once, in order, then follows live again.
async fn lagging_subscriber_misses_nothing(fx: Fixture) {
    let log = Arc::new(fx.start_log(1000).await);
    for i in 0..5 {
        log.append(record("flood", "alice", i)).await.unwrap();
    }
    let mut subscription = log.subscribe("flood", 0);
    let mut raw = meho_audit::FeedBus::subscribe(log.bus.as_ref(), "flood");
    for seq in 1..=5 {
        assert_eq!(next(&mut subscription).await.seq, seq);
    }
    // Bring the subscription into live mode: it must hand out an event exactly as the bus
    // published it (the same `Arc`), not a copy read from the store.
    let mut seq = 5;
    loop {
        assert!(seq < 100, "the subscription never followed the bus live");
        let (event, ()) = tokio::join!(next(&mut subscription), async {
            tokio::task::yield_now().await;
            log.append(record("flood", "alice", 0)).await.unwrap();
        });
        seq += 1;
        let published = within(60, "the bus event", raw.recv()).await.unwrap();
        assert_eq!((event.seq, published.seq), (seq, seq));
        if Arc::ptr_eq(&event, &published) {
            break;
        }
    }

    // Now it reads nothing while 3000 records are appended: its bus channel overflows.
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..30 {
        let log = log.clone();
        tasks.spawn(async move {
            for i in 0..100 {
                log.append(record("flood", &format!("agent-{task}"), i))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    for expected in seq + 1..=seq + 3000 {
        let event = next(&mut subscription).await;
        assert_eq!(event.seq, expected, "every seq once, in order");
        assert_eq!(event.record.tenant, "flood");
    }
    let seq = seq + 3000;
    let last = log.append(record("flood", "alice", 5)).await.unwrap();
    let event = next(&mut subscription).await;
    assert_eq!((event.seq, event.id.as_str()), (seq + 1, last.id.as_str()));
    log.shutdown().await.unwrap();
}

/// `announce` publishes an `announce` event carrying the activity.
async fn announce_publishes_an_announce_event(fx: Fixture) {
    let log = fx.start_log(1000).await;
    let mut live = meho_audit::FeedBus::subscribe(log.bus.as_ref(), "acme");
    let mut subscription = log.subscribe("acme", 0);
    let targets = vec!["web-1".to_owned(), "web-2".to_owned()];
    let done = log
        .announce(
            "acme",
            "agent-7",
            "rotating TLS certificates on the web tier",
            &targets,
            Tier::Write,
            300,
        )
        .await
        .unwrap();

    let from_bus = live.try_recv().unwrap();
    let from_subscription = next(&mut subscription).await;
    for event in [&from_bus, &from_subscription] {
        assert_eq!(event.record.kind.as_str(), "announce");
        assert_eq!(event.id, done.id);
        assert_eq!(event.seq, 1);
        assert_eq!(event.record.principal, "agent-7");
        assert_eq!(event.record.action.as_deref(), Some("announce"));
        assert_eq!(event.record.target.as_deref(), Some("web-1"));
        assert_eq!(
            event.record.body["activity"],
            "rotating TLS certificates on the web tier"
        );
        assert_eq!(
            event.record.body["targets"],
            serde_json::json!(["web-1", "web-2"])
        );
        assert_eq!(event.record.body["planned_tier"], "write");
        assert_eq!(event.record.body["ttl_seconds"], 300);
    }
    assert_eq!(
        from_bus.as_ref(),
        from_subscription.as_ref(),
        "live and stored agree"
    );
    let stored = log.get(&done.id).await.unwrap().unwrap();
    assert_eq!(stored.kind, "announce");
    log.shutdown().await.unwrap();
}

/// Each tenant's subscription sees only that tenant's events.
async fn tenants_only_see_their_own_events(fx: Fixture) {
    let log = fx.start_log(1000).await;
    let mut a = log.subscribe("tenant-a", 0);
    let mut b = log.subscribe("tenant-b", 0);
    let mut live_a = meho_audit::FeedBus::subscribe(log.bus.as_ref(), "tenant-a");
    let mut sent_a = Vec::new();
    let mut sent_b = Vec::new();
    for i in 0..12 {
        match i % 3 {
            0 => sent_a.push(log.append(record("tenant-a", "alice", i)).await.unwrap().id),
            1 => sent_b.push(log.append(record("tenant-b", "bob", i)).await.unwrap().id),
            _ => {
                log.append(record("tenant-c", "carol", i)).await.unwrap();
            }
        }
    }
    for (subscription, sent, tenant) in
        [(&mut a, &sent_a, "tenant-a"), (&mut b, &sent_b, "tenant-b")]
    {
        for (index, id) in sent.iter().enumerate() {
            let event = next(subscription).await;
            assert_eq!(event.record.tenant, tenant);
            assert_eq!(&event.id, id);
            assert_eq!(event.seq, i64::try_from(index).unwrap() + 1);
        }
    }
    let mut live = Vec::new();
    while let Ok(event) = live_a.try_recv() {
        live.push(event.id.clone());
    }
    assert_eq!(
        live, sent_a,
        "the bus delivers only tenant-a's events to tenant-a"
    );

    // The next event each subscriber gets is its own, even though others came first.
    log.append(record("tenant-b", "bob", 100)).await.unwrap();
    log.append(record("tenant-c", "carol", 101)).await.unwrap();
    let last_a = log.append(record("tenant-a", "alice", 102)).await.unwrap();
    let event = next(&mut a).await;
    assert_eq!(
        (event.record.tenant.as_str(), event.id.as_str(), event.seq),
        ("tenant-a", last_a.id.as_str(), 5)
    );
    let event = next(&mut b).await;
    assert_eq!((event.record.tenant.as_str(), event.seq), ("tenant-b", 5));
    log.shutdown().await.unwrap();
}
