//! Turns [`RawConfig`] into [`Config`], collecting every finding with its place in the file.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use meho_policy::{
    CommandPolicy, Enforcement, HostPolicy, Mode, PolicyError, PolicySet, is_valid_sudo_user,
};

mod apis;

use crate::location::{Locator, Segment, key_path};
use crate::raw::{
    RawCluster, RawCommandPolicy, RawConfig, RawEnforcement, RawHost, RawMode, RawRuleEffect,
};
use crate::{
    ApprovalsConfig, AuditConfig, AuthConfig, CaSource, Config, ConfigError, DEFAULT_DATA_DIR,
    DEFAULT_GROUP, DEFAULT_LISTEN, DEFAULT_MAX_TTL, DEFAULT_SIGNER_LISTEN, DEFAULT_TENANT,
    Diagnostic, FileRef, FileUse, Host, LogConfig, MAX_TTL_CEILING, McpConfig, ReductionConfig,
    Role, SecretsConfig, ServerConfig, SignerConfig, SignerLocation, SshConfig, StoreConfig,
};

struct Validator<'a> {
    file: String,
    locator: Locator<'a>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    files: Vec<FileRef>,
}

impl Validator<'_> {
    fn diagnostic(&self, at: &[Segment], message: String) -> Diagnostic {
        let (line, column) = self
            .locator
            .span(at)
            .map_or((0, 0), |span| self.locator.line_column(span.start));
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            message,
        }
    }

    fn error(&mut self, at: &[Segment], message: impl Into<String>) {
        let diagnostic = self.diagnostic(at, message.into());
        self.errors.push(diagnostic);
    }

    fn warn(&mut self, at: &[Segment], message: impl Into<String>) {
        let diagnostic = self.diagnostic(at, message.into());
        self.warnings.push(diagnostic);
    }

    /// Notes a file the config names, for [`Config::check_files`].
    fn file(&mut self, at: &[Segment], key: String, path: &Path, used_by: FileUse) {
        let at = self.diagnostic(at, String::new());
        self.files.push(FileRef {
            key,
            path: path.to_path_buf(),
            used_by,
            at,
        });
    }
}

pub(crate) fn parse(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
    let mut v = Validator {
        file: path.map_or_else(|| "<config>".to_owned(), |p| p.display().to_string()),
        locator: Locator::new(text),
        errors: Vec::new(),
        warnings: Vec::new(),
        files: Vec::new(),
    };
    let raw: RawConfig = match toml_edit::de::from_str(text) {
        Ok(raw) => raw,
        Err(err) => {
            let (line, column) = err
                .span()
                .map_or((0, 0), |span| v.locator.line_column(span.start));
            let mut message = err.message().trim_end().to_owned();
            // A missing field's span is its table: name the table too (which host, which
            // webhook), not only the line it starts on.
            if let Some(table) = err
                .span()
                .filter(|_| message.starts_with("missing field"))
                .and_then(|span| v.locator.table_at(span.start))
            {
                message = format!("`{table}`: {message}");
            }
            return Err(ConfigError::Invalid(vec![Diagnostic {
                file: v.file,
                line,
                column,
                message,
            }]));
        }
    };

    let server = validate_server(&mut v, &raw);
    let store = validate_store(&mut v, &raw);
    let log = validate_log(&mut v, &raw);
    let audit = validate_audit(&mut v, &raw);
    let secrets = validate_secrets(&mut v, &raw);
    let command_policies = validate_named_policies(&mut v, &raw);
    validate_group_references(&mut v, &raw, &command_policies);
    let bastions = validate_jumps(&mut v, &raw);
    let ca_keys = validate_ca_keys(&mut v, &raw);
    let signer = validate_signer(&mut v, &raw);
    let ssh = validate_ssh(&mut v, &raw);
    let auth = validate_auth(&mut v, &raw);
    let mcp = validate_mcp(&mut v, &raw);
    let approvals = validate_approvals(&mut v, &raw);
    let console = validate_console(&mut v, &raw);
    let webhooks = validate_webhooks(&mut v, &raw);
    let reduction = validate_reduction(&mut v, &raw);
    let mut hosts = BTreeMap::new();
    for (name, host) in &raw.hosts {
        if let Some(host) = validate_host(&mut v, &raw, &command_policies, &bastions, name, host) {
            hosts.insert(name.clone(), host);
        }
    }

    let mut clusters = BTreeMap::new();
    for (name, cluster) in &raw.clusters {
        if let Some(cluster) = validate_cluster(&mut v, raw_hosts(&raw), name, cluster) {
            clusters.insert(name.clone(), cluster);
        }
    }

    let mut apis = BTreeMap::new();
    for (name, api) in &raw.apis {
        if let Some(api) = apis::validate_api(&mut v, &raw, name, api) {
            apis.insert(name.clone(), api);
        }
    }
    let vault = raw
        .vault
        .as_ref()
        .and_then(|vault| apis::validate_vault(&mut v, vault));

    if !v.errors.is_empty() {
        return Err(ConfigError::Invalid(v.errors));
    }
    Ok(Config {
        source: path.map(Path::to_path_buf),
        server: server.unwrap_or_else(default_server),
        store,
        log,
        audit,
        secrets,
        hosts,
        clusters,
        apis,
        vault,
        command_policies,
        group_command_policies: raw.group_command_policies,
        ca_keys,
        signer,
        ssh,
        auth,
        tenancy_enabled: raw.tenancy.enabled,
        mcp,
        approvals,
        console,
        webhooks,
        reduction,
        warnings: v.warnings,
        files: v.files,
    })
}

fn default_server() -> ServerConfig {
    ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        data_dir: PathBuf::from(DEFAULT_DATA_DIR),
        public_url: None,
        cors_origins: Vec::new(),
    }
}

