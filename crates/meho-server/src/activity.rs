//! The activity view (`/api/v1/activity`, `/api/v1/activity/summary`, `/api/v1/calls/{id}`):
//! what agents are doing now and did recently, folded from the durable audit log.
//!
//! One governed call leaves several records: the signer's credential or refusal, the broker's
//! intent and outcome (or its denial), and for a held call the approval's request, decision and
//! consumption. [`fold`] turns them into one [`CallView`] per call, linking records the way they
//! carry their links:
//! - by `approval_id`: everything about one approval (request, decision, the credential issued for
//!   it, the intent and outcome of the approved run, its consumption) is one call;
//! - by `call_id`: an intent and its outcome (or a session's closing record);
//! - the broker's `needs_approval` denial that a hold turned into an approval request is the first
//!   record of that approval's call: the request record carries the held call's `call_id`
//!   (records written before it did are matched by principal, target, tool and arguments);
//! - the signer's records (`action: "sign"`) carry the broker's `call_id` (and the approval id
//!   when one was redeemed). Older ones carry neither: the call detail finds them by the
//!   certificate serial the outcome names, or as the signer's decision on the same command just
//!   before the broker's record.
//!
//! Invariants:
//! - Everything is read in the caller's tenant only (the token's, never the request's): the page
//!   query, the linked records, the look-ups. Another tenant's call answers like a missing one.
//! - Each call is shown once: a page owns the calls whose first record (the anchor) lies in the
//!   rows it scanned, and the cursor is a row, so a call whose records straddle two pages appears
//!   on the page of its anchor, complete.
//! - The work per request is bounded ([`MAX_SCAN_ROWS`], [`LINKED_MAX`], [`SUMMARY_MAX_RECORDS`])
//!   and every read goes through an index (`(tenant|principal|target|action, row_id)`, the call
//!   and approval indexes). Time windows are walked newest first on a row index and cut at the
//!   first older record ([`newest_since`]), so their cost follows what they return.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::RangeInclusive;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use meho_approvals::Status;
use meho_audit::{AuditStore, Filter, Page, Record};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};
use utoipa::{IntoParams, ToSchema};

use crate::McpState;
use crate::api::{Acting, ApiError, ErrorBody, Path, Query, RecordView, integral, record_view};
use meho_gateway::govern::rfc3339;

/// `limit` of `GET /api/v1/activity`: default and range.
pub(crate) const ACTIVITY_LIMIT: (u32, RangeInclusive<u32>) = (50, 1..=200);
/// Records read per step of a page.
const BATCH_ROWS: u32 = 500;
/// Records one page request reads at most before it answers with what it found and a cursor.
pub const MAX_SCAN_ROWS: usize = 5_000;
/// Linked records read for one batch or one call at most.
pub const LINKED_MAX: u32 = 20_000;
/// Records of the last hour the summary folds at most (newest first); past it, `truncated`.
pub const SUMMARY_MAX_RECORDS: u32 = 20_000;
/// The summary's window: 60 buckets of one minute.
const MINUTES: i64 = 60;
const MINUTE_US: i64 = 60_000_000;
/// How long an open-session record counts when no close record follows (see `sessions_open`).
const SESSION_HORIZON_US: i64 = 24 * 3600 * 1_000_000;
/// Counters read at most this many rows (pending approvals, active freezes).
const COUNTER_CAP: u32 = 1_000;
/// Unmatched `needs_approval` denials a page checks for a later request at most.
const MAX_HOLD_LOOKUPS: usize = 50;

/// What became of a call. `held`: waiting for a human; `approved`: a human approved it (it ran if
/// `outcome` says so); `rejected`: a human denied it; `expired`: nobody decided in time;
/// `denied`: policy, a freeze or a check refused it; `announced`: an agent announced what it is
/// about to do; `allowed`: policy allowed it.
pub const DECISIONS: [&str; 7] = [
    "allowed",
    "denied",
    "held",
    "approved",
    "rejected",
    "expired",
    "announced",
];
/// The tiers, as records name them.
pub const TIERS: [&str; 3] = ["read", "write", "destructive"];
/// How a call ran: `running` has an intent and no outcome yet.
pub const OUTCOMES: [&str; 4] = ["ok", "nonzero_exit", "error", "running"];
/// How a record of a call detail is linked to it.
pub const LINKS: [&str; 6] = [
    "call_id",
    "approval_id",
    "record",
    "held_call",
    "credential_serial",
    "signer_decision",
];

// --- the fold ----------------------------------------------------------------------------------

/// A record with its body parsed.
#[derive(Debug, Clone)]
struct Rec {
    stored: Record,
    body: Value,
}

impl Rec {
    fn new(stored: Record) -> Self {
        let body = serde_json::from_str(&stored.body).unwrap_or(Value::Null);
        Rec { stored, body }
    }

    fn row(&self) -> i64 {
        self.stored.row
    }

    fn kind(&self) -> &str {
        &self.stored.kind
    }

    fn action(&self) -> Option<&str> {
        self.stored.action.as_deref()
    }

    fn outcome(&self) -> Option<&str> {
        self.stored.outcome.as_deref()
    }

    fn text(&self, pointer: &str) -> Option<&str> {
        self.body.pointer(pointer).and_then(Value::as_str)
    }

    /// A record the signer wrote (a credential, a dry run, a refusal): never a call of its own.
    fn is_signer(&self) -> bool {
        self.action() == Some("sign") && matches!(self.kind(), "credential" | "denial")
    }

    /// A record that says what the call was and what became of it (not the signer's, not an
    /// approval's).
    fn is_primary(&self) -> bool {
        !self.is_signer() && matches!(self.kind(), "intent" | "outcome" | "denial" | "announce")
    }

    fn is_request(&self) -> bool {
        self.kind() == "approval" && self.action() == Some("request")
    }

    fn is_held_denial(&self) -> bool {
        self.kind() == "denial"
            && !self.is_signer()
            && self.outcome() == Some("needs_approval")
            && self.stored.approval_id.is_none()
            && self.stored.call_id.is_none()
    }

