//! `meho.toml`: reading, validating and describing meho's one config file.
//!
//! The file is read into [`raw`] serde types that reject unknown keys, then validated into the typed
//! [`Config`]. Every error, from TOML syntax to an invalid regex or an unknown policy name, carries
//! the file, line and column it refers to.
//!
//! Invariants:
//! - Reading a config does no IO beyond reading the one file it is given ([`Config::load`]);
//!   [`Config::parse`] is pure.
//! - A `Config` that exists is valid: every host's policy is compiled and every reference resolves.

mod error;
mod location;
pub mod raw;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use error::{ConfigError, Diagnostic};
use meho_policy::{CommandPolicy, HostPolicy};

/// The default `[server] listen` address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = ".meho";
/// The hard ceiling on a certificate's lifetime.
pub const MAX_TTL_CEILING: u32 = 900;
/// The default certificate lifetime.
pub const DEFAULT_MAX_TTL: u32 = 300;
/// The group whose policies apply to every host.
pub const DEFAULT_GROUP: &str = "_default";

/// A validated meho configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from, if any.
    pub source: Option<PathBuf>,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[store]`.
    pub store: StoreConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[audit]`.
    pub audit: AuditConfig,
    /// `[secrets]`.
    pub secrets: SecretsConfig,
    /// `[hosts.*]`, by name.
    pub hosts: BTreeMap<String, Host>,
    /// `[clusters.*]`, by name (never a host's name).
    pub clusters: BTreeMap<String, Cluster>,
    /// `[apis.*]`, by name (never a host's or cluster's name).
    pub apis: BTreeMap<String, Api>,
    /// `[vault]`.
    pub vault: Option<VaultConfig>,
    /// `[command_policies.*]`, by name.
    pub command_policies: BTreeMap<String, CommandPolicy>,
    /// `[group_command_policies]`.
    pub group_command_policies: BTreeMap<String, Vec<String>>,
    /// `[ca_keys.*]`: where each host group's certificates are signed (`_default` is the
    /// fallback).
    pub ca_keys: BTreeMap<String, CaSource>,
    /// `[signer]`.
    pub signer: SignerConfig,
    /// `[ssh]`.
    pub ssh: SshConfig,
    /// `[auth]`.
    pub auth: AuthConfig,
    /// `[tenancy] enabled`.
    pub tenancy_enabled: bool,
    /// `[mcp]`.
    pub mcp: McpConfig,
    /// `[approvals]`.
    pub approvals: ApprovalsConfig,
    /// `[console]`.
    pub console: ConsoleConfig,
    /// `[[notifications.webhooks]]`.
    pub webhooks: Vec<WebhookConfig>,
    /// `[reduction]`.
    pub reduction: ReductionConfig,
    /// Findings that do not stop the config from loading.
    pub warnings: Vec<Diagnostic>,
    /// Every file the config names that a command reads at start (CA keys, TLS material), with
    /// its place in the file; [`Config::check_files`] checks them.
    pub files: Vec<FileRef>,
}

/// Where one `[ca_keys.<group>]` CA signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// `path`: an Ed25519 key file; the signer signs in-process.
    File(PathBuf),
    /// `vault_ssh_mount` and `vault_ssh_role`: Vault's SSH secrets engine signs
    /// (`POST /v1/<mount>/sign/<role>`), logged in as the caller through `[vault]`.
    Vault {
        /// The SSH secrets engine's mount.
        mount: String,
        /// The role on it.
        role: String,
    },
}

impl CaSource {
    /// The key file, for a file CA.
    pub fn path(&self) -> Option<&Path> {
        match self {
            CaSource::File(path) => Some(path),
            CaSource::Vault { .. } => None,
        }
    }
}

impl std::fmt::Display for CaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaSource::File(path) => write!(f, "{}", path.display()),
            CaSource::Vault { mount, role } => write!(f, "vault:{mount}/sign/{role}"),
        }
    }
}

/// Which part of meho reads a file the config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileUse {
    /// `[ca_keys.*] path`: the signer's CA keys (in-process in `serve`/`mcp`/`ssh`, or `meho
    /// signer`).
    SshCa,
    /// `[signer] tls_*`, `client_ca`: `meho signer`'s TLS material.
    SignerTls,
    /// `[ssh] tls_*`, `signer_ca`: the broker's client TLS material for a remote signer.
    BrokerTls,
    /// `[clusters.*] ca_cert`, `minter_token_file`: what the Kubernetes connector reads.
    Kube,
    /// `[apis.*] spec`, `ca_cert`, `[vault] ca_cert`: what the REST connector reads.
    Api,
}

