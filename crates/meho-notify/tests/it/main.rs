//! meho-notify's integration tests: the three formats rendered and delivered to a local HTTP
//! receiver, retries and backoff, and the audit record of every delivery.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_debug_implementations
)]

mod delivery;
mod render;
mod support;