    /// What a held denial and its approval request share: who, where, which tool, which
    /// arguments (both redacted alike).
    fn hold_signature(&self) -> Option<(String, String, String, Value)> {
        let (tool, arguments) = if self.is_request() {
            (
                self.text("/tool")?.to_owned(),
                self.body.get("arguments")?.clone(),
            )
        } else {
            (
                self.action()?.to_owned(),
                self.body.get("arguments")?.clone(),
            )
        };
        let principal = if self.is_request() {
            self.text("/requester")
                .unwrap_or(&self.stored.principal)
                .to_owned()
        } else {
            self.stored.principal.clone()
        };
        Some((
            principal,
            self.stored.target.clone().unwrap_or_default(),
            tool,
            arguments,
        ))
    }
}

/// Which call a record belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Key {
    /// Everything about one approval.
    Approval(String),
    /// An intent and its outcome.
    Call(String),
    /// A call of one record (a denial, an outcome without an intent, an announcement).
    Record(String),
}

impl Key {
    fn of(record: &Rec) -> Option<Key> {
        let stored = &record.stored;
        if matches!(record.kind(), "grant" | "config_reload" | "freeze") {
            return None;
        }
        if let Some(approval) = &stored.approval_id {
            return Some(Key::Approval(approval.clone()));
        }
        // The signer's records carry the broker's call id (records written before they did
        // carry none and are found by serial in the call detail).
        if record.is_signer()
            && let Some(call) = &stored.call_id
        {
            return Some(Key::Call(call.clone()));
        }
        if record.is_signer() || matches!(record.kind(), "approval" | "waiver" | "credential") {
            return None;
        }
        if let Some(call) = &stored.call_id {
            return Some(Key::Call(call.clone()));
        }
        record.is_primary().then(|| Key::Record(stored.id.clone()))
    }

    fn id(&self) -> &str {
        match self {
            Key::Approval(id) | Key::Call(id) | Key::Record(id) => id,
        }
    }
}

/// One call's records, oldest first, with the row that places it in the timeline.
#[derive(Debug, Clone)]
struct Folded {
    key: Key,
    records: Vec<Rec>,
    /// The first record of the call as pages count it: an approval's first request, else its
    /// first primary record.
    anchor: i64,
}

impl Folded {
    fn new(key: Key, mut records: Vec<Rec>) -> Self {
        records.sort_by_key(Rec::row);
        records.dedup_by_key(|r| r.row());
        let anchor = records
            .iter()
            .find(|r| r.is_request())
            .or_else(|| records.iter().find(|r| r.is_primary()))
            .or(records.first())
            .map_or(i64::MAX, Rec::row);
        Folded {
            key,
            records,
            anchor,
        }
    }
}

/// Groups `records` into calls: by approval, by call id, one record each otherwise; a held
/// denial joins the approval whose request follows it. Returns the calls and the held denials
/// no request in `records` matched.
fn group(records: Vec<Rec>) -> (Vec<Folded>, Vec<Rec>) {
    let mut records = records;
    records.sort_by_key(Rec::row);
    records.dedup_by_key(|r| r.row());
    let mut groups: BTreeMap<Key, Vec<Rec>> = BTreeMap::new();
    let mut waiting: HashMap<(String, String, String, String), VecDeque<Rec>> = HashMap::new();
    for record in records {
        if record.is_held_denial()
            && let Some((p, t, tool, args)) = record.hold_signature()
        {
            waiting
                .entry((p, t, tool, args.to_string()))
                .or_default()
                .push_back(record);
            continue;
        }
        let Some(key) = Key::of(&record) else {
            continue;
        };
        if record.is_request()
            && let Some((p, t, tool, args)) = record.hold_signature()
            && let Some(denial) = waiting
                .get_mut(&(p, t, tool, args.to_string()))
                .and_then(VecDeque::pop_front)
        {
            groups.entry(key.clone()).or_default().push(denial);
        }
        groups.entry(key).or_default().push(record);
    }
    // A held call's refusal carries its call id, and so does the approval request the hold
    // wrote: that call is the approval's.
    let held: Vec<(Key, Key)> = groups
        .iter()
        .flat_map(|(key, records)| {
            records
                .iter()
                .filter(|r| r.is_request())
                .filter_map(|r| r.stored.call_id.clone())
                .map(move |call| (Key::Call(call), key.clone()))
        })
        .collect();
    for (call, approval) in held {
        if let Some(records) = groups.remove(&call) {
            groups.entry(approval).or_default().extend(records);
        }
    }
    // A call is what the broker or a human did: the signer's records alone (a dry run, a
    // bastion hop) are part of a call, never one.
    let folded = groups
        .into_iter()
        .filter(|(_, records)| records.iter().any(|r| r.is_primary() || r.is_request()))
        .map(|(key, records)| Folded::new(key, records))
        .collect();
    (folded, waiting.into_values().flatten().collect())
}

/// Every call id and approval id `records` name.
fn ids_of(records: &[Rec]) -> (Vec<String>, Vec<String>) {
    let mut calls = BTreeSet::new();
    let mut approvals = BTreeSet::new();
    for record in records {
        match Key::of(record) {
            Some(Key::Approval(id)) => {
                approvals.insert(id);
                // An approval request names the held call's id: its refusal is read with it.
                if let Some(call) = record.stored.call_id.clone() {
                    calls.insert(call);
                }
            }
            Some(Key::Call(id)) => {
                calls.insert(id);
            }
            _ => {}
        }
    }
    (calls.into_iter().collect(), approvals.into_iter().collect())
}

fn internal(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        err.to_string(),
    )
}

/// The approval request that a held denial turned into, if one follows it in the log.
async fn request_after(
    store: &dyn AuditStore,
    tenant: &str,
    denial: &Rec,
) -> Result<Option<Rec>, ApiError> {
    let Some(signature) = denial.hold_signature() else {
        return Ok(None);
    };
    let filter = Filter {
        tenant: Some(tenant.to_owned()),
        principal: Some(denial.stored.principal.clone()),
        kind: Some("approval".to_owned()),
        action: Some("request".to_owned()),
        ..Filter::default()
    };
    let next = store
        .query(
            &filter,
            Page::After {
                after: denial.row(),
                limit: 1,
            },
        )
        .await
        .map_err(internal)?;
    Ok(next
        .into_iter()
        .map(Rec::new)
        .find(|r| r.hold_signature().as_ref() == Some(&signature)))
}

