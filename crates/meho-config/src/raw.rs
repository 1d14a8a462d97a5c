//! The config file exactly as written. These types are the serde and JSON-schema view of
//! `meho.toml`; nothing outside this crate should use them directly.
//!
//! Every struct rejects unknown keys, so a typo is an error that names the key.

use std::collections::BTreeMap;

use meho_core::Tier;
use schemars::JsonSchema;
use serde::Deserialize;

/// meho.toml: the one config file of meho. Every section is optional.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "meho.toml")]
pub struct RawConfig {
    /// The HTTP server.
    #[serde(default)]
    pub server: RawServer,
    /// Where meho keeps its state.
    #[serde(default)]
    pub store: RawStore,
    /// Logging.
    #[serde(default)]
    pub log: RawLog,
    /// The tamper-evident audit log.
    #[serde(default)]
    pub audit: RawAudit,
    /// Secrets at rest: the key that seals credentials meho stores (`meho secrets`).
    #[serde(default)]
    pub secrets: RawSecrets,
    /// SSH targets, by name.
    #[serde(default)]
    pub hosts: BTreeMap<String, RawHost>,
    /// Kubernetes targets, by name (disjoint from host names).
    #[serde(default)]
    pub clusters: BTreeMap<String, RawCluster>,
    /// REST APIs described by an OpenAPI document, by name (disjoint from host and cluster
    /// names).
    #[serde(default)]
    pub apis: BTreeMap<String, RawApi>,
    /// Vault or OpenBao: where API credentials come from, per call, for the caller's identity.
    pub vault: Option<RawVault>,
    /// Named command policies, attached to hosts through `group_command_policies`.
    #[serde(default)]
    pub command_policies: BTreeMap<String, RawCommandPolicy>,
    /// Maps a host group to the names of the policies its hosts get. `_default` applies to every host.
    #[serde(default)]
    pub group_command_policies: BTreeMap<String, Vec<String>>,
    /// SSH certificate authorities by host group; `_default` is the fallback.
    #[serde(default)]
    pub ca_keys: BTreeMap<String, RawCaKey>,
    /// `meho signer`: the separate process that holds the CA keys.
    #[serde(default)]
    pub signer: RawSigner,
    /// The SSH broker: how calls reach hosts.
    #[serde(default)]
    pub ssh: RawSsh,
    /// OAuth 2.1 resource server: how HTTP MCP callers are authenticated.
    #[serde(default)]
    pub auth: RawAuth,
    /// Multi-tenancy.
    #[serde(default)]
    pub tenancy: RawTenancy,
    /// The MCP surface.
    #[serde(default)]
    pub mcp: RawMcp,
    /// Human approval of calls that policy marks `require_approval`.
    #[serde(default)]
    pub approvals: RawApprovals,
    /// The web console at `/console`.
    #[serde(default)]
    pub console: RawConsole,
    /// Where new pending approvals are announced.
    #[serde(default)]
    pub notifications: RawNotifications,
    /// Result reduction: large results become a summary and a handle the model queries with SQL.
    #[serde(default)]
    pub reduction: RawReduction,
}

