//! End-to-end tests of the `meho` binary: help and version, the `policy check` JSON contract,
//! `policy explain`, `config validate`, a real `serve` process on a real socket, the `audit`
//! subcommands, the SSH commands (`ca`, `signer`, `ssh`, `serve --dev`), and MCP over stdio and
//! Streamable HTTP with real clients, a real OpenID provider and a real sshd.

// Test helpers outside `#[test]` functions are not covered by clippy.toml's test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod api_mcp;
mod audit;
mod check;
mod cli;
mod console_e2e;
mod explain;
mod forged;
mod hitl;
mod kube_mcp;
mod mcp;
#[allow(dead_code)] // helpers for the MCP tests; not every one is used yet
mod peers;
mod readme;
mod reduce_mcp;
mod remote_cli;
mod schemathesis;
mod secrets_cli;
mod serve;
mod ssh_cli;
mod support;
mod validate;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

/// A host key line the validator accepts.
pub(crate) const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

/// Environment variables that select config or state; cleared so the developer's shell cannot leak
/// into a test.
const MEHO_ENV: &[&str] = &[
    "MEHO_CONFIG",
    "MEHO_DATA_DIR",
    "MEHO_LOG",
    "MEHO_STORE_URL",
    "MEHO_SERVER",
    "MEHO_TOKEN",
];

/// A temporary working directory for one test, with helpers to write configs into it.
pub(crate) struct Workdir {
    dir: TempDir,
}

impl Workdir {
    pub(crate) fn new() -> Self {
        Workdir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `name` in the directory and returns its path.
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `meho ARGS`, run in this directory with no MEHO_* variables set.
    pub(crate) fn meho(&self) -> Command {
        let mut cmd = Command::cargo_bin("meho").unwrap();
        cmd.current_dir(self.dir.path());
        for var in MEHO_ENV {
            cmd.env_remove(var);
        }
        cmd.timeout(std::time::Duration::from_secs(60));
        cmd
    }
}

/// The minimal valid `[hosts.NAME]` table, followed by `extra` lines in the same table.
pub(crate) fn host(name: &str, extra: &str) -> String {
    format!(
        "[hosts.{name}]\naddr = \"{name}.example:22\"\nuser = \"deploy\"\nhost_key = \"{HOST_KEY}\"\n{extra}\n"
    )
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

pub(crate) fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub(crate) fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}