/// The held denial an approval request came from, if the log has it just before the request.
async fn denial_before(
    store: &dyn AuditStore,
    tenant: &str,
    request: &Rec,
) -> Result<Option<Rec>, ApiError> {
    let Some(signature) = request.hold_signature() else {
        return Ok(None);
    };
    let filter = Filter {
        tenant: Some(tenant.to_owned()),
        principal: Some(signature.0.clone()),
        kind: Some("denial".to_owned()),
        outcome: Some("needs_approval".to_owned()),
        ..Filter::default()
    };
    let before = store
        .query(
            &filter,
            Page::Newest {
                before: Some(request.row()),
                limit: 1,
            },
        )
        .await
        .map_err(internal)?;
    Ok(before
        .into_iter()
        .map(Rec::new)
        .find(|r| r.is_held_denial() && r.hold_signature().as_ref() == Some(&signature)))
}

/// How [`fold_range`] completes the calls of the rows it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Links {
    /// Reads every record linked to them, wherever it is in the log (a page of the timeline:
    /// a call's later records may lie past the rows scanned).
    Read,
    /// The rows are every record from the oldest one on (the summary's window): a call anchored
    /// in them has all its records there already, since none precedes its anchor.
    InHand,
}

/// The calls whose anchor lies in rows `low..high` (`high` open when `None`), folded from
/// `batch` (the rows scanned), completed with every record linked to them as `links` says.
async fn fold_range(
    store: &dyn AuditStore,
    tenant: &str,
    batch: Vec<Record>,
    (low, high): (i64, Option<i64>),
    links: Links,
) -> Result<Vec<Folded>, ApiError> {
    let batch: Vec<Rec> = batch.into_iter().map(Rec::new).collect();
    let (calls, approvals) = ids_of(&batch);
    let mut records = batch;
    if links == Links::Read && (!calls.is_empty() || !approvals.is_empty()) {
        let linked = store
            .linked(tenant, &calls, &approvals, LINKED_MAX)
            .await
            .map_err(internal)?;
        records.extend(linked.into_iter().map(Rec::new));
    }
    let (mut folded, unmatched) = group(records);
    // A held denial whose request lies past the rows read belongs to that approval, shown
    // where its request is; one no request follows stands alone (a refusal with no governance
    // to hold it, as `meho ssh exec` gives).
    for (index, denial) in unmatched.into_iter().enumerate() {
        if !in_range(denial.row(), low, high) {
            continue;
        }
        if index < MAX_HOLD_LOOKUPS && request_after(store, tenant, &denial).await?.is_some() {
            continue;
        }
        folded.push(Folded::new(
            Key::Record(denial.stored.id.clone()),
            vec![denial],
        ));
    }
    folded.retain(|call| in_range(call.anchor, low, high));
    folded.sort_by_key(|call| std::cmp::Reverse(call.anchor));
    Ok(folded)
}

fn in_range(row: i64, low: i64, high: Option<i64>) -> bool {
    row >= low && high.is_none_or(|high| row < high)
}

// --- the view of one call ----------------------------------------------------------------------

/// The approval of a held call: who asked, who decided, when and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalStep {
    /// `apr-…`.
    pub id: String,
    /// `pending`, `approved`, `denied`, `expired` or `consumed`, as the log has it (a pending
    /// approval past its deadline is `expired`).
    #[schema(schema_with = approval_status)]
    pub status: String,
    /// Who asked (the agent).
    pub requested_by: Option<String>,
    /// RFC 3339.
    pub requested_at: Option<String>,
    /// RFC 3339: when the request lapses undecided.
    pub expires_at: Option<String>,
    /// Who approved or denied it.
    pub decided_by: Option<String>,
    /// RFC 3339.
    pub decided_at: Option<String>,
    /// Why, as the approver wrote it.
    pub reason: Option<String>,
    /// Whether the requester approved its own call (`allow_self_approval`).
    pub self_approved: Option<bool>,
    /// The waiver approve-and-learn minted, if any.
    pub waiver_id: Option<String>,
    /// RFC 3339: when the approved call was collected and run.
    pub consumed_at: Option<String>,
}

/// One call, folded from its records.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallView {
    /// The call's id in this API: the approval id for a held call, else the call id, else the
    /// id of its one record. `GET /api/v1/calls/{id}` takes any of them.
    pub id: String,
    /// Links the intent and the outcome.
    pub call_id: Option<String>,
    /// The approval, for a held call.
    pub approval_id: Option<String>,
    /// The SSH session, if any.
    pub session_id: Option<String>,
    /// Who made the call (the agent; for a held call, the requester).
    pub principal: String,
    /// The host (or other target).
    pub target: Option<String>,
    /// The tool, e.g. `ssh_execute`.
    pub tool: Option<String>,
    /// The exact command, when the call has one.
    pub command: Option<String>,
    /// What the call did in a few words: the command, `put /etc/motd`, `open exec session`, …
    pub summary: String,
    /// The rule that decided it.
    pub rule: Option<String>,
    /// The tier of what it does.
    #[schema(schema_with = nullable_tier)]
    pub tier: Option<String>,
    /// The decision's reason code (`allowed`, `allowlist_no_match`, `needs_approval`, `frozen`, …).
    pub reason_code: Option<String>,
    /// What became of it.
    #[schema(schema_with = decision)]
    pub decision: String,
    /// How it ran; `null` when nothing ran.
    #[schema(schema_with = nullable_outcome)]
    pub outcome: Option<String>,
    /// The exit status.
    pub exit_status: Option<i64>,
    /// Wall time of the run.
    pub duration_ms: Option<u64>,
    /// Why it failed or was refused.
    pub error: Option<String>,
    /// The serial of the certificate issued for it (decimal).
    pub serial: Option<String>,
    /// Bytes of output.
    pub output_bytes: Option<u64>,
    /// sha256 of the output.
    pub output_sha256: Option<String>,
    /// sha256 of the session recording.
    pub recording_sha256: Option<String>,
    /// The approval of a held call.
    pub approval: Option<ApprovalStep>,
    /// When the call was made (RFC 3339).
    pub started_at: String,
    /// The same, unix microseconds.
    pub ts: i64,
    /// When its latest record was written (RFC 3339).
    pub updated_at: String,
    /// The chain position of its first record.
    pub first_seq: i64,
    /// The chain position of its latest record.
    pub last_seq: i64,
    /// How many records it folds.
    pub records: usize,
}

