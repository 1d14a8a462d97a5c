//! The one error of the crate. No variant ever carries a token, a secret value or a request
//! body: only the address, the path asked for, the HTTP status and Vault's own error strings
//! (which name what failed, never the credential).

use std::path::PathBuf;

/// What went wrong talking to Vault, or with meho's JWT signing key.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Vault did not answer: the connection was refused, failed, or timed out. A Vault outage
    /// fails every call closed with this error.
    #[error("vault at `{address}` is unreachable: {reason}")]
    Unreachable {
        /// The Vault address the client was built with.
        address: String,
        /// Connect refused, timed out after N ms, or the connection broke.
        reason: String,
        /// reqwest's error (it names the URL, which carries no secret).
        #[source]
        source: Option<reqwest::Error>,
    },
    /// Vault refused: permission denied (403), a missing or invalid token (401), or a login
    /// whose JWT or role it rejected.
    #[error("vault denied `{path}`: {message}")]
    Denied {
        /// The API path (after `/v1/`).
        path: String,
        /// Vault's error strings, joined.
        message: String,
    },
    /// Nothing at that path (404).
    #[error("vault has nothing at `{path}`")]
    NotFound {
        /// The API path (after `/v1/`).
        path: String,
    },
    /// The request was invalid: a name meho refuses to put in a URL, a bad CA certificate, or a
    /// request Vault rejected as malformed (400).
    #[error("invalid vault request: {message}")]
    Invalid {
        /// What is wrong.
        message: String,
    },
    /// Vault answered with another error status (5xx, 429, a sealed Vault…).
    #[error("vault answered {status} for `{path}`: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The API path (after `/v1/`).
        path: String,
        /// Vault's error strings, joined.
        message: String,
    },
    /// Vault answered 2xx with a body meho cannot use.
    #[error("vault answered `{path}` with an unexpected body: {message}")]
    Malformed {
        /// The API path (after `/v1/`).
        path: String,
        /// What was missing or wrong (never the body itself).
        message: String,
    },
    /// The JWT signing key is unusable, or a JWT cannot be made with it.
    #[error("jwt signing key: {message}")]
    Key {
        /// What is wrong.
        message: String,
    },
    /// The JWT signing key file cannot be read or written.
    #[error("jwt signing key file `{}`: {source}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

impl VaultError {
    pub(crate) fn key(message: impl Into<String>) -> Self {
        VaultError::Key {
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        VaultError::Invalid {
            message: message.into(),
        }
    }
}
