//! Integration tests of the store: first open, migrations, reopening and failures to open; sealed
//! secrets on SQLite and PostgreSQL.

// Test helpers outside `#[test]` functions are not covered by clippy.toml's test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod open;
mod secrets;
