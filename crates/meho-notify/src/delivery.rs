//! Delivery: one background task per (approval, webhook), retried with backoff, audited once.
//!
//! A delivery POSTs the rendered JSON with a per-attempt timeout and redirects off (a redirect
//! would send the body, and perhaps the secret path, somewhere the operator never configured).
//! Connection errors, timeouts, 408, 429 and 5xx are retried after `base · 2^(attempt-1)`
//! (capped at [`MAX_BACKOFF`], half of it random), or after `Retry-After` seconds when the
//! receiver sends them (capped the same way); any other answer is final. The final result is one
//! audit record. Text that came back from the network (error chains, a response snippet) is
//! scrubbed of the URL, its path, query and long path segments before it is logged or audited.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use meho_audit::{AuditLog, NewRecord, RecordKind};
use reqwest::{StatusCode, Url, header};
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::message::render;
use crate::{
    ACTION, EVENT_PENDING, NotifyError, OUTCOME_FAILED, OUTCOME_NOTIFIED, PRINCIPAL,
    PendingApproval, WebhookConfig, WebhookFormat,
};

/// The default backoff base.
const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two attempts, whatever the backoff or `Retry-After` says.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The most attempts a webhook may ask for (as `[[notifications.webhooks]]` allows).
const MAX_ATTEMPTS: u32 = 20;
/// The longest per-attempt timeout, in seconds (as `[[notifications.webhooks]]` allows).
const MAX_TIMEOUT_SECONDS: u64 = 120;
/// Bytes of an error response read for the audit record.
const RESPONSE_READ_MAX: usize = 4096;
/// Characters of an error response kept in the audit record.
const RESPONSE_SNIPPET_MAX: usize = 200;
/// Path segments and query values at least this long are treated as secrets when scrubbing.
const SECRET_MIN_LEN: usize = 8;
/// What scrubbed text is replaced with.
const SCRUBBED: &str = "<redacted>";
/// The header naming the event.
const EVENT_HEADER: &str = "x-meho-event";
/// The header carrying one id per delivery, the same on every attempt (receivers may dedupe).
const DELIVERY_HEADER: &str = "x-meho-delivery";

/// Announces pending approvals to webhooks. Cheap to clone; clones share in-flight deliveries.
#[derive(Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
    backoff: Duration,
}

struct Shared {
    hooks: Vec<Arc<Hook>>,
    http: reqwest::Client,
    audit: Arc<AuditLog>,
    /// Deliveries started and not yet finished.
    in_flight: watch::Sender<usize>,
}

/// One validated webhook. Its `Debug` leaves the URL out.
struct Hook {
    name: String,
    format: WebhookFormat,
    url: Url,
    max_attempts: u32,
    timeout: Duration,
    /// Text that must never leave the process: the URL and its secret-looking parts, longest
    /// first.
    secrets: Vec<String>,
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hook")
            .field("name", &self.name)
            .field("format", &self.format.as_str())
            .field("url", &"<redacted>")
            .field("max_attempts", &self.max_attempts)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("webhooks", &self.shared.hooks)
            .field("backoff", &self.backoff)
            .field("in_flight", &*self.shared.in_flight.borrow())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier for `webhooks`, auditing every delivery to `audit`.
    ///
    /// Checks each webhook again (names non-empty and unique, an absolute `http(s)` URL, 1–20
    /// attempts, a 1–120 s timeout), since a `WebhookConfig` can be built without the config
    /// loader. Errors name the webhook, never its URL.
    pub fn new(webhooks: Vec<WebhookConfig>, audit: Arc<AuditLog>) -> Result<Self, NotifyError> {
        let mut hooks: Vec<Arc<Hook>> = Vec::with_capacity(webhooks.len());
        for config in webhooks {
            let hook = Hook::new(config)?;
            if hooks.iter().any(|other| other.name == hook.name) {
                return Err(NotifyError::InvalidWebhook {
                    name: hook.name,
                    reason: "the name is used by another webhook".into(),
                });
            }
            hooks.push(Arc::new(hook));
        }
        ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("meho/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| NotifyError::Client(err.without_url().to_string()))?;
        let (in_flight, _) = watch::channel(0);
        Ok(Notifier {
            shared: Arc::new(Shared {
                hooks,
                http,
                audit,
                in_flight,
            }),
            backoff: DEFAULT_BACKOFF,
        })
    }

    /// Sets the backoff base (default 1 s; doubling per attempt, capped at [`MAX_BACKOFF`], half
    /// of each wait random). Tests set it small.
    pub fn with_backoff(mut self, base: Duration) -> Self {
        self.backoff = base;
        self
    }

    /// The configured webhooks' names, in order.
    pub fn webhook_names(&self) -> Vec<&str> {
        self.shared
            .hooks
            .iter()
            .map(|hook| hook.name.as_str())
            .collect()
    }

    /// Starts delivering `approval` to every webhook and returns at once.
    ///
    /// Each delivery runs in its own task on the current tokio runtime. Outside a runtime nothing
    /// is sent (and a warning is logged): this never panics.
    pub fn notify_pending(&self, approval: &PendingApproval) {
        if self.shared.hooks.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                approval_id = %approval.id,
                "no async runtime: webhook notifications for this approval were not sent"
            );
            return;
        };
        for hook in &self.shared.hooks {
            let delivery = Delivery {
                shared: self.shared.clone(),
                hook: hook.clone(),
                body: render(hook.format, approval),
                approval_id: approval.id.clone(),
                tenant: approval.tenant.clone(),
                target: approval.target.clone(),
                backoff: self.backoff,
                _in_flight: InFlight::start(self.shared.clone()),
            };
            runtime.spawn(delivery.run());
        }
    }

    /// Waits until no delivery is in flight (every one started so far has been audited), or
    /// `timeout` passed. Returns whether everything finished.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let mut idle = self.shared.in_flight.subscribe();
        matches!(
            tokio::time::timeout(timeout, idle.wait_for(|count| *count == 0)).await,
            Ok(Ok(_))
        )
    }
}

