use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::Failure;
use crate::remote::Token;

/// meho: a governance backplane between AI agents and the infrastructure they operate.
#[derive(Debug, Parser)]
#[command(name = "meho", version, propagate_version = true, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the version of this build.
    Version(VersionArgs),
    /// Check and describe meho.toml.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Decide and explain commands against a host's policy, offline.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run the server: health, readiness and metrics on `[server] listen`.
    Serve(ServeArgs),
    /// Serve MCP over stdio for a local client (`claude mcp add meho -- meho mcp`). Acts as the
    /// local OS user (or `[mcp.stdio]`) in tenant `default`; logs go to stderr.
    Mcp(McpArgs),
    /// The tamper-evident audit log: keys, verification, queries, export.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// SSH certificate authorities: create one, show the configured ones.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Run the signer: the process that holds the SSH CA keys and signs per-call certificates for
    /// brokers over mutual TLS (`POST /v1/sign`, `GET /v1/hosts`).
    Signer(SignerArgs),
    /// SSH calls through the gateway, exactly as an agent makes them: decide, credential, execute,
    /// audit.
    #[command(subcommand)]
    Ssh(SshCommand),
    /// Call-bound approvals on a meho server (`--server`/`MEHO_SERVER`): list, show, approve, deny.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Runtime grants on a meho server: TTL'd allow patterns that widen an allowlist host.
    #[command(subcommand)]
    Grants(GrantsCommand),
    /// The kill switch on a meho server: freeze a principal, an SSH session or a credential
    /// serial (every later call from it is denied, its sessions closed), or list freezes with
    /// --list.
    Freeze(FreezeArgs),
    /// Lift a freeze on a meho server.
    Unfreeze(UnfreezeArgs),
    /// Credentials meho stores for its connectors, sealed with the key from `MEHO_SECRETS_KEY`
    /// or `[secrets] key_file`: create a key, set, list, delete, rotate (on the store directly).
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecretsCommand {
    /// Create a secrets key: base64 of 32 random bytes, written with mode 0600. Never replaces a
    /// file.
    Keygen(SecretsKeygenArgs),
    /// Store a secret (replacing its value if it exists). The value is read from stdin, one
    /// trailing newline removed; it is never taken from the command line.
    Set(SecretsSetArgs),
    /// List a tenant's secrets: names, key ids and times, never values.
    List(SecretsListArgs),
    /// Delete a secret.
    Delete(SecretsDeleteArgs),
    /// Re-encrypt every stored secret (all tenants) from the configured key to a new one, in one
    /// transaction; then point `[secrets] key_file` (or `MEHO_SECRETS_KEY`) at the new key.
    Rotate(SecretsRotateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SecretsKeygenArgs {
    /// Write the key here (mode 0600); an existing file is refused.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct SecretsSetArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// The secret's name, `[A-Za-z0-9_.-]{1,128}`; the config refers to it as `stored:NAME`.
    #[arg(value_name = "NAME")]
    pub(crate) name: String,
    /// The tenant the secret belongs to.
    #[arg(long, default_value = meho_config::DEFAULT_TENANT, value_name = "TENANT")]
    pub(crate) tenant: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct SecretsListArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// The tenant whose secrets to list.
    #[arg(long, default_value = meho_config::DEFAULT_TENANT, value_name = "TENANT")]
    pub(crate) tenant: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct SecretsDeleteArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// The secret's name.
    #[arg(value_name = "NAME")]
    pub(crate) name: String,
    /// The tenant the secret belongs to.
    #[arg(long, default_value = meho_config::DEFAULT_TENANT, value_name = "TENANT")]
    pub(crate) tenant: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct SecretsRotateArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// The new key (as `meho secrets keygen --out` writes it). The old key is the configured one:
    /// `MEHO_SECRETS_KEY`, else `[secrets] key_file`.
    #[arg(long, value_name = "FILE")]
    pub(crate) new_key_file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

/// Where the remote commands send their requests, and the bearer token they send.
#[derive(Debug, Args)]
pub(crate) struct RemoteArgs {
    /// The meho server's base URL, e.g. `https://meho.example` or `http://127.0.0.1:8080`.
    #[arg(long, env = "MEHO_SERVER", value_name = "URL")]
    pub(crate) server: Option<String>,
    /// The bearer token: an access token from `[auth] issuer`, or the `MEHO_TOKEN` that
    /// `meho serve --dev` prints. Prefer the environment variable: other local users can read
    /// command lines.
    #[arg(long, env = "MEHO_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub(crate) token: Option<Token>,
}

impl RemoteArgs {
    /// Whether a server was named (an empty `MEHO_SERVER` names none).
    pub(crate) fn wants_remote(&self) -> bool {
        self.server.as_deref().is_some_and(|s| !s.is_empty())
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApprovalsCommand {
    /// List approvals in the token's tenant, newest first.
    List(ApprovalListArgs),
    /// Print one approval in full: the exact call, rule, tier, state and decision.
    Show(ApprovalShowArgs),
    /// Approve a pending call (four eyes: not your own). With --learn --ttl, also mint a waiver
    /// for that exact command, elevation, caller and end user.
    Approve(ApprovalApproveArgs),
    /// Deny a pending call.
    Deny(ApprovalDenyArgs),
}

/// An approval's state, for `approvals list --status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    Expired,
    Consumed,
}

impl ApprovalStatus {
    /// The API's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
            ApprovalStatus::Consumed => "consumed",
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ApprovalListArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// Only approvals in this state.
    #[arg(long, value_enum)]
    pub(crate) status: Option<ApprovalStatus>,
    /// At most this many (1-500; the server's default is 50).
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u32>,
    /// Output format (`json` prints the server's answer).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ApprovalShowArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// The approval id (`apr-…`).
    #[arg(value_name = "ID")]
    pub(crate) id: String,
    /// Output format (`json` prints the server's answer).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ApprovalApproveArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// The approval id (`apr-…`).
    #[arg(value_name = "ID")]
    pub(crate) id: String,
    /// Why you approve; recorded in the audit log (1-1024 characters).
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: String,
    /// Approve and learn: also mint a waiver so the same command, elevation, caller and end user
    /// runs without approval for --ttl.
    #[arg(long, requires = "ttl")]
    pub(crate) learn: bool,
    /// How long the waiver lasts (`30m`, `2h`, `7d`; the server accepts 1m to 7d). Only with
    /// --learn.
    #[arg(long, requires = "learn", value_name = "DURATION", value_parser = duration)]
    pub(crate) ttl: Option<std::time::Duration>,
    /// Output format (`json` prints the server's answer).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ApprovalDenyArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// The approval id (`apr-…`).
    #[arg(value_name = "ID")]
    pub(crate) id: String,
    /// Why you deny; the requester sees it (1-1024 characters).
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: String,
    /// Output format (`json` prints the server's answer).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

/// A duration such as `90s`, `30m`, `2h` or `7d`.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|err| format!("{err} (expected a duration such as `90s`, `30m`, `2h` or `7d`)"))
}

#[derive(Debug, Subcommand)]
pub(crate) enum GrantsCommand {
    /// Grant a TTL'd allow pattern on a host whose baseline policy is an allowlist (grants only
    /// widen; a host without an allowlist is refused).
    Create(GrantCreateArgs),
    /// List grants in force (all of them, revoked and expired too, with --all).
    List(GrantListArgs),
    /// Print one grant.
    Show(GrantIdArgs),
    /// Revoke a grant at once.
    Revoke(GrantIdArgs),
}

/// The tier a grant allows its commands at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GrantTier {
    Read,
    Write,
    Destructive,
}

impl GrantTier {
    /// The API's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            GrantTier::Read => "read",
            GrantTier::Write => "write",
            GrantTier::Destructive => "destructive",
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct GrantCreateArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// The host, as named under `[hosts.<name>]`.
    #[arg(long, value_name = "HOST")]
    pub(crate) target: String,
    /// The regex the whole command must match, as in an allowlist (`^journalctl -u nginx$`).
    #[arg(long, value_name = "REGEX", allow_hyphen_values = true)]
    pub(crate) pattern: String,
    /// The tier of the commands it allows.
    #[arg(long, value_enum)]
    pub(crate) tier: GrantTier,
    /// How long it lasts (`15m`, `1h`, `7d`; the server accepts 1m to 7d).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) ttl: std::time::Duration,
    /// Why; recorded in the audit log.
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: String,
    /// Output format (`json` prints the server's answer).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct GrantListArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// Only grants on this host.
    #[arg(long, value_name = "HOST")]
    pub(crate) target: Option<String>,
    /// Also revoked and expired grants.
    #[arg(long)]
    pub(crate) all: bool,
    /// Output format (`json` prints the server's answer).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct GrantIdArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// The grant id (`grt-…`).
    #[arg(value_name = "ID")]
    pub(crate) id: String,
    /// Output format (`json` prints the server's answer).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("subject").required(true).args(["principal", "session", "serial", "list"])),
    override_usage = "meho freeze [OPTIONS] (--principal <PRINCIPAL> | --session <SESSION_ID> | --serial <SERIAL>) --reason <TEXT>\n       meho freeze --list [--all] [OPTIONS]"
)]
pub(crate) struct FreezeArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// Freeze this principal (an agent's or user's `sub`): its calls are denied, its sessions
    /// closed.
    #[arg(long, value_name = "PRINCIPAL")]
    pub(crate) principal: Option<String>,
    /// Freeze this SSH session (its id from `ssh_session_open`): it is closed and stays closed.
    #[arg(long, value_name = "SESSION_ID")]
    pub(crate) session: Option<String>,
    /// Freeze this certificate serial (from the audit log): the session it opened is closed.
    #[arg(long, value_name = "SERIAL")]
    pub(crate) serial: Option<u64>,
    /// Why; recorded in the audit log. Required to freeze.
    #[arg(
        long,
        value_name = "TEXT",
        required_unless_present = "list",
        conflicts_with = "list"
    )]
    pub(crate) reason: Option<String>,
    /// List the freezes in force instead of creating one.
    #[arg(long)]
    pub(crate) list: bool,
    /// With --list: also the lifted ones.
    #[arg(long, conflicts_with_all = ["principal", "session", "serial", "reason"])]
    pub(crate) all: bool,
    /// Output format (`json` prints the server's answer).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct UnfreezeArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// The freeze id (`frz-…`, from `meho freeze --list`).
    #[arg(value_name = "ID")]
    pub(crate) id: String,
    /// Why it is lifted; recorded in the audit log.
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: Option<String>,
    /// Output format (`json` prints the server's answer).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CaCommand {
    /// Create an Ed25519 SSH CA key (OpenSSH format, mode 0600) and its `.pub`; print the public
    /// line for sshd's `TrustedUserCAKeys`. Never replaces an existing file.
    Init(CaInitArgs),
    /// Print each configured CA: its host group, fingerprint and public line.
    Show(CaShowArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CaInitArgs {
    /// Write the private key here (the public key goes to FILE.pub).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct CaShowArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// The data directory, where `meho serve --dev` keeps its CA (default: `[server] data_dir`).
    #[arg(long, env = "MEHO_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct SignerArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Listen on this address instead of `[signer] listen`.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SshCommand {
    /// Run one command on a host under a certificate that permits only that command. Exits with
    /// the remote command's status.
    #[command(override_usage = "meho ssh exec [OPTIONS] <HOST> [--] <COMMAND>...")]
    Exec(SshExecArgs),
    /// List the hosts the caller may use.
    Hosts(SshHostsArgs),
    /// Upload a local file (`-` for stdin) to an absolute path on a host over SFTP.
    Put(SshPutArgs),
    /// Download a file from a host over SFTP (to stdout with `-`).
    Get(SshGetArgs),
}

impl SshCommand {
    /// The flags every `meho ssh` subcommand has.
    pub(crate) fn common(&self) -> &SshCommonArgs {
        match self {
            SshCommand::Exec(args) => &args.common,
            SshCommand::Hosts(args) => &args.common,
            SshCommand::Put(args) => &args.common,
            SshCommand::Get(args) => &args.common,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct SshCommonArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// The caller (agent) identity the gateway sees and the audit log records
    /// (default: `cli:$USER`).
    #[arg(long, value_name = "NAME")]
    pub(crate) caller: Option<String>,
    /// Output format (`json` prints the tool result).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct SshExecArgs {
    #[command(flatten)]
    pub(crate) common: SshCommonArgs,
    /// Run the command under `sudo -n` (as root unless --sudo-user is given).
    #[arg(long)]
    pub(crate) sudo: bool,
    /// Run the command under `sudo -n -u USER`; implies --sudo.
    #[arg(long, value_name = "USER")]
    pub(crate) sudo_user: Option<String>,
    /// Allocate a PTY (stdout and stderr merge).
    #[arg(long)]
    pub(crate) pty: bool,
    /// Certificate lifetime in seconds; clamped to the host's `max_ttl_seconds`.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) ttl: Option<u32>,
    /// Only decide: print the decision, issue no certificate, run nothing (a denial exits 0).
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// The host, as named under `[hosts.<name>]`.
    #[arg(value_name = "HOST")]
    pub(crate) host: String,
    /// The command; its words are joined with spaces (quote pipes and redirections as one word).
    #[arg(
        value_name = "COMMAND",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub(crate) command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SshHostsArgs {
    #[command(flatten)]
    pub(crate) common: SshCommonArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SshPutArgs {
    #[command(flatten)]
    pub(crate) common: SshCommonArgs,
    /// The host.
    #[arg(value_name = "HOST")]
    pub(crate) host: String,
    /// The file to upload; `-` reads stdin.
    #[arg(value_name = "LOCAL_FILE")]
    pub(crate) local_file: PathBuf,
    /// The absolute path on the host.
    #[arg(value_name = "REMOTE_PATH")]
    pub(crate) remote_path: String,
}

#[derive(Debug, Args)]
pub(crate) struct SshGetArgs {
    #[command(flatten)]
    pub(crate) common: SshCommonArgs,
    /// The host.
    #[arg(value_name = "HOST")]
    pub(crate) host: String,
    /// The absolute path on the host.
    #[arg(value_name = "REMOTE_PATH")]
    pub(crate) remote_path: String,
    /// Where to write it: a file (replaced if it exists), `-` for stdout; default: the remote
    /// file's name in the current directory.
    #[arg(value_name = "LOCAL_FILE")]
    pub(crate) local_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Create the Ed25519 audit key pair that signs checkpoints.
    Keygen(KeygenArgs),
    /// Check sequence continuity, the hash chain, every checkpoint signature and the database
    /// against the witness, offline. Names the first bad record; exits 1 if anything is wrong.
    Verify(VerifyArgs),
    /// Print the latest records; with -f, keep printing new ones.
    Tail(TailArgs),
    /// Search records by tenant, principal, target, action, outcome, time, session or approval;
    /// with --server, on a meho server.
    Query(QueryArgs),
    /// Print one record in full; with --server, from a meho server.
    Show(ShowArgs),
    /// Write every record, in chain order, for another tool to re-verify.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// The data directory (default: `[server] data_dir`).
    #[arg(long, env = "MEHO_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// The store URL (default: `[store] url`, else the SQLite file in the data directory).
    #[arg(
        long,
        env = "MEHO_STORE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub(crate) store: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Write the private key here (default: `[audit] key_file`); the public key goes next to it,
    /// `KEY.pem` → `KEY.pub.pem` (the name `audit verify` and `serve` look for), or to
    /// `[audit] public_key_file` without --out.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// The public key (default: `[audit] public_key_file`).
    #[arg(long, value_name = "FILE")]
    pub(crate) public_key: Option<PathBuf>,
    /// The witness file (default: `[audit] witness_file`).
    #[arg(long, value_name = "FILE")]
    pub(crate) witness: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct FilterArgs {
    /// Only this tenant.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Only this principal.
    #[arg(long)]
    pub(crate) principal: Option<String>,
    /// Only this target.
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// Only this action.
    #[arg(long)]
    pub(crate) action: Option<String>,
    /// Only this outcome (`allowed`, `command_denied`, `ok`, `error`, …).
    #[arg(long)]
    pub(crate) outcome: Option<String>,
    /// Only this kind (`intent`, `outcome`, `denial`, `approval`, `grant`, `waiver`,
    /// `config_reload`, `freeze`, `announce`).
    #[arg(long)]
    pub(crate) kind: Option<String>,
    /// Only this session.
    #[arg(long)]
    pub(crate) session: Option<String>,
    /// Only this approval.
    #[arg(long)]
    pub(crate) approval: Option<String>,
    /// Only this call (intent and outcome share it).
    #[arg(long)]
    pub(crate) call: Option<String>,
    /// At or after this time: RFC 3339 (`2026-11-25T12:00:00Z`) or an age (`15m`, `2h`, `7d`).
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<String>,
    /// Before this time: RFC 3339 or an age.
    #[arg(long, value_name = "TIME")]
    pub(crate) until: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    /// How many of the latest records to print first.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub(crate) lines: u32,
    /// Keep printing new records as they are written.
    #[arg(short = 'f', long)]
    pub(crate) follow: bool,
    /// Output format (`json` prints one record per line).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// With --server (or `MEHO_SERVER`), ask that meho server (`GET /api/v1/audit`) for the
    /// token's tenant instead of reading the store.
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    /// Records per page (at most 1000 with --server).
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: u32,
    /// Continue after this cursor (the `next_cursor` of the previous page; `next_before` with
    /// --server).
    #[arg(long)]
    pub(crate) cursor: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// With --server (or `MEHO_SERVER`), ask that meho server (`GET /api/v1/audit/{id}`)
    /// instead of reading the store.
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// The record id.
    pub(crate) id: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// One JSON record per line, with its chain fields.
    #[default]
    Jsonl,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Only this tenant (default: every tenant, one after the other).
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: ExportFormat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate a config file; errors give file, line and column and exit with status 2.
    Validate(ConfigArgs),
    /// Print the JSON schema of meho.toml.
    Schema,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Decide one command against a host's composed policy, or one action against a cluster's
    /// rules (`--cluster NAME --action "delete pods prod/web-1"`) or an API's (`--api NAME
    /// --action "DELETE /sys/policy/{name} /sys/policy/ops"`); a denial is a result: exit 0.
    Check(CheckArgs),
    /// Print a host's composed policy (or a cluster's or an API's rules) and, given a command (an
    /// action),
    /// the step-by-step decision.
    Explain(ExplainArgs),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object, for scripts.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct VersionArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// The config file. Default: `./meho.toml`.
    #[arg(long, short = 'c', env = "MEHO_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

impl ConfigArgs {
    /// The file to read: `--config`, `MEHO_CONFIG`, or `./meho.toml` when it exists.
    pub(crate) fn resolve(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            let local = Path::new("meho.toml");
            local.exists().then(|| local.to_path_buf())
        })
    }

    /// Loads the config, which must exist.
    pub(crate) fn load_required(&self) -> Result<meho_config::Config, Failure> {
        let path = self.resolve().ok_or_else(|| {
            Failure::Usage(
                "no config file: pass --config FILE, set MEHO_CONFIG, or create ./meho.toml".into(),
            )
        })?;
        Ok(meho_config::Config::load(&path)?)
    }

    /// Loads the config, or the built-in defaults when there is no file.
    pub(crate) fn load_or_default(&self) -> Result<meho_config::Config, Failure> {
        Ok(match self.resolve() {
            Some(path) => meho_config::Config::load(&path)?,
            None => meho_config::Config::default_config()?,
        })
    }
}

#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// The host, as named under `[hosts.<name>]`.
    #[arg(
        long,
        value_name = "NAME",
        required_unless_present_any = ["cluster", "api"],
        conflicts_with_all = ["cluster", "api"]
    )]
    pub(crate) host: Option<String>,
    /// The cluster, as named under `[clusters.<name>]` (decides `--action`, not `--command`).
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "api",
        group = "action_target"
    )]
    pub(crate) cluster: Option<String>,
    /// The REST API, as named under `[apis.<name>]` (decides `--action`, not `--command`).
    #[arg(long, value_name = "NAME", group = "action_target")]
    pub(crate) api: Option<String>,
    /// Run the command under `sudo -n` (as root unless --sudo-user is given).
    #[arg(long, conflicts_with_all = ["cluster", "api"])]
    pub(crate) sudo: bool,
    /// Run the command under `sudo -n -u USER`; implies --sudo.
    #[arg(long, value_name = "USER", conflicts_with_all = ["cluster", "api"])]
    pub(crate) sudo_user: Option<String>,
    /// The caller (agent) identity, for waivers and audit.
    #[arg(long, default_value = "cli", value_name = "ID")]
    pub(crate) caller: String,
    /// The end user behind the caller.
    #[arg(long, default_value = "", value_name = "USER")]
    pub(crate) end_user: String,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    #[command(flatten)]
    pub(crate) request: RequestArgs,
    /// The command line, exactly as an agent would send it (with `--host`).
    #[arg(
        long,
        value_name = "CMD",
        allow_hyphen_values = true,
        required_unless_present = "action",
        conflicts_with_all = ["action", "cluster", "api"]
    )]
    pub(crate) command: Option<String>,
    /// The action: with `--cluster`, `<verb> <resource[.group]> <namespace>/<name>` with `-`
    /// for none, e.g. `delete pods prod/web-1`; with `--api`, `<METHOD> <path template>
    /// <path>`, e.g. `DELETE /sys/policy/{name} /sys/policy/ops`. Each field is validated; a
    /// malformed action is refused, never decided.
    #[arg(long, value_name = "ACTION", requires = "action_target")]
    pub(crate) action: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    #[command(flatten)]
    pub(crate) request: RequestArgs,
    /// A command line to decide step by step (with `--host`).
    #[arg(long, value_name = "CMD", allow_hyphen_values = true, conflicts_with_all = ["action", "cluster", "api"])]
    pub(crate) command: Option<String>,
    /// An action to decide step by step (with `--cluster` or `--api`).
    #[arg(long, value_name = "ACTION", requires = "action_target")]
    pub(crate) action: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// Listen on this address instead of `[server] listen`.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Keep state here instead of `[server] data_dir`.
    #[arg(long, env = "MEHO_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Use this store instead of `[store] url` (`sqlite://PATH` or `postgres://…`).
    #[arg(
        long,
        env = "MEHO_STORE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub(crate) store: Option<String>,
    /// Development mode: loopback only; creates (once) an SSH CA and a dev bearer token in the
    /// data directory, prints `MEHO_TOKEN=<token>` and how to connect Claude Code and Cursor.
    #[arg(long)]
    pub(crate) dev: bool,
}

#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

pub(crate) fn print_version(args: &VersionArgs) -> Result<(), crate::Failure> {
    let version = env!("CARGO_PKG_VERSION");
    match args.format {
        Format::Text => outln!("meho {version}"),
        Format::Json => outln!(
            "{}",
            serde_json::json!({ "name": "meho", "version": version })
        ),
    }
}