/// `[reduction]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReduction {
    /// Reduce large results of MCP and REST calls. Default true.
    pub enabled: Option<bool>,
    /// A result with more rows than this is reduced. Default 50.
    pub threshold_rows: Option<u64>,
    /// A result whose JSON is larger than this, in bytes, is reduced. Default 4096.
    pub threshold_bytes: Option<u64>,
    /// The most a reduced answer (the summary and its handle) may be, in bytes. Default 4096.
    pub answer_max_bytes: Option<u64>,
    /// The largest result a call with `raw = true` gets whole, in bytes; a larger one is reduced
    /// anyway. Default 1048576 (1 MiB).
    pub raw_max_bytes: Option<u64>,
    /// How long the rows of a reduced result are kept, in seconds. Default 3600.
    pub ttl_seconds: Option<u64>,
    /// The most rows of one result kept, in bytes of JSON; rows past it are not kept (the
    /// summary says how many were). Default 67108864 (64 MiB).
    pub max_result_bytes: Option<u64>,
    /// The most kept bytes per principal, as stored (compressed); a principal's oldest results
    /// are dropped to make room.
    /// Default 268435456 (256 MiB).
    pub max_principal_bytes: Option<u64>,
    /// How long one `result_query` may run, in milliseconds. Default 2000.
    pub query_timeout_ms: Option<u64>,
    /// The most rows one `result_query` answers. Default 500.
    pub query_max_rows: Option<u64>,
    /// The most bytes of rows one `result_query` answers. Default 16384.
    pub query_max_bytes: Option<u64>,
    /// Memory for results loaded for querying on this replica, in bytes of JSON. Default
    /// 268435456 (256 MiB).
    pub cache_bytes: Option<u64>,
}

/// `[console]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConsole {
    /// The console's OAuth client id at `[auth] issuer`: a public client using the
    /// authorization code flow with PKCE, whose redirect URI is `<public_url>/console/`.
    /// Default `meho-console`.
    pub client_id: Option<String>,
    /// Scopes the console asks for. Default `["openid", "mcp:tools"]`.
    pub scopes: Option<Vec<String>>,
}

/// `[notifications]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNotifications {
    /// Webhooks that receive every new pending approval.
    #[serde(default)]
    pub webhooks: Vec<RawWebhook>,
}

/// `[[notifications.webhooks]]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// A name for logs and audit records (the URL itself is treated as a secret and never
    /// logged).
    pub name: String,
    /// Where to POST; `http` or `https`.
    pub url: String,
    /// `generic` (meho's JSON), `slack` (incoming webhook) or `teams` (Adaptive Card).
    /// Default `generic`.
    pub format: Option<String>,
    /// Delivery attempts before giving up (with exponential backoff). Default 5, at most 20.
    pub max_attempts: Option<u32>,
    /// Per-attempt timeout, in seconds. Default 10, at most 120.
    pub timeout_seconds: Option<u64>,
}

/// `[approvals]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApprovals {
    /// How long a pending approval waits for a decision, and an approved call stays collectable
    /// after it, in seconds. Default 600.
    pub ttl_seconds: Option<u64>,
    /// Roles that may approve or deny, in the requester's tenant. Default `["tenant_admin"]`.
    pub approver_roles: Option<Vec<String>>,
    /// Let a requester approve their own call (audited as self-approval). Default false.
    #[serde(default)]
    pub allow_self_approval: bool,
}

/// `[auth]`: bearer JWTs from an OIDC issuer.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// The OIDC issuer URL; its metadata is discovered at
    /// `<issuer>/.well-known/openid-configuration`. Unset: only the dev token (`--dev`) works.
    pub issuer: Option<String>,
    /// The `aud` every token must carry: this server's MCP resource URL, e.g.
    /// `https://meho.example/mcp`. Required with `issuer`.
    pub audience: Option<String>,
    /// Scopes every token must carry. `mcp:tools` is needed to call tools in any case.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// The claim naming the principal. Default `sub`.
    pub user_claim: Option<String>,
    /// The claim listing the principal's groups (host RBAC). Unset: no group filter.
    pub groups_claim: Option<String>,
    /// The claim naming the tenant. Default `tenant_id`.
    pub tenant_claim: Option<String>,
    /// The claim naming the role in the tenant: `tenant_admin`, `operator` or `read_only`.
    /// Default `tenant_role`.
    pub role_claim: Option<String>,
    /// Allowed clock skew for `exp`, `nbf` and `iat`, in seconds. Default 60, at most 300.
    pub clock_skew_seconds: Option<u64>,
}

/// `[tenancy]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTenancy {
    /// Require the tenant claim on every token (`401 missing_tenant_claim` without it). Off: a
    /// token without the claim is in tenant `default`.
    #[serde(default)]
    pub enabled: bool,
}

