//! meho-http's integration tests: real vendor specs, hand-written bad ones, and the path
//! segment property.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod bad_specs;
mod calls;
mod edges;
mod openbao;
mod path_segments;
mod prometheus;

use std::io::Read as _;
use std::path::Path;

use meho_http::Spec;

/// OpenBao 2.7.2's own OpenAPI document (see `tests/fixtures/README.md`).
fn openbao() -> Spec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openbao-openapi.json.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    Spec::parse(&text).unwrap()
}

/// The hand-written Prometheus spec the peer tests use.
fn prometheus() -> Spec {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/prometheus/openapi.yaml");
    Spec::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}
