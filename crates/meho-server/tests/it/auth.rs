//! The OAuth 2.1 resource server in front of `/mcp` and `/api/v1/feed`: RFC 9728 metadata, the
//! JWT checks (a catalogue of forged and broken tokens), JWKS discovery and rotation, scopes,
//! tenant/role/groups claims, and the challenge every refusal carries. Tokens come from the test
//! issuer in `support` (see there why it is not oidc-provider).

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use meho_config::Role;
use meho_gateway::Tier;
use meho_server::auth::{AuthError, Principal, SCOPE_FEED, SCOPE_TOOLS};
use serde_json::{Value, json};

use crate::support::{
    Issuer, Options, Server, TestKey, b64, challenge, http_client, initialize_request, keys, now,
    with, without,
};

/// One refused token and why.
struct Attack {
    name: &'static str,
    token: String,
    /// The body's `error` code.
    code: &'static str,
    /// A fragment of the message: the refusal is for this reason and no other.
    because: &'static str,
}

/// Asserts a refusal: 401, a Bearer challenge naming the metadata URL (with `error` when one is
/// expected), and the JSON body's code.
async fn assert_refused(
    server: &Server,
    response: reqwest::Response,
    what: &str,
    code: &str,
) -> Value {
    assert_eq!(response.status(), 401, "{what}: status");
    let params = challenge(&response);
    assert_eq!(
        params.get("resource_metadata"),
        Some(&server.metadata_url()),
        "{what}: {params:?}"
    );
    match code {
        "unauthorized" => assert!(
            !params.contains_key("error"),
            "{what}: a missing token gets a bare challenge: {params:?}"
        ),
        // meho's own body code; the RFC 6750 challenge says invalid_token.
        "missing_tenant_claim" => {
            assert_eq!(
                params.get("error").map(String::as_str),
                Some("invalid_token")
            );
        }
        other => assert_eq!(
            params.get("error").map(String::as_str),
            Some(other),
            "{what}: {params:?}"
        ),
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    body
}

/// `header.payload.signature` with the payload replaced by `claims`, signature kept.
fn tamper(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    use base64::Engine as _;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let mut claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    edit(&mut claims);
    format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&claims).unwrap()),
        parts[2]
    )
}

/// An unsigned token: `alg: none`, an empty signature.
fn unsigned(kid: &str, claims: &Value) -> String {
    let header = json!({ "alg": "none", "typ": "JWT", "kid": kid });
    format!(
        "{}.{}.",
        b64(&serde_json::to_vec(&header).unwrap()),
        b64(&serde_json::to_vec(claims).unwrap())
    )
}

