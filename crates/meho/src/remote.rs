//! The client side of the REST API (`/api/v1`, docs/api.md) for the remote operator commands:
//! `meho approvals|grants|freeze|unfreeze` and `meho audit query|show --server`.
//!
//! One request per command, with the bearer token from `--token`/`MEHO_TOKEN`, bounded in time,
//! no redirects (a redirect could carry the token elsewhere), and one precise line for every way
//! it can fail: which server, and the API's `error` code and `message`. The token is never
//! printed, logged or put in an error.
//!
//! Everything in an answer may come from an agent (commands, summaries, reasons, targets), so
//! human output never prints it as it is: the commands print through [`crate::output`], and the
//! refusal lines here pass the server's words through [`escape`], which turns control and bidi
//! characters into visible escapes (a raw ESC could rewrite the row an approver reads).
//! `--format json` prints the body exactly ([`Answer::print`]).

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use meho_core::display::escape;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Failure;
use crate::cli::{Format, RemoteArgs};

/// No query string.
const NO_QUERY: &[(&str, String)] = &[];

/// How long to wait for a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A bearer token. It has no `Display`, and its `Debug` hides it, so it cannot reach a message
/// by accident.
#[derive(Clone)]
pub(crate) struct Token(String);

impl From<String> for Token {
    fn from(token: String) -> Self {
        Token(token)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The error body every `/api/v1` error has.
#[derive(Debug, Deserialize)]
struct ApiError {
    error: String,
    #[serde(default)]
    message: String,
}

/// A meho server, ready for requests.
#[derive(Debug)]
pub(crate) struct Remote {
    http: reqwest::Client,
    base: Url,
    /// The base URL as messages name it.
    name: String,
    auth: HeaderValue,
    format: Format,
}

/// A successful answer: the body as sent, and parsed.
#[derive(Debug)]
pub(crate) struct Answer {
    text: String,
    value: Value,
    server: String,
}

impl Remote {
    /// The server and token `args` name. A missing server or token, or a server URL that is not
    /// plain `http(s)://host[:port][/prefix]`, is a usage error. With `format` JSON, an API error
    /// body is also printed on stdout, for scripts.
    pub(crate) fn new(args: &RemoteArgs, format: Format) -> Result<Remote, Failure> {
        let server = args
            .server
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Failure::Usage(
                    "no server: pass --server URL or set MEHO_SERVER (e.g. http://127.0.0.1:8080)"
                        .into(),
                )
            })?;
        let base = server_url(server)?;
        let name = base.as_str().trim_end_matches('/').to_owned();
        let token = args
            .token
            .as_ref()
            .filter(|t| !t.0.is_empty())
            .ok_or_else(|| {
                Failure::Usage(
                    "no token: pass --token TOKEN or set MEHO_TOKEN (`meho serve --dev` prints one)"
                        .into(),
                )
            })?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.0)).map_err(|_| {
            Failure::Usage(
                "the token holds characters an HTTP header cannot carry (--token or MEHO_TOKEN)"
                    .into(),
            )
        })?;
        auth.set_sensitive(true);
        if base.scheme() == "http" && !is_loopback(&base) {
            warn(&format!(
                "{name} is plain http on a non-loopback host: the token and every answer cross the network unencrypted; use https"
            ));
        }
        let http = client()?;
        Ok(Remote {
            http,
            base,
            name,
            auth,
            format,
        })
    }

    /// `GET` the API path made of `segments` (each percent-encoded as one segment).
    pub(crate) async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Answer, Failure> {
        self.send(Method::GET, segments, query, None).await
    }

    /// `GET` with the query string `query` serializes to (its fields by name; `None` left out).
    pub(crate) async fn get_with<Q: serde::Serialize + ?Sized>(
        &self,
        segments: &[&str],
        query: &Q,
    ) -> Result<Answer, Failure> {
        self.send(Method::GET, segments, query, None).await
    }

    /// `POST` `body` as JSON.
    pub(crate) async fn post(&self, segments: &[&str], body: &Value) -> Result<Answer, Failure> {
        self.send(Method::POST, segments, NO_QUERY, Some(body))
            .await
    }

    /// `DELETE`.
    pub(crate) async fn delete(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Answer, Failure> {
        self.send(Method::DELETE, segments, query, None).await
    }

    fn endpoint(&self, segments: &[&str]) -> Result<Url, Failure> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Failure::Usage(format!("`{}` cannot be a base URL", self.name)))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn send<Q: serde::Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        query: &Q,
        body: Option<&Value>,
    ) -> Result<Answer, Failure> {
        // An empty query string leaves the URL without `?`.
        let mut request = self
            .http
            .request(method, self.endpoint(segments)?)
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json")
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|err| self.unreachable(&err))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| self.unreachable(&err))?;
        if !status.is_success() {
            return Err(self.refusal(status, &bytes));
        }
        let unexpected = |why: String| {
            // Parse errors quote the body they choked on.
            Failure::Runtime(anyhow!(
                "the meho server at {} sent an unexpected answer ({status}): {}",
                self.name,
                escape(&why)
            ))
        };
        let text = String::from_utf8(bytes.to_vec()).map_err(|err| unexpected(err.to_string()))?;
        let value =
            serde_json::from_str(&text).map_err(|err| unexpected(format!("not JSON: {err}")))?;
        Ok(Answer {
            text,
            value,
            server: self.name.clone(),
        })
    }

    /// The request never got an HTTP answer.
    fn unreachable(&self, err: &reqwest::Error) -> Failure {
        let cause = root_cause(err);
        let cause = escape(&cause);
        let line = if err.is_connect() {
            if err.is_timeout() {
                format!(
                    "cannot connect to the meho server at {}: no connection within {}s",
                    self.name,
                    CONNECT_TIMEOUT.as_secs()
                )
            } else {
                format!(
                    "cannot connect to the meho server at {}: {cause}",
                    self.name
                )
            }
        } else if err.is_timeout() {
            format!(
                "the meho server at {} did not answer within {}s",
                self.name,
                REQUEST_TIMEOUT.as_secs()
            )
        } else {
            format!(
                "request to the meho server at {} failed: {cause}",
                self.name
            )
        };
        Failure::Runtime(anyhow!(line))
    }

    /// An HTTP error answer: one line with the status, the API's code and message. A malformed
    /// request (400) is a usage error (exit 2); every other refusal exits 1. The message often
    /// quotes the request (a command, a pattern, an id), so it is escaped like any output.
    fn refusal(&self, status: StatusCode, body: &[u8]) -> Failure {
        let api = serde_json::from_slice::<ApiError>(body).ok();
        if self.format == Format::Json && api.is_some() {
            // Scripts get the API's error document too, exactly; the line on stderr says the same.
            let _ = crate::output::print_raw(&String::from_utf8_lossy(body));
        }
        let what = match &api {
            Some(api) if api.message.is_empty() => {
                format!("{} {}", status.as_u16(), escape(&api.error))
            }
            Some(api) => format!(
                "{} {}: {}",
                status.as_u16(),
                escape(&api.error),
                one_line(&api.message)
            ),
            None => format!(
                "{status}, which is not a meho API answer (is --server the base URL of a meho server?)"
            ),
        };
        let hint = match status {
            StatusCode::UNAUTHORIZED => " (check --token or MEHO_TOKEN)",
            StatusCode::FORBIDDEN if api.as_ref().is_some_and(|a| a.error == "forbidden") => {
                " (the token's role may not do this)"
            }
            _ => "",
        };
        let line = format!("the meho server at {} answered {what}{hint}", self.name);
        if status == StatusCode::BAD_REQUEST {
            Failure::Usage(line)
        } else {
            Failure::Runtime(anyhow!(line))
        }
    }
}

