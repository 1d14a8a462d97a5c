//! `[apis.*]` and `[vault]`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use meho_policy::http::{ApiPolicy, ApiRule};
use meho_policy::kube::RuleEffect;

use super::{Validator, is_valid_name};
use crate::location::key_path;
use crate::raw::{
    RawApi, RawApiAuth, RawApiAuthKind, RawConfig, RawPresentAs, RawRuleEffect, RawVault,
};
use crate::{
    Api, ApiAuth, ApiOperation, DEFAULT_API_MAX_RESPONSE_BYTES, DEFAULT_API_TIMEOUT_SECONDS,
    DEFAULT_TENANT, FileUse, Presentation, SecretRef, SpecSource, VaultConfig,
};

/// Whether `url` may be used: `https`, or `http` to a loopback address only (a credential
/// never crosses a network in the clear).
fn check_url(url: &url::Url) -> Result<(), String> {
    if url.host().is_none() {
        return Err("has no host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold credentials (use `auth`)".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_owned());
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(name)) => name == "localhost",
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err("must be `https` (`http` only to a loopback address)".to_owned())
            }
        }
        other => Err(format!("has scheme `{other}`: must be `https`")),
    }
}

fn parse_url(
    v: &mut Validator<'_>,
    at: &[crate::location::Segment],
    what: &str,
    text: &str,
) -> Option<url::Url> {
    match url::Url::parse(text) {
        Ok(url) => match check_url(&url) {
            Ok(()) => Some(url),
            Err(problem) => {
                v.error(at, format!("{what} `{text}` {problem}"));
                None
            }
        },
        Err(err) => {
            v.error(at, format!("{what} `{text}`: {err}"));
            None
        }
    }
}

/// `vault:<mount>/<path>[#field]` or `stored:<name>`.
fn parse_secret_ref(text: &str) -> Result<SecretRef, String> {
    if let Some(rest) = text.strip_prefix("vault:") {
        let (location, field) = match rest.split_once('#') {
            Some((location, field)) => (location, Some(field)),
            None => (rest, None),
        };
        let Some((mount, path)) = location.split_once('/') else {
            return Err(format!("`{text}`: write `vault:<kv mount>/<path>[#field]`"));
        };
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
        };
        if !segment_ok(mount) || !path.split('/').all(segment_ok) {
            return Err(format!(
                "`{text}`: the mount and path hold letters, digits, `_-.@` and `/` between segments"
            ));
        }
        if let Some(field) = field
            && (field.is_empty() || field.chars().any(|c| c.is_control()))
        {
            return Err(format!("`{text}`: an empty or unprintable field"));
        }
        return Ok(SecretRef::Vault {
            mount: mount.to_owned(),
            path: path.to_owned(),
            field: field.map(str::to_owned),
        });
    }
    if let Some(name) = text.strip_prefix("stored:") {
        let ok = (1..=128).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            return Err(format!(
                "`{text}`: a stored secret's name holds 1-128 of `A-Za-z0-9_.-`"
            ));
        }
        return Ok(SecretRef::Stored(name.to_owned()));
    }
    Err(format!(
        "`{text}` is not a secret reference: write `vault:<kv mount>/<path>#<field>` or `stored:<name>` (a secret is never written in the config)"
    ))
}

/// A header name an operator may configure: a token, and not one meho or HTTP owns.
fn check_header_name(name: &str) -> Result<(), String> {
    let token = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
    if !token {
        return Err(format!("`{name}` is not a valid header name"));
    }
    let lower = name.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "host" | "content-length" | "content-type" | "transfer-encoding" | "connection" | "cookie"
    ) {
        return Err(format!("`{name}` cannot carry a credential"));
    }
    Ok(())
}

