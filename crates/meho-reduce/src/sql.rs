//! A sandboxed, read-only SQLite over result rows.
