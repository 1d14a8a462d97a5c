//! The OpenAPI half of meho's REST connector.
//!
//! - [`spec`](mod@spec): a lenient reader of OpenAPI 3.0/3.1 documents (JSON or YAML) into an
//!   index of [`Operation`]s, every local `$ref` inlined so nothing is ever fetched.
//! - [`search`](mod@search): ranked text search over the operations, for an agent looking for a
//!   call.
//! - [`params`](mod@params): validates an agent's `params` against an operation and builds the
//!   exact [`Request`] it would send: what the approver sees and the policy decides on.
//!
//! Invariants: no IO (the connector fetches specs and sends requests); no panics; a path
//! parameter's value is always exactly one path segment.

pub mod connector;
pub mod credential;
pub mod params;
pub mod search;
pub mod spec;

pub use connector::{ApiAction, ApiCall, CALL, HttpConnector, SEARCH};
pub use credential::{CallCredential, Federation, Sources};
pub use params::{ParamError, Request, build};
pub use search::{Hit, search};
pub use spec::{Location, Method, Operation, Parameter, RequestBody, Spec, SpecError, Style};