fn text_of(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

fn summary_of(tool: Option<&str>, arguments: Option<&Value>, records: &[Rec]) -> String {
    let argument = |name: &str| arguments.and_then(|a| a.get(name)).and_then(Value::as_str);
    if let Some(command) = argument("command") {
        return command.to_owned();
    }
    match tool {
        Some("ssh_put_file") => format!("put {}", argument("path").unwrap_or("?")),
        Some("ssh_get_file") => format!("get {}", argument("path").unwrap_or("?")),
        Some("ssh_session_open") => format!("open {} session", argument("mode").unwrap_or("a")),
        Some("ssh_session_close") => {
            let reason = records
                .iter()
                .find_map(|r| r.text("/reason"))
                .unwrap_or("closed");
            format!("close session ({reason})")
        }
        Some("list_targets") => "list targets".to_owned(),
        Some("announce") => records
            .iter()
            .find_map(|r| r.text("/activity"))
            .map_or_else(|| "announce".to_owned(), |a| format!("announce: {a}")),
        Some(other) => other.to_owned(),
        None => String::new(),
    }
}

fn known_tier(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .filter(|t| TIERS.contains(t))
        .map(str::to_owned)
}

fn approval_step(id: &str, records: &[Rec], now_us: i64) -> ApprovalStep {
    let approvals: Vec<&Rec> = records.iter().filter(|r| r.kind() == "approval").collect();
    let request = approvals.iter().find(|r| r.is_request());
    let decided = approvals
        .iter()
        .rev()
        .find(|r| matches!(r.outcome(), Some("approved" | "denied")));
    let consumed = approvals
        .iter()
        .find(|r| r.action() == Some("consume") && r.outcome() == Some("consumed"));
    let expires_at = request
        .and_then(|r| r.text("/expires_at"))
        .map(str::to_owned);
    let mut status = approvals
        .iter()
        .rev()
        .find_map(|r| {
            r.outcome()
                .filter(|o| Status::ALL.iter().any(|s| s.as_str() == *o))
        })
        .unwrap_or("pending")
        .to_owned();
    let lapsed = expires_at
        .as_deref()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .is_some_and(|t| t.unix_timestamp_nanos() / 1000 <= i128::from(now_us));
    if status == "pending" && lapsed {
        status = "expired".to_owned();
    }
    ApprovalStep {
        id: id.to_owned(),
        status,
        requested_by: request.map(|r| {
            r.text("/requester")
                .unwrap_or(&r.stored.principal)
                .to_owned()
        }),
        requested_at: request.map(|r| rfc3339(r.stored.ts)),
        expires_at,
        decided_by: decided.map(|r| r.stored.principal.clone()),
        decided_at: decided.map(|r| rfc3339(r.stored.ts)),
        reason: decided.and_then(|r| r.text("/reason")).map(str::to_owned),
        self_approved: decided.and_then(|r| r.body.get("self_approved")?.as_bool()),
        waiver_id: decided
            .and_then(|r| r.text("/waiver_id"))
            .map(str::to_owned),
        consumed_at: consumed.map(|r| rfc3339(r.stored.ts)),
    }
}

/// The one view of a folded call.
fn view(call: &Folded, now_us: i64) -> CallView {
    let records = &call.records;
    let primary: Vec<&Rec> = records.iter().filter(|r| r.is_primary()).collect();
    let request = records.iter().find(|r| r.is_request());
    let intent = primary.iter().find(|r| r.kind() == "intent");
    let outcome = primary.iter().rev().find(|r| r.kind() == "outcome");
    let denial = primary.iter().rev().find(|r| r.kind() == "denial");
    let announce = primary.iter().find(|r| r.kind() == "announce");
    let signer_serial = records
        .iter()
        .filter(|r| r.is_signer())
        .find_map(|r| r.text("/certificate/serial"));

    let first = request.or(primary.first().copied()).or(records.first());
    let principal = request
        .and_then(|r| r.text("/requester"))
        .map(str::to_owned)
        .or_else(|| primary.first().map(|r| r.stored.principal.clone()))
        .or_else(|| first.map(|r| r.stored.principal.clone()))
        .unwrap_or_default();
    let target = records
        .iter()
        .filter(|r| !r.is_signer())
        .find_map(|r| r.stored.target.clone());
    let tool = request
        .and_then(|r| r.text("/tool"))
        .map(str::to_owned)
        .or_else(|| intent.and_then(|r| r.stored.action.clone()))
        .or_else(|| primary.first().and_then(|r| r.stored.action.clone()));
    let arguments = request
        .and_then(|r| r.body.get("arguments"))
        .or_else(|| intent.and_then(|r| r.body.get("arguments")))
        .or_else(|| denial.and_then(|r| r.body.get("arguments")));
    let command = arguments
        .and_then(|a| a.get("command"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let decided_by_policy = intent
        .or(denial)
        .and_then(|r| r.body.get("decision"))
        .filter(|d| d.is_object());
    let rule = text_of(decided_by_policy.and_then(|d| d.get("rule")))
        .or_else(|| request.and_then(|r| r.text("/rule")).map(str::to_owned));
    let tier = known_tier(decided_by_policy.and_then(|d| d.get("tier")))
        .or_else(|| known_tier(request.and_then(|r| r.body.get("tier"))))
        .or_else(|| known_tier(announce.and_then(|r| r.body.get("planned_tier"))));
    let reason_code = text_of(decided_by_policy.and_then(|d| d.get("reason_code")))
        .or_else(|| denial.and_then(|r| r.stored.outcome.clone()));

    let approval = match &call.key {
        Key::Approval(id) => Some(approval_step(id, records, now_us)),
        _ => None,
    };
    // A refusal after a human's approval (a freeze, a changed policy) is what happened to it.
    let refused_after_approval = denial.is_some_and(|d| d.stored.approval_id.is_some());
    let decision = match (&approval, denial, announce) {
        (Some(_), Some(_), _) if refused_after_approval => "denied",
        (Some(step), _, _) => match step.status.as_str() {
            "pending" => "held",
            "denied" => "rejected",
            "expired" => "expired",
            _ => "approved",
        },
        (None, Some(_), _) => "denied",
        (None, None, Some(_)) => "announced",
        (None, None, None) => "allowed",
    };
    let run = outcome.map(|o| o.outcome().unwrap_or("ok").to_owned());
    let outcome_word = match run {
        Some(word) if OUTCOMES.contains(&word.as_str()) => Some(word),
        Some(_) => Some("error".to_owned()),
        None if intent.is_some() => Some("running".to_owned()),
        None => None,
    };
    let number = |pointer: &str| outcome.and_then(|o| o.body.pointer(pointer));
    let last = records.last();
    let started = primary.first().copied().or(first);
    CallView {
        id: call.key.id().to_owned(),
        // The run's id (what links its intent and outcome); a held call that never ran keeps
        // the id of the call that was held.
        call_id: intent
            .or(outcome)
            .and_then(|r| r.stored.call_id.clone())
            .or_else(|| records.iter().find_map(|r| r.stored.call_id.clone())),
        approval_id: records.iter().find_map(|r| r.stored.approval_id.clone()),
        session_id: records.iter().find_map(|r| r.stored.session_id.clone()),
        principal,
        target,
        summary: summary_of(tool.as_deref(), arguments, records),
        tool,
        command,
        rule,
        tier,
        reason_code,
        decision: decision.to_owned(),
        outcome: outcome_word,
        exit_status: number("/exit_status").and_then(Value::as_i64),
        duration_ms: number("/duration_ms").and_then(Value::as_u64),
        // A held call's refusal only says it needs a human; the approval says the rest.
        error: outcome
            .and_then(|o| o.text("/error"))
            .or_else(|| denial.filter(|_| decision == "denied")?.text("/error"))
            .map(str::to_owned),
        serial: outcome
            .and_then(|o| o.text("/credential_serial"))
            .or(signer_serial)
            .map(str::to_owned),
        output_bytes: number("/output_bytes").and_then(Value::as_u64),
        output_sha256: outcome
            .and_then(|o| o.text("/output_sha256"))
            .map(str::to_owned),
        recording_sha256: outcome
            .and_then(|o| o.text("/recording_sha256"))
            .map(str::to_owned),
        approval,
        started_at: started.map_or_else(String::new, |r| rfc3339(r.stored.ts)),
        ts: started.map_or(0, |r| r.stored.ts),
        updated_at: last.map_or_else(String::new, |r| rfc3339(r.stored.ts)),
        first_seq: records.first().map_or(0, |r| r.stored.seq),
        last_seq: last.map_or(0, |r| r.stored.seq),
        records: records.len(),
    }
}

// --- GET /api/v1/activity ----------------------------------------------------------------------

/// `GET /api/v1/activity` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    /// Only calls of this agent (principal).
    pub agent: Option<String>,
    /// Only calls on this target.
    pub target: Option<String>,
    /// Only calls of this tier.
    #[param(schema_with = tier)]
    pub tier: Option<String>,
    /// Only calls with this decision.
    #[param(schema_with = decision)]
    pub decision: Option<String>,
    /// How many calls, newest first: 1–200, default 50.
    #[param(schema_with = activity_limit)]
    #[serde(default, deserialize_with = "integral::optional")]
    pub limit: Option<u32>,
    /// The cursor (`next_before` of the previous page).
    #[serde(default, deserialize_with = "integral::optional")]
    pub before: Option<i64>,
}

/// A page of calls.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityPage {
    /// Newest first (by the call's first record).
    pub calls: Vec<CallView>,
    /// Pass as `before` for the next page; `null` when the log has nothing older. A page can
    /// hold fewer calls than `limit` and still have a cursor: each request reads a bounded
    /// number of records.
    pub next_before: Option<i64>,
}

/// What a page keeps.
#[derive(Debug, Default)]
struct Wanted {
    agent: Option<String>,
    target: Option<String>,
    tier: Option<String>,
    decision: Option<String>,
}

impl Wanted {
    fn keeps(&self, call: &CallView) -> bool {
        self.agent.as_ref().is_none_or(|a| &call.principal == a)
            && self
                .target
                .as_ref()
                .is_none_or(|t| call.target.as_ref() == Some(t))
            && self
                .tier
                .as_ref()
                .is_none_or(|t| call.tier.as_ref() == Some(t))
            && self.decision.as_ref().is_none_or(|d| &call.decision == d)
    }
}

/// One page of `tenant`'s calls.
async fn page(
    store: &dyn AuditStore,
    tenant: &str,
    wanted: &Wanted,
    before: Option<i64>,
    limit: usize,
    now_us: i64,
) -> Result<ActivityPage, ApiError> {
    // The agent and target filters narrow the rows read (their indexes); the rest of a call's
    // records (an approver's decision) come in through its links.
    let filter = Filter {
        tenant: Some(tenant.to_owned()),
        principal: wanted.agent.clone(),
        target: wanted.target.clone(),
        ..Filter::default()
    };
    let mut calls: Vec<(i64, CallView)> = Vec::new();
    let mut cursor = before;
    let mut scanned = 0usize;
    let next_before = loop {
        let batch = store
            .query(
                &filter,
                Page::Newest {
                    before: cursor,
                    limit: BATCH_ROWS,
                },
            )
            .await
            .map_err(internal)?;
        let Some(low) = batch.last().map(|r| r.row) else {
            break None;
        };
        let full = batch.len() == BATCH_ROWS as usize;
        scanned += batch.len();
        for call in fold_range(store, tenant, batch, (low, cursor), Links::Read).await? {
            let shown = view(&call, now_us);
            if wanted.keeps(&shown) {
                calls.push((call.anchor, shown));
            }
        }
        if calls.len() >= limit {
            calls.truncate(limit);
            break calls.last().map(|(anchor, _)| *anchor);
        }
        if !full {
            break None;
        }
        if scanned >= MAX_SCAN_ROWS {
            break Some(low);
        }
        cursor = Some(low);
    };
    Ok(ActivityPage {
        calls: calls.into_iter().map(|(_, call)| call).collect(),
        next_before,
    })
}

fn one_of(name: &str, value: Option<String>, allowed: &[&str]) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::bad_request(format!(
            "`{v}` is not a {name}: one of {}",
            allowed.join(", ")
        ))),
        other => Ok(other),
    }
}

