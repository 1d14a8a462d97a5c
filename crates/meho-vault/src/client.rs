//! The HTTP client for the handful of Vault endpoints meho uses.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value, json};
use url::Url;

use crate::VaultError;

/// The longest Vault error text an error carries (a misbehaving server could send megabytes).
const MAX_MESSAGE: usize = 512;

/// A client of one Vault (or OpenBao) server: its address, the CA that signs its certificate,
/// and a timeout that bounds every request, connecting included. Cheap to clone.
#[derive(Clone, Debug)]
pub struct VaultClient {
    address: Url,
    http: reqwest::Client,
    timeout: Duration,
}

/// A Vault token. The token itself lives in a [`SecretString`]: `Debug` shows only the accessor
/// and the TTL, and the memory is zeroed on drop.
pub struct VaultToken {
    secret: SecretString,
    /// The token's accessor (not a credential: it can look up and revoke the token, not use it).
    pub accessor: String,
    /// The TTL Vault granted, in seconds (0: no expiry).
    pub ttl_seconds: u64,
    /// The policies attached to the token.
    pub policies: Vec<String>,
}

impl VaultToken {
    /// The token, for the `X-Vault-Token` header (or a test that hands it to Vault directly).
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// A token from its text (a token meho was given rather than one it logged in for).
    pub fn from_secret(token: String, accessor: String, ttl_seconds: u64) -> Self {
        VaultToken {
            secret: SecretString::from(token),
            accessor,
            ttl_seconds,
            policies: Vec::new(),
        }
    }
}

impl fmt::Debug for VaultToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultToken")
            .field("token", &"[redacted]")
            .field("accessor", &self.accessor)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("policies", &self.policies)
            .finish()
    }
}

/// What a read of a dynamic secret (or any `GET /v1/<path>`) returned: the data and its lease.
/// `Debug` shows the keys of `data`, never its values.
#[derive(Clone)]
pub struct Lease {
    /// The secret's data (e.g. `username` and `password` of `database/creds/<role>`).
    pub data: Map<String, Value>,
    /// The lease to revoke when done; `None` when the secret is not leased.
    pub lease_id: Option<String>,
    /// How long the lease lasts, in seconds.
    pub lease_duration_seconds: u64,
    /// Whether the lease can be renewed.
    pub renewable: bool,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .field("lease_id", &self.lease_id)
            .field("lease_duration_seconds", &self.lease_duration_seconds)
            .field("renewable", &self.renewable)
            .finish()
    }
}

/// What to ask the SSH secrets engine to sign (`POST /v1/<mount>/sign/<role>`).
#[derive(Clone, Debug)]
pub struct SshSignRequest {
    /// The public key to certify, in OpenSSH format.
    pub public_key: String,
    /// Comma-separated principals.
    pub valid_principals: String,
    /// The certificate's lifetime.
    pub ttl_seconds: u64,
    /// Critical options (`force-command`, `source-address`); the role must allow them.
    pub critical_options: BTreeMap<String, String>,
    /// Extensions (`permit-pty`…); the role must allow them.
    pub extensions: BTreeMap<String, String>,
    /// The certificate's key id (the role needs `allow_user_key_ids`).
    pub key_id: Option<String>,
    /// `"user"` (or `"host"`).
    pub cert_type: &'static str,
}

