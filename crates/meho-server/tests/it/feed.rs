//! `GET /api/v1/feed`: the caller's tenant's audit events as SSE, resumable by `Last-Event-ID`,
//! filterable by type, target and principal, and never another tenant's.

use meho_audit::RecordKind;
use serde_json::{Value, json};

use crate::support::{Server, SseEvent, SseReader, challenge, keys, with};

/// Opens the feed for `token` and checks it is an event stream.
async fn open(server: &Server, token: &str, query: &str, last_event_id: Option<&str>) -> SseReader {
    let response = server.feed(Some(token), query, last_event_id).await;
    assert_eq!(response.status(), 200, "feed{query} {last_event_id:?}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    SseReader::new(response)
}

/// Reads events until the one with sequence number `last` (or a later one).
async fn read_until_seq(events: &mut SseReader, last: i64) -> Vec<SseEvent> {
    let mut seen = Vec::new();
    loop {
        let event = events.next().await.expect("the feed ended early");
        let seq = event.json()["seq"].as_i64().unwrap();
        seen.push(event);
        if seq >= last {
            return seen;
        }
    }
}

fn seqs(events: &[SseEvent]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e.json()["seq"].as_i64().unwrap())
        .collect()
}

/// Every event is well formed: `id` is the sequence number, `event` the record kind.
fn assert_well_formed(events: &[SseEvent], tenant: &str) {
    for event in events {
        let data = event.json();
        assert_eq!(data["tenant"], tenant, "{data}");
        assert_eq!(
            event.id.as_deref(),
            Some(data["seq"].as_i64().unwrap().to_string().as_str()),
            "{data}"
        );
        assert_eq!(event.event.as_deref(), data["kind"].as_str(), "{data}");
    }
}

#[tokio::test]
async fn the_feed_streams_new_events_of_the_callers_tenant_only() {
    let server = Server::start().await;
    // History before the stream opens is not replayed without `after` or `Last-Event-ID`.
    server
        .append("a", RecordKind::Intent, "old", Some("x"))
        .await;

    let mut events = open(&server, &server.token("alice", "a"), "", None).await;
    let mut mine = Vec::new();
    for i in 0..3 {
        server
            .append("b", RecordKind::Intent, "bob", Some("secret-b"))
            .await;
        mine.push(
            server
                .append("a", RecordKind::Outcome, &format!("agent-{i}"), Some("x"))
                .await,
        );
        server
            .append("b", RecordKind::Announce, "bob", Some("secret-b"))
            .await;
    }
    let last = *mine.last().unwrap();
    let seen = read_until_seq(&mut events, last).await;
    assert_well_formed(&seen, "a");
    assert_eq!(seqs(&seen), mine, "exactly tenant a's new events, in order");
    for event in &seen {
        assert!(!event.data.contains("secret-b"), "{}", event.data);
        assert!(!event.data.contains("bob"), "{}", event.data);
    }
}

#[tokio::test]
async fn last_event_id_resumes_after_n_in_order() {
    let server = Server::start().await;
    let mut appended = Vec::new();
    for i in 0..6 {
        appended.push(
            server
                .append("a", RecordKind::Intent, &format!("p{i}"), Some("x"))
                .await,
        );
        server.append("b", RecordKind::Intent, "bob", None).await;
    }
    assert_eq!(
        appended,
        [1, 2, 3, 4, 5, 6],
        "sequence numbers are per tenant"
    );
    let token = server.token("alice", "a");

    let mut events = open(&server, &token, "", Some("2")).await;
    let seen = read_until_seq(&mut events, 6).await;
    assert_well_formed(&seen, "a");
    assert_eq!(seqs(&seen), [3, 4, 5, 6]);
    let ids: Vec<_> = seen.iter().map(|e| e.id.clone().unwrap()).collect();
    assert_eq!(ids, ["3", "4", "5", "6"]);

    // After resuming, live events follow with nothing skipped or repeated.
    let next = server
        .append("a", RecordKind::Outcome, "p6", Some("x"))
        .await;
    let live = read_until_seq(&mut events, next).await;
    assert_eq!(seqs(&live), [7]);

    // `?after=0` replays everything; `Last-Event-ID` wins over `?after`.
    let mut events = open(&server, &token, "?after=0", None).await;
    assert_eq!(
        seqs(&read_until_seq(&mut events, 7).await),
        [1, 2, 3, 4, 5, 6, 7]
    );
    let mut events = open(&server, &token, "?after=0", Some("5")).await;
    assert_eq!(seqs(&read_until_seq(&mut events, 7).await), [6, 7]);
}