fn validate_auth(v: &mut Validator<'_>, name: &str, auth: Option<&RawApiAuth>) -> Option<ApiAuth> {
    let Some(auth) = auth else {
        return Some(ApiAuth::None);
    };
    let at = |key: &str| key_path!["apis", name, "auth", key];
    let mut ok = true;
    let secret = |v: &mut Validator<'_>| -> Option<SecretRef> {
        match &auth.secret {
            None => {
                v.error(
                    &key_path!["apis", name, "auth"],
                    format!(
                        "api `{name}`: auth kind `{}` needs `secret`",
                        kind_name(auth.kind)
                    ),
                );
                None
            }
            Some(text) => match parse_secret_ref(text) {
                Ok(secret) => Some(secret),
                Err(problem) => {
                    v.error(&at("secret"), format!("api `{name}`: secret {problem}"));
                    None
                }
            },
        }
    };
    let unused = |v: &mut Validator<'_>, keys: &[(&str, bool)]| {
        for (key, set) in keys {
            if *set {
                v.error(
                    &at(key),
                    format!(
                        "api `{name}`: `{key}` does not apply to auth kind `{}`",
                        kind_name(auth.kind)
                    ),
                );
            }
        }
    };
    let header = |v: &mut Validator<'_>, ok: &mut bool| -> Option<String> {
        match &auth.header {
            None => {
                v.error(
                    &key_path!["apis", name, "auth"],
                    format!("api `{name}`: `header` is required here (the header's name)"),
                );
                *ok = false;
                None
            }
            Some(header) => {
                if let Err(problem) = check_header_name(header) {
                    v.error(&at("header"), format!("api `{name}`: header {problem}"));
                    *ok = false;
                }
                Some(header.clone())
            }
        }
    };
    let result = match auth.kind {
        RawApiAuthKind::None => {
            unused(
                v,
                &[
                    ("header", auth.header.is_some()),
                    ("secret", auth.secret.is_some()),
                    ("username", auth.username.is_some()),
                    ("path", auth.path.is_some()),
                    ("present_as", auth.present_as.is_some()),
                    ("field", auth.field.is_some()),
                ],
            );
            Some(ApiAuth::None)
        }
        RawApiAuthKind::Header => {
            unused(
                v,
                &[
                    ("username", auth.username.is_some()),
                    ("path", auth.path.is_some()),
                    ("present_as", auth.present_as.is_some()),
                    ("field", auth.field.is_some()),
                ],
            );
            let header = header(v, &mut ok);
            let secret = secret(v);
            header
                .zip(secret)
                .map(|(name, secret)| ApiAuth::Header { name, secret })
        }
        RawApiAuthKind::Bearer => {
            unused(
                v,
                &[
                    ("header", auth.header.is_some()),
                    ("username", auth.username.is_some()),
                    ("path", auth.path.is_some()),
                    ("present_as", auth.present_as.is_some()),
                    ("field", auth.field.is_some()),
                ],
            );
            secret(v).map(|secret| ApiAuth::Bearer { secret })
        }
        RawApiAuthKind::Basic => {
            unused(
                v,
                &[
                    ("header", auth.header.is_some()),
                    ("path", auth.path.is_some()),
                    ("present_as", auth.present_as.is_some()),
                    ("field", auth.field.is_some()),
                ],
            );
            let secret = secret(v);
            if let Some(username) = &auth.username
                && (username.is_empty()
                    || username.contains(':')
                    || username.chars().any(char::is_control))
            {
                v.error(
                    &at("username"),
                    format!("api `{name}`: a basic user name is non-empty, without `:` or control characters"),
                );
                ok = false;
            }
            if let (None, Some(SecretRef::Stored(_))) = (&auth.username, &secret) {
                v.error(
                    &key_path!["apis", name, "auth"],
                    format!("api `{name}`: basic auth with a stored secret needs `username`"),
                );
                ok = false;
            }
            if let (None, Some(SecretRef::Vault { field: Some(_), .. })) = (&auth.username, &secret)
            {
                v.error(
                    &key_path!["apis", name, "auth"],
                    format!("api `{name}`: basic auth with one secret field needs `username` (or name the whole secret, holding `username` and `password`)"),
                );
                ok = false;
            }
            if let (Some(_), Some(SecretRef::Vault { field: None, .. })) = (&auth.username, &secret)
            {
                v.error(
                    &at("secret"),
                    format!("api `{name}`: with `username` set, `secret` names the password field (`#field`)"),
                );
                ok = false;
            }
            secret.map(|secret| ApiAuth::Basic {
                username: auth.username.clone(),
                secret,
            })
        }
        RawApiAuthKind::VaultDynamic => {
            unused(
                v,
                &[
                    ("secret", auth.secret.is_some()),
                    ("username", auth.username.is_some()),
                ],
            );
            let path = match &auth.path {
                Some(path)
                    if !path.is_empty()
                        && !path.starts_with('/')
                        && path.split('/').all(|s| {
                            !s.is_empty()
                                && s != ".."
                                && s.chars().all(|c| {
                                    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@')
                                })
                        }) =>
                {
                    Some(path.clone())
                }
                Some(path) => {
                    v.error(
                        &at("path"),
                        format!("api `{name}`: path `{path}` must be a Vault path like `database/creds/readonly`"),
                    );
                    None
                }
                None => {
                    v.error(
                        &key_path!["apis", name, "auth"],
                        format!("api `{name}`: auth kind `vault_dynamic` needs `path`"),
                    );
                    None
                }
            };
            let field = auth.field.clone().unwrap_or_else(|| "token".to_owned());
            let present = match auth.present_as.unwrap_or(RawPresentAs::Basic) {
                RawPresentAs::Basic => {
                    unused(
                        v,
                        &[
                            ("header", auth.header.is_some()),
                            ("field", auth.field.is_some()),
                        ],
                    );
                    Some(Presentation::Basic)
                }
                RawPresentAs::Bearer => {
                    unused(v, &[("header", auth.header.is_some())]);
                    Some(Presentation::Bearer { field })
                }
                RawPresentAs::Header => {
                    header(v, &mut ok).map(|name| Presentation::Header { name, field })
                }
            };
            path.zip(present)
                .map(|(path, present)| ApiAuth::VaultDynamic { path, present })
        }
    };
    if ok { result } else { None }
}