/// Calls folded from the audit log, newest first.
#[utoipa::path(get, path = "/api/v1/activity", tag = "activity", params(ActivityQuery),
    responses((status = 200, body = ActivityPage)))]
pub(crate) async fn list_activity(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Query(query): Query<ActivityQuery>,
) -> Result<Json<ActivityPage>, ApiError> {
    let limit = crate::api::limit(query.limit, ACTIVITY_LIMIT)?;
    let wanted = Wanted {
        agent: query.agent,
        target: query.target,
        tier: one_of("tier", query.tier, &TIERS)?,
        decision: one_of("decision", query.decision, &DECISIONS)?,
    };
    let store = state.context.audit().store().clone();
    let page = page(
        store.as_ref(),
        &actor.tenant,
        &wanted,
        query.before,
        limit as usize,
        meho_approvals::now_us(),
    )
    .await?;
    Ok(Json(page))
}

// --- GET /api/v1/calls/{id} --------------------------------------------------------------------

/// A record of a call, with how it is linked to the call.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkedRecord {
    /// The record.
    #[serde(flatten)]
    pub record: RecordView,
    /// `call_id`, `approval_id` or `record`: the record carries the call's id; `held_call`: the
    /// refusal an approval request held; `credential_serial`: the signer's certificate whose
    /// serial the outcome names; `signer_decision`: the signer's decision on the same command
    /// just before the broker's record.
    #[schema(schema_with = link)]
    pub linked_by: String,
}

