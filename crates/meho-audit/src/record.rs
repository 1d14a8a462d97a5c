//! What an audit record is, and its canonical bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use meho_core::Decision;

/// The version of the canonical encoding, part of every record's canonical bytes.
pub const CANONICAL_VERSION: u64 = 1;

/// The `prev_hash` of a tenant's first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened. The serialized names are stored and printed; they are a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// Written before a governed call runs: who, what, the decision.
    Intent,
    /// Written after a governed call ran: exit status or error, sizes, hashes.
    Outcome,
    /// A call refused by policy (no intent follows).
    Denial,
    /// An approval changed state.
    Approval,
    /// A runtime grant was created, revoked or expired.
    Grant,
    /// An approve-and-learn waiver was minted or revoked.
    Waiver,
    /// The configuration was (re)loaded.
    ConfigReload,
    /// A principal, session or credential was frozen or unfrozen.
    Freeze,
    /// An agent announced what it is about to do.
    Announce,
    /// The signer issued a credential (an SSH certificate), or answered a dry run.
    Credential,
}

impl RecordKind {
    /// Every kind, in a stable order.
    pub const ALL: [RecordKind; 10] = [
        RecordKind::Intent,
        RecordKind::Outcome,
        RecordKind::Denial,
        RecordKind::Approval,
        RecordKind::Grant,
        RecordKind::Waiver,
        RecordKind::ConfigReload,
        RecordKind::Freeze,
        RecordKind::Announce,
        RecordKind::Credential,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Intent => "intent",
            RecordKind::Outcome => "outcome",
            RecordKind::Denial => "denial",
            RecordKind::Approval => "approval",
            RecordKind::Grant => "grant",
            RecordKind::Waiver => "waiver",
            RecordKind::ConfigReload => "config_reload",
            RecordKind::Freeze => "freeze",
            RecordKind::Announce => "announce",
            RecordKind::Credential => "credential",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown record kind `{s}`"))
    }
}

/// A record as a caller submits it. The audit log assigns id, sequence, time and hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRecord {
    /// The tenant whose chain the record joins.
    pub tenant: String,
    /// What happened.
    pub kind: RecordKind,
    /// Who: the authenticated principal (user or agent).
    pub principal: String,
    /// The target (host, cluster, API) the record is about.
    pub target: Option<String>,
    /// The action, e.g. `ssh_execute` or `approve`.
    pub action: Option<String>,
    /// A short outcome word: `allowed`, `denied`, `ok`, `error`, `approved`, …
    pub outcome: Option<String>,
    /// The MCP or SSH session, if any.
    pub session_id: Option<String>,
    /// The approval the record belongs to, if any.
    pub approval_id: Option<String>,
    /// Links an intent to its outcome.
    pub call_id: Option<String>,
    /// Everything else, as JSON. Redacted before it is stored.
    pub body: Value,
}

impl NewRecord {
    /// A record with only the required fields; fill the rest with struct update syntax.
    pub fn new(tenant: impl Into<String>, kind: RecordKind, principal: impl Into<String>) -> Self {
        NewRecord {
            tenant: tenant.into(),
            kind,
            principal: principal.into(),
            target: None,
            action: None,
            outcome: None,
            session_id: None,
            approval_id: None,
            call_id: None,
            body: Value::Object(Default::default()),
        }
    }

    /// The intent record of a governed call: written, durably, before the call may run.
    pub fn intent(call: &CallRef<'_>, arguments: Value, decision: &Decision) -> Self {
        Self::decided(RecordKind::Intent, call, arguments, decision)
    }

    /// The record of a call refused by policy (or invalid): the same shape as an intent, but
    /// nothing runs after it.
    pub fn denial(call: &CallRef<'_>, arguments: Value, decision: &Decision) -> Self {
        Self::decided(RecordKind::Denial, call, arguments, decision)
    }