/// A file named by the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// The key, e.g. `ca_keys._default.path`.
    pub key: String,
    /// The file, as configured (relative paths resolve against the working directory).
    pub path: PathBuf,
    /// Who reads it.
    pub used_by: FileUse,
    /// Where the key is in the config (the message is empty).
    pub at: Diagnostic,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Where the HTTP server listens.
    pub listen: SocketAddr,
    /// Where meho keeps its state.
    pub data_dir: PathBuf,
    /// The URL people reach this server at, when configured (no trailing slash).
    pub public_url: Option<String>,
    /// Browser origins allowed to call `/api`.
    pub cors_origins: Vec<String>,
}

impl ServerConfig {
    /// `[server] public_url`, or `http://<listen>`.
    pub fn effective_public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }
}

/// `[reduction]`: how large results are reduced (see `docs/reduction.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReductionConfig {
    /// Whether MCP and REST calls reduce large results.
    pub enabled: bool,
    /// A result with more rows than this is reduced.
    pub threshold_rows: u64,
    /// A result whose JSON is larger than this (bytes) is reduced.
    pub threshold_bytes: u64,
    /// The most a reduced answer may be (bytes).
    pub answer_max_bytes: u64,
    /// The largest result `raw = true` returns whole (bytes).
    pub raw_max_bytes: u64,
    /// How long kept rows live.
    pub ttl: std::time::Duration,
    /// The most bytes of rows kept per result.
    pub max_result_bytes: u64,
    /// The most bytes kept per principal.
    pub max_principal_bytes: u64,
    /// How long one `result_query` may run.
    pub query_timeout: std::time::Duration,
    /// The most rows one `result_query` answers.
    pub query_max_rows: u64,
    /// The most bytes of rows one `result_query` answers.
    pub query_max_bytes: u64,
    /// Memory for loaded results on this replica (bytes of JSON).
    pub cache_bytes: u64,
}

impl Default for ReductionConfig {
    fn default() -> Self {
        ReductionConfig {
            enabled: true,
            threshold_rows: 50,
            threshold_bytes: 4096,
            answer_max_bytes: 4096,
            raw_max_bytes: 1 << 20,
            ttl: std::time::Duration::from_secs(3600),
            max_result_bytes: 64 << 20,
            max_principal_bytes: 256 << 20,
            query_timeout: std::time::Duration::from_millis(2000),
            query_max_rows: 500,
            query_max_bytes: 16 << 10,
            cache_bytes: 256 << 20,
        }
    }
}

/// `[console]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// The OAuth public client id.
    pub client_id: String,
    /// Scopes requested at login.
    pub scopes: Vec<String>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            client_id: "meho-console".to_owned(),
            scopes: vec!["openid".to_owned(), "mcp:tools".to_owned()],
        }
    }
}

/// A webhook's message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// meho's own JSON.
    Generic,
    /// Slack incoming webhook (`text` and `blocks`).
    Slack,
    /// Microsoft Teams: a message carrying an Adaptive Card.
    Teams,
}

impl WebhookFormat {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Generic => "generic",
            WebhookFormat::Slack => "slack",
            WebhookFormat::Teams => "teams",
        }
    }
}

/// `[[notifications.webhooks]]`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The name used in logs and audit records.
    pub name: String,
    /// Where to POST (a secret: never logged).
    pub url: String,
    /// The message format.
    pub format: WebhookFormat,
    /// Delivery attempts.
    pub max_attempts: u32,
    /// Per-attempt timeout.
    pub timeout_seconds: u64,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL of a Slack or Teams webhook is its credential.
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &"<redacted>")
            .field("format", &self.format)
            .field("max_attempts", &self.max_attempts)
            .field("timeout_seconds", &self.timeout_seconds)
            .finish()
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The store URL; `None` means the embedded SQLite file in the data directory.
    pub url: Option<String>,
}

impl StoreConfig {
    /// The URL to open, resolving the default against `data_dir`.
    pub fn effective_url(&self, data_dir: &Path) -> String {
        match &self.url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", data_dir.join("meho.db").display()),
        }
    }
}