/// One call and its records.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallDetail {
    /// The call.
    pub call: CallView,
    /// Its records in chain order.
    pub records: Vec<LinkedRecord>,
}

/// The signer's record of `primary`, found just before it: the certificate whose serial the call
/// names, or the signer's decision on the same command.
async fn signer_record(
    store: &dyn AuditStore,
    tenant: &str,
    primary: &Rec,
    serial: Option<&str>,
) -> Result<Option<(Rec, &'static str)>, ApiError> {
    let Some(target) = primary.stored.target.clone() else {
        return Ok(None);
    };
    let filter = Filter {
        tenant: Some(tenant.to_owned()),
        target: Some(target),
        action: Some("sign".to_owned()),
        until: Some(primary.stored.ts.saturating_add(1)),
        since: Some(primary.stored.ts.saturating_sub(MINUTE_US)),
        ..Filter::default()
    };
    let near = store
        .query(
            &filter,
            Page::Newest {
                before: Some(primary.row()),
                limit: 8,
            },
        )
        .await
        .map_err(internal)?;
    let agent = primary.stored.principal.as_str();
    let command = primary.text("/arguments/command");
    for candidate in near.into_iter().map(Rec::new) {
        if candidate
            .text("/intent/agent")
            .unwrap_or(&candidate.stored.principal)
            != agent
        {
            continue;
        }
        if let Some(serial) = serial
            && candidate.text("/certificate/serial") == Some(serial)
        {
            return Ok(Some((candidate, "credential_serial")));
        }
        let same_command = candidate.text("/intent/command") == command;
        let same_code = match primary.kind() {
            "denial" => {
                candidate.kind() == "denial"
                    && candidate.outcome() == primary.text("/decision/reason_code")
            }
            _ => candidate.outcome() == Some("dry_run"),
        };
        if same_command && same_code && command.is_some() {
            return Ok(Some((candidate, "signer_decision")));
        }
    }
    Ok(None)
}

/// The broker's record that follows a signer's `record`: the first intent or denial of the same
/// agent on the same target and command within a minute after it.
async fn primary_after(
    store: &dyn AuditStore,
    tenant: &str,
    signer: &Rec,
) -> Result<Option<Rec>, ApiError> {
    let Some(target) = signer.stored.target.clone() else {
        return Ok(None);
    };
    let agent = signer
        .text("/intent/agent")
        .unwrap_or(&signer.stored.principal)
        .to_owned();
    let filter = Filter {
        tenant: Some(tenant.to_owned()),
        principal: Some(agent),
        target: Some(target),
        since: Some(signer.stored.ts),
        until: Some(signer.stored.ts.saturating_add(MINUTE_US)),
        ..Filter::default()
    };
    let next = store
        .query(
            &filter,
            Page::After {
                after: signer.row(),
                limit: 8,
            },
        )
        .await
        .map_err(internal)?;
    let command = signer.text("/intent/command");
    Ok(next.into_iter().map(Rec::new).find(|r| {
        r.is_primary()
            && matches!(r.kind(), "intent" | "denial")
            && r.text("/arguments/command") == command
    }))
}

/// How `record` belongs to the call `key`.
fn link_of(key: &Key, record: &Rec) -> &'static str {
    match key {
        Key::Approval(id) if record.stored.approval_id.as_deref() == Some(id) => "approval_id",
        Key::Approval(_) if record.stored.call_id.is_some() => "call_id",
        Key::Approval(_) => "held_call",
        Key::Call(id) if record.stored.call_id.as_deref() == Some(id) => "call_id",
        Key::Call(_) | Key::Record(_) => "record",
    }
}

