#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_debug_implementations
)]

mod approvals;
mod harness;
mod pki;
mod signer;
mod sshd;
mod support;