/// Every token in this list must be refused before anything runs.
fn attacks(server: &Server) -> Vec<Attack> {
    let keys = keys();
    let claims = server.claims("mallory", "a");
    let now = now();
    let skew = server.options.clock_skew_seconds;
    let mut list = vec![
        Attack {
            name: "alg none",
            token: unsigned("rsa-1", &claims),
            code: "invalid_token",
            because: "not a signed JWT",
        },
        Attack {
            name: "alg none with an empty kid",
            token: unsigned("", &claims),
            code: "invalid_token",
            because: "not a signed JWT",
        },
        Attack {
            name: "wrong iss",
            token: keys
                .rsa
                .sign(&with(claims.clone(), "iss", json!("https://evil.example"))),
            code: "invalid_token",
            because: "issuer",
        },
        Attack {
            name: "iss with a different path",
            token: keys.rsa.sign(&with(
                claims.clone(),
                "iss",
                json!(format!("{}/other", server.issuer.url)),
            )),
            code: "invalid_token",
            because: "issuer",
        },
        Attack {
            name: "wrong aud",
            token: keys.rsa.sign(&with(
                claims.clone(),
                "aud",
                json!("https://other.example/mcp"),
            )),
            code: "invalid_token",
            because: "audience",
        },
        Attack {
            name: "aud list without this resource",
            token: keys.rsa.sign(&with(
                claims.clone(),
                "aud",
                json!(["https://other.example/mcp", "account"]),
            )),
            code: "invalid_token",
            because: "audience",
        },
        Attack {
            name: "no aud",
            token: keys.rsa.sign(&without(claims.clone(), "aud")),
            code: "invalid_token",
            because: "`aud`",
        },
        Attack {
            name: "expired beyond the skew",
            token: keys.rsa.sign(&with(
                with(claims.clone(), "exp", json!(now - skew - 120)),
                "iat",
                json!(now - skew - 600),
            )),
            code: "invalid_token",
            because: "expired",
        },
        Attack {
            name: "no exp",
            token: keys.rsa.sign(&without(claims.clone(), "exp")),
            code: "invalid_token",
            because: "`exp`",
        },
        Attack {
            name: "nbf in the future beyond the skew",
            token: keys
                .rsa
                .sign(&with(claims.clone(), "nbf", json!(now + skew + 300))),
            code: "invalid_token",
            because: "nbf",
        },
        Attack {
            name: "iat in the future beyond the skew",
            token: keys.rsa.sign(&with(
                without(claims.clone(), "nbf"),
                "iat",
                json!(now + skew + 300),
            )),
            code: "invalid_token",
            because: "issued in the future",
        },
        Attack {
            name: "no iat",
            token: keys.rsa.sign(&without(claims.clone(), "iat")),
            code: "invalid_token",
            because: "`iat`",
        },
        Attack {
            name: "iat not a number",
            token: keys
                .rsa
                .sign(&with(claims.clone(), "iat", json!("yesterday"))),
            code: "invalid_token",
            because: "`iat`",
        },
        Attack {
            name: "unknown kid",
            token: keys.rsa.sign_as(Algorithm::RS256, Some("rsa-9"), &claims),
            code: "invalid_token",
            because: "no key `rsa-9`",
        },
        Attack {
            name: "no kid",
            token: keys.rsa.sign_as(Algorithm::RS256, None, &claims),
            code: "invalid_token",
            because: "no `kid`",
        },
        Attack {
            name: "tampered payload (role raised)",
            token: tamper(&keys.rsa.sign(&claims), |c| {
                c["tenant_role"] = json!("tenant_admin");
            }),
            code: "invalid_token",
            because: "signature",
        },
        Attack {
            name: "tampered payload (tenant switched)",
            token: tamper(&keys.ec.sign(&claims), |c| c["tenant_id"] = json!("b")),
            code: "invalid_token",
            because: "signature",
        },
        Attack {
            name: "tampered payload (expiry extended on an expired token)",
            token: tamper(
                &keys
                    .ed
                    .sign(&with(claims.clone(), "exp", json!(now - skew - 120))),
                |c| c["exp"] = json!(now + 600),
            ),
            code: "invalid_token",
            because: "signature",
        },
        Attack {
            name: "another issuer's RSA key under our kid",
            token: keys.foreign_rsa.sign(&claims),
            code: "invalid_token",
            because: "signature",
        },
        Attack {
            name: "another issuer's P-256 key under our kid",
            token: keys.foreign_ec.sign(&claims),
            code: "invalid_token",
            because: "signature",
        },
        Attack {
            name: "RSA kid, ES256 header (signed by a P-256 key)",
            token: keys.ec.sign_as(Algorithm::ES256, Some("rsa-1"), &claims),
            code: "invalid_token",
            because: "cannot verify ES256",
        },
        Attack {
            name: "P-256 kid, RS256 header (signed by the RSA key)",
            token: keys.rsa.sign_as(Algorithm::RS256, Some("ec-1"), &claims),
            code: "invalid_token",
            because: "cannot verify RS256",
        },
        Attack {
            name: "Ed25519 kid, ES256 header",
            token: keys.ec.sign_as(Algorithm::ES256, Some("ed-1"), &claims),
            code: "invalid_token",
            because: "cannot verify ES256",
        },
        Attack {
            name: "RS384 with the RSA key",
            token: keys.rsa.sign_as(Algorithm::RS384, Some("rsa-1"), &claims),
            code: "invalid_token",
            because: "RS384 is not accepted",
        },
        Attack {
            name: "PS256 with the RSA key",
            token: keys.rsa.sign_as(Algorithm::PS256, Some("rsa-1"), &claims),
            code: "invalid_token",
            because: "PS256 is not accepted",
        },
        Attack {
            name: "oversize token (> 8 KiB), validly signed",
            token: keys.rsa.sign(&with(
                claims.clone(),
                "padding",
                json!("p".repeat(9 * 1024)),
            )),
            code: "invalid_token",
            because: "8192-byte limit",
        },
        Attack {
            name: "scope without mcp:tools",
            token: keys
                .rsa
                .sign(&with(claims.clone(), "scope", json!("openid profile"))),
            code: "insufficient_scope",
            because: "`mcp:tools`",
        },
        Attack {
            name: "no scope at all",
            token: keys.rsa.sign(&without(claims.clone(), "scope")),
            code: "insufficient_scope",
            because: "`mcp:tools`",
        },
        Attack {
            name: "mcp:feed only, on /mcp",
            token: keys
                .rsa
                .sign(&with(claims.clone(), "scope", json!(SCOPE_FEED))),
            code: "insufficient_scope",
            because: "`mcp:tools`",
        },
        Attack {
            name: "missing tenant claim with tenancy enabled",
            token: keys.rsa.sign(&without(claims.clone(), "tenant_id")),
            code: "missing_tenant_claim",
            because: "`tenant_id`",
        },
        Attack {
            name: "empty tenant claim",
            token: keys.rsa.sign(&with(claims.clone(), "tenant_id", json!(""))),
            code: "invalid_token",
            because: "`tenant_id`",
        },
        Attack {
            name: "unknown role",
            token: keys
                .rsa
                .sign(&with(claims.clone(), "tenant_role", json!("superuser"))),
            code: "invalid_token",
            because: "`superuser`",
        },
        Attack {
            name: "role not a string",
            token: keys
                .rsa
                .sign(&with(claims.clone(), "tenant_role", json!(["operator"]))),
            code: "invalid_token",
            because: "`tenant_role`",
        },
        Attack {
            name: "configured groups claim missing",
            token: keys.rsa.sign(&without(claims.clone(), "groups")),
            code: "invalid_token",
            because: "`groups`",
        },
        Attack {
            name: "groups claim not a list",
            token: keys.rsa.sign(&with(claims.clone(), "groups", json!("ops"))),
            code: "invalid_token",
            because: "`groups`",
        },
        Attack {
            name: "no sub",
            token: keys.rsa.sign(&without(claims.clone(), "sub")),
            code: "invalid_token",
            because: "`sub`",
        },
        Attack {
            name: "garbage token",
            token: "not-a-jwt".into(),
            code: "invalid_token",
            because: "not a signed JWT",
        },
        Attack {
            name: "three garbage segments",
            token: "eyJhbGciOiJSUzI1NiJ9.e30.AAAA".into(),
            code: "invalid_token",
            because: "no `kid`",
        },
    ];
    // HS256 keyed with the issuer's public RSA key, in every form an attacker might try, with
    // the RSA key's kid: the classic algorithm-confusion attack.
    for (form, secret) in ["SPKI PEM", "PKCS#1 PEM", "PKCS#1 DER"]
        .iter()
        .zip(&keys.rsa.public_forms)
    {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-1".into());
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap();
        list.push(Attack {
            name: match *form {
                "SPKI PEM" => "HS256 keyed with the RSA public key (SPKI PEM)",
                "PKCS#1 PEM" => "HS256 keyed with the RSA public key (PKCS#1 PEM)",
                _ => "HS256 keyed with the RSA public key (PKCS#1 DER)",
            },
            token,
            code: "invalid_token",
            because: "HS256 is not accepted",
        });
    }
    list
}

