//! Integration tests of the decision engine: the corpus, the shell subset against real bash, and
//! property tests of the engine's invariants.

// Test helpers outside `#[test]` functions are not covered by clippy.toml's test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod corpus;
mod executors;
mod lint;
mod props;
mod rng;
mod shell;
