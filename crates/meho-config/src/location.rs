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

    /// 1-based line and column (in characters) of byte `offset`.
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, column)
    }
}
