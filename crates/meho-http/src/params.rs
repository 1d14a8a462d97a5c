//! From the agent's `params` to the exact request an operation would send.
//!
//! The [`Request`] built here is what the approver sees and what the policy decides on, so it is
//! built once, validated, and sent as is. Path parameters are percent-encoded as one segment
//! each: no value (`../x`, `a/b`, `%2F`) can change the shape of the path the policy matched.

use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::spec::{BODY_KEY, Location, Method, Operation, Parameter, Style, template_variables};

/// Headers an agent may never set: credentials, and what meho or the HTTP client sets itself.
/// Compared case-insensitively; every `x-meho-*` header is reserved too.
pub const RESERVED_HEADERS: [&str; 16] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "upgrade",
    "accept-encoding",
    "x-vault-token",
    "x-api-key",
    "forwarded",
];

/// Whether an agent may not set the header `name`.
#[must_use]
pub fn is_reserved_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    RESERVED_HEADERS.contains(&lower.as_str())
        || lower.starts_with("x-meho-")
        || lower.starts_with("x-forwarded-")
        || lower.starts_with("proxy-")
}

/// Why `params` do not make a request for an operation. Each names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// `params` is not a JSON object.
    #[error("`params` must be an object of parameters, not {0}")]
    NotAnObject(&'static str),
    /// A key the operation does not take.
    #[error("unknown parameter `{name}` (this operation takes: {accepted})")]
    Unknown {
        /// The key given.
        name: String,
        /// What the operation takes, comma-separated (or `nothing`).
        accepted: String,
    },
    /// A required parameter is absent.
    #[error("`{name}` ({location}) is required")]
    Missing {
        /// The parameter.
        name: String,
        /// Where it goes.
        location: Location,
    },
    /// The operation requires a body and none was given.
    #[error("`body` is required")]
    MissingBody,
    /// A parameter's value fails its schema.
    #[error("`{name}` ({location}): {reason}")]
    Invalid {
        /// The parameter.
        name: String,
        /// Where it goes.
        location: Location,
        /// What is wrong, as the validator says it.
        reason: String,
    },
    /// The body fails its schema.
    #[error("`body`{}: {reason}", at_pointer(.pointer))]
    InvalidBody {
        /// Where in the body (a JSON pointer; empty for the whole body).
        pointer: String,
        /// What is wrong, as the validator says it.
        reason: String,
    },
    /// A header meho sets itself (credentials among them).
    #[error("`{0}` (header) is set by meho, never by the caller")]
    ReservedHeader(String),
    /// A cookie parameter.
    #[error("`{0}` (cookie): cookie parameters are not supported")]
    Cookie(String),
    /// An empty path parameter would address another resource (`/sys/policy/`).
    #[error("`{0}` (path) must not be empty")]
    EmptyPath(String),
    /// A value that cannot be written where the parameter goes.
    #[error("`{name}` ({location}): {reason}")]
    Unserializable {
        /// The parameter.
        name: String,
        /// Where it goes.
        location: Location,
        /// Why.
        reason: &'static str,
    },
    /// The path template names a variable no parameter fills (a defect of the spec).
    #[error("path variable `{{{0}}}` has no path parameter")]
    Template(String),
}

fn at_pointer(pointer: &str) -> String {
    if pointer.is_empty() {
        String::new()
    } else {
        format!(" at `{pointer}`")
    }
}

/// The request an operation would send: exactly what will be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The resolved path (relative to the base URL), each path parameter percent-encoded as
    /// one segment.
    pub path: String,
    /// The query, decoded (encoded by [`Request::path_and_query`]), in order.
    pub query: Vec<(String, String)>,
    /// Headers from header parameters (never a reserved one).
    pub headers: Vec<(String, String)>,
    /// The body, as JSON.
    pub body: Option<Value>,
    /// The body's media type, when there is a body.
    pub content_type: Option<String>,
}