#[tokio::test]
async fn protected_resource_metadata_names_the_audience_the_issuer_and_the_scopes() {
    let server = Server::start().await;
    let http = http_client();
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let response = http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["resource"], server.audience, "{path}: {body}");
        assert_eq!(
            body["authorization_servers"],
            json!([server.issuer.url]),
            "{path}: {body}"
        );
        let scopes = body["scopes_supported"].as_array().unwrap();
        assert!(scopes.contains(&json!(SCOPE_TOOLS)), "{path}: {body}");
        assert!(scopes.contains(&json!(SCOPE_FEED)), "{path}: {body}");
        assert_eq!(body["bearer_methods_supported"], json!(["header"]));
    }
    // The metadata is public and needs no JWKS: nothing was fetched from the issuer.
    assert_eq!(server.issuer.jwks_hits(), 0);
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_are_accepted_and_reach_the_tools() {
    let server = Server::start().await;
    let keys = keys();
    for (i, key) in [&keys.rsa, &keys.ec, &keys.ed].into_iter().enumerate() {
        let sub = format!("agent-{i}");
        let token = key.sign(&server.claims(&sub, "a"));
        let mut mcp = server.connect(&token).await;
        let answer = mcp.call_tool("list_targets", json!({})).await;
        assert_eq!(
            answer["result"]["isError"],
            json!(false),
            "{key:?}: {answer}"
        );
        assert_eq!(
            answer["result"]["structuredContent"],
            json!({ "targets": [{ "name": "x", "kind": "scripted" }] }),
            "{key:?}: {answer}"
        );
        let seen = server.connector.calls().pop().unwrap();
        assert_eq!(seen.caller.principal, sub, "{key:?}");
    }
    assert!(server.connector.count() >= 3);
    // One discovery for all three keys: they were all in the first JWKS.
    assert_eq!(server.issuer.jwks_hits(), 1);
}

