//! One configured cluster at run time: its TLS roots, the minter, per-call clients and the
//! resources it serves (discovery, cached).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use kube::core::discovery::{ApiCapabilities, ApiResource, Scope};
use meho_config::{Cluster, SaBinding};
use meho_gateway::{ErrorCode, ToolError};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How long discovery answers are reused before the next call asks again.
const DISCOVERY_TTL: Duration = Duration::from_secs(60);
/// Per-request timeouts of every client (a hung API server must not hold a call forever).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A token minted for one call. Dropped with the call; never logged, audited or returned.
pub struct Minted {
    token: String,
    /// The token's `jti` claim, or `sha256:<16 hex>` of the token when it carries none: the
    /// credential serial of the records.
    pub serial: String,
    /// `namespace/name` of the ServiceAccount it authenticates as.
    pub service_account: String,
    /// When it expires (RFC 3339, as the API server reported it).
    pub expires_at: Option<String>,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("serial", &self.serial)
            .field("service_account", &self.service_account)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// One resource the cluster serves.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Group, version, kind, plural.
    pub api: ApiResource,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// The verbs the API server lists for it.
    pub verbs: Vec<String>,
}

/// What discovery found: every resource of every served version, and the preferred version of
/// each group first.
#[derive(Debug, Default)]
pub struct Resources {
    /// Preferred versions (what a name resolves to).
    preferred: Vec<Resource>,
    /// Every version (what an apiVersion/kind resolves to).
    all: Vec<Resource>,
}

impl Resources {
    /// The resource named `name`: `plural`, `kind` (any case) or singular, optionally qualified
    /// with `.group`. Core wins over other groups for an unqualified name that several groups
    /// serve; otherwise an unqualified name must be unique.
    pub fn by_name(&self, name: &str) -> Result<Option<&Resource>, String> {
        let lower = name.to_ascii_lowercase();
        let matches_name =
            |r: &Resource, n: &str| r.api.plural == n || r.api.kind.to_ascii_lowercase() == n;
        // `plural.group` first (a group always has a dot or is a single word like `apps`).
        if let Some((short, group)) = lower.split_once('.')
            && let Some(found) = self
                .preferred
                .iter()
                .find(|r| r.api.group == group && matches_name(r, short))
        {
            return Ok(Some(found));
        }
        let candidates: Vec<&Resource> = self
            .preferred
            .iter()
            .filter(|r| matches_name(r, &lower))
            .collect();
        match candidates.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => {
                if let Some(core) = many.iter().find(|r| r.api.group.is_empty()) {
                    return Ok(Some(core));
                }
                Err(format!(
                    "`{name}` is served by several groups ({}): qualify it as `<plural>.<group>`",
                    many.iter()
                        .map(|r| format!("{}.{}", r.api.plural, r.api.group))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        }
    }

    /// The resource serving `apiVersion` + `kind`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&Resource> {
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        self.all
            .iter()
            .find(|r| r.api.group == group && r.api.version == version && r.api.kind == kind)
    }
}

/// A cluster at run time.
pub struct ClusterRuntime {
    /// The cluster as configured.
    pub config: Cluster,
    uri: http::Uri,
    roots: Vec<Vec<u8>>,
    discovery: tokio::sync::Mutex<Option<(Instant, Arc<Resources>)>>,
}

impl std::fmt::Debug for ClusterRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRuntime")
            .field("name", &self.config.name)
            .field("api_server", &self.config.api_server)
            .finish()
    }
}

/// The CA bundle at `path` as DER certificates.
fn read_roots(path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    use rustls_pki_types::pem::PemObject as _;
    let pem = std::fs::read(path).map_err(|e| format!("ca_cert `{}`: {e}", path.display()))?;
    let roots: Vec<Vec<u8>> = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .map(|cert| cert.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("ca_cert `{}`: not PEM certificates: {e}", path.display()))?;
    if roots.is_empty() {
        return Err(format!("ca_cert `{}` holds no certificate", path.display()));
    }
    Ok(roots)
}