impl Answer {
    /// The body exactly as the server sent it, on stdout (`--format json`): machines read it,
    /// so nothing is escaped beyond what JSON itself escapes.
    pub(crate) fn print(&self) -> Result<(), Failure> {
        crate::output::print_raw(&self.text)
    }

    /// The body as `T`.
    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        T::deserialize(&self.value).map_err(|err| {
            // serde quotes the value it could not take, and the server chose that value.
            Failure::Runtime(anyhow!(
                "the meho server at {} sent an unexpected answer: {}",
                self.server,
                escape(&err.to_string())
            ))
        })
    }

    /// The body as JSON.
    pub(crate) fn value(&self) -> &Value {
        &self.value
    }
}

/// The HTTP client: bounded in time, and no redirects, which could carry the token elsewhere.
fn client() -> Result<reqwest::Client, Failure> {
    // reqwest is built without a default crypto provider; installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("meho/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| {
            // `{:#}` renders the error with its sources, where TLS setup problems hide.
            anyhow!(
                "cannot set up the HTTP client: {:#}",
                anyhow::Error::new(err)
            )
        })?)
}

/// Parses and checks `--server`.
fn server_url(text: &str) -> Result<Url, Failure> {
    let usage = |why: &str| {
        Failure::Usage(format!(
            "invalid --server `{}`: {} (expected http(s)://HOST[:PORT], e.g. http://127.0.0.1:8080)",
            escape(text),
            escape(why)
        ))
    };
    let url = Url::parse(text).map_err(|err| usage(&err.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: the URL holds a credential.
        return Err(Failure::Usage(
            "invalid --server: it must not carry a user or password; pass the token with --token or MEHO_TOKEN".into(),
        ));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(usage(&format!(
            "the scheme is `{}`, not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(usage("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(usage("a base URL has no query or fragment"));
    }
    Ok(url)
}

/// Whether the URL's host is this machine (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An id the user typed, as one path segment. `.` and `..` would be dropped from the path and
/// address another endpoint, so they are refused.
pub(crate) fn id_segment<'a>(what: &str, id: &'a str) -> Result<&'a str, Failure> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(Failure::Usage(format!("invalid {what} id `{id}`")));
    }
    Ok(id)
}

/// The innermost cause: what actually went wrong (refused, no such host, a certificate
/// problem), without reqwest's wrapping that repeats the URL.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `text` on one line (runs of whitespace, newlines included, become one space), with every
/// control and bidi character left shown as an escape.
fn one_line(text: &str) -> String {
    escape(&text.split_whitespace().collect::<Vec<_>>().join(" ")).into_owned()
}

/// Runs one remote command on a runtime of its own.
pub(crate) fn block_on(command: impl Future<Output = Result<(), Failure>>) -> Result<(), Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(command)
}

