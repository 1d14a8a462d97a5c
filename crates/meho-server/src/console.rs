//! The web console at `/console`: a single page of static HTML, CSS and JavaScript embedded in
//! the binary (no build step, no CDN), its unauthenticated bootstrap document
//! (`GET /api/v1/console/config`), the security headers every response carries, and CORS for the
//! REST API limited to `[server] cors_origins`.
//!
//! The page talks to the same `/api/v1` as the operator CLI, with a bearer token it keeps in
//! memory only: the dev token pasted into a form (`meho serve --dev`), or an access token for
//! meho's resource from `[auth] issuer` (authorization code + PKCE as a public client).
//!
//! Invariants:
//! - Nothing here needs a token: the assets and the bootstrap carry no tenant data.
//! - The console's CSP allows scripts and styles from this origin only (no inline code, no
//!   `eval`), network calls to this origin and the issuer's, and no framing.
//! - CORS never answers `*`: only the exact configured origins get `Access-Control-Allow-Origin`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// What the console needs to know; built by the server from config.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// `[auth] issuer`; `None` in dev mode.
    pub issuer: Option<String>,
    /// `[console] client_id` (default `meho-console`).
    pub client_id: String,
    /// `[console] scopes` (default `["openid", "mcp:tools"]`).
    pub scopes: Vec<String>,
    /// meho's MCP resource URL (the token audience), e.g. `http://127.0.0.1:8080/mcp`.
    pub resource: String,
    /// Dev mode: the login page takes the dev token instead.
    pub dev: bool,
    /// `[server] public_url` or `http://<listen>`; `https` turns on HSTS.
    pub public_url: String,
    /// `[server] cors_origins`: exact origins, never `*`.
    pub cors_origins: Vec<String>,
}

impl ConsoleSettings {
    /// The console pages' Content-Security-Policy: this origin, plus the issuer's for the
    /// discovery and token requests of the login.
    pub fn console_csp(&self) -> String {
        let mut connect = String::from("'self'");
        if let Some(origin) = self.issuer.as_deref().and_then(csp_origin) {
            connect.push(' ');
            connect.push_str(origin);
        }
        format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; \
             form-action 'self'; object-src 'none'"
        )
    }

    /// Whether the console is served over https (then every response carries HSTS).
    fn https(&self) -> bool {
        self.public_url
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }
}

/// The CSP of everything that is not a console page (JSON, SSE, metrics): nothing may load.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
                           form-action 'none'";

/// `Strict-Transport-Security` when the public URL is https.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// `scheme://host[:port]` of an absolute http(s) URL, if it is one made of characters that cannot
/// break out of a CSP source expression.
fn csp_origin(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let origin = url.get(..scheme.len() + 3 + authority_len)?;
    let authority = rest.get(..authority_len)?;
    let safe = !authority.is_empty()
        && !authority.contains('@')
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'));
    safe.then_some(origin)
}

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Every file under `console/`, embedded at compile time.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../console/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../console/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../console/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../console/favicon.svg"),
    },
];

/// Names of the embedded assets, for tests and docs.
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.name)
}

/// Routes: `GET /` and `GET /console` (redirects to `/console/`), `GET /console/` (`index.html`),
/// `GET /console/<asset>`, and the unauthenticated `GET /api/v1/console/config`. The router has
/// its state already: it merges into a router of any state type.
pub fn routes<S>(settings: Arc<ConsoleSettings>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        // A browser pointed at the server lands on the console.
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(index))
        .route("/console/{asset}", get(asset))
        .route("/api/v1/console/config", get(config))
        .with_state(settings)
}

async fn index() -> Response {
    serve_asset("index.html")
}

async fn asset(Path(name): Path<String>) -> Response {
    serve_asset(&name)
}

fn serve_asset(name: &str) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                // Names carry no content hash: revalidate, so an upgrade is seen at once.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            asset.body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({
                "error": "not_found",
                "message": format!("no console asset `{name}`"),
            })),
        )
            .into_response(),
    }
}

/// `GET /api/v1/console/config`: how the page logs in.
async fn config(State(settings): State<Arc<ConsoleSettings>>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({
            "issuer": settings.issuer,
            "client_id": settings.client_id,
            "scopes": settings.scopes,
            "resource": settings.resource,
            "dev": settings.dev,
        })),
    )
        .into_response()
}

/// Whether `path` is a console page or asset (it gets the console's CSP).
fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// Security headers for every response: a CSP (the console's on console pages, `API_CSP`
/// elsewhere), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
/// `X-Frame-Options: DENY`, and `Strict-Transport-Security` when the public URL is https.
/// Headers a handler already set are kept.
pub async fn security_headers(
    State(settings): State<Arc<ConsoleSettings>>,
    request: Request,
    next: Next,
) -> Response {
    let console = is_console_path(request.uri().path());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let csp = if console {
        HeaderValue::from_str(&settings.console_csp())
            .unwrap_or_else(|_| HeaderValue::from_static(API_CSP))
    } else {
        HeaderValue::from_static(API_CSP)
    };
    set_default(headers, header::CONTENT_SECURITY_POLICY, csp);
    set_default(
        headers,
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    set_default(
        headers,
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    set_default(
        headers,
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    if settings.https() {
        set_default(
            headers,
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    response
}

fn set_default(headers: &mut HeaderMap, name: HeaderName, value: HeaderValue) {
    headers.entry(name).or_insert(value);
}

/// How long a browser may cache a CORS preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// CORS for `/api` limited to `settings.cors_origins`: exact origins only (a `*` or a value that
/// is not a header value is dropped), `GET`/`POST`/`DELETE`, the `Authorization`, `Content-Type`
/// and `Last-Event-ID` request headers, no credentials (tokens travel in `Authorization`, never
/// in cookies). `None` when no origin is configured: then no response carries CORS headers.
///
/// Put it outside the authentication layer, so a preflight (which carries no token) is answered
/// here.
pub fn cors_layer(settings: &ConsoleSettings) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = settings
        .cors_origins
        .iter()
        .map(|origin| origin.trim().trim_end_matches('/'))
        .filter(|origin| !origin.is_empty() && !origin.contains('*'))
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::WWW_AUTHENTICATE])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_origin_takes_scheme_host_and_port_only() {
        assert_eq!(
            csp_origin("http://127.0.0.1:9000/realms/x"),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            csp_origin("https://idp.example"),
            Some("https://idp.example")
        );
        assert_eq!(
            csp_origin("https://idp.example?x"),
            Some("https://idp.example")
        );
        assert_eq!(csp_origin("https://a; script-src *"), None);
        assert_eq!(csp_origin("https://user@idp.example"), None);
        assert_eq!(csp_origin("javascript:alert(1)"), None);
        assert_eq!(csp_origin("ftp://idp.example"), None);
    }
}
