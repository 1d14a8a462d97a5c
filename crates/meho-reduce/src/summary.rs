//! What the model is shown of a reduced result: a summary of its columns, a few sample rows, the
//! handle and one example query, within a byte budget. Pure; see `docs/reduction.md`, section
//! "The summary".

use serde_json::{Map, Value, json};

use crate::shape::{Column, Row, ShapeKind};
use crate::sql::{DOC_COLUMN, TABLE, quote_ident};

/// The tool that queries a kept result.
pub const RESULT_QUERY: &str = "result_query";
/// Rows in a sample, at most.
pub const SAMPLE_ROWS: usize = 5;
/// Bytes of a sample (its rows' compact JSON), at most.
pub const SAMPLE_BYTES: usize = 2048;
/// Characters of a string shown in a sample or in the context before it is cut.
const SHOWN_CHARS: usize = 120;
/// Bytes of JSON of an object or array shown in a sample or in the context before it is
/// replaced by a description.
const SHOWN_JSON_BYTES: usize = 160;

/// What the summary is made of.
#[derive(Debug, Clone, Copy)]
pub struct Summary<'a> {
    /// The kept result's handle.
    pub handle: &'a str,
    /// When the kept rows expire (RFC 3339).
    pub expires_at: &'a str,
    /// The shape that was found.
    pub shape: ShapeKind,
    /// The shape's note, if any.
    pub note: Option<&'a str>,
    /// The columns, named as the SQL table names them.
    pub columns: &'a [Column],
    /// The rows (redacted), for the sample.
    pub rows: &'a [Row],
    /// How many of `rows` were kept (the rest exceeded the size cap).
    pub kept_rows: usize,
    /// The size of the tool's result as JSON, in bytes.
    pub source_bytes: u64,
    /// The result's other fields, beside the part that became rows (an exit code, a `continue`
    /// token), already abbreviated.
    pub context: &'a Map<String, Value>,
}

/// The name of a shape as the summary gives it.
pub fn shape_name(kind: ShapeKind) -> &'static str {
    match kind {
        ShapeKind::Collection => "collection",
        ShapeKind::KubernetesList => "kubernetes_list",
        ShapeKind::Scalars => "scalars",
        ShapeKind::Lines => "lines",
        ShapeKind::JsonLines => "json_lines",
        ShapeKind::Table => "table",
        ShapeKind::Passthrough => "object",
    }
}

/// The byte budget of a summary of a result of `source_bytes`: 2% of it, at least 1 KiB, at
/// most `max` (so that the summary and one query stay a small fraction of a medium result too).
pub fn budget(source_bytes: usize, max: usize) -> usize {
    (source_bytes / 50).max(1024).min(max)
}

/// The summary as JSON, at most `budget` bytes when it can be made to fit: examples, sample rows,
/// then columns are given up, in that order, until it does (the answer says what was left out).
pub fn answer(summary: &Summary<'_>, budget: usize) -> Value {
    let sql = example_sql(summary.shape, summary.columns);
    let mut sample = sample(summary.shape, summary.rows);
    let mut examples = 3usize;
    let mut shown_columns = summary.columns.len();
    let mut with_context = true;
    loop {
        let value = assemble(
            summary,
            &sql,
            &sample,
            examples,
            shown_columns,
            with_context,
        );
        if size_of(&value) <= budget {
            return value;
        }
        if examples > 1 {
            examples = 1;
        } else if sample.len() > 1 {
            sample.pop();
        } else if examples > 0 {
            examples = 0;
        } else if !sample.is_empty() {
            sample.clear();
        } else if shown_columns > 1 {
            shown_columns = shown_columns.div_ceil(2).min(shown_columns - 1);
        } else if with_context {
            with_context = false;
        } else {
            return value;
        }
    }
}