#[tokio::test]
async fn forged_and_broken_tokens_get_401_with_a_challenge_and_never_reach_a_connector() {
    let server = Server::start().await;
    let valid = server.token("alice", "a");
    // A live session, opened by a valid token: the attacks below ride on it, which shows every
    // request is authenticated on its own (a session id is not a credential).
    let mut mcp = server.connect(&valid).await;
    assert_eq!(server.connector.count(), 0, "initialize calls no connector");

    let attacks = attacks(&server);
    for attack in &attacks {
        // A new session…
        let response = server
            .post_mcp(Some(&attack.token), None, &initialize_request(1))
            .await;
        let body = assert_refused(
            &server,
            response,
            &format!("{} (initialize)", attack.name),
            attack.code,
        )
        .await;
        // …and a tool call on the established session.
        let (_, call) = mcp.message(
            "tools/call",
            json!({ "name": "ssh_execute", "arguments": { "server": "x", "command": "id" } }),
        );
        let response = server
            .post_mcp(Some(&attack.token), Some(&mcp.session), &call)
            .await;
        assert_refused(
            &server,
            response,
            &format!("{} (tools/call)", attack.name),
            attack.code,
        )
        .await;
        // Refused for the intended reason, saying what is wrong without echoing the token.
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(attack.because),
            "{}: `{message}` does not say `{}`",
            attack.name,
            attack.because
        );
        assert!(
            attack.token.len() < 16 || !message.contains(&attack.token),
            "{}: {message}",
            attack.name
        );
    }
    assert_eq!(
        server.connector.count(),
        0,
        "a refused request reached the connector: {:?}",
        server.connector.calls()
    );

    // The same session with the valid token still works, and reaches the connector.
    let answer = mcp
        .call_tool("ssh_execute", json!({ "server": "x", "command": "id" }))
        .await;
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    assert_eq!(server.connector.count(), 1);
}