/// `[mcp]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMcp {
    /// Who `meho mcp` (stdio) acts as. Default: the local OS user, tenant `default`,
    /// role `tenant_admin`.
    #[serde(default)]
    pub stdio: RawStdioIdentity,
    /// Extra `Host` header values `/mcp` accepts besides loopback (DNS-rebinding protection),
    /// e.g. `meho.example` or `meho.example:8443`.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Open MCP sessions over HTTP the server holds in total; past it a new session is refused
    /// with 503 `sessions_exhausted`. A session ends when its client deletes it or after 5 idle
    /// minutes. Default 1024.
    pub max_sessions: Option<u32>,
    /// Open MCP sessions over HTTP one principal (tenant and subject) may hold; past it a new
    /// session is refused with 429 `too_many_sessions`. Default 32.
    pub max_sessions_per_principal: Option<u32>,
}

/// `[mcp.stdio]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStdioIdentity {
    /// The principal. Default: the OS user running `meho mcp`.
    pub principal: Option<String>,
    /// The tenant. Default `default`.
    pub tenant: Option<String>,
    /// `tenant_admin` (default), `operator` or `read_only`.
    pub role: Option<String>,
    /// Groups, for host RBAC. Unset: no group filter.
    pub groups: Option<Vec<String>>,
}

/// `[ca_keys.<group>]`: one SSH certificate authority: a key file the signer signs with itself
/// (`path`), or Vault's SSH secrets engine (`vault_ssh_mount` and `vault_ssh_role`, with
/// `[vault]`). Exactly one of the two.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCaKey {
    /// Ed25519 private key in OpenSSH format (`ssh-keygen -t ed25519`, or `meho ca init --out FILE`),
    /// unencrypted.
    pub path: Option<String>,
    /// The mount of Vault's SSH secrets engine that signs this group's certificates, e.g. `ssh`.
    pub vault_ssh_mount: Option<String>,
    /// The role on that mount (`POST /v1/<mount>/sign/<role>`), e.g. `meho`.
    pub vault_ssh_role: Option<String>,
}

/// `[signer]`: the signing service (`meho signer`), reached over mutual TLS.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSigner {
    /// Address to serve on, `ip:port`. Default `127.0.0.1:8443`.
    pub listen: Option<String>,
    /// The signer's TLS certificate chain (PEM).
    pub tls_cert: Option<String>,
    /// The signer's TLS private key (PEM).
    pub tls_key: Option<String>,
    /// CA bundle (PEM) that broker client certificates must chain to.
    pub client_ca: Option<String>,
    /// Common names of the broker certificates allowed to call the signer. Required.
    #[serde(default)]
    pub allowed_callers: Vec<String>,
}

/// `[ssh]`: the broker side of SSH calls.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    /// URL of a remote `meho signer` (`https://host:port`). Unset: the signer runs in-process.
    pub signer_url: Option<String>,
    /// The broker's client certificate (PEM) for the signer.
    pub tls_cert: Option<String>,
    /// The broker's client key (PEM).
    pub tls_key: Option<String>,
    /// CA bundle (PEM) that the signer's certificate must chain to.
    pub signer_ca: Option<String>,
    /// The name this broker calls itself in the in-process signer (remote signers use the TLS CN).
    /// Default `meho`.
    pub caller: Option<String>,
    /// Local address outgoing SSH connections bind to (like `ssh -b`). Default: the OS picks.
    pub bind_address: Option<String>,
    /// Cap on each of stdout and stderr per call, in bytes. Default 1048576 (1 MiB).
    pub output_cap_bytes: Option<u64>,
    /// How long a command may run, in seconds. Default 60.
    pub exec_timeout_seconds: Option<u64>,
    /// TCP plus SSH handshake timeout per hop, in seconds. Default 10.
    pub connect_timeout_seconds: Option<u64>,
    /// A session unused this long is closed, in seconds. Default 600.
    pub session_idle_timeout_seconds: Option<u64>,
    /// A session is closed this long after it opened, in seconds. Default 3600.
    pub session_max_lifetime_seconds: Option<u64>,
    /// Open sessions, all callers together. Default 64.
    pub max_sessions: Option<u32>,
    /// Open sessions per caller. Default 8.
    pub max_sessions_per_caller: Option<u32>,
    /// Where shell and pty sessions are recorded as asciicast v2. Default `<data_dir>/recordings`.
    pub recording_dir: Option<String>,
    /// Fail a session when its recording cannot be written. Default false.
    #[serde(default)]
    pub recording_strict: bool,
    /// Largest file `ssh_put_file`/`ssh_get_file` move, in bytes. Default 16777216 (16 MiB).
    pub file_transfer_max_bytes: Option<u64>,
}