#[tokio::test]
async fn type_target_and_principal_filter_the_feed() {
    let server = Server::start().await;
    let token = server.token("alice", "a");
    let plan = [
        (RecordKind::Intent, "alice", Some("web1")),
        (RecordKind::Announce, "bob", Some("db1")),
        (RecordKind::Outcome, "alice", Some("web1")),
        (RecordKind::Announce, "alice", Some("web1")),
        (RecordKind::Denial, "bob", Some("web1")),
        (RecordKind::Intent, "carol", None),
        (RecordKind::Announce, "carol", Some("db1")),
    ];
    let mut seqs_by = Vec::new();
    for (kind, principal, target) in plan {
        seqs_by.push((
            server.append("a", kind, principal, target).await,
            kind,
            principal,
            target,
        ));
    }
    // Tenant b has matching records too; none may show up.
    server
        .append("b", RecordKind::Announce, "alice", Some("web1"))
        .await;

    type Keep = fn(RecordKind, &str, Option<&str>) -> bool;
    let cases: [(&str, Keep); 4] = [
        ("type=announce", |k, _, _| k == RecordKind::Announce),
        ("target=web1", |_, _, t| t == Some("web1")),
        ("principal=bob", |_, p, _| p == "bob"),
        ("type=announce&principal=alice&target=web1", |k, p, t| {
            k == RecordKind::Announce && p == "alice" && t == Some("web1")
        }),
    ];
    for (query, keep) in cases {
        let expected: Vec<i64> = seqs_by
            .iter()
            .filter(|(_, k, p, t)| keep(*k, p, *t))
            .map(|(s, ..)| *s)
            .collect();
        let mut events = open(&server, &token, &format!("?after=0&{query}"), None).await;
        let last = *expected.last().unwrap();
        let seen = read_until_seq(&mut events, last).await;
        assert_well_formed(&seen, "a");
        assert_eq!(seqs(&seen), expected, "{query}");
    }
}

#[tokio::test]
async fn a_tenant_a_token_never_receives_tenant_b_events() {
    let server = Server::start().await;
    for i in 0..5 {
        server
            .append("b", RecordKind::Announce, &format!("b-{i}"), Some("b-host"))
            .await;
    }
    let sentinel = server
        .append("a", RecordKind::Announce, "a-0", Some("a-host"))
        .await;
    let token = server.token("alice", "a");

    // Replay, filters that match tenant b's records, and a live stream: nothing of b's, ever.
    let mut events = open(&server, &token, "?after=0", None).await;
    let seen = read_until_seq(&mut events, sentinel).await;
    assert_eq!(seqs(&seen), [sentinel]);
    assert_well_formed(&seen, "a");

    let mut by_target = open(&server, &token, "?after=0&target=b-host", None).await;
    let mut by_principal = open(&server, &token, "?after=0&principal=b-1", None).await;
    let mut live = open(&server, &token, "", None).await;
    for i in 5..10 {
        server
            .append("b", RecordKind::Announce, &format!("b-{i}"), Some("b-host"))
            .await;
    }
    let next = server
        .append("a", RecordKind::Outcome, "a-1", Some("a-host"))
        .await;
    // Named like tenant b's records, but tenant a's.
    let lookalike = server
        .append("a", RecordKind::Outcome, "b-1", Some("b-host"))
        .await;
    // Each stream's first event is tenant a's, though tenant b wrote first.
    for events in [&mut by_target, &mut by_principal] {
        let first = events.next().await.unwrap();
        assert_well_formed(std::slice::from_ref(&first), "a");
        assert_eq!(first.json()["seq"], json!(lookalike));
    }
    let seen = read_until_seq(&mut live, lookalike).await;
    assert_eq!(seqs(&seen), [next, lookalike]);
    assert_well_formed(&seen, "a");

    // The tenant can only come from the token: a query naming one is refused.
    let response = server.feed(Some(&token), "?tenant=b", None).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn announce_calls_from_different_principals_reach_their_tenants_feed() {
    let server = Server::start().await;
    let watcher = server.token("watcher", "a");
    let mut events = open(&server, &watcher, "?type=announce", None).await;

    for (sub, tenant, activity) in [
        ("alice", "a", "restart nginx on x"),
        ("mallory", "b", "exfiltrate from x"),
        ("bob", "a", "rotate logs on x"),
    ] {
        let mut mcp = server.connect(&server.token(sub, tenant)).await;
        let answer = mcp
            .call_tool(
                "announce",
                json!({
                    "activity": activity,
                    "targets": ["x"],
                    "planned_tier": "write",
                    "ttl_seconds": 600,
                }),
            )
            .await;
        assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
        assert_eq!(answer["result"]["structuredContent"]["announced"], true);
    }
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(events.next().await.unwrap());
    }
    assert_well_formed(&seen, "a");
    let got: Vec<(Value, Value)> = seen
        .iter()
        .map(|e| {
            let data = e.json();
            (data["principal"].clone(), data["body"]["activity"].clone())
        })
        .collect();
    assert_eq!(
        got,
        [
            (json!("alice"), json!("restart nginx on x")),
            (json!("bob"), json!("rotate logs on x")),
        ]
    );
    let data = seen[0].json();
    assert_eq!(data["target"], "x");
    assert_eq!(data["body"]["planned_tier"], "write");
    assert_eq!(data["kind"], "announce");
    assert_eq!(server.connector.count(), 0, "announce is meho's own tool");
}