/// A refusal whose message quotes a token value with a control character (a `kid`, a role) is
/// still a 401 with the challenge. Fails today: `AuthError::response` builds the header with
/// `HeaderValue::from_str`, which rejects control characters, and then silently sends none.
#[tokio::test]
async fn refusals_quoting_control_characters_still_carry_the_challenge() {
    let server = Server::start().await;
    let keys = keys();
    let claims = server.claims("mallory", "a");
    for (what, token) in [
        (
            "kid with a newline",
            keys.rsa
                .sign_as(Algorithm::RS256, Some("rsa-1\nX-Injected: 1"), &claims),
        ),
        (
            "kid with DEL",
            keys.rsa
                .sign_as(Algorithm::RS256, Some("rsa-\u{7f}"), &claims),
        ),
        (
            "role with a control character",
            keys.rsa
                .sign(&with(claims.clone(), "tenant_role", json!("operator\u{1}"))),
        ),
    ] {
        let response = server
            .post_mcp(Some(&token), None, &initialize_request(1))
            .await;
        assert_eq!(response.status(), 401, "{what}");
        assert!(
            response.headers().get("www-authenticate").is_some(),
            "{what}: a 401 without WWW-Authenticate"
        );
        assert_refused(&server, response, what, "invalid_token").await;
    }
    assert_eq!(server.connector.count(), 0);
}

#[tokio::test]
async fn the_feed_refuses_the_same_tokens() {
    let server = Server::start().await;
    for attack in attacks(&server) {
        // mcp:feed alone is enough for the feed.
        if attack.name == "mcp:feed only, on /mcp" {
            continue;
        }
        let response = server.feed(Some(&attack.token), "?after=0", None).await;
        let body = assert_refused(&server, response, attack.name, attack.code).await;
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(attack.because),
            "{}: {message}",
            attack.name
        );
    }
}

#[tokio::test]
async fn no_token_or_a_non_bearer_scheme_is_refused_on_every_method() {
    let server = Server::start().await;
    let http = http_client();
    let mcp = format!("{}/mcp", server.base);
    let feed = format!("{}/api/v1/feed", server.base);

    // No Authorization header: a bare challenge, no `error`.
    for request in [
        http.post(&mcp)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(initialize_request(1).to_string()),
        http.get(&mcp).header("accept", "text/event-stream"),
        http.delete(&mcp).header("mcp-session-id", "whatever"),
        http.get(&feed),
    ] {
        let response = request.send().await.unwrap();
        let what = format!("no token: {}", response.url());
        assert_refused(&server, response, &what, "unauthorized").await;
    }

    // Other schemes and malformed headers.
    let valid = server.token("alice", "a");
    for (what, value) in [
        ("Basic", "Basic YWxpY2U6c2VjcmV0".to_owned()),
        ("token without scheme", valid.clone()),
        ("Bearer with no token", "Bearer ".to_owned()),
        ("DPoP scheme", format!("DPoP {valid}")),
    ] {
        let response = http
            .post(&mcp)
            .header("authorization", value)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(initialize_request(1).to_string())
            .send()
            .await
            .unwrap();
        assert_refused(&server, response, what, "invalid_request").await;
    }
    assert_eq!(server.connector.count(), 0);
}

#[tokio::test]
async fn insufficient_scope_names_the_missing_scope_in_the_challenge() {
    let server = Server::start_with(Options {
        required_scopes: vec!["meho:agents".into()],
        ..Options::default()
    })
    .await;
    let keys = keys();
    let claims = server.claims("alice", "a");

    // A scope `[auth] required_scopes` names.
    let token = keys.rsa.sign(&claims);
    let response = server
        .post_mcp(Some(&token), None, &initialize_request(1))
        .await;
    let params = challenge(&response);
    assert_eq!(params.get("scope").map(String::as_str), Some("meho:agents"));
    assert_refused(&server, response, "required scope", "insufficient_scope").await;

    // `mcp:tools`, needed on /mcp whatever the config says; `scp` (a list) counts like `scope`.
    let token = keys.rsa.sign(&with(
        without(claims.clone(), "scope"),
        "scp",
        json!(["meho:agents"]),
    ));
    let response = server
        .post_mcp(Some(&token), None, &initialize_request(1))
        .await;
    let params = challenge(&response);
    assert_eq!(params.get("scope").map(String::as_str), Some(SCOPE_TOOLS));
    assert_refused(&server, response, "mcp:tools", "insufficient_scope").await;

    // Both, via `scp`: accepted.
    let token = keys.rsa.sign(&with(
        without(claims, "scope"),
        "scp",
        json!(["meho:agents", SCOPE_TOOLS]),
    ));
    let mut mcp = server.connect(&token).await;
    let answer = mcp.call_tool("list_targets", json!({})).await;
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
}

