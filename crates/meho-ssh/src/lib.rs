//! meho's SSH credential broker.
//!
//! For every SSH operation the broker generates an ephemeral Ed25519 key in memory, asks the
//! [`signer`] for a short-lived certificate bound to the decision, connects (through bastions when
//! the host has a `jump`), runs the call, and drops the key. The agent never sees a credential.
//!
//! Modules:
//! - [`ca`]: CA keys (OpenSSH Ed25519 files) and certificate signing; [`vault_ca`]: a CA in
//!   Vault's SSH secrets engine instead, for the same certificates.
//! - [`signer`]: the trust domain that holds the CAs and the policy; [`signer_http`] serves it over
//!   mutual TLS (`meho signer`) and [`signer_client`] reaches it, remote or in-process.
//! - [`client`]: russh connections with pinned host keys, exec, SFTP.
//! - [`session`]: long-lived sessions (exec, shell, pty) with the marker protocol and recording.
//! - [`broker`]: decide, then credential, then execute, then audit — the one path every frontend
//!   calls, exposed to the gateway as [`broker::SshConnector`].
//!
//! Invariants:
//! - No private key is ever written to disk or logged; ephemeral keys live in an `Arc` owned by
//!   the call or session and are dropped with it.
//! - A host key that differs from the configured one ends the connection before authentication.
//! - Nothing runs without a durable intent record; every refusal is recorded.

pub mod broker;
pub mod ca;
pub mod client;
pub mod recording;
pub mod session;
pub mod setup;
pub mod signer;
pub mod signer_client;
pub mod signer_http;
pub mod tls;
pub mod vault_ca;
pub mod wire;

use std::path::PathBuf;

/// Errors of the SSH broker and signer plumbing. Each names the host or file it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CA key file is missing, unreadable or of the wrong kind.
    #[error("CA key {path}: {message}")]
    CaKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The host's key differs from the pinned one: possible interception, refused.
    #[error(
        "host key mismatch for `{target}`: expected {expected}, the server offered {offered}; refusing to connect (update host_key only if the host was really re-keyed)"
    )]
    HostKeyMismatch {
        /// The target host.
        target: String,
        /// Fingerprint of the configured key.
        expected: String,
        /// What the server presented.
        offered: String,
    },
    /// The host refused the certificate.
    #[error(
        "`{target}` refused certificate serial {serial} (expired, untrusted CA, source-address or principal mismatch; the host's sshd log says which)"
    )]
    AuthRefused {
        /// The target host.
        target: String,
        /// The certificate serial, to find in the sshd log.
        serial: u64,
    },
    /// TCP, DNS, handshake or timeout.
    #[error("cannot connect to `{target}`: {message}")]
    Connect {
        /// The target host.
        target: String,
        /// What failed.
        message: String,
    },
    /// A channel could not be opened or failed.
    #[error("`{target}`: {message}")]
    Channel {
        /// The target host.
        target: String,
        /// What failed.
        message: String,
    },
    /// An SFTP operation failed.
    #[error("`{target}`: {path}: {message}")]
    File {
        /// The target host.
        target: String,
        /// The remote path.
        path: String,
        /// What failed.
        message: String,
    },
    /// A Vault CA cannot be set up (`[vault]` missing or unusable).
    #[error("vault CA: {0}")]
    VaultCa(String),
    /// The signer could not be reached or answered with an error.
    #[error("signer: {0}")]
    Signer(String),
    /// TLS material could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// Anything else; a bug or an environment failure.
    #[error("internal error: {0}")]
    Internal(String),
}
