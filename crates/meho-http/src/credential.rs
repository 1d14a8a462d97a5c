//! The credential of one API call: fetched for the caller when the call is authorized, used for
//! that call, released (lease revoked, Vault token revoked) right after it.
//!
//! Vault federation: meho logs in to Vault's JWT auth method as the caller, with the caller's
//! own OIDC token when it has one (token exchange), else with a short-lived JWT meho signs for
//! the caller (stdio and dev-token callers: claims `sub`, `tenant`, `groups`, `role`). Vault's
//! policies therefore see the same identity meho does. The Vault token lives for one call.
//!
//! Invariants:
//! - No secret value (Vault token, API token, password) is ever in a `Debug`, an error, a log
//!   line or an audit record: records carry the token's accessor and the secret's reference.
//! - A credential that was fetched is released: explicitly after the call, or, if the call never
//!   ran (the intent could not be written, the task was dropped), by `Drop`, which revokes in the
//!   background.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use meho_config::{ApiAuth, Presentation, SecretRef, VaultConfig};
use meho_gateway::{Caller, ErrorCode, Tier, ToolError};
use meho_store::secrets::SealedSecrets;
use meho_vault::{IdentityClaims, JwtIssuer, Lease, VaultClient, VaultError, VaultToken};
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

/// How long a JWT meho signs for a caller is valid: it is presented once, right away.
const OWN_JWT_TTL: Duration = Duration::from_secs(60);

/// meho's side of Vault: the client, its own JWT issuer, the mounts.
#[derive(Debug)]
pub struct Federation {
    client: VaultClient,
    issuer: JwtIssuer,
    config: VaultConfig,
}

impl Federation {
    /// Federation with Vault as `config` says, signing meho's own JWTs with `issuer`.
    pub fn new(config: VaultConfig, issuer: JwtIssuer) -> Result<Self, String> {
        let ca =
            match &config.ca_cert {
                Some(path) => Some(std::fs::read(path).map_err(|err| {
                    format!("cannot read vault.ca_cert `{}`: {err}", path.display())
                })?),
                None => None,
            };
        let client = VaultClient::new(&config.address, ca.as_deref(), config.timeout)
            .map_err(|err| format!("cannot set up the Vault client: {err}"))?;
        Ok(Federation {
            client,
            issuer,
            config,
        })
    }

    /// The JWKS of meho's own JWTs (served at `/.well-known/jwks.json`).
    pub fn jwks(&self) -> Value {
        self.issuer.jwks()
    }

    /// Logs in as `caller`: with its identity provider's token, or with a JWT meho signs.
    pub async fn login(&self, caller: &Caller) -> Result<VaultToken, ToolError> {
        let result = match &caller.identity_token {
            Some(token) => {
                self.client
                    .login_jwt(&self.config.auth_mount, &self.config.role, token.expose())
                    .await
            }
            None => {
                let claims = IdentityClaims {
                    sub: caller.principal.clone(),
                    tenant: caller.tenant.clone(),
                    groups: caller.groups.clone().unwrap_or_default(),
                    role: match caller.max_tier {
                        Tier::Read => "read_only",
                        _ => "operator",
                    }
                    .to_owned(),
                };
                let jwt = self
                    .issuer
                    .issue(&claims, &self.config.audience, OWN_JWT_TTL)
                    .map_err(|err| vault_error(&self.config, "sign meho's JWT", err))?;
                self.client
                    .login_jwt(&self.config.own_jwt_mount, &self.config.own_jwt_role, &jwt)
                    .await
            }
        };
        result.map_err(|err| vault_error(&self.config, "log in", err))
    }

    /// Revokes `token` (logged, never raised: the call's outcome stands).
    async fn revoke(&self, token: VaultToken) -> bool {
        match self.client.revoke_self(token).await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(error = %err, "cannot revoke the call's Vault token; it expires with its TTL");
                false
            }
        }
    }
}

/// A Vault failure as the caller sees it: the call did not run.
fn vault_error(config: &VaultConfig, step: &str, err: VaultError) -> ToolError {
    let code = match &err {
        VaultError::Unreachable { .. } => ErrorCode::Unreachable,
        VaultError::Denied { .. } => ErrorCode::AuthRefused,
        VaultError::NotFound { .. } => ErrorCode::NotFound,
        _ => ErrorCode::Internal,
    };
    ToolError::new(
        code,
        format!(
            "vault at {}: cannot {step}, so the call did not run: {}",
            config.address,
            meho_core::display::escape(&err.to_string())
        ),
    )
}

/// Where a call's secrets come from.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// Vault, when `[vault]` is configured.
    pub federation: Option<Arc<Federation>>,
    /// meho's sealed secrets, when the store holds any.
    pub sealed: Option<Arc<SealedSecrets>>,
}

