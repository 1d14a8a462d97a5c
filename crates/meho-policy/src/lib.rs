//! The meho decision engine: the command firewall, policy composition, elevation, runtime grants and
//! approval waivers, and the step-by-step trace behind `meho policy explain`.
//!
//! Invariants:
//! - No IO and no clock. Time comes in as [`Request::now`] so a decision is a pure function of the
//!   compiled policy, the overlays and the request.
//! - No panics: every input, however hostile, yields a [`Decided`]: a
//!   [`Decision`](meho_core::Decision) and the [`CommandShape`] of what would run.
//! - Every decision names the rule that produced it.

mod decide;
mod elevation;
mod error;
pub mod http;
pub mod kube;
pub mod lint;
mod overlay;
mod policy;
mod rules;
pub mod shell;

pub use decide::{CommandShape, Decided, HostPolicy, Request, Step};
pub use elevation::{Elevation, is_valid_sudo_user};
pub use error::PolicyError;
pub use overlay::{Grant, Overlay, Waiver};
pub use policy::{CommandPolicy, Enforcement, Member, Mode, PolicySet};
