//! Integration tests of `meho.toml` loading: located errors, defaults, policy composition order and
//! the checked-in JSON schema.

// Test helpers outside `#[test]` functions are not covered by clippy.toml's test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod apis;
mod auth;
mod clusters;
mod composition;
mod defaults;
mod lints;
mod locations;
mod schema;
mod secrets;
mod ssh;

use std::path::Path;

use meho_config::{Config, ConfigError, Diagnostic};

/// A host key line the validator accepts.
pub(crate) const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

/// The minimal valid `[hosts.NAME]` table, followed by `extra` lines in the same table.
pub(crate) fn host(name: &str, extra: &str) -> String {
    format!(
        "[hosts.{name}]\naddr = \"{name}.example:22\"\nuser = \"deploy\"\nhost_key = \"{HOST_KEY}\"\n{extra}"
    )
}

/// Parses `text` as the file `meho.toml`.
pub(crate) fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Some(Path::new("meho.toml")))
}

/// Parses `text`, which must be valid.
pub(crate) fn parse_ok(text: &str) -> Config {
    match parse(text) {
        Ok(config) => config,
        Err(err) => panic!("expected a valid config, got:\n{err}\n--- text ---\n{text}"),
    }
}

/// Parses `text`, which must be invalid, and returns its findings.
pub(crate) fn parse_err(text: &str) -> Vec<Diagnostic> {
    match parse(text) {
        Ok(_) => panic!("expected a config error for:\n{text}"),
        Err(err) => {
            let diagnostics = err.diagnostics().to_vec();
            assert!(
                !diagnostics.is_empty(),
                "an invalid config must carry diagnostics: {err}"
            );
            diagnostics
        }
    }
}

/// The 1-based line and column (in characters) where `needle` first occurs in `text`.
pub(crate) fn position_of(text: &str, needle: &str) -> (usize, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` is not in the test text"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