/// Makes sure rustls has a process-wide crypto provider (ring) for reqwest, which is built
/// without one. Installing twice is harmless.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl Hook {
    fn new(config: WebhookConfig) -> Result<Self, NotifyError> {
        let invalid = |reason: &str| NotifyError::InvalidWebhook {
            name: config.name.clone(),
            reason: reason.to_owned(),
        };
        if config.name.trim().is_empty() {
            return Err(invalid("the name must not be empty"));
        }
        if !(1..=MAX_ATTEMPTS).contains(&config.max_attempts) {
            return Err(invalid("max_attempts must be 1 to 20"));
        }
        if !(1..=MAX_TIMEOUT_SECONDS).contains(&config.timeout_seconds) {
            return Err(invalid("timeout_seconds must be 1 to 120"));
        }
        // The parser's message could quote the URL: keep only our own words.
        let url = Url::parse(&config.url)
            .map_err(|_| invalid("the url is not an absolute http(s) URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid("the url is not an absolute http(s) URL"));
        }
        let secrets = secrets_of(&config.url, &url);
        Ok(Hook {
            name: config.name,
            format: config.format,
            url,
            max_attempts: config.max_attempts,
            timeout: Duration::from_secs(config.timeout_seconds),
            secrets,
        })
    }

    /// `text` with every secret part of the URL replaced.
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), SCRUBBED);
            }
        }
        out
    }
}