fn assemble(
    summary: &Summary<'_>,
    sql: &str,
    sample: &[Value],
    examples: usize,
    shown_columns: usize,
    with_context: bool,
) -> Value {
    let columns: Vec<Value> = summary
        .columns
        .iter()
        .take(shown_columns)
        .map(|column| {
            json!({
                "name": column.name,
                "type": column.ty,
                "nulls": column.nulls,
                "distinct_estimate": column.distinct_estimate,
                "examples": column.examples.iter().take(examples).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut out = Map::new();
    out.insert("reduced".into(), Value::Bool(true));
    out.insert("handle".into(), json!(summary.handle));
    out.insert("rows".into(), json!(summary.rows.len()));
    if summary.kept_rows < summary.rows.len() {
        out.insert("kept_rows".into(), json!(summary.kept_rows));
    }
    out.insert("shape".into(), json!(shape_name(summary.shape)));
    out.insert("source_bytes".into(), json!(summary.source_bytes));
    out.insert("columns".into(), Value::Array(columns));
    if shown_columns < summary.columns.len() {
        out.insert(
            "columns_omitted".into(),
            json!(summary.columns.len() - shown_columns),
        );
    }
    out.insert("sample".into(), Value::Array(sample.to_vec()));
    out.insert("expires_at".into(), json!(summary.expires_at));
    out.insert(
        "how_to_query".into(),
        json!({
            "tool": RESULT_QUERY,
            "arguments": {"handle": summary.handle, "sql": sql},
            "hint": format!(
                "read-only SQLite: table `{TABLE}`, the columns above plus `{DOC_COLUMN}` (the row); JSON1 works"
            ),
        }),
    );
    if let Some(note) = summary.note {
        out.insert("note".into(), json!(note));
    }
    if with_context && !summary.context.is_empty() {
        out.insert("context".into(), Value::Object(summary.context.clone()));
    }
    Value::Object(out)
}

/// The compact JSON size of `value`.
pub fn size_of(value: &Value) -> usize {
    let mut counter = Counter::default();
    // Writing to a counter cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.bytes
}

/// Counts the bytes written to it.
#[derive(Debug, Default)]
struct Counter {
    bytes: usize,
}

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes = self.bytes.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Up to [`SAMPLE_ROWS`] rows within [`SAMPLE_BYTES`], values abbreviated: the newest (last)
/// rows of a log, the first rows of anything else.
fn sample(shape: ShapeKind, rows: &[Row]) -> Vec<Value> {
    let newest_last = matches!(shape, ShapeKind::Lines | ShapeKind::JsonLines);
    let picked: Vec<&Row> = if newest_last {
        let mut last: Vec<&Row> = rows.iter().rev().take(SAMPLE_ROWS).collect();
        last.reverse();
        last
    } else {
        rows.iter().take(SAMPLE_ROWS).collect()
    };
    let mut out: Vec<Value> = Vec::with_capacity(picked.len());
    let mut used = 2usize; // the brackets
    // For a log, keep the newest rows when not all fit: fill from the end.
    let order: Vec<&Row> = if newest_last {
        picked.into_iter().rev().collect()
    } else {
        picked
    };
    for row in order {
        let shown = Value::Object(
            row.iter()
                .map(|(key, value)| (key.clone(), abbreviate(value)))
                .collect(),
        );
        let size = size_of(&shown) + 1;
        if used + size > SAMPLE_BYTES {
            break;
        }
        used += size;
        out.push(shown);
    }
    if newest_last {
        out.reverse();
    }
    out
}

/// `value` as a sample or the context shows it: long strings cut, large objects and arrays
/// described.
pub fn abbreviate(value: &Value) -> Value {
    match value {
        Value::String(text) if text.chars().count() > SHOWN_CHARS => {
            let cut: String = text.chars().take(SHOWN_CHARS).collect();
            Value::String(format!("{cut}… ({} bytes)", text.len()))
        }
        Value::Object(map) => {
            let size = size_of(value);
            if size > SHOWN_JSON_BYTES {
                Value::String(format!("<object: {} keys, {size} bytes>", map.len()))
            } else {
                value.clone()
            }
        }
        Value::Array(items) => {
            let size = size_of(value);
            if size > SHOWN_JSON_BYTES {
                Value::String(format!("<array: {} items, {size} bytes>", items.len()))
            } else {
                value.clone()
            }
        }
        other => other.clone(),
    }
}

/// One query that answers a typical question about this result, for `how_to_query`.
pub fn example_sql(shape: ShapeKind, columns: &[Column]) -> String {
    let named = |name: &str| columns.iter().find(|c| c.name == name);
    if shape == ShapeKind::Lines {
        return format!(
            "SELECT n, line FROM {TABLE} WHERE line LIKE '%error%' ORDER BY n DESC LIMIT 20"
        );
    }
    // Whole Kubernetes objects: their fields are inside `metadata` and `status`.
    if let (Some(_), Some(status)) = (named("metadata"), named("status"))
        && status.ty == "object"
    {
        return format!(
            "SELECT status->>'$.phase' AS phase, count(*) AS n FROM {TABLE} GROUP BY phase ORDER BY n DESC"
        );
    }
    let rows = columns
        .iter()
        .map(|c| c.nulls + c.distinct_estimate)
        .max()
        .unwrap_or(0);
    let groupable = columns.iter().find(|c| {
        matches!(c.ty, "string" | "boolean")
            && c.distinct_estimate >= 2
            && c.distinct_estimate <= 20.min(rows / 2).max(2)
    });
    if let Some(column) = groupable {
        let name = quote_ident(&column.name);
        return format!(
            "SELECT {name}, count(*) AS n FROM {TABLE} GROUP BY {name} ORDER BY n DESC LIMIT 20"
        );
    }
    let scalars: Vec<String> = columns
        .iter()
        .filter(|c| !matches!(c.ty, "object" | "array"))
        .take(4)
        .map(|c| quote_ident(&c.name))
        .collect();
    if scalars.is_empty() {
        format!("SELECT {DOC_COLUMN} FROM {TABLE} LIMIT 5")
    } else {
        format!("SELECT {} FROM {TABLE} LIMIT 20", scalars.join(", "))
    }
}

/// The JSON schema of a reduced tool's result: the tool's own object, or the summary.
pub fn output_schema() -> Value {
    let column = json!({
        "type": "object",
        "required": ["name", "type", "nulls", "distinct_estimate", "examples"],
        "properties": {
            "name": {"type": "string", "description": "The SQL column name."},
            "type": {"enum": ["string", "integer", "number", "boolean", "object", "array", "null", "mixed"]},
            "nulls": {"type": "integer", "minimum": 0},
            "distinct_estimate": {"type": "integer", "minimum": 0},
            "examples": {"type": "array"},
        },
    });
    json!({
        "type": "object",
        "description": "The tool's result. When it is large, a summary instead (`reduced: true`): the rows are kept server-side under `handle`; query them with `result_query`.",
        "$defs": {
            "reduced": {
                "type": "object",
                "required": ["reduced", "handle", "rows", "shape", "columns", "sample", "expires_at", "how_to_query"],
                "properties": {
                    "reduced": {"const": true},
                    "handle": {"type": "string", "pattern": "^res-[0-9a-f]{32}$"},
                    "rows": {"type": "integer", "minimum": 0, "description": "Rows in the result."},
                    "kept_rows": {"type": "integer", "minimum": 0, "description": "Rows kept for querying, when fewer than `rows` (a size cap)."},
                    "shape": {"enum": ["collection", "kubernetes_list", "scalars", "lines", "json_lines", "table", "object"]},
                    "source_bytes": {"type": "integer", "minimum": 0, "description": "The result's size as JSON."},
                    "columns": {"type": "array", "items": column},
                    "columns_omitted": {"type": "integer", "minimum": 1},
                    "sample": {"type": "array", "maxItems": SAMPLE_ROWS, "items": {"type": "object"}},
                    "expires_at": {"type": "string", "format": "date-time"},
                    "how_to_query": {
                        "type": "object",
                        "required": ["tool", "arguments"],
                        "properties": {
                            "tool": {"const": RESULT_QUERY},
                            "arguments": {
                                "type": "object",
                                "required": ["handle", "sql"],
                                "properties": {"handle": {"type": "string"}, "sql": {"type": "string"}},
                            },
                            "hint": {"type": "string"},
                        },
                    },
                    "note": {"type": "string"},
                    "context": {"type": "object", "description": "The result's other fields, abbreviated."},
                },
            },
        },
        "anyOf": [
            {"$ref": "#/$defs/reduced"},
            {"not": {"required": ["reduced"]}},
        ],
    })
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "tests"
    )]

    use serde_json::{Map, Value, json};

    use super::*;
    use crate::shape::{Source, columns, shape};
    use crate::sql::{Limits, ResultTable, column_names};

    const HANDLE: &str = "res-0123456789abcdef0123456789abcdef";

    fn summarize(source: Source<'_>, budget: usize) -> (Value, String, ResultTable) {
        let shaped = shape(source);
        let mut cols = columns(&shaped.rows);
        let fields: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
        for (c, n) in cols.iter_mut().zip(column_names(&fields)) {
            c.name = n;
        }
        let context = Map::new();
        let answer = answer(
            &Summary {
                handle: HANDLE,
                expires_at: "2026-12-07T21:00:00Z",
                shape: shaped.kind,
                note: shaped.note.as_deref(),
                columns: &cols,
                rows: &shaped.rows,
                kept_rows: shaped.rows.len(),
                source_bytes: 1,
                context: &context,
            },
            budget,
        );
        let sql = answer["how_to_query"]["arguments"]["sql"]
            .as_str()
            .unwrap()
            .to_owned();
        let table = ResultTable::load(&fields, &shaped.rows).unwrap();
        (answer, sql, table)
    }

    fn pods(n: usize) -> Value {
        let items: Vec<Value> = (0..n)
            .map(|i| {
                json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("web-{i}"), "namespace": "team", "labels": {"app": "web"}},
                    "spec": {"nodeName": format!("node-{}", i % 3), "containers": [{"name": "web", "image": "nginx:1.27"}]},
                    "status": {"phase": if i % 7 == 0 { "Pending" } else { "Running" }},
                })
            })
            .collect();
        json!({"kind": "PodList", "apiVersion": "v1", "items": items})
    }

    #[test]
    fn every_shapes_example_query_runs_on_its_table() {
        let log: String = (1..=300)
            .map(|i| format!("Dec 07 19:00:{:02} host app[1]: line {i}\n", i % 60))
            .collect();
        let ps =
            "USER PID %CPU %MEM COMMAND\nroot 1 0.0 0.1 /sbin/init\nroot 2 0.0 0.0 [kthreadd]\n"
                .replace("USER PID", "USER       PID")
                .replace("root 1", "root         1")
                .replace("root 2", "root         2");
        let json_lines: String = (0..100)
            .map(|i| {
                format!(
                    "{{\"level\":\"{}\",\"msg\":\"m{i}\"}}\n",
                    ["info", "warn", "error"][i % 3]
                )
            })
            .collect();
        let sources: Vec<(&str, Source<'_>)> = vec![
            ("pods", Source::Json(pods(100))),
            (
                "users",
                Source::Json(
                    json!({"value": (0..80).map(|i| { let dept = ["a", "b", "c"][i % 3]; json!({"id": i, "dept": dept}) }).collect::<Vec<_>>()}),
                ),
            ),
            ("scalars", Source::Json(json!((0..80).collect::<Vec<_>>()))),
            ("object", Source::Json(json!({"a": {"b": 1}, "c": "d"}))),
            ("log", Source::Text(log.as_bytes())),
            ("ps", Source::Text(ps.as_bytes())),
            ("json lines", Source::Text(json_lines.as_bytes())),
        ];
        for (name, source) in sources {
            let (answer, sql, table) = summarize(source, 4096);
            let out = table.query(&sql, &Limits::default());
            assert!(out.is_ok(), "{name}: `{sql}` fails: {out:?}");
            assert!(size_of(&answer) <= 4096, "{name}: {}", size_of(&answer));
        }
    }

    #[test]
    fn the_pod_example_groups_by_phase() {
        let (_, sql, table) = summarize(Source::Json(pods(70)), 4096);
        let out = table.query(&sql, &Limits::default()).unwrap();
        assert_eq!(
            out.rows,
            vec![
                vec![json!("Running"), json!(60)],
                vec![json!("Pending"), json!(10)]
            ]
        );
    }

    #[test]
    fn a_log_sample_shows_the_newest_lines() {
        let log: String = (1..=500).map(|i| format!("line {i}\n")).collect();
        let (answer, _, _) = summarize(Source::Text(log.as_bytes()), 4096);
        let sample = answer["sample"].as_array().unwrap();
        assert_eq!(sample.len(), SAMPLE_ROWS);
        assert_eq!(sample.last().unwrap()["line"], "line 500");
        assert_eq!(sample[0]["n"], 496);
    }

    #[test]
    fn the_answer_fits_its_budget_by_giving_up_examples_sample_then_columns() {
        // 300 columns with long names: cannot all be listed in 4 KiB.
        let rows: Vec<Value> = (0..60)
            .map(|r| {
                let mut row = Map::new();
                for c in 0..300 {
                    row.insert(
                        format!("a_rather_long_column_name_{c:03}"),
                        json!(format!("value {r} {c}")),
                    );
                }
                Value::Object(row)
            })
            .collect();
        let (answer, _, _) = summarize(Source::Json(Value::Array(rows)), 4096);
        assert!(size_of(&answer) <= 4096, "{}", size_of(&answer));
        let shown = answer["columns"].as_array().unwrap().len();
        assert!((1..300).contains(&shown));
        assert_eq!(answer["columns_omitted"], json!(300 - shown));
        assert_eq!(answer["rows"], 60);
        assert_eq!(answer["handle"], HANDLE);
    }

    #[test]
    fn sample_values_are_abbreviated_within_two_kib() {
        let big = "x".repeat(10_000);
        let rows: Vec<Value> = (0..60)
            .map(|i| json!({"id": i, "blob": big, "nested": {"deep": big}}))
            .collect();
        let (answer, _, _) = summarize(Source::Json(Value::Array(rows)), 4096);
        let sample = &answer["sample"];
        assert!(size_of(sample) <= SAMPLE_BYTES);
        assert!(!sample.as_array().unwrap().is_empty());
        assert!(
            sample[0]["blob"]
                .as_str()
                .unwrap()
                .ends_with("(10000 bytes)")
        );
        assert!(
            sample[0]["nested"]
                .as_str()
                .unwrap()
                .starts_with("<object: 1 keys")
        );
    }

    #[test]
    fn the_output_schema_has_an_object_root() {
        let schema = output_schema();
        assert_eq!(schema["type"], "object");
        assert_eq!(
            schema["$defs"]["reduced"]["properties"]["reduced"]["const"],
            true
        );
    }
}