/// The call `id` (an approval id, a call id or a record id) of `tenant`.
async fn call_detail(
    store: &dyn AuditStore,
    tenant: &str,
    id: &str,
    now_us: i64,
) -> Result<Option<CallDetail>, ApiError> {
    let linked = |calls: Vec<String>, approvals: Vec<String>| async move {
        store
            .linked(tenant, &calls, &approvals, LINKED_MAX)
            .await
            .map(|records| records.into_iter().map(Rec::new).collect::<Vec<_>>())
            .map_err(internal)
    };
    let mut key = if id.starts_with("apr-") {
        Key::Approval(id.to_owned())
    } else {
        Key::Call(id.to_owned())
    };
    let mut records = match &key {
        Key::Approval(_) => {
            let records = linked(Vec::new(), vec![id.to_owned()]).await?;
            // The calls the approval's records name (the held call, the approved run): their
            // records without the approval id (the refusal, the signer's decisions) are the
            // approval's call too.
            let calls: Vec<String> = records
                .iter()
                .filter_map(|r| r.stored.call_id.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if calls.is_empty() {
                records
            } else {
                let mut all = linked(calls, vec![id.to_owned()]).await?;
                all.extend(records);
                all
            }
        }
        _ => linked(vec![id.to_owned()], Vec::new()).await?,
    };
    if records.is_empty() && !id.starts_with("apr-") {
        // A record id: the call it belongs to.
        let Some(record) = store
            .get(id)
            .await
            .map_err(internal)?
            .filter(|r| r.tenant == tenant)
            .map(Rec::new)
        else {
            return Ok(None);
        };
        if record.is_held_denial()
            && let Some(request) = request_after(store, tenant, &record).await?
            && let Some(approval) = request.stored.approval_id.clone()
        {
            return Box::pin(call_detail(store, tenant, &approval, now_us)).await;
        }
        if record.is_signer()
            && record.stored.approval_id.is_none()
            && let Some(primary) = primary_after(store, tenant, &record).await?
        {
            return Box::pin(call_detail(store, tenant, &primary.stored.id, now_us)).await;
        }
        match Key::of(&record) {
            Some(Key::Record(_)) => {
                key = Key::Record(id.to_owned());
                records = vec![record];
            }
            Some(other) => return Box::pin(call_detail(store, tenant, other.id(), now_us)).await,
            None => return Ok(None),
        }
    }
    // A call id of an approved run: the approval is the call.
    if let Key::Call(_) = key
        && let Some(approval) = records.iter().find_map(|r| r.stored.approval_id.clone())
    {
        return Box::pin(call_detail(store, tenant, &approval, now_us)).await;
    }
    if records.is_empty() {
        return Ok(None);
    }
    records.sort_by_key(Rec::row);
    records.dedup_by_key(|r| r.row());
    let mut links: BTreeMap<i64, &'static str> = BTreeMap::new();
    // The held call: by the call id its request names; a request written before requests named
    // one is matched to the refusal just before it.
    let request = records.iter().find(|r| r.is_request()).cloned();
    let held = request.as_ref().and_then(|r| r.stored.call_id.clone());
    if let Some(request) = request.filter(|r| r.stored.call_id.is_none())
        && let Some(denial) = denial_before(store, tenant, &request).await?
    {
        links.insert(denial.row(), "held_call");
        records.push(denial);
    }
    for record in &records {
        if record.stored.approval_id.is_none() && held.is_some() && record.stored.call_id == held {
            links.insert(record.row(), "held_call");
        }
    }
    let serial = records
        .iter()
        .filter(|r| r.kind() == "outcome")
        .find_map(|r| r.text("/credential_serial"))
        .map(str::to_owned);
    let primaries: Vec<Rec> = records
        .iter()
        .filter(|r| r.is_primary() && matches!(r.kind(), "intent" | "denial"))
        .cloned()
        .collect();
    for primary in &primaries {
        // The signer's records name the call id (read above); older ones are looked for.
        let named = primary.stored.call_id.as_ref().is_some_and(|call| {
            records
                .iter()
                .any(|r| r.is_signer() && r.stored.call_id.as_ref() == Some(call))
        });
        if named {
            continue;
        }
        let found = signer_record(store, tenant, primary, serial.as_deref()).await?;
        if let Some((signer, how)) = found
            && !records.iter().any(|r| r.row() == signer.row())
        {
            links.insert(signer.row(), how);
            records.push(signer);
        }
    }
    let call = Folded::new(key.clone(), records);
    let shown = view(&call, now_us);
    let records = call
        .records
        .into_iter()
        .map(|r| {
            let how = links
                .get(&r.row())
                .copied()
                .unwrap_or_else(|| link_of(&key, &r));
            LinkedRecord {
                record: record_view(r.stored),
                linked_by: how.to_owned(),
            }
        })
        .collect();
    Ok(Some(CallDetail {
        call: shown,
        records,
    }))
}

/// One call with its records in chain order. `id` is an approval id (`apr-…`), a call id, or the
/// id of any record of the call.
#[utoipa::path(get, path = "/api/v1/calls/{id}", tag = "activity",
    params(("id" = String, Path, description = "an approval id, a call id, or the id of one of the call's records")),
    responses((status = 200, body = CallDetail),
        (status = 404, description = "no such call in your tenant", body = ErrorBody)))]
pub(crate) async fn get_call(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
    Path(id): Path<String>,
) -> Result<Json<CallDetail>, ApiError> {
    let store = state.context.audit().store().clone();
    call_detail(store.as_ref(), &actor.tenant, &id, meho_approvals::now_us())
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no call `{id}` in your tenant"),
            )
        })
}

// --- GET /api/v1/activity/summary --------------------------------------------------------------

/// Calls per decision.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct DecisionCounts {
    /// Allowed by policy.
    pub allowed: u32,
    /// Refused by policy, a freeze or a check.
    pub denied: u32,
    /// Waiting for a human.
    pub held: u32,
    /// Approved by a human.
    pub approved: u32,
    /// Denied by a human.
    pub rejected: u32,
    /// Nobody decided in time.
    pub expired: u32,
    /// Announcements.
    pub announced: u32,
}

impl DecisionCounts {
    fn add(&mut self, decision: &str) {
        let slot = match decision {
            "allowed" => &mut self.allowed,
            "denied" => &mut self.denied,
            "held" => &mut self.held,
            "approved" => &mut self.approved,
            "rejected" => &mut self.rejected,
            "expired" => &mut self.expired,
            _ => &mut self.announced,
        };
        *slot = slot.saturating_add(1);
    }
}

/// Calls per tier.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct TierCounts {
    /// Read.
    pub read: u32,
    /// Write.
    pub write: u32,
    /// Destructive.
    pub destructive: u32,
    /// No tier recorded (listings, refusals before a decision).
    pub unknown: u32,
}

impl TierCounts {
    fn add(&mut self, tier: Option<&str>) {
        let slot = match tier {
            Some("read") => &mut self.read,
            Some("write") => &mut self.write,
            Some("destructive") => &mut self.destructive,
            _ => &mut self.unknown,
        };
        *slot = slot.saturating_add(1);
    }
}

/// The calls made in one minute.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Bucket {
    /// The minute's start (RFC 3339, UTC).
    pub start: String,
    /// Calls made in it.
    pub total: u32,
    /// By decision.
    pub by_decision: DecisionCounts,
    /// By tier.
    pub by_tier: TierCounts,
}

/// The counters of the activity page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Counters {
    /// Approvals waiting for a decision (counted up to 1000).
    pub pending_approvals: u32,
    /// Calls denied by policy or a freeze, or rejected by a human, in the last hour.
    pub denials_last_hour: u32,
    /// Freezes in force (counted up to 1000).
    pub active_freezes: u32,
    /// SSH sessions opened in the last 24 hours with no closing record in the log.
    pub sessions_open: u32,
}

/// `GET /api/v1/activity/summary`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    /// RFC 3339.
    pub generated_at: String,
    /// The counters.
    pub counters: Counters,
    /// 60 one-minute buckets, oldest first; the last is the current minute.
    pub buckets: Vec<Bucket>,
    /// Whether the hour held more than 20000 records, of which the newest were counted.
    pub truncated: bool,
}