#[tokio::test]
async fn bad_requests_are_400_and_no_token_is_401() {
    let server = Server::start().await;
    let token = server.token("alice", "a");
    for id in ["abc", "-1", "1.5", "", "9999999999999999999999"] {
        let response = server.feed(Some(&token), "", Some(id)).await;
        assert_eq!(response.status(), 400, "Last-Event-ID {id:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "bad_request", "{body}");
    }
    for query in ["?after=x", "?kind=announce", "?tenant=a"] {
        let response = server.feed(Some(&token), query, None).await;
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "bad_request", "{body}");
    }

    let response = server.feed(None, "?after=0", None).await;
    assert_eq!(response.status(), 401);
    let params = challenge(&response);
    assert_eq!(
        params.get("resource_metadata"),
        Some(&server.metadata_url())
    );
    assert!(!params.contains_key("error"), "{params:?}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
}

/// `?after=-1` must be refused like `Last-Event-ID: -1`. Fails today: feed.rs checks `seq >= 0`
/// for the header only, and a negative start makes the audit `Subscription` drop every stored
/// event (none is `last_seq + 1`) and re-read the same page forever.
#[tokio::test]
async fn a_negative_after_is_400_like_a_negative_last_event_id() {
    let server = Server::start().await;
    server.append("a", RecordKind::Intent, "alice", None).await;
    let token = server.token("alice", "a");
    let response = server.feed(Some(&token), "", Some("-1")).await;
    assert_eq!(response.status(), 400, "Last-Event-ID: -1");
    let response = server.feed(Some(&token), "?after=-1", None).await;
    assert_eq!(response.status(), 400, "?after=-1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "bad_request", "{body}");
}

#[tokio::test]
async fn the_feed_scope_alone_reads_the_feed_and_no_scope_does_not() {
    let server = Server::start().await;
    let seq = server
        .append("a", RecordKind::Announce, "alice", Some("x"))
        .await;
    let claims = server.claims("fred", "a");

    let feed_only = keys()
        .ed
        .sign(&with(claims.clone(), "scope", json!("mcp:feed")));
    let mut events = open(&server, &feed_only, "?after=0", None).await;
    assert_eq!(seqs(&read_until_seq(&mut events, seq).await), [seq]);

    let neither = keys()
        .ed
        .sign(&with(claims, "scope", json!("openid email")));
    let response = server.feed(Some(&neither), "?after=0", None).await;
    assert_eq!(response.status(), 401);
    let params = challenge(&response);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("insufficient_scope")
    );
}

#[tokio::test]
async fn open_feeds_end_when_the_server_shuts_down() {
    let server = Server::start().await;
    let mut events = open(&server, &server.token("alice", "a"), "", None).await;
    let seq = server.append("a", RecordKind::Intent, "alice", None).await;
    assert_eq!(seqs(&read_until_seq(&mut events, seq).await), [seq]);
    server.shutdown();
    assert!(events.next().await.is_none(), "the stream ended cleanly");
}
