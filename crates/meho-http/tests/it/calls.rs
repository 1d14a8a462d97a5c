//! The REST connector through the gateway's pipeline, against real OpenBao and Prometheus:
//! search, reads, held writes with their preview, denials that never reach the API, per-call
//! Vault tokens and dynamic credentials revoked after the call, a Vault outage, bad input, and
//! the secret canaries on every path.

use std::time::Duration;

use meho_gateway::{Answer, ErrorCode, Tier};
use meho_test_support::openbao::pg_role_exists;
use serde_json::{Value, json};

use meho_test_support::api_lab::{
    ApiLab, KV_CANARY, Peers, TOKEN_CANARY, accessor_alive, agent, boss, config_toml, issuer_in,
};

async fn lab(extra: &str) -> Option<(Peers, ApiLab)> {
    let dir = tempfile::tempdir().unwrap();
    let issuer = issuer_in(dir.path());
    let peers = Peers::start(&issuer).await?;
    let toml = config_toml(&peers, dir.path(), extra);
    let lab = ApiLab::new(dir, &toml, &peers.api_token).await;
    Some((peers, lab))
}

fn no_canary(what: &str, text: &str) {
    for canary in [TOKEN_CANARY, KV_CANARY] {
        assert!(!text.contains(canary), "{what} holds a secret: {text}");
    }
}

#[tokio::test]
async fn search_finds_health_and_a_read_runs_with_the_stored_token() {
    let Some((peers, lab)) = lab("").await else {
        return;
    };
    let found = lab
        .call(
            &agent(),
            "api_search_operations",
            json!({ "api": "bao", "query": "health", "limit": 3 }),
        )
        .await
        .unwrap();
    let first = &found["operations"][0];
    assert_eq!(first["path"], "/sys/health", "{found}");
    assert_eq!(first["tier"], "read");
    assert_eq!(first["needs_approval"], false);
    let answer = lab
        .call(
            &agent(),
            "api_call",
            json!({ "api": "bao", "operation": "GET /sys/health" }),
        )
        .await
        .unwrap();
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"]["initialized"], true, "{answer}");
    // A read OpenBao authenticates (and audits): it reached OpenBao with the stored token.
    peers
        .bao
        .kv_put("secret", "motd", json!({ "text": "hello" }))
        .await;
    let read = lab
        .call(
            &agent(),
            "api_call",
            json!({ "api": "bao", "operation": "GET /secret/data/{path}", "params": { "path": "motd" } }),
        )
        .await
        .unwrap();
    assert_eq!(read["body"]["data"]["data"]["text"], "hello", "{read}");
    assert!(
        peers
            .bao
            .audit_request_paths()
            .contains(&"secret/data/motd".to_owned())
    );
    // One credential record, naming the stored secret, never its value.
    let credentials = lab.credential_records().await;
    assert_eq!(credentials.len(), 2, "{credentials:?}");
    assert_eq!(credentials[0]["credential"]["secret"], "stored:bao-token");
    no_canary("the answer", &answer.to_string());
    no_canary("the audit log", &lab.all_records_text().await);
}