/// `[server]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address to serve HTTP on, `ip:port`. Default `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Directory for meho's state (SQLite store, keys). Default `.meho`; `MEHO_DATA_DIR` and
    /// `--data-dir` override it.
    pub data_dir: Option<String>,
    /// The URL people reach this server at, e.g. `https://meho.example.com`. Links in
    /// notifications point there, and HSTS is sent when it is `https`. Default
    /// `http://<listen>`.
    pub public_url: Option<String>,
    /// Origins (`scheme://host[:port]`) allowed to call `/api` from a browser (CORS). No
    /// wildcard; default none (the console is same-origin and needs none).
    pub cors_origins: Option<Vec<String>>,
}

/// `[store]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// Store URL: `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`. Default
    /// `sqlite://<data_dir>/meho.db`, created on first run. `MEHO_STORE_URL` overrides it.
    pub url: Option<String>,
}

/// `[audit]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Ed25519 private key (PKCS#8 PEM) that signs checkpoints. Default
    /// `<data_dir>/audit/audit-key.pem`; `meho audit keygen` creates it.
    pub key_file: Option<String>,
    /// The matching public key (SPKI PEM), all `meho audit verify` needs. Default
    /// `<data_dir>/audit/audit-key.pub.pem`.
    pub public_key_file: Option<String>,
    /// Append-only file that receives every checkpoint, outside the database. Put it on another
    /// volume or host. Default `<data_dir>/audit/witness.jsonl`.
    pub witness_file: Option<String>,
    /// Checkpoint a tenant's chain after this many new records. Default 1000.
    pub checkpoint_every_records: Option<u64>,
    /// …or when its last checkpoint is this many seconds old. Default 60.
    pub checkpoint_every_seconds: Option<u64>,
    /// Extra regexes whose matches are replaced by `[REDACTED]` before a record is stored, on top
    /// of the built-in ones (private keys, bearer tokens, JWTs, passwords in URLs, key=secret).
    #[serde(default)]
    pub redact: Vec<String>,
}

/// `[secrets]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSecrets {
    /// File holding the base64 AES-256 key that seals stored secrets (`meho secrets keygen --out
    /// FILE` writes one); it must not be readable by group or others. `MEHO_SECRETS_KEY`
    /// overrides it. Default none: without a key, stored secrets cannot be written or read.
    pub key_file: Option<String>,
}

/// `[log]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// A tracing filter, e.g. `info` or `meho=debug,info`. Default `info`; `MEHO_LOG` overrides it.
    pub level: Option<String>,
}

