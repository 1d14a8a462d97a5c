//! Caps on open MCP sessions (`[mcp] max_sessions`, `max_sessions_per_principal`), and the
//! binding of a session to its owner living exactly as long as the session.

use std::time::{Duration, Instant};

use meho_server::mcp::SessionLimits;
use serde_json::{Value, json};

use crate::support::{Options, Server, WAIT, initialize_request};

fn capped(max_sessions: usize, max_per_principal: usize) -> Options {
    Options {
        sessions: SessionLimits {
            max_sessions,
            max_per_principal,
            ..SessionLimits::default()
        },
        ..Options::default()
    }
}

/// Sends `initialize` without a session: the request that opens one.
async fn open(server: &Server, token: &str) -> reqwest::Response {
    server
        .post_mcp(Some(token), None, &initialize_request(1))
        .await
}

/// The JSON error of a refused `initialize`, after checking its status.
async fn refused(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert!(
        response.headers().get("mcp-session-id").is_none(),
        "a refused initialize opened a session"
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_principal_past_its_cap_gets_429_and_other_principals_are_unaffected() {
    let server = Server::start_with(capped(16, 2)).await;
    let alice = server.token("alice", "a");
    let mut first = server.connect(&alice).await;
    let _second = server.connect(&alice).await;

    let error = refused(open(&server, &alice).await, 429).await;
    assert_eq!(error["error"], "too_many_sessions", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("`alice`")
            && message.contains("2 open MCP sessions")
            && message.contains("max_sessions_per_principal"),
        "{message}"
    );

    // Bob, and alice of another tenant (another principal), are not held to alice's cap.
    let mut bob = server.connect(&server.token("bob", "a")).await;
    let answer = bob.call_tool("list_targets", json!({})).await;
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    server.connect(&server.token("alice", "b")).await;
    // Alice's open sessions keep working at her cap.
    let answer = first.call_tool("list_targets", json!({})).await;
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");

    // Closing one frees its slot, and the closed session is gone.
    let deleted = server.delete_mcp(&alice, &first.session).await;
    // What the MCP SDKs expect of a session termination (they log anything else as a failure).
    assert_eq!(deleted.status(), 204);
    let mut third = server.connect(&alice).await;
    let answer = third.call_tool("list_targets", json!({})).await;
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    let (_, body) = first.message("tools/list", json!({}));
    let gone = server
        .post_mcp(Some(&alice), Some(&first.session), &body)
        .await;
    assert_eq!(gone.status(), 404);
    let error: Value = gone.json().await.unwrap();
    assert_eq!(error["error"], "session_not_found", "{error}");
    // And alice is at her cap again.
    refused(open(&server, &alice).await, 429).await;
}

#[tokio::test]
async fn a_full_server_gets_503_until_a_session_closes() {
    let server = Server::start_with(capped(3, 2)).await;
    let alice = server.token("alice", "a");
    let bob = server.token("bob", "a");
    let carol = server.token("carol", "a");
    server.connect(&alice).await;
    server.connect(&alice).await;
    let bobs = server.connect(&bob).await;

    let error = refused(open(&server, &carol).await, 503).await;
    assert_eq!(error["error"], "sessions_exhausted", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("3 open MCP sessions") && message.contains("[mcp] max_sessions"),
        "{message}"
    );

    let deleted = server.delete_mcp(&bob, &bobs.session).await;
    assert!(deleted.status().is_success(), "{}", deleted.status());
    server.connect(&carol).await;
    refused(open(&server, &bob).await, 503).await;
}

#[tokio::test]
async fn concurrent_opens_never_exceed_the_cap() {
    let server = Server::start_with(capped(64, 5)).await;
    let alice = server.token("alice", "a");
    let mut opens = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let request = server
            .http
            .post(format!("{}/mcp", server.base))
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(initialize_request(1).to_string());
        opens.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let statuses = opens.join_all().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        15,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_session_rmcp_expires_frees_its_slot_and_its_binding() {
    let server = Server::start_with(Options {
        sessions: SessionLimits {
            max_sessions: 16,
            max_per_principal: 1,
            idle_timeout: Duration::from_secs(2),
        },
        ..Options::default()
    })
    .await;
    let alice = server.token("alice", "a");
    let mut idle = server.connect(&alice).await;
    let (_, probe) = idle.message("tools/list", json!({}));

    // Left alone, the session ends in rmcp; its slot comes back without a DELETE. (Polled, with
    // the usual hang guard: how long expiry takes is rmcp's business, not the assertion.)
    let deadline = Instant::now() + WAIT;
    let reopened = loop {
        let response = open(&server, &alice).await;
        if response.status() == 200 {
            break response;
        }
        assert_eq!(response.status(), 429, "only the cap may refuse");
        assert!(Instant::now() < deadline, "the idle session never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(reopened.headers().get("mcp-session-id").is_some());

    // The expired session is gone for its owner, and for anyone else it is just as unknown.
    let mallory = server.token("mallory", "a");
    for token in [&alice, &mallory] {
        let gone = server
            .post_mcp(Some(token), Some(&idle.session), &probe)
            .await;
        assert_eq!(gone.status(), 404);
        let error: Value = gone.json().await.unwrap();
        assert_eq!(error["error"], "session_not_found", "{error}");
    }
}

#[test]
fn the_caps_come_from_the_mcp_table_with_defaults_and_checked_values() {
    let defaults = meho_config::Config::parse("", None).unwrap();
    assert_eq!(
        (
            defaults.mcp.max_sessions,
            defaults.mcp.max_sessions_per_principal
        ),
        (
            meho_config::DEFAULT_MAX_MCP_SESSIONS,
            meho_config::DEFAULT_MAX_MCP_SESSIONS_PER_PRINCIPAL
        )
    );
    assert_eq!(SessionLimits::from(&defaults.mcp), SessionLimits::default());
    let set = meho_config::Config::parse(
        "[mcp]\nmax_sessions = 40\nmax_sessions_per_principal = 4\n",
        None,
    )
    .unwrap();
    let limits = SessionLimits::from(&set.mcp);
    assert_eq!((limits.max_sessions, limits.max_per_principal), (40, 4));
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);

    // Zero would lock every client out: an error at the value, with file, line and column.
    let err = meho_config::Config::parse(
        "[mcp]\nmax_sessions = 10\nmax_sessions_per_principal = 0\n",
        Some(std::path::Path::new("meho.toml")),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("meho.toml:3:")
            && err.contains("max_sessions_per_principal must be at least 1"),
        "{err}"
    );
    let err = meho_config::Config::parse("[mcp]\nmax_sessions = 0\n", None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("<config>:2:") && err.contains("max_sessions must be at least 1"),
        "{err}"
    );
    // A share above the whole is allowed but pointless: a warning.
    let odd = meho_config::Config::parse(
        "[mcp]\nmax_sessions = 2\nmax_sessions_per_principal = 5\n",
        None,
    )
    .unwrap();
    assert_eq!(odd.warnings.len(), 1, "{:?}", odd.warnings);
    assert_eq!(odd.warnings[0].line, 3);
    // Unknown keys in [mcp] are still refused.
    assert!(meho_config::Config::parse("[mcp]\nmax_session = 3\n", None).is_err());
}