#[tokio::test]
async fn a_write_is_held_with_its_preview_approved_and_runs_once() {
    let Some((peers, lab)) = lab("").await else {
        return;
    };
    let args = json!({
        "api": "bao",
        "operation": "POST /secret/data/{path}",
        "params": { "path": "app", "body": { "data": { "colour": "green" } } },
    });
    let held = lab
        .dispatch(&agent(), "api_call", args.clone())
        .await
        .unwrap();
    let Answer::Held { approval_id, value } = held else {
        panic!("the write ran without approval: {held:?}");
    };
    assert_eq!(value["status"], "pending_approval", "{value}");
    // Nothing reached OpenBao yet.
    assert!(
        !peers
            .bao
            .audit_request_paths()
            .contains(&"secret/data/app".to_owned()),
        "a held write reached the API"
    );
    let approval = lab
        .governance
        .approvals
        .get("default", &approval_id)
        .await
        .unwrap();
    let preview = approval.preview.clone().unwrap_or_default();
    assert!(
        preview.starts_with(&format!("POST {}/v1/secret/data/app", peers.bao.url())),
        "{preview}"
    );
    assert!(preview.contains("\"colour\": \"green\""), "{preview}");
    assert!(
        preview.contains("(meho adds the header X-Vault-Token with the value of stored:bao-token when the call runs)"),
        "{preview}"
    );
    no_canary("the preview", &preview);
    // The records hold the body's hash, not the body.
    let text = lab.all_records_text().await;
    assert!(text.contains("body_sha256"), "{text}");
    assert!(
        !text.contains("green"),
        "the body reached the audit log: {text}"
    );

    lab.approve(&approval_id).await;
    let ran = lab
        .gateway
        .approval_status(&agent(), &approval_id, Duration::from_secs(5), &|_, _| {})
        .await
        .unwrap();
    assert_eq!(ran["status"], "executed", "{ran}");
    assert_eq!(ran["result"]["status"], 200, "{ran}");
    let read = peers
        .bao
        .api(reqwest::Method::GET, "secret/data/app", None)
        .await;
    assert_eq!(read["data"]["data"]["colour"], "green");
    // Once: collecting again does not run it again.
    let again = lab
        .gateway
        .approval_status(&agent(), &approval_id, Duration::ZERO, &|_, _| {})
        .await
        .unwrap_err();
    assert_eq!(again.code, ErrorCode::ApprovalConsumed, "{again:?}");
    let writes = peers
        .bao
        .audit_request_paths()
        .iter()
        .filter(|p| *p == "secret/data/app")
        .count();
    // OpenBao's file audit device logs a request and its response: one call, two lines of the
    // request path at most.
    assert!(writes >= 1, "the approved write never reached OpenBao");
    no_canary("the audit log", &lab.all_records_text().await);
}