fn kind_name(kind: RawApiAuthKind) -> &'static str {
    match kind {
        RawApiAuthKind::None => "none",
        RawApiAuthKind::Header => "header",
        RawApiAuthKind::Bearer => "bearer",
        RawApiAuthKind::Basic => "basic",
        RawApiAuthKind::VaultDynamic => "vault_dynamic",
    }
}

pub(super) fn validate_api(
    v: &mut Validator<'_>,
    raw: &RawConfig,
    name: &str,
    api: &RawApi,
) -> Option<Api> {
    let errors_before = v.errors.len();
    let at = |key: &str| key_path!["apis", name, key];
    if !is_valid_name(name) {
        v.error(
            &key_path!["apis", name],
            format!("invalid api name `{name}`"),
        );
    }
    for (kind, taken) in [
        ("host", raw.hosts.contains_key(name)),
        ("cluster", raw.clusters.contains_key(name)),
    ] {
        if taken {
            v.error(
                &key_path!["apis", name],
                format!("api `{name}` has the name of {kind} `{name}`; targets are named once across hosts, clusters and apis"),
            );
        }
    }
    let base_url = parse_url(
        v,
        &at("base_url"),
        &format!("api `{name}`: base_url"),
        &api.base_url,
    );
    let base_url = base_url.map(|mut url| {
        let trimmed = url.path().trim_end_matches('/').to_owned();
        url.set_path(&trimmed);
        url
    });
    let spec = if let Some(path) = api.spec.strip_prefix("api:") {
        if !path.starts_with('/') || path.chars().any(|c| !c.is_ascii_graphic()) {
            v.error(
                &at("spec"),
                format!("api `{name}`: spec `{}`: a path on the API starts with `/` and holds visible ASCII only", api.spec),
            );
        }
        SpecSource::Api(path.to_owned())
    } else if api.spec.trim().is_empty() {
        v.error(&at("spec"), format!("api `{name}`: spec must not be empty"));
        SpecSource::File(PathBuf::new())
    } else {
        v.file(
            &at("spec"),
            format!("apis.{name}.spec"),
            std::path::Path::new(&api.spec),
            FileUse::Api,
        );
        SpecSource::File(PathBuf::from(&api.spec))
    };
    let ca_cert = api.ca_cert.as_ref().map(|path| {
        v.file(
            &at("ca_cert"),
            format!("apis.{name}.ca_cert"),
            std::path::Path::new(path),
            FileUse::Api,
        );
        PathBuf::from(path)
    });
    for (index, group) in api.groups.iter().enumerate() {
        if !is_valid_name(group) {
            v.error(
                &key_path!["apis", name, "groups", index],
                format!("api `{name}`: invalid group name `{group}`"),
            );
        }
    }
    for (index, caller) in api.allowed_callers.iter().enumerate() {
        if caller.trim().is_empty() {
            v.error(
                &key_path!["apis", name, "allowed_callers", index],
                format!("api `{name}`: empty caller name"),
            );
        }
    }
    let timeout_seconds = api.timeout_seconds.unwrap_or(DEFAULT_API_TIMEOUT_SECONDS);
    if !(1..=300).contains(&timeout_seconds) {
        v.error(
            &at("timeout_seconds"),
            format!("api `{name}`: timeout_seconds = {timeout_seconds} is out of range (1..=300)"),
        );
    }
    let max_response_bytes = api
        .max_response_bytes
        .unwrap_or(DEFAULT_API_MAX_RESPONSE_BYTES);
    if !(1024..=256 * 1024 * 1024).contains(&max_response_bytes) {
        v.error(
            &at("max_response_bytes"),
            format!("api `{name}`: max_response_bytes = {max_response_bytes} is out of range (1 KiB..=256 MiB)"),
        );
    }
    let auth = validate_auth(v, name, api.auth.as_ref());
    if auth.as_ref().is_some_and(ApiAuth::needs_vault) && raw.vault.is_none() {
        v.error(
            &key_path!["apis", name, "auth"],
            format!(
                "api `{name}`: its credential comes from Vault, but there is no [vault] section"
            ),
        );
    }
    let rules = api.rules.as_ref().map(|rules| {
        rules
            .iter()
            .map(|rule| ApiRule {
                pattern: rule.pattern.clone(),
                effect: match rule.effect {
                    RawRuleEffect::Allow => RuleEffect::Allow,
                    RawRuleEffect::Deny => RuleEffect::Deny,
                    RawRuleEffect::RequireApproval => RuleEffect::RequireApproval,
                },
                tier: rule.tier,
            })
            .collect::<Vec<_>>()
    });
    if let Err(err) = ApiPolicy::compile(name, rules.clone(), &[]) {
        let index = match &err {
            meho_policy::PolicyError::InvalidRegex { policy, .. } => policy
                .rsplit_once("rules[")
                .and_then(|(_, i)| i.trim_end_matches(']').parse::<usize>().ok()),
            _ => None,
        };
        let message = format!("api `{name}`: {err}");
        match index {
            Some(index) => v.error(&key_path!["apis", name, "rules", index, "pattern"], message),
            None => v.error(&at("rules"), message),
        }
    }
    if rules.as_ref().is_some_and(Vec::is_empty) {
        v.warn(
            &at("rules"),
            format!("api `{name}` has an empty rules list, so every call of it is denied"),
        );
    }
    let mut operations = BTreeMap::new();
    for (key, op) in &api.operations {
        if key.trim().is_empty() {
            v.error(
                &key_path!["apis", name, "operations", key.as_str()],
                format!("api `{name}`: an empty operation key"),
            );
        }
        operations.insert(
            key.clone(),
            ApiOperation {
                enabled: op.enabled.unwrap_or(true),
                tier: op.tier,
                require_approval: op.require_approval.unwrap_or(false),
            },
        );
    }
    let tenant = match &api.tenant {
        None => DEFAULT_TENANT.to_owned(),
        Some(tenant) => {
            if !crate::is_valid_tenant(tenant) {
                v.error(
                    &at("tenant"),
                    format!("api `{name}`: tenant `{tenant}` is empty or reserved (names starting with `_`)"),
                );
            }
            tenant.clone()
        }
    };
    if v.errors.len() > errors_before {
        return None;
    }
    Some(Api {
        name: name.to_owned(),
        base_url: base_url?,
        spec,
        ca_cert,
        tenant,
        groups: api.groups.clone(),
        allowed_callers: api.allowed_callers.clone(),
        auth: auth?,
        timeout: Duration::from_secs(timeout_seconds),
        max_response_bytes,
        rules,
        operations,
    })
}