impl VaultClient {
    /// A client of the Vault at `address` (`http(s)://host[:port][/prefix]`). With
    /// `ca_cert_pem`, only the certificates in it are trusted for TLS; without, the platform's
    /// roots. `timeout` bounds each request, from connecting to reading the last byte.
    pub fn new(
        address: &Url,
        ca_cert_pem: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Self, VaultError> {
        if !matches!(address.scheme(), "http" | "https") || address.host_str().is_none() {
            return Err(VaultError::invalid(format!(
                "the vault address `{}` is not an http(s) URL with a host",
                address.as_str()
            )));
        }
        if !address.username().is_empty()
            || address.password().is_some()
            || address.query().is_some()
            || address.fragment().is_some()
        {
            // Not echoed: it could hold a password.
            return Err(VaultError::invalid(
                "the vault address must not carry credentials, a query or a fragment",
            ));
        }
        if address.cannot_be_a_base() {
            return Err(VaultError::invalid(format!(
                "the vault address `{}` cannot have a path",
                address.as_str()
            )));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect could carry the token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("meho-vault/", env!("CARGO_PKG_VERSION")));
        if is_loopback(address) {
            builder = builder.no_proxy();
        }
        match ca_cert_pem {
            Some(pem) => builder = builder.use_preconfigured_tls(tls_config(pem)?),
            None => {
                // reqwest is built without a crypto provider; installing twice is harmless.
                if rustls::crypto::CryptoProvider::get_default().is_none() {
                    let _ = rustls::crypto::ring::default_provider().install_default();
                }
            }
        }
        let http = builder.build().map_err(|err| {
            VaultError::invalid(format!("cannot set up the HTTP client: {}", chain(&err)))
        })?;
        Ok(VaultClient {
            address: address.clone(),
            http,
            timeout,
        })
    }

    /// The Vault address.
    pub fn address(&self) -> &Url {
        &self.address
    }

    /// Logs in with a JWT (`POST /v1/auth/<mount>/login {role, jwt}`). Vault rejecting the JWT
    /// or the role (400, 401 or 403) is [`VaultError::Denied`].
    pub async fn login_jwt(
        &self,
        mount: &str,
        role: &str,
        jwt: &str,
    ) -> Result<VaultToken, VaultError> {
        let path = format!("auth/{}/login", checked(mount, "mount")?);
        let body = json!({ "role": role, "jwt": jwt });
        let answer = self
            .call(Method::POST, &path, None, Some(&body))
            .await
            .map_err(|err| match err {
                VaultError::Invalid { message } => VaultError::Denied {
                    path: path.clone(),
                    message,
                },
                other => other,
            })?;
        let auth = answer
            .get("auth")
            .and_then(Value::as_object)
            .ok_or_else(|| malformed(&path, "no `auth` in the answer"))?;
        let token = auth
            .get("client_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| malformed(&path, "no `auth.client_token` in the answer"))?;
        Ok(VaultToken {
            secret: SecretString::from(token.to_owned()),
            accessor: auth
                .get("accessor")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            ttl_seconds: auth
                .get("lease_duration")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            policies: auth
                .get("policies")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Reads a KV v2 secret (`GET /v1/<mount>/data/<path>`): its `data.data`.
    pub async fn kv2_read(
        &self,
        token: &VaultToken,
        mount: &str,
        path: &str,
    ) -> Result<Map<String, Value>, VaultError> {
        let api = format!(
            "{}/data/{}",
            checked(mount, "mount")?,
            checked(path, "path")?
        );
        let answer = self.call(Method::GET, &api, Some(token), None).await?;
        answer
            .get("data")
            .and_then(|d| d.get("data"))
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| malformed(&api, "no `data.data` object in the answer"))
    }

    /// Reads `GET /v1/<path>`: a dynamic secret such as `database/creds/<role>`, with its lease.
    pub async fn read(&self, token: &VaultToken, path: &str) -> Result<Lease, VaultError> {
        let api = checked(path, "path")?;
        let answer = self.call(Method::GET, api, Some(token), None).await?;
        let data = answer
            .get("data")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| malformed(api, "no `data` object in the answer"))?;
        Ok(Lease {
            data,
            lease_id: answer
                .get("lease_id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            lease_duration_seconds: answer
                .get("lease_duration")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            renewable: answer
                .get("renewable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// Revokes a lease now (`PUT /v1/sys/leases/revoke {lease_id}`).
    pub async fn revoke_lease(&self, token: &VaultToken, lease_id: &str) -> Result<(), VaultError> {
        let body = json!({ "lease_id": lease_id });
        self.call(Method::PUT, "sys/leases/revoke", Some(token), Some(&body))
            .await?;
        Ok(())
    }

    /// Revokes the token itself (`POST /v1/auth/token/revoke-self`), with its leases.
    pub async fn revoke_self(&self, token: VaultToken) -> Result<(), VaultError> {
        self.call(Method::POST, "auth/token/revoke-self", Some(&token), None)
            .await?;
        Ok(())
    }

    /// Asks the SSH secrets engine to sign a public key (`POST /v1/<mount>/sign/<role>`): the
    /// OpenSSH certificate line.
    pub async fn ssh_sign(
        &self,
        token: &VaultToken,
        mount: &str,
        role: &str,
        request: &SshSignRequest,
    ) -> Result<String, VaultError> {
        let api = format!(
            "{}/sign/{}",
            checked(mount, "mount")?,
            checked(role, "role")?
        );
        let mut body = json!({
            "public_key": request.public_key,
            "valid_principals": request.valid_principals,
            "ttl": format!("{}s", request.ttl_seconds),
            "cert_type": request.cert_type,
            "critical_options": request.critical_options,
            "extensions": request.extensions,
        });
        if let (Some(key_id), Some(object)) = (&request.key_id, body.as_object_mut()) {
            object.insert("key_id".to_owned(), Value::from(key_id.as_str()));
        }
        let answer = self
            .call(Method::POST, &api, Some(token), Some(&body))
            .await?;
        answer
            .get("data")
            .and_then(|d| d.get("signed_key"))
            .and_then(Value::as_str)
            .map(|line| line.trim().to_owned())
            .filter(|line| !line.is_empty())
            .ok_or_else(|| malformed(&api, "no `data.signed_key` in the answer"))
    }

    /// Looks the token up (`GET /v1/auth/token/lookup-self`): its `data` (policies, `meta`,
    /// TTL…). For tests and diagnostics.
    pub async fn lookup_self(&self, token: &VaultToken) -> Result<Value, VaultError> {
        let path = "auth/token/lookup-self";
        let answer = self.call(Method::GET, path, Some(token), None).await?;
        answer
            .get("data")
            .cloned()
            .ok_or_else(|| malformed(path, "no `data` in the answer"))
    }

    /// One request: `path` is the API path after `/v1/`, already checked. The answer's JSON
    /// (`Null` for an empty body), or the error its status means.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&VaultToken>,
        body: Option<&Value>,
    ) -> Result<Value, VaultError> {
        let url = self.url(path)?;
        let mut headers = HeaderMap::new();
        headers.insert("x-vault-request", HeaderValue::from_static("true"));
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(token.expose()).map_err(|_| {
                VaultError::invalid("the vault token holds characters a header cannot")
            })?;
            value.set_sensitive(true);
            headers.insert("x-vault-token", value);
        }
        let mut request = self.http.request(method, url).headers(headers);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|err| self.unreachable(err))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| self.unreachable(err))?;
        if status.is_success() {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes)
                .map_err(|err| malformed(path, &format!("not JSON ({err})")));
        }
        let message = vault_errors(&bytes, status);
        let path = path.to_owned();
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                VaultError::Denied { path, message }
            }
            StatusCode::NOT_FOUND => VaultError::NotFound { path },
            StatusCode::BAD_REQUEST => VaultError::Invalid {
                message: format!("`{path}`: {message}"),
            },
            _ => VaultError::Server {
                status: status.as_u16(),
                path,
                message,
            },
        })
    }

