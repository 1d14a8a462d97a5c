//! Notifications: a new pending approval is announced to every configured webhook.
//!
//! [`render`] turns a [`PendingApproval`] into the JSON body of one format (meho's generic JSON,
//! a Slack incoming-webhook message, or a Microsoft Teams message carrying an Adaptive Card); it
//! is pure. [`Notifier::notify_pending`] renders once per webhook and delivers in the background:
//! POST, per-attempt timeout, retries with capped exponential backoff and jitter on connection
//! errors, timeouts, 408, 429 and 5xx (honouring `Retry-After`), no retry on other 4xx, no
//! redirects. Every delivery's final result becomes one audit record (kind `approval`, action
//! `notify`, outcome `notified` or `notify_failed`).
//!
//! A webhook URL is a credential (Slack and Teams put the secret in the path), so it never
//! reaches a log line, an error message, a `Debug` output or an audit record: webhooks are named
//! by their `name`, and any text that comes back from the network is scrubbed of the URL before
//! it is kept.

mod delivery;
mod message;

use meho_core::Tier;
use serde::{Deserialize, Serialize};

pub use delivery::{MAX_BACKOFF, Notifier};
pub use meho_config::{WebhookConfig, WebhookFormat};
pub use message::render;

/// The audit principal of delivery records.
pub const PRINCIPAL: &str = "meho-notify";
/// The audit action of delivery records.
pub const ACTION: &str = "notify";
/// The audit outcome of a delivered notification.
pub const OUTCOME_NOTIFIED: &str = "notified";
/// The audit outcome of a notification that could not be delivered.
pub const OUTCOME_FAILED: &str = "notify_failed";
/// The event type of the generic format (`type`), also sent as the `X-Meho-Event` header.
pub const EVENT_PENDING: &str = "approval.pending";

/// What a notification says about one pending approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// The approval id.
    pub id: String,
    /// The requester's tenant.
    pub tenant: String,
    /// Who asked for the call.
    pub requester: String,
    /// The target (host) of the call.
    pub target: String,
    /// The tool, e.g. `ssh_execute`.
    pub tool: String,
    /// One line saying what the call does.
    pub summary: String,
    /// The rule that asked for approval.
    pub rule: String,
    /// The call's tier.
    pub tier: Tier,
    /// The call's arguments, exactly as they will run.
    pub arguments: serde_json::Value,
    /// What the call would change, as its connector computed it for approvers (several lines,
    /// a unified diff say; redacted and clipped to 64 KiB by the gateway), or `None`. Slack and
    /// Teams show the first lines of it, escaped; the generic format carries it whole.
    #[serde(default)]
    pub preview: Option<String>,
    /// When the approval was created (RFC 3339).
    pub created_at: String,
    /// When it expires undecided (RFC 3339).
    pub expires_at: String,
    /// The approval in the console: `<public_url>/console/#/approvals/<id>`.
    pub console_url: String,
}

/// Why a [`Notifier`] could not be built. Never carries a webhook URL.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A webhook's settings are unusable.
    #[error("webhook `{name}`: {reason}")]
    InvalidWebhook {
        /// The webhook's name.
        name: String,
        /// What is wrong, without the URL.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(String),
}