#[tokio::test]
async fn clock_skew_within_the_bound_is_tolerated() {
    let server = Server::start().await;
    let keys = keys();
    let skew = server.options.clock_skew_seconds;
    let now = now();
    let half = skew / 2;
    let claims = server.claims("alice", "a");
    for (what, claims) in [
        (
            "exp just past",
            with(
                with(claims.clone(), "exp", json!(now - half)),
                "iat",
                json!(now - 600),
            ),
        ),
        (
            "nbf just ahead",
            with(claims.clone(), "nbf", json!(now + half)),
        ),
        (
            "iat just ahead",
            with(without(claims.clone(), "nbf"), "iat", json!(now + half)),
        ),
        (
            "iss with a trailing slash",
            with(
                claims.clone(),
                "iss",
                json!(format!("{}/", server.issuer.url)),
            ),
        ),
        (
            "aud as a list naming this resource",
            with(
                claims.clone(),
                "aud",
                json!(["account", server.audience.clone()]),
            ),
        ),
    ] {
        let response = server
            .post_mcp(Some(&keys.rsa.sign(&claims)), None, &initialize_request(1))
            .await;
        assert_eq!(response.status(), 200, "{what}");
    }
}

#[tokio::test]
async fn an_unknown_kid_fetches_the_jwks_once_and_never_in_a_storm() {
    let server = Server::start().await;
    let keys = keys();
    let claims = server.claims("alice", "a");
    assert_eq!(server.issuer.jwks_hits(), 0, "discovery is lazy");

    // The first token names a kid the issuer does not publish: one fetch, then a refusal.
    let unknown = keys.rsa.sign_as(Algorithm::RS256, Some("rsa-9"), &claims);
    let response = server
        .post_mcp(Some(&unknown), None, &initialize_request(1))
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(server.issuer.jwks_hits(), 1);

    // Known kids come from the cache.
    for key in [&keys.rsa, &keys.ec, &keys.ed] {
        let response = server
            .post_mcp(Some(&key.sign(&claims)), None, &initialize_request(1))
            .await;
        assert_eq!(response.status(), 200, "{key:?}");
    }
    assert_eq!(server.issuer.jwks_hits(), 1);

    // A flood of unknown kids does not become a flood of JWKS fetches.
    for i in 0..20 {
        let token = keys
            .rsa
            .sign_as(Algorithm::RS256, Some(&format!("junk-{i}")), &claims);
        let response = server
            .post_mcp(Some(&token), None, &initialize_request(1))
            .await;
        assert_eq!(response.status(), 401);
    }
    assert!(
        server.issuer.jwks_hits() < 5,
        "{} JWKS fetches for 20 unknown kids",
        server.issuer.jwks_hits()
    );
    assert_eq!(server.connector.count(), 0);
}

#[tokio::test]
async fn a_key_added_to_the_jwks_after_startup_is_accepted_once_the_refresh_interval_passed() {
    let server = Server::start().await;
    let claims = server.claims("alice", "a");
    let response = server
        .post_mcp(
            Some(&server.token("alice", "a")),
            None,
            &initialize_request(1),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(server.issuer.jwks_hits(), 1);

    // The issuer rotates in a new key.
    let rotated = TestKey::ec("ec-2");
    server.issuer.add_key(rotated.jwk.clone());
    // An unknown kid refreshes the cached JWKS at most every 10 s (auth.rs JWKS_REFRESH_MIN);
    // wait that out rather than depend on when the first fetch happened.
    tokio::time::sleep(Duration::from_secs(11)).await;

    let token = rotated.sign(&claims);
    let mut mcp = server.connect(&token).await;
    let answer = mcp.call_tool("list_targets", json!({})).await;
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    assert_eq!(
        server.issuer.jwks_hits(),
        2,
        "one re-fetch on the unknown kid"
    );
    // The old keys still verify (the refreshed set replaced, not lost, them).
    let response = server
        .post_mcp(Some(&keys().ed.sign(&claims)), None, &initialize_request(1))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn an_unreachable_issuer_is_503_with_a_challenge_not_a_pass() {
    // A port nothing listens on: bind, note it, close it.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let server = Server::start_with(Options {
        issuer_override: Some(closed.clone()),
        ..Options::default()
    })
    .await;
    let mut claims = server.claims("alice", "a");
    claims["iss"] = json!(closed);
    let response = server
        .post_mcp(
            Some(&keys().rsa.sign(&claims)),
            None,
            &initialize_request(1),
        )
        .await;
    assert_eq!(response.status(), 503);
    let params = challenge(&response);
    assert_eq!(
        params.get("resource_metadata"),
        Some(&server.metadata_url())
    );
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("invalid_token")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert_eq!(server.connector.count(), 0);
}