    /// `<address>/v1/<path>`, each segment percent-encoded.
    fn url(&self, path: &str) -> Result<Url, VaultError> {
        let mut url = self.address.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|()| {
                VaultError::invalid("the vault address cannot have a path".to_owned())
            })?;
            segments.pop_if_empty().push("v1").extend(path.split('/'));
        }
        Ok(url)
    }

    fn unreachable(&self, err: reqwest::Error) -> VaultError {
        let reason = if err.is_timeout() {
            format!("no answer within {} ms", self.timeout.as_millis())
        } else {
            chain(&err)
        };
        VaultError::Unreachable {
            address: self.address.as_str().to_owned(),
            reason,
            source: Some(err.without_url()),
        }
    }
}

/// Refuses a mount, role or path that is empty or has an empty, `.` or `..` segment (which
/// would address another endpoint than the one named); the segments are percent-encoded later.
fn checked<'a>(text: &'a str, what: &str) -> Result<&'a str, VaultError> {
    let bad = text.is_empty()
        || text
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        || text.chars().any(char::is_control);
    if bad {
        return Err(VaultError::invalid(format!(
            "the {what} `{}` is not a valid vault path (empty, `.` or `..` segments, or control characters)",
            text.escape_default()
        )));
    }
    Ok(text)
}