/// `[hosts.<name>]`: one SSH target.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    /// Where to connect, `host:port` (`[v6]:port` for IPv6).
    pub addr: String,
    /// The login user.
    pub user: String,
    /// The host's public key as an OpenSSH line (`ssh-ed25519 AAAA…`); always verified.
    pub host_key: String,
    /// Name of another host to tunnel through (ProxyJump). That host becomes a bastion.
    pub jump: Option<String>,
    /// Groups the host belongs to: RBAC, CA selection and `group_command_policies`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The tenant that owns the host. Default `default`.
    pub tenant: Option<String>,
    /// Certificate principal. Default: `user`.
    pub principal: Option<String>,
    /// `source-address` critical option: comma-separated IPs/CIDRs the certificate is valid from.
    pub source_address: Option<String>,
    /// Ceiling on certificate lifetime in seconds, at most 900. Default 300.
    pub max_ttl_seconds: Option<u32>,
    /// Whether the host may be used as a jump host. Refused together with a restricting policy.
    #[serde(default)]
    pub allow_as_bastion: bool,
    /// Callers (agent/broker identities) allowed to use the host. Empty: any.
    #[serde(default)]
    pub allowed_callers: Vec<String>,
    /// Whether calls may run under `sudo -n`.
    #[serde(default)]
    pub allow_sudo: bool,
    /// Users sudo may target. Empty means root only.
    #[serde(default)]
    pub allowed_sudo_users: Vec<String>,
    /// Whether a PTY may be requested.
    #[serde(default)]
    pub allow_pty: bool,
    /// Whether files may be copied to and from the host.
    #[serde(default)]
    pub allow_file_transfer: bool,
    /// The host's own command policy, composed after its groups' policies.
    pub command_policy: Option<RawCommandPolicy>,
}

/// A command policy: what commands may run, inline on a host or under `[command_policies.<name>]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCommandPolicy {
    /// `off` (inert), `allowlist` (only `allow` matches run) or `denylist` (all but `deny` matches).
    pub mode: RawMode,
    /// Regexes of commands that may run (allowlist only).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Regexes of commands that never run (denylist only).
    #[serde(default)]
    pub deny: Vec<String>,
    /// Regexes of commands that need a human's approval.
    #[serde(default)]
    pub require_approval: Vec<String>,
    /// Parse the line as bash and refuse what cannot be verified. Default true.
    pub shell_parse: Option<bool>,
    /// `enforce` (default) or `audit` (findings become warnings).
    #[serde(default)]
    pub enforcement: RawEnforcement,
    /// Tier of the commands this policy allows: `read`, `write` (default) or `destructive`.
    pub tier: Option<Tier>,
}

/// `mode` of a command policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawMode {
    /// Inert.
    Off,
    /// Only `allow` matches run.
    Allowlist,
    /// Everything but `deny` matches runs.
    Denylist,
}

/// `enforcement` of a command policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawEnforcement {
    /// Denials deny, approvals gate.
    #[default]
    Enforce,
    /// Findings become warnings.
    Audit,
}

/// `[clusters.<name>]`: one Kubernetes cluster. meho mints a short-lived token for a bound
/// ServiceAccount on every call (TokenRequest); the agent never holds a cluster credential.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// The API server, `https://host:port`.
    pub api_server: String,
    /// The CA bundle (PEM file) the API server's certificate must chain to.
    pub ca_cert: String,
    /// A file holding the minter's token, re-read on every mint (so a rotated token is picked
    /// up). Its only right should be `create` on `serviceaccounts/token` for the bound accounts.
    pub minter_token_file: String,
    /// Lifetime of each minted token, 600–900 seconds (the API server refuses less than 600).
    /// Default 600.
    pub token_ttl_seconds: Option<u32>,
    /// The tenant that owns the cluster. Default `default`.
    pub tenant: Option<String>,
    /// Groups the cluster belongs to: a human caller must share one (as for hosts).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Callers (agent principals) allowed to use the cluster. Empty: any.
    #[serde(default)]
    pub allowed_callers: Vec<String>,
    /// Which ServiceAccount a call runs as: the first entry whose `groups` overlap the caller's
    /// groups; an entry without `groups` is the default. No match: the call is refused.
    #[serde(default)]
    pub sa_bindings: Vec<RawSaBinding>,
    /// The action policy: each action (`<verb> <resource[.group]> <namespace>/<name>`) is
    /// decided against these rules, deny wins, and an action no rule allows is denied.
    #[serde(default)]
    pub rules: Vec<RawClusterRule>,
}