#[expect(clippy::print_stderr, reason = "CLI warnings go to stderr by design")]
fn warn(message: &str) {
    eprintln!("warning: {message}");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn server_urls_must_be_http_or_https_with_a_host_and_no_credentials() {
        assert!(server_url("http://127.0.0.1:8080").is_ok());
        assert!(server_url("https://meho.example/prefix/").is_ok());
        for bad in [
            "ftp://meho.example",
            "127.0.0.1:8080",
            "meho.example",
            "https://user:pw@meho.example",
            "https://meho.example/?x=1",
            "file:///etc/passwd",
        ] {
            assert!(
                matches!(server_url(bad), Err(Failure::Usage(_))),
                "{bad} accepted"
            );
        }
        match server_url("https://user:secret@meho.example") {
            Err(Failure::Usage(message)) => assert!(!message.contains("secret"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for url in [
            "http://127.0.0.1:1",
            "http://127.9.9.9",
            "http://[::1]:8080",
            "http://LOCALHOST",
        ] {
            assert!(is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
        for url in ["http://10.0.0.1", "http://meho.example", "http://[::2]"] {
            assert!(!is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
    }

    fn remote() -> Remote {
        Remote {
            http: client().unwrap(),
            base: Url::parse("http://127.0.0.1:1/meho/").unwrap(),
            name: "http://127.0.0.1:1/meho".into(),
            auth: HeaderValue::from_static("Bearer x"),
            format: Format::Text,
        }
    }

    fn refusal_line(status: u16, body: &str) -> (u8, String) {
        match remote().refusal(StatusCode::from_u16(status).unwrap(), body.as_bytes()) {
            Failure::Usage(line) => (2, line),
            Failure::Runtime(err) => (1, format!("{err:#}")),
            Failure::Silent(code) => (code, String::new()),
        }
    }

    #[test]
    fn refusals_are_one_line_with_the_server_status_code_and_message() {
        let error = |code: &str, message: &str| json!({ "error": code, "message": message });
        let cases = [
            (400, error("bad_request", "bad"), 2, "400 bad_request: bad"),
            (
                401,
                error("invalid_token", "expired"),
                1,
                "401 invalid_token: expired (check --token or MEHO_TOKEN)",
            ),
            (
                403,
                error("forbidden", "operators only"),
                1,
                "403 forbidden: operators only (the token's role may not do this)",
            ),
            (
                404,
                error("not_found", "no\nsuch"),
                1,
                "404 not_found: no such",
            ),
            (
                409,
                error("wrong_state", "denied"),
                1,
                "409 wrong_state: denied",
            ),
            (
                413,
                error("payload_too_large", "body over 1 MiB"),
                1,
                "413 payload_too_large: body over 1 MiB",
            ),
            (
                500,
                error("internal", "store down"),
                1,
                "500 internal: store down",
            ),
            (503, json!({ "error": "unavailable" }), 1, "503 unavailable"),
        ];
        for (status, body, code, what) in cases {
            let (exit, line) = refusal_line(status, &body.to_string());
            assert_eq!(exit, code, "{status}: {line}");
            assert_eq!(
                line,
                format!("the meho server at http://127.0.0.1:1/meho answered {what}")
            );
        }
        let (exit, line) = refusal_line(502, "<html>bad gateway</html>");
        assert_eq!(exit, 1);
        assert_eq!(
            line,
            "the meho server at http://127.0.0.1:1/meho answered 502 Bad Gateway, which is not a meho API answer (is --server the base URL of a meho server?)"
        );
    }

    #[test]
    fn refusals_show_control_and_bidi_characters_of_the_message_as_escapes() {
        let body = json!({
            "error": "not_found\u{1b}[2K",
            "message": "no target `web\u{1b}[2K\u{9b}1G\u{7f}\u{202e}x\ny` in your tenant",
        });
        let (exit, line) = refusal_line(404, &body.to_string());
        assert_eq!(exit, 1);
        assert_eq!(
            line,
            r"the meho server at http://127.0.0.1:1/meho answered 404 not_found\x1b[2K: no target `web\x1b[2K\x9b1G\x7f\u{202e}x y` in your tenant"
        );
    }

    #[test]
    fn ids_become_one_encoded_segment_and_dot_segments_are_refused() {
        let remote = remote();
        let url = remote
            .endpoint(&["api", "v1", "approvals", "a/b?c"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/meho/api/v1/approvals/a%2Fb%3Fc"
        );
        for bad in ["", ".", ".."] {
            assert!(id_segment("approval", bad).is_err());
        }
    }

    #[test]
    fn a_token_never_shows_in_debug_output() {
        let token = Token::from("meho_dev_secret".to_owned());
        assert!(!format!("{token:?}").contains("secret"));
    }
}
