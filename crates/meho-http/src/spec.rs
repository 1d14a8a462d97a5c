//! A lenient reader of OpenAPI 3.0 and 3.1 documents, reduced to the index of operations meho
//! plans calls against.
//!
//! Vendor specs are often invalid: unknown fields are ignored, local `$ref`s are resolved (with
//! recursion cut at a depth), and an operation that cannot be read is skipped with a warning
//! instead of failing the whole document. What remains is self-contained: every schema in an
//! [`Operation`] has its references inlined, so nothing downstream can ever fetch one.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a document is not an OpenAPI 3 spec meho can use.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The text is neither JSON nor YAML.
    #[error("not JSON or YAML: {yaml}")]
    Syntax {
        /// The YAML parser's complaint (YAML being a superset of JSON, it is the more general).
        yaml: String,
    },
    /// The document is not an object at its top.
    #[error("not an OpenAPI document: the top level is not an object")]
    NotAnObject,
    /// A Swagger 2.0 document.
    #[error("no `openapi` field: not an OpenAPI 3 document (Swagger 2.0 is not supported)")]
    Swagger2,
    /// No `openapi` field at all.
    #[error("no `openapi` field: not an OpenAPI 3 document")]
    NoVersion,
    /// An `openapi` version other than 3.0.x or 3.1.x.
    #[error("unsupported OpenAPI version `{0}` (3.0.x and 3.1.x are supported)")]
    UnsupportedVersion(String),
    /// `paths` is absent or holds nothing.
    #[error("`paths` is missing or empty")]
    NoPaths,
    /// Every operation was skipped; the warnings say why.
    #[error("no usable operation: {}", .0.join("; "))]
    NoOperations(Vec<String>),
}

/// The HTTP method: the policy engine's own, so the method a call is decided on is the method
/// it is sent with.
pub use meho_policy::http::Method;

/// Where a parameter goes in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    /// A `{template}` segment of the path.
    Path,
    /// The query string.
    Query,
    /// A request header.
    Header,
    /// A cookie (never sent by meho).
    Cookie,
}

impl Location {
    /// The name OpenAPI uses in `in`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Location::Path => "path",
            Location::Query => "query",
            Location::Header => "header",
            Location::Cookie => "cookie",
        }
    }

    fn parse(name: &str) -> Option<Location> {
        match name {
            "path" => Some(Location::Path),
            "query" => Some(Location::Query),
            "header" => Some(Location::Header),
            "cookie" => Some(Location::Cookie),
            _ => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a parameter's value is serialized (OpenAPI's `style`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Style {
    /// `{name}` → `a,b` (path and header default).
    Simple,
    /// `?name=a&name=b` (query default).
    Form,
    /// `{.name}` → `.a.b`.
    Label,
    /// `{;name}` → `;name=a,b`.
    Matrix,
    /// `a b` in the query.
    SpaceDelimited,
    /// `a|b` in the query.
    PipeDelimited,
    /// `name[key]=value` in the query.
    DeepObject,
}

impl Style {
    fn parse(name: &str) -> Option<Style> {
        match name {
            "simple" => Some(Style::Simple),
            "form" => Some(Style::Form),
            "label" => Some(Style::Label),
            "matrix" => Some(Style::Matrix),
            "spaceDelimited" => Some(Style::SpaceDelimited),
            "pipeDelimited" => Some(Style::PipeDelimited),
            "deepObject" => Some(Style::DeepObject),
            _ => None,
        }
    }

    /// The default for a location: form for query and cookie, simple for path and header.
    #[must_use]
    pub const fn default_for(location: Location) -> Style {
        match location {
            Location::Query | Location::Cookie => Style::Form,
            Location::Path | Location::Header => Style::Simple,
        }
    }
}

/// One parameter of an operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parameter {
    /// The name, as sent (and as the agent passes it in `params`).
    pub name: String,
    /// Where it goes.
    pub location: Location,
    /// Whether the operation needs it (always true for a path parameter).
    pub required: bool,
    /// What the spec says about it.
    pub description: Option<String>,
    /// Its JSON schema, references inlined, in 2020-12 form (3.0's `nullable` converted).
    pub schema: Value,
    /// How it is serialized (defaulted by location).
    pub style: Style,
    /// Whether arrays and objects explode (defaults to true for form style only).
    pub explode: bool,
}

/// The request body an operation takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestBody {
    /// Whether the operation needs one.
    pub required: bool,
    /// The media type chosen among those offered: JSON preferred.
    pub content_type: String,
    /// Its JSON schema, references inlined.
    pub schema: Value,
}