/// One `sa_bindings` entry.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSaBinding {
    /// Caller groups this binding is for. Empty or absent: the default binding.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub service_account: String,
}

/// One `rules` entry of a cluster. Lists hold exact values or globs (`*` = any run of
/// characters valid in the field; `*` alone also matches `-`, none).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawClusterRule {
    /// `get`, `list`, `logs`, `apply`, `delete`, or `*`.
    pub verbs: Vec<String>,
    /// `<plural>` for the core group, `<plural>.<group>` otherwise (e.g. `deployments.apps`).
    pub resources: Vec<String>,
    /// Namespaces; `-` is cluster-scoped objects and lists across all namespaces. Default `["*"]`.
    pub namespaces: Option<Vec<String>>,
    /// Object names; `-` is lists. Default `["*"]`.
    pub names: Option<Vec<String>>,
    /// `allow`, `deny` or `require_approval`.
    pub effect: RawRuleEffect,
    /// Raise the tier of what the rule matches (never below the verb's: reads are `read`,
    /// apply `write`, delete `destructive`).
    pub tier: Option<Tier>,
    /// On an `allow` rule: show Secret values (`data`, `stringData`) instead of their sizes.
    /// Default false.
    #[serde(default)]
    pub reveal: bool,
}

/// `effect` of a cluster rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawRuleEffect {
    /// May run.
    Allow,
    /// Never runs.
    Deny,
    /// Runs once a human approves it.
    RequireApproval,
}

/// `[apis.<name>]`: one REST API, described by an OpenAPI 3.0 or 3.1 document. Its operations are
/// called through `api_search_operations` and `api_call`; each call is decided on its canonical
/// action `<METHOD> <path template> <path>`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// Where the spec's paths are appended: `https://host[:port][/prefix]` (`http` only for
    /// loopback addresses).
    pub base_url: String,
    /// The OpenAPI document: a local file (JSON or YAML), or `api:<path>` for a path on the API
    /// itself (e.g. `api:/v1/sys/internal/specs/openapi`), fetched at start with the API's
    /// `auth`.
    pub spec: String,
    /// CA bundle (PEM) the API's TLS certificate must chain to. Default: the system roots.
    pub ca_cert: Option<String>,
    /// The tenant that owns the API. Default `default`.
    pub tenant: Option<String>,
    /// Groups the API belongs to: a human caller must share one (as for hosts).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Callers (agent principals) allowed to use the API. Empty: any.
    #[serde(default)]
    pub allowed_callers: Vec<String>,
    /// How meho authenticates to the API. Default: no credential.
    pub auth: Option<RawApiAuth>,
    /// Each call's deadline, 1–300 seconds. Default 30.
    pub timeout_seconds: Option<u64>,
    /// A response larger than this is refused (not passed on cut). Default 8388608 (8 MiB).
    pub max_response_bytes: Option<u64>,
    /// The action policy: regexes over `<METHOD> <path template> <path>`, deny wins, an action
    /// no rule allows is denied. Unset: reads (`GET`, `HEAD`, `OPTIONS`) run and every other
    /// method waits for a human's approval.
    pub rules: Option<Vec<RawApiRule>>,
    /// Per-operation overrides, keyed by `operationId` or `"METHOD /path/template"`.
    #[serde(default)]
    pub operations: BTreeMap<String, RawApiOperation>,
}

/// One `rules` entry of an API.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApiRule {
    /// A regex over `<METHOD> <path template> <path>`, e.g. `^DELETE /sys/policy/`.
    pub pattern: String,
    /// `allow`, `deny` or `require_approval`.
    pub effect: RawRuleEffect,
    /// Raise the tier of what the rule matches (never below the operation's tier).
    pub tier: Option<Tier>,
}