impl ClusterRuntime {
    /// A cluster from its config: reads the CA bundle now (a bad one fails the start).
    pub fn new(config: Cluster) -> Result<Self, String> {
        let uri: http::Uri = config
            .api_server
            .parse()
            .map_err(|e| format!("cluster `{}`: api_server: {e}", config.name))?;
        let roots =
            read_roots(&config.ca_cert).map_err(|e| format!("cluster `{}`: {e}", config.name))?;
        Ok(ClusterRuntime {
            config,
            uri,
            roots,
            discovery: tokio::sync::Mutex::new(None),
        })
    }

    /// A client that authenticates with `token` (a minted one, or the minter's own).
    ///
    /// Built here rather than by kube's `Client::try_from(Config)`, whose connector leaves
    /// Nagle's algorithm on: a request's last TLS record then waits for the server to
    /// acknowledge the one before, which Linux delays by 40 ms, so every request on a fresh
    /// connection (each of ours) paid 40 ms. Otherwise the same stack: TLS from the config,
    /// connect/read/write timeouts, the base URI and the bearer token.
    fn client(&self, token: String) -> Result<kube::Client, ToolError> {
        use kube::client::ConfigExt as _;
        let internal = |e: kube::Error| {
            ToolError::new(
                ErrorCode::Internal,
                format!("cluster `{}`: cannot build a client: {e}", self.config.name),
            )
        };
        let mut config = kube::Config::new(self.uri.clone());
        config.root_cert = Some(self.roots.clone());
        config.auth_info.token = Some(token.into());
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = config
            .rustls_https_connector_with_connector(http)
            .map_err(internal)?;
        let mut connector = hyper_timeout::TimeoutConnector::new(https);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_read_timeout(Some(READ_TIMEOUT));
        connector.set_write_timeout(Some(READ_TIMEOUT));
        let http_client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        let service = tower::ServiceBuilder::new()
            .layer(config.base_uri_layer())
            .option_layer(config.auth_layer().map_err(internal)?)
            .map_err(tower::BoxError::from)
            .service(http_client);
        Ok(kube::Client::new(service, "default"))
    }

    /// The client of a minted token, for one call.
    pub fn client_for(&self, minted: &Minted) -> Result<kube::Client, ToolError> {
        self.client(minted.token.clone())
    }

    /// The minter's client. Its token file is read on every call, so a rotated token is used
    /// from the next call on.
    fn minter(&self) -> Result<kube::Client, ToolError> {
        let path = &self.config.minter_token_file;
        let token = std::fs::read_to_string(path).map_err(|e| {
            ToolError::new(
                ErrorCode::Internal,
                format!(
                    "cluster `{}`: cannot read minter_token_file `{}`: {e}",
                    self.config.name,
                    path.display()
                ),
            )
        })?;
        let token = token.trim().to_owned();
        if token.is_empty() {
            return Err(ToolError::new(
                ErrorCode::Internal,
                format!(
                    "cluster `{}`: minter_token_file `{}` is empty",
                    self.config.name,
                    path.display()
                ),
            ));
        }
        self.client(token)
    }