fn validate_server(v: &mut Validator<'_>, raw: &RawConfig) -> Option<ServerConfig> {
    let listen_text = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(listen) => listen,
        Err(_) => {
            v.error(
                &key_path!["server", "listen"],
                format!("`{listen_text}` is not an `ip:port` socket address"),
            );
            return None;
        }
    };
    let data_dir = raw.server.data_dir.as_deref().unwrap_or(DEFAULT_DATA_DIR);
    if data_dir.trim().is_empty() {
        v.error(
            &key_path!["server", "data_dir"],
            "data_dir must not be empty",
        );
        return None;
    }
    let public_url = raw.server.public_url.as_deref().map(|url| {
        let url = url.trim_end_matches('/');
        if !is_origin_like(url, true) {
            v.error(
                &key_path!["server", "public_url"],
                format!("`{url}` is not an absolute http(s) URL"),
            );
        }
        url.to_owned()
    });
    let mut cors_origins = Vec::new();
    for (index, origin) in raw.server.cors_origins.iter().flatten().enumerate() {
        if origin.contains('*') {
            v.error(
                &key_path!["server", "cors_origins", index],
                "wildcards are not allowed in cors_origins; list each origin",
            );
        } else if !is_origin_like(origin, false) {
            v.error(
                &key_path!["server", "cors_origins", index],
                format!("`{origin}` is not an origin (`scheme://host[:port]`, no path)"),
            );
        } else {
            cors_origins.push(origin.clone());
        }
    }
    Some(ServerConfig {
        listen,
        data_dir: PathBuf::from(data_dir),
        public_url,
        cors_origins,
    })
}

/// `http(s)://host[:port]`, with a path only when `path_ok`.
fn is_origin_like(url: &str, path_ok: bool) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    !authority.is_empty()
        && !authority.contains(['@', ' ', '?', '#'])
        && (path_ok || path.is_empty())
        && !url.contains(char::is_whitespace)
}

fn validate_console(v: &mut Validator<'_>, raw: &RawConfig) -> crate::ConsoleConfig {
    let mut console = crate::ConsoleConfig::default();
    if let Some(id) = &raw.console.client_id {
        if id.trim().is_empty() {
            v.error(
                &key_path!["console", "client_id"],
                "client_id must not be empty",
            );
        }
        console.client_id = id.clone();
    }
    if let Some(scopes) = &raw.console.scopes {
        if scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
            v.error(
                &key_path!["console", "scopes"],
                "scopes must be non-empty words without spaces",
            );
        }
        console.scopes = scopes.clone();
    }
    console
}

fn validate_webhooks(v: &mut Validator<'_>, raw: &RawConfig) -> Vec<crate::WebhookConfig> {
    use crate::{WebhookConfig, WebhookFormat};
    let mut out = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (index, hook) in raw.notifications.webhooks.iter().enumerate() {
        let at = |key: &str| key_path!["notifications", "webhooks", index, key];
        let mut ok = true;
        if hook.name.trim().is_empty() || !names.insert(hook.name.clone()) {
            v.error(&at("name"), "webhook names must be non-empty and unique");
            ok = false;
        }
        if !is_origin_like(&hook.url, true) {
            // Never echo the URL: it is the webhook's credential.
            v.error(&at("url"), "url must be an absolute http(s) URL");
            ok = false;
        }
        let format = match hook.format.as_deref().unwrap_or("generic") {
            "generic" => WebhookFormat::Generic,
            "slack" => WebhookFormat::Slack,
            "teams" => WebhookFormat::Teams,
            other => {
                v.error(
                    &at("format"),
                    format!("format `{other}` is not one of generic, slack, teams"),
                );
                ok = false;
                WebhookFormat::Generic
            }
        };
        let max_attempts = hook.max_attempts.unwrap_or(5);
        if !(1..=20).contains(&max_attempts) {
            v.error(&at("max_attempts"), "max_attempts must be between 1 and 20");
            ok = false;
        }
        let timeout_seconds = hook.timeout_seconds.unwrap_or(10);
        if !(1..=120).contains(&timeout_seconds) {
            v.error(
                &at("timeout_seconds"),
                "timeout_seconds must be between 1 and 120",
            );
            ok = false;
        }
        if ok {
            out.push(WebhookConfig {
                name: hook.name.clone(),
                url: hook.url.clone(),
                format,
                max_attempts,
                timeout_seconds,
            });
        }
    }
    out
}

fn validate_store(v: &mut Validator<'_>, raw: &RawConfig) -> StoreConfig {
    if let Some(url) = &raw.store.url {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
            v.error(
                &key_path!["store", "url"],
                format!(
                    "unsupported store url scheme `{scheme}`: expected `sqlite://PATH` or `postgres://…`"
                ),
            );
        }
    }
    StoreConfig {
        url: raw.store.url.clone(),
    }
}

fn validate_audit(v: &mut Validator<'_>, raw: &RawConfig) -> AuditConfig {
    let audit = &raw.audit;
    let mut positive = |key: &str, value: Option<u64>, default: u64| {
        let value = value.unwrap_or(default);
        if value == 0 {
            v.error(
                &key_path!["audit", key],
                format!("{key} must be at least 1"),
            );
        }
        value
    };
    let checkpoint_every_records = positive(
        "checkpoint_every_records",
        audit.checkpoint_every_records,
        1000,
    );
    let checkpoint_every_seconds = positive(
        "checkpoint_every_seconds",
        audit.checkpoint_every_seconds,
        60,
    );
    for (index, pattern) in audit.redact.iter().enumerate() {
        if let Err(err) = regex::Regex::new(pattern) {
            v.error(
                &key_path!["audit", "redact", index],
                format!(
                    "invalid redaction regex `{pattern}`: {}",
                    meho_core::display::regex_error(&err.to_string())
                ),
            );
        }
    }
    let path = |p: &Option<String>| p.as_ref().map(PathBuf::from);
    AuditConfig {
        key_file: path(&audit.key_file),
        public_key_file: path(&audit.public_key_file),
        witness_file: path(&audit.witness_file),
        checkpoint_every_records,
        checkpoint_every_seconds,
        redact: audit.redact.clone(),
    }
}

fn validate_secrets(v: &mut Validator<'_>, raw: &RawConfig) -> SecretsConfig {
    let key_file = raw.secrets.key_file.as_deref();
    if key_file.is_some_and(|file| file.trim().is_empty()) {
        v.error(
            &key_path!["secrets", "key_file"],
            "key_file must not be empty (leave it out to configure no key)",
        );
    }
    SecretsConfig {
        key_file: key_file
            .filter(|file| !file.trim().is_empty())
            .map(PathBuf::from),
    }
}