    fn decided(
        kind: RecordKind,
        call: &CallRef<'_>,
        arguments: Value,
        decision: &Decision,
    ) -> Self {
        NewRecord {
            target: Some(call.target.to_owned()),
            action: Some(call.action.to_owned()),
            outcome: Some(decision.reason_code.as_str().to_owned()),
            session_id: call.session_id.map(str::to_owned),
            approval_id: call.approval_id.map(str::to_owned),
            call_id: Some(call.call_id.to_owned()),
            body: json!({
                "arguments": arguments,
                "decision": {
                    "allowed": decision.may_run(),
                    "require_approval": decision.json_require_approval(),
                    "rule": decision.rule,
                    "reason_code": decision.reason_code,
                    "tier": decision.tier,
                    "warnings": decision.warnings,
                },
            }),
            ..NewRecord::new(call.tenant, kind, call.principal)
        }
    }

    /// The outcome record of a governed call, written after it ran.
    pub fn outcome(call: &CallRef<'_>, outcome: &CallOutcome) -> Self {
        let word = match (&outcome.error, outcome.exit_status) {
            (Some(_), _) => "error",
            (None, Some(0)) | (None, None) => "ok",
            (None, Some(_)) => "nonzero_exit",
        };
        NewRecord {
            target: Some(call.target.to_owned()),
            action: Some(call.action.to_owned()),
            outcome: Some(word.to_owned()),
            session_id: call.session_id.map(str::to_owned),
            approval_id: call.approval_id.map(str::to_owned),
            call_id: Some(call.call_id.to_owned()),
            body: json!({
                "exit_status": outcome.exit_status,
                "error": outcome.error,
                "duration_ms": outcome.duration_ms,
                "credential_serial": outcome.credential_serial,
                "output_bytes": outcome.output_bytes,
                "output_sha256": outcome.output_sha256,
                "recording_sha256": outcome.recording_sha256,
            }),
            ..NewRecord::new(call.tenant, RecordKind::Outcome, call.principal)
        }
    }
}

/// Identifies one governed call, shared by its intent and outcome records.
#[derive(Debug, Clone, Copy)]
pub struct CallRef<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// Who made the call.
    pub principal: &'a str,
    /// The target.
    pub target: &'a str,
    /// The tool or action.
    pub action: &'a str,
    /// A unique id linking intent and outcome.
    pub call_id: &'a str,
    /// The session, if any.
    pub session_id: Option<&'a str>,
    /// The approval, if the call was approved.
    pub approval_id: Option<&'a str>,
}

/// What a call produced, for its outcome record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallOutcome {
    /// The exit status, when the call ran to completion.
    pub exit_status: Option<i64>,
    /// The error, when it did not.
    pub error: Option<String>,
    /// Wall time of the call.
    pub duration_ms: u64,
    /// Serial of the credential minted for the call, as a string: an SSH certificate's serial in
    /// decimal (a u64 does not fit in a JSON number every verifier reads exactly), a Kubernetes
    /// token's `jti`.
    pub credential_serial: Option<String>,
    /// Bytes of output produced.
    pub output_bytes: u64,
    /// sha256 of the output, lowercase hex.
    pub output_sha256: Option<String>,
    /// sha256 of the session recording, if one was made.
    pub recording_sha256: Option<String>,
}

/// An audit record as the log holds it: a [`NewRecord`] (redacted) plus what the log assigned
/// (id, place in the chain, time, hashes) and the store's row number. This is the one definition
/// of a record; the REST API, the live feed and `meho audit` show views of it.
///
/// Every field is the stored text, so a tampered row still hashes (and fails verification)
/// rather than failing to parse: `kind` is the kind's stored name, `body` the RFC 8785 JSON
/// written at append time. As JSON (serde) a record is its fields with `body` as the JSON it
/// holds (a body that is not JSON, which only an edited row has, as the string it is) and
/// without `row`, which is the store's cursor and not part of the record; reading that JSON back
/// stores the body in its canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Record {
    /// Row number in the store (insertion order): the keyset-pagination cursor. Not part of the
    /// chain, nor of the record's JSON (0 in a record read from JSON).
    #[serde(skip)]
    #[sqlx(rename = "row_id")]
    pub row: i64,
    /// Record id.
    pub id: String,
    /// Position in the tenant's chain.
    pub seq: i64,
    /// The tenant.
    pub tenant: String,
    /// Unix microseconds.
    pub ts: i64,
    /// What happened.
    pub kind: String,
    /// Who.
    pub principal: String,
    /// The target.
    pub target: Option<String>,
    /// The action.
    pub action: Option<String>,
    /// The outcome word.
    pub outcome: Option<String>,
    /// The session.
    pub session_id: Option<String>,
    /// The approval.
    pub approval_id: Option<String>,
    /// Links an intent to its outcome.
    pub call_id: Option<String>,
    /// Everything else (redacted before it was stored).
    #[serde(with = "body_json")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub body: String,
    /// The previous record's hash.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

