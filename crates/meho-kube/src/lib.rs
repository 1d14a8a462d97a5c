//! meho's Kubernetes connector: the second target kind of the gateway's pipeline.
//!
//! The agent never holds a cluster credential. For every authorized call the connector mints a
//! token for the caller's bound ServiceAccount with the TokenRequest API (`token_ttl_seconds`,
//! 600–900 s), uses it for that one call, and drops it; its `jti` is the credential serial of the
//! records. The token is never logged, audited or returned.
//!
//! Two layers decide: meho's action policy first (layer A: every object reduces to a canonical
//! string, decided by the cluster's rules in the shared engine, before anything is minted), then
//! the cluster's own RBAC for the ServiceAccount (layer B: a 403 is `forbidden_by_cluster`,
//! naming the account). A held `k8s_apply` or `k8s_delete` carries the server's dry run
//! (`dryRun=All`) as a diff against the live object; a dry run the server refuses is not held.
//!
//! Invariants:
//! - The object a call touches is the object its canonical string names: the string is built
//!   from the same resolved resource, namespace and name the request is built from, and an
//!   apply's namespace is written into the object before it is decided.
//! - Nothing is minted for a call layer A refuses.
//! - Secret values never reach the model unless a `reveal` rule allows it; the last-applied
//!   annotation, which repeats them, goes with them.

mod cluster;
mod connector;
mod render;

pub use cluster::{ClusterRuntime, Minted, Resource, Resources};
pub use connector::{
    APPLY, ApplyArgs, DEFAULT_LIST_LIMIT, DEFAULT_TAIL_LINES, DELETE, DeleteArgs, FIELD_MANAGER,
    Format, GET, GetArgs, KubeCall, KubeConnector, LIST, LOG_CAP_BYTES, LOGS, ListArgs, LogsArgs,
    MAX_LIST_LIMIT, MAX_MANIFEST_BYTES, MAX_OBJECTS, Object, Planned, Propagation, read_manifest,
};

use meho_gateway::{ErrorCode, ToolError};

/// How the API server's server-side apply begins the (500) answer to an object that does not
/// fit the resource's schema: the field is named after it, e.g. `.spec.replicas: expected
/// numeric (int or float), got string` or `.spec.foo: field not declared in schema`.
const SSA_SCHEMA_ERROR: &str = "failed to create typed patch object";

/// A failed request to cluster `cluster` made as `who` (the ServiceAccount, or the minter), as
/// the caller sees it: RBAC's 403 is `forbidden_by_cluster` naming the account and the
/// cluster's message; 404 `not_found`; 409 `conflict`; 400 and 422 (a strict field validation
/// error, a malformed object) `invalid_arguments` with the server's words, and so is the 500 a
/// server-side apply answers for an object that does not fit the resource's schema (an unknown
/// field, a string where a number goes); anything that never got an answer `unreachable`.
pub(crate) fn api_error(cluster: &str, who: &str, err: kube::Error) -> ToolError {
    let shown = |text: &str| meho_core::display::escape(text).into_owned();
    match err {
        kube::Error::Api(status) => {
            let message = shown(&status.message);
            let (code, text) = match status.code {
                403 => (
                    ErrorCode::ForbiddenByCluster,
                    format!(
                        "meho's policy allowed this, but cluster `{cluster}` refused it for {who}: {message}"
                    ),
                ),
                404 => (
                    ErrorCode::NotFound,
                    format!("cluster `{cluster}`: {message}"),
                ),
                409 => (
                    ErrorCode::Conflict,
                    format!("cluster `{cluster}` refused the change: {message}"),
                ),
                400 | 422 => (
                    ErrorCode::InvalidArguments,
                    format!("cluster `{cluster}` refused the request: {message}"),
                ),
                500 if status.message.starts_with(SSA_SCHEMA_ERROR) => (
                    ErrorCode::InvalidArguments,
                    format!("cluster `{cluster}` refused the request: {message}"),
                ),
                401 => (
                    ErrorCode::Internal,
                    format!("cluster `{cluster}` did not accept the token of {who}: {message}"),
                ),
                code => (
                    ErrorCode::ExecutionFailed,
                    format!("cluster `{cluster}` answered {code}: {message}"),
                ),
            };
            ToolError::new(code, text).with_detail(serde_json::json!({
                "status": status.code,
                "reason": status.reason,
            }))
        }
        other => ToolError::new(
            ErrorCode::Unreachable,
            format!(
                "cannot reach cluster `{cluster}`: {}",
                shown(&other.to_string())
            ),
        ),
    }
}