    /// Mints a token for `binding`'s ServiceAccount (TokenRequest, `token_ttl_seconds`).
    pub async fn mint(&self, binding: &SaBinding) -> Result<Minted, ToolError> {
        let client = self.minter()?;
        let path = format!(
            "/api/v1/namespaces/{}/serviceaccounts/{}/token",
            binding.namespace, binding.service_account
        );
        let body = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": { "expirationSeconds": self.config.token_ttl_seconds },
        });
        let request = http::Request::post(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default())
            .map_err(|e| ToolError::internal(format!("token request: {e}")))?;
        let service_account = format!("{}/{}", binding.namespace, binding.service_account);
        let answer: Value = client.request(request).await.map_err(|err| {
            let error = crate::api_error(&self.config.name, "the minter", err);
            ToolError::new(
                if error.code == ErrorCode::ForbiddenByCluster {
                    ErrorCode::Internal
                } else {
                    error.code
                },
                format!(
                    "cannot mint a token for ServiceAccount `{service_account}` (so nothing ran): {}",
                    error.message
                ),
            )
        })?;
        let token = answer
            .pointer("/status/token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ToolError::internal("the TokenRequest answer carries no token"))?
            .to_owned();
        let expires_at = answer
            .pointer("/status/expirationTimestamp")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Minted {
            serial: serial_of(&token),
            token,
            service_account,
            expires_at,
        })
    }

    /// What the cluster serves, and when that was asked: the cached answer while it is younger
    /// than [`DISCOVERY_TTL`], unless it is `missed` (the answer a caller did not find its
    /// resource in), which is asked again. Concurrent misses wait for one another, so one
    /// fresh answer serves them all.
    pub async fn resources(
        &self,
        missed: Option<Instant>,
    ) -> Result<(Instant, Arc<Resources>), ToolError> {
        let mut cached = self.discovery.lock().await;
        if let Some((at, resources)) = cached.as_ref() {
            let stale = missed.is_some_and(|missed| *at <= missed);
            if !stale && at.elapsed() < DISCOVERY_TTL {
                return Ok((*at, resources.clone()));
            }
        }
        let client = self.minter()?;
        let discovery = kube::Discovery::new(client)
            .run_aggregated()
            .await
            .map_err(|err| crate::api_error(&self.config.name, "discovery (the minter)", err))?;
        let mut resources = Resources::default();
        for group in discovery.groups() {
            let preferred = group.preferred_version_or_latest().to_owned();
            let versions: Vec<String> = group.versions().map(str::to_owned).collect();
            for version in versions {
                for (api, caps) in group.versioned_resources(&version) {
                    let resource = resource_of(api, &caps);
                    if version == preferred {
                        resources.preferred.push(resource.clone());
                    }
                    resources.all.push(resource);
                }
            }
        }
        let resources = Arc::new(resources);
        let at = Instant::now();
        *cached = Some((at, resources.clone()));
        Ok((at, resources))
    }

    /// Resolves `name` against discovery, asking again once when the answer does not know it (a
    /// CRD created a moment ago).
    pub async fn resolve(&self, name: &str) -> Result<Resource, ToolError> {
        let mut missed = None;
        for _ in 0..2 {
            let (at, resources) = self.resources(missed).await?;
            match resources.by_name(name) {
                Ok(Some(found)) => return Ok(found.clone()),
                Ok(None) => missed = Some(at),
                Err(message) => return Err(ToolError::invalid(message)),
            }
        }
        Err(ToolError::invalid(format!(
            "cluster `{}` serves no resource `{name}` (use the plural, e.g. `pods` or `deployments.apps`)",
            self.config.name
        )))
    }

    /// Resolves `apiVersion` + `kind` (an object of a manifest), asking again once.
    pub async fn resolve_kind(&self, api_version: &str, kind: &str) -> Result<Resource, ToolError> {
        let mut missed = None;
        for _ in 0..2 {
            let (at, resources) = self.resources(missed).await?;
            match resources.by_kind(api_version, kind) {
                Some(found) => return Ok(found.clone()),
                None => missed = Some(at),
            }
        }
        Err(ToolError::invalid(format!(
            "cluster `{}` serves no kind `{kind}` in `{api_version}`",
            self.config.name
        )))
    }
}

fn resource_of(api: ApiResource, caps: &ApiCapabilities) -> Resource {
    Resource {
        namespaced: caps.scope == Scope::Namespaced,
        verbs: caps.operations.clone(),
        api,
    }
}

/// The credential serial of `token`: its `jti` claim when it is a JWT that carries one (read,
/// not verified: the API server verified it), else `sha256:` and 16 hex of its hash.
fn serial_of(token: &str) -> String {
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<BTreeMap<String, Value>>(&bytes).ok());
    if let Some(jti) = claims
        .as_ref()
        .and_then(|c| c.get("jti"))
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 128)
    {
        return jti.to_owned();
    }
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    format!("sha256:{}", digest.get(..16).unwrap_or(&digest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_tokens_serial_is_its_jti_or_a_hash() {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"jti":"5d1b0c9e-1111","sub":"system:serviceaccount:a:b"}"#);
        assert_eq!(serial_of(&format!("h.{claims}.s")), "5d1b0c9e-1111");
        let opaque = serial_of("not-a-jwt");
        assert!(
            opaque.starts_with("sha256:") && opaque.len() == 23,
            "{opaque}"
        );
        assert!(!opaque.contains("not-a-jwt"));
    }
}