/// The name a store's readers knew [`Record`] by; the same type.
pub type StoredRecord = Record;

impl Record {
    /// The canonical bytes of the record: RFC 8785 (JCS) JSON of an object holding exactly
    /// `v`, `id`, `tenant`, `seq`, `ts`, `kind`, `principal`, `target`, `action`, `outcome`,
    /// `session_id`, `approval_id`, `call_id` and `body`, with absent values as `null`.
    /// `row`, `prev_hash` and `hash` are not part of it. See `docs/audit.md`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        self.fields().canonical_bytes()
    }

    pub(crate) fn fields(&self) -> RecordFields<'_> {
        RecordFields {
            id: &self.id,
            tenant: &self.tenant,
            seq: self.seq,
            ts: self.ts,
            kind: &self.kind,
            principal: &self.principal,
            target: self.target.as_deref(),
            action: self.action.as_deref(),
            outcome: self.outcome.as_deref(),
            session_id: self.session_id.as_deref(),
            approval_id: self.approval_id.as_deref(),
            call_id: self.call_id.as_deref(),
            body_json: &self.body,
        }
    }

    /// The record as it was submitted (after redaction): its kind and body parsed.
    pub fn submitted(&self) -> Result<NewRecord, crate::AuditError> {
        let corrupt = |message: String| crate::AuditError::Corrupt {
            id: self.id.clone(),
            message,
        };
        Ok(NewRecord {
            tenant: self.tenant.clone(),
            kind: self.kind.parse().map_err(corrupt)?,
            principal: self.principal.clone(),
            target: self.target.clone(),
            action: self.action.clone(),
            outcome: self.outcome.clone(),
            session_id: self.session_id.clone(),
            approval_id: self.approval_id.clone(),
            call_id: self.call_id.clone(),
            body: serde_json::from_str(&self.body)
                .map_err(|err| corrupt(format!("body is not JSON: {err}")))?,
        })
    }
}

/// `Record::body` in JSON: the JSON value the stored text holds, and back to canonical text.
mod body_json {
    use serde::{Deserialize as _, Deserializer, Serialize as _, Serializer};
    use serde_json::Value;

    pub(super) fn serialize<S: Serializer>(body: &str, serializer: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<Value>(body) {
            Ok(value) => value.serialize(serializer),
            // Only an edited row holds a body that is not JSON: show what it holds.
            Err(_) => serializer.serialize_str(body),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<String, D::Error> {
        let value = Value::deserialize(deserializer)?;
        String::from_utf8(super::canonical_bytes(&value)).map_err(serde::de::Error::custom)
    }
}

/// The chained fields of a record, borrowed, with the body as its stored canonical JSON text: what
/// the hash covers. Verification reads rows into it without allocating.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordFields<'a> {
    pub(crate) id: &'a str,
    pub(crate) tenant: &'a str,
    pub(crate) seq: i64,
    pub(crate) ts: i64,
    pub(crate) kind: &'a str,
    pub(crate) principal: &'a str,
    pub(crate) target: Option<&'a str>,
    pub(crate) action: Option<&'a str>,
    pub(crate) outcome: Option<&'a str>,
    pub(crate) session_id: Option<&'a str>,
    pub(crate) approval_id: Option<&'a str>,
    pub(crate) call_id: Option<&'a str>,
    /// The body exactly as stored: RFC 8785 JSON written at append time.
    pub(crate) body_json: &'a str,
}

impl RecordFields<'_> {
    /// Writes the JCS object directly, keys in their RFC 8785 order. Equivalent to canonicalizing
    /// the `json!` object (a test checks it against `serde_json_canonicalizer`), but without
    /// building a `Value`, which keeps `audit verify` above a million records a second. The
    /// stored body text is spliced in as it is: it was canonical when hashed, so any change to it
    /// changes the hash.
    pub(crate) fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body_json.len());
        self.write_canonical(&mut out);
        out
    }

    /// Appends the canonical bytes to `out` (verification reuses one buffer for every record).
    pub(crate) fn write_canonical(&self, out: &mut Vec<u8>) {
        let mut first = true;
        let mut key = |out: &mut Vec<u8>, name: &str| {
            out.push(if first { b'{' } else { b',' });
            first = false;
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
        };
        key(out, "action");
        push_opt_str(out, self.action);
        key(out, "approval_id");
        push_opt_str(out, self.approval_id);
        key(out, "body");
        out.extend_from_slice(self.body_json.as_bytes());
        key(out, "call_id");
        push_opt_str(out, self.call_id);
        key(out, "id");
        push_str(out, self.id);
        key(out, "kind");
        push_str(out, self.kind);
        key(out, "outcome");
        push_opt_str(out, self.outcome);
        key(out, "principal");
        push_str(out, self.principal);
        key(out, "seq");
        push_int(out, self.seq);
        key(out, "session_id");
        push_opt_str(out, self.session_id);
        key(out, "target");
        push_opt_str(out, self.target);
        key(out, "tenant");
        push_str(out, self.tenant);
        key(out, "ts");
        push_int(out, self.ts);
        key(out, "v");
        push_int(out, CANONICAL_VERSION as i64);
        out.push(b'}');
    }
}

