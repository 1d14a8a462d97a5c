//! Ranked text search over a spec's operations, for an agent looking for the call to make.
//!
//! Deliberately simple and deterministic: fields are tokenized (on non-alphanumerics and
//! camelCase), each query token scores by the best-weighted fields it matches, and every query
//! token counts, so an operation matching all of them outranks one matching a single token
//! heavily. Ties are broken by the operation's key.

use std::collections::HashSet;

use crate::spec::{Method, Operation, Spec};

/// One search result.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    /// The operation found.
    pub operation: &'a Operation,
    /// How well it matches; comparable only within one search.
    pub score: f32,
}

/// Weights of the fields a query token can match, strongest first.
const W_ID: f32 = 6.0;
const W_PATH: f32 = 4.0;
const W_SUMMARY: f32 = 2.0;
const W_TAG: f32 = 1.5;
const W_METHOD: f32 = 1.0;
const W_DESCRIPTION: f32 = 0.5;
/// The operationId equals the whole query.
const W_EXACT_ID: f32 = 100.0;
/// A query token that is only a prefix of a field token counts this much of the field's weight.
const PREFIX_FACTOR: f32 = 0.5;
/// Bonus for the share of the path's and id's tokens the query covers: the shorter, more
/// specific match ranks first among equals.
const W_COVERAGE: f32 = 1.0;

/// The operations best matching `query`, best first, at most `limit`. An empty query returns
/// the first `limit` operations in spec order (score 0).
#[must_use]
pub fn search<'a>(spec: &'a Spec, query: &str, limit: usize) -> Vec<Hit<'a>> {
    let query_tokens = dedup(tokenize(query));
    if query_tokens.is_empty() {
        return spec
            .operations()
            .iter()
            .take(limit)
            .map(|operation| Hit {
                operation,
                score: 0.0,
            })
            .collect();
    }
    let squashed_query = squash(query);
    let mut hits: Vec<(Hit<'a>, String)> = spec
        .operations()
        .iter()
        .filter_map(|op| {
            let score = score(op, &query_tokens, &squashed_query);
            (score > 0.0).then(|| {
                (
                    Hit {
                        operation: op,
                        score,
                    },
                    op.key(),
                )
            })
        })
        .collect();
    hits.sort_by(|(a, ka), (b, kb)| b.score.total_cmp(&a.score).then_with(|| ka.cmp(kb)));
    hits.into_iter().take(limit).map(|(h, _)| h).collect()
}

fn score(op: &Operation, query: &[String], squashed_query: &str) -> f32 {
    let id = op.id.as_deref().map(tokenize).unwrap_or_default();
    let path = tokenize(&op.path);
    let summary = op.summary.as_deref().map(tokenize).unwrap_or_default();
    let tags: Vec<String> = op.tags.iter().flat_map(|t| tokenize(t)).collect();
    let description = op.description.as_deref().map(tokenize).unwrap_or_default();
    let method = method_words(op.method);
    let fields: [(&[String], f32); 6] = [
        (&id, W_ID),
        (&path, W_PATH),
        (&summary, W_SUMMARY),
        (&tags, W_TAG),
        (&method, W_METHOD),
        (&description, W_DESCRIPTION),
    ];

    let mut total = 0.0;
    let mut matched = 0usize;
    for q in query {
        let mut token_score = 0.0;
        for (field, weight) in fields {
            token_score += weight * field_match(q, field);
        }
        if token_score > 0.0 {
            matched += 1;
            total += token_score;
        }
    }
    if matched == 0 {
        return 0.0;
    }
    if op
        .id
        .as_deref()
        .is_some_and(|id| !squashed_query.is_empty() && squash(id) == squashed_query)
    {
        total += W_EXACT_ID;
    }
    total += W_COVERAGE * (coverage(query, &path) + coverage(query, &id));
    // Every query token matters: the share matched scales the score, so matching all of
    // "kv secret write" beats matching "write" in many fields.
    #[expect(clippy::cast_precision_loss, reason = "token counts are small")]
    let share = matched as f32 / query.len() as f32;
    total * share * share
}

/// 1 when `q` equals a token of the field (or its singular), [`PREFIX_FACTOR`] when it begins
/// one, else 0.
fn field_match(q: &str, field: &[String]) -> f32 {
    let mut best = 0.0f32;
    for t in field {
        if t == q || singular(t) == singular(q) {
            return 1.0;
        }
        if q.len() >= 3 && t.starts_with(q) {
            best = PREFIX_FACTOR;
        }
    }
    best
}

/// The share of `field`'s distinct tokens that some query token matches.
fn coverage(query: &[String], field: &[String]) -> f32 {
    let distinct: HashSet<&String> = field.iter().collect();
    if distinct.is_empty() {
        return 0.0;
    }
    let hit = distinct
        .iter()
        .filter(|t| query.iter().any(|q| &q == *t || singular(q) == singular(t)))
        .count();
    #[expect(clippy::cast_precision_loss, reason = "token counts are small")]
    let share = hit as f32 / distinct.len() as f32;
    share
}

fn singular(token: &str) -> &str {
    match token.strip_suffix('s') {
        Some(stem) if stem.len() >= 3 && !stem.ends_with('s') => stem,
        _ => token,
    }
}

