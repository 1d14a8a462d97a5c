//! Shape detection: tool output into rows.
//!
//! [`shape`] turns what a tool returned (a JSON value, or the bytes of stdout or a log) into rows
//! of JSON objects, and [`columns`] summarises those rows column by column. Both are pure and
//! never panic, whatever the input. The rules are documented in `docs/reduction.md`, section
//! "Shape detection"; keep the two in step.

use std::collections::{HashMap, HashSet};
use std::hash::Hasher;

use serde_json::{Map, Value};

/// A row: one JSON object.
pub type Row = Map<String, Value>;

/// What a tool returned.
#[derive(Debug)]
pub enum Source<'a> {
    /// A JSON value. Owned, so that shaping moves the collection's elements into rows instead
    /// of copying them.
    Json(Value),
    /// Text such as stdout or a log. It may be anything, including bytes that are not UTF-8.
    Text(&'a [u8]),
}

/// What shape the output was found to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeKind {
    /// A JSON array of objects (or of objects and scalars), bare or inside an envelope object.
    Collection,
    /// A Kubernetes list (`kind: …List` with `items`), or meho's compact `k8s_list` table.
    KubernetesList,
    /// A JSON array of scalars only: each becomes a row `{value}`.
    Scalars,
    /// Text, one row `{n, line}` per line.
    Lines,
    /// Text where every non-empty line is a JSON object: one row per line.
    JsonLines,
    /// The text output of a tabular command, rows keyed by the header's column names.
    Table,
    /// No collection found: a scalar or an object, passed through as at most one row.
    Passthrough,
}

/// The output as rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Shaped {
    /// The shape that was detected.
    pub kind: ShapeKind,
    /// The rows, in the output's order.
    pub rows: Vec<Row>,
    /// Why the shape was chosen when that is not obvious (where the collection was found, which
    /// arrays competed, that bytes were replaced).
    pub note: Option<String>,
    /// The fields in the output's own order, when the shape knows it (a table's header, the
    /// compact list's `columns`, `n` then `line`); rows are maps with sorted keys, so this is the
    /// only place that order survives. Empty when the output has none to keep.
    pub order: Vec<String>,
}

/// A summary of one top-level field across rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The field's name.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean`, `object`, `array`, `null` (only nulls) or
    /// `mixed`. Integers and other numbers together are `number`; nulls do not count.
    pub ty: &'static str,
    /// Rows where the field is null or missing.
    pub nulls: usize,
    /// How many distinct non-null values the field has (from hashes, so an estimate).
    pub distinct_estimate: usize,
    /// Up to three distinct non-null values, short: long strings are cut, and large objects
    /// and arrays are left out.
    pub examples: Vec<Value>,
}

/// Fields that hold an envelope's collection.
const ENVELOPE_KEYS: &[&str] = &[
    "items", "value", "results", "result", "data", "elements", "records", "rows", "entries",
    "objects", "body",
];

/// Fields (compared lowercased, without punctuation) that describe a response rather than hold
/// its collection, even when they are arrays.
const METADATA_KEYS: &[&str] = &[
    "metadata",
    "meta",
    "kind",
    "apiversion",
    "next",
    "nextlink",
    "odatanextlink",
    "odatacontext",
    "odatacount",
    "nextpagetoken",
    "nextcursor",
    "cursor",
    "continue",
    "count",
    "total",
    "totalcount",
    "page",
    "pageinfo",
    "pagination",
    "links",
    "self",
    "hasmore",
    "limit",
    "offset",
    "warnings",
    "errors",
    "incompleteresults",
];

/// How many object levels an envelope may be nested (`{"data": {"items": [..]}}`).
const MAX_ENVELOPE_DEPTH: usize = 3;

/// The longest example string, in characters.
const EXAMPLE_CHARS: usize = 80;

/// Shape a tool's output into rows. Never panics.
pub fn shape(source: Source<'_>) -> Shaped {
    match source {
        Source::Json(value) => shape_json(value),
        Source::Text(bytes) => shape_text(bytes),
    }
}

fn shaped(kind: ShapeKind, rows: Vec<Row>, note: Option<String>) -> Shaped {
    Shaped {
        kind,
        rows,
        note,
        order: Vec::new(),
    }
}

/// [`columns`] of `shaped`'s rows, the fields its output ordered first in that order, the rest
/// as [`columns`] gives them.
pub fn ordered_columns(shaped: &Shaped) -> Vec<Column> {
    let mut columns = columns(&shaped.rows);
    if !shaped.order.is_empty() {
        let place = |name: &str| {
            shaped
                .order
                .iter()
                .position(|field| field == name)
                .unwrap_or(usize::MAX)
        };
        // A stable sort: fields the order does not name keep their relative order, last.
        columns.sort_by_key(|column| place(&column.name));
    }
    columns
}

fn shape_json(value: Value) -> Shaped {
    match value {
        Value::Null => shaped(ShapeKind::Passthrough, Vec::new(), None),
        Value::Array(items) => array_rows(items, None),
        Value::Object(object) => shape_object(object, 0, ""),
        scalar => shaped(ShapeKind::Passthrough, vec![value_row(scalar)], None),
    }
}

/// A row `{value}` for a scalar (or any non-object element).
fn value_row(value: Value) -> Row {
    let mut row = Row::new();
    row.insert("value".into(), value);
    row
}

/// Rows from an array: objects as they are, anything else as `{value}`.
fn array_rows(items: Vec<Value>, note: Option<String>) -> Shaped {
    let any_object = items.iter().any(Value::is_object);
    let kind = if items.is_empty() || any_object {
        ShapeKind::Collection
    } else {
        ShapeKind::Scalars
    };
    shaped(kind, element_rows(items), note)
}