fn validate_ca_keys(v: &mut Validator<'_>, raw: &RawConfig) -> BTreeMap<String, CaSource> {
    let groups: BTreeSet<&str> = raw
        .hosts
        .values()
        .flat_map(|h| h.groups.iter().map(String::as_str))
        .collect();
    let mut keys = BTreeMap::new();
    for (group, key) in &raw.ca_keys {
        let at = |k: &'static str| key_path!["ca_keys", group.as_str(), k];
        let source = match (&key.path, &key.vault_ssh_mount, &key.vault_ssh_role) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                v.error(
                    &at("path"),
                    format!(
                        "ca_keys `{group}`: set either path (a key file) or vault_ssh_mount and vault_ssh_role (Vault's SSH engine), not both"
                    ),
                );
                continue;
            }
            (Some(path), None, None) => {
                if path.trim().is_empty() {
                    v.error(
                        &at("path"),
                        format!("ca_keys `{group}`: path must not be empty"),
                    );
                    continue;
                }
                let path = PathBuf::from(path);
                v.file(
                    &at("path"),
                    format!("ca_keys.{group}.path"),
                    &path,
                    FileUse::SshCa,
                );
                CaSource::File(path)
            }
            (None, Some(mount), Some(role)) => {
                let errors_before = v.errors.len();
                for (k, value) in [("vault_ssh_mount", mount), ("vault_ssh_role", role)] {
                    if !is_vault_name(value) {
                        v.error(
                            &at(k),
                            format!(
                                "ca_keys `{group}`: {k} `{value}` must be a mount or role name (letters, digits, `_-.`)"
                            ),
                        );
                    }
                }
                if raw.vault.is_none() {
                    v.error(
                        &at("vault_ssh_mount"),
                        format!(
                            "ca_keys `{group}`: a Vault SSH CA needs a [vault] section (the signer logs in to Vault as the caller to sign)"
                        ),
                    );
                }
                if v.errors.len() > errors_before {
                    continue;
                }
                CaSource::Vault {
                    mount: mount.clone(),
                    role: role.clone(),
                }
            }
            (None, Some(_), None) => {
                v.error(
                    &at("vault_ssh_mount"),
                    format!("ca_keys `{group}`: vault_ssh_mount needs vault_ssh_role"),
                );
                continue;
            }
            (None, None, Some(_)) => {
                v.error(
                    &at("vault_ssh_role"),
                    format!("ca_keys `{group}`: vault_ssh_role needs vault_ssh_mount"),
                );
                continue;
            }
            (None, None, None) => {
                v.error(
                    &key_path!["ca_keys", group.as_str()],
                    format!(
                        "ca_keys `{group}`: set path (a key file) or vault_ssh_mount and vault_ssh_role (Vault's SSH engine)"
                    ),
                );
                continue;
            }
        };
        if group != DEFAULT_GROUP && !groups.contains(group.as_str()) {
            v.warn(
                &key_path!["ca_keys", group.as_str()],
                format!("ca_keys `{group}` names a group no host belongs to"),
            );
        }
        keys.insert(group.clone(), source);
    }
    keys
}

/// A Vault mount or role name: `/`-separated segments of letters, digits and `_-.`, none `..`.
fn is_vault_name(value: &str) -> bool {
    !value.is_empty()
        && value.split('/').all(|s| {
            !s.is_empty()
                && s != ".."
                && s != "."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        })
}

fn validate_auth(v: &mut Validator<'_>, raw: &RawConfig) -> AuthConfig {
    let auth = &raw.auth;
    let url_ok = |u: &str| u.starts_with("https://") || u.starts_with("http://");
    if let Some(issuer) = &auth.issuer {
        if !url_ok(issuer) {
            v.error(
                &key_path!["auth", "issuer"],
                format!("issuer `{issuer}` must be an http(s) URL"),
            );
        }
        if auth.audience.is_none() {
            v.error(
                &key_path!["auth", "issuer"],
                "[auth] issuer needs audience as well: the resource URL tokens must be issued for (e.g. https://meho.example/mcp)",
            );
        }
    }
    if let Some(audience) = &auth.audience
        && !url_ok(audience)
    {
        v.error(
            &key_path!["auth", "audience"],
            format!("audience `{audience}` must be the http(s) URL of this server's /mcp"),
        );
    }
    let skew = auth.clock_skew_seconds.unwrap_or(60);
    if skew > 300 {
        v.error(
            &key_path!["auth", "clock_skew_seconds"],
            "clock_skew_seconds must be at most 300",
        );
    }
    let claim = |v: &mut Validator<'_>, key: &str, value: &Option<String>, default: &str| {
        let value = value.clone().unwrap_or_else(|| default.to_owned());
        if value.trim().is_empty() {
            v.error(&key_path!["auth", key], format!("{key} must not be empty"));
        }
        value
    };
    let user_claim = claim(v, "user_claim", &auth.user_claim, "sub");
    let tenant_claim = claim(v, "tenant_claim", &auth.tenant_claim, "tenant_id");
    let role_claim = claim(v, "role_claim", &auth.role_claim, "tenant_role");
    AuthConfig {
        issuer: auth
            .issuer
            .as_ref()
            .map(|i| i.trim_end_matches('/').to_owned()),
        audience: auth.audience.clone(),
        required_scopes: auth.required_scopes.clone(),
        user_claim,
        groups_claim: auth.groups_claim.clone(),
        tenant_claim,
        role_claim,
        clock_skew_seconds: skew,
    }
}

