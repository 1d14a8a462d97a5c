//! `GET /api/v1/recordings/{session_id}`: a closed session's recording, exactly as its closing
//! audit record vouches for it, in the caller's tenant only, for operators and admins.

use meho_audit::{NewRecord, RecordKind};
use serde_json::{Value, json};

use crate::support::{Options, Server};

const CAST: &str = "{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.1, \"i\", \"uptime\\n\"]\n[0.2, \"o\", \" 12:00 up 1 day\\n\"]\n";

/// A session's records in `tenant`: its opening outcome and, when `recording` is given, its
/// closing outcome with that sha256.
async fn session(server: &Server, tenant: &str, id: &str, recording: Option<&str>) {
    let record = |action: &str, body: Value| NewRecord {
        target: Some("web".to_owned()),
        action: Some(action.to_owned()),
        outcome: Some("ok".to_owned()),
        session_id: Some(id.to_owned()),
        call_id: Some(format!("call-{action}-{id}")),
        body,
        ..NewRecord::new(tenant, RecordKind::Outcome, "agent")
    };
    server
        .audit
        .append(record("ssh_session_open", json!({ "exit_status": null })))
        .await
        .unwrap();
    if let Some(sha) = recording {
        server
            .audit
            .append(record(
                "ssh_session_close",
                json!({ "recording_sha256": sha, "reason": "closed" }),
            ))
            .await
            .unwrap();
    }
}

async fn fetch(
    server: &Server,
    token: &str,
    id: &str,
) -> (u16, String, reqwest::header::HeaderMap) {
    let response = server
        .http
        .get(format!("{}/api/v1/recordings/{id}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.text().await.unwrap(), headers)
}

fn error_of(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_closed_sessions_recording_is_served_as_recorded_to_its_tenants_operators_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(Options {
        recordings: Some(dir.path().to_path_buf()),
        ..Options::default()
    })
    .await;
    let sha = meho_audit::sha256_hex(CAST.as_bytes());
    let id = "01234567-89ab-cdef-0123-456789abcdef";
    std::fs::write(dir.path().join(format!("{id}.cast")), CAST).unwrap();
    session(&server, "a", id, Some(&sha)).await;
    let operator = server.token_with_role("olga", "a", "operator");

    let (status, body, headers) = fetch(&server, &operator, id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, CAST);
    assert_eq!(headers["content-type"], "application/x-asciicast");
    assert_eq!(headers["x-meho-recording-sha256"], sha.as_str());
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("{id}.cast")),
        "{headers:?}"
    );
    let admin = server.token_with_role("ada", "a", "tenant_admin");
    assert_eq!(fetch(&server, &admin, id).await.0, 200);

    // A reader may not; another tenant's operator finds nothing.
    let (status, body, _) = fetch(
        &server,
        &server.token_with_role("rita", "a", "read_only"),
        id,
    )
    .await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (403, "forbidden"),
        "{body}"
    );
    let (status, body, _) =
        fetch(&server, &server.token_with_role("bob", "b", "operator"), id).await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (404, "not_found"),
        "{body}"
    );

    // A file changed after the session closed is not served.
    std::fs::write(
        dir.path().join(format!("{id}.cast")),
        CAST.replace("uptime", "uptimf"),
    )
    .unwrap();
    let (status, body, _) = fetch(&server, &operator, id).await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (409, "recording_mismatch"),
        "{body}"
    );

    // A session still open has no recording to serve yet; a missing file is a 404.
    let open = "11111111-2222-3333-4444-555555555555";
    session(&server, "a", open, None).await;
    let (status, body, _) = fetch(&server, &operator, open).await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (409, "recording_incomplete"),
        "{body}"
    );
    let gone = "22222222-2222-3333-4444-555555555555";
    session(&server, "a", gone, Some(&sha)).await;
    let (status, body, _) = fetch(&server, &operator, gone).await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (404, "not_found"),
        "{body}"
    );

    // Only a session id names a file.
    for bad in ["..", "a.cast", "x%2F..%2Fmeho.db", "%E2%80%AE"] {
        let (status, body, _) = fetch(&server, &operator, bad).await;
        assert!(status == 400 || status == 404, "{bad}: {status} {body}");
        assert!(!body.contains("version"), "{bad}: {body}");
    }
    let (status, body, _) = fetch(&server, &operator, "a.cast").await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (400, "bad_request"),
        "{body}"
    );
}