fn element_rows(items: Vec<Value>) -> Vec<Row> {
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(object) => object,
            other => value_row(other),
        })
        .collect()
}

fn is_metadata_key(key: &str) -> bool {
    let normalized: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    METADATA_KEYS.contains(&normalized.as_str())
}

/// `path` is where the object sits inside the output (`data.`), for the note.
fn shape_object(mut object: Row, depth: usize, path: &str) -> Shaped {
    if object.is_empty() {
        return shaped(ShapeKind::Passthrough, Vec::new(), None);
    }
    if let Some(shaped) = kubernetes_list(&mut object) {
        return shaped;
    }
    if let Some(shaped) = compact_table(&mut object) {
        return shaped;
    }
    let candidates: Vec<String> = object
        .iter()
        .filter(|(key, value)| value.is_array() && !is_metadata_key(key))
        .map(|(key, _)| key.clone())
        .collect();
    let chosen = match candidates.as_slice() {
        [only] => Some(only.clone()),
        [] => None,
        several => {
            let enveloped: Vec<&String> = several
                .iter()
                .filter(|key| ENVELOPE_KEYS.contains(&key.as_str()))
                .collect();
            match enveloped.as_slice() {
                [only] => Some((*only).clone()),
                _ => {
                    let names: Vec<String> =
                        several.iter().map(|key| format!("`{path}{key}`")).collect();
                    let note = format!(
                        "several arrays could be the collection: {}",
                        names.join(", ")
                    );
                    return shaped(ShapeKind::Passthrough, vec![object], Some(note));
                }
            }
        }
    };
    if let Some(key) = chosen
        && let Some(Value::Array(items)) = object.remove(&key)
    {
        return array_rows(items, Some(format!("the collection is `{path}{key}`")));
    }
    // No array: an envelope key may hold an object that is itself an envelope.
    if depth < MAX_ENVELOPE_DEPTH {
        let nested: Vec<&str> = ENVELOPE_KEYS
            .iter()
            .copied()
            .filter(|key| object.get(*key).is_some_and(Value::is_object))
            .collect();
        if let [key] = nested.as_slice() {
            let key = (*key).to_owned();
            let inner_path = format!("{path}{key}.");
            if let Some(Value::Object(inner)) = object.remove(&key) {
                let mut found = shape_object(inner, depth + 1, &inner_path);
                if found.kind != ShapeKind::Passthrough {
                    return found;
                }
                // Put the inner object back where it was, moved rather than copied.
                let inner = found.rows.pop().unwrap_or_default();
                object.insert(key, Value::Object(inner));
                return shaped(ShapeKind::Passthrough, vec![object], found.note);
            }
        }
    }
    shaped(ShapeKind::Passthrough, vec![object], None)
}

/// A Kubernetes list: `kind` ends with `List` and `items` is an array.
fn kubernetes_list(object: &mut Row) -> Option<Shaped> {
    let is_list = object
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|kind| kind.ends_with("List"))
        && object.get("items").is_some_and(Value::is_array);
    if !is_list {
        return None;
    }
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match object.remove("items") {
        Some(Value::Array(items)) => Some(shaped(
            ShapeKind::KubernetesList,
            element_rows(items),
            Some(format!("a Kubernetes `{kind}`: rows are its items")),
        )),
        _ => None,
    }
}

/// meho's compact `k8s_list` answer: `{columns: [names], rows: [[cells]]}`.
fn compact_table(object: &mut Row) -> Option<Shaped> {
    let names: Vec<String> = object
        .get("columns")?
        .as_array()?
        .iter()
        .map(|name| name.as_str().map(str::to_owned))
        .collect::<Option<_>>()?;
    let rows = object.get("rows")?.as_array()?;
    if names.is_empty() || !rows.iter().all(Value::is_array) {
        return None;
    }
    let keys = unique_names(names);
    let Some(Value::Array(rows)) = object.remove("rows") else {
        return None;
    };
    let rows = rows
        .into_iter()
        .map(|row| {
            let cells = match row {
                Value::Array(cells) => cells,
                other => vec![other],
            };
            let mut out = Row::new();
            let mut cells = cells.into_iter();
            for key in &keys {
                out.insert(key.clone(), cells.next().unwrap_or(Value::Null));
            }
            for (extra, cell) in cells.enumerate() {
                out.insert(format!("column_{}", keys.len() + extra + 1), cell);
            }
            out
        })
        .collect();
    Some(Shaped {
        order: keys,
        ..shaped(
            ShapeKind::KubernetesList,
            rows,
            Some("meho's compact list: rows keyed by `columns`".into()),
        )
    })
}

/// Names made unique: a repeated name gets `_2`, `_3`, ….
fn unique_names(names: Vec<String>) -> Vec<String> {
    let mut seen: HashSet<String> = HashSet::new();
    names
        .into_iter()
        .map(|name| {
            let mut candidate = name.clone();
            let mut n = 2;
            while seen.contains(&candidate) {
                candidate = format!("{name}_{n}");
                n += 1;
            }
            seen.insert(candidate.clone());
            candidate
        })
        .collect()
}

fn shape_text(bytes: &[u8]) -> Shaped {
    let text = String::from_utf8_lossy(bytes);
    let replaced = matches!(text, std::borrow::Cow::Owned(_));
    let lines: Vec<&str> = text.lines().collect();
    if lines.iter().all(|line| line.trim().is_empty()) {
        return shaped(ShapeKind::Lines, Vec::new(), None);
    }
    if let Some(rows) = json_lines(&lines) {
        return shaped(ShapeKind::JsonLines, rows, None);
    }
    let trimmed = text.trim();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(value) = serde_json::from_str::<Value>(trimmed)
    {
        let mut shaped = shape_json(value);
        if shaped.note.is_none() {
            shaped.note = Some("the text is one JSON document".into());
        }
        return shaped;
    }
    if let Some((order, rows)) = table(&lines) {
        return Shaped {
            order,
            ..shaped(ShapeKind::Table, rows, None)
        };
    }
    let rows = lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            let mut row = Row::new();
            row.insert("n".into(), Value::from(index + 1));
            row.insert("line".into(), Value::from(*line));
            row
        })
        .collect();
    let note = replaced.then(|| "bytes that are not UTF-8 were replaced with U+FFFD".to_owned());
    Shaped {
        order: vec!["n".to_owned(), "line".to_owned()],
        ..shaped(ShapeKind::Lines, rows, note)
    }
}