/// `[apis.<name>.operations."<key>"]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApiOperation {
    /// `false`: the operation is hidden from search and every call of it is denied. Default
    /// true.
    pub enabled: Option<bool>,
    /// The operation's tier instead of its method's (may raise or lower it).
    pub tier: Option<Tier>,
    /// `true`: every call of it waits for a human's approval. Default false.
    pub require_approval: Option<bool>,
}

/// `[apis.<name>.auth]`: the credential meho presents to the API, fetched per call.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApiAuth {
    /// `none`, `header`, `bearer`, `basic` or `vault_dynamic`.
    pub kind: RawApiAuthKind,
    /// `header`: the header's name (e.g. `X-Vault-Token`); `vault_dynamic` presented as a
    /// header: the same.
    pub header: Option<String>,
    /// `header`/`bearer`/`basic`: where the secret is, `vault:<kv mount>/<path>#<field>` (a KV
    /// v2 secret read with the caller's Vault token) or `stored:<name>` (sealed in meho's store,
    /// `meho secrets set`). For `basic`, the password (or, without `#field`, a secret holding
    /// `username` and `password`).
    pub secret: Option<String>,
    /// `basic`: the user name, when `secret` names only the password.
    pub username: Option<String>,
    /// `vault_dynamic`: the path of a dynamic secret, e.g. `database/creds/readonly`; its lease
    /// is revoked right after the call.
    pub path: Option<String>,
    /// `vault_dynamic`: how the dynamic secret is presented: `basic` (fields `username`,
    /// `password`; default), `bearer` or `header` (field `token`, or `field`).
    pub present_as: Option<RawPresentAs>,
    /// `vault_dynamic` presented as `bearer`/`header`: the secret's field. Default `token`.
    pub field: Option<String>,
}

/// `kind` of an API's `auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawApiAuthKind {
    /// No credential.
    None,
    /// A header holding the secret.
    Header,
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `Authorization: Basic` with a user name and the secret.
    Basic,
    /// A dynamic secret from Vault, revoked after the call.
    VaultDynamic,
}

/// How a `vault_dynamic` secret is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawPresentAs {
    /// `Authorization: Basic` from `username` and `password`.
    Basic,
    /// `Authorization: Bearer` from one field.
    Bearer,
    /// A header (`header`) from one field.
    Header,
}

/// `[vault]`: Vault or OpenBao. For each call that needs a credential meho logs in with a JWT
/// for the caller (the caller's own OIDC token, or one meho signs for stdio and dev-token
/// callers), reads what the call needs, and revokes the Vault token after the call.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVault {
    /// `https://host:port` (`http` only for loopback addresses).
    pub address: String,
    /// CA bundle (PEM) Vault's certificate must chain to. Default: the system roots.
    pub ca_cert: Option<String>,
    /// The JWT auth method's mount, e.g. `jwt`.
    pub auth_mount: String,
    /// The JWT auth role callers log in with.
    pub role: String,
    /// The mount that trusts meho's own JWTs (stdio and dev-token callers). Default
    /// `auth_mount`.
    pub own_jwt_mount: Option<String>,
    /// The role for meho's own JWTs. Default `role`.
    pub own_jwt_role: Option<String>,
    /// `iss` of meho's own JWTs. Default `meho`.
    pub issuer: Option<String>,
    /// `aud` of meho's own JWTs (the role's `bound_audiences`). Default `vault`.
    pub audience: Option<String>,
    /// The ES256 key (PKCS#8 PEM) meho signs its JWTs with; created when missing. Its public
    /// half is served at `/.well-known/jwks.json`. Default `<data_dir>/vault-jwt.pem`.
    pub signing_key: Option<String>,
    /// Each Vault request's deadline, 1–60 seconds. Default 10.
    pub timeout_seconds: Option<u64>,
}