fn validate_approvals(v: &mut Validator<'_>, raw: &RawConfig) -> ApprovalsConfig {
    let approvals = &raw.approvals;
    let ttl_seconds = approvals.ttl_seconds.unwrap_or(600);
    if !(10..=86_400).contains(&ttl_seconds) {
        v.error(
            &key_path!["approvals", "ttl_seconds"],
            "ttl_seconds must be between 10 and 86400",
        );
    }
    let mut approver_roles = Vec::new();
    match &approvals.approver_roles {
        None => approver_roles.push(Role::TenantAdmin),
        Some(names) => {
            for (index, name) in names.iter().enumerate() {
                match Role::parse(name) {
                    Some(role) => approver_roles.push(role),
                    None => v.error(
                        &key_path!["approvals", "approver_roles", index],
                        format!("role `{name}` is not one of tenant_admin, operator, read_only"),
                    ),
                }
            }
            if names.is_empty() {
                v.error(
                    &key_path!["approvals", "approver_roles"],
                    "approver_roles must name at least one role, or nobody could approve",
                );
            }
        }
    }
    if approvals.allow_self_approval {
        v.warn(
            &key_path!["approvals", "allow_self_approval"],
            "allow_self_approval lets a requester approve their own calls (four eyes off; each is audited as self-approval)",
        );
    }
    ApprovalsConfig {
        ttl_seconds,
        approver_roles,
        allow_self_approval: approvals.allow_self_approval,
    }
}

fn validate_mcp(v: &mut Validator<'_>, raw: &RawConfig) -> McpConfig {
    let stdio = &raw.mcp.stdio;
    let role = match stdio.role.as_deref() {
        None => Role::TenantAdmin,
        Some(text) => Role::parse(text).unwrap_or_else(|| {
            v.error(
                &key_path!["mcp", "stdio", "role"],
                format!("role `{text}` is not one of tenant_admin, operator, read_only"),
            );
            Role::ReadOnly
        }),
    };
    if let Some(tenant) = &stdio.tenant
        && !crate::is_valid_tenant(tenant)
    {
        v.error(
            &key_path!["mcp", "stdio", "tenant"],
            format!("tenant `{tenant}` is empty or reserved (names starting with `_`)"),
        );
    }
    let mut at_least_one = |key: &str, value: Option<u32>, default: u32| {
        let value = value.unwrap_or(default);
        if value == 0 {
            v.error(
                &key_path!["mcp", key],
                format!("{key} must be at least 1, or no MCP client could connect"),
            );
        }
        value
    };
    let max_sessions = at_least_one(
        "max_sessions",
        raw.mcp.max_sessions,
        crate::DEFAULT_MAX_MCP_SESSIONS,
    );
    let max_sessions_per_principal = at_least_one(
        "max_sessions_per_principal",
        raw.mcp.max_sessions_per_principal,
        crate::DEFAULT_MAX_MCP_SESSIONS_PER_PRINCIPAL,
    );
    if max_sessions_per_principal > max_sessions {
        v.warn(
            &key_path!["mcp", "max_sessions_per_principal"],
            format!(
                "max_sessions_per_principal ({max_sessions_per_principal}) is above max_sessions ({max_sessions}); one principal can still hold at most {max_sessions}"
            ),
        );
    }
    McpConfig {
        stdio_principal: stdio.principal.clone(),
        stdio_tenant: stdio
            .tenant
            .clone()
            .unwrap_or_else(|| DEFAULT_TENANT.to_owned()),
        stdio_role: role,
        stdio_groups: stdio.groups.clone(),
        allowed_hosts: raw.mcp.allowed_hosts.clone(),
        max_sessions,
        max_sessions_per_principal,
    }
}

fn validate_signer(v: &mut Validator<'_>, raw: &RawConfig) -> SignerConfig {
    let signer = &raw.signer;
    let listen_text = signer.listen.as_deref().unwrap_or(DEFAULT_SIGNER_LISTEN);
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        v.error(
            &key_path!["signer", "listen"],
            format!("`{listen_text}` is not an `ip:port` socket address"),
        );
        SocketAddr::from(([127, 0, 0, 1], 8443))
    });
    for (index, caller) in signer.allowed_callers.iter().enumerate() {
        if caller.trim().is_empty() {
            v.error(
                &key_path!["signer", "allowed_callers", index],
                "allowed_callers entries must not be empty",
            );
        }
    }
    let mut path = |key: &str, p: &Option<String>| {
        let path = p.as_ref().map(PathBuf::from)?;
        v.file(
            &key_path!["signer", key],
            format!("signer.{key}"),
            &path,
            FileUse::SignerTls,
        );
        Some(path)
    };
    SignerConfig {
        listen,
        tls_cert: path("tls_cert", &signer.tls_cert),
        tls_key: path("tls_key", &signer.tls_key),
        client_ca: path("client_ca", &signer.client_ca),
        allowed_callers: signer.allowed_callers.clone(),
    }
}