fn check_mount(v: &mut Validator<'_>, key: &str, value: &str) {
    let ok = !value.is_empty()
        && value.split('/').all(|s| {
            !s.is_empty()
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        });
    if !ok {
        v.error(
            &key_path!["vault", key],
            format!("vault: {key} `{value}` must be a mount or role name (letters, digits, `_-.`)"),
        );
    }
}

pub(super) fn validate_vault(v: &mut Validator<'_>, raw: &RawVault) -> Option<VaultConfig> {
    let errors_before = v.errors.len();
    let address = parse_url(
        v,
        &key_path!["vault", "address"],
        "vault: address",
        &raw.address,
    );
    for (key, value) in [
        ("auth_mount", Some(&raw.auth_mount)),
        ("role", Some(&raw.role)),
        ("own_jwt_mount", raw.own_jwt_mount.as_ref()),
        ("own_jwt_role", raw.own_jwt_role.as_ref()),
    ] {
        if let Some(value) = value {
            check_mount(v, key, value);
        }
    }
    let ca_cert = raw.ca_cert.as_ref().map(|path| {
        v.file(
            &key_path!["vault", "ca_cert"],
            "vault.ca_cert".to_owned(),
            std::path::Path::new(path),
            FileUse::Api,
        );
        PathBuf::from(path)
    });
    let timeout_seconds = raw.timeout_seconds.unwrap_or(10);
    if !(1..=60).contains(&timeout_seconds) {
        v.error(
            &key_path!["vault", "timeout_seconds"],
            format!("vault: timeout_seconds = {timeout_seconds} is out of range (1..=60)"),
        );
    }
    for (key, value) in [("issuer", &raw.issuer), ("audience", &raw.audience)] {
        if let Some(value) = value
            && (value.trim().is_empty() || value.chars().any(char::is_control))
        {
            v.error(
                &key_path!["vault", key],
                format!("vault: {key} must be non-empty text"),
            );
        }
    }
    if v.errors.len() > errors_before {
        return None;
    }
    Some(VaultConfig {
        address: address?,
        ca_cert,
        auth_mount: raw.auth_mount.clone(),
        role: raw.role.clone(),
        own_jwt_mount: raw
            .own_jwt_mount
            .clone()
            .unwrap_or_else(|| raw.auth_mount.clone()),
        own_jwt_role: raw.own_jwt_role.clone().unwrap_or_else(|| raw.role.clone()),
        issuer: raw.issuer.clone().unwrap_or_else(|| "meho".to_owned()),
        audience: raw.audience.clone().unwrap_or_else(|| "vault".to_owned()),
        signing_key: raw.signing_key.as_ref().map(PathBuf::from),
        timeout: Duration::from_secs(timeout_seconds),
    })
}
