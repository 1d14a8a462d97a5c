//! The SSH lab lives in the test support, so the benches share it.

pub use meho_test_support::ssh_lab::*;