/// The credential of one call.
pub struct CallCredential {
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The secret values, to scrub them from a response that echoes one.
    secrets: Vec<String>,
    vault: Option<VaultToken>,
    lease: Option<String>,
    federation: Option<Arc<Federation>>,
    /// What the records say about it (never a value).
    pub record: Value,
    /// The serial of the records: the Vault token's accessor, or the secret's reference.
    pub serial: Option<String>,
}

impl std::fmt::Debug for CallCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallCredential")
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl CallCredential {
    /// No credential.
    pub fn none() -> Self {
        CallCredential {
            headers: Vec::new(),
            secrets: Vec::new(),
            vault: None,
            lease: None,
            federation: None,
            record: json!({"kind": "none"}),
            serial: None,
        }
    }

    /// The headers to send (each marked sensitive).
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// Every form of the credential that was sent, to scrub from what the API answers: the
    /// secret values and each header value whole (a basic header's base64 of `user:password`
    /// is the secret too, in another spelling).
    pub fn secrets(&self) -> Vec<String> {
        let mut all = self.secrets.clone();
        for (_, value) in &self.headers {
            if let Ok(text) = value.to_str() {
                all.push(text.to_owned());
                if let Some((_, token)) = text.split_once(' ') {
                    all.push(token.to_owned());
                }
            }
        }
        // Longest first, so a whole header value is replaced before a part of it.
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        all
    }

    /// Revokes the lease and the Vault token now; returns what the outcome record says.
    pub async fn release(mut self) -> Map<String, Value> {
        let mut notes = Map::new();
        let federation = self.federation.take();
        let lease = self.lease.take();
        let token = self.vault.take();
        if let (Some(federation), Some(token)) = (federation, token) {
            if let Some(lease) = lease {
                let revoked = match federation.client.revoke_lease(&token, &lease).await {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot revoke the call's lease; it expires with its TTL");
                        false
                    }
                };
                notes.insert("lease_revoked".into(), json!(revoked));
            }
            let revoked = federation.revoke(token).await;
            notes.insert("vault_token_revoked".into(), json!(revoked));
        }
        notes
    }
}

impl Drop for CallCredential {
    fn drop(&mut self) {
        // Released unused (the call never ran): revoke in the background.
        let (Some(federation), Some(token)) = (self.federation.take(), self.vault.take()) else {
            return;
        };
        let lease = self.lease.take();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Some(lease) = lease {
                    let _ = federation.client.revoke_lease(&token, &lease).await;
                }
                federation.revoke(token).await;
            });
        }
    }
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), ToolError> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ToolError::internal(format!("`{name}` is not a header name")))?;
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        ToolError::internal(format!(
            "the secret for header `{name}` holds characters a header cannot carry"
        ))
    })?;
    value.set_sensitive(true);
    Ok((name, value))
}

fn basic(username: &str, password: &str) -> Result<(HeaderName, HeaderValue), ToolError> {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    header("authorization", &format!("Basic {encoded}"))
}

fn field<'m>(map: &'m Map<String, Value>, name: &str, what: &str) -> Result<&'m str, ToolError> {
    map.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::internal(format!("{what} has no text field `{name}`")))
}