/// The URL as configured and as normalized, its path and query, its credentials, and every
/// path segment or query value long enough to be a token, each also percent-decoded.
fn secrets_of(configured: &str, url: &Url) -> Vec<String> {
    let mut secrets = vec![configured.to_owned(), url.as_str().to_owned()];
    if url.path().len() > 1 {
        secrets.push(url.path().to_owned());
    }
    secrets.extend(url.query().map(str::to_owned));
    secrets.extend(url.password().map(str::to_owned));
    if !url.username().is_empty() {
        secrets.push(url.username().to_owned());
    }
    if let Some(segments) = url.path_segments() {
        secrets.extend(segments.map(str::to_owned));
    }
    secrets.extend(url.query_pairs().map(|(_, value)| value.into_owned()));
    let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
    secrets.extend(decoded);
    secrets.retain(|s| s.chars().count() >= SECRET_MIN_LEN);
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

/// `%XX` sequences decoded (lossily), for matching text that quotes a decoded URL.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let hex = bytes
            .get(index + 1..index + 3)
            .filter(|pair| pair.iter().all(u8::is_ascii_hexdigit))
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                index += 3;
            }
            _ => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Counts a delivery as in flight for as long as it lives (also when its task panics or is
/// cancelled).
struct InFlight(Arc<Shared>);

impl InFlight {
    fn start(shared: Arc<Shared>) -> Self {
        shared.in_flight.send_modify(|count| *count += 1);
        InFlight(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .send_modify(|count| *count = count.saturating_sub(1));
    }
}

/// One approval to one webhook.
struct Delivery {
    shared: Arc<Shared>,
    hook: Arc<Hook>,
    body: Value,
    approval_id: String,
    tenant: String,
    target: String,
    backoff: Duration,
    _in_flight: InFlight,
}

/// What one attempt ended with.
enum Attempt {
    /// A 2xx answer.
    Delivered { status: u16 },
    /// Anything else; `retry` says whether (and when) to try again.
    Failed {
        status: Option<u16>,
        error: String,
        retry: Retry,
    },
}

enum Retry {
    /// Final: do not try again.
    No,
    /// Try again, after this long if the receiver said so, else after the backoff.
    After(Option<Duration>),
}

/// What the whole delivery ended with.
struct Final {
    delivered: bool,
    attempts: u32,
    status: Option<u16>,
    error: Option<String>,
}

impl Delivery {
    async fn run(self) {
        let delivery_id = uuid::Uuid::now_v7().to_string();
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            match self.attempt(&delivery_id).await {
                Attempt::Delivered { status } => {
                    break Final {
                        delivered: true,
                        attempts,
                        status: Some(status),
                        error: None,
                    };
                }
                Attempt::Failed {
                    status,
                    error,
                    retry,
                } => {
                    let hint = match retry {
                        Retry::After(hint) if attempts < self.hook.max_attempts => hint,
                        _ => {
                            break Final {
                                delivered: false,
                                attempts,
                                status,
                                error: Some(error),
                            };
                        }
                    };
                    let wait = match hint {
                        Some(after) => after.min(MAX_BACKOFF),
                        None => backoff_delay(self.backoff, attempts),
                    };
                    tracing::debug!(
                        webhook = %self.hook.name,
                        approval_id = %self.approval_id,
                        attempt = attempts,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        error = %error,
                        "webhook delivery failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        };
        self.finish(result).await;
    }

    async fn attempt(&self, delivery_id: &str) -> Attempt {
        let request = self
            .shared
            .http
            .post(self.hook.url.clone())
            .timeout(self.hook.timeout)
            .header(EVENT_HEADER, EVENT_PENDING)
            .header(DELIVERY_HEADER, delivery_id)
            .json(&self.body);
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                let retry = if err.is_builder() {
                    Retry::No
                } else {
                    Retry::After(None)
                };
                return Attempt::Failed {
                    status: None,
                    error: self.hook.scrub(&describe(err, self.hook.timeout)),
                    retry,
                };
            }
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Delivered {
                status: status.as_u16(),
            };
        }
        let retry = if is_retryable(status) {
            Retry::After(retry_after(response.headers()))
        } else {
            Retry::No
        };
        let snippet = response_snippet(response).await;
        let error = if snippet.is_empty() {
            format!("HTTP {}", status.as_u16())
        } else {
            format!("HTTP {}: {snippet}", status.as_u16())
        };
        Attempt::Failed {
            status: Some(status.as_u16()),
            error: self.hook.scrub(&error),
            retry,
        }
    }

    async fn finish(&self, result: Final) {
        let hook = &self.hook;
        let mut body = Map::new();
        body.insert("webhook".into(), Value::from(hook.name.as_str()));
        body.insert("format".into(), Value::from(hook.format.as_str()));
        body.insert("attempts".into(), Value::from(result.attempts));
        if let Some(status) = result.status {
            body.insert("status".into(), Value::from(status));
        }
        if let Some(error) = &result.error {
            body.insert("error".into(), Value::from(error.as_str()));
        }
        let outcome = if result.delivered {
            tracing::info!(
                webhook = %hook.name,
                approval_id = %self.approval_id,
                attempts = result.attempts,
                "webhook notified of pending approval"
            );
            OUTCOME_NOTIFIED
        } else {
            tracing::warn!(
                webhook = %hook.name,
                format = %hook.format.as_str(),
                approval_id = %self.approval_id,
                attempts = result.attempts,
                status = result.status,
                error = result.error.as_deref().unwrap_or_default(),
                "webhook notification failed"
            );
            OUTCOME_FAILED
        };
        let record = NewRecord {
            target: Some(self.target.clone()),
            action: Some(ACTION.to_owned()),
            outcome: Some(outcome.to_owned()),
            approval_id: Some(self.approval_id.clone()),
            body: Value::Object(body),
            ..NewRecord::new(self.tenant.clone(), RecordKind::Approval, PRINCIPAL)
        };
        if let Err(err) = self.shared.audit.append(record).await {
            tracing::warn!(
                webhook = %hook.name,
                approval_id = %self.approval_id,
                error = %err,
                "cannot audit a webhook delivery"
            );
        }
    }
}

/// 408, 429 and 5xx may succeed later; other answers will not.
fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// `Retry-After` in seconds (the HTTP-date form falls back to the backoff).
fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_BACKOFF))
}