/// `[audit]`. Paths left unset resolve inside the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// The private checkpoint-signing key.
    pub key_file: Option<PathBuf>,
    /// The public key.
    pub public_key_file: Option<PathBuf>,
    /// The witness file.
    pub witness_file: Option<PathBuf>,
    /// Checkpoint after this many records per tenant.
    pub checkpoint_every_records: u64,
    /// Or after this many seconds.
    pub checkpoint_every_seconds: u64,
    /// Extra redaction patterns (validated regexes).
    pub redact: Vec<String>,
}

impl AuditConfig {
    /// The private key path.
    pub fn key_path(&self, data_dir: &Path) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("audit").join("audit-key.pem"))
    }

    /// The public key path: `public_key_file`, else the one naming scheme next to the private
    /// key ([`audit_public_key_for`]): `audit-key.pem` → `audit-key.pub.pem`.
    pub fn public_key_path(&self, data_dir: &Path) -> PathBuf {
        self.public_key_file
            .clone()
            .unwrap_or_else(|| audit_public_key_for(&self.key_path(data_dir)))
    }

    /// The witness path.
    pub fn witness_path(&self, data_dir: &Path) -> PathBuf {
        self.witness_file
            .clone()
            .unwrap_or_else(|| data_dir.join("audit").join("witness.jsonl"))
    }
}

/// `[secrets]`: where the key that seals stored secrets comes from when `MEHO_SECRETS_KEY` is
/// unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretsConfig {
    /// The key file; `None` means no key unless the environment has one.
    pub key_file: Option<PathBuf>,
}

/// Where the public half of the audit key `private` lives unless configured: `.pem` becomes
/// `.pub.pem` (`audit-key.pem` → `audit-key.pub.pem`), any other name gets `.pub.pem` appended.
/// `meho audit keygen --out`, `serve` and `audit verify` all use it.
pub fn audit_public_key_for(private: &Path) -> PathBuf {
    let name = private
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".pem").unwrap_or(&name);
    private.with_file_name(format!("{stem}.pub.pem"))
}

/// The default `[signer] listen` address.
pub const DEFAULT_SIGNER_LISTEN: &str = "127.0.0.1:8443";

/// `[signer]`: the separate signing process. TLS paths are checked when the signer starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerConfig {
    /// Where `meho signer` listens.
    pub listen: SocketAddr,
    /// Server certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// CA bundle for client certificates (PEM).
    pub client_ca: Option<PathBuf>,
    /// Client-certificate CNs allowed to call.
    pub allowed_callers: Vec<String>,
}

/// How the broker reaches the signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerLocation {
    /// The signer runs inside this process; the broker is known to it as `caller`.
    InProcess {
        /// The caller name the in-process signer sees.
        caller: String,
    },
    /// A `meho signer` reached over mutual TLS.
    Remote {
        /// `https://host:port`.
        url: String,
        /// Client certificate (PEM).
        tls_cert: PathBuf,
        /// Client key (PEM).
        tls_key: PathBuf,
        /// CA bundle the signer's certificate must chain to (PEM).
        signer_ca: PathBuf,
    },
}

/// `[ssh]`: limits and wiring of the SSH broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    /// Where certificates come from.
    pub signer: SignerLocation,
    /// Local address outgoing connections bind to.
    pub bind_address: Option<std::net::IpAddr>,
    /// Per-stream output cap in bytes.
    pub output_cap_bytes: u64,
    /// Exec timeout.
    pub exec_timeout_seconds: u64,
    /// Connect plus handshake timeout per hop.
    pub connect_timeout_seconds: u64,
    /// Session idle timeout.
    pub session_idle_timeout_seconds: u64,
    /// Session lifetime cap.
    pub session_max_lifetime_seconds: u64,
    /// Global session cap.
    pub max_sessions: u32,
    /// Per-caller session cap.
    pub max_sessions_per_caller: u32,
    /// Recording directory; `None` means `<data_dir>/recordings`.
    pub recording_dir: Option<PathBuf>,
    /// Fail sessions whose recording fails.
    pub recording_strict: bool,
    /// File transfer cap in bytes.
    pub file_transfer_max_bytes: u64,
}

impl SshConfig {
    /// The recording directory, resolving the default against `data_dir`.
    pub fn recording_path(&self, data_dir: &Path) -> PathBuf {
        self.recording_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("recordings"))
    }
}

