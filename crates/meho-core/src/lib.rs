//! Domain types shared by every meho crate: action tiers and the decision the policy engine returns.
//!
//! This crate does no IO and knows no protocol. Everything here is plain data that the audit log, the
//! CLI and (later) the MCP surface print as it is.

mod decision;
pub mod display;
mod tier;

pub use decision::{Decision, DecisionJson, Effect, ReasonCode};
pub use tier::{ParseTierError, Tier};