/// Words an agent may use for what a method does.
fn method_words(method: Method) -> Vec<String> {
    let words: &[&str] = match method {
        Method::Get => &["get", "read", "list", "show", "fetch"],
        Method::Head => &["head"],
        Method::Options => &["options"],
        Method::Post => &["post", "create", "write", "add"],
        Method::Put => &["put", "write", "update", "replace", "set"],
        Method::Patch => &["patch", "update", "modify"],
        Method::Delete => &["delete", "remove", "destroy"],
        Method::Trace => &["trace"],
    };
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// Lowercase tokens of `text`: split on non-alphanumerics and on camelCase boundaries
/// (`getPolicyByName` → `get`, `policy`, `by`, `name`; `HTTPServer` → `http`, `server`).
#[must_use]
pub fn tokenize(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            flush(&mut current, &mut tokens);
            continue;
        }
        let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
        let next = chars.get(i + 1).copied();
        let boundary = match prev {
            Some(p) if c.is_uppercase() => {
                p.is_lowercase()
                    || p.is_numeric()
                    || (p.is_uppercase() && next.is_some_and(char::is_lowercase))
            }
            _ => false,
        };
        if boundary {
            flush(&mut current, &mut tokens);
        }
        current.extend(c.to_lowercase());
    }
    flush(&mut current, &mut tokens);
    tokens
}

fn flush(current: &mut String, tokens: &mut Vec<String>) {
    if !current.is_empty() {
        tokens.push(std::mem::take(current));
    }
}

fn dedup(tokens: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    tokens
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

/// Lowercase alphanumerics only: `read-health-status` and `readHealthStatus` compare equal.
fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec() -> Spec {
        Spec::from_value(&json!({"openapi": "3.1.0", "paths": {
            "/pets": {
                "get": {"operationId": "listPets", "summary": "List all pets", "tags": ["pets"]},
                "post": {"operationId": "createPet", "summary": "Create a pet", "tags": ["pets"]}},
            "/pets/{petId}": {
                "get": {"operationId": "showPetById", "summary": "Info for a specific pet", "tags": ["pets"]},
                "delete": {"operationId": "deletePet", "summary": "Delete a pet", "tags": ["pets"]}},
            "/stores/{storeId}/inventory": {
                "get": {"operationId": "getInventory", "summary": "Returns pet inventories by status", "tags": ["store"]}},
            "/a": {"get": {}}, "/b": {"get": {}}}}))
        .unwrap()
    }

    fn keys(hits: &[Hit<'_>]) -> Vec<String> {
        hits.iter().map(|h| h.operation.key()).collect()
    }

    #[test]
    fn tokenizes_on_separators_and_camel_case() {
        assert_eq!(tokenize("getPolicyByName"), ["get", "policy", "by", "name"]);
        assert_eq!(tokenize("HTTPServer_v2"), ["http", "server", "v2"]);
        assert_eq!(tokenize("/sys/policy/{name}"), ["sys", "policy", "name"]);
        assert_eq!(tokenize("read-health-status"), ["read", "health", "status"]);
        assert!(tokenize(" -/ ").is_empty());
    }

    #[test]
    fn exact_operation_id_ranks_first() {
        let spec = spec();
        let hits = search(&spec, "deletePet", 3);
        assert_eq!(hits[0].operation.id.as_deref(), Some("deletePet"));
        assert!(hits[0].score > 100.0);
        let hits = search(&spec, "delete-pet", 3);
        assert_eq!(hits[0].operation.id.as_deref(), Some("deletePet"));
    }

    #[test]
    fn all_query_tokens_matter() {
        let spec = spec();
        assert_eq!(keys(&search(&spec, "create pet", 1)), ["POST /pets"]);
        assert_eq!(
            keys(&search(&spec, "pet inventory", 1)),
            ["GET /stores/{storeId}/inventory"]
        );
        assert_eq!(keys(&search(&spec, "list pets", 1)), ["GET /pets"]);
    }

    #[test]
    fn ties_break_by_key_and_non_matches_are_left_out() {
        let spec = spec();
        let hits = search(&spec, "pets", 10);
        assert_eq!(hits.len(), 5);
        let again = search(&spec, "pets", 10);
        assert_eq!(keys(&hits), keys(&again));
        for pair in hits.windows(2) {
            assert!(
                pair[0].score > pair[1].score
                    || (pair[0].score == pair[1].score
                        && pair[0].operation.key() < pair[1].operation.key())
            );
        }
        assert!(search(&spec, "zebra", 10).is_empty());
    }

    #[test]
    fn an_empty_query_lists_operations_in_spec_order() {
        let spec = spec();
        let hits = search(&spec, "  ", 2);
        assert_eq!(keys(&hits), ["GET /a", "GET /b"]);
        assert!(search(&spec, "", 0).is_empty());
    }

    #[test]
    fn a_prefix_matches_at_half_weight() {
        let spec = spec();
        let hits = search(&spec, "invent", 5);
        assert_eq!(keys(&hits), ["GET /stores/{storeId}/inventory"]);
        assert!(
            search(&spec, "in", 5).is_empty(),
            "two letters are no prefix"
        );
    }
}
