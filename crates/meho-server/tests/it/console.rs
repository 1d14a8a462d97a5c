//! The web console's HTTP surface, through the router with `oneshot`: the embedded assets and
//! their content types, the strict CSP and the other security headers, HSTS only over https,
//! CORS limited to the configured origins (never `*`), and the bootstrap document.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use meho_server::console::{self, ConsoleSettings};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ISSUER: &str = "http://127.0.0.1:9000";

/// The console's CSP for [`ISSUER`], spelled out.
const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self' http://127.0.0.1:9000; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'; object-src 'none'";

fn oidc_settings() -> ConsoleSettings {
    ConsoleSettings {
        issuer: Some(format!("{ISSUER}/")),
        client_id: "meho-console".into(),
        scopes: vec!["openid".into(), "mcp:tools".into()],
        resource: "http://127.0.0.1:8080/mcp".into(),
        dev: false,
        public_url: "http://127.0.0.1:8080".into(),
        cors_origins: Vec::new(),
    }
}

fn dev_settings() -> ConsoleSettings {
    ConsoleSettings {
        issuer: None,
        dev: true,
        ..oidc_settings()
    }
}

/// The console's routes with the security headers and, when configured, CORS: as `app()` wires
/// them.
fn router(settings: ConsoleSettings) -> Router {
    let settings = Arc::new(settings);
    let mut router: Router = console::routes(settings.clone());
    if let Some(cors) = console::cors_layer(&settings) {
        router = router.layer(cors);
    }
    router.layer(axum::middleware::from_fn_with_state(
        settings,
        console::security_headers,
    ))
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(&self) -> Value {
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{:?}",
            self.headers
        );
        serde_json::from_str(&self.body).unwrap()
    }
}

async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get(router: &Router, path: &str) -> Reply {
    send(
        router,
        Request::builder().uri(path).body(Body::empty()).unwrap(),
    )
    .await
}