/// The records matching `filter` written at or after `since`, newest first, at most `cap`; and
/// whether the cap cut them short.
///
/// The time bound is not given to the store: a `since` filter makes SQLite range-scan the
/// `(tenant, ts)` index and sort every record of the range before the limit applies, so the cost
/// grows with the whole window. Walking the filter's own `row` index newest first in batches, and
/// stopping at the first record older than `since`, reads only what is returned (a tenant's
/// records are appended in time order).
async fn newest_since(
    store: &dyn AuditStore,
    filter: &Filter,
    since: i64,
    cap: u32,
) -> Result<(Vec<Record>, bool), ApiError> {
    let cap = cap as usize;
    let mut kept: Vec<Record> = Vec::new();
    let mut before = None;
    loop {
        let want = u32::try_from(cap - kept.len())
            .unwrap_or(u32::MAX)
            .min(BATCH_ROWS * 4);
        let batch = store
            .query(
                filter,
                Page::Newest {
                    before,
                    limit: want,
                },
            )
            .await
            .map_err(internal)?;
        let full = batch.len() == want as usize;
        before = batch.last().map(|r| r.row);
        let mut older = false;
        for record in batch {
            if record.ts < since {
                older = true;
                break;
            }
            kept.push(record);
        }
        if older || !full {
            return Ok((kept, false));
        }
        if kept.len() >= cap {
            return Ok((kept, true));
        }
    }
}

/// Sessions opened in the last 24 hours (an `ok` outcome of `ssh_session_open`) whose closing
/// record (`ssh_session_close`: closed, reaped, frozen, shut down) is not in the log.
async fn sessions_open(store: &dyn AuditStore, tenant: &str, now_us: i64) -> Result<u32, ApiError> {
    let since = now_us.saturating_sub(SESSION_HORIZON_US);
    let read = |action: &str, outcome: Option<&str>| Filter {
        tenant: Some(tenant.to_owned()),
        kind: Some("outcome".to_owned()),
        action: Some(action.to_owned()),
        outcome: outcome.map(str::to_owned),
        ..Filter::default()
    };
    let (opened, _) = newest_since(
        store,
        &read("ssh_session_open", Some("ok")),
        since,
        LINKED_MAX,
    )
    .await?;
    let (closed, _) =
        newest_since(store, &read("ssh_session_close", None), since, LINKED_MAX).await?;
    let closed: BTreeSet<String> = closed.into_iter().filter_map(|r| r.session_id).collect();
    let open: BTreeSet<String> = opened
        .into_iter()
        .filter_map(|r| r.session_id)
        .filter(|s| !closed.contains(s))
        .collect();
    Ok(u32::try_from(open.len()).unwrap_or(u32::MAX))
}

/// The counters and the last hour's calls per minute.
async fn summary(state: &McpState, tenant: &str, now_us: i64) -> Result<Summary, ApiError> {
    let store = state.context.audit().store().clone();
    let store = store.as_ref();
    let end = (now_us.div_euclid(MINUTE_US) + 1) * MINUTE_US;
    let start = end - MINUTES * MINUTE_US;
    let (records, truncated) = newest_since(
        store,
        &Filter {
            tenant: Some(tenant.to_owned()),
            ..Filter::default()
        },
        start,
        SUMMARY_MAX_RECORDS,
    )
    .await?;
    let low = records.last().map_or(i64::MAX, |r| r.row);
    let mut buckets: Vec<Bucket> = (0..MINUTES)
        .map(|i| Bucket {
            start: rfc3339(start + i * MINUTE_US),
            total: 0,
            by_decision: DecisionCounts::default(),
            by_tier: TierCounts::default(),
        })
        .collect();
    let mut denials = 0u32;
    let hour_ago = now_us.saturating_sub(3600 * 1_000_000);
    // Every record from `low` on is in hand: a call anchored there needs no linked read. (A call
    // held before the window and run in it counts from its first record in the window.)
    for call in fold_range(store, tenant, records, (low, None), Links::InHand).await? {
        let shown = view(&call, now_us);
        if shown.ts < start {
            continue;
        }
        let index = usize::try_from((shown.ts - start) / MINUTE_US).unwrap_or(usize::MAX);
        if let Some(bucket) = buckets.get_mut(index) {
            bucket.total = bucket.total.saturating_add(1);
            bucket.by_decision.add(&shown.decision);
            bucket.by_tier.add(shown.tier.as_deref());
        }
        if shown.ts >= hour_ago && matches!(shown.decision.as_str(), "denied" | "rejected") {
            denials = denials.saturating_add(1);
        }
    }
    let governance = &state.context.governance();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let pending = governance
        .approvals
        .list(tenant, Some(Status::Pending), COUNTER_CAP)
        .await?
        .len();
    let freezes = governance
        .freezes
        .list(tenant, false, COUNTER_CAP)
        .await?
        .len();
    Ok(Summary {
        generated_at: rfc3339(now_us),
        counters: Counters {
            pending_approvals: count(pending),
            denials_last_hour: denials,
            active_freezes: count(freezes),
            sessions_open: sessions_open(store, tenant, now_us).await?,
        },
        buckets,
        truncated,
    })
}

/// Counters (pending approvals, denials in the last hour, active freezes, open sessions) and the
/// last hour's calls per minute by decision and by tier.
#[utoipa::path(get, path = "/api/v1/activity/summary", tag = "activity",
    responses((status = 200, body = Summary)))]
pub(crate) async fn activity_summary(
    State(state): State<Arc<McpState>>,
    Acting(actor): Acting,
) -> Result<Json<Summary>, ApiError> {
    summary(&state, &actor.tenant, meho_approvals::now_us())
        .await
        .map(Json)
}

// --- schemas -----------------------------------------------------------------------------------

fn enumeration(names: &[&str], nullable: bool) -> Object {
    let kind = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::from(Type::String)
    };
    let mut values: Vec<Value> = names.iter().map(|n| Value::from(*n)).collect();
    if nullable {
        values.push(Value::Null);
    }
    ObjectBuilder::new()
        .schema_type(kind)
        .enum_values(Some(values))
        .build()
}

fn tier() -> Object {
    enumeration(&TIERS, false)
}

fn nullable_tier() -> Object {
    enumeration(&TIERS, true)
}

fn decision() -> Object {
    enumeration(&DECISIONS, false)
}

fn nullable_outcome() -> Object {
    enumeration(&OUTCOMES, true)
}

fn link() -> Object {
    enumeration(&LINKS, false)
}

fn approval_status() -> Object {
    enumeration(&Status::ALL.map(Status::as_str), false)
}

fn activity_limit() -> Object {
    crate::api::limit_schema(ACTIVITY_LIMIT)
}
