//! A thin client of Vault (or OpenBao) for the few endpoints meho uses: JWT login, KV v2 reads,
//! dynamic secrets with their leases (`database/creds/<role>`), lease and token revocation, and
//! SSH certificate signing; and [`JwtIssuer`], meho's own ES256 issuer whose tokens a Vault JWT
//! auth mount can trust, for callers that bring no identity provider token.
//!
//! Invariants:
//! - **Secrets never print.** A [`VaultToken`] holds its token in a `secrecy` type; `Debug` of a
//!   token, a [`Lease`] (keys only) or a [`JwtIssuer`] shows no secret; a [`VaultError`] carries
//!   the address, the API path, the status and Vault's own error strings, never a token, a
//!   secret value or a request body.
//! - **Fail closed.** Every request is bounded by the client's timeout; a refused, broken or
//!   timed-out connection is [`VaultError::Unreachable`], never a retry or a default.
//! - **No redirects.** A redirect could carry the token elsewhere; the client follows none.
//! - Mount, role and path names with empty, `.` or `..` segments are refused; every segment is
//!   percent-encoded, so a name cannot address another endpoint.

mod client;
mod error;
mod jwt;

pub use client::{Lease, SshSignRequest, VaultClient, VaultToken};
pub use error::VaultError;
pub use jwt::{IdentityClaims, JwtIssuer};
