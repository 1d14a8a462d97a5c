//! What the model and the approver see of cluster objects: `managedFields` removed, Secret
//! values replaced by their sizes (unless a `reveal` rule allows them), compact tables from the
//! API server's own column definitions (what kubectl prints), and previews as unified diffs.

use base64::Engine as _;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The annotation `kubectl apply` leaves: the whole last-applied object, Secret values included.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Whether `object` says it is a core Secret.
fn says_secret(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// How [`clean`] shows the values of Secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// As they are (a `reveal` rule allowed them).
    Reveal,
    /// `<redacted: N bytes>`.
    Sizes,
    /// `<redacted: N bytes, sha256 …>`: a preview still shows that a value changed.
    Fingerprints,
}

/// Removes what no reader needs (`metadata.managedFields`) and, unless `values` reveals them,
/// hides Secret values: each value of `data` (base64) and `stringData` becomes its size (and a
/// short hash for [`Values::Fingerprints`]), and the last-applied annotation (which repeats
/// them) is replaced. Lists are walked item by item.
///
/// `secrets` says the objects were read from the core `secrets` resource: the items of a list
/// the API server answers carry no `kind`, so what an object says of itself cannot be all that
/// decides (an object that says it is a Secret is treated as one too).
pub fn clean(object: &mut Value, secrets: bool, values: Values) {
    if let Some(items) = object.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            clean(item, secrets, values);
        }
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    let is_list = object.get("items").is_some_and(Value::is_array);
    if values != Values::Reveal && ((secrets && !is_list) || says_secret(object)) {
        redact_secret(object, values == Values::Fingerprints);
    }
}

fn redact_secret(object: &mut Value, fingerprint: bool) {
    for (field, encoded) in [("data", true), ("stringData", false)] {
        if let Some(values) = object.get_mut(field).and_then(Value::as_object_mut) {
            for value in values.values_mut() {
                let bytes = match value.as_str() {
                    Some(text) if encoded => base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .unwrap_or_else(|_| text.as_bytes().to_vec()),
                    Some(text) => text.as_bytes().to_vec(),
                    None => Vec::new(),
                };
                *value = Value::String(if fingerprint {
                    let digest = hex::encode(Sha256::digest(&bytes));
                    format!(
                        "<redacted: {} bytes, sha256 {}…>",
                        bytes.len(),
                        digest.get(..12).unwrap_or(&digest)
                    )
                } else {
                    format!("<redacted: {} bytes>", bytes.len())
                });
            }
        }
    }
    if let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
        && annotations.contains_key(LAST_APPLIED)
    {
        annotations.insert(
            LAST_APPLIED.to_owned(),
            Value::String("<redacted: repeats the Secret's values>".to_owned()),
        );
    }
}

/// A Table (`meta.k8s.io/v1`) as compact rows: the columns kubectl shows by default (priority
/// 0), with `Namespace` first when the rows span namespaces.
pub fn compact(table: &Value, with_namespace: bool) -> Value {
    let definitions: Vec<&Value> = table
        .get("columnDefinitions")
        .and_then(Value::as_array)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    let shown: Vec<usize> = definitions
        .iter()
        .enumerate()
        .filter(|(_, c)| c.get("priority").and_then(Value::as_i64).unwrap_or(0) == 0)
        .map(|(i, _)| i)
        .collect();
    let mut columns: Vec<Value> = Vec::new();
    if with_namespace {
        columns.push(json!("Namespace"));
    }
    for index in &shown {
        let name = definitions
            .get(*index)
            .and_then(|c| c.get("name"))
            .cloned()
            .unwrap_or(Value::Null);
        columns.push(name);
    }
    let rows: Vec<Value> = table
        .get("rows")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    let cells = row.get("cells").and_then(Value::as_array);
                    let mut out: Vec<Value> = Vec::new();
                    if with_namespace {
                        out.push(
                            row.pointer("/object/metadata/namespace")
                                .cloned()
                                .unwrap_or(Value::Null),
                        );
                    }
                    for index in &shown {
                        out.push(
                            cells
                                .and_then(|c| c.get(*index))
                                .cloned()
                                .unwrap_or(Value::Null),
                        );
                    }
                    Value::Array(out)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut answer = Map::new();
    answer.insert("columns".into(), Value::Array(columns));
    answer.insert("rows".into(), Value::Array(rows));
    if let Some(token) = table
        .pointer("/metadata/continue")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        answer.insert("continue".into(), json!(token));
    }
    if let Some(remaining) = table.pointer("/metadata/remainingItemCount") {
        answer.insert("remaining_item_count".into(), remaining.clone());
    }
    Value::Object(answer)
}

/// A log's bytes as text: bytes that are not UTF-8 become U+FFFD, and when the log was cut
/// (`truncated`) a character the cut split is left out whole rather than shown as U+FFFD.
pub fn log_text(bytes: &[u8], truncated: bool) -> String {
    let mut text = String::with_capacity(bytes.len());
    let mut chunks = bytes.utf8_chunks().peekable();
    while let Some(chunk) = chunks.next() {
        text.push_str(chunk.valid());
        let invalid = chunk.invalid();
        // A character the cut split is the start of one that the input ended in.
        let split_by_the_cut = truncated
            && chunks.peek().is_none()
            && std::str::from_utf8(invalid).is_err_and(|e| e.error_len().is_none());
        if !invalid.is_empty() && !split_by_the_cut {
            text.push(char::REPLACEMENT_CHARACTER);
        }
    }
    text
}