impl Sources {
    /// The credential `auth` needs, for `caller` on API `api` (tenant `tenant`).
    pub async fn fetch(
        &self,
        caller: &Caller,
        api: &str,
        tenant: &str,
        auth: &ApiAuth,
    ) -> Result<CallCredential, ToolError> {
        if matches!(auth, ApiAuth::None) {
            return Ok(CallCredential::none());
        }
        let mut credential = CallCredential::none();
        if auth.needs_vault() {
            let federation = self.federation.clone().ok_or_else(|| {
                ToolError::internal(format!(
                    "api `{api}` needs Vault, and [vault] is not configured"
                ))
            })?;
            let token = federation.login(caller).await?;
            credential.serial = Some(token.accessor.clone());
            credential.record = json!({
                "kind": "vault_token",
                "accessor": token.accessor,
                "ttl_seconds": token.ttl_seconds,
                "identity": if caller.identity_token.is_some() { "oidc" } else { "meho_jwt" },
            });
            credential.vault = Some(token);
            credential.federation = Some(federation);
        }
        match auth {
            ApiAuth::None => {}
            ApiAuth::Header { name, secret } => {
                let value = self.secret_text(&credential, tenant, secret).await?;
                credential.headers.push(header(name, &value)?);
                credential.secrets.push(value);
                note_secret(&mut credential, secret);
            }
            ApiAuth::Bearer { secret } => {
                let value = self.secret_text(&credential, tenant, secret).await?;
                credential
                    .headers
                    .push(header("authorization", &format!("Bearer {value}"))?);
                credential.secrets.push(value);
                note_secret(&mut credential, secret);
            }
            ApiAuth::Basic { username, secret } => {
                let (user, password) = match username {
                    Some(user) => (
                        user.clone(),
                        self.secret_text(&credential, tenant, secret).await?,
                    ),
                    None => {
                        let map = self.secret_map(&credential, secret).await?;
                        let what = format!("secret `{secret}`");
                        (
                            field(&map, "username", &what)?.to_owned(),
                            field(&map, "password", &what)?.to_owned(),
                        )
                    }
                };
                credential.headers.push(basic(&user, &password)?);
                credential.secrets.push(password);
                note_secret(&mut credential, secret);
            }
            ApiAuth::VaultDynamic { path, present } => {
                let (federation, token) = match (&credential.federation, &credential.vault) {
                    (Some(f), Some(t)) => (f.clone(), t),
                    _ => return Err(ToolError::internal("vault_dynamic without a Vault token")),
                };
                let lease: Lease = federation.client.read(token, path).await.map_err(|err| {
                    vault_error(&federation.config, &format!("read `{path}`"), err)
                })?;
                let what = format!("dynamic secret `{path}`");
                match present {
                    Presentation::Basic => {
                        let user = field(&lease.data, "username", &what)?;
                        let password = field(&lease.data, "password", &what)?;
                        credential.headers.push(basic(user, password)?);
                        credential.secrets.push(password.to_owned());
                    }
                    Presentation::Bearer { field: name } => {
                        let value = field(&lease.data, name, &what)?;
                        credential
                            .headers
                            .push(header("authorization", &format!("Bearer {value}"))?);
                        credential.secrets.push(value.to_owned());
                    }
                    Presentation::Header { name, field: key } => {
                        let value = field(&lease.data, key, &what)?;
                        credential.headers.push(header(name, value)?);
                        credential.secrets.push(value.to_owned());
                    }
                }
                if let Some(object) = credential.record.as_object_mut() {
                    object.insert("dynamic_path".into(), json!(path));
                    object.insert("lease_id".into(), json!(lease.lease_id));
                    object.insert(
                        "lease_duration_seconds".into(),
                        json!(lease.lease_duration_seconds),
                    );
                    if let Some(user) = lease.data.get("username").and_then(Value::as_str) {
                        object.insert("username".into(), json!(user));
                    }
                }
                credential.lease = lease.lease_id;
            }
        }
        Ok(credential)
    }

    async fn secret_map(
        &self,
        credential: &CallCredential,
        secret: &SecretRef,
    ) -> Result<Map<String, Value>, ToolError> {
        match secret {
            SecretRef::Vault { mount, path, .. } => {
                let (Some(federation), Some(token)) = (&credential.federation, &credential.vault)
                else {
                    return Err(ToolError::internal("a Vault secret without a Vault token"));
                };
                federation
                    .client
                    .kv2_read(token, mount, path)
                    .await
                    .map_err(|err| {
                        vault_error(&federation.config, &format!("read `{mount}/{path}`"), err)
                    })
            }
            SecretRef::Stored(name) => Err(ToolError::internal(format!(
                "stored secret `{name}` holds one value, not `username` and `password`"
            ))),
        }
    }

    async fn secret_text(
        &self,
        credential: &CallCredential,
        tenant: &str,
        secret: &SecretRef,
    ) -> Result<String, ToolError> {
        match secret {
            SecretRef::Vault {
                field: Some(name), ..
            } => {
                let map = self.secret_map(credential, secret).await?;
                Ok(field(&map, name, &format!("secret `{secret}`"))?.to_owned())
            }
            SecretRef::Vault { field: None, .. } => Err(ToolError::internal(format!(
                "secret `{secret}` names no field"
            ))),
            SecretRef::Stored(name) => {
                let sealed = self.sealed.as_ref().ok_or_else(|| {
                    ToolError::internal("meho's sealed secrets are not available")
                })?;
                let value = sealed.get(tenant, name).await.map_err(|err| {
                    ToolError::internal(format!(
                        "cannot open stored secret `{name}`, so the call did not run: {err}"
                    ))
                })?;
                value
                    .expose_str()
                    .map(str::to_owned)
                    .map_err(|err| ToolError::internal(format!("stored secret `{name}`: {err}")))
            }
        }
    }
}

fn note_secret(credential: &mut CallCredential, secret: &SecretRef) {
    if credential.serial.is_none() {
        credential.serial = Some(secret.to_string());
        credential.record = json!({"kind": "stored_secret"});
    }
    if let Some(object) = credential.record.as_object_mut() {
        object.insert("secret".into(), json!(secret.to_string()));
    }
}