/// One operation (a method on a path) of a spec.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    /// Its `operationId`, if it has one (a duplicate is dropped, with a warning).
    pub id: Option<String>,
    /// The HTTP method.
    pub method: Method,
    /// The path template as in the spec, e.g. `/sys/policy/{name}`, relative to the base URL.
    pub path: String,
    /// The one-line summary.
    pub summary: Option<String>,
    /// The longer description (the path item's when the operation has none).
    pub description: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Whether the spec marks it deprecated.
    pub deprecated: bool,
    /// Path-level and operation-level parameters merged (the operation's win by name and
    /// location), without cookies' and reserved headers' names clashing with others.
    pub parameters: Vec<Parameter>,
    /// The request body, if it takes one.
    pub body: Option<RequestBody>,
}

/// The key under which the request body goes in `params`.
pub const BODY_KEY: &str = "body";

/// Descriptions in [`Operation::compact_params`] are cut to this many characters.
const COMPACT_DESCRIPTION_CHARS: usize = 80;
/// Enumerations longer than this are left out of [`Operation::compact_params`].
const COMPACT_ENUM_VALUES: usize = 12;

impl Operation {
    /// `"GET /sys/health"`: the method and the path template, how an operation without an
    /// id is named.
    #[must_use]
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The name an agent knows the operation by: its id, or its key.
    #[must_use]
    pub fn name(&self) -> String {
        self.id.clone().unwrap_or_else(|| self.key())
    }

    /// The parameter called `name`, wherever it goes.
    #[must_use]
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }

    /// The JSON schema of the `params` object the call takes: every parameter by name at the
    /// top level, the request body under `body`, nothing else.
    #[must_use]
    pub fn params_schema(&self) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for p in self.parameters.iter().filter(|p| p.agent_settable()) {
            let mut schema = p.schema.clone();
            if let (Value::Object(o), Some(d)) = (&mut schema, &p.description)
                && !o.contains_key("description")
            {
                o.insert("description".into(), Value::String(d.clone()));
            }
            properties.insert(p.name.clone(), schema);
            if p.required {
                required.push(Value::String(p.name.clone()));
            }
        }
        if let Some(body) = &self.body {
            properties.insert(BODY_KEY.into(), body.schema.clone());
            if body.required {
                required.push(Value::String(BODY_KEY.into()));
            }
        }
        let mut schema = Map::new();
        schema.insert("type".into(), "object".into());
        schema.insert("properties".into(), Value::Object(properties));
        if !required.is_empty() {
            schema.insert("required".into(), Value::Array(required));
        }
        schema.insert("additionalProperties".into(), Value::Bool(false));
        Value::Object(schema)
    }

    /// A small view of the parameters for search results: location, requiredness, type, a
    /// short description; for the body, its type and property names. No deep schemas.
    #[must_use]
    pub fn compact_params(&self) -> Value {
        let mut out = Map::new();
        for p in self.parameters.iter().filter(|p| p.agent_settable()) {
            let mut entry = Map::new();
            entry.insert("in".into(), p.location.as_str().into());
            entry.insert("required".into(), p.required.into());
            if let Some(t) = type_name(&p.schema) {
                entry.insert("type".into(), t.into());
            }
            if let Some(values) = p.schema.get("enum").and_then(Value::as_array)
                && values.len() <= COMPACT_ENUM_VALUES
            {
                entry.insert("enum".into(), Value::Array(values.clone()));
            }
            if let Some(d) = &p.description {
                entry.insert("description".into(), shorten(d).into());
            }
            out.insert(p.name.clone(), Value::Object(entry));
        }
        if let Some(body) = &self.body {
            let mut entry = Map::new();
            entry.insert("required".into(), body.required.into());
            entry.insert("content_type".into(), body.content_type.clone().into());
            if let Some(t) = type_name(&body.schema) {
                entry.insert("type".into(), t.into());
            }
            if let Some(props) = body.schema.get("properties").and_then(Value::as_object) {
                entry.insert(
                    "properties".into(),
                    Value::Array(props.keys().map(|k| Value::String(k.clone())).collect()),
                );
            }
            if let Some(req) = body.schema.get("required").and_then(Value::as_array) {
                entry.insert("required_properties".into(), Value::Array(req.clone()));
            }
            out.insert(BODY_KEY.into(), Value::Object(entry));
        }
        Value::Object(out)
    }
}

impl Parameter {
    /// Whether an agent may pass this parameter: not a cookie, not a header meho sets.
    #[must_use]
    pub fn agent_settable(&self) -> bool {
        match self.location {
            Location::Cookie => false,
            Location::Header => !crate::params::is_reserved_header(&self.name),
            Location::Path | Location::Query => true,
        }
    }
}