/// Everything but unreserved characters (RFC 3986: ALPHA DIGIT `-` `_` `~`; `.` too, so a
/// value can never be a `..` segment).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');
/// A query key or value: unreserved characters stay, everything else is encoded.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'~')
    .remove(b'.');

impl Request {
    /// The path and the encoded query string, e.g. `/api/v1/series?match%5B%5D=up`.
    #[must_use]
    pub fn path_and_query(&self) -> String {
        let mut out = self.path.clone();
        for (i, (k, v)) in self.query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            let _ = write!(
                out,
                "{}={}",
                utf8_percent_encode(k, QUERY),
                utf8_percent_encode(v, QUERY)
            );
        }
        out
    }
}

/// Validates `params` against `operation` and builds the request it describes.
///
/// Path, query and header parameters are passed by name at the top level, the request body
/// under `body`; unknown keys are refused. Each value is validated against its schema; a
/// string given for an integer, number or boolean parameter is read as one when it parses
/// (it is sent as text either way). Scalars are serialized per OpenAPI's defaults (style
/// simple in path and header, form in query; arrays in query as repeated keys).
///
/// # Errors
/// A [`ParamError`] naming the first parameter that is missing, unknown, invalid, reserved,
/// or cannot be serialized where it goes.
pub fn build(operation: &Operation, params: &Value) -> Result<Request, ParamError> {
    let empty = Map::new();
    let given = match params {
        Value::Object(map) => map,
        Value::Null => &empty,
        other => return Err(ParamError::NotAnObject(kind(other))),
    };
    for key in given.keys() {
        let known = (key == BODY_KEY && operation.body.is_some())
            || operation.parameters.iter().any(|p| &p.name == key);
        if !known {
            return Err(ParamError::Unknown {
                name: key.clone(),
                accepted: accepted(operation),
            });
        }
    }

    let mut path_values: Vec<(&str, String)> = Vec::new();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    for p in &operation.parameters {
        let value = given.get(&p.name).filter(|v| !v.is_null());
        match p.location {
            Location::Cookie => {
                if value.is_some() {
                    return Err(ParamError::Cookie(p.name.clone()));
                }
                continue;
            }
            Location::Header if is_reserved_header(&p.name) => {
                if value.is_some() {
                    return Err(ParamError::ReservedHeader(p.name.clone()));
                }
                continue;
            }
            Location::Path | Location::Query | Location::Header => {}
        }
        let Some(value) = value else {
            if p.required {
                return Err(ParamError::Missing {
                    name: p.name.clone(),
                    location: p.location,
                });
            }
            continue;
        };
        let value = coerce(&p.schema, value);
        validate(&p.schema, &value).map_err(|(_, reason)| ParamError::Invalid {
            name: p.name.clone(),
            location: p.location,
            reason,
        })?;
        match p.location {
            Location::Path => path_values.push((&p.name, path_segment(p, &value)?)),
            Location::Query => query.extend(query_pairs(p, &value)?),
            Location::Header => headers.push((p.name.clone(), header_value(p, &value)?)),
            Location::Cookie => {}
        }
    }

    let (body, content_type) = match (&operation.body, given.get(BODY_KEY)) {
        (Some(spec), Some(value)) if !value.is_null() => {
            validate(&spec.schema, value)
                .map_err(|(pointer, reason)| ParamError::InvalidBody { pointer, reason })?;
            (Some(value.clone()), Some(spec.content_type.clone()))
        }
        (Some(spec), _) if spec.required => return Err(ParamError::MissingBody),
        _ => (None, None),
    };

    Ok(Request {
        method: operation.method,
        path: fill_template(&operation.path, &path_values)?,
        query,
        headers,
        body,
        content_type,
    })
}

