//! Integration tests of the tamper-evident audit log, each behaviour run on both backends:
//! SQLite (a tempdir file) and PostgreSQL (a fresh database per test, from
//! `MEHO_TEST_DATABASE_URL`, default `postgres://root@127.0.0.1:5432/postgres`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]

#[macro_use]
mod support;

mod append_only;
mod chain;
mod checkpoints;
mod crash;
mod fail_closed;
mod feed;
mod query;
mod redaction;
mod tamper;