fn validate_ssh(v: &mut Validator<'_>, raw: &RawConfig) -> SshConfig {
    let ssh = &raw.ssh;
    let signer = match &ssh.signer_url {
        None => {
            for key in ["tls_cert", "tls_key", "signer_ca"] {
                let set = match key {
                    "tls_cert" => ssh.tls_cert.is_some(),
                    "tls_key" => ssh.tls_key.is_some(),
                    _ => ssh.signer_ca.is_some(),
                };
                if set {
                    v.warn(
                        &key_path!["ssh", key],
                        format!("ssh.{key} is unused without ssh.signer_url"),
                    );
                }
            }
            SignerLocation::InProcess {
                caller: ssh.caller.clone().unwrap_or_else(|| "meho".to_owned()),
            }
        }
        Some(url) => {
            if !url.starts_with("https://") {
                v.error(
                    &key_path!["ssh", "signer_url"],
                    format!("signer_url `{url}` must be an https:// URL (the signer is reached over mutual TLS)"),
                );
            }
            let mut required = |key: &str, value: &Option<String>| match value {
                Some(value) if !value.trim().is_empty() => {
                    let path = PathBuf::from(value);
                    v.file(
                        &key_path!["ssh", key],
                        format!("ssh.{key}"),
                        &path,
                        FileUse::BrokerTls,
                    );
                    path
                }
                _ => {
                    v.error(
                        &key_path!["ssh", "signer_url"],
                        format!("ssh.signer_url needs ssh.{key} as well"),
                    );
                    PathBuf::new()
                }
            };
            SignerLocation::Remote {
                url: url.trim_end_matches('/').to_owned(),
                tls_cert: required("tls_cert", &ssh.tls_cert),
                tls_key: required("tls_key", &ssh.tls_key),
                signer_ca: required("signer_ca", &ssh.signer_ca),
            }
        }
    };
    let bind_address = ssh.bind_address.as_ref().and_then(|text| {
        text.parse::<IpAddr>().map_or_else(
            |_| {
                v.error(
                    &key_path!["ssh", "bind_address"],
                    format!("bind_address `{text}` is not an IP address"),
                );
                None
            },
            Some,
        )
    });
    let mut positive = |key: &str, value: Option<u64>, default: u64| {
        let value = value.unwrap_or(default);
        if value == 0 {
            v.error(&key_path!["ssh", key], format!("{key} must be at least 1"));
        }
        value
    };
    let output_cap_bytes = positive("output_cap_bytes", ssh.output_cap_bytes, 1 << 20);
    let exec_timeout_seconds = positive("exec_timeout_seconds", ssh.exec_timeout_seconds, 60);
    let connect_timeout_seconds =
        positive("connect_timeout_seconds", ssh.connect_timeout_seconds, 10);
    let session_idle_timeout_seconds = positive(
        "session_idle_timeout_seconds",
        ssh.session_idle_timeout_seconds,
        600,
    );
    let session_max_lifetime_seconds = positive(
        "session_max_lifetime_seconds",
        ssh.session_max_lifetime_seconds,
        3600,
    );
    let max_sessions = positive("max_sessions", ssh.max_sessions.map(u64::from), 64);
    let max_sessions_per_caller = positive(
        "max_sessions_per_caller",
        ssh.max_sessions_per_caller.map(u64::from),
        8,
    );
    let file_transfer_max_bytes = positive(
        "file_transfer_max_bytes",
        ssh.file_transfer_max_bytes,
        16 << 20,
    );
    SshConfig {
        signer,
        bind_address,
        output_cap_bytes,
        exec_timeout_seconds,
        connect_timeout_seconds,
        session_idle_timeout_seconds,
        session_max_lifetime_seconds,
        max_sessions: u32::try_from(max_sessions).unwrap_or(u32::MAX),
        max_sessions_per_caller: u32::try_from(max_sessions_per_caller).unwrap_or(u32::MAX),
        recording_dir: ssh.recording_dir.as_ref().map(PathBuf::from),
        recording_strict: ssh.recording_strict,
        file_transfer_max_bytes,
    }
}

fn validate_reduction(v: &mut Validator<'_>, raw: &RawConfig) -> ReductionConfig {
    let r = &raw.reduction;
    let d = ReductionConfig::default();
    let mut positive = |key: &str, value: Option<u64>, default: u64| {
        let value = value.unwrap_or(default);
        if value == 0 {
            v.error(
                &key_path!["reduction", key],
                format!("{key} must be at least 1"),
            );
        }
        value
    };
    let threshold_rows = positive("threshold_rows", r.threshold_rows, d.threshold_rows);
    let threshold_bytes = positive("threshold_bytes", r.threshold_bytes, d.threshold_bytes);
    let answer_max_bytes = positive("answer_max_bytes", r.answer_max_bytes, d.answer_max_bytes);
    let raw_max_bytes = positive("raw_max_bytes", r.raw_max_bytes, d.raw_max_bytes);
    let ttl_seconds = positive("ttl_seconds", r.ttl_seconds, d.ttl.as_secs());
    let max_result_bytes = positive("max_result_bytes", r.max_result_bytes, d.max_result_bytes);
    let max_principal_bytes = positive(
        "max_principal_bytes",
        r.max_principal_bytes,
        d.max_principal_bytes,
    );
    let query_timeout_ms = positive(
        "query_timeout_ms",
        r.query_timeout_ms,
        u64::try_from(d.query_timeout.as_millis()).unwrap_or(u64::MAX),
    );
    let query_max_rows = positive("query_max_rows", r.query_max_rows, d.query_max_rows);
    let query_max_bytes = positive("query_max_bytes", r.query_max_bytes, d.query_max_bytes);
    let cache_bytes = positive("cache_bytes", r.cache_bytes, d.cache_bytes);
    // The summary itself needs room: a handle, the columns, one example query.
    if answer_max_bytes < 1024 {
        v.error(
            &key_path!["reduction", "answer_max_bytes"],
            format!("answer_max_bytes is {answer_max_bytes}; a summary needs at least 1024"),
        );
    }
    if max_principal_bytes < max_result_bytes {
        v.error(
            &key_path!["reduction", "max_principal_bytes"],
            format!(
                "max_principal_bytes ({max_principal_bytes}) is below max_result_bytes ({max_result_bytes}): one result could never be kept"
            ),
        );
    }
    ReductionConfig {
        enabled: r.enabled.unwrap_or(d.enabled),
        threshold_rows,
        threshold_bytes,
        answer_max_bytes,
        raw_max_bytes,
        ttl: Duration::from_secs(ttl_seconds),
        max_result_bytes,
        max_principal_bytes,
        query_timeout: Duration::from_millis(query_timeout_ms),
        query_max_rows,
        query_max_bytes,
        cache_bytes,
    }
}

const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

fn validate_log(v: &mut Validator<'_>, raw: &RawConfig) -> LogConfig {
    let level = raw.log.level.clone().unwrap_or_else(|| "info".to_owned());
    for directive in level.split(',').map(str::trim) {
        let level_part = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LOG_LEVELS.contains(&level_part.to_ascii_lowercase().as_str()) {
            v.error(
                &key_path!["log", "level"],
                format!(
                    "invalid log directive `{directive}`: expected `LEVEL` or `target=LEVEL` with LEVEL one of {}",
                    LOG_LEVELS.join(", ")
                ),
            );
        }
    }
    LogConfig { level }
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        && name.len() <= 128
}