fn accepted(operation: &Operation) -> String {
    let mut names: Vec<&str> = operation
        .parameters
        .iter()
        .filter(|p| p.agent_settable())
        .map(|p| p.name.as_str())
        .collect();
    if operation.body.is_some() {
        names.push(BODY_KEY);
    }
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names.join(", ")
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string given for a scalar-typed parameter, read as that type when it parses.
fn coerce(schema: &Value, value: &Value) -> Value {
    let Value::String(text) = value else {
        return value.clone();
    };
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return value.clone(),
    };
    if types.contains(&"string") {
        return value.clone();
    }
    let text = text.trim();
    if types.contains(&"integer")
        && let Ok(n) = text.parse::<i64>()
    {
        return Value::from(n);
    }
    if types.contains(&"number")
        && let Ok(n) = text.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(n)
    {
        return Value::Number(n);
    }
    if types.contains(&"boolean") {
        match text {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    value.clone()
}

/// How many validator complaints an error message carries.
const MAX_REASONS: usize = 3;
/// Longest text of one complaint (a validator may quote a whole large value).
const MAX_REASON_CHARS: usize = 300;

/// `value` against `schema`; the first failure's JSON pointer and up to three reasons.
fn validate(schema: &Value, value: &Value) -> Result<(), (String, String)> {
    let Ok(validator) = validator(schema) else {
        // Schemas that do not compile were replaced by `{}` when the spec was read.
        return Ok(());
    };
    let mut errors = validator.iter_errors(value).peekable();
    let Some(first) = errors.peek() else {
        return Ok(());
    };
    let pointer = first.instance_path().to_string();
    let reasons: Vec<String> = errors
        .take(MAX_REASONS)
        .map(|e| {
            let at = e.instance_path().to_string();
            let text = clip(&e.to_string());
            if at.is_empty() || at == pointer {
                text
            } else {
                format!("{text} (at `{at}`)")
            }
        })
        .collect();
    Err((pointer, reasons.join("; ")))
}

fn validator(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(schema)
        .map_err(|e| clip(&e.to_string()))
}

fn clip(text: &str) -> String {
    if text.chars().count() <= MAX_REASON_CHARS {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_REASON_CHARS).collect();
    format!("{cut}…")
}

/// Replaces every schema of `operation` that does not compile by `{}`, with a note: a vendor's
/// invalid schema (a bad `pattern`, a misspelt type) then only stops validating that value.
pub(crate) fn check_schemas(operation: &mut Operation, notes: &mut Vec<String>) {
    for p in &mut operation.parameters {
        if let Err(e) = validator(&p.schema) {
            notes.push(format!(
                "schema of parameter `{}` not validated: {e}",
                p.name
            ));
            p.schema = Value::Object(Map::new());
        }
    }
    if let Some(body) = &mut operation.body
        && let Err(e) = validator(&body.schema)
    {
        notes.push(format!("schema of the request body not validated: {e}"));
        body.schema = Value::Object(Map::new());
    }
}

/// A scalar as text: strings as they are, numbers and booleans as JSON writes them.
fn scalar(p: &Parameter, value: &Value) -> Result<String, ParamError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        Value::Array(_) | Value::Object(_) => Err(ParamError::Unserializable {
            name: p.name.clone(),
            location: p.location,
            reason: "nested arrays and objects cannot be serialized here",
        }),
    }
}

/// The parts of an array or object value, as text: `[a, b]` → `a`, `b`; `{k: v}` → (`k`, `v`).
enum Parts {
    One(String),
    List(Vec<String>),
    Pairs(Vec<(String, String)>),
}

fn parts(p: &Parameter, value: &Value) -> Result<Parts, ParamError> {
    match value {
        Value::Array(items) => Ok(Parts::List(
            items
                .iter()
                .map(|v| scalar(p, v))
                .collect::<Result<_, _>>()?,
        )),
        Value::Object(map) => Ok(Parts::Pairs(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), scalar(p, v)?)))
                .collect::<Result<_, ParamError>>()?,
        )),
        other => Ok(Parts::One(scalar(p, other)?)),
    }
}