/// A JSON string as RFC 8785 writes it. serde_json's string escaping is exactly JCS's: `"` and
/// `\` escaped, control characters as `\b \t \n \f \r` or lowercase `\u00xx`, all else raw UTF-8.
fn push_str(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn push_int(out: &mut Vec<u8>, value: i64) {
    use std::io::Write as _;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{value}");
}

fn push_opt_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => push_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// RFC 8785 JSON of `value`.
pub fn canonical_bytes(value: &Value) -> Vec<u8> {
    // `Value` always serializes; the canonicalizer fails only on non-finite floats, which a
    // `Value` cannot hold.
    serde_json_canonicalizer::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9 _.:/-]{0,12}",
            "\\PC{0,8}",
            prop::collection::vec(any::<char>(), 0..8).prop_map(|v| v.into_iter().collect()),
        ]
    }

    /// A record's JSON is its fields with the body as the JSON it holds and without `row`;
    /// read back, the body is stored canonical again. An edited body that is not JSON shows as
    /// the text it is.
    #[test]
    fn record_json_holds_the_body_as_json_and_leaves_out_the_row() {
        let record = Record {
            row: 42,
            id: "r1".into(),
            seq: 3,
            tenant: "acme".into(),
            ts: 1_700_000_000_000_000,
            kind: "intent".into(),
            principal: "alice".into(),
            target: Some("web-1".into()),
            action: None,
            outcome: Some("allowed".into()),
            session_id: None,
            approval_id: None,
            call_id: Some("c1".into()),
            body: r#"{"a":[1,2.5,null],"b":"ü"}"#.into(),
            prev_hash: GENESIS_HASH.into(),
            hash: "ab".into(),
        };
        let value = serde_json::to_value(&record).unwrap();
        assert_eq!(
            value,
            json!({
                "id": "r1", "seq": 3, "tenant": "acme", "ts": 1_700_000_000_000_000_i64,
                "kind": "intent", "principal": "alice", "target": "web-1", "action": null,
                "outcome": "allowed", "session_id": null, "approval_id": null, "call_id": "c1",
                "body": { "b": "ü", "a": [1, 2.5, null] }, "prev_hash": GENESIS_HASH, "hash": "ab",
            })
        );
        let back: Record = serde_json::from_value(value).unwrap();
        assert_eq!(
            back,
            Record {
                row: 0,
                ..record.clone()
            }
        );
        let edited = Record {
            body: "{not json".into(),
            ..record
        };
        assert_eq!(serde_json::to_value(&edited).unwrap()["body"], "{not json");
        assert!(edited.submitted().is_err());
    }

    /// An intent or denial record carries the decision as `allowed` and `require_approval`
    /// booleans: these canonical bodies were captured when the decision still held exactly those
    /// two fields, including a refusal by the allowlist after an approval rule matched
    /// (`allowed: false, require_approval: true`).
    #[test]
    fn decided_records_carry_the_decision_booleans_unchanged() {
        let call = CallRef {
            tenant: "acme",
            principal: "alice",
            target: "web-1",
            action: "ssh_execute",
            call_id: "c1",
            session_id: None,
            approval_id: None,
        };
        let decided = |allowed: bool, require_approval: bool, code, rule: &str| Decision {
            effect: match (allowed, require_approval) {
                (true, false) => meho_core::Effect::Allow,
                (true, true) => meho_core::Effect::RequireApproval,
                (false, _) => meho_core::Effect::Deny,
            },
            approval_rule_matched: !allowed && require_approval,
            warnings: vec!["w".into()],
            ..Decision::refused(code, rule, meho_core::Tier::Write)
        };
        use meho_core::ReasonCode as C;
        let cases = [
            (
                NewRecord::intent(
                    &call,
                    json!({"command": "ls"}),
                    &decided(true, false, C::Allowed, "allow:^ls"),
                ),
                r#"{"arguments":{"command":"ls"},"decision":{"allowed":true,"reason_code":"allowed","require_approval":false,"rule":"allow:^ls","tier":"write","warnings":["w"]}}"#,
            ),
            (
                NewRecord::denial(
                    &call,
                    json!({}),
                    &decided(true, true, C::NeedsApproval, "require_approval:^ls"),
                ),
                r#"{"arguments":{},"decision":{"allowed":true,"reason_code":"needs_approval","require_approval":true,"rule":"require_approval:^ls","tier":"write","warnings":["w"]}}"#,
            ),
            (
                NewRecord::denial(
                    &call,
                    json!({}),
                    &decided(false, false, C::CommandDenied, "deny:^rm"),
                ),
                r#"{"arguments":{},"decision":{"allowed":false,"reason_code":"command_denied","require_approval":false,"rule":"deny:^rm","tier":"write","warnings":["w"]}}"#,
            ),
            (
                NewRecord::denial(
                    &call,
                    json!({}),
                    &decided(false, true, C::AllowlistNoMatch, "allowlist:no-match"),
                ),
                r#"{"arguments":{},"decision":{"allowed":false,"reason_code":"allowlist_no_match","require_approval":true,"rule":"allowlist:no-match","tier":"write","warnings":["w"]}}"#,
            ),
        ];
        for (record, body) in cases {
            assert_eq!(
                String::from_utf8(canonical_bytes(&record.body)).unwrap(),
                body
            );
        }
    }

    proptest! {
        /// The hand-written JCS writer produces exactly what a general RFC 8785 canonicalizer
        /// produces for the same object, for any field content.
        #[test]
        fn record_canonical_bytes_are_rfc8785(
            id in text(), tenant in text(), principal in text(),
            target in prop::option::of(text()), action in prop::option::of(text()),
            outcome in prop::option::of(text()), session in prop::option::of(text()),
            seq in 0i64..(1 << 53), ts in 0i64..(1 << 53),
            key in text(), value in text(), number in any::<i32>(), float in -1e9f64..1e9,
        ) {
            let body = json!({ key: value, "n": number, "f": float, "list": [1, "two", null] });
            let record = Record {
                row: 7,
                id, tenant, seq, ts,
                kind: RecordKind::Intent.as_str().to_owned(),
                principal, target, action, outcome,
                session_id: session,
                approval_id: None,
                call_id: Some("c".into()),
                body: String::from_utf8(canonical_bytes(&body)).unwrap(),
                prev_hash: GENESIS_HASH.into(),
                hash: String::new(),
            };
            let expected = serde_json_canonicalizer::to_vec(&json!({
                "v": CANONICAL_VERSION,
                "id": record.id, "tenant": record.tenant, "seq": record.seq, "ts": record.ts,
                "kind": record.kind, "principal": record.principal, "target": record.target,
                "action": record.action, "outcome": record.outcome,
                "session_id": record.session_id, "approval_id": record.approval_id,
                "call_id": record.call_id, "body": body,
            })).unwrap();
            prop_assert_eq!(
                String::from_utf8(record.canonical_bytes()).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }
}