async fn get_from(router: &Router, path: &str, origin: &str) -> Reply {
    send(
        router,
        Request::builder()
            .uri(path)
            .header(header::ORIGIN, origin)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

async fn preflight(router: &Router, path: &str, origin: &str) -> Reply {
    send(
        router,
        Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type",
            )
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

fn assert_no_wildcard(reply: &Reply) {
    for name in [
        "access-control-allow-origin",
        "access-control-allow-headers",
        "access-control-allow-methods",
    ] {
        assert!(
            reply.header(name) != Some("*"),
            "{name}: * in {:?}",
            reply.headers
        );
    }
}

/// Every tag of `html` (the text from `<` to `>`), lowercased.
fn tags(html: &str) -> Vec<String> {
    html.split('<')
        .skip(1)
        .filter_map(|rest| {
            rest.split_once('>')
                .map(|(tag, _)| tag.to_ascii_lowercase())
        })
        .collect()
}

#[tokio::test]
async fn the_index_is_served_with_the_strict_csp_and_security_headers() {
    let router = router(oidc_settings());
    let reply = get(&router, "/console/").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = reply.header("content-security-policy").unwrap();
    assert_eq!(csp, CONSOLE_CSP);
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    assert_eq!(reply.header("strict-transport-security"), None, "http only");
    assert!(reply.body.contains("<script src=\"/console/app.js\""));

    // Without an issuer (dev mode), the console talks to its own origin only.
    let reply = get(&router_for_dev(), "/console/").await;
    assert_eq!(
        reply.header("content-security-policy"),
        Some(CONSOLE_CSP.replace(" http://127.0.0.1:9000", "").as_str())
    );
}

fn router_for_dev() -> Router {
    router(dev_settings())
}

#[tokio::test]
async fn console_without_a_slash_redirects_and_deep_links_serve_the_same_page() {
    let router = router(oidc_settings());
    // A browser pointed at the server itself lands on the console too.
    for path in ["/console", "/"] {
        let reply = get(&router, path).await;
        assert!(reply.status.is_redirection(), "{path}: {}", reply.status);
        assert_eq!(reply.header("location"), Some("/console/"), "{path}");
    }
    let index = get(&router, "/console/").await.body;
    // Webhook links are `<public_url>/console/#/approvals/<id>`: the fragment never reaches the
    // server, so `/console/` is all it has to serve.
    let again = get(&router, "/console/?from=webhook").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, index);
    assert_eq!(get(&router, "/console/index.html").await.body, index);
}

#[tokio::test]
async fn every_asset_has_its_content_type() {
    let router = router(oidc_settings());
    let expected = [
        ("index.html", "text/html; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ];
    let mut names: Vec<&str> = console::asset_names().collect();
    names.sort_unstable();
    let mut listed: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
    listed.sort_unstable();
    assert_eq!(names, listed, "a new asset needs its row here");
    for (name, content_type) in expected {
        let reply = get(&router, &format!("/console/{name}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{name}");
        assert_eq!(reply.header("content-type"), Some(content_type), "{name}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("content-security-policy"), Some(CONSOLE_CSP));
        assert!(!reply.body.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn the_page_has_no_inline_script_style_or_handlers() {
    let router = router(oidc_settings());
    let html = get(&router, "/console/").await.body;
    let tags = tags(&html);
    assert!(!tags.is_empty());
    for tag in &tags {
        if tag.starts_with("script") {
            assert!(tag.contains(" src=\""), "inline script: <{tag}>");
        }
        assert!(!tag.starts_with("style"), "inline style element: <{tag}>");
        let attributes = tag.split_whitespace().skip(1);
        for attribute in attributes {
            let name = attribute.split('=').next().unwrap_or_default();
            assert!(name != "style", "style attribute: <{tag}>");
            assert!(
                !(name.starts_with("on") && attribute.contains('=')),
                "event handler attribute: <{tag}>"
            );
        }
        assert!(!tag.contains("javascript:"), "javascript: URL in <{tag}>");
    }
    // Every script element has a body of nothing at all.
    assert!(
        html.split("<script").skip(1).all(|rest| rest
            .split_once('>')
            .is_some_and(|(_, after)| after.starts_with("</script>"))),
        "{html}"
    );

    // The script never turns data into markup or code, and keeps no token anywhere but memory.
    let js = get(&router, "/console/app.js").await.body;
    let code: String = js
        .lines()
        .filter(|l| !l.trim_start().starts_with('*') && !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for forbidden in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "localStorage",
        "document.cookie",
        ".style.",
    ] {
        assert!(!code.contains(forbidden), "app.js uses `{forbidden}`");
    }
    // sessionStorage carries the PKCE verifier and state across the redirect, nothing else.
    for line in code
        .lines()
        .filter(|l| l.contains("sessionStorage.setItem"))
    {
        assert!(line.contains("OIDC_KEY"), "{line}");
    }
    assert!(
        code.contains("JSON.stringify({ state, verifier, returnTo }))"),
        "what sessionStorage holds changed: review it"
    );
}

#[tokio::test]
async fn hsts_is_sent_only_when_the_public_url_is_https() {
    let https = router(ConsoleSettings {
        public_url: "https://meho.example".into(),
        ..oidc_settings()
    });
    for path in ["/console/", "/api/v1/console/config", "/console/missing.js"] {
        let reply = get(&https, path).await;
        assert_eq!(
            reply.header("strict-transport-security"),
            Some(console::HSTS),
            "{path}"
        );
    }
    let http = router(oidc_settings());
    for path in ["/console/", "/api/v1/console/config"] {
        let reply = get(&http, path).await;
        assert_eq!(reply.header("strict-transport-security"), None, "{path}");
    }
}

#[tokio::test]
async fn api_responses_get_a_csp_that_loads_nothing() {
    let router = router(oidc_settings());
    let reply = get(&router, "/api/v1/console/config").await;
    assert_eq!(
        reply.header("content-security-policy"),
        Some(console::API_CSP)
    );
    assert!(console::API_CSP.starts_with("default-src 'none'"));
    assert!(console::API_CSP.contains("frame-ancestors 'none'"));
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn cors_answers_listed_origins_only_and_never_a_wildcard() {
    let router = router(ConsoleSettings {
        cors_origins: vec![
            "https://ops.example".into(),
            "http://127.0.0.1:3000/".into(),
        ],
        ..oidc_settings()
    });
    let path = "/api/v1/console/config";

    let listed = get_from(&router, path, "https://ops.example").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(
        listed.header("access-control-allow-origin"),
        Some("https://ops.example")
    );
    assert_eq!(listed.header("access-control-allow-credentials"), None);
    assert_no_wildcard(&listed);
    // A trailing slash in the config is not part of an origin.
    let local = get_from(&router, path, "http://127.0.0.1:3000").await;
    assert_eq!(
        local.header("access-control-allow-origin"),
        Some("http://127.0.0.1:3000")
    );

    for origin in [
        "https://evil.example",
        "https://ops.example.evil.example",
        "http://ops.example",
        "null",
    ] {
        let reply = get_from(&router, path, origin).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.header("access-control-allow-origin"),
            None,
            "{origin}"
        );
        assert_no_wildcard(&reply);
    }

    let allowed = preflight(
        &router,
        "/api/v1/approvals/apr-1/approve",
        "https://ops.example",
    )
    .await;
    assert!(allowed.status.is_success(), "{}", allowed.status);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://ops.example")
    );
    let methods = allowed
        .header("access-control-allow-methods")
        .unwrap()
        .to_ascii_uppercase();
    for method in ["GET", "POST", "DELETE"] {
        assert!(methods.contains(method), "{methods}");
    }
    assert!(
        !methods.contains("PUT") && !methods.contains("PATCH"),
        "{methods}"
    );
    let headers = allowed
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for name in ["authorization", "content-type", "last-event-id"] {
        assert!(headers.contains(name), "{headers}");
    }
    assert_no_wildcard(&allowed);

    let refused = preflight(
        &router,
        "/api/v1/approvals/apr-1/approve",
        "https://evil.example",
    )
    .await;
    assert_eq!(refused.header("access-control-allow-origin"), None);
    assert_no_wildcard(&refused);
}

#[tokio::test]
async fn without_configured_origins_there_is_no_cors_at_all() {
    assert!(console::cors_layer(&oidc_settings()).is_none());
    // A wildcard is never honoured: alone it means no CORS, next to an origin it is dropped.
    let wildcard = ConsoleSettings {
        cors_origins: vec!["*".into()],
        ..oidc_settings()
    };
    assert!(console::cors_layer(&wildcard).is_none());

    let router = router(ConsoleSettings {
        cors_origins: vec!["*".into(), "https://ops.example".into()],
        ..oidc_settings()
    });
    let reply = get_from(&router, "/api/v1/console/config", "https://evil.example").await;
    assert_eq!(reply.header("access-control-allow-origin"), None);
    assert_no_wildcard(&reply);

    let none = router_for_dev();
    let reply = get_from(&none, "/api/v1/console/config", "https://ops.example").await;
    assert!(
        !reply
            .headers
            .keys()
            .any(|name| name.as_str().starts_with("access-control-")),
        "{:?}",
        reply.headers
    );
    let reply = preflight(&none, "/api/v1/console/config", "https://ops.example").await;
    assert_eq!(reply.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn the_console_config_names_the_issuer_client_scopes_and_resource() {
    let reply = get(&router(oidc_settings()), "/api/v1/console/config").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        reply.json(),
        json!({
            "issuer": "http://127.0.0.1:9000/",
            "client_id": "meho-console",
            "scopes": ["openid", "mcp:tools"],
            "resource": "http://127.0.0.1:8080/mcp",
            "dev": false,
        })
    );

    let reply = get(&router_for_dev(), "/api/v1/console/config").await;
    assert_eq!(
        reply.json(),
        json!({
            "issuer": null,
            "client_id": "meho-console",
            "scopes": ["openid", "mcp:tools"],
            "resource": "http://127.0.0.1:8080/mcp",
            "dev": true,
        })
    );
}

#[tokio::test]
async fn an_unknown_asset_is_a_json_404() {
    let router = router(oidc_settings());
    for path in [
        "/console/nope.js",
        "/console/..%2Fsrc%2Flib.rs",
        "/console/%2e%2e",
        "/console/app.js.map",
    ] {
        let reply = get(&router, path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.json()["error"], "not_found", "{path}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    }
}