/// A schema's type in a word: `"string"`, `"array<string>"`, `"string|null"`.
fn type_name(schema: &Value) -> Option<String> {
    let t = match schema.get("type")? {
        Value::String(s) => s.clone(),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("|"),
        _ => return None,
    };
    if t == "array"
        && let Some(item) = schema.get("items").and_then(type_name)
    {
        return Some(format!("array<{item}>"));
    }
    Some(t)
}

fn shorten(text: &str) -> String {
    let text = text.trim();
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= COMPACT_DESCRIPTION_CHARS && line.len() == text.len() {
        return line.to_owned();
    }
    let cut: String = line.chars().take(COMPACT_DESCRIPTION_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// A server the spec names (exposed for information; the connector uses its configured base URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Server {
    /// The URL, possibly templated or relative.
    pub url: String,
    /// What the spec says about it.
    pub description: Option<String>,
}

/// A parsed OpenAPI document: its operations, indexed.
#[derive(Debug, Clone)]
pub struct Spec {
    openapi: String,
    title: String,
    version: String,
    servers: Vec<Server>,
    operations: Vec<Operation>,
    by_id: HashMap<String, usize>,
    by_key: HashMap<(Method, String), usize>,
    warnings: Vec<String>,
}

impl Spec {
    /// Reads a spec from JSON or YAML, OpenAPI 3.0.x or 3.1.x.
    ///
    /// # Errors
    /// When the text is not JSON or YAML, not OpenAPI 3, has no paths, or no operation in it
    /// can be read. A defect confined to one operation only skips it (see [`Spec::warnings`]).
    pub fn parse(text: &str) -> Result<Spec, SpecError> {
        let doc: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => serde_saphyr::from_str::<Value>(text).map_err(|e| SpecError::Syntax {
                yaml: e.to_string(),
            })?,
        };
        Spec::from_value(&doc)
    }

    /// Reads a spec already parsed into JSON.
    ///
    /// # Errors
    /// As [`Spec::parse`].
    pub fn from_value(doc: &Value) -> Result<Spec, SpecError> {
        let root = doc.as_object().ok_or(SpecError::NotAnObject)?;
        let openapi = match root.get("openapi") {
            Some(Value::String(v)) => v.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) | None if root.contains_key("swagger") => return Err(SpecError::Swagger2),
            _ => return Err(SpecError::NoVersion),
        };
        let dialect = if openapi.starts_with("3.0") {
            Dialect::V30
        } else if openapi.starts_with("3.1") || openapi.starts_with("3.2") {
            Dialect::V31
        } else {
            return Err(SpecError::UnsupportedVersion(openapi));
        };
        let paths = match root.get("paths").and_then(Value::as_object) {
            Some(p) if !p.is_empty() => p,
            _ => return Err(SpecError::NoPaths),
        };
        let info = root.get("info");
        let text_of = |v: Option<&Value>, key: &str| {
            v.and_then(|i| i.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let servers = root
            .get("servers")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|s| {
                        Some(Server {
                            url: s.get("url")?.as_str()?.to_owned(),
                            description: s
                                .get("description")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();

        let resolver = Resolver {
            root: doc,
            dialect,
            expansions: Cell::new(0),
        };
        let mut spec = Spec {
            openapi,
            title: text_of(info, "title"),
            version: text_of(info, "version"),
            servers,
            operations: Vec::new(),
            by_id: HashMap::new(),
            by_key: HashMap::new(),
            warnings: Vec::new(),
        };
        // Sorted explicitly: the order (and which of two duplicate ids is first) must not
        // depend on whether serde_json preserves key order in this build.
        let mut paths: Vec<(&String, &Value)> = paths.iter().collect();
        paths.sort_by(|a, b| a.0.cmp(b.0));
        for (path, item) in paths {
            if !path.starts_with('/') {
                spec.warnings
                    .push(format!("path `{path}` skipped: it does not start with `/`"));
                continue;
            }
            let item = match resolver.follow(item) {
                Ok(item) => item,
                Err(e) => {
                    spec.warnings.push(format!("path `{path}` skipped: {e}"));
                    continue;
                }
            };
            for method in Method::ALL {
                let Some(op) = item.get(method.as_str().to_ascii_lowercase()) else {
                    continue;
                };
                match resolver.operation(path, method, item, op) {
                    Ok((operation, notes)) => {
                        for note in notes {
                            spec.warnings
                                .push(format!("{} {path}: {note}", method.as_str()));
                        }
                        spec.push(operation);
                    }
                    Err(e) => spec
                        .warnings
                        .push(format!("{} {path} skipped: {e}", method.as_str())),
                }
            }
        }
        if spec.operations.is_empty() {
            return Err(SpecError::NoOperations(spec.warnings));
        }
        Ok(spec)
    }

    fn push(&mut self, mut operation: Operation) {
        let index = self.operations.len();
        if let Some(id) = &operation.id {
            if self.by_id.contains_key(id) {
                self.warnings.push(format!(
                    "duplicate operationId `{id}` on {}: kept on the first, this one is known by its key",
                    operation.key()
                ));
                operation.id = None;
            } else {
                self.by_id.insert(id.clone(), index);
            }
        }
        self.by_key
            .insert((operation.method, operation.path.clone()), index);
        self.operations.push(operation);
    }

    /// The `openapi` version string, e.g. `3.0.2`.
    #[must_use]
    pub fn openapi_version(&self) -> &str {
        &self.openapi
    }

    /// `info.title`.
    #[must_use]
    pub fn title(&self) -> &str {
        &self.title
    }

    /// `info.version`: the API's version, not OpenAPI's.
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The servers the spec names.
    #[must_use]
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    /// Every usable operation: paths in byte order (as a JSON object's keys sort), methods in
    /// [`Method::ALL`] order within a path.
    #[must_use]
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The operation with `operationId` `key`, or named `"METHOD /path/template"` (the
    /// method case-insensitive).
    #[must_use]
    pub fn find(&self, key: &str) -> Option<&Operation> {
        let key = key.trim();
        if let Some(&i) = self.by_id.get(key) {
            return self.operations.get(i);
        }
        let (method, path) = key.split_once(char::is_whitespace)?;
        let method = Method::parse(method)?;
        let &i = self.by_key.get(&(method, path.trim().to_owned()))?;
        self.operations.get(i)
    }

    /// What was skipped or adjusted while reading, one sentence each.
    #[must_use]
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// OpenAPI 3.0: its schema dialect (`nullable`, boolean `exclusiveMinimum`) is converted.
    V30,
    /// OpenAPI 3.1: JSON Schema 2020-12 already.
    V31,
}

/// Why a part of the document could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("reference `{0}` is not local (only `#/...` references are resolved)")]
    NonLocal(String),
    #[error("reference `{0}` points at nothing")]
    Dangling(String),
    #[error("references chain too long at `{0}`")]
    Chain(String),
    #[error("{0}")]
    Invalid(String),
}

/// How many `$ref`s deep a schema is expanded before the rest becomes `{}`.
const MAX_REF_DEPTH: usize = 8;
/// How many schema `$ref`s one operation may inline in all: a spec whose references form a
/// wide DAG (every object embedding a shared one) stays bounded; the rest become `{}`.
const MAX_EXPANSIONS: usize = 5_000;
/// How many `$ref`s a non-schema reference (parameter, body, path item) may chain through.
const MAX_REF_CHAIN: usize = 16;
/// Keywords whose values are data, not schemas: never searched for `$ref`.
const DATA_KEYWORDS: [&str; 6] = [
    "example",
    "examples",
    "default",
    "enum",
    "const",
    "x-example",
];
/// Keywords whose values map names to schemas.
const NAME_MAPS: [&str; 5] = [
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

struct Resolver<'a> {
    root: &'a Value,
    dialect: Dialect,
    /// `$ref`s inlined for the current operation, against [`MAX_EXPANSIONS`].
    expansions: Cell<usize>,
}

impl<'a> Resolver<'a> {
    /// The target of a `$ref` string.
    fn lookup(&self, reference: &str) -> Result<&'a Value, ReadError> {
        let Some(pointer) = reference.strip_prefix('#') else {
            return Err(ReadError::NonLocal(reference.to_owned()));
        };
        // A fragment is URI-encoded; JSON-pointer escapes (`~0`, `~1`) are undone by `pointer`.
        let pointer = percent_encoding::percent_decode_str(pointer).decode_utf8_lossy();
        if pointer.is_empty() {
            return Ok(self.root);
        }
        self.root
            .pointer(&pointer)
            .ok_or_else(|| ReadError::Dangling(reference.to_owned()))
    }

    /// `value`, or what its `$ref` (chain) points at.
    fn follow(&self, mut value: &'a Value) -> Result<&'a Value, ReadError> {
        for _ in 0..MAX_REF_CHAIN {
            match value.get("$ref").and_then(Value::as_str) {
                Some(r) => value = self.lookup(r)?,
                None => return Ok(value),
            }
        }
        Err(ReadError::Chain(
            value
                .get("$ref")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ))
    }

    /// A schema with every reference inlined, recursion cut at [`MAX_REF_DEPTH`] and at the
    /// second entry into the same reference, in 2020-12 form.
    fn schema(&self, schema: &Value) -> Result<Value, ReadError> {
        let mut stack = Vec::new();
        self.inline(schema, &mut stack)
    }

    fn inline(&self, value: &Value, stack: &mut Vec<String>) -> Result<Value, ReadError> {
        match value {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                    if stack.len() >= MAX_REF_DEPTH
                        || stack.iter().any(|r| r == reference)
                        || self.expansions.get() >= MAX_EXPANSIONS
                    {
                        return Ok(Value::Object(Map::new()));
                    }
                    self.expansions.set(self.expansions.get() + 1);
                    let target = self.lookup(reference)?;
                    stack.push(reference.to_owned());
                    let resolved = self.inline(target, stack);
                    stack.pop();
                    let mut resolved = resolved?;
                    // 3.1 allows keywords beside `$ref` (a description, say): kept where the
                    // target does not say otherwise.
                    if let Value::Object(out) = &mut resolved {
                        for (k, v) in map {
                            if k != "$ref" && !out.contains_key(k) {
                                out.insert(k.clone(), self.inline_child(k, v, stack)?);
                            }
                        }
                    }
                    return Ok(resolved);
                }
                let mut out = Map::new();
                for (k, v) in map {
                    // Identifiers and dialect markers would only make the validator look
                    // elsewhere; every reference is already inlined.
                    if matches!(k.as_str(), "$id" | "$schema" | "$anchor" | "$dynamicAnchor") {
                        continue;
                    }
                    let child = match v {
                        // Maps from names to schemas: a property may well be called `default`.
                        Value::Object(named) if NAME_MAPS.contains(&k.as_str()) => named
                            .iter()
                            .map(|(name, s)| Ok((name.clone(), self.inline(s, stack)?)))
                            .collect::<Result<Map<_, _>, ReadError>>()
                            .map(Value::Object)?,
                        _ => self.inline_child(k, v, stack)?,
                    };
                    out.insert(k.clone(), child);
                }
                if self.dialect == Dialect::V30 {
                    convert_30(&mut out);
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => items
                .iter()
                .map(|v| self.inline(v, stack))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            other => Ok(other.clone()),
        }
    }

    fn inline_child(
        &self,
        key: &str,
        value: &Value,
        stack: &mut Vec<String>,
    ) -> Result<Value, ReadError> {
        if DATA_KEYWORDS.contains(&key) {
            Ok(value.clone())
        } else {
            self.inline(value, stack)
        }
    }

    /// One operation: its parameters merged with the path item's, its body chosen.
    fn operation(
        &self,
        path: &str,
        method: Method,
        item: &'a Value,
        op: &'a Value,
    ) -> Result<(Operation, Vec<String>), ReadError> {
        self.expansions.set(0);
        let op = self.follow(op)?;
        if !op.is_object() {
            return Err(ReadError::Invalid("the operation is not an object".into()));
        }
        let mut notes = Vec::new();
        // Path-level first, then the operation's replacing any with the same name and place.
        let mut merged: Vec<Parameter> = Vec::new();
        for list in [item.get("parameters"), op.get("parameters")] {
            for raw in list.and_then(Value::as_array).into_iter().flatten() {
                let p = self.parameter(raw)?;
                match merged
                    .iter_mut()
                    .find(|m| m.name == p.name && m.location == p.location)
                {
                    Some(existing) => *existing = p,
                    None => merged.push(p),
                }
            }
        }
        let body = match op.get("requestBody") {
            Some(raw) => self.body(raw)?,
            None => None,
        };
        // An agent addresses parameters by name alone: a second one with a name already
        // taken (or `body` when there is a body) cannot be passed.
        let mut parameters: Vec<Parameter> = Vec::with_capacity(merged.len());
        for p in merged {
            let clash = parameters
                .iter()
                .any(|q| q.name == p.name && q.agent_settable())
                || (p.name == BODY_KEY && body.is_some());
            if clash && p.agent_settable() {
                if p.required {
                    return Err(ReadError::Invalid(format!(
                        "required parameter `{}` ({}) has the name of another; it could not be passed",
                        p.name, p.location
                    )));
                }
                notes.push(format!(
                    "parameter `{}` ({}) dropped: its name is taken",
                    p.name, p.location
                ));
                continue;
            }
            parameters.push(p);
        }
        let variables = template_variables(path);
        parameters.retain(|p| {
            let used = p.location != Location::Path || variables.contains(&p.name.as_str());
            if !used {
                notes.push(format!(
                    "path parameter `{}` dropped: the path has no `{{{}}}`",
                    p.name, p.name
                ));
            }
            used
        });
        for var in variables {
            if parameters
                .iter()
                .any(|p| p.location == Location::Path && p.name == var)
            {
                continue;
            }
            if parameters.iter().any(|p| p.name == var) || var == BODY_KEY {
                return Err(ReadError::Invalid(format!(
                    "path variable `{{{var}}}` has no path parameter and its name is taken"
                )));
            }
            // A common omission in vendor specs: the variable is a plain string segment.
            notes.push(format!(
                "path variable `{{{var}}}` undeclared: taken as a required string"
            ));
            parameters.push(Parameter {
                name: var.to_owned(),
                location: Location::Path,
                required: true,
                description: None,
                schema: serde_json::json!({"type": "string"}),
                style: Style::Simple,
                explode: false,
            });
        }
        if self.expansions.get() >= MAX_EXPANSIONS {
            notes.push(format!(
                "schemas cut after {MAX_EXPANSIONS} inlined references: deeper parts are not validated"
            ));
        }
        let string = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let operation = Operation {
            id: string(op, "operationId").filter(|s| !s.is_empty()),
            method,
            path: path.to_owned(),
            summary: string(op, "summary").or_else(|| string(item, "summary")),
            description: string(op, "description").or_else(|| string(item, "description")),
            tags: op
                .get("tags")
                .and_then(Value::as_array)
                .map(|t| {
                    t.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            deprecated: op
                .get("deprecated")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            parameters,
            body,
        };
        let mut operation = operation;
        crate::params::check_schemas(&mut operation, &mut notes);
        Ok((operation, notes))
    }

    fn parameter(&self, raw: &'a Value) -> Result<Parameter, ReadError> {
        let raw = self.follow(raw)?;
        let name = raw
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ReadError::Invalid("a parameter has no `name`".into()))?;
        let location = raw
            .get("in")
            .and_then(Value::as_str)
            .and_then(Location::parse)
            .ok_or_else(|| ReadError::Invalid(format!("parameter `{name}` has no valid `in`")))?;
        let schema = match raw.get("schema") {
            Some(s) => self.schema(s)?,
            // The `content` form: one media type holding the schema.
            None => match raw
                .get("content")
                .and_then(Value::as_object)
                .and_then(|c| c.values().next())
                .and_then(|m| m.get("schema"))
            {
                Some(s) => self.schema(s)?,
                None => Value::Object(Map::new()),
            },
        };
        let style = raw
            .get("style")
            .and_then(Value::as_str)
            .and_then(Style::parse)
            .unwrap_or(Style::default_for(location));
        Ok(Parameter {
            name: name.to_owned(),
            location,
            required: location == Location::Path
                || raw
                    .get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            description: raw
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            schema,
            style,
            explode: raw
                .get("explode")
                .and_then(Value::as_bool)
                .unwrap_or(style == Style::Form),
        })
    }

    fn body(&self, raw: &'a Value) -> Result<Option<RequestBody>, ReadError> {
        let raw = self.follow(raw)?;
        let Some(content) = raw.get("content").and_then(Value::as_object) else {
            return Ok(None);
        };
        let is_json = |t: &str| {
            let t = t.split(';').next().unwrap_or_default().trim();
            t == "application/json" || t.ends_with("+json")
        };
        let chosen = content
            .iter()
            .find(|(t, _)| t.split(';').next().unwrap_or_default().trim() == "application/json")
            .or_else(|| content.iter().find(|(t, _)| is_json(t)))
            .or_else(|| content.iter().next());
        let Some((content_type, media)) = chosen else {
            return Ok(None);
        };
        let mut schema = match media.get("schema") {
            Some(s) => self.schema(s)?,
            None => Value::Object(Map::new()),
        };
        drop_read_only_requirements(&mut schema);
        Ok(Some(RequestBody {
            required: raw
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            content_type: content_type.clone(),
            schema,
        }))
    }
}

/// A `readOnly` property is only in responses (OpenAPI: "SHOULD NOT be sent as part of the
/// request"), so a request body is never required to hold it.
fn drop_read_only_requirements(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let read_only: Vec<String> = map
                .get("properties")
                .and_then(Value::as_object)
                .map(|props| {
                    props
                        .iter()
                        .filter(|(_, p)| p.get("readOnly") == Some(&Value::Bool(true)))
                        .map(|(name, _)| name.clone())
                        .collect()
                })
                .unwrap_or_default();
            if !read_only.is_empty()
                && let Some(Value::Array(required)) = map.get_mut("required")
            {
                required.retain(|r| r.as_str().is_none_or(|r| !read_only.iter().any(|n| n == r)));
            }
            for (key, child) in map.iter_mut() {
                if !DATA_KEYWORDS.contains(&key.as_str()) {
                    drop_read_only_requirements(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(drop_read_only_requirements),
        _ => {}
    }
}

/// The `{name}`s of a path template, in order.
pub(crate) fn template_variables(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let after = rest.get(start + 1..).unwrap_or_default();
        let Some(end) = after.find('}') else { break };
        out.push(after.get(..end).unwrap_or_default());
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out
}

/// OpenAPI 3.0's schema dialect to 2020-12's: `nullable: true` becomes a `null` type,
/// boolean `exclusiveMinimum`/`exclusiveMaximum` become numbers.
fn convert_30(schema: &mut Map<String, Value>) {
    if schema.remove("nullable") == Some(Value::Bool(true)) {
        match schema.get_mut("type") {
            Some(Value::String(t)) => {
                let t = std::mem::take(t);
                schema.insert("type".into(), serde_json::json!([t, "null"]));
            }
            Some(Value::Array(types)) if !types.iter().any(|t| t == "null") => {
                types.push("null".into());
            }
            Some(_) => {}
            // No type: anything goes already, unless composed; then null is added as an option.
            None => {
                for key in ["oneOf", "anyOf"] {
                    if let Some(Value::Array(options)) = schema.get_mut(key) {
                        options.push(serde_json::json!({"type": "null"}));
                    }
                }
                if let Some(all) = schema.remove("allOf") {
                    schema.insert(
                        "anyOf".into(),
                        serde_json::json!([{"allOf": all}, {"type": "null"}]),
                    );
                }
            }
        }
        if let Some(Value::Array(values)) = schema.get_mut("enum")
            && !values.contains(&Value::Null)
        {
            values.push(Value::Null);
        }
    }
    for (flag, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(Value::Bool(exclusive)) = schema.get(flag).cloned() {
            schema.remove(flag);
            if exclusive && let Some(limit) = schema.remove(bound) {
                schema.insert(flag.into(), limit);
            }
        }
    }
}

/// Operations grouped by tag, for listings; untagged ones under `""`.
#[must_use]
pub fn by_tag(spec: &Spec) -> BTreeMap<&str, Vec<&Operation>> {
    let mut out: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in spec.operations() {
        if op.tags.is_empty() {
            out.entry("").or_default().push(op);
        }
        for t in &op.tags {
            out.entry(t.as_str()).or_default().push(op);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn one(paths: Value) -> Spec {
        Spec::from_value(&json!({"openapi": "3.1.0", "paths": paths})).unwrap()
    }

    #[test]
    fn method_round_trips_through_text_and_serde() {
        for m in Method::ALL {
            assert_eq!(Method::parse(m.as_str()), Some(m));
            assert_eq!(Method::parse(&m.as_str().to_lowercase()), Some(m));
            assert_eq!(serde_json::to_value(m).unwrap(), json!(m.as_str()));
            assert_eq!(m.to_string(), m.as_str());
        }
        assert_eq!(Method::parse("LIST"), None);
        assert_eq!(
            serde_json::to_value(Location::Header).unwrap(),
            json!("header")
        );
    }

    #[test]
    fn reads_yaml_as_well_as_json() {
        let spec = Spec::parse("openapi: 3.0.0\ninfo: {title: T, version: v1}\npaths:\n  /x:\n    get: {operationId: getX}\n").unwrap();
        assert_eq!(spec.title(), "T");
        assert_eq!(spec.version(), "v1");
        assert_eq!(spec.find("getX").unwrap().key(), "GET /x");
    }

    #[test]
    fn operation_parameters_override_path_parameters_by_name_and_place() {
        let spec = one(json!({"/a/{id}": {
            "parameters": [
                {"name": "id", "in": "path", "schema": {"type": "string"}},
                {"name": "v", "in": "query", "schema": {"type": "string"}, "description": "path level"}],
            "get": {"parameters": [{"name": "v", "in": "query", "required": true, "schema": {"type": "integer"}}]}}}));
        let op = spec.find("GET /a/{id}").unwrap();
        assert_eq!(op.parameters.len(), 2);
        let v = op.parameter("v").unwrap();
        assert!(v.required);
        assert_eq!(v.schema, json!({"type": "integer"}));
        // A path parameter is required whatever the spec says.
        assert!(op.parameter("id").unwrap().required);
    }

    #[test]
    fn an_undeclared_path_variable_becomes_a_string_parameter() {
        let spec = one(json!({"/a/{id}": {"get": {}}}));
        let op = spec.find("GET /a/{id}").unwrap();
        let id = op.parameter("id").unwrap();
        assert_eq!((id.location, id.required), (Location::Path, true));
        assert_eq!(spec.warnings().len(), 1);
    }

    #[test]
    fn a_path_parameter_absent_from_the_template_is_dropped() {
        let spec = one(
            json!({"/a": {"get": {"parameters": [{"name": "id", "in": "path", "required": true}]}}}),
        );
        assert!(spec.find("GET /a").unwrap().parameters.is_empty());
        assert_eq!(spec.warnings().len(), 1);
    }

    #[test]
    fn a_name_clash_drops_the_optional_one_and_skips_on_a_required_one() {
        let spec = one(json!({
            "/a/{id}": {"get": {"parameters": [
                {"name": "id", "in": "path", "required": true},
                {"name": "id", "in": "query"}]}},
            "/b": {"get": {"parameters": [
                {"name": "x", "in": "query"},
                {"name": "x", "in": "header", "required": true}]}}}));
        assert_eq!(spec.find("GET /a/{id}").unwrap().parameters.len(), 1);
        assert!(spec.find("GET /b").is_none());
        assert_eq!(spec.warnings().len(), 2, "{:?}", spec.warnings());
    }

    #[test]
    fn refs_keep_their_siblings_and_data_keywords_are_untouched() {
        let doc = json!({"openapi": "3.1.0",
            "components": {"schemas": {"S": {"type": "string"}}},
            "paths": {"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": {
                "type": "object",
                "properties": {
                    "default": {"$ref": "#/components/schemas/S", "description": "beside the ref"},
                    "e": {"type": "object", "example": {"$ref": "not a reference"}}}}}}}}}}});
        let spec = Spec::from_value(&doc).unwrap();
        let schema = &spec.find("POST /a").unwrap().body.as_ref().unwrap().schema;
        assert_eq!(
            schema["properties"]["default"],
            json!({"type": "string", "description": "beside the ref"})
        );
        assert_eq!(
            schema["properties"]["e"]["example"],
            json!({"$ref": "not a reference"})
        );
    }

    #[test]
    fn compact_params_are_small() {
        let long = "word ".repeat(100);
        let spec = one(json!({"/a/{id}": {"put": {
            "parameters": [
                {"name": "id", "in": "path", "description": long, "schema": {"type": "string"}},
                {"name": "tags", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
                {"name": "Authorization", "in": "header", "required": true}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object", "required": ["a"],
                "properties": {"a": {"type": "object", "properties": {"deep": {"type": "string"}}}, "b": {}}}}}}}}}));
        let op = spec.find("PUT /a/{id}").unwrap();
        let compact = op.compact_params();
        assert_eq!(compact["id"]["in"], json!("path"));
        assert_eq!(compact["id"]["required"], json!(true));
        assert!(
            compact["id"]["description"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                <= 80
        );
        assert_eq!(compact["tags"]["type"], json!("array<string>"));
        assert!(compact.get("Authorization").is_none());
        assert_eq!(compact["body"]["properties"], json!(["a", "b"]));
        assert_eq!(compact["body"]["required_properties"], json!(["a"]));
        assert!(!compact.to_string().contains("deep"));

        let schema = op.params_schema();
        assert_eq!(schema["required"], json!(["id", "body"]));
        assert!(schema["properties"].get("Authorization").is_none());
        assert_eq!(schema["properties"]["tags"]["type"], json!("array"));
    }

    #[test]
    fn find_trims_and_is_case_insensitive_on_the_method() {
        let spec = one(json!({"/a": {"delete": {"operationId": "del"}}}));
        assert_eq!(spec.find(" delete /a ").unwrap().id.as_deref(), Some("del"));
        assert_eq!(spec.find("del").unwrap().method, Method::Delete);
        assert!(spec.find("GET /a").is_none());
        assert!(spec.find("").is_none());
    }

    #[test]
    fn the_3_0_dialect_is_converted() {
        let mut schema = json!({"type": "integer", "nullable": true, "minimum": 1, "exclusiveMinimum": true, "maximum": 9, "exclusiveMaximum": false})
            .as_object()
            .unwrap()
            .clone();
        convert_30(&mut schema);
        assert_eq!(
            Value::Object(schema),
            json!({"type": ["integer", "null"], "exclusiveMinimum": 1, "maximum": 9})
        );
    }

    #[test]
    fn a_body_need_not_hold_read_only_properties() {
        let spec = one(
            json!({"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "required": ["id", "name"],
            "properties": {"id": {"type": "string", "readOnly": true}, "name": {"type": "string"}}}}}}}}}),
        );
        let schema = &spec.find("POST /a").unwrap().body.as_ref().unwrap().schema;
        assert_eq!(schema["required"], json!(["name"]));
    }

    #[test]
    fn template_variables_in_order() {
        assert_eq!(template_variables("/a/{x}/b/{y}.json"), vec!["x", "y"]);
        assert!(template_variables("/a/{unclosed").is_empty());
    }
}