/// A full list, cleaned, with its paging fields.
pub fn full_list(list: &Value) -> Value {
    let mut answer = Map::new();
    // The list's own `kind` (`PodList`) and `apiVersion`: what tells a reader (and the reduce
    // stage) that this is a Kubernetes list.
    for field in ["kind", "apiVersion"] {
        if let Some(value) = list.get(field).filter(|v| v.is_string()) {
            answer.insert(field.into(), value.clone());
        }
    }
    answer.insert(
        "items".into(),
        list.get("items").cloned().unwrap_or_else(|| json!([])),
    );
    if let Some(token) = list
        .pointer("/metadata/continue")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        answer.insert("continue".into(), json!(token));
    }
    if let Some(remaining) = list.pointer("/metadata/remainingItemCount") {
        answer.insert("remaining_item_count".into(), remaining.clone());
    }
    Value::Object(answer)
}

/// What a preview compares of an object: the object without the fields that change on every
/// write and say nothing about the change (`resourceVersion`, `managedFields`).
fn comparable(object: Option<&Value>, secrets: bool) -> String {
    let Some(object) = object else {
        return String::new();
    };
    let mut object = object.clone();
    clean(&mut object, secrets, Values::Fingerprints);
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
    }
    // YAML, as `kubectl diff` shows objects; JSON if it cannot be written as YAML.
    let mut text = serde_saphyr::to_string(&object)
        .unwrap_or_else(|_| serde_json::to_string_pretty(&object).unwrap_or_default());
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// A unified diff of `before` (the live object, `None` when it does not exist) and `after` (the
/// server's dry-run result, `None` when the object would be deleted), headed by `title`;
/// `secrets` as for [`clean`].
pub fn diff(title: &str, before: Option<&Value>, after: Option<&Value>, secrets: bool) -> String {
    let old = comparable(before, secrets);
    let new = comparable(after, secrets);
    let (from, to) = (
        if before.is_some() { "live" } else { "(absent)" },
        if after.is_some() {
            "after (server-side dry run)"
        } else {
            "(deleted)"
        },
    );
    let mut out = format!("# {title}\n");
    if old == new {
        out.push_str("  (no change)\n");
        return out;
    }
    let diff = similar::TextDiff::from_lines(&old, &new);
    out.push_str(
        &diff
            .unified_diff()
            .context_radius(3)
            .header(from, to)
            .to_string(),
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn secret_values_become_sizes_everywhere() {
        let canary = "c2VjcmV0LWNhbmFyeS0xMjM="; // "secret-canary-123"
        let mut secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "db", "managedFields": [{}],
                "annotations": { LAST_APPLIED: format!("{{\"data\":{{\"p\":\"{canary}\"}}}}") } },
            "data": { "p": canary }, "stringData": { "q": "plain-canary" },
        });
        clean(&mut secret, false, Values::Sizes);
        let text = secret.to_string();
        assert!(
            !text.contains(canary) && !text.contains("plain-canary"),
            "{text}"
        );
        assert_eq!(secret["data"]["p"], "<redacted: 17 bytes>");
        assert!(secret["metadata"].get("managedFields").is_none());
        let mut revealed = json!({"apiVersion": "v1", "kind": "Secret", "data": {"p": canary}});
        clean(&mut revealed, true, Values::Reveal);
        assert_eq!(revealed["data"]["p"], canary);
        // The items of a list of Secrets say nothing of their kind; the resource decides.
        let mut list = json!({"kind": "SecretList", "apiVersion": "v1", "items": [
            {"metadata": {"name": "a"}, "data": {"p": canary}}]});
        clean(&mut list, true, Values::Sizes);
        assert_eq!(list["items"][0]["data"]["p"], "<redacted: 17 bytes>");
        let mut config_maps =
            json!({"items": [{"metadata": {"name": "a"}, "data": {"p": "shown"}}]});
        clean(&mut config_maps, false, Values::Sizes);
        assert_eq!(config_maps["items"][0]["data"]["p"], "shown");
    }

    #[test]
    fn a_preview_shows_a_changed_secret_without_its_value() {
        let before = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "resourceVersion": "1"}, "data": {"k": "YQ=="}});
        let after = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "resourceVersion": "2"}, "data": {"k": "Yg=="}});
        let text = diff("apply secrets a/s", Some(&before), Some(&after), true);
        assert!(
            text.contains("-  k: \"<redacted: 1 bytes, sha256"),
            "{text}"
        );
        assert!(
            !text.contains("YQ==") && !text.contains("resourceVersion"),
            "{text}"
        );
        assert!(diff("t", Some(&before), Some(&before), true).contains("(no change)"));
    }

    #[test]
    fn a_log_is_text_even_cut_inside_a_character() {
        let euro = "€".as_bytes();
        let cut = [b"ab".as_slice(), &euro[..2]].concat();
        assert_eq!(log_text(&cut, true), "ab");
        assert_eq!(log_text(&cut, false), "ab\u{fffd}");
        assert_eq!(log_text(b"a\xffb\n", false), "a\u{fffd}b\n");
        assert_eq!(log_text(b"a\xff", true), "a\u{fffd}");
        assert_eq!(log_text("x€".as_bytes(), true), "x€");
    }

    #[test]
    fn a_table_keeps_kubectls_columns() {
        let table = json!({
            "kind": "Table",
            "metadata": { "continue": "abc", "remainingItemCount": 3 },
            "columnDefinitions": [
                {"name": "Name", "priority": 0}, {"name": "Ready", "priority": 0},
                {"name": "IP", "priority": 1}],
            "rows": [{"cells": ["web-1", "1/1", "10.0.0.1"], "object": {"metadata": {"namespace": "web"}}}],
        });
        let out = compact(&table, true);
        assert_eq!(out["columns"], json!(["Namespace", "Name", "Ready"]));
        assert_eq!(out["rows"], json!([["web", "web-1", "1/1"]]));
        assert_eq!(out["continue"], "abc");
        assert_eq!(out["remaining_item_count"], 3);
    }
}
