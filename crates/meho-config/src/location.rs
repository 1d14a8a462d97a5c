//! Maps a key path inside the document back to a line and column, so errors found after
//! deserialization (an invalid regex, an unknown policy name) still point into the file.

use std::ops::Range;

use toml_edit::{Document, Item};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

impl From<&str> for Segment {
    fn from(key: &str) -> Self {
        Segment::Key(key.to_owned())
    }
}

impl From<&String> for Segment {
    fn from(key: &String) -> Self {
        Segment::Key(key.clone())
    }
}

impl From<usize> for Segment {
    fn from(index: usize) -> Self {
        Segment::Index(index)
    }
}

/// Builds a key path from heterogeneous segments.
macro_rules! key_path {
    ($($seg:expr),* $(,)?) => { [$($crate::location::Segment::from($seg)),*] };
}
pub(crate) use key_path;

/// The source text and its parsed document, for locating paths.
pub(crate) struct Locator<'a> {
    text: &'a str,
    doc: Option<Document<&'a str>>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Locator {
            text,
            doc: Document::parse(text).ok(),
        }
    }

    /// The span of the deepest item on `path` that exists; the key itself when the value has none.
    pub(crate) fn span(&self, path: &[Segment]) -> Option<Range<usize>> {
        let doc = self.doc.as_ref()?;
        let mut item: &Item = doc.as_item();
        let mut best = None;
        for segment in path {
            // A segment that is not in the file (a defaulted key) ends the walk at its parent.
            let next = match segment {
                Segment::Key(key) => {
                    let Some((key_repr, value)) =
                        item.as_table_like().and_then(|t| t.get_key_value(key))
                    else {
                        break;
                    };
                    best = key_repr.span().or(best);
                    value
                }
                Segment::Index(index) => match item.get(*index) {
                    Some(next) => next,
                    None => break,
                },
            };
            best = next.span().or(best);
            item = next;
        }
        best
    }

    /// The dotted key path (`hosts.web1`, `notifications.webhooks[0]`) of the deepest table
    /// whose span starts at or contains byte `offset`: what a deserialization error that only
    /// has a span (a missing field) is about.
    pub(crate) fn table_at(&self, offset: usize) -> Option<String> {
        fn walk(item: &Item, offset: usize, path: &mut Vec<String>, best: &mut Option<String>) {
            let here = |span: Option<Range<usize>>| {
                span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
            };
            if let Some(table) = item.as_table_like() {
                for (key, value) in table.iter() {
                    // A table's span is its header only (or its braces, inline), and a child
                    // table need not sit inside its parent's: every table is looked into.
                    path.push(key.to_owned());
                    if here(value.span()) {
                        *best = Some(path.join("."));
                    }
                    walk(value, offset, path, best);
                    path.pop();
                }
            } else if let Some(array) = item.as_array_of_tables() {
                for (index, table) in array.iter().enumerate() {
                    if here(table.span()) {
                        let last = path.pop().unwrap_or_default();
                        path.push(format!("{last}[{index}]"));
                        *best = Some(path.join("."));
                        let table = Item::Table(table.clone());
                        walk(&table, offset, path, best);
                        path.pop();
                        path.push(last);
                    }
                }
            }
        }
        let doc = self.doc.as_ref()?;
        let mut best = None;
        walk(doc.as_item(), offset, &mut Vec::new(), &mut best);
        best
    }

    /// 1-based line and column (in characters) of byte `offset`.
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, column)
    }
}