/// Converts a raw policy and checks it on its own. `at` is the path of the policy table.
fn convert_policy(
    v: &mut Validator<'_>,
    at: &[Segment],
    name: String,
    raw: &RawCommandPolicy,
) -> Option<CommandPolicy> {
    let mut policy = CommandPolicy::new(name);
    policy.mode = match raw.mode {
        RawMode::Off => Mode::Off,
        RawMode::Allowlist => Mode::Allowlist,
        RawMode::Denylist => Mode::Denylist,
    };
    policy.allow = raw.allow.clone();
    policy.deny = raw.deny.clone();
    policy.require_approval = raw.require_approval.clone();
    policy.shell_parse = raw.shell_parse.unwrap_or(true);
    policy.enforcement = match raw.enforcement {
        RawEnforcement::Enforce => Enforcement::Enforce,
        RawEnforcement::Audit => Enforcement::Audit,
    };
    policy.tier = raw.tier.unwrap_or_default();
    let within = |tail: &[Segment]| at.iter().chain(tail).cloned().collect::<Vec<_>>();
    match policy.validate() {
        Ok(()) => {}
        Err(err) => {
            let location = match &err {
                PolicyError::InvalidRegex { list, pattern, .. } => {
                    let list_items = match *list {
                        "allow" => &policy.allow,
                        "deny" => &policy.deny,
                        _ => &policy.require_approval,
                    };
                    let index = list_items.iter().position(|p| p == pattern).unwrap_or(0);
                    within(&key_path![*list, index])
                }
                PolicyError::DenyOnAllowlist { .. } => within(&key_path!["deny"]),
                PolicyError::AllowOnDenylist { .. } => within(&key_path!["allow"]),
                _ => at.to_vec(),
            };
            v.error(&location, err.to_string());
            return None;
        }
    }
    // An `off` policy still contributes its `require_approval` rules (and its shell parsing);
    // only its allow and deny rules are dead weight.
    if policy.mode == Mode::Off && !(policy.allow.is_empty() && policy.deny.is_empty()) {
        v.warn(
            &within(&key_path!["mode"]),
            format!(
                "policy `{}` has mode = \"off\", so its `allow` and `deny` rules are ignored (its `require_approval` rules still apply)",
                policy.name
            ),
        );
    }
    for lint in meho_policy::lint::lint_policy(&policy) {
        v.warn(&within(&key_path![lint.list, lint.index]), lint.to_string());
    }
    if policy.mode == Mode::Allowlist && policy.allow.is_empty() {
        v.warn(
            &within(&key_path!["allow"]),
            format!(
                "policy `{}` is an allowlist with no `allow` rules: it denies every command",
                policy.name
            ),
        );
    }
    Some(policy)
}

fn validate_named_policies(
    v: &mut Validator<'_>,
    raw: &RawConfig,
) -> BTreeMap<String, CommandPolicy> {
    let mut policies = BTreeMap::new();
    for (name, policy) in &raw.command_policies {
        let at = key_path!["command_policies", name];
        if !is_valid_name(name) {
            v.error(&at, format!("invalid policy name `{name}`"));
            continue;
        }
        if let Some(policy) = convert_policy(v, &at, name.clone(), policy) {
            policies.insert(name.clone(), policy);
        }
    }
    policies
}

fn validate_group_references(
    v: &mut Validator<'_>,
    raw: &RawConfig,
    policies: &BTreeMap<String, CommandPolicy>,
) {
    let known_groups: BTreeSet<&str> = raw
        .hosts
        .values()
        .flat_map(|h| h.groups.iter().map(String::as_str))
        .collect();
    for (group, names) in &raw.group_command_policies {
        if group != DEFAULT_GROUP && !known_groups.contains(group.as_str()) {
            v.warn(
                &key_path!["group_command_policies", group],
                format!("group `{group}` has policies but no host is in it"),
            );
        }
        for (index, name) in names.iter().enumerate() {
            if !policies.contains_key(name) && !raw.command_policies.contains_key(name) {
                v.error(
                    &key_path!["group_command_policies", group, index],
                    format!(
                        "group `{group}` names unknown policy `{name}` (define it under [command_policies.{name}])"
                    ),
                );
            }
        }
    }
}

/// Checks `jump` references and returns the hosts that serve as bastions for another host.
fn validate_jumps(v: &mut Validator<'_>, raw: &RawConfig) -> BTreeSet<String> {
    let mut bastions = BTreeSet::new();
    for (name, host) in &raw.hosts {
        let Some(jump) = &host.jump else { continue };
        let at = key_path!["hosts", name, "jump"];
        if jump == name {
            v.error(&at, format!("host `{name}` cannot jump through itself"));
            continue;
        }
        if !raw.hosts.contains_key(jump) {
            v.error(
                &at,
                format!("host `{name}` jumps through unknown host `{jump}`"),
            );
            continue;
        }
        bastions.insert(jump.clone());
        // Follow the chain; a chain longer than the host count has a cycle.
        let mut seen = BTreeSet::from([name.as_str()]);
        let mut current = jump.as_str();
        while let Some(next) = raw.hosts.get(current).and_then(|h| h.jump.as_deref()) {
            if !seen.insert(current) {
                v.error(
                    &at,
                    format!("the jump chain of host `{name}` loops back to `{current}`"),
                );
                break;
            }
            current = next;
        }
    }
    bastions
}

fn validate_addr(addr: &str) -> Result<(), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("addr `{addr}` must be `host:port`"))?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    if !port_ok {
        return Err(format!("addr `{addr}` has an invalid port `{port}`"));
    }
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && !host.contains(':')
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    if host_ok {
        Ok(())
    } else {
        Err(format!("addr `{addr}` has an invalid host part `{host}`"))
    }
}

const HOST_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

fn validate_host_key(key: &str) -> Result<(), String> {
    let mut fields = key.split_whitespace();
    let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
        return Err("host_key must be an OpenSSH public key line, `TYPE BASE64 [COMMENT]`".into());
    };
    if !HOST_KEY_TYPES.contains(&kind) {
        return Err(format!(
            "host_key has unsupported key type `{kind}` (expected one of {})",
            HOST_KEY_TYPES.join(", ")
        ));
    }
    let base64_ok = blob.len() % 4 == 0
        && blob.len() >= 16
        && blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if !base64_ok {
        return Err("host_key's key data is not valid base64".into());
    }
    Ok(())
}

