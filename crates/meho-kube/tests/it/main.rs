//! meho's Kubernetes connector against a real kube-apiserver (Kubernetes 1.36, RBAC,
//! TokenRequest, its audit log), through the gateway's pipeline. One apiserver serves the whole
//! binary (it takes seconds to start); each test works in a namespace of its own.

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
mod changes;
mod logs;
mod manifests;
mod overlays;
mod reads;
mod secrets;
mod support;
mod targets;
mod tokens;