#[tokio::test]
async fn an_issuer_whose_metadata_names_another_issuer_is_not_trusted() {
    let issuer = Issuer::start().await;
    // The configured issuer URL differs from what its discovery document says (`issuer` in the
    // metadata is the loopback URL; `localhost` is the same server under another name).
    let alias = issuer.url.replace("127.0.0.1", "localhost");
    let server = Server::start_with_issuer(
        Options {
            issuer_override: Some(alias.clone()),
            ..Options::default()
        },
        issuer,
    )
    .await;
    let claims = with(server.claims("alice", "a"), "iss", json!(alias));
    let response = server
        .post_mcp(
            Some(&keys().rsa.sign(&claims)),
            None,
            &initialize_request(1),
        )
        .await;
    assert_eq!(response.status(), 503);
    assert!(challenge(&response).contains_key("resource_metadata"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&format!("names issuer `{}`", server.issuer.url)),
        "{body}"
    );
    assert_eq!(server.connector.count(), 0);
}

#[tokio::test]
async fn claims_map_to_the_principal_and_the_connector_sees_it() {
    let server = Server::start().await;
    let keys = keys();
    let token = keys.ec.sign(&with(
        with(
            server.claims("carol", "tenant-7"),
            "tenant_role",
            json!("read_only"),
        ),
        "groups",
        json!(["ops", "db"]),
    ));
    let principal = server.auth.authenticate_token(&token).await.unwrap();
    assert_eq!(
        principal,
        Principal {
            subject: "carol".into(),
            tenant: "tenant-7".into(),
            role: Role::ReadOnly,
            groups: Some(vec!["ops".into(), "db".into()]),
            scopes: vec!["openid".into(), SCOPE_TOOLS.into()],
            source: server.issuer.url.clone(),
            client_id: Some("test-client".into()),
            // The token itself rides along (never printed), for Vault's token exchange.
            token: Some(meho_gateway::IdentityToken::new(&token)),
        }
    );
    assert!(
        !format!("{principal:?}").contains(&token),
        "the token printed"
    );
    let caller = principal.caller();
    assert_eq!(
        caller.identity_token.as_ref().map(|t| t.expose()),
        Some(token.as_str())
    );
    assert_eq!(caller.max_tier, Tier::Read);
    assert_eq!(caller.tenant, "tenant-7");
    assert_eq!(caller.principal, "carol");
    assert_eq!(caller.end_user.as_deref(), Some("carol"));
    assert_eq!(caller.groups, Some(vec!["ops".into(), "db".into()]));

    // Over HTTP, the connector gets exactly that caller.
    let mut mcp = server.connect(&token).await;
    let answer = mcp.call_tool("list_targets", json!({})).await;
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    let seen = server.connector.calls().pop().unwrap();
    assert_eq!(seen.caller, caller);

    // No role claim: operator.
    let token = keys
        .rsa
        .sign(&without(server.claims("dave", "a"), "tenant_role"));
    let principal = server.auth.authenticate_token(&token).await.unwrap();
    assert_eq!(principal.role, Role::Operator);
    assert_eq!(principal.caller().max_tier, Tier::Destructive);
}