fn validate_source_address(list: &str) -> Result<(), String> {
    for entry in list.split(',') {
        let entry = entry.trim();
        let (ip, prefix) = entry.split_once('/').unwrap_or((entry, ""));
        let Ok(ip) = ip.parse::<IpAddr>() else {
            return Err(format!(
                "source_address entry `{entry}` is not an IP address or CIDR"
            ));
        };
        if !prefix.is_empty() {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if !prefix.parse::<u8>().is_ok_and(|p| p <= max) {
                return Err(format!(
                    "source_address entry `{entry}` has an invalid prefix length"
                ));
            }
        }
    }
    Ok(())
}

fn validate_host(
    v: &mut Validator<'_>,
    raw: &RawConfig,
    named: &BTreeMap<String, CommandPolicy>,
    bastions: &BTreeSet<String>,
    name: &str,
    host: &RawHost,
) -> Option<Host> {
    let errors_before = v.errors.len();
    let at = |key: &str| key_path!["hosts", name, key];
    if !is_valid_name(name) {
        v.error(
            &key_path!["hosts", name],
            format!("invalid host name `{name}`"),
        );
    }
    if let Err(message) = validate_addr(&host.addr) {
        v.error(&at("addr"), format!("host `{name}`: {message}"));
    }
    if host.user.trim().is_empty() || host.user.contains(char::is_whitespace) {
        v.error(
            &at("user"),
            format!("host `{name}`: invalid user `{}`", host.user),
        );
    }
    if let Err(message) = validate_host_key(&host.host_key) {
        v.error(&at("host_key"), format!("host `{name}`: {message}"));
    }
    let principal = host.principal.clone().unwrap_or_else(|| host.user.clone());
    if principal.is_empty() || principal.contains([',', ' ', '\t']) {
        v.error(
            &at("principal"),
            format!("host `{name}`: invalid principal `{principal}`"),
        );
    }
    if let Some(source) = &host.source_address
        && let Err(message) = validate_source_address(source)
    {
        v.error(&at("source_address"), format!("host `{name}`: {message}"));
    }
    let max_ttl_seconds = host.max_ttl_seconds.unwrap_or(DEFAULT_MAX_TTL);
    if max_ttl_seconds == 0 || max_ttl_seconds > MAX_TTL_CEILING {
        v.error(
            &at("max_ttl_seconds"),
            format!(
                "host `{name}`: max_ttl_seconds = {max_ttl_seconds} is out of range (1..={MAX_TTL_CEILING})"
            ),
        );
    }
    for (index, group) in host.groups.iter().enumerate() {
        if !is_valid_name(group) {
            v.error(
                &key_path!["hosts", name, "groups", index],
                format!("host `{name}`: invalid group name `{group}`"),
            );
        }
    }
    for (index, user) in host.allowed_sudo_users.iter().enumerate() {
        if !is_valid_sudo_user(user) {
            v.error(
                &key_path!["hosts", name, "allowed_sudo_users", index],
                format!("host `{name}`: invalid sudo user `{user}`"),
            );
        }
    }
    for (index, caller) in host.allowed_callers.iter().enumerate() {
        if caller.trim().is_empty() {
            v.error(
                &key_path!["hosts", name, "allowed_callers", index],
                format!("host `{name}`: empty caller name"),
            );
        }
    }

    // Composition: `_default`'s policies, each group's in order, then the inline one.
    let mut members: Vec<CommandPolicy> = Vec::new();
    let groups = std::iter::once(DEFAULT_GROUP).chain(host.groups.iter().map(String::as_str));
    for group in groups {
        for policy_name in raw.group_command_policies.get(group).into_iter().flatten() {
            if let Some(policy) = named.get(policy_name) {
                members.push(policy.clone());
            }
        }
    }
    if let Some(inline) = &host.command_policy
        && let Some(policy) =
            convert_policy(v, &at("command_policy"), format!("{name}/inline"), inline)
    {
        members.push(policy);
    }
    let policies = match PolicySet::compile(members) {
        Ok(set) => set,
        Err(err) => {
            v.error(&key_path!["hosts", name], format!("host `{name}`: {err}"));
            return None;
        }
    };

    let jumped_through = bastions.contains(name);
    if (host.allow_as_bastion || jumped_through) && policies.is_restricting() {
        let restricting: Vec<&str> = policies
            .members()
            .iter()
            .filter(|m| m.restricting)
            .map(|m| m.policy.name.as_str())
            .collect();
        let why = if host.allow_as_bastion {
            "allow_as_bastion = true"
        } else {
            "another host jumps through it"
        };
        v.error(
            &at(if host.allow_as_bastion {
                "allow_as_bastion"
            } else {
                "command_policy"
            }),
            format!(
                "host `{name}`: {why}, but it has a restricting command policy ({}); a bastion certificate carries no force-command, so the policy could be bypassed",
                restricting.join(", ")
            ),
        );
    }

    if v.errors.len() > errors_before {
        return None;
    }
    Some(Host {
        name: name.to_owned(),
        addr: host.addr.clone(),
        user: host.user.clone(),
        host_key: host.host_key.clone(),
        jump: host.jump.clone(),
        groups: host.groups.clone(),
        principal,
        source_address: host.source_address.clone(),
        max_ttl_seconds,
        allow_as_bastion: host.allow_as_bastion || jumped_through,
        allowed_callers: host.allowed_callers.clone(),
        allow_pty: host.allow_pty,
        allow_file_transfer: host.allow_file_transfer,
        tenant: match &host.tenant {
            None => DEFAULT_TENANT.to_owned(),
            Some(tenant) => {
                if !crate::is_valid_tenant(tenant) {
                    v.error(
                        &at("tenant"),
                        format!("host `{name}`: tenant `{tenant}` is empty or reserved (names starting with `_`)"),
                    );
                }
                tenant.clone()
            }
        },
        policy: HostPolicy {
            policies,
            allow_sudo: host.allow_sudo,
            allowed_sudo_users: host.allowed_sudo_users.clone(),
        },
    })
}

fn raw_hosts(raw: &RawConfig) -> &BTreeMap<String, RawHost> {
    &raw.hosts
}