/// The tenant everything belongs to unless configured otherwise.
pub const DEFAULT_TENANT: &str = "default";
/// The chain meho's own records (startup, reloads, signer housekeeping) go to. Names starting
/// with `_` are reserved: no host, token or stdio identity may claim them, so no tenant's feed
/// ever carries another tenant's (or the process's) records.
pub const SYSTEM_TENANT: &str = "_system";

/// Whether `tenant` is a name a host or a principal may have.
pub fn is_valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty() && !tenant.starts_with('_') && !tenant.chars().any(char::is_control)
}

/// A principal's role in its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// READ-tier actions only.
    ReadOnly,
    /// Everything the policy allows.
    Operator,
    /// Everything the policy allows, and (later) tenant administration.
    TenantAdmin,
}

impl Role {
    /// Parses the claim value: `tenant_admin`, `operator` or `read_only`.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "tenant_admin" => Some(Role::TenantAdmin),
            "operator" => Some(Role::Operator),
            "read_only" => Some(Role::ReadOnly),
            _ => None,
        }
    }

    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::TenantAdmin => "tenant_admin",
            Role::Operator => "operator",
            Role::ReadOnly => "read_only",
        }
    }
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The OIDC issuer, when JWTs are accepted.
    pub issuer: Option<String>,
    /// The required `aud` (this server's `/mcp` URL).
    pub audience: Option<String>,
    /// Scopes every token needs.
    pub required_scopes: Vec<String>,
    /// Principal claim.
    pub user_claim: String,
    /// Groups claim, if any.
    pub groups_claim: Option<String>,
    /// Tenant claim.
    pub tenant_claim: String,
    /// Role claim.
    pub role_claim: String,
    /// Clock skew, seconds.
    pub clock_skew_seconds: u64,
}

/// `[approvals]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalsConfig {
    /// Pending and collectable lifetime.
    pub ttl_seconds: u64,
    /// Roles that may decide.
    pub approver_roles: Vec<Role>,
    /// Whether requesters may approve their own calls.
    pub allow_self_approval: bool,
}

/// `[mcp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpConfig {
    /// The stdio identity's principal; `None` means the OS user.
    pub stdio_principal: Option<String>,
    /// The stdio identity's tenant.
    pub stdio_tenant: String,
    /// The stdio identity's role.
    pub stdio_role: Role,
    /// The stdio identity's groups.
    pub stdio_groups: Option<Vec<String>>,
    /// Extra allowed `Host` values for `/mcp`.
    pub allowed_hosts: Vec<String>,
    /// Open MCP sessions over HTTP, in total.
    pub max_sessions: u32,
    /// Open MCP sessions over HTTP of one principal.
    pub max_sessions_per_principal: u32,
}

/// `[mcp] max_sessions` when unset.
pub const DEFAULT_MAX_MCP_SESSIONS: u32 = 1024;
/// `[mcp] max_sessions_per_principal` when unset.
pub const DEFAULT_MAX_MCP_SESSIONS_PER_PRINCIPAL: u32 = 32;

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A `tracing` filter directive, e.g. `info` or `meho=debug,info`.
    pub level: String,
}

/// A validated `[hosts.<name>]`.
#[derive(Debug, Clone)]
pub struct Host {
    /// The host's name in config, tools and audit.
    pub name: String,
    /// `host:port` to dial.
    pub addr: String,
    /// The login user.
    pub user: String,
    /// The pinned OpenSSH host key line.
    pub host_key: String,
    /// The host to tunnel through, if any.
    pub jump: Option<String>,
    /// Groups, for RBAC, CA selection and policy composition.
    pub groups: Vec<String>,
    /// The owning tenant.
    pub tenant: String,
    /// The certificate principal: `principal`, or else `user`.
    pub principal: String,
    /// The `source-address` critical option, if pinned.
    pub source_address: Option<String>,
    /// Certificate lifetime ceiling, at most 900 s.
    pub max_ttl_seconds: u32,
    /// Whether the host may serve as a bastion (explicitly, or because another host jumps via it).
    pub allow_as_bastion: bool,
    /// Callers (agents/brokers) allowed to reach the host; empty means any.
    pub allowed_callers: Vec<String>,
    /// Whether PTYs may be requested.
    pub allow_pty: bool,
    /// Whether files may be transferred.
    pub allow_file_transfer: bool,
    /// The composed firewall and elevation rules.
    pub policy: HostPolicy,
}