/// `base · 2^(attempt-1)` capped at [`MAX_BACKOFF`]; the upper half random ("equal jitter"), so
/// receivers that failed together are not retried together.
fn backoff_delay(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    let full = base.saturating_mul(factor).min(MAX_BACKOFF);
    let half = full / 2;
    let span = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let jitter = match span.checked_add(1) {
        Some(modulus) => getrandom::u64().unwrap_or(0) % modulus,
        None => getrandom::u64().unwrap_or(0),
    };
    half.saturating_add(Duration::from_nanos(jitter))
        .min(MAX_BACKOFF)
}

/// A transport error in words, without the URL reqwest would print.
fn describe(err: reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return format!("timed out after {} s", timeout.as_secs());
    }
    let err = err.without_url();
    if err.is_connect() {
        // The innermost cause says why: refused, unreachable, no such name, a TLS failure.
        let mut root: &dyn std::error::Error = &err;
        while let Some(cause) = root.source() {
            root = cause;
        }
        return format!("cannot connect: {root}");
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper and hyper-util repeat their cause's words in their own message.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The start of an error response's body, on one line, for the audit record.
async fn response_snippet(mut response: reqwest::Response) -> String {
    let mut bytes: Vec<u8> = Vec::new();
    while bytes.len() < RESPONSE_READ_MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(RESPONSE_READ_MAX);
    let text = String::from_utf8_lossy(&bytes);
    let one_line: String = text
        .split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    crate::message::truncate(&one_line, RESPONSE_SNIPPET_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        for attempt in 1..=4 {
            let full = base * 2u32.pow(attempt - 1);
            for _ in 0..50 {
                let wait = backoff_delay(base, attempt);
                assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
            }
        }
        for attempt in [10, 20, 32, 1000, u32::MAX] {
            let wait = backoff_delay(Duration::from_secs(1), attempt);
            assert!(wait >= MAX_BACKOFF / 2 && wait <= MAX_BACKOFF, "{wait:?}");
        }
        assert_eq!(backoff_delay(Duration::ZERO, 3), Duration::ZERO);
        assert!(backoff_delay(Duration::MAX, 1) <= MAX_BACKOFF);
    }

    #[test]
    fn retry_after_reads_seconds_and_is_capped() {
        let mut headers = header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(header::RETRY_AFTER, "86400".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_BACKOFF));
        headers.insert(
            header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
        headers.insert(header::RETRY_AFTER, "-1".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn retries_only_transient_statuses() {
        for code in [408, 429, 500, 502, 503, 504, 599] {
            assert!(is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [300, 301, 400, 401, 403, 404, 410, 413, 422] {
            assert!(!is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn scrub_removes_the_url_and_its_secret_parts() {
        let config = WebhookConfig {
            name: "ops".into(),
            url:
                "https://hooks.example.com/services/T0123456/B0123456/s3cr3tT0k3n?sig=abc%2Fdefghij"
                    .into(),
            format: WebhookFormat::Slack,
            max_attempts: 3,
            timeout_seconds: 5,
        };
        let hook = Hook::new(config).unwrap();
        let text = "posting to https://hooks.example.com/services/T0123456/B0123456/s3cr3tT0k3n?sig=abc%2Fdefghij failed; \
                    token s3cr3tT0k3n, path /services/T0123456/B0123456/s3cr3tT0k3n, sig abc/defghij";
        let scrubbed = hook.scrub(text);
        for secret in [
            "s3cr3tT0k3n",
            "T0123456",
            "B0123456",
            "abc/defghij",
            "abc%2Fdefghij",
        ] {
            assert!(!scrubbed.contains(secret), "{secret} in {scrubbed}");
        }
        assert!(scrubbed.contains("failed"), "{scrubbed}");
        assert!(!format!("{hook:?}").contains("s3cr3t"));
    }

    #[test]
    fn percent_decode_is_lossy_but_total() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%+1"), "%+1");
        assert_eq!(percent_decode("%E2%82%AC"), "€");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}");
    }
}