fn validate_cluster(
    v: &mut Validator<'_>,
    hosts: &BTreeMap<String, RawHost>,
    name: &str,
    cluster: &RawCluster,
) -> Option<crate::Cluster> {
    use meho_policy::kube::{ClusterPolicy, ClusterRule, RuleEffect, is_dns_label};
    let errors_before = v.errors.len();
    let at = |key: &str| key_path!["clusters", name, key];
    if !is_valid_name(name) {
        v.error(
            &key_path!["clusters", name],
            format!("invalid cluster name `{name}`"),
        );
    }
    if hosts.contains_key(name) {
        v.error(
            &key_path!["clusters", name],
            format!(
                "cluster `{name}` has the name of host `{name}` ([hosts.{name}]); targets are named once across hosts and clusters"
            ),
        );
    }
    match url::Url::parse(&cluster.api_server) {
        Ok(url) if url.scheme() == "https" && url.host().is_some() && url.path() == "/" => {}
        Ok(_) => v.error(
            &at("api_server"),
            format!(
                "cluster `{name}`: api_server `{}` must be `https://host[:port]` (no path)",
                cluster.api_server
            ),
        ),
        Err(err) => v.error(
            &at("api_server"),
            format!(
                "cluster `{name}`: api_server `{}`: {err}",
                cluster.api_server
            ),
        ),
    }
    for (key, value) in [
        ("ca_cert", &cluster.ca_cert),
        ("minter_token_file", &cluster.minter_token_file),
    ] {
        if value.trim().is_empty() {
            v.error(
                &at(key),
                format!("cluster `{name}`: {key} must not be empty"),
            );
        } else {
            v.file(
                &at(key),
                format!("clusters.{name}.{key}"),
                Path::new(value),
                FileUse::Kube,
            );
        }
    }
    let token_ttl_seconds = cluster
        .token_ttl_seconds
        .unwrap_or(crate::DEFAULT_CLUSTER_TOKEN_TTL);
    if !(600..=900).contains(&token_ttl_seconds) {
        v.error(
            &at("token_ttl_seconds"),
            format!(
                "cluster `{name}`: token_ttl_seconds = {token_ttl_seconds} is out of range (600..=900; the API server refuses tokens shorter than 600 s)"
            ),
        );
    }
    for (index, group) in cluster.groups.iter().enumerate() {
        if !is_valid_name(group) {
            v.error(
                &key_path!["clusters", name, "groups", index],
                format!("cluster `{name}`: invalid group name `{group}`"),
            );
        }
    }
    for (index, caller) in cluster.allowed_callers.iter().enumerate() {
        if caller.trim().is_empty() {
            v.error(
                &key_path!["clusters", name, "allowed_callers", index],
                format!("cluster `{name}`: empty caller name"),
            );
        }
    }
    let mut sa_bindings = Vec::new();
    for (index, binding) in cluster.sa_bindings.iter().enumerate() {
        for (key, value) in [
            ("namespace", &binding.namespace),
            ("service_account", &binding.service_account),
        ] {
            let ok = if key == "namespace" {
                is_dns_label(value)
            } else {
                meho_policy::kube::is_dns_subdomain(value)
            };
            if !ok {
                v.error(
                    &key_path!["clusters", name, "sa_bindings", index, key],
                    format!("cluster `{name}`: sa_bindings[{index}].{key} `{value}` is not a valid Kubernetes name"),
                );
            }
        }
        sa_bindings.push(crate::SaBinding {
            groups: binding.groups.clone(),
            namespace: binding.namespace.clone(),
            service_account: binding.service_account.clone(),
        });
    }
    if sa_bindings.is_empty() {
        v.error(
            &at("sa_bindings"),
            format!("cluster `{name}`: sa_bindings is empty, so no call could run (name at least one ServiceAccount)"),
        );
    }
    let rules = cluster
        .rules
        .iter()
        .map(|rule| ClusterRule {
            verbs: rule.verbs.clone(),
            resources: rule.resources.clone(),
            namespaces: rule
                .namespaces
                .clone()
                .unwrap_or_else(|| vec!["*".to_owned()]),
            names: rule.names.clone().unwrap_or_else(|| vec!["*".to_owned()]),
            effect: match rule.effect {
                RawRuleEffect::Allow => RuleEffect::Allow,
                RawRuleEffect::Deny => RuleEffect::Deny,
                RawRuleEffect::RequireApproval => RuleEffect::RequireApproval,
            },
            tier: rule.tier,
            reveal: rule.reveal,
        })
        .collect();
    let policy = match ClusterPolicy::compile(name, rules) {
        Ok(policy) => Some(policy),
        Err(err) => {
            let rule_at = match &err {
                PolicyError::InvalidRegex { policy, .. } => policy
                    .rsplit_once("rules[")
                    .and_then(|(_, i)| i.trim_end_matches(']').parse::<usize>().ok()),
                _ => None,
            };
            let message = format!("cluster `{name}`: {err}");
            match rule_at {
                Some(index) => v.error(&key_path!["clusters", name, "rules", index], message),
                None => v.error(&at("rules"), message),
            }
            None
        }
    };
    if cluster.rules.is_empty() {
        v.warn(
            &key_path!["clusters", name],
            format!("cluster `{name}` has no rules, so every action on it is denied"),
        );
    }
    let tenant = match &cluster.tenant {
        None => DEFAULT_TENANT.to_owned(),
        Some(tenant) => {
            if !crate::is_valid_tenant(tenant) {
                v.error(
                    &at("tenant"),
                    format!("cluster `{name}`: tenant `{tenant}` is empty or reserved (names starting with `_`)"),
                );
            }
            tenant.clone()
        }
    };
    if v.errors.len() > errors_before {
        return None;
    }
    Some(crate::Cluster {
        name: name.to_owned(),
        api_server: cluster.api_server.trim_end_matches('/').to_owned(),
        ca_cert: PathBuf::from(&cluster.ca_cert),
        minter_token_file: PathBuf::from(&cluster.minter_token_file),
        token_ttl_seconds,
        tenant,
        groups: cluster.groups.clone(),
        allowed_callers: cluster.allowed_callers.clone(),
        sa_bindings,
        policy: policy?,
    })
}