/// A validated `[clusters.<name>]`.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The cluster's name in config, tools and audit.
    pub name: String,
    /// `https://host:port`.
    pub api_server: String,
    /// The CA bundle file the API server's certificate must chain to.
    pub ca_cert: PathBuf,
    /// The minter's token file, re-read on every mint.
    pub minter_token_file: PathBuf,
    /// Lifetime of each minted token (600–900 s).
    pub token_ttl_seconds: u32,
    /// The owning tenant.
    pub tenant: String,
    /// Groups, for RBAC (as for hosts).
    pub groups: Vec<String>,
    /// Callers allowed to reach the cluster; empty means any.
    pub allowed_callers: Vec<String>,
    /// The ServiceAccount bindings, in order.
    pub sa_bindings: Vec<SaBinding>,
    /// The compiled action policy.
    pub policy: meho_policy::kube::ClusterPolicy,
}

/// One ServiceAccount binding of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaBinding {
    /// Caller groups it is for; empty is the default binding.
    pub groups: Vec<String>,
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub service_account: String,
}

impl Cluster {
    /// The binding a caller with `groups` (`None`: not known, no group filter) runs as: the
    /// first entry whose groups overlap, else the first default entry.
    pub fn binding_for(&self, groups: Option<&[String]>) -> Option<&SaBinding> {
        let caller: &[String] = groups.unwrap_or(&[]);
        self.sa_bindings
            .iter()
            .find(|b| !b.groups.is_empty() && b.groups.iter().any(|g| caller.contains(g)))
            .or_else(|| self.sa_bindings.iter().find(|b| b.groups.is_empty()))
    }
}

/// A validated `[apis.<name>]`.
#[derive(Debug, Clone)]
pub struct Api {
    /// The API's name in config, tools and audit.
    pub name: String,
    /// Where the spec's paths are appended (no trailing `/`).
    pub base_url: url::Url,
    /// Where the OpenAPI document is.
    pub spec: SpecSource,
    /// The CA bundle the API's certificate must chain to; `None`: the system roots.
    pub ca_cert: Option<PathBuf>,
    /// The owning tenant.
    pub tenant: String,
    /// Groups, for RBAC (as for hosts).
    pub groups: Vec<String>,
    /// Callers allowed to reach the API; empty means any.
    pub allowed_callers: Vec<String>,
    /// The credential meho presents.
    pub auth: ApiAuth,
    /// Each call's deadline.
    pub timeout: std::time::Duration,
    /// The largest response passed on.
    pub max_response_bytes: u64,
    /// The configured rules; `None`: the default rules (reads run, the rest is held).
    pub rules: Option<Vec<meho_policy::http::ApiRule>>,
    /// Operation overrides by key (`operationId` or `METHOD /path/template`).
    pub operations: BTreeMap<String, ApiOperation>,
}

/// Where an API's OpenAPI document comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecSource {
    /// A local file, JSON or YAML.
    File(PathBuf),
    /// A path on the API itself (`api:<path>`), fetched at start.
    Api(String),
}

/// An operation override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiOperation {
    /// `false`: hidden and denied.
    pub enabled: bool,
    /// The tier instead of the method's.
    pub tier: Option<meho_core::Tier>,
    /// Every call waits for a human.
    pub require_approval: bool,
}

/// Where a secret is: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `vault:<mount>/<path>[#field]`: a KV v2 secret, read with the caller's Vault token.
    Vault {
        /// The KV v2 mount.
        mount: String,
        /// The secret's path in the mount.
        path: String,
        /// The field; `None` for a secret read whole (basic auth's `username` and `password`).
        field: Option<String>,
    },
    /// `stored:<name>`: sealed in meho's store (`meho secrets set`).
    Stored(String),
}

impl SecretRef {
    /// Whether reading it needs Vault.
    pub fn needs_vault(&self) -> bool {
        matches!(self, SecretRef::Vault { .. })
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Vault { mount, path, field } => {
                write!(f, "vault:{mount}/{path}")?;
                match field {
                    Some(field) => write!(f, "#{field}"),
                    None => Ok(()),
                }
            }
            SecretRef::Stored(name) => write!(f, "stored:{name}"),
        }
    }
}