/// One row per line when there are two or more non-empty lines and each is a JSON object.
fn json_lines(lines: &[&str]) -> Option<Vec<Row>> {
    let mut rows = Vec::new();
    for line in lines {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('{') {
            return None;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => rows.push(object),
            _ => return None,
        }
    }
    (rows.len() >= 2).then_some(rows)
}

/// A word of the header: where it starts and ends, in characters.
#[derive(Debug, Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
}

fn words(line: &[char]) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start = None;
    for (index, c) in line.iter().enumerate() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(index),
            (true, Some(s)) => {
                out.push(Word {
                    start: s,
                    end: index,
                });
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(Word {
            start: s,
            end: line.len(),
        });
    }
    out
}

fn cell(line: &[char], from: usize, to: usize) -> String {
    let from = from.min(line.len());
    let to = to.min(line.len());
    line.get(from..to)
        .unwrap_or_default()
        .iter()
        .collect::<String>()
        .trim()
        .to_owned()
}

fn is_blank(line: &[char], from: usize, to: usize) -> bool {
    let to = to.min(line.len());
    line.get(from..to)
        .is_none_or(|chars| chars.iter().all(|c| c.is_whitespace()))
}

/// Rows of a tabular command's output, keyed by its header, when the header parses cleanly.
///
/// A gap between two header words separates columns when some position in it is blank in
/// every line (the cut is in the widest such run); otherwise the words belong to one column
/// (`CONTAINER ID`). Nothing after the
/// last column's start is split, so the last column may hold spaces (`ps`'s `COMMAND`).
fn table(lines: &[&str]) -> Option<(Vec<String>, Vec<Row>)> {
    let mut lines = lines.iter().skip_while(|line| line.trim().is_empty());
    let header: Vec<char> = lines.next()?.chars().collect();
    let header_words = words(&header);
    // Tables pad their header; a header with only single spaces is a sentence. Checked before
    // the data is looked at, so most logs leave here cheaply.
    let padded = header_words
        .windows(2)
        .any(|pair| matches!(pair, [left, right] if right.start >= left.end + 2));
    let first_word = header_words
        .first()
        .and_then(|word| header.get(word.start..word.end))
        .map(|chars| chars.iter().collect::<String>());
    if !padded || !first_word.is_some_and(|word| looks_like_a_column_name(&word)) {
        return None;
    }
    let data: Vec<Vec<char>> = lines
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.chars().collect())
        .collect();
    if data.is_empty() {
        return None;
    }
    // Which positions under the header are blank in every data line, in one pass.
    let mut blank = vec![true; header.len()];
    for line in &data {
        for (slot, c) in blank.iter_mut().zip(line) {
            if !c.is_whitespace() {
                *slot = false;
            }
        }
    }
    let blank_at = |position: usize| blank.get(position).copied().unwrap_or(false);
    // Column starts (the first word's start, then a cut in each separating gap) and the index
    // of the first header word of each column.
    let mut cuts: Vec<usize> = vec![0];
    let mut first_words: Vec<usize> = vec![0];
    for (index, pair) in header_words.windows(2).enumerate() {
        let [left, right] = pair else { continue };
        if let Some(cut) = widest_blank_run(left.end..right.start, &blank_at) {
            cuts.push(cut);
            first_words.push(index + 1);
        }
    }
    // A column that is empty in every row, under a word one space from its neighbour's, is
    // part of that neighbour's name: the previous one's first (`df`'s `Mounted on`), else the
    // next one's (`ss`'s `Local Address:Port` when every address is short).
    let one_space = |left: usize, right: usize| {
        header_words
            .get(left)
            .zip(header_words.get(right))
            .is_some_and(|(left, right)| right.start == left.end + 1)
    };
    let mut column = 0;
    while let (Some(&from), Some(&first)) = (cuts.get(column), first_words.get(column)) {
        let to = cuts.get(column + 1).copied().unwrap_or(usize::MAX);
        let next_first = first_words.get(column + 1).copied();
        let empty = data.iter().all(|line| is_blank(line, from, to));
        let joins_previous = column > 0 && first > 0 && one_space(first - 1, first);
        let joins_next = next_first.is_some_and(|next| next > 0 && one_space(next - 1, next));
        if empty && joins_previous {
            cuts.remove(column);
            first_words.remove(column);
        } else if empty && joins_next {
            cuts.remove(column + 1);
            first_words.remove(column + 1);
        } else {
            column += 1;
        }
    }
    if cuts.len() < 2 {
        return None;
    }
    let bounds: Vec<(usize, usize)> = cuts
        .iter()
        .enumerate()
        .map(|(index, from)| (*from, cuts.get(index + 1).copied().unwrap_or(usize::MAX)))
        .collect();
    let names: Vec<String> = bounds
        .iter()
        .map(|(from, to)| cell(&header, *from, *to))
        .collect();
    if !names.iter().all(|name| looks_like_a_column_name(name)) {
        return None;
    }
    let keys = unique_names(names);
    let rows = data
        .iter()
        .map(|line| {
            keys.iter()
                .zip(&bounds)
                .map(|(key, (from, to))| (key.clone(), Value::String(cell(line, *from, *to))))
                .collect::<Row>()
        })
        .collect();
    Some((keys, rows))
}

