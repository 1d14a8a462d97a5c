/// Errors raised while compiling policies or creating overlays. Each names what the user wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A regex did not compile.
    #[error("policy `{policy}`: invalid regex `{pattern}` in `{list}`: {message}")]
    InvalidRegex {
        /// The policy that holds the pattern.
        policy: String,
        /// Which list: `allow`, `deny` or `require_approval`.
        list: &'static str,
        /// The pattern as written.
        pattern: String,
        /// The regex engine's explanation.
        message: String,
    },
    /// An allowlist policy carries `deny` rules, which it would never consult.
    #[error(
        "policy `{policy}`: `deny` is not allowed on an allowlist policy (list what may run in `allow`)"
    )]
    DenyOnAllowlist {
        /// The offending policy.
        policy: String,
    },
    /// A denylist policy carries `allow` rules, which it would never consult.
    #[error(
        "policy `{policy}`: `allow` is not allowed on a denylist policy (use mode = \"allowlist\")"
    )]
    AllowOnDenylist {
        /// The offending policy.
        policy: String,
    },
    /// A grant was requested on a host whose baseline has no allowlist: it would narrow, not widen.
    #[error(
        "host `{host}` has no allowlist in its baseline policy, so a grant would narrow what it allows"
    )]
    GrantNeedsAllowlist {
        /// The host.
        host: String,
    },
    /// A waiver names a command that is blank.
    #[error("a waiver needs a non-blank command")]
    BlankWaiver,
    /// A grant pattern matches the empty string, so it matches inside every command.
    #[error(
        "grant pattern `{pattern}` matches the empty string, so it would allow every command (an unset shell variable gives an empty pattern); name the command and anchor it, e.g. `^journalctl -u nginx$`"
    )]
    GrantMatchesEmpty {
        /// The pattern as given.
        pattern: String,
    },
    /// A grant pattern matches every probe command (`.+`, `\S`, `[^x]`, …).
    #[error(
        "grant pattern `{pattern}` matches any command (it matches each of {probes}); name the command and anchor it, e.g. `^journalctl -u nginx$`"
    )]
    GrantMatchesAnyCommand {
        /// The pattern as given.
        pattern: String,
        /// The probe commands, quoted, for the message.
        probes: String,
    },
}