#[tokio::test]
async fn a_destructive_call_denied_by_policy_never_reaches_the_api() {
    let Some((peers, lab)) = lab("").await else {
        return;
    };
    peers
        .bao
        .policy_write("doomed", r#"path "x/*" { capabilities = ["read"] }"#)
        .await;
    let before = peers.bao.audit_request_paths().len();
    let err = lab
        .call(
            &agent(),
            "api_call",
            json!({ "api": "bao", "operation": "DELETE /sys/policy/{name}", "params": { "name": "doomed" } }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Denied, "{err:?}");
    let after = peers.bao.audit_request_paths();
    assert!(
        !after
            .iter()
            .skip(before)
            .any(|p| p.contains("sys/policy/doomed")),
        "a denied call reached OpenBao: {after:?}"
    );
    // The policy still exists.
    let policy = peers
        .bao
        .api(reqwest::Method::GET, "sys/policy/doomed", None)
        .await;
    assert_eq!(policy["name"], "doomed", "{policy}");
    // The denial is audited, naming the rule, and no credential was fetched.
    let records = lab.records().await;
    let denial = records
        .iter()
        .find(|r| r.kind == "denial")
        .expect("no denial record");
    assert!(denial.body.contains("deny:bao/rules[1]"), "{}", denial.body);
    assert!(lab.credential_records().await.is_empty());
}

#[tokio::test]
async fn a_vault_token_is_minted_per_call_and_revoked_after_it() {
    let Some((peers, lab)) = lab("").await else {
        return;
    };
    for _ in 0..2 {
        let answer = lab
            .call(
                &agent(),
                "api_call",
                json!({ "api": "prom", "operation": "getBuildInfo" }),
            )
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(err) => panic!("{err:?}"),
        };
        assert_eq!(answer["status"], 200, "{answer}");
        assert_eq!(answer["body"]["status"], "success", "{answer}");
        no_canary("the answer", &answer.to_string());
    }
    let credentials = lab.credential_records().await;
    assert_eq!(credentials.len(), 2, "one token per call: {credentials:?}");
    let accessors: Vec<&str> = credentials
        .iter()
        .map(|c| c["credential"]["accessor"].as_str().unwrap())
        .collect();
    assert_ne!(accessors[0], accessors[1], "a token was reused");
    for accessor in accessors {
        assert!(
            !accessor_alive(&peers.bao, accessor).await,
            "the call's Vault token {accessor} was not revoked"
        );
    }
    assert_eq!(credentials[0]["credential"]["identity"], "meho_jwt");
    // The outcome says the token was revoked.
    let records = lab.records().await;
    let outcomes: Vec<_> = records.iter().filter(|r| r.kind == "outcome").collect();
    assert!(
        outcomes
            .iter()
            .all(|r| r.body.contains("\"vault_token_revoked\":true")),
        "{outcomes:?}"
    );
    no_canary("the audit log", &lab.all_records_text().await);
}

#[tokio::test]
async fn a_dynamic_database_credential_is_revoked_after_the_call() {
    if !meho_test_support::openbao::require_postgres() {
        return;
    }
    let Some((_peers, lab)) = lab("").await else {
        return;
    };
    let answer = lab
        .call(
            &agent(),
            "api_call",
            json!({ "api": "promdb", "operation": "getBuildInfo" }),
        )
        .await
        .unwrap();
    assert_eq!(answer["status"], 200, "{answer}");
    let credentials = lab.credential_records().await;
    let credential = &credentials[0]["credential"];
    let username = credential["username"].as_str().unwrap();
    assert!(username.starts_with("v-"), "{credential}");
    assert!(
        credential["lease_id"]
            .as_str()
            .unwrap()
            .starts_with("database/creds/ro/")
    );
    // The role existed for the call and is gone after it.
    assert!(
        !pg_role_exists(username),
        "PostgreSQL still has the dynamic role {username}"
    );
    let outcome = lab
        .records()
        .await
        .into_iter()
        .find(|r| r.kind == "outcome")
        .unwrap();
    assert!(
        outcome.body.contains("\"lease_revoked\":true"),
        "{}",
        outcome.body
    );
}

#[tokio::test]
async fn a_vault_outage_fails_the_call_closed() {
    let Some((peers, lab)) = lab("").await else {
        return;
    };
    let mut bao = peers.bao;
    bao.stop();
    let err = lab
        .call(
            &agent(),
            "api_call",
            json!({ "api": "prom", "operation": "getBuildInfo" }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unreachable, "{err:?}");
    assert!(err.message.contains("vault at"), "{}", err.message);
    assert!(err.message.contains("did not run"), "{}", err.message);
    // Refused and audited; nothing was executed.
    let records = lab.records().await;
    assert!(records.iter().any(|r| r.kind == "denial"), "{records:?}");
    assert!(!records.iter().any(|r| r.kind == "intent"), "{records:?}");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_is_audited() {
    let Some((_peers, lab)) = lab("").await else {
        return;
    };
    let cases: Vec<(Value, ErrorCode, &str)> = vec![
        (
            json!({ "api": "bao", "operation": "GET /no/such/thing" }),
            ErrorCode::NotFound,
            "has no operation",
        ),
        (
            json!({ "api": "nope", "operation": "GET /sys/health" }),
            ErrorCode::UnknownTarget,
            "no api `nope`",
        ),
        (
            json!({ "api": "prom", "operation": "query", "params": { "query": "up", "time": { "x": 1 } } }),
            ErrorCode::InvalidArguments,
            "`time`",
        ),
        (
            json!({ "api": "prom", "operation": "query", "params": { "query": "up", "bogus": 1 } }),
            ErrorCode::InvalidArguments,
            "unknown parameter `bogus`",
        ),
        (
            json!({ "api": "prom", "operation": "query", "params": { "query": "up", "Authorization": "Bearer x" } }),
            ErrorCode::InvalidArguments,
            "Authorization",
        ),
    ];
    for (args, code, words) in cases {
        let err = lab
            .call(&agent(), "api_call", args.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code, code, "{args}: {err:?}");
        assert!(err.message.contains(words), "{args}: {}", err.message);
    }
    let denials = lab
        .records()
        .await
        .into_iter()
        .filter(|r| r.kind == "denial")
        .count();
    assert_eq!(denials, 5, "every refused call is audited once");
}

#[tokio::test]
async fn a_read_only_caller_cannot_write_and_nothing_is_held() {
    let Some((peers, lab)) = lab("").await else {
        return;
    };
    let reader = meho_gateway::Caller {
        max_tier: meho_gateway::Tier::Read,
        ..agent()
    };
    let err = lab
        .dispatch(
            &reader,
            "api_call",
            json!({
                "api": "bao",
                "operation": "POST /secret/data/{path}",
                "params": { "path": "ro", "body": { "data": { "k": "v" } } },
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Denied, "{err:?}");
    assert!(
        lab.governance
            .approvals
            .list("default", None, 100)
            .await
            .unwrap()
            .is_empty(),
        "a call above the caller's tier was held for approval"
    );
    assert!(
        !peers
            .bao
            .audit_request_paths()
            .contains(&"secret/data/ro".to_owned())
    );
    // Reads still run.
    let answer = lab
        .call(
            &reader,
            "api_call",
            json!({ "api": "bao", "operation": "GET /sys/health" }),
        )
        .await
        .unwrap();
    assert_eq!(answer["status"], 200);
}

#[tokio::test]
async fn a_grant_widens_an_api_but_never_lifts_an_approval() {
    let extra = format!(
        "[apis.narrow]\nbase_url = \"{{prom}}\"\nspec = \"{}\"\nrules = [\n  {{ pattern = \"^GET /api/v1/status/\", effect = \"allow\" }},\n  {{ pattern = \"^POST \", effect = \"require_approval\" }},\n]\n",
        meho_test_support::api_lab::prometheus_spec().display()
    );
    let dir = tempfile::tempdir().unwrap();
    let issuer = issuer_in(dir.path());
    let Some(peers) = Peers::start(&issuer).await else {
        return;
    };
    let extra = extra.replace("{prom}", &peers.prometheus.url());
    let toml = config_toml(&peers, dir.path(), &extra);
    let lab = ApiLab::new(dir, &toml, &peers.api_token).await;
    let labels = json!({ "api": "narrow", "operation": "listLabelNames" });
    let err = lab
        .call(&agent(), "api_call", labels.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Denied, "{err:?}");
    assert!(
        err.message.contains("default-deny:narrow")
            || format!("{err:?}").contains("default-deny:narrow"),
        "{err:?}"
    );
    // Not a configured target: no grant.
    let err = lab
        .governance
        .create_grant(
            &boss(),
            "nope",
            "^GET /api/v1/labels ",
            Tier::Read,
            Duration::from_secs(600),
            "x",
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound, "{err:?}");
    lab.governance
        .create_grant(
            &boss(),
            "narrow",
            "^GET /api/v1/labels ",
            Tier::Read,
            Duration::from_secs(600),
            "triage",
        )
        .await
        .unwrap();
    let answer = lab.call(&agent(), "api_call", labels).await.unwrap();
    assert_eq!(answer["status"], 200, "{answer}");
    // A grant widens the allowlist; it never lifts an approval rule.
    lab.governance
        .create_grant(
            &boss(),
            "narrow",
            "^POST /api/v1/admin/tsdb/clean_tombstones ",
            Tier::Write,
            Duration::from_secs(600),
            "triage",
        )
        .await
        .unwrap();
    let held = lab
        .dispatch(
            &agent(),
            "api_call",
            json!({ "api": "narrow", "operation": "cleanTombstones" }),
        )
        .await
        .unwrap();
    assert!(matches!(held, Answer::Held { .. }), "{held:?}");
}
