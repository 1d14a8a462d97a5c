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
/// The sshd harness, shared with the other crates' tests.
use meho_test_support::sshd as harness;
mod pki;
mod signer;
mod sshd;
mod support;
mod vault_ca;