/// A path parameter as one segment: every piece percent-encoded, joined by the style's
/// delimiters (`,` `.` `;` `=`, none of which can end a segment).
fn path_segment(p: &Parameter, value: &Value) -> Result<String, ParamError> {
    let enc = |s: &str| utf8_percent_encode(s, SEGMENT).to_string();
    let (prefix, sep) = match p.style {
        Style::Label => (".".to_owned(), if p.explode { "." } else { "," }),
        Style::Matrix => (format!(";{}=", enc(&p.name)), ","),
        _ => (String::new(), ","),
    };
    let text = match parts(p, value)? {
        Parts::One(s) => format!("{prefix}{}", enc(&s)),
        Parts::List(items) => {
            let items: Vec<String> = items.iter().map(|s| enc(s)).collect();
            let sep = if p.style == Style::Matrix && p.explode {
                format!(";{}=", enc(&p.name))
            } else {
                sep.to_owned()
            };
            format!("{prefix}{}", items.join(&sep))
        }
        Parts::Pairs(pairs) => {
            let items: Vec<String> = pairs
                .iter()
                .map(|(k, v)| {
                    if p.explode {
                        format!("{}={}", enc(k), enc(v))
                    } else {
                        format!("{},{}", enc(k), enc(v))
                    }
                })
                .collect();
            format!("{prefix}{}", items.join(sep))
        }
    };
    // Label style writes literal dots: an empty value (or list of them) must not become a
    // `.` or `..` segment.
    if text.chars().all(|c| c == '.') {
        return Err(ParamError::EmptyPath(p.name.clone()));
    }
    Ok(text)
}

/// A query parameter as (key, value) pairs, not yet encoded.
fn query_pairs(p: &Parameter, value: &Value) -> Result<Vec<(String, String)>, ParamError> {
    let name = p.name.clone();
    Ok(match (parts(p, value)?, p.style) {
        (Parts::One(s), _) => vec![(name, s)],
        (Parts::List(items), Style::SpaceDelimited) => vec![(name, items.join(" "))],
        (Parts::List(items), Style::PipeDelimited) => vec![(name, items.join("|"))],
        (Parts::List(items), _) if p.explode => {
            items.into_iter().map(|v| (name.clone(), v)).collect()
        }
        (Parts::List(items), _) => vec![(name, items.join(","))],
        (Parts::Pairs(pairs), Style::DeepObject) => pairs
            .into_iter()
            .map(|(k, v)| (format!("{name}[{k}]"), v))
            .collect(),
        (Parts::Pairs(pairs), _) if p.explode => pairs,
        (Parts::Pairs(pairs), _) => vec![(
            name,
            pairs
                .into_iter()
                .flat_map(|(k, v)| [k, v])
                .collect::<Vec<_>>()
                .join(","),
        )],
    })
}

/// A header parameter's value (style simple); never with a control character.
fn header_value(p: &Parameter, value: &Value) -> Result<String, ParamError> {
    let text = match parts(p, value)? {
        Parts::One(s) => s,
        Parts::List(items) => items.join(","),
        Parts::Pairs(pairs) => pairs
            .into_iter()
            .map(|(k, v)| {
                if p.explode {
                    format!("{k}={v}")
                } else {
                    format!("{k},{v}")
                }
            })
            .collect::<Vec<_>>()
            .join(","),
    };
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ParamError::Unserializable {
            name: p.name.clone(),
            location: p.location,
            reason: "a header value cannot hold control characters or line breaks",
        });
    }
    Ok(text)
}

