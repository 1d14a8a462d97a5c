use regex::bytes::Regex;

use meho_core::Tier;

use crate::elevation::Elevation;
use crate::lint::refuse_too_broad;
use crate::policy::compile_pattern;
use crate::{HostPolicy, PolicyError};

/// A runtime grant: a TTL'd allow pattern layered on a host whose baseline is an allowlist.
///
/// Grants only ever widen: they are consulted after the baseline's allow rules, after every deny and
/// approval rule, and only where the baseline already has an allowlist (see
/// [`HostPolicy::check_grantable`]).
#[derive(Debug, Clone)]
pub struct Grant {
    /// Stable id, for audit and revocation.
    pub id: String,
    /// The pattern as written.
    pub pattern: String,
    /// The tier of what the grant allows.
    pub tier: Tier,
    /// Unix seconds after which the grant no longer applies.
    pub expires_at: u64,
    regex: Regex,
}

impl Grant {
    /// Compiles a grant. The pattern follows the same rules as policy patterns, and a pattern
    /// that would allow every command (one that matches the empty string, like the `""` an unset
    /// shell variable gives, or every probe command, like `.+`) is refused: the same check as
    /// [`check_grant_pattern`](crate::lint::check_grant_pattern), applied here too so that no
    /// grant takes effect without it, however it reached the store.
    pub fn new(
        id: impl Into<String>,
        pattern: impl Into<String>,
        tier: Tier,
        expires_at: u64,
    ) -> Result<Self, PolicyError> {
        let id = id.into();
        let pattern = pattern.into();
        let regex = compile_pattern(&pattern).map_err(|message| PolicyError::InvalidRegex {
            policy: format!("grant:{id}"),
            list: "allow",
            pattern: pattern.clone(),
            message,
        })?;
        refuse_too_broad(&regex, &pattern)?;
        Ok(Grant {
            id,
            pattern,
            tier,
            expires_at,
            regex,
        })
    }

    /// Whether the grant is in force at `now`.
    pub fn is_active(&self, now: u64) -> bool {
        now < self.expires_at
    }

    pub(crate) fn matches(&self, text: &[u8]) -> bool {
        self.regex.is_match(text)
    }
}

/// An approve-and-learn waiver: lifts `require_approval` for one exact command, elevation, caller
/// and end user, until it expires. It never allows anything that was not already allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiver {
    /// Stable id, for audit and revocation.
    pub id: String,
    /// The exact command line that was approved.
    pub command: String,
    /// The elevation that was approved.
    pub elevation: Elevation,
    /// The agent (MCP client or broker) that asked.
    pub caller: String,
    /// The human behind the agent.
    pub end_user: String,
    /// Unix seconds after which the waiver no longer applies.
    pub expires_at: u64,
}

impl Waiver {
    /// Whether this waiver covers exactly this call at `now`.
    pub fn covers(
        &self,
        command: &str,
        elevation: &Elevation,
        caller: &str,
        end_user: &str,
        now: u64,
    ) -> bool {
        now < self.expires_at
            && self.command == command
            && &self.elevation == elevation
            && self.caller == caller
            && self.end_user == end_user
    }
}

/// The runtime layers passed into a decision: this host's grants and waivers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overlay<'a> {
    /// Grants for this host; expired ones are ignored.
    pub grants: &'a [Grant],
    /// Waivers for this host; expired ones are ignored.
    pub waivers: &'a [Waiver],
}

impl HostPolicy {
    /// Refuses a grant where the baseline has no allowlist: injecting an allow rule there would turn
    /// a default-allow host into an allowlist, the opposite of widening.
    pub fn check_grantable(&self, host: &str) -> Result<(), PolicyError> {
        if self.policies.has_allowlist() {
            Ok(())
        } else {
            Err(PolicyError::GrantNeedsAllowlist {
                host: host.to_owned(),
            })
        }
    }
}
