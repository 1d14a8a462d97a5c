use std::fmt;
use std::str::FromStr;

/// How much an action can change: the axis every gate in meho is keyed on.
///
/// The order is meaningful: `Read < Write < Destructive`, so "the most severe tier of a command line"
/// is simply the maximum.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Observes state and changes nothing.
    Read,
    /// Changes state in a way that can be undone.
    #[default]
    Write,
    /// Changes state in a way that may not be undone (deletes, restarts, wipes).
    Destructive,
}

impl Tier {
    /// The lowercase name used in config, JSON output and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Read => "read",
            Tier::Write => "write",
            Tier::Destructive => "destructive",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tier name that is not `read`, `write` or `destructive`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTierError(pub String);

impl fmt::Display for ParseTierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown tier `{}`, expected `read`, `write` or `destructive`",
            self.0
        )
    }
}

impl std::error::Error for ParseTierError {}

impl FromStr for Tier {
    type Err = ParseTierError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Tier::Read),
            "write" => Ok(Tier::Write),
            "destructive" => Ok(Tier::Destructive),
            other => Err(ParseTierError(other.to_owned())),
        }
    }
}