#[test]
fn roles_map_to_the_highest_tier() {
    let principal = |role| Principal {
        subject: "p".into(),
        tenant: "t".into(),
        role,
        groups: None,
        scopes: vec![SCOPE_TOOLS.into()],
        source: "test".into(),
        client_id: None,
        token: None,
    };
    assert_eq!(principal(Role::ReadOnly).caller().max_tier, Tier::Read);
    assert_eq!(
        principal(Role::Operator).caller().max_tier,
        Tier::Destructive
    );
    assert_eq!(
        principal(Role::TenantAdmin).caller().max_tier,
        Tier::Destructive
    );
    for text in ["read_only", "operator", "tenant_admin"] {
        assert_eq!(Role::parse(text).unwrap().as_str(), text);
    }
    assert_eq!(Role::parse("admin"), None);
    assert_eq!(Role::parse("READ_ONLY"), None);
}

#[tokio::test]
async fn without_tenancy_a_token_without_a_tenant_claim_is_in_the_default_tenant() {
    let server = Server::start_with(Options {
        tenancy: false,
        groups_claim: None,
        ..Options::default()
    })
    .await;
    let claims = without(without(server.claims("erin", "a"), "tenant_id"), "groups");
    let principal = server
        .auth
        .authenticate_token(&keys().ed.sign(&claims))
        .await
        .unwrap();
    assert_eq!(principal.tenant, "default");
    // No groups claim configured: no group filter, even if the token carries groups.
    assert_eq!(principal.groups, None);
    let principal = server
        .auth
        .authenticate_token(&keys().ed.sign(&with(claims, "groups", json!(["x"]))))
        .await
        .unwrap();
    assert_eq!(principal.groups, None);
}

#[tokio::test]
async fn authenticate_token_reports_precise_errors() {
    let server = Server::start().await;
    let claims = server.claims("alice", "a");
    let auth = &server.auth;
    assert_eq!(
        auth.authenticate_token("").await,
        Err(AuthError::InvalidRequest(
            "the bearer token is empty".into()
        ))
    );
    let err = auth
        .authenticate_token(&"a".repeat(8 * 1024 + 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_token");
    assert!(err.to_string().contains("8192"), "{err}");
    let err = auth
        .authenticate_token(&keys().rsa.sign(&without(claims.clone(), "tenant_id")))
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::MissingTenantClaim("tenant_id".into()));
    let err = auth
        .authenticate_token(&keys().rsa.sign(&with(claims, "scope", json!("openid"))))
        .await;
    // The resource server checks `mcp:tools` per route, not here: the token itself is fine.
    assert!(err.is_ok(), "{err:?}");
}

/// A verified token is remembered (by its hash) so a repeated one skips the signature check; the
/// memory answers only that exact token, and only until its `exp`.
#[tokio::test]
async fn a_remembered_token_still_expires_and_its_forged_twin_is_still_refused() {
    let server = Server::start_with(Options {
        clock_skew_seconds: 0,
        ..Options::default()
    })
    .await;
    let auth = &server.auth;
    let valid = server.token("alice", "a");
    for _ in 0..2 {
        let principal = auth.authenticate_token(&valid).await.unwrap();
        assert_eq!(principal.subject, "alice");
    }
    // The same header and claims under another signature: not the remembered token.
    let (signed, _) = valid.rsplit_once('.').unwrap();
    let forged = format!("{signed}.{}", b64(&[7u8; 256]));
    let err = auth.authenticate_token(&forged).await.unwrap_err();
    assert_eq!(err.code(), "invalid_token", "{err}");
    assert!(err.to_string().contains("signature"), "{err}");

    // A token that expires in a moment is accepted (and remembered) now, and refused once its
    // `exp` passed although it is remembered.
    let now = now();
    let short = keys()
        .rsa
        .sign(&with(server.claims("bob", "a"), "exp", json!(now + 1)));
    assert_eq!(
        auth.authenticate_token(&short).await.unwrap().subject,
        "bob"
    );
    assert_eq!(
        auth.authenticate_token(&short).await.unwrap().subject,
        "bob"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let err = auth.authenticate_token(&short).await.unwrap_err();
    assert_eq!(err, AuthError::InvalidToken("the token has expired".into()));
}