/// How meho authenticates to an API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiAuth {
    /// No credential.
    None,
    /// `<name>: <secret>`.
    Header {
        /// The header.
        name: String,
        /// The secret.
        secret: SecretRef,
    },
    /// `Authorization: Bearer <secret>`.
    Bearer {
        /// The token.
        secret: SecretRef,
    },
    /// `Authorization: Basic`.
    Basic {
        /// The user name; `None`: the secret holds `username` and `password`.
        username: Option<String>,
        /// The password (or both).
        secret: SecretRef,
    },
    /// A dynamic secret read from Vault for the call; its lease is revoked after it.
    VaultDynamic {
        /// The secret's path, e.g. `database/creds/readonly`.
        path: String,
        /// How it is presented.
        present: Presentation,
    },
}

impl ApiAuth {
    /// Whether a call needs a Vault token.
    pub fn needs_vault(&self) -> bool {
        match self {
            ApiAuth::None => false,
            ApiAuth::Header { secret, .. }
            | ApiAuth::Bearer { secret }
            | ApiAuth::Basic { secret, .. } => secret.needs_vault(),
            ApiAuth::VaultDynamic { .. } => true,
        }
    }
}

/// How a dynamic secret is presented to an API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presentation {
    /// `Authorization: Basic` from `username` and `password`.
    Basic,
    /// `Authorization: Bearer` from `field`.
    Bearer {
        /// The secret's field.
        field: String,
    },
    /// `<name>: <field>`.
    Header {
        /// The header.
        name: String,
        /// The secret's field.
        field: String,
    },
}

/// A validated `[vault]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultConfig {
    /// Vault's address.
    pub address: url::Url,
    /// The CA bundle Vault's certificate must chain to.
    pub ca_cert: Option<PathBuf>,
    /// The JWT auth mount for callers with an OIDC token.
    pub auth_mount: String,
    /// Their role.
    pub role: String,
    /// The JWT auth mount for meho's own JWTs.
    pub own_jwt_mount: String,
    /// Their role.
    pub own_jwt_role: String,
    /// `iss` of meho's own JWTs.
    pub issuer: String,
    /// `aud` of meho's own JWTs.
    pub audience: String,
    /// meho's JWT signing key; `None`: `<data_dir>/vault-jwt.pem`.
    pub signing_key: Option<PathBuf>,
    /// Each Vault request's deadline.
    pub timeout: std::time::Duration,
}

impl VaultConfig {
    /// The signing key file, resolving the default against `data_dir`.
    pub fn signing_key_file(&self, data_dir: &Path) -> PathBuf {
        self.signing_key
            .clone()
            .unwrap_or_else(|| data_dir.join("vault-jwt.pem"))
    }
}

/// The default deadline of an API call.
pub const DEFAULT_API_TIMEOUT_SECONDS: u64 = 30;
/// The default cap on an API response.
pub const DEFAULT_API_MAX_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;

/// The default lifetime of a minted cluster token.
pub const DEFAULT_CLUSTER_TOKEN_TTL: u32 = 600;

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, Some(path))
    }

    /// Validates `text`; `path` is used only to name the file in errors.
    pub fn parse(text: &str, path: Option<&Path>) -> Result<Self, ConfigError> {
        validate::parse(text, path)
    }

    /// Checks that every file the config names for one of `uses` exists and can be read, before
    /// a command creates anything: each finding names the key, its place and the file.
    pub fn check_files(&self, uses: &[FileUse]) -> Result<(), ConfigError> {
        let problems: Vec<Diagnostic> = self
            .files
            .iter()
            .filter(|file| uses.contains(&file.used_by))
            .filter_map(|file| {
                let problem = match std::fs::metadata(&file.path) {
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                        "does not exist".to_owned()
                    }
                    Err(err) => format!("cannot be read: {err}"),
                    Ok(meta) if !meta.is_file() => "is not a file".to_owned(),
                    Ok(_) => match std::fs::File::open(&file.path) {
                        Ok(_) => return None,
                        Err(err) => format!("cannot be read: {err}"),
                    },
                };
                Some(Diagnostic {
                    message: format!("{}: `{}` {problem}", file.key, file.path.display()),
                    ..file.at.clone()
                })
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The built-in defaults, as loaded from an empty file.
    pub fn default_config() -> Result<Self, ConfigError> {
        Self::parse("", None)
    }
}

/// The JSON schema of `meho.toml`, pretty-printed, as checked in at `schema/meho.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(raw::RawConfig);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