/// The end of the widest run of positions blank in every line, the last of equally wide ones.
///
/// A cell may hold single spaces that happen to line up with blanks in every other row (two
/// ports in `docker ps`); the padding between columns is usually the widest run.
fn widest_blank_run(
    gap: std::ops::Range<usize>,
    blank_at: &impl Fn(usize) -> bool,
) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    let mut run = 0;
    for position in gap {
        if blank_at(position) {
            run += 1;
            if best.is_none_or(|(width, _)| run >= width) {
                best = Some((run, position));
            }
        } else {
            run = 0;
        }
    }
    best.map(|(_, end)| end)
}

/// Header names start with a capital (or `%`, `#`) and hold none of the punctuation of
/// prose, logs or data.
fn looks_like_a_column_name(name: &str) -> bool {
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '%' || c == '#');
    let clean = !name.chars().any(|c| {
        matches!(
            c,
            '=' | '[' | ']' | '{' | '}' | '"' | '\'' | ',' | ';' | '!' | '?' | '<' | '>' | '|'
        )
    });
    starts_well && clean
}

/// A hasher fed by `serde_json`'s writer, so hashing a value allocates nothing. foldhash: the
/// serializer writes many small pieces, which SipHash makes costly; the estimate needs no
/// protection against chosen collisions.
struct HashWriter(foldhash::quality::FoldHasher<'static>);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn value_hash(value: &Value) -> u64 {
    let mut writer = HashWriter(std::hash::BuildHasher::build_hasher(
        &foldhash::quality::FixedState::default(),
    ));
    // Writing into a hasher cannot fail; a failure would only merge two distinct values.
    let _ = serde_json::to_writer(&mut writer, value);
    writer.0.finish()
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A writer that refuses to grow past `limit` bytes (the serializer then stops).
struct Bounded {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("longer than an example may be"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A short copy of a value for an example, or `None` when it is too large to be one.
fn example(value: &Value) -> Option<Value> {
    match value {
        Value::String(s) if s.chars().count() > EXAMPLE_CHARS => {
            let mut cut: String = s.chars().take(EXAMPLE_CHARS).collect();
            cut.push('…');
            Some(Value::String(cut))
        }
        Value::Array(_) | Value::Object(_) => {
            // Serialized no further than a text of EXAMPLE_CHARS characters can be long, so a
            // large object is given up on after a few hundred bytes, not written out whole.
            let mut text = Bounded {
                bytes: Vec::new(),
                limit: EXAMPLE_CHARS * 4,
            };
            serde_json::to_writer(&mut text, value).ok()?;
            let chars = std::str::from_utf8(&text.bytes).ok()?.chars().count();
            (chars <= EXAMPLE_CHARS).then(|| value.clone())
        }
        other => Some(other.clone()),
    }
}

#[derive(Default)]
struct ColumnStats {
    ty: Option<&'static str>,
    non_null: usize,
    hashes: HashSet<u64>,
    examples: Vec<Value>,
    example_hashes: Vec<u64>,
}

/// One column per top-level field, in the order the fields are first seen.
pub fn columns(rows: &[Row]) -> Vec<Column> {
    let mut order: Vec<String> = Vec::new();
    let mut stats: HashMap<String, ColumnStats> = HashMap::new();
    for row in rows {
        for (key, value) in row {
            // Look up before inserting, so a key is copied once per column, not once per row.
            if !stats.contains_key(key) {
                order.push(key.clone());
                stats.insert(key.clone(), ColumnStats::default());
            }
            let Some(entry) = stats.get_mut(key) else {
                continue;
            };
            if value.is_null() {
                continue;
            }
            entry.non_null += 1;
            let ty = type_name(value);
            entry.ty = Some(match entry.ty {
                None => ty,
                Some(seen) if seen == ty => ty,
                Some("integer" | "number") if matches!(ty, "integer" | "number") => "number",
                Some(_) => "mixed",
            });
            let hash = value_hash(value);
            entry.hashes.insert(hash);
            if entry.examples.len() < 3
                && !entry.example_hashes.contains(&hash)
                && let Some(short) = example(value)
            {
                entry.examples.push(short);
                entry.example_hashes.push(hash);
            }
        }
    }
    order
        .into_iter()
        .filter_map(|name| {
            let stats = stats.remove(&name)?;
            Some(Column {
                ty: stats.ty.unwrap_or("null"),
                nulls: rows.len().saturating_sub(stats.non_null),
                distinct_estimate: stats.hashes.len(),
                examples: stats.examples,
                name,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn json(value: Value) -> Shaped {
        shape(Source::Json(value))
    }

    fn text(text: &str) -> Shaped {
        shape(Source::Text(text.as_bytes()))
    }

    fn column_names_of(shaped: &Shaped) -> Vec<String> {
        ordered_columns(shaped)
            .into_iter()
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn columns_keep_the_outputs_own_order_where_it_has_one() {
        let ps = "USER         PID %CPU %MEM COMMAND\nroot           1  0.0  0.1 /sbin/init\n";
        assert_eq!(
            column_names_of(&text(ps)),
            ["USER", "PID", "%CPU", "%MEM", "COMMAND"]
        );
        assert_eq!(column_names_of(&text("a\nb c\n")), ["n", "line"]);
        let compact = json!({"columns": ["Name", "Ready", "Age"], "rows": [["a", "1/1", "1d"]]});
        assert_eq!(column_names_of(&json(compact)), ["Name", "Ready", "Age"]);
        // No order of its own: first seen (sorted within a row).
        assert_eq!(
            column_names_of(&json(json!([{"b": 1, "a": 2}]))),
            ["a", "b"]
        );
    }

    fn rows(shaped: &Shaped) -> Value {
        Value::Array(shaped.rows.iter().cloned().map(Value::Object).collect())
    }

    #[test]
    fn an_array_of_objects_is_the_collection() {
        let out = json(json!([{"a": 1}, {"a": 2, "b": "x"}]));
        assert_eq!(out.kind, ShapeKind::Collection);
        assert_eq!(rows(&out), json!([{"a": 1}, {"a": 2, "b": "x"}]));
        assert_eq!(out.note, None);
    }

    #[test]
    fn an_array_of_scalars_gives_value_rows() {
        let out = json(json!([1, "two", null, true]));
        assert_eq!(out.kind, ShapeKind::Scalars);
        assert_eq!(
            rows(&out),
            json!([{"value": 1}, {"value": "two"}, {"value": null}, {"value": true}])
        );
    }

    #[test]
    fn a_mixed_array_keeps_objects_and_wraps_the_rest() {
        let out = json(json!([{"a": 1}, 2, [3]]));
        assert_eq!(out.kind, ShapeKind::Collection);
        assert_eq!(rows(&out), json!([{"a": 1}, {"value": 2}, {"value": [3]}]));
    }

    #[test]
    fn each_envelope_key_holds_the_collection() {
        for key in ENVELOPE_KEYS {
            let out = json(json!({ *key: [{"id": 1}, {"id": 2}], "next": "cursor", "count": 2 }));
            assert_eq!(out.kind, ShapeKind::Collection, "{key}");
            assert_eq!(rows(&out), json!([{"id": 1}, {"id": 2}]), "{key}");
            assert_eq!(out.note, Some(format!("the collection is `{key}`")));
        }
    }

    #[test]
    fn one_array_beside_metadata_is_the_collection() {
        let out = json(json!({
            "metadata": {"page": 1},
            "links": [{"rel": "next"}],
            "users": [{"name": "ann"}],
            "total": 1
        }));
        assert_eq!(out.kind, ShapeKind::Collection);
        assert_eq!(rows(&out), json!([{"name": "ann"}]));
        assert_eq!(out.note.as_deref(), Some("the collection is `users`"));
    }

    #[test]
    fn an_envelope_key_wins_over_another_array() {
        let out = json(json!({"data": [{"id": 1}], "tags": ["a"]}));
        assert_eq!(out.kind, ShapeKind::Collection);
        assert_eq!(rows(&out), json!([{"id": 1}]));
    }

    #[test]
    fn several_candidate_arrays_pass_through_with_a_note_naming_them() {
        let value = json!({"users": [{"id": 1}], "groups": [{"id": 2}]});
        let out = json(value.clone());
        assert_eq!(out.kind, ShapeKind::Passthrough);
        assert_eq!(rows(&out), json!([value]));
        let note = out.note.unwrap();
        assert!(
            note.contains("`users`") && note.contains("`groups`"),
            "{note}"
        );
    }

    #[test]
    fn a_nested_envelope_is_followed() {
        let out = json(json!({"data": {"pods": [{"name": "a"}], "count": 1}}));
        assert_eq!(out.kind, ShapeKind::Collection);
        assert_eq!(rows(&out), json!([{"name": "a"}]));
        assert_eq!(out.note.as_deref(), Some("the collection is `data.pods`"));
    }

    #[test]
    fn a_nested_object_without_a_collection_passes_through_whole() {
        let value = json!({"data": {"name": "a", "spec": {"x": 1}}});
        let out = json(value.clone());
        assert_eq!(out.kind, ShapeKind::Passthrough);
        assert_eq!(rows(&out), json!([value]));
    }

    #[test]
    fn a_kubernetes_list_gives_its_items() {
        let out = json(json!({
            "apiVersion": "v1",
            "kind": "PodList",
            "metadata": {"resourceVersion": "42"},
            "items": [
                {"metadata": {"name": "web-1", "namespace": "prod"}, "status": {"phase": "Running"}},
                {"metadata": {"name": "web-2", "namespace": "prod"}, "status": {"phase": "Pending"}}
            ]
        }));
        assert_eq!(out.kind, ShapeKind::KubernetesList);
        assert_eq!(out.rows.len(), 2);
        assert_eq!(out.rows[1]["status"]["phase"], "Pending");
        assert!(out.note.unwrap().contains("PodList"));
    }

    #[test]
    fn an_empty_kubernetes_list_has_no_rows() {
        let out = json(json!({"kind": "DeploymentList", "apiVersion": "apps/v1", "items": []}));
        assert_eq!(out.kind, ShapeKind::KubernetesList);
        assert!(out.rows.is_empty());
    }

    #[test]
    fn mehos_compact_list_is_keyed_by_its_columns() {
        let out = json(json!({
            "columns": ["Namespace", "Name", "Ready", "Name"],
            "rows": [["prod", "web-1", "1/1", "x"], ["prod", "web-2"], ["a", "b", "c", "d", "e"]],
            "continue": "token"
        }));
        assert_eq!(out.kind, ShapeKind::KubernetesList);
        assert_eq!(
            rows(&out),
            json!([
                {"Namespace": "prod", "Name": "web-1", "Ready": "1/1", "Name_2": "x"},
                {"Namespace": "prod", "Name": "web-2", "Ready": null, "Name_2": null},
                {"Namespace": "a", "Name": "b", "Ready": "c", "Name_2": "d", "column_5": "e"}
            ])
        );
    }

    #[test]
    fn empty_inputs_give_no_rows() {
        assert!(json(json!([])).rows.is_empty());
        assert!(json(json!({})).rows.is_empty());
        assert!(json(Value::Null).rows.is_empty());
        assert!(text("").rows.is_empty());
        assert!(text("\n\n  \n").rows.is_empty());
        assert_eq!(json(json!([])).kind, ShapeKind::Collection);
    }

    #[test]
    fn a_scalar_passes_through_as_one_value_row() {
        for value in [json!(1), json!("s"), json!(true), json!(1.5)] {
            let out = json(value.clone());
            assert_eq!(out.kind, ShapeKind::Passthrough);
            assert_eq!(rows(&out), json!([{"value": value}]));
        }
    }

    #[test]
    fn an_object_without_a_collection_passes_through_as_one_row() {
        let value = json!({"name": "web", "replicas": 3, "labels": {"app": "web"}});
        let out = json(value.clone());
        assert_eq!(out.kind, ShapeKind::Passthrough);
        assert_eq!(rows(&out), json!([value]));
    }

    #[test]
    fn deeply_nested_values_stay_json() {
        let mut deep = json!("leaf");
        for _ in 0..100 {
            deep = json!({"inner": [deep]});
        }
        let out = json(json!([{"deep": deep.clone()}]));
        assert_eq!(out.kind, ShapeKind::Collection);
        assert_eq!(out.rows[0]["deep"], deep);
        let columns = columns(&out.rows);
        assert_eq!(columns[0].ty, "object");
        assert!(columns[0].examples.is_empty(), "too large to be an example");
    }

    #[test]
    fn logs_become_numbered_lines() {
        let out =
            text("2024-05-01T10:00:00Z INFO starting\n\n2024-05-01T10:00:01Z WARN disk at 91%\n");
        assert_eq!(out.kind, ShapeKind::Lines);
        assert_eq!(
            rows(&out),
            json!([
                {"n": 1, "line": "2024-05-01T10:00:00Z INFO starting"},
                {"n": 2, "line": ""},
                {"n": 3, "line": "2024-05-01T10:00:01Z WARN disk at 91%"}
            ])
        );
    }

    #[test]
    fn crlf_lines_lose_their_carriage_return() {
        let out = text("one\r\ntwo\r\n");
        assert_eq!(
            rows(&out),
            json!([{"n": 1, "line": "one"}, {"n": 2, "line": "two"}])
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_a_panic() {
        let out = shape(Source::Text(b"ok\n\xff\xfebad \xc3\n"));
        assert_eq!(out.kind, ShapeKind::Lines);
        assert_eq!(
            rows(&out),
            json!([{"n": 1, "line": "ok"}, {"n": 2, "line": "\u{fffd}\u{fffd}bad \u{fffd}"}])
        );
        assert!(out.note.unwrap().contains("U+FFFD"));
    }

    #[test]
    fn json_lines_give_one_row_per_line() {
        let out =
            text("{\"level\":\"info\",\"msg\":\"up\"}\n\n{\"level\":\"warn\",\"msg\":\"slow\"}\n");
        assert_eq!(out.kind, ShapeKind::JsonLines);
        assert_eq!(
            rows(&out),
            json!([{"level": "info", "msg": "up"}, {"level": "warn", "msg": "slow"}])
        );
    }

    #[test]
    fn a_line_that_is_not_a_json_object_makes_it_plain_lines() {
        let out = text("{\"a\":1}\n[1]\n{\"a\":2}\n");
        assert_eq!(out.kind, ShapeKind::Lines);
        assert_eq!(out.rows.len(), 3);
    }

    #[test]
    fn text_that_is_one_json_document_is_shaped_as_json() {
        let out = text("{\n  \"kind\": \"PodList\",\n  \"items\": [{\"a\": 1}]\n}\n");
        assert_eq!(out.kind, ShapeKind::KubernetesList);
        assert_eq!(rows(&out), json!([{"a": 1}]));
    }

    const PS_AUX: &str = "\
USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND
root           1  0.0  0.1 168532 12980 ?        Ss   Nov30   0:09 /sbin/init splash
root           2  0.0  0.0      0     0 ?        S    Nov30   0:00 [kthreadd]
systemd+     612  0.0  0.0  25536 12400 ?        Ss   Nov30   0:03 /lib/systemd/systemd-resolved
alice      40211  2.5  1.9 338754 31210 pts/0    Sl+  10:02   1:12 /usr/bin/python3 -m http.server 8080
";

    #[test]
    fn ps_aux_is_a_table_whose_command_keeps_its_spaces() {
        let out = text(PS_AUX);
        assert_eq!(out.kind, ShapeKind::Table, "{out:?}");
        assert_eq!(out.rows.len(), 4);
        assert_eq!(
            Value::Object(out.rows[3].clone()),
            json!({
                "USER": "alice", "PID": "40211", "%CPU": "2.5", "%MEM": "1.9", "VSZ": "338754",
                "RSS": "31210", "TTY": "pts/0", "STAT": "Sl+", "START": "10:02", "TIME": "1:12",
                "COMMAND": "/usr/bin/python3 -m http.server 8080"
            })
        );
        assert_eq!(out.rows[0]["COMMAND"], "/sbin/init splash");
        assert_eq!(out.rows[1]["VSZ"], "0", "numbers stay strings");
    }

    const DF_H: &str = "\
Filesystem      Size  Used Avail Use% Mounted on
udev            7.8G     0  7.8G   0% /dev
tmpfs           1.6G  2.1M  1.6G   1% /run
/dev/nvme0n1p2  468G  201G  244G  46% /
/dev/nvme0n1p1  511M  6.1M  505M   2% /boot/efi
";

    #[test]
    fn df_h_is_a_table_with_a_two_word_last_header() {
        let out = text(DF_H);
        assert_eq!(out.kind, ShapeKind::Table, "{out:?}");
        assert_eq!(
            Value::Object(out.rows[2].clone()),
            json!({
                "Filesystem": "/dev/nvme0n1p2", "Size": "468G", "Used": "201G",
                "Avail": "244G", "Use%": "46%", "Mounted on": "/"
            })
        );
        assert_eq!(out.rows[3]["Mounted on"], "/boot/efi");
    }

    #[test]
    fn df_h_with_short_mount_points_still_names_mounted_on() {
        let out = text(
            "Filesystem      Size  Used Avail Use% Mounted on\n\
             udev            7.8G     0  7.8G   0% /dev\n\
             /dev/sda1        98G   45G   49G  48% /\n",
        );
        assert_eq!(out.kind, ShapeKind::Table, "{out:?}");
        assert_eq!(out.rows[1]["Mounted on"], "/");
        assert_eq!(out.rows[0].len(), 6);
    }

    const DOCKER_PS: &str = "\
CONTAINER ID   IMAGE        COMMAND                  CREATED       STATUS                  PORTS                                   NAMES
3f4e5d6c7b8a   nginx:1.25   \"/docker-entrypoint.…\"   2 hours ago   Up 2 hours              0.0.0.0:8080->80/tcp, :::8080->80/tcp   web
9a8b7c6d5e4f   redis:7      \"docker-entrypoint.s…\"   3 days ago    Up 3 days (healthy)     6379/tcp                                cache
0c1d2e3f4a5b   busybox      \"sleep infinity\"         5 weeks ago   Exited (137) 2 days ago                                           old sleeper
";

    #[test]
    fn docker_ps_is_a_table_with_spaces_inside_cells() {
        let out = text(DOCKER_PS);
        assert_eq!(out.kind, ShapeKind::Table, "{out:?}");
        assert_eq!(
            Value::Object(out.rows[1].clone()),
            json!({
                "CONTAINER ID": "9a8b7c6d5e4f", "IMAGE": "redis:7",
                "COMMAND": "\"docker-entrypoint.s…\"", "CREATED": "3 days ago",
                "STATUS": "Up 3 days (healthy)", "PORTS": "6379/tcp", "NAMES": "cache"
            })
        );
        assert_eq!(
            out.rows[0]["PORTS"],
            "0.0.0.0:8080->80/tcp, :::8080->80/tcp"
        );
        assert_eq!(out.rows[2]["PORTS"], "");
        assert_eq!(out.rows[2]["NAMES"], "old sleeper");
    }

    const KUBECTL_GET_PODS: &str = "\
NAME                      READY   STATUS             RESTARTS       AGE
web-7d4b9c8f6d-2xkqp      1/1     Running            0              3d2h
worker-5f6d7c8b9a-q8zrt   0/1     CrashLoopBackOff   12 (4m ago)    41m
";

    #[test]
    fn kubectl_get_pods_is_a_table() {
        let out = text(KUBECTL_GET_PODS);
        assert_eq!(out.kind, ShapeKind::Table, "{out:?}");
        assert_eq!(
            rows(&out),
            json!([
                {"NAME": "web-7d4b9c8f6d-2xkqp", "READY": "1/1", "STATUS": "Running",
                 "RESTARTS": "0", "AGE": "3d2h"},
                {"NAME": "worker-5f6d7c8b9a-q8zrt", "READY": "0/1", "STATUS": "CrashLoopBackOff",
                 "RESTARTS": "12 (4m ago)", "AGE": "41m"}
            ])
        );
    }

    #[test]
    fn kubectl_get_events_keeps_the_message_whole() {
        let out = text(
            "LAST SEEN   TYPE      REASON    OBJECT                        MESSAGE\n\
             2m          Warning   BackOff   pod/worker-5f6d7c8b9a-q8zrt   Back-off restarting failed container\n\
             10m         Normal    Pulled    pod/web-7d4b9c8f6d-2xkqp      Container image already present\n",
        );
        assert_eq!(out.kind, ShapeKind::Table, "{out:?}");
        assert_eq!(out.rows[0]["LAST SEEN"], "2m");
        assert_eq!(
            out.rows[0]["MESSAGE"],
            "Back-off restarting failed container"
        );
        assert_eq!(out.rows[1]["MESSAGE"], "Container image already present");
    }

    const SS_TUNAP: &str = "\
Netid State  Recv-Q Send-Q      Local Address:Port       Peer Address:Port  Process
udp   UNCONN 0      0           127.0.0.53%lo:53              0.0.0.0:*     users:((\"systemd-resolve\",pid=612,fd=13))
tcp   LISTEN 0      4096              0.0.0.0:22              0.0.0.0:*     users:((\"sshd\",pid=901,fd=3))
tcp   ESTAB  0      36           192.168.1.20:22          192.168.1.5:5123  users:((\"sshd\",pid=40100,fd=4),(\"sshd\",pid=40011,fd=4))
";

    #[test]
    fn ss_tunap_is_a_table_with_two_word_headers() {
        let out = text(SS_TUNAP);
        assert_eq!(out.kind, ShapeKind::Table, "{out:?}");
        assert_eq!(
            Value::Object(out.rows[2].clone()),
            json!({
                "Netid": "tcp", "State": "ESTAB", "Recv-Q": "0", "Send-Q": "36",
                "Local Address:Port": "192.168.1.20:22", "Peer Address:Port": "192.168.1.5:5123",
                "Process": "users:((\"sshd\",pid=40100,fd=4),(\"sshd\",pid=40011,fd=4))"
            })
        );
    }

    #[test]
    fn ss_with_only_short_addresses_still_names_local_address() {
        let out = text(
            "Netid State  Recv-Q Send-Q      Local Address:Port    Peer Address:Port Process\n\
             tcp   LISTEN 0      128               0.0.0.0:22           0.0.0.0:*     sshd\n",
        );
        assert_eq!(out.kind, ShapeKind::Table, "{out:?}");
        assert_eq!(out.rows[0]["Local Address:Port"], "0.0.0.0:22");
        assert_eq!(out.rows[0]["Peer Address:Port"], "0.0.0.0:*");
    }

    #[test]
    fn a_header_without_data_is_lines() {
        let out = text("NAME   READY   STATUS\n");
        assert_eq!(out.kind, ShapeKind::Lines);
    }

    #[test]
    fn prose_is_not_a_table() {
        let out = text("Starting nginx server\nListening on port 80\nReady.\n");
        assert_eq!(out.kind, ShapeKind::Lines);
        let out = text("error: no such file\nhint: try again\n");
        assert_eq!(out.kind, ShapeKind::Lines);
        let out = text("Hello World\nfoo   bar\n");
        assert_eq!(
            out.kind,
            ShapeKind::Lines,
            "a header with single spaces is a sentence"
        );
    }

    #[test]
    fn columns_summarise_each_field_in_first_seen_order() {
        let out = json(json!([
            {"name": "a", "n": 1, "ok": true, "tags": ["x"]},
            {"name": "b", "n": 2.5, "ok": null},
            {"name": "a", "n": 3, "extra": "x", "tags": {"k": 1}},
            {"name": "c", "n": 4}
        ]));
        let columns = columns(&out.rows);
        let by_name: HashMap<&str, &Column> =
            columns.iter().map(|c| (c.name.as_str(), c)).collect();
        assert_eq!(columns.len(), 5);
        let name = by_name["name"];
        assert_eq!(
            (name.ty, name.nulls, name.distinct_estimate),
            ("string", 0, 3)
        );
        assert_eq!(name.examples, vec![json!("a"), json!("b"), json!("c")]);
        assert_eq!(by_name["n"].ty, "number");
        assert_eq!(by_name["ok"].ty, "boolean");
        assert_eq!(by_name["ok"].nulls, 3);
        assert_eq!(by_name["extra"].nulls, 3);
        assert_eq!(by_name["tags"].ty, "mixed");
        // Keys come in each row's own order, and a field first seen later comes later.
        assert_eq!(columns.last().unwrap().name, "extra");
    }

    #[test]
    fn a_column_of_only_nulls_is_null_typed() {
        let columns = columns(&json(json!([{"a": null}, {"a": null}])).rows);
        assert_eq!(columns[0].ty, "null");
        assert_eq!(columns[0].nulls, 2);
        assert_eq!(columns[0].distinct_estimate, 0);
        assert!(columns[0].examples.is_empty());
    }

    #[test]
    fn examples_are_short() {
        let long = "x".repeat(500);
        let columns = columns(&json(json!([{"s": long}])).rows);
        let example = columns[0].examples[0].as_str().unwrap();
        assert_eq!(example.chars().count(), EXAMPLE_CHARS + 1);
        assert!(example.ends_with('…'));
    }

    #[test]
    fn shaping_ten_thousand_pods_is_quick() {
        let items: Vec<Value> = (0..10_000)
            .map(|i| {
                json!({
                    "metadata": {"name": format!("pod-{i}"), "namespace": "prod",
                                 "labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
                    "status": {"phase": "Running"}
                })
            })
            .collect();
        let list = json!({"kind": "PodList", "apiVersion": "v1", "items": items});
        let start = std::time::Instant::now();
        let out = json(list);
        assert_eq!(out.rows.len(), 10_000);
        let columns = columns(&out.rows);
        assert_eq!(columns.len(), 3);
        assert_eq!(columns[0].distinct_estimate, 10_000);
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn a_large_log_and_a_large_table_are_shaped_quickly() {
        let start = std::time::Instant::now();
        let log: String = (0..50_000)
            .map(|i| {
                format!(
                    "2024-05-01T10:00:{:02}Z INFO request {i} served in 3ms\n",
                    i % 60
                )
            })
            .collect();
        let out = text(&log);
        assert_eq!((out.kind, out.rows.len()), (ShapeKind::Lines, 50_000));
        let mut table = String::from("NAME                 READY   STATUS    RESTARTS   AGE\n");
        for i in 0..20_000 {
            table.push_str(&format!("web-{i:<16} 1/1     Running   0          3d\n"));
        }
        let out = text(&table);
        assert_eq!((out.kind, out.rows.len()), (ShapeKind::Table, 20_000));
        assert_eq!(out.rows[19_999]["NAME"], "web-19999");
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-zA-Z ]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            let keys = prop_oneof![
                Just("items".to_owned()),
                Just("kind".to_owned()),
                Just("columns".to_owned()),
                Just("rows".to_owned()),
                Just("data".to_owned()),
                Just("metadata".to_owned()),
                "[a-z]{1,4}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(keys, inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn shape_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            let out = shape(Source::Text(&bytes));
            let _ = columns(&out.rows);
        }

        #[test]
        fn shape_never_panics_on_table_like_text(text in "([A-Z%# ]{0,12}|[a-z0-9 /:.\\-]{0,16}|\\{\"a\":1\\}|\n){0,40}") {
            let out = shape(Source::Text(text.as_bytes()));
            let _ = columns(&out.rows);
        }

        #[test]
        fn shape_never_panics_on_arbitrary_json(value in arbitrary_json()) {
            let out = shape(Source::Json(value));
            let _ = columns(&out.rows);
        }

        #[test]
        fn an_array_gives_one_row_per_element(items in prop::collection::vec(arbitrary_json(), 0..16)) {
            let n = items.len();
            let out = shape(Source::Json(Value::Array(items)));
            prop_assert_eq!(out.rows.len(), n);
        }

        #[test]
        fn columns_count_every_row(value in arbitrary_json()) {
            let out = shape(Source::Json(value));
            for column in columns(&out.rows) {
                prop_assert!(column.nulls <= out.rows.len());
                prop_assert!(column.examples.len() <= 3);
                prop_assert!(column.examples.len() <= column.distinct_estimate);
            }
        }
    }
}