fn malformed(path: &str, message: &str) -> VaultError {
    VaultError::Malformed {
        path: path.to_owned(),
        message: message.to_owned(),
    }
}

/// Vault's `{"errors": [...]}` joined with `; `, bounded and without control characters; the
/// status text when there are none.
fn vault_errors(body: &[u8], status: StatusCode) -> String {
    let errors: Vec<String> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errors").and_then(Value::as_array).cloned())
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .filter(|e| !e.trim().is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let text = if errors.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no error message")
            .to_lowercase()
    } else {
        errors.join("; ")
    };
    let mut clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE)
        .collect();
    if text.chars().count() > MAX_MESSAGE {
        clean.push('…');
    }
    clean
}

/// An error with its sources, `: `-separated (where "connection refused" hides).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let next = inner.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = inner.source();
    }
    text
}

fn is_loopback(address: &Url) -> bool {
    match address.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A rustls client config trusting only the certificates in `pem`, with the ring provider.
fn tls_config(pem: &[u8]) -> Result<rustls::ClientConfig, VaultError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|err| {
            VaultError::invalid(format!("the vault CA certificate is not valid PEM: {err}"))
        })?;
        roots.add(cert).map_err(|err| {
            VaultError::invalid(format!("the vault CA certificate is unusable: {err}"))
        })?;
    }
    if roots.is_empty() {
        return Err(VaultError::invalid(
            "the vault CA file holds no PEM certificate",
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| VaultError::invalid(format!("cannot set up TLS: {err}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_dot_segments_and_empty_paths() {
        assert!(checked("secret", "mount").is_ok());
        assert!(checked("database/creds/ro", "path").is_ok());
        for bad in ["", "/x", "x/", "a//b", "../sys", "a/./b", "a\nb"] {
            assert!(checked(bad, "path").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn builds_urls_under_the_address_path() {
        let plain = VaultClient::new(
            &Url::parse("http://127.0.0.1:8200").unwrap(),
            None,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            plain.url("secret/data/a b").unwrap().as_str(),
            "http://127.0.0.1:8200/v1/secret/data/a%20b"
        );
        let prefixed = VaultClient::new(
            &Url::parse("https://vault.example/prefix/").unwrap(),
            None,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            prefixed.url("sys/leases/revoke").unwrap().as_str(),
            "https://vault.example/prefix/v1/sys/leases/revoke"
        );
    }

    #[test]
    fn refuses_addresses_with_credentials() {
        let err = VaultClient::new(
            &Url::parse("http://user:hunter2@127.0.0.1:8200").unwrap(),
            None,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn reads_vault_errors() {
        let body = br#"{"errors":["permission denied","line\ntwo"]}"#;
        assert_eq!(
            vault_errors(body, StatusCode::FORBIDDEN),
            "permission denied; line two"
        );
        assert_eq!(vault_errors(b"", StatusCode::NOT_FOUND), "not found");
    }

    #[test]
    fn debug_hides_token_and_lease_values() {
        let token = VaultToken::from_secret("hvs.canary".to_owned(), "acc".to_owned(), 60);
        assert!(!format!("{token:?}").contains("canary"));
        let mut data = Map::new();
        data.insert("password".to_owned(), Value::from("canary-value"));
        let lease = Lease {
            data,
            lease_id: None,
            lease_duration_seconds: 0,
            renewable: false,
        };
        let shown = format!("{lease:?}");
        assert!(shown.contains("password") && !shown.contains("canary-value"));
    }
}