/// The path template with each `{name}` replaced by its encoded segment.
fn fill_template(template: &str, values: &[(&str, String)]) -> Result<String, ParamError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    for var in template_variables(template) {
        let marker = format!("{{{var}}}");
        let Some(at) = rest.find(&marker) else {
            break;
        };
        out.push_str(rest.get(..at).unwrap_or_default());
        let value = values
            .iter()
            .find(|(name, _)| *name == var)
            .map(|(_, v)| v)
            .ok_or_else(|| ParamError::Template(var.to_owned()))?;
        out.push_str(value);
        rest = rest.get(at + marker.len()..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::spec::Spec;

    fn op(paths: Value) -> Operation {
        Spec::from_value(&json!({"openapi": "3.1.0", "paths": paths}))
            .unwrap()
            .operations()[0]
            .clone()
    }

    #[test]
    fn missing_unknown_and_wrongly_typed_parameters_are_named() {
        let op = op(json!({"/items/{name}": {"get": {"parameters": [
            {"name": "name", "in": "path", "schema": {"type": "string"}},
            {"name": "limit", "in": "query", "schema": {"type": "integer"}}]}}}));
        assert_eq!(
            build(&op, &json!({})).unwrap_err().to_string(),
            "`name` (path) is required"
        );
        assert_eq!(
            build(&op, &json!({"name": "a", "foo": 1}))
                .unwrap_err()
                .to_string(),
            "unknown parameter `foo` (this operation takes: name, limit)"
        );
        assert_eq!(
            build(&op, &json!({"name": "a", "limit": "x"}))
                .unwrap_err()
                .to_string(),
            "`limit` (query): \"x\" is not of type \"integer\""
        );
        assert_eq!(
            build(&op, &json!({"name": "a", "body": {}}))
                .unwrap_err()
                .to_string(),
            "unknown parameter `body` (this operation takes: name, limit)"
        );
        assert_eq!(
            build(&op, &json!([1])).unwrap_err().to_string(),
            "`params` must be an object of parameters, not an array"
        );
        let req = build(&op, &json!({"name": "a b", "limit": "10"})).unwrap();
        assert_eq!(req.path_and_query(), "/items/a%20b?limit=10");
        // A null is an absent optional parameter.
        assert_eq!(
            build(&op, &json!({"name": "a", "limit": null}))
                .unwrap()
                .query,
            vec![]
        );
    }

    #[test]
    fn path_values_never_change_the_shape_of_the_path() {
        let op = op(json!({"/sys/policy/{name}": {"get": {"parameters": [
            {"name": "name", "in": "path", "schema": {"type": "string"}}]}}}));
        for (value, path) in [
            ("../x", "/sys/policy/%2E%2E%2Fx"),
            ("..", "/sys/policy/%2E%2E"),
            ("a/b", "/sys/policy/a%2Fb"),
            ("%2F", "/sys/policy/%252F"),
            ("a?b#c", "/sys/policy/a%3Fb%23c"),
            ("é", "/sys/policy/%C3%A9"),
        ] {
            assert_eq!(build(&op, &json!({"name": value})).unwrap().path, path);
        }
        assert_eq!(
            build(&op, &json!({"name": ""})).unwrap_err(),
            ParamError::EmptyPath("name".into())
        );
    }

    #[test]
    fn label_style_never_makes_a_dot_segment() {
        let label = op(json!({"/a/{v}": {"get": {"parameters": [
            {"name": "v", "in": "path", "style": "label", "explode": true}]}}}));
        for empty in [json!([]), json!([""]), json!(["", ""]), json!("")] {
            assert_eq!(
                build(&label, &json!({"v": empty})).unwrap_err(),
                ParamError::EmptyPath("v".into())
            );
        }
        assert_eq!(
            build(&label, &json!({"v": ["a", "b.c"]})).unwrap().path,
            "/a/.a.b%2Ec"
        );
    }

    #[test]
    fn body_is_required_validated_and_sent_with_its_type() {
        let op = op(
            json!({"/a": {"post": {"requestBody": {"required": true, "content": {
            "application/json": {"schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}}}}}}}),
        );
        assert_eq!(build(&op, &json!({})).unwrap_err(), ParamError::MissingBody);
        assert_eq!(
            build(&op, &json!({})).unwrap_err().to_string(),
            "`body` is required"
        );
        let err = build(&op, &json!({"body": {}})).unwrap_err();
        assert_eq!(err.to_string(), "`body`: \"n\" is a required property");
        let err = build(&op, &json!({"body": {"n": "1"}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`body` at `/n`: \"1\" is not of type \"integer\""
        );
        let req = build(&op, &json!({"body": {"n": 1}})).unwrap();
        assert_eq!(req.body, Some(json!({"n": 1})));
        assert_eq!(req.content_type.as_deref(), Some("application/json"));
    }

    #[test]
    fn credentials_and_cookies_are_refused() {
        let op = op(json!({"/a": {"get": {"parameters": [
            {"name": "Authorization", "in": "header", "required": true},
            {"name": "X-Vault-Token", "in": "header"},
            {"name": "session", "in": "cookie", "required": true},
            {"name": "X-Request-Id", "in": "header"}]}}}));
        // Reserved headers and cookies are not demanded of the caller...
        let req = build(&op, &json!({"X-Request-Id": "r1"})).unwrap();
        assert_eq!(
            req.headers,
            vec![("X-Request-Id".to_owned(), "r1".to_owned())]
        );
        // ...and refused when given.
        assert_eq!(
            build(&op, &json!({"Authorization": "Bearer x"}))
                .unwrap_err()
                .to_string(),
            "`Authorization` (header) is set by meho, never by the caller"
        );
        assert!(matches!(
            build(&op, &json!({"X-Vault-Token": "t"})),
            Err(ParamError::ReservedHeader(_))
        ));
        assert_eq!(
            build(&op, &json!({"session": "s"}))
                .unwrap_err()
                .to_string(),
            "`session` (cookie): cookie parameters are not supported"
        );
        assert!(build(&op, &json!({"X-Request-Id": "a\r\nHost: evil"})).is_err());
        assert!(is_reserved_header("x-meho-call"));
        assert!(is_reserved_header("HOST"));
        assert!(!is_reserved_header("X-Request-Id"));
    }

    #[test]
    fn arrays_and_objects_follow_the_styles() {
        let op = op(json!({"/a/{ids}": {"get": {"parameters": [
            {"name": "ids", "in": "path", "schema": {"type": "array"}},
            {"name": "tag", "in": "query", "schema": {"type": "array"}},
            {"name": "csv", "in": "query", "explode": false, "schema": {"type": "array"}},
            {"name": "pipes", "in": "query", "style": "pipeDelimited", "explode": false},
            {"name": "filter", "in": "query", "style": "deepObject", "explode": true},
            {"name": "X-Ids", "in": "header", "schema": {"type": "array"}}]}}}));
        let req = build(
            &op,
            &json!({
            "ids": ["a/b", "c"], "tag": ["x", "y"], "csv": ["1", 2], "pipes": ["p", "q"],
            "filter": {"state": "up"}, "X-Ids": [1, 2]}),
        )
        .unwrap();
        assert_eq!(req.path, "/a/a%2Fb,c");
        assert_eq!(
            req.path_and_query(),
            "/a/a%2Fb,c?tag=x&tag=y&csv=1%2C2&pipes=p%7Cq&filter%5Bstate%5D=up"
        );
        assert_eq!(req.headers, vec![("X-Ids".to_owned(), "1,2".to_owned())]);
        let err = build(&op, &json!({"ids": ["a"], "tag": [["nested"]]})).unwrap_err();
        assert!(matches!(err, ParamError::Unserializable { .. }), "{err}");
    }

    #[test]
    fn strings_are_read_as_the_scalar_type_they_spell() {
        let schema = json!({"type": "integer"});
        assert_eq!(coerce(&schema, &json!("42")), json!(42));
        assert_eq!(coerce(&schema, &json!("x")), json!("x"));
        assert_eq!(
            coerce(&json!({"type": ["number", "null"]}), &json!("1.5")),
            json!(1.5)
        );
        assert_eq!(
            coerce(&json!({"type": "boolean"}), &json!("false")),
            json!(false)
        );
        assert_eq!(
            coerce(&json!({"type": ["string", "integer"]}), &json!("1")),
            json!("1")
        );
        assert_eq!(coerce(&json!({}), &json!("1")), json!("1"));
    }
}
